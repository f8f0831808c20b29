//! HSS `ListRegistry` (`GET /v5/{project_id}/image/registries`): parameter ranges, defaults,
//! filters, pages and error bodies as docs/huawei-api.md §0 and §5 describe them.
//!
//! A request is answered in the order a real request meets Huawei's layers:
//! 1. [`Fault::Latency`], if injected, sets when it is answered (its delay after arrival).
//! 2. APIG authentication (only when authentication is on, see the `sim` module docs): 401 `APIG.0301`
//!    (bad signature, unknown token), 401 `APIG.0307` (expired token), 403 `HSS.0010` (token scoped to
//!    another project).
//! 3. APIG throttling faults ([`Fault::ThrottleEveryNth`], [`Fault::Quota`]): 429 `APIG.0308`.
//! 4. The `X-Project-Id` header, when present, must equal the path's project id: 403 `HSS.0010`.
//! 5. The project must exist: 403 `HSS.0013`. Real HSS answers a project outside the caller's account
//!    with an authorization failure rather than "not found", and docs/huawei-api.md §5 lists `HSS.0013` as
//!    "insufficient permissions", so that is the closest documented code. [`Fault::Forbidden`] gives the
//!    same answer for a project that exists.
//! 6. Query parameters are validated against the ranges of docs/huawei-api.md §0: 400 `HSS.0001`.
//! 7. Injected page [`Fault`]s are applied.
//! 8. The page is cut from the matching registries; then [`Fault::DriftDuringWalk`] may change the estate.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::{self, apig_auth_error};
use super::faults::{self, Fault, PageAnswer, PageFaults};
use super::http::{
    api_not_found, decode_query_pairs, first_value, huawei_error, json_response, new_request_id,
    raw_json_response,
};
use super::verify::ReceivedRequest;
use super::{RequestRecord, Simulator, State as SimState, API_LIST_REGISTRY};

/// Path of HSS ListRegistry (Go SDK `GenReqDefForListRegistry`).
pub const LIST_REGISTRY_ROUTE: &str = "/v5/{project_id}/image/registries";

/// `offset` range documented for ListRegistry.
pub const OFFSET_RANGE: std::ops::RangeInclusive<i64> = 0..=2_000_000;

/// `limit` range documented for ListRegistry.
pub const LIMIT_RANGE: std::ops::RangeInclusive<i64> = 10..=200;

/// `limit` used when the request sends none.
pub const DEFAULT_LIMIT: u32 = 10;

/// The `enterprise_project_id` value that selects every enterprise project of the project.
pub const ALL_GRANTED_EPS: &str = "all_granted_eps";

/// The default enterprise project, used when `enterprise_project_id` is absent.
pub const DEFAULT_ENTERPRISE_PROJECT_ID: &str = "0";

/// The validated query of one ListRegistry request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRegistryQuery {
    /// `enterprise_project_id`, defaulted to `"0"`; may be [`ALL_GRANTED_EPS`].
    pub enterprise_project_id: String,
    /// `offset`, defaulted to 0.
    pub offset: u32,
    /// `limit`, defaulted to [`DEFAULT_LIMIT`].
    pub limit: u32,
    /// Substring filter on `registry_name`.
    pub registry_name: Option<String>,
    /// Exact filter on `id`.
    pub registry_id: Option<String>,
    /// Exact filter on `registry_type`, any of the comma-separated values.
    pub registry_types: Option<Vec<String>>,
    /// Substring filter on `registry_addr`.
    pub registry_addr: Option<String>,
    /// Exact filter on `status`.
    pub status: Option<String>,
}

impl ListRegistryQuery {
    /// Validate decoded query pairs. Unknown parameters are ignored, a repeated parameter counts with its
    /// first value, and an empty value counts as absent (the Python SDK sends `registry_name=` for "").
    ///
    /// # Errors
    /// The `error_msg` for `HSS.0001`, e.g. `invalid parameter: limit must be between 10 and 200`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let text = |name: &str, max_chars: usize| -> Result<Option<String>, String> {
            match first_value(pairs, name) {
                Some(value) if value.chars().count() > max_chars => Err(format!(
                    "invalid parameter: {name} must be 1 to {max_chars} characters"
                )),
                value => Ok(value.map(str::to_string)),
            }
        };
        let enterprise_project_id = text("enterprise_project_id", 256)?
            .unwrap_or_else(|| DEFAULT_ENTERPRISE_PROJECT_ID.to_string());
        let offset = integer(pairs, "offset", OFFSET_RANGE)?.unwrap_or(0);
        let limit = integer(pairs, "limit", LIMIT_RANGE)?.unwrap_or(DEFAULT_LIMIT);
        let registry_types = text("registry_type", usize::MAX)?.map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        });
        Ok(ListRegistryQuery {
            enterprise_project_id,
            offset,
            limit,
            registry_name: text("registry_name", 128)?,
            registry_id: text("registry_id", 64)?,
            registry_types,
            registry_addr: text("registry_addr", 256)?,
            status: text("status", usize::MAX)?,
        })
    }

    /// Whether `registry` passes every filter of this query.
    pub fn matches(&self, registry: &Value) -> bool {
        let field = |name: &str| registry.get(name).and_then(Value::as_str);
        let contains = |name: &str, wanted: &Option<String>| match wanted {
            None => true,
            Some(wanted) => field(name).is_some_and(|v| v.contains(wanted.as_str())),
        };
        let equals = |name: &str, wanted: &Option<String>| match wanted {
            None => true,
            Some(wanted) => field(name) == Some(wanted.as_str()),
        };
        let type_matches = match &self.registry_types {
            None => true,
            Some(types) => field("registry_type").is_some_and(|t| types.iter().any(|w| w == t)),
        };
        contains("registry_name", &self.registry_name)
            && equals("id", &self.registry_id)
            && type_matches
            && contains("registry_addr", &self.registry_addr)
            && equals("status", &self.status)
    }
}

/// Everything the ListRegistry answer needs from the HTTP request.
struct ListRegistryRequest<'a> {
    project_id: &'a str,
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
    query_pairs: &'a [(String, String)],
    request_id: &'a str,
}

/// The ListRegistry handler: answers, counts and logs one request; see the module docs.
pub(crate) async fn list_registry(
    State(simulator): State<Simulator>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Path(project_id)) = path else {
        return api_not_found().await;
    };
    let answer_at = simulator.answer_at();
    let request_id = new_request_id();
    let query_pairs = decode_query_pairs(uri.query().unwrap_or(""));
    let request = ListRegistryRequest {
        project_id: &project_id,
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
        query_pairs: &query_pairs,
        request_id: &request_id,
    };
    let sent_integer =
        |name: &str| first_value(&query_pairs, name).and_then(|v| v.parse::<u32>().ok());
    let mut record = RequestRecord {
        project_id: project_id.clone(),
        offset: sent_integer("offset"),
        limit: sent_integer("limit"),
        enterprise_project_id: first_value(&query_pairs, "enterprise_project_id")
            .map(str::to_string),
        request_id: request_id.clone(),
        ..RequestRecord::received(API_LIST_REGISTRY, auth::auth_kind(&headers), &method, &uri)
    };

    let (_answering, in_flight) = Answering::begin(&simulator);
    record.in_flight = in_flight;
    let outcome = {
        let mut state = simulator.lock();
        state.request_count += 1;
        let mut outcome = answer_list_registry(&mut state, &request, &mut record);
        if let Some(seconds) = outcome.retry_after {
            record.retry_after = Some(seconds);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                outcome
                    .response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value);
            }
        }
        if outcome.response.status() == StatusCode::TOO_MANY_REQUESTS {
            state.throttled_count += 1;
        }
        // A hung request is logged at once with status 0, so tests can see it while it hangs.
        record.status = if outcome.hang {
            0
        } else {
            outcome.response.status().as_u16()
        };
        tracing::debug!(
            project_id = %record.project_id,
            offset = ?record.offset,
            limit = ?record.limit,
            http.status = record.status,
            request_id = %record.request_id,
            "simulated hss listregistry for project {} answered {}",
            record.project_id,
            record.status
        );
        state.log_request(record);
        outcome
    };
    tokio::time::sleep_until(answer_at).await;
    if outcome.hang {
        simulator.hang().await;
        let status = outcome.response.status().as_u16();
        let mut state = simulator.lock();
        if let Some(record) = state
            .request_log
            .iter_mut()
            .rev()
            .find(|r| r.request_id == request_id)
        {
            record.status = status;
        }
    }
    outcome.response
}

/// One ListRegistry request being answered, counted in [`SimState::list_in_flight`] until
/// dropped (when the handler returns, or when the client goes away and the handler with it).
struct Answering<'a>(&'a Simulator);

impl<'a> Answering<'a> {
    /// Counts a request as being answered; returns how many are, itself included.
    fn begin(simulator: &'a Simulator) -> (Self, u32) {
        let mut state = simulator.lock();
        state.list_in_flight += 1;
        (Answering(simulator), state.list_in_flight)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.list_in_flight = state.list_in_flight.saturating_sub(1);
    }
}

/// The answer to one ListRegistry request, before the handler logs it.
struct Outcome {
    /// The response to send (after hanging, when `hang`).
    response: Response,
    /// Whether [`Fault::Hang`] holds the response back.
    hang: bool,
    /// `Retry-After` seconds to send, if any.
    retry_after: Option<u32>,
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Self {
        Outcome {
            response,
            hang: false,
            retry_after: None,
        }
    }
}

/// Everything but the logging: authentication, throttling, checks, faults and the page.
fn answer_list_registry(
    state: &mut SimState,
    request: &ListRegistryRequest<'_>,
    record: &mut RequestRecord,
) -> Outcome {
    let request_id = request.request_id;
    let received = ReceivedRequest {
        method: request.method.as_str(),
        path: request.uri.path(),
        query: request.uri.query(),
        headers: request.headers,
        body: request.body,
    };
    let authenticated = match auth::authenticate(state, &received, Some(request.project_id)) {
        Ok(authenticated) => authenticated,
        Err(failure) => {
            // Failures never contain the secret key, the signature or the token, so they are safe to log.
            tracing::warn!(project_id = %request.project_id, ?failure, "simulated hss rejected authentication");
            return apig_auth_error(&failure, request_id).into();
        }
    };
    record.had_valid_signature = authenticated.valid_signature;

    if let Some(rejection) = faults::apply_gateway_faults(state, &authenticated.user_key) {
        return Outcome {
            response: huawei_error(
                StatusCode::TOO_MANY_REQUESTS,
                "APIG.0308",
                &rejection.error_msg,
                request_id,
            ),
            hang: false,
            retry_after: rejection.retry_after,
        };
    }

    if let Some(header_project_id) = request.headers.get("x-project-id") {
        if header_project_id.as_bytes() != request.project_id.as_bytes() {
            return huawei_error(
                StatusCode::FORBIDDEN,
                "HSS.0010",
                "access denied: the X-Project-Id header does not match the project id in the path",
                request_id,
            )
            .into();
        }
    }

    if state.estate.project(request.project_id).is_none() {
        return huawei_error(
            StatusCode::FORBIDDEN,
            "HSS.0013",
            &format!(
                "insufficient permissions: project {} does not exist or is not authorized",
                request.project_id
            ),
            request_id,
        )
        .into();
    }
    let forbidden = state.faults.iter().any(
        |f| matches!(&f.fault, Fault::Forbidden { project_id } if project_id == request.project_id),
    );
    if forbidden {
        return huawei_error(
            StatusCode::FORBIDDEN,
            "HSS.0013",
            "Insufficient permissions",
            request_id,
        )
        .into();
    }

    let query = match ListRegistryQuery::from_pairs(request.query_pairs) {
        Ok(query) => query,
        Err(error_msg) => {
            return huawei_error(StatusCode::BAD_REQUEST, "HSS.0001", &error_msg, request_id).into()
        }
    };

    let PageFaults {
        answer,
        max_page_items,
        reported_total,
        omit_total_num,
    } = faults::page_faults(
        state,
        request.project_id,
        query.offset,
        &query.enterprise_project_id,
    );
    let truncate_body = match answer {
        None => false,
        Some(PageAnswer::Truncated) => true,
        Some(PageAnswer::Fail {
            status,
            error_code,
            error_msg,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return huawei_error(status, &error_code, &error_msg, request_id).into();
        }
        Some(PageAnswer::Hang) => {
            // What the gateway finally says if the client is still waiting after the hang.
            return Outcome {
                response: huawei_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "APIG.0201",
                    "Backend timeout",
                    request_id,
                ),
                hang: true,
                retry_after: None,
            };
        }
        Some(PageAnswer::Raw(body)) => {
            return raw_json_response(StatusCode::OK, request_id, body).into();
        }
    };

    let body = {
        let project = state
            .estate
            .project(request.project_id)
            .expect("the project was checked above");
        let mut matching: Vec<&Value> = project
            .scopes
            .iter()
            .filter(|scope| {
                query.enterprise_project_id == ALL_GRANTED_EPS
                    || scope.enterprise_project_id == query.enterprise_project_id
            })
            .flat_map(|scope| &scope.registries)
            .filter(|registry| query.matches(registry))
            .collect();
        let true_total = matching.len() as i64;
        let start = (query.offset as usize).min(matching.len());
        let page_size = (query.limit as usize).min(max_page_items);
        let end = start.saturating_add(page_size).min(matching.len());
        let data_list: Vec<Value> = matching.drain(start..end).cloned().collect();
        let mut body =
            json!({"total_num": reported_total.unwrap_or(true_total), "data_list": data_list});
        if omit_total_num {
            if let Some(object) = body.as_object_mut() {
                object.remove("total_num");
            }
        }
        body
    };
    let drifting_scope = (query.enterprise_project_id != ALL_GRANTED_EPS)
        .then_some(query.enterprise_project_id.as_str());
    faults::apply_drift_faults(state, request.project_id, drifting_scope);
    if truncate_body {
        let text = body.to_string();
        let mut cut = (text.len() / 2).max(1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        return raw_json_response(StatusCode::OK, request_id, text[..cut].to_string()).into();
    }
    json_response(StatusCode::OK, request_id, &body).into()
}

/// Parse an optional integer parameter and check its documented range.
fn integer(
    pairs: &[(String, String)],
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<u32>, String> {
    let Some(text) = first_value(pairs, name) else {
        return Ok(None);
    };
    let out_of_range = || {
        format!(
            "invalid parameter: {name} must be between {} and {}",
            range.start(),
            range.end()
        )
    };
    let value: i64 = match text.parse() {
        Ok(value) => value,
        // Digits that overflow i64 are an out-of-range number, not a non-number.
        Err(_)
            if text
                .trim_start_matches(['-', '+'])
                .bytes()
                .all(|b| b.is_ascii_digit())
                && !text.is_empty() =>
        {
            return Err(out_of_range())
        }
        Err(_) => return Err(format!("invalid parameter: {name} must be an integer")),
    };
    if !range.contains(&value) {
        return Err(out_of_range());
    }
    u32::try_from(value).map(Some).map_err(|_| out_of_range())
}

#[cfg(test)]
mod tests;

//! HTTP layer of the simulator: the ListRegistry route, the `/sim/` admin routes and Huawei error bodies.
//!
//! A ListRegistry request is answered in the order a real request meets Huawei's layers:
//! 1. [`Fault::Latency`], if injected, delays it.
//! 2. APIG authentication (only when authentication is on, see the `sim` module docs): 401 `APIG.0301`
//!    (bad signature, unknown token), 401 `APIG.0307` (expired token), 403 `HSS.0010` (token scoped to
//!    another project).
//! 3. APIG throttling faults ([`Fault::ThrottleEveryNth`], [`Fault::Quota`]): 429 `APIG.0308`.
//! 4. The `X-Project-Id` header, when present, must equal the path's project id: 403 `HSS.0010`.
//! 5. The project must exist: 403 `HSS.0013`. Real HSS answers a project outside the caller's account
//!    with an authorization failure rather than "not found", and HUAWEI-API.md §5 lists `HSS.0013` as
//!    "insufficient permissions", so that is the closest documented code. [`Fault::Forbidden`] gives the
//!    same answer for a project that exists.
//! 6. Query parameters are validated against the ranges of HUAWEI-API.md §0: 400 `HSS.0001`.
//! 7. Injected page [`Fault`]s are applied.
//! 8. The page is cut from the matching registries; then [`Fault::DriftDuringWalk`] may change the estate.
//!
//! Every response carries an `X-Request-Id` header; when the body has a `request_id`, they are equal.
//! Unknown routes get APIG's 404 `APIG.0101` body. The admin routes under `/sim/` are unauthenticated and
//! are not part of the Huawei API surface; they are logged with `api = "Admin"` and never counted as
//! ListRegistry requests. The IAM and EPS routes live in `iam.rs`.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::iam;
use super::verify::{self, ReceivedRequest};
use super::{
    EstateChange, Fault, FaultSpec, Mutation, RequestRecord, Simulator, State as SimState,
    API_ADMIN, API_LIST_REGISTRY,
};

/// Path of HSS ListRegistry (Go SDK `GenReqDefForListRegistry`).
pub const LIST_REGISTRY_ROUTE: &str = "/v5/{project_id}/image/registries";

/// Response header carrying the request id, as on Huawei's gateways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

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

/// Build the simulator's router; see the module docs for what each route does.
pub fn router(simulator: Simulator) -> Router {
    let admin = Router::new()
        .route("/sim/estate", get(admin_estate))
        .route("/sim/mutate", post(admin_mutate))
        .route("/sim/faults", get(admin_faults).post(admin_add_fault))
        .route("/sim/faults/clear", post(admin_clear_faults))
        .route("/sim/requests", get(admin_requests))
        .route_layer(axum::middleware::from_fn_with_state(
            simulator.clone(),
            log_admin_request,
        ));
    Router::new()
        .route(
            LIST_REGISTRY_ROUTE,
            get(list_registry).fallback(api_not_found),
        )
        .route(
            iam::CREATE_TOKEN_ROUTE,
            post(iam::create_token).fallback(api_not_found),
        )
        .route(
            iam::LIST_PROJECTS_ROUTE,
            get(iam::list_projects).fallback(api_not_found),
        )
        .route(
            iam::LIST_AUTH_DOMAINS_ROUTE,
            get(iam::list_auth_domains).fallback(api_not_found),
        )
        .route(
            iam::LIST_ENTERPRISE_PROJECTS_ROUTE,
            get(iam::list_enterprise_projects).fallback(api_not_found),
        )
        .merge(admin)
        .fallback(api_not_found)
        .layer(axum::middleware::map_response(ensure_request_id_header))
        .with_state(simulator)
}

/// A Huawei error response: `{"error_code","error_msg","request_id"}` plus the `X-Request-Id` header.
pub fn huawei_error(
    status: StatusCode,
    error_code: &str,
    error_msg: &str,
    request_id: &str,
) -> Response {
    json_response(
        status,
        request_id,
        &json!({"error_code": error_code, "error_msg": error_msg, "request_id": request_id}),
    )
}

/// A fresh request id: 32 lower-case hex characters, like Huawei's.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

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

/// Split a raw query into percent-decoded pairs, keeping `+` literal as the verifier does.
pub fn decode_query_pairs(raw_query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| String::from_utf8_lossy(&verify::percent_decode(s)).into_owned();
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(piece), String::new()),
        })
        .collect()
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

async fn list_registry(
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
    simulator.apply_latency().await;
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
        api: API_LIST_REGISTRY.to_string(),
        auth: iam::auth_kind(&headers).to_string(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        status: 0,
        retry_after: None,
        project_id: project_id.clone(),
        offset: sent_integer("offset"),
        limit: sent_integer("limit"),
        enterprise_project_id: first_value(&query_pairs, "enterprise_project_id")
            .map(str::to_string),
        had_valid_signature: false,
        request_id: request_id.clone(),
    };

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
    let authenticated = match iam::authenticate(state, &received, Some(request.project_id)) {
        Ok(authenticated) => authenticated,
        Err(failure) => {
            // Failures never contain the secret key, the signature or the token, so they are safe to log.
            tracing::warn!(project_id = %request.project_id, ?failure, "simulated hss rejected authentication");
            return iam::apig_auth_error(&failure, request_id).into();
        }
    };
    record.had_valid_signature = authenticated.valid_signature;

    if let Some(throttled) = apply_gateway_faults(state, &authenticated.user_key, request_id) {
        return throttled;
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

    let mut max_page_items = usize::MAX;
    let mut reported_total: Option<i64> = None;
    let mut truncate_body = false;
    let mut hang = false;
    let mut failure = None;
    let mut raw_body: Option<String> = None;
    // The first `OmitTotalNum` that selects the request; used up only if a page is served.
    let mut omit_total_num: Option<usize> = None;
    let mut exhausted = Vec::new();
    let targets = |project: &Option<String>, offset: &Option<u32>| {
        selects_project(project, request.project_id) && offset.map_or(true, |o| o == query.offset)
    };
    for (index, active) in state.faults.iter_mut().enumerate() {
        let undecided = failure.is_none() && !truncate_body && !hang && raw_body.is_none();
        match &mut active.fault {
            Fault::MaxPageItems(n) => max_page_items = max_page_items.min(*n),
            Fault::WrongTotalNum {
                project_id,
                total_num,
            } => {
                if selects_project(project_id, request.project_id) {
                    reported_total = Some(*total_num);
                }
            }
            Fault::FailPage {
                project_id,
                offset,
                status,
                error_code,
                error_msg,
                times,
            } if undecided && targets(project_id, offset) => {
                failure = Some((*status, error_code.clone(), error_msg.clone()));
                if consume(times) {
                    exhausted.push(index);
                }
            }
            Fault::FailEnterpriseProject {
                project_id,
                enterprise_project_id,
                status,
                error_code,
                error_msg,
                times,
            } if undecided
                && selects_project(project_id, request.project_id)
                && *enterprise_project_id == query.enterprise_project_id =>
            {
                failure = Some((*status, error_code.clone(), error_msg.clone()));
                if consume(times) {
                    exhausted.push(index);
                }
            }
            Fault::MalformedJson {
                project_id,
                offset,
                times,
            } if undecided && targets(project_id, offset) => {
                truncate_body = true;
                if consume(times) {
                    exhausted.push(index);
                }
            }
            Fault::Hang {
                project_id,
                offset,
                times,
            } if undecided && targets(project_id, offset) => {
                hang = true;
                if consume(times) {
                    exhausted.push(index);
                }
            }
            Fault::RawPage {
                project_id,
                offset,
                body,
                times,
            } if undecided && targets(project_id, offset) => {
                raw_body = Some(body.clone());
                if consume(times) {
                    exhausted.push(index);
                }
            }
            Fault::OmitTotalNum {
                project_id, offset, ..
            } if omit_total_num.is_none() && targets(project_id, offset) => {
                omit_total_num = Some(index);
            }
            Fault::ServerError { status, every_nth } => {
                active.n_seen += 1;
                if undecided && *every_nth > 0 && active.n_seen % u64::from(*every_nth) == 0 {
                    let (error_code, error_msg) = server_error_body(*status);
                    failure = Some((*status, error_code.to_string(), error_msg.to_string()));
                }
            }
            Fault::FailPage { .. }
            | Fault::FailEnterpriseProject { .. }
            | Fault::MalformedJson { .. }
            | Fault::RawPage { .. }
            | Fault::OmitTotalNum { .. }
            | Fault::Hang { .. }
            | Fault::Latency { .. }
            | Fault::ThrottleEveryNth { .. }
            | Fault::Quota { .. }
            | Fault::Forbidden { .. }
            | Fault::DriftDuringWalk { .. } => {}
        }
    }
    let serves_page = failure.is_none() && !hang && raw_body.is_none();
    let omit_total_num = match omit_total_num {
        Some(index) if serves_page => {
            if let Fault::OmitTotalNum { times, .. } = &mut state.faults[index].fault {
                if consume(times) {
                    exhausted.push(index);
                }
            }
            true
        }
        _ => false,
    };
    exhausted.sort_unstable();
    for index in exhausted.into_iter().rev() {
        state.faults.remove(index);
    }
    if let Some((status, error_code, error_msg)) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return huawei_error(status, &error_code, &error_msg, request_id).into();
    }
    if hang {
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
    if let Some(body) = raw_body {
        return raw_json_response(StatusCode::OK, request_id, body).into();
    }

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
    apply_drift_faults(state, request.project_id, &query.enterprise_project_id);
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

/// APIG's throttling faults, [`Fault::ThrottleEveryNth`] and [`Fault::Quota`], for an authenticated
/// request of `user_key`. Returns the 429 answer, or `None` to let the request through; a rejected
/// request uses up no quota.
fn apply_gateway_faults(state: &mut SimState, user_key: &str, request_id: &str) -> Option<Outcome> {
    let now = Instant::now();
    let mut rejection: Option<(String, Option<u32>)> = None;
    let mut quota_slots = Vec::new();
    for (index, active) in state.faults.iter_mut().enumerate() {
        match &active.fault {
            Fault::ThrottleEveryNth {
                n,
                retry_after_seconds,
            } => {
                active.n_seen += 1;
                if rejection.is_none() && *n > 0 && active.n_seen % u64::from(*n) == 0 {
                    rejection = Some((
                        throttling_message(5, Duration::from_secs(60)),
                        *retry_after_seconds,
                    ));
                }
            }
            Fault::Quota {
                max_requests,
                window,
                retry_after,
            } if rejection.is_none() => {
                let accepted = active.accepted.entry(user_key.to_string()).or_default();
                while accepted
                    .front()
                    .is_some_and(|&at| now.duration_since(at) >= *window)
                {
                    accepted.pop_front();
                }
                let max = *max_requests as usize;
                if accepted.len() >= max {
                    // The slot that frees first is the oldest of the `max` requests still in the window.
                    let seconds = accepted.get(accepted.len() - max).map_or(1, |&oldest| {
                        let wait = (oldest + *window).saturating_duration_since(now);
                        (wait.as_secs_f64().ceil() as u32).max(1)
                    });
                    rejection = Some((
                        throttling_message(*max_requests, *window),
                        retry_after.then_some(seconds),
                    ));
                } else {
                    quota_slots.push(index);
                }
            }
            _ => {}
        }
    }
    match rejection {
        Some((error_msg, retry_after)) => Some(Outcome {
            response: huawei_error(
                StatusCode::TOO_MANY_REQUESTS,
                "APIG.0308",
                &error_msg,
                request_id,
            ),
            hang: false,
            retry_after,
        }),
        None => {
            for index in quota_slots {
                state.faults[index]
                    .accepted
                    .entry(user_key.to_string())
                    .or_default()
                    .push_back(now);
            }
            None
        }
    }
}

/// Count an answered page for every [`Fault::DriftDuringWalk`] watching `project_id`, and drift the
/// project's list when one reaches its count.
fn apply_drift_faults(state: &mut SimState, project_id: &str, enterprise_project_id: &str) {
    let mut drifts = Vec::new();
    let mut exhausted = Vec::new();
    for (index, active) in state.faults.iter_mut().enumerate() {
        if let Fault::DriftDuringWalk {
            project_id: watched,
            after_requests,
            n_insert,
            n_delete,
            times,
        } = &mut active.fault
        {
            if !selects_project(watched, project_id) {
                continue;
            }
            active.n_seen += 1;
            if active.n_seen >= u64::from(*after_requests) {
                active.n_seen = 0;
                drifts.push((*n_insert, *n_delete));
                if consume(times) {
                    exhausted.push(index);
                }
            }
        }
    }
    for index in exhausted.into_iter().rev() {
        state.faults.remove(index);
    }
    let scope = (enterprise_project_id != ALL_GRANTED_EPS).then_some(enterprise_project_id);
    for (n_insert, n_delete) in drifts {
        state.n_drifts += 1;
        let seed = state.config.seed ^ state.n_drifts.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let summary = state
            .estate
            .drift_front(seed, project_id, scope, n_insert, n_delete);
        tracing::info!(
            project_id,
            n_added = summary.added.len(),
            n_deleted = summary.deleted.len(),
            "simulated hss project {project_id} drifted during a walk"
        );
    }
}

/// APIG's throttling message for a limit of `max_requests` per `window`.
fn throttling_message(max_requests: u32, window: Duration) -> String {
    let time = if window.as_millis() % 60_000 == 0 {
        format!("{} minute", window.as_secs() / 60)
    } else if window.as_millis() % 1000 == 0 {
        format!("{} second", window.as_secs())
    } else {
        format!("{} millisecond", window.as_millis())
    };
    format!(
        "The throttling threshold has been reached: policy user over ratelimit,limit:{max_requests},time:{time}"
    )
}

/// `error_code` and `error_msg` of a [`Fault::ServerError`] answer: an HSS internal error for 500,
/// APIG's backend errors otherwise.
fn server_error_body(status: u16) -> (&'static str, &'static str) {
    match status {
        500 => ("HSS.1001", "internal server error, please try again later"),
        503 => ("APIG.0201", "Backend unavailable"),
        504 => ("APIG.0201", "Backend timeout"),
        _ => ("APIG.0201", "Backend unavailable"),
    }
}

/// Count one use of a fault; true when it is used up and must be removed.
fn consume(times: &mut Option<u32>) -> bool {
    match times {
        None => false,
        Some(remaining) => {
            *remaining = remaining.saturating_sub(1);
            *remaining == 0
        }
    }
}

/// Whether a fault's optional project filter selects `project_id` (None selects every project).
fn selects_project(filter: &Option<String>, project_id: &str) -> bool {
    filter
        .as_deref()
        .map_or(true, |wanted| wanted == project_id)
}

async fn api_not_found() -> Response {
    huawei_error(
        StatusCode::NOT_FOUND,
        "APIG.0101",
        "The API does not exist or has not been published in the environment",
        &new_request_id(),
    )
}

async fn admin_estate(State(simulator): State<Simulator>) -> Response {
    let state = simulator.lock();
    let projects: Vec<Value> = state
        .estate
        .projects
        .iter()
        .map(|project| {
            let scopes: Vec<Value> = project
                .scopes
                .iter()
                .map(|scope| {
                    json!({
                        "enterprise_project_id": scope.enterprise_project_id,
                        "registry_count": scope.registries.len(),
                    })
                })
                .collect();
            json!({
                "project_id": project.project_id,
                "name": project.name,
                "region": project.region,
                "registry_count": project.scopes.iter().map(|s| s.registries.len()).sum::<usize>(),
                "scopes": scopes,
            })
        })
        .collect();
    let body = json!({
        "region": state.config.region,
        "regions": state.estate.regions,
        "domain_id": state.account.domain_id,
        "registry_count": state.estate.registry_count(),
        "request_count": state.request_count,
        "n_faults": state.faults.len(),
        "enterprise_project_ids": state.estate.enterprise_project_ids,
        "projects": projects,
    });
    Json(body).into_response()
}

/// `POST /sim/mutate`: a [`Mutation`], or one [`EstateChange`] when the body has a `kind`.
async fn admin_mutate(State(simulator): State<Simulator>, body: Bytes) -> Response {
    let bad_request = |error: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("invalid mutation: {error}")})),
        )
            .into_response()
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return bad_request(error.to_string()),
    };
    if value.get("kind").is_none() {
        return match serde_json::from_value::<Mutation>(value) {
            Ok(mutation) => Json(simulator.mutate(&mutation)).into_response(),
            Err(error) => bad_request(error.to_string()),
        };
    }
    let change = match serde_json::from_value::<EstateChange>(value) {
        Ok(change) => change,
        Err(error) => return bad_request(error.to_string()),
    };
    match simulator.apply_change(&change) {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(error) => bad_request(error.to_string()),
    }
}

async fn admin_faults(State(simulator): State<Simulator>) -> Response {
    let faults: Vec<String> = simulator
        .faults()
        .iter()
        .map(|fault| format!("{fault:?}"))
        .collect();
    Json(faults).into_response()
}

async fn admin_add_fault(State(simulator): State<Simulator>, body: Bytes) -> Response {
    let fault = serde_json::from_slice::<FaultSpec>(&body)
        .map_err(|error| error.to_string())
        .and_then(FaultSpec::into_fault);
    match fault {
        Ok(fault) => {
            tracing::info!(?fault, "simulated hss fault added");
            simulator.add_fault(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("invalid fault: {error}")})),
        )
            .into_response(),
    }
}

/// Log every `/sim/` request with `api = "Admin"` after it was answered.
async fn log_admin_request(
    State(simulator): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let response = next.run(request).await;
    let record = RequestRecord {
        api: API_ADMIN.to_string(),
        auth: "none".to_string(),
        method,
        path,
        query,
        status: response.status().as_u16(),
        retry_after: None,
        project_id: String::new(),
        offset: None,
        limit: None,
        enterprise_project_id: None,
        had_valid_signature: false,
        request_id: String::new(),
    };
    simulator.lock().log_request(record);
    response
}

async fn admin_clear_faults(State(simulator): State<Simulator>) -> Response {
    simulator.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn admin_requests(State(simulator): State<Simulator>) -> Response {
    Json(simulator.request_log()).into_response()
}

/// Give every response an `X-Request-Id`, including axum's own rejections and the admin routes.
async fn ensure_request_id_header(mut response: Response) -> Response {
    if !response.headers().contains_key(REQUEST_ID_HEADER) {
        if let Ok(value) = HeaderValue::from_str(&new_request_id()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
    response
}

/// A JSON response with Huawei's content type and the `X-Request-Id` header.
pub(crate) fn json_response(status: StatusCode, request_id: &str, body: &Value) -> Response {
    raw_json_response(status, request_id, body.to_string())
}

fn raw_json_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// The first value of `name` that is not empty.
fn first_value<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
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
mod tests {
    use super::*;
    use crate::sim::testkit::*;
    use crate::sim::{Mutation, SimConfig};

    #[tokio::test]
    async fn walking_offsets_with_limit_200_over_201_items_yields_200_then_1_then_empty() {
        let h = harness(SimConfig::default()).await;
        h.simulator.set_registries_in_scope(&h.project_id, "0", 201);
        let expected: Vec<Value> = h.simulator.registries(&h.project_id, Some("0"));

        let mut seen = Vec::new();
        let mut page_sizes = Vec::new();
        let mut offset = 0;
        loop {
            let page = h.list(&format!("limit=200&offset={offset}")).await;
            assert_eq!(page.status, 200);
            let body = page.json();
            assert_eq!(body["total_num"], 201);
            let items = body["data_list"].as_array().unwrap().clone();
            page_sizes.push(items.len());
            if items.is_empty() {
                break;
            }
            offset += items.len();
            seen.extend(items);
        }
        assert_eq!(page_sizes, [200, 1, 0]);
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn a_scope_of_exactly_200_fits_one_page_and_an_empty_scope_has_total_zero() {
        let h = harness(SimConfig::default()).await;
        h.simulator.set_registries_in_scope(&h.project_id, "0", 200);
        let page = h.list("limit=200").await.json();
        assert_eq!(
            (
                page["total_num"].as_i64(),
                page["data_list"].as_array().unwrap().len()
            ),
            (Some(200), 200)
        );
        h.simulator.set_registries_in_scope(&h.project_id, "0", 0);
        let page = h.list("limit=200").await.json();
        assert_eq!(page, json!({"total_num": 0, "data_list": []}));
    }

    #[tokio::test]
    async fn out_of_range_or_non_integer_parameters_are_rejected_with_hss_0001() {
        let h = harness(SimConfig::default()).await;
        h.list("limit=9").await.assert_huawei_error(
            400,
            "HSS.0001",
            "invalid parameter: limit must be between 10 and 200",
        );
        h.list("limit=201").await.assert_huawei_error(
            400,
            "HSS.0001",
            "limit must be between 10 and 200",
        );
        h.list("offset=2000001").await.assert_huawei_error(
            400,
            "HSS.0001",
            "offset must be between 0 and 2000000",
        );
        h.list("offset=-1").await.assert_huawei_error(
            400,
            "HSS.0001",
            "offset must be between 0 and 2000000",
        );
        h.list("limit=ten")
            .await
            .assert_huawei_error(400, "HSS.0001", "limit must be an integer");
        h.list("limit=99999999999999999999999")
            .await
            .assert_huawei_error(400, "HSS.0001", "limit must be between");
        let long_name = "a".repeat(129);
        h.list(&format!("registry_name={long_name}"))
            .await
            .assert_huawei_error(400, "HSS.0001", "registry_name must be 1 to 128");
        assert_eq!(h.list("limit=10&offset=2000000").await.status, 200);
        assert_eq!(
            h.simulator.request_count(),
            8,
            "rejected requests are counted too"
        );
    }

    #[tokio::test]
    async fn missing_parameters_default_to_enterprise_project_0_offset_0_and_limit_10() {
        let h = harness(SimConfig::default()).await;
        let page = h
            .get(&format!("/v5/{}/image/registries", h.project_id))
            .await
            .json();
        let default_scope = h.simulator.registries(&h.project_id, Some("0"));
        assert_eq!(page["total_num"], default_scope.len());
        assert_eq!(
            page["data_list"].as_array().unwrap()[..],
            default_scope[..10]
        );
        let log = h.simulator.request_log();
        assert_eq!(
            (
                log[0].offset,
                log[0].limit,
                log[0].enterprise_project_id.clone()
            ),
            (None, None, None)
        );
    }

    #[tokio::test]
    async fn all_granted_eps_returns_the_registries_of_every_enterprise_project() {
        let h = harness(SimConfig::default()).await;
        let page = h
            .list("enterprise_project_id=all_granted_eps&limit=200")
            .await
            .json();
        let everything = h.simulator.registries(&h.project_id, None);
        assert_eq!(everything.len(), 3 * 25);
        assert_eq!(page["total_num"], 75);
        assert_eq!(page["data_list"].as_array().unwrap(), &everything);

        let ep = h.simulator.enterprise_project_ids()[2].clone();
        let page = h
            .list(&format!("enterprise_project_id={ep}&limit=200"))
            .await
            .json();
        assert_eq!(
            page["data_list"].as_array().unwrap(),
            &h.simulator.registries(&h.project_id, Some(&ep))
        );
        let unknown = h.list("enterprise_project_id=no-such-ep").await.json();
        assert_eq!(unknown, json!({"total_num": 0, "data_list": []}));
    }

    #[tokio::test]
    async fn filters_select_by_name_id_type_list_address_and_status() {
        let h = harness(SimConfig::default()).await;
        let scope = h.simulator.registries(&h.project_id, Some("0"));
        let expect = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
            scope
                .iter()
                .filter(|r| keep(r))
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        };
        let s = |r: &Value, f: &str| r[f].as_str().unwrap_or_default().to_string();

        let by_name = h.list("limit=200&registry_name=harbor").await;
        let expected = expect(&|r| s(r, "registry_name").contains("harbor"));
        assert!(!expected.is_empty());
        assert_eq!(by_name.ids(), expected);
        assert_eq!(by_name.json()["total_num"], expected.len());

        let types = h
            .list("limit=200&registry_type=Jfrog%2CSwrShared")
            .await
            .ids();
        assert_eq!(
            types,
            expect(&|r| ["Jfrog", "SwrShared"].contains(&s(r, "registry_type").as_str()))
        );

        let failed = h.list("limit=200&status=fail").await.ids();
        assert_eq!(failed, expect(&|r| s(r, "status") == "fail"));

        let addr = h.list("limit=200&registry_addr=example").await.ids();
        assert_eq!(addr, expect(&|r| s(r, "registry_addr").contains("example")));

        let id = s(&scope[3], "id");
        assert_eq!(h.list(&format!("registry_id={id}")).await.ids(), [id]);
    }

    #[tokio::test]
    async fn plus_in_a_filter_is_a_literal_plus_and_percent_20_is_a_space() {
        let h = harness(SimConfig::default()).await;
        h.simulator.insert_registry(
            &h.project_id,
            "0",
            json!({"id": "p1", "registry_name": "测试 repo+1"}),
        );
        assert_eq!(
            h.list("registry_name=%E6%B5%8B%E8%AF%95%20repo%2B1")
                .await
                .ids(),
            ["p1"]
        );
        assert_eq!(h.list("registry_name=repo+1").await.ids(), ["p1"]);
        assert!(h.list("registry_name=repo%201").await.ids().is_empty());
    }

    #[tokio::test]
    async fn fail_page_fault_fails_the_given_times_then_the_page_succeeds() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::FailPage {
            project_id: Some(h.project_id.clone()),
            offset: Some(10),
            status: 500,
            error_code: "HSS.9999".into(),
            error_msg: "injected failure".into(),
            times: Some(1),
        });
        assert_eq!(
            h.list("offset=0").await.status,
            200,
            "other offsets are unaffected"
        );
        h.list("offset=10")
            .await
            .assert_huawei_error(500, "HSS.9999", "injected failure");
        assert_eq!(h.list("offset=10").await.status, 200);

        h.simulator.add_fault(Fault::rate_limited(None, None));
        h.list("offset=0")
            .await
            .assert_huawei_error(429, "APIG.0308", "throttling threshold");
        h.list("offset=0")
            .await
            .assert_huawei_error(429, "APIG.0308", "throttling threshold");
        h.simulator.clear_faults();
        assert_eq!(h.list("offset=0").await.status, 200);
    }

    #[tokio::test]
    async fn malformed_json_fault_returns_a_truncated_body_with_status_200() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::MalformedJson {
            project_id: None,
            offset: None,
            times: Some(1),
        });
        let broken = h.list("limit=50").await;
        assert_eq!(broken.status, 200);
        assert!(
            broken.text.starts_with("{\"total_num\":"),
            "{}",
            broken.text
        );
        assert!(serde_json::from_str::<Value>(&broken.text).is_err());
        assert!(serde_json::from_str::<Value>(&h.list("limit=50").await.text).is_ok());
    }

    #[tokio::test]
    async fn max_page_items_fault_returns_fewer_items_than_the_limit() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::MaxPageItems(7));
        let first = h.list("limit=200").await.json();
        assert_eq!(first["data_list"].as_array().unwrap().len(), 7);
        assert_eq!(first["total_num"], 25);
        let second = h.list("limit=200&offset=7").await.ids();
        let expected: Vec<String> = h.simulator.registries(&h.project_id, Some("0"))[7..14]
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(second, expected);
    }

    #[tokio::test]
    async fn wrong_total_num_fault_reports_the_given_total_for_that_project_only() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::WrongTotalNum {
            project_id: Some(h.project_id.clone()),
            total_num: 3,
        });
        let page = h.list("limit=200").await.json();
        assert_eq!(
            (
                page["total_num"].as_i64(),
                page["data_list"].as_array().unwrap().len()
            ),
            (Some(3), 25)
        );
        let other = &h.simulator.project_ids()[1];
        let page = h.get(&format!("/v5/{other}/image/registries")).await.json();
        assert_eq!(page["total_num"], 25);
    }

    #[tokio::test]
    async fn unknown_project_is_forbidden_with_hss_0013() {
        let h = harness(SimConfig::default()).await;
        let answer = h
            .get("/v5/ffffffffffffffffffffffffffffffff/image/registries")
            .await;
        answer.assert_huawei_error(403, "HSS.0013", "insufficient permissions");
    }

    #[tokio::test]
    async fn x_project_id_header_different_from_the_path_is_forbidden() {
        let h = harness(SimConfig::default()).await;
        let url = format!(
            "{}/v5/{}/image/registries",
            h.running.base_url(),
            h.project_id
        );
        let answer = h
            .send(h.client.get(&url).header("X-Project-Id", "0123"))
            .await;
        answer.assert_huawei_error(403, "HSS.0010", "X-Project-Id");
        let answer = h
            .send(h.client.get(&url).header("X-Project-Id", &h.project_id))
            .await;
        assert_eq!(answer.status, 200);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_apig_0101_with_a_request_id() {
        let h = harness(SimConfig::default()).await;
        h.get("/v5/abc/image/registries/statistics")
            .await
            .assert_huawei_error(404, "APIG.0101", "does not exist");
        h.get("/")
            .await
            .assert_huawei_error(404, "APIG.0101", "does not exist");
        let url = format!(
            "{}/v5/{}/image/registries",
            h.running.base_url(),
            h.project_id
        );
        h.send(h.client.post(url))
            .await
            .assert_huawei_error(404, "APIG.0101", "does not exist");
        assert_eq!(h.simulator.request_count(), 0);
    }

    #[tokio::test]
    async fn inserted_raw_registries_are_returned_verbatim() {
        let h = harness(SimConfig::default()).await;
        h.simulator.set_registries_in_scope(&h.project_id, "0", 0);
        let raw = json!({"id": "raw-1", "registry_name": null, "registry_type": "Quay", "brand_new_field": [1, 2], "images_num": null});
        h.simulator.insert_registry(&h.project_id, "0", raw.clone());
        h.simulator.insert_registry(&h.project_id, "0", json!({}));
        let page = h.list("").await.json();
        assert_eq!(page, json!({"total_num": 2, "data_list": [raw, {}]}));
    }

    #[tokio::test]
    async fn signed_request_round_trip_succeeds_and_is_logged_as_valid() {
        let h = harness(with_credentials()).await;
        let answer = h
            .send(h.signed_list(
                "enterprise_project_id=all_granted_eps&limit=200&offset=0",
                SECRET_KEY,
                &now_sdk_date(0),
            ))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json()["total_num"], 75);
        let record = h.simulator.request_log().pop().unwrap();
        assert!(record.had_valid_signature);
        assert_eq!(
            (record.status, record.offset, record.limit),
            (200, Some(0), Some(200))
        );
        assert_eq!(
            record.enterprise_project_id.as_deref(),
            Some("all_granted_eps")
        );
        assert_eq!(record.request_id, answer.request_id_header);
    }

    #[tokio::test]
    async fn bad_signatures_are_rejected_with_apig_0301_and_distinct_messages() {
        let h = harness(with_credentials()).await;
        h.list("limit=10").await.assert_huawei_error(
            401,
            "APIG.0301",
            "Incorrect IAM authentication information: authorization not found",
        );

        let wrong_key = h
            .send(h.signed_list("limit=10", "wrong-secret", &now_sdk_date(0)))
            .await;
        wrong_key.assert_huawei_error(401, "APIG.0301", "verify aksk signature fail");
        assert!(!wrong_key.text.contains(SECRET_KEY));

        let stale = h
            .send(h.signed_list("limit=10", SECRET_KEY, &now_sdk_date(-16)))
            .await;
        stale.assert_huawei_error(401, "APIG.0301", "signature expired");

        // The signature covers limit=10, the URL carries limit=20.
        let base = h
            .signed_list("limit=10", SECRET_KEY, &now_sdk_date(0))
            .build()
            .unwrap();
        let mut tampered = base;
        tampered.url_mut().set_query(Some("limit=20"));
        let answer = h
            .send(reqwest::RequestBuilder::from_parts(
                h.client.clone(),
                tampered,
            ))
            .await;
        answer.assert_huawei_error(401, "APIG.0301", "verify aksk signature fail");

        let mut unknown_ak = h
            .signed_list("limit=10", SECRET_KEY, &now_sdk_date(0))
            .build()
            .unwrap();
        unknown_ak.headers_mut().insert(
            "authorization",
            "SDK-HMAC-SHA256 Access=NOPE, SignedHeaders=host;x-project-id;x-sdk-date, Signature=00"
                .parse()
                .unwrap(),
        );
        let answer = h
            .send(reqwest::RequestBuilder::from_parts(
                h.client.clone(),
                unknown_ak,
            ))
            .await;
        answer.assert_huawei_error(401, "APIG.0301", "ak NOPE not exist");

        assert_eq!(h.simulator.request_count(), 5);
        assert!(h
            .simulator
            .request_log()
            .iter()
            .all(|r| r.status == 401 && !r.had_valid_signature));
    }

    #[tokio::test]
    async fn admin_endpoints_report_the_estate_mutate_it_and_clear_faults() {
        let h = harness(SimConfig::default()).await;
        let estate = h.get("/sim/estate").await.json();
        assert_eq!(estate["registry_count"], 150);
        assert_eq!(estate["projects"][0]["project_id"], h.project_id);
        assert_eq!(estate["enterprise_project_ids"][0], "0");

        let url = format!("{}/sim/mutate", h.running.base_url());
        let answer = h
            .send(h.client.post(url).json(&Mutation {
                seed: 1,
                n_update: 2,
                n_delete: 3,
                n_add: 4,
            }))
            .await;
        assert_eq!(answer.status, 200);
        let summary = answer.json();
        assert_eq!(summary["deleted"].as_array().unwrap().len(), 3);
        assert_eq!(h.simulator.registry_count(), 151);

        h.simulator.add_fault(Fault::MaxPageItems(1));
        let cleared = h
            .send(
                h.client
                    .post(format!("{}/sim/faults/clear", h.running.base_url())),
            )
            .await;
        assert_eq!(cleared.status, 204);
        assert!(!cleared.request_id_header.is_empty());
        assert_eq!(h.list("").await.ids().len(), 10);
        assert_eq!(
            h.simulator.request_count(),
            1,
            "admin calls are not listregistry requests"
        );
    }

    #[test]
    fn query_validation_accepts_the_documented_bounds() {
        let pairs = |q: &str| decode_query_pairs(q);
        let query = ListRegistryQuery::from_pairs(&pairs(
            "offset=2000000&limit=200&registry_type=Harbor,%20Jfrog&registry_name=",
        ))
        .unwrap();
        assert_eq!((query.offset, query.limit), (2_000_000, 200));
        assert_eq!(
            query.registry_types,
            Some(vec!["Harbor".to_string(), "Jfrog".to_string()])
        );
        assert_eq!(query.registry_name, None, "an empty value counts as absent");
        assert_eq!(query.enterprise_project_id, "0");
        assert!(ListRegistryQuery::from_pairs(&pairs(&format!(
            "enterprise_project_id={}",
            "e".repeat(257)
        )))
        .is_err());
        assert!(ListRegistryQuery::from_pairs(&pairs("limit=10&offset=0")).is_ok());
    }

    fn token_config(tokens: &[&str]) -> SimConfig {
        SimConfig {
            accepted_tokens: tokens.iter().map(|t| t.to_string()).collect(),
            ..SimConfig::default()
        }
    }

    #[tokio::test]
    async fn quota_rejects_the_request_over_the_limit_with_retry_after_until_the_window_passes() {
        // Arrange
        let h = harness(token_config(&["token-a", "token-b"])).await;
        h.simulator.add_fault(Fault::Quota {
            max_requests: 3,
            window: Duration::from_millis(200),
            retry_after: true,
        });
        let project_id = h.project_id.clone();

        // Act
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(h.list_with_token(&project_id, "token-a", "").await.status);
        }
        let over = h.list_with_token(&project_id, "token-a", "").await;
        let other_user = h.list_with_token(&project_id, "token-b", "").await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let after_window = h.list_with_token(&project_id, "token-a", "").await;

        // Assert
        assert_eq!(statuses, [200, 200, 200]);
        over.assert_huawei_error(
            429,
            "APIG.0308",
            "The throttling threshold has been reached: policy user over ratelimit,limit:3,time:200 millisecond",
        );
        assert_eq!(over.headers["retry-after"], "1");
        assert_eq!(other_user.status, 200, "the quota is per user");
        assert_eq!(after_window.status, 200, "{}", after_window.text);
        assert_eq!(h.simulator.throttled_count(), 1);
        let log = h.simulator.request_log();
        assert_eq!(log[3].retry_after, Some(1));
        assert_eq!((log[3].status, log[3].auth.as_str()), (429, "token"));
    }

    #[tokio::test]
    async fn quota_rejected_requests_do_not_use_up_quota() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::Quota {
            max_requests: 2,
            window: Duration::from_millis(300),
            retry_after: false,
        });
        assert_eq!(h.list("").await.status, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(h.list("").await.status, 200);
        let rejected = h.list("").await;
        assert_eq!(rejected.status, 429);
        assert!(rejected.headers.get("retry-after").is_none());
        // The first request leaves the window; had the rejected one counted, this would still fail.
        tokio::time::sleep(Duration::from_millis(180)).await;
        assert_eq!(h.list("").await.status, 200);
    }

    #[tokio::test]
    async fn throttle_every_nth_answers_every_third_request_with_429_and_retry_after() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::ThrottleEveryNth {
            n: 3,
            retry_after_seconds: Some(2),
        });
        let mut statuses = Vec::new();
        for _ in 0..6 {
            let answer = h.list("").await;
            if answer.status == 429 {
                answer.assert_huawei_error(429, "APIG.0308", "limit:5,time:1 minute");
                assert_eq!(answer.headers["retry-after"], "2");
            }
            statuses.push(answer.status);
        }
        assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
        assert_eq!(h.simulator.throttled_count(), 2);
        assert_eq!(h.simulator.request_count(), 6);
    }

    #[tokio::test]
    async fn hang_never_answers_so_the_client_timeout_fires_and_shutdown_still_completes() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::Hang {
            project_id: Some(h.project_id.clone()),
            offset: Some(10),
            times: Some(1),
        });
        let url = format!(
            "{}/v5/{}/image/registries?offset=10",
            h.running.base_url(),
            h.project_id
        );
        let hung = h
            .client
            .get(&url)
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(hung.unwrap_err().is_timeout());
        assert_eq!(h.list("offset=0").await.status, 200, "other offsets answer");
        assert_eq!(
            h.list("offset=10").await.status,
            200,
            "the fault was used up"
        );
        let log = h.simulator.request_log();
        assert_eq!(
            log[0].status, 0,
            "a hung request is logged without a status"
        );

        // A second hung request must not hold graceful shutdown for an hour.
        h.simulator.add_fault(Fault::Hang {
            project_id: None,
            offset: None,
            times: None,
        });
        let client = h.client.clone();
        let pending = tokio::spawn(async move { client.get(url).send().await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        tokio::time::timeout(Duration::from_secs(5), h.running.shutdown())
            .await
            .expect("shutdown releases hung requests");
        let released = pending.await.unwrap().unwrap();
        assert_eq!(released.status().as_u16(), 504);
    }

    #[tokio::test]
    async fn forbidden_project_gets_hss_0013_until_faults_are_cleared() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::Forbidden {
            project_id: h.project_id.clone(),
        });
        h.list("")
            .await
            .assert_huawei_error(403, "HSS.0013", "Insufficient permissions");
        h.list("offset=10")
            .await
            .assert_huawei_error(403, "HSS.0013", "Insufficient permissions");
        let other = &h.simulator.project_ids()[1];
        assert_eq!(
            h.get(&format!("/v5/{other}/image/registries")).await.status,
            200
        );
        h.simulator.clear_faults();
        assert_eq!(h.list("").await.status, 200);
    }

    #[tokio::test]
    async fn drift_during_walk_makes_the_next_page_repeat_items_and_a_rewalk_is_consistent() {
        // Arrange: 25 registries in EP 0, pages of 10.
        let h = harness(SimConfig::default()).await;
        let before = h.simulator.registries(&h.project_id, Some("0"));
        h.simulator.add_fault(Fault::DriftDuringWalk {
            project_id: Some(h.project_id.clone()),
            after_requests: 1,
            n_insert: 3,
            n_delete: 1,
            times: Some(1),
        });

        // Act
        let first = h.list("offset=0&limit=10").await.ids();
        let second = h.list("offset=10&limit=10").await.ids();

        // Assert: the list shifted by 3 - 1 = 2 after the first page, so the second page starts with
        // items 8 and 9 of the first page again.
        let id = |r: &Value| r["id"].as_str().unwrap().to_string();
        let first_expected: Vec<String> = before[..10].iter().map(id).collect();
        assert_eq!(first, first_expected);
        assert_eq!(second[..2], first[8..10]);
        let after = h.simulator.registries(&h.project_id, Some("0"));
        assert_eq!(after.len(), 25 + 3 - 1);
        assert_eq!(
            after[3..],
            before[1..],
            "new items first, the first old one gone"
        );

        let mut rewalk = Vec::new();
        for offset in [0, 10, 20, 30] {
            rewalk.extend(h.list(&format!("offset={offset}&limit=10")).await.ids());
        }
        assert_eq!(rewalk, after.iter().map(id).collect::<Vec<_>>());
        assert!(
            h.simulator.faults().is_empty(),
            "the drift fault is used up"
        );
    }

    #[tokio::test]
    async fn server_error_fault_fails_every_nth_request_with_a_transient_status() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::ServerError {
            status: 503,
            every_nth: 2,
        });
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let answer = h.list("").await;
            if answer.status != 200 {
                answer.assert_huawei_error(503, "APIG.0201", "Backend unavailable");
            }
            statuses.push(answer.status);
        }
        assert_eq!(statuses, [200, 503, 200, 503]);
    }

    #[tokio::test]
    async fn truncated_body_is_the_first_half_of_the_real_page() {
        let h = harness(SimConfig::default()).await;
        let full = h.list("limit=50").await.text;
        h.simulator
            .add_fault(Fault::truncated_body(None, Some(0), Some(1)));
        let truncated = h.list("limit=50").await;
        assert_eq!(truncated.status, 200);
        assert!(full.starts_with(&truncated.text));
        assert!(truncated.text.len() < full.len());
        assert!(serde_json::from_str::<Value>(&truncated.text).is_err());
    }

    #[tokio::test]
    async fn latency_fault_delays_each_request_by_at_least_min() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::Latency {
            min: Duration::from_millis(120),
            max: Duration::from_millis(150),
        });
        let started = Instant::now();
        assert_eq!(h.list("").await.status, 200);
        assert_eq!(h.get("/v1.0/enterprise-projects").await.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(240));
    }

    #[tokio::test]
    async fn faults_posted_as_json_to_the_admin_route_take_effect_and_are_logged_as_admin() {
        let h = harness(SimConfig::default()).await;
        let url = format!("{}/sim/faults", h.running.base_url());
        let added = h
            .send(h.client.post(&url).body(
                r#"{"kind":"quota","max_requests":1,"window_seconds":60,"retry_after":true}"#,
            ))
            .await;
        assert_eq!(added.status, 204, "{}", added.text);
        assert_eq!(h.list("").await.status, 200);
        let throttled = h.list("").await;
        throttled.assert_huawei_error(429, "APIG.0308", "limit:1,time:1 minute");
        let retry_after: u32 = throttled.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((59..=60).contains(&retry_after), "{retry_after}");

        let listed = h.get("/sim/faults").await.json();
        assert!(listed[0].as_str().unwrap().starts_with("Quota"));
        for bad in [
            r#"{"kind":"no_such_fault"}"#,
            r#"{"kind":"quota","max_requests":1,"window_seconds":0}"#,
            r#"{"kind":"server_error","status":1000,"every_nth":1}"#,
        ] {
            let answer = h.send(h.client.post(&url).body(bad)).await;
            assert_eq!(answer.status, 400, "{bad}");
        }
        let drift = h
            .send(
                h.client.post(&url).body(
                    r#"{"kind":"drift_during_walk","after_requests":2,"n_insert":1,"times":1}"#,
                ),
            )
            .await;
        assert_eq!(drift.status, 204);

        let log = h.simulator.request_log();
        let apis: Vec<&str> = log.iter().map(|r| r.api.as_str()).collect();
        assert_eq!(
            apis,
            [
                "Admin",
                "ListRegistry",
                "ListRegistry",
                "Admin",
                "Admin",
                "Admin",
                "Admin",
                "Admin"
            ]
        );
        assert_eq!(h.simulator.request_count(), 2);
    }

    #[test]
    fn every_fault_spec_kind_converts_to_the_fault_it_names() {
        let parse = |text: &str| {
            serde_json::from_str::<FaultSpec>(text)
                .unwrap()
                .into_fault()
                .unwrap()
        };
        assert!(matches!(
            parse(r#"{"kind":"truncated_body","times":2}"#),
            Fault::MalformedJson {
                times: Some(2),
                project_id: None,
                offset: None
            }
        ));
        assert!(matches!(
            parse(r#"{"kind":"rate_limited"}"#),
            Fault::FailPage {
                status: 429,
                times: None,
                ..
            }
        ));
        assert!(matches!(
            parse(r#"{"kind":"latency","min_ms":5,"max_ms":9}"#),
            Fault::Latency { min, max } if min == Duration::from_millis(5) && max == Duration::from_millis(9)
        ));
        assert!(matches!(
            parse(r#"{"kind":"quota","max_requests":5,"window_seconds":0.5}"#),
            Fault::Quota { max_requests: 5, window, retry_after: false } if window == Duration::from_millis(500)
        ));
        assert!(matches!(
            parse(r#"{"kind":"hang","offset":200}"#),
            Fault::Hang {
                offset: Some(200),
                ..
            }
        ));
        assert!(matches!(
            parse(r#"{"kind":"forbidden","project_id":"p"}"#),
            Fault::Forbidden { project_id } if project_id == "p"
        ));
        assert!(matches!(
            parse(r#"{"kind":"throttle_every_nth","n":4}"#),
            Fault::ThrottleEveryNth {
                n: 4,
                retry_after_seconds: None
            }
        ));
        assert!(matches!(
            parse(r#"{"kind":"max_page_items","max_items":3}"#),
            Fault::MaxPageItems(3)
        ));
        assert!(matches!(
            parse(r#"{"kind":"raw_page","offset":0,"body":"{\"data_list\": null}","times":1}"#),
            Fault::RawPage { offset: Some(0), body, times: Some(1), project_id: None } if body == r#"{"data_list": null}"#
        ));
        assert!(matches!(
            parse(r#"{"kind":"omit_total_num","project_id":"p"}"#),
            Fault::OmitTotalNum { project_id: Some(p), offset: None, times: None } if p == "p"
        ));
    }

    #[tokio::test]
    async fn raw_page_fault_answers_200_with_exactly_the_given_body_at_its_offset() {
        let h = harness(SimConfig::default()).await;
        let bodies = [
            "{}",
            r#"{"data_list": null}"#,
            r#"{"error_code":"HSS.1001","error_msg":"internal"}"#,
            r#"{"data_list":[{"id":"a"}]}"#,
            r#"{"total_num":1,"data_list":{"id":"a"}}"#,
            r#"{"total_num":1,"data_list":[{"registry_name":"no id"}]}"#,
        ];
        for body in bodies {
            h.simulator
                .add_fault(Fault::raw_page(None, Some(10), body, Some(1)));
            assert_eq!(h.list("offset=0").await.json()["total_num"], 25);
            let odd = h.list("offset=10").await;
            assert_eq!((odd.status, odd.text.as_str()), (200, body));
            assert_eq!(
                odd.headers["content-type"],
                "application/json;charset=UTF-8"
            );
            assert!(!odd.request_id_header.is_empty());
            assert_eq!(h.list("offset=10").await.json()["total_num"], 25, "used up");
        }
        let other = h.simulator.project_ids()[1].clone();
        h.simulator
            .add_fault(Fault::raw_page(Some(other.clone()), None, "{}", None));
        assert_eq!(h.list("").await.json()["total_num"], 25);
        for _ in 0..3 {
            let answer = h.get(&format!("/v5/{other}/image/registries")).await;
            assert_eq!(answer.text, "{}", "forever");
        }
    }

    #[tokio::test]
    async fn fail_enterprise_project_fault_fails_one_scope_while_the_others_answer() {
        let h = harness(SimConfig::default()).await;
        let ep = h.simulator.enterprise_project_ids()[1].clone();
        let url = format!("{}/sim/faults", h.running.base_url());
        let spec = json!({"kind":"fail_enterprise_project","project_id":h.project_id,"enterprise_project_id":ep,
            "status":500,"error_code":"HSS.1001","error_msg":"injected","times":2});
        assert_eq!(h.send(h.client.post(&url).json(&spec)).await.status, 204);

        for _ in 0..2 {
            h.list(&format!("enterprise_project_id={ep}&offset=10"))
                .await
                .assert_huawei_error(500, "HSS.1001", "injected");
        }
        assert_eq!(
            h.list(&format!("enterprise_project_id={ep}")).await.status,
            200,
            "used up"
        );

        h.simulator.add_fault(Fault::FailEnterpriseProject {
            project_id: None,
            enterprise_project_id: "0".into(),
            status: 503,
            error_code: "APIG.0201".into(),
            error_msg: "Backend unavailable".into(),
            times: None,
        });
        assert_eq!(
            h.list("").await.status,
            503,
            "the default enterprise project is \"0\""
        );
        assert_eq!(
            h.list(&format!("enterprise_project_id={ep}")).await.status,
            200
        );
        assert_eq!(
            h.list("enterprise_project_id=all_granted_eps").await.status,
            200
        );
    }

    #[tokio::test]
    async fn omit_total_num_fault_serves_the_real_page_without_total_num() {
        let h = harness(SimConfig::default()).await;
        h.simulator.add_fault(Fault::rate_limited(None, Some(1)));
        h.simulator.add_fault(Fault::OmitTotalNum {
            project_id: Some(h.project_id.clone()),
            offset: Some(0),
            times: Some(1),
        });
        assert_eq!(
            h.list("").await.status,
            429,
            "a throttled request uses none of it"
        );
        let page = h.list("limit=20").await.json();
        assert!(page.get("total_num").is_none(), "{page}");
        let expected: Vec<Value> = h.simulator.registries(&h.project_id, Some("0"))[..20].to_vec();
        assert_eq!(page["data_list"].as_array().unwrap(), &expected);
        assert_eq!(h.list("limit=20").await.json()["total_num"], 25, "used up");
        assert!(h.simulator.faults().is_empty());
    }

    #[tokio::test]
    async fn estate_changes_posted_to_the_mutate_route_apply_and_bad_ones_are_rejected() {
        let h = harness(SimConfig::default()).await;
        let url = format!("{}/sim/mutate", h.running.base_url());
        let post = |body: Value| h.send(h.client.post(&url).json(&body));
        let id = h.simulator.registries(&h.project_id, Some("0"))[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let ep = h.simulator.enterprise_project_ids()[1].clone();
        let other = h.simulator.project_ids()[1].clone();

        let moved = post(
            json!({"kind":"move","id":id,"project_id":h.project_id,"enterprise_project_id":ep}),
        )
        .await;
        assert_eq!((moved.status, moved.json()), (200, json!({"id": id})));
        assert_eq!(
            h.simulator.locate_registry(&id),
            Some((h.project_id.clone(), ep))
        );
        let moved =
            post(json!({"kind":"move","id":id,"project_id":other,"enterprise_project_id":"0"}))
                .await;
        assert_eq!(moved.status, 200);
        assert_eq!(
            h.simulator.locate_registry(&id),
            Some((other.clone(), "0".to_string()))
        );

        assert_eq!(post(json!({"kind":"delete","id":id})).await.status, 200);
        assert_eq!(h.simulator.locate_registry(&id), None);
        assert_eq!(
            h.simulator.deleted_registry_ids(),
            std::slice::from_ref(&id)
        );
        assert_eq!(post(json!({"kind":"restore","id":id})).await.status, 200);
        assert_eq!(
            h.simulator.locate_registry(&id),
            Some((other, "0".to_string()))
        );

        let added = post(
            json!({"kind":"add","project_id":h.project_id,"enterprise_project_id":"0","seed":3}),
        )
        .await;
        let new_id = added.json()["id"].as_str().unwrap().to_string();
        assert_eq!(h.simulator.locate_registry(&new_id).unwrap().1, "0");
        assert_eq!(
            post(json!({"kind":"update","id":new_id,"seed":4}))
                .await
                .status,
            200
        );

        for (bad, reason) in [
            (
                json!({"kind":"update","id":"nope","seed":1}),
                "no registry nope",
            ),
            (
                json!({"kind":"restore","id":new_id}),
                "is in the simulated estate already",
            ),
            (json!({"kind":"restore","id":"nope"}), "was never deleted"),
            (
                json!({"kind":"add","project_id":"nope","enterprise_project_id":"0","seed":1}),
                "no project nope",
            ),
            (json!({"kind":"teleport"}), "unknown variant"),
        ] {
            let answer = post(bad.clone()).await;
            assert_eq!(answer.status, 400, "{bad}");
            assert!(
                answer.json()["error"].as_str().unwrap().contains(reason),
                "{}",
                answer.text
            );
        }
        assert_eq!(h.simulator.registry_count(), 151);
    }

    #[test]
    fn throttling_message_names_the_window_in_apig_units() {
        assert!(throttling_message(5, Duration::from_secs(60)).ends_with("limit:5,time:1 minute"));
        assert!(throttling_message(2, Duration::from_secs(1)).ends_with("limit:2,time:1 second"));
        assert!(throttling_message(3, Duration::from_millis(200))
            .ends_with("limit:3,time:200 millisecond"));
    }
}

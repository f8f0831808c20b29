//! HTTP layer of the simulator: the ListRegistry route, the `/sim/` admin routes and Huawei error bodies.
//!
//! A ListRegistry request is answered in the order a real request meets Huawei's layers:
//! 1. APIG authentication (only when credentials are configured): 401 `APIG.0301`.
//! 2. The `X-Project-Id` header, when present, must equal the path's project id: 403 `HSS.0010`.
//! 3. The project must exist: 403 `HSS.0013`. Real HSS answers a project outside the caller's account
//!    with an authorization failure rather than "not found", and HUAWEI-API.md §5 lists `HSS.0013` as
//!    "insufficient permissions", so that is the closest documented code.
//! 4. Query parameters are validated against the ranges of HUAWEI-API.md §0: 400 `HSS.0001`.
//! 5. Injected [`Fault`]s are applied.
//! 6. The page is cut from the matching registries.
//!
//! Every response carries an `X-Request-Id` header; when the body has a `request_id`, they are equal.
//! Unknown routes get APIG's 404 `APIG.0101` body. The admin routes under `/sim/` are unauthenticated and
//! are not part of the Huawei API surface; they are never counted as ListRegistry requests.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Value};

use super::verify::{self, ReceivedRequest};
use super::{Fault, Mutation, RequestRecord, Simulator, State as SimState, REQUEST_LOG_CAPACITY};

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
    Router::new()
        .route(
            LIST_REGISTRY_ROUTE,
            get(list_registry).fallback(api_not_found),
        )
        .route("/sim/estate", get(admin_estate))
        .route("/sim/mutate", post(admin_mutate))
        .route("/sim/faults/clear", post(admin_clear_faults))
        .route("/sim/requests", get(admin_requests))
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
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        status: 0,
        project_id: project_id.clone(),
        offset: sent_integer("offset"),
        limit: sent_integer("limit"),
        enterprise_project_id: first_value(&query_pairs, "enterprise_project_id")
            .map(str::to_string),
        had_valid_signature: false,
        request_id: request_id.clone(),
    };

    let mut state = simulator.lock();
    state.request_count += 1;
    let response = answer_list_registry(&mut state, &request, &mut record);
    record.status = response.status().as_u16();
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
    if state.request_log.len() >= REQUEST_LOG_CAPACITY {
        state.request_log.pop_front();
    }
    state.request_log.push_back(record);
    response
}

fn answer_list_registry(
    state: &mut SimState,
    request: &ListRegistryRequest<'_>,
    record: &mut RequestRecord,
) -> Response {
    let request_id = request.request_id;
    if let Some(credentials) = &state.config.credentials {
        let received = ReceivedRequest {
            method: request.method.as_str(),
            path: request.uri.path(),
            query: request.uri.query(),
            headers: request.headers,
            body: request.body,
        };
        match verify::verify_request(
            &received,
            credentials,
            Utc::now(),
            state.config.max_clock_skew,
        ) {
            Ok(_) => record.had_valid_signature = true,
            Err(error) => {
                // The error never contains the secret key or the signature, so it is safe to log.
                tracing::warn!(project_id = %request.project_id, %error, "simulated hss rejected signature: {error}");
                return huawei_error(
                    StatusCode::UNAUTHORIZED,
                    "APIG.0301",
                    &error.apig_error_msg(),
                    request_id,
                );
            }
        }
    }

    if let Some(header_project_id) = request.headers.get("x-project-id") {
        if header_project_id.as_bytes() != request.project_id.as_bytes() {
            return huawei_error(
                StatusCode::FORBIDDEN,
                "HSS.0010",
                "access denied: the X-Project-Id header does not match the project id in the path",
                request_id,
            );
        }
    }

    let Some(project) = state.estate.project(request.project_id) else {
        return huawei_error(
            StatusCode::FORBIDDEN,
            "HSS.0013",
            &format!(
                "insufficient permissions: project {} does not exist or is not authorized",
                request.project_id
            ),
            request_id,
        );
    };

    let query = match ListRegistryQuery::from_pairs(request.query_pairs) {
        Ok(query) => query,
        Err(error_msg) => {
            return huawei_error(StatusCode::BAD_REQUEST, "HSS.0001", &error_msg, request_id)
        }
    };

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
    let true_total = matching.len();

    let mut max_page_items = usize::MAX;
    let mut reported_total = true_total as i64;
    let mut truncate_body = false;
    let mut failure = None;
    let mut exhausted = None;
    let targets = |project: &Option<String>, offset: &Option<u32>| {
        selects_project(project, request.project_id) && offset.map_or(true, |o| o == query.offset)
    };
    for (index, fault) in state.faults.iter_mut().enumerate() {
        match fault {
            Fault::MaxPageItems(n) => max_page_items = max_page_items.min(*n),
            Fault::WrongTotalNum {
                project_id,
                total_num,
            } => {
                if selects_project(project_id, request.project_id) {
                    reported_total = *total_num;
                }
            }
            Fault::FailPage {
                project_id,
                offset,
                status,
                error_code,
                error_msg,
                times,
            } if failure.is_none() && !truncate_body && targets(project_id, offset) => {
                failure = Some((*status, error_code.clone(), error_msg.clone()));
                if consume(times) {
                    exhausted = Some(index);
                }
            }
            Fault::MalformedJson {
                project_id,
                offset,
                times,
            } if failure.is_none() && !truncate_body && targets(project_id, offset) => {
                truncate_body = true;
                if consume(times) {
                    exhausted = Some(index);
                }
            }
            Fault::FailPage { .. } | Fault::MalformedJson { .. } => {}
        }
    }
    if let Some(index) = exhausted {
        state.faults.remove(index);
    }
    if let Some((status, error_code, error_msg)) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return huawei_error(status, &error_code, &error_msg, request_id);
    }

    let start = (query.offset as usize).min(matching.len());
    let page_size = (query.limit as usize).min(max_page_items);
    let end = start.saturating_add(page_size).min(matching.len());
    let data_list: Vec<Value> = matching.drain(start..end).cloned().collect();
    let body = json!({"total_num": reported_total, "data_list": data_list});
    if truncate_body {
        let text = body.to_string();
        let mut cut = (text.len() / 2).max(1);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        return raw_json_response(StatusCode::OK, request_id, text[..cut].to_string());
    }
    json_response(StatusCode::OK, request_id, &body)
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
                "registry_count": project.scopes.iter().map(|s| s.registries.len()).sum::<usize>(),
                "scopes": scopes,
            })
        })
        .collect();
    let body = json!({
        "region": state.config.region,
        "registry_count": state.estate.registry_count(),
        "request_count": state.request_count,
        "n_faults": state.faults.len(),
        "enterprise_project_ids": state.estate.enterprise_project_ids,
        "projects": projects,
    });
    Json(body).into_response()
}

async fn admin_mutate(
    State(simulator): State<Simulator>,
    Json(mutation): Json<Mutation>,
) -> Response {
    Json(simulator.mutate(&mutation)).into_response()
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

fn json_response(status: StatusCode, request_id: &str, body: &Value) -> Response {
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
    use crate::sim::{Mutation, RunningSimulator, SimConfig, SimCredentials};
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};

    const ACCESS_KEY: &str = "HPUATESTACCESSKEY000";
    const SECRET_KEY: &str = "test+secret/key=with&chars";

    struct Harness {
        simulator: Simulator,
        running: RunningSimulator,
        client: reqwest::Client,
        project_id: String,
    }

    struct Answer {
        status: u16,
        request_id_header: String,
        text: String,
    }

    impl Answer {
        fn json(&self) -> Value {
            serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
        }

        fn ids(&self) -> Vec<String> {
            self.json()["data_list"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        }

        #[track_caller]
        fn assert_huawei_error(&self, status: u16, error_code: &str, error_msg_contains: &str) {
            assert_eq!(self.status, status, "{}", self.text);
            let body = self.json();
            assert_eq!(body["error_code"], error_code, "{}", self.text);
            assert!(
                body["error_msg"]
                    .as_str()
                    .unwrap()
                    .contains(error_msg_contains),
                "{}",
                self.text
            );
            let request_id = body["request_id"].as_str().unwrap();
            assert_eq!(request_id.len(), 32);
            assert!(request_id.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(request_id, self.request_id_header);
        }
    }

    async fn harness(config: SimConfig) -> Harness {
        let simulator = Simulator::new(config);
        let running = simulator.spawn_on_localhost().await.unwrap();
        let project_id = simulator.project_ids()[0].clone();
        Harness {
            simulator,
            running,
            client: reqwest::Client::new(),
            project_id,
        }
    }

    impl Harness {
        async fn get(&self, path_and_query: &str) -> Answer {
            self.send(
                self.client
                    .get(format!("{}{path_and_query}", self.running.base_url())),
            )
            .await
        }

        async fn list(&self, query: &str) -> Answer {
            self.get(&format!("/v5/{}/image/registries?{query}", self.project_id))
                .await
        }

        async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let request_id_header = response
                .headers()
                .get(REQUEST_ID_HEADER)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            Answer {
                status,
                request_id_header,
                text: response.text().await.unwrap(),
            }
        }

        /// A ListRegistry request signed the way the Python SDK signs it (host, x-project-id, x-sdk-date),
        /// with a small signer written for this test only. `query` must already be canonical (sorted,
        /// encoded), which is also what the Python SDK sends.
        fn signed_list(
            &self,
            query: &str,
            secret_key: &str,
            sdk_date: &str,
        ) -> reqwest::RequestBuilder {
            let path = format!("/v5/{}/image/registries", self.project_id);
            let host = self.running.address().to_string();
            let canonical = format!(
                "GET\n{path}/\n{query}\nhost:{host}\nx-project-id:{}\nx-sdk-date:{sdk_date}\n\nhost;x-project-id;x-sdk-date\n{}",
                self.project_id,
                hex::encode(Sha256::digest(b"")),
            );
            let to_sign = format!(
                "SDK-HMAC-SHA256\n{sdk_date}\n{}",
                hex::encode(Sha256::digest(canonical.as_bytes()))
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes()).unwrap();
            mac.update(to_sign.as_bytes());
            let signature = hex::encode(mac.finalize().into_bytes());
            self.client
                .get(format!("{}{path}?{query}", self.running.base_url()))
                .header("X-Project-Id", &self.project_id)
                .header("X-Sdk-Date", sdk_date)
                .header(
                    "Authorization",
                    format!("SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders=host;x-project-id;x-sdk-date, Signature={signature}"),
                )
        }
    }

    fn now_sdk_date(offset_minutes: i64) -> String {
        (Utc::now() + chrono::Duration::minutes(offset_minutes))
            .format("%Y%m%dT%H%M%SZ")
            .to_string()
    }

    fn with_credentials() -> SimConfig {
        SimConfig {
            credentials: Some(SimCredentials {
                access_key: ACCESS_KEY.into(),
                secret_key: SECRET_KEY.into(),
            }),
            ..SimConfig::default()
        }
    }

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
}

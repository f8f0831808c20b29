//! The simulated IAM: password tokens (`POST /v3/auth/tokens`), project listing (`GET /v3/projects`)
//! and the caller's account (`GET /v3/auth/domains`), following docs/huawei-api.md §4 and §6.
//!
//! IAM answers errors in its own shape, `{"error":{"code":401,"title":"Unauthorized","message":..}}`
//! (the Go and Python SDKs read `error.code` / `error.message` one level down, §5).

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{json, Value};

use super::account::OBS_DEFAULT_PROJECT_NAME;
use super::auth::{AuthFailure, IssuedToken};
use super::global::{base_record, serve_global, GlobalRequest};
use super::http::{decode_query_pairs, iam_error, json_response, new_request_id};
use super::{
    Simulator, State as SimState, API_CREATE_TOKEN, API_LIST_AUTH_DOMAINS, API_LIST_PROJECTS,
};

/// Path of IAM KeystoneCreateUserTokenByPassword.
pub const CREATE_TOKEN_ROUTE: &str = "/v3/auth/tokens";

/// Path of IAM KeystoneListProjects.
pub const LIST_PROJECTS_ROUTE: &str = "/v3/projects";

/// IAM `KeystoneListAuthDomains`: the account the caller belongs to. Huawei's SDKs call it to
/// learn the domain id that global services want in `X-Domain-Id` when only AK/SK is given.
pub const LIST_AUTH_DOMAINS_ROUTE: &str = "/v3/auth/domains";

/// Response header carrying a newly issued token.
pub const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";

/// `per_page` range of KeystoneListProjects.
pub const PER_PAGE_RANGE: std::ops::RangeInclusive<i64> = 1..=5000;

/// Length of the random part of an issued token. Real tokens are PKI blobs of several kilobytes; a
/// couple of hundred characters is enough to be opaque and to catch a client that truncates them.
const TOKEN_RANDOM_CHARS: usize = 200;

/// The IAM message for a wrong domain, user name or password.
pub const WRONG_PASSWORD_MESSAGE: &str = "The username or password is wrong.";

/// `POST /v3/auth/tokens`: issue a password token, see the module docs.
pub(crate) async fn create_token(
    State(simulator): State<Simulator>,
    request: GlobalRequest,
) -> Response {
    let answer_at = simulator.answer_at();
    let request_id = new_request_id();
    let response = {
        let mut state = simulator.lock();
        let response = answer_create_token(&mut state, &request.uri, &request.body, &request_id);
        let record = base_record(API_CREATE_TOKEN, &request, &request_id, &response);
        state.log_request(record);
        response
    };
    tokio::time::sleep_until(answer_at).await;
    response
}

/// `GET /v3/projects`: KeystoneListProjects over the estate's projects plus system entries.
pub(crate) async fn list_projects(
    State(simulator): State<Simulator>,
    request: GlobalRequest,
) -> Response {
    serve_global(
        &simulator,
        API_LIST_PROJECTS,
        request,
        iam_unauthorized,
        |state, request, request_id| {
            answer_list_projects(state, &request.uri, &request.headers, request_id)
        },
    )
    .await
}

/// `GET /v3/auth/domains`: KeystoneListAuthDomains, the caller's own account.
pub(crate) async fn list_auth_domains(
    State(simulator): State<Simulator>,
    request: GlobalRequest,
) -> Response {
    serve_global(
        &simulator,
        API_LIST_AUTH_DOMAINS,
        request,
        iam_unauthorized,
        |state, request, request_id| {
            let account = &state.account;
            let host = request
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("iam.myhuaweicloud.com");
            let body = json!({
                "domains": [{
                    "id": account.domain_id,
                    "name": account.domain_name,
                    "enabled": true,
                    "description": "",
                    "links": {"self": format!("http://{host}/v3/domains/{}", account.domain_id)},
                }],
                "links": {"self": format!("http://{host}{LIST_AUTH_DOMAINS_ROUTE}")},
            });
            json_response(StatusCode::OK, request_id, &body)
        },
    )
    .await
}

/// IAM's answer to a request it cannot authenticate.
fn iam_unauthorized(_failure: &AuthFailure, request_id: &str) -> Response {
    iam_error(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
        request_id,
    )
}

/// Check a password login and issue a token, see the module docs.
fn answer_create_token(state: &mut SimState, uri: &Uri, body: &[u8], request_id: &str) -> Response {
    let bad_request = |message: &str| iam_error(StatusCode::BAD_REQUEST, message, request_id);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request("The request body is not valid JSON.");
    };
    let auth = &request["auth"];
    let methods = auth["identity"]["methods"].as_array();
    if !methods.is_some_and(|m| m.iter().any(|v| v == "password")) {
        return bad_request("Only the password authentication method is supported here.");
    }
    let user = &auth["identity"]["password"]["user"];
    let (Some(user_name), Some(password)) = (user["name"].as_str(), user["password"].as_str())
    else {
        return bad_request("Mandatory parameters are not specified.");
    };
    let domain = &user["domain"];
    let account = &state.account;
    let domain_matches = domain["name"].as_str() == Some(account.domain_name.as_str())
        || domain["id"].as_str() == Some(account.domain_id.as_str());
    let user_matches = state.config.iam_user.as_ref().is_some_and(|expected| {
        domain_matches && expected.user == user_name && expected.password == password
    });
    if !user_matches {
        // The real IAM does not say which of domain, user and password was wrong.
        return iam_error(StatusCode::UNAUTHORIZED, WRONG_PASSWORD_MESSAGE, request_id);
    }

    let scope = &auth["scope"];
    let project = if let Some(project) = scope.get("project") {
        let found = match (project["id"].as_str(), project["name"].as_str()) {
            (Some(id), _) => state.estate.project(id),
            // By name IAM finds the project called so: the region's main project for a region id.
            (None, Some(name)) => state.estate.projects.iter().find(|p| p.name == name),
            (None, None) => return bad_request("Mandatory parameters are not specified."),
        };
        match found {
            Some(project) => Some((project.project_id.clone(), project.name.clone())),
            None => {
                return iam_error(
                    StatusCode::BAD_REQUEST,
                    "The project does not exist or is not authorized.",
                    request_id,
                )
            }
        }
    } else if scope.get("domain").is_some() {
        None
    } else {
        return bad_request("Mandatory parameters are not specified: auth.scope.");
    };

    let issued_at = Utc::now();
    let ttl = chrono::Duration::from_std(state.token_ttl).unwrap_or(chrono::Duration::MAX);
    let expires_at = issued_at
        .checked_add_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let token = new_token();
    state.tokens.insert(
        token.clone(),
        IssuedToken {
            project_id: project.as_ref().map(|(id, _)| id.clone()),
            issued_at,
            expires_at,
        },
    );
    state.tokens_issued += 1;

    let account = &state.account;
    let domain_json = json!({"id": account.domain_id, "name": account.domain_name});
    let user_name = user_name.to_string();
    let mut token_body = json!({
        "expires_at": iam_time(expires_at),
        "issued_at": iam_time(issued_at),
        "methods": ["password"],
        "user": {
            "id": account.user_id,
            "name": user_name,
            "domain": domain_json,
            "password_expires_at": "",
        },
        "roles": [
            {"id": "0", "name": "op_gated_hss"},
            {"id": "7d5b1b7fa1a6425db9ad8c6b3bd7e9e4", "name": "te_admin"},
        ],
    });
    match &project {
        Some((id, name)) => {
            token_body["project"] = json!({"id": id, "name": name, "domain": domain_json});
        }
        None => token_body["domain"] = domain_json.clone(),
    }
    let nocatalog = decode_query_pairs(uri.query().unwrap_or(""))
        .iter()
        .any(|(k, v)| k == "nocatalog" && v == "true");
    if !nocatalog {
        token_body["catalog"] = catalog(&state.estate.regions);
    }
    let mut response = json_response(
        StatusCode::CREATED,
        request_id,
        &json!({"token": token_body}),
    );
    if let Ok(value) = HeaderValue::from_str(&token) {
        response.headers_mut().insert(SUBJECT_TOKEN_HEADER, value);
    }
    tracing::info!(
        project_id = ?project.as_ref().map(|(id, _)| id),
        "simulated iam issued a token"
    );
    response
}

/// KeystoneListProjects: filters, optional paging with links.
fn answer_list_projects(
    state: &SimState,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
) -> Response {
    let bad_request = |message: &str| iam_error(StatusCode::BAD_REQUEST, message, request_id);
    let pairs = decode_query_pairs(uri.query().unwrap_or(""));
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let bool_param = |name: &str| -> Result<Option<bool>, String> {
        match get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(format!(
                "Invalid input for field '{name}': must be true or false."
            )),
        }
    };
    let (enabled, is_domain) = match (bool_param("enabled"), bool_param("is_domain")) {
        (Ok(enabled), Ok(is_domain)) => (enabled, is_domain),
        (Err(message), _) | (_, Err(message)) => return bad_request(&message),
    };
    let paging = match (get("page"), get("per_page")) {
        (None, None) => None,
        (Some(page), Some(per_page)) => {
            let page = page.parse::<i64>().ok().filter(|p| *p >= 1);
            let per_page = per_page
                .parse::<i64>()
                .ok()
                .filter(|p| PER_PAGE_RANGE.contains(p));
            match (page, per_page) {
                (Some(page), Some(per_page)) => Some((page as usize, per_page as usize)),
                (None, _) => {
                    return bad_request("Invalid input for field 'page': must be at least 1.")
                }
                (_, None) => {
                    return bad_request(
                        "Invalid input for field 'per_page': must be between 1 and 5000.",
                    )
                }
            }
        }
        _ => return bad_request("The parameters 'page' and 'per_page' must be given together."),
    };

    let matching: Vec<Value> = project_entries(state)
        .into_iter()
        .filter(|p| get("name").is_none_or(|n| p["name"] == n))
        .filter(|p| get("parent_id").is_none_or(|n| p["parent_id"] == n))
        .filter(|p| get("domain_id").is_none_or(|n| p["domain_id"] == n))
        .filter(|p| enabled.is_none_or(|e| p["enabled"] == e))
        .filter(|_| is_domain.is_none_or(|d| !d))
        .collect();

    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("iam.myhuaweicloud.com");
    let base = format!("http://{host}{LIST_PROJECTS_ROUTE}");
    let filters: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "page" && k != "per_page")
        .cloned()
        .collect();
    let link = |page_and_size: Option<(usize, usize)>| {
        let mut query = filters.clone();
        if let Some((page, per_page)) = page_and_size {
            query.push(("page".into(), page.to_string()));
            query.push(("per_page".into(), per_page.to_string()));
        }
        let text = query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if text.is_empty() {
            base.clone()
        } else {
            format!("{base}?{text}")
        }
    };
    let (projects, previous, next) = match paging {
        None => (matching, Value::Null, Value::Null),
        Some((page, per_page)) => {
            let start = (page - 1).saturating_mul(per_page).min(matching.len());
            let end = start.saturating_add(per_page).min(matching.len());
            let has_next = end < matching.len();
            let projects = matching[start..end].to_vec();
            let previous = if page > 1 {
                json!(link(Some((page - 1, per_page))))
            } else {
                Value::Null
            };
            let next = if has_next {
                json!(link(Some((page + 1, per_page))))
            } else {
                Value::Null
            };
            (projects, previous, next)
        }
    };
    let self_link = link(paging);
    json_response(
        StatusCode::OK,
        request_id,
        &json!({
            "links": {"self": self_link, "previous": previous, "next": next},
            "projects": projects,
        }),
    )
}

/// Every project IAM lists, sorted by id as a database without `ORDER BY` on a primary key tends to
/// return them, so main projects, sub-projects and system entries come interleaved.
fn project_entries(state: &SimState) -> Vec<Value> {
    let account = &state.account;
    let estate = &state.estate;
    let entry = |id: &str, name: &str, parent_id: &str, enabled: bool, description: &str| {
        json!({
            "id": id,
            "name": name,
            "domain_id": account.domain_id,
            "parent_id": parent_id,
            "enabled": enabled,
            "is_domain": false,
            "description": description,
            "links": {"self": format!("https://iam.myhuaweicloud.com/v3/projects/{id}")},
        })
    };
    let mut entries: Vec<(String, Value)> = estate
        .projects
        .iter()
        .map(|project| {
            let main = estate
                .main_project(&project.region)
                .expect("a project's region has a main project");
            let value = if main.project_id == project.project_id {
                entry(
                    &project.project_id,
                    &project.name,
                    &account.domain_id,
                    true,
                    "",
                )
            } else {
                entry(
                    &project.project_id,
                    &project.name,
                    &main.project_id,
                    true,
                    &format!("sub-project of {}", project.region),
                )
            };
            (project.project_id.clone(), value)
        })
        .collect();
    entries.push((
        account.obs_project_id.clone(),
        entry(
            &account.obs_project_id,
            OBS_DEFAULT_PROJECT_NAME,
            &account.domain_id,
            true,
            "",
        ),
    ));
    if state.config.include_disabled_project {
        if let Some(main) = estate.projects.first() {
            entries.push((
                account.disabled_project_id.clone(),
                entry(
                    &account.disabled_project_id,
                    &format!("{}_retired", main.region),
                    &main.project_id,
                    false,
                    "retired sub-project",
                ),
            ));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(_, value)| value).collect()
}

/// A small service catalog, as IAM returns without `nocatalog=true`.
fn catalog(regions: &[String]) -> Value {
    let endpoints = |service: &str, path: &str| -> Vec<Value> {
        regions
            .iter()
            .map(|region| {
                json!({
                    "id": format!("{service}-{region}"),
                    "interface": "public",
                    "region": region,
                    "region_id": region,
                    "url": format!("https://{service}.{region}.myhuaweicloud.com{path}"),
                })
            })
            .collect()
    };
    json!([
        {"id": "hss", "name": "hss", "type": "hss", "endpoints": endpoints("hss", "/v5/$(tenant_id)s")},
        {"id": "iam", "name": "iam", "type": "identity", "endpoints": endpoints("iam", "/v3")},
    ])
}

/// IAM's time format: RFC 3339, UTC, microseconds, `Z` (e.g. `2020-01-04T09:05:22.701000Z`).
pub fn iam_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A new opaque token: `MII` (real tokens are base64 PKI blobs, which start so) and random base64
/// characters.
fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    let random: String = (0..TOKEN_RANDOM_CHARS)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("MII{random}")
}

/// Percent-encode for a link query: keep `A-Z a-z 0-9 - _ . ~`, write other bytes as `%XX`.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;

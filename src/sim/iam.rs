//! The simulated account around the estate, and the global services that describe it: IAM tokens
//! (`POST /v3/auth/tokens`), IAM project listing (`GET /v3/projects`) and EPS enterprise-project
//! listing (`GET /v1.0/enterprise-projects`), following HUAWEI-API.md §4 and §6.
//!
//! Also here: how every route authenticates a request (`authenticate`), because AK/SK and tokens
//! are checked the same way everywhere; only the error bodies differ per service.
//!
//! IAM answers errors in its own shape, `{"error":{"code":401,"title":"Unauthorized","message":..}}`
//! (the Go and Python SDKs read `error.code` / `error.message` one level down, §5); EPS and HSS answer
//! `{"error_code","error_msg","request_id"}`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::estate::{uuid_like, Estate};
use super::routes::{decode_query_pairs, huawei_error, json_response, new_request_id};
use super::verify::{self, ReceivedRequest, VerifyError};
use super::{
    RequestRecord, SimConfig, Simulator, State as SimState, API_CREATE_TOKEN,
    API_LIST_AUTH_DOMAINS, API_LIST_ENTERPRISE_PROJECTS, API_LIST_PROJECTS,
};

/// Path of IAM KeystoneCreateUserTokenByPassword.
pub const CREATE_TOKEN_ROUTE: &str = "/v3/auth/tokens";

/// Path of IAM KeystoneListProjects.
pub const LIST_PROJECTS_ROUTE: &str = "/v3/projects";

/// IAM `KeystoneListAuthDomains`: the account the caller belongs to. Huawei's SDKs call it to
/// learn the domain id that global services want in `X-Domain-Id` when only AK/SK is given.
pub const LIST_AUTH_DOMAINS_ROUTE: &str = "/v3/auth/domains";

/// Path of EPS ListEnterpriseProject.
pub const LIST_ENTERPRISE_PROJECTS_ROUTE: &str = "/v1.0/enterprise-projects";

/// Response header carrying a newly issued token.
pub const SUBJECT_TOKEN_HEADER: &str = "x-subject-token";

/// Request header carrying a token.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// `per_page` range of KeystoneListProjects.
pub const PER_PAGE_RANGE: std::ops::RangeInclusive<i64> = 1..=5000;

/// `limit` range of EPS ListEnterpriseProject; also its default (the maximum).
pub const EPS_LIMIT_RANGE: std::ops::RangeInclusive<i64> = 1..=1000;

/// Name of OBS's default project, which IAM lists beside the region projects (IAM doc example).
pub const OBS_DEFAULT_PROJECT_NAME: &str = "MOS";

/// Length of the random part of an issued token. Real tokens are PKI blobs of several kilobytes; a
/// couple of hundred characters is enough to be opaque and to catch a client that truncates them.
const TOKEN_RANDOM_CHARS: usize = 200;

/// The IAM message for a wrong domain, user name or password.
pub const WRONG_PASSWORD_MESSAGE: &str = "The username or password is wrong.";

/// Names given to the estate's enterprise projects, in order; numbered when there are more.
const ENTERPRISE_PROJECT_NAMES: &[&str] = &[
    "platform",
    "finance",
    "research",
    "marketing",
    "operations",
    "security",
    "data-lake",
    "mobile",
];

/// A token issued by the simulated IAM.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The project the token is scoped to; `None` for a domain-scoped token.
    pub project_id: Option<String>,
    /// When IAM issued it.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted; moved to "now" by [`Simulator::expire_tokens`].
    pub expires_at: DateTime<Utc>,
}

/// One enterprise project as EPS lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterpriseProject {
    /// The id: `"0"` for the default EP, UUID-shaped otherwise.
    pub id: String,
    /// The name: `default` for EP `"0"`.
    pub name: String,
    /// 1 enabled, 2 disabled.
    pub status: u8,
    /// Creation time, UTC, `2018-05-18T06:49:06Z` style.
    pub created_at: String,
}

/// Everything about the account that is not in the [`Estate`]: fixed at creation, drawn from a generator
/// seeded with the estate seed but separate from the estate's, so adding it changed no estate.
#[derive(Clone, Debug)]
pub struct Account {
    /// The account (domain) id: 32 lower-case hex characters.
    pub domain_id: String,
    /// The account name: the IAM user's domain, or `hss-sim-account`.
    pub domain_name: String,
    /// The IAM user's id.
    pub user_id: String,
    /// Id of the `MOS` system project.
    pub obs_project_id: String,
    /// Id of the disabled sub-project listed when `include_disabled_project` is set.
    pub disabled_project_id: String,
    /// Id of the disabled enterprise project EPS lists; it holds no registries.
    pub disabled_enterprise_project_id: String,
}

impl Account {
    /// Generate the account for `config`.
    pub fn generate(config: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6163_636f_756e_7421);
        let mut hex32 = || format!("{:032x}", rng.gen::<u128>());
        let domain_id = hex32();
        let user_id = hex32();
        let obs_project_id = hex32();
        let disabled_project_id = hex32();
        let disabled_enterprise_project_id = uuid_like(&mut rng);
        Account {
            domain_id,
            domain_name: config
                .iam_user
                .as_ref()
                .map_or_else(|| "hss-sim-account".to_string(), |u| u.domain.clone()),
            user_id,
            obs_project_id,
            disabled_project_id,
            disabled_enterprise_project_id,
        }
    }

    /// Every enterprise project EPS lists: `"0"` (`default`), the estate's EPs (enabled) in estate order,
    /// then one disabled EP that holds no registries. Creation times are fixed, one day apart.
    pub fn enterprise_projects(&self, estate: &Estate) -> Vec<EnterpriseProject> {
        let base = Utc
            .with_ymd_and_hms(2018, 5, 18, 6, 49, 6)
            .single()
            .expect("a valid fixed date");
        let at = |days: i64| {
            (base + chrono::Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        let mut list: Vec<EnterpriseProject> = estate
            .enterprise_project_ids
            .iter()
            .enumerate()
            .map(|(index, id)| EnterpriseProject {
                id: id.clone(),
                name: if id == "0" {
                    "default".to_string()
                } else {
                    enterprise_project_name(index)
                },
                status: 1,
                created_at: at(index as i64 * 37),
            })
            .collect();
        list.push(EnterpriseProject {
            id: self.disabled_enterprise_project_id.clone(),
            name: "archived".to_string(),
            status: 2,
            created_at: at(list.len() as i64 * 37),
        });
        list
    }
}

/// Name of the estate's `index`-th enterprise project (index 0 is `"0"`, named `default` elsewhere).
fn enterprise_project_name(index: usize) -> String {
    let k = index.saturating_sub(1);
    let base = ENTERPRISE_PROJECT_NAMES[k % ENTERPRISE_PROJECT_NAMES.len()];
    match k / ENTERPRISE_PROJECT_NAMES.len() {
        0 => base.to_string(),
        round => format!("{base}-{}", round + 1),
    }
}

/// Why a request failed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` and no `X-Auth-Token`.
    Missing,
    /// The AK/SK signature failed verification.
    Signature(VerifyError),
    /// The token is not one IAM issued (or is garbled).
    UnknownToken,
    /// The token was issued but has expired.
    ExpiredToken,
    /// The token is valid but scoped to another project or to the domain.
    WrongScope,
}

/// A request that passed authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Whom APIG counts quotas for: `ak:{access key}`, `token:{fingerprint}` or `anonymous`.
    pub user_key: String,
    /// True when an AK/SK signature was checked and verified.
    pub valid_signature: bool,
}

/// How a request tries to authenticate: `aksk`, `token` or `none` (see `RequestRecord::auth`).
pub fn auth_kind(headers: &HeaderMap) -> &'static str {
    if headers.contains_key(header::AUTHORIZATION) {
        "aksk"
    } else if headers.contains_key(AUTH_TOKEN_HEADER) {
        "token"
    } else {
        "none"
    }
}

/// Authenticate `request`. With authentication off (see [`SimConfig::auth_enabled`]) everything passes.
/// Otherwise an `Authorization` header is verified as AK/SK; failing that, `X-Auth-Token` must be a
/// static accepted token or an issued, unexpired token, scoped to `project_id` when one is given.
///
/// # Errors
/// The [`AuthFailure`]; the caller turns it into its service's error body.
pub(crate) fn authenticate(
    state: &SimState,
    request: &ReceivedRequest<'_>,
    project_id: Option<&str>,
) -> Result<Authenticated, AuthFailure> {
    let headers = request.headers;
    let token = headers
        .get(AUTH_TOKEN_HEADER)
        .map(|value| value.to_str().unwrap_or_default());
    if !state.config.auth_enabled() {
        let user_key = match (headers.get(header::AUTHORIZATION), token) {
            (Some(value), _) => value
                .to_str()
                .ok()
                .and_then(|v| verify::parse_authorization(v).ok())
                .map_or_else(
                    || "anonymous".to_string(),
                    |p| format!("ak:{}", p.access_key),
                ),
            (None, Some(token)) => token_user_key(token),
            (None, None) => "anonymous".to_string(),
        };
        return Ok(Authenticated {
            user_key,
            valid_signature: false,
        });
    }
    if headers.contains_key(header::AUTHORIZATION) {
        let parsed = match &state.config.credentials {
            Some(credentials) => verify::verify_request(
                request,
                credentials,
                Utc::now(),
                state.config.max_clock_skew,
            ),
            // No AK/SK is configured, so whatever access key the request names does not exist.
            None => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map_or(Err(VerifyError::MissingAuthorization), |v| {
                    verify::parse_authorization(v).and_then(|p| {
                        Err(VerifyError::UnknownAccessKey {
                            access_key: p.access_key,
                        })
                    })
                }),
        }
        .map_err(AuthFailure::Signature)?;
        return Ok(Authenticated {
            user_key: format!("ak:{}", parsed.access_key),
            valid_signature: true,
        });
    }
    let Some(token) = token else {
        return Err(AuthFailure::Missing);
    };
    if state.config.accepted_tokens.iter().any(|t| t == token) {
        return Ok(Authenticated {
            user_key: token_user_key(token),
            valid_signature: false,
        });
    }
    let issued = state.tokens.get(token).ok_or(AuthFailure::UnknownToken)?;
    if Utc::now() >= issued.expires_at {
        return Err(AuthFailure::ExpiredToken);
    }
    if let Some(project_id) = project_id {
        if issued.project_id.as_deref() != Some(project_id) {
            return Err(AuthFailure::WrongScope);
        }
    }
    Ok(Authenticated {
        user_key: token_user_key(token),
        valid_signature: false,
    })
}

/// The APIG (and HSS) answer to an authentication failure, as HSS and EPS give it.
pub fn apig_auth_error(failure: &AuthFailure, request_id: &str) -> Response {
    const DECRYPT_FAIL: &str = "Incorrect IAM authentication information: decrypt token fail";
    match failure {
        AuthFailure::Missing => huawei_error(
            StatusCode::UNAUTHORIZED,
            "APIG.0301",
            &VerifyError::MissingAuthorization.apig_error_msg(),
            request_id,
        ),
        AuthFailure::Signature(error) => huawei_error(
            StatusCode::UNAUTHORIZED,
            "APIG.0301",
            &error.apig_error_msg(),
            request_id,
        ),
        AuthFailure::UnknownToken => huawei_error(
            StatusCode::UNAUTHORIZED,
            "APIG.0301",
            DECRYPT_FAIL,
            request_id,
        ),
        AuthFailure::ExpiredToken => huawei_error(
            StatusCode::UNAUTHORIZED,
            "APIG.0307",
            "The token must be updated.",
            request_id,
        ),
        AuthFailure::WrongScope => huawei_error(
            StatusCode::FORBIDDEN,
            "HSS.0010",
            "access denied: the token is not scoped to the project in the path",
            request_id,
        ),
    }
}

/// An IAM-shaped error: `{"error":{"code":401,"title":"Unauthorized","message":..}}`.
pub fn iam_error(status: StatusCode, message: &str, request_id: &str) -> Response {
    json_response(
        status,
        request_id,
        &json!({"error": {
            "code": status.as_u16(),
            "title": status.canonical_reason().unwrap_or("Error"),
            "message": message,
        }}),
    )
}

/// `POST /v3/auth/tokens`: issue a password token, see the module docs.
pub(crate) async fn create_token(
    State(simulator): State<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    simulator.apply_latency().await;
    let request_id = new_request_id();
    let mut state = simulator.lock();
    let response = answer_create_token(&mut state, &uri, &body, &request_id);
    let record = base_record(
        API_CREATE_TOKEN,
        &method,
        &uri,
        &headers,
        &request_id,
        &response,
    );
    state.log_request(record);
    response
}

/// `GET /v3/projects`: KeystoneListProjects over the estate's projects plus system entries.
pub(crate) async fn list_projects(
    State(simulator): State<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = GlobalRequest {
        method,
        uri,
        headers,
        body,
    };
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
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = GlobalRequest {
        method,
        uri,
        headers,
        body,
    };
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

/// `GET /v1.0/enterprise-projects`: EPS ListEnterpriseProject.
pub(crate) async fn list_enterprise_projects(
    State(simulator): State<Simulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = GlobalRequest {
        method,
        uri,
        headers,
        body,
    };
    serve_global(
        &simulator,
        API_LIST_ENTERPRISE_PROJECTS,
        request,
        apig_auth_error,
        |state, request, request_id| {
            if !state.config.eps_enabled {
                return huawei_error(
                    StatusCode::FORBIDDEN,
                    "EPS.0004",
                    "Enterprise project not enabled or permission denied",
                    request_id,
                );
            }
            answer_list_enterprise_projects(state, &request.uri, request_id)
        },
    )
    .await
}

/// A request to a global service (IAM, EPS), as the handlers receive it.
struct GlobalRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// What every global-service listing does around its answer: latency, authentication (the
/// service's own refusal from `refuse`), the `X-Domain-Id` check (but for `ListAuthDomains`,
/// which is how a caller learns its domain id), and the request log.
async fn serve_global(
    simulator: &Simulator,
    api: &str,
    request: GlobalRequest,
    refuse: fn(&AuthFailure, &str) -> Response,
    answer: impl FnOnce(&SimState, &GlobalRequest, &str) -> Response,
) -> Response {
    simulator.apply_latency().await;
    let request_id = new_request_id();
    let mut state = simulator.lock();
    let received = ReceivedRequest {
        method: request.method.as_str(),
        path: request.uri.path(),
        query: request.uri.query(),
        headers: &request.headers,
        body: &request.body,
    };
    let authenticated = authenticate(&state, &received, None);
    let response = match &authenticated {
        Err(failure) => {
            tracing::warn!(?failure, api, "simulated {api} rejected a request");
            refuse(failure, &request_id)
        }
        Ok(_) => match domain_header_problem(&state, &request.headers, &request_id) {
            Some(refusal) if api != API_LIST_AUTH_DOMAINS => refusal,
            _ => answer(&state, &request, &request_id),
        },
    };
    let mut record = base_record(
        api,
        &request.method,
        &request.uri,
        &request.headers,
        &request_id,
        &response,
    );
    record.had_valid_signature = authenticated.is_ok_and(|a| a.valid_signature);
    state.log_request(record);
    response
}

/// IAM's answer to a request it cannot authenticate.
fn iam_unauthorized(_failure: &AuthFailure, request_id: &str) -> Response {
    iam_error(
        StatusCode::UNAUTHORIZED,
        "The request you have made requires authentication.",
        request_id,
    )
}

/// Global services (IAM, EPS) called with AK/SK act for the account named in `X-Domain-Id`, as
/// Huawei's SDKs always send it (`GlobalCredentials`); a signed request without it, or for
/// another account, is refused. Token requests carry their account in the token.
fn domain_header_problem(
    state: &SimState,
    headers: &HeaderMap,
    request_id: &str,
) -> Option<Response> {
    if auth_kind(headers) != "aksk" {
        return None;
    }
    let given = headers.get("x-domain-id").and_then(|v| v.to_str().ok());
    if given == Some(state.account.domain_id.as_str()) {
        return None;
    }
    let message = match given {
        None => "X-Domain-Id is required with AK/SK for a global service",
        Some(_) => "You are not authorized to perform the requested action: X-Domain-Id is not your account",
    };
    Some(iam_error(StatusCode::FORBIDDEN, message, request_id))
}

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
        .filter(|p| get("name").map_or(true, |n| p["name"] == n))
        .filter(|p| get("parent_id").map_or(true, |n| p["parent_id"] == n))
        .filter(|p| get("domain_id").map_or(true, |n| p["domain_id"] == n))
        .filter(|p| enabled.map_or(true, |e| p["enabled"] == e))
        .filter(|_| is_domain.map_or(true, |d| !d))
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

fn answer_list_enterprise_projects(state: &SimState, uri: &Uri, request_id: &str) -> Response {
    let pairs = decode_query_pairs(uri.query().unwrap_or(""));
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let error = |code: &str, message: &str| {
        huawei_error(StatusCode::BAD_REQUEST, code, message, request_id)
    };
    let offset = match get("offset").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(offset)) if offset >= 0 => offset as usize,
        Some(_) => return error("EPS.0018", "Invalid offset."),
    };
    let limit = match get("limit").map(str::parse::<i64>) {
        None => *EPS_LIMIT_RANGE.end() as usize,
        Some(Ok(limit)) if EPS_LIMIT_RANGE.contains(&limit) => limit as usize,
        Some(_) => return error("EPS.0017", "Invalid limit."),
    };
    let status = match get("status") {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    let descending = match get("sort_dir") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    let by_name = match get("sort_key") {
        None | Some("created_at") => false,
        Some("name") => true,
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    if get("type").is_some_and(|t| t != "prod" && t != "poc") {
        return error("EPS.0002", "Bad request.");
    }
    let mut matching: Vec<_> = state
        .account
        .enterprise_projects(&state.estate)
        .into_iter()
        .filter(|ep| get("id").map_or(true, |id| ep.id == id))
        .filter(|ep| get("name").map_or(true, |name| ep.name.contains(name)))
        .filter(|ep| status.map_or(true, |s| ep.status == s))
        .filter(|_| get("type").map_or(true, |t| t == "prod"))
        .collect();
    if by_name {
        matching.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        matching.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    }
    if descending {
        matching.reverse();
    }
    let total_count = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|ep| {
            json!({
                "id": ep.id,
                "name": ep.name,
                "description": if ep.id == "0" { "Default enterprise project" } else { "" },
                "status": ep.status,
                "created_at": ep.created_at,
                "updated_at": ep.created_at,
                "type": "prod",
                "delete_flag": false,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        request_id,
        &json!({"enterprise_projects": page, "total_count": total_count}),
    )
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

/// The quota key of a token: a short fingerprint, so the token itself is never kept outside `tokens`.
fn token_user_key(token: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "token:{}",
        &hex::encode(Sha256::digest(token.as_bytes()))[..16]
    )
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

/// A request record for the IAM and EPS routes.
fn base_record(
    api: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    request_id: &str,
    response: &Response,
) -> RequestRecord {
    RequestRecord {
        api: api.to_string(),
        auth: auth_kind(headers).to_string(),
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        status: response.status().as_u16(),
        retry_after: None,
        project_id: String::new(),
        offset: None,
        limit: None,
        enterprise_project_id: None,
        had_valid_signature: false,
        request_id: request_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::sim::testkit::*;
    use crate::sim::Simulator;

    fn project_scope(name: &str) -> Value {
        json!({"project": {"name": name}})
    }

    fn subject_token(answer: &Answer) -> String {
        answer.headers[SUBJECT_TOKEN_HEADER]
            .to_str()
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn password_token_is_issued_with_201_and_works_only_for_its_project() {
        // Arrange
        let h = harness(with_iam_user()).await;
        let projects = h.simulator.projects();
        let (main_ap, _) = projects
            .iter()
            .find(|(_, region)| region == "ap-southeast-1")
            .unwrap()
            .clone();

        // Act
        let issued = h
            .issue_token(IAM_PASSWORD, project_scope("ap-southeast-1"))
            .await;

        // Assert
        assert_eq!(issued.status, 201, "{}", issued.text);
        let token = subject_token(&issued);
        assert!(token.len() >= 200 && token.starts_with("MII"));
        let body = issued.json()["token"].clone();
        assert_eq!(body["project"]["id"], main_ap.as_str());
        assert_eq!(body["project"]["name"], "ap-southeast-1");
        assert_eq!(body["project"]["domain"]["name"], IAM_DOMAIN);
        assert_eq!(body["user"]["name"], IAM_USER);
        assert_eq!(body["methods"], json!(["password"]));
        assert!(
            body.get("catalog").is_none(),
            "nocatalog=true drops the catalog"
        );
        let expires_at = body["expires_at"].as_str().unwrap();
        let issued_at = body["issued_at"].as_str().unwrap();
        for text in [expires_at, issued_at] {
            // 2020-01-04T09:05:22.701000Z
            assert_eq!(text.len(), 27, "{text}");
            assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.');
        }
        let lifetime = DateTime::parse_from_rfc3339(expires_at).unwrap()
            - DateTime::parse_from_rfc3339(issued_at).unwrap();
        assert_eq!(lifetime.num_hours(), 24);
        assert_eq!(h.simulator.tokens_issued(), 1);

        let ok = h.list_with_token(&main_ap, &token, "limit=10").await;
        assert_eq!(ok.status, 200, "{}", ok.text);
        h.list_with_token(&projects[0].0, &token, "")
            .await
            .assert_huawei_error(403, "HSS.0010", "not scoped to the project");
        let log = h.simulator.request_log();
        let apis: Vec<(&str, &str, u16)> = log
            .iter()
            .map(|r| (r.api.as_str(), r.auth.as_str(), r.status))
            .collect();
        assert_eq!(
            apis,
            [
                ("CreateToken", "none", 201),
                ("ListRegistry", "token", 200),
                ("ListRegistry", "token", 403)
            ]
        );
    }

    #[tokio::test]
    async fn token_scoped_by_id_reaches_a_sub_project_and_the_catalog_is_sent_by_default() {
        let h = harness(with_iam_user()).await;
        let sub = h.simulator.project_ids()[2].clone();
        assert_eq!(
            h.simulator.project_name(&sub).as_deref(),
            Some("cn-north-4_proj2")
        );
        let url = format!("{}/v3/auth/tokens", h.running.base_url());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "domain": {"name": IAM_DOMAIN}, "name": IAM_USER, "password": IAM_PASSWORD}}},
            "scope": {"project": {"id": sub}},
        }});
        let issued = h.send(h.client.post(url).json(&body)).await;
        assert_eq!(issued.status, 201);
        assert_eq!(
            issued.json()["token"]["project"]["name"],
            "cn-north-4_proj2"
        );
        assert!(issued.json()["token"]["catalog"].is_array());
        let token = subject_token(&issued);
        assert_eq!(h.list_with_token(&sub, &token, "").await.status, 200);
    }

    #[tokio::test]
    async fn wrong_domain_user_or_password_gets_iam_401_and_no_token() {
        let h = harness(with_iam_user()).await;
        let wrong_password = h
            .issue_token("not-the-password", project_scope("cn-north-4"))
            .await;
        assert_eq!(wrong_password.status, 401);
        assert_eq!(
            wrong_password.json(),
            json!({"error": {"code": 401, "title": "Unauthorized", "message": "The username or password is wrong."}})
        );
        assert!(wrong_password.headers.get(SUBJECT_TOKEN_HEADER).is_none());
        assert!(!wrong_password.text.contains("not-the-password"));

        let url = format!("{}/v3/auth/tokens", h.running.base_url());
        for (domain, user) in [("other-account", IAM_USER), (IAM_DOMAIN, "someone-else")] {
            let body = json!({"auth": {
                "identity": {"methods": ["password"], "password": {"user": {
                    "domain": {"name": domain}, "name": user, "password": IAM_PASSWORD}}},
                "scope": {"project": {"name": "cn-north-4"}},
            }});
            let answer = h.send(h.client.post(&url).json(&body)).await;
            assert_eq!(answer.status, 401, "{domain} {user}");
            assert_eq!(answer.json()["error"]["code"], 401);
        }
        let unknown_region = h
            .issue_token(IAM_PASSWORD, project_scope("eu-west-101"))
            .await;
        assert_eq!(unknown_region.status, 400);
        let malformed = h.send(h.client.post(&url).body("{")).await;
        assert_eq!(malformed.status, 400);
        assert_eq!(h.simulator.tokens_issued(), 0);
    }

    #[tokio::test]
    async fn expired_token_gets_apig_0307_and_a_fresh_token_works_again() {
        let h = harness(with_iam_user()).await;
        let main = h.simulator.project_ids()[0].clone();
        let first = subject_token(
            &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
                .await,
        );
        assert_eq!(h.list_with_token(&main, &first, "").await.status, 200);

        h.simulator.expire_tokens();
        h.list_with_token(&main, &first, "")
            .await
            .assert_huawei_error(401, "APIG.0307", "The token must be updated.");

        let second = subject_token(
            &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
                .await,
        );
        assert_ne!(first, second);
        assert_eq!(h.list_with_token(&main, &second, "").await.status, 200);

        h.simulator.set_token_ttl(Duration::ZERO);
        let born_expired = subject_token(
            &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
                .await,
        );
        h.list_with_token(&main, &born_expired, "")
            .await
            .assert_huawei_error(401, "APIG.0307", "must be updated");
        assert_eq!(h.simulator.tokens_issued(), 3);
    }

    #[tokio::test]
    async fn unknown_or_garbled_tokens_get_apig_0301_decrypt_token_fail() {
        let h = harness(with_iam_user()).await;
        let main = h.simulator.project_ids()[0].clone();
        for token in ["MIIgarbage", "", "not a token at all"] {
            h.list_with_token(&main, token, "")
                .await
                .assert_huawei_error(
                    401,
                    "APIG.0301",
                    "Incorrect IAM authentication information: decrypt token fail",
                );
        }
        h.list("")
            .await
            .assert_huawei_error(401, "APIG.0301", "authorization not found");
    }

    #[tokio::test]
    async fn accepted_static_token_works_for_every_project_and_never_expires() {
        let h = harness(SimConfig {
            accepted_tokens: vec!["given-token".into()],
            ..SimConfig::default()
        })
        .await;
        h.simulator.expire_tokens();
        for project_id in h.simulator.project_ids() {
            assert_eq!(
                h.list_with_token(&project_id, "given-token", "")
                    .await
                    .status,
                200
            );
        }
        assert_eq!(
            h.list_with_token(&h.project_id, "other", "").await.status,
            401
        );
        assert!(!format!("{:?}", h.simulator.config()).contains("given-token"));
    }

    /// The filter HUAWEI-API.md §6 recommends: enabled projects named after an HSS region, or whose
    /// parent is such a project.
    fn hss_project_ids(listing: &Value, regions: &[String]) -> Vec<String> {
        let projects = listing["projects"].as_array().unwrap();
        let region_ids: Vec<&str> = projects
            .iter()
            .filter(|p| regions.iter().any(|r| p["name"] == r.as_str()))
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        let mut ids: Vec<String> = projects
            .iter()
            .filter(|p| p["enabled"] == true)
            .filter(|p| {
                region_ids.contains(&p["id"].as_str().unwrap())
                    || region_ids.contains(&p["parent_id"].as_str().unwrap())
            })
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn project_listing_has_region_main_projects_sub_projects_and_system_entries_to_filter() {
        // Arrange
        let h = harness(SimConfig {
            include_disabled_project: true,
            ..with_iam_user()
        })
        .await;
        let domain_id = h.simulator.domain_id();
        let ids = h.simulator.project_ids();

        // Act
        let answer = h.send(h.signed_global_get("/v3/projects", "")).await;

        // Assert
        assert_eq!(answer.status, 200, "{}", answer.text);
        let listing = answer.json();
        let by_name = |name: &str| {
            listing["projects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no project {name}: {listing}"))
        };
        let main_cn = by_name("cn-north-4");
        assert_eq!(main_cn["id"], ids[0].as_str());
        assert_eq!(main_cn["parent_id"], domain_id.as_str());
        assert_eq!(main_cn["domain_id"], domain_id.as_str());
        assert_eq!(main_cn["is_domain"], false);
        assert_eq!(by_name("ap-southeast-1")["id"], ids[1].as_str());
        let sub = by_name("cn-north-4_proj2");
        assert_eq!(
            (sub["id"].as_str(), sub["parent_id"].as_str()),
            (Some(ids[2].as_str()), Some(ids[0].as_str()))
        );
        assert_eq!(by_name("MOS")["parent_id"], domain_id.as_str());
        assert_eq!(by_name("cn-north-4_retired")["enabled"], false);
        assert_eq!(listing["projects"].as_array().unwrap().len(), 5);
        assert_eq!(listing["links"]["next"], Value::Null);

        let mut expected = ids.clone();
        expected.sort();
        assert_eq!(hss_project_ids(&listing, &h.simulator.regions()), expected);
        let record = h.simulator.request_log().pop().unwrap();
        assert_eq!(
            (
                record.api.as_str(),
                record.auth.as_str(),
                record.had_valid_signature
            ),
            ("ListProjects", "aksk", true)
        );
    }

    #[tokio::test]
    async fn project_listing_pages_with_page_and_per_page_and_filters_by_name() {
        let h = harness(SimConfig {
            include_disabled_project: true,
            ..with_iam_user()
        })
        .await;
        let mut seen = Vec::new();
        let mut page = 1;
        loop {
            let query = format!("page={page}&per_page=2");
            let listing = h
                .send(h.signed_global_get("/v3/projects", &query))
                .await
                .json();
            let projects = listing["projects"].as_array().unwrap().clone();
            assert!(projects.len() <= 2);
            seen.extend(
                projects
                    .iter()
                    .map(|p| p["id"].as_str().unwrap().to_string()),
            );
            if listing["links"]["next"].is_null() {
                break;
            }
            assert!(listing["links"]["next"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/v3/projects?page={}&per_page=2", page + 1)));
            page += 1;
        }
        assert_eq!((page, seen.len()), (3, 5));
        let all = h.send(h.signed_global_get("/v3/projects", "")).await.json();
        let all_ids: Vec<&str> = all["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(seen, all_ids);

        let named = h
            .send(h.signed_global_get("/v3/projects", "name=cn-north-4"))
            .await
            .json();
        assert_eq!(named["projects"].as_array().unwrap().len(), 1);
        assert_eq!(
            named["projects"][0]["id"],
            h.simulator.project_ids()[0].as_str()
        );
        let enabled = h
            .send(h.signed_global_get("/v3/projects", "enabled=false"))
            .await
            .json();
        assert_eq!(enabled["projects"][0]["name"], "cn-north-4_retired");
    }

    #[tokio::test]
    async fn project_listing_rejects_bad_paging_and_unauthenticated_calls_in_iam_shape() {
        let h = harness(with_iam_user()).await;
        for query in [
            "per_page=10",
            "page=1",
            "page=1&per_page=0",
            "page=1&per_page=5001",
            "page=0&per_page=5",
        ] {
            let answer = h.send(h.signed_global_get("/v3/projects", query)).await;
            assert_eq!(answer.status, 400, "{query}: {}", answer.text);
            assert_eq!(answer.json()["error"]["code"], 400);
        }
        assert_eq!(
            h.send(h.signed_global_get("/v3/projects", "page=1&per_page=5000"))
                .await
                .status,
            200
        );
        let unsigned = h.get("/v3/projects").await;
        assert_eq!(unsigned.status, 401);
        assert_eq!(unsigned.json()["error"]["title"], "Unauthorized");

        // Any valid token lists projects, a domain-scoped one included.
        let url = format!("{}/v3/auth/tokens", h.running.base_url());
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "domain": {"name": IAM_DOMAIN}, "name": IAM_USER, "password": IAM_PASSWORD}}},
            "scope": {"domain": {"name": IAM_DOMAIN}},
        }});
        let issued = h.send(h.client.post(url).json(&body)).await;
        assert_eq!(issued.status, 201);
        assert!(issued.json()["token"].get("project").is_none());
        let token = subject_token(&issued);
        let listed = h
            .send(
                h.client
                    .get(format!("{}/v3/projects", h.running.base_url()))
                    .header("X-Auth-Token", &token),
            )
            .await;
        assert_eq!(listed.status, 200);
        h.list_with_token(&h.project_id, &token, "")
            .await
            .assert_huawei_error(403, "HSS.0010", "not scoped");
    }

    #[tokio::test]
    async fn eps_lists_default_estate_and_disabled_enterprise_projects() {
        let h = harness(with_iam_user()).await;
        let answer = h
            .send(h.signed_global_get("/v1.0/enterprise-projects", ""))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let listing = answer.json();
        assert_eq!(listing["total_count"], 4);
        let eps = listing["enterprise_projects"].as_array().unwrap();
        let default = eps.iter().find(|ep| ep["id"] == "0").unwrap();
        assert_eq!(
            (default["name"].as_str(), default["status"].as_i64()),
            (Some("default"), Some(1))
        );
        assert_eq!(default["created_at"], "2018-05-18T06:49:06Z");
        let enabled: Vec<&str> = eps
            .iter()
            .filter(|ep| ep["status"] == 1)
            .map(|ep| ep["id"].as_str().unwrap())
            .collect();
        let mut expected = h.simulator.enterprise_project_ids();
        expected.reverse(); // newest first, the default order
        assert_eq!(enabled, expected);

        let disabled = h
            .send(h.signed_global_get("/v1.0/enterprise-projects", "status=2"))
            .await
            .json();
        assert_eq!(disabled["total_count"], 1);
        let disabled_id = disabled["enterprise_projects"][0]["id"].as_str().unwrap();
        let page = h
            .send(h.signed_list(
                &format!("enterprise_project_id={disabled_id}"),
                SECRET_KEY,
                &now_sdk_date(0),
            ))
            .await;
        assert_eq!(
            page.json(),
            json!({"total_num": 0, "data_list": []}),
            "the disabled EP holds no registries"
        );

        let paged = h
            .send(h.signed_global_get("/v1.0/enterprise-projects", "limit=1&offset=1"))
            .await
            .json();
        assert_eq!(paged["total_count"], 4);
        assert_eq!(paged["enterprise_projects"].as_array().unwrap().len(), 1);
        assert_eq!(paged["enterprise_projects"][0], eps[1]);

        for (query, code) in [
            ("limit=0", "EPS.0017"),
            ("limit=1001", "EPS.0017"),
            ("offset=-1", "EPS.0018"),
            ("status=3", "EPS.0002"),
        ] {
            h.send(h.signed_global_get("/v1.0/enterprise-projects", query))
                .await
                .assert_huawei_error(400, code, ".");
        }
    }

    #[tokio::test]
    async fn disabled_enterprise_projects_feature_answers_eps_0004() {
        let h = harness(SimConfig {
            eps_enabled: false,
            ..SimConfig::default()
        })
        .await;
        h.get("/v1.0/enterprise-projects")
            .await
            .assert_huawei_error(
                403,
                "EPS.0004",
                "Enterprise project not enabled or permission denied",
            );
        let page = h
            .list("enterprise_project_id=all_granted_eps&limit=200")
            .await;
        assert_eq!(page.json()["total_num"], 75, "all_granted_eps still works");
    }

    #[test]
    fn simulator_reports_each_projects_region_for_one_server_answering_all_regions() {
        let simulator = Simulator::new(with_iam_user());
        let projects = simulator.projects();
        let regions: Vec<&str> = projects.iter().map(|(_, r)| r.as_str()).collect();
        assert_eq!(regions, ["cn-north-4", "ap-southeast-1", "cn-north-4"]);
        for (project_id, region) in &projects {
            assert_eq!(simulator.project_region(project_id).as_ref(), Some(region));
        }
        assert_eq!(simulator.project_region("unknown"), None);
        assert_eq!(simulator.regions(), ["cn-north-4", "ap-southeast-1"]);
    }

    #[test]
    fn iam_user_password_is_redacted_in_debug() {
        let config = with_iam_user();
        let text = format!("{config:?}");
        assert!(
            !text.contains(IAM_PASSWORD) && text.contains(IAM_USER),
            "{text}"
        );
        assert!(!format!("{:?}", Simulator::new(config)).contains(IAM_PASSWORD));
    }
}

//! [`HssClient`]: signs and sends `ListRegistry` requests.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::api::dto::{ErrorBody, ListRegistryResponse, RegistryPage};
use crate::signer::{self, Credentials, RequestToSign};

/// How long one request may take, connect to last byte. Huawei's SDKs wait 120 s; a
/// `ListRegistry` page of 200 items is small, so a minute is generous and stops a hung
/// connection from holding a run for long.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long connecting may take; a gateway that does not answer the handshake in this time
/// is not going to.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an unparseable body goes into an error message, so a huge HTML error page
/// does not flood the log or the audit table.
const BODY_EXCERPT_CHARS: usize = 200;

/// The `User-Agent` sent (and signed) with every request.
pub const USER_AGENT: &str = concat!("hss-sync/", env!("CARGO_PKG_VERSION"));

/// How the client proves who it is.
#[derive(Clone)]
pub enum Auth {
    /// AK/SK request signing (`SDK-HMAC-SHA256`), as Huawei's SDKs do.
    AkSk(Credentials),
    /// An IAM token, sent as `X-Auth-Token`.
    Token(SecretString),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::AkSk(credentials) => f.debug_tuple("AkSk").field(credentials).finish(),
            Auth::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// Optional `ListRegistry` filters; `None` sends nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistryFilters {
    /// `registry_name`.
    pub registry_name: Option<String>,
    /// `registry_type`, comma-separated for several.
    pub registry_type: Option<String>,
    /// `registry_addr`.
    pub registry_addr: Option<String>,
    /// `status`.
    pub status: Option<String>,
}

/// One `ListRegistry` page request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRegistryQuery {
    /// `enterprise_project_id`; `None` sends none, which the API reads as `0`.
    pub enterprise_project_id: Option<String>,
    /// Items to skip.
    pub offset: u32,
    /// Items to return at most (10 to 200).
    pub limit: u32,
    /// Filters.
    pub filters: RegistryFilters,
}

impl ListRegistryQuery {
    /// The query pairs in the order built; the signer sorts them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(ep) = &self.enterprise_project_id {
            pairs.push(("enterprise_project_id".to_owned(), ep.clone()));
        }
        pairs.push(("offset".to_owned(), self.offset.to_string()));
        pairs.push(("limit".to_owned(), self.limit.to_string()));
        let filters = [
            ("registry_name", &self.filters.registry_name),
            ("registry_type", &self.filters.registry_type),
            ("registry_addr", &self.filters.registry_addr),
            ("status", &self.filters.status),
        ];
        for (key, value) in filters {
            if let Some(value) = value {
                pairs.push((key.to_owned(), value.clone()));
            }
        }
        pairs
    }
}

/// A failed API call. Messages name the request and carry Huawei's code, message and
/// request id; they never hold a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Huawei answered with an HTTP error status.
    #[error("{operation} failed with HTTP {status}{}", describe_error_body(.error_code, .error_msg, .request_id))]
    Status {
        /// What was being done, for example `ListRegistry project 0123… offset 200`.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// Huawei's `error_code`, for example `APIG.0308`.
        error_code: Option<String>,
        /// Huawei's `error_msg`, or an excerpt of a body that is not a Huawei error.
        error_msg: Option<String>,
        /// Huawei's request id.
        request_id: Option<String>,
    },
    /// The answer came but could not be read as the expected JSON.
    #[error("{operation} returned a body that is not valid ListRegistry JSON ({detail}){}", describe_error_body(&None, &None, .request_id))]
    Decode {
        /// What was being done.
        operation: String,
        /// What is wrong with it.
        detail: String,
        /// Huawei's request id.
        request_id: Option<String>,
    },
    /// No answer: connection refused or reset, DNS, TLS, or timeout.
    #[error("{operation} failed: {detail}")]
    Transport {
        /// What was being done.
        operation: String,
        /// The cause, with its chain.
        detail: String,
        /// Whether it was a timeout.
        timeout: bool,
    },
    /// The client could not be built or the request could not be formed.
    #[error("invalid api client setup: {0}")]
    Setup(String),
}

impl ApiError {
    /// Huawei's error code, when the answer had one.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            ApiError::Status { error_code, .. } => error_code.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, when an answer came.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn describe_error_body(
    error_code: &Option<String>,
    error_msg: &Option<String>,
    request_id: &Option<String>,
) -> String {
    let mut out = String::new();
    if let Some(code) = error_code {
        out.push_str(&format!(": {code}"));
    }
    if let Some(msg) = error_msg {
        out.push_str(&format!(
            "{}{msg}",
            if error_code.is_some() { " " } else { ": " }
        ));
    }
    if let Some(id) = request_id {
        out.push_str(&format!(" (request_id {id})"));
    }
    out
}

/// The HSS client of one endpoint and one identity.
#[derive(Clone, Debug)]
pub struct HssClient {
    /// Shared connection pool; cheap to clone.
    http: reqwest::Client,
    /// The HSS endpoint, for example `https://hss.cn-north-4.myhuaweicloud.com`; a path
    /// prefix is kept (private gateways mount HSS under one).
    base_url: Url,
    /// How requests are authenticated.
    auth: Auth,
}

impl HssClient {
    /// Builds a client for `base_url`.
    ///
    /// # Errors
    ///
    /// Returns [`ApiError::Setup`] when the URL is not http(s) or the TLS stack cannot start.
    pub fn new(base_url: Url, auth: Auth, request_timeout: Duration) -> Result<Self, ApiError> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(ApiError::Setup(format!(
                "endpoint {base_url} is not an http or https URL"
            )));
        }
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(request_timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ApiError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(HssClient {
            http,
            base_url,
            auth,
        })
    }

    /// The endpoint this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// Fetches one `ListRegistry` page (`GET /v5/{project_id}/image/registries`).
    ///
    /// # Errors
    ///
    /// [`ApiError::Status`] for an HTTP error, [`ApiError::Decode`] for a body that is not
    /// the expected JSON, [`ApiError::Transport`] when no answer came.
    pub async fn list_registries(
        &self,
        project_id: &str,
        query: &ListRegistryQuery,
    ) -> Result<RegistryPage, ApiError> {
        let operation = format!(
            "ListRegistry project {project_id} enterprise project {} offset {}",
            query.enterprise_project_id.as_deref().unwrap_or("0"),
            query.offset
        );
        let path = format!(
            "{}/v5/{}/image/registries",
            self.base_url.path().trim_end_matches('/'),
            project_id
        );
        let headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("User-Agent".to_owned(), USER_AGENT.to_owned()),
            ("X-Project-Id".to_owned(), project_id.to_owned()),
        ];
        let response = self
            .send(&operation, "GET", &path, &query.pairs(), headers)
            .await?;
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = response.status();
        let body = response.bytes().await.map_err(|e| ApiError::Transport {
            operation: operation.clone(),
            detail: format!("reading the body: {}", error_chain(&e)),
            timeout: e.is_timeout(),
        })?;
        if !status.is_success() {
            return Err(status_error(operation, status.as_u16(), &body, request_id));
        }
        let parsed: ListRegistryResponse =
            serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
                operation,
                detail: e.to_string(),
                request_id: request_id.clone(),
            })?;
        Ok(RegistryPage {
            total_num: parsed.total_num,
            items: parsed.data_list.unwrap_or_default(),
            request_id,
        })
    }

    async fn send(
        &self,
        operation: &str,
        method: &str,
        path: &str,
        query: &[(String, String)],
        mut headers: Vec<(String, String)>,
    ) -> Result<reqwest::Response, ApiError> {
        let host = match self.base_url.port() {
            Some(port) => format!("{}:{port}", self.base_url.host_str().unwrap_or_default()),
            None => self.base_url.host_str().unwrap_or_default().to_owned(),
        };
        let request_uri = match &self.auth {
            Auth::AkSk(credentials) => {
                let request = RequestToSign {
                    method,
                    host: &host,
                    path,
                    query,
                    headers: &headers,
                    body: b"",
                };
                let signed = signer::sign(&request, credentials, Utc::now());
                headers.extend(signed.headers_to_send);
                signed.request_uri
            }
            Auth::Token(token) => {
                headers.push(("X-Auth-Token".to_owned(), token.expose_secret().to_owned()));
                let canonical_query = signer::canonical_query_string(query);
                if canonical_query.is_empty() {
                    path.to_owned()
                } else {
                    format!("{path}?{canonical_query}")
                }
            }
        };
        let mut url = self.base_url.clone();
        url.set_path("");
        let url = Url::parse(&format!(
            "{}{}",
            url.as_str().trim_end_matches('/'),
            request_uri
        ))
        .map_err(|e| ApiError::Setup(format!("cannot form the request URL: {e}")))?;
        let mut header_map = HeaderMap::new();
        for (name, value) in &headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ApiError::Setup(format!("invalid header name {name}: {e}")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| ApiError::Setup(format!("invalid value for header {name}")))?;
            if name == "authorization" || name == "x-auth-token" || name == "x-security-token" {
                value.set_sensitive(true);
            }
            header_map.insert(name, value);
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ApiError::Setup(format!("invalid method {method}: {e}")))?;
        self.http
            .request(method, url)
            .headers(header_map)
            .send()
            .await
            .map_err(|e| ApiError::Transport {
                operation: operation.to_owned(),
                detail: error_chain(&e),
                timeout: e.is_timeout(),
            })
    }
}

fn status_error(
    operation: String,
    status: u16,
    body: &[u8],
    header_request_id: Option<String>,
) -> ApiError {
    let parsed = ErrorBody::parse(body);
    let (error_code, error_msg, body_request_id) = match parsed {
        Some(body) => (body.error_code, body.error_msg, body.request_id),
        None => {
            let text = String::from_utf8_lossy(body);
            let excerpt: String = text.trim().chars().take(BODY_EXCERPT_CHARS).collect();
            (None, (!excerpt.is_empty()).then_some(excerpt), None)
        }
    };
    ApiError::Status {
        operation,
        status,
        error_code,
        error_msg,
        request_id: body_request_id.or(header_request_id),
    }
}

/// An error and its sources, joined with `: `, without the URL's query (it holds nothing
/// secret, but it is noise).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_error_message_carries_huawei_code_message_and_request_id() {
        let error = status_error(
            "ListRegistry project p offset 0".to_owned(),
            429,
            br#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached","request_id":"r1"}"#,
            Some("header-id".to_owned()),
        );
        assert_eq!(
            error.to_string(),
            "ListRegistry project p offset 0 failed with HTTP 429: APIG.0308 The throttling threshold has been reached (request_id r1)"
        );
        assert_eq!(error.error_code(), Some("APIG.0308"));
    }

    #[test]
    fn status_error_with_non_json_body_keeps_an_excerpt_and_the_header_request_id() {
        let long = "x".repeat(1000);
        let error = status_error("op".to_owned(), 502, long.as_bytes(), Some("h1".to_owned()));
        let text = error.to_string();
        assert!(text.starts_with("op failed with HTTP 502: xxx"), "{text}");
        assert!(text.ends_with("(request_id h1)"), "{text}");
        assert!(text.len() < 300, "{text}");
    }

    #[test]
    fn query_pairs_hold_only_what_is_set() {
        let query = ListRegistryQuery {
            enterprise_project_id: Some("all_granted_eps".to_owned()),
            offset: 200,
            limit: 200,
            filters: RegistryFilters {
                registry_type: Some("Harbor,Jfrog".to_owned()),
                ..Default::default()
            },
        };
        let pairs = query.pairs();
        assert_eq!(
            signer::canonical_query_string(&pairs),
            "enterprise_project_id=all_granted_eps&limit=200&offset=200&registry_type=Harbor%2CJfrog"
        );
    }

    #[test]
    fn auth_debug_hides_the_token() {
        let auth = Auth::Token(SecretString::from("very-secret-token"));
        assert!(!format!("{auth:?}").contains("very-secret"));
    }
}

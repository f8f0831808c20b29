//! [`HssClient`] sends `ListRegistry` requests; [`Transport`] sends any request with
//! retries, rate limiting and token refresh, for every Huawei API we call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tracing::{debug, warn};
use url::Url;

use crate::api::auth::{join, Auth, Target, Unprepared};
use crate::api::dto::{ErrorBody, ListRegistryResponse, RegistryPage};
use crate::api::limiter::RateLimiter;
use crate::api::retry::{self, RetryPolicy};

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
        /// The `Retry-After` the server asked for.
        retry_after: Option<Duration>,
    },
    /// The answer came but could not be read as the expected JSON.
    #[error("{operation} returned a body that is not valid JSON of the expected shape ({detail}){}", describe_error_body(&None, &None, .request_id))]
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
        /// Whether the host name did not resolve: no retry will change that within a run.
        unresolved: bool,
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

    /// The `Retry-After` the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
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

/// How the HTTP clients are set up.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Per-request timeout, connect to last byte.
    pub request_timeout: Duration,
    /// A PEM file of extra CA certificates to trust (private endpoints, inspecting proxies).
    pub ca_file: Option<PathBuf>,
    /// Accept any TLS certificate. Dangerous; off unless asked for, and then loudly.
    pub insecure_skip_tls_verify: bool,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
    /// ListRegistry requests a minute per credential and endpoint; 0 for no limit.
    pub max_requests_per_minute: u32,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            ca_file: None,
            insecure_skip_tls_verify: false,
            retry: RetryPolicy::default(),
            max_requests_per_minute: 0,
        }
    }
}

/// What the attempts behind one call cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempts {
    /// Requests sent, retries included.
    pub n_requests: u32,
    /// Of those, throttled ones (`429`, `*.0308`).
    pub n_throttled: u32,
    /// Retries made.
    pub n_retries: u32,
}

impl Attempts {
    /// Adds another call's attempts.
    pub fn add(&mut self, other: &Attempts) {
        self.n_requests += other.n_requests;
        self.n_throttled += other.n_throttled;
        self.n_retries += other.n_retries;
    }
}

/// What one call is, for [`Transport::execute`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    /// What is being done, for messages.
    pub(crate) operation: &'a str,
    /// The API's name, for metrics.
    pub(crate) api: &'static str,
    /// The rate limiter to take a slot from, if any.
    pub(crate) limiter: Option<&'a RateLimiter>,
    /// Whether a "token must be updated" answer may be cured by a fresh token.
    pub(crate) can_refresh_token: bool,
}

/// Sends requests with retries, for every Huawei API we call. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Transport {
    /// The connection pool.
    pub(crate) http: reqwest::Client,
    /// How failed requests are retried.
    retry: RetryPolicy,
}

impl Transport {
    /// Builds the HTTP client. Proxies come from `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Setup`] when the CA file cannot be read or the TLS stack cannot start.
    pub fn new(settings: &ClientSettings) -> Result<Transport, ApiError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(settings.request_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(settings.request_timeout));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path).map_err(|e| {
                ApiError::Setup(format!("cannot read CA file {}: {e}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ApiError::Setup(format!("CA file {} is not PEM: {e}", path.display()))
            })?;
            if certificates.is_empty() {
                return Err(ApiError::Setup(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if settings.insecure_skip_tls_verify {
            warn!("TLS certificate verification is OFF: anyone on the network path can read and change requests and answers");
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| ApiError::Setup(format!("cannot build the HTTP client: {e}")))?;
        Ok(Transport {
            http,
            retry: settings.retry,
        })
    }

    /// Sends a request built by `build` (called again for every attempt, so signatures and
    /// tokens are fresh; its argument asks for a refreshed token), parses the answer with
    /// `parse`, and retries what [`retry::is_retryable`] allows. A "token must be updated"
    /// answer is tried once more with a fresh token when `can_refresh_token`.
    pub(crate) async fn execute<'a, T>(
        &'a self,
        call: Call<'_>,
        attempts: &mut Attempts,
        mut build: impl FnMut(bool) -> BoxFuture<'a, Result<reqwest::RequestBuilder, ApiError>>,
        parse: impl Fn(StatusCode, &HeaderMap, &[u8]) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let Call {
            operation,
            api,
            limiter,
            can_refresh_token,
        } = call;
        let mut delays = self.retry.delays();
        let mut force_refresh = false;
        let mut refreshed = false;
        loop {
            if let Some(limiter) = limiter {
                limiter.acquire().await;
            }
            let request = build(force_refresh).await?;
            force_refresh = false;
            attempts.n_requests += 1;
            let result = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    record_request(api, status.as_str());
                    let headers = response.headers().clone();
                    match response.bytes().await {
                        Ok(bytes) => parse(status, &headers, &bytes),
                        Err(e) => Err(transport_error(operation, &e)),
                    }
                }
                Err(e) => {
                    record_request(api, "error");
                    Err(transport_error(operation, &e))
                }
            };
            let error = match result {
                Ok(value) => {
                    if let Some(limiter) = limiter {
                        limiter.on_success().await;
                    }
                    return Ok(value);
                }
                Err(error) => error,
            };
            let throttled = retry::is_throttled(&error);
            if throttled {
                attempts.n_throttled += 1;
                metrics::counter!("hss_sync_http_throttled_total", "api" => api).increment(1);
                if let Some(limiter) = limiter {
                    limiter.on_throttled(error.retry_after()).await;
                }
            }
            if retry::is_token_expired(&error) && !refreshed && can_refresh_token {
                refreshed = true;
                force_refresh = true;
                debug!("{operation}: token must be updated, fetching a new one");
                continue;
            }
            if !retry::is_retryable(&error) {
                return Err(error);
            }
            let Some(backoff) = delays.next() else {
                return Err(error);
            };
            attempts.n_retries += 1;
            metrics::counter!("hss_sync_http_retries_total", "api" => api).increment(1);
            let delay = if throttled && limiter.is_some() {
                // The limiter already moved the next slot past Retry-After.
                Duration::ZERO
            } else {
                self.retry.delay_for(&error, backoff)
            };
            debug!(
                retry.delay_ms = delay.as_millis() as u64,
                "{operation}: attempt {} failed, retrying in {delay:?}: {error}",
                attempts.n_requests
            );
            tokio::time::sleep(delay).await;
        }
    }
    /// `GET base + path?query` for `target`, authenticated by `auth`, with retries; the
    /// answer's JSON body and its `X-Request-Id`.
    ///
    /// # Errors
    ///
    /// [`ApiError`] after retries, as [`Transport::execute`] gives it up.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        auth: &Auth,
        base: &Url,
        path: &str,
        query: &[(String, String)],
        target: &Target,
        call: Call<'_>,
        attempts: &mut Attempts,
    ) -> Result<(T, Option<String>), ApiError> {
        let operation = call.operation;
        let path = format!("{}{path}", base.path().trim_end_matches('/'));
        let host = host_of(base);
        self.execute(
            call,
            attempts,
            |force_refresh| {
                let headers = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("User-Agent".to_owned(), USER_AGENT.to_owned()),
                ];
                let (host, path) = (host.clone(), path.clone());
                Box::pin(async move {
                    let request = Unprepared {
                        host: &host,
                        method: "GET",
                        path: &path,
                        query,
                        headers,
                    };
                    let prepared = auth.prepare(request, target, force_refresh).await?;
                    build_request(
                        self,
                        base,
                        reqwest::Method::GET,
                        &prepared.request_uri,
                        &prepared.headers,
                    )
                })
            },
            |status, headers, body| {
                let request_id = header_text(headers, "x-request-id");
                if !status.is_success() {
                    return Err(status_error(
                        operation.to_owned(),
                        status.as_u16(),
                        body,
                        headers,
                    ));
                }
                let parsed = serde_json::from_slice(body).map_err(|e| ApiError::Decode {
                    operation: operation.to_owned(),
                    detail: e.to_string(),
                    request_id: request_id.clone(),
                })?;
                Ok((parsed, request_id))
            },
        )
        .await
    }
}

/// Counts one answered (HTTP status) or unanswered (`error`) request.
fn record_request(api: &'static str, status: &str) {
    metrics::counter!("hss_sync_http_requests_total", "api" => api, "status" => status.to_owned())
        .increment(1);
}

fn transport_error(operation: &str, error: &reqwest::Error) -> ApiError {
    let chain = error_chain(error);
    // hyper-util's resolver says "dns error"; the system resolver's own words follow it.
    let unresolved = error.is_connect()
        && (chain.contains("dns error") || chain.contains("failed to lookup address"));
    ApiError::Transport {
        operation: operation.to_owned(),
        detail: if error.is_timeout() {
            format!("timed out: {chain}")
        } else if unresolved {
            format!("the endpoint's host name does not resolve: {chain}")
        } else {
            chain
        },
        timeout: error.is_timeout(),
        unresolved,
    }
}

/// The HSS client of one endpoint and one identity.
#[derive(Clone, Debug)]
pub struct HssClient {
    /// Sends requests with retries.
    transport: Transport,
    /// The HSS endpoint, for example `https://hss.cn-north-4.myhuaweicloud.com`; a path
    /// prefix is kept (private gateways mount HSS under one).
    base_url: Url,
    /// How requests are authenticated.
    auth: Auth,
    /// Shared by every request of this client, so concurrent scopes share the quota.
    limiter: Option<Arc<RateLimiter>>,
}

impl HssClient {
    /// Builds a client for `base_url`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Setup`] when the URL is not http(s) or the HTTP client cannot be built.
    pub fn new(base_url: Url, auth: Auth, settings: &ClientSettings) -> Result<Self, ApiError> {
        let transport = Transport::new(settings)?;
        HssClient::with_transport(base_url, auth, transport, settings.max_requests_per_minute)
    }

    /// Builds a client on an existing transport.
    ///
    /// # Errors
    ///
    /// [`ApiError::Setup`] when the URL is not http(s).
    pub fn with_transport(
        base_url: Url,
        auth: Auth,
        transport: Transport,
        max_requests_per_minute: u32,
    ) -> Result<Self, ApiError> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(ApiError::Setup(format!(
                "endpoint {base_url} is not an http or https URL"
            )));
        }
        Ok(HssClient {
            transport,
            base_url,
            auth,
            limiter: RateLimiter::per_minute(max_requests_per_minute).map(Arc::new),
        })
    }

    /// The endpoint this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// What to tell the user when the API refuses this client's credentials.
    pub fn refusal_hint(&self) -> &'static str {
        self.auth.refusal_hint()
    }

    /// Fetches one `ListRegistry` page (`GET /v5/{project_id}/image/registries`), retrying
    /// as the settings allow; `attempts` counts what it cost.
    ///
    /// # Errors
    ///
    /// [`ApiError::Status`] for an HTTP error, [`ApiError::Decode`] for a body that is not
    /// the expected JSON, [`ApiError::Transport`] when no answer came; each after retries.
    pub async fn list_registries(
        &self,
        project_id: &str,
        query: &ListRegistryQuery,
        attempts: &mut Attempts,
    ) -> Result<RegistryPage, ApiError> {
        let operation = format!(
            "ListRegistry project {project_id} enterprise project {} offset {}",
            query.enterprise_project_id.as_deref().unwrap_or("0"),
            query.offset
        );
        let (parsed, request_id): (ListRegistryResponse, _) = self
            .transport
            .get_json(
                &self.auth,
                &self.base_url,
                &format!("/v5/{project_id}/image/registries"),
                &query.pairs(),
                &Target::Project(project_id.to_owned()),
                Call {
                    operation: &operation,
                    api: "ListRegistry",
                    limiter: self.limiter.as_deref(),
                    can_refresh_token: self.auth.can_refresh(),
                },
                attempts,
            )
            .await?;
        parsed
            .into_page(request_id.clone())
            .map_err(|detail| ApiError::Decode {
                operation,
                detail,
                request_id,
            })
    }
}

/// The HSS clients of a run: one per endpoint, found by region.
#[derive(Clone, Debug, Default)]
pub struct HssClients {
    /// Region to client; regions whose endpoint is the same share one client, and so one
    /// rate limiter.
    by_region: std::collections::BTreeMap<String, HssClient>,
    /// The client for any region not listed.
    fallback: Option<HssClient>,
}

impl HssClients {
    /// One client for every region (tests, the demo, a single `--endpoint`).
    pub fn single(client: HssClient) -> HssClients {
        HssClients {
            by_region: Default::default(),
            fallback: Some(client),
        }
    }

    /// Adds the client of `region`.
    pub fn insert(&mut self, region: String, client: HssClient) {
        self.by_region.insert(region, client);
    }

    /// The client of `region`.
    pub fn for_region(&self, region: &str) -> Option<&HssClient> {
        self.by_region.get(region).or(self.fallback.as_ref())
    }
}

/// `host[:port]` as reqwest sends it in the `Host` header (no port when it is the default).
pub(crate) fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    }
}

/// A request to `base`'s origin at `request_uri` with `headers`; credentials marked sensitive.
pub(crate) fn build_request(
    transport: &Transport,
    base: &Url,
    method: reqwest::Method,
    request_uri: &str,
    headers: &[(String, String)],
) -> Result<reqwest::RequestBuilder, ApiError> {
    let url = join(base, request_uri)?;
    let mut header_map = HeaderMap::new();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ApiError::Setup(format!("invalid header name {name}: {e}")))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| ApiError::Setup(format!("invalid value for header {name}")))?;
        if name == "authorization" || name == "x-auth-token" || name == "x-security-token" {
            value.set_sensitive(true);
        }
        header_map.insert(name, value);
    }
    Ok(transport.http.request(method, url).headers(header_map))
}

pub(crate) fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An [`ApiError::Status`] from an error answer: Huawei's code, message and request id
/// (body first, then `X-Request-Id`), and `Retry-After`.
pub(crate) fn status_error(
    operation: String,
    status: u16,
    body: &[u8],
    headers: &HeaderMap,
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
        request_id: body_request_id.or_else(|| header_text(headers, "x-request-id")),
        retry_after: header_text(headers, "retry-after").and_then(|v| parse_retry_after(&v)),
    }
}

/// `Retry-After` as seconds or as an HTTP date, capped at [`retry::MAX_RETRY_AFTER`] here,
/// where it enters, so that no path (backoff or rate limiter) can wait longer or overflow.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let after = if let Ok(seconds) = value.trim().parse::<u64>() {
        Duration::from_secs(seconds)
    } else {
        let date = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
        (date.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .ok()?
    };
    Some(after.min(retry::MAX_RETRY_AFTER))
}

/// An error and its sources, joined with `: `.
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
    use crate::signer;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn status_error_message_carries_huawei_code_message_and_request_id() {
        let error = status_error(
            "ListRegistry project p offset 0".to_owned(),
            429,
            br#"{"error_code":"APIG.0308","error_msg":"The throttling threshold has been reached","request_id":"r1"}"#,
            &headers(&[("x-request-id", "header-id"), ("retry-after", "3")]),
        );
        assert_eq!(
            error.to_string(),
            "ListRegistry project p offset 0 failed with HTTP 429: APIG.0308 The throttling threshold has been reached (request_id r1)"
        );
        assert_eq!(error.error_code(), Some("APIG.0308"));
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn status_error_with_non_json_body_keeps_an_excerpt_and_the_header_request_id() {
        let long = "x".repeat(1000);
        let error = status_error(
            "op".to_owned(),
            502,
            long.as_bytes(),
            &headers(&[("x-request-id", "h1")]),
        );
        let text = error.to_string();
        assert!(text.starts_with("op failed with HTTP 502: xxx"), "{text}");
        assert!(text.ends_with("(request_id h1)"), "{text}");
        assert!(text.len() < 300, "{text}");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("5"), Some(Duration::from_secs(5)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let parsed = parse_retry_after(&later).unwrap();
        assert!(
            parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30),
            "{parsed:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn retry_after_is_capped_however_large_or_far_away() {
        for value in [
            "86400".to_owned(),
            u64::MAX.to_string(),
            "Fri, 31 Dec 9999 23:59:59 GMT".to_owned(),
        ] {
            assert_eq!(
                parse_retry_after(&value),
                Some(retry::MAX_RETRY_AFTER),
                "{value}"
            );
        }
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
    fn host_has_a_port_only_when_it_is_not_the_default() {
        assert_eq!(
            host_of(&Url::parse("https://hss.cn-north-4.myhuaweicloud.com").unwrap()),
            "hss.cn-north-4.myhuaweicloud.com"
        );
        assert_eq!(host_of(&Url::parse("https://h:443/x").unwrap()), "h");
        assert_eq!(
            host_of(&Url::parse("http://127.0.0.1:8080").unwrap()),
            "127.0.0.1:8080"
        );
    }
}

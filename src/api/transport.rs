//! [`Transport`] sends any request to a Huawei API with retries, rate limiting and token
//! refresh, and turns error answers into [`ApiError`]s. It knows nothing of authentication
//! or of any one API: callers build each attempt's request.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use tracing::{debug, warn};
use url::Url;

use crate::api::dto::ErrorBody;
use crate::api::limiter::RateLimiter;
use crate::api::retry::{self, RetryPolicy};
use crate::api::ApiError;

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
}

/// Counts one answered (HTTP status) or unanswered (`error`) request.
fn record_request(api: &'static str, status: &str) {
    metrics::counter!("hss_sync_http_requests_total", "api" => api, "status" => status.to_owned())
        .increment(1);
}

fn transport_error(operation: &str, error: &reqwest::Error) -> ApiError {
    let chain = crate::errors::chain(error);
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

/// `base` with its path replaced by `request_uri` (which already holds base's path prefix).
pub(crate) fn join(base: &Url, request_uri: &str) -> Result<Url, ApiError> {
    let origin = base.origin().ascii_serialization();
    Url::parse(&format!("{origin}{request_uri}"))
        .map_err(|e| ApiError::Setup(format!("cannot form a request URL from {base}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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

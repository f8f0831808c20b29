//! How requests prove who sends them: AK/SK signing, a given IAM token, or IAM tokens
//! fetched with a password (`POST /v3/auth/tokens`), cached and refreshed before expiry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::sync::Mutex;
use tracing::{debug, info};
use url::Url;

use crate::api::dto::TokenResponse;
use crate::api::transport::{join, status_error, Attempts, Call, Transport};
use crate::api::ApiError;
use crate::signer::{self, Credentials, RequestToSign};

/// A token is fetched again when less than this share of its lifetime is left, and at the
/// latest an hour before it expires (IAM tokens live 24 h).
const REFRESH_AT_REMAINING_FRACTION: f64 = 0.25;
const REFRESH_AT_REMAINING_MAX: ChronoDuration = ChronoDuration::hours(1);

/// How a request is authenticated.
#[derive(Clone)]
pub enum Auth {
    /// AK/SK request signing (`SDK-HMAC-SHA256`), as Huawei's SDKs do.
    AkSk(Credentials),
    /// A given IAM token, sent as `X-Auth-Token`.
    Token(SecretString),
    /// IAM tokens fetched with a password, one per project (and one for the account).
    Iam(Arc<IamTokens>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::AkSk(credentials) => f.debug_tuple("AkSk").field(credentials).finish(),
            Auth::Token(_) => f.write_str("Token([redacted])"),
            Auth::Iam(tokens) => f.debug_tuple("Iam").field(&tokens.password).finish(),
        }
    }
}

/// Whom a request acts for: a project (regional services such as HSS) or the account
/// (global services such as IAM and EPS).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A project id: `X-Project-Id`, or a project-scoped token.
    Project(String),
    /// The account: `X-Domain-Id` when known, or a domain-scoped token.
    Domain(Option<String>),
}

/// A request before authentication.
#[derive(Debug)]
pub(crate) struct Unprepared<'a> {
    /// `host[:port]` as sent.
    pub(crate) host: &'a str,
    /// The method.
    pub(crate) method: &'a str,
    /// The unencoded path.
    pub(crate) path: &'a str,
    /// The unencoded query pairs.
    pub(crate) query: &'a [(String, String)],
    /// The headers so far.
    pub(crate) headers: Vec<(String, String)>,
}

/// A request ready to send: the target URI and every header.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) request_uri: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Auth {
    /// Adds authentication to a request.
    ///
    /// `force_refresh` fetches a new IAM token even when the cached one looks valid (after
    /// a "token must be updated" answer).
    pub(crate) async fn prepare(
        &self,
        request: Unprepared<'_>,
        target: &Target,
        force_refresh: bool,
    ) -> Result<Prepared, ApiError> {
        let Unprepared {
            host,
            method,
            path,
            query,
            mut headers,
        } = request;
        match target {
            Target::Project(project_id) => {
                headers.push(("X-Project-Id".to_owned(), project_id.clone()))
            }
            Target::Domain(Some(domain_id)) => {
                headers.push(("X-Domain-Id".to_owned(), domain_id.clone()))
            }
            Target::Domain(None) => {}
        }
        let token = match self {
            Auth::AkSk(credentials) => {
                let request = RequestToSign {
                    method,
                    host,
                    path,
                    query,
                    headers: &headers,
                    body: b"",
                };
                let signed = signer::sign(&request, credentials, Utc::now());
                headers.extend(signed.headers_to_send);
                return Ok(Prepared {
                    request_uri: signed.request_uri,
                    headers,
                });
            }
            Auth::Token(token) => token.clone(),
            Auth::Iam(tokens) => tokens.token(target, force_refresh).await?,
        };
        headers.push(("X-Auth-Token".to_owned(), token.expose_secret().to_owned()));
        Ok(Prepared {
            request_uri: request_uri(path, query),
            headers,
        })
    }

    /// What to tell the user when the API refuses these credentials: which settings to
    /// check. Huawei locks an access key for five minutes after five refusals, so a run
    /// stops at the first.
    pub fn refusal_hint(&self) -> &'static str {
        match self {
            Auth::AkSk(_) => {
                "the access key was refused: check CLOUD_SDK_AK/CLOUD_SDK_SK and the clock"
            }
            Auth::Token(_) => "the token was refused: check HSS_SYNC_AUTH_TOKEN",
            Auth::Iam(_) => {
                "IAM refused the credentials: check HSS_SYNC_IAM_DOMAIN, HSS_SYNC_IAM_USER and HSS_SYNC_IAM_PASSWORD"
            }
        }
    }

    /// Whether a "token must be updated" answer can be cured by fetching a new token.
    pub(crate) fn can_refresh(&self) -> bool {
        matches!(self, Auth::Iam(_))
    }
}

/// The path and, when there is one, `?` and the canonical query (the wire query the
/// signer uses too, so every mode sends the same bytes).
pub(crate) fn request_uri(path: &str, query: &[(String, String)]) -> String {
    let query = signer::canonical_query_string(query);
    let path: Vec<String> = path.split('/').map(signer::encode).collect();
    let path = path.join("/");
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

/// IAM user credentials for the password method.
#[derive(Clone)]
pub struct IamPassword {
    /// The account (domain) name.
    pub domain: String,
    /// The IAM user name.
    pub user: String,
    /// The password.
    pub password: SecretString,
}

impl std::fmt::Debug for IamPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IamPassword")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A cache of IAM tokens, one per target, fetched with a password.
pub struct IamTokens {
    /// Sends the token requests.
    transport: Transport,
    /// The IAM endpoint, for example `https://iam.cn-north-4.myhuaweicloud.com`.
    endpoint: Url,
    /// Who asks.
    password: IamPassword,
    /// Tokens by target; one lock, so that concurrent scopes wait for one fetch.
    cache: Mutex<HashMap<Target, CachedToken>>,
    /// Tokens fetched so far.
    n_issued: AtomicU64,
}

struct CachedToken {
    token: SecretString,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl CachedToken {
    fn needs_refresh(&self, now: DateTime<Utc>) -> bool {
        let lifetime = self.expires_at - self.issued_at;
        let margin = ChronoDuration::milliseconds(
            (lifetime.num_milliseconds() as f64 * REFRESH_AT_REMAINING_FRACTION) as i64,
        )
        .min(REFRESH_AT_REMAINING_MAX);
        now + margin >= self.expires_at
    }
}

impl IamTokens {
    /// A token cache for `password` at the IAM `endpoint`.
    pub fn new(transport: Transport, endpoint: Url, password: IamPassword) -> IamTokens {
        IamTokens {
            transport,
            endpoint,
            password,
            cache: Mutex::new(HashMap::new()),
            n_issued: AtomicU64::new(0),
        }
    }

    /// Tokens fetched so far.
    pub fn n_issued(&self) -> u64 {
        self.n_issued.load(Ordering::Relaxed)
    }

    /// A valid token for `target`, from the cache unless it is near expiry or `force`.
    ///
    /// # Errors
    ///
    /// [`ApiError`] when IAM refuses the password or cannot be reached.
    pub async fn token(&self, target: &Target, force: bool) -> Result<SecretString, ApiError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.get(target) {
            if !force && !cached.needs_refresh(Utc::now()) {
                return Ok(cached.token.clone());
            }
        }
        let fresh = self.fetch(target).await?;
        let token = fresh.token.clone();
        cache.insert(target.clone(), fresh);
        Ok(token)
    }

    async fn fetch(&self, target: &Target) -> Result<CachedToken, ApiError> {
        let scope = match target {
            Target::Project(id) => json!({"project": {"id": id}}),
            Target::Domain(_) => json!({"domain": {"name": self.password.domain}}),
        };
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "domain": {"name": self.password.domain},
                "name": self.password.user,
                "password": self.password.password.expose_secret(),
            }}},
            "scope": scope,
        }});
        let body = serde_json::to_vec(&body).map_err(|e| ApiError::Setup(e.to_string()))?;
        let operation = match target {
            Target::Project(id) => format!("IAM token for project {id}"),
            Target::Domain(_) => format!("IAM token for account {}", self.password.domain),
        };
        let path = format!(
            "{}/v3/auth/tokens",
            self.endpoint.path().trim_end_matches('/')
        );
        let url = join(
            &self.endpoint,
            &request_uri(&path, &[("nocatalog".to_owned(), "true".to_owned())]),
        )?;
        let mut attempts = Attempts::default();
        let token = self
            .transport
            .execute(
                Call {
                    operation: &operation,
                    api: "CreateToken",
                    limiter: None,
                    can_refresh_token: false,
                },
                &mut attempts,
                |_force| {
                    let request = self
                        .transport
                        .http
                        .post(url.clone())
                        .header("Content-Type", "application/json;charset=utf8")
                        .body(body.clone());
                    Box::pin(async move { Ok(request) })
                },
                |status, headers, bytes| {
                    if !status.is_success() {
                        return Err(status_error(
                            operation.clone(),
                            status.as_u16(),
                            bytes,
                            headers,
                        ));
                    }
                    let token = headers
                        .get("x-subject-token")
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| ApiError::Decode {
                            operation: operation.clone(),
                            detail: "no X-Subject-Token header".to_owned(),
                            request_id: None,
                        })?;
                    let parsed: TokenResponse =
                        serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
                            operation: operation.clone(),
                            detail: e.to_string(),
                            request_id: None,
                        })?;
                    let expires_at =
                        parse_time(&parsed.token.expires_at).ok_or_else(|| ApiError::Decode {
                            operation: operation.clone(),
                            detail: format!(
                                "expires_at {:?} is not a time",
                                parsed.token.expires_at
                            ),
                            request_id: None,
                        })?;
                    let issued_at = parsed
                        .token
                        .issued_at
                        .as_deref()
                        .and_then(parse_time)
                        .unwrap_or_else(Utc::now);
                    Ok(CachedToken {
                        token: SecretString::from(token.to_owned()),
                        issued_at,
                        expires_at,
                    })
                },
            )
            .await?;
        self.n_issued.fetch_add(1, Ordering::Relaxed);
        info!(
            expires_at = %token.expires_at,
            "fetched an {operation} valid until {}",
            token.expires_at
        );
        debug!(n_requests = attempts.n_requests, "token request attempts");
        Ok(token)
    }
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_refreshed_in_the_last_quarter_of_its_life_or_its_last_hour() {
        let issued_at = Utc::now();
        let day = CachedToken {
            token: SecretString::from("t"),
            issued_at,
            expires_at: issued_at + ChronoDuration::hours(24),
        };
        assert!(!day.needs_refresh(issued_at + ChronoDuration::hours(22)));
        assert!(day.needs_refresh(issued_at + ChronoDuration::minutes(23 * 60 + 1)));
        let short = CachedToken {
            token: SecretString::from("t"),
            issued_at,
            expires_at: issued_at + ChronoDuration::seconds(8),
        };
        assert!(!short.needs_refresh(issued_at + ChronoDuration::seconds(5)));
        assert!(short.needs_refresh(issued_at + ChronoDuration::seconds(7)));
    }

    #[test]
    fn request_uri_uses_the_canonical_query() {
        let query = [
            ("b".to_owned(), "x y".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ];
        assert_eq!(
            request_uri("/v3/projects", &query),
            "/v3/projects?a=1&b=x%20y"
        );
        assert_eq!(request_uri("/v3/projects", &[]), "/v3/projects");
    }

    #[test]
    fn debug_output_hides_passwords_and_tokens() {
        let password = IamPassword {
            domain: "acme".to_owned(),
            user: "bot".to_owned(),
            password: SecretString::from("hunter2"),
        };
        assert!(!format!("{password:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::Token(SecretString::from("tok-123"))).contains("tok-123"));
    }
}

//! How every simulated service authenticates a request, AK/SK or token, as APIG does in front of
//! HSS, IAM and EPS alike; only the error bodies differ per service (docs/huawei-api.md §3, §4, §5).
//!
//! Authentication is on when `credentials`, `iam_user` or `accepted_tokens` is set (see the `sim`
//! module docs for the answers to each failure).

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};

use super::http::huawei_error;
use super::verify::{self, ReceivedRequest, VerifyError};
use super::State as SimState;

/// Request header carrying a token.
pub const AUTH_TOKEN_HEADER: &str = "x-auth-token";

/// A token issued by the simulated IAM.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The project the token is scoped to; `None` for a domain-scoped token.
    pub project_id: Option<String>,
    /// When IAM issued it.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted; moved to "now" by [`super::Simulator::expire_tokens`].
    pub expires_at: DateTime<Utc>,
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

/// The quota key of a token: a short fingerprint, so the token itself is never kept outside `tokens`.
fn token_user_key(token: &str) -> String {
    use sha2::{Digest, Sha256};
    format!(
        "token:{}",
        &hex::encode(Sha256::digest(token.as_bytes()))[..16]
    )
}

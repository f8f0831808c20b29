//! [`ApiError`]: how a call to a Huawei API failed, with Huawei's code, message and request id.

use std::time::Duration;

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

    /// Huawei's `request_id` (`X-Request-Id`) of the answer, when one came with it.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Status { request_id, .. } | ApiError::Decode { request_id, .. } => {
                request_id.as_deref()
            }
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

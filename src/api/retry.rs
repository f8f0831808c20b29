//! Which failed requests are tried again, and how long to wait first.
//!
//! Huawei's SDKs retry nothing by default; Terraform's provider retries 429 and connection
//! errors with exponential backoff. We retry throttling (`429`, `APIG.0308`/`APIGW.0308`),
//! 5xx other than 501, connection errors, timeouts and bodies that are not the expected JSON,
//! with capped exponential backoff and jitter, and honour `Retry-After`. We never retry an
//! authentication failure (`*.0301`): five of them lock the access key for five minutes.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::api::ApiError;

/// Retries after the first attempt, by default. With the default delays a request is given
/// up about a minute and a half after it first failed.
pub const DEFAULT_MAX_RETRIES: u32 = 5;

/// The first backoff delay. Huawei's FAQs suggest retrying throttled calls after 2 to 5 s;
/// jitter spreads the first retry over 1 to 2 s and the next ones double.
pub const DEFAULT_BASE_DELAY: Duration = Duration::from_secs(2);

/// The longest backoff delay, as in Huawei's SDK retry strategies (`MaxDelay = 60 s`).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// The longest `Retry-After` honoured: a server asking for more is asking for a pause
/// longer than a run should sit idle, and the request is retried after this instead.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How failed requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The first delay.
    pub base_delay: Duration,
    /// The cap on a backoff delay (a server's `Retry-After` may ask for longer).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: DEFAULT_MAX_RETRIES,
            base_delay: DEFAULT_BASE_DELAY,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The delays before each retry, in order: exponential with jitter, capped.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries as usize)
            .with_jitter()
            .build()
    }

    /// The delay before retrying after `error`, given the backoff's own next delay:
    /// `Retry-After` when the server sent one (up to [`MAX_RETRY_AFTER`]), else the backoff's.
    pub fn delay_for(&self, error: &ApiError, backoff: Duration) -> Duration {
        match error.retry_after() {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => backoff,
        }
    }
}

/// Whether a failed request may be tried again.
pub fn is_retryable(error: &ApiError) -> bool {
    match error {
        ApiError::Status {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or_default();
            if is_authentication_failure(code) {
                return false;
            }
            *status == 429 || code.ends_with(".0308") || (*status >= 500 && *status != 501)
        }
        ApiError::Decode { .. } => true,
        ApiError::Transport { unresolved, .. } => !unresolved,
        _ => false,
    }
}

/// Whether Huawei's code says the credentials were refused (`APIG.0301`, `APIGW.0301`).
pub fn is_authentication_failure(error_code: &str) -> bool {
    matches!(error_code, "APIG.0301" | "APIGW.0301")
}

/// Whether an answer refused the credentials themselves: APIG's `*.0301`, or IAM's 401
/// for a wrong password (a token that must merely be refreshed, `*.0307`, is not).
pub fn is_credential_refusal(error: &ApiError) -> bool {
    match error {
        ApiError::Status {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or_default();
            is_authentication_failure(code) || (*status == 401 && !code.ends_with(".0307"))
        }
        _ => false,
    }
}

/// Whether Huawei's code says an IAM token must be fetched again (`APIG.0307`, `APIGW.0307`).
pub fn is_token_expired(error: &ApiError) -> bool {
    matches!(error.error_code(), Some("APIG.0307" | "APIGW.0307"))
}

/// Whether the request was refused for throttling.
pub fn is_throttled(error: &ApiError) -> bool {
    error.status() == Some(429) || error.error_code().is_some_and(|c| c.ends_with(".0308"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, code: Option<&str>) -> ApiError {
        ApiError::Status {
            operation: "op".to_owned(),
            status,
            error_code: code.map(str::to_owned),
            error_msg: None,
            request_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn throttling_server_errors_and_broken_answers_are_retried() {
        assert!(is_retryable(&status(429, Some("APIG.0308"))));
        assert!(is_retryable(&status(400, Some("APIGW.0308"))));
        for code in [500, 502, 503, 504] {
            assert!(is_retryable(&status(code, None)), "{code}");
        }
        assert!(is_retryable(&ApiError::Decode {
            operation: "op".to_owned(),
            detail: "eof".to_owned(),
            request_id: None
        }));
        assert!(is_retryable(&ApiError::Transport {
            operation: "op".to_owned(),
            detail: "reset".to_owned(),
            timeout: false,
            unresolved: false,
        }));
        assert!(!is_retryable(&ApiError::Transport {
            operation: "op".to_owned(),
            detail: "dns error".to_owned(),
            timeout: false,
            unresolved: true,
        }));
    }

    #[test]
    fn authentication_client_errors_and_not_implemented_are_not_retried() {
        assert!(!is_retryable(&status(401, Some("APIG.0301"))));
        assert!(!is_retryable(&status(500, Some("APIGW.0301"))));
        assert!(!is_retryable(&status(403, Some("HSS.0013"))));
        assert!(!is_retryable(&status(400, Some("HSS.0001"))));
        assert!(!is_retryable(&status(501, None)));
    }

    #[test]
    fn refused_keys_and_passwords_are_credential_refusals_and_nothing_else_is() {
        assert!(is_credential_refusal(&status(401, Some("APIG.0301"))));
        assert!(is_credential_refusal(&status(400, Some("APIGW.0301"))));
        assert!(is_credential_refusal(&status(401, Some("401"))));
        assert!(is_credential_refusal(&status(401, None)));
        assert!(!is_credential_refusal(&status(401, Some("APIG.0307"))));
        assert!(!is_credential_refusal(&status(403, Some("HSS.0013"))));
        assert!(!is_credential_refusal(&status(429, Some("APIG.0308"))));
    }

    #[test]
    fn delays_grow_are_capped_and_stop_after_max_retries() {
        let policy = RetryPolicy {
            max_retries: 6,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
        };
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(delays.len(), 6);
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(100)));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_millis(2000)),
            "{delays:?}"
        );
        assert!(delays[3] >= Duration::from_millis(800), "{delays:?}");
        assert_eq!(RetryPolicy::none().delays().count(), 0);
    }

    #[test]
    fn retry_after_wins_over_the_backoff_but_is_capped() {
        let policy = RetryPolicy {
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let mut error = status(429, Some("APIG.0308"));
        if let ApiError::Status { retry_after, .. } = &mut error {
            *retry_after = Some(Duration::from_secs(7));
        }
        assert_eq!(
            policy.delay_for(&error, Duration::from_secs(1)),
            Duration::from_secs(7)
        );
        if let ApiError::Status { retry_after, .. } = &mut error {
            *retry_after = Some(Duration::from_secs(3600));
        }
        assert_eq!(
            policy.delay_for(&error, Duration::from_secs(1)),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            policy.delay_for(&status(503, None), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}

//! What the global services (IAM and EPS) do around every answer: latency, authentication with the
//! service's own refusal, the `X-Domain-Id` check for AK/SK callers (docs/huawei-api.md §6), and the
//! request log.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

use super::auth::{auth_kind, authenticate, AuthFailure};
use super::http::{iam_error, new_request_id};
use super::verify::ReceivedRequest;
use super::{RequestRecord, Simulator, State as SimState, API_LIST_AUTH_DOMAINS};

/// A request to a global service (IAM, EPS), as the handlers receive it (an axum extractor).
pub(crate) struct GlobalRequest {
    /// HTTP method.
    pub(crate) method: Method,
    /// Path and query as received.
    pub(crate) uri: Uri,
    /// Request headers.
    pub(crate) headers: HeaderMap,
    /// Request body.
    pub(crate) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for GlobalRequest {
    type Rejection = BytesRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await?;
        Ok(GlobalRequest {
            method,
            uri,
            headers,
            body,
        })
    }
}

/// What every global-service listing does around its answer: latency (see
/// [`Simulator::answer_at`]), authentication (the
/// service's own refusal from `refuse`), the `X-Domain-Id` check (but for `ListAuthDomains`,
/// which is how a caller learns its domain id), and the request log.
pub(crate) async fn serve_global(
    simulator: &Simulator,
    api: &str,
    request: GlobalRequest,
    refuse: fn(&AuthFailure, &str) -> Response,
    answer: impl FnOnce(&SimState, &GlobalRequest, &str) -> Response,
) -> Response {
    let answer_at = simulator.answer_at();
    let request_id = new_request_id();
    let response = {
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
        let mut record = base_record(api, &request, &request_id, &response);
        record.had_valid_signature = authenticated.is_ok_and(|a| a.valid_signature);
        state.log_request(record);
        response
    };
    tokio::time::sleep_until(answer_at).await;
    response
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

/// The record of an answered IAM or EPS request.
pub(crate) fn base_record(
    api: &str,
    request: &GlobalRequest,
    request_id: &str,
    response: &Response,
) -> RequestRecord {
    RequestRecord {
        status: response.status().as_u16(),
        request_id: request_id.to_string(),
        ..RequestRecord::received(
            api,
            auth_kind(&request.headers),
            &request.method,
            &request.uri,
        )
    }
}

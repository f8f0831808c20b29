//! Huawei's HTTP conventions, shared by every simulated service: error bodies, request ids,
//! JSON responses, query decoding and APIG's 404 for an unknown route.
//!
//! HSS, EPS and APIG answer errors as `{"error_code","error_msg","request_id"}` with the same id in
//! the `X-Request-Id` header; IAM answers `{"error":{"code","title","message"}}`
//! (docs/huawei-api.md §5). Nothing here knows a route or the simulator's state.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::verify;

/// Response header carrying the request id, as on Huawei's gateways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A Huawei error response: `{"error_code","error_msg","request_id"}` plus the `X-Request-Id` header.
pub fn huawei_error(
    status: StatusCode,
    error_code: &str,
    error_msg: &str,
    request_id: &str,
) -> Response {
    json_response(
        status,
        request_id,
        &json!({"error_code": error_code, "error_msg": error_msg, "request_id": request_id}),
    )
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

/// A fresh request id: 32 lower-case hex characters, like Huawei's.
pub fn new_request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Split a raw query into percent-decoded pairs, keeping `+` literal as the verifier does.
pub fn decode_query_pairs(raw_query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| String::from_utf8_lossy(&verify::percent_decode(s)).into_owned();
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(piece), String::new()),
        })
        .collect()
}

/// The first value of `name` that is not empty.
pub(crate) fn first_value<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// A JSON response with Huawei's content type and the `X-Request-Id` header.
pub(crate) fn json_response(status: StatusCode, request_id: &str, body: &Value) -> Response {
    raw_json_response(status, request_id, body.to_string())
}

/// A response with exactly `body`, Huawei's JSON content type and the `X-Request-Id` header.
pub(crate) fn raw_json_response(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// APIG's answer to a route it does not know: 404 `APIG.0101`.
pub(crate) async fn api_not_found() -> Response {
    huawei_error(
        StatusCode::NOT_FOUND,
        "APIG.0101",
        "The API does not exist or has not been published in the environment",
        &new_request_id(),
    )
}

/// Give every response an `X-Request-Id`, including axum's own rejections and the admin routes.
pub(crate) async fn ensure_request_id_header(mut response: Response) -> Response {
    if !response.headers().contains_key(REQUEST_ID_HEADER) {
        if let Ok(value) = HeaderValue::from_str(&new_request_id()) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }
    response
}

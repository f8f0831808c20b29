//! Independent verifier for Huawei Cloud's `SDK-HMAC-SHA256` request signatures.
//!
//! This is deliberately a second implementation of the algorithm, written from Huawei's SDK sources and
//! the API-signing guide (docs/huawei-api.md §3), and sharing no code with the client's `signer`.
//! It works from the request *as received*: the method, the raw path, the raw query string, the headers
//! named in `SignedHeaders` and the body bytes.
//! A bug in the client's signer therefore shows up as a rejected request instead of being mirrored here.
//!
//! Everything in this file is pure: the clock is passed in, so the unit tests can use the fixed
//! `X-Sdk-Date` values of the Huawei SDK vectors.
//!
//! The verifier never puts the secret key or the received signature into an error, so errors are safe to
//! log and to return to the caller.

use std::fmt::Write as _;
use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::SimCredentials;

/// The only algorithm name APIG accepts for AK/SK signing with SHA-256.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// Format of the `X-Sdk-Date` header (Go layout `20060102T150405Z`, Python `%Y%m%dT%H%M%SZ`), always UTC.
pub const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Header carrying the signing time; it must be one of the signed headers.
pub const SDK_DATE_HEADER: &str = "x-sdk-date";

/// Header that, when present, replaces the hex SHA-256 of the body in the canonical request.
/// The SDKs set it to `UNSIGNED-PAYLOAD` for non-JSON bodies.
pub const CONTENT_SHA256_HEADER: &str = "x-sdk-content-sha256";

/// A request as the simulator received it, borrowed from the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedRequest<'a> {
    /// HTTP method, e.g. `GET`; upper-cased before use.
    pub method: &'a str,
    /// The path exactly as received, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string after `?`, still percent-encoded; `None` when the URI has no `?`.
    pub query: Option<&'a str>,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The request body bytes (empty for `GET`).
    pub body: &'a [u8],
}

/// The parts of an `Authorization: SDK-HMAC-SHA256 ...` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAuthorization {
    /// The access key id (`Access=`); not secret, APIG echoes it in errors.
    pub access_key: String,
    /// The lower-case header names from `SignedHeaders=`, in the order given.
    pub signed_headers: Vec<String>,
    /// The hex signature (`Signature=`); never put it in logs or error bodies.
    pub signature: String,
}

/// Why a request's signature was rejected.
///
/// Messages are safe to log: they never contain the secret key or the received signature.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request has no `Authorization` header.
    #[error("authorization header is missing")]
    MissingAuthorization,
    /// The `Authorization` header is not valid `SDK-HMAC-SHA256 Access=.., SignedHeaders=.., Signature=..`.
    #[error("authorization header is malformed: {0}")]
    MalformedAuthorization(String),
    /// The access key in the header is not the simulator's.
    #[error("access key {access_key} does not exist")]
    UnknownAccessKey {
        /// The access key id the request named.
        access_key: String,
    },
    /// `X-Sdk-Date` is missing, unsigned or not in `YYYYMMDDTHHMMSSZ` form.
    #[error("x-sdk-date is missing, unsigned or malformed: {0}")]
    BadSdkDate(String),
    /// `X-Sdk-Date` is further from the server clock than the allowed skew.
    #[error("x-sdk-date is {skew_seconds} s away from server time, more than the allowed {max_skew_seconds} s")]
    ClockSkew {
        /// Absolute difference between `X-Sdk-Date` and the server clock.
        skew_seconds: u64,
        /// The configured maximum.
        max_skew_seconds: u64,
    },
    /// A header listed in `SignedHeaders` is absent, repeated or not valid UTF-8.
    #[error("signed header {0} is missing, repeated or not valid utf-8")]
    SignedHeaderUnusable(String),
    /// The recomputed signature differs from the one in the request.
    #[error("signature does not match the request")]
    SignatureMismatch,
}

impl VerifyError {
    /// The `error_msg` APIG returns (with `APIG.0301`, HTTP 401) for this failure.
    ///
    /// APIG's real texts all start with "Incorrect IAM authentication information: "; the suffixes follow the
    /// variants seen in Huawei's FAQs ("verify aksk signature fail", "ak ... not exist", "signature expired").
    pub fn apig_error_msg(&self) -> String {
        let detail = match self {
            VerifyError::MissingAuthorization => "authorization not found".to_string(),
            VerifyError::MalformedAuthorization(_) => {
                "unsupported or malformed authorization header".into()
            }
            VerifyError::UnknownAccessKey { access_key } => format!("ak {access_key} not exist"),
            VerifyError::BadSdkDate(_) => "x-sdk-date is missing, unsigned or malformed".into(),
            VerifyError::ClockSkew { .. } => "signature expired".into(),
            VerifyError::SignedHeaderUnusable(_) | VerifyError::SignatureMismatch => {
                "verify aksk signature fail".into()
            }
        };
        format!("Incorrect IAM authentication information: {detail}")
    }
}

/// Verify the `SDK-HMAC-SHA256` signature of `request` against `credentials`, with `now` as the server clock.
///
/// Checks, in order: the header parses and names [`ALGORITHM`]; the access key matches; `SignedHeaders`
/// contains `x-sdk-date`; `X-Sdk-Date` parses and lies within `max_clock_skew` of `now`; the signature
/// recomputed from the request equals the one sent (compared in constant time).
/// `host` is not required to be signed, because the Go SDK signs no `Host` header.
///
/// # Errors
/// Returns the first failed check as a [`VerifyError`].
pub fn verify_request(
    request: &ReceivedRequest<'_>,
    credentials: &SimCredentials,
    now: DateTime<Utc>,
    max_clock_skew: Duration,
) -> Result<ParsedAuthorization, VerifyError> {
    let mut authorizations = request
        .headers
        .get_all(axum::http::header::AUTHORIZATION)
        .iter();
    let authorization = authorizations
        .next()
        .ok_or(VerifyError::MissingAuthorization)?
        .to_str()
        .map_err(|_| VerifyError::MalformedAuthorization("not valid ascii".into()))?;
    // Two Authorization headers would let a proxy and the verifier disagree about which one counts.
    if authorizations.next().is_some() {
        return Err(VerifyError::MalformedAuthorization(
            "more than one authorization header".into(),
        ));
    }
    let parsed = parse_authorization(authorization)?;
    if parsed.access_key != credentials.access_key {
        return Err(VerifyError::UnknownAccessKey {
            access_key: parsed.access_key,
        });
    }
    if !parsed.signed_headers.iter().any(|h| h == SDK_DATE_HEADER) {
        return Err(VerifyError::BadSdkDate(
            "x-sdk-date is not a signed header".into(),
        ));
    }
    let sdk_date = single_header_value(request.headers, SDK_DATE_HEADER)
        .map_err(|_| VerifyError::BadSdkDate("x-sdk-date header is missing or repeated".into()))?;
    let signed_at = parse_sdk_date(sdk_date)?;
    let skew = (now - signed_at).abs().to_std().unwrap_or(Duration::MAX);
    if skew > max_clock_skew {
        return Err(VerifyError::ClockSkew {
            skew_seconds: skew.as_secs(),
            max_skew_seconds: max_clock_skew.as_secs(),
        });
    }

    let signed_headers: Vec<&str> = parsed.signed_headers.iter().map(String::as_str).collect();
    let canonical = canonical_request(request, &signed_headers)?;
    let to_sign = string_to_sign(sdk_date, &canonical);
    let received = hex::decode(&parsed.signature).map_err(|_| VerifyError::SignatureMismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(credentials.secret_key.as_bytes())
        .expect("hmac accepts keys of any length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&received)
        .map_err(|_| VerifyError::SignatureMismatch)?;
    Ok(parsed)
}

/// Parse `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`.
///
/// `SignedHeaders` must be non-empty, lower-case, sorted and free of duplicates: both SDKs send it that
/// way, and being strict here catches a client that would only work if APIG happened to re-sort.
///
/// # Errors
/// [`VerifyError::MalformedAuthorization`] naming what is wrong (never the signature value).
pub fn parse_authorization(header: &str) -> Result<ParsedAuthorization, VerifyError> {
    let malformed = |why: &str| VerifyError::MalformedAuthorization(why.to_string());
    let (algorithm, rest) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| malformed("expected an algorithm followed by parameters"))?;
    if algorithm != ALGORITHM {
        return Err(malformed("algorithm is not SDK-HMAC-SHA256"));
    }
    let (mut access_key, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("parameter without '='"))?;
        let slot = match key {
            "Access" => &mut access_key,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed("unknown parameter")),
        };
        if slot.replace(value.to_string()).is_some() {
            return Err(malformed("repeated parameter"));
        }
    }
    let access_key = access_key
        .filter(|v| !v.is_empty())
        .ok_or_else(|| malformed("Access is missing"))?;
    let signature = signature
        .filter(|v| !v.is_empty())
        .ok_or_else(|| malformed("Signature is missing"))?;
    let signed_headers: Vec<String> = signed_headers
        .filter(|v| !v.is_empty())
        .ok_or_else(|| malformed("SignedHeaders is missing"))?
        .split(';')
        .map(str::to_string)
        .collect();
    if signed_headers
        .iter()
        .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(malformed(
            "SignedHeaders must be non-empty lower-case names",
        ));
    }
    if signed_headers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(malformed("SignedHeaders must be sorted and unique"));
    }
    Ok(ParsedAuthorization {
        access_key,
        signed_headers,
        signature,
    })
}

/// Parse an `X-Sdk-Date` value (`YYYYMMDDTHHMMSSZ`, UTC).
///
/// # Errors
/// [`VerifyError::BadSdkDate`] when the value does not have that exact form.
pub fn parse_sdk_date(value: &str) -> Result<DateTime<Utc>, VerifyError> {
    NaiveDateTime::parse_from_str(value, SDK_DATE_FORMAT)
        .map(|naive| naive.and_utc())
        .map_err(|_| VerifyError::BadSdkDate(format!("{value:?} is not YYYYMMDDTHHMMSSZ")))
}

/// Build the canonical request for `request`, signing the headers named in `signed_headers` in that order.
///
/// # Errors
/// [`VerifyError::SignedHeaderUnusable`] when a signed header is absent, repeated or not UTF-8.
pub fn canonical_request(
    request: &ReceivedRequest<'_>,
    signed_headers: &[&str],
) -> Result<String, VerifyError> {
    let mut canonical = String::new();
    canonical.push_str(&request.method.to_ascii_uppercase());
    canonical.push('\n');
    canonical.push_str(&canonical_uri(request.path));
    canonical.push('\n');
    canonical.push_str(&canonical_query_string(request.query.unwrap_or("")));
    canonical.push('\n');
    for name in signed_headers {
        let value = single_header_value(request.headers, name)?;
        let _ = writeln!(canonical, "{name}:{}", value.trim());
    }
    canonical.push('\n');
    canonical.push_str(&signed_headers.join(";"));
    canonical.push('\n');
    match request.headers.get(CONTENT_SHA256_HEADER) {
        Some(value) => canonical.push_str(
            value
                .to_str()
                .map_err(|_| VerifyError::SignedHeaderUnusable(CONTENT_SHA256_HEADER.into()))?,
        ),
        None => canonical.push_str(&hex::encode(Sha256::digest(request.body))),
    }
    Ok(canonical)
}

/// `SDK-HMAC-SHA256 \n X-Sdk-Date \n hex(sha256(canonical_request))`.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Canonical URI: percent-decode the received path (as the Python SDK does), re-encode each `/`-separated
/// segment, and append `/` when the result does not already end with one.
pub fn canonical_uri(raw_path: &str) -> String {
    let decoded = percent_decode(raw_path);
    let mut uri = String::with_capacity(decoded.len() + 1);
    for (i, segment) in decoded.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            uri.push('/');
        }
        percent_encode_into(segment, &mut uri);
    }
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Canonical query string from a raw received query.
///
/// Pairs are split on `&` and the first `=`; a piece without `=` (Go's wire form for an empty value) is a
/// key with an empty value. Keys and values are percent-decoded with `+` kept as a literal plus, because
/// the SDKs encode a space as `%20` and a plus as `%2B`. The pairs are sorted by key, then by value, and
/// re-encoded as `enc(k)=enc(v)` joined by `&`.
pub fn canonical_query_string(raw_query: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((key, value)) => (percent_decode(key), percent_decode(value)),
            None => (percent_decode(piece), Vec::new()),
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 8);
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        percent_encode_into(key, &mut out);
        out.push('=');
        percent_encode_into(value, &mut out);
    }
    out
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits is kept literally, and `+` stays `+`.
pub fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Append `bytes` to `out`, keeping `A-Z a-z 0-9 - _ . ~` and writing every other byte as upper-case `%XX`.
fn percent_encode_into(bytes: &[u8], out: &mut String) {
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// The value of a header that must appear exactly once and be valid UTF-8.
fn single_header_value<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, VerifyError> {
    let unusable = || VerifyError::SignedHeaderUnusable(name.to_string());
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or_else(unusable)?;
    if values.next().is_some() {
        return Err(unusable());
    }
    std::str::from_utf8(value.as_bytes()).map_err(|_| unusable())
}

#[cfg(test)]
mod tests;

//! AK/SK request signing for Huawei Cloud APIs (`SDK-HMAC-SHA256`).
//!
//! Huawei has no Rust SDK, so this module re-implements the signer of its Python SDK
//! (`huaweicloudsdkcore.signer.Signer`) byte for byte.
//! The test vectors in `tests/fixtures/sdk-hmac-sha256-vectors.json` were produced by that class.
//!
//! The module is pure: the clock, the credentials and the request parts are passed in, and nothing here
//! does IO or reads the environment.
//!
//! ```text
//! CanonicalRequest = Method "\n" CanonicalURI "\n" CanonicalQueryString "\n"
//!                    CanonicalHeaders "\n" SignedHeaders "\n" HexSHA256(body)
//! StringToSign     = "SDK-HMAC-SHA256" "\n" X-Sdk-Date "\n" HexSHA256(CanonicalRequest)
//! Signature        = hex(HMAC-SHA256(key = SK bytes, msg = StringToSign))
//! Authorization    = "SDK-HMAC-SHA256 Access=" AK ", SignedHeaders=" h1;h2 ", Signature=" sig
//! ```
//!
//! Which headers are signed follows the Python SDK:
//! every header whose name has no `_`, plus `host` and `x-sdk-date`, plus `x-security-token` for
//! temporary credentials.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The algorithm name that starts the string to sign and the `Authorization` value.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// `strftime` layout of the `X-Sdk-Date` header: UTC, second precision, as both SDKs write it.
///
/// APIG rejects a request whose date is more than 15 minutes away from server time, so the caller must
/// pass a fresh `now` for every attempt, including retries.
pub const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Header that carries the signing time; it is always signed.
pub const SDK_DATE_HEADER: &str = "X-Sdk-Date";

/// Header that carries the signature.
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// Header that carries the security token of temporary credentials; it is signed when sent.
pub const SECURITY_TOKEN_HEADER: &str = "X-Security-Token";

/// Header whose value, when present, replaces the hex SHA-256 of the body in the canonical request.
///
/// The SDKs set it to `UNSIGNED-PAYLOAD` for bodies that are neither JSON nor BSON (uploads).
pub const CONTENT_SHA256_HEADER: &str = "X-Sdk-Content-Sha256";

/// Lower-cased name of the `Host` header, which this module always signs from [`RequestToSign::host`].
const HOST_NAME: &str = "host";

/// What `Debug` output prints instead of a secret.
const REDACTED: &str = "[redacted]";

/// AK/SK pair, plus the security token that comes with temporary credentials.
///
/// `Debug` prints the access key but never the secret key or the token.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id (AK); it is sent in clear in every `Authorization` header.
    pub access_key: String,
    /// Secret access key (SK); its UTF-8 bytes are the HMAC key, used as is.
    pub secret_key: SecretString,
    /// Security token of temporary credentials; sent and signed as `X-Security-Token`.
    pub security_token: Option<SecretString>,
}

impl Credentials {
    /// Builds permanent credentials from an access key and a secret key.
    ///
    /// # Errors
    ///
    /// Returns [`SignerError`] when the access key or the secret key is empty (or only whitespace), or
    /// when the access key holds whitespace, a control character or a comma, any of which would break
    /// the `Access=..., SignedHeaders=...` syntax of the `Authorization` header.
    /// No error message contains either key, in case the two were swapped in configuration.
    pub fn new(
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Result<Self, SignerError> {
        let access_key = access_key.into();
        let secret_key = secret_key.into();
        if access_key.trim().is_empty() {
            return Err(SignerError::EmptyAccessKey);
        }
        if secret_key.trim().is_empty() {
            return Err(SignerError::EmptySecretKey);
        }
        for (index, character) in access_key.chars().enumerate() {
            let found = if character.is_whitespace() {
                "whitespace"
            } else if character.is_control() {
                "a control character"
            } else if character == ',' {
                "a comma"
            } else {
                continue;
            };
            return Err(SignerError::InvalidAccessKey {
                found,
                position: index + 1,
            });
        }
        Ok(Self {
            access_key,
            secret_key: SecretString::from(secret_key),
            security_token: None,
        })
    }

    /// Adds the security token of temporary credentials; [`sign`] then sends and signs `X-Security-Token`.
    pub fn with_security_token(self, token: impl Into<String>) -> Self {
        Self {
            security_token: Some(SecretString::from(token.into())),
            ..self
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &Redacted)
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| Redacted),
            )
            .finish()
    }
}

/// Why [`Credentials::new`] refused its input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The access key is empty or only whitespace.
    #[error("access key is empty")]
    EmptyAccessKey,
    /// The secret key is empty or only whitespace.
    #[error("secret key is empty")]
    EmptySecretKey,
    /// The access key holds a character that cannot appear in the `Access=` part of `Authorization`.
    #[error("access key contains {found} at character {position}")]
    InvalidAccessKey {
        /// What was found: "whitespace", "a control character" or "a comma".
        found: &'static str,
        /// 1-based position, in characters, of the first offending character.
        position: usize,
    },
}

/// The parts of one HTTP request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// HTTP method in any case; it is upper-cased in the canonical request.
    pub method: &'a str,
    /// `host[:port]` exactly as sent in the `Host` header (reqwest sends the port only when it is not
    /// the scheme's default).
    pub host: &'a str,
    /// The path, for example `/v5/{project_id}/image/registries`, unencoded or already
    /// percent-encoded: it is percent-decoded once and re-encoded segment by segment, as the Python SDK
    /// does.
    pub path: &'a str,
    /// Unencoded query pairs in any order; keys may repeat.
    pub query: &'a [(String, String)],
    /// Headers the caller will send, names in any case, without `Host` and `Authorization` (both are
    /// ignored here if present).
    /// An `X-Sdk-Date` or `X-Security-Token` in this list is used as is and not added again.
    pub headers: &'a [(String, String)],
    /// The exact body bytes; empty for GET.
    pub body: &'a [u8],
}

/// Everything that must be added to the request, plus the intermediate strings for debugging and tests.
///
/// `Debug` redacts the signature and the security token, so the value can be logged at debug level.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// Value of `X-Sdk-Date`: the caller's own header if it sent one, else `now` in [`SDK_DATE_FORMAT`].
    pub sdk_date: String,
    /// Value of `Authorization`.
    pub authorization: String,
    /// Canonical query string; it is also the exact wire query (send it after `?`, and send no `?` when
    /// it is empty), so that the server sees the bytes that were signed.
    pub canonical_query: String,
    /// Encoded path without the canonical trailing `/`, then `?` and [`Self::canonical_query`] when
    /// that is not empty: the request target to send.
    pub request_uri: String,
    /// Signed header names, lower-cased, sorted, joined with `;`.
    pub signed_headers: String,
    /// The canonical request that was hashed; it contains the value of every signed header.
    pub canonical_request: String,
    /// The string whose HMAC is the signature.
    pub string_to_sign: String,
    /// Headers the caller must add to the request: `X-Sdk-Date` (unless the caller's headers already
    /// hold it), `Authorization`, and `X-Security-Token` (when the credentials have a token and the
    /// caller's headers do not already hold it).
    /// `Host` is not included: the HTTP client derives it from the URL, which must match
    /// [`RequestToSign::host`].
    pub headers_to_send: Vec<(String, String)>,
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers_to_send: Vec<(&str, String)> = self
            .headers_to_send
            .iter()
            .map(|(name, value)| {
                let shown = if name.eq_ignore_ascii_case(AUTHORIZATION_HEADER) {
                    redact_signature(value)
                } else if name.eq_ignore_ascii_case(SECURITY_TOKEN_HEADER) {
                    REDACTED.to_owned()
                } else {
                    value.clone()
                };
                (name.as_str(), shown)
            })
            .collect();
        f.debug_struct("SignedRequest")
            .field("sdk_date", &self.sdk_date)
            .field("authorization", &redact_signature(&self.authorization))
            .field("canonical_query", &self.canonical_query)
            .field("request_uri", &self.request_uri)
            .field("signed_headers", &self.signed_headers)
            .field(
                "canonical_request",
                &redact_security_token_line(&self.canonical_request),
            )
            .field("string_to_sign", &self.string_to_sign)
            .field("headers_to_send", &headers_to_send)
            .finish()
    }
}

/// Signs one request the way Huawei's Python SDK does.
///
/// Signed headers: every header of [`RequestToSign::headers`] whose name contains no `_` (names
/// lower-cased, values trimmed), plus `host` from [`RequestToSign::host`], plus `x-sdk-date`, plus
/// `x-security-token` when the credentials have a token.
/// Headers whose names differ only in case are signed once, their trimmed values joined with `,` in
/// the order given (the HTTP rule for combining repeated fields; neither SDK can express repeated
/// headers, so there is no SDK behaviour to copy).
/// If the caller's headers contain `X-Sdk-Content-Sha256`, its value replaces the body hash.
pub fn sign(
    request: &RequestToSign<'_>,
    credentials: &Credentials,
    now: DateTime<Utc>,
) -> SignedRequest {
    let mut signed: Vec<(String, String)> = Vec::new();
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        if name == HOST_NAME
            || name.eq_ignore_ascii_case(AUTHORIZATION_HEADER)
            || name.contains('_')
        {
            continue;
        }
        let value = value.trim();
        match signed.iter_mut().find(|(existing, _)| *existing == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(value);
            }
            None => signed.push((name, value.to_owned())),
        }
    }

    let mut headers_to_send = Vec::new();
    let sdk_date = match find_signed(&signed, SDK_DATE_HEADER) {
        Some(date) => date.to_owned(),
        None => {
            let date = now.format(SDK_DATE_FORMAT).to_string();
            signed.push((SDK_DATE_HEADER.to_ascii_lowercase(), date.clone()));
            headers_to_send.push((SDK_DATE_HEADER.to_owned(), date.clone()));
            date
        }
    };
    let mut security_token_to_send = None;
    if let Some(token) = &credentials.security_token {
        if find_signed(&signed, SECURITY_TOKEN_HEADER).is_none() {
            let token = token.expose_secret().trim().to_owned();
            signed.push((SECURITY_TOKEN_HEADER.to_ascii_lowercase(), token.clone()));
            security_token_to_send = Some(token);
        }
    }
    signed.push((HOST_NAME.to_owned(), request.host.trim().to_owned()));
    signed.sort_by(|left, right| left.0.cmp(&right.0));

    let signed_headers = signed
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let payload_hash = match find_signed(&signed, CONTENT_SHA256_HEADER) {
        Some(hash) => hash.to_owned(),
        None => hex_sha256(request.body),
    };
    let canonical_query = canonical_query_string(request.query);
    let canonical_request = canonical_request_with_payload_hash(
        request.method,
        &canonical_uri(request.path),
        &canonical_query,
        &signed,
        &signed_headers,
        &payload_hash,
    );
    let string_to_sign = string_to_sign(&sdk_date, &canonical_request);
    let signature = signature(credentials.secret_key.expose_secret(), &string_to_sign);
    let authorization = authorization(&credentials.access_key, &signed_headers, &signature);

    headers_to_send.push((AUTHORIZATION_HEADER.to_owned(), authorization.clone()));
    if let Some(token) = security_token_to_send {
        headers_to_send.push((SECURITY_TOKEN_HEADER.to_owned(), token));
    }

    let path = request_path(request.path);
    let request_uri = if canonical_query.is_empty() {
        path
    } else {
        format!("{path}?{canonical_query}")
    };

    SignedRequest {
        sdk_date,
        authorization,
        canonical_query,
        request_uri,
        signed_headers,
        canonical_request,
        string_to_sign,
        headers_to_send,
    }
}

/// Percent-encodes `s` the way both SDKs do for path segments, query keys and query values.
///
/// `A-Z a-z 0-9 - _ . ~` are kept; every other UTF-8 byte becomes `%XX` with upper-case hex, so a
/// space is `%20` (never `+`) and `/` is `%2F`.
pub fn encode(s: &str) -> String {
    let mut encoded = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push('%');
            encoded.push(char::from(UPPER_HEX[usize::from(byte >> 4)]));
            encoded.push(char::from(UPPER_HEX[usize::from(byte & 0x0f)]));
        }
    }
    encoded
}

/// Canonical URI of a path: percent-decoded once, each `/`-separated segment [`encode`]d, joined with
/// `/`, and `/` appended if the result does not end with one.
///
/// The decoding step is the Python SDK's `unquote`; it keeps an already-encoded path from being
/// encoded twice.
/// Like the SDK, it also turns an encoded `%2F` into a segment separator.
/// An empty path gives `/` (the Python SDK fails on it; the Go SDK gives `/`).
pub fn canonical_uri(path: &str) -> String {
    let mut uri = request_path(path);
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Canonical query string: pairs sorted by unencoded key then unencoded value (byte order, as the
/// SDKs sort), each written `encode(key)=encode(value)`, joined with `&`.
///
/// An empty value gives `key=`; no pairs give an empty string.
pub fn canonical_query_string(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{}={}", encode(key), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Canonical request over the exact body bytes.
///
/// `headers_in_signing_order` are the signed headers in `signed_headers` order, each a lower-cased
/// name and a trimmed value (both are normalised again here, which is harmless).
pub fn canonical_request(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers_in_signing_order: &[(String, String)],
    signed_headers: &str,
    body: &[u8],
) -> String {
    canonical_request_with_payload_hash(
        method,
        canonical_uri,
        canonical_query,
        headers_in_signing_order,
        signed_headers,
        &hex_sha256(body),
    )
}

/// Canonical request with a given payload hash, for `X-Sdk-Content-Sha256` (for example
/// `UNSIGNED-PAYLOAD`) and for verifiers that hash the body themselves.
///
/// Each header becomes a `name:value` line and the header block ends with `\n`, so the canonical
/// request has an empty line before the signed-headers line.
pub fn canonical_request_with_payload_hash(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    headers_in_signing_order: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let canonical_headers = headers_in_signing_order
        .iter()
        .map(|(name, value)| format!("{}:{}", name.to_ascii_lowercase(), value.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n\n{signed_headers}\n{payload_hash}",
        method.to_ascii_uppercase()
    )
}

/// String to sign: the algorithm, the `X-Sdk-Date` value and the hex SHA-256 of the canonical request,
/// one per line.
pub fn string_to_sign(sdk_date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{sdk_date}\n{}",
        hex_sha256(canonical_request.as_bytes())
    )
}

/// Lower-case hex HMAC-SHA256 of `string_to_sign`, keyed with the UTF-8 bytes of the secret key.
///
/// Unlike AWS SigV4 there is no key derivation.
pub fn signature(secret_key: &str, string_to_sign: &str) -> String {
    // HMAC accepts keys of any length (long keys are hashed first), so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret_key.as_bytes())
        .expect("hmac-sha256 accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Value of the `Authorization` header.
pub fn authorization(access_key: &str, signed_headers: &str, signature: &str) -> String {
    format!(
        "{ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// Lower-case hex SHA-256 of `data`; for an empty body it is
/// `e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`.
pub fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Upper-case hex digits, as both SDKs write percent-escapes.
const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Prints `[redacted]` without quotes in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The value of a signed header, looked up by name in any case.
fn find_signed<'a>(signed: &'a [(String, String)], name: &str) -> Option<&'a str> {
    signed
        .iter()
        .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Encoded path without the canonical trailing `/`: what goes on the wire.
fn request_path(path: &str) -> String {
    let decoded = percent_decode(path);
    let encoded = decoded.split('/').map(encode).collect::<Vec<_>>().join("/");
    if encoded.is_empty() {
        "/".to_owned()
    } else {
        encoded
    }
}

/// Decodes `%XX` escapes like Python's `urllib.parse.unquote`: malformed escapes stay as they are and
/// invalid UTF-8 becomes U+FFFD.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let high = bytes.get(index + 1).copied().and_then(hex_value);
            let low = bytes.get(index + 2).copied().and_then(hex_value);
            if let (Some(high), Some(low)) = (high, low) {
                decoded.push(high << 4 | low);
                index += 3;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Value of one hex digit, in either case.
fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

/// `Authorization` value with everything after `Signature=` replaced, for `Debug`.
fn redact_signature(authorization: &str) -> String {
    match authorization.rfind("Signature=") {
        Some(start) => format!("{}Signature={REDACTED}", &authorization[..start]),
        None => REDACTED.to_owned(),
    }
}

/// Canonical request with the value of its `x-security-token` line replaced, for `Debug`.
fn redact_security_token_line(canonical_request: &str) -> String {
    let prefix = format!("{}:", SECURITY_TOKEN_HEADER.to_ascii_lowercase());
    canonical_request
        .split('\n')
        .map(|line| {
            if line.starts_with(&prefix) {
                format!("{prefix}{REDACTED}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;
    use serde::Deserialize;

    use super::*;

    /// Hex SHA-256 of the empty string, as printed in Huawei's docs and SDKs.
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Vectors computed with the `Signer` class of Huawei's Python SDK (see the file's `source` field).
    const VECTORS_JSON: &str = include_str!("../tests/fixtures/sdk-hmac-sha256-vectors.json");

    #[derive(Deserialize)]
    struct VectorFile {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        ak: String,
        sk: String,
        method: String,
        host: String,
        path: String,
        query: Vec<(String, String)>,
        headers: BTreeMap<String, String>,
        expected: Expected,
    }

    #[derive(Deserialize)]
    struct Expected {
        canonical_request: String,
        string_to_sign: String,
        authorization: String,
        request_uri: String,
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    /// A `now` far from every vector's `X-Sdk-Date`, so a test fails if `now` leaks into the signature
    /// where the caller's header should win.
    fn unrelated_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap()
    }

    fn sdk_credentials() -> Credentials {
        Credentials::new("AccessKey", "SecretKey").unwrap()
    }

    #[test]
    fn every_python_sdk_fixture_vector_is_reproduced_exactly() {
        // Arrange
        let file: VectorFile = serde_json::from_str(VECTORS_JSON).unwrap();
        assert_eq!(
            file.vectors.len(),
            9,
            "the fixture file should hold 9 vectors"
        );

        for vector in &file.vectors {
            let credentials = Credentials::new(vector.ak.as_str(), vector.sk.as_str()).unwrap();
            let headers: Vec<(String, String)> = vector
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            let request = RequestToSign {
                method: &vector.method,
                host: &vector.host,
                path: &vector.path,
                query: &vector.query,
                headers: &headers,
                body: b"",
            };

            // Act
            let signed = sign(&request, &credentials, unrelated_now());

            // Assert
            let name = &vector.name;
            assert_eq!(
                signed.canonical_request, vector.expected.canonical_request,
                "canonical request of vector {name:?}"
            );
            assert_eq!(
                signed.string_to_sign, vector.expected.string_to_sign,
                "string to sign of vector {name:?}"
            );
            assert_eq!(
                signed.authorization, vector.expected.authorization,
                "authorization of vector {name:?}"
            );
            assert_eq!(
                signed.request_uri, vector.expected.request_uri,
                "request uri of vector {name:?}"
            );
            assert_eq!(
                signed.headers_to_send,
                pairs(&[("Authorization", &vector.expected.authorization)]),
                "headers to send of vector {name:?}: the caller already sends X-Sdk-Date"
            );
        }
    }

    #[test]
    fn go_sdk_test1_without_signed_host_matches_the_go_sdk() {
        // Go signs no host header, so the pieces are checked with the lower-level functions.
        // Arrange
        let headers = pairs(&[("x-sdk-date", "20060102T150405Z")]);

        // Act
        let canonical_request = canonical_request(
            "GET",
            &canonical_uri("/path"),
            &canonical_query_string(&pairs(&[("limit", "1")])),
            &headers,
            "x-sdk-date",
            b"",
        );
        let string_to_sign = string_to_sign("20060102T150405Z", &canonical_request);
        let authorization = authorization(
            "AccessKey",
            "x-sdk-date",
            &signature("SecretKey", &string_to_sign),
        );

        // Assert
        assert_eq!(
            canonical_request,
            format!(
                "GET\n/path/\nlimit=1\nx-sdk-date:20060102T150405Z\n\nx-sdk-date\n{EMPTY_SHA256}"
            )
        );
        assert_eq!(
            string_to_sign,
            "SDK-HMAC-SHA256\n20060102T150405Z\n85c3b7730f308aee452b16138a42a914397e43a8f0d732dfa521c0ef2afa98a4"
        );
        assert_eq!(
            authorization,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, \
             Signature=5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624"
        );
    }

    #[test]
    fn go_sdk_test2_body_with_trailing_newline_matches_the_go_sdk() {
        // Arrange: Go's json.Encoder appends a newline to the body.
        let body = b"{\"Name\":\"test\",\"Id\":1}\n";
        let headers = pairs(&[("x-sdk-date", "20060102T150405Z")]);

        // Act
        let canonical_request = canonical_request(
            "post",
            &canonical_uri("/path"),
            &canonical_query_string(&pairs(&[("key", "value")])),
            &headers,
            "x-sdk-date",
            body,
        );
        let string_to_sign = string_to_sign("20060102T150405Z", &canonical_request);

        // Assert
        assert!(canonical_request.starts_with("POST\n/path/\nkey=value\n"));
        assert_eq!(
            signature("SecretKey", &string_to_sign),
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59"
        );
    }

    #[test]
    fn python_sdk_test_signer1_signs_host_and_date_but_not_the_underscore_header() {
        // Arrange
        let headers = pairs(&[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("TEST_UNDERSCORE", "TEST_VALUE"),
        ]);
        let query = pairs(&[("size", "1")]);
        let request = RequestToSign {
            method: "GET",
            host: "service.endpoint.myhuaweicloud.com",
            path: "/resources",
            query: &query,
            headers: &headers,
            body: b"",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(
            signed.authorization,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, \
             Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
        );
        assert_eq!(signed.request_uri, "/resources?size=1");
    }

    #[test]
    fn python_sdk_test_signer2_post_body_matches_the_python_sdk() {
        // Arrange
        let headers = pairs(&[
            ("X-Sdk-Date", "20200608T023900Z"),
            ("TEST_UNDERSCORE", "TEST_VALUE"),
        ]);
        let query = pairs(&[("size", "1")]);
        let request = RequestToSign {
            method: "POST",
            host: "service.endpoint.myhuaweicloud.com",
            path: "/resources",
            query: &query,
            headers: &headers,
            body: b"{\"name\":\"test\",\"id\":1}",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(
            signed.authorization,
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=host;x-sdk-date, \
             Signature=436b1ac0a1ae03705934bb70ef2f2e09f7bfed2117d731a38235053199323a1f"
        );
    }

    #[test]
    fn huawei_doc_example_canonical_request_hash_matches_the_documentation() {
        // Arrange
        let headers = pairs(&[
            ("Content-Type", "application/json"),
            ("X-Sdk-Date", "20191115T033655Z"),
        ]);
        let query = pairs(&[
            ("marker", "13551d6b-755d-4757-b956-536f674975c0"),
            ("limit", "2"),
        ]);
        let request = RequestToSign {
            method: "GET",
            host: "service.region.example.com",
            path: "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
            query: &query,
            headers: &headers,
            body: b"",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(signed.signed_headers, "content-type;host;x-sdk-date");
        assert_eq!(
            hex_sha256(signed.canonical_request.as_bytes()),
            "b25362e603ee30f4f25e7858e8a7160fd36e803bb2dfe206278659d71a9bcd7a"
        );
    }

    /// Inputs of vector 6 of docs/huawei-api.md §3 (ListRegistry), optionally without the `X-Sdk-Date` header.
    fn list_registry_example(with_date_header: bool) -> SignedRequest {
        let mut headers = pairs(&[
            ("Content-Type", "application/json"),
            ("X-Project-Id", "0123456789abcdef0123456789abcdef"),
        ]);
        if with_date_header {
            headers.extend(pairs(&[("X-Sdk-Date", "20250101T000000Z")]));
        }
        let query = pairs(&[
            ("offset", "0"),
            ("limit", "200"),
            ("registry_type", "Harbor,Jfrog"),
            ("enterprise_project_id", "all_granted_eps"),
        ]);
        let request = RequestToSign {
            method: "GET",
            host: "hss.cn-north-4.myhuaweicloud.com",
            path: "/v5/0123456789abcdef0123456789abcdef/image/registries",
            query: &query,
            headers: &headers,
            body: b"",
        };
        let now = if with_date_header {
            unrelated_now()
        } else {
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
        };
        sign(&request, &sdk_credentials(), now)
    }

    /// `Authorization` of vector 6 of docs/huawei-api.md §3.
    const LIST_REGISTRY_EXAMPLE_AUTHORIZATION: &str =
        "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=content-type;host;x-project-id;x-sdk-date, \
         Signature=ea9d0be300c200ee7ba4ce8c61cecd7ae2679eb1afba92bdd1411da7ccf1ae95";

    #[test]
    fn list_registry_example_from_the_api_notes_is_reproduced() {
        // Act
        let signed = list_registry_example(true);

        // Assert
        assert_eq!(
            signed.canonical_request,
            "GET\n\
             /v5/0123456789abcdef0123456789abcdef/image/registries/\n\
             enterprise_project_id=all_granted_eps&limit=200&offset=0&registry_type=Harbor%2CJfrog\n\
             content-type:application/json\n\
             host:hss.cn-north-4.myhuaweicloud.com\n\
             x-project-id:0123456789abcdef0123456789abcdef\n\
             x-sdk-date:20250101T000000Z\n\
             \n\
             content-type;host;x-project-id;x-sdk-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_sha256(signed.canonical_request.as_bytes()),
            "1e46e9aa1b63ff9da5adc6e9aacf0e2f3eba2303adb0a5e985d81abae1fd761d"
        );
        assert_eq!(signed.authorization, LIST_REGISTRY_EXAMPLE_AUTHORIZATION);
        assert_eq!(
            signed.request_uri,
            "/v5/0123456789abcdef0123456789abcdef/image/registries\
             ?enterprise_project_id=all_granted_eps&limit=200&offset=0&registry_type=Harbor%2CJfrog"
        );
    }

    #[test]
    fn sdk_date_comes_from_now_when_the_caller_sends_none() {
        // Act
        let signed = list_registry_example(false);

        // Assert
        assert_eq!(signed.sdk_date, "20250101T000000Z");
        assert_eq!(signed.authorization, LIST_REGISTRY_EXAMPLE_AUTHORIZATION);
        assert_eq!(
            signed.headers_to_send,
            pairs(&[
                ("X-Sdk-Date", "20250101T000000Z"),
                ("Authorization", LIST_REGISTRY_EXAMPLE_AUTHORIZATION),
            ])
        );
    }

    #[test]
    fn canonical_query_string_matches_the_shared_sdk_test() {
        // Arrange: the SDK test's pairs, with the repeated key's values out of order.
        let query = pairs(&[
            ("limit", "1"),
            ("enable", "true"),
            ("test", "一 (&=?!#%.*)"),
            ("path", "/tmp/123"),
            ("multi", "3"),
            ("multi", "1"),
            ("multi", "2"),
        ]);

        // Act
        let canonical = canonical_query_string(&query);

        // Assert
        assert_eq!(
            canonical,
            "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123\
             &test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29"
        );
    }

    #[test]
    fn canonical_query_string_of_no_pairs_is_empty_and_empty_values_keep_the_equals_sign() {
        assert_eq!(canonical_query_string(&[]), "");
        assert_eq!(
            canonical_query_string(&pairs(&[("b", ""), ("a", "x")])),
            "a=x&b="
        );
    }

    #[test]
    fn encode_keeps_unreserved_characters_and_escapes_everything_else_in_upper_case() {
        assert_eq!(encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(encode("a b,c/d*e+f"), "a%20b%2Cc%2Fd%2Ae%2Bf");
        assert_eq!(encode("测"), "%E6%B5%8B");
        assert_eq!(encode("\u{7f}%"), "%7F%25");
    }

    #[test]
    fn canonical_uri_appends_a_slash_and_does_not_double_encode() {
        assert_eq!(
            canonical_uri("/v5/p/image/registries"),
            "/v5/p/image/registries/"
        );
        assert_eq!(canonical_uri("/already/"), "/already/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/c"), "/a%20b/c/");
        assert_eq!(canonical_uri("/a%20b/c"), "/a%20b/c/");
        assert_eq!(canonical_uri("/100%/x"), "/100%25/x/");
        assert_eq!(canonical_uri("/%e6%b5%8b"), "/%E6%B5%8B/");
    }

    #[test]
    fn request_uri_has_no_trailing_slash_and_an_encoded_path() {
        // Arrange
        let request = RequestToSign {
            method: "GET",
            host: "example.com",
            path: "/a b/c%20d",
            query: &[],
            headers: &[],
            body: b"",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(signed.request_uri, "/a%20b/c%20d");
        assert!(signed
            .canonical_request
            .starts_with("GET\n/a%20b/c%20d/\n\n"));
    }

    #[test]
    fn signature_is_standard_hmac_sha256_without_key_derivation() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hex_sha256_of_an_empty_body_is_the_well_known_empty_hash() {
        assert_eq!(hex_sha256(b""), EMPTY_SHA256);
    }

    #[test]
    fn security_token_is_sent_and_signed() {
        // Arrange
        let credentials = sdk_credentials().with_security_token("temporary-token-value");
        let headers = pairs(&[
            ("Content-Type", "application/json"),
            ("X-Project-Id", "0123456789abcdef0123456789abcdef"),
        ]);
        let query = pairs(&[("offset", "0"), ("limit", "200")]);
        let request = RequestToSign {
            method: "GET",
            host: "hss.cn-north-4.myhuaweicloud.com",
            path: "/v5/0123456789abcdef0123456789abcdef/image/registries",
            query: &query,
            headers: &headers,
            body: b"",
        };

        // Act
        let signed = sign(
            &request,
            &credentials,
            Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        );

        // Assert
        assert_eq!(
            signed.signed_headers,
            "content-type;host;x-project-id;x-sdk-date;x-security-token"
        );
        assert_eq!(
            signed.canonical_request,
            "GET\n\
             /v5/0123456789abcdef0123456789abcdef/image/registries/\n\
             limit=200&offset=0\n\
             content-type:application/json\n\
             host:hss.cn-north-4.myhuaweicloud.com\n\
             x-project-id:0123456789abcdef0123456789abcdef\n\
             x-sdk-date:20250101T000000Z\n\
             x-security-token:temporary-token-value\n\
             \n\
             content-type;host;x-project-id;x-sdk-date;x-security-token\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Computed independently with Python's hashlib and hmac over the canonical request above.
        let expected_authorization = "SDK-HMAC-SHA256 Access=AccessKey, \
             SignedHeaders=content-type;host;x-project-id;x-sdk-date;x-security-token, \
             Signature=48e36ab659bc66fe2c06ce41eda832d3f7b73d5b927075164416bca4f73c9315";
        assert_eq!(signed.authorization, expected_authorization);
        assert_eq!(
            signed.headers_to_send,
            pairs(&[
                ("X-Sdk-Date", "20250101T000000Z"),
                ("Authorization", expected_authorization),
                ("X-Security-Token", "temporary-token-value"),
            ])
        );
    }

    #[test]
    fn debug_of_credentials_shows_the_access_key_but_not_the_secret_key_or_the_token() {
        // Arrange
        let credentials = Credentials::new("HPUAEXAMPLE", "very-secret-sk")
            .unwrap()
            .with_security_token("very-secret-token");

        // Act
        let debug = format!("{credentials:?}");

        // Assert
        assert!(debug.contains("HPUAEXAMPLE"), "{debug}");
        assert!(!debug.contains("very-secret-sk"), "{debug}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert_eq!(
            debug,
            "Credentials { access_key: \"HPUAEXAMPLE\", secret_key: [redacted], security_token: Some([redacted]) }"
        );
    }

    #[test]
    fn debug_of_a_signed_request_hides_the_signature_and_the_token() {
        // Arrange
        let credentials = sdk_credentials().with_security_token("very-secret-token");
        let request = RequestToSign {
            method: "GET",
            host: "example.com",
            path: "/x",
            query: &[],
            headers: &[],
            body: b"",
        };
        let signed = sign(&request, &credentials, unrelated_now());
        let signature = signed.authorization.rsplit('=').next().unwrap().to_owned();

        // Act
        let debug = format!("{signed:?}");

        // Assert
        assert_eq!(signature.len(), 64);
        assert!(!debug.contains(&signature), "{debug}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert!(debug.contains("x-security-token:[redacted]"), "{debug}");
        assert!(debug.contains("Signature=[redacted]"), "{debug}");
    }

    #[test]
    fn content_sha256_header_replaces_the_body_hash_and_is_signed() {
        // Arrange
        let headers = pairs(&[
            ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
            ("X-Sdk-Date", "20250101T000000Z"),
        ]);
        let request = RequestToSign {
            method: "PUT",
            host: "example.com",
            path: "/upload",
            query: &[],
            headers: &headers,
            body: b"ignored bytes",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(
            signed.canonical_request,
            "PUT\n/upload/\n\n\
             host:example.com\n\
             x-sdk-content-sha256:UNSIGNED-PAYLOAD\n\
             x-sdk-date:20250101T000000Z\n\
             \n\
             host;x-sdk-content-sha256;x-sdk-date\n\
             UNSIGNED-PAYLOAD"
        );
    }

    #[test]
    fn repeated_header_names_are_signed_once_with_values_joined_by_commas() {
        // Arrange
        let headers = pairs(&[
            ("X-Sdk-Date", "20250101T000000Z"),
            ("X-Tag", " first "),
            ("x-tag", "second"),
        ]);
        let request = RequestToSign {
            method: "GET",
            host: "example.com",
            path: "/",
            query: &[],
            headers: &headers,
            body: b"",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(signed.signed_headers, "host;x-sdk-date;x-tag");
        assert!(
            signed.canonical_request.contains("\nx-tag:first,second\n"),
            "{}",
            signed.canonical_request
        );
    }

    #[test]
    fn host_and_authorization_in_the_callers_headers_are_ignored() {
        // Arrange
        let headers = pairs(&[
            ("Host", "wrong.example.com"),
            ("Authorization", "stale"),
            ("X-Sdk-Date", "20250101T000000Z"),
        ]);
        let request = RequestToSign {
            method: "GET",
            host: "right.example.com:8443",
            path: "/",
            query: &[],
            headers: &headers,
            body: b"",
        };

        // Act
        let signed = sign(&request, &sdk_credentials(), unrelated_now());

        // Assert
        assert_eq!(
            signed.canonical_request,
            format!(
                "GET\n/\n\nhost:right.example.com:8443\nx-sdk-date:20250101T000000Z\n\nhost;x-sdk-date\n{EMPTY_SHA256}"
            )
        );
    }

    #[test]
    fn credentials_reject_empty_keys_and_access_keys_that_would_break_the_header() {
        assert!(matches!(
            Credentials::new("", "sk"),
            Err(SignerError::EmptyAccessKey)
        ));
        assert!(matches!(
            Credentials::new("ak", " "),
            Err(SignerError::EmptySecretKey)
        ));
        let error = Credentials::new("AK,SignedHeaders=x", "sk").unwrap_err();
        assert_eq!(
            error.to_string(),
            "access key contains a comma at character 3"
        );
        let error = Credentials::new("AK EY", "sk").unwrap_err();
        assert_eq!(
            error.to_string(),
            "access key contains whitespace at character 3"
        );
        let error = Credentials::new("AK\u{0}", "sk").unwrap_err();
        assert_eq!(
            error.to_string(),
            "access key contains a control character at character 3"
        );
        assert!(Credentials::new("HPUAXXXXXXXXXXXXXXXX", "sk+/With=Special&Chars").is_ok());
    }
}

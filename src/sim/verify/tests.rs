//! Tests of the signature verifier, on the Huawei SDK vectors among others.

use super::*;
use axum::http::{HeaderName, HeaderValue};
use serde_json::Value;

/// Vectors computed with the `Signer` of Huawei's Python SDK; the repository copy is the one tests use.
const SDK_VECTORS: &str = include_str!("../../../tests/fixtures/sdk-hmac-sha256-vectors.json");

/// One fixture vector turned back into a received request.
struct Vector {
    name: String,
    credentials: SimCredentials,
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    sdk_date: DateTime<Utc>,
    canonical_request: String,
}

impl Vector {
    fn request(&self) -> ReceivedRequest<'_> {
        ReceivedRequest {
            method: &self.method,
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            body: b"",
        }
    }
}

fn vectors() -> Vec<Vector> {
    let fixture: Value = serde_json::from_str(SDK_VECTORS).expect("fixture is valid json");
    fixture["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| {
            let text = |value: &Value| value.as_str().expect("string").to_string();
            let expected = &v["expected"];
            let request_uri = text(&expected["request_uri"]);
            let (path, query) = match request_uri.split_once('?') {
                Some((path, query)) => (path.to_string(), Some(query.to_string())),
                None => (request_uri.clone(), None),
            };
            let mut headers = HeaderMap::new();
            headers.insert("host", HeaderValue::from_str(&text(&v["host"])).unwrap());
            for (name, value) in v["headers"].as_object().expect("headers object") {
                headers.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(&text(value)).unwrap(),
                );
            }
            headers.insert(
                "authorization",
                HeaderValue::from_str(&text(&expected["authorization"])).unwrap(),
            );
            Vector {
                name: text(&v["name"]),
                credentials: SimCredentials {
                    access_key: text(&v["ak"]),
                    secret_key: text(&v["sk"]),
                },
                method: text(&v["method"]),
                path,
                query,
                sdk_date: parse_sdk_date(&text(&v["headers"]["X-Sdk-Date"])).unwrap(),
                headers,
                canonical_request: text(&expected["canonical_request"]),
            }
        })
        .collect()
}

#[track_caller]
fn verify_at(
    vector: &Vector,
    request: &ReceivedRequest<'_>,
    credentials: &SimCredentials,
) -> Result<(), VerifyError> {
    verify_request(
        request,
        credentials,
        vector.sdk_date,
        Duration::from_secs(15 * 60),
    )
    .map(|_| ())
}

/// Flip one hex digit of the signature inside an Authorization header.
fn tamper_signature(authorization: &str) -> String {
    let (head, signature) = authorization.split_once("Signature=").unwrap();
    let mut bytes = signature.as_bytes().to_vec();
    bytes[10] = if bytes[10] == b'0' { b'1' } else { b'0' };
    format!("{head}Signature={}", String::from_utf8(bytes).unwrap())
}

#[test]
fn verifier_rebuilds_the_sdk_canonical_request_for_every_vector() {
    let vectors = vectors();
    assert!(vectors.len() >= 8, "fixture should hold the sdk vectors");
    for vector in &vectors {
        let authorization =
            parse_authorization(vector.headers["authorization"].to_str().unwrap()).unwrap();
        let signed: Vec<&str> = authorization
            .signed_headers
            .iter()
            .map(String::as_str)
            .collect();
        let canonical = canonical_request(&vector.request(), &signed).unwrap();
        assert_eq!(
            canonical, vector.canonical_request,
            "vector {:?}",
            vector.name
        );
    }
}

#[test]
fn verifier_accepts_every_sdk_vector() {
    for vector in vectors() {
        let result = verify_at(&vector, &vector.request(), &vector.credentials);
        assert_eq!(result, Ok(()), "vector {:?}", vector.name);
    }
}

#[test]
fn verifier_rejects_every_vector_with_one_signature_digit_changed() {
    for vector in vectors() {
        let mut headers = vector.headers.clone();
        let tampered = tamper_signature(headers["authorization"].to_str().unwrap());
        headers.insert("authorization", HeaderValue::from_str(&tampered).unwrap());
        let request = ReceivedRequest {
            headers: &headers,
            ..vector.request()
        };
        let result = verify_at(&vector, &request, &vector.credentials);
        assert_eq!(
            result,
            Err(VerifyError::SignatureMismatch),
            "vector {:?}",
            vector.name
        );
    }
}

#[test]
fn verifier_rejects_every_vector_with_a_signed_header_value_changed() {
    for vector in vectors() {
        for header in ["x-project-id", "host", "content-type"] {
            let mut headers = vector.headers.clone();
            let changed = format!("{}0", headers[header].to_str().unwrap());
            headers.insert(header, HeaderValue::from_str(&changed).unwrap());
            let request = ReceivedRequest {
                headers: &headers,
                ..vector.request()
            };
            let result = verify_at(&vector, &request, &vector.credentials);
            assert_eq!(
                result,
                Err(VerifyError::SignatureMismatch),
                "vector {:?}, header {header}",
                vector.name
            );
        }
    }
}

#[test]
fn verifier_rejects_every_vector_with_the_query_changed() {
    for vector in vectors() {
        let changed = match &vector.query {
            Some(query) => query.replacen("0", "1", 1),
            None => "offset=0".to_string(),
        };
        assert_ne!(Some(&changed), vector.query.as_ref());
        let request = ReceivedRequest {
            query: Some(&changed),
            ..vector.request()
        };
        let result = verify_at(&vector, &request, &vector.credentials);
        assert_eq!(
            result,
            Err(VerifyError::SignatureMismatch),
            "vector {:?}",
            vector.name
        );
    }
}

#[test]
fn verifier_rejects_every_vector_with_a_different_secret_key() {
    for vector in vectors() {
        let mut credentials = vector.credentials.clone();
        credentials.secret_key.push('x');
        let result = verify_at(&vector, &vector.request(), &credentials);
        assert_eq!(
            result,
            Err(VerifyError::SignatureMismatch),
            "vector {:?}",
            vector.name
        );
    }
}

#[test]
fn verifier_rejects_a_date_more_than_fifteen_minutes_from_server_time() {
    let vector = &vectors()[0];
    let max = Duration::from_secs(15 * 60);
    let at = |offset_seconds: i64| {
        let now = vector.sdk_date + chrono::Duration::seconds(offset_seconds);
        verify_request(&vector.request(), &vector.credentials, now, max).map(|_| ())
    };
    assert_eq!(at(15 * 60), Ok(()));
    assert_eq!(at(-15 * 60), Ok(()));
    assert!(matches!(
        at(15 * 60 + 1),
        Err(VerifyError::ClockSkew {
            skew_seconds: 901,
            ..
        })
    ));
    assert!(matches!(
        at(-(15 * 60 + 1)),
        Err(VerifyError::ClockSkew { .. })
    ));
    let error = at(3600).unwrap_err();
    assert!(error.apig_error_msg().ends_with("signature expired"));
}

#[test]
fn verifier_rejects_an_unknown_access_key_naming_it() {
    let vector = &vectors()[0];
    let credentials = SimCredentials {
        access_key: "OTHERAK".into(),
        secret_key: vector.credentials.secret_key.clone(),
    };
    let error = verify_at(vector, &vector.request(), &credentials).unwrap_err();
    assert_eq!(
        error,
        VerifyError::UnknownAccessKey {
            access_key: "HPUAXXXXXXXXXXXXXXXX".into()
        }
    );
    assert_eq!(
        error.apig_error_msg(),
        "Incorrect IAM authentication information: ak HPUAXXXXXXXXXXXXXXXX not exist"
    );
}

#[test]
fn verifier_rejects_missing_or_malformed_authorization() {
    let vector = &vectors()[0];
    let mut headers = vector.headers.clone();
    headers.remove("authorization");
    let request = ReceivedRequest {
        headers: &headers,
        ..vector.request()
    };
    assert_eq!(
        verify_at(vector, &request, &vector.credentials),
        Err(VerifyError::MissingAuthorization)
    );

    for bad in [
        "SDK-HMAC-SHA1 Access=HPUAXXXXXXXXXXXXXXXX, SignedHeaders=x-sdk-date, Signature=00",
        "SDK-HMAC-SHA256 Access=HPUAXXXXXXXXXXXXXXXX, Signature=00",
        "SDK-HMAC-SHA256 Access=HPUAXXXXXXXXXXXXXXXX, SignedHeaders=x-sdk-date;host, Signature=00",
        "SDK-HMAC-SHA256 Access=HPUAXXXXXXXXXXXXXXXX, SignedHeaders=Host;x-sdk-date, Signature=00",
        "Bearer abc",
    ] {
        headers.insert("authorization", HeaderValue::from_static(bad));
        let request = ReceivedRequest {
            headers: &headers,
            ..vector.request()
        };
        let result = verify_at(vector, &request, &vector.credentials);
        assert!(
            matches!(result, Err(VerifyError::MalformedAuthorization(_))),
            "{bad}: {result:?}"
        );
    }
}

#[test]
fn verifier_rejects_a_second_authorization_header_even_after_a_valid_one() {
    let vector = &vectors()[0];
    let mut headers = vector.headers.clone();
    headers.append(
        "authorization",
        HeaderValue::from_static(
            "SDK-HMAC-SHA256 Access=OTHER, SignedHeaders=x-sdk-date, Signature=00",
        ),
    );
    let request = ReceivedRequest {
        headers: &headers,
        ..vector.request()
    };
    let result = verify_at(vector, &request, &vector.credentials);
    assert!(
        matches!(result, Err(VerifyError::MalformedAuthorization(_))),
        "{result:?}"
    );
}

#[test]
fn verifier_requires_x_sdk_date_to_be_signed() {
    let vector = &vectors()[0];
    let mut headers = vector.headers.clone();
    headers.insert(
        "authorization",
        HeaderValue::from_static(
            "SDK-HMAC-SHA256 Access=HPUAXXXXXXXXXXXXXXXX, SignedHeaders=host, Signature=00",
        ),
    );
    let request = ReceivedRequest {
        headers: &headers,
        ..vector.request()
    };
    assert!(matches!(
        verify_at(vector, &request, &vector.credentials),
        Err(VerifyError::BadSdkDate(_))
    ));
}

#[test]
fn verifier_accepts_go_sdk_vectors_that_sign_no_host() {
    // Go SDK signer_test.go test1 and test2 (docs/huawei-api.md §3, vectors 1 and 2).
    let credentials = SimCredentials {
        access_key: "AccessKey".into(),
        secret_key: "SecretKey".into(),
    };
    let cases: [(&str, &str, &[u8], &str); 2] = [
        (
            "GET",
            "limit=1",
            b"",
            "5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624",
        ),
        (
            "POST",
            "key=value",
            b"{\"Name\":\"test\",\"Id\":1}\n",
            "cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59",
        ),
    ];
    for (method, query, body, signature) in cases {
        let mut headers = HeaderMap::new();
        headers.insert("x-sdk-date", HeaderValue::from_static("20060102T150405Z"));
        headers.insert("test_underscore", HeaderValue::from_static("TEST_VALUE"));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let authorization = format!(
            "SDK-HMAC-SHA256 Access=AccessKey, SignedHeaders=x-sdk-date, Signature={signature}"
        );
        headers.insert(
            "authorization",
            HeaderValue::from_str(&authorization).unwrap(),
        );
        let request = ReceivedRequest {
            method,
            path: "/path",
            query: Some(query),
            headers: &headers,
            body,
        };
        let now = parse_sdk_date("20060102T150405Z").unwrap();
        let result = verify_request(&request, &credentials, now, Duration::from_secs(900));
        assert!(result.is_ok(), "{method}: {result:?}");
    }
}

#[test]
fn canonical_query_matches_the_sdk_unit_test_and_keeps_plus_literal() {
    let expected = "enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29";
    let shuffled = "test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29&multi=3&limit=1&multi=1&path=/tmp/123&enable=true&multi=2";
    assert_eq!(canonical_query_string(shuffled), expected);
    assert_eq!(canonical_query_string(expected), expected);
    assert_eq!(canonical_query_string("a=x+y"), "a=x%2By");
    assert_eq!(canonical_query_string("empty&b="), "b=&empty=");
    assert_eq!(canonical_query_string(""), "");
}

#[test]
fn canonical_uri_decodes_reencodes_and_appends_a_slash() {
    assert_eq!(
        canonical_uri("/v5/abc/image/registries"),
        "/v5/abc/image/registries/"
    );
    assert_eq!(canonical_uri("/a%20b/c~d*"), "/a%20b/c~d%2A/");
    assert_eq!(canonical_uri("/already/"), "/already/");
    assert_eq!(canonical_uri(""), "/");
}

#[test]
fn errors_and_debug_output_never_contain_the_secret_key_or_signature() {
    let vector = &vectors()[0];
    let signature = vector.headers["authorization"]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_string();
    let mut wrong = vector.credentials.clone();
    wrong.secret_key = "not-the-key".into();
    let error = verify_at(vector, &vector.request(), &wrong).unwrap_err();
    for text in [
        error.to_string(),
        error.apig_error_msg(),
        format!("{error:?}"),
        format!("{:?}", vector.credentials),
    ] {
        assert!(!text.contains(&vector.credentials.secret_key), "{text}");
        assert!(!text.contains(&signature), "{text}");
    }
}

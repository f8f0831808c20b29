//! Tests of each fault, served over HTTP, and of its JSON form.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::sim::testkit::*;
use crate::sim::SimConfig;

#[tokio::test]
async fn fail_page_fault_fails_the_given_times_then_the_page_succeeds() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::FailPage {
        project_id: Some(h.project_id.clone()),
        offset: Some(10),
        status: 500,
        error_code: "HSS.9999".into(),
        error_msg: "injected failure".into(),
        times: Some(1),
    });
    assert_eq!(
        h.list("offset=0").await.status,
        200,
        "other offsets are unaffected"
    );
    h.list("offset=10")
        .await
        .assert_huawei_error(500, "HSS.9999", "injected failure");
    assert_eq!(h.list("offset=10").await.status, 200);

    h.simulator.add_fault(Fault::rate_limited(None, None));
    h.list("offset=0")
        .await
        .assert_huawei_error(429, "APIG.0308", "throttling threshold");
    h.list("offset=0")
        .await
        .assert_huawei_error(429, "APIG.0308", "throttling threshold");
    h.simulator.clear_faults();
    assert_eq!(h.list("offset=0").await.status, 200);
}

#[tokio::test]
async fn malformed_json_fault_returns_a_truncated_body_with_status_200() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::MalformedJson {
        project_id: None,
        offset: None,
        times: Some(1),
    });
    let broken = h.list("limit=50").await;
    assert_eq!(broken.status, 200);
    assert!(
        broken.text.starts_with("{\"total_num\":"),
        "{}",
        broken.text
    );
    assert!(serde_json::from_str::<Value>(&broken.text).is_err());
    assert!(serde_json::from_str::<Value>(&h.list("limit=50").await.text).is_ok());
}

#[tokio::test]
async fn max_page_items_fault_returns_fewer_items_than_the_limit() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::MaxPageItems(7));
    let first = h.list("limit=200").await.json();
    assert_eq!(first["data_list"].as_array().unwrap().len(), 7);
    assert_eq!(first["total_num"], 25);
    let second = h.list("limit=200&offset=7").await.ids();
    let expected: Vec<String> = h.simulator.registries(&h.project_id, Some("0"))[7..14]
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(second, expected);
}

#[tokio::test]
async fn wrong_total_num_fault_reports_the_given_total_for_that_project_only() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::WrongTotalNum {
        project_id: Some(h.project_id.clone()),
        total_num: 3,
    });
    let page = h.list("limit=200").await.json();
    assert_eq!(
        (
            page["total_num"].as_i64(),
            page["data_list"].as_array().unwrap().len()
        ),
        (Some(3), 25)
    );
    let other = &h.simulator.project_ids()[1];
    let page = h.get(&format!("/v5/{other}/image/registries")).await.json();
    assert_eq!(page["total_num"], 25);
}

fn token_config(tokens: &[&str]) -> SimConfig {
    SimConfig {
        accepted_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn quota_rejects_the_request_over_the_limit_with_retry_after_until_the_window_passes() {
    // Arrange
    let h = harness(token_config(&["token-a", "token-b"])).await;
    h.simulator.add_fault(Fault::Quota {
        max_requests: 3,
        window: Duration::from_millis(200),
        retry_after: true,
    });
    let project_id = h.project_id.clone();

    // Act
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(h.list_with_token(&project_id, "token-a", "").await.status);
    }
    let over = h.list_with_token(&project_id, "token-a", "").await;
    let other_user = h.list_with_token(&project_id, "token-b", "").await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after_window = h.list_with_token(&project_id, "token-a", "").await;

    // Assert
    assert_eq!(statuses, [200, 200, 200]);
    over.assert_huawei_error(
        429,
        "APIG.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:3,time:200 millisecond",
    );
    assert_eq!(over.headers["retry-after"], "1");
    assert_eq!(other_user.status, 200, "the quota is per user");
    assert_eq!(after_window.status, 200, "{}", after_window.text);
    assert_eq!(h.simulator.throttled_count(), 1);
    let log = h.simulator.request_log();
    assert_eq!(log[3].retry_after, Some(1));
    assert_eq!((log[3].status, log[3].auth.as_str()), (429, "token"));
}

#[tokio::test]
async fn quota_rejected_requests_do_not_use_up_quota() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::Quota {
        max_requests: 2,
        window: Duration::from_millis(300),
        retry_after: false,
    });
    assert_eq!(h.list("").await.status, 200);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(h.list("").await.status, 200);
    let rejected = h.list("").await;
    assert_eq!(rejected.status, 429);
    assert!(rejected.headers.get("retry-after").is_none());
    // The first request leaves the window; had the rejected one counted, this would still fail.
    tokio::time::sleep(Duration::from_millis(180)).await;
    assert_eq!(h.list("").await.status, 200);
}

#[tokio::test]
async fn throttle_every_nth_answers_every_third_request_with_429_and_retry_after() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::ThrottleEveryNth {
        n: 3,
        retry_after_seconds: Some(2),
    });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let answer = h.list("").await;
        if answer.status == 429 {
            answer.assert_huawei_error(429, "APIG.0308", "limit:5,time:1 minute");
            assert_eq!(answer.headers["retry-after"], "2");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 429, 200, 200, 429]);
    assert_eq!(h.simulator.throttled_count(), 2);
    assert_eq!(h.simulator.request_count(), 6);
}

#[tokio::test]
async fn hang_never_answers_so_the_client_timeout_fires_and_shutdown_still_completes() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::Hang {
        project_id: Some(h.project_id.clone()),
        offset: Some(10),
        times: Some(1),
    });
    let url = format!(
        "{}/v5/{}/image/registries?offset=10",
        h.running.base_url(),
        h.project_id
    );
    let hung = h
        .client
        .get(&url)
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(h.list("offset=0").await.status, 200, "other offsets answer");
    assert_eq!(
        h.list("offset=10").await.status,
        200,
        "the fault was used up"
    );
    let log = h.simulator.request_log();
    assert_eq!(
        log[0].status, 0,
        "a hung request is logged without a status"
    );

    // A second hung request must not hold graceful shutdown for an hour.
    h.simulator.add_fault(Fault::Hang {
        project_id: None,
        offset: None,
        times: None,
    });
    let client = h.client.clone();
    let pending = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(Duration::from_secs(5), h.running.shutdown())
        .await
        .expect("shutdown releases hung requests");
    let released = pending.await.unwrap().unwrap();
    assert_eq!(released.status().as_u16(), 504);
}

#[tokio::test]
async fn forbidden_project_gets_hss_0013_until_faults_are_cleared() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::Forbidden {
        project_id: h.project_id.clone(),
    });
    h.list("")
        .await
        .assert_huawei_error(403, "HSS.0013", "Insufficient permissions");
    h.list("offset=10")
        .await
        .assert_huawei_error(403, "HSS.0013", "Insufficient permissions");
    let other = &h.simulator.project_ids()[1];
    assert_eq!(
        h.get(&format!("/v5/{other}/image/registries")).await.status,
        200
    );
    h.simulator.clear_faults();
    assert_eq!(h.list("").await.status, 200);
}

#[tokio::test]
async fn drift_during_walk_makes_the_next_page_repeat_items_and_a_rewalk_is_consistent() {
    // Arrange: 25 registries in EP 0, pages of 10.
    let h = harness(SimConfig::default()).await;
    let before = h.simulator.registries(&h.project_id, Some("0"));
    h.simulator.add_fault(Fault::DriftDuringWalk {
        project_id: Some(h.project_id.clone()),
        after_requests: 1,
        n_insert: 3,
        n_delete: 1,
        times: Some(1),
    });

    // Act
    let first = h.list("offset=0&limit=10").await.ids();
    let second = h.list("offset=10&limit=10").await.ids();

    // Assert: the list shifted by 3 - 1 = 2 after the first page, so the second page starts with
    // items 8 and 9 of the first page again.
    let id = |r: &Value| r["id"].as_str().unwrap().to_string();
    let first_expected: Vec<String> = before[..10].iter().map(id).collect();
    assert_eq!(first, first_expected);
    assert_eq!(second[..2], first[8..10]);
    let after = h.simulator.registries(&h.project_id, Some("0"));
    assert_eq!(after.len(), 25 + 3 - 1);
    assert_eq!(
        after[3..],
        before[1..],
        "new items first, the first old one gone"
    );

    let mut rewalk = Vec::new();
    for offset in [0, 10, 20, 30] {
        rewalk.extend(h.list(&format!("offset={offset}&limit=10")).await.ids());
    }
    assert_eq!(rewalk, after.iter().map(id).collect::<Vec<_>>());
    assert!(
        h.simulator.faults().is_empty(),
        "the drift fault is used up"
    );
}

#[tokio::test]
async fn server_error_fault_fails_every_nth_request_with_a_transient_status() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::ServerError {
        status: 503,
        every_nth: 2,
    });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = h.list("").await;
        if answer.status != 200 {
            answer.assert_huawei_error(503, "APIG.0201", "Backend unavailable");
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 503, 200, 503]);
}

#[tokio::test]
async fn truncated_body_is_the_first_half_of_the_real_page() {
    let h = harness(SimConfig::default()).await;
    let full = h.list("limit=50").await.text;
    h.simulator
        .add_fault(Fault::truncated_body(None, Some(0), Some(1)));
    let truncated = h.list("limit=50").await;
    assert_eq!(truncated.status, 200);
    assert!(full.starts_with(&truncated.text));
    assert!(truncated.text.len() < full.len());
    assert!(serde_json::from_str::<Value>(&truncated.text).is_err());
}

#[tokio::test]
async fn latency_fault_delays_each_request_by_at_least_min() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::Latency {
        min: Duration::from_millis(120),
        max: Duration::from_millis(150),
    });
    let started = Instant::now();
    assert_eq!(h.list("").await.status, 200);
    assert_eq!(h.get("/v1.0/enterprise-projects").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(240));
}

#[tokio::test]
async fn raw_page_fault_answers_200_with_exactly_the_given_body_at_its_offset() {
    let h = harness(SimConfig::default()).await;
    let bodies = [
        "{}",
        r#"{"data_list": null}"#,
        r#"{"error_code":"HSS.1001","error_msg":"internal"}"#,
        r#"{"data_list":[{"id":"a"}]}"#,
        r#"{"total_num":1,"data_list":{"id":"a"}}"#,
        r#"{"total_num":1,"data_list":[{"registry_name":"no id"}]}"#,
    ];
    for body in bodies {
        h.simulator
            .add_fault(Fault::raw_page(None, Some(10), body, Some(1)));
        assert_eq!(h.list("offset=0").await.json()["total_num"], 25);
        let odd = h.list("offset=10").await;
        assert_eq!((odd.status, odd.text.as_str()), (200, body));
        assert_eq!(
            odd.headers["content-type"],
            "application/json;charset=UTF-8"
        );
        assert!(!odd.request_id_header.is_empty());
        assert_eq!(h.list("offset=10").await.json()["total_num"], 25, "used up");
    }
    let other = h.simulator.project_ids()[1].clone();
    h.simulator
        .add_fault(Fault::raw_page(Some(other.clone()), None, "{}", None));
    assert_eq!(h.list("").await.json()["total_num"], 25);
    for _ in 0..3 {
        let answer = h.get(&format!("/v5/{other}/image/registries")).await;
        assert_eq!(answer.text, "{}", "forever");
    }
}

#[tokio::test]
async fn fail_enterprise_project_fault_fails_one_scope_while_the_others_answer() {
    let h = harness(SimConfig::default()).await;
    let ep = h.simulator.enterprise_project_ids()[1].clone();
    let url = format!("{}/sim/faults", h.running.base_url());
    let spec = json!({"kind":"fail_enterprise_project","project_id":h.project_id,"enterprise_project_id":ep,
        "status":500,"error_code":"HSS.1001","error_msg":"injected","times":2});
    assert_eq!(h.send(h.client.post(&url).json(&spec)).await.status, 201);

    for _ in 0..2 {
        h.list(&format!("enterprise_project_id={ep}&offset=10"))
            .await
            .assert_huawei_error(500, "HSS.1001", "injected");
    }
    assert_eq!(
        h.list(&format!("enterprise_project_id={ep}")).await.status,
        200,
        "used up"
    );

    h.simulator.add_fault(Fault::FailEnterpriseProject {
        project_id: None,
        enterprise_project_id: "0".into(),
        status: 503,
        error_code: "APIG.0201".into(),
        error_msg: "Backend unavailable".into(),
        times: None,
    });
    assert_eq!(
        h.list("").await.status,
        503,
        "the default enterprise project is \"0\""
    );
    assert_eq!(
        h.list(&format!("enterprise_project_id={ep}")).await.status,
        200
    );
    assert_eq!(
        h.list("enterprise_project_id=all_granted_eps").await.status,
        200
    );
}

#[tokio::test]
async fn omit_total_num_fault_serves_the_real_page_without_total_num() {
    let h = harness(SimConfig::default()).await;
    h.simulator.add_fault(Fault::rate_limited(None, Some(1)));
    h.simulator.add_fault(Fault::OmitTotalNum {
        project_id: Some(h.project_id.clone()),
        offset: Some(0),
        times: Some(1),
    });
    assert_eq!(
        h.list("").await.status,
        429,
        "a throttled request uses none of it"
    );
    let page = h.list("limit=20").await.json();
    assert!(page.get("total_num").is_none(), "{page}");
    let expected: Vec<Value> = h.simulator.registries(&h.project_id, Some("0"))[..20].to_vec();
    assert_eq!(page["data_list"].as_array().unwrap(), &expected);
    assert_eq!(h.list("limit=20").await.json()["total_num"], 25, "used up");
    assert!(h.simulator.faults().is_empty());
}

#[test]
fn throttling_message_names_the_window_in_apig_units() {
    assert!(throttling_message(5, Duration::from_secs(60)).ends_with("limit:5,time:1 minute"));
    assert!(throttling_message(2, Duration::from_secs(1)).ends_with("limit:2,time:1 second"));
    assert!(
        throttling_message(3, Duration::from_millis(200)).ends_with("limit:3,time:200 millisecond")
    );
}

#[test]
fn every_fault_kind_parses_from_json_into_the_fault_it_names() {
    let parse = |text: &str| serde_json::from_str::<Fault>(text).unwrap();
    assert!(matches!(
        parse(r#"{"kind":"truncated_body","times":2}"#),
        Fault::MalformedJson {
            times: Some(2),
            project_id: None,
            offset: None
        }
    ));
    assert!(matches!(
        parse(r#"{"kind":"rate_limited"}"#),
        Fault::RateLimited {
            project_id: None,
            times: None,
        }
    ));
    assert!(matches!(
        parse(r#"{"kind":"latency","min_ms":5,"max_ms":9}"#),
        Fault::Latency { min, max } if min == Duration::from_millis(5) && max == Duration::from_millis(9)
    ));
    assert!(matches!(
        parse(r#"{"kind":"quota","max_requests":5,"window_seconds":0.5}"#),
        Fault::Quota { max_requests: 5, window, retry_after: false } if window == Duration::from_millis(500)
    ));
    assert!(matches!(
        parse(r#"{"kind":"hang","offset":200}"#),
        Fault::Hang {
            offset: Some(200),
            ..
        }
    ));
    assert!(matches!(
        parse(r#"{"kind":"forbidden","project_id":"p"}"#),
        Fault::Forbidden { project_id } if project_id == "p"
    ));
    assert!(matches!(
        parse(r#"{"kind":"throttle_every_nth","n":4}"#),
        Fault::ThrottleEveryNth {
            n: 4,
            retry_after_seconds: None
        }
    ));
    assert!(matches!(
        parse(r#"{"kind":"max_page_items","max_items":3}"#),
        Fault::MaxPageItems(3)
    ));
    assert!(matches!(
        parse(r#"{"kind":"raw_page","offset":0,"body":"{\"data_list\": null}","times":1}"#),
        Fault::RawPage { offset: Some(0), body, times: Some(1), project_id: None } if body == r#"{"data_list": null}"#
    ));
    assert!(matches!(
        parse(r#"{"kind":"omit_total_num","project_id":"p"}"#),
        Fault::OmitTotalNum { project_id: Some(p), offset: None, times: None } if p == "p"
    ));
}

#[test]
fn every_fault_serializes_to_json_that_parses_back_to_the_same_fault() {
    let faults = [
        Fault::backend_unavailable(Some("p".into()), Some(10), Some(2)),
        Fault::rate_limited(None, Some(1)),
        Fault::truncated_body(None, None, None),
        Fault::raw_page(None, Some(0), "{}", Some(1)),
        Fault::MaxPageItems(7),
        Fault::Latency {
            min: Duration::from_millis(5),
            max: Duration::from_millis(9),
        },
        Fault::Quota {
            max_requests: 5,
            window: Duration::from_millis(1500),
            retry_after: true,
        },
    ];
    for fault in faults {
        let json = serde_json::to_string(&fault).unwrap();
        assert_eq!(
            serde_json::from_str::<Fault>(&json).unwrap(),
            fault,
            "{json}"
        );
    }
}

#[test]
fn the_documented_fault_kinds_are_every_kind_with_the_fields_the_parser_wants() {
    // Every kind the parser knows (its error lists them, aliases included) is documented.
    let unknown = serde_json::from_str::<Fault>(r#"{"kind":"no_such_kind"}"#)
        .unwrap_err()
        .to_string();
    let known = unknown.split("expected one of ").nth(1).unwrap();
    for name in known.split(", ") {
        let name = name.split('`').nth(1).unwrap();
        assert!(
            FAULT_KINDS.iter().any(|k| k.kind == name) || name == "truncated_body",
            "fault kind {name} is not in FAULT_KINDS"
        );
    }
    for kind in FAULT_KINDS {
        let example: Value = serde_json::from_str(kind.example).unwrap();
        let fault: Fault = serde_json::from_value(example.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", kind.kind));
        assert_eq!(serde_json::to_value(&fault).unwrap()["kind"], kind.kind);
        for field in kind.required {
            let mut without = example.clone();
            without.as_object_mut().unwrap().remove(*field);
            let error = serde_json::from_value::<Fault>(without)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(&format!("missing field `{field}`")),
                "{}: {error}",
                kind.kind
            );
        }
        let mut minimal = example.clone();
        for field in kind.optional {
            let name = field.split(' ').next().unwrap();
            minimal.as_object_mut().unwrap().remove(name);
        }
        assert!(
            serde_json::from_value::<Fault>(minimal).is_ok(),
            "{} needs a field documented as optional",
            kind.kind
        );
        let mut extra = example.clone();
        extra["colour"] = json!("blue");
        let error = serde_json::from_value::<Fault>(extra)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("unknown field `colour`"),
            "{}: {error}",
            kind.kind
        );
    }
}

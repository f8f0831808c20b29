//! Tests of the `/sim/` admin routes.

use super::*;
use crate::sim::testkit::*;
use crate::sim::{Mutation, SimConfig};

#[tokio::test]
async fn admin_endpoints_report_the_estate_mutate_it_and_clear_faults() {
    let h = harness(SimConfig::default()).await;
    let estate = h.get("/sim/estate").await.json();
    assert_eq!(estate["registry_count"], 150);
    assert_eq!(estate["projects"][0]["project_id"], h.project_id);
    assert_eq!(estate["enterprise_project_ids"][0], "0");

    let url = format!("{}/sim/mutate", h.running.base_url());
    let answer = h
        .send(h.client.post(url).json(&Mutation {
            seed: 1,
            n_update: 2,
            n_delete: 3,
            n_add: 4,
        }))
        .await;
    assert_eq!(answer.status, 200);
    let summary = answer.json();
    assert_eq!(summary["deleted"].as_array().unwrap().len(), 3);
    assert_eq!(h.simulator.registry_count(), 151);

    h.simulator.add_fault(Fault::MaxPageItems(1));
    let cleared = h
        .send(
            h.client
                .post(format!("{}/sim/faults/clear", h.running.base_url())),
        )
        .await;
    assert_eq!(cleared.status, 204);
    assert!(!cleared.request_id_header.is_empty());
    assert_eq!(h.list("").await.ids().len(), 10);
    assert_eq!(
        h.simulator.request_count(),
        1,
        "admin calls are not listregistry requests"
    );
}

#[tokio::test]
async fn faults_posted_as_json_to_the_admin_route_take_effect_and_are_logged_as_admin() {
    let h = harness(SimConfig::default()).await;
    let url = format!("{}/sim/faults", h.running.base_url());
    let added = h
        .send(
            h.client.post(&url).body(
                r#"{"kind":"quota","max_requests":1,"window_seconds":60,"retry_after":true}"#,
            ),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!(added.json()["kind"], "quota", "{}", added.text);
    assert_eq!(h.list("").await.status, 200);
    let throttled = h.list("").await;
    throttled.assert_huawei_error(429, "APIG.0308", "limit:1,time:1 minute");
    let retry_after: u32 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&retry_after), "{retry_after}");

    let listed = h.get("/sim/faults").await.json();
    assert_eq!(listed["installed"][0]["kind"], "quota");
    assert_eq!(listed["installed"][0]["window_seconds"], 60.0);
    for bad in [
        r#"{"kind":"no_such_fault"}"#,
        r#"{"kind":"quota","max_requests":1,"window_seconds":0}"#,
        r#"{"kind":"server_error","status":1000,"every_nth":1}"#,
    ] {
        let answer = h.send(h.client.post(&url).body(bad)).await;
        assert_eq!(answer.status, 400, "{bad}");
    }
    let drift = h
        .send(
            h.client
                .post(&url)
                .body(r#"{"kind":"drift_during_walk","after_requests":2,"n_insert":1,"times":1}"#),
        )
        .await;
    assert_eq!(drift.status, 201);

    let log = h.simulator.request_log();
    let apis: Vec<&str> = log.iter().map(|r| r.api.as_str()).collect();
    assert_eq!(
        apis,
        [
            "Admin",
            "ListRegistry",
            "ListRegistry",
            "Admin",
            "Admin",
            "Admin",
            "Admin",
            "Admin"
        ]
    );
    assert_eq!(h.simulator.request_count(), 2);
}

#[tokio::test]
async fn estate_changes_posted_to_the_mutate_route_apply_and_bad_ones_are_rejected() {
    let h = harness(SimConfig::default()).await;
    let url = format!("{}/sim/mutate", h.running.base_url());
    let post = |body: Value| h.send(h.client.post(&url).json(&body));
    let id = h.simulator.registries(&h.project_id, Some("0"))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ep = h.simulator.enterprise_project_ids()[1].clone();
    let other = h.simulator.project_ids()[1].clone();

    let moved =
        post(json!({"kind":"move","id":id,"project_id":h.project_id,"enterprise_project_id":ep}))
            .await;
    assert_eq!((moved.status, moved.json()), (200, json!({"id": id})));
    assert_eq!(
        h.simulator.locate_registry(&id),
        Some((h.project_id.clone(), ep))
    );
    let moved =
        post(json!({"kind":"move","id":id,"project_id":other,"enterprise_project_id":"0"})).await;
    assert_eq!(moved.status, 200);
    assert_eq!(
        h.simulator.locate_registry(&id),
        Some((other.clone(), "0".to_string()))
    );

    assert_eq!(post(json!({"kind":"delete","id":id})).await.status, 200);
    assert_eq!(h.simulator.locate_registry(&id), None);
    assert_eq!(
        h.simulator.deleted_registry_ids(),
        std::slice::from_ref(&id)
    );
    assert_eq!(post(json!({"kind":"restore","id":id})).await.status, 200);
    assert_eq!(
        h.simulator.locate_registry(&id),
        Some((other, "0".to_string()))
    );

    let added =
        post(json!({"kind":"add","project_id":h.project_id,"enterprise_project_id":"0","seed":3}))
            .await;
    let new_id = added.json()["id"].as_str().unwrap().to_string();
    assert_eq!(h.simulator.locate_registry(&new_id).unwrap().1, "0");
    assert_eq!(
        post(json!({"kind":"update","id":new_id,"seed":4}))
            .await
            .status,
        200
    );

    for (bad, reason) in [
        (
            json!({"kind":"update","id":"nope","seed":1}),
            "no registry nope",
        ),
        (
            json!({"kind":"restore","id":new_id}),
            "is in the simulated estate already",
        ),
        (json!({"kind":"restore","id":"nope"}), "was never deleted"),
        (
            json!({"kind":"add","project_id":"nope","enterprise_project_id":"0","seed":1}),
            "no project nope",
        ),
        (json!({"kind":"teleport"}), "unknown variant"),
    ] {
        let answer = post(bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad}");
        assert!(
            answer.json()["error"].as_str().unwrap().contains(reason),
            "{}",
            answer.text
        );
    }
    assert_eq!(h.simulator.registry_count(), 151);
}

//! Tests of EPS enterprise-project listing.

use super::*;
use crate::sim::testkit::*;
use crate::sim::SimConfig;

#[tokio::test]
async fn eps_lists_default_estate_and_disabled_enterprise_projects() {
    let h = harness(with_iam_user()).await;
    let answer = h
        .send(h.signed_global_get("/v1.0/enterprise-projects", ""))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let listing = answer.json();
    assert_eq!(listing["total_count"], 4);
    let eps = listing["enterprise_projects"].as_array().unwrap();
    let default = eps.iter().find(|ep| ep["id"] == "0").unwrap();
    assert_eq!(
        (default["name"].as_str(), default["status"].as_i64()),
        (Some("default"), Some(1))
    );
    assert_eq!(default["created_at"], "2018-05-18T06:49:06Z");
    let enabled: Vec<&str> = eps
        .iter()
        .filter(|ep| ep["status"] == 1)
        .map(|ep| ep["id"].as_str().unwrap())
        .collect();
    let mut expected = h.simulator.enterprise_project_ids();
    expected.reverse(); // newest first, the default order
    assert_eq!(enabled, expected);

    let disabled = h
        .send(h.signed_global_get("/v1.0/enterprise-projects", "status=2"))
        .await
        .json();
    assert_eq!(disabled["total_count"], 1);
    let disabled_id = disabled["enterprise_projects"][0]["id"].as_str().unwrap();
    let page = h
        .send(h.signed_list(
            &format!("enterprise_project_id={disabled_id}"),
            SECRET_KEY,
            &now_sdk_date(0),
        ))
        .await;
    assert_eq!(
        page.json(),
        json!({"total_num": 0, "data_list": []}),
        "the disabled EP holds no registries"
    );

    let paged = h
        .send(h.signed_global_get("/v1.0/enterprise-projects", "limit=1&offset=1"))
        .await
        .json();
    assert_eq!(paged["total_count"], 4);
    assert_eq!(paged["enterprise_projects"].as_array().unwrap().len(), 1);
    assert_eq!(paged["enterprise_projects"][0], eps[1]);

    for (query, code) in [
        ("limit=0", "EPS.0017"),
        ("limit=1001", "EPS.0017"),
        ("offset=-1", "EPS.0018"),
        ("status=3", "EPS.0002"),
    ] {
        h.send(h.signed_global_get("/v1.0/enterprise-projects", query))
            .await
            .assert_huawei_error(400, code, ".");
    }
}

#[tokio::test]
async fn disabled_enterprise_projects_feature_answers_eps_0004() {
    let h = harness(SimConfig {
        eps_enabled: false,
        ..SimConfig::default()
    })
    .await;
    h.get("/v1.0/enterprise-projects")
        .await
        .assert_huawei_error(
            403,
            "EPS.0004",
            "Enterprise project not enabled or permission denied",
        );
    let page = h
        .list("enterprise_project_id=all_granted_eps&limit=200")
        .await;
    assert_eq!(page.json()["total_num"], 75, "all_granted_eps still works");
}

//! Tests of ListRegistry: paging, parameters, filters, project checks and signatures.

use super::*;
use crate::sim::testkit::*;
use crate::sim::SimConfig;

#[tokio::test]
async fn walking_offsets_with_limit_200_over_201_items_yields_200_then_1_then_empty() {
    let h = harness(SimConfig::default()).await;
    h.simulator.set_registries_in_scope(&h.project_id, "0", 201);
    let expected: Vec<Value> = h.simulator.registries(&h.project_id, Some("0"));

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut offset = 0;
    loop {
        let page = h.list(&format!("limit=200&offset={offset}")).await;
        assert_eq!(page.status, 200);
        let body = page.json();
        assert_eq!(body["total_num"], 201);
        let items = body["data_list"].as_array().unwrap().clone();
        page_sizes.push(items.len());
        if items.is_empty() {
            break;
        }
        offset += items.len();
        seen.extend(items);
    }
    assert_eq!(page_sizes, [200, 1, 0]);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_scope_of_exactly_200_fits_one_page_and_an_empty_scope_has_total_zero() {
    let h = harness(SimConfig::default()).await;
    h.simulator.set_registries_in_scope(&h.project_id, "0", 200);
    let page = h.list("limit=200").await.json();
    assert_eq!(
        (
            page["total_num"].as_i64(),
            page["data_list"].as_array().unwrap().len()
        ),
        (Some(200), 200)
    );
    h.simulator.set_registries_in_scope(&h.project_id, "0", 0);
    let page = h.list("limit=200").await.json();
    assert_eq!(page, json!({"total_num": 0, "data_list": []}));
}

#[tokio::test]
async fn out_of_range_or_non_integer_parameters_are_rejected_with_hss_0001() {
    let h = harness(SimConfig::default()).await;
    h.list("limit=9").await.assert_huawei_error(
        400,
        "HSS.0001",
        "invalid parameter: limit must be between 10 and 200",
    );
    h.list("limit=201").await.assert_huawei_error(
        400,
        "HSS.0001",
        "limit must be between 10 and 200",
    );
    h.list("offset=2000001").await.assert_huawei_error(
        400,
        "HSS.0001",
        "offset must be between 0 and 2000000",
    );
    h.list("offset=-1").await.assert_huawei_error(
        400,
        "HSS.0001",
        "offset must be between 0 and 2000000",
    );
    h.list("limit=ten")
        .await
        .assert_huawei_error(400, "HSS.0001", "limit must be an integer");
    h.list("limit=99999999999999999999999")
        .await
        .assert_huawei_error(400, "HSS.0001", "limit must be between");
    let long_name = "a".repeat(129);
    h.list(&format!("registry_name={long_name}"))
        .await
        .assert_huawei_error(400, "HSS.0001", "registry_name must be 1 to 128");
    assert_eq!(h.list("limit=10&offset=2000000").await.status, 200);
    assert_eq!(
        h.simulator.request_count(),
        8,
        "rejected requests are counted too"
    );
}

#[tokio::test]
async fn missing_parameters_default_to_enterprise_project_0_offset_0_and_limit_10() {
    let h = harness(SimConfig::default()).await;
    let page = h
        .get(&format!("/v5/{}/image/registries", h.project_id))
        .await
        .json();
    let default_scope = h.simulator.registries(&h.project_id, Some("0"));
    assert_eq!(page["total_num"], default_scope.len());
    assert_eq!(
        page["data_list"].as_array().unwrap()[..],
        default_scope[..10]
    );
    let log = h.simulator.request_log();
    assert_eq!(
        (
            log[0].offset,
            log[0].limit,
            log[0].enterprise_project_id.clone()
        ),
        (None, None, None)
    );
}

#[tokio::test]
async fn all_granted_eps_returns_the_registries_of_every_enterprise_project() {
    let h = harness(SimConfig::default()).await;
    let page = h
        .list("enterprise_project_id=all_granted_eps&limit=200")
        .await
        .json();
    let everything = h.simulator.registries(&h.project_id, None);
    assert_eq!(everything.len(), 3 * 25);
    assert_eq!(page["total_num"], 75);
    assert_eq!(page["data_list"].as_array().unwrap(), &everything);

    let ep = h.simulator.enterprise_project_ids()[2].clone();
    let page = h
        .list(&format!("enterprise_project_id={ep}&limit=200"))
        .await
        .json();
    assert_eq!(
        page["data_list"].as_array().unwrap(),
        &h.simulator.registries(&h.project_id, Some(&ep))
    );
    let unknown = h.list("enterprise_project_id=no-such-ep").await.json();
    assert_eq!(unknown, json!({"total_num": 0, "data_list": []}));
}

#[tokio::test]
async fn filters_select_by_name_id_type_list_address_and_status() {
    let h = harness(SimConfig::default()).await;
    let scope = h.simulator.registries(&h.project_id, Some("0"));
    let expect = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        scope
            .iter()
            .filter(|r| keep(r))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let s = |r: &Value, f: &str| r[f].as_str().unwrap_or_default().to_string();

    let by_name = h.list("limit=200&registry_name=harbor").await;
    let expected = expect(&|r| s(r, "registry_name").contains("harbor"));
    assert!(!expected.is_empty());
    assert_eq!(by_name.ids(), expected);
    assert_eq!(by_name.json()["total_num"], expected.len());

    let types = h
        .list("limit=200&registry_type=Jfrog%2CSwrShared")
        .await
        .ids();
    assert_eq!(
        types,
        expect(&|r| ["Jfrog", "SwrShared"].contains(&s(r, "registry_type").as_str()))
    );

    let failed = h.list("limit=200&status=fail").await.ids();
    assert_eq!(failed, expect(&|r| s(r, "status") == "fail"));

    let addr = h.list("limit=200&registry_addr=example").await.ids();
    assert_eq!(addr, expect(&|r| s(r, "registry_addr").contains("example")));

    let id = s(&scope[3], "id");
    assert_eq!(h.list(&format!("registry_id={id}")).await.ids(), [id]);
}

#[tokio::test]
async fn plus_in_a_filter_is_a_literal_plus_and_percent_20_is_a_space() {
    let h = harness(SimConfig::default()).await;
    h.simulator.insert_registry(
        &h.project_id,
        "0",
        json!({"id": "p1", "registry_name": "测试 repo+1"}),
    );
    assert_eq!(
        h.list("registry_name=%E6%B5%8B%E8%AF%95%20repo%2B1")
            .await
            .ids(),
        ["p1"]
    );
    assert_eq!(h.list("registry_name=repo+1").await.ids(), ["p1"]);
    assert!(h.list("registry_name=repo%201").await.ids().is_empty());
}

#[tokio::test]
async fn unknown_project_is_forbidden_with_hss_0013() {
    let h = harness(SimConfig::default()).await;
    let answer = h
        .get("/v5/ffffffffffffffffffffffffffffffff/image/registries")
        .await;
    answer.assert_huawei_error(403, "HSS.0013", "insufficient permissions");
}

#[tokio::test]
async fn x_project_id_header_different_from_the_path_is_forbidden() {
    let h = harness(SimConfig::default()).await;
    let url = format!(
        "{}/v5/{}/image/registries",
        h.running.base_url(),
        h.project_id
    );
    let answer = h
        .send(h.client.get(&url).header("X-Project-Id", "0123"))
        .await;
    answer.assert_huawei_error(403, "HSS.0010", "X-Project-Id");
    let answer = h
        .send(h.client.get(&url).header("X-Project-Id", &h.project_id))
        .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_apig_0101_with_a_request_id() {
    let h = harness(SimConfig::default()).await;
    h.get("/v5/abc/image/registries/statistics")
        .await
        .assert_huawei_error(404, "APIG.0101", "does not exist");
    h.get("/")
        .await
        .assert_huawei_error(404, "APIG.0101", "does not exist");
    let url = format!(
        "{}/v5/{}/image/registries",
        h.running.base_url(),
        h.project_id
    );
    h.send(h.client.post(url))
        .await
        .assert_huawei_error(404, "APIG.0101", "does not exist");
    assert_eq!(h.simulator.request_count(), 0);
}

#[tokio::test]
async fn inserted_raw_registries_are_returned_verbatim() {
    let h = harness(SimConfig::default()).await;
    h.simulator.set_registries_in_scope(&h.project_id, "0", 0);
    let raw = json!({"id": "raw-1", "registry_name": null, "registry_type": "Quay", "brand_new_field": [1, 2], "images_num": null});
    h.simulator.insert_registry(&h.project_id, "0", raw.clone());
    h.simulator.insert_registry(&h.project_id, "0", json!({}));
    let page = h.list("").await.json();
    assert_eq!(page, json!({"total_num": 2, "data_list": [raw, {}]}));
}

#[tokio::test]
async fn signed_request_round_trip_succeeds_and_is_logged_as_valid() {
    let h = harness(with_credentials()).await;
    let answer = h
        .send(h.signed_list(
            "enterprise_project_id=all_granted_eps&limit=200&offset=0",
            SECRET_KEY,
            &now_sdk_date(0),
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["total_num"], 75);
    let record = h.simulator.request_log().pop().unwrap();
    assert!(record.had_valid_signature);
    assert_eq!(
        (record.status, record.offset, record.limit),
        (200, Some(0), Some(200))
    );
    assert_eq!(
        record.enterprise_project_id.as_deref(),
        Some("all_granted_eps")
    );
    assert_eq!(record.request_id, answer.request_id_header);
}

#[tokio::test]
async fn bad_signatures_are_rejected_with_apig_0301_and_distinct_messages() {
    let h = harness(with_credentials()).await;
    h.list("limit=10").await.assert_huawei_error(
        401,
        "APIG.0301",
        "Incorrect IAM authentication information: authorization not found",
    );

    let wrong_key = h
        .send(h.signed_list("limit=10", "wrong-secret", &now_sdk_date(0)))
        .await;
    wrong_key.assert_huawei_error(401, "APIG.0301", "verify aksk signature fail");
    assert!(!wrong_key.text.contains(SECRET_KEY));

    let stale = h
        .send(h.signed_list("limit=10", SECRET_KEY, &now_sdk_date(-16)))
        .await;
    stale.assert_huawei_error(401, "APIG.0301", "signature expired");

    // The signature covers limit=10, the URL carries limit=20.
    let base = h
        .signed_list("limit=10", SECRET_KEY, &now_sdk_date(0))
        .build()
        .unwrap();
    let mut tampered = base;
    tampered.url_mut().set_query(Some("limit=20"));
    let answer = h
        .send(reqwest::RequestBuilder::from_parts(
            h.client.clone(),
            tampered,
        ))
        .await;
    answer.assert_huawei_error(401, "APIG.0301", "verify aksk signature fail");

    let mut unknown_ak = h
        .signed_list("limit=10", SECRET_KEY, &now_sdk_date(0))
        .build()
        .unwrap();
    unknown_ak.headers_mut().insert(
        "authorization",
        "SDK-HMAC-SHA256 Access=NOPE, SignedHeaders=host;x-project-id;x-sdk-date, Signature=00"
            .parse()
            .unwrap(),
    );
    let answer = h
        .send(reqwest::RequestBuilder::from_parts(
            h.client.clone(),
            unknown_ak,
        ))
        .await;
    answer.assert_huawei_error(401, "APIG.0301", "ak NOPE not exist");

    assert_eq!(h.simulator.request_count(), 5);
    assert!(h
        .simulator
        .request_log()
        .iter()
        .all(|r| r.status == 401 && !r.had_valid_signature));
}

#[test]
fn query_validation_accepts_the_documented_bounds() {
    let pairs = |q: &str| decode_query_pairs(q);
    let query = ListRegistryQuery::from_pairs(&pairs(
        "offset=2000000&limit=200&registry_type=Harbor,%20Jfrog&registry_name=",
    ))
    .unwrap();
    assert_eq!((query.offset, query.limit), (2_000_000, 200));
    assert_eq!(
        query.registry_types,
        Some(vec!["Harbor".to_string(), "Jfrog".to_string()])
    );
    assert_eq!(query.registry_name, None, "an empty value counts as absent");
    assert_eq!(query.enterprise_project_id, "0");
    assert!(ListRegistryQuery::from_pairs(&pairs(&format!(
        "enterprise_project_id={}",
        "e".repeat(257)
    )))
    .is_err());
    assert!(ListRegistryQuery::from_pairs(&pairs("limit=10&offset=0")).is_ok());
}

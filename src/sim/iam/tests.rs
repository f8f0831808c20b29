//! Tests of IAM tokens, token authentication and project listing.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::sim::testkit::*;
use crate::sim::{SimConfig, Simulator};

fn project_scope(name: &str) -> Value {
    json!({"project": {"name": name}})
}

fn subject_token(answer: &Answer) -> String {
    answer.headers[SUBJECT_TOKEN_HEADER]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn password_token_is_issued_with_201_and_works_only_for_its_project() {
    // Arrange
    let h = harness(with_iam_user()).await;
    let projects = h.simulator.projects();
    let (main_ap, _) = projects
        .iter()
        .find(|(_, region)| region == "ap-southeast-1")
        .unwrap()
        .clone();

    // Act
    let issued = h
        .issue_token(IAM_PASSWORD, project_scope("ap-southeast-1"))
        .await;

    // Assert
    assert_eq!(issued.status, 201, "{}", issued.text);
    let token = subject_token(&issued);
    assert!(token.len() >= 200 && token.starts_with("MII"));
    let body = issued.json()["token"].clone();
    assert_eq!(body["project"]["id"], main_ap.as_str());
    assert_eq!(body["project"]["name"], "ap-southeast-1");
    assert_eq!(body["project"]["domain"]["name"], IAM_DOMAIN);
    assert_eq!(body["user"]["name"], IAM_USER);
    assert_eq!(body["methods"], json!(["password"]));
    assert!(
        body.get("catalog").is_none(),
        "nocatalog=true drops the catalog"
    );
    let expires_at = body["expires_at"].as_str().unwrap();
    let issued_at = body["issued_at"].as_str().unwrap();
    for text in [expires_at, issued_at] {
        // 2020-01-04T09:05:22.701000Z
        assert_eq!(text.len(), 27, "{text}");
        assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.');
    }
    let lifetime = DateTime::parse_from_rfc3339(expires_at).unwrap()
        - DateTime::parse_from_rfc3339(issued_at).unwrap();
    assert_eq!(lifetime.num_hours(), 24);
    assert_eq!(h.simulator.tokens_issued(), 1);

    let ok = h.list_with_token(&main_ap, &token, "limit=10").await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    h.list_with_token(&projects[0].0, &token, "")
        .await
        .assert_huawei_error(403, "HSS.0010", "not scoped to the project");
    let log = h.simulator.request_log();
    let apis: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|r| (r.api.as_str(), r.auth.as_str(), r.status))
        .collect();
    assert_eq!(
        apis,
        [
            ("CreateToken", "none", 201),
            ("ListRegistry", "token", 200),
            ("ListRegistry", "token", 403)
        ]
    );
}

#[tokio::test]
async fn token_scoped_by_id_reaches_a_sub_project_and_the_catalog_is_sent_by_default() {
    let h = harness(with_iam_user()).await;
    let sub = h.simulator.project_ids()[2].clone();
    assert_eq!(
        h.simulator.project_name(&sub).as_deref(),
        Some("cn-north-4_proj2")
    );
    let url = format!("{}/v3/auth/tokens", h.running.base_url());
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "domain": {"name": IAM_DOMAIN}, "name": IAM_USER, "password": IAM_PASSWORD}}},
        "scope": {"project": {"id": sub}},
    }});
    let issued = h.send(h.client.post(url).json(&body)).await;
    assert_eq!(issued.status, 201);
    assert_eq!(
        issued.json()["token"]["project"]["name"],
        "cn-north-4_proj2"
    );
    assert!(issued.json()["token"]["catalog"].is_array());
    let token = subject_token(&issued);
    assert_eq!(h.list_with_token(&sub, &token, "").await.status, 200);
}

#[tokio::test]
async fn wrong_domain_user_or_password_gets_iam_401_and_no_token() {
    let h = harness(with_iam_user()).await;
    let wrong_password = h
        .issue_token("not-the-password", project_scope("cn-north-4"))
        .await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(
        wrong_password.json(),
        json!({"error": {"code": 401, "title": "Unauthorized", "message": "The username or password is wrong."}})
    );
    assert!(wrong_password.headers.get(SUBJECT_TOKEN_HEADER).is_none());
    assert!(!wrong_password.text.contains("not-the-password"));

    let url = format!("{}/v3/auth/tokens", h.running.base_url());
    for (domain, user) in [("other-account", IAM_USER), (IAM_DOMAIN, "someone-else")] {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "domain": {"name": domain}, "name": user, "password": IAM_PASSWORD}}},
            "scope": {"project": {"name": "cn-north-4"}},
        }});
        let answer = h.send(h.client.post(&url).json(&body)).await;
        assert_eq!(answer.status, 401, "{domain} {user}");
        assert_eq!(answer.json()["error"]["code"], 401);
    }
    let unknown_region = h
        .issue_token(IAM_PASSWORD, project_scope("eu-west-101"))
        .await;
    assert_eq!(unknown_region.status, 400);
    let malformed = h.send(h.client.post(&url).body("{")).await;
    assert_eq!(malformed.status, 400);
    assert_eq!(h.simulator.tokens_issued(), 0);
}

#[tokio::test]
async fn expired_token_gets_apig_0307_and_a_fresh_token_works_again() {
    let h = harness(with_iam_user()).await;
    let main = h.simulator.project_ids()[0].clone();
    let first = subject_token(
        &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
            .await,
    );
    assert_eq!(h.list_with_token(&main, &first, "").await.status, 200);

    h.simulator.expire_tokens();
    h.list_with_token(&main, &first, "")
        .await
        .assert_huawei_error(401, "APIG.0307", "The token must be updated.");

    let second = subject_token(
        &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
            .await,
    );
    assert_ne!(first, second);
    assert_eq!(h.list_with_token(&main, &second, "").await.status, 200);

    h.simulator.set_token_ttl(Duration::ZERO);
    let born_expired = subject_token(
        &h.issue_token(IAM_PASSWORD, project_scope("cn-north-4"))
            .await,
    );
    h.list_with_token(&main, &born_expired, "")
        .await
        .assert_huawei_error(401, "APIG.0307", "must be updated");
    assert_eq!(h.simulator.tokens_issued(), 3);
}

#[tokio::test]
async fn unknown_or_garbled_tokens_get_apig_0301_decrypt_token_fail() {
    let h = harness(with_iam_user()).await;
    let main = h.simulator.project_ids()[0].clone();
    for token in ["MIIgarbage", "", "not a token at all"] {
        h.list_with_token(&main, token, "")
            .await
            .assert_huawei_error(
                401,
                "APIG.0301",
                "Incorrect IAM authentication information: decrypt token fail",
            );
    }
    h.list("")
        .await
        .assert_huawei_error(401, "APIG.0301", "authorization not found");
}

#[tokio::test]
async fn accepted_static_token_works_for_every_project_and_never_expires() {
    let h = harness(SimConfig {
        accepted_tokens: vec!["given-token".into()],
        ..SimConfig::default()
    })
    .await;
    h.simulator.expire_tokens();
    for project_id in h.simulator.project_ids() {
        assert_eq!(
            h.list_with_token(&project_id, "given-token", "")
                .await
                .status,
            200
        );
    }
    assert_eq!(
        h.list_with_token(&h.project_id, "other", "").await.status,
        401
    );
    assert!(!format!("{:?}", h.simulator.config()).contains("given-token"));
}

/// The filter docs/huawei-api.md §6 recommends: enabled projects named after an HSS region, or whose
/// parent is such a project.
fn hss_project_ids(listing: &Value, regions: &[String]) -> Vec<String> {
    let projects = listing["projects"].as_array().unwrap();
    let region_ids: Vec<&str> = projects
        .iter()
        .filter(|p| regions.iter().any(|r| p["name"] == r.as_str()))
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    let mut ids: Vec<String> = projects
        .iter()
        .filter(|p| p["enabled"] == true)
        .filter(|p| {
            region_ids.contains(&p["id"].as_str().unwrap())
                || region_ids.contains(&p["parent_id"].as_str().unwrap())
        })
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn project_listing_has_region_main_projects_sub_projects_and_system_entries_to_filter() {
    // Arrange
    let h = harness(SimConfig {
        include_disabled_project: true,
        ..with_iam_user()
    })
    .await;
    let domain_id = h.simulator.domain_id();
    let ids = h.simulator.project_ids();

    // Act
    let answer = h.send(h.signed_global_get("/v3/projects", "")).await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.text);
    let listing = answer.json();
    let by_name = |name: &str| {
        listing["projects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no project {name}: {listing}"))
    };
    let main_cn = by_name("cn-north-4");
    assert_eq!(main_cn["id"], ids[0].as_str());
    assert_eq!(main_cn["parent_id"], domain_id.as_str());
    assert_eq!(main_cn["domain_id"], domain_id.as_str());
    assert_eq!(main_cn["is_domain"], false);
    assert_eq!(by_name("ap-southeast-1")["id"], ids[1].as_str());
    let sub = by_name("cn-north-4_proj2");
    assert_eq!(
        (sub["id"].as_str(), sub["parent_id"].as_str()),
        (Some(ids[2].as_str()), Some(ids[0].as_str()))
    );
    assert_eq!(by_name("MOS")["parent_id"], domain_id.as_str());
    assert_eq!(by_name("cn-north-4_retired")["enabled"], false);
    assert_eq!(listing["projects"].as_array().unwrap().len(), 5);
    assert_eq!(listing["links"]["next"], Value::Null);

    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(hss_project_ids(&listing, &h.simulator.regions()), expected);
    let record = h.simulator.request_log().pop().unwrap();
    assert_eq!(
        (
            record.api.as_str(),
            record.auth.as_str(),
            record.had_valid_signature
        ),
        ("ListProjects", "aksk", true)
    );
}

#[tokio::test]
async fn project_listing_pages_with_page_and_per_page_and_filters_by_name() {
    let h = harness(SimConfig {
        include_disabled_project: true,
        ..with_iam_user()
    })
    .await;
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let query = format!("page={page}&per_page=2");
        let listing = h
            .send(h.signed_global_get("/v3/projects", &query))
            .await
            .json();
        let projects = listing["projects"].as_array().unwrap().clone();
        assert!(projects.len() <= 2);
        seen.extend(
            projects
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        if listing["links"]["next"].is_null() {
            break;
        }
        assert!(listing["links"]["next"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v3/projects?page={}&per_page=2", page + 1)));
        page += 1;
    }
    assert_eq!((page, seen.len()), (3, 5));
    let all = h.send(h.signed_global_get("/v3/projects", "")).await.json();
    let all_ids: Vec<&str> = all["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, all_ids);

    let named = h
        .send(h.signed_global_get("/v3/projects", "name=cn-north-4"))
        .await
        .json();
    assert_eq!(named["projects"].as_array().unwrap().len(), 1);
    assert_eq!(
        named["projects"][0]["id"],
        h.simulator.project_ids()[0].as_str()
    );
    let enabled = h
        .send(h.signed_global_get("/v3/projects", "enabled=false"))
        .await
        .json();
    assert_eq!(enabled["projects"][0]["name"], "cn-north-4_retired");
}

#[tokio::test]
async fn project_listing_rejects_bad_paging_and_unauthenticated_calls_in_iam_shape() {
    let h = harness(with_iam_user()).await;
    for query in [
        "per_page=10",
        "page=1",
        "page=1&per_page=0",
        "page=1&per_page=5001",
        "page=0&per_page=5",
    ] {
        let answer = h.send(h.signed_global_get("/v3/projects", query)).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        assert_eq!(answer.json()["error"]["code"], 400);
    }
    assert_eq!(
        h.send(h.signed_global_get("/v3/projects", "page=1&per_page=5000"))
            .await
            .status,
        200
    );
    let unsigned = h.get("/v3/projects").await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(unsigned.json()["error"]["title"], "Unauthorized");

    // Any valid token lists projects, a domain-scoped one included.
    let url = format!("{}/v3/auth/tokens", h.running.base_url());
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "domain": {"name": IAM_DOMAIN}, "name": IAM_USER, "password": IAM_PASSWORD}}},
        "scope": {"domain": {"name": IAM_DOMAIN}},
    }});
    let issued = h.send(h.client.post(url).json(&body)).await;
    assert_eq!(issued.status, 201);
    assert!(issued.json()["token"].get("project").is_none());
    let token = subject_token(&issued);
    let listed = h
        .send(
            h.client
                .get(format!("{}/v3/projects", h.running.base_url()))
                .header("X-Auth-Token", &token),
        )
        .await;
    assert_eq!(listed.status, 200);
    h.list_with_token(&h.project_id, &token, "")
        .await
        .assert_huawei_error(403, "HSS.0010", "not scoped");
}

#[test]
fn simulator_reports_each_projects_region_for_one_server_answering_all_regions() {
    let simulator = Simulator::new(with_iam_user());
    let projects = simulator.projects();
    let regions: Vec<&str> = projects.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(regions, ["cn-north-4", "ap-southeast-1", "cn-north-4"]);
    for (project_id, region) in &projects {
        assert_eq!(simulator.project_region(project_id).as_ref(), Some(region));
    }
    assert_eq!(simulator.project_region("unknown"), None);
    assert_eq!(simulator.regions(), ["cn-north-4", "ap-southeast-1"]);
}

#[test]
fn iam_user_password_is_redacted_in_debug() {
    let config = with_iam_user();
    let text = format!("{config:?}");
    assert!(
        !text.contains(IAM_PASSWORD) && text.contains(IAM_USER),
        "{text}"
    );
    assert!(!format!("{:?}", Simulator::new(config)).contains(IAM_PASSWORD));
}

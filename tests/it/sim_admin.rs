//! The simulator's admin API as a user with curl meets it: every fault kind documented by
//! `GET /sim/faults` and the README, an accepted fault answered with what was installed, an unknown
//! field refused by name; and `simulate --help` naming only options it lists.

use std::process::Command;

use hss_sync::sim::{RunningSimulator, SimConfig, Simulator, FAULT_KINDS};
use serde_json::{json, Value};

/// A simulator on a loopback port, and the URL of its `/sim/faults` route.
async fn spawn() -> (Simulator, RunningSimulator, String) {
    let simulator = Simulator::new(SimConfig::default());
    let running = simulator.spawn_on_localhost().await.expect("bind loopback");
    let url = format!("{}/sim/faults", running.base_url());
    (simulator, running, url)
}

/// POST `body` to `url`; the status and the JSON answer.
async fn post(url: &str, body: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a json answer"))
}

/// The documented kind named `kind` in a `GET /sim/faults` answer.
fn kind<'a>(listing: &'a Value, kind: &str) -> &'a Value {
    listing["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .find(|k| k["kind"] == kind)
        .unwrap_or_else(|| panic!("fault kind {kind} is not documented: {listing}"))
}

#[tokio::test]
async fn get_sim_faults_documents_every_kind_with_its_required_fields_and_an_example() {
    // Arrange
    let (_simulator, running, url) = spawn().await;

    // Act
    let listing: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();

    // Assert
    assert_eq!(listing["installed"], json!([]));
    assert_eq!(
        listing["kinds"].as_array().unwrap().len(),
        FAULT_KINDS.len()
    );
    assert_eq!(
        kind(&listing, "server_error")["required"],
        json!(["status", "every_nth"])
    );
    assert_eq!(
        kind(&listing, "latency")["required"],
        json!(["min_ms", "max_ms"])
    );
    assert_eq!(
        kind(&listing, "forbidden")["required"],
        json!(["project_id"])
    );
    for documented in listing["kinds"].as_array().unwrap() {
        let example = documented["example"].as_str().unwrap();
        let (status, _) = post(&url, example).await;
        assert_eq!(status, 201, "the example of {documented} is refused");
    }
    running.shutdown().await;
}

#[tokio::test]
async fn an_accepted_fault_is_answered_with_what_was_installed_defaults_filled_in() {
    // Arrange
    let (simulator, running, url) = spawn().await;

    // Act
    let latency = post(&url, r#"{"kind":"latency","min_ms":1,"max_ms":3}"#).await;
    let drift = post(&url, r#"{"kind":"drift_during_walk","after_requests":2}"#).await;
    let listing: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();

    // Assert
    assert_eq!(
        latency,
        (201, json!({"kind": "latency", "min_ms": 1, "max_ms": 3}))
    );
    assert_eq!(drift.0, 201);
    assert_eq!(
        drift.1,
        json!({"kind": "drift_during_walk", "project_id": null, "after_requests": 2,
               "n_insert": 0, "n_delete": 0, "times": null})
    );
    assert_eq!(listing["installed"], json!([latency.1, drift.1]));
    assert_eq!(simulator.faults().len(), 2);
    running.shutdown().await;
}

#[tokio::test]
async fn an_unknown_field_a_missing_field_or_an_unknown_kind_is_refused_by_name() {
    // Arrange
    let (simulator, running, url) = spawn().await;

    for (body, named) in [
        (
            r#"{"kind":"latency","min_ms":1,"max_ms":3,"jitter_ms":2}"#,
            "`jitter_ms`",
        ),
        (r#"{"kind":"server_error","every_nth":2}"#, "`status`"),
        (r#"{"kind":"forbidden"}"#, "`project_id`"),
        (
            r#"{"kind":"fail_page","status":700,"error_code":"X","error_msg":"x"}"#,
            "status 700",
        ),
        (r#"{"kind":"slow"}"#, "`slow`"),
        (r#"{"kind":"hang","times":0}"#, "never fire"),
    ] {
        // Act
        let (status, answer) = post(&url, body).await;

        // Assert
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(named), "{body}: {error}");
    }
    assert!(simulator.faults().is_empty());
    running.shutdown().await;
}

#[test]
fn the_readme_documents_every_fault_kind_and_its_required_fields() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("### Try it against the simulator")
        .expect("the simulator section");
    let section = &readme[start..];
    let section = &section[..section[4..]
        .find("\n## ")
        .map_or(section.len(), |end| end + 4)];
    for kind in FAULT_KINDS {
        let row = section
            .lines()
            .find(|line| line.starts_with(&format!("| `{}`", kind.kind)))
            .unwrap_or_else(|| panic!("the README has no row for fault kind {}", kind.kind));
        for field in kind.required {
            assert!(
                row.contains(&format!("`{field}`")),
                "{row} does not name {field}"
            );
        }
    }
}

#[test]
fn simulate_help_mentions_only_options_it_lists() {
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args(["simulate", "--help"])
        .output()
        .expect("run hss-sync simulate --help");
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{help}");
    let listed: Vec<&str> = help
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line.strip_prefix("-h, ").unwrap_or(line);
            line.starts_with("--")
                .then(|| line.split([' ', '=', '<', ',']).next().unwrap())
        })
        .collect();
    for word in help.split(|c: char| c.is_whitespace() || "(),.;:'\"`[]".contains(c)) {
        if let Some(option) = word.strip_prefix("--").filter(|o| !o.is_empty()) {
            let option = format!("--{}", option.split(['=', '<']).next().unwrap());
            assert!(
                listed.contains(&option.as_str()),
                "simulate --help mentions {option}, which it does not list:\n{help}"
            );
        }
    }
}

//! The real `hss-sync` binary: exit codes, messages, and the demo.

use std::process::{Command, Output};

use hss_sync::sim::Fault;

use crate::helpers::{estate, Backend, TestApp, ACCESS_KEY, SECRET_KEY};

fn hss_sync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-sync"));
    command.args(args);
    for name in [
        "CLOUD_SDK_AK",
        "CLOUD_SDK_SK",
        "HSS_SYNC_AUTH_TOKEN",
        "DATABASE_URL",
        "HSS_SYNC_CONFIG",
        "RUST_LOG",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run hss-sync")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_exits_3_when_a_page_fails_mid_walk_and_0_when_all_succeed() {
    let app = TestApp::spawn(Backend::Sqlite, estate(2, 0, 210)).await;
    let projects = app.sim.project_ids().join(",");
    let endpoint = app.endpoint();
    let args = [
        "sync",
        "--region",
        "cn-north-4",
        "--endpoint",
        &endpoint,
        "--project-id",
        &projects,
        "--database-url",
        &app.db.url,
        "--max-requests-per-minute",
        "0",
        "--retry-base-delay-ms",
        "10",
        "--max-retries",
        "2",
    ];
    let keys = [("CLOUD_SDK_AK", ACCESS_KEY), ("CLOUD_SDK_SK", SECRET_KEY)];

    let ok = hss_sync(&args, &keys);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        String::from_utf8_lossy(&ok.stdout).contains(
            "succeeded: 2 scopes (0 failed), 4 pages, 4 requests (0 throttled), 420 registries fetched: 420 created"
        ),
        "{}",
        text(&ok)
    );

    app.sim.add_fault(Fault::FailPage {
        project_id: Some(app.sim.project_ids()[1].clone()),
        offset: Some(200),
        status: 503,
        error_code: "APIG.0201".to_owned(),
        error_msg: "Backend unavailable".to_owned(),
        times: None,
    });
    let partial = hss_sync(&args, &keys);
    assert_eq!(partial.status.code(), Some(3), "{}", text(&partial));
    let output = text(&partial);
    assert!(
        output.contains("partial") && output.contains("APIG.0201"),
        "{output}"
    );
    assert!(!output.contains(SECRET_KEY));
}

#[test]
fn configuration_problems_exit_2_and_name_every_key() {
    let output = hss_sync(
        &["sync", "--page-limit", "500", "--database-url", "mysql://x"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = text(&output);
    for key in [
        "region:",
        "project_ids:",
        "page_limit:",
        "database_url:",
        "credentials:",
    ] {
        assert!(message.contains(key), "{key} missing from {message}");
    }
}

#[test]
fn an_unreachable_database_exits_1_with_a_message_naming_it() {
    let output = hss_sync(
        &[
            "sync",
            "--region",
            "cn-north-4",
            "--project-id",
            "p1",
            "--database-url",
            "postgres://u:hunter2@127.0.0.1:1/db",
        ],
        &[("CLOUD_SDK_AK", "AK"), ("CLOUD_SDK_SK", "SK")],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let message = text(&output);
    assert!(
        message.contains("cannot connect to the postgres database"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn usage_errors_exit_2() {
    let output = hss_sync(&["sync", "--no-such-flag"], &[]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_demo_syncs_twice_and_leaves_a_queryable_database() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.db");
    let output = hss_sync(
        &[
            "demo",
            "--database-file",
            file.to_str().unwrap(),
            "--registries-per-scope",
            "40",
        ],
        &[],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        stdout.contains("1. first sync") && stdout.contains("3. second sync"),
        "{stdout}"
    );
    assert!(
        stdout.contains("360 created"),
        "3 projects x 3 enterprise projects x 40: {stdout}"
    );
    assert!(
        stdout.contains("updated") && stdout.contains("deleted"),
        "{stdout}"
    );
    let runs = hss_sync(
        &[
            "runs",
            "--database-url",
            &format!("sqlite://{}", file.display()),
        ],
        &[],
    );
    assert_eq!(runs.status.code(), Some(0), "{}", text(&runs));
    let listing = String::from_utf8_lossy(&runs.stdout);
    assert_eq!(listing.matches("[demo] succeeded").count(), 2, "{listing}");
}

async fn sync_exits_4_while_another_process_holds_the_sync_lease(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 5)).await;
    let lease = app
        .store
        .acquire_lease(None, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let hss_sync::store::LeaseOutcome::Acquired(lease) = lease else {
        panic!("the lease is free: {lease:?}");
    };
    let endpoint = app.endpoint();
    let projects = app.sim.project_ids().join(",");
    let args = [
        "sync",
        "--region",
        "cn-north-4",
        "--endpoint",
        &endpoint,
        "--project-id",
        &projects,
        "--database-url",
        &app.db.url,
        "--max-requests-per-minute",
        "0",
    ];
    let keys = [("CLOUD_SDK_AK", ACCESS_KEY), ("CLOUD_SDK_SK", SECRET_KEY)];

    let refused = hss_sync(&args, &keys);

    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(
        text(&refused).contains("holds the sync lease"),
        "{}",
        text(&refused)
    );
    assert!(
        app.store.recent_runs(10).await.unwrap().is_empty(),
        "no run was started"
    );
    lease.release().await.unwrap();
    let ok = hss_sync(&args, &keys);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
}
crate::on_both_backends!(sync_exits_4_while_another_process_holds_the_sync_lease);

#[test]
fn config_check_prints_the_effective_configuration_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hss-sync.toml");
    std::fs::write(
        &file,
        "region = \"eu-west-101\"\nproject_ids = [\"p1\"]\n[service]\nschedule = \"*/5 * * * *\"\n",
    )
    .unwrap();
    let output = hss_sync(
        &[
            "--config",
            file.to_str().unwrap(),
            "config",
            "check",
            "--page-limit",
            "50",
        ],
        &[
            ("CLOUD_SDK_AK", "AKCHECK"),
            ("CLOUD_SDK_SK", "sk-value-never-printed"),
            ("HSS_SYNC_LEASE_SECONDS", "90"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    for expected in [
        "region = \"eu-west-101\"",
        "page_limit = 50",
        "schedule = \"0 */5 * * * *\"",
        "lease_seconds = 90",
        "secret_key = \"[redacted]\"",
        "iam_endpoint = \"https://iam.eu-west-101.myhuaweicloud.eu/\"",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert!(!text(&output).contains("sk-value-never-printed"));

    let bad = hss_sync(
        &[
            "config",
            "check",
            "--schedule",
            "every minute",
            "--listen",
            "nowhere",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2));
    let message = text(&bad);
    for key in ["region:", "schedule:", "listen:", "credentials:"] {
        assert!(message.contains(key), "{key} missing from {message}");
    }
}

#[test]
fn config_check_prints_toml_that_config_check_takes_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hss-sync.toml");
    std::fs::write(
        &file,
        "region = \"cn-north-4\"\nproject_ids = [\"p1\", \"p2\"]\nmax_delete_percent = 20\n[filters]\nregistry_type = \"Harbor\"\n",
    )
    .unwrap();
    let keys = [
        ("CLOUD_SDK_AK", "AKCHECK"),
        ("CLOUD_SDK_SK", "sk-value-never-printed"),
    ];
    let first = hss_sync(
        &[
            "--config",
            file.to_str().unwrap(),
            "config",
            "check",
            "--concurrency",
            "2",
            "--schedule",
            "*/10 * * * *",
        ],
        &keys,
    );
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let printed = String::from_utf8(first.stdout.clone()).unwrap();
    let table: toml::Table = toml::from_str(&printed).expect("config check prints TOML");
    assert_eq!(table["concurrency"].as_integer(), Some(2));
    assert_eq!(
        table["endpoint"].as_str(),
        Some("https://hss.cn-north-4.myhuaweicloud.com/")
    );
    assert_eq!(
        table["enterprise_project_ids"].as_array().unwrap()[0].as_str(),
        Some("all_granted_eps")
    );
    assert!(!text(&first).contains("sk-value-never-printed"));

    let printed_file = dir.path().join("printed.toml");
    std::fs::write(&printed_file, &printed).unwrap();
    let again = hss_sync(
        &[
            "--config",
            printed_file.to_str().unwrap(),
            "config",
            "check",
        ],
        &keys,
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(String::from_utf8_lossy(&again.stdout), printed);

    // Without the secret in the environment, the placeholder is refused, by name.
    let without = hss_sync(
        &[
            "--config",
            printed_file.to_str().unwrap(),
            "config",
            "check",
        ],
        &[],
    );
    assert_eq!(without.status.code(), Some(2), "{}", text(&without));
    assert!(
        text(&without).contains("CLOUD_SDK_SK"),
        "{}",
        text(&without)
    );
}

#[test]
fn config_file_problems_are_all_reported_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hss-sync.toml");
    std::fs::write(
        &file,
        "regoin = \"cn-north-4\"\npage_limit = \"0\"\nconcurency = 2\n[service]\nlisten_addr = \"x\"\n",
    )
    .unwrap();
    let output = hss_sync(
        &["--config", file.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let message = text(&output);
    for expected in [
        "regoin: unknown key; did you mean region?",
        "line 1,",
        "page_limit: invalid type: string \"0\", expected u32",
        "line 2,",
        "concurency: unknown key; did you mean concurrency?",
        "line 3,",
        "service.listen_addr: unknown key",
        "line 5,",
    ] {
        assert!(
            message.contains(expected),
            "{expected} missing from {message}"
        );
    }
}

//! Errors a user reads: the real cause, each cause said once, at once.

use std::process::Command;
use std::time::{Duration, Instant};

fn sync_with_database(url: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args([
            "sync",
            "--region",
            "cn-north-4",
            "--project-id",
            "0123456789abcdef0123456789abcdef",
            "--database-url",
            url,
        ])
        .env("CLOUD_SDK_AK", "AK")
        .env("CLOUD_SDK_SK", "SK")
        .env_remove("DATABASE_URL")
        .env_remove("HSS_SYNC_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_refused_postgres_connection_is_reported_at_once_with_its_cause_once() {
    // Port 1 on loopback: nothing listens there, so the connection is refused.
    let (code, stderr, took) = sync_with_database("postgres://postgres@127.0.0.1:1/hss");

    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.matches("Connection refused").count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to the postgres database"),
        "{stderr}"
    );
    assert!(!stderr.contains("pool timed out"), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn an_unopenable_sqlite_file_is_reported_with_its_cause_once() {
    let (code, stderr, _) = sync_with_database("sqlite:///no/such/dir/x.db");

    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("unable to open database file").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_role_that_does_not_exist_is_named() {
    let mut url = url::Url::parse(&crate::helpers::postgres_admin_url()).unwrap();
    url.set_username("no_such_role_for_hss_sync").unwrap();
    let (code, stderr, _) = sync_with_database(url.as_str());

    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr
            .matches("role \"no_such_role_for_hss_sync\" does not exist")
            .count(),
        1,
        "{stderr}"
    );
}

//! Commands that only read open the database read-only, and never create one.

use std::process::Command;

use crate::helpers::{Backend, TestDb};

fn runs(database_url: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args(["runs", "--database-url", database_url])
        .env_remove("DATABASE_URL")
        .env_remove("HSS_SYNC_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn runs_on_a_missing_sqlite_file_is_an_error_naming_it_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.db");

    let (code, text) = runs(&format!("sqlite://{}", path.display()));

    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&path.display().to_string()) && text.contains("does not exist"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file was created"
    );
}

#[test]
fn runs_on_a_sqlite_file_without_the_schema_is_an_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    std::fs::write(&path, b"").unwrap();

    let (code, text) = runs(&format!("sqlite://{}", path.display()));

    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("holds no hss-sync schema"), "{text}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        0,
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_an_empty_postgres_database_is_an_error_and_migrates_nothing() {
    use sqlx::Connection;
    let db = TestDb::new(Backend::Postgres).await;

    let (code, text) = runs(&db.url);

    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("holds no hss-sync schema"), "{text}");
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let n_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n_tables, 0, "no table was created");
}

//! Upgrading a database keeps every row it holds, and the rules its schema enforces.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Connection, Row};

use hss_sync::store::Store;

use crate::helpers::{Backend, TestDb};

/// The SQLite schema as the last release before `0007_deferred_foreign_keys` left it, with one
/// run, one registry and its first version in it.
async fn sqlite_before_deferred_foreign_keys(path: &std::path::Path) {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    let mut migrator = sqlx::migrate!("./migrations/sqlite");
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 7)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator.run(&pool).await.unwrap();
    let content = "'p1', 'ep1', 'cn-north-4', 'harbor-prod', 'Harbor', 'v2', 'https', \
                   'harbor.example.com', 'robot', 'library', NULL, 'public', 'success', NULL, \
                   12, 1700000000, '{\"id\":\"r1\"}', 'abc123'";
    for statement in [
        "INSERT INTO sync_runs (id, started_at, finished_at, status, trigger) \
         VALUES (1, '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:01.000Z', 'succeeded', 'cli')"
            .to_owned(),
        format!(
            "INSERT INTO registries (id, project_id, enterprise_project_id, region, registry_name, \
             registry_type, api_version, protocol, registry_addr, registry_username, namespace, \
             connect_cluster_id, get_scan_image_channel, status, fail_reason, images_num, \
             latest_sync_time, raw, content_hash, version, first_seen_at, last_seen_at, \
             last_changed_at, deleted_at, last_sync_run_id) VALUES ('r1', {content}, 1, \
             '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z', \
             '2026-11-01T00:00:00.000Z', NULL, 1)"
        ),
        format!(
            "INSERT INTO registry_history (registry_id, version, change_kind, changed_fields, \
             valid_from, valid_to, sync_run_id, project_id, enterprise_project_id, region, \
             registry_name, registry_type, api_version, protocol, registry_addr, \
             registry_username, namespace, connect_cluster_id, get_scan_image_channel, status, \
             fail_reason, images_num, latest_sync_time, raw, content_hash) VALUES ('r1', 1, \
             'created', '[]', '2026-11-01T00:00:00.000Z', NULL, 1, {content})"
        ),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

#[tokio::test]
async fn upgrading_sqlite_to_deferred_foreign_keys_keeps_every_row_and_still_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    sqlite_before_deferred_foreign_keys(&path).await;
    let url = format!("sqlite://{}", path.display());
    let read = |sql: &'static str| {
        let url = url.clone();
        async move {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let rows: Vec<String> = sqlx::query(sql)
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    (0..row.len())
                        .map(|i| {
                            row.try_get::<Option<String>, _>(i)
                                .ok()
                                .flatten()
                                .or_else(|| row.try_get::<i64, _>(i).ok().map(|n| n.to_string()))
                                .unwrap_or_else(|| "NULL".to_owned())
                        })
                        .collect::<Vec<_>>()
                        .join("|")
                })
                .collect();
            rows
        }
    };
    let registries = "SELECT * FROM registries ORDER BY id";
    let history = "SELECT * FROM registry_history ORDER BY registry_id, version";
    let (registries_before, history_before) = (read(registries).await, read(history).await);
    assert_eq!((registries_before.len(), history_before.len()), (1, 1));

    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;

    assert_eq!(read(registries).await, registries_before);
    assert_eq!(read(history).await, history_before);
    let schema = read(
        "SELECT sql FROM sqlite_schema WHERE name IN ('registries', 'registry_history') \
         ORDER BY name",
    )
    .await;
    assert!(
        schema
            .iter()
            .all(|sql| sql.contains("REFERENCES sync_runs (id) DEFERRABLE INITIALLY DEFERRED")),
        "{schema:?}"
    );
    let indexes = read(
        "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name IN \
         ('registries', 'registry_history') AND sql IS NOT NULL ORDER BY name",
    )
    .await;
    assert_eq!(
        indexes,
        [
            "registries_deleted_at_idx",
            "registries_live_idx",
            "registries_scope_idx",
            "registries_status_idx",
            "registries_type_idx",
            "registry_history_current_idx",
            "registry_history_run_idx",
        ]
    );
    assert_eq!(
        read("SELECT count(*) FROM registries_current").await,
        ["1"],
        "the reporting views read the rebuilt tables"
    );

    // A row naming a run that does not exist still fails, at the commit, and leaves nothing.
    let mut conn = sqlx::SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .foreign_keys(true),
    )
    .await
    .unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO registry_history SELECT registry_id, 2, 'updated', changed_fields, \
         valid_from, valid_to, 99, project_id, enterprise_project_id, region, registry_name, \
         registry_type, api_version, protocol, registry_addr, registry_username, namespace, \
         connect_cluster_id, get_scan_image_channel, status, fail_reason, images_num, \
         latest_sync_time, raw, content_hash FROM registry_history",
    )
    .execute(&mut *tx)
    .await
    .expect("checked at the commit, not at the statement");
    let committed = tx.commit().await;
    assert!(
        committed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("FOREIGN KEY constraint failed")),
        "{committed:?}"
    );
    let n_history: i64 = sqlx::query_scalar("SELECT count(*) FROM registry_history")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n_history, 1);
}

#[tokio::test]
async fn postgres_checks_the_same_foreign_keys_at_the_commit() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();

    let constraints: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT conname::text, condeferrable, condeferred FROM pg_constraint \
         WHERE contype = 'f' AND conrelid IN ('registries'::regclass, \
         'registry_history'::regclass) ORDER BY conname",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();

    assert_eq!(
        constraints,
        [
            ("registries_last_sync_run_id_fkey".to_owned(), true, true),
            ("registry_history_sync_run_id_fkey".to_owned(), true, true),
        ]
    );
}

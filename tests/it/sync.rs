//! Behaviour of whole sync runs through `run_once`, on SQLite and PostgreSQL.

use std::collections::HashMap;

use hss_sync::api::{Auth, ClientSettings};
use hss_sync::signer::Credentials;
use hss_sync::sim::{Fault, Mutation};
use hss_sync::store::HistoryFilter;
use hss_sync::sync::{RunStatus, SyncOptions};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{
    client_for, client_with, estate, test_settings, Backend, TestApp, ACCESS_KEY, SECRET_KEY,
};
use crate::on_both_backends;

async fn multi_page_estate_is_mirrored_and_changes_become_history(backend: Backend) {
    // Arrange: 3 projects x 3 enterprise projects x 90 = 270 registries a project, two pages each.
    let app = TestApp::spawn(backend, estate(3, 2, 90)).await;
    let scopes = app.all_granted_scopes();

    // Act: first sync.
    let first = app.sync(&scopes).await;

    // Assert: every registry created once, pages walked by total_num.
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    assert_eq!(first.counts.n_fetched, 810);
    assert_eq!(first.counts.n_inserted, 810);
    assert_eq!(
        first.n_pages, 6,
        "270 items at limit 200 take two pages per project"
    );
    assert_eq!(app.live_ids().await, app.sim_ids());
    let history = app.history(HistoryFilter::All).await;
    assert_eq!(history.len(), 810);
    assert!(history
        .iter()
        .all(|h| h.change_kind == "created" && h.version == 1 && h.valid_to.is_none()));
    let runs = app.runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].totals.counts.n_inserted, 810);
    assert_eq!(runs[0].totals.n_pages, 6);
    let scope_rows = app.store.run_scopes(first.run_id).await.unwrap();
    assert_eq!(scope_rows.len(), 3);
    assert!(scope_rows
        .iter()
        .all(|s| s.status == "succeeded" && s.api_total == Some(270) && s.n_pages == 2));

    // Act: the estate changes, second sync.
    let change = app.sim.mutate(&Mutation {
        seed: 5,
        n_update: 20,
        n_delete: 7,
        n_add: 11,
    });
    assert_eq!(
        (
            change.updated.len(),
            change.deleted.len(),
            change.added.len()
        ),
        (20, 7, 11)
    );
    // Every change makes a version here, `latest_sync_time` alone included.
    let every_change = SyncOptions {
        history_ignore_fields: Vec::new(),
        ..SyncOptions::default()
    };
    let second = app.sync_with(&scopes, every_change).await;

    // Assert: exactly the changes, history versions chained.
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_eq!(second.counts.n_updated, 20);
    assert_eq!(second.counts.n_deleted, 7);
    assert_eq!(second.counts.n_inserted, 11);
    assert_eq!(second.counts.n_unchanged, 810 - 20 - 7);
    assert_eq!(app.live_ids().await, app.sim_ids());
    let rows: HashMap<String, _> = app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id.clone(), r))
        .collect();
    let sim_rows: HashMap<String, serde_json::Value> = app
        .sim
        .project_ids()
        .iter()
        .flat_map(|p| app.sim.registries(p, None))
        .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
        .collect();
    for id in &change.updated {
        let row = &rows[id];
        assert_eq!(row.version, 2);
        assert_eq!(
            serde_json::Value::Object(row.registry.raw.clone()),
            sim_rows[id],
            "raw of {id}"
        );
        let versions = app.history(HistoryFilter::Registry(id)).await;
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[1].change_kind, "updated");
        assert!(!versions[1].changed_fields.is_empty());
        assert_eq!(
            versions[0].valid_to,
            Some(versions[1].valid_from),
            "v1 of {id} closed when v2 began"
        );
        assert_eq!(versions[1].valid_to, None);
        assert_eq!(versions[1].sync_run_id, second.run_id);
    }
    for id in &change.deleted {
        let row = &rows[id];
        assert!(row.deleted_at.is_some(), "{id} retired");
        assert_eq!(row.version, 2);
        let versions = app.history(HistoryFilter::Registry(id)).await;
        assert_eq!(
            versions
                .iter()
                .map(|v| v.change_kind.as_str())
                .collect::<Vec<_>>(),
            ["created", "deleted"]
        );
        assert!(versions[0].valid_to.is_some());
    }
    for id in &change.added {
        assert_eq!(rows[id].version, 1);
    }
    let scope_rows = app.store.run_scopes(second.run_id).await.unwrap();
    let scope_total: i64 = scope_rows.iter().map(|s| s.counts.n_updated).sum();
    assert_eq!(scope_total, 20);

    // Act: a third sync of an unchanged estate.
    let n_history = app.history(HistoryFilter::All).await.len();
    let third = app.sync(&scopes).await;

    // Assert: no history written, everything unchanged.
    assert_eq!(third.status, RunStatus::Succeeded);
    assert_eq!(third.counts.n_unchanged, app.sim.registry_count() as i64);
    assert_eq!(
        third.counts.n_inserted + third.counts.n_updated + third.counts.n_deleted,
        0
    );
    assert_eq!(app.history(HistoryFilter::All).await.len(), n_history);
    assert!(app
        .history(HistoryFilter::Run(third.run_id))
        .await
        .is_empty());
    assert_eq!(app.runs().await.len(), 3);
}
on_both_backends!(multi_page_estate_is_mirrored_and_changes_become_history);

async fn a_change_to_ignored_fields_alone_updates_the_row_without_a_version(backend: Backend) {
    // Arrange: every update changes latest_sync_time; about half change nothing else.
    let app = TestApp::spawn(backend, estate(1, 1, 60)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let before = app.sim_registries();
    let change = app.sim.mutate(&Mutation {
        seed: 21,
        n_update: 40,
        n_delete: 0,
        n_add: 0,
    });
    let after = app.sim_registries();
    let sync_time_only: Vec<&String> = change
        .updated
        .iter()
        .filter(|id| {
            let (mut old, mut new) = (before[*id].clone(), after[*id].clone());
            old.as_object_mut().unwrap().remove("latest_sync_time");
            new.as_object_mut().unwrap().remove("latest_sync_time");
            old == new
        })
        .collect();
    assert!(
        !sync_time_only.is_empty() && sync_time_only.len() < change.updated.len(),
        "the seed gives both kinds of update"
    );

    // Act: the default history_ignore_fields is ["latest_sync_time"].
    let report = app.sync(&scopes).await;

    // Assert: rows take the new content; only the other updates made versions, and no
    // version names latest_sync_time.
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    let n_versions = (change.updated.len() - sync_time_only.len()) as i64;
    assert_eq!(report.counts.n_updated, n_versions);
    assert_eq!(
        report.counts.n_unchanged,
        app.sim.registry_count() as i64 - n_versions
    );
    let rows: HashMap<String, _> = app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id.clone(), r))
        .collect();
    for id in &change.updated {
        assert_eq!(
            serde_json::Value::Object(rows[id].registry.raw.clone()),
            after[id],
            "{id} holds what the API says"
        );
    }
    for id in &sync_time_only {
        assert_eq!(rows[*id].version, 1, "{id} made no version");
    }
    let history = app.history(HistoryFilter::Run(report.run_id)).await;
    assert_eq!(history.len() as i64, n_versions);
    assert!(history
        .iter()
        .all(|h| !h.changed_fields.iter().any(|f| f == "latest_sync_time")));
}
on_both_backends!(a_change_to_ignored_fields_alone_updates_the_row_without_a_version);

async fn enterprise_project_scopes_record_each_registrys_enterprise_project(backend: Backend) {
    let app = TestApp::spawn(backend, estate(2, 2, 15)).await;
    let scopes = app.enterprise_project_scopes();
    assert_eq!(scopes.len(), 6);

    let report = app.sync(&scopes).await;

    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.counts.n_inserted, 90);
    let rows: HashMap<String, _> = app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id.clone(), r))
        .collect();
    for project in app.sim.project_ids() {
        for ep in app.sim.enterprise_project_ids() {
            for registry in app.sim.registries(&project, Some(&ep)) {
                let row = &rows[registry["id"].as_str().unwrap()];
                assert_eq!(row.enterprise_project_id.as_deref(), Some(ep.as_str()));
                assert_eq!(row.project_id, project);
            }
        }
    }
    // A second run with a deletion retires only in the scope that lost it.
    let change = app.sim.mutate(&Mutation {
        seed: 9,
        n_delete: 3,
        ..Default::default()
    });
    let second = app.sync(&scopes).await;
    assert_eq!(second.counts.n_deleted, 3);
    assert_eq!(app.live_ids().await, app.sim_ids());
    assert!(change.deleted.iter().all(|id| rows.contains_key(id)));
}
on_both_backends!(enterprise_project_scopes_record_each_registrys_enterprise_project);

async fn a_deleted_registry_that_returns_is_restored(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 12)).await;
    let scopes = app.all_granted_scopes();
    let project = app.sim.project_ids()[0].clone();
    app.sync(&scopes).await;
    let victim = app.sim.registries(&project, None)[0].clone();
    let id = victim["id"].as_str().unwrap().to_owned();
    app.sim.mutate(&Mutation {
        seed: 1,
        ..Default::default()
    });
    // Delete exactly the victim by re-creating the scope without it.
    let others: Vec<_> = app
        .sim
        .registries(&project, Some("0"))
        .into_iter()
        .filter(|r| r["id"] != victim["id"])
        .collect();
    app.sim.set_registries_in_scope(&project, "0", 0);
    for registry in others {
        app.sim.insert_registry(&project, "0", registry);
    }
    let deleted = app.sync(&scopes).await;
    assert_eq!(deleted.counts.n_deleted, 1);

    let mut back = victim.clone();
    back["status"] = json!("fail");
    back["fail_reason"] = json!("SERVER_ERROR");
    app.sim.insert_registry(&project, "0", back);
    let restored = app.sync(&scopes).await;

    assert_eq!(restored.counts.n_restored, 1);
    let versions = app.history(HistoryFilter::Registry(&id)).await;
    let kinds: Vec<&str> = versions.iter().map(|v| v.change_kind.as_str()).collect();
    assert_eq!(kinds, ["created", "deleted", "restored"]);
    assert_eq!(versions[2].version, 3);
    assert!(
        versions[2].changed_fields.contains(&"status".to_owned()),
        "{:?}",
        versions[2].changed_fields
    );
    assert_eq!(versions[1].valid_to, Some(versions[2].valid_from));
    let row = app
        .registries()
        .await
        .into_iter()
        .find(|r| r.registry.id == id)
        .unwrap();
    assert_eq!(row.deleted_at, None);
    assert_eq!(row.version, 3);
}
on_both_backends!(a_deleted_registry_that_returns_is_restored);

async fn missing_null_and_unknown_fields_are_stored_as_they_come(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 0)).await;
    let project = app.sim.project_ids()[0].clone();
    app.sim.insert_registry(
        &project,
        "0",
        json!({"id": "odd-1", "registry_name": null, "registry_type": "Quay", "images_num": 7,
               "latest_sync_time": 1764306182123i64, "brand_new_field": {"nested": [1, 2]}}),
    );
    app.sim
        .insert_registry(&project, "0", json!({"id": "bare-2"}));

    let report = app.sync(&app.all_granted_scopes()).await;

    assert_eq!(report.status, RunStatus::Succeeded);
    let rows = app.registries().await;
    let odd = rows.iter().find(|r| r.registry.id == "odd-1").unwrap();
    assert_eq!(
        odd.registry.string_field("registry_type").as_deref(),
        Some("Quay")
    );
    assert_eq!(
        odd.registry.raw["brand_new_field"],
        json!({"nested": [1, 2]})
    );
    assert_eq!(
        odd.registry.integer_field("latest_sync_time"),
        Some(1764306182123)
    );
    assert!(odd.registry.raw.contains_key("registry_name"));
    let bare = rows.iter().find(|r| r.registry.id == "bare-2").unwrap();
    assert_eq!(bare.registry.raw.len(), 1);
    assert_eq!(
        bare.enterprise_project_id, None,
        "all_granted_eps scope leaves the column NULL"
    );
}
on_both_backends!(missing_null_and_unknown_fields_are_stored_as_they_come);

async fn a_wrong_secret_key_fails_every_scope_with_huaweis_error_and_writes_nothing(
    backend: Backend,
) {
    let mut app = TestApp::spawn(backend, estate(2, 0, 5)).await;
    let wrong_key = "wrong-secret-key-that-must-not-leak";
    app.client = client_for(app.address, wrong_key);

    let report = app.sync(&app.all_granted_scopes()).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.n_requests, 1,
        "an authentication failure is never retried, and stops the other scope"
    );
    for scope in &report.scopes {
        let error = scope.error.as_deref().unwrap();
        assert!(
            error.contains("HTTP 401")
                && error.contains("APIG.0301")
                && error.contains("request_id"),
            "{error}"
        );
    }
    assert!(app.registries().await.is_empty());
    let runs = app.runs().await;
    assert_eq!(runs[0].status, "failed");
    assert!(runs[0]
        .totals
        .error
        .as_deref()
        .unwrap()
        .contains("APIG.0301"));
    if let Some(path) = app.db.sqlite_path() {
        app.store.close().await;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", path.display())).unwrap_or_default());
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("APIG.0301"), "the error is in the file");
        assert!(
            !text.contains(wrong_key) && !text.contains(SECRET_KEY),
            "no secret in the database file"
        );
    }
}
on_both_backends!(a_wrong_secret_key_fails_every_scope_with_huaweis_error_and_writes_nothing);

async fn malformed_json_fails_its_scope_and_retires_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, estate(2, 0, 30)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let before = app.live_ids().await;
    let broken = app.sim.project_ids()[0].clone();
    app.sim.mutate(&Mutation {
        seed: 3,
        n_delete: 10,
        ..Default::default()
    });
    app.sim.add_fault(Fault::MalformedJson {
        project_id: Some(broken.clone()),
        offset: None,
        times: None,
    });

    let report = app.sync(&scopes).await;

    assert_eq!(report.status, RunStatus::Partial);
    let failed: Vec<_> = report
        .scopes
        .iter()
        .filter(|s| s.status == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].scope.project_id, broken);
    assert!(failed[0]
        .error
        .as_deref()
        .unwrap()
        .contains("not valid JSON"));
    let rows = app.registries().await;
    for row in rows.iter().filter(|r| r.project_id == broken) {
        assert_eq!(
            row.deleted_at, None,
            "{} must not be retired by a failed scope",
            row.registry.id
        );
    }
    // The failed scope might hold what the healthy one lost: nothing is retired anywhere.
    assert_eq!(
        app.live_ids().await,
        before,
        "no deletion while a scope failed"
    );
    let scope_rows = app.store.run_scopes(report.run_id).await.unwrap();
    assert!(scope_rows
        .iter()
        .any(|s| s.status == "failed" && s.error.is_some()));
}
on_both_backends!(malformed_json_fails_its_scope_and_retires_nothing);

async fn the_stored_registries_a_walk_can_find_unchanged_are_read_whole_in_chunks(
    backend: Backend,
) {
    // Arrange: more registries in one scope than one chunk holds, and ids that hold the
    // characters the chunks are written with.
    let app = TestApp::spawn(backend, estate(1, 0, 9_000)).await;
    let project = app.sim.project_ids()[0].clone();
    for id in ["odd,1", "odd:2", "\u{e9}t\u{e9}-3", "9:x4ab,"] {
        app.sim
            .insert_registry(&project, "0", json!({"id": id, "registry_name": id}));
    }
    let scopes = app.all_granted_scopes();
    let first = app.sync(&scopes).await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");

    // Act
    let mut read: Vec<(String, String)> = Vec::new();
    app.store
        .unchanged_candidates(&scopes[0], &mut |id, hash| {
            read.push((id.to_owned(), hash.to_owned()))
        })
        .await
        .unwrap();

    // Assert: every live registry of the scope, once, with its stored content hash.
    let mut stored: Vec<(String, String)> = app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id.clone(), r.registry.content_hash.clone()))
        .collect();
    assert_eq!(stored.len(), 9_004);
    stored.sort();
    read.sort();
    assert_eq!(read, stored);
    let again = app.sync(&scopes).await;
    assert_eq!(
        (again.counts.n_unchanged, again.counts.n_updated),
        (9_004, 0)
    );
}
on_both_backends!(the_stored_registries_a_walk_can_find_unchanged_are_read_whole_in_chunks);

/// PostgreSQL tells which transaction wrote a row (`xmin`); SQLite has nothing like it.
#[tokio::test]
async fn scopes_whose_walks_end_together_are_applied_in_one_transaction() {
    // Arrange: four scopes walked at once, and one walked alone.
    let app = TestApp::spawn(Backend::Postgres, estate(2, 1, 60)).await;
    let scopes = app.enterprise_project_scopes();
    assert_eq!(scopes.len(), 4);
    let options = SyncOptions {
        concurrency: 4,
        ..SyncOptions::default()
    };

    // Act
    let report = app.sync_with(&scopes, options.clone()).await;

    // Assert: every scope's registries and audit row, written by one transaction.
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.counts.n_inserted, 240);
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    for sql in [
        "SELECT COUNT(DISTINCT xmin::text) FROM registries",
        "SELECT COUNT(DISTINCT xmin::text) FROM registry_history",
        "SELECT COUNT(DISTINCT xmin::text) FROM sync_run_scopes WHERE n_inserted > 0",
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 1, "{sql}: {n} transactions");
    }

    // A scope walked alone is applied alone, when its walk ends.
    let alone = app
        .sync_with(
            &scopes[..1],
            SyncOptions {
                concurrency: 1,
                ..options
            },
        )
        .await;
    assert_eq!(alone.status, RunStatus::Succeeded, "{alone:?}");
    assert_eq!(alone.counts.n_unchanged, 60);
}

/// Under a request rate, walks end one request spacing apart: each is applied when it ends,
/// not held back until the last one ends and then applied after the last page.
#[tokio::test]
async fn the_walks_of_a_paced_run_are_applied_as_they_end() {
    // Arrange: four scopes of one page each, walked at once, their requests 100 ms apart.
    let mut app = TestApp::spawn(Backend::Postgres, estate(2, 1, 60)).await;
    let scopes = app.enterprise_project_scopes();
    assert_eq!(scopes.len(), 4);
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &ClientSettings {
            max_requests_per_minute: 600,
            ..test_settings()
        },
    );
    let options = SyncOptions {
        concurrency: 4,
        ..SyncOptions::default()
    };

    // Act
    let report = app.sync_with(&scopes, options).await;

    // Assert: the first scope's walk ended 100 ms before the second's, and was applied by
    // a transaction of its own; unpaced, all four go in one (the test above).
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.counts.n_inserted, 240);
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM registries")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(n > 1, "the four scopes were applied by {n} transaction");
}

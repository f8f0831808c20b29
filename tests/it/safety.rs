//! The inventory never lies: odd answers, refused credentials, failing writes, shared ids,
//! mode switches and mass deletions, each through the real sync path, on both databases.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Command;

use hss_sync::api::{Auth, RetryPolicy};
use hss_sync::signer::Credentials;
use hss_sync::sim::{Fault, Mutation};
use hss_sync::store::{HistoryFilter, LeaseOutcome, RunTotals, StagePage};
use hss_sync::sync::{DeletionGuard, RunStatus, SyncOptions, Trigger};

use crate::helpers::{
    client_for, client_with, estate, scope, test_settings, Backend, TestApp, ACCESS_KEY, SECRET_KEY,
};
use crate::on_both_backends;

/// Serves `body` with HTTP 200 for every request, as a gateway that answers oddly would.
async fn odd_api(body: &'static str) -> SocketAddr {
    let app = axum::Router::new().fallback(move || async move {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn a_200_answer_that_is_not_a_whole_page_fails_the_scope_and_retires_nothing(
    backend: Backend,
) {
    for (body, expected) in [
        ("{}", "no data_list"),
        (r#"{"data_list": null}"#, "no data_list"),
        (
            r#"{"error_code": "HSS.1001", "error_msg": "internal"}"#,
            "error_code HSS.1001: internal",
        ),
        (r#"{"data_list": []}"#, "no total_num"),
        (
            r#"{"data_list": {"id": "x"}, "total_num": 1}"#,
            "invalid type",
        ),
        (
            r#"{"data_list": [{"name": "no id"}], "total_num": 1}"#,
            "has no string id",
        ),
    ] {
        // Arrange: a synced estate, then an API that answers 200 with an odd body.
        let mut app = TestApp::spawn(backend, estate(1, 0, 30)).await;
        let scopes = app.all_granted_scopes();
        app.sync(&scopes).await;
        let before = app.live_ids().await;
        assert_eq!(before.len(), 30);
        app.client = client_for(odd_api(body).await, SECRET_KEY);

        // Act
        let report = app.sync(&scopes).await;

        // Assert: the scope failed naming what was missing; nothing was retired.
        assert_eq!(report.status, RunStatus::Failed, "{body}: {report:?}");
        let error = report.scopes[0].error.as_deref().unwrap_or_default();
        assert!(error.contains(expected), "{body}: {error}");
        assert_eq!(report.counts.n_deleted, 0, "{body}");
        assert_eq!(app.live_ids().await, before, "{body}");
        let runs = app.runs().await;
        assert_eq!(runs[0].status, "failed", "{body}");
        assert!(
            runs[0]
                .totals
                .error
                .as_deref()
                .unwrap_or_default()
                .contains(expected),
            "{body}: {:?}",
            runs[0].totals.error
        );
    }
}
on_both_backends!(a_200_answer_that_is_not_a_whole_page_fails_the_scope_and_retires_nothing);

async fn a_wrong_secret_key_costs_one_refused_request_however_many_scopes(backend: Backend) {
    // Arrange: 4 projects x 5 enterprise projects = 20 scopes, walked 4 at a time.
    let mut app = TestApp::spawn(backend, estate(4, 4, 3)).await;
    let scopes = app.enterprise_project_scopes();
    assert_eq!(scopes.len(), 20);
    app.client = client_for(app.address, "not-the-secret-key");

    // Act
    let report = app.sync(&scopes).await;

    // Assert: one request went, it was refused, the run failed saying what to check.
    let requests: Vec<_> = app
        .sim
        .request_log()
        .into_iter()
        .filter(|r| r.api == "ListRegistry")
        .collect();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].status, 401);
    assert_eq!(report.status, RunStatus::Failed);
    let refused = report.credentials_refused.as_deref().unwrap_or_default();
    assert!(
        refused
            .contains("the access key was refused: check CLOUD_SDK_AK/CLOUD_SDK_SK and the clock"),
        "{refused}"
    );
    assert!(!refused.contains("not-the-secret-key"));
    assert!(report.scopes.iter().all(|s| s.status == "failed"));
    let runs = app.runs().await;
    assert_eq!(runs[0].status, "failed");
    assert!(runs[0]
        .totals
        .error
        .as_deref()
        .unwrap_or_default()
        .starts_with("the access key was refused"));
    for scope_row in app.store.run_scopes(report.run_id).await.unwrap() {
        assert_eq!(scope_row.status, "failed", "{scope_row:?}");
    }

    // Act: once the key is right, every scope goes again, concurrently.
    app.client = client_for(app.address, SECRET_KEY);
    let report = app.sync(&scopes).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(report.credentials_refused, None);
}
on_both_backends!(a_wrong_secret_key_costs_one_refused_request_however_many_scopes);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_with_retries_and_several_clients_still_sends_one_request() {
    // Two endpoints' clients share nothing but the run: the gate is the run's.
    let mut app = TestApp::spawn(Backend::Sqlite, estate(3, 1, 2)).await;
    let settings = hss_sync::api::ClientSettings {
        retry: RetryPolicy {
            max_retries: 5,
            ..test_settings().retry
        },
        ..test_settings()
    };
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, "wrong").unwrap()),
        &settings,
    );
    let options = SyncOptions {
        concurrency: 6,
        ..SyncOptions::default()
    };
    let report = app
        .sync_with(&app.enterprise_project_scopes(), options)
        .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.n_requests, 1, "{report:?}");
}

async fn a_failing_database_write_leaves_an_exact_audit(backend: Backend) {
    // Arrange: three projects; writing the second one's registries fails in the database.
    let app = TestApp::spawn(backend, estate(3, 0, 12)).await;
    let scopes = app.all_granted_scopes();
    let failing = scopes[1].project_id.clone();
    install_failing_trigger(&app, backend, &failing).await;

    // Act
    let error = hss_sync::sync::run_once(&app.client, &app.store, &scopes, &SyncOptions::default())
        .await
        .expect_err("the write of the second project fails");

    // Assert: the scopes applied before the failure were committed and counted (scopes are
    // applied as their walks end, so which ones depends on timing), the run says so, and
    // every scope row is final.
    assert!(error.to_string().contains("sync run"), "{error}");
    let runs = app.runs().await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert!(
        run.totals
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("injected failure"),
        "{run:?}"
    );
    let scope_rows = app.store.run_scopes(run.id).await.unwrap();
    let committed: Vec<&str> = scope_rows
        .iter()
        .filter(|s| s.status == "succeeded")
        .map(|s| s.scope.project_id.as_str())
        .collect();
    assert!(!committed.contains(&failing.as_str()));
    assert!(scope_rows
        .iter()
        .all(|s| s.status == "succeeded" || s.status == "failed"));
    let failed = scope_rows
        .iter()
        .find(|s| s.scope.project_id == failing)
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert!(failed
        .error
        .as_deref()
        .unwrap_or_default()
        .contains("injected failure"));
    assert_eq!(
        run.status,
        if committed.is_empty() {
            "failed"
        } else {
            "partial"
        },
        "{run:?}"
    );
    assert_eq!(
        run.totals.counts.n_inserted,
        12 * committed.len() as i64,
        "{run:?}"
    );
    let history = app.history(HistoryFilter::Run(run.id)).await;
    assert_eq!(history.len() as i64, run.totals.counts.n_inserted);
    assert!(history.iter().all(|h| h.change_kind == "created"));
    let sum: i64 = scope_rows.iter().map(|s| s.counts.n_inserted).sum();
    assert_eq!(sum, run.totals.counts.n_inserted);
    let stored_projects: BTreeSet<String> = app
        .registries()
        .await
        .into_iter()
        .map(|r| r.project_id)
        .collect();
    assert_eq!(
        stored_projects,
        committed
            .iter()
            .map(|p| (*p).to_owned())
            .collect::<BTreeSet<_>>()
    );
}
on_both_backends!(a_failing_database_write_leaves_an_exact_audit);

async fn a_database_failure_while_retiring_is_recorded_on_the_scope_row(backend: Backend) {
    // Arrange: two projects, synced; registries deleted in both; retiring the second
    // project's fails inside the database.
    let app = TestApp::spawn(backend, estate(2, 0, 15)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let live_before = app.live_ids().await;
    app.sim.mutate(&Mutation {
        seed: 5,
        n_delete: 4,
        ..Default::default()
    });
    let failing = scopes[1].project_id.clone();
    install_failing_retire_trigger(&app, backend, &failing).await;

    // Act
    let error = hss_sync::sync::run_once(&app.client, &app.store, &scopes, &SyncOptions::default())
        .await
        .expect_err("retiring the second project fails");

    // Assert: the scope row says what happened to the scope, as the run does, and the
    // request tallies of both walks of every scope are recorded.
    assert!(error.to_string().contains("sync run"), "{error}");
    let runs = app.runs().await;
    let run = runs.iter().max_by_key(|r| r.id).unwrap();
    assert_ne!(run.status, "succeeded", "{run:?}");
    assert!(
        run.totals
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("injected failure"),
        "{run:?}"
    );
    let scope_rows = app.store.run_scopes(run.id).await.unwrap();
    let failed = scope_rows
        .iter()
        .find(|s| s.scope.project_id == failing)
        .unwrap();
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("injected failure"),
        "{failed:?}"
    );
    assert_eq!(failed.counts.n_deleted, 0, "{failed:?}");
    assert_eq!(
        scope_rows.iter().map(|s| s.n_pages).sum::<i64>(),
        run.totals.n_pages,
        "{scope_rows:?} {run:?}"
    );
    // Nothing of the failing project was marked deleted.
    let live_after = app.live_ids().await;
    let stored = app.registries().await;
    for row in stored.iter().filter(|r| r.project_id == failing) {
        let id = &row.registry.id;
        assert_eq!(live_before.contains(id), live_after.contains(id), "{id}");
    }
}
on_both_backends!(a_database_failure_while_retiring_is_recorded_on_the_scope_row);

/// Makes every insert of a registry of `project_id` fail inside the database.
async fn install_failing_trigger(app: &TestApp, backend: Backend, project_id: &str) {
    let condition = format!("NEW.project_id = '{project_id}'");
    install_failing(app, backend, "fail_project", "INSERT", &condition).await;
}

/// Makes retiring a registry of `project_id` fail inside the database.
async fn install_failing_retire_trigger(app: &TestApp, backend: Backend, project_id: &str) {
    let condition = format!(
        "NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL AND NEW.project_id = '{project_id}'"
    );
    install_failing(app, backend, "fail_retire", "UPDATE", &condition).await;
}

/// Installs trigger `name`: an `event` on `registries` whose rows meet `condition` (in terms
/// of `NEW` and `OLD`) fails with "injected failure".
async fn install_failing(
    app: &TestApp,
    backend: Backend,
    name: &str,
    event: &str,
    condition: &str,
) {
    let statements = match backend {
        Backend::Sqlite => vec![format!(
            "CREATE TRIGGER {name} BEFORE {event} ON registries WHEN {condition} \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )],
        Backend::Postgres => vec![
            format!(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF {condition} THEN RAISE EXCEPTION 'injected failure'; END IF; \
                 RETURN NEW; END $$"
            ),
            format!(
                "CREATE TRIGGER {name} BEFORE {event} ON registries FOR EACH ROW \
                 EXECUTE FUNCTION {name}()"
            ),
        ],
    };
    execute(app, backend, &statements).await;
}

/// Runs `statements` on the app's database, over a connection of its own.
async fn execute(app: &TestApp, backend: Backend, statements: &[String]) {
    use sqlx::Connection;
    if backend == Backend::Sqlite {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        for statement in statements {
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    }
}

async fn rows_recorded_under_all_granted_eps_are_reconciled_when_every_enterprise_project_is_walked(
    backend: Backend,
) {
    // Arrange: 2 projects x 3 enterprise projects x 5, first synced through all_granted_eps.
    let app = TestApp::spawn(backend, estate(2, 2, 5)).await;
    app.sync(&app.all_granted_scopes()).await;
    assert!(app
        .registries()
        .await
        .iter()
        .all(|r| r.enterprise_project_id.is_none()));
    let change = app.sim.mutate(&Mutation {
        seed: 3,
        n_delete: 2,
        ..Default::default()
    });
    let options = || SyncOptions {
        projects_with_every_enterprise_project: app.sim.project_ids().into_iter().collect(),
        ..SyncOptions::default()
    };

    // Act: the same estate through one scope per enterprise project.
    let report = app
        .sync_with(&app.enterprise_project_scopes(), options())
        .await;

    // Assert: every seen row took its enterprise project in one `updated` row; the two
    // registries deleted meanwhile were retired; nothing is left without one.
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.counts.n_updated, 28);
    assert_eq!(report.counts.n_deleted, 2);
    assert_eq!(app.live_ids().await, app.sim_ids());
    let rows = app.registries().await;
    assert!(rows
        .iter()
        .filter(|r| r.deleted_at.is_none())
        .all(|r| r.enterprise_project_id.is_some()));
    for id in &change.deleted {
        let row = rows.iter().find(|r| &r.registry.id == id).unwrap();
        assert!(row.deleted_at.is_some(), "{id}");
    }
    let updates = app.history(HistoryFilter::Run(report.run_id)).await;
    assert!(updates
        .iter()
        .filter(|h| h.change_kind == "updated")
        .all(|h| h.changed_fields == ["enterprise_project_id"]));

    // Act: again, with nothing changed.
    let again = app
        .sync_with(&app.enterprise_project_scopes(), options())
        .await;
    assert_eq!(again.counts.n_unchanged, 28);
    assert_eq!(app.history(HistoryFilter::Run(again.run_id)).await.len(), 0);
}
on_both_backends!(
    rows_recorded_under_all_granted_eps_are_reconciled_when_every_enterprise_project_is_walked
);

async fn without_every_enterprise_project_unattributed_rows_are_kept(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 2, 5)).await;
    app.sync(&app.all_granted_scopes()).await;
    // Only one enterprise project named: the others' rows must not be retired.
    let only = vec![scope(
        &app.sim.region(),
        &app.sim.project_ids()[0],
        &app.sim.enterprise_project_ids()[0],
    )];
    let report = app.sync(&only).await;
    assert_eq!(report.counts.n_deleted, 0);
    assert_eq!(app.live_ids().await, app.sim_ids());
}
on_both_backends!(without_every_enterprise_project_unattributed_rows_are_kept);

async fn a_registry_a_scope_covers_in_another_region_is_retired_when_no_walk_lists_it(
    backend: Backend,
) {
    // Arrange: a synced scope, and a live row under its project and enterprise project but
    // in another region, which no walk of the scope (in its own region) can list. Looking
    // for what the run did not list only among what the walk missed of the rows in its own
    // region would keep this one for ever.
    let app = TestApp::spawn(backend, estate(1, 1, 6)).await;
    let scopes = app.enterprise_project_scopes();
    app.sync(&scopes).await;
    let run_id = app.runs().await[0].id;
    let (project, ep) = (&scopes[0].project_id, &scopes[0].enterprise_project_id);
    execute(
        &app,
        backend,
        &[format!(
            "INSERT INTO registries (id, project_id, enterprise_project_id, region, raw, \
             content_hash, version, first_seen_at, last_seen_at, last_changed_at, \
             last_sync_run_id) VALUES ('stray-registry', '{project}', '{ep}', 'cn-south-1', \
             '{{\"id\":\"stray-registry\"}}', 'stray-hash', 1, '2026-11-29T00:00:00.000Z', \
             '2026-11-29T00:00:00.000Z', '2026-11-29T00:00:00.000Z', {run_id})"
        )],
    )
    .await;

    // Act
    let report = app.sync(&scopes).await;

    // Assert: retired, and nothing else.
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.counts.n_deleted, 1, "{report:?}");
    let stray = app
        .registries()
        .await
        .into_iter()
        .find(|r| r.registry.id == "stray-registry")
        .expect("the stray row is kept, retired");
    assert!(stray.deleted_at.is_some(), "{stray:?}");
    assert_eq!(app.live_ids().await, app.sim_ids());
}
on_both_backends!(a_registry_a_scope_covers_in_another_region_is_retired_when_no_walk_lists_it);

async fn an_id_listed_under_two_projects_keeps_one_owner_and_writes_no_history(backend: Backend) {
    // Arrange: a registry of the first project also listed under the second.
    let app = TestApp::spawn(backend, estate(2, 0, 4)).await;
    let projects = app.sim.project_ids();
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let shared = app.sim.registries(&projects[0], None)[0].clone();
    let shared_id = shared["id"].as_str().unwrap().to_owned();
    app.sim.insert_registry(&projects[1], "0", shared);

    // Act: three runs.
    let mut written = Vec::new();
    for _ in 0..3 {
        let report = app.sync(&scopes).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
        written.push(app.history(HistoryFilter::Run(report.run_id)).await.len());
    }

    // Assert: the owner stays the first project; no history row per run for it.
    assert_eq!(written, [0, 0, 0]);
    let rows: HashMap<String, _> = app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id.clone(), r))
        .collect();
    assert_eq!(rows[&shared_id].project_id, projects[0]);
    assert_eq!(rows[&shared_id].version, 1);
}
on_both_backends!(an_id_listed_under_two_projects_keeps_one_owner_and_writes_no_history);

async fn a_new_id_listed_under_two_projects_gets_one_owner_for_good(backend: Backend) {
    let app = TestApp::spawn(backend, estate(2, 0, 2)).await;
    let projects = app.sim.project_ids();
    let mut scopes = app.all_granted_scopes();
    scopes.sort();
    let mut twin = app.sim.registries(&projects[0], None)[0].clone();
    twin["id"] = serde_json::json!("twin-registry-id");
    app.sim.insert_registry(&projects[0], "0", twin.clone());
    app.sim.insert_registry(&projects[1], "0", twin);
    // The scope applied first creates it (scopes are applied as their walks end); from
    // then on it stays there, with no version per run.
    let mut owners = Vec::new();
    for _ in 0..3 {
        let report = app.sync(&scopes).await;
        assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
        let row = app
            .registries()
            .await
            .into_iter()
            .find(|r| r.registry.id == "twin-registry-id")
            .unwrap();
        assert_eq!(row.version, 1);
        owners.push(row.project_id);
    }
    assert!(projects.contains(&owners[0]));
    assert!(owners.iter().all(|o| *o == owners[0]), "{owners:?}");
}
on_both_backends!(a_new_id_listed_under_two_projects_gets_one_owner_for_good);

async fn a_walk_that_would_retire_most_of_a_scope_is_held_until_accepted(backend: Backend) {
    // Arrange: 40 registries synced; 30 of them vanish, 2 change, 3 appear.
    let app = TestApp::spawn(backend, estate(1, 0, 40)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    app.sim.mutate(&Mutation {
        seed: 9,
        n_delete: 30,
        n_update: 2,
        n_add: 3,
    });

    // Act
    let held = app.sync(&scopes).await;

    // Assert: nothing retired, the rest applied, the scope held and the run partial.
    assert_eq!(held.status, RunStatus::Partial, "{held:?}");
    assert_eq!(held.scopes[0].status, "held");
    assert_eq!(held.counts.n_deleted, 0);
    assert_eq!(held.counts.n_held, 30);
    assert_eq!(held.counts.n_inserted, 3);
    assert_eq!(held.counts.n_updated, 2);
    assert_eq!(app.live_ids().await.len(), 43);
    let message = held.scopes[0].error.as_deref().unwrap_or_default();
    assert!(message.contains("30 of the 40"), "{message}");
    assert!(message.contains("--accept-deletions"), "{message}");
    let rows = app.store.run_scopes(held.run_id).await.unwrap();
    assert_eq!(rows[0].status, "held");
    assert_eq!(rows[0].counts.n_held, 30);
    assert_eq!(app.runs().await[0].totals.counts.n_held, 30);
    assert_eq!(held.status.exit_code(), 3);

    // Act: accepted for one run.
    let accepted = app
        .sync_with(
            &scopes,
            SyncOptions {
                deletion_guard: DeletionGuard {
                    accept: true,
                    ..DeletionGuard::default()
                },
                ..SyncOptions::default()
            },
        )
        .await;
    assert_eq!(accepted.status, RunStatus::Succeeded);
    assert_eq!(accepted.counts.n_deleted, 30);
    assert_eq!(app.live_ids().await, app.sim_ids());
}
on_both_backends!(a_walk_that_would_retire_most_of_a_scope_is_held_until_accepted);

async fn a_failing_scope_holds_every_deletion_of_the_run(backend: Backend) {
    // Arrange: two projects; one registry deleted in each; one project then fails.
    let app = TestApp::spawn(backend, estate(2, 0, 20)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let change = app.sim.mutate(&Mutation {
        seed: 2,
        n_delete: 4,
        ..Default::default()
    });
    let failing = app.sim.project_ids()[1].clone();
    app.sim.add_fault(Fault::Forbidden {
        project_id: failing.clone(),
    });

    // Act
    let report = app.sync(&scopes).await;

    // Assert: the healthy project's walk completed, but nothing is retired anywhere,
    // since the failed scope might hold what the healthy one lost.
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.counts.n_deleted, 0);
    assert_eq!(app.live_ids().await.len(), 40);

    // Act: once every scope completes, the deletions are made.
    app.sim.clear_faults();
    let report = app.sync(&scopes).await;
    assert_eq!(report.counts.n_deleted, change.deleted.len() as i64);
    assert_eq!(app.live_ids().await, app.sim_ids());
}
on_both_backends!(a_failing_scope_holds_every_deletion_of_the_run);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_left_by_a_dead_process_on_this_host_is_taken_over_at_once_on_sqlite() {
    let app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 2)).await;
    let (alive, dead) = holders_of_this_host();
    for (holder, expected_free) in [(&alive, false), (&dead, true)] {
        set_sqlite_lease_holder(&app, holder).await;
        let outcome = app
            .store
            .acquire_lease(None, std::time::Duration::from_secs(120))
            .await
            .unwrap();
        check_lease_outcome(outcome, holder, expected_free).await;
    }
}

/// Checks what taking the lease came to: taken (and given back) when `holder` is gone,
/// refused while it is alive.
async fn check_lease_outcome(outcome: LeaseOutcome, holder: &str, holder_gone: bool) {
    match outcome {
        LeaseOutcome::Acquired(lease) => {
            assert!(holder_gone, "{holder} is alive, yet its lease was taken");
            lease.release().await.unwrap();
        }
        LeaseOutcome::Held { holder: h, .. } => {
            assert!(
                !holder_gone,
                "{holder} is gone, yet the lease was refused: {h}"
            );
        }
        LeaseOutcome::TickTaken => panic!("no tick was asked for"),
    }
}

/// Lease holders (`host:pid:nonce`) of this host: one whose process is alive (pid 1), one
/// whose process cannot exist (pid 4194304 is above Linux's largest pid).
fn holders_of_this_host() -> (String, String) {
    // The same precedence as the store's own: HOSTNAME, then /etc/hostname.
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "unknown-host".to_owned());
    (
        format!("{host}:1:deadbeef"),
        format!("{host}:4194304:deadbeef"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_lease_of_a_dead_holder_is_waited_for_until_the_server_lets_it_go() {
    use sqlx::Connection;
    // The advisory lock key of the sync lease: the bytes of `hss_sync`.
    const LEASE_LOCK_KEY: i64 = 0x6873_735f_7379_6e63;
    let app = TestApp::spawn(Backend::Postgres, estate(1, 0, 2)).await;
    let (alive, dead) = holders_of_this_host();
    for (holder, expected_taken) in [(alive, false), (dead, true)] {
        // Arrange: another session holds the lock under `holder`'s name, and lets it go a
        // moment later, as the server does once it notices that a killed client's
        // connection closed.
        let mut other = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LEASE_LOCK_KEY)
            .execute(&mut other)
            .await
            .unwrap();
        sqlx::query("UPDATE sync_lease SET holder = $1 WHERE name = 'sync'")
            .bind(&holder)
            .execute(&mut other)
            .await
            .unwrap();
        let lets_go = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            other.close().await.unwrap();
        });

        // Act
        let outcome = app
            .store
            .acquire_lease(None, std::time::Duration::from_secs(120))
            .await
            .unwrap();

        // Assert: a dead holder's lock is waited for; a live one's is refused at once.
        check_lease_outcome(outcome, &holder, expected_taken).await;
        lets_go.await.unwrap();
    }
}

async fn set_sqlite_lease_holder(app: &TestApp, holder: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
    let until = (chrono::Utc::now() + chrono::Duration::seconds(120))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    sqlx::query("UPDATE sync_lease SET holder = $1, expires_at = $2 WHERE name = 'sync'")
        .bind(holder)
        .bind(until)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_lease_is_released_by_the_server_when_its_holder_dies() {
    let app = TestApp::spawn(Backend::Postgres, estate(1, 0, 2)).await;
    // A real `hss-sync run` holds the lease while it syncs slowly; then it is killed.
    // Its one request takes long enough that the run is surely still going when it is
    // killed, however loaded the machine.
    app.sim.add_fault(Fault::Latency {
        min: std::time::Duration::from_secs(10),
        max: std::time::Duration::from_secs(10),
    });
    let mut child = crate::service::spawn_daemon(
        &app,
        &[
            "--run-at-start",
            "--schedule",
            "0 0 0 1 1 *",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    // Wait for its run to be recorded: it holds the lease, and the kill lands mid-run. (Not
    // by trying the lease here: taking it even for a moment would make the child skip.)
    let mut running = false;
    for _ in 0..800 {
        if app.runs().await.iter().any(|r| r.status == "running") {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(running, "the child started a run");
    child.kill().unwrap();
    child.wait().unwrap();

    // Act: at once, a new lease.
    let started = std::time::Instant::now();
    let mut outcome = app
        .store
        .acquire_lease(None, std::time::Duration::from_secs(120))
        .await
        .unwrap();
    while matches!(outcome, LeaseOutcome::Held { .. })
        && started.elapsed() < std::time::Duration::from_secs(5)
    {
        // The server notices the closed socket within moments.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        outcome = app
            .store
            .acquire_lease(None, std::time::Duration::from_secs(120))
            .await
            .unwrap();
    }
    let LeaseOutcome::Acquired(lease) = outcome else {
        panic!("the killed holder's lease is still held: {outcome:?}");
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let recovered = app
        .store
        .recover_stale_runs(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1, "the killed run is marked interrupted");
    lease.release().await.unwrap();
}

#[test]
fn an_unknown_region_is_a_usage_error_at_once() {
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args([
            "sync",
            "--region",
            "mars-1",
            "--project-id",
            "0123456789abcdef0123456789abcdef",
            "--database-url",
            "sqlite::memory:",
        ])
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", SECRET_KEY)
        .env_remove("HSS_SYNC_ENDPOINT")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("unknown region \"mars-1\""), "{text}");
    assert!(
        text.contains("cn-north-4") && text.contains("--endpoint"),
        "{text}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn a_region_of_unresolvable_name_fails_without_backed_off_retries() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("dns.db").display());
    let started = std::time::Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args([
            "sync",
            "--region",
            "cn-north-4",
            "--endpoint",
            "https://no-such-host.invalid",
            "--project-id",
            "0123456789abcdef0123456789abcdef",
            "--database-url",
            &database_url,
        ])
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", SECRET_KEY)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("does not resolve"), "{text}");
    // Five backed-off retries would take over a minute.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

async fn a_registry_moved_into_a_failing_enterprise_project_is_not_retired(backend: Backend) {
    // Arrange: one project, three enterprise projects, synced per enterprise project.
    let app = TestApp::spawn(backend, estate(1, 2, 6)).await;
    let scopes = app.enterprise_project_scopes();
    app.sync(&scopes).await;
    let project = app.sim.project_ids()[0].clone();
    let (from, to) = (
        app.sim.enterprise_project_ids()[0].clone(),
        app.sim.enterprise_project_ids()[1].clone(),
    );
    let moved = app.sim.registries(&project, Some(&from))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sim
        .move_registry_to_enterprise_project(&moved, &to)
        .unwrap();
    // The enterprise project it moved into fails.
    app.sim.add_fault(Fault::FailEnterpriseProject {
        project_id: Some(project.clone()),
        enterprise_project_id: to.clone(),
        status: 500,
        error_code: "HSS.1001".to_owned(),
        error_msg: "internal".to_owned(),
        times: None,
    });

    // Act
    let report = app.sync(&scopes).await;

    // Assert: its old scope completed, yet it is not retired; no history row for it.
    assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    let row = app
        .registries()
        .await
        .into_iter()
        .find(|r| r.registry.id == moved)
        .unwrap();
    assert_eq!(row.deleted_at, None, "{moved} moved, it is not gone");
    assert_eq!(row.version, 1);
    assert!(app
        .history(HistoryFilter::Registry(&moved))
        .await
        .iter()
        .all(|h| h.change_kind == "created"));

    // Act: once the new scope answers, the registry is moved, not deleted and restored.
    app.sim.clear_faults();
    app.sync(&scopes).await;
    let history = app.history(HistoryFilter::Registry(&moved)).await;
    let kinds: Vec<&str> = history.iter().map(|h| h.change_kind.as_str()).collect();
    assert_eq!(kinds, ["created", "updated"]);
    assert_eq!(history[1].changed_fields, ["enterprise_project_id"]);
}
on_both_backends!(a_registry_moved_into_a_failing_enterprise_project_is_not_retired);

/// How many rows `sync_staging` and `sync_listed_pages` hold for each run, by run id.
async fn staged_runs(app: &TestApp, backend: Backend) -> Vec<(i64, i64, i64)> {
    use sqlx::Connection;
    const SQL: &str = "SELECT run_id, SUM(staged) AS staged, SUM(pages) AS pages FROM \
         (SELECT run_id, 1 AS staged, 0 AS pages FROM sync_staging \
         UNION ALL SELECT run_id, 0, 1 FROM sync_listed_pages) t GROUP BY run_id ORDER BY run_id";
    if backend == Backend::Sqlite {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::query_as(SQL).fetch_all(&mut conn).await.unwrap()
    }
}

async fn clearing_the_staging_keeps_what_another_running_run_staged(backend: Backend) {
    // Arrange: two runs recorded as running, each with a page listed a row an id (as after
    // its listing is indexed) and a page listed in one row.
    let app = TestApp::spawn(backend, estate(1, 0, 3)).await;
    let scope = app.all_granted_scopes().remove(0);
    let now = hss_sync::store::now();
    let mut runs = Vec::new();
    for ids in [["a1", "a2", "a3"], ["b1", "b2", "b3"]] {
        let run_id = app
            .store
            .begin_run(Trigger::Cli, 1, now, None)
            .await
            .unwrap();
        for (page_ids, listing_indexed) in [(&ids[..2], true), (&ids[2..], false)] {
            let page = StagePage {
                run_id,
                scope_ix: 0,
                scope: &scope,
                unchanged: page_ids,
                listing_indexed,
                changed: &[],
            };
            assert_eq!(
                app.store.stage_page(&page).await.unwrap(),
                page_ids.len() as i64
            );
        }
        runs.push(run_id);
    }
    let (first, second) = (runs[0], runs[1]);
    assert_eq!(
        staged_runs(&app, backend).await,
        vec![(first, 2, 1), (second, 2, 1)]
    );

    // Act: the first run clears its staging while the second still runs.
    app.store.clear_staging(first).await.unwrap();

    // Assert: only the first run's rows went.
    assert_eq!(staged_runs(&app, backend).await, vec![(second, 2, 1)]);

    // Act: once the second run has ended, clearing for a new run takes everything.
    let totals = RunTotals {
        status: RunStatus::Failed,
        ..RunTotals::default()
    };
    app.store.finish_run(second, &totals, now).await.unwrap();
    app.store.clear_staging(first).await.unwrap();

    // Assert
    assert_eq!(staged_runs(&app, backend).await, vec![]);
}

on_both_backends!(clearing_the_staging_keeps_what_another_running_run_staged);

async fn indexing_the_listing_spreads_the_ids_listed_a_page_to_a_row_into_rows_of_their_own(
    backend: Backend,
) {
    // Arrange: two runs, each with two pages listed in one row each.
    let app = TestApp::spawn(backend, estate(1, 0, 3)).await;
    let scope = app.all_granted_scopes().remove(0);
    let now = hss_sync::store::now();
    let mut runs = Vec::new();
    for prefix in ["a", "b"] {
        let run_id = app
            .store
            .begin_run(Trigger::Cli, 1, now, None)
            .await
            .unwrap();
        for (scope_ix, ids) in [(0, vec!["1", "2", "3"]), (1, vec!["4", "\"5,\u{e9}"])] {
            let ids: Vec<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let page = StagePage {
                run_id,
                scope_ix,
                scope: &scope,
                unchanged: &ids,
                listing_indexed: false,
                changed: &[],
            };
            app.store.stage_page(&page).await.unwrap();
        }
        runs.push(run_id);
    }
    let (first, second) = (runs[0], runs[1]);

    // Act
    app.store.index_listing(first).await.unwrap();

    // Assert: the first run's ids are rows of their own, under their scopes, and its pages
    // are gone; the second run's pages are as they were.
    assert_eq!(
        staged_runs(&app, backend).await,
        vec![(first, 5, 0), (second, 0, 2)]
    );
    let listed = listed_ids(&app, backend, first).await;
    assert_eq!(
        listed,
        [
            (0, "a1".to_owned()),
            (0, "a2".to_owned()),
            (0, "a3".to_owned()),
            (1, "a\"5,\u{e9}".to_owned()),
            (1, "a4".to_owned()),
        ]
    );
}

on_both_backends!(
    indexing_the_listing_spreads_the_ids_listed_a_page_to_a_row_into_rows_of_their_own
);

/// The scope and id of every row `sync_staging` holds for `run_id`, in that order.
async fn listed_ids(app: &TestApp, backend: Backend, run_id: i64) -> Vec<(i64, String)> {
    use sqlx::Connection;
    let sql = format!(
        "SELECT scope_ix, id FROM sync_staging WHERE run_id = {run_id} ORDER BY scope_ix, id"
    );
    if backend == Backend::Sqlite {
        let mut conn = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap()
    }
}

/// SQLite gives a new row the rowid after the table's largest, and the store reads the first
/// versions of new registries back from the rows it has just written by that. A table whose
/// largest rowid is the largest there can be (a row written by hand) makes SQLite pick rowids
/// at random instead: the apply then fails, and no registry is left without its first version.
#[tokio::test]
async fn new_registries_whose_rowids_sqlite_picks_at_random_are_not_written_without_history() {
    // Arrange: one project of 12 new registries, and a row of another project written by hand
    // at the largest rowid.
    let app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 12)).await;
    execute(
        &app,
        Backend::Sqlite,
        &[
            "PRAGMA foreign_keys = OFF".to_owned(),
            "INSERT INTO registries (rowid, id, project_id, region, raw, content_hash, version, \
             first_seen_at, last_seen_at, last_changed_at, last_sync_run_id) VALUES \
             (9223372036854775807, 'by-hand', 'elsewhere', 'cn-north-4', '{\"id\":\"by-hand\"}', 'x', 1, \
             '2026-11-30T00:00:00.000Z', '2026-11-30T00:00:00.000Z', \
             '2026-11-30T00:00:00.000Z', 0)"
                .to_owned(),
        ],
    )
    .await;

    // Act
    let error = hss_sync::sync::run_once(
        &app.client,
        &app.store,
        &app.all_granted_scopes(),
        &SyncOptions::default(),
    )
    .await
    .expect_err("the apply fails");

    // Assert: the run and its scope say why, and nothing of the scope was written.
    assert!(error.to_string().contains("sync run"), "{error}");
    let runs = app.runs().await;
    let run = &runs[0];
    assert_eq!(run.status, "failed", "{run:?}");
    assert!(
        run.totals
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("12 new registries but 0 first versions"),
        "{run:?}"
    );
    let ids: Vec<String> = app
        .registries()
        .await
        .into_iter()
        .map(|r| r.registry.id)
        .collect();
    assert_eq!(ids, ["by-hand"]);
    assert!(app.history(HistoryFilter::Run(run.id)).await.is_empty());
}

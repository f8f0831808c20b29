//! The terminal reports (`runs`, `runs show`, `history`, `changes`, `status`), `prune` and
//! `grant-reader`, run as the real binary on a history built by syncs through the simulator:
//! each report in each format read back, `status` as a monitoring check, what `prune` keeps,
//! the reader role's rights, and that reports never write.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use hss_sync::sim::Fault;
use hss_sync::store::{HistoryFilter, Store};
use hss_sync::sync::RunStatus;
use serde_json::Value;

use crate::helpers::{estate, Backend, TestApp};
use crate::on_both_backends;

/// Runs `hss-sync` with `args` and `env`, nothing else from the environment that it reads.
fn hss_sync(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-sync"));
    command.args(args).stdin(Stdio::null());
    for name in [
        "DATABASE_URL",
        "HSS_SYNC_CONFIG",
        "RUST_LOG",
        "HSS_SYNC_READER_PASSWORD",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("run hss-sync")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A report's output, its exit code checked.
fn report(url: &str, args: &[&str], format: &str) -> String {
    let mut all = args.to_vec();
    all.extend(["--database-url", url, "--format", format]);
    let output = hss_sync(&all, &[]);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
    stdout(&output)
}

fn json(url: &str, args: &[&str]) -> Vec<Value> {
    let out = report(url, args, "json");
    match serde_json::from_str(&out) {
        Ok(Value::Array(items)) => items,
        other => panic!("{args:?}: not a JSON array: {other:?}\n{out}"),
    }
}

/// The header and rows of a CSV report.
fn csv(url: &str, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
    let out = report(url, args, "csv");
    let mut reader = ::csv::Reader::from_reader(out.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// What the story did, for the checks.
struct Story {
    app: TestApp,
    /// Updated in run 3 and again in run 4.
    updated: String,
    /// Deleted in run 3, restored in run 4.
    restored: String,
    /// Created in run 3.
    added: String,
    /// When run 3 started: its changes and later ones are after this whole second.
    run_3_started_at: DateTime<Utc>,
}

/// Five runs: 1 creates 12 registries in two projects; 2 changes nothing; 3 (in a later
/// whole second) updates one, deletes one and adds one; 4 updates the first again and
/// restores the deleted one; 5 fails the second project's scope (partial).
async fn story(backend: Backend) -> Story {
    let app = TestApp::spawn(backend, estate(2, 0, 6)).await;
    let scopes = app.all_granted_scopes();
    // The simulator's updates may change latest_sync_time alone: here each is a version.
    let app = app.versioning_every_change();
    assert_eq!(app.sync(&scopes).await.status, RunStatus::Succeeded);
    assert_eq!(app.sync(&scopes).await.status, RunStatus::Succeeded);
    // Run 3 starts in a later whole second than run 2 ended, a little after its start, so a
    // whole-second bound separates them and run 3's times have a fraction.
    let now = Utc::now();
    tokio::time::sleep(Duration::from_millis(
        1_020 - u64::from(now.timestamp_subsec_millis()),
    ))
    .await;
    let run_3_started_at = Utc::now();
    let ids = app.sim_ids();
    let (updated, restored) = (ids[0].clone(), ids[1].clone());
    let (project, enterprise_project) = app.sim.locate_registry(&updated).unwrap();
    app.sim.update_registry(&updated, 1).unwrap();
    app.sim.delete_registry(&restored).unwrap();
    let added = app
        .sim
        .add_registry(&project, &enterprise_project, 77)
        .unwrap();
    let run_3 = app.sync(&scopes).await;
    assert_eq!(
        (
            run_3.status,
            run_3.counts.n_updated,
            run_3.counts.n_deleted,
            run_3.counts.n_inserted
        ),
        (RunStatus::Succeeded, 1, 1, 1)
    );
    app.sim.update_registry(&updated, 2).unwrap();
    app.sim.restore_registry(&restored, None).unwrap();
    let run_4 = app.sync(&scopes).await;
    assert_eq!((run_4.counts.n_updated, run_4.counts.n_restored), (1, 1));
    app.sim.add_fault(Fault::FailPage {
        project_id: Some(app.sim.project_ids()[1].clone()),
        offset: None,
        status: 500,
        error_code: "HSS.1001".to_owned(),
        error_msg: "internal error".to_owned(),
        times: None,
    });
    assert_eq!(app.sync(&scopes).await.status, RunStatus::Partial);
    Story {
        app,
        updated,
        restored,
        added,
        run_3_started_at,
    }
}

async fn every_report_reads_the_story_back_in_every_format(backend: Backend) {
    let story = story(backend).await;
    let url = story.app.db.url.clone();
    let url = url.as_str();

    // runs: five runs, newest first.
    let runs = json(url, &["runs"]);
    let ids: Vec<i64> = runs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [5, 4, 3, 2, 1]);
    assert_eq!(runs[0]["status"], "partial");
    assert_eq!(runs[0]["n_scopes_failed"], 1);
    assert_eq!(runs[4]["n_created"], 12);
    let (header, rows) = csv(url, &["runs", "--limit", "3"]);
    assert_eq!(header[..3], ["id", "trigger", "status"]);
    assert!(header.contains(&"n_throttled".to_owned()) && header.contains(&"error".to_owned()));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0][0], "5");
    let table = report(url, &["runs"], "table");
    assert!(table.contains("run 5 [library] partial"), "{table}");
    assert!(
        table.contains("HSS.1001"),
        "the failed scope's error: {table}"
    );

    // runs show: the partial run with its two scopes.
    let shown = json(url, &["runs", "show", "5"]);
    assert_eq!(shown.len(), 1);
    let scopes = shown[0]["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 2);
    let failed: Vec<&Value> = scopes.iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["project_id"],
        story.app.sim.project_ids()[1].as_str()
    );
    assert!(failed[0]["error"].as_str().unwrap().contains("HSS.1001"));
    for column in ["error_code", "http_status", "request_id"] {
        assert!(failed[0].get(column).is_some(), "{column}");
    }
    assert!(scopes
        .iter()
        .all(|s| s["n_requests"].as_i64().unwrap() >= 1));
    let (header, rows) = csv(url, &["runs", "show", "5"]);
    assert_eq!(header[..2], ["run_id", "region"]);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row[0] == "5"));
    let table = report(url, &["runs", "show", "3"], "table");
    assert!(
        table.contains("run 3 [library] succeeded")
            && table.contains("1 created, 1 updated")
            && table.contains(&story.app.sim.project_ids()[0]),
        "{table}"
    );
    let unknown = hss_sync(&["runs", "show", "999", "--database-url", url], &[]);
    assert_eq!(unknown.status.code(), Some(1), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no run with id 999"),
        "{}",
        text(&unknown)
    );

    // history: every version of the twice-updated registry, with what changed.
    let stored = story
        .app
        .history(HistoryFilter::Registry(&story.updated))
        .await;
    let versions = json(url, &["history", &story.updated]);
    assert_eq!(
        versions
            .iter()
            .map(|v| (
                v["version"].as_i64().unwrap(),
                v["change_kind"].as_str().unwrap().to_owned()
            ))
            .collect::<Vec<_>>(),
        stored
            .iter()
            .map(|h| (h.version, h.change_kind.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        versions
            .iter()
            .map(|v| v["change_kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["created", "updated", "updated"]
    );
    let current = story
        .app
        .registries()
        .await
        .into_iter()
        .find(|r| r.registry.id == story.updated)
        .unwrap();
    let last = &versions[2];
    let changes = last["changes"].as_object().unwrap();
    let changed: Vec<&str> = last["changed_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(!changed.is_empty());
    assert_eq!(
        changes.keys().map(String::as_str).collect::<Vec<_>>(),
        changed
    );
    for (field, values) in changes {
        let now = current
            .registry
            .raw
            .get(field)
            .cloned()
            .unwrap_or(Value::Null);
        assert_eq!(values["new"], now, "{field}");
        assert_ne!(values["old"], values["new"], "{field}");
        assert_eq!(
            values["old"],
            versions[1]["changes"].get(field).map_or_else(
                // Not changed by run 3: the value run 1 created.
                || values["old"].clone(),
                |run_3| run_3["new"].clone()
            )
        );
    }
    let (header, rows) = csv(url, &["history", &story.restored]);
    assert!(header.contains(&"changes".to_owned()));
    let kinds: Vec<&str> = rows
        .iter()
        .map(|r| r[header.iter().position(|h| h == "change_kind").unwrap()].as_str())
        .collect();
    assert_eq!(kinds, ["created", "deleted", "restored"]);
    let name = current.registry.string_field("registry_name").unwrap();
    let table = report(url, &["history", &name], "table");
    assert!(
        table.contains(&story.updated) && table.contains("3 versions stored"),
        "by name: {table}"
    );
    let missing = hss_sync(&["history", "no-such-registry", "--database-url", url], &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing).contains("no registry with id or name \"no-such-registry\""));

    // changes since a whole-second, zone-less time: exactly what runs 3 to 5 wrote, though
    // run 3's times carry a fraction in that same second.
    let bound = story
        .run_3_started_at
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let expected: BTreeSet<(String, i64)> = story
        .app
        .history(HistoryFilter::All)
        .await
        .into_iter()
        .filter(|h| h.sync_run_id >= 3)
        .map(|h| (h.registry_id, h.version))
        .collect();
    assert_eq!(expected.len(), 5, "run 3 wrote 3 rows, run 4 two");
    // The case that text comparison gets wrong is there: run 3 wrote rows in the bound's
    // own second, with a fraction.
    assert!(story
        .app
        .history(HistoryFilter::Run(3))
        .await
        .iter()
        .any(
            |h| h.valid_from.timestamp() == story.run_3_started_at.timestamp()
                && h.valid_from.timestamp_subsec_millis() > 0
        ));
    let changes = json(url, &["changes", "--since", &bound]);
    let got: BTreeSet<(String, i64)> = changes
        .iter()
        .map(|c| {
            (
                c["registry_id"].as_str().unwrap().to_owned(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected, "changes --since {bound}");
    assert!(changes
        .iter()
        .any(|c| c["registry_id"] == story.added.as_str() && c["change_kind"] == "created"));
    let (header, rows) = csv(url, &["changes", "--since", "1h"]);
    assert_eq!(header[0], "registry_id");
    assert_eq!(rows.len(), 12 + 5, "every change of the last hour");
    let table = report(url, &["changes", "--since", &bound], "table");
    assert!(
        table.contains("5 changes since")
            && table.contains("1 created, 2 updated, 1 deleted, 1 restored"),
        "{table}"
    );
    let none = json(url, &["changes", "--since", "2999-01-01"]);
    assert!(none.is_empty());
}
on_both_backends!(every_report_reads_the_story_back_in_every_format);

async fn status_passes_only_after_a_recent_successful_run(backend: Backend) {
    let story = story(backend).await;
    let url = story.app.db.url.as_str();
    let status = |args: &[&str]| {
        let mut all = vec!["status", "--database-url", url];
        all.extend(args);
        hss_sync(&all, &[])
    };

    // The last run was partial.
    let partial = status(&[]);
    assert_eq!(partial.status.code(), Some(1), "{}", text(&partial));
    assert!(
        stdout(&partial).contains("check       FAILING: the last run (5) finished partial"),
        "{}",
        text(&partial)
    );

    story.app.sim.clear_faults();
    story.app.sync(&story.app.all_granted_scopes()).await;
    let ok = status(&["--max-age", "1h"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let stale = status(&["--max-age", "0s", "--format", "json"]);
    assert_eq!(stale.status.code(), Some(1), "{}", text(&stale));
    let object = &serde_json::from_slice::<Vec<Value>>(&stale.stdout).unwrap()[0];
    assert_eq!(object["ok"], false);
    assert!(object["reason"]
        .as_str()
        .unwrap()
        .contains("longer than --max-age"));
    assert_eq!(object["last_run"]["id"], 6);

    // The counts and the failing registries are the store's.
    let registries = story.app.registries().await;
    let live: Vec<_> = registries
        .iter()
        .filter(|r| r.deleted_at.is_none())
        .collect();
    assert_eq!(object["registries"], live.len());
    assert_eq!(object["retired"], registries.len() - live.len());
    let failing: BTreeSet<String> = live
        .iter()
        .filter(|r| r.registry.string_field("status").as_deref() == Some("fail"))
        .map(|r| r.registry.id.clone())
        .collect();
    let reported: BTreeSet<String> = object["failing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(f["failing_since"].is_string(), "{f}");
            f["registry_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(reported, failing);
    let images: i64 = live
        .iter()
        .filter_map(|r| r.registry.integer_field("images_num"))
        .sum();
    assert_eq!(object["images"], images);

    let csv_output = status(&["--max-age", "1h", "--format", "csv"]);
    assert_eq!(csv_output.status.code(), Some(0));
    let mut reader = ::csv::Reader::from_reader(&csv_output.stdout[..]);
    assert_eq!(&reader.headers().unwrap()[0], "ok");
    let rows: Vec<_> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][0], "true");
}
on_both_backends!(status_passes_only_after_a_recent_successful_run);

async fn prune_keeps_current_versions_and_referenced_and_newest_runs(backend: Backend) {
    let story = story(backend).await;
    let url = story.app.db.url.as_str();
    // Run 6 fails every scope: it writes nothing and no row refers to it, but it is the
    // newest run.
    story.app.sim.add_fault(Fault::FailPage {
        project_id: None,
        offset: None,
        status: 500,
        error_code: "HSS.1001".to_owned(),
        error_msg: "internal error".to_owned(),
        times: None,
    });
    assert_eq!(
        story.app.sync(&story.app.all_granted_scopes()).await.status,
        RunStatus::Failed
    );
    let history_before = story.app.history(HistoryFilter::All).await;
    let n_open = history_before
        .iter()
        .filter(|h| h.valid_to.is_none())
        .count();
    assert!(
        history_before.len() > n_open,
        "the story closed some versions"
    );

    // Nothing is old enough.
    let young = hss_sync(
        &[
            "prune",
            "--history-older-than",
            "1d",
            "--runs-older-than",
            "1d",
            "--database-url",
            url,
        ],
        &[],
    );
    assert_eq!(young.status.code(), Some(0), "{}", text(&young));
    assert!(
        stdout(&young).contains("removed 0 history versions"),
        "{}",
        text(&young)
    );
    assert_eq!(
        story.app.history(HistoryFilter::All).await.len(),
        history_before.len()
    );

    // A dry run says what would go and removes nothing.
    let args = [
        "prune",
        "--history-older-than",
        "0s",
        "--runs-older-than",
        "0s",
        "--database-url",
        url,
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let dry = hss_sync(&dry, &[]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    let n_closed = history_before.len() - n_open;
    assert!(
        stdout(&dry).contains(&format!("would remove {n_closed} history versions"))
            && stdout(&dry).contains("would remove 1 runs")
            && stdout(&dry).contains("  run 2 succeeded"),
        "{}",
        text(&dry)
    );
    assert_eq!(
        story.app.history(HistoryFilter::All).await.len(),
        history_before.len()
    );
    assert_eq!(story.app.runs().await.len(), 6);

    // While a sync holds the lease, prune waits its turn: exit 4, nothing removed.
    let hss_sync::store::LeaseOutcome::Acquired(lease) = story
        .app
        .store
        .acquire_lease(None, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the test takes the lease");
    };
    let blocked = hss_sync(&args, &[]);
    assert_eq!(blocked.status.code(), Some(4), "{}", text(&blocked));
    assert!(stdout(&blocked).contains("not pruning: another hss-sync process"));
    lease.release().await.unwrap();
    assert_eq!(story.app.runs().await.len(), 6);

    let pruned = hss_sync(&args, &[]);
    assert_eq!(pruned.status.code(), Some(0), "{}", text(&pruned));
    assert!(stdout(&pruned).contains(&format!("removed {n_closed} history versions")));

    // Every registry keeps its current version, and only that.
    let history = story.app.history(HistoryFilter::All).await;
    assert!(history.iter().all(|h| h.valid_to.is_none()));
    let mut current: Vec<(String, i64)> = history
        .iter()
        .map(|h| (h.registry_id.clone(), h.version))
        .collect();
    current.sort();
    let mut expected: Vec<(String, i64)> = story
        .app
        .registries()
        .await
        .into_iter()
        .map(|r| (r.registry.id, r.version))
        .collect();
    expected.sort();
    assert_eq!(current, expected);
    // Run 2 wrote nothing that is kept and no registry names it; runs 1, 3 and 4 wrote
    // current versions, registries name 5 (and 4), and 6 is the newest.
    let runs: Vec<i64> = story.app.runs().await.iter().map(|r| r.id).collect();
    assert_eq!(runs, [6, 5, 4, 3, 1]);
    assert!(story.app.store.scope_reports(2).await.unwrap().is_empty());
    assert_eq!(story.app.store.scope_reports(3).await.unwrap().len(), 2);

    // The pruned store still reads: an update whose previous version is gone.
    let versions = json(url, &["history", &story.updated]);
    assert_eq!(versions.len(), 1);
    assert!(versions[0]["changes"]
        .as_object()
        .unwrap()
        .values()
        .all(|v| v.get("old").is_none()));
    if backend == Backend::Sqlite {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        let problems: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(problems.is_empty(), "{problems:?}");
    }
}
on_both_backends!(prune_keeps_current_versions_and_referenced_and_newest_runs);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_a_read_only_sqlite_file_and_never_write_it() {
    let story = story(Backend::Sqlite).await;
    story.app.store.close().await;
    let path = story.app.db.sqlite_path().unwrap();
    let url = story.app.db.url.as_str();
    // Fold the write-ahead log into the file, so the file alone is the database.
    {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = std::fs::read(&path).unwrap();
    let wal = path.with_extension("db-wal");
    let wal_before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);

    for args in [
        vec!["runs"],
        vec!["runs", "show", "3"],
        vec!["history", story.added.as_str()],
        vec!["changes", "--since", "1d"],
    ] {
        for format in ["table", "json", "csv"] {
            report(url, &args, format);
        }
    }
    let status = hss_sync(&["status", "--database-url", url], &[]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "the last run was partial: {}",
        text(&status)
    );

    assert!(
        std::fs::read(&path).unwrap() == before,
        "the database file changed"
    );
    assert_eq!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0),
        wal_before,
        "the write-ahead log grew"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_on_postgres_run_in_read_only_sessions() {
    // A report's session refuses writes, whatever the user may do: a report that tried to
    // write would fail instead of writing.
    let story = story(Backend::Postgres).await;
    let store = Store::open_read_only(&story.app.db.url).await.unwrap();
    assert_eq!(store.inventory().await.unwrap().n_live, 13);
    let request = hss_sync::store::reports::PruneRequest {
        history_before: Some(Utc::now()),
        runs_before: None,
        dry_run: false,
    };
    let error = store.prune(&request).await.unwrap_err();
    assert!(
        hss_sync::errors::chain(&error).contains("read-only transaction"),
        "{}",
        hss_sync::errors::chain(&error)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_to_a_closed_pipe_ends_quietly_with_141() {
    let story = story(Backend::Sqlite).await;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args([
            "changes",
            "--since",
            "1d",
            "--format",
            "csv",
            "--database-url",
            &story.app.db.url,
        ])
        .env_remove("DATABASE_URL")
        .env_remove("HSS_SYNC_CONFIG")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_reader_gives_a_role_the_views_and_nothing_else() {
    use sqlx::Connection;
    let story = story(Backend::Postgres).await;
    let url = story.app.db.url.clone();
    let role = format!("hss_reader_{}", rand::random::<u32>());
    let password = "pw-that-must-not-show";

    let missing = hss_sync(&["grant-reader", &role, "--database-url", &url], &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        text(&missing).contains("does not exist (add --create"),
        "{}",
        text(&missing)
    );
    let no_password = hss_sync(
        &["grant-reader", &role, "--create", "--database-url", &url],
        &[],
    );
    assert_eq!(no_password.status.code(), Some(2), "{}", text(&no_password));
    assert!(text(&no_password).contains("HSS_SYNC_READER_PASSWORD"));

    let created = hss_sync(
        &["grant-reader", &role, "--create", "--database-url", &url],
        &[("HSS_SYNC_READER_PASSWORD", password)],
    );
    let result = AssertUnwindSafe(async {
        assert_eq!(created.status.code(), Some(0), "{}", text(&created));
        assert!(!text(&created).contains(password), "{}", text(&created));
        assert!(
            stdout(&created).contains(&format!(
                "CREATE ROLE \"{role}\" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '***';"
            )),
            "{}",
            text(&created)
        );
        let again = hss_sync(
            &["grant-reader", &role, "--create", "--database-url", &url],
            &[("HSS_SYNC_READER_PASSWORD", password)],
        );
        assert_eq!(again.status.code(), Some(1));
        assert!(text(&again).contains("exists already"), "{}", text(&again));
        let regrant = hss_sync(&["grant-reader", &role, "--database-url", &url], &[]);
        assert_eq!(regrant.status.code(), Some(0), "{}", text(&regrant));

        // The server keeps a SCRAM verifier, never the password.
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let stored: String =
            sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
                .bind(&role)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
        // SELECT on the four views, on no table.
        let grants: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, privilege_type::text FROM information_schema.role_table_grants \
             WHERE grantee = $1 ORDER BY 1, 2",
        )
        .bind(&role)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        let select = |name: &str| (name.to_owned(), "SELECT".to_owned());
        assert_eq!(
            grants,
            [
                select("registries_current"),
                select("registry_changes"),
                select("registry_inventory_summary"),
                select("sync_health")
            ]
        );

        let mut reader_url = url::Url::parse(&url).unwrap();
        reader_url.set_username(&role).unwrap();
        let mut reader = sqlx::PgConnection::connect(reader_url.as_str()).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM registries_current")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(n, 13);
        let n_then: i64 = sqlx::query_scalar("SELECT count(*) FROM registries_as_of(now())")
            .fetch_one(&mut reader)
            .await
            .unwrap();
        assert_eq!(n_then, 13);
        let may_update: bool =
            sqlx::query_scalar("SELECT has_table_privilege($1, 'registries_current', 'UPDATE')")
                .bind(&role)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        assert!(!may_update);
        sqlx::query("UPDATE registries_current SET registry_name = 'x'")
            .execute(&mut reader)
            .await
            .expect_err("an UPDATE through the view is refused");
        for refused in [
            "UPDATE registries SET registry_name = 'x'",
            "SELECT count(*) FROM registries",
            "SELECT count(*) FROM sync_runs",
            "DELETE FROM registry_history",
        ] {
            let error = sqlx::query(refused).execute(&mut reader).await.unwrap_err();
            assert!(
                error.to_string().contains("permission denied"),
                "{refused}: {error}"
            );
        }
        reader.close().await.unwrap();
    })
    .catch_unwind()
    .await;
    // Roles belong to the server, not to the test's database: drop it whatever happened.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let _ = sqlx::query(&format!("DROP OWNED BY \"{role}\""))
        .execute(&mut admin)
        .await;
    let _ = sqlx::query(&format!("DROP ROLE \"{role}\""))
        .execute(&mut admin)
        .await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn grant_reader_on_sqlite_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let output = hss_sync(&["grant-reader", "grafana", "--database-url", &url], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("SQLite, which has no roles"),
        "{}",
        text(&output)
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file created"
    );
}

//! The reporting layer (issue 11): the views, the point-in-time query, every query of
//! `docs/reporting.md` and every panel of the Grafana dashboards, against a history of five
//! syncs with known changes (adds, updates, deletes, a restore, a failed scope), on SQLite and
//! PostgreSQL.
//!
//! The documented queries are read from `docs/reporting.md` (fenced blocks tagged `sql`, `sql
//! postgres` or `sql sqlite`, each starting with `-- query: NAME` or `-- setup: NAME`), so the
//! page and this test cannot drift apart: a block this test does not know fails it.
//!
//! The history, run by run (P1, P2 the two projects; EP0 the default enterprise project, EP1
//! the other one):
//! 1. created: A, B (failing) in P1/EP0; C in P1/EP1; D, E in P2/EP0; F (failing) in P2/EP1.
//! 2. A's address and images change; B's `latest_sync_time` changes (still failing); C starts
//!    failing; E is deleted; G is added in P2/EP1.
//! 3. P2/EP1 fails (HSS.1001); E is restored; D's user name changes; C's fail reason changes;
//!    F recovers in HSS, unseen.
//! 4. D is deleted; F's recovery is seen.
//! 5. both projects through `all_granted_eps`; nothing changes.
//!
//! Runs 1 to 4 go through `sync::run_configured` with discovery, so project and enterprise
//! project names are recorded; each run starts 100 ms after a whole second, so a whole-second
//! literal falls between two runs (where text comparison of SQLite times goes wrong).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Timelike, Utc};
use hss_sync::config::{Overrides, RawConfig, SyncConfig};
use hss_sync::sim::Fault;
use hss_sync::store::HistoryFilter;
use hss_sync::sync::{self, NoProgress, RunStatus, Trigger};
use serde_json::{json, Value};
use sqlx::{Column, Connection, Row as _, TypeInfo, ValueRef};
use tokio_util::sync::CancellationToken;

use crate::helpers::{estate, Backend, TestApp, ACCESS_KEY, SECRET_KEY};

/// One row, column name to value; times as ISO-8601 UTC text with milliseconds on both
/// databases, JSON columns parsed on PostgreSQL and left as text on SQLite.
type Row = BTreeMap<String, Value>;

/// A connection of the test's own to the database, for SQL a user or a BI tool would run.
enum Sql {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Sql {
    async fn open(url: &str) -> Sql {
        if url.starts_with("sqlite:") {
            Sql::Sqlite(sqlx::SqliteConnection::connect(url).await.expect("sqlite"))
        } else {
            Sql::Postgres(sqlx::PgConnection::connect(url).await.expect("postgres"))
        }
    }

    async fn try_rows(&mut self, sql: &str) -> Result<Vec<Row>, sqlx::Error> {
        match self {
            Sql::Sqlite(conn) => Ok(sqlx::query(sql)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(sqlite_row)
                .collect()),
            Sql::Postgres(conn) => Ok(sqlx::query(sql)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(postgres_row)
                .collect()),
        }
    }

    async fn rows(&mut self, sql: &str) -> Vec<Row> {
        self.try_rows(sql)
            .await
            .unwrap_or_else(|e| panic!("{e}\nin:\n{sql}"))
    }

    async fn execute(&mut self, sql: &str) {
        let result = match self {
            Sql::Sqlite(conn) => sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop),
            Sql::Postgres(conn) => sqlx::raw_sql(sql).execute(&mut *conn).await.map(drop),
        };
        result.unwrap_or_else(|e| panic!("{e}\nin:\n{sql}"));
    }
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Row {
    let mut out = Row::new();
    for (i, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(i).unwrap();
        let value = if raw.is_null() {
            Value::Null
        } else {
            match raw.type_info().name() {
                "INTEGER" => json!(row.get::<i64, _>(i)),
                "REAL" => json!(row.get::<f64, _>(i)),
                "TEXT" => json!(row.get::<String, _>(i)),
                other => panic!("column {} has SQLite type {other}", column.name()),
            }
        };
        out.insert(column.name().to_owned(), value);
    }
    out
}

fn postgres_row(row: &sqlx::postgres::PgRow) -> Row {
    let mut out = Row::new();
    for (i, column) in row.columns().iter().enumerate() {
        let value = match column.type_info().name() {
            "TEXT" | "VARCHAR" | "NAME" => json!(row.get::<Option<String>, _>(i)),
            "INT8" => json!(row.get::<Option<i64>, _>(i)),
            "INT4" => json!(row.get::<Option<i32>, _>(i)),
            "BOOL" => json!(row.get::<Option<bool>, _>(i)),
            "FLOAT8" => json!(row.get::<Option<f64>, _>(i)),
            "TIMESTAMPTZ" => json!(row
                .get::<Option<DateTime<Utc>>, _>(i)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))),
            "JSONB" | "JSON" => row.get::<Option<Value>, _>(i).unwrap_or(Value::Null),
            other => panic!(
                "column {} has PostgreSQL type {other}; cast it in the query",
                column.name()
            ),
        };
        out.insert(column.name().to_owned(), value);
    }
    out
}

fn text(row: &Row, column: &str) -> Option<String> {
    match row.get(column) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => None,
        other => panic!("{column} is not text: {other:?} in {row:?}"),
    }
}

fn int(row: &Row, column: &str) -> Option<i64> {
    match row.get(column) {
        Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_i64()
                .unwrap_or_else(|| panic!("{column} is not an integer: {value:?}")),
        ),
        None => panic!("no column {column} in {row:?}"),
    }
}

/// A boolean column: `true`/`false` on PostgreSQL, 1/0 on SQLite.
fn boolean(row: &Row, column: &str) -> bool {
    match row.get(column) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) if n.as_i64() == Some(0) => false,
        Some(Value::Number(n)) if n.as_i64() == Some(1) => true,
        other => panic!("{column} is not a boolean: {other:?}"),
    }
}

/// A JSON column: parsed on PostgreSQL, JSON text on SQLite.
fn json_column(row: &Row, column: &str) -> Value {
    match row.get(column) {
        Some(Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|e| panic!("{column} is not JSON ({e}): {s}"))
        }
        Some(value) => value.clone(),
        None => panic!("no column {column} in {row:?}"),
    }
}

fn millis(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A registry as HSS lists it.
fn registry(
    id: &str,
    name: &str,
    registry_type: &str,
    addr: &str,
    user: &str,
    failing: Option<&str>,
    images: i64,
) -> Value {
    let mut value = json!({
        "id": id,
        "registry_name": name,
        "registry_type": registry_type,
        "api_version": "v2",
        "protocol": "https",
        "registry_addr": addr,
        "registry_username": user,
        "connect_cluster_id": "cluster-1",
        "get_scan_image_channel": "Public",
        "status": if failing.is_some() { "fail" } else { "success" },
        "images_num": images,
        "latest_sync_time": 1_748_736_000_000_i64,
    });
    if let Some(reason) = failing {
        value["fail_reason"] = json!(reason);
    }
    value
}

/// Changes a registry in the simulator: it leaves its scope and comes back changed, which a
/// sync sees as an update.
fn edit(app: &TestApp, id: &str, change: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let (project_id, enterprise_project_id) = app.sim.locate_registry(id).expect("registry");
    let mut value = app
        .sim
        .registries(&project_id, Some(&enterprise_project_id))
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap();
    app.sim.delete_registry(id).unwrap();
    change(value.as_object_mut().unwrap());
    app.sim
        .insert_registry(&project_id, &enterprise_project_id, value);
}

/// Sleeps until 100 ms after the next whole second.
async fn start_after_a_whole_second() {
    let now = Utc::now();
    let into_second = Duration::from_nanos(u64::from(now.nanosecond() % 1_000_000_000));
    tokio::time::sleep(Duration::from_secs(1) - into_second + Duration::from_millis(100)).await;
}

fn discovery_config(app: &TestApp) -> SyncConfig {
    let endpoint = app.endpoint();
    let overrides = Overrides {
        discover: Some(true),
        endpoint: Some(endpoint.clone()),
        iam_endpoint: Some(endpoint.clone()),
        eps_endpoint: Some(endpoint),
        max_requests_per_minute: Some(0),
        retry_base_delay_ms: Some(10),
        // Every change is a version, so each run's estate can be read back in point-in-time
        // queries field for field (reg-b's change is to latest_sync_time alone).
        history_ignore_fields: Some(Vec::new()),
        ..Overrides::default()
    };
    let keys = [("CLOUD_SDK_AK", ACCESS_KEY), ("CLOUD_SDK_SK", SECRET_KEY)];
    SyncConfig::build(overrides, RawConfig::default(), |name| {
        keys.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// What the store and the simulator held when a run ended.
struct RunSeen {
    run_id: i64,
    status: RunStatus,
    /// The first whole second after the run's end: before the next run started.
    boundary: DateTime<Utc>,
    /// `registries_current` right after the run: id to (version, raw).
    current: BTreeMap<String, (i64, Value)>,
    /// The simulator's estate then: id to the registry as listed.
    sim: BTreeMap<String, Value>,
}

/// The history every check reads.
struct History {
    app: TestApp,
    sql: Sql,
    runs: Vec<RunSeen>,
    p1: String,
    p2: String,
    ep1: String,
}

const ALL: [&str; 7] = [
    "reg-a", "reg-b", "reg-c", "reg-d", "reg-e", "reg-f", "reg-g",
];

async fn build_history(backend: Backend) -> History {
    let app = TestApp::spawn(backend, estate(2, 1, 0)).await;
    let projects = app.sim.project_ids();
    let (p1, p2) = (projects[0].clone(), projects[1].clone());
    let ep1 = app.sim.enterprise_project_ids()[1].clone();
    let sql = Sql::open(&app.db.url).await;
    let mut history = History {
        app,
        sql,
        runs: Vec::new(),
        p1,
        p2,
        ep1,
    };
    let (p1, p2, ep1) = (history.p1.clone(), history.p2.clone(), history.ep1.clone());
    let app = &history.app;

    // Run 1.
    let add = |project: &str, ep: &str, value: Value| app.sim.insert_registry(project, ep, value);
    add(
        &p1,
        "0",
        registry(
            "reg-a",
            "harbor-prod",
            "Harbor",
            "harbor.example.com",
            "robot$hss",
            None,
            10,
        ),
    );
    add(
        &p1,
        "0",
        registry(
            "reg-b",
            "jfrog-ci",
            "Jfrog",
            "acme.jfrog.io",
            "svc-hss",
            Some("REQUEST_API_ERROR"),
            3,
        ),
    );
    add(
        &p1,
        &ep1,
        registry(
            "reg-c",
            "harbor-dev",
            "Harbor",
            "10.0.0.5:8443",
            "robot$ci",
            None,
            5,
        ),
    );
    add(
        &p2,
        "0",
        registry(
            "reg-d",
            "swr-main",
            "SwrPrivate",
            "swr.cn-north-4.myhuaweicloud.com",
            "cn-north-4@AKOLD",
            None,
            100,
        ),
    );
    add(
        &p2,
        "0",
        registry(
            "reg-e",
            "other-qa",
            "Other",
            "registry.example.org",
            "registry-user",
            None,
            0,
        ),
    );
    add(
        &p2,
        &ep1,
        registry(
            "reg-f",
            "harbor-stage",
            "Harbor",
            "harbor-stage.example.com",
            "robot$scan",
            Some("SERVER_ERROR"),
            7,
        ),
    );
    history.sync_discovered().await;

    // Run 2.
    let app = &history.app;
    edit(app, "reg-a", |r| {
        r.insert("registry_addr".into(), json!("harbor.example.net"));
        r.insert("images_num".into(), json!(12));
    });
    edit(app, "reg-b", |r| {
        r.insert("latest_sync_time".into(), json!(1_748_736_060_000_i64));
    });
    edit(app, "reg-c", |r| {
        r.insert("status".into(), json!("fail"));
        r.insert("fail_reason".into(), json!("CREATE_JOB_FAILED"));
    });
    app.sim.delete_registry("reg-e").unwrap();
    app.sim.insert_registry(
        &p2,
        &ep1,
        registry(
            "reg-g",
            "harbor-new",
            "Harbor",
            "harbor-new.example.com",
            "robot$new",
            None,
            20,
        ),
    );
    history.sync_discovered().await;

    // Run 3: P2/EP1 fails.
    let app = &history.app;
    app.sim.restore_registry("reg-e", None).unwrap();
    edit(app, "reg-d", |r| {
        r.insert("registry_username".into(), json!("cn-north-4@AKNEW"));
    });
    edit(app, "reg-c", |r| {
        r.insert("fail_reason".into(), json!("SERVER_ERROR"));
    });
    edit(app, "reg-f", |r| {
        r.insert("status".into(), json!("success"));
        r.remove("fail_reason");
    });
    app.sim.add_fault(Fault::FailEnterpriseProject {
        project_id: Some(p2.clone()),
        enterprise_project_id: ep1.clone(),
        status: 500,
        error_code: "HSS.1001".to_owned(),
        error_msg: "internal".to_owned(),
        times: None,
    });
    history.sync_discovered().await;

    // Run 4.
    let app = &history.app;
    app.sim.clear_faults();
    app.sim.delete_registry("reg-d").unwrap();
    history.sync_discovered().await;

    // Run 5: every project through all_granted_eps, without discovery.
    start_after_a_whole_second().await;
    let every_change = hss_sync::sync::SyncOptions {
        history_ignore_fields: Vec::new(),
        ..hss_sync::sync::SyncOptions::default()
    };
    let report = history
        .app
        .sync_with(&history.app.all_granted_scopes(), every_change)
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    history.record_run(report.run_id, report.status).await;

    let statuses: Vec<RunStatus> = history.runs.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            RunStatus::Succeeded,
            RunStatus::Succeeded,
            RunStatus::Partial,
            RunStatus::Succeeded,
            RunStatus::Succeeded
        ]
    );
    history
}

impl History {
    async fn sync_discovered(&mut self) {
        start_after_a_whole_second().await;
        let config = discovery_config(&self.app);
        let report = sync::run_configured(
            &config,
            &self.app.store,
            Trigger::Cli,
            None,
            Arc::new(NoProgress),
            CancellationToken::new(),
        )
        .await
        .expect("sync");
        assert_eq!(report.scopes.len(), 4, "{report:?}");
        self.record_run(report.run_id, report.status).await;
    }

    async fn record_run(&mut self, run_id: i64, status: RunStatus) {
        let runs = self.app.runs().await;
        let finished_at = runs
            .iter()
            .find(|r| r.id == run_id)
            .and_then(|r| r.finished_at)
            .expect("a finished run");
        let boundary =
            finished_at.with_nanosecond(0).expect("a whole second") + chrono::Duration::seconds(1);
        let current = self
            .sql
            .rows("SELECT id, version, raw FROM registries_current")
            .await
            .iter()
            .map(|row| {
                (
                    text(row, "id").unwrap(),
                    (int(row, "version").unwrap(), json_column(row, "raw")),
                )
            })
            .collect();
        let sim = self
            .app
            .sim
            .project_ids()
            .iter()
            .flat_map(|p| self.app.sim.registries(p, None))
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r))
            .collect();
        self.runs.push(RunSeen {
            run_id,
            status,
            boundary,
            current,
            sim,
        });
    }

    /// `valid_from` of one version, read through the store (not the views).
    async fn valid_from(&self, id: &str, version: i64) -> String {
        let rows = self.app.history(HistoryFilter::Registry(id)).await;
        let row = rows
            .iter()
            .find(|h| h.version == version)
            .unwrap_or_else(|| panic!("{id} has no version {version}: {rows:?}"));
        millis(row.valid_from)
    }

    /// `finished_at` of a scope row of a run.
    async fn scope_finished_at(&mut self, run_index: usize, project: &str, ep: &str) -> String {
        let run_id = self.runs[run_index].run_id;
        let rows = self
            .sql
            .rows(&format!(
                "SELECT finished_at FROM sync_run_scopes WHERE sync_run_id = {run_id} \
                 AND project_id = '{project}' AND enterprise_project_id = '{ep}'"
            ))
            .await;
        assert_eq!(rows.len(), 1, "run {run_id} scope {project}/{ep}");
        text(&rows[0], "finished_at").unwrap()
    }

    fn run_id(&self, run_index: usize) -> i64 {
        self.runs[run_index].run_id
    }
}

async fn reporting_views_queries_and_point_in_time(backend: Backend) {
    // Arrange
    let mut history = build_history(backend).await;

    // Act and assert: the views, the catalog, each documented query, each point in time.
    check_catalog(&mut history).await;
    check_registries_current(&mut history).await;
    check_registry_changes(&mut history).await;
    check_inventory_summary(&mut history).await;
    check_sync_health(&mut history).await;
    check_documented_queries(&mut history, backend).await;
    check_point_in_time(&mut history, backend).await;
    if backend == Backend::Postgres {
        check_reader_role_and_grafana_panels(&mut history).await;
    }
}
crate::on_both_backends!(reporting_views_queries_and_point_in_time);

async fn check_catalog(history: &mut History) {
    let projects = history
        .sql
        .rows("SELECT id, name, region, status FROM projects ORDER BY id")
        .await;
    for id in [&history.p1, &history.p2] {
        let row = projects
            .iter()
            .find(|r| text(r, "id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("project {id} recorded: {projects:?}"));
        assert_eq!(text(row, "name"), history.app.sim.project_name(id));
        assert_eq!(text(row, "region").as_deref(), Some("cn-north-4"));
        assert_eq!(text(row, "status").as_deref(), Some("enabled"));
    }
    let eps = history
        .sql
        .rows("SELECT id, name, status FROM enterprise_projects ORDER BY id")
        .await;
    let names: BTreeMap<String, Option<String>> = eps
        .iter()
        .map(|r| (text(r, "id").unwrap(), text(r, "name")))
        .collect();
    assert_eq!(names.get("0"), Some(&Some("default".to_owned())));
    assert_eq!(names.get(&history.ep1), Some(&Some("platform".to_owned())));
}

async fn check_registries_current(history: &mut History) {
    // Run 5 saw everything again through all_granted_eps. A sync that does not rewrite an
    // unchanged row (issue 9) leaves registries.last_seen_at behind: the view still says when
    // a completed walk covered the registry.
    history
        .sql
        .execute(
            "UPDATE registries SET last_seen_at = '2020-01-01T00:00:00.000Z' WHERE id = 'reg-a'",
        )
        .await;
    let rows = history
        .sql
        .rows("SELECT * FROM registries_current ORDER BY id")
        .await;
    let ids: Vec<String> = rows.iter().map(|r| text(r, "id").unwrap()).collect();
    assert_eq!(ids, ["reg-a", "reg-b", "reg-c", "reg-e", "reg-f", "reg-g"]);
    let by_id: BTreeMap<String, &Row> = rows.iter().map(|r| (text(r, "id").unwrap(), r)).collect();
    let (p1, p2, ep1) = (history.p1.clone(), history.p2.clone(), history.ep1.clone());
    let p1_name = history.app.sim.project_name(&p1);
    let p2_name = history.app.sim.project_name(&p2);
    // (id, name, type, status, fail reason, images, version, project, enterprise project)
    let expected = [
        (
            "reg-a",
            "harbor-prod",
            "Harbor",
            "success",
            None,
            12,
            2,
            &p1,
            "0",
        ),
        (
            "reg-b",
            "jfrog-ci",
            "Jfrog",
            "fail",
            Some("REQUEST_API_ERROR"),
            3,
            2,
            &p1,
            "0",
        ),
        (
            "reg-c",
            "harbor-dev",
            "Harbor",
            "fail",
            Some("SERVER_ERROR"),
            5,
            3,
            &p1,
            ep1.as_str(),
        ),
        (
            "reg-e", "other-qa", "Other", "success", None, 0, 3, &p2, "0",
        ),
        (
            "reg-f",
            "harbor-stage",
            "Harbor",
            "success",
            None,
            7,
            2,
            &p2,
            ep1.as_str(),
        ),
        (
            "reg-g",
            "harbor-new",
            "Harbor",
            "success",
            None,
            20,
            1,
            &p2,
            ep1.as_str(),
        ),
    ];
    for (id, name, registry_type, status, reason, images, version, project, ep) in expected {
        let row = by_id[id];
        assert_eq!(text(row, "registry_name").as_deref(), Some(name), "{id}");
        assert_eq!(
            text(row, "registry_type").as_deref(),
            Some(registry_type),
            "{id}"
        );
        assert_eq!(text(row, "status").as_deref(), Some(status), "{id}");
        assert_eq!(boolean(row, "failing"), status == "fail", "{id}");
        assert_eq!(text(row, "fail_reason").as_deref(), reason, "{id}");
        assert_eq!(int(row, "images_num"), Some(images), "{id}");
        assert_eq!(int(row, "version"), Some(version), "{id}");
        assert_eq!(
            text(row, "project_id").as_deref(),
            Some(project.as_str()),
            "{id}"
        );
        let project_name = if project == &p1 { &p1_name } else { &p2_name };
        assert_eq!(&text(row, "project_name"), project_name, "{id}");
        assert_eq!(
            text(row, "enterprise_project_id").as_deref(),
            Some(ep),
            "{id}"
        );
        let ep_name = if ep == "0" { "default" } else { "platform" };
        assert_eq!(
            text(row, "enterprise_project_name").as_deref(),
            Some(ep_name),
            "{id}"
        );
        assert_eq!(text(row, "region").as_deref(), Some("cn-north-4"), "{id}");
        let first_seen = history.valid_from(id, 1).await;
        assert_eq!(text(row, "first_seen_at"), Some(first_seen.clone()), "{id}");
        assert_eq!(
            int(row, "first_seen_at_ms"),
            Some(
                DateTime::parse_from_rfc3339(&first_seen)
                    .unwrap()
                    .timestamp_millis()
            ),
            "{id}"
        );
        assert_eq!(
            text(row, "last_changed_at"),
            Some(history.valid_from(id, version).await),
            "{id}"
        );
        let seen = history
            .scope_finished_at(4, project, "all_granted_eps")
            .await;
        assert_eq!(text(row, "last_seen_at"), Some(seen.clone()), "{id}");
        assert_eq!(
            int(row, "last_seen_at_ms"),
            Some(
                DateTime::parse_from_rfc3339(&seen)
                    .unwrap()
                    .timestamp_millis()
            ),
            "{id}"
        );
        assert_eq!(json_column(row, "raw")["id"], json!(id));
    }
    assert_eq!(
        text(by_id["reg-a"], "registry_addr").as_deref(),
        Some("harbor.example.net")
    );
    assert_eq!(
        text(by_id["reg-a"], "latest_sync_at").as_deref(),
        Some("2025-06-01T00:00:00.000Z")
    );
    assert_eq!(
        int(by_id["reg-a"], "latest_sync_time"),
        Some(1_748_736_000_000)
    );
    assert_eq!(
        text(by_id["reg-b"], "latest_sync_at").as_deref(),
        Some("2025-06-01T00:01:00.000Z")
    );
    // B failed from its first version on; C from its second, through a change of reason.
    let b_since = history.valid_from("reg-b", 1).await;
    assert_eq!(text(by_id["reg-b"], "failing_since"), Some(b_since.clone()));
    assert_eq!(
        int(by_id["reg-b"], "failing_since_ms"),
        Some(
            DateTime::parse_from_rfc3339(&b_since)
                .unwrap()
                .timestamp_millis()
        )
    );
    assert_eq!(
        text(by_id["reg-c"], "failing_since"),
        Some(history.valid_from("reg-c", 2).await)
    );
    for id in ["reg-a", "reg-e", "reg-f", "reg-g"] {
        assert_eq!(text(by_id[id], "failing_since"), None, "{id}");
        assert_eq!(int(by_id[id], "failing_since_ms"), None, "{id}");
    }

    // After run 3, whose P2/EP1 walk failed, F and G were last seen by run 2's walk of it.
    let f_after_run_3 = &history.runs[2].current["reg-f"];
    assert_eq!(f_after_run_3.0, 1, "run 3 did not see F's recovery");
    let p2_ep1_run_2 = history.scope_finished_at(1, &p2, &ep1).await;
    let p2_ep1_run_3 = history.scope_finished_at(2, &p2, &ep1).await;
    assert_ne!(p2_ep1_run_2, p2_ep1_run_3);
}

async fn check_registry_changes(history: &mut History) {
    let rows = history
        .sql
        .rows("SELECT * FROM registry_changes ORDER BY registry_id, version")
        .await;
    let changes: Vec<(String, i64, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                text(r, "registry_id").unwrap(),
                int(r, "version").unwrap(),
                text(r, "change_kind").unwrap(),
                int(r, "sync_run_id").unwrap(),
            )
        })
        .collect();
    let run = |i: usize| history.run_id(i);
    let expected: Vec<(String, i64, String, i64)> = [
        ("reg-a", 1, "created", run(0)),
        ("reg-a", 2, "updated", run(1)),
        ("reg-b", 1, "created", run(0)),
        ("reg-b", 2, "updated", run(1)),
        ("reg-c", 1, "created", run(0)),
        ("reg-c", 2, "updated", run(1)),
        ("reg-c", 3, "updated", run(2)),
        ("reg-d", 1, "created", run(0)),
        ("reg-d", 2, "updated", run(2)),
        ("reg-d", 3, "deleted", run(3)),
        ("reg-e", 1, "created", run(0)),
        ("reg-e", 2, "deleted", run(1)),
        ("reg-e", 3, "restored", run(2)),
        ("reg-f", 1, "created", run(0)),
        ("reg-f", 2, "updated", run(3)),
        ("reg-g", 1, "created", run(1)),
    ]
    .into_iter()
    .map(|(id, v, kind, run)| (id.to_owned(), v, kind.to_owned(), run))
    .collect();
    assert_eq!(changes, expected);

    let find = |id: &str, version: i64| {
        rows.iter()
            .find(|r| {
                text(r, "registry_id").as_deref() == Some(id) && int(r, "version") == Some(version)
            })
            .unwrap()
    };
    // (id, version, changed fields, old values, new values)
    let updates = [
        (
            "reg-a",
            2,
            json!(["images_num", "registry_addr"]),
            json!({"images_num": 10, "registry_addr": "harbor.example.com"}),
            json!({"images_num": 12, "registry_addr": "harbor.example.net"}),
        ),
        (
            "reg-b",
            2,
            json!(["latest_sync_time"]),
            json!({"latest_sync_time": 1_748_736_000_000_i64}),
            json!({"latest_sync_time": 1_748_736_060_000_i64}),
        ),
        (
            "reg-c",
            2,
            json!(["fail_reason", "status"]),
            json!({"fail_reason": null, "status": "success"}),
            json!({"fail_reason": "CREATE_JOB_FAILED", "status": "fail"}),
        ),
        (
            "reg-c",
            3,
            json!(["fail_reason"]),
            json!({"fail_reason": "CREATE_JOB_FAILED"}),
            json!({"fail_reason": "SERVER_ERROR"}),
        ),
        (
            "reg-d",
            2,
            json!(["registry_username"]),
            json!({"registry_username": "cn-north-4@AKOLD"}),
            json!({"registry_username": "cn-north-4@AKNEW"}),
        ),
        (
            "reg-f",
            2,
            json!(["fail_reason", "status"]),
            json!({"fail_reason": "SERVER_ERROR", "status": "fail"}),
            json!({"fail_reason": null, "status": "success"}),
        ),
    ];
    for (id, version, fields, old, new) in updates {
        let row = find(id, version);
        assert_eq!(
            json_column(row, "changed_fields"),
            fields,
            "{id} v{version}"
        );
        assert_eq!(json_column(row, "old_values"), old, "{id} v{version}");
        assert_eq!(json_column(row, "new_values"), new, "{id} v{version}");
    }
    for (id, version) in [("reg-a", 1), ("reg-d", 3), ("reg-e", 2), ("reg-e", 3)] {
        let row = find(id, version);
        assert_eq!(
            json_column(row, "changed_fields"),
            json!([]),
            "{id} v{version}"
        );
        assert_eq!(row["old_values"], Value::Null, "{id} v{version}");
        assert_eq!(row["new_values"], Value::Null, "{id} v{version}");
    }
    // Each version's span: valid_to is the next version's valid_from; the current one is open.
    for pair in rows.windows(2) {
        if text(&pair[0], "registry_id") == text(&pair[1], "registry_id") {
            assert_eq!(text(&pair[0], "valid_to"), text(&pair[1], "valid_from"));
            assert_eq!(int(&pair[0], "valid_to_ms"), int(&pair[1], "valid_from_ms"));
        }
    }
    let d_deleted = find("reg-d", 3);
    assert_eq!(text(d_deleted, "valid_to"), None);
    assert_eq!(
        text(d_deleted, "registry_username").as_deref(),
        Some("cn-north-4@AKNEW"),
        "a deletion carries the last content seen"
    );
    assert_eq!(
        text(d_deleted, "project_name"),
        history.app.sim.project_name(&history.p2)
    );
    assert_eq!(
        text(d_deleted, "enterprise_project_name").as_deref(),
        Some("default")
    );
    let c_failing = find("reg-c", 2);
    assert!(boolean(c_failing, "failing"));
    assert!(!boolean(find("reg-c", 1), "failing"));
    for row in &rows {
        let from = text(row, "valid_from").unwrap();
        assert_eq!(
            int(row, "valid_from_ms"),
            Some(
                DateTime::parse_from_rfc3339(&from)
                    .unwrap()
                    .timestamp_millis()
            )
        );
    }
}

async fn check_inventory_summary(history: &mut History) {
    let rows = history
        .sql
        .rows("SELECT * FROM registry_inventory_summary")
        .await;
    let got: BTreeSet<(String, String, String, String, i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            assert_eq!(text(r, "region").as_deref(), Some("cn-north-4"));
            (
                text(r, "project_name").unwrap(),
                text(r, "enterprise_project_name").unwrap(),
                text(r, "registry_type").unwrap(),
                text(r, "status").unwrap(),
                int(r, "n_registries").unwrap(),
                int(r, "n_failing").unwrap(),
                int(r, "n_images").unwrap(),
            )
        })
        .collect();
    let p1 = history.app.sim.project_name(&history.p1).unwrap();
    let p2 = history.app.sim.project_name(&history.p2).unwrap();
    let expected: BTreeSet<(String, String, String, String, i64, i64, i64)> = [
        (&p1, "default", "Harbor", "success", 1, 0, 12),
        (&p1, "default", "Jfrog", "fail", 1, 1, 3),
        (&p1, "platform", "Harbor", "fail", 1, 1, 5),
        (&p2, "default", "Other", "success", 1, 0, 0),
        (&p2, "platform", "Harbor", "success", 2, 0, 27),
    ]
    .into_iter()
    .map(|(p, e, t, s, n, f, i)| (p.clone(), e.to_owned(), t.to_owned(), s.to_owned(), n, f, i))
    .collect();
    assert_eq!(got, expected);
}

async fn check_sync_health(history: &mut History) {
    let rows = history
        .sql
        .rows("SELECT * FROM sync_health ORDER BY run_id")
        .await;
    let ids: Vec<i64> = rows.iter().map(|r| int(r, "run_id").unwrap()).collect();
    let expected_ids: Vec<i64> = history.runs.iter().map(|r| r.run_id).collect();
    assert_eq!(ids, expected_ids);
    // (status, scopes, failed, inserted, updated, deleted, restored, unchanged)
    let expected = [
        ("succeeded", 4, 0, 6, 0, 0, 0, 0),
        ("succeeded", 4, 0, 1, 3, 1, 0, 2),
        ("partial", 4, 1, 0, 2, 0, 1, 2),
        ("succeeded", 4, 0, 0, 1, 1, 0, 5),
        ("succeeded", 2, 0, 0, 0, 0, 0, 6),
    ];
    let runs = history.app.runs().await;
    for (row, (status, scopes, failed, inserted, updated, deleted, restored, unchanged)) in
        rows.iter().zip(expected)
    {
        let run_id = int(row, "run_id").unwrap();
        assert_eq!(text(row, "status").as_deref(), Some(status), "run {run_id}");
        assert_eq!(int(row, "n_scopes"), Some(scopes), "run {run_id}");
        assert_eq!(int(row, "n_scopes_failed"), Some(failed), "run {run_id}");
        assert_eq!(int(row, "n_scopes_held"), Some(0), "run {run_id}");
        assert_eq!(int(row, "n_inserted"), Some(inserted), "run {run_id}");
        assert_eq!(int(row, "n_updated"), Some(updated), "run {run_id}");
        assert_eq!(int(row, "n_deleted"), Some(deleted), "run {run_id}");
        assert_eq!(int(row, "n_restored"), Some(restored), "run {run_id}");
        assert_eq!(int(row, "n_unchanged"), Some(unchanged), "run {run_id}");
        assert_eq!(
            int(row, "n_rows_changed"),
            Some(inserted + updated + deleted + restored),
            "run {run_id}"
        );
        let record = runs.iter().find(|r| r.id == run_id).unwrap();
        assert_eq!(
            text(row, "trigger").as_deref(),
            Some(record.trigger.as_str())
        );
        assert_eq!(text(row, "started_at"), Some(millis(record.started_at)));
        let finished = record.finished_at.unwrap();
        assert_eq!(text(row, "finished_at"), Some(millis(finished)));
        assert_eq!(
            int(row, "finished_at_ms"),
            Some(finished.timestamp_millis())
        );
        assert_eq!(
            int(row, "started_at_ms"),
            Some(record.started_at.timestamp_millis())
        );
        let duration = row["duration_seconds"].as_f64().unwrap();
        let expected_duration = (finished - record.started_at).num_milliseconds() as f64 / 1000.0;
        assert!(
            (duration - expected_duration).abs() < 0.0005,
            "run {run_id}: {duration} against {expected_duration}"
        );
        assert!(int(row, "n_requests").unwrap() >= scopes, "run {run_id}");
        assert_eq!(text(row, "scheduled_at"), None);
        if status == "succeeded" {
            assert_eq!(text(row, "error"), None, "run {run_id}");
            assert_eq!(text(row, "error_code"), None, "run {run_id}");
            assert_eq!(int(row, "http_status"), None, "run {run_id}");
        }
    }
    assert_eq!(text(&rows[0], "trigger").as_deref(), Some("cli"));
    let partial = &rows[2];
    let error = text(partial, "error").expect("the partial run's error");
    assert!(error.contains("HSS.1001"), "{error}");
    // Huawei's code and the HTTP status, in columns of their own.
    assert_eq!(text(partial, "error_code").as_deref(), Some("HSS.1001"));
    assert_eq!(int(partial, "http_status"), Some(500));
}

/// The fenced SQL blocks of a Markdown file: (backends, first-line name, text).
fn sql_blocks(markdown: &str) -> Vec<(Vec<Backend>, String, String)> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```sql") else {
            continue;
        };
        let backends = match info.trim() {
            "" => vec![Backend::Sqlite, Backend::Postgres],
            "postgres" => vec![Backend::Postgres],
            "sqlite" => vec![Backend::Sqlite],
            other => panic!("a sql block tagged {other:?}"),
        };
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        let name = body
            .first()
            .and_then(|l| {
                l.strip_prefix("-- query: ")
                    .or_else(|| l.strip_prefix("-- setup: "))
            })
            .unwrap_or_else(|| panic!("a sql block without `-- query: NAME`: {body:?}"))
            .to_owned();
        blocks.push((backends, name, body.join("\n")));
    }
    blocks
}

fn reporting_doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reporting.md")).unwrap()
}

/// The documented queries for `backend`, by name.
fn documented_queries(backend: Backend) -> BTreeMap<String, String> {
    let mut queries = BTreeMap::new();
    for (backends, name, sql) in sql_blocks(&reporting_doc()) {
        if backends.contains(&backend) {
            let previous = queries.insert(name.clone(), sql);
            assert!(previous.is_none(), "{name} twice for {backend:?}");
        }
    }
    queries
}

/// The literal the documented point-in-time queries show, replaced by the tests.
const DOC_TIME: &str = "2026-11-01T00:00:00Z";

async fn check_documented_queries(history: &mut History, backend: Backend) {
    let mut queries = documented_queries(backend);
    let mut expected_names = vec![
        "added-or-removed-last-7-days",
        "address-or-credentials-changed",
        "changed-since-a-time",
        "estate-as-of",
        "failing-registries",
        "history-of-one-registry",
        "images-over-time",
        "inventory-by-type-and-status",
        "inventory-per-enterprise-project",
        "runs-not-succeeded",
        "sync-success-rate",
    ];
    if backend == Backend::Postgres {
        expected_names.push("grant-reader");
    }
    expected_names.sort();
    assert_eq!(
        queries.keys().map(String::as_str).collect::<Vec<_>>(),
        expected_names,
        "the documented queries and the ones this test checks differ"
    );
    // Run in check_point_in_time and check_reader_role_and_grafana_panels.
    queries.remove("estate-as-of");
    queries.remove("grant-reader");

    let p1 = history.app.sim.project_name(&history.p1);
    let run_ids: Vec<i64> = history.runs.iter().map(|r| r.run_id).collect();
    for (name, sql) in &queries {
        let sql = sql
            .replace("your-registry-id", "reg-c")
            .replace(DOC_TIME, &millis(history.runs[2].boundary));
        let rows = history.sql.rows(&sql).await;
        let column = |c: &str| -> Vec<Option<String>> { rows.iter().map(|r| text(r, c)).collect() };
        let ints = |c: &str| -> Vec<Option<i64>> { rows.iter().map(|r| int(r, c)).collect() };
        match name.as_str() {
            "inventory-by-type-and-status" => {
                let got: Vec<(String, String, i64, i64, i64)> = rows
                    .iter()
                    .map(|r| {
                        (
                            text(r, "registry_type").unwrap(),
                            text(r, "status").unwrap(),
                            int(r, "n_registries").unwrap(),
                            int(r, "n_failing").unwrap(),
                            int(r, "n_images").unwrap(),
                        )
                    })
                    .collect();
                let expected = [
                    ("Harbor", "success", 3, 0, 39),
                    ("Harbor", "fail", 1, 1, 5),
                    ("Jfrog", "fail", 1, 1, 3),
                    ("Other", "success", 1, 0, 0),
                ]
                .map(|(t, s, n, f, i)| (t.to_owned(), s.to_owned(), n, f, i));
                assert_eq!(got, expected, "{name}");
            }
            "failing-registries" => {
                assert_eq!(column("id"), [Some("reg-b".into()), Some("reg-c".into())]);
                assert_eq!(
                    column("failing_since"),
                    [
                        Some(history.valid_from("reg-b", 1).await),
                        Some(history.valid_from("reg-c", 2).await)
                    ]
                );
                assert_eq!(
                    column("fail_reason"),
                    [
                        Some("REQUEST_API_ERROR".into()),
                        Some("SERVER_ERROR".into())
                    ]
                );
                assert_eq!(column("project_name"), [p1.clone(), p1.clone()]);
                assert_eq!(
                    column("enterprise_project_name"),
                    [Some("default".into()), Some("platform".into())]
                );
            }
            "added-or-removed-last-7-days" => {
                let got: BTreeSet<(String, String)> = rows
                    .iter()
                    .map(|r| {
                        (
                            text(r, "registry_id").unwrap(),
                            text(r, "change_kind").unwrap(),
                        )
                    })
                    .collect();
                let mut expected: BTreeSet<(String, String)> = ALL
                    .iter()
                    .map(|id| (id.to_string(), "created".to_owned()))
                    .collect();
                expected.insert(("reg-e".into(), "deleted".into()));
                expected.insert(("reg-e".into(), "restored".into()));
                expected.insert(("reg-d".into(), "deleted".into()));
                assert_eq!(got, expected, "{name}");
                assert_eq!(rows.len(), 10);
                let times = column("valid_from");
                assert!(
                    times.windows(2).all(|w| w[0] >= w[1]),
                    "newest first: {times:?}"
                );
            }
            "address-or-credentials-changed" => {
                assert_eq!(
                    column("registry_id"),
                    [Some("reg-d".into()), Some("reg-a".into())]
                );
                assert_eq!(
                    column("old_registry_addr"),
                    [None, Some("harbor.example.com".into())]
                );
                assert_eq!(
                    column("new_registry_addr"),
                    [None, Some("harbor.example.net".into())]
                );
                assert_eq!(
                    column("old_registry_username"),
                    [Some("cn-north-4@AKOLD".into()), None]
                );
                assert_eq!(
                    column("new_registry_username"),
                    [Some("cn-north-4@AKNEW".into()), None]
                );
            }
            "history-of-one-registry" => {
                let got: Vec<(i64, String, Option<String>, Value, Value)> = rows
                    .iter()
                    .map(|r| {
                        (
                            int(r, "version").unwrap(),
                            text(r, "change_kind").unwrap(),
                            text(r, "field"),
                            r["old_value"].clone(),
                            r["new_value"].clone(),
                        )
                    })
                    .collect();
                let expected = vec![
                    (1, "created".to_owned(), None, Value::Null, Value::Null),
                    (
                        2,
                        "updated".into(),
                        Some("fail_reason".into()),
                        Value::Null,
                        json!("CREATE_JOB_FAILED"),
                    ),
                    (
                        2,
                        "updated".into(),
                        Some("status".into()),
                        json!("success"),
                        json!("fail"),
                    ),
                    (
                        3,
                        "updated".into(),
                        Some("fail_reason".into()),
                        json!("CREATE_JOB_FAILED"),
                        json!("SERVER_ERROR"),
                    ),
                ];
                assert_eq!(got, expected, "{name}");
                assert_eq!(
                    ints("sync_run_id"),
                    [run_ids[0], run_ids[1], run_ids[1], run_ids[2]].map(Some)
                );
            }
            "images-over-time" => {
                let got: Vec<(i64, i64, i64)> = rows
                    .iter()
                    .map(|r| {
                        (
                            int(r, "run_id").unwrap(),
                            int(r, "n_images").unwrap(),
                            int(r, "n_registries").unwrap(),
                        )
                    })
                    .collect();
                let expected: Vec<(i64, i64, i64)> = run_ids
                    .iter()
                    .zip([(125, 6), (147, 6), (147, 7), (47, 6), (47, 6)])
                    .map(|(run, (images, n))| (*run, images, n))
                    .collect();
                assert_eq!(got, expected, "{name}");
            }
            "inventory-per-enterprise-project" => {
                let got: Vec<(String, String, i64, i64, i64)> = rows
                    .iter()
                    .map(|r| {
                        (
                            text(r, "enterprise_project_id").unwrap(),
                            text(r, "enterprise_project_name").unwrap(),
                            int(r, "n_registries").unwrap(),
                            int(r, "n_failing").unwrap(),
                            int(r, "n_images").unwrap(),
                        )
                    })
                    .collect();
                let expected = vec![
                    ("0".to_owned(), "default".to_owned(), 3, 1, 15),
                    (history.ep1.clone(), "platform".to_owned(), 3, 1, 32),
                ];
                assert_eq!(got, expected, "{name}");
            }
            "sync-success-rate" => {
                assert_eq!(rows.len(), 1);
                let row = &rows[0];
                assert_eq!(int(row, "n_runs"), Some(5));
                assert_eq!(int(row, "n_succeeded"), Some(4));
                assert_eq!(row["succeeded_percent"].as_f64(), Some(80.0));
                let average = row["avg_duration_seconds"].as_f64().unwrap();
                let longest = row["max_duration_seconds"].as_f64().unwrap();
                assert!(average > 0.0 && average <= longest, "{row:?}");
                assert_eq!(int(row, "n_throttled"), Some(0));
            }
            "runs-not-succeeded" => {
                assert_eq!(ints("run_id"), [Some(run_ids[2])]);
                assert_eq!(column("status"), [Some("partial".into())]);
                assert_eq!(ints("n_scopes_failed"), [Some(1)]);
                assert!(text(&rows[0], "error").unwrap().contains("HSS.1001"));
            }
            "changed-since-a-time" => {
                // From the whole second after run 3: run 4's changes and nothing earlier (in
                // time order; a run retires after it writes, so sorted here by id).
                let mut got: Vec<(String, i64)> = rows
                    .iter()
                    .map(|r| (text(r, "registry_id").unwrap(), int(r, "version").unwrap()))
                    .collect();
                got.sort();
                assert_eq!(
                    got,
                    [("reg-d".to_owned(), 3), ("reg-f".to_owned(), 2)],
                    "{name}"
                );
            }
            other => panic!("no check for the documented query {other}"),
        }
    }
}

/// Literal forms of one instant a user may type.
fn literal_forms(time: DateTime<Utc>) -> Vec<String> {
    let plus_two = time.with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap());
    vec![
        time.to_rfc3339_opts(SecondsFormat::Secs, true),
        time.to_rfc3339_opts(SecondsFormat::Millis, true),
        time.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
        plus_two.to_rfc3339_opts(SecondsFormat::Secs, false),
    ]
}

async fn check_point_in_time(history: &mut History, backend: Backend) {
    let query = documented_queries(backend)["estate-as-of"].clone();
    assert!(query.contains(DOC_TIME));
    for (index, run) in history.runs.iter().enumerate() {
        let expected: BTreeMap<String, (i64, Value)> = run.current.clone();
        if run.status == RunStatus::Succeeded {
            // A run that completed saw the whole estate.
            let contents: BTreeMap<String, Value> = expected
                .iter()
                .map(|(id, (_, raw))| (id.clone(), raw.clone()))
                .collect();
            assert_eq!(contents, run.sim, "run {} saw the estate", run.run_id);
        }
        for literal in literal_forms(run.boundary) {
            let rows = history.sql.rows(&query.replace(DOC_TIME, &literal)).await;
            let got: BTreeMap<String, (i64, Value)> = rows
                .iter()
                .map(|r| {
                    (
                        text(r, "id").unwrap(),
                        (int(r, "version").unwrap(), json_column(r, "raw")),
                    )
                })
                .collect();
            assert_eq!(
                got, expected,
                "the estate as of {literal}, after run {} (index {index})",
                run.run_id
            );
        }
    }
    // Before the first run, nothing.
    let before = history.runs[0].boundary - chrono::Duration::seconds(30);
    let rows = history
        .sql
        .rows(&query.replace(DOC_TIME, &before.to_rfc3339_opts(SecondsFormat::Secs, true)))
        .await;
    assert!(rows.is_empty(), "{rows:?}");
}

/// A reader role's name, unique in the cluster, for one test.
fn reader_role() -> String {
    format!(
        "hss_reader_{}",
        rand::Rng::gen_range(&mut rand::thread_rng(), 0..u64::MAX)
    )
}

async fn check_reader_role_and_grafana_panels(history: &mut History) {
    // Arrange: the role, created with the documented SQL.
    let role = reader_role();
    let setup =
        documented_queries(Backend::Postgres)["grant-reader"].replace("grafana_reader", &role);
    history.sql.execute(&setup).await;
    let mut url = url::Url::parse(&history.app.db.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some("change-me")).unwrap();
    let mut reader = Sql::open(url.as_str()).await;

    // Assert: it reads the views and the function.
    for view in [
        "registries_current",
        "registry_changes",
        "registry_inventory_summary",
        "sync_health",
    ] {
        let rows = reader
            .rows(&format!("SELECT count(*) AS n FROM {view}"))
            .await;
        assert!(int(&rows[0], "n").unwrap() > 0, "{view}");
    }
    let estate = reader
        .rows("SELECT count(*) AS n FROM registries_as_of(now())")
        .await;
    assert_eq!(int(&estate[0], "n"), Some(6));

    // And nothing else: no table, no write. A view that cannot be written is refused as such
    // before its privileges are looked at (55000).
    let denied = ["42501"];
    let denied_or_not_updatable = ["42501", "55000"];
    for (sql, codes) in [
        ("SELECT * FROM registries", &denied[..]),
        ("SELECT * FROM registry_history", &denied),
        ("SELECT * FROM sync_run_scopes", &denied),
        ("SELECT * FROM sync_runs", &denied),
        ("SELECT * FROM projects", &denied),
        ("UPDATE registries SET registry_name = 'x'", &denied),
        ("DELETE FROM sync_runs", &denied),
        ("CREATE TABLE reader_was_here (id int)", &denied),
        (
            "UPDATE registries_current SET registry_name = 'x'",
            &denied_or_not_updatable,
        ),
        ("DELETE FROM sync_health", &denied_or_not_updatable),
    ] {
        let error = reader.try_rows(sql).await.expect_err(sql);
        let code = error
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned())
            .unwrap_or_default();
        assert!(codes.contains(&code.as_str()), "{sql}: {error} ({code})");
    }

    // Every Grafana panel's query, macros expanded, returns rows for the reader.
    let panels = grafana_panel_queries();
    assert!(panels.len() >= 12, "{} panels", panels.len());
    let to = Utc::now() + chrono::Duration::minutes(5);
    let from = history.runs[0].boundary - chrono::Duration::hours(1);
    for (dashboard, title, sql) in &panels {
        let expanded = expand_grafana_macros(sql, from, to, 60_000);
        assert!(
            !expanded.contains('$'),
            "{dashboard} / {title}: a macro the test does not expand: {expanded}"
        );
        let rows = reader
            .try_rows(&format!("SELECT count(*) AS n FROM ({expanded}) AS panel"))
            .await
            .unwrap_or_else(|e| panic!("{dashboard} / {title}: {e}\n{expanded}"));
        assert!(
            int(&rows[0], "n").unwrap() > 0,
            "{dashboard} / {title} returned no rows:\n{expanded}"
        );
    }

    // Leave no role behind in the cluster.
    if let Sql::Postgres(conn) = reader {
        let _ = conn.close().await;
    }
    history
        .sql
        .execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
        .await;
}

/// (dashboard title, panel title, SQL) of every query of every dashboard file.
fn grafana_panel_queries() -> Vec<(String, String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let mut queries = Vec::new();
    for file in files {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let title = dashboard["title"].as_str().unwrap().to_owned();
        let panels = dashboard["panels"].as_array().unwrap();
        for panel in panels {
            if panel["type"] == "row" {
                continue;
            }
            let panel_title = panel["title"].as_str().unwrap().to_owned();
            assert_eq!(
                panel["datasource"]["uid"], "hss-sync",
                "{title} / {panel_title}: the provisioned datasource"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{title} / {panel_title}");
            for target in targets {
                let sql = target["rawSql"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{title} / {panel_title}: no rawSql"));
                queries.push((title.clone(), panel_title.clone(), sql.to_owned()));
            }
        }
    }
    queries
}

/// Grafana's PostgreSQL macros, expanded as Grafana expands them.
fn expand_grafana_macros(
    sql: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    interval_ms: i64,
) -> String {
    let quoted = |t: DateTime<Utc>| format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Secs, true));
    let mut sql = sql
        .replace("$__timeFrom()", &quoted(from))
        .replace("$__timeTo()", &quoted(to))
        .replace("$__interval_ms", &interval_ms.to_string())
        .replace("$__interval", &format!("{}s", interval_ms / 1000));
    while let Some(start) = sql.find("$__") {
        let open = start + sql[start..].find('(').expect("a macro with arguments");
        let name = sql[start + 3..open].to_owned();
        let mut depth = 0;
        let mut close = open;
        for (i, c) in sql[open..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args: Vec<String> = sql[open + 1..close]
            .split(',')
            .map(|a| a.trim().to_owned())
            .collect();
        let seconds = |arg: &str| -> i64 {
            let arg = arg.trim_matches('\'');
            let (number, unit) = arg.split_at(arg.len() - 1);
            let n: i64 = number.parse().unwrap_or_else(|_| panic!("interval {arg}"));
            n * match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86400,
                other => panic!("interval unit {other}"),
            }
        };
        let replacement = match name.as_str() {
            "timeFilter" => format!("{} BETWEEN {} AND {}", args[0], quoted(from), quoted(to)),
            "timeGroup" => format!(
                "floor(extract(epoch from {})/{s})*{s}",
                args[0],
                s = seconds(&args[1])
            ),
            "timeGroupAlias" => format!(
                "floor(extract(epoch from {})/{s})*{s} AS \"time\"",
                args[0],
                s = seconds(&args[1])
            ),
            other => panic!("the macro $__{other} is not expanded by this test"),
        };
        sql.replace_range(start..=close, &replacement);
    }
    sql
}

#[test]
fn the_readme_shows_documented_queries_as_documented() {
    // Every named block of the README is one of docs/reporting.md, word for word.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let documented: Vec<(Vec<Backend>, String, String)> = sql_blocks(&reporting_doc());
    let shown = sql_blocks(&readme);
    assert!(!shown.is_empty(), "the README shows reporting queries");
    for block in shown {
        assert!(
            documented.contains(&block),
            "README block {} is not in docs/reporting.md as it is",
            block.1
        );
    }
}

#[test]
fn grafana_macros_expand_as_grafana_expands_them() {
    let from = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let to = from + chrono::Duration::hours(1);
    assert_eq!(
        expand_grafana_macros(
            "SELECT $__timeGroupAlias(started_at, '5m'), 1 FROM t WHERE $__timeFilter(started_at) AND x < $__timeTo() AND $__interval_ms > 0",
            from,
            to,
            30_000
        ),
        "SELECT floor(extract(epoch from started_at)/300)*300 AS \"time\", 1 FROM t WHERE started_at BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-01T01:00:00Z' AND x < '2026-11-01T01:00:00Z' AND 30000 > 0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_projects_are_recorded_without_a_name_and_discovery_names_them_later() {
    // Arrange: a sync of explicit project ids, without discovery.
    let app = TestApp::spawn(Backend::Sqlite, estate(2, 1, 2)).await;
    let first = app.sim.project_ids()[0].clone();
    let endpoint = app.endpoint();
    let keys = [("CLOUD_SDK_AK", ACCESS_KEY), ("CLOUD_SDK_SK", SECRET_KEY)];
    let config = SyncConfig::build(
        Overrides {
            region: Some("cn-north-4".to_owned()),
            project_ids: vec![first.clone()],
            enterprise_project_ids: vec!["0".to_owned()],
            endpoint: Some(endpoint),
            max_requests_per_minute: Some(0),
            ..Overrides::default()
        },
        RawConfig::default(),
        |name| {
            keys.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        },
    )
    .unwrap();
    let mut sql = Sql::open(&app.db.url).await;

    // Act
    sync::run_configured(
        &config,
        &app.store,
        Trigger::Cli,
        None,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // Assert: the id and the region, no name.
    let projects = sql
        .rows("SELECT id, name, region, status FROM projects")
        .await;
    assert_eq!(projects.len(), 1, "{projects:?}");
    assert_eq!(text(&projects[0], "id"), Some(first.clone()));
    assert_eq!(text(&projects[0], "name"), None);
    assert_eq!(text(&projects[0], "region").as_deref(), Some("cn-north-4"));
    assert_eq!(text(&projects[0], "status"), None);
    let eps = sql.rows("SELECT id, name FROM enterprise_projects").await;
    assert_eq!(eps.len(), 1);
    assert_eq!(text(&eps[0], "name"), None);
    let names = sql
        .rows("SELECT DISTINCT project_name, enterprise_project_name FROM registries_current")
        .await;
    assert_eq!(names.len(), 1);
    assert_eq!(text(&names[0], "project_name"), None);

    // Act: a run with discovery names them; a later run without keeps the names.
    sync::run_configured(
        &discovery_config(&app),
        &app.store,
        Trigger::Cli,
        None,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    sync::run_configured(
        &config,
        &app.store,
        Trigger::Cli,
        None,
        Arc::new(NoProgress),
        CancellationToken::new(),
    )
    .await
    .unwrap();

    // Assert
    let projects = sql.rows("SELECT id, name FROM projects ORDER BY id").await;
    assert_eq!(projects.len(), 2, "{projects:?}");
    for row in &projects {
        let id = text(row, "id").unwrap();
        assert_eq!(text(row, "name"), app.sim.project_name(&id));
    }
    let names = sql
        .rows(&format!(
            "SELECT DISTINCT project_name, enterprise_project_name FROM registries_current \
             WHERE enterprise_project_id = '0' AND project_id = '{first}'"
        ))
        .await;
    assert_eq!(
        text(&names[0], "project_name"),
        app.sim.project_name(&first)
    );
    assert_eq!(
        text(&names[0], "enterprise_project_name").as_deref(),
        Some("default")
    );
}

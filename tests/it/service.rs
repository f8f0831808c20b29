//! `hss-sync run`: replicas on one database, SIGTERM mid-sync, recovery of stale runs, and
//! the metrics endpoint, against the real binary.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hss_sync::sim::Fault;
use hss_sync::store::Store;

use crate::helpers::{estate, Backend, TestApp, ACCESS_KEY, SECRET_KEY};

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real `hss-sync run` on `app`'s simulator and database, with `extra` flags.
pub(crate) fn spawn_daemon(app: &TestApp, extra: &[&str]) -> Child {
    spawn_daemon_with_secret(app, SECRET_KEY, extra)
}

fn spawn_daemon_with_secret(app: &TestApp, secret_key: &str, extra: &[&str]) -> Child {
    let projects = app.sim.project_ids().join(",");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-sync"));
    command
        .args([
            "run",
            "--region",
            "cn-north-4",
            "--endpoint",
            &app.endpoint(),
            "--project-id",
            &projects,
        ])
        .args([
            "--database-url",
            &app.db.url,
            "--max-requests-per-minute",
            "0",
        ])
        .args(extra)
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", secret_key)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command.spawn().expect("start hss-sync run")
}

fn terminate(child: &mut Child) -> i32 {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hss-sync run did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `check` until it holds, for at most `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_run_one_sync_per_tick_and_never_overlap() {
    // Syncs that take a few hundred milliseconds, a tick every second.
    two_replicas_share_the_ticks(
        Backend::Postgres,
        Some((Duration::from_millis(120), Duration::from_millis(180))),
    )
    .await;
}

async fn two_replicas_whose_syncs_take_milliseconds_still_run_each_tick_once(backend: Backend) {
    // A sync far shorter than the gap between the replicas' firings: each replica's
    // scheduler fires at its own fraction of the second, yet both name the same tick.
    two_replicas_share_the_ticks(backend, None).await;
}
crate::on_both_backends!(two_replicas_whose_syncs_take_milliseconds_still_run_each_tick_once);

async fn two_replicas_share_the_ticks(backend: Backend, latency: Option<(Duration, Duration)>) {
    // Arrange
    let app = TestApp::spawn(backend, estate(2, 0, 30)).await;
    if let Some((min, max)) = latency {
        app.sim.add_fault(Fault::Latency { min, max });
    }
    let schedule = [
        "--schedule",
        "* * * * * *",
        "--shutdown-deadline-seconds",
        "5",
    ];
    let (port_a, port_b) = (free_port().to_string(), free_port().to_string());
    let mut a = spawn_daemon(
        &app,
        &[&schedule[..], &["--listen", &format!("127.0.0.1:{port_a}")]].concat(),
    );
    let mut b = spawn_daemon(
        &app,
        &[&schedule[..], &["--listen", &format!("127.0.0.1:{port_b}")]].concat(),
    );

    // Act: let them share about eight ticks.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(terminate(&mut a), 0);
    assert_eq!(terminate(&mut b), 0);

    // Assert
    let runs = app.store.recent_runs(1000).await.unwrap();
    assert!(runs.len() >= 4, "runs happened: {}", runs.len());
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
        .iter()
        .map(|r| (r.started_at, r.finished_at.expect("every run finished")))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "runs overlap: {pair:?}");
    }
    let mut ticks: Vec<DateTime<Utc>> = runs
        .iter()
        .map(|r| r.scheduled_at.expect("a scheduled run"))
        .collect();
    ticks.sort();
    let n = ticks.len();
    ticks.dedup();
    assert_eq!(ticks.len(), n, "at most one run per tick: {runs:?}");
    assert!(runs.iter().all(|r| r.trigger == "schedule"));
    assert!(runs.iter().all(|r| r.status == "succeeded"), "{runs:?}");
}

async fn sigterm_mid_sync_leaves_an_interrupted_run_and_whole_scopes(backend: Backend) {
    // Arrange: three projects walked one after the other, each ten slow pages.
    let app = TestApp::spawn(backend, estate(3, 0, 100)).await;
    app.sim.add_fault(Fault::Latency {
        min: Duration::from_millis(80),
        max: Duration::from_millis(120),
    });
    let port = free_port().to_string();
    let mut child = spawn_daemon(
        &app,
        &[
            "--schedule",
            "0 0 0 1 1 *",
            "--run-at-start",
            "--concurrency",
            "1",
            "--page-limit",
            "10",
            "--shutdown-deadline-seconds",
            "0",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    // Every scope is walked before any is applied: wait until the first scope's ten pages
    // are in and the second's walk has begun.
    wait_until(
        Duration::from_secs(30),
        "the first scope to be walked",
        || async { app.sim.request_count() >= 12 },
    )
    .await;

    // Act
    let code = terminate(&mut child);

    // Assert: exit 0, the run interrupted, every scope whole or untouched.
    assert_eq!(code, 0);
    let run = app.store.recent_runs(1).await.unwrap().remove(0);
    assert_eq!(run.status, "interrupted");
    assert!(run.finished_at.is_some());
    let scopes = app.store.run_scopes(run.id).await.unwrap();
    assert!(
        scopes
            .iter()
            .all(|s| s.status == "succeeded" || s.status == "interrupted"),
        "{scopes:?}"
    );
    let rows = app.registries().await;
    for scope in &scopes {
        let n = rows
            .iter()
            .filter(|r| r.project_id == scope.scope.project_id)
            .count();
        match scope.status.as_str() {
            "succeeded" => assert_eq!(n, 100, "an applied scope is whole"),
            _ => assert_eq!(n, 0, "an interrupted scope wrote nothing"),
        }
    }
    assert_eq!(rows.len() as i64, run.totals.counts.n_inserted);
}
crate::on_both_backends!(sigterm_mid_sync_leaves_an_interrupted_run_and_whole_scopes);

async fn a_run_left_running_by_a_dead_process_is_marked_interrupted_at_start(backend: Backend) {
    // Arrange: a run row as a killed process leaves it.
    let app = TestApp::spawn(backend, estate(1, 0, 5)).await;
    let stale = app
        .store
        .begin_run(hss_sync::sync::Trigger::Cli, 1, Utc::now(), None)
        .await
        .unwrap();
    let port = free_port().to_string();

    // Act: a service starts on the database.
    let mut child = spawn_daemon(
        &app,
        &[
            "--schedule",
            "0 0 0 1 1 *",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let store: &Store = &app.store;
    wait_until(
        Duration::from_secs(20),
        "the stale run to be recovered",
        || async {
            store
                .recent_runs(10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.id == stale && r.status != "running")
        },
    )
    .await;
    assert_eq!(terminate(&mut child), 0);

    // Assert
    let run = app
        .store
        .recent_runs(10)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == stale)
        .unwrap();
    assert_eq!(run.status, "interrupted");
    let error = run.totals.error.unwrap();
    assert!(
        error.contains("found still running at") && error.contains("stopped without finishing"),
        "{error}"
    );
    assert!(run.finished_at.is_some());
}
crate::on_both_backends!(a_run_left_running_by_a_dead_process_is_marked_interrupted_at_start);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_valid_prometheus_text_with_every_named_series() {
    let app = TestApp::spawn(Backend::Sqlite, estate(2, 1, 10)).await;
    let port = free_port();
    let mut child = spawn_daemon(
        &app,
        &[
            "--schedule",
            "0 0 0 1 1 *",
            "--run-at-start",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "the first run to finish", || async {
        matches!(app.store.recent_runs(1).await.unwrap().first(), Some(run) if run.status == "succeeded")
    })
    .await;

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(ready.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    assert_eq!(terminate(&mut child), 0);

    // Every line is a comment, blank, or `name{labels} value`.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || value == "+Inf",
            "bad value in {line}"
        );
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name in {line}"
        );
        assert_eq!(
            series.contains('{'),
            series.ends_with('}'),
            "bad labels in {line}"
        );
    }
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        scrape.samples.iter().find_map(|s| {
            let matches =
                s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
            matches.then(|| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
        })
    };
    assert_eq!(
        value("hss_sync_runs_total", &[("status", "succeeded")]),
        Some(1.0)
    );
    assert_eq!(
        value("hss_sync_runs_total", &[("status", "failed")]),
        Some(0.0)
    );
    assert!(
        value("hss_sync_run_duration_seconds", &[]).is_some(),
        "run duration histogram:\n{text}"
    );
    assert!(
        text.contains("hss_sync_run_duration_seconds_bucket{le=\"1\"}"),
        "{text}"
    );
    assert_eq!(value("hss_sync_scope_failures_total", &[]), Some(0.0));
    assert_eq!(
        value(
            "hss_sync_http_requests_total",
            &[("api", "ListRegistry"), ("status", "200")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value("hss_sync_http_retries_total", &[("api", "ListRegistry")]),
        Some(0.0)
    );
    assert_eq!(
        value("hss_sync_http_throttled_total", &[("api", "ListRegistry")]),
        Some(0.0)
    );
    assert_eq!(
        value("hss_sync_rows_total", &[("change_kind", "created")]),
        Some(40.0),
        "2 projects x 2 enterprise projects x 10"
    );
    let registries: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "hss_sync_registries")
        .map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum();
    assert_eq!(registries, 40.0);
    let since = value("hss_sync_seconds_since_last_success", &[]).unwrap();
    assert!((0.0..60.0).contains(&since), "{since}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_costs_one_request_and_readyz_and_metrics_say_why() {
    // Arrange: a service whose secret key is wrong, syncing 6 scopes at start.
    let app = TestApp::spawn(Backend::Sqlite, estate(6, 0, 3)).await;
    let port = free_port();
    let mut child = spawn_daemon_with_secret(
        &app,
        "not-the-secret-key",
        &[
            "--schedule",
            "0 0 0 1 1 *",
            "--run-at-start",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    wait_until(Duration::from_secs(20), "the first run to finish", || async {
        matches!(app.store.recent_runs(1).await.unwrap().first(), Some(run) if run.status == "failed")
    })
    .await;

    // Act
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    let ready_status = ready.status();
    let ready_text = ready.text().await.unwrap();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The service sends nothing more before the next tick.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n_requests = app.sim.request_count();
    assert_eq!(terminate(&mut child), 0);

    // Assert
    assert_eq!(n_requests, 1, "one refused request, not one per scope");
    assert_eq!(ready_status, 503, "{ready_text}");
    assert!(
        ready_text.contains("access key was refused"),
        "{ready_text}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hss_sync_credentials_refused") && l.ends_with(" 1")),
        "{metrics}"
    );
    assert!(!ready_text.contains("not-the-secret-key") && !metrics.contains("not-the-secret-key"));
}

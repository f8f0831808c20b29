//! The benchmark (`examples/bench.rs`) runs end to end at a small size: it starts the simulator in
//! a process of its own, runs the real binary's three syncs and prints a table with a number in
//! every column. So does the SQLite floor (`examples/sqlite_floor.rs`), and what it writes is
//! what a sync would have written. No speed is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{Backend, TestDb};

/// Example `name`'s binary, next to the test's `hss-sync` (`target/<profile>/examples/<name>`);
/// `cargo test` builds examples, but `cargo test --test it` does not, so it is built when missing.
///
/// The nested `cargo build` runs without the package variables cargo sets for a test
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_DIR`, ...): build scripts such as ring's depend on them with
/// `rerun-if-env-changed`, and with the test's values they would rebuild half the dependency tree,
/// twice.
fn example_binary(name: &str) -> PathBuf {
    let hss_sync = Path::new(env!("CARGO_BIN_EXE_hss-sync"));
    let profile_dir = hss_sync.parent().expect("hss-sync has a directory");
    let example = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !example.is_file() {
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix))
            {
                build.env_remove(key.as_ref());
            }
        }
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "cargo build --example {name} failed");
    }
    assert!(
        example.is_file(),
        "no example binary at {}",
        example.display()
    );
    example
}

/// Runs the benchmark with `args` against the test's `hss-sync`, checks that it succeeded, and
/// returns its standard output.
fn benchmark_output(args: &[&str]) -> String {
    let output = Command::new(example_binary("bench"))
        .args(args)
        .arg("--hss-sync")
        .arg(env!("CARGO_BIN_EXE_hss-sync"))
        .output()
        .expect("the benchmark starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the benchmark failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the benchmark at 200 registries with `extra` arguments and returns the cells of its
/// table's rows for `backend`, after checking what every row holds: three syncs, thirteen
/// columns, numbers where numbers belong, and no bound without latency or quota.
fn small_benchmark(backend: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec![
        "--registries",
        "200",
        "--latency-ms",
        "0",
        "--format",
        "markdown",
    ];
    args.extend_from_slice(extra);
    let stdout = benchmark_output(&args);
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .filter(|line| line.starts_with(&format!("| {backend} |")))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3, "three syncs, one row each:\n{stdout}");
    let syncs: Vec<&str> = rows.iter().map(|row| row[2].as_str()).collect();
    assert_eq!(syncs, ["first", "unchanged", "10% changed"], "{stdout}");
    for row in &rows {
        assert_eq!(row.len(), 13, "thirteen columns: {row:?}");
        assert_eq!(row[1], "200 in 20 scopes", "{row:?}");
        // wall, bound, CPU, RSS, requests, throttled, flight bound are numbers; wall/bound
        // and wall/flight bound are "—" without latency or quota.
        for (column, cell) in [3, 4, 6, 7, 8, 9, 10].map(|i| (i, &row[i])) {
            let value: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("column {column} of {row:?} is not a number"));
            assert!(value >= 0.0, "{row:?}");
        }
        assert_eq!(row[5], "—", "no bound without latency or quota: {row:?}");
        assert_eq!(row[11], "—", "no bound without latency or quota: {row:?}");
        let wall: f64 = row[3].parse().unwrap();
        let rss: f64 = row[7].parse().unwrap();
        let requests: u64 = row[8].parse().unwrap();
        assert!(wall > 0.0 && rss > 0.0, "{row:?}");
        // 20 scopes of 10 registries: at least one page each.
        assert!(requests >= 20, "{row:?}");
    }
    rows
}

/// Runs the benchmark with `args` and `--format json`, and returns its table, parsed, and its
/// standard output for messages.
fn json_benchmark(args: &[&str]) -> (serde_json::Value, String) {
    let mut args = args.to_vec();
    args.extend_from_slice(&["--format", "json"]);
    let stdout = benchmark_output(&args);
    let table = serde_json::from_str(&stdout).expect("a JSON table");
    (table, stdout)
}

#[test]
fn the_benchmark_runs_at_a_small_size_and_prints_three_rows_of_numbers() {
    let rows = small_benchmark("SQLite", &[]);

    for row in &rows {
        assert_eq!(row[12], "—", "SQLite has no server: {row:?}");
    }
}

/// `--repeat 3` runs the set three times and gives, for each sync, the median and range of every
/// figure over the runs: the median of the rows it printed, not a figure of its own.
#[test]
fn the_benchmark_repeated_gives_each_figures_median_and_range_over_its_runs() {
    let (table, stdout) = json_benchmark(&["--registries", "200", "--repeat", "3"]);
    assert_eq!(table["repeat"], 3, "{stdout}");
    let rows = table["rows"].as_array().expect("rows");
    let runs: Vec<u64> = rows
        .iter()
        .map(|row| row["run"].as_u64().unwrap())
        .collect();
    assert_eq!(
        runs,
        [1, 1, 1, 2, 2, 2, 3, 3, 3],
        "every sync of a run, then the next run"
    );
    let medians = table["medians"].as_array().expect("medians");
    let syncs: Vec<&str> = medians
        .iter()
        .map(|m| m["sync"].as_str().unwrap())
        .collect();
    assert_eq!(syncs, ["first", "unchanged", "10% changed"], "{stdout}");
    for entry in medians {
        assert_eq!(entry["runs"], 3, "{entry}");
        assert!(
            entry["wall_over_bound"].is_null(),
            "no bound without latency: {entry}"
        );
        for figure in ["wall_seconds", "cpu_seconds", "peak_rss_mib"] {
            let mut values: Vec<f64> = rows
                .iter()
                .filter(|row| row["sync"] == entry["sync"])
                .map(|row| row[figure].as_f64().unwrap())
                .collect();
            values.sort_by(f64::total_cmp);
            let spread = &entry[figure];
            assert_eq!(spread["min"].as_f64(), Some(values[0]), "{figure}: {entry}");
            assert_eq!(
                spread["median"].as_f64(),
                Some(values[1]),
                "{figure}: {entry}"
            );
            assert_eq!(spread["max"].as_f64(), Some(values[2]), "{figure}: {entry}");
        }
    }
}

/// On PostgreSQL the table also says what the server's processes used of the CPU, which the
/// sync's own CPU leaves out: the server inserts and indexes every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_on_postgresql_reports_the_servers_cpu_when_the_server_is_local() {
    let db = TestDb::new(Backend::Postgres).await;
    let host = url::Url::parse(&db.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned));
    let local = matches!(host.as_deref(), Some("127.0.0.1" | "localhost"));
    let url = db.url.clone();

    let rows = tokio::task::spawn_blocking(move || {
        small_benchmark("PostgreSQL", &["--no-sqlite", "--postgres-url", &url])
    })
    .await
    .unwrap();

    if !local {
        for row in &rows {
            assert_eq!(row[12], "—", "a remote server is not measured: {row:?}");
        }
        return;
    }
    let server: Vec<f64> = rows
        .iter()
        .map(|row| {
            row[12]
                .parse()
                .unwrap_or_else(|_| panic!("no server CPU for a local server: {row:?}"))
        })
        .collect();
    assert!(server.iter().all(|&s| s >= 0.0), "{rows:?}");
    assert!(
        server[0] > 0.0,
        "creating the schema and 200 registries takes the server some CPU: {:?}",
        rows[0]
    );
}

/// The most a sync of 100,000 registries may hold at its peak, in MiB. Holding the estate in
/// memory took about 350 MiB at that size (3.5 MiB per thousand registries, measured before
/// pages were streamed into the store); streaming holds a page and a map of hashes.
const PEAK_RSS_LIMIT_MIB: f64 = 96.0;

#[test]
fn a_sync_of_100000_registries_stays_under_96_mib_at_its_peak() {
    // The real binary, the simulator in a process of its own, SQLite; peak RSS of the sync
    // process alone from wait4(2), for a first, an unchanged and a 10 %-changed sync.
    let (table, stdout) = json_benchmark(&["--registries", "100000"]);
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{stdout}");
    for row in rows {
        assert_eq!(row["registries"], 100_000, "{row}");
        let summary = row["summary"].as_str().unwrap_or_default();
        assert!(summary.contains("succeeded"), "{row}");
        assert!(
            summary.contains("100000 registries fetched") || row["sync"] == "10% changed",
            "{row}"
        );
        let peak = row["peak_rss_mib"].as_f64().expect("peak_rss_mib");
        assert!(
            peak > 0.0 && peak <= PEAK_RSS_LIMIT_MIB,
            "the {} sync of 100,000 registries peaked at {peak:.1} MiB, above {PEAK_RSS_LIMIT_MIB} MiB: \
             is something holding the estate in memory?",
            row["sync"]
        );
    }
}

/// One number of a query on a SQLite file.
async fn sqlite_count(path: &Path, sql: &str) -> i64 {
    use sqlx::{Connection, Row};
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("the database opens");
    let n = sqlx::query(sql)
        .fetch_one(&mut connection)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .try_get(0)
        .expect("a number");
    connection.close().await.expect("the database closes");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_floor_writes_what_a_sync_would_and_prints_its_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    let floor = dir.path().join("floor.db");
    let demo = Command::new(env!("CARGO_BIN_EXE_hss-sync"))
        .args(["demo", "--registries-per-scope", "12", "--database-file"])
        .arg(&source)
        .output()
        .expect("the demo starts");
    assert!(demo.status.success(), "the demo failed: {demo:?}");
    let n_live = sqlite_count(
        &source,
        "SELECT COUNT(*) FROM registries WHERE deleted_at IS NULL",
    )
    .await;
    let n_scopes = sqlite_count(
        &source,
        "SELECT COUNT(*) FROM (SELECT DISTINCT project_id, enterprise_project_id, region \
         FROM registries WHERE deleted_at IS NULL)",
    )
    .await;
    assert!(n_live > 50 && n_scopes > 1, "{n_live} in {n_scopes} scopes");

    let output = Command::new(example_binary("sqlite_floor"))
        .arg("--from")
        .arg(&source)
        .arg("--to")
        .arg(&floor)
        .args(["--runs", "1", "--scopes-per-transaction", "3", "--staged"])
        .output()
        .expect("the floor starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the floor failed: {output:?}");
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|line| line.starts_with("| 1 |"))
        .map(|line| line.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 1, "one run, one row:\n{stdout}");
    let row = &rows[0];
    assert_eq!(row.len(), 6, "{row:?}");
    assert_eq!(
        row[1],
        n_live.to_string(),
        "every live registry copied: {row:?}"
    );
    assert_eq!(row[2], n_scopes.to_string(), "{row:?}");
    for cell in [row[3], row[4]] {
        // "CPU (wall)"
        let (cpu, wall) = cell
            .trim_end_matches(')')
            .split_once(" (")
            .unwrap_or_else(|| panic!("not 'CPU (wall)': {cell:?}"));
        for value in [cpu, wall] {
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{cell:?}"));
            assert!(value >= 0.0, "{cell:?}");
        }
    }
    let versions: i64 = row[5].parse().expect("a count of versions");

    // What it wrote is what a sync would have: one first version a registry, the change's
    // versions as counted, one open version a registry and none behind its row's, and no
    // staged row left over.
    let count = |sql: &'static str| sqlite_count(&floor, sql);
    assert_eq!(
        count("SELECT COUNT(*) FROM registry_history WHERE sync_run_id = 1").await,
        n_live
    );
    assert!(versions > 0, "a 10 % change writes versions: {row:?}");
    assert_eq!(
        count("SELECT COUNT(*) FROM registry_history WHERE sync_run_id = 2").await,
        versions
    );
    let n_new = count(
        "SELECT COUNT(*) FROM registry_history WHERE sync_run_id = 2 AND change_kind = 'created'",
    )
    .await;
    let n_retired = count("SELECT COUNT(*) FROM registries WHERE deleted_at IS NOT NULL").await;
    assert!(
        n_new > 0 && n_retired > 0,
        "{n_new} new, {n_retired} retired"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM registries").await,
        n_live + n_new
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM registry_history WHERE valid_to IS NULL").await,
        n_live + n_new
    );
    assert_eq!(
        count(
            "SELECT COUNT(*) FROM registries r WHERE r.version <> \
             (SELECT MAX(h.version) FROM registry_history h WHERE h.registry_id = r.id)"
        )
        .await,
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM sync_staging").await, 0);
}

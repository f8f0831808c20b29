//! Benchmark: the real `hss-sync sync` process against the simulated HSS API in a process of its own.
//!
//! For every estate size (`--registries`, comma-separated) and every backend (SQLite in a
//! temporary directory; PostgreSQL too with `--postgres-url`), it starts `hss-sync simulate` on a
//! free loopback port, installs the latency and quota faults through `POST /sim/faults`, then runs
//! `hss-sync sync` three times as a child process: first (into an empty database), unchanged, and
//! after `POST /sim/mutate` changed 10 % of the estate (6 % updated, 2 % deleted, 2 % added). Each
//! sync is measured alone: wall time, user+system CPU and peak RSS from `wait4(2)`, requests and
//! throttled from its summary line; on a PostgreSQL server of this machine, also the CPU the
//! server's processes used meanwhile (`/proc`). It prints one table (markdown or JSON) on standard output;
//! progress goes to standard error. With `--repeat N` it runs the whole set N times and adds each
//! figure's median and range over the runs. See docs/benchmarks.md for the columns and the bounds.
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example bench -- --registries 5000,50000
//! cargo run --release --example bench -- --registries 50000 --latency-ms 100 --concurrency 8
//! cargo run --release --example bench -- --registries 5000 \
//!     --postgres-url postgres://postgres@127.0.0.1:5432/hss_bench    # that database is emptied
//! ```
//!
//! The `hss-sync` binary is `--hss-sync PATH`, by default the one next to this example's
//! directory (`target/release/hss-sync` for `target/release/examples/bench`): build it with the
//! same profile first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::{json, Value};

/// Access key and secret the simulator checks every signature against.
const ACCESS_KEY: &str = "BENCHAK";
const SECRET_KEY: &str = "bench-secret-key";
/// Items per ListRegistry page (hss-sync's default `--page-limit`).
const PAGE_LIMIT: usize = 200;

#[derive(Parser, Debug)]
#[command(about = "Benchmark hss-sync sync (first, unchanged, 10 % changed) against the simulator")]
struct Args {
    /// Estate sizes in registries (comma-separated), each spread evenly over the scopes.
    #[arg(long, value_delimiter = ',', default_values_t = [5000usize])]
    registries: Vec<usize>,
    /// Projects in the simulated estate.
    #[arg(long, default_value_t = 5)]
    projects: usize,
    /// Enterprise projects besides the default "0"; each (project, enterprise project) is one
    /// scope. With 0, each project is one all_granted_eps scope.
    #[arg(long, default_value_t = 3)]
    enterprise_projects: usize,
    /// Latency of every simulated API request, in milliseconds (0 for none).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Simulated APIG quota: at most this many ListRegistry requests per --window-seconds
    /// (with Retry-After); hss-sync then paces at the same rate. None by default.
    #[arg(long)]
    quota: Option<u32>,
    /// Window of --quota, in seconds.
    #[arg(long, default_value_t = 60.0)]
    window_seconds: f64,
    /// Scopes walked at once (hss-sync's --concurrency).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Also run on this PostgreSQL database; everything in its public schema is dropped first.
    #[arg(long)]
    postgres_url: Option<String>,
    /// Skip SQLite (with --postgres-url: PostgreSQL only).
    #[arg(long)]
    no_sqlite: bool,
    /// The hss-sync binary [default: ../hss-sync from this example's directory].
    #[arg(long)]
    hss_sync: Option<PathBuf>,
    /// Seed of the simulated estate and of its mutation.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Output format of the table.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Runs of the whole set: every size on every backend, then all of it again, so that a
    /// machine that slows down or speeds up does so for every row alike. With more than one,
    /// a second table gives each figure's median and range over the runs.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Markdown,
    Json,
}

/// One measured sync: one row of the table.
#[derive(Debug, Serialize)]
struct Row {
    /// Which run of `--repeat` this row belongs to, from 1.
    run: usize,
    backend: String,
    registries: usize,
    scopes: usize,
    sync: &'static str,
    wall_seconds: f64,
    bound_seconds: f64,
    /// None when the bound is 0 (no latency, no quota).
    wall_over_bound: Option<f64>,
    /// The least wall time with at most `--concurrency` requests in flight, whatever scope
    /// they are for (see [`flight_bound_seconds`]).
    flight_bound_seconds: f64,
    wall_over_flight_bound: Option<f64>,
    cpu_seconds: f64,
    /// CPU seconds the PostgreSQL server's processes on this machine used while the sync ran
    /// (see [`ServerCpu`]); None for SQLite, or when the server is elsewhere.
    server_cpu_seconds: Option<f64>,
    peak_rss_mib: f64,
    requests: u64,
    throttled: u64,
    /// ListRegistry pages the simulator answered with 200 during this sync.
    pages: usize,
    summary: String,
}

/// The simulator child process, killed when dropped (on success, error or panic).
struct SimProcess {
    child: Child,
    base_url: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `wait4` reports of one finished child.
struct Usage {
    status: i32,
    wall: Duration,
    cpu_seconds: f64,
    peak_rss_kib: i64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hss_sync = match &args.hss_sync {
        Some(path) => path.clone(),
        None => default_binary()?,
    };
    if !hss_sync.is_file() {
        bail!(
            "no hss-sync binary at {}: build it first (cargo build --release), or pass --hss-sync PATH",
            hss_sync.display()
        );
    }
    if args.concurrency == 0 || args.projects == 0 {
        bail!("--concurrency and --projects must be at least 1");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    if args.quota == Some(0) || args.window_seconds <= 0.0 {
        bail!("--quota and --window-seconds must be positive");
    }
    let mut backends: Vec<(String, Option<String>)> = Vec::new();
    if !args.no_sqlite {
        backends.push(("SQLite".to_owned(), None));
    }
    if let Some(url) = &args.postgres_url {
        backends.push(("PostgreSQL".to_owned(), Some(url.clone())));
    }
    if backends.is_empty() {
        bail!("nothing to run: --no-sqlite without --postgres-url");
    }
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    for run in 1..=args.repeat {
        for &registries in &args.registries {
            for (backend, url) in &backends {
                let measured = bench_one(
                    &args,
                    &hss_sync,
                    &http,
                    run,
                    registries,
                    backend,
                    url.as_deref(),
                )
                .await
                .with_context(|| format!("{backend} at {registries} registries, run {run}"))?;
                rows.extend(measured);
            }
        }
    }
    let medians = over_runs(&rows);
    match args.format {
        Format::Markdown => print_markdown(&args, &rows, &medians),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "latency_ms": args.latency_ms,
                "quota": args.quota,
                "window_seconds": args.window_seconds,
                "concurrency": args.concurrency,
                "repeat": args.repeat,
                "rows": rows,
                "medians": medians,
            }))?
        ),
    }
    Ok(())
}

/// `../hss-sync` from the directory of this example's executable.
fn default_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{} has no grandparent directory", exe.display()))?;
    Ok(dir.join(format!("hss-sync{}", std::env::consts::EXE_SUFFIX)))
}

/// The three syncs of one estate size on one backend, against a fresh simulator.
async fn bench_one(
    args: &Args,
    hss_sync: &Path,
    http: &reqwest::Client,
    run: usize,
    registries: usize,
    backend: &str,
    postgres_url: Option<&str>,
) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let n_eps = args.enterprise_projects + 1;
    let n_scopes = args.projects
        * if args.enterprise_projects == 0 {
            1
        } else {
            n_eps
        };
    // The simulator puts registries_per_scope in every (project, enterprise project) pair.
    let per_scope = registries.div_ceil(args.projects * n_eps).max(1);
    let sim = start_simulator(args, hss_sync, per_scope, dir.path())?;
    let base = sim.base_url.clone();
    if args.latency_ms > 0 {
        add_fault(
            http,
            &base,
            json!({"kind": "latency", "min_ms": args.latency_ms, "max_ms": args.latency_ms}),
        )
        .await?;
    }
    if let Some(quota) = args.quota {
        add_fault(
            http,
            &base,
            json!({"kind": "quota", "max_requests": quota,
                   "window_seconds": args.window_seconds, "retry_after": true}),
        )
        .await?;
    }
    let estate: Value = http
        .get(format!("{base}/sim/estate"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let project_ids: Vec<String> = estate["projects"]
        .as_array()
        .ok_or_else(|| anyhow!("GET /sim/estate has no projects"))?
        .iter()
        .filter_map(|p| p["project_id"].as_str().map(str::to_owned))
        .collect();
    let enterprise_project_ids: Vec<String> = if args.enterprise_projects == 0 {
        Vec::new()
    } else {
        estate["enterprise_project_ids"]
            .as_array()
            .ok_or_else(|| anyhow!("GET /sim/estate has no enterprise_project_ids"))?
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect()
    };
    let total = estate["registry_count"].as_u64().unwrap_or(0) as usize;

    let database_url = match postgres_url {
        Some(url) => {
            empty_postgres(url).await?;
            url.to_owned()
        }
        None => format!("sqlite://{}", dir.path().join("bench.db").display()),
    };
    let max_per_minute = match args.quota {
        Some(quota) => ((quota as f64 * 60.0 / args.window_seconds).floor() as u64).max(1),
        None => 0,
    };
    let mut sync_args: Vec<String> = vec![
        "sync".into(),
        "--region".into(),
        "cn-north-4".into(),
        "--endpoint".into(),
        base.clone(),
        "--database-url".into(),
        database_url,
        "--max-requests-per-minute".into(),
        max_per_minute.to_string(),
        "--concurrency".into(),
        args.concurrency.to_string(),
    ];
    for id in &project_ids {
        sync_args.extend(["--project-id".into(), id.clone()]);
    }
    for id in &enterprise_project_ids {
        sync_args.extend(["--enterprise-project-id".into(), id.clone()]);
    }

    let mut rows = Vec::new();
    for label in ["first", "unchanged", "10% changed"] {
        if label == "10% changed" {
            let n = total / 10;
            let mutation = json!({
                "seed": args.seed + 1,
                "n_update": n * 6 / 10,
                "n_delete": n * 2 / 10,
                "n_add": n - n * 6 / 10 - n * 2 / 10,
            });
            http.post(format!("{base}/sim/mutate"))
                .json(&mutation)
                .send()
                .await?
                .error_for_status()
                .context("POST /sim/mutate")?;
        }
        if args.quota.is_some() {
            // Each sync starts on a quota window of its own, as its bound assumes: the last
            // requests of the sync before, sent at the quota's rate, would otherwise still be
            // in the window, and a new process cannot know of them.
            tokio::time::sleep(std::time::Duration::from_secs_f64(args.window_seconds)).await;
        }
        let before = last_request_id(http, &base).await?;
        let server = match postgres_url {
            Some(url) => ServerCpu::read_if_local(url).await,
            None => None,
        };
        eprintln!("bench: {backend}, {total} registries, {label} sync ...");
        let stdout_path = dir.path().join("sync.out");
        let stderr_path = dir.path().join("sync.err");
        let usage = {
            let hss_sync = hss_sync.to_owned();
            let sync_args = sync_args.clone();
            let (out, err) = (stdout_path.clone(), stderr_path.clone());
            tokio::task::spawn_blocking(move || run_measured(&hss_sync, &sync_args, &out, &err))
                .await??
        };
        let server_cpu_seconds = match server {
            Some(before) => before.used_since().await,
            None => None,
        };
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if usage.status != 0 {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            bail!(
                "the {label} sync exited with {}:\n{}\n{}",
                usage.status,
                stdout.trim(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let summary = stdout
            .lines()
            .find(|line| line.starts_with("run ") && line.contains(" requests ("))
            .ok_or_else(|| anyhow!("the {label} sync printed no summary line: {stdout:?}"))?
            .to_owned();
        let (requests, throttled) = parse_requests(&summary)
            .ok_or_else(|| anyhow!("cannot read requests from {summary:?}"))?;
        let pages_per_scope = pages_since(http, &base, before.as_deref()).await?;
        let pages: usize = pages_per_scope.iter().sum();
        let bound = bound_seconds(args, &pages_per_scope);
        let flight_bound = flight_bound_seconds(args, &pages_per_scope);
        let wall = usage.wall.as_secs_f64();
        rows.push(Row {
            run,
            backend: backend.to_owned(),
            registries: total,
            scopes: n_scopes,
            sync: label,
            wall_seconds: wall,
            bound_seconds: bound,
            wall_over_bound: (bound > 0.0).then(|| wall / bound),
            flight_bound_seconds: flight_bound,
            wall_over_flight_bound: (flight_bound > 0.0).then(|| wall / flight_bound),
            cpu_seconds: usage.cpu_seconds,
            server_cpu_seconds,
            peak_rss_mib: usage.peak_rss_kib as f64 / 1024.0,
            requests,
            throttled,
            pages,
            summary,
        });
    }
    drop(sim);
    Ok(rows)
}

/// Start `hss-sync simulate` on a free loopback port and read its address from its first line.
fn start_simulator(
    args: &Args,
    hss_sync: &Path,
    per_scope: usize,
    dir: &Path,
) -> anyhow::Result<SimProcess> {
    let log = File::create(dir.join("simulator.err"))?;
    let mut child = clean_command(hss_sync)
        .args([
            "simulate",
            "--listen",
            "127.0.0.1:0",
            "--region",
            "cn-north-4",
        ])
        .args(["--seed", &args.seed.to_string()])
        .args(["--projects", &args.projects.to_string()])
        .args([
            "--enterprise-projects",
            &args.enterprise_projects.to_string(),
        ])
        .args(["--registries-per-scope", &per_scope.to_string()])
        .args(["--access-key", ACCESS_KEY])
        .env("HSS_SIM_SECRET_KEY", SECRET_KEY)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {} simulate", hss_sync.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut sim = SimProcess {
        child,
        base_url: String::new(),
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .transpose()?
        .ok_or_else(|| anyhow!("the simulator exited before listening; see its log"))?;
    let url = first
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .ok_or_else(|| anyhow!("unexpected first line from the simulator: {first:?}"))?;
    sim.base_url = url.trim_end_matches('/').to_owned();
    // Keep draining its standard output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Ok(sim)
}

/// A command with none of hss-sync's configuration variables inherited, so the benchmark
/// measures exactly the flags it passes.
fn clean_command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key_str = key.to_string_lossy();
        if key_str.starts_with("HSS_SYNC_")
            || key_str.starts_with("HSS_SIM_")
            || key_str.starts_with("CLOUD_SDK_")
            || key_str.starts_with("HUAWEICLOUD_SDK_")
            || key_str == "DATABASE_URL"
        {
            command.env_remove(&key);
        }
    }
    command
}

async fn add_fault(http: &reqwest::Client, base: &str, fault: Value) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/sim/faults"))
        .json(&fault)
        .send()
        .await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("the simulator refused the fault {fault}: {status} {body}");
    }
    Ok(())
}

/// Drop and recreate the public schema of the benchmark's PostgreSQL database.
async fn empty_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    sqlx::query("DROP SCHEMA IF EXISTS public CASCADE")
        .execute(&mut connection)
        .await?;
    sqlx::query("CREATE SCHEMA public")
        .execute(&mut connection)
        .await?;
    connection.close().await?;
    Ok(())
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Run `hss-sync` with these arguments and the benchmark's credentials, and reap it with
/// `wait4` to get its own resource usage (not that of any other child).
fn run_measured(
    hss_sync: &Path,
    args: &[String],
    stdout: &Path,
    stderr: &Path,
) -> anyhow::Result<Usage> {
    let started = Instant::now();
    let child = clean_command(hss_sync)
        .args(args)
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(File::create(stdout)?)
        .stderr(File::create(stderr)?)
        .spawn()
        .with_context(|| format!("cannot start {} sync", hss_sync.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped (the Child handle is never waited on);
        // the pointers are to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("wait4 on the sync process");
        }
    }
    let wall = started.elapsed();
    drop(child);
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        // Killed by a signal: report it as 128 + the signal, as shells do.
        128 + libc::WTERMSIG(status)
    };
    Ok(Usage {
        status,
        wall,
        cpu_seconds: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_kib: usage.ru_maxrss,
    })
}

/// What the PostgreSQL server's processes on this machine (every process named `postgres`)
/// had used of the CPU at one moment, from `/proc/<pid>/stat`: their own user and system
/// time, and the postmaster's time of its children that have ended (the sync's connections
/// are served by processes that end with them). The sync's CPU is the client's half of the
/// work; on PostgreSQL, inserting and indexing rows is the server's, and no less of it.
struct ServerCpu {
    pids: BTreeSet<u32>,
    ticks: u64,
}

impl ServerCpu {
    /// The server's CPU now, when `url` names this machine and a `postgres` process is found.
    async fn read_if_local(url: &str) -> Option<ServerCpu> {
        let parsed = url::Url::parse(url).ok()?;
        let local = match parsed.host_str() {
            None | Some("") => true,
            Some(host) => ["localhost", "127.0.0.1", "[::1]", "::1"].contains(&host),
        };
        if local {
            Self::read_settled().await
        } else {
            None
        }
    }

    /// One pass over `/proc`.
    fn read() -> Option<ServerCpu> {
        let mut pids = BTreeSet::new();
        let mut ticks = 0;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so the
            // fields are counted from the last ')'; utime, stime, cutime and cstime are the
            // 14th to 17th fields, the 12th to 15th after it.
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            if head.split_once('(').map(|(_, comm)| comm) != Some("postgres") {
                continue;
            }
            pids.insert(pid);
            ticks += rest
                .split_whitespace()
                .skip(11)
                .take(4)
                .filter_map(|field| field.parse::<u64>().ok())
                .sum::<u64>();
        }
        (!pids.is_empty()).then_some(ServerCpu { pids, ticks })
    }

    /// A pass over `/proc` that no process ended during: one that ends between the reading of
    /// the postmaster and its own is counted in neither, so passes are repeated until two in
    /// a row find the same processes (at most ten).
    async fn read_settled() -> Option<ServerCpu> {
        let mut last = Self::read()?;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let now = Self::read()?;
            if now.pids == last.pids {
                return Some(now);
            }
            last = now;
        }
        Some(last)
    }

    /// CPU seconds the server used since `self` was read, once the processes that served the
    /// sync have ended and been counted in the postmaster's (waiting at most two seconds for
    /// every process that `self` did not see to end).
    async fn used_since(self) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut now = Self::read_settled().await?;
        while !now.pids.is_subset(&self.pids) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            now = Self::read_settled().await?;
        }
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(now.ticks.saturating_sub(self.ticks) as f64 / per_second)
    }
}

/// `N requests (M throttled)` from a sync's summary line.
fn parse_requests(summary: &str) -> Option<(u64, u64)> {
    let words: Vec<&str> = summary.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "requests")?;
    let requests = words.get(at.checked_sub(1)?)?.parse().ok()?;
    let throttled = words.get(at + 1)?.trim_start_matches('(').parse().ok()?;
    Some((requests, throttled))
}

/// The request id of the newest ListRegistry request in the simulator's request log.
async fn last_request_id(http: &reqwest::Client, base: &str) -> anyhow::Result<Option<String>> {
    let log = request_log(http, base).await?;
    Ok(log
        .iter()
        .rev()
        .filter(|r| r["api"].as_str() == Some("ListRegistry"))
        .find_map(|r| r["request_id"].as_str().filter(|id| !id.is_empty()))
        .map(str::to_owned))
}

async fn request_log(http: &reqwest::Client, base: &str) -> anyhow::Result<Vec<Value>> {
    Ok(http
        .get(format!("{base}/sim/requests"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// ListRegistry pages answered 200 after the request `after`, per scope (project, enterprise
/// project), largest first.
async fn pages_since(
    http: &reqwest::Client,
    base: &str,
    after: Option<&str>,
) -> anyhow::Result<Vec<usize>> {
    let log = request_log(http, base).await?;
    let start = match after {
        Some(id) => match log
            .iter()
            .position(|r| r["request_id"].as_str() == Some(id))
        {
            Some(i) => i + 1,
            None => {
                eprintln!(
                    "bench: warning: the simulator's request log (10,000 entries) no longer \
                     holds this sync's first requests; pages and bound are undercounted"
                );
                0
            }
        },
        None => 0,
    };
    let mut per_scope: BTreeMap<(String, String), usize> = BTreeMap::new();
    for record in &log[start..] {
        if record["api"].as_str() == Some("ListRegistry") && record["status"].as_u64() == Some(200)
        {
            let key = (
                record["project_id"].as_str().unwrap_or_default().to_owned(),
                record["enterprise_project_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            *per_scope.entry(key).or_default() += 1;
        }
    }
    let mut pages: Vec<usize> = per_scope.into_values().collect();
    pages.sort_unstable_by(|a, b| b.cmp(a));
    Ok(pages)
}

/// The least wall time the API allows for these pages: the larger of
/// - the latency bound: scopes, largest first, in waves of `--concurrency`; pages within a
///   scope are sequential, so each wave takes its largest scope's pages x the latency;
/// - the quota bound: pages / quota x window.
fn bound_seconds(args: &Args, pages_per_scope: &[usize]) -> f64 {
    let latency = args.latency_ms as f64 / 1000.0;
    let latency_bound: f64 = pages_per_scope
        .chunks(args.concurrency)
        .map(|wave| wave[0] as f64 * latency)
        .sum();
    let pages: usize = pages_per_scope.iter().sum();
    latency_bound.max(quota_bound_seconds(args, pages))
}

/// The quota bound: pages / quota x window; 0 without a quota.
fn quota_bound_seconds(args: &Args, pages: usize) -> f64 {
    match args.quota {
        Some(quota) => pages as f64 / quota as f64 * args.window_seconds,
        None => 0.0,
    }
}

/// The least wall time the API allows for these pages when any `--concurrency` requests
/// may be in flight at once, whatever scope they are for (as hss-sync sends them: a scope's
/// first page alone, then its next pages on any free slot): the larger of
/// - all pages in rounds of `--concurrency`, x the latency;
/// - the largest scope: its first page, then the rest in rounds of `--concurrency`;
/// - the quota bound ([`quota_bound_seconds`]).
///
/// It is the tighter of the two bounds: [`bound_seconds`] assumes a scope's pages go one
/// after another.
fn flight_bound_seconds(args: &Args, pages_per_scope: &[usize]) -> f64 {
    let latency = args.latency_ms as f64 / 1000.0;
    let pages: usize = pages_per_scope.iter().sum();
    let rounds = pages.div_ceil(args.concurrency);
    let largest = pages_per_scope
        .first()
        .map_or(0, |&p| 1 + p.saturating_sub(1).div_ceil(args.concurrency));
    (rounds.max(largest) as f64 * latency).max(quota_bound_seconds(args, pages))
}

/// The median, least and largest of one figure over the runs of `--repeat`.
#[derive(Debug, Serialize)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    /// None for no values; the median of an even number of values is the mean of the middle two.
    fn of(mut values: Vec<f64>) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let mid = values.len() / 2;
        let median = if values.len() % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        Some(Spread {
            median,
            min: values[0],
            max: values[values.len() - 1],
        })
    }

    /// "1.75 (1.71-1.85)", or the median alone when the runs agree at the precision shown.
    fn cell(&self, decimals: usize) -> String {
        let (median, min, max) = (
            format!("{:.decimals$}", self.median),
            format!("{:.decimals$}", self.min),
            format!("{:.decimals$}", self.max),
        );
        if min == max {
            median
        } else {
            format!("{median} ({min}-{max})")
        }
    }
}

/// One sync of one backend and size, over every run of `--repeat`.
#[derive(Debug, Serialize)]
struct OverRuns {
    backend: String,
    registries: usize,
    scopes: usize,
    sync: &'static str,
    runs: usize,
    wall_seconds: Spread,
    /// None when the bound is 0 (no latency, no quota).
    wall_over_bound: Option<Spread>,
    cpu_seconds: Spread,
    peak_rss_mib: Spread,
    /// None for SQLite, or when the server is elsewhere.
    server_cpu_seconds: Option<Spread>,
    /// Throttled requests over all the runs.
    throttled: u64,
}

/// The rows grouped by backend, size and sync, in the order they first ran.
fn over_runs(rows: &[Row]) -> Vec<OverRuns> {
    let mut keys: Vec<(&str, usize, &'static str)> = Vec::new();
    for row in rows {
        let key = (row.backend.as_str(), row.registries, row.sync);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.into_iter()
        .filter_map(|(backend, registries, sync)| {
            let group: Vec<&Row> = rows
                .iter()
                .filter(|r| r.backend == backend && r.registries == registries && r.sync == sync)
                .collect();
            let figure = |f: fn(&Row) -> Option<f64>| {
                Spread::of(group.iter().filter_map(|r| f(r)).collect())
            };
            Some(OverRuns {
                backend: backend.to_owned(),
                registries,
                scopes: group[0].scopes,
                sync,
                runs: group.len(),
                wall_seconds: figure(|r| Some(r.wall_seconds))?,
                wall_over_bound: figure(|r| r.wall_over_bound),
                cpu_seconds: figure(|r| Some(r.cpu_seconds))?,
                peak_rss_mib: figure(|r| Some(r.peak_rss_mib))?,
                server_cpu_seconds: figure(|r| r.server_cpu_seconds),
                throttled: group.iter().map(|r| r.throttled).sum(),
            })
        })
        .collect()
}

fn print_markdown(args: &Args, rows: &[Row], medians: &[OverRuns]) {
    let quota = match args.quota {
        Some(quota) => format!("quota {quota} per {} s", args.window_seconds),
        None => "no quota".to_owned(),
    };
    println!(
        "latency {} ms, {quota}, --concurrency {}, {} registries a page",
        args.latency_ms, args.concurrency, PAGE_LIMIT
    );
    println!();
    println!("| backend | estate | sync | wall s | bound s | wall/bound | CPU s | peak RSS MiB | requests | throttled | flight bound s | wall/flight bound | server CPU s |");
    println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        println!(
            "| {} | {} in {} scopes | {} | {:.2} | {:.2} | {} | {:.2} | {:.0} | {} | {} | {:.2} | {} | {} |",
            row.backend,
            thousands(row.registries),
            row.scopes,
            row.sync,
            row.wall_seconds,
            row.bound_seconds,
            row.wall_over_bound
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
            row.cpu_seconds,
            row.peak_rss_mib,
            row.requests,
            row.throttled,
            row.flight_bound_seconds,
            row.wall_over_flight_bound
                .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}")),
            row.server_cpu_seconds
                .map_or_else(|| "—".to_owned(), |s| format!("{s:.2}")),
        );
    }
    if args.repeat > 1 {
        println!();
        println!("median (least-largest) of {} runs", args.repeat);
        println!();
        println!("| backend | estate | sync | runs | wall s | wall/bound | CPU s | peak RSS MiB | throttled | server CPU s |");
        println!("|---|---|---|--:|--:|--:|--:|--:|--:|--:|");
        let or_dash = |spread: &Option<Spread>| {
            spread
                .as_ref()
                .map_or_else(|| "—".to_owned(), |s| s.cell(2))
        };
        for entry in medians {
            println!(
                "| {} | {} in {} scopes | {} | {} | {} | {} | {} | {} | {} | {} |",
                entry.backend,
                thousands(entry.registries),
                entry.scopes,
                entry.sync,
                entry.runs,
                entry.wall_seconds.cell(2),
                or_dash(&entry.wall_over_bound),
                entry.cpu_seconds.cell(2),
                entry.peak_rss_mib.cell(0),
                entry.throttled,
                or_dash(&entry.server_cpu_seconds),
            );
        }
    }
}

/// 50000 -> "50,000".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

//! Benchmark: how close a sync comes to the quota bound when the API enforces a quota.
//!
//! The simulated HSS API allows `--quota` ListRegistry requests per `--window-seconds`
//! (sliding window, per access key, like APIG's per-user limit; HSS documents 5 a minute,
//! scaled down here so the run takes seconds). The estate needs a known number of requests.
//! The sync runs twice: with the client's limiter set to the quota, and without a limiter
//! (retries and Retry-After only). For each it reports requests sent against requests
//! needed, throttled requests, and wall time against the bound `needed / quota x window`.
//!
//! cargo run --release --example quota_bench -- --quota 10 --window-seconds 2 --projects 4 --registries-per-project 500

use std::time::{Duration, Instant};

use clap::Parser;
use hss_sync::api::{Auth, ClientSettings, HssClient, HssClients, RetryPolicy};
use hss_sync::signer::Credentials;
use hss_sync::sim::{Fault, SimConfig, SimCredentials, Simulator};
use hss_sync::store::Store;
use hss_sync::sync::{self, RunReport, Scope, SyncOptions, Trigger};

#[derive(Parser, Debug)]
struct Args {
    /// Requests the simulated API allows per window.
    #[arg(long, default_value_t = 10)]
    quota: u32,
    /// The window, in seconds.
    #[arg(long, default_value_t = 2.0)]
    window_seconds: f64,
    /// Projects (one all_granted_eps scope each).
    #[arg(long, default_value_t = 4)]
    projects: usize,
    /// Registries per project (pages of 200).
    #[arg(long, default_value_t = 500)]
    registries_per_project: usize,
    /// Scopes walked at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let window = Duration::from_secs_f64(args.window_seconds);
    let pages_per_project = args.registries_per_project.div_ceil(200).max(1);
    let needed = args.projects * pages_per_project;
    let bound = window.mul_f64(needed as f64 / f64::from(args.quota));
    println!(
        "quota {} requests / {:.1}s; {} projects x {} registries = {} requests needed; bound {:.2}s",
        args.quota, args.window_seconds, args.projects, args.registries_per_project, needed, bound.as_secs_f64()
    );
    println!(
        "{:<12} {:>6} {:>7} {:>10} {:>10} {:>8} {:>7}",
        "mode", "sent", "needed", "throttled", "wall (s)", "/bound", "status"
    );
    let per_minute = (f64::from(args.quota) * 60.0 / args.window_seconds).floor() as u32;
    for (mode, limit) in [("limiter", per_minute), ("no-limiter", 0)] {
        let report = run(&args, window, limit).await?;
        let throttled_share = 100.0 * report.n_throttled as f64 / report.n_requests.max(1) as f64;
        println!(
            "{:<12} {:>6} {:>7} {:>5} ({:>4.1}%) {:>10.2} {:>8.3} {:>7}",
            mode,
            report.n_requests,
            needed,
            report.n_throttled,
            throttled_share,
            report.duration.as_secs_f64(),
            report.duration.as_secs_f64() / bound.as_secs_f64(),
            report.status.as_str()
        );
    }
    Ok(())
}

async fn run(
    args: &Args,
    window: Duration,
    max_requests_per_minute: u32,
) -> anyhow::Result<RunReport> {
    let simulator = Simulator::new(SimConfig {
        seed: 3,
        n_projects: args.projects,
        n_enterprise_projects: 0,
        registries_per_scope: args.registries_per_project,
        credentials: Some(SimCredentials {
            access_key: "BENCHAK".to_owned(),
            secret_key: "bench-secret".to_owned(),
        }),
        ..SimConfig::default()
    });
    simulator.add_fault(Fault::Quota {
        max_requests: args.quota,
        window,
        retry_after: true,
    });
    let running = simulator.spawn_on_localhost().await?;
    let dir = tempfile_dir()?;
    let store = Store::connect(&format!("sqlite://{}/bench.db", dir.display())).await?;
    store.migrate().await?;
    let settings = ClientSettings {
        max_requests_per_minute,
        retry: RetryPolicy {
            max_retries: 20,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        },
        ..ClientSettings::default()
    };
    let client = HssClient::new(
        url::Url::parse(&running.base_url())?,
        Auth::AkSk(Credentials::new("BENCHAK", "bench-secret")?),
        &settings,
    )?;
    let scopes: Vec<Scope> = simulator
        .project_ids()
        .into_iter()
        .map(|project_id| Scope::all_granted(simulator.region(), project_id))
        .collect();
    let options = SyncOptions {
        concurrency: args.concurrency,
        trigger: Trigger::Bench,
        ..SyncOptions::default()
    };
    let started = Instant::now();
    let mut report = sync::run_once(&HssClients::single(client), &store, &scopes, &options).await?;
    report.duration = started.elapsed();
    store.close().await;
    running.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(report)
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "hss-sync-bench-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

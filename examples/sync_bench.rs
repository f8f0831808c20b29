//! Benchmark: sync throughput into SQLite and PostgreSQL.
//!
//! A simulated estate of `--projects` x `--registries-per-project` registries is synced three
//! times into a fresh database: first (every row created), then unchanged, then after a
//! mutation touching `--change-percent` of the estate. Reports wall time and registries per
//! second for each. No rate limit: this measures hss-sync, not the API quota.
//!
//! cargo run --release --example sync_bench -- --registries-per-project 5000
//! cargo run --release --example sync_bench -- --database-url postgres://postgres@127.0.0.1/hss_bench

use std::time::Instant;

use clap::Parser;
use hss_sync::api::{Auth, ClientSettings, HssClient, HssClients};
use hss_sync::signer::Credentials;
use hss_sync::sim::{Mutation, SimConfig, SimCredentials, Simulator};
use hss_sync::store::Store;
use hss_sync::sync::{self, Scope, SyncOptions, Trigger};

#[derive(Parser, Debug)]
struct Args {
    /// Projects (one all_granted_eps scope each).
    #[arg(long, default_value_t = 4)]
    projects: usize,
    /// Registries per project.
    #[arg(long, default_value_t = 5000)]
    registries_per_project: usize,
    /// Share of the estate changed before the third sync (updates, deletions and additions).
    #[arg(long, default_value_t = 10)]
    change_percent: usize,
    /// Database; default a fresh SQLite file. A PostgreSQL database is emptied first.
    #[arg(long)]
    database_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let simulator = Simulator::new(SimConfig {
        seed: 5,
        n_projects: args.projects,
        n_enterprise_projects: 0,
        registries_per_scope: args.registries_per_project,
        credentials: Some(SimCredentials {
            access_key: "BENCHAK".to_owned(),
            secret_key: "bench-secret".to_owned(),
        }),
        ..SimConfig::default()
    });
    let running = simulator.spawn_on_localhost().await?;
    let dir = std::env::temp_dir().join(format!("hss-sync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    if url.starts_with("postgres") {
        // The benchmark's own database is emptied first, on a connection of its own: the
        // store hands out no pool.
        use sqlx::Connection;
        let mut connection = sqlx::PgConnection::connect(&url).await?;
        sqlx::query("DROP SCHEMA public CASCADE")
            .execute(&mut connection)
            .await?;
        sqlx::query("CREATE SCHEMA public")
            .execute(&mut connection)
            .await?;
    }
    let store = Store::connect(&url).await?;
    store.migrate().await?;
    let client = HssClients::single(HssClient::new(
        url::Url::parse(&running.base_url())?,
        Auth::AkSk(Credentials::new("BENCHAK", "bench-secret")?),
        &ClientSettings::default(),
    )?);
    let scopes: Vec<Scope> = simulator
        .project_ids()
        .into_iter()
        .map(|project_id| Scope::all_granted(simulator.region(), project_id))
        .collect();
    let total = args.projects * args.registries_per_project;
    println!(
        "{} registries ({} projects), database {:?}",
        total,
        args.projects,
        store.kind()
    );
    println!(
        "{:<10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>14}",
        "sync", "fetched", "created", "updated", "deleted", "wall (s)", "registries/s"
    );
    let options = SyncOptions {
        trigger: Trigger::Bench,
        ..SyncOptions::default()
    };
    for label in ["first", "unchanged", "changed"] {
        if label == "changed" {
            let n = total * args.change_percent / 100;
            simulator.mutate(&Mutation {
                seed: 9,
                n_update: n * 6 / 10,
                n_delete: n * 2 / 10,
                n_add: n * 2 / 10,
            });
        }
        let started = Instant::now();
        let report = sync::run_once(&client, &store, &scopes, &options).await?;
        let wall = started.elapsed().as_secs_f64();
        let c = report.counts;
        println!(
            "{:<10} {:>9} {:>8} {:>8} {:>8} {:>9.2} {:>14.0}",
            label,
            c.n_fetched,
            c.n_inserted,
            c.n_updated,
            c.n_deleted,
            wall,
            c.n_fetched as f64 / wall
        );
    }
    store.close().await;
    running.shutdown().await;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

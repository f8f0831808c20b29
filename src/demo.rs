//! `hss-sync demo`: the whole product on one machine with no cloud account.
//!
//! Starts the simulated HSS API on a loopback port with signature checks on, syncs its
//! estate into a fresh SQLite file, changes part of the estate (updates, deletions,
//! additions), syncs again, and prints what happened and how to query the file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::distributions::{Alphanumeric, DistString};
use tokio_util::sync::CancellationToken;

use crate::api::{Auth, ClientSettings, HssClient, HssClients};
use crate::progress::TerminalProgress;
use crate::report::print_runs;
use crate::signer::Credentials;
use crate::sim::{Mutation, SimConfig, SimCredentials, Simulator};
use crate::store::{HistoryFilter, Store};
use crate::sync::{self, RunReport, RunStatus, Scope, SyncOptions, Trigger};

/// The simulated account of the demo: enough projects and enterprise projects that every
/// project needs several pages.
const DEMO_PROJECTS: usize = 3;
const DEMO_EXTRA_ENTERPRISE_PROJECTS: usize = 2;
const DEMO_REGION: &str = "cn-north-4";

/// Flags of `demo`.
#[derive(Debug, clap::Args, Clone)]
pub struct DemoArgs {
    /// The SQLite file the demo writes (replaced on every demo run).
    #[arg(long, default_value = "hss-sync-demo.db", value_name = "FILE")]
    pub database_file: PathBuf,
    /// Registries in each scope of the simulated estate (3 projects x 3 enterprise projects).
    #[arg(long, default_value_t = 150)]
    pub registries_per_scope: usize,
}

/// Why the demo could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The previous demo database could not be removed.
    #[error("cannot replace the demo database {path}")]
    Replace {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The simulated API could not listen on a loopback port, or stopped with an error.
    #[error("the simulated API failed")]
    Simulator(#[source] std::io::Error),
    /// The report could not be written to standard output.
    #[error("cannot write the demo's report")]
    Output(#[from] std::io::Error),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A sync failed.
    #[error(transparent)]
    Sync(#[from] sync::SyncError),
    /// The client could not be set up.
    #[error(transparent)]
    Api(#[from] crate::api::ApiError),
    /// The demo's keys could not be used.
    #[error(transparent)]
    Signer(#[from] crate::signer::SignerError),
    /// Printing the runs failed.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
}

/// Runs the demo and returns the exit code of the second sync.
///
/// # Errors
///
/// When the database file cannot be replaced, the loopback port cannot be bound, or the
/// store fails.
pub async fn run(args: DemoArgs, out: &mut (dyn Write + Send)) -> Result<u8, DemoError> {
    remove_database_file(&args.database_file)?;
    let database_url = format!("sqlite://{}", args.database_file.display());
    // Fresh keys per demo, known only to this process: the simulator checks real signatures.
    let access_key = format!(
        "DEMO{}",
        Alphanumeric
            .sample_string(&mut rand::thread_rng(), 16)
            .to_uppercase()
    );
    let secret_key = Alphanumeric.sample_string(&mut rand::thread_rng(), 40);
    let simulator = Simulator::new(SimConfig {
        seed: 7,
        region: DEMO_REGION.to_owned(),
        n_projects: DEMO_PROJECTS,
        n_enterprise_projects: DEMO_EXTRA_ENTERPRISE_PROJECTS,
        registries_per_scope: args.registries_per_scope,
        credentials: Some(SimCredentials {
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
        }),
        ..SimConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(DemoError::Simulator)?;
    let address = listener.local_addr().map_err(DemoError::Simulator)?;
    let stop = CancellationToken::new();
    let server = {
        let simulator = simulator.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            simulator
                .serve(listener, async move { stop.cancelled().await })
                .await
        })
    };

    writeln!(out, "hss-sync demo")?;
    writeln!(
        out,
        "simulated HSS API on http://{address}: region {DEMO_REGION}, {DEMO_PROJECTS} projects x {} enterprise projects, {} registries, AK/SK signatures checked",
        DEMO_EXTRA_ENTERPRISE_PROJECTS + 1,
        simulator.registry_count()
    )?;
    writeln!(out, "database: {database_url}\n")?;

    let store = Store::open(&database_url).await?;
    let endpoint = url::Url::parse(&format!("http://{address}")).expect("a loopback URL parses");
    let client = HssClients::single(HssClient::new(
        endpoint,
        Auth::AkSk(Credentials::new(access_key, secret_key)?),
        &ClientSettings::default(),
    )?);
    let scopes: Vec<Scope> = simulator
        .project_ids()
        .into_iter()
        .map(|project_id| Scope::all_granted(DEMO_REGION, project_id))
        .collect();
    let options = SyncOptions {
        trigger: Trigger::Demo,
        progress: Arc::new(TerminalProgress::on_stderr()),
        ..SyncOptions::default()
    };

    writeln!(out, "1. first sync: every registry is new")?;
    let first = sync::run_once(&client, &store, &scopes, &options).await?;
    print_report(&first, out)?;

    let mutation = Mutation {
        seed: 2026,
        n_update: 40,
        n_delete: 15,
        n_add: 25,
    };
    let summary = simulator.mutate(&mutation);
    writeln!(
        out,
        "\n2. the estate changes: {} registries updated, {} deleted, {} added",
        summary.updated.len(),
        summary.deleted.len(),
        summary.added.len()
    )?;

    writeln!(
        out,
        "\n3. second sync: only the changes are written to history"
    )?;
    let options = SyncOptions {
        progress: Arc::new(TerminalProgress::on_stderr()),
        ..options
    };
    let second = sync::run_once(&client, &store, &scopes, &options).await?;
    print_report(&second, out)?;

    writeln!(out, "\n4. a few changes from the second run")?;
    print_changes(&store, second.run_id, out).await?;

    writeln!(out, "\n5. the audit trail")?;
    print_runs(&store, 5, out).await?;

    store.close().await;
    stop.cancel();
    server
        .await
        .map_err(|e| DemoError::Simulator(std::io::Error::other(e)))?
        .map_err(DemoError::Simulator)?;

    let file = args.database_file.display();
    writeln!(out, "\nquery it yourself:")?;
    writeln!(out, "  sqlite3 -header -column {file} \"SELECT registry_type, status, count(*) AS n FROM registries WHERE deleted_at IS NULL GROUP BY 1, 2 ORDER BY 3 DESC\"")?;
    writeln!(out, "  sqlite3 -header -column {file} \"SELECT registry_id, version, change_kind, changed_fields, valid_from, valid_to FROM registry_history WHERE change_kind <> 'created' LIMIT 10\"")?;
    writeln!(out, "  sqlite3 -header -column {file} \"SELECT id, status, started_at, finished_at, n_fetched, n_inserted, n_updated, n_deleted FROM sync_runs\"")?;
    Ok(
        if second.status == RunStatus::Succeeded && first.status == RunStatus::Succeeded {
            0
        } else {
            second.status.exit_code().max(first.status.exit_code())
        },
    )
}

fn print_report(report: &RunReport, out: &mut (dyn Write + Send)) -> Result<(), DemoError> {
    writeln!(out, "   {}", report.summary_line())?;
    for scope in &report.scopes {
        writeln!(
            out,
            "     {}: {} pages, total_num {}, {} fetched",
            scope.scope,
            scope.n_pages,
            scope.api_total.map_or("-".to_owned(), |t| t.to_string()),
            scope.counts.n_fetched
        )?;
    }
    Ok(())
}

async fn print_changes(
    store: &Store,
    run_id: i64,
    out: &mut (dyn Write + Send),
) -> Result<(), DemoError> {
    let history = store.history(HistoryFilter::Run(run_id)).await?;
    for kind in ["updated", "deleted", "created"] {
        for row in history.iter().filter(|h| h.change_kind == kind).take(3) {
            writeln!(
                out,
                "   {:<8} {} ({}) v{}{}",
                row.change_kind,
                row.registry_id,
                row.registry_name.as_deref().unwrap_or("?"),
                row.version,
                if row.changed_fields.is_empty() {
                    String::new()
                } else {
                    format!(": {}", row.changed_fields.join(", "))
                }
            )?;
        }
    }
    Ok(())
}

fn remove_database_file(path: &Path) -> Result<(), DemoError> {
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DemoError::Replace {
                    path: file,
                    source: e,
                })
            }
        }
    }
    Ok(())
}

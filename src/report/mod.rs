//! Reports for the terminal, read from the store: the run listing that `runs` and the demo
//! print, and the reports of `runs show`, `history`, `changes`, `status` and `prune`.
//!
//! Each report builds its rows once ([`output::Record`]) and prints them in the
//! [`Format`] asked for: a table for people, a JSON array of objects, or CSV with a header.

mod history;
pub mod output;
mod prune;
mod runs;
mod status;
pub mod time;

use std::io::Write;

pub use history::{print_changes, print_history};
pub use output::Format;
pub use prune::print_prune;
pub use runs::{print_run, print_runs_as};
pub use status::{print_status, StatusCheck};

use crate::store::{Store, StoreError};
use crate::sync::RunStatus;

/// Why a report could not be printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the report")]
    Output(#[from] std::io::Error),
    /// `runs show` was given an id no run has.
    #[error("no run with id {0} (`hss-sync runs` lists the recent ones)")]
    UnknownRun(i64),
    /// `history` was given neither a registry id nor a registry name the store holds.
    #[error("no registry with id or name {0:?}")]
    UnknownRegistry(String),
    /// `history` was given a name that several registries bear.
    #[error("{} registries are named {name:?}; give one of their ids: {}", .ids.len(), .ids.join(", "))]
    AmbiguousRegistry {
        /// The name.
        name: String,
        /// The ids of the registries that bear it.
        ids: Vec<String>,
    },
}

/// Prints the newest runs and the scopes of each.
///
/// # Errors
///
/// When the store fails or `out` cannot be written.
pub async fn print_runs(
    store: &Store,
    limit: i64,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let runs = store.recent_runs(limit).await?;
    if runs.is_empty() {
        writeln!(out, "no sync runs recorded yet")?;
    }
    for run in runs {
        let c = &run.totals.counts;
        writeln!(
            out,
            "  run {} [{}] {} started {} ({}): {} scopes, {} failed, {} pages, {} fetched, {} created, {} updated, {} unchanged, {} deleted, {} restored",
            run.id,
            run.trigger,
            run.status,
            run.started_at.format("%Y-%m-%d %H:%M:%S%.3fZ"),
            run.finished_at
                .map(|f| format!("{:.1}s", (f - run.started_at).num_milliseconds() as f64 / 1000.0))
                .unwrap_or_else(|| "not finished".to_owned()),
            run.totals.n_scopes,
            run.totals.n_scopes_failed,
            run.totals.n_pages,
            c.n_fetched,
            c.n_inserted,
            c.n_updated,
            c.n_unchanged,
            c.n_deleted,
            c.n_restored
        )?;
        if c.n_held > 0 {
            writeln!(
                out,
                "      {} deletions held by the mass-deletion guard",
                c.n_held
            )?;
        }
        if let Some(error) = run
            .totals
            .error
            .as_deref()
            .filter(|_| run.status == RunStatus::Failed)
        {
            writeln!(out, "      error: {error}")?;
        }
        for scope in store.run_scopes(run.id).await? {
            if let Some(error) = &scope.error {
                writeln!(out, "      scope {} {}: {error}", scope.scope, scope.status)?;
            }
        }
    }
    Ok(())
}

//! Reports for the terminal, read from the store: what the `runs` command and the demo print.

use std::io::Write;

use crate::store::{Store, StoreError};

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
}
use crate::sync::RunStatus;

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

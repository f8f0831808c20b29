//! What `prune` prints.

use std::io::Write;

use crate::report::time::iso;
use crate::report::ReportError;
use crate::store::reports::{PruneOutcome, PruneRequest};

/// Prints what `prune` removed, or with `--dry-run` would remove.
///
/// # Errors
///
/// When `out` cannot be written.
pub fn print_prune(
    request: &PruneRequest,
    outcome: &PruneOutcome,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let verb = if request.dry_run {
        "would remove"
    } else {
        "removed"
    };
    if let Some(before) = request.history_before {
        writeln!(
            out,
            "{verb} {} history versions of {} registries replaced before {} (current versions are kept)",
            outcome.n_history,
            outcome.n_history_registries,
            iso(before)
        )?;
    }
    if let Some(before) = request.runs_before {
        writeln!(
            out,
            "{verb} {} runs finished before {} and their {} scope rows{}",
            outcome.runs.len(),
            iso(before),
            outcome.n_scopes,
            if outcome.n_runs_kept > 0 {
                format!(
                    "; kept {} old runs that history or registries still refer to, or that are the newest of their status",
                    outcome.n_runs_kept
                )
            } else {
                String::new()
            }
        )?;
        for run in &outcome.runs {
            writeln!(
                out,
                "  run {} {} started {} finished {}",
                run.id,
                run.status,
                iso(run.started_at),
                iso(run.finished_at)
            )?;
        }
    }
    if request.dry_run {
        writeln!(out, "dry run: nothing was removed")?;
    }
    Ok(())
}

//! `runs` and `runs show ID`.

use std::io::Write;

use serde_json::{json, Value};

use crate::report::output::{self, record, Format, Record};
use crate::report::time::iso;
use crate::report::{print_runs, ReportError};
use crate::store::reports::ScopeReport;
use crate::store::{RunRecord, Store};

/// The columns of a run, in `runs` (JSON and CSV) and `runs show` (JSON).
pub const RUN_COLUMNS: &[&str] = &[
    "id",
    "trigger",
    "status",
    "started_at",
    "finished_at",
    "duration_seconds",
    "scheduled_at",
    "n_scopes",
    "n_scopes_failed",
    "n_pages",
    "n_requests",
    "n_throttled",
    "n_retries",
    "n_fetched",
    "n_created",
    "n_updated",
    "n_unchanged",
    "n_deleted",
    "n_restored",
    "n_held",
    "error",
];

/// The columns of a scope, in `runs show` (CSV, table, and each of `scopes` in JSON).
pub const SCOPE_COLUMNS: &[&str] = &[
    "run_id",
    "region",
    "project_id",
    "enterprise_project_id",
    "status",
    "started_at",
    "finished_at",
    "n_pages",
    "n_requests",
    "n_throttled",
    "n_retries",
    "api_total",
    "n_fetched",
    "n_created",
    "n_updated",
    "n_unchanged",
    "n_deleted",
    "n_restored",
    "n_held",
    "error",
    "error_code",
    "http_status",
    "request_id",
];

/// The columns of the scope table of `runs show`: the counts people look at first.
const SCOPE_TABLE_COLUMNS: &[&str] = &[
    "region",
    "project_id",
    "enterprise_project_id",
    "status",
    "n_pages",
    "n_requests",
    "n_throttled",
    "api_total",
    "n_fetched",
    "n_created",
    "n_updated",
    "n_deleted",
    "n_restored",
    "n_held",
];

/// Prints the newest `limit` runs: as `runs` always has for a table (each run on a line,
/// with its failed scopes), or one object or row per run.
///
/// # Errors
///
/// When the store fails or `out` cannot be written.
pub async fn print_runs_as(
    store: &Store,
    limit: i64,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    if format == Format::Table {
        return print_runs(store, limit, out).await;
    }
    let records: Vec<Record> = store
        .recent_runs(limit)
        .await?
        .iter()
        .map(run_record)
        .collect();
    match format {
        Format::Json => output::write_json(
            out,
            &records.into_iter().map(Value::Object).collect::<Vec<_>>(),
        )?,
        _ => output::write_csv(out, RUN_COLUMNS, &records)?,
    }
    Ok(())
}

/// Prints one run with its scopes, pages, API totals and errors. JSON: an array holding the
/// run's object with its `scopes`; CSV: one row per scope.
///
/// # Errors
///
/// [`ReportError::UnknownRun`] when no run has that id; otherwise when the store fails or
/// `out` cannot be written.
pub async fn print_run(
    store: &Store,
    run_id: i64,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let run = store
        .run(run_id)
        .await?
        .ok_or(ReportError::UnknownRun(run_id))?;
    let scopes = store.scope_reports(run_id).await?;
    let scope_records: Vec<Record> = scopes.iter().map(|s| scope_record(run_id, s)).collect();
    match format {
        Format::Json => {
            let mut object = run_record(&run);
            object.insert(
                "scopes".to_owned(),
                Value::Array(scope_records.into_iter().map(Value::Object).collect()),
            );
            output::write_json(out, &[Value::Object(object)])?;
        }
        Format::Csv => output::write_csv(out, SCOPE_COLUMNS, &scope_records)?,
        Format::Table => {
            let c = &run.totals.counts;
            writeln!(out, "run {} [{}] {}", run.id, run.trigger, run.status)?;
            writeln!(
                out,
                "  started   {}{}",
                iso(run.started_at),
                run.scheduled_at
                    .map(|t| format!(" (schedule tick {})", iso(t)))
                    .unwrap_or_default()
            )?;
            match run.finished_at {
                Some(finished) => writeln!(
                    out,
                    "  finished  {} ({:.1}s)",
                    iso(finished),
                    duration_seconds(&run).unwrap_or_default()
                )?,
                None => writeln!(out, "  finished  not yet (or its process died)")?,
            }
            writeln!(
                out,
                "  scopes    {} ({} failed)",
                run.totals.n_scopes, run.totals.n_scopes_failed
            )?;
            writeln!(
                out,
                "  api       {} pages, {} requests, {} throttled, {} retries, total_num over scopes {}",
                run.totals.n_pages,
                run.totals.n_requests,
                run.totals.n_throttled,
                run.totals.n_retries,
                scopes.iter().filter_map(|s| s.api_total).sum::<i64>()
            )?;
            writeln!(
                out,
                "  rows      {} fetched: {} created, {} updated, {} unchanged, {} deleted, {} restored, {} deletions held",
                c.n_fetched, c.n_inserted, c.n_updated, c.n_unchanged, c.n_deleted, c.n_restored, c.n_held
            )?;
            if let Some(error) = &run.totals.error {
                writeln!(out, "  error     {error}")?;
            }
            writeln!(out)?;
            output::write_table(out, SCOPE_TABLE_COLUMNS, &scope_records)?;
            let failed: Vec<&ScopeReport> = scopes.iter().filter(|s| s.error.is_some()).collect();
            if !failed.is_empty() {
                writeln!(out)?;
                for scope in failed {
                    writeln!(
                        out,
                        "scope {} {}: {}",
                        scope.scope,
                        scope.status,
                        scope.error.as_deref().unwrap_or_default()
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn duration_seconds(run: &RunRecord) -> Option<f64> {
    run.finished_at
        .map(|finished| (finished - run.started_at).num_milliseconds() as f64 / 1000.0)
}

fn run_record(run: &RunRecord) -> Record {
    let c = &run.totals.counts;
    record([
        ("id", json!(run.id)),
        ("trigger", json!(run.trigger.as_str())),
        ("status", json!(run.status.as_str())),
        ("started_at", json!(iso(run.started_at))),
        ("finished_at", json!(run.finished_at.map(iso))),
        ("duration_seconds", json!(duration_seconds(run))),
        ("scheduled_at", json!(run.scheduled_at.map(iso))),
        ("n_scopes", json!(run.totals.n_scopes)),
        ("n_scopes_failed", json!(run.totals.n_scopes_failed)),
        ("n_pages", json!(run.totals.n_pages)),
        ("n_requests", json!(run.totals.n_requests)),
        ("n_throttled", json!(run.totals.n_throttled)),
        ("n_retries", json!(run.totals.n_retries)),
        ("n_fetched", json!(c.n_fetched)),
        ("n_created", json!(c.n_inserted)),
        ("n_updated", json!(c.n_updated)),
        ("n_unchanged", json!(c.n_unchanged)),
        ("n_deleted", json!(c.n_deleted)),
        ("n_restored", json!(c.n_restored)),
        ("n_held", json!(c.n_held)),
        ("error", json!(run.totals.error)),
    ])
}

fn scope_record(run_id: i64, scope: &ScopeReport) -> Record {
    let c = &scope.counts;
    record([
        ("run_id", json!(run_id)),
        ("region", json!(scope.scope.region)),
        ("project_id", json!(scope.scope.project_id)),
        (
            "enterprise_project_id",
            json!(scope.scope.enterprise_project_id),
        ),
        ("status", json!(scope.status.as_str())),
        ("started_at", json!(iso(scope.started_at))),
        ("finished_at", json!(scope.finished_at.map(iso))),
        ("n_pages", json!(scope.n_pages)),
        ("n_requests", json!(scope.n_requests)),
        ("n_throttled", json!(scope.n_throttled)),
        ("n_retries", json!(scope.n_retries)),
        ("api_total", json!(scope.api_total)),
        ("n_fetched", json!(c.n_fetched)),
        ("n_created", json!(c.n_inserted)),
        ("n_updated", json!(c.n_updated)),
        ("n_unchanged", json!(c.n_unchanged)),
        ("n_deleted", json!(c.n_deleted)),
        ("n_restored", json!(c.n_restored)),
        ("n_held", json!(c.n_held)),
        ("error", json!(scope.error)),
        ("error_code", json!(scope.error_code)),
        ("http_status", json!(scope.http_status)),
        ("request_id", json!(scope.request_id)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_have_exactly_their_columns_in_order() {
        let run = RunRecord {
            id: 1,
            started_at: chrono::Utc::now(),
            finished_at: None,
            status: crate::sync::RunStatus::Running,
            trigger: crate::sync::Trigger::Cli,
            scheduled_at: None,
            totals: Default::default(),
        };
        let keys: Vec<String> = run_record(&run).keys().cloned().collect();
        assert_eq!(keys, RUN_COLUMNS);
        let scope = ScopeReport {
            scope: crate::sync::Scope::all_granted("r", "p"),
            status: crate::sync::ScopeStatus::Running,
            started_at: chrono::Utc::now(),
            finished_at: None,
            n_pages: 0,
            n_requests: 0,
            n_throttled: 0,
            n_retries: 0,
            api_total: None,
            counts: Default::default(),
            error: None,
            error_code: None,
            http_status: None,
            request_id: None,
        };
        let keys: Vec<String> = scope_record(1, &scope).keys().cloned().collect();
        assert_eq!(keys, SCOPE_COLUMNS);
    }
}

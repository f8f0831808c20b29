//! `status`: the inventory, the registries that fail, the last run, and a verdict a
//! monitoring check can use.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::output::{self, record, Format, Record};
use crate::report::time::{human_duration, iso};
use crate::report::ReportError;
use crate::store::reports::FailingRegistry;
use crate::store::{RunRecord, Store};
use crate::sync::RunStatus;

/// The columns of `status` as CSV: one row.
pub const STATUS_COLUMNS: &[&str] = &[
    "ok",
    "reason",
    "checked_at",
    "max_age_seconds",
    "registries",
    "retired",
    "images",
    "failing",
    "last_run_id",
    "last_run_status",
    "last_run_finished_at",
    "last_run_age_seconds",
    "running_run_id",
];

const FAILING_COLUMNS: &[&str] = &[
    "registry_id",
    "registry_name",
    "registry_type",
    "fail_reason",
    "failing_since",
];

/// The verdict of `status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCheck {
    /// The last finished run succeeded and finished no longer than the maximum age ago.
    pub ok: bool,
    /// Why, in a few words.
    pub reason: String,
}

/// Prints the status as of `now`, and returns the verdict: ok when the newest finished run
/// succeeded and finished at most `max_age` before `now`. A run still going does not count
/// (a sync in progress does not make the check fail), but it is shown.
///
/// # Errors
///
/// When the store fails or `out` cannot be written.
pub async fn print_status(
    store: &Store,
    max_age: Duration,
    now: DateTime<Utc>,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<StatusCheck, ReportError> {
    let inventory = store.inventory().await?;
    let failing = store.failing_registries().await?;
    let last = store.latest_finished_run().await?;
    let running = store
        .recent_runs(1)
        .await?
        .into_iter()
        .find(|run| run.status == RunStatus::Running);
    let check = verdict(last.as_ref(), max_age, now);
    let age = |run: &RunRecord| run.finished_at.map(|finished| now - finished);
    let failing_records: Vec<Record> = failing.iter().map(failing_record).collect();
    match format {
        Format::Table => {
            writeln!(
                out,
                "registries  {} present, {} retired, {} images",
                inventory.n_live, inventory.n_retired, inventory.n_images
            )?;
            writeln!(out, "by status   {}", counts_text(&inventory.by_status))?;
            writeln!(out, "by type     {}", counts_text(&inventory.by_type))?;
            writeln!(out, "failing     {} registries", failing.len())?;
            if !failing.is_empty() {
                output::write_table(out, FAILING_COLUMNS, &failing_records)?;
            }
            match &last {
                Some(run) => writeln!(
                    out,
                    "last run    {} {}, finished {} ({} ago)",
                    run.id,
                    run.status,
                    run.finished_at.map(iso).unwrap_or_default(),
                    age(run).map(human_duration).unwrap_or_default()
                )?,
                None => writeln!(out, "last run    none has finished yet")?,
            }
            if let Some(run) = &running {
                writeln!(
                    out,
                    "running     run {} since {} ({} ago)",
                    run.id,
                    iso(run.started_at),
                    human_duration(now - run.started_at)
                )?;
            }
            writeln!(
                out,
                "check       {}: {}",
                if check.ok { "ok" } else { "FAILING" },
                check.reason
            )?;
        }
        Format::Json => {
            let run_object = |run: &RunRecord| {
                json!({
                    "id": run.id,
                    "status": run.status.as_str(),
                    "started_at": iso(run.started_at),
                    "finished_at": run.finished_at.map(iso),
                    "age_seconds": age(run).map(|a| a.num_seconds()),
                })
            };
            let object = json!({
                "ok": check.ok,
                "reason": check.reason,
                "checked_at": iso(now),
                "max_age_seconds": max_age.as_secs(),
                "registries": inventory.n_live,
                "retired": inventory.n_retired,
                "images": inventory.n_images,
                "by_status": counts_object(&inventory.by_status),
                "by_type": counts_object(&inventory.by_type),
                "failing": failing_records,
                "last_run": last.as_ref().map(run_object),
                "running_run": running.as_ref().map(run_object),
            });
            output::write_json(out, &[object])?;
        }
        Format::Csv => {
            let row = record([
                ("ok", json!(check.ok)),
                ("reason", json!(check.reason)),
                ("checked_at", json!(iso(now))),
                ("max_age_seconds", json!(max_age.as_secs())),
                ("registries", json!(inventory.n_live)),
                ("retired", json!(inventory.n_retired)),
                ("images", json!(inventory.n_images)),
                ("failing", json!(failing.len())),
                ("last_run_id", json!(last.as_ref().map(|r| r.id))),
                (
                    "last_run_status",
                    json!(last.as_ref().map(|r| r.status.as_str())),
                ),
                (
                    "last_run_finished_at",
                    json!(last.as_ref().and_then(|r| r.finished_at).map(iso)),
                ),
                (
                    "last_run_age_seconds",
                    json!(last.as_ref().and_then(age).map(|a| a.num_seconds())),
                ),
                ("running_run_id", json!(running.as_ref().map(|r| r.id))),
            ]);
            output::write_csv(out, STATUS_COLUMNS, &[row])?;
        }
    }
    Ok(check)
}

/// Ok when `last` succeeded and finished at most `max_age` before `now`.
fn verdict(last: Option<&RunRecord>, max_age: Duration, now: DateTime<Utc>) -> StatusCheck {
    let max_age_text =
        human_duration(chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX));
    let Some(run) = last else {
        return StatusCheck {
            ok: false,
            reason: "no sync run has finished yet".to_owned(),
        };
    };
    let age = run.finished_at.map(|f| now - f).unwrap_or_default();
    let too_old = chrono::Duration::from_std(max_age).is_ok_and(|max| age > max);
    let (ok, reason) = if run.status != RunStatus::Succeeded {
        (
            false,
            format!(
                "the last run ({}) finished {} {} ago",
                run.id,
                run.status,
                human_duration(age)
            ),
        )
    } else if too_old {
        (
            false,
            format!(
                "the last run ({}) succeeded {} ago, longer than --max-age {max_age_text}",
                run.id,
                human_duration(age)
            ),
        )
    } else {
        (
            true,
            format!(
                "the last run ({}) succeeded {} ago",
                run.id,
                human_duration(age)
            ),
        )
    };
    StatusCheck { ok, reason }
}

fn failing_record(registry: &FailingRegistry) -> Record {
    record([
        ("registry_id", json!(registry.id)),
        ("registry_name", json!(registry.registry_name)),
        ("registry_type", json!(registry.registry_type)),
        ("registry_addr", json!(registry.registry_addr)),
        ("region", json!(registry.region)),
        ("project_id", json!(registry.project_id)),
        (
            "enterprise_project_id",
            json!(registry.enterprise_project_id),
        ),
        ("fail_reason", json!(registry.fail_reason)),
        ("failing_since", json!(registry.failing_since.map(iso))),
    ])
}

fn counts_text(counts: &[(String, i64)]) -> String {
    if counts.is_empty() {
        return "-".to_owned();
    }
    counts
        .iter()
        .map(|(value, n)| {
            let value = if value.is_empty() { "(none)" } else { value };
            format!("{value} {n}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn counts_object(counts: &[(String, i64)]) -> Value {
    Value::Object(
        counts
            .iter()
            .map(|(value, n)| (value.clone(), json!(n)))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn run(status: RunStatus, finished_minutes_ago: i64, now: DateTime<Utc>) -> RunRecord {
        RunRecord {
            id: 7,
            started_at: now - chrono::Duration::minutes(finished_minutes_ago + 1),
            finished_at: Some(now - chrono::Duration::minutes(finished_minutes_ago)),
            status,
            trigger: crate::sync::Trigger::Schedule,
            scheduled_at: None,
            totals: Default::default(),
        }
    }

    #[test]
    fn ok_only_for_a_recent_success() {
        let now = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let two_hours = Duration::from_secs(7_200);
        assert!(verdict(Some(&run(RunStatus::Succeeded, 5, now)), two_hours, now).ok);
        assert!(verdict(Some(&run(RunStatus::Succeeded, 120, now)), two_hours, now).ok);
        let stale = verdict(Some(&run(RunStatus::Succeeded, 121, now)), two_hours, now);
        assert!(
            !stale.ok && stale.reason.contains("longer than --max-age 2h 0m"),
            "{stale:?}"
        );
        let partial = verdict(Some(&run(RunStatus::Partial, 5, now)), two_hours, now);
        assert!(
            !partial.ok && partial.reason.contains("partial"),
            "{partial:?}"
        );
        assert!(!verdict(None, two_hours, now).ok);
    }
}

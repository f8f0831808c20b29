//! What must hold of the store after any sync, whatever the API answered and wherever a
//! process died: shared by the model-based test (`model.rs`) and the kill test (`kill.rs`).
//!
//! Each check returns the violations it found as lines that start with the invariant's
//! letter, so a failing test says every broken invariant at once, not just the first:
//! * (a) no registry present in the estate is marked deleted (unless it was already marked
//!   deleted before the sync and its scope has not been walked completely since), and no run
//!   writes a `deleted` row for a registry that was in the estate all the while;
//! * (b) every registry's `version` is its latest history version, and the latest history
//!   row is `deleted` exactly when the registry is marked deleted;
//! * (c) exactly one open history row (`valid_to` NULL) per registry, the latest one;
//! * (d) every run and scope row is final, and its counts equal the rows written for it;
//! * (e) after a clean sync, the database equals the estate field by field;
//! * (f) what a run reports (its status and counts, and each scope's status, pages and counts)
//!   is what its audit rows say.

use std::collections::{BTreeMap, HashMap, HashSet};

use hss_sync::sim::Simulator;
use hss_sync::store::{HistoryFilter, HistoryRecord, RegistryRecord, Store};
use hss_sync::sync::{RunReport, ScopeCounts};
use serde_json::Value;

/// At most this many lines per invariant in a report: one wrong scope can break hundreds of
/// rows, and the first few say what happened.
const MAX_LINES_PER_INVARIANT: usize = 12;

/// One registry as the simulated API serves it now.
#[derive(Clone, Debug, PartialEq)]
pub struct EstateEntry {
    /// Its project.
    pub project_id: String,
    /// Its enterprise project.
    pub enterprise_project_id: String,
    /// The project's region.
    pub region: String,
    /// The item exactly as ListRegistry returns it.
    pub item: Value,
}

/// Every registry of the simulated estate, by id.
pub fn estate_snapshot(sim: &Simulator) -> BTreeMap<String, EstateEntry> {
    let mut entries = BTreeMap::new();
    for (project_id, region) in sim.projects() {
        for enterprise_project_id in sim.enterprise_project_ids() {
            for item in sim.registries(&project_id, Some(&enterprise_project_id)) {
                let id = item["id"]
                    .as_str()
                    .expect("estate items have ids")
                    .to_owned();
                let entry = EstateEntry {
                    project_id: project_id.clone(),
                    enterprise_project_id: enterprise_project_id.clone(),
                    region: region.clone(),
                    item,
                };
                assert!(
                    entries.insert(id.clone(), entry).is_none(),
                    "the simulator serves registry {id} twice"
                );
            }
        }
    }
    entries
}

/// Violations found by the checks, grouped by invariant.
#[derive(Debug, Default)]
pub struct Violations {
    /// Lines per invariant letter, in the order found.
    lines: BTreeMap<char, Vec<String>>,
}

impl Violations {
    /// Records one violation of invariant `letter`.
    pub fn push(&mut self, letter: char, line: String) {
        self.lines.entry(letter).or_default().push(line);
    }

    /// Whether nothing was violated.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The letters of the violated invariants, e.g. `"a, d"`.
    pub fn letters(&self) -> String {
        let letters: Vec<String> = self.lines.keys().map(char::to_string).collect();
        letters.join(", ")
    }

    /// A readable report: a few lines per invariant, and how many more there were.
    pub fn report(&self) -> String {
        let mut text = String::new();
        for (letter, lines) in &self.lines {
            for line in lines.iter().take(MAX_LINES_PER_INVARIANT) {
                text.push_str(&format!("  ({letter}) {line}\n"));
            }
            if lines.len() > MAX_LINES_PER_INVARIANT {
                text.push_str(&format!(
                    "  ({letter}) ... and {} more\n",
                    lines.len() - MAX_LINES_PER_INVARIANT
                ));
            }
        }
        text
    }

    /// Panics with `context` (which names the seed and round) when anything was violated.
    #[track_caller]
    pub fn assert_none(&self, context: &str) {
        assert!(
            self.is_empty(),
            "{context}: invariants {} violated:\n{}",
            self.letters(),
            self.report()
        );
    }
}

/// (a): no registry present in the estate is marked deleted, except one that was marked
/// deleted before the sync (`deleted_before`): it came back to the estate, and the sync may
/// not have walked its scope completely.
pub fn check_present_not_deleted(
    records: &[RegistryRecord],
    estate: &BTreeMap<String, EstateEntry>,
    deleted_before: &HashSet<String>,
    violations: &mut Violations,
) {
    for record in records {
        let id = &record.registry.id;
        let (Some(deleted_at), Some(entry)) = (record.deleted_at, estate.get(id)) else {
            continue;
        };
        if deleted_before.contains(id) {
            continue;
        }
        violations.push(
            'a',
            format!(
                "registry {id} is in the estate at {}/{} but was marked deleted at {deleted_at} (stored at {}/{:?})",
                entry.project_id,
                entry.enterprise_project_id,
                record.project_id,
                record.enterprise_project_id
            ),
        );
    }
}

/// (a): a run wrote no `deleted` row for a registry that was in the estate before the run
/// and after it (the keys of `present_throughout`, whose values say where it was stored and
/// served, for the message), even one it then restored.
pub fn check_no_deletion_of_present(
    run_history: &[HistoryRecord],
    present_throughout: &HashMap<String, String>,
    violations: &mut Violations,
) {
    for row in run_history {
        let Some(whereabouts) = present_throughout.get(&row.registry_id) else {
            continue;
        };
        if row.change_kind != "deleted" {
            continue;
        }
        let later: Vec<String> = run_history
            .iter()
            .filter(|r| r.registry_id == row.registry_id && r.version > row.version)
            .map(|r| format!("{} (version {})", r.change_kind, r.version))
            .collect();
        let later = if later.is_empty() {
            String::new()
        } else {
            format!(", then {}", later.join(", "))
        };
        violations.push(
            'a',
            format!(
                "run {} wrote a deleted row (version {}{later}) for registry {}, which was in the estate all the while ({whereabouts})",
                row.sync_run_id, row.version, row.registry_id
            ),
        );
    }
}

/// (b) and (c): versions and open history rows agree with the registries.
pub fn check_history(
    records: &[RegistryRecord],
    history: &[HistoryRecord],
    violations: &mut Violations,
) {
    let mut by_id: HashMap<&str, Vec<&HistoryRecord>> = HashMap::new();
    for row in history {
        by_id.entry(row.registry_id.as_str()).or_default().push(row);
    }
    let known: HashSet<&str> = records.iter().map(|r| r.registry.id.as_str()).collect();
    for id in by_id.keys().filter(|id| !known.contains(*id)) {
        violations.push(
            'b',
            format!("history rows for registry {id}, which has no row"),
        );
    }
    for record in records {
        let id = record.registry.id.as_str();
        let Some(rows) = by_id.get(id) else {
            violations.push('b', format!("registry {id} has no history row"));
            continue;
        };
        let latest = rows
            .iter()
            .max_by_key(|r| r.version)
            .expect("at least one row");
        if latest.version != record.version {
            violations.push(
                'b',
                format!(
                    "registry {id} is at version {} but its latest history row is version {} ({})",
                    record.version, latest.version, latest.change_kind
                ),
            );
        }
        let marked_deleted = record.deleted_at.is_some();
        if (latest.change_kind == "deleted") != marked_deleted {
            violations.push(
                'b',
                format!(
                    "registry {id} has deleted_at {:?} but its latest history row (version {}) is {}",
                    record.deleted_at, latest.version, latest.change_kind
                ),
            );
        }
        let open: Vec<i64> = rows
            .iter()
            .filter(|r| r.valid_to.is_none())
            .map(|r| r.version)
            .collect();
        if open != [latest.version] {
            violations.push(
                'c',
                format!(
                    "registry {id} has open history versions {open:?}; expected exactly [{}]",
                    latest.version
                ),
            );
        }
    }
}

/// (d): every run and scope row is final, a run's counts equal the history rows it wrote by
/// kind and the sum of its scopes' counts. Scope rows are read only for runs not in
/// `verified`, to which runs found sound are added (a finished run's scope rows are never
/// written again); pass an empty set for a full check.
pub async fn check_audit(store: &Store, verified: &mut HashSet<i64>, violations: &mut Violations) {
    let runs = store.recent_runs(i64::MAX).await.expect("read runs");
    let written = history_counts_by_run(store).await;
    let run_ids: HashSet<i64> = runs.iter().map(|r| r.id).collect();
    for run_id in written.keys().filter(|id| !run_ids.contains(id)) {
        violations.push(
            'd',
            format!("history rows point at run {run_id}, which has no row"),
        );
    }
    for run in &runs {
        let mut sound = true;
        if run.status == "running" {
            violations.push('d', format!("run {} is still running", run.id));
            sound = false;
        }
        let counts = &run.totals.counts;
        let rows = written.get(&run.id).cloned().unwrap_or_default();
        let recorded = [
            ("created", counts.n_inserted),
            ("updated", counts.n_updated),
            ("deleted", counts.n_deleted),
            ("restored", counts.n_restored),
        ];
        for (kind, recorded) in recorded {
            let n_rows = rows.get(kind).copied().unwrap_or(0);
            if n_rows != recorded {
                violations.push(
                    'd',
                    format!(
                        "run {} ({}) counts {recorded} {kind} but wrote {n_rows} {kind} history rows",
                        run.id, run.status
                    ),
                );
                sound = false;
            }
        }
        if verified.contains(&run.id) {
            continue;
        }
        let scopes = store.run_scopes(run.id).await.expect("read run scopes");
        let mut sum = ScopeCounts::default();
        for scope in &scopes {
            sum.add(&scope.counts);
            if scope.status == "running" {
                violations.push(
                    'd',
                    format!("scope {} of run {} is still running", scope.scope, run.id),
                );
                sound = false;
            }
        }
        if sum != *counts {
            violations.push(
                'd',
                format!(
                    "run {} ({}) counts {} but its {} scopes sum to {}",
                    run.id,
                    run.status,
                    describe_counts(counts),
                    scopes.len(),
                    describe_counts(&sum)
                ),
            );
            sound = false;
        }
        if sound && run.status != "running" {
            verified.insert(run.id);
        }
    }
}

/// (f): what a run reported is what its audit rows say: each scope's status, pages,
/// requests and counts, and the run's.
pub async fn check_report_matches_audit(
    store: &Store,
    report: &RunReport,
    violations: &mut Violations,
) {
    let rows = store
        .run_scopes(report.run_id)
        .await
        .expect("read scope rows");
    if rows.len() != report.scopes.len() {
        violations.push(
            'f',
            format!(
                "run {} reported {} scopes, its audit has {}",
                report.run_id,
                report.scopes.len(),
                rows.len()
            ),
        );
        return;
    }
    for (reported, row) in report.scopes.iter().zip(&rows) {
        let said = (reported.status, reported.n_pages, reported.counts);
        let stored = (row.status, row.n_pages, row.counts);
        if reported.scope != row.scope || said != stored {
            violations.push(
                'f',
                format!(
                    "run {} scope {}: reported {:?} with {} pages and {}, its row says {} {:?} \
                     with {} pages and {}",
                    report.run_id,
                    reported.scope,
                    reported.status,
                    reported.n_pages,
                    describe_counts(&reported.counts),
                    row.scope,
                    row.status,
                    row.n_pages,
                    describe_counts(&row.counts)
                ),
            );
        }
    }
    let runs = store.recent_runs(i64::MAX).await.expect("read runs");
    if let Some(run) = runs.iter().find(|r| r.id == report.run_id) {
        if run.status != report.status || run.totals.counts != report.counts {
            violations.push(
                'f',
                format!(
                    "run {} reported {:?} with {}, its row says {:?} with {}",
                    report.run_id,
                    report.status,
                    describe_counts(&report.counts),
                    run.status,
                    describe_counts(&run.totals.counts)
                ),
            );
        }
    }
}

/// (e): every registry of the estate is stored live, where it is and as it is served, and
/// nothing else is stored live.
pub fn check_equals_estate(
    records: &[RegistryRecord],
    estate: &BTreeMap<String, EstateEntry>,
    violations: &mut Violations,
) {
    let stored: HashMap<&str, &RegistryRecord> = records
        .iter()
        .map(|r| (r.registry.id.as_str(), r))
        .collect();
    for (id, entry) in estate {
        let Some(record) = stored.get(id.as_str()) else {
            violations.push(
                'e',
                format!(
                    "registry {id} of {}/{} is not stored",
                    entry.project_id, entry.enterprise_project_id
                ),
            );
            continue;
        };
        if let Some(deleted_at) = record.deleted_at {
            violations.push(
                'e',
                format!("registry {id} is in the estate but marked deleted at {deleted_at}"),
            );
        }
        let location = (
            record.project_id.as_str(),
            record.enterprise_project_id.as_deref(),
            record.region.as_str(),
        );
        let expected = (
            entry.project_id.as_str(),
            Some(entry.enterprise_project_id.as_str()),
            entry.region.as_str(),
        );
        if location != expected {
            violations.push(
                'e',
                format!(
                    "registry {id} is stored at {location:?}, the estate has it at {expected:?}"
                ),
            );
        }
        if Value::Object(record.registry.raw.clone()) != entry.item {
            violations.push(
                'e',
                format!(
                    "registry {id} is stored as {} but served as {}",
                    Value::Object(record.registry.raw.clone()),
                    entry.item
                ),
            );
        }
    }
    for record in records {
        let id = &record.registry.id;
        if record.deleted_at.is_none() && !estate.contains_key(id) {
            violations.push(
                'e',
                format!(
                    "registry {id} is stored live at {}/{:?} but is not in the estate",
                    record.project_id, record.enterprise_project_id
                ),
            );
        }
    }
}

/// Runs (a) without the history part, (b), (c) and (d) in one go.
pub async fn check_store(
    store: &Store,
    estate: &BTreeMap<String, EstateEntry>,
    deleted_before: &HashSet<String>,
    verified: &mut HashSet<i64>,
) -> Violations {
    let mut violations = Violations::default();
    let records = store.all_registries().await.expect("read registries");
    let history = store
        .history(HistoryFilter::All)
        .await
        .expect("read history");
    check_present_not_deleted(&records, estate, deleted_before, &mut violations);
    check_history(&records, &history, &mut violations);
    check_audit(store, verified, &mut violations).await;
    violations
}

/// A scope may lose at most this many registries (deleted, drifted away or moved out, and
/// not yet retired) before its next complete walk: well under the mass-deletion guard's
/// minimum of 10, so the guard never holds a deletion the tests expect to be applied.
pub const MAX_PENDING_DEPARTURES_PER_SCOPE: usize = 7;

/// Per (project, enterprise project): registries stored live there that the estate no
/// longer serves there, which the scope's next complete walk will retire or see moved.
pub fn pending_departures(
    records: &[RegistryRecord],
    estate: &BTreeMap<String, EstateEntry>,
) -> HashMap<(String, String), usize> {
    let mut pending: HashMap<(String, String), usize> = HashMap::new();
    for record in records.iter().filter(|r| r.deleted_at.is_none()) {
        let Some(ep) = &record.enterprise_project_id else {
            continue;
        };
        let still_there = estate
            .get(&record.registry.id)
            .is_some_and(|e| e.project_id == record.project_id && e.enterprise_project_id == *ep);
        if !still_there {
            *pending
                .entry((record.project_id.clone(), ep.clone()))
                .or_default() += 1;
        }
    }
    pending
}

/// A seed or a count from the environment, if set; panics on a value that is not a number,
/// rather than silently running another seed than the one asked for.
pub fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a number")),
    )
}

/// History rows per run and `change_kind`, as the store counts them.
pub async fn history_counts_by_run(store: &Store) -> HashMap<i64, HashMap<String, i64>> {
    let rows = store
        .history_counts_by_run()
        .await
        .expect("count history rows per run");
    let mut counts: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    for (run_id, kind, n) in rows {
        counts.entry(run_id).or_default().insert(kind, n);
    }
    counts
}

fn describe_counts(counts: &ScopeCounts) -> String {
    format!(
        "fetched {} created {} updated {} unchanged {} deleted {} restored {}",
        counts.n_fetched,
        counts.n_inserted,
        counts.n_updated,
        counts.n_unchanged,
        counts.n_deleted,
        counts.n_restored
    )
}

/// The checks themselves: each reports a broken store, and is quiet on a sound one.
mod checks {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use chrono::{TimeZone, Utc};
    use hss_sync::registry::Registry;
    use hss_sync::store::{HistoryRecord, RegistryRecord};
    use serde_json::{json, Value};

    use super::*;

    fn record(id: &str, version: i64, deleted: bool) -> RegistryRecord {
        let Value::Object(raw) = json!({"id": id, "status": "success"}) else {
            unreachable!()
        };
        RegistryRecord {
            registry: Registry::from_raw(raw).unwrap(),
            project_id: "p".to_owned(),
            enterprise_project_id: Some("0".to_owned()),
            region: "cn-north-4".to_owned(),
            version,
            deleted_at: deleted.then(|| Utc.timestamp_opt(1, 0).unwrap()),
        }
    }

    fn row(id: &str, version: i64, kind: &str, open: bool) -> HistoryRecord {
        HistoryRecord {
            registry_id: id.to_owned(),
            version,
            change_kind: kind.to_owned(),
            changed_fields: Vec::new(),
            valid_from: Utc.timestamp_opt(version, 0).unwrap(),
            valid_to: (!open).then(|| Utc.timestamp_opt(version + 1, 0).unwrap()),
            sync_run_id: version,
            registry_name: None,
        }
    }

    fn estate_of(ids: &[&str]) -> BTreeMap<String, EstateEntry> {
        ids.iter()
            .map(|id| {
                let entry = EstateEntry {
                    project_id: "p".to_owned(),
                    enterprise_project_id: "0".to_owned(),
                    region: "cn-north-4".to_owned(),
                    item: json!({"id": id, "status": "success"}),
                };
                (id.to_string(), entry)
            })
            .collect()
    }

    #[test]
    fn a_sound_store_passes_every_check() {
        let records = [record("r1", 2, false), record("gone", 2, true)];
        let history = [
            row("r1", 1, "created", false),
            row("r1", 2, "updated", true),
            row("gone", 1, "created", false),
            row("gone", 2, "deleted", true),
        ];
        let estate = estate_of(&["r1"]);
        let mut violations = Violations::default();
        check_present_not_deleted(&records, &estate, &HashSet::new(), &mut violations);
        check_history(&records, &history, &mut violations);
        check_equals_estate(&records, &estate, &mut violations);
        check_no_deletion_of_present(&history, &HashMap::new(), &mut violations);
        assert!(violations.is_empty(), "{}", violations.report());
    }

    #[test]
    fn each_broken_invariant_is_reported_under_its_letter() {
        let estate = estate_of(&["r1", "r2"]);
        let mut violations = Violations::default();

        // (a) r1 is served but marked deleted; r2 was deleted and restored in one run.
        let records = [record("r1", 2, true), record("r2", 3, false)];
        check_present_not_deleted(&records, &estate, &HashSet::new(), &mut violations);
        let run = [
            row("r2", 2, "deleted", false),
            row("r2", 3, "restored", true),
        ];
        let present = HashMap::from([("r2".to_owned(), "here".to_owned())]);
        check_no_deletion_of_present(&run, &present, &mut violations);
        assert_eq!(violations.letters(), "a");
        assert!(violations.report().contains("then restored (version 3)"));
        let excused = HashSet::from(["r1".to_owned()]);
        let mut none = Violations::default();
        check_present_not_deleted(&records, &estate, &excused, &mut none);
        assert!(
            none.is_empty(),
            "deleted before the run and not walked since"
        );

        // (b) a version ahead of history; (c) two open rows.
        let mut violations = Violations::default();
        let records = [record("r1", 3, false), record("r2", 2, false)];
        let history = [
            row("r1", 1, "created", false),
            row("r1", 2, "updated", true),
            row("r2", 1, "created", true),
            row("r2", 2, "updated", true),
        ];
        check_history(&records, &history, &mut violations);
        assert_eq!(violations.letters(), "b, c", "{}", violations.report());

        // (e) a changed item, a missing one, a live one not served.
        let mut violations = Violations::default();
        let mut changed = estate.clone();
        changed.get_mut("r1").unwrap().item = json!({"id": "r1", "status": "fail"});
        changed.remove("r2");
        changed.insert("r3".to_owned(), estate_of(&["r3"])["r3"].clone());
        check_equals_estate(&records, &changed, &mut violations);
        let report = violations.report();
        assert_eq!(violations.letters(), "e");
        assert!(report.contains("registry r1 is stored as"), "{report}");
        assert!(
            report.contains("registry r3 of p/0 is not stored"),
            "{report}"
        );
        assert!(report.contains("registry r2 is stored live"), "{report}");
    }
}

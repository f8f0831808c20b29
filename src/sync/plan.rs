//! The pure diff: what the store holds for a scope against what the API returned.
//!
//! No IO and no clock: the store hands in the rows it loaded inside its transaction and
//! writes back exactly the plan returned here.

use std::collections::{HashMap, HashSet};

use crate::registry::{self, Registry};
use crate::sync::Scope;

/// A registry row as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRegistry {
    /// The registry as last received.
    pub registry: Registry,
    /// Where it was last seen.
    pub location: Location,
    /// Its current version.
    pub version: i64,
    /// Whether it is retired (`deleted_at` set).
    pub deleted: bool,
}

/// Where a registry lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The project.
    pub project_id: String,
    /// The enterprise project, when a scope named one; `None` when it was only ever seen
    /// through `all_granted_eps`.
    pub enterprise_project_id: Option<String>,
    /// The region.
    pub region: String,
}

/// What happens to one registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new id.
    Created,
    /// Known id, different content or location.
    Updated,
    /// Missing from a scope whose walk completed.
    Deleted,
    /// A retired id that came back.
    Restored,
}

impl ChangeKind {
    /// The `change_kind` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Restored => "restored",
        }
    }
}

/// One change to write: the new row state and its history row.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// What kind of change.
    pub kind: ChangeKind,
    /// The registry content of the new version (for `Deleted`, the last known content).
    pub registry: Registry,
    /// The location of the new version.
    pub location: Location,
    /// The new version number.
    pub version: i64,
    /// Fields that differ from the previous version; empty for `Created` and `Deleted`.
    pub changed_fields: Vec<String>,
}

/// Row counts of one scope (or, summed, of a run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScopeCounts {
    /// Distinct registries fetched.
    pub n_fetched: i64,
    /// New registries.
    pub n_inserted: i64,
    /// Changed registries.
    pub n_updated: i64,
    /// Registries seen again unchanged.
    pub n_unchanged: i64,
    /// Registries retired.
    pub n_deleted: i64,
    /// Retired registries that came back.
    pub n_restored: i64,
    /// Registries a complete walk missed but that were not retired, because retiring them
    /// would have crossed the mass-deletion guard.
    pub n_held: i64,
}

impl ScopeCounts {
    /// Adds another scope's counts to these.
    pub fn add(&mut self, other: &ScopeCounts) {
        self.n_fetched += other.n_fetched;
        self.n_inserted += other.n_inserted;
        self.n_updated += other.n_updated;
        self.n_unchanged += other.n_unchanged;
        self.n_deleted += other.n_deleted;
        self.n_restored += other.n_restored;
        self.n_held += other.n_held;
    }
}

/// The guard against mass deletion: a scope whose complete walk would retire more than
/// `max_percent` of its live registries, and at least `min_count` of them, has its
/// deletions held (rsync's `--max-delete`, Azure AD Connect's export deletion threshold).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeletionGuard {
    /// The largest share of a scope's live registries one run may retire, in percent.
    pub max_percent: u32,
    /// Below this many deletions the guard never holds.
    pub min_count: i64,
    /// Retire whatever a complete walk missed, however many (`--accept-deletions`).
    pub accept: bool,
}

/// The share of a scope's live registries one run may retire by default: losing more than
/// half of an inventory at once is far more often a broken answer than a real change.
pub const DEFAULT_MAX_DELETE_PERCENT: u32 = 50;

/// Deletions below this count are never held, so small scopes can empty normally.
pub const DEFAULT_MAX_DELETE_MIN: i64 = 10;

impl Default for DeletionGuard {
    fn default() -> Self {
        DeletionGuard {
            max_percent: DEFAULT_MAX_DELETE_PERCENT,
            min_count: DEFAULT_MAX_DELETE_MIN,
            accept: false,
        }
    }
}

impl DeletionGuard {
    /// A guard that never holds.
    pub fn off() -> Self {
        DeletionGuard {
            accept: true,
            ..DeletionGuard::default()
        }
    }

    /// Whether retiring `n_delete` of `n_live` registries must be held.
    pub fn holds(&self, n_delete: i64, n_live: i64) -> bool {
        !self.accept
            && n_delete >= self.min_count
            && n_delete * 100 > i64::from(self.max_percent) * n_live
    }

    /// What a scope whose deletions were held records, and how to accept them.
    pub fn held_message(&self, n_held: i64, n_live: i64) -> String {
        format!(
            "deletions held: the walk missed {n_held} of the {n_live} registries this scope holds ({}%),              more than --max-delete-percent {} (and at least --max-delete-min {}); nothing was retired.              If they are really gone, run once with --accept-deletions, or raise the thresholds",
            if n_live > 0 { n_held * 100 / n_live } else { 100 },
            self.max_percent,
            self.min_count
        )
    }
}

/// What a scope may retire.
#[derive(Clone, Copy, Debug)]
pub struct Retirement<'a> {
    /// Whether anything may be retired: the scope's walk completed, and so did every other
    /// scope of the run that could hold a registry this scope lost.
    pub allowed: bool,
    /// Ids seen anywhere in the run: a registry that moved to another scope is not gone.
    pub seen_in_run: &'a HashSet<String>,
    /// Whether this scope also answers for its project's rows that carry no enterprise
    /// project (recorded through `all_granted_eps`): every enterprise project of the project
    /// was walked completely, so such a row that no walk saw is gone.
    pub unattributed: bool,
    /// The mass-deletion guard.
    pub guard: DeletionGuard,
}

/// The plan for one scope.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScopePlan {
    /// Rows to write with a history row each, in the order fetched, deletions last.
    pub changes: Vec<Change>,
    /// Ids seen again unchanged: only `last_seen_at` moves.
    pub unchanged: Vec<String>,
    /// The counts the plan implies.
    pub counts: ScopeCounts,
    /// The live registries the scope held, when its deletions were held.
    pub n_live: i64,
}

/// Plans one scope.
///
/// `stored` holds the rows the scope covers and the rows of every fetched id, wherever they
/// live. Missing rows are retired only as `retirement` allows: nothing unless it is allowed,
/// nothing whose id was seen elsewhere in the run, and nothing when the guard holds the
/// scope's deletions (they are counted in `n_held`).
pub fn plan_scope(
    stored: &[StoredRegistry],
    fetched: &[Registry],
    scope: &Scope,
    retirement: &Retirement<'_>,
) -> ScopePlan {
    let seen_in_run = retirement.seen_in_run;
    let covers = |location: &Location| {
        scope.covers(location)
            || (retirement.unattributed
                && location.project_id == scope.project_id
                && location.enterprise_project_id.is_none())
    };
    let by_id: HashMap<&str, &StoredRegistry> = stored
        .iter()
        .map(|row| (row.registry.id.as_str(), row))
        .collect();
    let mut plan = ScopePlan::default();
    let mut fetched_ids = HashSet::new();
    for registry in fetched {
        if !fetched_ids.insert(registry.id.as_str()) {
            continue;
        }
        plan.counts.n_fetched += 1;
        let Some(old) = by_id.get(registry.id.as_str()) else {
            plan.counts.n_inserted += 1;
            plan.changes.push(Change {
                kind: ChangeKind::Created,
                registry: registry.clone(),
                location: scope.location_for(None),
                version: 1,
                changed_fields: Vec::new(),
            });
            continue;
        };
        let location = scope.location_for(Some(&old.location));
        let mut changed_fields = registry::changed_fields(&old.registry.raw, &registry.raw);
        changed_fields.extend(location_changes(&old.location, &location));
        changed_fields.sort();
        let kind = if old.deleted {
            plan.counts.n_restored += 1;
            ChangeKind::Restored
        } else if changed_fields.is_empty() {
            plan.counts.n_unchanged += 1;
            plan.unchanged.push(registry.id.clone());
            continue;
        } else {
            plan.counts.n_updated += 1;
            ChangeKind::Updated
        };
        plan.changes.push(Change {
            kind,
            registry: registry.clone(),
            location,
            version: old.version + 1,
            changed_fields,
        });
    }
    if retirement.allowed {
        let live = stored
            .iter()
            .filter(|old| !old.deleted && covers(&old.location));
        let n_live = live.clone().count() as i64;
        let gone: Vec<&StoredRegistry> = live
            .filter(|old| {
                let id = old.registry.id.as_str();
                !fetched_ids.contains(id) && !seen_in_run.contains(id)
            })
            .collect();
        let n_gone = gone.len() as i64;
        if retirement.guard.holds(n_gone, n_live) {
            plan.counts.n_held = n_gone;
            plan.n_live = n_live;
        } else {
            for old in gone {
                plan.counts.n_deleted += 1;
                plan.changes.push(Change {
                    kind: ChangeKind::Deleted,
                    registry: old.registry.clone(),
                    location: old.location.clone(),
                    version: old.version + 1,
                    changed_fields: Vec::new(),
                });
            }
        }
    }
    plan
}

fn location_changes(old: &Location, new: &Location) -> Vec<String> {
    let mut names = Vec::new();
    if old.project_id != new.project_id {
        names.push("project_id".to_owned());
    }
    if old.enterprise_project_id != new.enterprise_project_id {
        names.push("enterprise_project_id".to_owned());
    }
    if old.region != new.region {
        names.push("region".to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Plans with retiring allowed when `complete`, and no guard.
    fn plan_without_guard(
        stored: &[StoredRegistry],
        fetched: &[Registry],
        scope: &Scope,
        complete: bool,
        seen_in_run: &HashSet<String>,
    ) -> ScopePlan {
        plan_scope(
            stored,
            fetched,
            scope,
            &Retirement {
                allowed: complete,
                seen_in_run,
                unattributed: false,
                guard: DeletionGuard::off(),
            },
        )
    }
    use crate::sync::ALL_GRANTED_EPS;

    fn registry(id: &str, status: &str) -> Registry {
        let Value::Object(raw) = json!({"id": id, "status": status}) else {
            unreachable!()
        };
        Registry::from_raw(raw).unwrap()
    }

    fn scope(ep: &str) -> Scope {
        Scope {
            region: "cn-north-4".to_owned(),
            project_id: "p1".to_owned(),
            enterprise_project_id: ep.to_owned(),
        }
    }

    fn stored(
        id: &str,
        status: &str,
        ep: Option<&str>,
        version: i64,
        deleted: bool,
    ) -> StoredRegistry {
        StoredRegistry {
            registry: registry(id, status),
            location: Location {
                project_id: "p1".to_owned(),
                enterprise_project_id: ep.map(str::to_owned),
                region: "cn-north-4".to_owned(),
            },
            version,
            deleted,
        }
    }

    fn kinds(plan: &ScopePlan) -> Vec<(String, ChangeKind, i64)> {
        plan.changes
            .iter()
            .map(|c| (c.registry.id.clone(), c.kind, c.version))
            .collect()
    }

    #[test]
    fn new_changed_unchanged_missing_and_returning_ids_are_classified() {
        let rows = [
            stored("same", "success", None, 1, false),
            stored("changed", "success", None, 3, false),
            stored("gone", "success", None, 2, false),
            stored("back", "success", None, 4, true),
        ];
        let fetched = [
            registry("same", "success"),
            registry("changed", "fail"),
            registry("new", "success"),
            registry("back", "success"),
        ];
        let plan = plan_without_guard(
            &rows,
            &fetched,
            &scope(ALL_GRANTED_EPS),
            true,
            &HashSet::new(),
        );
        assert_eq!(
            kinds(&plan),
            [
                ("changed".to_owned(), ChangeKind::Updated, 4),
                ("new".to_owned(), ChangeKind::Created, 1),
                ("back".to_owned(), ChangeKind::Restored, 5),
                ("gone".to_owned(), ChangeKind::Deleted, 3),
            ]
        );
        assert_eq!(plan.unchanged, ["same"]);
        assert_eq!(plan.changes[0].changed_fields, ["status"]);
        assert_eq!(
            plan.counts,
            ScopeCounts {
                n_fetched: 4,
                n_inserted: 1,
                n_updated: 1,
                n_unchanged: 1,
                n_deleted: 1,
                n_restored: 1,
                n_held: 0
            }
        );
    }

    #[test]
    fn incomplete_walk_retires_nothing() {
        let rows = [stored("gone", "success", None, 1, false)];
        let plan = plan_without_guard(&rows, &[], &scope(ALL_GRANTED_EPS), false, &HashSet::new());
        assert!(plan.changes.is_empty());
        assert_eq!(plan.counts, ScopeCounts::default());
    }

    #[test]
    fn rows_outside_the_scope_or_seen_elsewhere_are_not_retired() {
        let rows = [
            stored("other-ep", "success", Some("ep2"), 1, false),
            stored("moved", "success", Some("ep1"), 1, false),
            stored("gone", "success", Some("ep1"), 1, false),
        ];
        let seen: HashSet<String> = ["moved".to_owned()].into();
        let plan = plan_without_guard(&rows, &[], &scope("ep1"), true, &seen);
        assert_eq!(kinds(&plan), [("gone".to_owned(), ChangeKind::Deleted, 2)]);
    }

    #[test]
    fn a_registry_that_moves_enterprise_project_is_updated_with_the_field_named() {
        let rows = [stored("r", "success", Some("ep1"), 1, false)];
        let plan = plan_without_guard(
            &rows,
            &[registry("r", "success")],
            &scope("ep2"),
            true,
            &HashSet::new(),
        );
        assert_eq!(kinds(&plan), [("r".to_owned(), ChangeKind::Updated, 2)]);
        assert_eq!(plan.changes[0].changed_fields, ["enterprise_project_id"]);
    }

    #[test]
    fn all_granted_scope_keeps_a_known_enterprise_project() {
        let rows = [stored("r", "success", Some("ep1"), 1, false)];
        let plan = plan_without_guard(
            &rows,
            &[registry("r", "success")],
            &scope(ALL_GRANTED_EPS),
            true,
            &HashSet::new(),
        );
        assert!(plan.changes.is_empty());
        assert_eq!(plan.unchanged, ["r"]);
    }

    #[test]
    fn duplicate_ids_in_one_fetch_count_once() {
        let fetched = [registry("a", "success"), registry("a", "success")];
        let plan = plan_without_guard(
            &[],
            &fetched,
            &scope(ALL_GRANTED_EPS),
            true,
            &HashSet::new(),
        );
        assert_eq!(plan.counts.n_fetched, 1);
        assert_eq!(plan.changes.len(), 1);
    }

    fn retirement(
        seen: &HashSet<String>,
        unattributed: bool,
        guard: DeletionGuard,
    ) -> Retirement<'_> {
        Retirement {
            allowed: true,
            seen_in_run: seen,
            unattributed,
            guard,
        }
    }

    #[test]
    fn the_guard_holds_mass_deletions_and_counts_them() {
        let rows: Vec<StoredRegistry> = (0..20)
            .map(|i| stored(&format!("r{i:02}"), "success", None, 1, false))
            .collect();
        let fetched: Vec<Registry> = (0..8)
            .map(|i| registry(&format!("r{i:02}"), "success"))
            .collect();
        let seen = HashSet::new();
        let scope = scope(ALL_GRANTED_EPS);

        let held = plan_scope(
            &rows,
            &fetched,
            &scope,
            &retirement(&seen, false, DeletionGuard::default()),
        );
        assert_eq!(held.counts.n_deleted, 0);
        assert_eq!(held.counts.n_held, 12);
        assert_eq!(held.n_live, 20);
        assert!(held.changes.is_empty());

        let accepted = DeletionGuard {
            accept: true,
            ..DeletionGuard::default()
        };
        let plan = plan_scope(&rows, &fetched, &scope, &retirement(&seen, false, accepted));
        assert_eq!((plan.counts.n_deleted, plan.counts.n_held), (12, 0));

        // Half or less, or fewer than the minimum, is retired.
        let fetched_half: Vec<Registry> = (0..10)
            .map(|i| registry(&format!("r{i:02}"), "success"))
            .collect();
        let plan = plan_scope(
            &rows,
            &fetched_half,
            &scope,
            &retirement(&seen, false, DeletionGuard::default()),
        );
        assert_eq!((plan.counts.n_deleted, plan.counts.n_held), (10, 0));
        let small = &rows[..9];
        let plan = plan_scope(
            small,
            &[],
            &scope,
            &retirement(&seen, false, DeletionGuard::default()),
        );
        assert_eq!((plan.counts.n_deleted, plan.counts.n_held), (9, 0));
        assert!(DeletionGuard::default()
            .held_message(12, 20)
            .contains("--accept-deletions"));
    }

    #[test]
    fn unattributed_rows_are_reconciled_only_when_every_enterprise_project_was_walked() {
        let rows = [
            stored("seen", "success", None, 1, false),
            stored("unseen", "success", None, 1, false),
            stored("other-ep", "success", Some("ep2"), 1, false),
        ];
        let fetched = [registry("seen", "success")];
        let seen: HashSet<String> = ["seen".to_owned()].into();

        let plan = plan_scope(
            &rows,
            &fetched,
            &scope("ep1"),
            &retirement(&seen, true, DeletionGuard::off()),
        );
        assert_eq!(
            kinds(&plan),
            [
                ("seen".to_owned(), ChangeKind::Updated, 2),
                ("unseen".to_owned(), ChangeKind::Deleted, 2)
            ]
        );
        assert_eq!(plan.changes[0].changed_fields, ["enterprise_project_id"]);

        let plan = plan_scope(
            &rows,
            &fetched,
            &scope("ep1"),
            &retirement(&seen, false, DeletionGuard::off()),
        );
        assert_eq!(kinds(&plan), [("seen".to_owned(), ChangeKind::Updated, 2)]);
    }
}

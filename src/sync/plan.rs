//! The pure diff: what the store holds for a scope against what the API returned.
//!
//! No IO and no clock: the store hands in the rows it loaded inside its transaction and
//! writes back exactly the plan returned here.

use crate::registry::{self, Registry};
use crate::sync::Scope;

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
            "deletions held: the walk missed {n_held} of the {n_live} registries this scope holds ({}%), \
             more than --max-delete-percent {} (and at least --max-delete-min {}); nothing was retired. \
             If they are really gone, run once with --accept-deletions, or raise the thresholds",
            if n_live > 0 { n_held * 100 / n_live } else { 100 },
            self.max_percent,
            self.min_count
        )
    }
}

/// What a scope may retire.
#[derive(Clone, Copy, Debug)]
pub struct Retirement {
    /// Whether anything may be retired: the scope's walk completed, and so did every other
    /// scope of the run that could hold a registry this scope lost.
    pub allowed: bool,
    /// Whether this scope also answers for its project's rows that carry no enterprise
    /// project (recorded through `all_granted_eps`): every enterprise project of the project
    /// was walked completely, so such a row that no walk saw is gone.
    pub unattributed: bool,
    /// The mass-deletion guard.
    pub guard: DeletionGuard,
}

/// A scope of the run, with what it answers for.
#[derive(Clone, Copy, Debug)]
pub struct Coverage<'a> {
    /// The scope.
    pub scope: &'a Scope,
    /// Whether it also answers for its project's rows recorded without an enterprise project.
    pub unattributed: bool,
}

impl Coverage<'_> {
    /// Whether a stored registry at `location` belongs to this scope.
    pub fn covers(&self, location: &Location) -> bool {
        self.scope.covers(location)
            || (self.unattributed
                && location.project_id == self.scope.project_id
                && location.enterprise_project_id.is_none())
    }
}

/// What the store holds of one registry: as much as the diff needs, without its content.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSummary {
    /// Hash of the stored content.
    pub content_hash: String,
    /// Where it was last seen.
    pub location: Location,
    /// Its current version.
    pub version: i64,
    /// Whether it is retired (`deleted_at` set).
    pub deleted: bool,
    /// Whether this run already wrote it (through another scope, or an earlier step).
    pub written_this_run: bool,
}

/// What a listed registry needs, decided against what the store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Stored as listed: nothing to write.
    Unchanged,
    /// Not stored: a new row and its first version.
    Create,
    /// Stored under this scope with other content or location: a new version (or, when
    /// only ignored fields changed, the row refreshed without one).
    Update,
    /// Retired, and listed again: restored.
    Restore,
    /// Stored live under a scope this one does not cover: a move, unless that scope lists it
    /// too. Decided once every walk of the run has ended ([`resolve_deferred`]).
    Defer,
    /// Stored under another scope, and already written by this run: that scope keeps it.
    Drop,
}

/// Decides what a registry listed by `scope` with content `content_hash` needs.
pub fn decide(stored: Option<&StoredSummary>, content_hash: &str, scope: Coverage<'_>) -> Decision {
    let Some(old) = stored else {
        return Decision::Create;
    };
    if old.deleted {
        return if old.written_this_run {
            Decision::Drop
        } else {
            Decision::Restore
        };
    }
    if !scope.covers(&old.location) {
        return if old.written_this_run {
            Decision::Drop
        } else {
            Decision::Defer
        };
    }
    if old.content_hash == content_hash
        && scope.scope.location_for(Some(&old.location)) == old.location
    {
        Decision::Unchanged
    } else {
        Decision::Update
    }
}

/// Whether a deferred registry moves to the scope that listed it: only when no scope of the
/// run that covers where it is stored listed it, and no earlier scope moved it already.
/// `listers` are the scopes of the run that listed it.
pub fn resolve_deferred<'a>(
    stored: &StoredSummary,
    mut listers: impl Iterator<Item = Coverage<'a>>,
) -> bool {
    !stored.written_this_run
        && !stored.deleted
        && !listers.any(|lister| lister.covers(&stored.location))
}

/// What to write for a registry whose decision was [`Decision::Update`], [`Decision::Restore`]
/// or a deferred move: the new version, or the refreshed row when only fields in
/// `ignored_fields` changed (those make no version of their own).
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// A new version, with its history row.
    Version(Change),
    /// The row takes the new content (as listed, and staged), in place, without a version.
    Refresh {
        /// Where it lives (unchanged).
        location: Location,
    },
}

/// The new version of a stored registry listed by `scope` with new content `new`.
pub fn change(
    old: &Registry,
    old_location: &Location,
    old_version: i64,
    deleted: bool,
    new: &Registry,
    scope: &Scope,
    ignored_fields: &[String],
) -> Write {
    let location = scope.location_for(Some(old_location));
    let mut changed_fields: Vec<String> = registry::changed_fields(&old.raw, &new.raw)
        .into_iter()
        .filter(|field| !ignored_fields.contains(field))
        .collect();
    changed_fields.extend(location_changes(old_location, &location));
    changed_fields.sort();
    let kind = if deleted {
        ChangeKind::Restored
    } else if changed_fields.is_empty() {
        return Write::Refresh { location };
    } else {
        ChangeKind::Updated
    };
    Write::Version(Change {
        kind,
        registry: new.clone(),
        location,
        version: old_version + 1,
        changed_fields,
    })
}

/// What a complete walk's missing registries come to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetireDecision {
    /// Nothing to retire, or retiring is not allowed.
    Nothing,
    /// Retire them.
    Retire,
    /// The guard holds them.
    Hold,
}

/// Decides whether `n_gone` of the `n_live` registries a scope holds, missed by every walk of
/// the run, are retired.
pub fn retire(n_gone: i64, n_live: i64, retirement: &Retirement) -> RetireDecision {
    if !retirement.allowed || n_gone == 0 {
        RetireDecision::Nothing
    } else if retirement.guard.holds(n_gone, n_live) {
        RetireDecision::Hold
    } else {
        RetireDecision::Retire
    }
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
    use crate::sync::ALL_GRANTED_EPS;

    fn registry(id: &str, status: &str) -> Registry {
        let Value::Object(raw) = json!({"id": id, "status": status, "latest_sync_time": 1}) else {
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

    fn location(project: &str, ep: Option<&str>) -> Location {
        Location {
            project_id: project.to_owned(),
            enterprise_project_id: ep.map(str::to_owned),
            region: "cn-north-4".to_owned(),
        }
    }

    fn stored(status: &str, location: Location, deleted: bool, written: bool) -> StoredSummary {
        StoredSummary {
            content_hash: registry("r", status).content_hash,
            location,
            version: 3,
            deleted,
            written_this_run: written,
        }
    }

    fn coverage(scope: &Scope) -> Coverage<'_> {
        Coverage {
            scope,
            unattributed: false,
        }
    }

    #[test]
    fn listed_registries_are_created_updated_restored_or_left_alone() {
        let ep1 = scope("ep1");
        let hash = registry("r", "success").content_hash;
        let at_ep1 = location("p1", Some("ep1"));
        assert_eq!(decide(None, &hash, coverage(&ep1)), Decision::Create);
        let same = stored("success", at_ep1.clone(), false, false);
        assert_eq!(
            decide(Some(&same), &hash, coverage(&ep1)),
            Decision::Unchanged
        );
        let other = stored("fail", at_ep1.clone(), false, false);
        assert_eq!(
            decide(Some(&other), &hash, coverage(&ep1)),
            Decision::Update
        );
        let retired = stored("success", at_ep1, true, false);
        assert_eq!(
            decide(Some(&retired), &hash, coverage(&ep1)),
            Decision::Restore
        );
    }

    #[test]
    fn a_registry_stored_under_another_scope_waits_or_stays_with_its_owner() {
        let ep1 = scope("ep1");
        let hash = registry("r", "success").content_hash;
        let elsewhere = stored("success", location("p1", Some("ep2")), false, false);
        assert_eq!(
            decide(Some(&elsewhere), &hash, coverage(&ep1)),
            Decision::Defer
        );
        let taken = stored("success", location("p1", Some("ep2")), false, true);
        assert_eq!(decide(Some(&taken), &hash, coverage(&ep1)), Decision::Drop);
        // Another project is another scope too.
        let other_project = stored("success", location("p2", Some("ep1")), false, false);
        assert_eq!(
            decide(Some(&other_project), &hash, coverage(&ep1)),
            Decision::Defer
        );
    }

    #[test]
    fn all_granted_scope_keeps_a_known_enterprise_project() {
        let all = scope(ALL_GRANTED_EPS);
        let hash = registry("r", "success").content_hash;
        let known = stored("success", location("p1", Some("ep1")), false, false);
        assert_eq!(
            decide(Some(&known), &hash, coverage(&all)),
            Decision::Unchanged
        );
        assert_eq!(all.location_for(Some(&known.location)), known.location);
    }

    #[test]
    fn unattributed_rows_belong_to_the_scope_that_answers_for_them() {
        let ep1 = scope("ep1");
        let hash = registry("r", "success").content_hash;
        let unattributed = stored("success", location("p1", None), false, false);
        assert_eq!(
            decide(Some(&unattributed), &hash, coverage(&ep1)),
            Decision::Defer
        );
        let answering = Coverage {
            scope: &ep1,
            unattributed: true,
        };
        // Covered, and its enterprise project is learnt: a new version naming it.
        assert_eq!(
            decide(Some(&unattributed), &hash, answering),
            Decision::Update
        );
        let write = change(
            &registry("r", "success"),
            &unattributed.location,
            3,
            false,
            &registry("r", "success"),
            &ep1,
            &[],
        );
        let Write::Version(change) = write else {
            panic!("expected a version, got {write:?}")
        };
        assert_eq!(change.changed_fields, ["enterprise_project_id"]);
        assert_eq!((change.kind, change.version), (ChangeKind::Updated, 4));
    }

    #[test]
    fn a_deferred_registry_moves_only_when_no_covering_scope_listed_it() {
        let (ep1, ep2) = (scope("ep1"), scope("ep2"));
        let at_ep2 = stored("success", location("p1", Some("ep2")), false, false);
        assert!(resolve_deferred(&at_ep2, [coverage(&ep1)].into_iter()));
        assert!(!resolve_deferred(
            &at_ep2,
            [coverage(&ep1), coverage(&ep2)].into_iter()
        ));
        let moved_already = stored("success", location("p1", Some("ep2")), false, true);
        assert!(!resolve_deferred(
            &moved_already,
            [coverage(&ep1)].into_iter()
        ));
    }

    #[test]
    fn changed_fields_name_content_and_location_and_skip_ignored_ones() {
        let ep1 = scope("ep1");
        let old = registry("r", "success");
        let mut new = registry("r", "fail");
        new.raw.insert("latest_sync_time".to_owned(), json!(2));
        let write = change(
            &old,
            &location("p1", Some("ep2")),
            1,
            false,
            &new,
            &ep1,
            &["latest_sync_time".to_owned()],
        );
        let Write::Version(change) = write else {
            panic!("expected a version, got {write:?}")
        };
        assert_eq!(change.changed_fields, ["enterprise_project_id", "status"]);
        assert_eq!(change.location, location("p1", Some("ep1")));
    }

    #[test]
    fn a_change_in_ignored_fields_alone_refreshes_the_row_without_a_version() {
        let ep1 = scope("ep1");
        let old = registry("r", "success");
        let mut new = registry("r", "success");
        new.raw.insert("latest_sync_time".to_owned(), json!(2));
        let here = location("p1", Some("ep1"));
        let ignored = ["latest_sync_time".to_owned()];
        assert_eq!(
            change(&old, &here, 1, false, &new, &ep1, &ignored),
            Write::Refresh {
                location: here.clone()
            }
        );
        // Without the list, the same change is a version naming the field.
        let Write::Version(versioned) = change(&old, &here, 1, false, &new, &ep1, &[]) else {
            panic!("expected a version")
        };
        assert_eq!(versioned.changed_fields, ["latest_sync_time"]);
        // A restore is always a version, even when nothing else changed.
        let Write::Version(restored) = change(&old, &here, 1, true, &old, &ep1, &ignored) else {
            panic!("expected a version")
        };
        assert_eq!((restored.kind, restored.version), (ChangeKind::Restored, 2));
    }

    #[test]
    fn retiring_needs_leave_and_the_guard_holds_mass_deletions() {
        let allowed = |allowed, guard| Retirement {
            allowed,
            unattributed: false,
            guard,
        };
        let guard = DeletionGuard::default();
        assert_eq!(
            retire(5, 10, &allowed(false, guard)),
            RetireDecision::Nothing
        );
        assert_eq!(
            retire(0, 10, &allowed(true, guard)),
            RetireDecision::Nothing
        );
        assert_eq!(retire(5, 10, &allowed(true, guard)), RetireDecision::Retire);
        // 12 of 20 is more than half, and at least ten.
        assert_eq!(retire(12, 20, &allowed(true, guard)), RetireDecision::Hold);
        // Below the minimum count the guard never holds, whatever the share.
        assert_eq!(retire(9, 9, &allowed(true, guard)), RetireDecision::Retire);
        assert_eq!(
            retire(12, 20, &allowed(true, DeletionGuard::off())),
            RetireDecision::Retire
        );
        let message = guard.held_message(12, 20);
        assert!(message.contains("--accept-deletions"), "{message}");
        assert!(!message.contains("  "), "{message}");
    }
}

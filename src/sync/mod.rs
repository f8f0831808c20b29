//! The sync engine.
//!
//! [`run_once`] is the single entry point: `hss-sync sync`, the demo, the tests and the
//! benchmarks all call it. It records a run, walks every scope's `ListRegistry` pages
//! through [`crate::api`], and hands each scope's registries to [`crate::store`], which
//! applies the pure diff from [`plan`] in one transaction per scope.

mod engine;
pub mod plan;
pub mod scopes;

use std::fmt;
use std::time::Duration;

pub use engine::{
    record_failed_run, run_once, SyncError, SyncOptions, DEFAULT_CONCURRENCY, DEFAULT_MAX_REWALKS,
    DEFAULT_PAGE_LIMIT, MAX_OFFSET, PAGE_LIMIT_RANGE,
};
pub use plan::{DeletionGuard, ScopeCounts};

use crate::sync::plan::Location;

/// The `enterprise_project_id` value that asks HSS for every enterprise project the caller
/// may see.
pub const ALL_GRANTED_EPS: &str = "all_granted_eps";

/// One unit of a sync: a project in a region and an enterprise project (or
/// [`ALL_GRANTED_EPS`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// The region, for example `cn-north-4`.
    pub region: String,
    /// The project id (32 hex characters on Huawei Cloud).
    pub project_id: String,
    /// An enterprise project id, `0` for the default one, or [`ALL_GRANTED_EPS`].
    pub enterprise_project_id: String,
}

impl Scope {
    /// The scope of every enterprise project of a project: one `all_granted_eps` request walk.
    pub fn all_granted(region: impl Into<String>, project_id: impl Into<String>) -> Scope {
        Scope {
            region: region.into(),
            project_id: project_id.into(),
            enterprise_project_id: ALL_GRANTED_EPS.to_owned(),
        }
    }

    /// The `enterprise_project_id` column value for registries seen through this scope:
    /// `None` for [`ALL_GRANTED_EPS`], which does not say which enterprise project a
    /// registry is in.
    pub fn stored_enterprise_project_id(&self) -> Option<String> {
        (self.enterprise_project_id != ALL_GRANTED_EPS).then(|| self.enterprise_project_id.clone())
    }

    /// Whether a stored registry at `location` belongs to this scope, so that its absence
    /// from a complete walk means it is gone.
    pub fn covers(&self, location: &Location) -> bool {
        location.project_id == self.project_id
            && (self.enterprise_project_id == ALL_GRANTED_EPS
                || location.enterprise_project_id.as_deref()
                    == Some(self.enterprise_project_id.as_str()))
    }

    /// Where a registry fetched through this scope lives. An [`ALL_GRANTED_EPS`] scope keeps
    /// an enterprise project learnt earlier from a more specific scope.
    pub fn location_for(&self, previous: Option<&Location>) -> Location {
        Location {
            project_id: self.project_id.clone(),
            enterprise_project_id: self
                .stored_enterprise_project_id()
                .or_else(|| previous.and_then(|p| p.enterprise_project_id.clone())),
            region: self.region.clone(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.region, self.project_id, self.enterprise_project_id
        )
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Every scope succeeded.
    Succeeded,
    /// Some scopes failed; the others were applied.
    Partial,
    /// Every scope failed, or the store failed.
    Failed,
    /// Stopped by a signal before it finished.
    Interrupted,
}

impl RunStatus {
    /// The `status` column value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The process exit code for a run that ended so: 0 succeeded, 3 partial, 1 failed,
    /// 130 interrupted (the shell's code for SIGINT).
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Succeeded => 0,
            RunStatus::Partial => 3,
            RunStatus::Failed => 1,
            RunStatus::Interrupted => 130,
        }
    }
}

/// What one scope of a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeReport {
    /// The scope.
    pub scope: Scope,
    /// `succeeded`, `held` (deletions held by the guard), `failed` or `interrupted`.
    pub status: &'static str,
    /// Pages read.
    pub n_pages: i64,
    /// Requests sent, retries included.
    pub n_requests: i64,
    /// Requests refused for throttling.
    pub n_throttled: i64,
    /// Retries made.
    pub n_retries: i64,
    /// Walks made: more than one when the pages did not add up.
    pub n_walks: i64,
    /// `total_num` as last reported.
    pub api_total: Option<i64>,
    /// Row counts.
    pub counts: ScopeCounts,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    /// The `sync_runs` id.
    pub run_id: i64,
    /// How it ended.
    pub status: RunStatus,
    /// Every scope, in the order run.
    pub scopes: Vec<ScopeReport>,
    /// Row counts over all scopes.
    pub counts: ScopeCounts,
    /// Pages read.
    pub n_pages: i64,
    /// Requests sent, retries included.
    pub n_requests: i64,
    /// Requests refused for throttling.
    pub n_throttled: i64,
    /// Retries made.
    pub n_retries: i64,
    /// Wall time.
    pub duration: Duration,
    /// Why the credentials were refused, when they were: the run stopped there.
    pub credentials_refused: Option<String>,
}

impl RunReport {
    /// Scopes that failed.
    pub fn n_scopes_failed(&self) -> usize {
        self.scopes.iter().filter(|s| s.status == "failed").count()
    }

    /// Scopes whose deletions the mass-deletion guard held.
    pub fn n_scopes_held(&self) -> usize {
        self.scopes.iter().filter(|s| s.status == "held").count()
    }

    /// The one-line summary printed at the end of `hss-sync sync`.
    pub fn summary_line(&self) -> String {
        let c = &self.counts;
        format!(
            "run {} {}: {} scopes ({} failed{}), {} pages, {} requests ({} throttled), {} registries fetched: {} created, {} updated, {} unchanged, {} deleted, {} restored{} in {:.1}s",
            self.run_id,
            self.status.as_str(),
            self.scopes.len(),
            self.n_scopes_failed(),
            match self.n_scopes_held() {
                0 => String::new(),
                n => format!(", {n} held"),
            },
            self.n_pages,
            self.n_requests,
            self.n_throttled,
            c.n_fetched,
            c.n_inserted,
            c.n_updated,
            c.n_unchanged,
            c.n_deleted,
            c.n_restored,
            match c.n_held {
                0 => String::new(),
                n => format!(", {n} deletions held"),
            },
            self.duration.as_secs_f64()
        )
    }
}

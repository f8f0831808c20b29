//! The sync engine.
//!
//! [`run_once`] is the single entry point: `hss-sync sync`, the demo, the tests and the
//! benchmarks all call it. It records a run, walks every scope's `ListRegistry` pages
//! through [`crate::api`], and hands each scope's registries to [`crate::store`], which
//! applies the pure diff from [`plan`] in one transaction per scope.

mod engine;
pub mod plan;
pub mod scopes;
mod status;

use std::fmt;
use std::time::Duration;

pub use engine::{
    record_failed_run, run_once, SyncError, SyncOptions, DEFAULT_CONCURRENCY,
    DEFAULT_HISTORY_IGNORE_FIELDS, DEFAULT_MAX_REWALKS, DEFAULT_PAGE_LIMIT, MAX_OFFSET,
    PAGE_LIMIT_RANGE,
};
pub use plan::{DeletionGuard, ScopeCounts};
pub use status::{RunStatus, ScopeStatus, Trigger};

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

/// What a run reports as it goes, for a progress display. The engine knows nothing of how
/// it is shown; every method does nothing by default.
pub trait Progress: Send + Sync + std::fmt::Debug {
    /// The run will walk and apply `n_scopes` scopes.
    fn started(&self, _n_scopes: usize) {}
    /// A page of `scope` came in; the walk holds `n_registries` so far.
    fn page_walked(&self, _scope: &Scope, _n_registries: usize) {}
    /// One more scope was applied.
    fn scope_applied(&self) {}
    /// The run ended.
    fn finished(&self) {}
}

/// A progress display that shows nothing.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A run set up from configuration that could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Setting the run up failed before the first ListRegistry request (discovery, clients);
    /// the run is recorded failed.
    #[error(transparent)]
    Setup(#[from] scopes::SetupError),
    /// The run itself failed.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// Sets a run up from `config` (credentials, discovery, one client per endpoint) and runs it:
/// the one entry point that the command line, the service, the demo and the benchmarks share.
///
/// # Errors
///
/// [`RunError::Setup`] when IAM or EPS cannot be asked during discovery or a region has no
/// endpoint (the run is recorded failed); [`RunError::Sync`] when the store fails.
pub async fn run_configured(
    config: &crate::config::SyncConfig,
    store: &crate::store::Store,
    trigger: Trigger,
    scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
    progress: std::sync::Arc<dyn Progress>,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<RunReport, RunError> {
    tracing::info!(
        auth = %config.auth_description(),
        database = %config.database_url_redacted(),
        discover = config.discover,
        "starting a sync with {}",
        config.auth_description()
    );
    let prepared = match scopes::prepare(config, |name| std::env::var(name).ok()).await {
        Ok(prepared) => prepared,
        Err(e) => {
            // Discovery talks to IAM and EPS before the first ListRegistry request; a
            // failure there is a failed run too, and the audit trail says so.
            record_failed_run(store, trigger, scheduled_at, &crate::errors::chain(&e)).await;
            return Err(e.into());
        }
    };
    // Names are for reports only: failing to keep them does not stop the sync.
    if let Err(e) = store
        .record_catalog(&prepared.catalog, crate::store::now())
        .await
    {
        tracing::warn!(
            "project and enterprise project names were not recorded: {}",
            crate::errors::chain(&e)
        );
    }
    let options = SyncOptions {
        page_limit: config.page_limit,
        filters: config.filters.clone(),
        trigger,
        progress,
        cancel,
        concurrency: config.concurrency,
        max_rewalks: config.max_rewalks,
        scheduled_at,
        confirm_deletions: config.confirm_deletions,
        deletion_guard: config.deletion_guard,
        projects_with_every_enterprise_project: prepared.projects_with_every_enterprise_project,
        history_ignore_fields: config.history_ignore_fields.clone(),
    };
    Ok(run_once(&prepared.clients, store, &prepared.scopes, &options).await?)
}

/// What one scope of a run did.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeReport {
    /// The scope.
    pub scope: Scope,
    /// How it ended: succeeded, held (deletions held by the guard), failed or interrupted.
    pub status: ScopeStatus,
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
        self.scopes
            .iter()
            .filter(|s| s.status == ScopeStatus::Failed)
            .count()
    }

    /// Scopes whose deletions the mass-deletion guard held.
    pub fn n_scopes_held(&self) -> usize {
        self.scopes
            .iter()
            .filter(|s| s.status == ScopeStatus::Held)
            .count()
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

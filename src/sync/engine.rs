//! One sync run: walk every scope, apply each, record the run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::retry::is_credential_refusal;
use crate::api::{
    ApiError, Attempts, HssClient, HssClients, ListRegistryQuery, RegistryFilters, RegistryPage,
};
use crate::errors::chain;
use crate::registry::Registry;
use crate::store::{now, RunTotals, ScopeResult, Store, StoreError};
use crate::sync::plan::{DeletionGuard, Retirement};
use crate::sync::{
    NoProgress, Progress, RunReport, RunStatus, Scope, ScopeCounts, ScopeReport, ScopeStatus,
    Trigger, ALL_GRANTED_EPS,
};

/// The largest `offset` ListRegistry accepts. A walk that would need a larger one fails its
/// scope rather than send a request the API rejects.
pub const MAX_OFFSET: u32 = 2_000_000;

/// The page size by default: the API's maximum, so that a run spends as few of the
/// five-calls-a-minute quota as it can.
pub const DEFAULT_PAGE_LIMIT: u32 = 200;

/// The smallest and largest `limit` the API accepts.
pub const PAGE_LIMIT_RANGE: std::ops::RangeInclusive<u32> = 10..=200;

/// Scopes walked at once by default: enough to hide latency, few enough that one
/// credential's quota is shared by a handful of walks.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// How often a scope whose pages did not add up is walked again before it fails, by default.
pub const DEFAULT_MAX_REWALKS: u32 = 2;

/// How a run is carried out.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// `limit` of each page, 10 to 200.
    pub page_limit: u32,
    /// Filters sent with every request. A filtered walk sees only part of a scope, so it
    /// never retires anything.
    pub filters: RegistryFilters,
    /// What started the run, recorded in `sync_runs.trigger`.
    pub trigger: Trigger,
    /// Told of the run's progress, for a display; the engine draws nothing itself.
    pub progress: Arc<dyn Progress>,
    /// Cancelled on SIGINT/SIGTERM: the run stops at the next page or scope boundary and
    /// is recorded `interrupted`.
    pub cancel: CancellationToken,
    /// Scopes walked at once; pages within a scope are always walked in order.
    pub concurrency: usize,
    /// How often a scope whose pages did not add up is walked again before it fails.
    pub max_rewalks: u32,
    /// The schedule tick this run is for, recorded in `sync_runs.scheduled_at`.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Walk a scope a second time before retiring what it misses.
    pub confirm_deletions: bool,
    /// The guard that holds a scope's deletions when a walk misses too much of it.
    pub deletion_guard: DeletionGuard,
    /// Projects whose scopes in this run name every enterprise project of the account (as
    /// EPS discovery lists them): their rows recorded without an enterprise project (through
    /// `all_granted_eps`) are reconciled when every one of those scopes completes.
    pub projects_with_every_enterprise_project: BTreeSet<String>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_limit: DEFAULT_PAGE_LIMIT,
            filters: RegistryFilters::default(),
            trigger: Trigger::Library,
            progress: Arc::new(NoProgress),
            cancel: CancellationToken::new(),
            concurrency: DEFAULT_CONCURRENCY,
            max_rewalks: DEFAULT_MAX_REWALKS,
            scheduled_at: None,
            confirm_deletions: true,
            deletion_guard: DeletionGuard::default(),
            projects_with_every_enterprise_project: BTreeSet::new(),
        }
    }
}

/// A run that could not be carried out or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The run had nothing to do.
    #[error("no scopes to sync: give at least one project id, or --discover")]
    NoScopes,
    /// The store failed; what was committed before stays, the rest was rolled back.
    #[error("sync run {run_id} failed")]
    Store {
        /// The run, or 0 when it could not even be recorded.
        run_id: i64,
        /// The store's error.
        source: StoreError,
    },
}

/// Runs one sync of `scopes`: records the run, walks every scope, applies each, records the
/// outcome, and returns the report.
///
/// Scopes are walked concurrently (at most `options.concurrency` at once), then applied one
/// by one, each in one transaction. API failures fail their scope, not the run: they are
/// recorded in `sync_run_scopes` and the run ends `partial` (or `failed` when no scope
/// succeeded). A registry is retired only when every scope of the run completed its walk,
/// since a registry can move to any scope, and the scope that failed might hold it.
/// Credentials refused once stop every scope before its next request, and fail the run.
///
/// # Errors
///
/// [`SyncError::Store`] when the database fails; the run and its scopes are still recorded
/// with what was committed, if the database answers.
#[tracing::instrument(skip_all, fields(n_scopes = scopes.len(), trigger = %options.trigger))]
pub async fn run_once(
    clients: &HssClients,
    store: &Store,
    scopes: &[Scope],
    options: &SyncOptions,
) -> Result<RunReport, SyncError> {
    if scopes.is_empty() {
        return Err(SyncError::NoScopes);
    }
    let started = Instant::now();
    let run_id = store
        .begin_run(
            options.trigger,
            scopes.len() as i64,
            now(),
            options.scheduled_at,
        )
        .await
        .map_err(|source| SyncError::Store { run_id: 0, source })?;
    info!(
        run.id = run_id,
        "sync run {run_id} started with {} scopes",
        scopes.len()
    );
    metrics::gauge!("hss_sync_run_in_progress").set(1.0);
    options.progress.started(scopes.len());
    let outcome = run_scopes(clients, store, scopes, options, run_id).await;
    metrics::gauge!("hss_sync_run_in_progress").set(0.0);
    options.progress.finished();

    let mut report = RunReport {
        run_id,
        status: RunStatus::Succeeded,
        scopes: Vec::new(),
        counts: ScopeCounts::default(),
        n_pages: 0,
        n_requests: 0,
        n_throttled: 0,
        n_retries: 0,
        duration: Default::default(),
        credentials_refused: outcome.refused.clone(),
    };
    for scope_report in outcome.reports {
        report.n_pages += scope_report.n_pages;
        report.n_requests += scope_report.n_requests;
        report.n_throttled += scope_report.n_throttled;
        report.n_retries += scope_report.n_retries;
        report.counts.add(&scope_report.counts);
        report.scopes.push(scope_report);
    }
    let n_failed = report.n_scopes_failed();
    let n_applied = report
        .scopes
        .iter()
        .filter(|s| matches!(s.status, ScopeStatus::Succeeded | ScopeStatus::Held))
        .count();
    report.status = if outcome.refused.is_some() {
        RunStatus::Failed
    } else if options.cancel.is_cancelled() {
        RunStatus::Interrupted
    } else if n_failed == 0 && report.n_scopes_held() == 0 && outcome.store_error.is_none() {
        RunStatus::Succeeded
    } else if n_applied > 0 {
        RunStatus::Partial
    } else {
        RunStatus::Failed
    };
    report.duration = started.elapsed();
    let error = outcome
        .refused
        .clone()
        .or_else(|| {
            outcome
                .store_error
                .as_ref()
                .map(|e| format!("database: {}", chain(e)))
        })
        .or_else(|| {
            report
                .scopes
                .iter()
                .find_map(|s| s.error.as_ref().map(|e| format!("scope {}: {e}", s.scope)))
        });
    let totals = totals_of(&report, scopes.len(), error);
    let finished = store.finish_run(run_id, &totals, now()).await;
    if let Some(source) = outcome.store_error {
        if let Err(e) = finished {
            // The database may be gone; the error that matters is the first one.
            warn!(
                run.id = run_id,
                "could not record the failure of run {run_id}: {}",
                chain(&e)
            );
        }
        return Err(SyncError::Store { run_id, source });
    }
    finished.map_err(|source| SyncError::Store { run_id, source })?;
    let c = &report.counts;
    info!(
        run.id = run_id,
        run.status = report.status.as_str(),
        n_scopes = scopes.len(),
        n_scopes_failed = n_failed,
        n_scopes_held = report.n_scopes_held(),
        n_pages = report.n_pages,
        n_requests = report.n_requests,
        n_throttled = report.n_throttled,
        n_fetched = c.n_fetched,
        n_inserted = c.n_inserted,
        n_updated = c.n_updated,
        n_unchanged = c.n_unchanged,
        n_deleted = c.n_deleted,
        n_restored = c.n_restored,
        n_held = c.n_held,
        duration_ms = report.duration.as_millis() as u64,
        "sync run {run_id} {}",
        report.status.as_str()
    );
    Ok(report)
}

/// Records a run that failed before it could start walking (for example when discovery
/// could not list the account's projects), so the audit trail shows it. A database that
/// fails here too is logged, not reported: the first error is the one that matters.
pub async fn record_failed_run(
    store: &Store,
    trigger: Trigger,
    scheduled_at: Option<DateTime<Utc>>,
    error: &str,
) {
    let result = async {
        let run_id = store.begin_run(trigger, 0, now(), scheduled_at).await?;
        let totals = RunTotals {
            status: RunStatus::Failed,
            error: Some(error.to_owned()),
            ..RunTotals::default()
        };
        store.finish_run(run_id, &totals, now()).await?;
        Ok::<_, StoreError>(run_id)
    }
    .await;
    if let Err(e) = result {
        warn!("could not record the failed run: {}", chain(&e));
    }
}

/// What walking and applying every scope of a run came to.
struct ScopesOutcome {
    /// One report per scope, in the order given.
    reports: Vec<ScopeReport>,
    /// The first database failure; scopes after it were not applied.
    store_error: Option<StoreError>,
    /// Why the credentials were refused, when they were.
    refused: Option<String>,
}

/// Walks every scope, decides what may be retired, and applies each scope in order.
///
/// Every scope is walked before any is applied: a registry may move between any two scopes
/// (enterprise projects, or even projects), so a registry is retired only when every walk of
/// the run completed and none saw it. Applying is serialised: one writer at a time suits
/// SQLite and keeps PostgreSQL transactions short.
async fn run_scopes(
    clients: &HssClients,
    store: &Store,
    scopes: &[Scope],
    options: &SyncOptions,
    run_id: i64,
) -> ScopesOutcome {
    let mut scope_row_ids = Vec::with_capacity(scopes.len());
    for scope in scopes {
        match store.begin_scope(run_id, scope, now()).await {
            Ok(id) => scope_row_ids.push(id),
            Err(e) => {
                // Nothing was walked or written: the run is failed and its started scopes
                // are closed by the next run's recovery if this database stays down.
                return ScopesOutcome {
                    reports: Vec::new(),
                    store_error: Some(e),
                    refused: None,
                };
            }
        }
    }
    let gate = AuthGate::default();
    let walk_slots = Semaphore::new(options.concurrency.max(1));
    let mut walks: Vec<Walk> = join_all(scopes.iter().map(|scope| {
        let (walk_slots, gate) = (&walk_slots, &gate);
        async move {
            let _slot = walk_slots
                .acquire()
                .await
                .expect("semaphore is never closed");
            match clients.for_region(&scope.region) {
                Some(client) => walk_with_rewalks(client, scope, options, gate).await,
                None => Walk::failed(format!(
                    "no HSS endpoint is configured for region {}",
                    scope.region
                )),
            }
        }
    }))
    .await;
    let unattributed = unattributed_scopes(scopes, options);
    let mut all_complete = walks.iter().all(|w| w.outcome == WalkOutcome::Complete)
        && !options.cancel.is_cancelled()
        && gate.refused().is_none();
    if all_complete && options.confirm_deletions {
        match confirm_deletions(clients, store, scopes, &unattributed, walks, options, &gate).await
        {
            Ok(confirmed) => walks = confirmed,
            Err(e) => {
                return close_all(store, scopes, &scope_row_ids, run_id, Vec::new(), e).await;
            }
        }
        all_complete = walks.iter().all(|w| w.outcome == WalkOutcome::Complete)
            && !options.cancel.is_cancelled()
            && gate.refused().is_none();
    }
    if let Err(e) = assign_owners(store, scopes, &mut walks).await {
        return close_all(store, scopes, &scope_row_ids, run_id, walks, e).await;
    }
    let seen_in_run: HashSet<String> = walks
        .iter()
        .flat_map(|w| w.registries.iter().map(|r| r.id.clone()))
        .collect();
    if !all_complete {
        let n_held_back = walks
            .iter()
            .filter(|w| w.outcome == WalkOutcome::Complete)
            .count();
        if n_held_back > 0 {
            info!(
                "{n_held_back} scopes completed, but not every scope of the run did: nothing is retired this run"
            );
        }
    }
    let refused = gate.refused();
    let mut reports = Vec::with_capacity(scopes.len());
    let mut store_error = None;
    for (index, (scope, walk)) in scopes.iter().zip(walks).enumerate() {
        let retirement = Retirement {
            allowed: all_complete,
            seen_in_run: &seen_in_run,
            unattributed: unattributed.contains(&index),
            guard: options.deletion_guard,
        };
        if store_error.is_some() {
            reports.push(not_applied(
                scope,
                walk,
                "not applied: a database write failed earlier in the run",
            ));
            continue;
        }
        match apply_walk(store, run_id, scope, scope_row_ids[index], walk, retirement).await {
            Ok(report) => reports.push(report),
            Err((report, e)) => {
                warn!(scope = %scope, "scope {scope} could not be written: {}", chain(&e));
                reports.push(report);
                store_error = Some(e);
            }
        }
        options.progress.scope_applied();
    }
    if store_error.is_some() {
        close_unapplied(store, &reports, &scope_row_ids, run_id).await;
    }
    ScopesOutcome {
        reports,
        store_error,
        refused,
    }
}

/// Closes every scope row as failed after a database error before anything was applied.
async fn close_all(
    store: &Store,
    scopes: &[Scope],
    scope_row_ids: &[i64],
    run_id: i64,
    walks: Vec<Walk>,
    error: StoreError,
) -> ScopesOutcome {
    let mut walks = walks.into_iter();
    let reports: Vec<ScopeReport> = scopes
        .iter()
        .map(|scope| {
            let walk = walks.next().unwrap_or_else(|| Walk::failed(String::new()));
            not_applied(
                scope,
                walk,
                "not applied: the database failed before this scope was written",
            )
        })
        .collect();
    close_unapplied(store, &reports, scope_row_ids, run_id).await;
    ScopesOutcome {
        reports,
        store_error: Some(error),
        refused: None,
    }
}

/// Records the scopes that were not applied with their final status, as far as the
/// database still answers; rows it cannot close are recovered by the next run.
async fn close_unapplied(
    store: &Store,
    reports: &[ScopeReport],
    scope_row_ids: &[i64],
    run_id: i64,
) {
    let seen = HashSet::new();
    for (report, scope_row_id) in reports.iter().zip(scope_row_ids) {
        if report.status != ScopeStatus::Failed || report.counts != ScopeCounts::default() {
            continue;
        }
        let result = ScopeResult {
            scope_row_id: *scope_row_id,
            run_id,
            scope: &report.scope,
            registries: &[],
            retirement: Retirement {
                allowed: false,
                seen_in_run: &seen,
                unattributed: false,
                guard: DeletionGuard::default(),
            },
            status: report.status,
            n_pages: report.n_pages,
            n_requests: report.n_requests,
            n_throttled: report.n_throttled,
            n_retries: report.n_retries,
            api_total: report.api_total,
            error: report.error.as_deref(),
            now: now(),
        };
        if store.close_scope_without_changes(&result).await.is_err() {
            return;
        }
    }
}

/// The report of a scope that was walked but not written.
fn not_applied(scope: &Scope, walk: Walk, why: &str) -> ScopeReport {
    let error = match &walk.outcome {
        WalkOutcome::Failed(e) | WalkOutcome::Inconsistent(e) if !e.is_empty() => {
            format!("{e}; {why}")
        }
        _ => why.to_owned(),
    };
    walk.report(scope, ScopeStatus::Failed, Some(error))
}

/// The scopes (by index) that answer for their project's rows recorded without an
/// enterprise project: the first scope of each project whose scopes name every enterprise
/// project of the account.
fn unattributed_scopes(scopes: &[Scope], options: &SyncOptions) -> HashSet<usize> {
    let mut chosen = HashSet::new();
    let mut projects_done = HashSet::new();
    for (index, scope) in scopes.iter().enumerate() {
        if scope.enterprise_project_id != ALL_GRANTED_EPS
            && options
                .projects_with_every_enterprise_project
                .contains(&scope.project_id)
            && projects_done.insert(scope.project_id.as_str())
        {
            chosen.insert(index);
        }
    }
    chosen
}

/// Before a complete run retires anything, a second walk of each scope that misses something
/// confirms it. Offset paging over a list that changes during the walk can skip an item
/// without any count showing it (one registry deleted before the walk's position and one
/// added after it); a registry missing from two walks in a row is really gone. Costs
/// requests only when something is missing.
async fn confirm_deletions(
    clients: &HssClients,
    store: &Store,
    scopes: &[Scope],
    unattributed: &HashSet<usize>,
    walks: Vec<Walk>,
    options: &SyncOptions,
    gate: &AuthGate,
) -> Result<Vec<Walk>, StoreError> {
    let seen_in_run: HashSet<String> = walks
        .iter()
        .flat_map(|w| w.registries.iter().map(|r| r.id.clone()))
        .collect();
    // The confirming walks go as concurrently as the first ones did.
    let walk_slots = Semaphore::new(options.concurrency.max(1));
    let confirmed = join_all(scopes.iter().zip(walks).enumerate().map(
        |(index, (scope, first))| {
            let (seen_in_run, walk_slots) = (&seen_in_run, &walk_slots);
            async move {
                let live = store
                    .live_ids_in_scope(scope, unattributed.contains(&index))
                    .await?;
                let n_missing = live.iter().filter(|id| !seen_in_run.contains(*id)).count();
                let Some(client) = clients.for_region(&scope.region).filter(|_| n_missing > 0)
                else {
                    return Ok(first);
                };
                info!(scope = %scope, n_missing, "scope {scope}: {n_missing} registries missing; walking it again to confirm");
                let _slot = walk_slots
                    .acquire()
                    .await
                    .expect("semaphore is never closed");
                let second = walk_with_rewalks(client, scope, options, gate).await;
                Ok(merge_confirming_walk(first, second))
            }
        },
    ))
    .await;
    confirmed.into_iter().collect()
}

/// The first walk of a scope with its confirming walk: what either saw is present, with the
/// second walk's content, the newer; a confirming walk that fails fails the scope.
fn merge_confirming_walk(first: Walk, second: Walk) -> Walk {
    let mut merged = Walk {
        n_pages: first.n_pages + second.n_pages,
        n_walks: first.n_walks + second.n_walks,
        attempts: {
            let mut attempts = first.attempts;
            attempts.add(&second.attempts);
            attempts
        },
        ..first
    };
    match second.outcome {
        WalkOutcome::Complete => {
            let second_ids: HashSet<&str> =
                second.registries.iter().map(|r| r.id.as_str()).collect();
            let first_only: Vec<Registry> = merged
                .registries
                .into_iter()
                .filter(|r| !second_ids.contains(r.id.as_str()))
                .collect();
            merged.registries = second.registries;
            merged.registries.extend(first_only);
            merged.api_total = second.api_total;
        }
        WalkOutcome::Interrupted => merged.outcome = WalkOutcome::Interrupted,
        WalkOutcome::Failed(e) | WalkOutcome::Inconsistent(e) => {
            merged.outcome =
                WalkOutcome::Failed(format!("the walk that confirms deletions failed: {e}"));
        }
        // Not reached (the first walk had no filters, nor has the second), but never retire on it.
        WalkOutcome::Filtered => merged.outcome = WalkOutcome::Filtered,
    }
    merged
}

/// Ids that more than one scope returned get one owner, and the other scopes drop them, so
/// a registry listed under two projects (or two enterprise projects) does not move back and
/// forth on every run. The owner is the scope that already holds it, when that scope saw it;
/// otherwise the first such scope in scope order. Each such id is logged once per process.
async fn assign_owners(
    store: &Store,
    scopes: &[Scope],
    walks: &mut [Walk],
) -> Result<(), StoreError> {
    let mut seen_by: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, walk) in walks.iter().enumerate() {
        for registry in &walk.registries {
            seen_by.entry(registry.id.as_str()).or_default().push(index);
        }
    }
    let shared: Vec<&str> = seen_by
        .iter()
        .filter(|(_, indexes)| indexes.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    if shared.is_empty() {
        return Ok(());
    }
    let stored = store.locations_of(&shared).await?;
    let mut dropped: Vec<HashSet<String>> = vec![HashSet::new(); walks.len()];
    for id in shared {
        let indexes = &seen_by[id];
        let owner = stored
            .get(id)
            .filter(|(_, deleted)| !deleted)
            .and_then(|(location, _)| {
                indexes
                    .iter()
                    .copied()
                    .find(|&i| scopes[i].covers(location))
            })
            .unwrap_or_else(|| {
                *indexes
                    .iter()
                    .min_by_key(|&&i| &scopes[i])
                    .expect("a shared id has scopes")
            });
        for &index in indexes.iter().filter(|&&i| i != owner) {
            dropped[index].insert(id.to_owned());
        }
        warn_once(id, &scopes[owner], indexes.iter().map(|&i| &scopes[i]));
    }
    for (walk, dropped) in walks.iter_mut().zip(dropped) {
        if !dropped.is_empty() {
            walk.registries.retain(|r| !dropped.contains(&r.id));
        }
    }
    Ok(())
}

fn warn_once<'a>(id: &str, owner: &Scope, scopes: impl Iterator<Item = &'a Scope>) {
    static WARNED: StdMutex<Option<HashSet<String>>> = StdMutex::new(None);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned
        .get_or_insert_with(HashSet::new)
        .insert(id.to_owned())
    {
        let names: Vec<String> = scopes.map(|s| s.to_string()).collect();
        warn!(
            registry.id = id,
            "registry {id} is listed by several scopes ({}); it is kept in {owner}",
            names.join(", ")
        );
    }
}

async fn apply_walk(
    store: &Store,
    run_id: i64,
    scope: &Scope,
    scope_row_id: i64,
    walk: Walk,
    retirement: Retirement<'_>,
) -> Result<ScopeReport, (ScopeReport, StoreError)> {
    let status = match &walk.outcome {
        WalkOutcome::Complete | WalkOutcome::Filtered => ScopeStatus::Succeeded,
        WalkOutcome::Failed(_) | WalkOutcome::Inconsistent(_) => ScopeStatus::Failed,
        WalkOutcome::Interrupted => ScopeStatus::Interrupted,
    };
    let error = match &walk.outcome {
        WalkOutcome::Failed(e) | WalkOutcome::Inconsistent(e) => Some(e.clone()),
        _ => None,
    };
    let result = ScopeResult {
        scope_row_id,
        run_id,
        scope,
        registries: &walk.registries,
        retirement: Retirement {
            allowed: retirement.allowed && walk.outcome == WalkOutcome::Complete,
            ..retirement
        },
        status,
        n_pages: walk.n_pages,
        n_requests: walk.attempts.n_requests.into(),
        n_throttled: walk.attempts.n_throttled.into(),
        n_retries: walk.attempts.n_retries.into(),
        api_total: walk.api_total,
        error: error.as_deref(),
        now: now(),
    };
    let mut report = walk.report(scope, status, error.clone());
    let applied = if matches!(walk.outcome, WalkOutcome::Interrupted) {
        store
            .close_scope_without_changes(&result)
            .await
            .map(|()| (ScopeCounts::default(), None))
    } else {
        store.apply_scope(&result).await
    };
    match applied {
        Ok((counts, held)) => {
            report.counts = counts;
            if let Some(held) = held {
                metrics::counter!("hss_sync_deletions_held_total").increment(1);
                warn!(scope = %scope, n_held = counts.n_held, "scope {scope}: {held}");
                report.status = ScopeStatus::Held;
                report.error = Some(held);
            }
        }
        Err(e) => {
            report.status = ScopeStatus::Failed;
            report.error = Some(format!(
                "{}not written: database: {}",
                report
                    .error
                    .as_deref()
                    .map(|e| format!("{e}; "))
                    .unwrap_or_default(),
                chain(&e)
            ));
            return Err((report, e));
        }
    }
    if report.status == ScopeStatus::Failed {
        metrics::counter!("hss_sync_scope_failures_total").increment(1);
        // Logged once, here, where the failure is handled.
        warn!(
            scope = %scope,
            project_id = %scope.project_id,
            enterprise_project_id = %scope.enterprise_project_id,
            n_pages = walk.n_pages,
            n_requests = walk.attempts.n_requests,
            "scope {scope} failed, nothing retired: {}",
            report.error.as_deref().unwrap_or_default()
        );
    }
    Ok(report)
}

/// The run's gate on authentication. Until one request of the run has been accepted, only
/// one goes at a time; once one is refused for its credentials, no scope sends another.
/// Huawei locks an access key for five minutes after five refused requests, so a wrong
/// secret must cost one refused request, not one per scope.
#[derive(Default)]
struct AuthGate {
    /// What the run knows of its credentials.
    state: StdMutex<GateState>,
    /// Held by the one request that goes while the credentials are unproven.
    probe: Mutex<()>,
}

#[derive(Clone, Debug, Default, PartialEq)]
enum GateState {
    /// No request has been answered past authentication yet.
    #[default]
    Unproven,
    /// A request was answered past authentication.
    Proven,
    /// A request was refused for its credentials: why.
    Refused(String),
}

impl AuthGate {
    fn state(&self) -> GateState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until a request may go: at once when proven, alone while unproven, never
    /// when refused (the error says why).
    async fn enter(&self) -> Result<Option<MutexGuard<'_, ()>>, String> {
        match self.state() {
            GateState::Proven => return Ok(None),
            GateState::Refused(why) => return Err(why),
            GateState::Unproven => {}
        }
        let probe = self.probe.lock().await;
        match self.state() {
            GateState::Proven => Ok(None),
            GateState::Refused(why) => Err(why),
            GateState::Unproven => Ok(Some(probe)),
        }
    }

    /// Learns from an answer: any answer past authentication proves the credentials, a
    /// refusal of them closes the gate.
    fn record(&self, result: &Result<RegistryPage, ApiError>, hint: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, GateState::Refused(_)) {
            return;
        }
        match result {
            Err(error) if is_credential_refusal(error) => {
                *state = GateState::Refused(format!("{hint} ({error})"));
            }
            Ok(_) | Err(ApiError::Status { .. }) => *state = GateState::Proven,
            Err(_) => {}
        }
    }

    fn refused(&self) -> Option<String> {
        match self.state() {
            GateState::Refused(why) => Some(why),
            _ => None,
        }
    }
}

/// How a walk ended.
#[derive(Debug, PartialEq)]
enum WalkOutcome {
    /// Every page fetched and the distinct ids agree with `total_num`.
    Complete,
    /// Every page fetched, but with filters, so absence proves nothing.
    Filtered,
    /// A request failed or an item was unusable; nothing may be retired.
    Failed(String),
    /// The pages did not add up: the list changed during the walk.
    Inconsistent(String),
    /// Cancelled between pages.
    Interrupted,
}

/// What walking one scope produced.
#[derive(Debug)]
struct Walk {
    registries: Vec<Registry>,
    n_pages: i64,
    attempts: Attempts,
    n_walks: u32,
    api_total: Option<i64>,
    outcome: WalkOutcome,
}

impl Walk {
    /// The report of the scope this walk walked, before anything is written.
    fn report(&self, scope: &Scope, status: ScopeStatus, error: Option<String>) -> ScopeReport {
        ScopeReport {
            scope: scope.clone(),
            status,
            n_pages: self.n_pages,
            n_requests: self.attempts.n_requests.into(),
            n_throttled: self.attempts.n_throttled.into(),
            n_retries: self.attempts.n_retries.into(),
            n_walks: self.n_walks.into(),
            api_total: self.api_total,
            counts: ScopeCounts::default(),
            error,
        }
    }

    fn failed(error: String) -> Walk {
        Walk {
            registries: Vec::new(),
            n_pages: 0,
            attempts: Attempts::default(),
            n_walks: 0,
            api_total: None,
            outcome: WalkOutcome::Failed(error),
        }
    }
}

/// Walks a scope, and walks it again (up to `max_rewalks` times) while its pages do not add
/// up. Offset paging over a list that changes during the walk skips or repeats items; a
/// fresh walk usually sees a settled list.
async fn walk_with_rewalks(
    client: &HssClient,
    scope: &Scope,
    options: &SyncOptions,
    gate: &AuthGate,
) -> Walk {
    let mut n_pages = 0;
    let mut attempts = Attempts::default();
    let mut n_walks = 0;
    loop {
        let mut walk = walk_scope(client, scope, options, gate).await;
        n_walks += 1;
        n_pages += walk.n_pages;
        attempts.add(&walk.attempts);
        let retry =
            matches!(walk.outcome, WalkOutcome::Inconsistent(_)) && n_walks <= options.max_rewalks;
        if !retry {
            walk.n_pages = n_pages;
            walk.attempts = attempts;
            walk.n_walks = n_walks;
            if let WalkOutcome::Inconsistent(reason) = &walk.outcome {
                walk.outcome = WalkOutcome::Inconsistent(format!(
                    "{reason}; still inconsistent after {n_walks} walks, so nothing was retired"
                ));
            }
            return walk;
        }
        if let WalkOutcome::Inconsistent(reason) = &walk.outcome {
            info!(scope = %scope, n_walks, "scope {scope}: {reason}; walking it again");
        }
    }
}

/// Walks every page of one scope: `offset` advances by the items actually returned, and the
/// walk ends on an empty page or when `offset` reaches `total_num`.
async fn walk_scope(
    client: &HssClient,
    scope: &Scope,
    options: &SyncOptions,
    gate: &AuthGate,
) -> Walk {
    let mut walk = Walk {
        registries: Vec::new(),
        n_pages: 0,
        attempts: Attempts::default(),
        n_walks: 1,
        api_total: None,
        outcome: WalkOutcome::Complete,
    };
    let mut seen = HashSet::new();
    let mut n_duplicates = 0usize;
    let mut total_changed = false;
    let mut offset: u32 = 0;
    loop {
        if options.cancel.is_cancelled() {
            walk.outcome = WalkOutcome::Interrupted;
            return walk;
        }
        if offset >= MAX_OFFSET {
            walk.outcome = WalkOutcome::Failed(format!(
                "scope holds more than {MAX_OFFSET} registries, the largest offset ListRegistry accepts"
            ));
            return walk;
        }
        let query = ListRegistryQuery {
            enterprise_project_id: Some(scope.enterprise_project_id.clone()),
            offset,
            limit: options.page_limit,
            filters: options.filters.clone(),
        };
        let pass = tokio::select! {
            pass = gate.enter() => pass,
            () = options.cancel.cancelled() => {
                walk.outcome = WalkOutcome::Interrupted;
                return walk;
            }
        };
        let probe = match pass {
            Ok(pass) => pass,
            Err(why) => {
                walk.outcome = WalkOutcome::Failed(format!("stopped: {why}"));
                return walk;
            }
        };
        let page = tokio::select! {
            page = client.list_registries(&scope.project_id, &query, &mut walk.attempts) => page,
            () = options.cancel.cancelled() => {
                walk.outcome = WalkOutcome::Interrupted;
                return walk;
            }
        };
        gate.record(&page, client.refusal_hint());
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                walk.outcome = WalkOutcome::Failed(e.to_string());
                return walk;
            }
        };
        drop(probe);
        walk.n_pages += 1;
        let total = page.total_num;
        if walk.api_total.is_some_and(|previous| previous != total) {
            total_changed = true;
        }
        walk.api_total = Some(total);
        if page.items.is_empty() {
            break;
        }
        let n_items = page.items.len();
        for (i, item) in page.items.into_iter().enumerate() {
            match Registry::from_raw(item) {
                Ok(registry) => {
                    if seen.insert(registry.id.clone()) {
                        walk.registries.push(registry);
                    } else {
                        n_duplicates += 1;
                    }
                }
                Err(e) => {
                    walk.outcome = WalkOutcome::Failed(format!(
                        "item at offset {} of ListRegistry: {e}",
                        offset as usize + i
                    ));
                    return walk;
                }
            }
        }
        options.progress.page_walked(scope, walk.registries.len());
        offset = offset.saturating_add(u32::try_from(n_items).unwrap_or(u32::MAX));
        if walk
            .api_total
            .is_some_and(|total| i64::from(offset) >= total)
        {
            break;
        }
    }
    let n_distinct = walk.registries.len() as i64;
    walk.outcome = if total_changed
        || n_duplicates > 0
        || walk.api_total.is_some_and(|t| t != n_distinct)
    {
        WalkOutcome::Inconsistent(format!(
            "pages did not add up (total_num {}, {n_distinct} distinct ids, {n_duplicates} repeated{})",
            walk.api_total
                .map_or("absent".to_owned(), |t| t.to_string()),
            if total_changed {
                ", total_num changed between pages"
            } else {
                ""
            }
        ))
    } else if options.filters != RegistryFilters::default() {
        WalkOutcome::Filtered
    } else {
        WalkOutcome::Complete
    };
    walk
}

fn totals_of(report: &RunReport, n_scopes: usize, error: Option<String>) -> RunTotals {
    RunTotals {
        status: report.status,
        n_scopes: n_scopes as i64,
        n_scopes_failed: report.n_scopes_failed() as i64,
        n_pages: report.n_pages,
        n_requests: report.n_requests,
        n_throttled: report.n_throttled,
        n_retries: report.n_retries,
        counts: report.counts,
        error,
    }
}

//! One sync run: walk every scope, apply each, record the run.

use std::collections::HashSet;
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use futures::future::join_all;
use tokio::sync::{Mutex, Semaphore};

use crate::api::{Attempts, HssClient, HssClients, ListRegistryQuery, RegistryFilters};
use crate::registry::Registry;
use crate::store::{RunTotals, ScopeResult, Store, StoreError};
use crate::sync::{RunReport, RunStatus, Scope, ScopeCounts, ScopeReport};

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
    /// What started the run, recorded in `sync_runs.trigger`: `cli`, `demo`, `schedule`.
    pub trigger: String,
    /// Progress display; hidden when not on a terminal.
    pub progress: ProgressBar,
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
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_limit: DEFAULT_PAGE_LIMIT,
            filters: RegistryFilters::default(),
            trigger: "cli".to_owned(),
            progress: ProgressBar::hidden(),
            cancel: CancellationToken::new(),
            concurrency: DEFAULT_CONCURRENCY,
            max_rewalks: DEFAULT_MAX_REWALKS,
            scheduled_at: None,
            confirm_deletions: true,
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
    #[error("sync run {run_id} failed: {source}")]
    Store {
        /// The run, or 0 when it could not even be recorded.
        run_id: i64,
        /// The store's error.
        source: StoreError,
    },
}

/// Runs one sync of `scopes`: records the run, walks and applies every scope, records the
/// outcome, and returns the report.
///
/// Scopes are walked concurrently (at most `options.concurrency` at once); a scope is
/// applied once every scope of its project is walked. API failures fail their scope, not
/// the run: they are recorded in `sync_run_scopes` and the run ends `partial` (or
/// `failed` when no scope succeeded).
///
/// # Errors
///
/// [`SyncError::Store`] when the database fails; the run is recorded `failed` if the
/// database still answers.
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
            &options.trigger,
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
    options.progress.set_length(scopes.len() as u64);
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
    };
    let result = run_scopes(clients, store, scopes, options, run_id).await;
    metrics::gauge!("hss_sync_run_in_progress").set(0.0);
    let scope_reports = match result {
        Ok(scope_reports) => scope_reports,
        Err(source) => {
            report.status = RunStatus::Failed;
            report.duration = started.elapsed();
            let totals = totals_of(&report, scopes.len(), Some(source.to_string()));
            // The database may be gone; the error that matters is the first one.
            if let Err(e) = store.finish_run(run_id, &totals, now()).await {
                warn!(run.id = run_id, error = %e, "could not record the failure of run {run_id}");
            }
            options.progress.finish_and_clear();
            return Err(SyncError::Store { run_id, source });
        }
    };
    for scope_report in scope_reports {
        report.n_pages += scope_report.n_pages;
        report.n_requests += scope_report.n_requests;
        report.n_throttled += scope_report.n_throttled;
        report.n_retries += scope_report.n_retries;
        report.counts.add(&scope_report.counts);
        report.scopes.push(scope_report);
    }
    let n_failed = report.n_scopes_failed();
    report.status = if options.cancel.is_cancelled() {
        RunStatus::Interrupted
    } else if n_failed == 0 {
        RunStatus::Succeeded
    } else if n_failed < scopes.len() {
        RunStatus::Partial
    } else {
        RunStatus::Failed
    };
    report.duration = started.elapsed();
    let first_error = report
        .scopes
        .iter()
        .find_map(|s| s.error.as_ref().map(|e| format!("scope {}: {e}", s.scope)));
    let totals = totals_of(&report, scopes.len(), first_error);
    store
        .finish_run(run_id, &totals, now())
        .await
        .map_err(|source| SyncError::Store { run_id, source })?;
    options.progress.finish_and_clear();
    let c = &report.counts;
    info!(
        run.id = run_id,
        run.status = report.status.as_str(),
        n_scopes = scopes.len(),
        n_scopes_failed = n_failed,
        n_pages = report.n_pages,
        n_requests = report.n_requests,
        n_throttled = report.n_throttled,
        n_fetched = c.n_fetched,
        n_inserted = c.n_inserted,
        n_updated = c.n_updated,
        n_unchanged = c.n_unchanged,
        n_deleted = c.n_deleted,
        n_restored = c.n_restored,
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
    trigger: &str,
    scheduled_at: Option<DateTime<Utc>>,
    error: &str,
) {
    let result = async {
        let run_id = store.begin_run(trigger, 0, now(), scheduled_at).await?;
        let totals = RunTotals {
            status: RunStatus::Failed.as_str().to_owned(),
            error: Some(error.to_owned()),
            ..RunTotals::default()
        };
        store.finish_run(run_id, &totals, now()).await?;
        warn!(
            run.id = run_id,
            "sync run {run_id} failed before its first scope: {error}"
        );
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = result {
        warn!("could not record the failed run: {e}");
    }
}

/// Walks every scope (at most `concurrency` at once) and applies them project by project.
/// All scopes of a project are walked before any is applied, so a registry that moved
/// between two enterprise projects of the project is seen in its new scope before its old
/// scope could retire it. Applying is serialised: one writer at a time suits SQLite and
/// keeps PostgreSQL transactions short.
async fn run_scopes(
    clients: &HssClients,
    store: &Store,
    scopes: &[Scope],
    options: &SyncOptions,
    run_id: i64,
) -> Result<Vec<ScopeReport>, StoreError> {
    let mut groups: Vec<Vec<(usize, &Scope)>> = Vec::new();
    for (index, scope) in scopes.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| g[0].1.project_id == scope.project_id && g[0].1.region == scope.region)
        {
            Some(group) => group.push((index, scope)),
            None => groups.push(vec![(index, scope)]),
        }
    }
    let walk_slots = Semaphore::new(options.concurrency.max(1));
    let writer = Mutex::new(());
    let group_results = join_all(groups.into_iter().map(|group| {
        let walk_slots = &walk_slots;
        let writer = &writer;
        async move {
            let walked = join_all(group.into_iter().map(|(index, scope)| async move {
                let _slot = walk_slots
                    .acquire()
                    .await
                    .expect("semaphore is never closed");
                let scope_row_id = store.begin_scope(run_id, scope, now()).await?;
                let walk = match clients.for_region(&scope.region) {
                    Some(client) => walk_with_rewalks(client, scope, options).await,
                    None => Walk::failed(format!(
                        "no HSS endpoint is configured for region {}",
                        scope.region
                    )),
                };
                Ok::<_, StoreError>((index, scope, scope_row_id, walk))
            }))
            .await
            .into_iter()
            .collect::<Result<Vec<_>, StoreError>>()?;
            let seen_in_group = ids_of(&walked);
            let mut confirmed = Vec::with_capacity(walked.len());
            for (index, scope, scope_row_id, walk) in walked {
                let walk = confirm_deletions(
                    store,
                    clients,
                    scope,
                    walk,
                    &seen_in_group,
                    walk_slots,
                    options,
                )
                .await?;
                confirmed.push((index, scope, scope_row_id, walk));
            }
            let walked = confirmed;
            let seen_in_group = ids_of(&walked);
            let _writer = writer.lock().await;
            let mut reports = Vec::new();
            for (index, scope, scope_row_id, walk) in walked {
                let scope_report =
                    apply_walk(store, run_id, scope, scope_row_id, walk, &seen_in_group).await?;
                options.progress.inc(1);
                reports.push((index, scope_report));
            }
            Ok::<_, StoreError>(reports)
        }
    }))
    .await;
    let mut reports = Vec::new();
    for result in group_results {
        reports.extend(result?);
    }
    reports.sort_by_key(|(index, _)| *index);
    Ok(reports.into_iter().map(|(_, report)| report).collect())
}

type Walked<'a> = (usize, &'a Scope, i64, Walk);

fn ids_of(walked: &[Walked<'_>]) -> HashSet<String> {
    walked
        .iter()
        .flat_map(|(_, _, _, walk)| walk.registries.iter().map(|r| r.id.clone()))
        .collect()
}

/// Before a complete walk retires anything, a second walk confirms it. Offset paging over a
/// list that changes during the walk can skip an item without any count showing it (one
/// registry deleted before the walk's position and one added after it); a registry missing
/// from two walks in a row is really gone. Costs requests only when something is missing.
async fn confirm_deletions(
    store: &Store,
    clients: &HssClients,
    scope: &Scope,
    first: Walk,
    seen_in_group: &HashSet<String>,
    walk_slots: &Semaphore,
    options: &SyncOptions,
) -> Result<Walk, StoreError> {
    if first.outcome != WalkOutcome::Complete || !options.confirm_deletions {
        return Ok(first);
    }
    let live = store.live_ids_in_scope(scope).await?;
    let n_missing = live
        .iter()
        .filter(|id| !seen_in_group.contains(*id))
        .count();
    let Some(client) = clients.for_region(&scope.region).filter(|_| n_missing > 0) else {
        return Ok(first);
    };
    info!(scope = %scope, n_missing, "scope {scope}: {n_missing} registries missing; walking it again to confirm");
    let _slot = walk_slots
        .acquire()
        .await
        .expect("semaphore is never closed");
    let second = walk_with_rewalks(client, scope, options).await;
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
            // What either walk saw is present; the second walk's content is the newer.
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
    Ok(merged)
}

async fn apply_walk(
    store: &Store,
    run_id: i64,
    scope: &Scope,
    scope_row_id: i64,
    walk: Walk,
    seen_in_run: &HashSet<String>,
) -> Result<ScopeReport, StoreError> {
    let status = match &walk.outcome {
        WalkOutcome::Complete | WalkOutcome::Filtered => "succeeded",
        WalkOutcome::Failed(_) | WalkOutcome::Inconsistent(_) => "failed",
        WalkOutcome::Interrupted => "interrupted",
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
        complete: matches!(walk.outcome, WalkOutcome::Complete),
        seen_in_run,
        status,
        n_pages: walk.n_pages,
        n_requests: walk.attempts.n_requests.into(),
        n_throttled: walk.attempts.n_throttled.into(),
        n_retries: walk.attempts.n_retries.into(),
        api_total: walk.api_total,
        error: error.as_deref(),
        now: now(),
    };
    let counts = if matches!(walk.outcome, WalkOutcome::Interrupted) {
        store.close_scope_without_changes(&result).await?;
        ScopeCounts::default()
    } else {
        store.apply_scope(&result).await?
    };
    if let Some(error) = &error {
        metrics::counter!("hss_sync_scope_failures_total").increment(1);
        // Logged once, here, where the failure is handled.
        warn!(
            scope = %scope,
            project_id = %scope.project_id,
            enterprise_project_id = %scope.enterprise_project_id,
            n_pages = walk.n_pages,
            n_requests = walk.attempts.n_requests,
            "scope {scope} failed, nothing in it retired: {error}"
        );
    }
    Ok(ScopeReport {
        scope: scope.clone(),
        status,
        n_pages: walk.n_pages,
        n_requests: walk.attempts.n_requests.into(),
        n_throttled: walk.attempts.n_throttled.into(),
        n_retries: walk.attempts.n_retries.into(),
        n_walks: walk.n_walks.into(),
        api_total: walk.api_total,
        counts,
        error,
    })
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
async fn walk_with_rewalks(client: &HssClient, scope: &Scope, options: &SyncOptions) -> Walk {
    let mut n_pages = 0;
    let mut attempts = Attempts::default();
    let mut n_walks = 0;
    loop {
        let mut walk = walk_scope(client, scope, options).await;
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
async fn walk_scope(client: &HssClient, scope: &Scope, options: &SyncOptions) -> Walk {
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
        let page = tokio::select! {
            page = client.list_registries(&scope.project_id, &query, &mut walk.attempts) => page,
            () = options.cancel.cancelled() => {
                walk.outcome = WalkOutcome::Interrupted;
                return walk;
            }
        };
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                walk.outcome = WalkOutcome::Failed(e.to_string());
                return walk;
            }
        };
        walk.n_pages += 1;
        if let Some(total) = page.total_num {
            if walk.api_total.is_some_and(|previous| previous != total) {
                total_changed = true;
            }
            walk.api_total = Some(total);
        }
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
        options
            .progress
            .set_message(format!("{scope}: {} registries", walk.registries.len()));
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
        status: report.status.as_str().to_owned(),
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

/// The current time at the millisecond precision both databases keep.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

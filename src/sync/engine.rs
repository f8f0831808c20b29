//! One sync run: walk every scope, apply each, record the run.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use futures::StreamExt;
use tokio::sync::{Mutex, MutexGuard, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::retry::is_credential_refusal;
use crate::api::{
    ApiError, Attempts, HssClient, HssClients, ListRegistryQuery, RegistryFilters, RegistryPage,
};
use crate::errors::chain;
use crate::registry::{RawRegistry, StagedRegistry};
use crate::store::{
    now, Applied, RunTotals, ScopeStep, ScopeUpdate, StagePage, Store, StoreError, Unlisted,
};
use crate::sync::plan::{Coverage, DeletionGuard, Retirement};
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

/// ListRegistry requests in flight at once by default (and so scopes walked at once):
/// enough to hide latency, few enough that one credential's quota is shared by a handful
/// of walks.
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
    /// ListRegistry requests in flight at once: up to this many scopes are walked at once,
    /// and the pages of a scope whose count its first page gave go at once on the slots
    /// no walk waits for; each scope's pages are staged in order.
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
    /// Fields whose changes alone refresh a stored row without making a new version
    /// (`history_ignore_fields`).
    pub history_ignore_fields: Vec<String>,
}

/// The fields whose changes alone make no version by default: `latest_sync_time` moves
/// whenever HSS syncs a registry's images, which says nothing about the registry.
pub const DEFAULT_HISTORY_IGNORE_FIELDS: [&str; 1] = ["latest_sync_time"];

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
            history_ignore_fields: DEFAULT_HISTORY_IGNORE_FIELDS.map(str::to_owned).to_vec(),
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

/// Where one scope stands in the run.
struct ScopeState {
    /// What the report will say.
    report: ScopeReport,
    /// How its walk (with its confirming walk) ended.
    outcome: WalkOutcome,
    /// Whether its first walk was applied (its audit row holds that walk's tallies).
    applied: bool,
    /// Whether its audit row holds the status and error the report gives. A step that fails
    /// after the scope was applied (its confirming walk's apply, its moves, its retiring)
    /// clears it, and [`close_unrecorded`] writes the failure.
    recorded: bool,
    /// The request tallies its audit row holds.
    recorded_tallies: Tallies,
    /// The last of its staged rows applied.
    applied_seq: i64,
    /// How many registries its applies set aside as stored under a scope it does not cover:
    /// moves to decide once every walk has ended.
    n_deferred: i64,
    /// Whether every registry it covers was listed by the run, as counted before confirming:
    /// nothing later in the run can make one unseen (moves only take listed registries, and
    /// retiring only removes), so there is nothing to retire.
    nothing_unseen: bool,
    /// What its walk missed of the registries stored where it would leave them, as the walk
    /// left it, until confirming looks for what the run did not list.
    missed: Option<Missed>,
    /// The ids of the registries it missed before its confirming walk, when they were few
    /// enough to keep (see [`RETIRE_AMONG_PER_SCOPE`] and [`RETIRE_AMONG_MAX`]): its retiring
    /// looks among these only.
    unseen_ids: Option<Vec<String>>,
}

/// The request tallies of a scope's walks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tallies {
    n_pages: i64,
    n_requests: i64,
    n_throttled: i64,
    n_retries: i64,
}

impl Tallies {
    fn of(update: &ScopeUpdate<'_>) -> Tallies {
        Tallies {
            n_pages: update.n_pages,
            n_requests: update.n_requests,
            n_throttled: update.n_throttled,
            n_retries: update.n_retries,
        }
    }

    fn of_report(report: &ScopeReport) -> Tallies {
        Tallies {
            n_pages: report.n_pages,
            n_requests: report.n_requests,
            n_throttled: report.n_throttled,
            n_retries: report.n_retries,
        }
    }

    fn add(&mut self, other: Tallies) {
        self.n_pages += other.n_pages;
        self.n_requests += other.n_requests;
        self.n_throttled += other.n_throttled;
        self.n_retries += other.n_retries;
    }

    fn minus(self, other: Tallies) -> Tallies {
        Tallies {
            n_pages: self.n_pages - other.n_pages,
            n_requests: self.n_requests - other.n_requests,
            n_throttled: self.n_throttled - other.n_throttled,
            n_retries: self.n_retries - other.n_retries,
        }
    }
}

/// A run while its scopes are walked and written.
struct RunContext<'a> {
    clients: &'a HssClients,
    store: &'a Store,
    options: &'a SyncOptions,
    run_id: i64,
    coverages: Vec<Coverage<'a>>,
    scope_row_ids: Vec<i64>,
    gate: AuthGate,
    walk_slots: Semaphore,
    /// One apply writes at a time (one scope's, or several scopes' together): one writer
    /// suits SQLite.
    writer: Mutex<()>,
    /// Walks waiting for their apply (see [`RunContext::apply_in_turn`]).
    applies: StdMutex<std::collections::VecDeque<PendingApply>>,
    /// How many walks are going on (or waiting for a slot), and a signal each time one ends.
    walking: AtomicUsize,
    walk_ended: tokio::sync::Notify,
    /// Whether a client of the run spaces its requests out (see
    /// [`RunContext::wait_for_more_applies`]).
    paced: bool,
    /// Cancelled when the database fails, so every walk stops.
    halt: CancellationToken,
    /// Whether the run's listing is indexed ([`Store::index_listing`]): the confirming walks,
    /// which come after, stage the ids they list one row each, where the index finds them.
    listing_indexed: AtomicBool,
    store_error: StdMutex<Option<StoreError>>,
    /// How many more ids of missed registries the run may keep for retiring (see
    /// [`RETIRE_AMONG_MAX`]).
    among_left: AtomicUsize,
}

impl RunContext<'_> {
    fn fail_store(&self, error: StoreError) {
        let mut first = self.store_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(error);
        }
        self.halt.cancel();
    }

    fn store_failed(&self) -> bool {
        self.store_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    fn step(&self, ix: usize, after_seq: i64) -> ScopeStep<'_> {
        ScopeStep {
            after_seq,
            run_id: self.run_id,
            scope_ix: ix as i64,
            coverage: self.coverages[ix],
            ignored_fields: &self.options.history_ignore_fields,
            now: now(),
        }
    }

    /// Waits for one of the run's [`SyncOptions::concurrency`] walk slots.
    async fn walk_slot(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.walk_slots
            .acquire()
            .await
            .expect("semaphore is never closed")
    }

    /// Walks one scope (again while its pages do not add up), then applies what it staged.
    async fn walk_and_apply(&self, ix: usize) -> ScopeState {
        let scope = self.coverages[ix].scope;
        let going = self.walk_going();
        let mut walk = {
            let _slot = self.walk_slot().await;
            match self.clients.for_region(&scope.region) {
                Some(client) => walk_with_rewalks(client, self, ix, None, None).await,
                None => Walk::failed(format!(
                    "no HSS endpoint is configured for region {}",
                    scope.region
                )),
            }
        };
        drop(going);
        let report = walk.report(scope, walk.status(), walk.error());
        let mut state = ScopeState {
            report,
            outcome: WalkOutcome::Complete,
            applied: false,
            recorded: false,
            recorded_tallies: Tallies::default(),
            applied_seq: 0,
            n_deferred: 0,
            missed: walk.missed.take(),
            nothing_unseen: false,
            unseen_ids: None,
        };
        self.apply_walk(ix, &mut state, walk).await;
        if state.applied && state.outcome == WalkOutcome::Complete && self.options.confirm_deletions
        {
            // Counted now, while other walks go on, rather than after the last one: until
            // every walk has ended, only the scope's own apply adds to what it covers.
            self.count_listed(ix, &mut state).await;
        }
        state
    }

    /// Applies what a walk staged (nothing when it was interrupted), with its tallies, in
    /// one transaction with the scope's audit row.
    async fn apply_walk(&self, ix: usize, state: &mut ScopeState, walk: Walk) {
        let scope = self.coverages[ix].scope;
        let error = walk.error();
        let status = walk.status();
        state.outcome = walk.outcome.clone();
        if self.store_failed() {
            state.recorded = false;
            state.report.status = ScopeStatus::Failed;
            state.report.error = Some(not_applied(
                error.as_deref(),
                "not applied: a database write failed earlier in the run",
            ));
            return;
        }
        let update = scope_update(self.scope_row_ids[ix], status, &walk, error.as_deref());
        let tallies = Tallies::of(&update);
        let (n_pages, n_requests) = (walk.n_pages, walk.attempts.n_requests);
        let written = if status == ScopeStatus::Interrupted {
            let _writer = self.writer.lock().await;
            self.store
                .record_scope(&update, now())
                .await
                .map(|()| ScopeCounts::default())
                .map_err(|e| self.failed_write(e))
        } else {
            self.apply_in_turn(ix, state.applied_seq, walk, error.clone())
                .await
                .map(|applied| {
                    state.applied_seq = applied.last_seq;
                    state.n_deferred += applied.n_deferred;
                    applied.counts
                })
        };
        match written {
            Ok(counts) => {
                state.report.counts.add(&counts);
                state.applied = true;
                state.recorded = true;
                state.recorded_tallies.add(tallies);
            }
            Err(why) => {
                warn!(scope = %scope, "scope {scope} could not be written: {why}");
                state.recorded = false;
                state.report.status = ScopeStatus::Failed;
                state.report.error = Some(not_applied(
                    error.as_deref(),
                    &format!("not written: database: {why}"),
                ));
                return;
            }
        }
        self.options.progress.scope_applied();
        if status == ScopeStatus::Failed {
            metrics::counter!("hss_sync_scope_failures_total").increment(1);
            // Logged once, here, where the failure is handled.
            warn!(
                scope = %scope,
                project_id = %scope.project_id,
                enterprise_project_id = %scope.enterprise_project_id,
                n_pages,
                n_requests,
                "scope {scope} failed, nothing retired: {}",
                error.as_deref().unwrap_or_default()
            );
        }
    }

    /// Notes a failed write: the run's store has failed. Returns the error in words.
    fn failed_write(&self, error: StoreError) -> String {
        let why = chain(&error);
        self.fail_store(error);
        why
    }

    /// Applies what scope `ix` staged after `after_seq`, with its audit row, in turn with
    /// the other scopes' applies: the scopes whose walks ended while another apply held the
    /// writer are applied together, in one transaction, each in its own statements. Each
    /// scope still changes at once for readers; fewer transactions write the pages of the
    /// indexes that every scope's registries share (keyed by id) fewer times. On SQLite that
    /// was most of what a first sync wrote. A failed transaction fails every scope in it,
    /// as a failed write fails every scope after it.
    async fn apply_in_turn(
        &self,
        ix: usize,
        after_seq: i64,
        walk: Walk,
        error: Option<String>,
    ) -> Result<Applied, String> {
        let (done, mut result) = tokio::sync::oneshot::channel();
        self.applies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(PendingApply {
                ix,
                after_seq,
                walk,
                error,
                done,
            });
        let _writer = self.writer.lock().await;
        if let Ok(applied) = result.try_recv() {
            return applied;
        }
        self.wait_for_more_applies().await;
        let batch: Vec<PendingApply> = {
            let mut queue = self.applies.lock().unwrap_or_else(|e| e.into_inner());
            let n = queue.len().min(SCOPES_PER_TRANSACTION);
            queue.drain(..n).collect()
        };
        let steps: Vec<_> = batch
            .iter()
            .map(|pending| {
                (
                    self.step(pending.ix, pending.after_seq),
                    scope_update(
                        self.scope_row_ids[pending.ix],
                        pending.walk.status(),
                        &pending.walk,
                        pending.error.as_deref(),
                    ),
                    pending.walk.n_unchanged,
                )
            })
            .collect();
        match self.store.apply_staged(&steps).await {
            Ok(applied) => {
                for (pending, applied) in batch.into_iter().zip(applied) {
                    let _ = pending.done.send(Ok(applied));
                }
            }
            Err(e) => {
                let why = self.failed_write(e);
                for pending in batch {
                    let _ = pending.done.send(Err(why.clone()));
                }
            }
        }
        result
            .await
            .unwrap_or_else(|_| Err("its apply was abandoned".to_owned()))
    }

    /// Counts a walk as going on until the guard is dropped.
    fn walk_going(&self) -> WalkGoing<'_> {
        self.walking.fetch_add(1, Ordering::SeqCst);
        WalkGoing {
            walking: &self.walking,
            ended: &self.walk_ended,
        }
    }

    /// Waits, for at most [`GROUP_WAIT`], until [`SCOPES_PER_TRANSACTION`] walks wait for
    /// their apply or no walk is going on any more: walks that go on end soon (a wave of
    /// walks ends together), and their applies join the same transaction.
    ///
    /// Unless the run's requests are paced: its walks then end one request spacing apart,
    /// not in waves, and the database waits for the requests anyway. Waiting would only
    /// hold the applies back until the last walk ends, and then apply them all after the
    /// last page: under a quota of 20 requests a second, the last four scopes of 5,000
    /// registries waited for the last one, and their apply was most of the run's tail
    /// after its last request. The walks that end while an apply holds the writer still
    /// join the next one.
    async fn wait_for_more_applies(&self) {
        if self.paced {
            return;
        }
        let deadline = tokio::time::Instant::now() + GROUP_WAIT;
        loop {
            let ended = self.walk_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let n_waiting = self.applies.lock().unwrap_or_else(|e| e.into_inner()).len();
            if n_waiting >= SCOPES_PER_TRANSACTION
                || self.walking.load(Ordering::SeqCst) == 0
                || self.halt.is_cancelled()
            {
                return;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return;
            }
        }
    }

    /// Notes whether the walk of scope `ix` listed every registry the scope covers, by
    /// counting them: each registry the scope's walk applied is live where the scope covers
    /// it, once, so when the scope holds no more than that, its walk listed all of them.
    /// Counted once its walk is applied: until every first walk has ended, nothing but the
    /// scope's own apply writes where it covers (moves wait for the end), so the count can
    /// only fall, and a fall only makes the scope confirm what it need not.
    async fn count_listed(&self, ix: usize, state: &mut ScopeState) {
        match self.store.count_live(self.coverages[ix]).await {
            Ok(n_live) => state.nothing_unseen = n_live == state.report.counts.n_fetched,
            Err(e) => self.fail_store(e),
        }
    }

    /// Retires what scope `ix` covers and no walk of the complete run listed, unless the
    /// mass-deletion guard holds it.
    async fn retire(&self, ix: usize, state: &mut ScopeState) {
        if state.nothing_unseen {
            return;
        }
        let retirement = Retirement {
            allowed: true,
            unattributed: self.coverages[ix].unattributed,
            guard: self.options.deletion_guard,
        };
        let scope = self.coverages[ix].scope;
        match self
            .store
            .retire_unseen(
                Unlisted {
                    run_id: self.run_id,
                    coverage: self.coverages[ix],
                    among: state.unseen_ids.as_deref(),
                },
                self.scope_row_ids[ix],
                &retirement,
                state.report.counts.n_inserted + state.report.counts.n_restored,
                now(),
            )
            .await
        {
            Ok((counts, held)) => {
                state.report.counts.add(&counts);
                if let Some(held) = held {
                    metrics::counter!("hss_sync_deletions_held_total").increment(1);
                    warn!(scope = %scope, n_held = counts.n_held, "scope {scope}: {held}");
                    state.report.status = ScopeStatus::Held;
                    state.report.error = Some(held);
                }
            }
            Err(e) => {
                warn!(scope = %scope, "scope {scope}: retiring failed: {}", chain(&e));
                state.recorded = false;
                state.report.status = ScopeStatus::Failed;
                state.report.error = Some(format!("nothing retired: database: {}", chain(&e)));
                self.fail_store(e);
            }
        }
    }

    /// Before a complete run retires anything, a second walk of each scope that misses
    /// something confirms it. Offset paging over a list that changes during the walk can
    /// skip an item without any count showing it (one registry deleted before the walk's
    /// position and one added after it); a registry missing from two walks in a row is
    /// really gone. Costs requests only when something is missing. What the second walk
    /// lists is staged beside the first walk's (what either saw is present) and applied,
    /// except what the run listed already and the store holds live where the walk would
    /// leave it: that is not missing, and it is not even hashed again (half a 10%-changed
    /// sync's items). An edit to such a registry since the first walk waits for the next
    /// run, as an edit made after the walk's page would have.
    async fn confirm(&self, ix: usize, state: &mut ScopeState) {
        if state.nothing_unseen || self.store_failed() {
            return;
        }
        let scope = self.coverages[ix].scope;
        let mut unseen = Unseen::default();
        let missed = state.missed.take();
        // What the store holds is read for the confirming walk in its walk slot, so that no
        // more scopes hold it than walk at once (all of them at once held 11 MiB more at
        // 500,000 registries).
        let slot = match &missed {
            Some(missed) if !missed.keys.is_empty() => Some(self.walk_slot().await),
            _ => None,
        };
        let (missed, stored) = match missed {
            Some(missed) => match unseen.load(self.store, scope, &missed).await {
                Ok((ids, stored)) => (Some(ids), stored),
                Err(e) => return self.fail_store(e),
            },
            None => (None, None),
        };
        if let Err(e) = self
            .store
            .unseen(
                self.run_id,
                self.coverages[ix],
                missed.as_deref(),
                &mut |id| unseen.insert(id),
            )
            .await
        {
            return self.fail_store(e);
        }
        let n_missing = unseen.keys.len();
        state.nothing_unseen = n_missing == 0;
        state.unseen_ids = unseen
            .ids
            .take()
            .filter(|ids| claim(&self.among_left, ids.len()));
        let Some(client) = self
            .clients
            .for_region(&scope.region)
            .filter(|_| n_missing > 0)
        else {
            return;
        };
        info!(scope = %scope, n_missing, "scope {scope}: {n_missing} registries missing; walking it again to confirm");
        let going = self.walk_going();
        let mut second = {
            let _slot = match slot {
                Some(slot) => slot,
                None => self.walk_slot().await,
            };
            walk_with_rewalks(client, self, ix, Some(&unseen), stored).await
        };
        drop(going);
        state.report.n_pages += second.n_pages;
        state.report.n_requests += i64::from(second.attempts.n_requests);
        state.report.n_throttled += i64::from(second.attempts.n_throttled);
        state.report.n_retries += i64::from(second.attempts.n_retries);
        state.report.n_walks += i64::from(second.n_walks);
        if let Some(total) = second.api_total {
            state.report.api_total = Some(total);
        }
        if let WalkOutcome::Failed(e) | WalkOutcome::Inconsistent(e) = &second.outcome {
            second.outcome =
                WalkOutcome::Failed(format!("the walk that confirms deletions failed: {e}"));
            state.report.status = ScopeStatus::Failed;
            state.report.error = second.error();
        } else if second.outcome == WalkOutcome::Interrupted {
            state.report.status = ScopeStatus::Interrupted;
        }
        // What it saw unchanged was counted by the first walk.
        second.n_unchanged = 0;
        self.apply_walk(ix, state, second).await;
    }
}

/// Walks every scope, applying each as its walk ends, then decides what may be retired.
///
/// Pages are staged in the store as they arrive and each scope is applied as soon as its
/// walk ends, so a walk holds no more than two pages in memory (the one it stages while it
/// fetches the next). A registry may move between any two scopes (enterprise projects, or
/// even projects), so retiring waits until every walk of the run has ended: a registry is
/// retired only when every walk completed and none listed it; and a registry listed by a
/// scope that does not cover where it is stored moves only once every walk has ended and no
/// scope that covers it listed it.
async fn run_scopes(
    clients: &HssClients,
    store: &Store,
    scopes: &[Scope],
    options: &SyncOptions,
    run_id: i64,
) -> ScopesOutcome {
    let failed_before_walking = |e| ScopesOutcome {
        reports: Vec::new(),
        store_error: Some(e),
        refused: None,
    };
    if let Err(e) = store.clear_staging(run_id).await {
        return failed_before_walking(e);
    }
    let scope_row_ids = match store.begin_scopes(run_id, scopes, now()).await {
        Ok(ids) => ids,
        // Nothing was walked or written: the run is failed.
        Err(e) => return failed_before_walking(e),
    };
    let unattributed = unattributed_scopes(scopes, options);
    let ctx = RunContext {
        clients,
        store,
        options,
        run_id,
        coverages: scopes
            .iter()
            .enumerate()
            .map(|(ix, scope)| Coverage {
                scope,
                unattributed: unattributed.contains(&ix),
            })
            .collect(),
        scope_row_ids,
        gate: AuthGate::default(),
        walk_slots: Semaphore::new(options.concurrency.max(1)),
        writer: Mutex::new(()),
        applies: StdMutex::default(),
        walking: AtomicUsize::new(0),
        walk_ended: tokio::sync::Notify::new(),
        paced: scopes.iter().any(|scope| {
            clients
                .for_region(&scope.region)
                .is_some_and(HssClient::is_paced)
        }),
        halt: options.cancel.child_token(),
        listing_indexed: AtomicBool::new(false),
        store_error: StdMutex::new(None),
        among_left: AtomicUsize::new(RETIRE_AMONG_MAX),
    };
    let mut states: Vec<ScopeState> =
        join_all((0..scopes.len()).map(|ix| ctx.walk_and_apply(ix))).await;
    let complete = |states: &[ScopeState]| {
        states.iter().all(|s| s.outcome == WalkOutcome::Complete)
            && !options.cancel.is_cancelled()
            && ctx.gate.refused().is_none()
            && !ctx.store_failed()
    };
    // Deciding moves and deletions looks the run's listing up by id: indexed when a scope
    // set registries aside as moved, or may have something to retire. A run that listed
    // every registry where it is stored (an unchanged resync) does neither.
    let decides = states.iter().any(|s| s.n_deferred > 0)
        || (complete(&states) && states.iter().any(|s| !s.nothing_unseen));
    if decides && !ctx.store_failed() {
        match store.index_listing(run_id).await {
            Ok(()) => ctx.listing_indexed.store(true, Ordering::SeqCst),
            Err(e) => ctx.fail_store(e),
        }
    }
    if complete(&states) && options.confirm_deletions {
        // The confirming walks go as concurrently as the first ones did.
        join_all(
            states
                .iter_mut()
                .enumerate()
                .map(|(ix, state)| ctx.confirm(ix, state)),
        )
        .await;
    }
    let all_complete = complete(&states);
    // Registries listed by a scope that does not cover where they are stored: moved, in
    // scope order, unless a scope that covers them listed them too.
    for (ix, state) in states.iter_mut().enumerate() {
        if ctx.store_failed() || !state.applied || state.n_deferred == 0 {
            continue;
        }
        let _writer = ctx.writer.lock().await;
        match store
            .apply_deferred(&ctx.step(ix, 0), &ctx.coverages, ctx.scope_row_ids[ix])
            .await
        {
            Ok(counts) => state.report.counts.add(&counts),
            Err(e) => {
                state.recorded = false;
                state.report.status = ScopeStatus::Failed;
                state.report.error = Some(format!("moves not written: database: {}", chain(&e)));
                ctx.fail_store(e);
            }
        }
    }
    if !all_complete {
        let n_held_back = states
            .iter()
            .filter(|s| s.outcome == WalkOutcome::Complete)
            .count();
        if n_held_back > 0 && !ctx.store_failed() {
            info!(
                "{n_held_back} scopes completed, but not every scope of the run did: nothing is retired this run"
            );
        }
    }
    if all_complete {
        // Scopes of different projects cover different rows, so their retiring goes at
        // once (on PostgreSQL, each on a connection of its own); the scopes of one project
        // go one after another, as their coverage may overlap.
        let mut by_project: Vec<(&str, Vec<(usize, &mut ScopeState)>)> = Vec::new();
        for (ix, state) in states.iter_mut().enumerate() {
            let project = scopes[ix].project_id.as_str();
            match by_project.iter_mut().find(|(p, _)| *p == project) {
                Some((_, group)) => group.push((ix, state)),
                None => by_project.push((project, vec![(ix, state)])),
            }
        }
        let ctx = &ctx;
        join_all(by_project.into_iter().map(|(_, group)| async move {
            for (ix, state) in group {
                if ctx.store_failed() {
                    break;
                }
                ctx.retire(ix, state).await;
            }
        }))
        .await;
    }
    if let Err(e) = store.clear_staging(run_id).await {
        // The next run clears it; the run's outcome does not depend on it.
        warn!(
            run.id = run_id,
            "could not clear the run's staged pages: {}",
            chain(&e)
        );
    }
    let store_error = ctx
        .store_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if store_error.is_some() {
        close_unrecorded(store, &states, &ctx.scope_row_ids).await;
    }
    ScopesOutcome {
        reports: states.into_iter().map(|s| s.report).collect(),
        store_error,
        refused: ctx.gate.refused(),
    }
}

/// Records the scopes whose audit rows do not hold their final status, as far as the database
/// still answers: `failed`, with the report's error and the request tallies the row does not
/// hold yet (all of them for a scope never applied; a confirming walk's for a scope whose
/// confirming apply failed). Rows it cannot close are recovered by the next run.
async fn close_unrecorded(store: &Store, states: &[ScopeState], scope_row_ids: &[i64]) {
    for (state, scope_row_id) in states.iter().zip(scope_row_ids) {
        if state.recorded {
            continue;
        }
        let report = &state.report;
        let unrecorded = Tallies::of_report(report).minus(state.recorded_tallies);
        let update = ScopeUpdate {
            scope_row_id: *scope_row_id,
            status: Some(ScopeStatus::Failed),
            n_pages: unrecorded.n_pages,
            n_requests: unrecorded.n_requests,
            n_throttled: unrecorded.n_throttled,
            n_retries: unrecorded.n_retries,
            api_total: report.api_total,
            error: report.error.as_deref(),
            ..ScopeUpdate::default()
        };
        if store.record_scope(&update, now()).await.is_err() {
            return;
        }
    }
}

/// The error of a scope that was walked but not written.
fn not_applied(walk_error: Option<&str>, why: &str) -> String {
    match walk_error {
        Some(e) if !e.is_empty() => format!("{e}; {why}"),
        _ => why.to_owned(),
    }
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
#[derive(Clone, Debug, PartialEq)]
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

/// What walking one scope came to. The registries themselves went to the store page by
/// page; the walk keeps only tallies.
#[derive(Debug)]
struct Walk {
    n_pages: i64,
    attempts: Attempts,
    n_walks: u32,
    api_total: Option<i64>,
    outcome: WalkOutcome,
    /// Registries staged as seen unchanged, new to the scope's staging.
    n_unchanged: i64,
    /// What the API said of the request that failed the walk, when one did.
    failure: Failure,
    /// Of a complete first walk, the registries stored where it would leave them that it did
    /// not list, when they are few (see [`Missed`]).
    missed: Option<Missed>,
}

/// The most scopes one transaction applies (see [`RunContext::apply_in_turn`]).
const SCOPES_PER_TRANSACTION: usize = 8;

/// The longest an apply waits for the walks going on to end and join its transaction.
const GROUP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A walk going on, counted in [`RunContext::walking`] while this lives.
struct WalkGoing<'c> {
    walking: &'c AtomicUsize,
    ended: &'c tokio::sync::Notify,
}

impl Drop for WalkGoing<'_> {
    fn drop(&mut self) {
        self.walking.fetch_sub(1, Ordering::SeqCst);
        self.ended.notify_waiters();
    }
}

/// A walk waiting for its apply, and where its outcome goes.
struct PendingApply {
    ix: usize,
    after_seq: i64,
    walk: Walk,
    /// The walk's error, which its audit row borrows.
    error: Option<String>,
    done: tokio::sync::oneshot::Sender<Result<Applied, String>>,
}

/// What a walk adds to its scope's audit row.
fn scope_update<'w>(
    scope_row_id: i64,
    status: ScopeStatus,
    walk: &'w Walk,
    error: Option<&'w str>,
) -> ScopeUpdate<'w> {
    ScopeUpdate {
        scope_row_id,
        status: Some(status),
        n_pages: walk.n_pages,
        n_requests: walk.attempts.n_requests.into(),
        n_throttled: walk.attempts.n_throttled.into(),
        n_retries: walk.attempts.n_retries.into(),
        api_total: walk.api_total,
        error,
        error_code: walk.failure.error_code.as_deref(),
        http_status: walk.failure.http_status,
        request_id: walk.failure.request_id.as_deref(),
    }
}

/// Huawei's identification of a failed request, kept in columns beside the message.
#[derive(Debug, Default, Clone)]
struct Failure {
    error_code: Option<String>,
    http_status: Option<i64>,
    request_id: Option<String>,
}

impl Failure {
    fn of(error: &ApiError) -> Failure {
        Failure {
            error_code: error.error_code().map(str::to_owned),
            http_status: error.status().map(i64::from),
            request_id: error.request_id().map(str::to_owned),
        }
    }
}

impl Walk {
    /// Takes the outcome of staging a page: counts what was staged unchanged, or fails the
    /// walk (and the run's store, when the database failed). Returns whether the walk goes on.
    fn staged(&mut self, ctx: &RunContext<'_>, staged: Result<i64, StageError>) -> bool {
        match staged {
            Ok(n_unchanged) => {
                self.n_unchanged += n_unchanged;
                true
            }
            Err(StageError::Item(why)) => {
                self.outcome = WalkOutcome::Failed(why);
                false
            }
            Err(StageError::Store(e)) => {
                self.outcome = WalkOutcome::Failed(format!("database: {}", chain(&e)));
                ctx.fail_store(e);
                false
            }
        }
    }

    fn new() -> Walk {
        Walk {
            n_pages: 0,
            attempts: Attempts::default(),
            n_walks: 1,
            api_total: None,
            outcome: WalkOutcome::Complete,
            n_unchanged: 0,
            failure: Failure::default(),
            missed: None,
        }
    }

    fn failed(error: String) -> Walk {
        Walk {
            n_walks: 0,
            outcome: WalkOutcome::Failed(error),
            ..Walk::new()
        }
    }

    fn status(&self) -> ScopeStatus {
        match &self.outcome {
            WalkOutcome::Complete | WalkOutcome::Filtered => ScopeStatus::Succeeded,
            WalkOutcome::Failed(_) | WalkOutcome::Inconsistent(_) => ScopeStatus::Failed,
            WalkOutcome::Interrupted => ScopeStatus::Interrupted,
        }
    }

    fn error(&self) -> Option<String> {
        match &self.outcome {
            WalkOutcome::Failed(e) | WalkOutcome::Inconsistent(e) => Some(e.clone()),
            _ => None,
        }
    }

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
}

/// Walks a scope, and walks it again (up to `max_rewalks` times) while its pages do not add
/// up. Offset paging over a list that changes during the walk skips or repeats items; a
/// fresh walk usually sees a settled list. A walk again from the start forgets what the
/// earlier one staged, unless it is `confirming` (a confirming walk adds to the first, and
/// stages only what the run has not listed or what changed: see [`Unseen`]). `stored`, what
/// the store holds for the scope when it was read already, goes to the first walk; a walk
/// again reads it again.
async fn walk_with_rewalks(
    client: &HssClient,
    ctx: &RunContext<'_>,
    ix: usize,
    confirming: Option<&Unseen>,
    mut stored: Option<KeyMap>,
) -> Walk {
    let fresh = confirming.is_none();
    let scope = ctx.coverages[ix].scope;
    let mut n_pages = 0;
    let mut attempts = Attempts::default();
    let mut n_walks = 0;
    let mut n_unchanged = 0;
    loop {
        let mut walk = walk_scope(client, ctx, ix, confirming, stored.take()).await;
        n_walks += 1;
        n_pages += walk.n_pages;
        n_unchanged += walk.n_unchanged;
        attempts.add(&walk.attempts);
        let retry = matches!(walk.outcome, WalkOutcome::Inconsistent(_))
            && n_walks <= ctx.options.max_rewalks;
        if retry && fresh {
            if let Err(e) = ctx.store.unstage_scope(ctx.run_id, ix as i64).await {
                walk.outcome = WalkOutcome::Failed(format!("database: {}", chain(&e)));
                ctx.fail_store(e);
            } else {
                n_unchanged = 0;
            }
        }
        if !retry || ctx.store_failed() {
            walk.n_pages = n_pages;
            walk.attempts = attempts;
            walk.n_walks = n_walks;
            walk.n_unchanged = n_unchanged;
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

/// Walks every page of one scope, staging each in the store as it arrives: `offset`
/// advances by the items actually returned, and the walk ends on an empty page or when
/// `offset` reaches `total_num`. Pages are fetched in one stream and hashed, sorted and staged
/// in another, with up to [`PAGES_AHEAD`] fetched pages waiting between them, and what the
/// store holds is loaded while the first one is fetched (a confirming walk is handed it when
/// it was read to find what the first walk missed): the network, the walk's own work and
/// the database overlap, and a wait for the database (on SQLite, behind another scope's
/// transaction) does not hold back the next requests.
async fn walk_scope(
    client: &HssClient,
    ctx: &RunContext<'_>,
    ix: usize,
    confirming: Option<&Unseen>,
    stored: Option<KeyMap>,
) -> Walk {
    let options = ctx.options;
    let scope = ctx.coverages[ix].scope;
    let mut walk = Walk::new();
    let mut listing = confirming.map_or_else(Listing::default, Listing::confirming);
    let loaded = stored.is_some();
    if let Some(stored) = stored {
        listing.stored = stored;
    }
    let mut fetched = Fetched::default();
    let (pages, arrived) = tokio::sync::mpsc::channel::<RawPage>(PAGES_AHEAD);
    let fetcher = fetch_pages(client, ctx, scope, &mut walk.attempts, &mut fetched, pages);
    let stager = async {
        // Owned here, so dropped (and the channel closed) as soon as staging stops, for
        // whatever reason: no further page is asked for.
        let mut arrived = arrived;
        if !loaded {
            listing.load(ctx, scope).await.map_err(StageError::Store)?;
        }
        let mut n_unchanged = 0;
        while let Some(page) = arrived.recv().await {
            // The pages that arrived meanwhile go with it, in one transaction.
            let mut pages = vec![page];
            while let Ok(page) = arrived.try_recv() {
                pages.push(page);
            }
            n_unchanged += listing.sort_and_stage(ctx, ix, pages).await?;
        }
        Ok(n_unchanged)
    };
    let ((), staged) = tokio::join!(fetcher, stager);
    walk.n_pages = fetched.n_pages;
    walk.api_total = fetched.api_total;
    if !walk.staged(ctx, staged) {
        return walk;
    }
    match fetched.stop {
        None => {}
        Some(PageStop::Interrupted) => {
            walk.outcome = WalkOutcome::Interrupted;
            return walk;
        }
        Some(PageStop::Failed(why, failure)) => {
            walk.failure = failure;
            walk.outcome = WalkOutcome::Failed(why);
            return walk;
        }
    }
    let n_distinct = listing.seen.len() as i64;
    let n_duplicates = listing.n_duplicates;
    walk.outcome = if fetched.total_changed
        || n_duplicates > 0
        || walk.api_total.is_some_and(|t| t != n_distinct)
    {
        WalkOutcome::Inconsistent(format!(
            "pages did not add up (total_num {}, {n_distinct} distinct ids, {n_duplicates} repeated{})",
            walk.api_total
                .map_or("absent".to_owned(), |t| t.to_string()),
            if fetched.total_changed {
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
    if confirming.is_none() && walk.outcome == WalkOutcome::Complete {
        walk.missed = Missed::of(&listing);
    }
    walk
}

/// Fetched pages that may wait to be staged, per walk: while the database makes a walk wait
/// (SQLite writes one transaction at a time, and a scope's apply holds it for a tenth of a
/// second at 2,500 registries; the apply of a wave of eight scopes whose walks end together,
/// a quarter of a second and more), the walk asks for four more pages. Those are then staged
/// together with the next, so a walk holds at most ten: five being staged, four waiting and
/// one being fetched. With two, a first SQLite sync of 50,000 at 100 ms of latency and eight
/// scopes at once stopped asking for pages during each wave's apply, and took 1.09-1.16 of
/// the latency bound in six runs against 1.06-1.09 in five with four; its peak RSS
/// rose by 2-5 MiB.
const PAGES_AHEAD: usize = 4;

/// What the fetching half of a walk saw.
#[derive(Default)]
struct Fetched {
    n_pages: i64,
    api_total: Option<i64>,
    /// Whether `total_num` changed between pages.
    total_changed: bool,
    /// Why it stopped before the last page, if it did.
    stop: Option<PageStop>,
}

/// Fetches the pages of `scope` and hands each to `pages` in order, until the last page, a
/// failed or interrupted request, or until staging stops taking them.
///
/// The first page goes alone: it says how many registries the scope holds and whether the
/// API fills a page to the limit asked for. When it does and more pages follow, their
/// offsets are known, and they are asked for at once on the run's walk slots that no walk
/// waits for (the last scopes of a run, and a large scope among small ones, do not leave the
/// slots of the walks that ended idle); they are still handed on in order. An API that
/// fills a page with fewer than the limit is walked one page after another, each offset
/// advanced by the items actually returned.
async fn fetch_pages(
    client: &HssClient,
    ctx: &RunContext<'_>,
    scope: &Scope,
    attempts: &mut Attempts,
    fetched: &mut Fetched,
    pages: tokio::sync::mpsc::Sender<RawPage>,
) {
    let mut offset: u32 = 0;
    while !pages.is_closed() {
        let page = match fetch_page(client, ctx, scope, offset, attempts).await {
            Ok(page) => page,
            Err(stop) => {
                fetched.stop = Some(stop);
                return;
            }
        };
        let first_full = offset == 0 && page.items.len() == ctx.options.page_limit as usize;
        match fetched.hand_on(offset, page, &pages).await {
            Some(next) => offset = next,
            None => return,
        }
        if first_full {
            fetch_known_pages(client, ctx, scope, attempts, fetched, offset, &pages).await;
            return;
        }
    }
}

/// Fetches the pages of `scope` from `offset` up to the `total_num` its first page gave,
/// one page of the limit apart, as many at once as the run's walk slots allow (the walk's
/// own slot and any other that no walk waits for), and hands them to `pages` in order. A
/// walk that stops (a failed or interrupted request, the last page, staging stopped) drops
/// the requests still in flight; they are counted all the same.
async fn fetch_known_pages(
    client: &HssClient,
    ctx: &RunContext<'_>,
    scope: &Scope,
    attempts: &mut Attempts,
    fetched: &mut Fetched,
    offset: u32,
    pages: &tokio::sync::mpsc::Sender<RawPage>,
) {
    let limit = ctx.options.page_limit;
    let total = fetched.api_total.unwrap_or_default();
    let sent = StdMutex::new(Attempts::default());
    let mut next = offset;
    let mut in_flight = futures::stream::FuturesOrdered::new();
    // One slot for each page in flight but the first, which goes on the walk's own.
    let mut extra_slots = Vec::new();
    loop {
        while i64::from(next) < total && !pages.is_closed() {
            if !in_flight.is_empty() {
                match ctx.walk_slots.try_acquire() {
                    Ok(slot) => extra_slots.push(slot),
                    Err(_) => break,
                }
            }
            let (at, sent) = (next, &sent);
            in_flight.push_back(async move {
                let mut counted = Counted {
                    attempts: Attempts::default(),
                    into: sent,
                };
                let page = fetch_page(client, ctx, scope, at, &mut counted.attempts).await;
                (at, page)
            });
            next = next.saturating_add(limit);
        }
        let Some((at, page)) = in_flight.next().await else {
            break;
        };
        extra_slots.pop();
        let page = match page {
            Ok(page) => page,
            Err(stop) => {
                fetched.stop = Some(stop);
                break;
            }
        };
        if fetched.hand_on(at, page, pages).await.is_none() {
            break;
        }
    }
    // The requests still in flight are dropped here, and add what they sent.
    drop(in_flight);
    attempts.add(&sent.into_inner().unwrap_or_else(|e| e.into_inner()));
}

/// The attempts of one request, added to `into` when it is done or dropped.
struct Counted<'a> {
    attempts: Attempts,
    into: &'a StdMutex<Attempts>,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.into
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&self.attempts);
    }
}

impl Fetched {
    /// Notes a page fetched at `offset` and hands its items on; returns the offset after
    /// them, or nothing when the walk ends here (an empty page, the last one, or staging
    /// stopped).
    async fn hand_on(
        &mut self,
        offset: u32,
        page: RegistryPage,
        pages: &tokio::sync::mpsc::Sender<RawPage>,
    ) -> Option<u32> {
        self.n_pages += 1;
        let total = page.total_num;
        if self.api_total.is_some_and(|previous| previous != total) {
            self.total_changed = true;
        }
        self.api_total = Some(total);
        if page.items.is_empty() {
            return None;
        }
        let next = offset.saturating_add(u32::try_from(page.items.len()).unwrap_or(u32::MAX));
        let raw = RawPage {
            offset,
            items: page.items,
        };
        if pages.send(raw).await.is_err() || i64::from(next) >= total {
            return None;
        }
        Some(next)
    }
}

/// How a run hashes registry ids to 64-bit keys, and the sets and maps of those keys:
/// foldhash, seeded at random for each walk's hasher as SipHash was. A walk hashes every id
/// it lists and looks its key up three or four times; with SipHash that was a twentieth of
/// a 10%-changed sync's instructions.
type KeyHasher = foldhash::fast::RandomState;
type KeySet = HashSet<u64, KeyHasher>;
type KeyMap = HashMap<u64, u64, KeyHasher>;

/// What one walk of a scope knows of the ids it lists, as 64-bit hashes: the ids it has
/// seen (a collision can only make a walk look inconsistent, and walked again, never
/// complete), and what the store holds where this walk would leave a registry (id and
/// content). A page's registries found there unchanged are staged by id alone; anything
/// else is staged with its content and decided exactly when the scope is applied, so a false
/// match is as unlikely as two 128-bit hashes colliding.
#[derive(Default)]
struct Listing {
    hasher: KeyHasher,
    seen: KeySet,
    stored: KeyMap,
    n_duplicates: usize,
    /// For a confirming walk, the registries of the scope no walk of the run listed.
    unseen: Option<KeySet>,
}

/// What a confirming walk looks for: the live registries of its scope that no walk of the
/// run listed (a few, where something was missing), as 64-bit hashes of their ids. A
/// registry the confirming walk finds stored live where the walk would leave it and not
/// among these was listed already (the listing is the run's, and moves and applies only
/// ever add to it), so it is neither staged nor hashed again; a collision only stages a
/// registry that did not need it.
///
/// It also keeps the ids themselves, up to [`RETIRE_AMONG_PER_SCOPE`] of them, for the
/// scope's retiring to look among, if the run's allowance has room for them.
struct Unseen {
    hasher: KeyHasher,
    keys: KeySet,
    ids: Option<Vec<String>>,
}

impl Default for Unseen {
    fn default() -> Unseen {
        Unseen {
            hasher: KeyHasher::default(),
            keys: KeySet::default(),
            ids: Some(Vec::new()),
        }
    }
}

impl Unseen {
    /// Returns the ids of what the first walk `missed`, and what the store holds where a
    /// walk of `scope` would leave a registry (as [`Listing::stored`], keyed as this set
    /// keys its ids from now on): one read for both, handed to the confirming walk, which
    /// then does not read it again. Reads nothing when nothing was missed.
    async fn load(
        &mut self,
        store: &Store,
        scope: &Scope,
        missed: &Missed,
    ) -> Result<(Vec<String>, Option<KeyMap>), StoreError> {
        let mut ids = Vec::with_capacity(missed.keys.len());
        if missed.keys.is_empty() {
            return Ok((ids, None));
        }
        self.hasher = missed.hasher.clone();
        let stored = read_stored(store, scope, &self.hasher, &mut |id, key| {
            if missed.keys.contains(&key) {
                ids.push(id.to_owned());
            }
        })
        .await?;
        Ok((ids, Some(stored)))
    }

    fn insert(&mut self, id: &str) {
        self.keys.insert(self.hasher.hash_one(id));
        match &mut self.ids {
            Some(ids) if ids.len() < RETIRE_AMONG_PER_SCOPE => ids.push(id.to_owned()),
            _ => self.ids = None,
        }
    }
}

/// What a complete first walk did not list of the registries stored where it would leave
/// them ([`Listing::stored`]), as 64-bit hashes of their ids: kept when there are no more
/// than [`RETIRE_AMONG_PER_SCOPE`], so that finding what the run did not list looks the
/// run's listing up for these (and for the registries the scope covers elsewhere) instead
/// of for every registry the scope holds. Each registry the run did not list is among them:
/// where the walk would leave it, it was stored when the walk began (a registry written
/// there since was listed by the run), so unless its id collides with one the walk listed,
/// which can only keep a registry one run longer, never retire one.
#[derive(Debug)]
struct Missed {
    hasher: KeyHasher,
    keys: KeySet,
}

impl Missed {
    /// What `listing` did not list of what it found stored, if that is few.
    fn of(listing: &Listing) -> Option<Missed> {
        let keys: KeySet = listing
            .stored
            .keys()
            .filter(|key| !listing.seen.contains(key))
            .take(RETIRE_AMONG_PER_SCOPE + 1)
            .copied()
            .collect();
        (keys.len() <= RETIRE_AMONG_PER_SCOPE).then(|| Missed {
            hasher: listing.hasher.clone(),
            keys,
        })
    }
}

/// Takes `n` from what `left` allows, if it allows that many.
fn claim(left: &AtomicUsize, n: usize) -> bool {
    left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
        left.checked_sub(n)
    })
    .is_ok()
}

/// The most ids of missed registries a run keeps, all scopes together, for their retiring to
/// look among: a run's usual handful is looked up by id; a scope whose ids do not fit passes
/// over the scope and the run's listing instead, so memory stays bounded (a few hundred KiB)
/// however much goes missing, in however many scopes.
const RETIRE_AMONG_MAX: usize = 10_000;

/// The most ids one scope's retiring looks among: each is a numbered placeholder of its
/// three statements, and SQLite finds a numbered placeholder's value by walking the list of
/// the statement's names, so a statement's binding costs the square of its ids.
const RETIRE_AMONG_PER_SCOPE: usize = 1_000;

impl Listing {
    /// A listing for a walk that confirms what `unseen` holds.
    fn confirming(unseen: &Unseen) -> Listing {
        Listing {
            hasher: unseen.hasher.clone(),
            unseen: Some(unseen.keys.clone()),
            ..Listing::default()
        }
    }

    /// Loads what the store holds where a walk of `scope` would leave a registry.
    async fn load(&mut self, ctx: &RunContext<'_>, scope: &Scope) -> Result<(), StoreError> {
        self.stored = read_stored(ctx.store, scope, &self.hasher, &mut |_, _| {}).await?;
        Ok(())
    }

    /// Turns a fetched page into registries, sets aside the ones listed already and sorts
    /// the others into those the store holds unchanged and the rest.
    fn sort(&mut self, page: RawPage) -> Result<StagedPage, String> {
        let mut staged = StagedPage::default();
        for (i, item) in page.items.into_iter().enumerate() {
            let unusable = |e: String| {
                format!(
                    "item at offset {} of ListRegistry: {e}",
                    page.offset as usize + i
                )
            };
            let id = item.id().map_err(unusable)?;
            let key = self.hasher.hash_one(&id);
            let stored = self.stored.get(&key);
            if !self.seen.insert(key) {
                self.n_duplicates += 1;
            } else if stored.is_some()
                && self
                    .unseen
                    .as_ref()
                    .is_some_and(|unseen| !unseen.contains(&key))
            {
                // A confirming walk's registry that the run listed already: its content is
                // as a walk of the run found it, and a change since waits for the next run.
            } else if stored == Some(&hash_prefix(item.content_hash().map_err(unusable)?)) {
                staged.unchanged.push(id);
            } else {
                staged.changed.push(item.into_staged().map_err(unusable)?);
            }
        }
        Ok(staged)
    }

    /// Sorts fetched pages of scope `ix` and stages them together; returns how many of their
    /// registries were staged as unchanged. The pages before one that cannot be read are
    /// staged, as when each page was staged alone.
    async fn sort_and_stage(
        &mut self,
        ctx: &RunContext<'_>,
        ix: usize,
        pages: Vec<RawPage>,
    ) -> Result<i64, StageError> {
        let mut sorted = StagedPage::default();
        let mut unreadable = None;
        for page in pages {
            match self.sort(page) {
                Ok(page) => {
                    sorted.unchanged.extend(page.unchanged);
                    sorted.changed.extend(page.changed);
                    ctx.options
                        .progress
                        .page_walked(ctx.coverages[ix].scope, self.seen.len());
                }
                Err(why) => {
                    unreadable = Some(why);
                    break;
                }
            }
        }
        let n_unchanged = if sorted.unchanged.is_empty() && sorted.changed.is_empty() {
            0
        } else {
            stage(ctx, ix, sorted).await.map_err(StageError::Store)?
        };
        match unreadable {
            Some(why) => Err(StageError::Item(why)),
            None => Ok(n_unchanged),
        }
    }
}

/// A fetched page, before its items are read as registries.
struct RawPage {
    /// The offset of its first item.
    offset: u32,
    items: Vec<RawRegistry>,
}

/// Why a page could not be staged.
enum StageError {
    /// An item is not a registry.
    Item(String),
    /// The database failed.
    Store(StoreError),
}

/// A page's registries, sorted for staging.
#[derive(Default)]
struct StagedPage {
    /// Ids of the registries listed as the store holds them.
    unchanged: Vec<String>,
    /// The others, staged with their content.
    changed: Vec<StagedRegistry>,
}

/// Why a walk asked for no more pages.
enum PageStop {
    /// The run was halted.
    Interrupted,
    /// The page could not be had: why, and what the API said.
    Failed(String, Failure),
}

/// Asks for the page at `offset` of `scope`, through the run's authentication gate.
async fn fetch_page(
    client: &HssClient,
    ctx: &RunContext<'_>,
    scope: &Scope,
    offset: u32,
    attempts: &mut Attempts,
) -> Result<RegistryPage, PageStop> {
    if ctx.halt.is_cancelled() {
        return Err(PageStop::Interrupted);
    }
    if offset >= MAX_OFFSET {
        return Err(PageStop::Failed(
            format!(
                "scope holds more than {MAX_OFFSET} registries, the largest offset ListRegistry accepts"
            ),
            Failure::default(),
        ));
    }
    let options = ctx.options;
    let query = ListRegistryQuery {
        enterprise_project_id: Some(scope.enterprise_project_id.clone()),
        offset,
        limit: options.page_limit,
        filters: options.filters.clone(),
    };
    let pass = tokio::select! {
        pass = ctx.gate.enter() => pass,
        () = ctx.halt.cancelled() => return Err(PageStop::Interrupted),
    };
    let probe =
        pass.map_err(|why| PageStop::Failed(format!("stopped: {why}"), Failure::default()))?;
    let page = tokio::select! {
        page = client.list_registries(&scope.project_id, &query, attempts) => page,
        () = ctx.halt.cancelled() => return Err(PageStop::Interrupted),
    };
    ctx.gate.record(&page, client.refusal_hint());
    drop(probe);
    page.map_err(|e| PageStop::Failed(e.to_string(), Failure::of(&e)))
}

/// Stages a sorted page of scope `ix`; returns how many of its registries were staged as
/// unchanged.
async fn stage(ctx: &RunContext<'_>, ix: usize, page: StagedPage) -> Result<i64, StoreError> {
    let unchanged: Vec<&str> = page.unchanged.iter().map(String::as_str).collect();
    ctx.store
        .stage_page(&StagePage {
            run_id: ctx.run_id,
            scope_ix: ix as i64,
            scope: ctx.coverages[ix].scope,
            unchanged: &unchanged,
            listing_indexed: ctx.listing_indexed.load(Ordering::SeqCst),
            changed: &page.changed,
        })
        .await
}

/// What the store holds where a walk of `scope` would leave a registry: the content hash
/// prefix of each, keyed by `hasher`'s hash of its id; `each` is called with every id and
/// its key.
async fn read_stored(
    store: &Store,
    scope: &Scope,
    hasher: &KeyHasher,
    each: &mut (dyn FnMut(&str, u64) + Send),
) -> Result<KeyMap, StoreError> {
    let mut stored = KeyMap::default();
    store
        .unchanged_candidates(scope, &mut |id, hash| {
            let key = hasher.hash_one(id);
            stored.insert(key, hash_prefix(hash));
            each(id, key);
        })
        .await?;
    Ok(stored)
}

/// The first 64 bits of a hex content hash.
fn hash_prefix(hex: &str) -> u64 {
    hex.get(..16)
        .and_then(|prefix| u64::from_str_radix(prefix, 16).ok())
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, name: &str) -> RawRegistry {
        let text = serde_json::json!({"id": id, "registry_name": name}).to_string();
        RawRegistry::parse(&text).expect("an object")
    }

    fn page(items: Vec<RawRegistry>) -> RawPage {
        RawPage { offset: 0, items }
    }

    /// Stores `id` in the listing as holding `name`, as `Listing::load` would.
    fn store(listing: &mut Listing, id: &str, name: &str) {
        let hash = item(id, name).content_hash().unwrap().to_owned();
        let key = listing.hasher.hash_one(id);
        listing.stored.insert(key, hash_prefix(&hash));
    }

    fn ids(staged: &StagedPage) -> (Vec<&str>, Vec<&str>) {
        (
            staged.unchanged.iter().map(String::as_str).collect(),
            staged.changed.iter().map(|r| r.id.as_str()).collect(),
        )
    }

    #[test]
    fn a_first_walk_stages_every_registry_by_id_or_with_its_content() {
        let mut listing = Listing::default();
        store(&mut listing, "kept", "a");
        store(&mut listing, "edited", "a");
        let staged = listing
            .sort(page(vec![
                item("kept", "a"),
                item("edited", "b"),
                item("new", "c"),
            ]))
            .expect("a page of registries");
        assert_eq!(ids(&staged), (vec!["kept"], vec!["edited", "new"]));
    }

    #[test]
    fn a_confirming_walk_stages_only_what_is_missing_or_not_stored() {
        let mut unseen = Unseen::default();
        unseen.insert("missed");
        unseen.insert("missed and edited");
        let mut listing = Listing::confirming(&unseen);
        for id in ["listed", "missed", "missed and edited", "edited"] {
            store(&mut listing, id, "a");
        }
        let staged = listing
            .sort(page(vec![
                item("listed", "a"),
                item("missed", "a"),
                item("missed and edited", "b"),
                // Listed by the run already: an edit since waits for the next run.
                item("edited", "b"),
                item("new", "c"),
            ]))
            .expect("a page of registries");
        assert_eq!(
            ids(&staged),
            (vec!["missed"], vec!["missed and edited", "new"])
        );
        // Every registry the walk listed still counts towards its consistency check.
        assert_eq!(listing.seen.len(), 5);
    }

    #[test]
    fn a_run_keeps_missed_ids_only_while_its_allowance_lasts() {
        let left = AtomicUsize::new(10);
        assert!(claim(&left, 6));
        assert!(!claim(&left, 5));
        assert!(claim(&left, 4));
        assert!(!claim(&left, 1));
        assert_eq!(left.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_ids_a_scope_missed_are_kept_for_its_retiring_only_while_they_are_few() {
        let mut unseen = Unseen::default();
        for i in 0..RETIRE_AMONG_PER_SCOPE {
            unseen.insert(&format!("id-{i}"));
        }
        assert_eq!(
            unseen.ids.as_ref().map(Vec::len),
            Some(RETIRE_AMONG_PER_SCOPE)
        );
        unseen.insert("one-more");
        assert_eq!(unseen.ids, None);
        assert_eq!(unseen.keys.len(), RETIRE_AMONG_PER_SCOPE + 1);
    }
}

//! `hss-sync run`: the long-running service.
//!
//! A tokio-cron-scheduler job turns each firing of the schedule into a [`runner::Tick`];
//! [`runner::run_ticks`] runs one sync at a time and skips ticks that overlap; each sync
//! first takes the database's sync lease ([`run_leased`]), so that of several replicas on
//! one database exactly one syncs per tick, and a replica that dies blocks the others for
//! at most the lease. [`http`] serves health, readiness and Prometheus metrics.

pub mod http;
pub mod metrics;
pub mod runner;
pub mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

pub use crate::config::service::{
    ServiceConfig, DEFAULT_LEASE, DEFAULT_LISTEN, DEFAULT_SHUTDOWN_DEADLINE,
};
use crate::config::SyncConfig;
use crate::errors::chain;
use crate::store::{now, Lease, LeaseOutcome, Store, StoreError};
use crate::sync::{self, Progress, RunReport, Trigger};

pub use runner::{RunnerStats, Tick};
pub use schedule::{Schedule, DEFAULT_SCHEDULE};

/// Why the service, or one leased sync, could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The database failed while taking the lease or recovering runs.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sync failed to set up or to write.
    #[error(transparent)]
    Run(#[from] sync::RunError),
    /// The HTTP endpoint's address could not be bound.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The scheduler could not start or take the job.
    #[error("the scheduler failed")]
    Scheduler(#[source] tokio_cron_scheduler::JobSchedulerError),
}

/// What [`run_leased`] did.
#[derive(Debug)]
pub enum Leased {
    /// This process ran the sync.
    Ran(RunReport),
    /// It did not: why.
    Skipped(Skipped),
}

/// Why [`run_leased`] did not sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Another process holds the sync lease.
    LeaseHeld {
        /// Who.
        holder: String,
        /// Until when, where the lease has an expiry (SQLite).
        until: Option<DateTime<Utc>>,
    },
    /// Another replica already ran this schedule tick.
    TickTaken,
}

impl Skipped {
    /// The `reason` label of `hss_sync_ticks_skipped_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Skipped::LeaseHeld { .. } => "lease",
            Skipped::TickTaken => "tick_taken",
        }
    }
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::LeaseHeld { holder, until } => write!(
                f,
                "another hss-sync process ({holder}) holds the sync lease{}",
                until.map(|u| format!(" until {u}")).unwrap_or_default()
            ),
            Skipped::TickTaken => f.write_str("another replica already ran this tick"),
        }
    }
}

/// Takes the sync lease (for `tick`, when a schedule tick asks), marks runs that dead
/// processes left `running` as `interrupted`, runs one sync while renewing the lease, and
/// gives the lease back. When another process holds the lease, or already ran this tick,
/// nothing runs.
///
/// # Errors
///
/// When the database fails or the sync cannot be set up.
pub async fn run_leased(
    config: &SyncConfig,
    store: &Store,
    tick: Option<DateTime<Utc>>,
    lease: Duration,
    trigger: Trigger,
    progress: Arc<dyn Progress>,
    cancel: CancellationToken,
) -> Result<Leased, ServiceError> {
    let held = match store.acquire_lease(tick, lease).await? {
        LeaseOutcome::Acquired(held) => held,
        LeaseOutcome::Held { holder, until } => {
            return Ok(Leased::Skipped(Skipped::LeaseHeld { holder, until }))
        }
        LeaseOutcome::TickTaken => return Ok(Leased::Skipped(Skipped::TickTaken)),
    };
    let held = Arc::new(tokio::sync::Mutex::new(held));
    let renewal = tokio::spawn(renew_lease(held.clone(), lease, cancel.clone()));
    let result = async {
        for run_id in store.recover_stale_runs(now()).await? {
            warn!(
                run.id = run_id,
                "run {run_id} was left running by a process that stopped; marked interrupted"
            );
        }
        Ok::<_, ServiceError>(
            sync::run_configured(config, store, trigger, tick, progress, cancel).await?,
        )
    }
    .await;
    renewal.abort();
    let _ = renewal.await;
    match Arc::try_unwrap(held) {
        Ok(held) => {
            if let Err(e) = held.into_inner().release().await {
                warn!(
                    "could not release the sync lease (it lapses on its own): {}",
                    chain(&e)
                );
            }
        }
        Err(_) => warn!("could not release the sync lease (it lapses on its own)"),
    }
    let report = result?;
    metrics::record_run(&report);
    Ok(Leased::Ran(report))
}

/// Renews the lease every third of its length; if it was lost (another process took it
/// after this one stalled past the lease, or the connection holding the lock broke), stops
/// the sync so two never write at once.
async fn renew_lease(
    held: Arc<tokio::sync::Mutex<Lease>>,
    lease: Duration,
    cancel: CancellationToken,
) {
    let mut interval = tokio::time::interval(lease / 3);
    interval.tick().await;
    loop {
        interval.tick().await;
        let renewed = held.lock().await.renew().await;
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                error!("the sync lease was taken by another process; stopping this sync");
                cancel.cancel();
                return;
            }
            Err(e) => warn!("could not renew the sync lease: {}", chain(&e)),
        }
    }
}

/// Runs the service until `shutdown` is cancelled: HTTP endpoint, scheduler, ticks.
///
/// # Errors
///
/// When the HTTP address cannot be bound or the scheduler cannot start.
pub async fn run_daemon(
    config: SyncConfig,
    service: ServiceConfig,
    store: Store,
    shutdown: CancellationToken,
) -> Result<RunnerStats, ServiceError> {
    let prometheus = metrics::prometheus();
    let listener = tokio::net::TcpListener::bind(service.listen)
        .await
        .map_err(|source| ServiceError::Listen {
            address: service.listen,
            source,
        })?;
    let address = listener
        .local_addr()
        .map_err(|source| ServiceError::Listen {
            address: service.listen,
            source,
        })?;
    let http_stop = CancellationToken::new();
    let credentials_refused = Arc::new(std::sync::Mutex::new(None));
    let http = {
        let app = http::router(http::HttpState {
            store: store.clone(),
            prometheus,
            max_run_age: service.max_run_age,
            started_at: Utc::now(),
            credentials_refused: credentials_refused.clone(),
        });
        let stop = http_stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };
    info!(
        listen = %address,
        schedule = service.schedule.expression(),
        lease_s = service.lease.as_secs(),
        "hss-sync service started: schedule {:?}, health and metrics on http://{address}",
        service.schedule.expression()
    );
    recover_at_start(&store, service.lease).await;

    let (sender, receiver) = mpsc::channel::<Tick>(1);
    let mut scheduler = JobScheduler::new().await.map_err(ServiceError::Scheduler)?;
    let schedule = service.schedule.clone();
    let tick_sender = sender.clone();
    let job = Job::new_async(service.schedule.expression(), move |_id, _scheduler| {
        let sender = tick_sender.clone();
        let scheduled_at = schedule.tick_for_firing(Utc::now());
        Box::pin(async move {
            // A full channel means the runner is busy with a tick it has not looked at yet;
            // that tick is skipped the same way as one arriving during a run.
            if sender.try_send(Tick { scheduled_at }).is_err() {
                ::metrics::counter!("hss_sync_ticks_skipped_total", "reason" => "overlap").increment(1);
                warn!("skipping the tick of {scheduled_at:?}: the previous one is still being handled");
            }
        })
    })
    .map_err(ServiceError::Scheduler)?;
    scheduler.add(job).await.map_err(ServiceError::Scheduler)?;
    scheduler.start().await.map_err(ServiceError::Scheduler)?;
    if service.run_at_start {
        let _ = sender.try_send(Tick { scheduled_at: None });
    }

    let config = Arc::new(config);
    let lease = service.lease;
    let stats = runner::run_ticks(
        receiver,
        shutdown,
        service.shutdown_deadline,
        move |tick, cancel| {
            let config = config.clone();
            let store = store.clone();
            let credentials_refused = credentials_refused.clone();
            async move {
                let trigger = if tick.scheduled_at.is_some() {
                    Trigger::Schedule
                } else {
                    Trigger::Start
                };
                match run_leased(
                    &config,
                    &store,
                    tick.scheduled_at,
                    lease,
                    trigger,
                    Arc::new(sync::NoProgress),
                    cancel,
                )
                .await
                {
                    Ok(Leased::Ran(report)) => {
                        info!(run.id = report.run_id, "{}", report.summary_line());
                        if let Some(refused) = &report.credentials_refused {
                            // Huawei locks a key after five refusals: wait for the next tick.
                            error!(
                                run.id = report.run_id,
                                "credentials refused; no request before the next tick: {refused}"
                            );
                        }
                        *credentials_refused
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) =
                            report.credentials_refused.clone();
                    }
                    Ok(Leased::Skipped(reason)) => {
                        ::metrics::counter!("hss_sync_ticks_skipped_total", "reason" => reason.metric_label())
                            .increment(1);
                        info!("not syncing at this tick: {reason}");
                    }
                    Err(e) => error!("sync failed: {}", chain(&e)),
                }
            }
        },
    )
    .await;
    if let Err(e) = scheduler.shutdown().await {
        warn!("scheduler shutdown: {e}");
    }
    http_stop.cancel();
    let _ = http.await;
    info!(
        n_started = stats.n_started,
        n_skipped = stats.n_skipped,
        "hss-sync service stopped"
    );
    Ok(stats)
}

/// Marks runs that a dead process left `running` as `interrupted`, when the lease is free.
async fn recover_at_start(store: &Store, lease: Duration) {
    match store.acquire_lease(None, lease).await {
        Ok(LeaseOutcome::Acquired(held)) => {
            match store.recover_stale_runs(now()).await {
                Ok(ids) => {
                    for run_id in ids {
                        warn!(run.id = run_id, "run {run_id} was left running by a process that stopped; marked interrupted");
                    }
                }
                Err(e) => warn!("could not recover stale runs: {}", chain(&e)),
            }
            if let Err(e) = held.release().await {
                warn!("could not release the sync lease: {}", chain(&e));
            }
        }
        Ok(_) => info!("another process holds the sync lease; it recovers stale runs itself"),
        Err(e) => warn!("could not check for stale runs: {}", chain(&e)),
    }
}

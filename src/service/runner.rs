//! The tick loop: one sync at a time, overlapping ticks skipped (never queued), graceful
//! shutdown with a deadline. Generic over the job, so its behaviour is tested with paused
//! time and a job that only sleeps.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// One firing of the schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The scheduled time it stands for (its identity across replicas), or `None` for the
    /// run at start.
    pub scheduled_at: Option<DateTime<Utc>>,
}

/// What the loop did, for tests and the exit log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerStats {
    /// Jobs started.
    pub n_started: u64,
    /// Ticks skipped because a job was still running.
    pub n_skipped: u64,
    /// Whether the last job had to be cancelled at shutdown.
    pub cancelled_at_shutdown: bool,
}

/// Runs `job` for each tick from `ticks` until `shutdown` is cancelled. A tick that comes
/// while a job runs is skipped and logged. At shutdown no new job starts; a running job
/// gets `deadline` to finish, then its token (the argument handed to `job`) is cancelled
/// and the loop waits for it to stop.
pub async fn run_ticks<F, Fut>(
    mut ticks: mpsc::Receiver<Tick>,
    shutdown: CancellationToken,
    deadline: Duration,
    mut job: F,
) -> RunnerStats
where
    F: FnMut(Tick, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut stats = RunnerStats::default();
    let mut running: Option<(tokio::task::JoinHandle<()>, CancellationToken)> = None;
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            finished = async { (&mut running.as_mut().expect("guarded").0).await }, if running.is_some() => {
                if let Err(e) = finished {
                    warn!("a sync task ended abnormally: {e}");
                }
                running = None;
            }
            tick = ticks.recv() => {
                let Some(tick) = tick else { break };
                if running.is_some() {
                    stats.n_skipped += 1;
                    metrics::counter!("hss_sync_ticks_skipped_total", "reason" => "overlap").increment(1);
                    warn!(tick = ?tick.scheduled_at, "skipping the tick of {:?}: the previous sync is still running", tick.scheduled_at);
                    continue;
                }
                stats.n_started += 1;
                let token = CancellationToken::new();
                running = Some((tokio::spawn(job(tick, token.clone())), token));
            }
        }
    }
    if let Some((mut handle, token)) = running {
        info!(
            deadline_s = deadline.as_secs_f64(),
            "shutting down: waiting up to {deadline:?} for the running sync"
        );
        if tokio::time::timeout(deadline, &mut handle).await.is_err() {
            info!("the running sync did not finish in time: stopping it at the next page boundary");
            stats.cancelled_at_shutdown = true;
            token.cancel();
            let _ = handle.await;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use tokio::time::Instant;

    use super::*;

    fn tick() -> Tick {
        Tick { scheduled_at: None }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_during_a_running_sync_is_skipped_not_queued() {
        let (sender, receiver) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let finished = Arc::new(AtomicU64::new(0));
        let job_finished = finished.clone();
        let runner = tokio::spawn(run_ticks(
            receiver,
            shutdown.clone(),
            Duration::from_secs(60),
            move |_, _| {
                let finished = job_finished.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                }
            },
        ));
        let start = Instant::now();
        sender.send(tick()).await.unwrap(); // t=0: starts, runs until t=10
        tokio::time::sleep_until(start + Duration::from_secs(5)).await;
        sender.send(tick()).await.unwrap(); // t=5: skipped
        tokio::time::sleep_until(start + Duration::from_secs(15)).await;
        sender.send(tick()).await.unwrap(); // t=15: starts
        tokio::time::sleep_until(start + Duration::from_secs(30)).await;
        shutdown.cancel();
        let stats = runner.await.unwrap();
        assert_eq!(stats.n_started, 2);
        assert_eq!(stats.n_skipped, 1);
        assert_eq!(finished.load(Ordering::SeqCst), 2);
        assert!(!stats.cancelled_at_shutdown);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_waits_for_the_deadline_then_cancels_the_running_sync() {
        let (sender, receiver) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(run_ticks(
            receiver,
            shutdown.clone(),
            Duration::from_secs(3),
            |_, token: CancellationToken| async move {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(100)) => {}
                    () = token.cancelled() => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            },
        ));
        sender.send(tick()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        shutdown.cancel();
        let stats = runner.await.unwrap();
        assert!(stats.cancelled_at_shutdown);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_that_finishes_within_the_deadline_is_not_cancelled() {
        let (sender, receiver) = mpsc::channel(8);
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(run_ticks(
            receiver,
            shutdown.clone(),
            Duration::from_secs(30),
            |_, _| async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
            },
        ));
        sender.send(tick()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        shutdown.cancel();
        let stats = runner.await.unwrap();
        assert!(!stats.cancelled_at_shutdown);
        assert_eq!(stats.n_started, 1);
    }
}

//! A client-side, adaptive request rate limiter.
//!
//! HSS documents five calls a minute per user per API. Every request of one credential to
//! one endpoint takes a slot from the same limiter, so concurrent scopes share the quota.
//! Slots are spaced evenly (no bursts: a burst can overrun a sliding-window quota). When the
//! server throttles anyway, the spacing doubles and the next slot moves past `Retry-After`;
//! each success then narrows the spacing back toward the configured rate, so a run spends
//! its quota without spending calls on throttled requests.
//!
//! Written by hand: rate-limiting crates take a fixed quota, and this one must move.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Slots are spaced this much wider than the configured rate strictly needs, so that
/// network jitter does not put two requests a full window apart inside one window.
pub const SPACING_MARGIN: f64 = 1.02;

/// How late a caller may take its slot without moving the next one (see
/// [`RateLimiter::acquire`]): tokio's timers wake up to a millisecond late.
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// The widest spacing the limiter backs off to: one request every two minutes.
pub const MAX_SPACING: Duration = Duration::from_secs(120);

/// Each success narrows the spacing by this fraction of the gap to the configured spacing:
/// a quarter, so that after a throttle the rate recovers over a handful of calls.
const RECOVERY_FRACTION: f64 = 0.25;

/// The limiter of one credential and one endpoint.
#[derive(Debug)]
pub struct RateLimiter {
    /// The spacing of the configured rate, with the margin.
    configured_spacing: Duration,
    /// The mutable part, behind an async lock held only for bookkeeping, never across a sleep.
    state: Mutex<LimiterState>,
}

#[derive(Debug)]
struct LimiterState {
    /// When the next request may go.
    next_slot: Instant,
    /// The current spacing: the configured one, or wider after throttling.
    spacing: Duration,
}

impl RateLimiter {
    /// A limiter for `max_requests_per_minute`; `None` when that is 0 (no limit).
    pub fn per_minute(max_requests_per_minute: u32) -> Option<RateLimiter> {
        (max_requests_per_minute > 0).then(|| {
            let spacing =
                Duration::from_secs_f64(60.0 / f64::from(max_requests_per_minute) * SPACING_MARGIN);
            RateLimiter {
                configured_spacing: spacing,
                state: Mutex::new(LimiterState {
                    next_slot: Instant::now(),
                    spacing,
                }),
            }
        })
    }

    /// Waits for the next slot. A slot is taken when its caller runs, not handed out ahead:
    /// a caller that wakes late (its runtime busy, on a loaded machine) pushes the next slot
    /// back, so that no two requests go closer together than the rate allows. Slots handed
    /// out ahead of time did not: the request after a late one went a whole lateness early,
    /// and under a quota of 20 a second, a lateness of 20 ms put 21 requests in one second.
    /// A lateness within [`TIMER_SLACK`] (a timer's tick) moves nothing, or every slot would
    /// drift by it: the requests of any window then still span the window and the margin,
    /// less one such lateness.
    pub async fn acquire(&self) {
        loop {
            let next = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                if now >= state.next_slot {
                    state.next_slot = if now - state.next_slot <= TIMER_SLACK {
                        state.next_slot + state.spacing
                    } else {
                        now + state.spacing
                    };
                    return;
                }
                state.next_slot
            };
            tokio::time::sleep_until(next).await;
        }
    }

    /// Records a request the server accepted: the spacing narrows toward the configured one.
    pub async fn on_success(&self) {
        let mut state = self.state.lock().await;
        let gap = state.spacing.saturating_sub(self.configured_spacing);
        state.spacing -= gap.mul_f64(RECOVERY_FRACTION);
    }

    /// Records a throttled request: the spacing doubles (up to [`MAX_SPACING`]) and no
    /// request goes before `retry_after` has passed.
    pub async fn on_throttled(&self, retry_after: Option<Duration>) {
        let mut state = self.state.lock().await;
        state.spacing = (state.spacing * 2).min(MAX_SPACING.max(self.configured_spacing));
        // Capped again here, so no caller can stall the endpoint for longer or overflow.
        let wait = retry_after
            .unwrap_or(state.spacing)
            .min(crate::api::retry::MAX_RETRY_AFTER);
        let earliest = Instant::now() + wait;
        state.next_slot = state.next_slot.max(earliest);
    }

    /// The current spacing between requests.
    pub async fn spacing(&self) -> Duration {
        self.state.lock().await.spacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_evenly_at_the_configured_rate() {
        let limiter = RateLimiter::per_minute(6).unwrap();
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..4 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        let spacing = Duration::from_secs_f64(10.0 * SPACING_MARGIN);
        assert_eq!(times, [Duration::ZERO, spacing, spacing * 2, spacing * 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_widens_the_spacing_honours_retry_after_and_success_recovers() {
        let limiter = RateLimiter::per_minute(60).unwrap();
        let configured = limiter.spacing().await;
        limiter.acquire().await;
        limiter.on_throttled(Some(Duration::from_secs(5))).await;
        assert_eq!(limiter.spacing().await, configured * 2);
        let start = Instant::now();
        limiter.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        for _ in 0..30 {
            limiter.on_success().await;
        }
        let recovered = limiter.spacing().await;
        assert!(
            recovered < configured + Duration::from_millis(5),
            "{recovered:?}"
        );
        assert!(recovered >= configured);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_schedule() {
        let limiter = std::sync::Arc::new(RateLimiter::per_minute(120).unwrap());
        let start = Instant::now();
        let handles: Vec<_> = (0..5)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for handle in handles {
            times.push(handle.await.unwrap());
        }
        times.sort();
        let spacing = Duration::from_secs_f64(0.5 * SPACING_MARGIN);
        for (i, time) in times.iter().enumerate() {
            assert_eq!(*time, spacing * i as u32);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_runs_late_pushes_the_next_slot_back() {
        let limiter = RateLimiter::per_minute(60).unwrap();
        let spacing = limiter.spacing().await;
        limiter.acquire().await;
        // Due one spacing from now, but its task runs 300 ms after that.
        let mut late = Box::pin(limiter.acquire());
        assert!(futures::poll!(&mut late).is_pending());
        tokio::time::sleep(spacing + Duration::from_millis(300)).await;
        late.await;
        let went_late = Instant::now();
        limiter.acquire().await;
        assert_eq!(went_late.elapsed(), spacing);
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_waits_at_most_the_cap_and_never_panics() {
        let limiter = RateLimiter::per_minute(60).unwrap();
        limiter.on_throttled(Some(Duration::MAX)).await;
        let start = Instant::now();
        limiter.acquire().await;
        assert_eq!(start.elapsed(), crate::api::retry::MAX_RETRY_AFTER);
    }

    #[test]
    fn zero_means_no_limiter() {
        assert!(RateLimiter::per_minute(0).is_none());
    }
}

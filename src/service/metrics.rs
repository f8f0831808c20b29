//! Prometheus metrics: the recorder, the series' descriptions, and what a run adds.
//!
//! Counters are incremented where things happen (`api` counts requests, retries and
//! throttling; `sync` counts scope failures); this module records run outcomes and, on each
//! scrape, reads the gauges that only the database knows (registries by status and type,
//! seconds since the last successful sync), so they are right whichever replica synced.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use chrono::Utc;
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::{Store, StoreError};
use crate::sync::{RunReport, RunStatus};

/// Buckets of the run duration histogram, in seconds: from a small estate on a fast link to
/// a large account at five requests a minute.
const RUN_DURATION_BUCKETS: [f64; 11] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0,
];

const RUN_STATUSES: [RunStatus; 4] = [
    RunStatus::Succeeded,
    RunStatus::Partial,
    RunStatus::Failed,
    RunStatus::Interrupted,
];
const CHANGE_KINDS: [&str; 5] = ["created", "updated", "unchanged", "deleted", "restored"];

/// The process's Prometheus recorder, installed on first use.
///
/// # Panics
///
/// If another global `metrics` recorder was installed first, which this crate never does.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("hss_sync_run_duration_seconds".to_owned()),
                    &RUN_DURATION_BUCKETS,
                )
                .expect("non-empty buckets")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!("hss_sync_runs_total", "Sync runs by final status.");
    describe_histogram!(
        "hss_sync_run_duration_seconds",
        Unit::Seconds,
        "Wall time of sync runs."
    );
    describe_counter!(
        "hss_sync_scope_failures_total",
        "Scopes whose walk failed (nothing in them retired)."
    );
    describe_counter!(
        "hss_sync_http_requests_total",
        "Requests to Huawei Cloud by API and HTTP status (`error` when no answer came)."
    );
    describe_counter!(
        "hss_sync_http_retries_total",
        "Requests retried after a retryable failure."
    );
    describe_counter!(
        "hss_sync_http_throttled_total",
        "Requests refused for throttling (429, APIG.0308)."
    );
    describe_counter!(
        "hss_sync_rows_total",
        "Registry rows written by change kind."
    );
    describe_gauge!("hss_sync_registries", "Live registries by status and type.");
    describe_gauge!(
        "hss_sync_seconds_since_last_success",
        Unit::Seconds,
        "Seconds since the last sync that succeeded in every scope (-1 if none yet)."
    );
    describe_counter!("hss_sync_ticks_skipped_total", "Schedule ticks skipped: overlap (still running), lease (another replica runs), tick_taken (another replica ran this tick).");
    describe_gauge!(
        "hss_sync_run_in_progress",
        "1 while this process runs a sync."
    );
    // Start every labelled counter at zero, so each series is there from the first scrape.
    for status in RUN_STATUSES {
        counter!("hss_sync_runs_total", "status" => status.as_str()).increment(0);
    }
    for kind in CHANGE_KINDS {
        counter!("hss_sync_rows_total", "change_kind" => kind).increment(0);
    }
    for reason in ["overlap", "lease", "tick_taken"] {
        counter!("hss_sync_ticks_skipped_total", "reason" => reason).increment(0);
    }
    for api in [
        "ListRegistry",
        "CreateToken",
        "ListProjects",
        "ListEnterpriseProjects",
    ] {
        counter!("hss_sync_http_retries_total", "api" => api).increment(0);
        counter!("hss_sync_http_throttled_total", "api" => api).increment(0);
    }
    counter!("hss_sync_http_requests_total", "api" => "ListRegistry", "status" => "200")
        .increment(0);
    counter!("hss_sync_scope_failures_total").increment(0);
    gauge!("hss_sync_run_in_progress").set(0.0);
}

/// Records a finished run.
pub fn record_run(report: &RunReport) {
    counter!("hss_sync_runs_total", "status" => report.status.as_str()).increment(1);
    gauge!("hss_sync_credentials_refused").set(if report.credentials_refused.is_some() {
        1.0
    } else {
        0.0
    });
    histogram!("hss_sync_run_duration_seconds").record(report.duration.as_secs_f64());
    let c = &report.counts;
    for (kind, n) in [
        ("created", c.n_inserted),
        ("updated", c.n_updated),
        ("unchanged", c.n_unchanged),
        ("deleted", c.n_deleted),
        ("restored", c.n_restored),
    ] {
        counter!("hss_sync_rows_total", "change_kind" => kind).increment(n.max(0) as u64);
    }
}

/// Reads the gauges the database knows, just before a scrape.
///
/// # Errors
///
/// [`StoreError`] when the database does not answer; the gauges keep their last values.
pub async fn refresh_store_gauges(store: &Store) -> Result<(), StoreError> {
    static SEEN: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let counts = store.registry_counts().await?;
    let current: BTreeSet<(String, String)> = counts
        .iter()
        .map(|(s, t, _)| (s.clone(), t.clone()))
        .collect();
    for (status, registry_type, n) in &counts {
        gauge!("hss_sync_registries", "status" => status.clone(), "registry_type" => registry_type.clone()).set(*n as f64);
    }
    {
        let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
        // A combination that no longer exists reads 0 rather than its last count.
        for (status, registry_type) in seen.difference(&current) {
            gauge!("hss_sync_registries", "status" => status.clone(), "registry_type" => registry_type.clone()).set(0.0);
        }
        seen.extend(current);
    }
    let since = match store.last_finished(&[RunStatus::Succeeded]).await? {
        Some(finished) => (Utc::now() - finished).num_milliseconds().max(0) as f64 / 1000.0,
        None => -1.0,
    };
    gauge!("hss_sync_seconds_since_last_success").set(since);
    Ok(())
}

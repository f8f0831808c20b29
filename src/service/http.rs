//! The daemon's HTTP endpoint: `/healthz` (alive), `/readyz` (database reachable and the
//! last run not too old), `/metrics` (Prometheus text format).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::warn;

use crate::errors::chain;
use crate::service::metrics;
use crate::store::Store;
use crate::sync::RunStatus;

/// How long a probe waits for the database; Kubernetes probes time out after 1 s by
/// default, so answer before that.
const PROBE_DATABASE_TIMEOUT: Duration = Duration::from_millis(900);

/// What the handlers need.
#[derive(Clone)]
pub struct HttpState {
    /// The database.
    pub store: Store,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// A last finished run older than this makes `/readyz` fail.
    pub max_run_age: Duration,
    /// When the daemon started: it is ready before its first run for `max_run_age`.
    pub started_at: DateTime<Utc>,
    /// Why the last run's credentials were refused, when they were; cleared by a run whose
    /// credentials were accepted. The service is not ready until then.
    pub credentials_refused: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

/// The routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    match tokio::time::timeout(PROBE_DATABASE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: database: {}\n", chain(&e)),
            )
        }
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: database did not answer in time\n".to_owned(),
            )
        }
    }
    let refused = state
        .credentials_refused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if let Some(refused) = refused {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the last run stopped because {refused}; the next tick tries again\n"
            ),
        );
    }
    let max_age = chrono::Duration::from_std(state.max_run_age).unwrap_or(chrono::Duration::MAX);
    let now = Utc::now();
    if now - state.started_at < max_age {
        return (StatusCode::OK, "ready\n".to_owned());
    }
    match tokio::time::timeout(
        PROBE_DATABASE_TIMEOUT,
        state
            .store
            .last_finished(&[RunStatus::Succeeded, RunStatus::Partial]),
    )
    .await
    {
        Ok(Ok(Some(finished))) if now - finished < max_age => {
            (StatusCode::OK, "ready\n".to_owned())
        }
        Ok(Ok(Some(finished))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the last completed run finished at {finished}, more than {:?} ago\n",
                state.max_run_age
            ),
        ),
        Ok(Ok(None)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: no run has completed in the {:?} since start\n",
                state.max_run_age
            ),
        ),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: database: {}\n", chain(&e)),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: database did not answer in time\n".to_owned(),
        ),
    }
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    match tokio::time::timeout(
        PROBE_DATABASE_TIMEOUT,
        metrics::refresh_store_gauges(&state.store),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!("metrics: could not read registry gauges: {}", chain(&e)),
        Err(_) => warn!("metrics: the database did not answer in time; registry gauges are stale"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.prometheus.render(),
    )
}

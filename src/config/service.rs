//! `[service]`: what `hss-sync run` needs besides a sync's configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

use super::{with_default, ConfigError};
use crate::service::schedule::{Schedule, DEFAULT_SCHEDULE};

/// Where the HTTP endpoint listens by default: loopback, port 9464 (the port Prometheus
/// exporters conventionally take from the exporter registry's range).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// How long a running sync may take to finish after SIGTERM before it is stopped.
/// Kubernetes waits 30 s (terminationGracePeriodSeconds) before SIGKILL; stay inside it.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// How long the sync lease lasts without renewal: the longest a replica that died mid-run
/// blocks the others. Renewed every third of it while a sync runs.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// The shortest `max_run_age` by default, for schedules that fire often.
pub const MIN_DEFAULT_MAX_RUN_AGE: Duration = Duration::from_secs(3600);

/// Whether the service syncs once at start unless told to.
pub const DEFAULT_RUN_AT_START: bool = false;

/// The service's keys: `[service]` in the file, flags of `hss-sync run`. `None` defers to the
/// layer below.
#[derive(Clone, Debug, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Cron schedule in UTC with seconds.
    #[arg(long, env = "HSS_SYNC_SCHEDULE", value_name = "CRON",
          help = with_default("Cron schedule in UTC with seconds, as tokio-cron-scheduler takes it (\"0 */15 * * * *\": every 15 minutes); five fields also work (\"*/15 * * * *\")", DEFAULT_SCHEDULE))]
    pub schedule: Option<String>,

    /// Also sync once right after start.
    #[arg(long, env = "HSS_SYNC_RUN_AT_START", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL",
          help = with_default("Also sync once right after start", DEFAULT_RUN_AT_START))]
    pub run_at_start: Option<bool>,

    /// Address of the /healthz, /readyz and /metrics endpoint.
    #[arg(long, env = "HSS_SYNC_LISTEN", value_name = "ADDR",
          help = with_default("Address of the /healthz, /readyz and /metrics endpoint", DEFAULT_LISTEN))]
    pub listen: Option<String>,

    /// Seconds a running sync may take to finish after SIGTERM.
    #[arg(long, env = "HSS_SYNC_SHUTDOWN_DEADLINE_SECONDS", value_name = "SECONDS",
          help = with_default("Seconds a running sync may take to finish after SIGTERM before it is stopped at a page boundary", DEFAULT_SHUTDOWN_DEADLINE.as_secs()))]
    pub shutdown_deadline_seconds: Option<u64>,

    /// /readyz fails when the last completed run finished longer ago than this.
    #[arg(long, env = "HSS_SYNC_MAX_RUN_AGE_SECONDS", value_name = "SECONDS",
          help = with_default("/readyz fails when the last completed run finished longer ago than this", format!("3 schedule intervals, at least {}", MIN_DEFAULT_MAX_RUN_AGE.as_secs())))]
    pub max_run_age_seconds: Option<u64>,

    /// Length of the sync lease.
    #[arg(long, env = "HSS_SYNC_LEASE_SECONDS", value_name = "SECONDS",
          help = with_default("Length of the sync lease: the longest a replica that died mid-run blocks the others", DEFAULT_LEASE.as_secs()))]
    pub lease_seconds: Option<u64>,
}

impl ServiceSettings {
    /// Every key that has a default, at its default (`max_run_age_seconds` is derived from
    /// the schedule by [`ServiceConfig::build`]).
    pub fn defaults() -> ServiceSettings {
        ServiceSettings {
            schedule: Some(DEFAULT_SCHEDULE.to_owned()),
            run_at_start: Some(DEFAULT_RUN_AT_START),
            listen: Some(DEFAULT_LISTEN.to_owned()),
            shutdown_deadline_seconds: Some(DEFAULT_SHUTDOWN_DEADLINE.as_secs()),
            max_run_age_seconds: None,
            lease_seconds: Some(DEFAULT_LEASE.as_secs()),
        }
    }
}

/// The validated service settings.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// When to sync.
    pub schedule: Schedule,
    /// Whether to sync once at start, before the first tick.
    pub run_at_start: bool,
    /// The HTTP endpoint's address.
    pub listen: SocketAddr,
    /// How long a running sync may finish after SIGTERM.
    pub shutdown_deadline: Duration,
    /// `/readyz` fails when the last completed run is older than this.
    pub max_run_age: Duration,
    /// The sync lease's length.
    pub lease: Duration,
}

impl ServiceConfig {
    /// Validates the merged `[service]` keys, and writes back the values as they will be used
    /// (the schedule in its six-field form, the derived `max_run_age_seconds`).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem, each naming its key.
    pub fn build(settings: &mut ServiceSettings) -> Result<ServiceConfig, ConfigError> {
        let mut problems = Vec::new();
        let text = settings.schedule.clone().unwrap_or_default();
        let schedule = Schedule::parse(&text)
            .map_err(|e| problems.push(format!("schedule: {e}")))
            .ok();
        let listen_text = settings.listen.clone().unwrap_or_default();
        let listen = listen_text
            .parse::<SocketAddr>()
            .map_err(|_| {
                problems.push(format!(
                    "listen: {listen_text:?} is not an address such as {DEFAULT_LISTEN}"
                ))
            })
            .ok();
        let lease = Duration::from_secs(settings.lease_seconds.unwrap_or_default());
        if lease < Duration::from_secs(3) {
            problems.push("lease_seconds: must be at least 3".to_owned());
        }
        let shutdown_deadline =
            Duration::from_secs(settings.shutdown_deadline_seconds.unwrap_or_default());
        let (Some(schedule), Some(listen)) = (schedule, listen) else {
            return Err(ConfigError { problems });
        };
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let max_run_age = settings.max_run_age_seconds.map_or_else(
            || (schedule.typical_interval() * 3).max(MIN_DEFAULT_MAX_RUN_AGE),
            Duration::from_secs,
        );
        settings.schedule = Some(schedule.expression().to_owned());
        settings.listen = Some(listen.to_string());
        settings.max_run_age_seconds = Some(max_run_age.as_secs());
        Ok(ServiceConfig {
            schedule,
            run_at_start: settings.run_at_start.unwrap_or_default(),
            listen,
            shutdown_deadline,
            max_run_age,
            lease,
        })
    }
}

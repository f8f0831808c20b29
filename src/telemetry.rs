//! Logging set-up: `tracing` to standard error, levels from `RUST_LOG`, text or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber. `default_level` is hss-sync's own level when `RUST_LOG` is
/// unset, for example `info` for `sync` and `warn` for the demo, whose own output tells the
/// story; see [`default_filter`]. `RUST_LOG`, when set, is taken as it is.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(default_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        // A failed write to standard error (a closed pipe) is dropped; the default reports
        // it with eprintln!, which panics when standard error is that closed pipe.
        .log_internal_errors(false);
    // A second call (tests run several commands in one process) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The filter used when `RUST_LOG` is unset: hss-sync's own events from `level` up, and only
/// warnings and errors from the libraries, whose informational lines (sqlx's `relation
/// "_sqlx_migrations" already exists, skipping` on every PostgreSQL start,
/// tokio-cron-scheduler's `Uninited`) say nothing to an operator.
pub fn default_filter(level: &str) -> String {
    format!("warn,{}={level}", env!("CARGO_CRATE_NAME"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `directive` lets through of a few events, as hss-sync and its libraries log them.
    fn logged_with(directive: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new(directive))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "hss_sync::sync::engine", "sync run 1 succeeded");
            tracing::info!(target: "sqlx::postgres::notice", "relation \"_sqlx_migrations\" already exists, skipping");
            tracing::info!(target: "tokio_cron_scheduler::job_scheduler", "Uninited");
            tracing::warn!(target: "sqlx::query", "slow statement");
            tracing::debug!(target: "hss_sync::api::client", "request sent");
        });
        let text = captured.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn the_default_filter_shows_hss_syncs_own_events_and_only_warnings_of_libraries() {
        assert_eq!(default_filter("info"), "warn,hss_sync=info");
        let logged = logged_with(&default_filter("info"));
        assert!(logged.contains("sync run 1 succeeded"), "{logged}");
        assert!(logged.contains("slow statement"), "{logged}");
        assert!(!logged.contains("_sqlx_migrations"), "{logged}");
        assert!(!logged.contains("Uninited"), "{logged}");
        assert!(!logged.contains("request sent"), "{logged}");

        let quiet = logged_with(&default_filter("warn"));
        assert!(!quiet.contains("sync run 1 succeeded"), "{quiet}");
        assert!(quiet.contains("slow statement"), "{quiet}");
    }

    #[test]
    fn rust_log_info_still_shows_every_librarys_info_events() {
        let logged = logged_with("info");
        assert!(logged.contains("_sqlx_migrations"), "{logged}");
        assert!(logged.contains("Uninited"), "{logged}");
    }
}

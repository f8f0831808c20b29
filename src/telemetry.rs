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

/// Installs the global subscriber. `default_directive` applies when `RUST_LOG` is unset,
/// for example `info` for `sync` and `warn` for the demo, whose own output tells the story.
pub fn init(format: LogFormat, default_directive: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
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

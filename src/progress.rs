//! The progress bar on a terminal: an observer of the engine's [`Progress`] events.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::sync::{Progress, Scope};

/// A progress bar on standard error, hidden when standard error is not a terminal.
#[derive(Debug)]
pub struct TerminalProgress {
    /// The bar; hidden bars draw nothing.
    bar: ProgressBar,
}

impl TerminalProgress {
    /// A bar on standard error when it is a terminal, else a hidden one.
    pub fn on_stderr() -> TerminalProgress {
        if !std::io::stderr().is_terminal() {
            return TerminalProgress {
                bar: ProgressBar::hidden(),
            };
        }
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] scopes {pos}/{len} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        TerminalProgress { bar }
    }
}

impl Progress for TerminalProgress {
    fn started(&self, n_scopes: usize) {
        self.bar.set_length(n_scopes as u64);
    }

    fn page_walked(&self, scope: &Scope, n_registries: usize) {
        self.bar
            .set_message(format!("{scope}: {n_registries} registries"));
    }

    fn scope_applied(&self) {
        self.bar.inc(1);
    }

    fn finished(&self) {
        self.bar.finish_and_clear();
    }
}

//! The process exit codes, in one place: what a script or a scheduler can rely on.

/// How an `hss-sync` process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The command did what it was asked; a sync's every scope succeeded.
    Success,
    /// The command failed: a sync whose every scope failed, a database or set-up error.
    Failure,
    /// The configuration or the command line is wrong; nothing was done.
    Usage,
    /// A sync applied some scopes but not all (failed, or deletions held).
    Partial,
    /// `sync` found another process holding the sync lease; nothing was done.
    LeaseHeld,
    /// Stopped by a signal (the shell's code for SIGINT, 128 + 2).
    Interrupted,
    /// Standard output's reader went away (`hss-sync demo | head`), as a shell shows a
    /// program killed by SIGPIPE (128 + 13).
    BrokenPipe,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Partial => 3,
            Exit::LeaseHeld => 4,
            Exit::Interrupted => 130,
            Exit::BrokenPipe => 141,
        }
    }
}

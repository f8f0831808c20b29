//! The states a run and a scope move through, and what started a run: each with its SQL
//! text written once, here.

use std::fmt;

use crate::exit::Exit;

/// Declares a state enum with the text its column holds.
macro_rules! sql_text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The column's text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// The value a column's text names, if any.
            pub fn from_sql(text: &str) -> Option<$name> {
                match text {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
    };
}

sql_text_enum! {
    /// How a run stands (`sync_runs.status`).
    pub enum RunStatus {
        /// Started and not finished: still going, or its process died.
        Running => "running",
        /// Every scope succeeded.
        Succeeded => "succeeded",
        /// Some scopes failed or had their deletions held; the others were applied.
        Partial => "partial",
        /// Every scope failed, the credentials were refused, or the store failed first.
        Failed => "failed",
        /// Stopped by a signal, or left running by a process that died.
        Interrupted => "interrupted",
    }
}

impl Default for RunStatus {
    /// A run is running until it is finished.
    fn default() -> Self {
        RunStatus::Running
    }
}

impl RunStatus {
    /// The process exit code for a run that ended so: 0 succeeded, 3 partial, 1 failed,
    /// 130 interrupted (the shell's code for SIGINT).
    pub fn exit_code(self) -> u8 {
        match self {
            RunStatus::Succeeded => Exit::Success.code(),
            RunStatus::Partial => Exit::Partial.code(),
            RunStatus::Failed | RunStatus::Running => Exit::Failure.code(),
            RunStatus::Interrupted => Exit::Interrupted.code(),
        }
    }
}

sql_text_enum! {
    /// How one scope of a run stands (`sync_run_scopes.status`).
    pub enum ScopeStatus {
        /// Being walked or applied, or its process died.
        Running => "running",
        /// Walked and applied.
        Succeeded => "succeeded",
        /// Walked and applied, but its deletions were held by the mass-deletion guard.
        Held => "held",
        /// Its walk or its write failed; nothing in it was retired.
        Failed => "failed",
        /// Stopped before its walk ended.
        Interrupted => "interrupted",
    }
}

sql_text_enum! {
    /// What started a run (`sync_runs.trigger`).
    pub enum Trigger {
        /// `hss-sync sync`.
        Cli => "cli",
        /// `hss-sync demo`.
        Demo => "demo",
        /// A tick of the service's schedule.
        Schedule => "schedule",
        /// The service's `--run-at-start`.
        Start => "start",
        /// A benchmark.
        Bench => "bench",
        /// A program using the library that named no trigger (the tests).
        Library => "library",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_own_text_and_nothing_else() {
        for status in RunStatus::ALL {
            assert_eq!(RunStatus::from_sql(status.as_str()), Some(*status));
        }
        for status in ScopeStatus::ALL {
            assert_eq!(ScopeStatus::from_sql(status.as_str()), Some(*status));
        }
        for trigger in Trigger::ALL {
            assert_eq!(Trigger::from_sql(trigger.as_str()), Some(*trigger));
        }
        assert_eq!(RunStatus::from_sql("held"), None);
        assert!(ScopeStatus::Held == "held");
    }
}

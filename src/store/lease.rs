//! The sync lease: one process syncs a database at a time.
//!
//! On PostgreSQL the lease is a session advisory lock held on a connection of its own: the
//! server releases it the moment that connection ends, so a process killed with `kill -9`
//! blocks no one, and no process's clock decides anything. The `sync_lease` row still says
//! who holds it (for messages) and which schedule tick was claimed last.
//!
//! On SQLite the lease is the `sync_lease` row with an expiry, renewed while a sync runs. A
//! holder on this host whose process no longer exists is taken over at once.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::store::{query_error, LeaseOutcome, StoreError};

/// The advisory lock key of the sync lease: the bytes of `hss_sync` as a number, so it is
/// recognisable in `pg_locks` and unlikely to collide with another application's key.
const ADVISORY_LOCK_KEY: i64 = 0x6873_735f_7379_6e63;

/// The key every writing transaction of a sync holds shared (`WRITE_FENCE`), and a process
/// that takes the lease holds exclusively for a moment: a holder killed with a transaction
/// in flight, whose COMMIT the server had already received, releases the lease (its lease
/// connection ends) before the server finishes that COMMIT. The next holder waits for it
/// here, so that recovery never reads a run's scopes before its last commit lands.
pub(crate) const WRITE_FENCE_KEY: i64 = ADVISORY_LOCK_KEY + 1;

/// A held sync lease. Give it back with [`Lease::release`]; if the process dies instead,
/// PostgreSQL releases it with the connection, and SQLite's expires or is taken over.
pub struct Lease {
    /// How the lease is held.
    pub(crate) kind: LeaseKind,
}

pub(crate) enum LeaseKind {
    /// The `sync_lease` row, until `length` after the last renewal.
    Row {
        /// The store, for renewing and releasing.
        store: crate::store::Store,
        /// How long the lease lasts without renewal.
        length: Duration,
    },
    /// A session advisory lock on this connection, which no pool hands out.
    Advisory {
        /// The connection that holds the lock.
        connection: PgConnection,
        /// This process's holder id, as written in the row.
        holder: String,
    },
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            LeaseKind::Row { length, .. } => f
                .debug_struct("Lease::Row")
                .field("length", length)
                .finish(),
            LeaseKind::Advisory { holder, .. } => f
                .debug_struct("Lease::Advisory")
                .field("holder", holder)
                .finish(),
        }
    }
}

impl Lease {
    /// Keeps the lease: extends the row's expiry, or checks that the lock's connection is
    /// alive. `false` when the lease is lost (another process took the row, or the
    /// connection that held the lock broke), and the sync must stop.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails while renewing the row.
    pub async fn renew(&mut self) -> Result<bool, StoreError> {
        match &mut self.kind {
            LeaseKind::Row { store, length } => store.renew_row_lease(*length).await,
            LeaseKind::Advisory { connection, .. } => Ok(connection.ping().await.is_ok()),
        }
    }

    /// Gives the lease back.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails; the lease then lapses on its own (the row's
    /// expiry, or the lock's connection being closed here).
    pub async fn release(self) -> Result<(), StoreError> {
        const CONTEXT: &str = "releasing the sync lease";
        match self.kind {
            LeaseKind::Row { store, .. } => store.release_row_lease().await,
            LeaseKind::Advisory {
                mut connection,
                holder,
            } => {
                let result = async {
                    sqlx::query(
                        "UPDATE sync_lease SET holder = NULL, expires_at = NULL WHERE name = 'sync' AND holder = $1",
                    )
                    .bind(&holder)
                    .execute(&mut connection)
                    .await?;
                    sqlx::query("SELECT pg_advisory_unlock($1)")
                        .bind(ADVISORY_LOCK_KEY)
                        .execute(&mut connection)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                // Closing the connection releases the lock even if the statements failed.
                let _ = connection.close().await;
                result.map_err(query_error(CONTEXT))
            }
        }
    }
}

/// How long taking the lease waits for the lock of a holder whose process no longer exists
/// to be released by the server.
const DEAD_HOLDER_GRACE: Duration = Duration::from_secs(5);

/// Tries the sync lease's advisory lock on `connection`.
async fn try_advisory_lock(connection: &mut PgConnection) -> Result<bool, StoreError> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(ADVISORY_LOCK_KEY)
        .fetch_one(connection)
        .await
        .map_err(query_error("taking the sync lease"))
}

/// Takes the advisory lock on a connection of its own, then claims `tick` in the row. When
/// another session holds it and the lease row names a process of this host that no longer
/// exists, waits up to [`DEAD_HOLDER_GRACE`] for the server to release it.
pub(crate) async fn acquire_advisory(
    pool: &PgPool,
    holder: &str,
    tick: Option<DateTime<Utc>>,
) -> Result<LeaseOutcome, StoreError> {
    const CONTEXT: &str = "taking the sync lease";
    let mut connection = pool.acquire().await.map_err(query_error(CONTEXT))?.detach();
    let mut locked = try_advisory_lock(&mut connection).await?;
    if !locked {
        let row = sqlx::query("SELECT holder FROM sync_lease WHERE name = 'sync'")
            .fetch_optional(&mut connection)
            .await
            .map_err(query_error(CONTEXT))?;
        let holder: Option<String> = match row {
            Some(row) => row.try_get("holder").map_err(query_error(CONTEXT))?,
            None => None,
        };
        // A killed holder's lock goes when its server process notices the closed connection,
        // which can take a moment on a busy server: wait for that, not for the next run.
        let this_host = super::hostname_or_unknown();
        if holder
            .as_deref()
            .is_some_and(|holder| holder_is_gone(holder, &this_host))
        {
            let deadline = tokio::time::Instant::now() + DEAD_HOLDER_GRACE;
            while !locked && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
                locked = try_advisory_lock(&mut connection).await?;
            }
        }
        if !locked {
            let _ = connection.close().await;
            return Ok(LeaseOutcome::Held {
                holder: holder.unwrap_or_else(|| "another session".to_owned()),
                until: None,
            });
        }
    }
    let claimed = sqlx::query(
        "UPDATE sync_lease SET holder = $1, acquired_at = now(), expires_at = NULL, \
         last_tick_at = COALESCE($2, last_tick_at) \
         WHERE name = 'sync' AND ($2::timestamptz IS NULL OR last_tick_at IS NULL OR last_tick_at < $2) \
         RETURNING holder",
    )
    .bind(holder)
    .bind(tick.map(|t| t.trunc_subsecs(0)))
    .fetch_optional(&mut connection)
    .await
    .map_err(query_error(CONTEXT))?;
    if claimed.is_none() {
        // Closing the connection gives the lock back.
        let _ = connection.close().await;
        return Ok(LeaseOutcome::TickTaken);
    }
    // Wait for the writes of a previous holder that are still in flight.
    sqlx::query("SELECT pg_advisory_lock($1), pg_advisory_unlock($1)")
        .bind(WRITE_FENCE_KEY)
        .execute(&mut connection)
        .await
        .map_err(query_error(CONTEXT))?;
    Ok(LeaseOutcome::Acquired(Lease {
        kind: LeaseKind::Advisory {
            connection,
            holder: holder.to_owned(),
        },
    }))
}

/// Whether `holder` (`host:pid:nonce`) names a process on this host that no longer exists.
/// A pid that exists is taken as alive even if it was reused: waiting out the lease is the
/// safe mistake.
pub(crate) fn holder_is_gone(holder: &str, this_host: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_nonce), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == this_host
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_only_when_it_is_on_this_host_and_its_pid_does_not_exist() {
        let me = std::process::id();
        assert!(
            !holder_is_gone(&format!("h1:{me}:abcd"), "h1"),
            "this process"
        );
        // Pid 4194304 is above Linux's largest pid, so it cannot exist.
        assert!(holder_is_gone("h1:4194304:abcd", "h1"));
        assert!(!holder_is_gone("h2:4194304:abcd", "h1"), "another host");
        assert!(!holder_is_gone("garbage", "h1"));
        assert!(!holder_is_gone("h1:notapid:abcd", "h1"));
        assert!(holder_is_gone(
            "host:with:colons:4194304:abcd",
            "host:with:colons"
        ));
    }
}

//! `prune`: removes old history versions and old runs, in one transaction.
//!
//! What is never removed: a registry's current version (`valid_to IS NULL`), a run that has
//! not finished, a run still referenced by a kept history row or by a registry's
//! `last_sync_run_id`, and the newest run of each status (so the newest run, the last
//! success that `/readyz` and the metrics measure from, and the last failure all stay).

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

use crate::store::{query_error, Backend, Pools, Store, StoreError};
use crate::sync::RunStatus;

/// Ids per `IN (..)` list when deleting runs: far below either database's limits.
const IDS_PER_STATEMENT: usize = 500;

/// What to prune.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneRequest {
    /// Remove history versions replaced before this time (`valid_to` earlier than it).
    pub history_before: Option<DateTime<Utc>>,
    /// Remove runs that finished before this time.
    pub runs_before: Option<DateTime<Utc>>,
    /// Work out what would go, then roll back.
    pub dry_run: bool,
}

/// One removed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrunedRun {
    /// Its id.
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub status: RunStatus,
}

/// What [`Store::prune`] removed, or with `dry_run` would have removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// History versions removed.
    pub n_history: i64,
    /// Registries that lost at least one version.
    pub n_history_registries: i64,
    /// Runs removed, oldest first.
    pub runs: Vec<PrunedRun>,
    /// Their scope rows removed.
    pub n_scopes: i64,
    /// Runs old enough but kept because something still refers to them or they are the
    /// newest of their status.
    pub n_runs_kept: i64,
}

impl Store {
    /// Removes history versions replaced before `history_before` and runs finished before
    /// `runs_before` (with their scope rows), keeping what the module documentation lists,
    /// in one transaction; with `dry_run` the transaction is rolled back. The caller holds
    /// the sync lease, so no sync writes meanwhile.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails; then nothing is removed.
    pub async fn prune(&self, request: &PruneRequest) -> Result<PruneOutcome, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Retention::<sqlx::Sqlite>::prune(pool, request).await,
            Pools::Postgres(pool) => Retention::<sqlx::Postgres>::prune(pool, request).await,
        }
    }
}

struct Retention<DB>(PhantomData<DB>);

impl<DB> Retention<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'q> <DB as Backend>::Timestamp: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn prune(pool: &Pool<DB>, request: &PruneRequest) -> Result<PruneOutcome, StoreError> {
        const CONTEXT: &str = "pruning history and runs";
        let mut tx = pool
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(query_error(CONTEXT))?;
        let mut outcome = PruneOutcome::default();
        if let Some(before) = request.history_before {
            let counted = sqlx::query::<DB>(
                "SELECT COUNT(*) AS n, COUNT(DISTINCT registry_id) AS n_registries \
                 FROM registry_history WHERE valid_to IS NOT NULL AND valid_to < $1",
            )
            .bind(DB::timestamp(before))
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            outcome.n_history = counted.try_get("n").map_err(query_error(CONTEXT))?;
            outcome.n_history_registries = counted
                .try_get("n_registries")
                .map_err(query_error(CONTEXT))?;
            sqlx::query::<DB>(
                "DELETE FROM registry_history WHERE valid_to IS NOT NULL AND valid_to < $1",
            )
            .bind(DB::timestamp(before))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
        }
        if let Some(before) = request.runs_before {
            // Read after the history is pruned, so that a run only the removed versions
            // referred to can go too.
            let old = "finished_at IS NOT NULL AND finished_at < $1";
            let rows = sqlx::query::<DB>(&format!(
                "SELECT id, started_at, finished_at, status FROM sync_runs WHERE {old} \
                 AND id NOT IN (SELECT MAX(id) FROM sync_runs GROUP BY status) \
                 AND id NOT IN (SELECT sync_run_id FROM registry_history) \
                 AND id NOT IN (SELECT last_sync_run_id FROM registries) \
                 ORDER BY id"
            ))
            .bind(DB::timestamp(before))
            .fetch_all(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            for row in &rows {
                let started_at: DB::Timestamp =
                    row.try_get("started_at").map_err(query_error(CONTEXT))?;
                let finished_at: DB::Timestamp =
                    row.try_get("finished_at").map_err(query_error(CONTEXT))?;
                let status: String = row.try_get("status").map_err(query_error(CONTEXT))?;
                outcome.runs.push(PrunedRun {
                    id: row.try_get("id").map_err(query_error(CONTEXT))?,
                    started_at: DB::read_timestamp(started_at)?,
                    finished_at: DB::read_timestamp(finished_at)?,
                    status: RunStatus::from_sql(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("sync_runs.status {status:?}"))
                    })?,
                });
            }
            let n_old: i64 = sqlx::query_scalar::<DB, i64>(&format!(
                "SELECT COUNT(*) FROM sync_runs WHERE {old}"
            ))
            .bind(DB::timestamp(before))
            .fetch_one(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
            outcome.n_runs_kept = n_old - outcome.runs.len() as i64;
            let ids: Vec<i64> = outcome.runs.iter().map(|run| run.id).collect();
            for chunk in ids.chunks(IDS_PER_STATEMENT) {
                // The ids were read from the database as integers: nothing to inject.
                let list = chunk
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                outcome.n_scopes += sqlx::query_scalar::<DB, i64>(&format!(
                    "SELECT COUNT(*) FROM sync_run_scopes WHERE sync_run_id IN ({list})"
                ))
                .fetch_one(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
                sqlx::query::<DB>(&format!(
                    "DELETE FROM sync_run_scopes WHERE sync_run_id IN ({list})"
                ))
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
                sqlx::query::<DB>(&format!("DELETE FROM sync_runs WHERE id IN ({list})"))
                    .execute(&mut *tx)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
        }
        if request.dry_run {
            tx.rollback().await.map_err(query_error(CONTEXT))?;
        } else {
            tx.commit().await.map_err(query_error(CONTEXT))?;
        }
        Ok(outcome)
    }
}

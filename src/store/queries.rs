//! The SQL of the store, written once for both backends.
//!
//! Both SQLite and PostgreSQL take `$N` placeholders, `RETURNING` and the same DDL names,
//! so one text serves both; [`Backend`] supplies the only value that differs, the timestamp.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{
    ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Sqlite, Type,
};

use crate::registry::{Registry, StagedRegistry, INTEGER_FIELDS, STRING_FIELDS};
use crate::store::backend::STAGING_TABLES;
use crate::store::{
    query_error, Applied, Backend, HistoryFilter, HistoryRecord, NewRun, RegistryRecord, RowLease,
    RunRecord, RunTotals, ScopeRecord, ScopeStep, ScopeUpdate, StagePage, StoreError, Unlisted,
};
use crate::sync::plan::{
    self, Change, ChangeKind, Coverage, Decision, Location, ScopeCounts, StoredSummary, Write,
};
use crate::sync::{RunStatus, Scope, ScopeStatus, ALL_GRANTED_EPS};

/// How many ids go into one `IN (..)` list: far below SQLite's and PostgreSQL's
/// parameter limits, large enough that a big scope needs few statements.
const IDS_PER_STATEMENT: usize = 500;

/// Where a registry lives: the first of its content columns.
const LOCATION_COLUMNS: [&str; 3] = ["project_id", "enterprise_project_id", "region"];

/// The registry columns a history row snapshots, after its own key columns.
static CONTENT_COLUMNS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut columns = LOCATION_COLUMNS.to_vec();
    columns.extend(STRING_FIELDS);
    columns.extend(INTEGER_FIELDS);
    columns.extend(["raw", "content_hash"]);
    columns
});

/// The content columns of table alias `alias`: `r.project_id, r.enterprise_project_id, ..`.
fn content_columns_of(alias: &str) -> String {
    CONTENT_COLUMNS
        .iter()
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The content columns but the location: what a registry, or a version of it, takes from
/// the row that staged it (the location is the apply's to decide).
fn staged_content_columns() -> impl Iterator<Item = &'static str> {
    CONTENT_COLUMNS
        .iter()
        .copied()
        .filter(|column| !LOCATION_COLUMNS.contains(column))
}

/// `col = s.col, ..` for every [`staged_content_columns`] column.
static STAGED_CONTENT_ASSIGNMENTS: LazyLock<String> = LazyLock::new(|| {
    staged_content_columns()
        .map(|column| format!("{column} = s.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// `s.col, ..` for every [`staged_content_columns`] column.
static STAGED_CONTENT_VALUES: LazyLock<String> = LazyLock::new(|| {
    staged_content_columns()
        .map(|column| format!("s.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// What a registry written from its staged row takes besides its content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// A new version (changed or restored).
    Version,
    /// The same version: only fields that make no version of their own changed.
    Refresh,
}

/// Rows per staging `INSERT` with content: a whole page of the API's largest.
///
/// A statement's text does not follow the data, so that it is prepared once a connection and
/// kept: lists of ids or staged rows are bound as one value ([`Backend::in_list`]), and rows
/// go in by statements of a few fixed sizes ([`staged_rows`]). The one exception, the history
/// rows of a chunk of changes, is not kept (`persistent(false)`): each count would be another
/// statement, and sqlx's cache of a hundred prepared statements a connection, some of
/// thousands of parameters, held tens of MiB at 500,000 registries.
const STAGED_PER_INSERT: usize = 200;

/// How many of `left` registries the next statement of [`Queries::stage_page`] stages with
/// their content: a whole page, or the largest power of two that fits. Nine statements,
/// each kept prepared, stage any count.
fn staged_rows(left: usize) -> usize {
    if left >= STAGED_PER_INSERT {
        STAGED_PER_INSERT
    } else {
        1 << left.ilog2()
    }
}

/// History rows per `INSERT` of new versions: each binds seven values (its content is read
/// from the row that staged it), so a chunk of [`VERSIONS_PER_CHUNK`] takes one statement.
const HISTORY_ROWS_PER_INSERT: usize = 100;

/// Changed registries whose two contents are read, diffed and written at a time: each is held
/// three times over (the stored and the new content, and the change written), so the chunk
/// bounds what a scope with many changes holds.
const VERSIONS_PER_CHUNK: usize = 100;

/// Stored registries a walk reads at a time, as one string (see
/// [`Queries::unchanged_candidates`]): about 400 KiB.
const CANDIDATES_PER_CHUNK: usize = 4_096;

/// Staged rows a scope's transaction reads at a time.
const APPLY_CHUNK: i64 = 1_000;

/// A stored row `r` that no walk of run `$1` listed.
const UNSEEN: &str =
    "NOT EXISTS (SELECT 1 FROM sync_staging s WHERE s.run_id = $1 AND s.id = r.id)";

const SELECT_STORED: &str = "SELECT id, project_id, enterprise_project_id, region, raw, version, deleted_at FROM registries";

/// The columns of a run that [`super::reports::read_run`] reads.
pub(crate) const RUN_COLUMNS: &str =
    "id, started_at, finished_at, status, trigger, n_scopes, n_scopes_failed, n_pages, \
     n_requests, n_throttled, n_retries, n_fetched, n_inserted, n_updated, n_unchanged, n_deleted, n_restored, error, \
     scheduled_at, n_held";

const COUNT_COLUMNS: [&str; 7] = [
    "n_fetched",
    "n_inserted",
    "n_updated",
    "n_unchanged",
    "n_deleted",
    "n_restored",
    "n_held",
];

/// The stored rows `coverage` answers for, as a predicate on `registries`: its project at
/// placeholder `$first` and, unless it covers every enterprise project, its enterprise project
/// at `$first + 1` (bound by [`bind_scope`]). Written out for each kind of scope, because a
/// predicate such as `$2 = 'all_granted_eps' OR enterprise_project_id = $2` hides
/// `registries_live_idx` from the planner: SQLite then read every row of the project.
fn scope_filter(coverage: Coverage<'_>, first: usize) -> String {
    let project = format!("project_id = ${first}");
    let ep = first + 1;
    if coverage.scope.enterprise_project_id == ALL_GRANTED_EPS {
        project
    } else if coverage.unattributed {
        format!("{project} AND (enterprise_project_id = ${ep} OR enterprise_project_id IS NULL)")
    } else {
        format!("{project} AND enterprise_project_id = ${ep}")
    }
}

/// How many placeholders [`scope_filter`] places.
fn scope_params(coverage: Coverage<'_>) -> usize {
    if coverage.scope.enterprise_project_id == ALL_GRANTED_EPS {
        1
    } else {
        2
    }
}

/// Binds what [`scope_filter`] placed: the project, then the enterprise project if the
/// predicate names one.
fn bind_scope<'q, DB>(query: Q<'q, DB>, scope: &Scope) -> Q<'q, DB>
where
    DB: Backend,
    for<'a> String: Encode<'a, DB>,
    String: Type<DB>,
{
    let query = query.bind(scope.project_id.clone());
    if scope.enterprise_project_id == ALL_GRANTED_EPS {
        query
    } else {
        query.bind(scope.enterprise_project_id.clone())
    }
}

/// `($1, .., $cols), ($cols+1, ..), ..` for `rows` rows (`?` on a backend that takes
/// anonymous placeholders).
fn row_placeholders<DB: Backend>(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * (cols * 6 + 4));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_placeholders::<DB>(&mut sql, 1 + row * cols, cols);
        sql.push(')');
    }
    sql
}

/// `$first, .., $(first+count-1)`, or as many `?` on a backend that takes anonymous
/// placeholders. A statement that uses these must number every placeholder through here, in
/// the order they appear, each once: anonymous ones are bound by position.
fn placeholders<DB: Backend>(first: usize, count: usize) -> String {
    let mut sql = String::with_capacity(count * 6);
    push_placeholders::<DB>(&mut sql, first, count);
    sql
}

/// Appends [`placeholders`] to `sql`, without a string of their own: a staged page's
/// statement has thousands.
fn push_placeholders<DB: Backend>(sql: &mut String, first: usize, count: usize) {
    if DB::ANONYMOUS_PLACEHOLDERS {
        for i in 0..count {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
        }
    } else {
        push_numbered_placeholders(sql, first, count);
    }
}

/// Appends `$first, .., $(first+count-1)`.
fn push_numbered_placeholders(sql: &mut String, first: usize, count: usize) {
    for i in first..first + count {
        if i > first {
            sql.push_str(", ");
        }
        // Writing into a String cannot fail.
        let _ = write!(sql, "${i}");
    }
}

type Q<'q, DB> = Query<'q, DB, <DB as Database>::Arguments<'q>>;

/// The store's queries for one backend. All functions are associated, so the long list of
/// trait bounds below is written once.
pub(crate) struct Queries<DB>(PhantomData<DB>);

impl<DB> Queries<DB>
where
    DB: Backend + sqlx::database::HasStatementCache,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'q> Json<Value>: Encode<'q, DB>,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'q> Option<<DB as Backend>::Timestamp>: Encode<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    /// Inserts a `running` row into `sync_runs` and returns its id.
    pub(crate) async fn begin_run(pool: &Pool<DB>, run: &NewRun<'_>) -> Result<i64, StoreError> {
        const CONTEXT: &str = "recording a new run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let row = sqlx::query::<DB>(
            "INSERT INTO sync_runs (started_at, status, trigger, n_scopes, hostname, version, holder, scheduled_at) \
             VALUES ($1, 'running', $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(DB::timestamp(run.started_at))
        .bind(run.trigger.as_str().to_owned())
        .bind(run.n_scopes)
        .bind(run.hostname.to_owned())
        .bind(env!("CARGO_PKG_VERSION").to_owned())
        .bind(run.holder.to_owned())
        .bind(run.scheduled_at.map(DB::timestamp))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        row.try_get("id").map_err(query_error(CONTEXT))
    }

    /// Writes a run's final status, counts and error into its `sync_runs` row.
    pub(crate) async fn finish_run(
        pool: &Pool<DB>,
        run_id: i64,
        totals: &RunTotals,
        finished_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(query_error("recording the end of a run"))?;
        let counts = &totals.counts;
        sqlx::query::<DB>(
            "UPDATE sync_runs SET finished_at = $2, status = $3, n_scopes = $4, n_scopes_failed = $5, \
             n_pages = $6, n_requests = $7, n_fetched = $8, n_inserted = $9, n_updated = $10, \
             n_unchanged = $11, n_deleted = $12, n_restored = $13, error = $14, n_throttled = $15, \
             n_retries = $16, n_held = $17 WHERE id = $1",
        )
        .bind(run_id)
        .bind(DB::timestamp(finished_at))
        .bind(totals.status.as_str().to_owned())
        .bind(totals.n_scopes)
        .bind(totals.n_scopes_failed)
        .bind(totals.n_pages)
        .bind(totals.n_requests)
        .bind(counts.n_fetched)
        .bind(counts.n_inserted)
        .bind(counts.n_updated)
        .bind(counts.n_unchanged)
        .bind(counts.n_deleted)
        .bind(counts.n_restored)
        .bind(totals.error.clone())
        .bind(totals.n_throttled)
        .bind(totals.n_retries)
        .bind(counts.n_held)
        .execute(&mut *conn)
        .await
        .map_err(query_error("recording the end of a run"))?;
        Ok(())
    }

    /// Inserts a `running` row into `sync_run_scopes` and returns its id.
    pub(crate) async fn begin_scope(
        conn: &mut DB::Connection,
        run_id: i64,
        scope: &Scope,
        started_at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query::<DB>(
            "INSERT INTO sync_run_scopes (sync_run_id, region, project_id, enterprise_project_id, status, started_at) \
             VALUES ($1, $2, $3, $4, 'running', $5) RETURNING id",
        )
        .bind(run_id)
        .bind(scope.region.clone())
        .bind(scope.project_id.clone())
        .bind(scope.enterprise_project_id.clone())
        .bind(DB::timestamp(started_at))
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error("recording a new scope"))?;
        row.try_get("id")
            .map_err(query_error("recording a new scope"))
    }

    /// Calls `each` with the id and content hash of every live registry stored where a walk
    /// of `scope` would leave it: the registries that walk can find unchanged. Reads them in
    /// chunks of [`CANDIDATES_PER_CHUNK`], in id order, each chunk one row of one string
    /// ([`Backend::ID_HASH_ENTRIES`]): a row costs sqlx's SQLite driver a hop between its
    /// worker thread and the task, about 6 µs, and read one by one these rows were a third of
    /// the statement time of a sync that changed 10 % of 50,000 registries.
    pub(crate) async fn unchanged_candidates(
        pool: &Pool<DB>,
        scope: &Scope,
        each: &mut (dyn FnMut(&str, &str) + Send),
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "reading the stored registries of a scope";
        let coverage = Coverage {
            scope,
            unattributed: false,
        };
        let sql = format!(
            "SELECT {entries} AS entries, COUNT(*) AS n, MAX(id) AS last FROM (SELECT id, \
             content_hash FROM registries WHERE deleted_at IS NULL AND region = $1 AND {filter} \
             AND id > ${after} ORDER BY id LIMIT {CANDIDATES_PER_CHUNK}) chunk",
            entries = DB::ID_HASH_ENTRIES,
            filter = scope_filter(coverage, 2),
            after = 2 + scope_params(coverage),
        );
        let mut after = String::new();
        loop {
            let query = bind_scope(sqlx::query::<DB>(&sql).bind(scope.region.clone()), scope);
            let row = query
                .bind(after)
                .fetch_one(pool)
                .await
                .map_err(query_error(CONTEXT))?;
            let n: i64 = row.try_get("n").map_err(query_error(CONTEXT))?;
            let entries: Option<String> = row.try_get("entries").map_err(query_error(CONTEXT))?;
            for (id, hash) in id_hash_entries(entries.as_deref().unwrap_or_default())? {
                each(id, hash);
            }
            match row.try_get::<Option<String>, _>("last") {
                Ok(Some(last)) if n == CANDIDATES_PER_CHUNK as i64 => after = last,
                Ok(_) => return Ok(()),
                Err(e) => return Err(query_error(CONTEXT)(e)),
            }
        }
    }

    /// Forgets what a scope staged, before it is walked again from the start.
    pub(crate) async fn unstage_scope(
        pool: &Pool<DB>,
        run_id: i64,
        scope_ix: i64,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "clearing a scope's staged pages";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        for table in STAGING_TABLES {
            sqlx::query::<DB>(&format!(
                "DELETE FROM {table} WHERE run_id = $1 AND scope_ix = $2"
            ))
            .bind(run_id)
            .bind(scope_ix)
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        }
        Ok(())
    }

    /// Removes the staged rows of `run_id` and of every run that is no longer running, and
    /// the index of listed ids, which only a run whose walks have ended has. When no other
    /// run is running (the sync lease makes that the rule) every row goes, with a `DELETE`
    /// that names no rows: SQLite then frees the table's pages whole instead of deleting
    /// rows one by one (a tenth of a second at 50,000 registries, a fifth of an unchanged
    /// sync's CPU).
    pub(crate) async fn clear_staging(
        conn: &mut DB::Connection,
        run_id: i64,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "clearing staged pages";
        sqlx::query::<DB>("DROP INDEX IF EXISTS sync_staging_id_idx")
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        let others = sqlx::query::<DB>(
            "SELECT COUNT(*) AS n FROM sync_runs WHERE status = 'running' AND id <> $1",
        )
        .bind(run_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        let others: i64 = others.try_get("n").map_err(query_error(CONTEXT))?;
        if others == 0 {
            for sql in DB::emptying(&STAGING_TABLES) {
                sqlx::query::<DB>(&sql)
                    .execute(&mut *conn)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
            return Ok(());
        }
        for table in STAGING_TABLES {
            sqlx::query::<DB>(&format!(
                "DELETE FROM {table} WHERE run_id = $1 OR run_id NOT IN \
                 (SELECT id FROM sync_runs WHERE status = 'running')"
            ))
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        }
        Ok(())
    }

    /// Indexes run `run_id`'s listing by id, once its walks have ended: what deciding deletions
    /// and moves looks up. The ids its walks staged a page to a row are spread into rows of
    /// their own first, in one statement. Built in one pass rather than kept up to date page
    /// by page.
    pub(crate) async fn index_listing(
        conn: &mut DB::Connection,
        run_id: i64,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "indexing the run's listing";
        sqlx::query::<DB>(DB::SPREAD_LISTED_PAGES)
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        sqlx::query::<DB>("DELETE FROM sync_listed_pages WHERE run_id = $1")
            .bind(run_id)
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        sqlx::query::<DB>(
            "CREATE INDEX IF NOT EXISTS sync_staging_id_idx ON sync_staging (run_id, id)",
        )
        .execute(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        Ok(())
    }

    /// Applies what a scope staged after `step.after_seq`: new rows, new versions, and
    /// registries stored under other scopes set aside for [`Self::apply_deferred`]. Returns
    /// the counts and the last staged row applied.
    pub(crate) async fn apply_staged(
        conn: &mut DB::Connection,
        step: &ScopeStep<'_>,
    ) -> Result<Applied, StoreError> {
        const CONTEXT: &str = "applying a scope's staged pages";
        let mut counts = ScopeCounts::default();
        let mut n_deferred = 0;
        let last: Option<i64> = sqlx::query::<DB>(
            "SELECT MAX(seq) AS last FROM sync_staging WHERE run_id = $1 AND scope_ix = $2 \
             AND seq > $3",
        )
        .bind(step.run_id)
        .bind(step.scope_ix)
        .bind(step.after_seq)
        .fetch_one(&mut *conn)
        .await
        .and_then(|row| row.try_get("last"))
        .map_err(query_error(CONTEXT))?;
        let Some(last) = last else {
            return Ok(Applied {
                counts,
                last_seq: step.after_seq,
                n_deferred,
            });
        };
        // Registries stored already, decided one by one; the new ones are created last, all
        // at once (see [`Self::create_staged`]).
        let mut after = step.after_seq;
        loop {
            let rows = sqlx::query::<DB>(
                "SELECT s.seq, s.id AS staged_id, s.content_hash AS staged_hash, r.content_hash, \
                 r.project_id, r.enterprise_project_id, r.region, r.version, r.deleted_at, \
                 r.last_sync_run_id FROM sync_staging s JOIN registries r ON r.id = s.id \
                 WHERE s.run_id = $1 AND s.scope_ix = $2 AND s.seq > $3 AND s.seq <= $4 \
                 AND s.content_hash IS NOT NULL ORDER BY s.seq LIMIT $5",
            )
            .bind(step.run_id)
            .bind(step.scope_ix)
            .bind(after)
            .bind(last)
            .bind(APPLY_CHUNK)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
            let Some(last_row) = rows.last() else { break };
            after = last_row.try_get("seq").map_err(query_error(CONTEXT))?;
            let mut decided: HashMap<Decision, Vec<i64>> = HashMap::new();
            let mut stored = HashMap::new();
            for row in &rows {
                let seq: i64 = row.try_get("seq").map_err(query_error(CONTEXT))?;
                let id: String = row.try_get("staged_id").map_err(query_error(CONTEXT))?;
                let hash: String = row.try_get("staged_hash").map_err(query_error(CONTEXT))?;
                let old = summary::<DB>(row, step.run_id)?;
                let decision = plan::decide(Some(&old), &hash, step.coverage);
                if decision == Decision::Drop {
                    warn_shared_once(&id, step.coverage.scope);
                }
                stored.insert(seq, old);
                decided.entry(decision).or_default().push(seq);
            }
            let mut take = |d| decided.remove(&d).unwrap_or_default();
            let mut changed = take(Decision::Update);
            changed.extend(take(Decision::Restore));
            counts.add(&Self::write_staged_versions(conn, step, &changed, &stored).await?);
            counts.n_unchanged += take(Decision::Unchanged).len() as i64;
            let deferred = take(Decision::Defer);
            n_deferred += deferred.len() as i64;
            Self::set_staged(conn, &deferred, "deferred = 1").await?;
            Self::unstage(conn, &take(Decision::Drop)).await?;
        }
        counts.n_inserted += Self::create_staged(conn, step, last).await?;
        counts.n_fetched =
            counts.n_inserted + counts.n_updated + counts.n_restored + counts.n_unchanged;
        Ok(Applied {
            counts,
            last_seq: last,
            n_deferred,
        })
    }

    /// Moves to `step`'s scope the registries it set aside as stored under another scope,
    /// unless a scope of the run that covers where they are stored listed them too, or an
    /// earlier scope moved them already.
    pub(crate) async fn apply_deferred(
        conn: &mut DB::Connection,
        step: &ScopeStep<'_>,
        scopes: &[Coverage<'_>],
    ) -> Result<ScopeCounts, StoreError> {
        const CONTEXT: &str = "moving registries between scopes";
        let mut counts = ScopeCounts::default();
        let mut after = 0_i64;
        loop {
            let rows = sqlx::query::<DB>(
                "SELECT s.seq, s.id AS staged_id, r.content_hash, r.project_id, \
                 r.enterprise_project_id, r.region, r.version, r.deleted_at, r.last_sync_run_id \
                 FROM sync_staging s JOIN registries r ON r.id = s.id WHERE s.run_id = $1 \
                 AND s.scope_ix = $2 AND s.seq > $3 AND s.deferred = 1 ORDER BY s.seq LIMIT $4",
            )
            .bind(step.run_id)
            .bind(step.scope_ix)
            .bind(after)
            .bind(APPLY_CHUNK)
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("seq").map_err(query_error(CONTEXT))?;
            // The newest listing of each id: a confirming walk may have listed it again.
            let mut newest: HashMap<String, i64> = HashMap::new();
            let mut stored = HashMap::new();
            let mut superseded = Vec::new();
            for row in &rows {
                let seq: i64 = row.try_get("seq").map_err(query_error(CONTEXT))?;
                let id: String = row.try_get("staged_id").map_err(query_error(CONTEXT))?;
                stored.insert(seq, summary::<DB>(row, step.run_id)?);
                if let Some(older) = newest.insert(id, seq) {
                    superseded.push(older);
                }
            }
            let ids: Vec<&str> = newest.keys().map(String::as_str).collect();
            let listers = Self::listers(conn, step.run_id, &ids).await?;
            let mut moved: Vec<i64> = Vec::new();
            for (id, &seq) in &newest {
                let listed_by = listers
                    .get(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|&ix| scopes.get(ix as usize).copied());
                if plan::resolve_deferred(&stored[&seq], listed_by) {
                    moved.push(seq);
                } else {
                    warn_shared_once(id, step.coverage.scope);
                    superseded.push(seq);
                }
            }
            counts.add(&Self::write_staged_versions(conn, step, &moved, &stored).await?);
            Self::set_staged(conn, &moved, "deferred = 0").await?;
            Self::unstage(conn, &superseded).await?;
        }
        counts.n_fetched = counts.n_updated + counts.n_restored + counts.n_unchanged;
        Ok(counts)
    }

    /// Which scopes (by index) of the run listed each of `ids`.
    async fn listers(
        conn: &mut DB::Connection,
        run_id: i64,
        ids: &[&str],
    ) -> Result<HashMap<String, Vec<i64>>, StoreError> {
        const CONTEXT: &str = "reading which scopes listed a registry";
        let mut listers: HashMap<String, Vec<i64>> = HashMap::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id, scope_ix FROM sync_staging WHERE run_id = {} AND id {}",
                placeholders::<DB>(1, 1),
                DB::in_list(&placeholders::<DB>(2, 1))
            );
            let query = sqlx::query::<DB>(&sql)
                .bind(run_id)
                .bind(DB::text_list(chunk.iter().copied()));
            for row in query
                .fetch_all(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?
            {
                listers
                    .entry(row.try_get("id").map_err(query_error(CONTEXT))?)
                    .or_default()
                    .push(row.try_get("scope_ix").map_err(query_error(CONTEXT))?);
            }
        }
        Ok(listers)
    }

    /// Inserts as new registries, with their first versions, the registries `step`'s scope
    /// staged with content up to `last` that are not stored, in id order: each index keyed by
    /// id (the registries', and the history's two) is walked once, leaf after leaf, where
    /// chunks of staged rows in the order they were listed each touched nearly every leaf of
    /// those indexes again, and SQLite's page cache, too small to hold them, read and wrote
    /// them many times over.
    async fn create_staged(
        conn: &mut DB::Connection,
        step: &ScopeStep<'_>,
        last: i64,
    ) -> Result<i64, StoreError> {
        const CONTEXT: &str = "inserting new registries";
        let columns = CONTENT_COLUMNS.join(", ");
        let staged_columns = content_columns_of("s");
        let new_staged = "FROM sync_staging s WHERE s.run_id = $1 AND s.scope_ix = $2 \
             AND s.seq > $3 AND s.seq <= $4 AND s.content_hash IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM registries r WHERE r.id = s.id) ORDER BY s.id";
        let rows = if DB::WRITING_WITH {
            // PostgreSQL: one statement, whose `new` rows are found, read and sorted once for
            // both tables (a tenth of the server's time for a scope of new registries): the
            // first versions carry what the new rows carry.
            format!(
                "WITH new AS MATERIALIZED (SELECT s.id, {staged_columns} {new_staged}), \
                 history AS (INSERT INTO registry_history (registry_id, version, change_kind, \
                 changed_fields, valid_from, sync_run_id, {columns}) SELECT id, 1, 'created', \
                 '[]', $5, $1, {columns} FROM new) \
                 INSERT INTO registries (id, {columns}, version, first_seen_at, last_seen_at, \
                 last_changed_at, last_sync_run_id) SELECT id, {columns}, 1, $5, $5, $5, $1 \
                 FROM new"
            )
        } else {
            format!(
                "{insert} INTO registries (id, {columns}, version, first_seen_at, last_seen_at, \
                 last_changed_at, last_sync_run_id) SELECT s.id, {staged_columns}, 1, $5, $5, \
                 $5, $1 {new_staged}",
                insert = DB::INSERT,
            )
        };
        // SQLite: the rows go in first, sorted, and their first versions are read back from
        // them: SQLite gives a new row the rowid after the table's largest, so the new rows
        // are those past the largest rowid before the insert, and in rowid order they are in
        // id order. The staged rows are found and sorted once, not once for each table (at
        // 500,000 registries, scopes of 25,000 rows too large for SQLite's sorter to hold,
        // each sort wrote its rows to a temporary file and read them back).
        let before: Option<i64> = if DB::WRITING_WITH {
            None
        } else {
            let row = sqlx::query::<DB>("SELECT COALESCE(MAX(rowid), 0) AS n FROM registries")
                .fetch_one(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            Some(row.try_get("n").map_err(query_error(CONTEXT))?)
        };
        let n = DB::rows_affected(
            &sqlx::query::<DB>(&rows)
                .bind(step.run_id)
                .bind(step.scope_ix)
                .bind(step.after_seq)
                .bind(last)
                .bind(DB::timestamp(step.now))
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?,
        ) as i64;
        // No new registry (the usual case of a sync that finds nothing new): no first version.
        // Each first version is valid from when its row was first seen, in this run.
        if let Some(before) = before.filter(|_| n > 0) {
            let history = format!(
                "{insert} INTO registry_history (registry_id, version, change_kind, \
                 changed_fields, valid_from, sync_run_id, {columns}) SELECT r.id, 1, 'created', \
                 '[]', r.first_seen_at, r.last_sync_run_id, {stored_columns} FROM registries r \
                 WHERE r.rowid > $1 ORDER BY r.rowid",
                insert = DB::INSERT,
                stored_columns = content_columns_of("r"),
            );
            let versions = DB::rows_affected(
                &sqlx::query::<DB>(&history)
                    .bind(before)
                    .execute(&mut *conn)
                    .await
                    .map_err(query_error(CONTEXT))?,
            ) as i64;
            // Only a table whose largest rowid is the largest there can be gets rowids below
            // it: then the transaction is rolled back rather than leave a row without history.
            if versions != n {
                return Err(StoreError::Corrupt(format!(
                    "{n} new registries but {versions} first versions: the registries table's \
                     rowids are not in the order SQLite gives them"
                )));
            }
        }
        Ok(n)
    }

    /// Writes new versions (or refreshed rows) of stored registries from their staged content.
    async fn write_staged_versions(
        conn: &mut DB::Connection,
        step: &ScopeStep<'_>,
        seqs: &[i64],
        stored: &HashMap<i64, StoredSummary>,
    ) -> Result<ScopeCounts, StoreError> {
        const CONTEXT: &str = "reading the content of changed registries";
        let mut counts = ScopeCounts::default();
        for chunk in seqs.chunks(VERSIONS_PER_CHUNK) {
            let sql = format!(
                "SELECT s.seq, s.id, s.raw AS new_raw, s.content_hash AS new_hash, r.raw AS old_raw, \
                 r.content_hash AS old_hash FROM sync_staging s JOIN registries r ON r.id = s.id \
                 WHERE s.seq {}",
                DB::in_list(&placeholders::<DB>(1, 1))
            );
            let rows = sqlx::query::<DB>(&sql)
                .bind(DB::int_list(chunk.iter().copied()))
                .fetch_all(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            let mut versions = Vec::new();
            let mut refreshed = Vec::new();
            for row in &rows {
                let seq: i64 = row.try_get("seq").map_err(query_error(CONTEXT))?;
                let id: String = row.try_get("id").map_err(query_error(CONTEXT))?;
                // Both hashes were made when the content was staged or stored: the rows'
                // JSON is parsed for the fields that changed, and not hashed again.
                let new = hashed_registry_from_json::<DB>(row, ("new_raw", "new_hash"), &id)?;
                let old = hashed_registry_from_json::<DB>(row, ("old_raw", "old_hash"), &id)?;
                let Some(summary) = stored.get(&seq) else {
                    continue;
                };
                match plan::change(
                    &old,
                    &summary.location,
                    summary.version,
                    summary.deleted,
                    &new,
                    step.coverage.scope,
                    step.ignored_fields,
                ) {
                    Write::Version(change) => {
                        match change.kind {
                            ChangeKind::Restored => counts.n_restored += 1,
                            _ => counts.n_updated += 1,
                        }
                        versions.push((seq, change));
                    }
                    Write::Refresh { location } => {
                        counts.n_unchanged += 1;
                        refreshed.push((seq, location));
                    }
                }
            }
            Self::write_changes(conn, &versions, step.run_id, step.now).await?;
            let refreshed: Vec<(i64, &Location)> = refreshed
                .iter()
                .map(|(seq, location)| (*seq, location))
                .collect();
            Self::rewrite_from_staged(conn, &refreshed, Rewrite::Refresh, step.run_id, step.now)
                .await?;
        }
        Ok(counts)
    }

    /// Sets `assignment` on the staged rows `seqs`.
    async fn set_staged(
        conn: &mut DB::Connection,
        seqs: &[i64],
        assignment: &str,
    ) -> Result<(), StoreError> {
        let statement = format!("{} sync_staging SET {assignment}", DB::UPDATE);
        Self::on_staged(conn, &statement, seqs, "marking staged registries").await
    }

    /// Removes the staged rows `seqs`: another scope keeps those registries.
    async fn unstage(conn: &mut DB::Connection, seqs: &[i64]) -> Result<(), StoreError> {
        let context = "unstaging registries another scope keeps";
        Self::on_staged(conn, "DELETE FROM sync_staging", seqs, context).await
    }

    /// Runs `statement` (an `UPDATE` or `DELETE` of `sync_staging`) on the rows `seqs`.
    async fn on_staged(
        conn: &mut DB::Connection,
        statement: &str,
        seqs: &[i64],
        context: &'static str,
    ) -> Result<(), StoreError> {
        for chunk in seqs.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "{statement} WHERE seq {}",
                DB::in_list(&placeholders::<DB>(1, 1))
            );
            sqlx::query::<DB>(&sql)
                .bind(DB::int_list(chunk.iter().copied()))
                .execute(&mut *conn)
                .await
                .map_err(query_error(context))?;
        }
        Ok(())
    }

    /// Calls `each` with the id of every live registry `coverage` answers for that no walk of
    /// run `run_id` listed. Streams.
    pub(crate) async fn unseen(
        pool: &Pool<DB>,
        run_id: i64,
        coverage: Coverage<'_>,
        missed: Option<&[String]>,
        each: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StoreError> {
        use futures::TryStreamExt;
        const CONTEXT: &str = "reading the registries of a scope no walk listed";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let mut sql = format!(
            "SELECT r.id FROM registries r WHERE r.deleted_at IS NULL AND {} AND {UNSEEN}",
            scope_filter(coverage, 2)
        );
        if let Some(ids) = missed {
            let region_at = 2 + scope_params(coverage);
            // Numbered like the rest of the statement (`scope_filter`'s are), where a `?` would
            // be bound from the first value on. The listing is looked up only for these rows,
            // not for each row the scope covers.
            let mut among = format!("r.region <> ${region_at}");
            if coverage.unattributed {
                among.push_str(" OR r.enterprise_project_id IS NULL");
            }
            if !ids.is_empty() {
                let list = DB::in_list(&format!("${}", region_at + 1));
                among = format!("r.id {list} OR {among}");
            }
            sql.push_str(&format!(" AND ({among})"));
        }
        let mut query = bind_scope(sqlx::query::<DB>(&sql).bind(run_id), coverage.scope);
        if let Some(ids) = missed {
            query = query.bind(coverage.scope.region.clone());
            if !ids.is_empty() {
                query = query.bind(DB::text_list(ids.iter().map(String::as_str)));
            }
        }
        let mut rows = query.fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(query_error(CONTEXT))? {
            let id: String = row.try_get("id").map_err(query_error(CONTEXT))?;
            each(&id);
        }
        Ok(())
    }

    /// How many live registries a scope covers.
    pub(crate) async fn count_live(
        conn: &mut DB::Connection,
        coverage: Coverage<'_>,
    ) -> Result<i64, StoreError> {
        const CONTEXT: &str = "counting the registries of a scope";
        let sql = format!(
            "SELECT COUNT(*) AS n FROM registries r WHERE r.deleted_at IS NULL AND {}",
            scope_filter(coverage, 1)
        );
        let row = bind_scope(sqlx::query::<DB>(&sql), coverage.scope)
            .fetch_one(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        row.try_get("n").map_err(query_error(CONTEXT))
    }

    /// Retires the live registries a scope covers that no walk of the run listed: closes
    /// their current versions, writes a `deleted` version from the stored content, and
    /// marks the rows. Returns how many.
    pub(crate) async fn retire_unseen(
        conn: &mut DB::Connection,
        unlisted: Unlisted<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        const CONTEXT: &str = "retiring registries";
        let coverage = unlisted.coverage;
        let mut gone = format!(
            "r.deleted_at IS NULL AND {} AND {UNSEEN}",
            scope_filter(coverage, 3)
        );
        let among = unlisted.among.unwrap_or_default();
        if let Some(ids) = unlisted.among {
            // Nothing to look among (and `IN ()` is no SQL).
            if ids.is_empty() {
                return Ok(0);
            }
            let list = DB::in_list(&format!("${}", 3 + scope_params(coverage)));
            gone.push_str(&format!(" AND r.id {list}"));
        }
        let columns = CONTENT_COLUMNS.join(", ");
        let stored_columns = content_columns_of("r");
        let (insert, update) = (DB::INSERT, DB::UPDATE);
        let statements = if DB::WRITING_WITH {
            // PostgreSQL: one statement that finds the unlisted rows once (a pass over the
            // scope's live rows and the run's listing) for its three writes, which all see the
            // rows as they were before it: the new version is the stored one plus one, on both
            // tables.
            vec![format!(
                "WITH gone AS MATERIALIZED (SELECT r.id FROM registries r WHERE {gone}), \
                 closed AS (UPDATE registry_history SET valid_to = $2 WHERE valid_to IS NULL \
                 AND registry_id IN (SELECT id FROM gone)), \
                 deleted AS (INSERT INTO registry_history (registry_id, version, change_kind, \
                 changed_fields, valid_from, sync_run_id, {columns}) SELECT r.id, r.version + 1, \
                 'deleted', '[]', $2, $1, {stored_columns} FROM registries r \
                 WHERE r.id IN (SELECT id FROM gone)) \
                 UPDATE registries SET version = version + 1, deleted_at = $2, \
                 last_changed_at = $2, last_sync_run_id = $1 WHERE id IN (SELECT id FROM gone)"
            )]
        } else {
            vec![
                format!(
                    "{update} registry_history SET valid_to = $2 WHERE valid_to IS NULL AND \
                     registry_id IN (SELECT r.id FROM registries r WHERE {gone})"
                ),
                format!(
                    "{insert} INTO registry_history (registry_id, version, change_kind, \
                     changed_fields, valid_from, sync_run_id, {columns}) SELECT r.id, \
                     r.version + 1, 'deleted', '[]', $2, $1, {stored_columns} FROM registries r \
                     WHERE {gone}"
                ),
                format!(
                    "{update} registries SET version = version + 1, deleted_at = $2, \
                     last_changed_at = $2, last_sync_run_id = $1 WHERE id IN \
                     (SELECT r.id FROM registries r WHERE {gone})"
                ),
            ]
        };
        let mut n_retired = 0;
        for sql in &statements {
            let query = sqlx::query::<DB>(sql)
                .bind(unlisted.run_id)
                .bind(DB::timestamp(now));
            let mut query = bind_scope(query, coverage.scope);
            if unlisted.among.is_some() {
                query = query.bind(DB::text_list(among.iter().map(String::as_str)));
            }
            let result = query
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            n_retired = DB::rows_affected(&result) as i64;
        }
        Ok(n_retired)
    }

    /// Adds a step's tallies and counts to a scope's audit row, and sets its status, error
    /// and `api_total` when the step gives them.
    pub(crate) async fn record_scope(
        conn: &mut DB::Connection,
        update: &ScopeUpdate<'_>,
        counts: &ScopeCounts,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query::<DB>(
            "UPDATE sync_run_scopes SET status = COALESCE($2, status), \
             n_pages = n_pages + $3, n_requests = n_requests + $4, \
             api_total = COALESCE($5, api_total), n_fetched = n_fetched + $6, \
             n_inserted = n_inserted + $7, n_updated = n_updated + $8, \
             n_unchanged = n_unchanged + $9, n_deleted = n_deleted + $10, \
             n_restored = n_restored + $11, error = COALESCE($12, error), finished_at = $13, \
             n_throttled = n_throttled + $14, n_retries = n_retries + $15, \
             n_held = n_held + $16, error_code = COALESCE($17, error_code), \
             http_status = COALESCE($18, http_status), request_id = COALESCE($19, request_id) \
             WHERE id = $1",
        )
        .bind(update.scope_row_id)
        .bind(update.status.map(|s| s.as_str().to_owned()))
        .bind(update.n_pages)
        .bind(update.n_requests)
        .bind(update.api_total)
        .bind(counts.n_fetched)
        .bind(counts.n_inserted)
        .bind(counts.n_updated)
        .bind(counts.n_unchanged)
        .bind(counts.n_deleted)
        .bind(counts.n_restored)
        .bind(update.error.map(str::to_owned))
        .bind(DB::timestamp(now))
        .bind(update.n_throttled)
        .bind(update.n_retries)
        .bind(counts.n_held)
        .bind(update.error_code.map(str::to_owned))
        .bind(update.http_status)
        .bind(update.request_id.map(str::to_owned))
        .execute(&mut *conn)
        .await
        .map_err(query_error("recording a scope"))?;
        Ok(())
    }

    /// Writes new versions of stored registries: closes their current history versions,
    /// updates the rows, and inserts a history row each.
    pub(crate) async fn write_changes(
        conn: &mut DB::Connection,
        changes: &[(i64, Change)],
        run_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "writing the changes of a scope";
        // 1. Close the current history version of every id that gets a new one.
        for chunk in changes.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "{} registry_history SET valid_to = {} WHERE valid_to IS NULL AND registry_id {}",
                DB::UPDATE,
                placeholders::<DB>(1, 1),
                DB::in_list(&placeholders::<DB>(2, 1))
            );
            sqlx::query::<DB>(&sql)
                .bind(DB::timestamp(now))
                .bind(DB::text_list(
                    chunk.iter().map(|(_, change)| change.registry.id.as_str()),
                ))
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
        }
        // 2. The rows, from what staged them.
        let rows: Vec<(i64, &Location)> = changes
            .iter()
            .map(|(seq, change)| (*seq, &change.location))
            .collect();
        Self::rewrite_from_staged(conn, &rows, Rewrite::Version, run_id, now).await?;
        // 3. One history row per change, its content copied from the row that staged it (as
        //    the registry's own row is), and only what differs bound.
        let columns = CONTENT_COLUMNS.join(", ");
        let staged_columns = &*STAGED_CONTENT_VALUES;
        for chunk in changes.chunks(HISTORY_ROWS_PER_INSERT) {
            let n = chunk.len() * 7;
            let sql = format!(
                "WITH v (seq, version, change_kind, changed_fields, project_id, \
                 enterprise_project_id, region) AS (VALUES {}) {} INTO registry_history \
                 (registry_id, version, change_kind, changed_fields, valid_from, sync_run_id, \
                 {columns}) SELECT s.id, v.version, v.change_kind, v.changed_fields, {}, {}, \
                 v.project_id, v.enterprise_project_id, v.region, {staged_columns} \
                 FROM v JOIN sync_staging s ON s.seq = v.seq",
                row_placeholders::<DB>(chunk.len(), 7),
                DB::INSERT,
                placeholders::<DB>(n + 1, 1),
                placeholders::<DB>(n + 2, 1),
            );
            let mut query = sqlx::query::<DB>(&sql).persistent(false);
            for (seq, change) in chunk {
                query = query
                    .bind(*seq)
                    .bind(change.version)
                    .bind(change.kind.as_str().to_owned())
                    .bind(Json(Value::from(change.changed_fields.clone())))
                    .bind(change.location.project_id.clone())
                    .bind(change.location.enterprise_project_id.clone())
                    .bind(change.location.region.clone());
            }
            let result = query
                .bind(DB::timestamp(now))
                .bind(run_id)
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            if DB::rows_affected(&result) != chunk.len() as u64 {
                return Err(StoreError::Corrupt(format!(
                    "{} of {} changed registries had no staged row to write their history from",
                    chunk.len() as u64 - DB::rows_affected(&result),
                    chunk.len()
                )));
            }
        }
        Ok(())
    }

    /// Writes over each registry the content its staged row `seq` holds, at `location`, many
    /// rows a statement (one for each location and chunk): as a new version (the stored one
    /// plus one, read in the same transaction), or refreshed in place.
    async fn rewrite_from_staged(
        conn: &mut DB::Connection,
        rows: &[(i64, &Location)],
        rewrite: Rewrite,
        run_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "writing registries from their staged rows";
        let mut by_location: Vec<(&Location, Vec<i64>)> = Vec::new();
        for &(seq, location) in rows {
            match by_location.iter_mut().find(|(l, _)| *l == location) {
                Some((_, seqs)) => seqs.push(seq),
                None => by_location.push((location, vec![seq])),
            }
        }
        // The location is `$1`-`$3`, the time `$4` (and `$5` for a version), then the run and
        // the staged rows.
        let located = LOCATION_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, column)| format!("{column} = {}", placeholders::<DB>(i + 1, 1)))
            .collect::<Vec<_>>()
            .join(", ");
        let (versioned, run) = match rewrite {
            Rewrite::Version => (
                format!(
                    "version = registries.version + 1, last_changed_at = {}, deleted_at = NULL, ",
                    placeholders::<DB>(5, 1)
                ),
                6,
            ),
            Rewrite::Refresh => (String::new(), 5),
        };
        for (location, seqs) in &by_location {
            for chunk in seqs.chunks(IDS_PER_STATEMENT) {
                let sql = format!(
                    "{} registries SET {located}, {}, last_seen_at = {}, {versioned}\
                     last_sync_run_id = {} FROM sync_staging s WHERE registries.id = s.id \
                     AND s.seq {}",
                    DB::UPDATE,
                    *STAGED_CONTENT_ASSIGNMENTS,
                    placeholders::<DB>(4, 1),
                    placeholders::<DB>(run, 1),
                    DB::in_list(&placeholders::<DB>(run + 1, 1))
                );
                let mut query = sqlx::query::<DB>(&sql)
                    .bind(location.project_id.clone())
                    .bind(location.enterprise_project_id.clone())
                    .bind(location.region.clone())
                    .bind(DB::timestamp(now));
                if rewrite == Rewrite::Version {
                    query = query.bind(DB::timestamp(now));
                }
                query
                    .bind(run_id)
                    .bind(DB::int_list(chunk.iter().copied()))
                    .execute(&mut *conn)
                    .await
                    .map_err(query_error(CONTEXT))?;
            }
        }
        Ok(())
    }

    /// Reads the newest `limit` rows of `sync_runs`.
    pub(crate) async fn recent_runs(
        pool: &Pool<DB>,
        limit: i64,
    ) -> Result<Vec<RunRecord>, StoreError> {
        const CONTEXT: &str = "reading recent runs";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(&format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs ORDER BY id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| super::reports::read_run::<DB>(row))
            .collect()
    }

    /// Reads the `sync_run_scopes` rows of one run, in the order they were started.
    pub(crate) async fn run_scopes(
        pool: &Pool<DB>,
        run_id: i64,
    ) -> Result<Vec<ScopeRecord>, StoreError> {
        const CONTEXT: &str = "reading the scopes of a run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(&format!(
            "SELECT region, project_id, enterprise_project_id, status, n_pages, api_total, error, {} \
             FROM sync_run_scopes WHERE sync_run_id = $1 ORDER BY id",
            COUNT_COLUMNS.join(", ")
        ))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let text = |column| {
                    row.try_get::<String, _>(column)
                        .map_err(query_error(CONTEXT))
                };
                Ok(ScopeRecord {
                    scope: Scope {
                        region: text("region")?,
                        project_id: text("project_id")?,
                        enterprise_project_id: text("enterprise_project_id")?,
                    },
                    status: ScopeStatus::from_sql(&text("status")?)
                        .ok_or_else(|| StoreError::Corrupt("sync_run_scopes.status".to_owned()))?,
                    n_pages: row.try_get("n_pages").map_err(query_error(CONTEXT))?,
                    api_total: row.try_get("api_total").map_err(query_error(CONTEXT))?,
                    counts: read_counts::<DB>(row, CONTEXT)?,
                    error: row.try_get("error").map_err(query_error(CONTEXT))?,
                })
            })
            .collect()
    }

    /// Reads every `registries` row, retired ones included.
    pub(crate) async fn all_registries(pool: &Pool<DB>) -> Result<Vec<RegistryRecord>, StoreError> {
        const CONTEXT: &str = "reading registries";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(&format!("{SELECT_STORED} ORDER BY id"))
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let deleted_at: Option<DB::Timestamp> =
                    row.try_get("deleted_at").map_err(query_error(CONTEXT))?;
                let stored = stored_registry::<DB>(row)?;
                Ok(RegistryRecord {
                    registry: stored.registry,
                    project_id: stored.location.project_id,
                    enterprise_project_id: stored.location.enterprise_project_id,
                    region: stored.location.region,
                    version: stored.version,
                    deleted_at: deleted_at.map(DB::read_timestamp).transpose()?,
                })
            })
            .collect()
    }

    /// Reads `registry_history` rows: all, one registry's, or one run's.
    pub(crate) async fn history(
        pool: &Pool<DB>,
        filter: HistoryFilter<'_>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        const CONTEXT: &str = "reading registry history";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let select =
            "SELECT registry_id, version, change_kind, changed_fields, valid_from, valid_to, \
                      sync_run_id, registry_name FROM registry_history";
        let order = "ORDER BY registry_id, version";
        let sql = match filter {
            HistoryFilter::All => format!("{select} {order}"),
            HistoryFilter::Registry(_) => format!("{select} WHERE registry_id = $1 {order}"),
            HistoryFilter::Run(_) => format!("{select} WHERE sync_run_id = $1 {order}"),
        };
        let query = sqlx::query::<DB>(&sql);
        let query = match filter {
            HistoryFilter::All => query,
            HistoryFilter::Registry(id) => query.bind(id.to_owned()),
            HistoryFilter::Run(run_id) => query.bind(run_id),
        };
        let rows = query
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let changed: Json<Value> = row
                    .try_get("changed_fields")
                    .map_err(query_error(CONTEXT))?;
                let valid_from: DB::Timestamp =
                    row.try_get("valid_from").map_err(query_error(CONTEXT))?;
                let valid_to: Option<DB::Timestamp> =
                    row.try_get("valid_to").map_err(query_error(CONTEXT))?;
                Ok(HistoryRecord {
                    registry_id: row.try_get("registry_id").map_err(query_error(CONTEXT))?,
                    version: row.try_get("version").map_err(query_error(CONTEXT))?,
                    change_kind: row.try_get("change_kind").map_err(query_error(CONTEXT))?,
                    changed_fields: serde_json::from_value(changed.0)
                        .map_err(|e| StoreError::Corrupt(format!("changed_fields: {e}")))?,
                    valid_from: DB::read_timestamp(valid_from)?,
                    valid_to: valid_to.map(DB::read_timestamp).transpose()?,
                    sync_run_id: row.try_get("sync_run_id").map_err(query_error(CONTEXT))?,
                    registry_name: row.try_get("registry_name").map_err(query_error(CONTEXT))?,
                })
            })
            .collect()
    }
    /// Takes the sync lease for `holder` until `expires_at`, when it is free, lapsed, already
    /// ours, or held by `gone` (a holder whose process no longer exists), and (with a `tick`)
    /// when no run has been started for that tick yet.
    pub(crate) async fn acquire_lease(
        pool: &Pool<DB>,
        holder: &str,
        gone: Option<&str>,
        tick: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RowLease, StoreError> {
        const CONTEXT: &str = "taking the sync lease";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let taken = sqlx::query::<DB>(
            "UPDATE sync_lease SET holder = $1, acquired_at = $2, expires_at = $3, \
             last_tick_at = COALESCE($4, last_tick_at) \
             WHERE name = 'sync' AND (holder IS NULL OR holder = $1 OR expires_at < $2 OR holder = $5) \
             AND ($4 IS NULL OR last_tick_at IS NULL OR last_tick_at < $4) RETURNING holder",
        )
        .bind(holder.to_owned())
        .bind(DB::timestamp(now))
        .bind(DB::timestamp(expires_at))
        .bind(tick.map(DB::timestamp))
        .bind(gone.map(str::to_owned))
        .fetch_optional(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        if taken.is_some() {
            return Ok(RowLease::Acquired);
        }
        let row = sqlx::query::<DB>(
            "SELECT holder, expires_at, last_tick_at FROM sync_lease WHERE name = 'sync'",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        let current: Option<String> = row.try_get("holder").map_err(query_error(CONTEXT))?;
        let until: Option<DB::Timestamp> =
            row.try_get("expires_at").map_err(query_error(CONTEXT))?;
        let last_tick: Option<DB::Timestamp> =
            row.try_get("last_tick_at").map_err(query_error(CONTEXT))?;
        let last_tick = last_tick.map(DB::read_timestamp).transpose()?;
        if let (Some(tick), Some(last_tick)) = (tick, last_tick) {
            if last_tick >= tick {
                return Ok(RowLease::TickTaken);
            }
        }
        Ok(RowLease::Held {
            holder: current.unwrap_or_default(),
            until: until.map(DB::read_timestamp).transpose()?,
        })
    }

    /// Extends the lease while `holder` still has it; `false` when another process took it.
    pub(crate) async fn renew_lease(
        pool: &Pool<DB>,
        holder: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        const CONTEXT: &str = "renewing the sync lease";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let row = sqlx::query::<DB>(
            "UPDATE sync_lease SET expires_at = $2 WHERE name = 'sync' AND holder = $1 RETURNING holder",
        )
        .bind(holder.to_owned())
        .bind(DB::timestamp(expires_at))
        .fetch_optional(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        Ok(row.is_some())
    }

    /// Gives the lease back, if `holder` has it.
    pub(crate) async fn release_lease(pool: &Pool<DB>, holder: &str) -> Result<(), StoreError> {
        const CONTEXT: &str = "releasing the sync lease";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        sqlx::query::<DB>(
            "UPDATE sync_lease SET holder = NULL, expires_at = NULL WHERE name = 'sync' AND holder = $1",
        )
        .bind(holder.to_owned())
        .execute(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        Ok(())
    }

    /// Marks `interrupted` every run left `running` by another process; called only while
    /// `holder` has the lease, so no such run can still be alive.
    pub(crate) async fn recover_stale_runs(
        pool: &Pool<DB>,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        const CONTEXT: &str = "recovering runs left running";
        // One transaction: a process killed between marking a run interrupted and summing
        // its scopes would leave it interrupted with no counts, and no later recovery would
        // look at it again (the kill test found one).
        let mut tx = pool
            .begin_with(DB::BEGIN_WRITE)
            .await
            .map_err(query_error(CONTEXT))?;
        let message = format!(
            "found still running at {} by {holder}: the process that ran it stopped without finishing it",
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        );
        let rows = sqlx::query::<DB>(
            "UPDATE sync_runs SET status = 'interrupted', finished_at = $1, error = $2 \
             WHERE status = 'running' AND (holder IS NULL OR holder <> $3) RETURNING id",
        )
        .bind(DB::timestamp(now))
        .bind(message.clone())
        .bind(holder.to_owned())
        .fetch_all(&mut *tx)
        .await
        .map_err(query_error(CONTEXT))?;
        sqlx::query::<DB>(
            "UPDATE sync_run_scopes SET status = 'interrupted', finished_at = $1, error = $2 WHERE status = 'running' \
             AND sync_run_id IN (SELECT id FROM sync_runs WHERE status <> 'running')",
        )
        .bind(DB::timestamp(now))
        .bind(message)
        .execute(&mut *tx)
        .await
        .map_err(query_error(CONTEXT))?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|row| row.try_get::<i64, _>("id").map_err(query_error(CONTEXT)))
            .collect::<Result<_, _>>()?;
        // A run that died while applying had committed some scopes, each with its counts
        // in the same transaction as its rows: the run's counts are their sum.
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sums: Vec<String> = COUNT_COLUMNS
                .iter()
                .chain(&["n_pages", "n_requests", "n_throttled", "n_retries"])
                .map(|column| {
                    format!(
                        "{column} = (SELECT COALESCE(SUM(s.{column}), 0) FROM sync_run_scopes s \
                         WHERE s.sync_run_id = sync_runs.id)"
                    )
                })
                .collect();
            let sql = format!(
                "UPDATE sync_runs SET {}, n_scopes_failed = (SELECT COUNT(*) FROM sync_run_scopes s \
                 WHERE s.sync_run_id = sync_runs.id AND s.status = 'failed') WHERE id IN ({})",
                sums.join(", "),
                placeholders::<DB>(1, chunk.len())
            );
            let mut query = sqlx::query::<DB>(&sql);
            for id in chunk {
                query = query.bind(*id);
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(query_error(CONTEXT))?;
        }
        tx.commit().await.map_err(query_error(CONTEXT))?;
        Ok(ids)
    }

    /// Counts `registry_history` rows by run and change kind.
    pub(crate) async fn history_counts_by_run(
        pool: &Pool<DB>,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        const CONTEXT: &str = "counting history rows by run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(
            "SELECT sync_run_id, change_kind, COUNT(*) AS n FROM registry_history \
             GROUP BY sync_run_id, change_kind ORDER BY sync_run_id, change_kind",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("sync_run_id").map_err(query_error(CONTEXT))?,
                    row.try_get("change_kind").map_err(query_error(CONTEXT))?,
                    row.try_get("n").map_err(query_error(CONTEXT))?,
                ))
            })
            .collect()
    }

    /// Whether the database holds the hss-sync tables: selecting from `sync_runs` works.
    pub(crate) async fn has_schema(pool: &Pool<DB>) -> Result<bool, StoreError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(query_error("checking the schema"))?;
        Ok(sqlx::query::<DB>("SELECT id FROM sync_runs LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .is_ok())
    }

    /// Whether the database answers.
    pub(crate) async fn ping(pool: &Pool<DB>) -> Result<(), StoreError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(query_error("checking the database"))?;
        sqlx::query::<DB>("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(query_error("checking the database"))?;
        Ok(())
    }

    /// When the newest run with one of `statuses` finished.
    pub(crate) async fn last_finished(
        pool: &Pool<DB>,
        statuses: &[RunStatus],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        const CONTEXT: &str = "reading the last finished run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let sql = format!(
            "SELECT finished_at FROM sync_runs WHERE finished_at IS NOT NULL AND status IN ({}) ORDER BY id DESC LIMIT 1",
            placeholders::<DB>(1, statuses.len())
        );
        let mut query = sqlx::query::<DB>(&sql);
        for status in statuses {
            query = query.bind(status.as_str().to_owned());
        }
        let row = query
            .fetch_optional(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        match row {
            Some(row) => {
                let finished: DB::Timestamp =
                    row.try_get("finished_at").map_err(query_error(CONTEXT))?;
                Ok(Some(DB::read_timestamp(finished)?))
            }
            None => Ok(None),
        }
    }

    /// Live registries counted by status and type.
    pub(crate) async fn registry_counts(
        pool: &Pool<DB>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        const CONTEXT: &str = "counting registries";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(
            "SELECT COALESCE(status, '') AS status, COALESCE(registry_type, '') AS registry_type, COUNT(*) AS n \
             FROM registries WHERE deleted_at IS NULL GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("status").map_err(query_error(CONTEXT))?,
                    row.try_get("registry_type").map_err(query_error(CONTEXT))?,
                    row.try_get("n").map_err(query_error(CONTEXT))?,
                ))
            })
            .collect()
    }
}

fn bind_content<'q, DB>(
    query: Q<'q, DB>,
    registry: &StagedRegistry,
    location: &Location,
) -> Q<'q, DB>
where
    DB: Backend,
    for<'a> String: Encode<'a, DB>,
    for<'a> Option<String>: Encode<'a, DB>,
    String: Type<DB>,
    for<'a> i64: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB>,
    i64: Type<DB>,
{
    let mut query = query
        .bind(location.project_id.clone())
        .bind(location.enterprise_project_id.clone())
        .bind(location.region.clone());
    for value in &registry.strings {
        query = query.bind(value.clone());
    }
    for value in registry.integers {
        query = query.bind(value);
    }
    query
        .bind(registry.raw.clone())
        .bind(registry.content_hash.clone())
}

/// A `registries` row as [`Queries::all_registries`] reads it.
struct StoredRow {
    registry: Registry,
    location: Location,
    version: i64,
}

/// Reads what [`Backend::ID_HASH_ENTRIES`] wrote: entries `<bytes of id>:<id><content hash>`,
/// separated by commas. The length lets an id hold any character; a hash is hex.
fn id_hash_entries(entries: &str) -> Result<Vec<(&str, &str)>, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("unreadable list of stored ids: {entries:.80}"));
    let mut parsed = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(':').ok_or_else(corrupt)?;
        let len: usize = len.parse().map_err(|_| corrupt())?;
        let id = tail.get(..len).ok_or_else(corrupt)?;
        let tail = &tail[len..];
        let (hash, next) = tail.split_once(',').unwrap_or((tail, ""));
        parsed.push((id, hash));
        rest = next;
    }
    Ok(parsed)
}

fn stored_registry<DB>(row: &DB::Row) -> Result<StoredRow, StoreError>
where
    DB: Backend,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    const CONTEXT: &str = "reading a stored registry";
    let id: String = row.try_get("id").map_err(query_error(CONTEXT))?;
    Ok(StoredRow {
        registry: registry_from_json::<DB>(row, "raw", &id)?,
        location: location::<DB>(row, CONTEXT)?,
        version: row.try_get("version").map_err(query_error(CONTEXT))?,
    })
}

/// The registry in JSON column `column` of a row whose key is `id`.
fn registry_from_json<DB>(row: &DB::Row, column: &str, id: &str) -> Result<Registry, StoreError>
where
    DB: Backend,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let raw = json_object::<DB>(row, column, id)?;
    let mut registry =
        Registry::from_raw(raw).map_err(|e| StoreError::Corrupt(format!("registry {id}: {e}")))?;
    // The key is the row's id, even if a hand edit made `raw` disagree.
    registry.id = id.to_owned();
    Ok(registry)
}

/// The registry in JSON column `raw` of a row whose key is `id`, with the content hash
/// column `hash` of the same row.
fn hashed_registry_from_json<DB>(
    row: &DB::Row,
    (raw, hash): (&str, &str),
    id: &str,
) -> Result<Registry, StoreError>
where
    DB: Backend,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(Registry {
        id: id.to_owned(),
        raw: json_object::<DB>(row, raw, id)?,
        content_hash: row
            .try_get(hash)
            .map_err(query_error("reading a stored registry"))?,
    })
}

/// The JSON object in column `column` of a row whose key is `id`.
fn json_object<DB>(row: &DB::Row, column: &str, id: &str) -> Result<Map<String, Value>, StoreError>
where
    DB: Backend,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let raw: Json<Value> = row
        .try_get(column)
        .map_err(query_error("reading a stored registry"))?;
    match raw.0 {
        Value::Object(raw) => Ok(raw),
        _ => Err(StoreError::Corrupt(format!(
            "{column} of registry {id} is not a JSON object"
        ))),
    }
}

fn location<DB>(row: &DB::Row, context: &'static str) -> Result<Location, StoreError>
where
    DB: Backend,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    Ok(Location {
        project_id: row.try_get("project_id").map_err(query_error(context))?,
        enterprise_project_id: row
            .try_get("enterprise_project_id")
            .map_err(query_error(context))?,
        region: row.try_get("region").map_err(query_error(context))?,
    })
}

/// The diff's view of a stored row read with `content_hash`, the location columns,
/// `version`, `deleted_at` and `last_sync_run_id`.
fn summary<DB>(row: &DB::Row, run_id: i64) -> Result<StoredSummary, StoreError>
where
    DB: Backend,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    const CONTEXT: &str = "reading a stored registry";
    let deleted_at: Option<DB::Timestamp> =
        row.try_get("deleted_at").map_err(query_error(CONTEXT))?;
    let last_run: i64 = row
        .try_get("last_sync_run_id")
        .map_err(query_error(CONTEXT))?;
    Ok(StoredSummary {
        content_hash: row.try_get("content_hash").map_err(query_error(CONTEXT))?,
        location: location::<DB>(row, CONTEXT)?,
        version: row.try_get("version").map_err(query_error(CONTEXT))?,
        deleted: deleted_at.is_some(),
        written_this_run: last_run == run_id,
    })
}

/// Logs once per process that a registry listed by `scope` is kept by another scope.
fn warn_shared_once(id: &str, scope: &Scope) {
    static WARNED: std::sync::Mutex<Option<std::collections::HashSet<String>>> =
        std::sync::Mutex::new(None);
    let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
    if warned
        .get_or_insert_with(Default::default)
        .insert(id.to_owned())
    {
        tracing::warn!(
            registry.id = id,
            "registry {id} is listed by several scopes; {scope} leaves it where it is stored"
        );
    }
}

fn read_counts<DB>(row: &DB::Row, context: &'static str) -> Result<ScopeCounts, StoreError>
where
    DB: Backend,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    let get = |column| row.try_get::<i64, _>(column).map_err(query_error(context));
    Ok(ScopeCounts {
        n_fetched: get(COUNT_COLUMNS[0])?,
        n_inserted: get(COUNT_COLUMNS[1])?,
        n_updated: get(COUNT_COLUMNS[2])?,
        n_unchanged: get(COUNT_COLUMNS[3])?,
        n_deleted: get(COUNT_COLUMNS[4])?,
        n_restored: get(COUNT_COLUMNS[5])?,
        n_held: get(COUNT_COLUMNS[6])?,
    })
}

/// SQLite stages a page with statements that are each kept prepared (PostgreSQL, below, with
/// arrays).
impl Queries<Sqlite> {
    /// Stages one walked page: registries seen as stored go in by id only (one row for the
    /// page until the run's listing is indexed, see [`StagePage::listing_indexed`]), the
    /// others with their content. Returns how many of the former it staged.
    ///
    /// Every statement here is kept prepared. The ids go in as one JSON array, kept as it is
    /// or read back by `json_each` in order, whatever their number. The content goes in rows of
    /// [`STAGED_PER_INSERT`] and, for what is left, of powers of two. Before, in a sync that
    /// changed 10 % of its registries, nearly every page's two statements had a count of rows
    /// of their own, and each was parsed and prepared again, hundreds of placeholders long.
    pub(crate) async fn stage_page(
        conn: &mut sqlx::SqliteConnection,
        page: &StagePage<'_>,
    ) -> Result<i64, StoreError> {
        const CONTEXT: &str = "staging a page";
        let (unchanged, content) = (page.unchanged, page.changed);
        let mut n_unchanged = 0;
        if !unchanged.is_empty() {
            let sql = if page.listing_indexed {
                format!(
                    "{} INTO sync_staging (run_id, scope_ix, id) SELECT ?, ?, value \
                     FROM json_each(?)",
                    Sqlite::INSERT,
                )
            } else {
                format!(
                    "{} INTO sync_listed_pages (run_id, scope_ix, ids) VALUES (?, ?, ?)",
                    Sqlite::INSERT,
                )
            };
            sqlx::query::<Sqlite>(&sql)
                .bind(page.run_id)
                .bind(page.scope_ix)
                .bind(Sqlite::text_list(unchanged.iter().copied()))
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            n_unchanged = unchanged.len() as i64;
        }
        let location = page.scope.location_for(None);
        let mut rest = content;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(staged_rows(rest.len()));
            rest = after;
            let sql = format!(
                "{} INTO sync_staging (run_id, scope_ix, id, {}) VALUES {}",
                Sqlite::INSERT,
                CONTENT_COLUMNS.join(", "),
                row_placeholders::<Sqlite>(chunk.len(), CONTENT_COLUMNS.len() + 3),
            );
            let mut query = sqlx::query::<Sqlite>(&sql);
            for registry in chunk {
                query = bind_content(
                    query
                        .bind(page.run_id)
                        .bind(page.scope_ix)
                        .bind(registry.id.clone()),
                    registry,
                    &location,
                );
            }
            query
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
        }
        Ok(n_unchanged)
    }
}

/// PostgreSQL stages a page with one prepared statement of a column array each, unnested
/// by the server: a `VALUES` list of a page's rows is a new statement of thousands of
/// parameters for the server to parse and plan on every page.
impl Queries<sqlx::Postgres> {
    pub(crate) async fn stage_page_arrays(
        conn: &mut sqlx::PgConnection,
        page: &StagePage<'_>,
    ) -> Result<i64, StoreError> {
        const CONTEXT: &str = "staging a page";
        let mut n_unchanged = 0;
        if !page.unchanged.is_empty() {
            let sql = if page.listing_indexed {
                "INSERT INTO sync_staging (run_id, scope_ix, id) SELECT $1, $2, id FROM UNNEST($3::text[]) AS u(id)"
            } else {
                "INSERT INTO sync_listed_pages (run_id, scope_ix, ids) VALUES ($1, $2, $3)"
            };
            sqlx::query(sql)
                .bind(page.run_id)
                .bind(page.scope_ix)
                .bind(page.unchanged)
                .execute(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            n_unchanged = page.unchanged.len() as i64;
        }
        if page.changed.is_empty() {
            return Ok(n_unchanged);
        }
        let location = page.scope.location_for(None);
        let registries = page.changed;
        let mut query = sqlx::query::<sqlx::Postgres>(&STAGE_ARRAYS)
            .bind(page.run_id)
            .bind(page.scope_ix)
            .bind(location.project_id.clone())
            .bind(location.enterprise_project_id.clone())
            .bind(location.region.clone())
            .bind(registries.iter().map(|r| r.id.as_str()).collect::<Vec<_>>());
        for i in 0..STRING_FIELDS.len() {
            query = query.bind(
                registries
                    .iter()
                    .map(|r| r.strings[i].as_deref())
                    .collect::<Vec<_>>(),
            );
        }
        for i in 0..INTEGER_FIELDS.len() {
            query = query.bind(registries.iter().map(|r| r.integers[i]).collect::<Vec<_>>());
        }
        query
            .bind(
                registries
                    .iter()
                    .map(|r| r.raw.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                registries
                    .iter()
                    .map(|r| r.content_hash.as_str())
                    .collect::<Vec<_>>(),
            )
            .execute(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
        Ok(n_unchanged)
    }
}

/// The statement of [`Queries::stage_page_arrays`]: the run, the scope and the location as
/// scalars (`$1`-`$5`), the ids (`$6`), then one array per content column after the location.
static STAGE_ARRAYS: LazyLock<String> = LazyLock::new(|| {
    let arrays = &CONTENT_COLUMNS[LOCATION_COLUMNS.len()..];
    let casts: Vec<String> = arrays
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let kind = if INTEGER_FIELDS.contains(column) {
                "bigint"
            } else {
                "text"
            };
            format!("${}::{kind}[]", i + 7)
        })
        .collect();
    let selected: Vec<String> = arrays
        .iter()
        .map(|column| {
            if *column == "raw" {
                "u.raw::jsonb".to_owned()
            } else {
                format!("u.{column}")
            }
        })
        .collect();
    format!(
        "INSERT INTO sync_staging (run_id, scope_ix, {}, id, {}) \
         SELECT $1, $2, $3, $4, $5, u.id, {} FROM UNNEST($6::text[], {}) AS u(id, {})",
        LOCATION_COLUMNS.join(", "),
        arrays.join(", "),
        selected.join(", "),
        casts.join(", "),
        arrays.join(", ")
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_id_lists_read_back_every_id_and_hash_whatever_the_id_holds() {
        let entries = "2:r1abc,9:a,b:c\u{e9}\u{e9}0f,0:ff";

        let parsed = id_hash_entries(entries).unwrap();

        assert_eq!(
            parsed,
            [("r1", "abc"), ("a,b:c\u{e9}\u{e9}", "0f"), ("", "ff")]
        );
        assert!(id_hash_entries("").unwrap().is_empty());
    }

    #[test]
    fn a_stored_id_list_that_does_not_add_up_is_an_error_not_a_guess() {
        for broken in ["r1abc", "x:r1abc", "9:r1", "2:r\u{e9}abc"] {
            let result = id_hash_entries(broken);

            assert!(
                matches!(result, Err(StoreError::Corrupt(_))),
                "{broken:?}: {result:?}"
            );
        }
    }
}

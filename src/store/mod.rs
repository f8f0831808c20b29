//! The store: the only module that holds SQL.
//!
//! [`Store`] is one of two backends, chosen by the database URL's scheme: SQLite (the
//! embedded default) or PostgreSQL. Both run the same SQL text from [`queries`], written
//! once against a [`Backend`] that says how each database keeps a timestamp; each has its
//! own migrations under `migrations/`.
//!
//! The unit of writing is a scope: [`Store::apply_scope`] loads what the store holds for
//! the scope, asks the pure planner ([`crate::sync::plan`]) for the difference, and writes
//! rows, history and the scope's audit row in one transaction.

mod backend;
mod catalog;
mod lease;
mod queries;
pub mod reports;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use backend::Backend;
pub use lease::Lease;
use lease::LeaseKind;
use queries::Queries;

use crate::registry::{Registry, StagedRegistry};
use crate::sync::plan::{self, Coverage, RetireDecision, Retirement, ScopeCounts};
use crate::sync::{RunStatus, Scope, ScopeStatus, Trigger};

/// Prepared statements each SQLite connection keeps: more than the store's fixed statements
/// (the ten that stage a page among them); sqlx's default of 100 kept statements of
/// thousands of parameters.
const SQLITE_STATEMENT_CACHE: usize = 50;

/// How long a connection attempt may take before the store reports the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long SQLite waits on a lock held by another connection before failing; long enough
/// for a reader's query, short enough that a stuck writer is reported.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// A store error. Messages name what was being done; they never hold the database password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one we can use.
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot connect to the {backend} database")]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error while {context}")]
    Query {
        /// What was being done.
        context: &'static str,
        /// The driver's error.
        source: sqlx::Error,
    },
    /// A database file that a reading command was pointed at does not exist.
    #[error("database file {0} does not exist (a sync creates it; check the path)")]
    Missing(String),
    /// The database holds no hss-sync tables.
    #[error(
        "{0} holds no hss-sync schema (run `hss-sync migrate` or a sync first, or check the url)"
    )]
    NoSchema(String),
    /// A value in the database is not what the schema promises.
    #[error("corrupt value in the database: {0}")]
    Corrupt(String),
}

pub(crate) fn query_error(context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Query { context, source }
}

/// Which backend a database URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres://` and `postgresql://` URLs.
    Postgres,
}

impl BackendKind {
    /// Reads the backend from the URL scheme.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for any other scheme.
    pub fn from_url(url: &str) -> Result<BackendKind, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(BackendKind::Sqlite),
            "postgres" | "postgresql" => Ok(BackendKind::Postgres),
            _ => Err(StoreError::InvalidUrl(format!(
                "{} (expected sqlite://PATH or postgres://USER@HOST/DB)",
                redact_url(url)
            ))),
        }
    }
}

/// A database URL with any password replaced by `***`, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

/// The final state of a run, written by [`Store::finish_run`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTotals {
    /// How the run ended.
    pub status: RunStatus,
    /// Scopes in the run.
    pub n_scopes: i64,
    /// Scopes that failed.
    pub n_scopes_failed: i64,
    /// Pages read.
    pub n_pages: i64,
    /// Requests sent.
    pub n_requests: i64,
    /// Requests refused for throttling.
    pub n_throttled: i64,
    /// Retries made.
    pub n_retries: i64,
    /// Row counts over all scopes.
    pub counts: ScopeCounts,
    /// The first error, when any.
    pub error: Option<String>,
}

/// One walked page, handed to [`Store::stage_page`].
#[derive(Clone, Copy, Debug)]
pub struct StagePage<'a> {
    /// The run.
    pub run_id: i64,
    /// The scope's position in the run.
    pub scope_ix: i64,
    /// The scope.
    pub scope: &'a Scope,
    /// Ids of registries listed as the store holds them.
    pub unchanged: &'a [&'a str],
    /// Whether the run's listing is indexed already ([`Store::index_listing`]; its confirming
    /// walks): `unchanged` then goes in one row an id, where the index finds them. Before,
    /// it goes in one row for the page (`sync_listed_pages`), which the run spreads into
    /// rows only if it comes to deciding moves or deletions: an unchanged resync never does.
    pub listing_indexed: bool,
    /// Registries that may differ from what the store holds (new, changed, retired, or
    /// stored elsewhere): staged with their content, decided when the scope is applied.
    pub changed: &'a [StagedRegistry],
}

/// The registries a scope's retiring looks at: the live ones `coverage` answers for that no
/// walk of run `run_id` listed, and, when the run has them at hand, only those `among` the
/// ids the scope missed before its confirming walk (nothing later in a run adds to those:
/// moves only take listed registries). Looking a few ids up is much cheaper than a pass over
/// the scope and the run's listing, three times over.
#[derive(Clone, Copy, Debug)]
pub struct Unlisted<'a> {
    /// The run.
    pub run_id: i64,
    /// The scope and what it answers for.
    pub coverage: Coverage<'a>,
    /// The ids to look among, if the run knows them.
    pub among: Option<&'a [String]>,
}

/// One step of writing a scope: applying its staged pages, or its deferred moves.
#[derive(Clone, Copy, Debug)]
pub struct ScopeStep<'a> {
    /// The run.
    pub run_id: i64,
    /// The scope's position in the run.
    pub scope_ix: i64,
    /// The scope, with what it answers for.
    pub coverage: Coverage<'a>,
    /// Fields whose changes alone refresh a row without making a version.
    pub ignored_fields: &'a [String],
    /// The last staged row of the scope already applied (0 for none).
    pub after_seq: i64,
    /// The time written into every row the step touches.
    pub now: DateTime<Utc>,
}

/// What applying a scope's staged pages did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// What it added to the scope's counts.
    pub counts: ScopeCounts,
    /// The last staged row it applied.
    pub last_seq: i64,
    /// How many registries it set aside as stored under a scope the step's scope does not
    /// cover, for [`Store::apply_deferred`].
    pub n_deferred: i64,
}

/// What a step adds to a scope's audit row (`sync_run_scopes`).
#[derive(Clone, Copy, Debug, Default)]
pub struct ScopeUpdate<'a> {
    /// The row.
    pub scope_row_id: i64,
    /// The status to set, if the step decides one.
    pub status: Option<ScopeStatus>,
    /// Pages read.
    pub n_pages: i64,
    /// Requests sent.
    pub n_requests: i64,
    /// Requests refused for throttling.
    pub n_throttled: i64,
    /// Retries made.
    pub n_retries: i64,
    /// `total_num` as last reported, if the step read one.
    pub api_total: Option<i64>,
    /// Why the scope failed or held its deletions, if it did.
    pub error: Option<&'a str>,
    /// Huawei's `error_code` of the failure, when the API gave one.
    pub error_code: Option<&'a str>,
    /// The HTTP status of the failure, when an answer came.
    pub http_status: Option<i64>,
    /// Huawei's `request_id` of the failure.
    pub request_id: Option<&'a str>,
}

/// One `sync_runs` row.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its status.
    pub status: RunStatus,
    /// What started it.
    pub trigger: Trigger,
    /// The schedule tick it ran for, when the schedule started it.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Its totals.
    pub totals: RunTotals,
}

/// One `sync_run_scopes` row.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeRecord {
    /// The scope.
    pub scope: Scope,
    /// Its status.
    pub status: ScopeStatus,
    /// Pages read.
    pub n_pages: i64,
    /// `total_num` as last reported.
    pub api_total: Option<i64>,
    /// Row counts.
    pub counts: ScopeCounts,
    /// Why it failed.
    pub error: Option<String>,
}

/// One `registry_history` row, abridged.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRecord {
    /// The registry.
    pub registry_id: String,
    /// The version this row describes.
    pub version: i64,
    /// `created`, `updated`, `deleted` or `restored`.
    pub change_kind: String,
    /// Fields that changed from the previous version.
    pub changed_fields: Vec<String>,
    /// When this version was first seen.
    pub valid_from: DateTime<Utc>,
    /// When the next version replaced it; `None` for the current one.
    pub valid_to: Option<DateTime<Utc>>,
    /// The run that wrote it.
    pub sync_run_id: i64,
    /// The registry's name at this version.
    pub registry_name: Option<String>,
}

/// One `registries` row, abridged.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryRecord {
    /// The stored registry.
    pub registry: Registry,
    /// Its project.
    pub project_id: String,
    /// Its enterprise project, when the scope named one.
    pub enterprise_project_id: Option<String>,
    /// Its region.
    pub region: String,
    /// Its current version.
    pub version: i64,
    /// When it was retired, if it was.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// A connection pool to one of the two backends. The pool never leaves the store: every
/// read and write goes through a method phrased in domain terms.
#[derive(Clone, Debug)]
pub struct Store(Pools, WriteTurns);

/// Whose turn it is to write, among this process's writing transactions, where the backend
/// writes one transaction at a time (SQLite): each waits for its turn in the order it asked.
/// Left to SQLite, a transaction that finds the write lock taken sleeps and tries again, up to
/// a tenth of a second between tries and with no order among those waiting, so a walk's page
/// waited up to half a second behind other scopes' writes, and the walk with it. Other
/// processes writing the same file still meet SQLite's busy timeout.
#[derive(Clone, Debug, Default)]
struct WriteTurns(Option<Arc<tokio::sync::Mutex<()>>>);

impl WriteTurns {
    fn one_at_a_time() -> WriteTurns {
        WriteTurns(Some(Arc::default()))
    }
}

/// The pool of the backend a [`Store`] was opened on.
#[derive(Clone, Debug)]
enum Pools {
    /// SQLite, the embedded default.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs the same generic query on whichever backend the store holds.
macro_rules! dispatch {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.0 {
            Pools::Sqlite($pool) => {
                #[allow(unused_imports)]
                use sqlx::Sqlite as Db;
                $body
            }
            Pools::Postgres($pool) => {
                #[allow(unused_imports)]
                use sqlx::Postgres as Db;
                $body
            }
        }
    };
}

impl Store {
    /// Opens a pool for `url`: `sqlite://PATH` (created if missing) or `postgres://…`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for a bad URL, [`StoreError::Connect`] when the
    /// database cannot be reached.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        match BackendKind::from_url(url)? {
            BackendKind::Sqlite => {
                let options = parse_options::<SqliteConnectOptions>(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    // temp_store stays on disk: indexing a run's listing sorts it, and in
                    // memory that sort held 30 MiB more at 500,000 registries.
                    .busy_timeout(SQLITE_BUSY_TIMEOUT)
                    // Every statement the store keeps prepared, and no room for more: the ones
                    // whose placeholder count follows the data are never kept (see queries.rs).
                    .statement_cache_capacity(SQLITE_STATEMENT_CACHE);
                Ok(Store(
                    Pools::Sqlite(open_pool(options, 4, "sqlite").await?),
                    WriteTurns::one_at_a_time(),
                ))
            }
            BackendKind::Postgres => {
                let options = parse_options::<PgConnectOptions>(url)?.application_name("hss-sync");
                Ok(Store(
                    Pools::Postgres(open_pool(options, 8, "postgres").await?),
                    WriteTurns::default(),
                ))
            }
        }
    }

    /// Opens `url` for reading only, for commands that only read: nothing is created or
    /// migrated. SQLite opens the file read-only; PostgreSQL sessions default to read-only
    /// transactions.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidUrl`] for a bad URL, [`StoreError::Missing`] when a SQLite file
    /// does not exist, [`StoreError::NoSchema`] when the database holds no hss-sync schema,
    /// [`StoreError::Connect`] when it cannot be reached.
    pub async fn open_read_only(url: &str) -> Result<Store, StoreError> {
        let store = match BackendKind::from_url(url)? {
            BackendKind::Sqlite => {
                let options = parse_options::<SqliteConnectOptions>(url)?;
                let path = options.get_filename().to_path_buf();
                if !path.exists() {
                    return Err(StoreError::Missing(path.display().to_string()));
                }
                let options = options
                    .read_only(true)
                    .create_if_missing(false)
                    .busy_timeout(SQLITE_BUSY_TIMEOUT);
                Store(
                    Pools::Sqlite(open_pool(options, 2, "sqlite").await?),
                    WriteTurns::default(),
                )
            }
            BackendKind::Postgres => {
                let options = parse_options::<PgConnectOptions>(url)?
                    .application_name("hss-sync")
                    .options([("default_transaction_read_only", "on")]);
                Store(
                    Pools::Postgres(open_pool(options, 2, "postgres").await?),
                    WriteTurns::default(),
                )
            }
        };
        let has_schema = dispatch!(&store, pool => Queries::<Db>::has_schema(pool).await)?;
        if !has_schema {
            store.close().await;
            return Err(StoreError::NoSchema(redact_url(url)));
        }
        Ok(store)
    }

    /// Connects to `url` (creating a SQLite file if missing) and applies pending migrations:
    /// what every command that writes needs.
    ///
    /// # Errors
    ///
    /// As [`Store::connect`] and [`Store::migrate`].
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match &self.0 {
            Pools::Sqlite(_) => BackendKind::Sqlite,
            Pools::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Applies the migrations of this backend that are not applied yet.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migrate`] when a migration fails or the database has migrations this
    /// build does not know.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Pools::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// Writes a `running` row for a new run and returns its id. Written before the first
    /// request, so a crash leaves a visible trace.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn begin_run(
        &self,
        trigger: Trigger,
        n_scopes: i64,
        started_at: DateTime<Utc>,
        scheduled_at: Option<DateTime<Utc>>,
    ) -> Result<i64, StoreError> {
        let run = NewRun {
            trigger,
            n_scopes,
            started_at,
            scheduled_at,
            hostname: &hostname(),
            holder: holder_id(),
        };
        dispatch!(self, pool => Queries::<Db>::begin_run(pool, &run).await)
    }

    /// Takes the sync lease for this process, when no other process holds it and, for a
    /// schedule `tick`, when no process has claimed that tick yet (ticks are whole seconds).
    ///
    /// On PostgreSQL it is a session advisory lock on a connection of its own, which the
    /// server releases when the connection ends; `length` does not apply. On SQLite it is
    /// the `sync_lease` row until `length` after the last renewal, taken over at once from
    /// a holder on this host whose process is gone.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn acquire_lease(
        &self,
        tick: Option<DateTime<Utc>>,
        length: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        use chrono::SubsecRound;
        let tick = tick.map(|t| t.trunc_subsecs(0));
        match &self.0 {
            Pools::Postgres(pool) => lease::acquire_advisory(pool, holder_id(), tick).await,
            Pools::Sqlite(pool) => {
                let now = Utc::now().trunc_subsecs(3);
                let expires_at = expiry(now, length);
                let acquire = |gone| {
                    Queries::<sqlx::Sqlite>::acquire_lease(
                        pool,
                        holder_id(),
                        gone,
                        tick,
                        now,
                        expires_at,
                    )
                };
                let outcome = match acquire(None).await? {
                    RowLease::Held { holder, .. }
                        if lease::holder_is_gone(&holder, &hostname_or_unknown()) =>
                    {
                        tracing::warn!(lease.holder = %holder, "the sync lease is held by process {holder}, which no longer exists; taking it over");
                        // Taken unless another process took it meanwhile; the tick rule holds.
                        acquire(Some(&holder)).await?
                    }
                    other => other,
                };
                Ok(match outcome {
                    RowLease::Acquired => LeaseOutcome::Acquired(Lease {
                        kind: LeaseKind::Row {
                            store: self.clone(),
                            length,
                        },
                    }),
                    RowLease::Held { holder, until } => LeaseOutcome::Held { holder, until },
                    RowLease::TickTaken => LeaseOutcome::TickTaken,
                })
            }
        }
    }

    /// Extends this process's row lease by `length`; `false` when another process has it.
    async fn renew_row_lease(&self, length: Duration) -> Result<bool, StoreError> {
        let expires_at = expiry(Utc::now(), length);
        dispatch!(self, pool => Queries::<Db>::renew_lease(pool, holder_id(), expires_at).await)
    }

    /// Gives this process's row lease back.
    async fn release_row_lease(&self) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::release_lease(pool, holder_id()).await)
    }

    /// Marks `interrupted` the runs left `running` by other processes, and returns their
    /// ids. Call it only while holding the lease.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn recover_stale_runs(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::recover_stale_runs(pool, holder_id(), now).await)
    }

    /// Whether the database answers.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::ping(pool).await)
    }

    /// When the newest run whose status is one of `statuses` finished.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn last_finished(
        &self,
        statuses: &[RunStatus],
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::last_finished(pool, statuses).await)
    }

    /// Live registries counted by (status, type); missing values count under `""`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn registry_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::registry_counts(pool).await)
    }

    /// Writes the end state of a run.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn finish_run(
        &self,
        run_id: i64,
        totals: &RunTotals,
        finished_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::finish_run(pool, run_id, totals, finished_at).await)
    }

    /// Writes a `running` row for each scope of a run, in one transaction, and returns their
    /// ids in the order of `scopes`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails; then no row is written.
    pub async fn begin_scopes(
        &self,
        run_id: i64,
        scopes: &[Scope],
        started_at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting to record the run's scopes").await?;
            let mut ids = Vec::with_capacity(scopes.len());
            for scope in scopes {
                ids.push(Queries::<Db>::begin_scope(&mut *tx, run_id, scope, started_at).await?);
            }
            tx.commit().await.map_err(query_error("committing the run's scopes"))?;
            Ok(ids)
        })
    }

    /// Calls `each` with the id and content hash of every live registry stored where a walk
    /// of `scope` would leave it (the registries that walk can find unchanged), streaming.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn unchanged_candidates(
        &self,
        scope: &Scope,
        each: &mut (dyn FnMut(&str, &str) + Send),
    ) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::unchanged_candidates(pool, scope, each).await)
    }

    /// Stages one walked page (see `migrations/*/0005_staging.sql`): registries seen as
    /// stored go in by id only (a row for the page's ids until the run's listing is indexed,
    /// `0008_listed_pages.sql`), the others with their content. Returns how many registries
    /// seen as stored it staged.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn stage_page(&self, page: &StagePage<'_>) -> Result<i64, StoreError> {
        const CONTEXT: &str = "starting to stage a page";
        let n = match &self.0 {
            Pools::Sqlite(pool) => {
                let mut tx = begin_write(pool, &self.1, CONTEXT).await?;
                let n = Queries::<sqlx::Sqlite>::stage_page(&mut tx, page).await?;
                tx.commit().await.map(|()| n)
            }
            Pools::Postgres(pool) => {
                let mut tx = begin_write(pool, &self.1, CONTEXT).await?;
                let n = Queries::<sqlx::Postgres>::stage_page_arrays(&mut tx, page).await?;
                tx.commit().await.map(|()| n)
            }
        };
        n.map_err(query_error("committing a staged page"))
    }

    /// Forgets what a scope staged, before it is walked again from the start.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn unstage_scope(&self, run_id: i64, scope_ix: i64) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::unstage_scope(pool, run_id, scope_ix).await)
    }

    /// Removes the staged rows of `run_id` and of every run that is no longer running.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn clear_staging(&self, run_id: i64) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting to clear staged pages").await?;
            Queries::<Db>::clear_staging(&mut *tx, run_id).await?;
            tx.commit().await.map_err(query_error("committing the cleared staging"))
        })
    }

    /// Applies what each scope of `steps` staged after its `after_seq`, with its audit row,
    /// all in one transaction: new registries, new versions, restored ones; registries
    /// stored under a scope the step's scope does not cover wait for
    /// [`Store::apply_deferred`]. Each step also names how many registries were staged as
    /// seen unchanged since its last step. Returns, step by step, what it did.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails; then nothing of any step is written.
    pub async fn apply_staged(
        &self,
        steps: &[(ScopeStep<'_>, ScopeUpdate<'_>, i64)],
    ) -> Result<Vec<Applied>, StoreError> {
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting a scope transaction").await?;
            let mut applied = Vec::with_capacity(steps.len());
            for (step, update, n_unchanged) in steps {
                let mut step_applied = Queries::<Db>::apply_staged(&mut *tx, step).await?;
                let counts = &mut step_applied.counts;
                counts.n_unchanged += n_unchanged;
                counts.n_fetched += n_unchanged;
                Queries::<Db>::record_scope(&mut *tx, update, counts, step.now).await?;
                applied.push(step_applied);
            }
            tx.commit().await.map_err(query_error("committing a scope"))?;
            Ok(applied)
        })
    }

    /// Indexes run `run_id`'s listing by id, once its walks have ended, after spreading the
    /// ids its walks listed a page to a row into rows of their own (see
    /// `migrations/*/0005_staging.sql` and `0008_listed_pages.sql`). Pages staged after it
    /// must say so ([`StagePage::listing_indexed`]).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn index_listing(&self, run_id: i64) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting to index the run's listing").await?;
            Queries::<Db>::index_listing(&mut *tx, run_id).await?;
            tx.commit().await.map_err(query_error("committing the run's indexed listing"))
        })
    }

    /// Moves to a scope the registries it listed that are stored live under a scope it does
    /// not cover, unless a scope of the run (`scopes`, by index) that covers them listed
    /// them too; in one transaction with the scope's audit row.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails; then nothing of the step is written.
    pub async fn apply_deferred(
        &self,
        step: &ScopeStep<'_>,
        scopes: &[Coverage<'_>],
        scope_row_id: i64,
    ) -> Result<ScopeCounts, StoreError> {
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting a scope transaction").await?;
            let counts = Queries::<Db>::apply_deferred(&mut *tx, step, scopes).await?;
            if counts != ScopeCounts::default() {
                let update = ScopeUpdate { scope_row_id, ..ScopeUpdate::default() };
                Queries::<Db>::record_scope(&mut *tx, &update, &counts, step.now).await?;
            }
            tx.commit().await.map_err(query_error("committing a scope"))?;
            Ok(counts)
        })
    }

    /// How many live registries a scope covers.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn count_live(&self, coverage: Coverage<'_>) -> Result<i64, StoreError> {
        dispatch!(self, pool => {
            let mut conn = pool.acquire().await.map_err(query_error("acquiring a connection"))?;
            Queries::<Db>::count_live(&mut *conn, coverage).await
        })
    }

    /// Calls `each` with the id of every live registry a scope covers that no walk of the
    /// run listed, streaming. With `missed`, the ids of the registries stored where the
    /// scope's walk would leave them (see [`Store::unchanged_candidates`]) that the walk did
    /// not list, it looks only among those and the registries the scope covers elsewhere
    /// (in another region, or recorded without an enterprise project): the others were listed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn unseen(
        &self,
        run_id: i64,
        coverage: Coverage<'_>,
        missed: Option<&[String]>,
        each: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), StoreError> {
        dispatch!(self, pool => Queries::<Db>::unseen(pool, run_id, coverage, missed, each).await)
    }

    /// Retires, as `retirement` allows, the registries `unlisted` names, in one transaction
    /// with its audit row. `n_new` of the scope's live registries were created or restored by
    /// this run: the guard weighs what is missing against what the scope held before the run. Returns the counts, and the
    /// message of deletions held by the guard, when they were (the scope is then `held`).
    ///
    /// The registries are retired first, which tells how many were missing without a query
    /// of its own; the transaction is rolled back when the guard holds them (the audit row
    /// is then written in a transaction of its own) or nothing may be retired. A savepoint
    /// around the retiring would keep one transaction, but on SQLite it copies every page
    /// the retiring changes into a temporary file first, in case it is rolled back (a file
    /// of 2 MiB a scope in a 10 %-changed sync of 50,000 registries), for a guard that
    /// rarely holds.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails; then nothing is retired.
    pub async fn retire_unseen(
        &self,
        unlisted: Unlisted<'_>,
        scope_row_id: i64,
        retirement: &Retirement,
        n_new: i64,
        now: DateTime<Utc>,
    ) -> Result<(ScopeCounts, Option<String>), StoreError> {
        const CONTEXT: &str = "retiring registries";
        dispatch!(self, pool => {
            let mut tx = begin_write(pool, &self.1, "starting a scope transaction").await?;
            let n_gone = Queries::<Db>::retire_unseen(&mut *tx, unlisted, now).await?;
            let n_left = Queries::<Db>::count_live(&mut *tx, unlisted.coverage).await?;
            let n_live = (n_left + n_gone - n_new).max(n_gone);
            let mut counts = ScopeCounts::default();
            let mut held = None;
            match plan::retire(n_gone, n_live, retirement) {
                RetireDecision::Nothing => {
                    tx.rollback().await.map_err(query_error(CONTEXT))?;
                    return Ok((counts, None));
                }
                RetireDecision::Retire => counts.n_deleted = n_gone,
                RetireDecision::Hold => {
                    tx.rollback().await.map_err(query_error(CONTEXT))?;
                    tx = begin_write(pool, &self.1, "starting a scope transaction").await?;
                    counts.n_held = n_gone;
                    held = Some(retirement.guard.held_message(n_gone, n_live));
                }
            }
            let update = ScopeUpdate {
                scope_row_id,
                status: held.as_ref().map(|_| ScopeStatus::Held),
                error: held.as_deref(),
                ..ScopeUpdate::default()
            };
            Queries::<Db>::record_scope(&mut *tx, &update, &counts, now).await?;
            tx.commit().await.map_err(query_error("committing a scope"))?;
            Ok((counts, held))
        })
    }

    /// Adds tallies to a scope's audit row and sets its status, without touching registries.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails.
    pub async fn record_scope(
        &self,
        update: &ScopeUpdate<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            let mut conn = pool.acquire().await.map_err(query_error("acquiring a connection"))?;
            Queries::<Db>::record_scope(&mut *conn, update, &ScopeCounts::default(), now).await
        })
    }

    /// The newest runs first, at most `limit`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::recent_runs(pool, limit).await)
    }

    /// The scope rows of a run, in the order they were started.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn run_scopes(&self, run_id: i64) -> Result<Vec<ScopeRecord>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::run_scopes(pool, run_id).await)
    }

    /// Every registry row, retired ones included, ordered by id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn all_registries(&self) -> Result<Vec<RegistryRecord>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::all_registries(pool).await)
    }

    /// History rows, of one registry or of one run, in version order.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn history(
        &self,
        filter: HistoryFilter<'_>,
    ) -> Result<Vec<HistoryRecord>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::history(pool, filter).await)
    }

    /// How many history rows each run wrote, by change kind: `(run id, change_kind, count)`,
    /// to check a run's counts against what it wrote.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn history_counts_by_run(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        dispatch!(self, pool => Queries::<Db>::history_counts_by_run(pool).await)
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        dispatch!(self, pool => pool.close().await)
    }
}

/// Opens a sync's writing transaction, in its turn among this process's (see [`WriteTurns`]):
/// SQLite's write lock up front, and, where the backend has one, the write fence held until
/// it ends.
async fn begin_write<'p, DB: Backend>(
    pool: &'p sqlx::Pool<DB>,
    turns: &WriteTurns,
    context: &'static str,
) -> Result<WriteTx<'p, DB>, StoreError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB>,
    i64: sqlx::Type<DB>,
{
    let turn = match &turns.0 {
        Some(turns) => Some(Arc::clone(turns).lock_owned().await),
        None => None,
    };
    let mut tx = pool
        .begin_with(DB::BEGIN_WRITE)
        .await
        .map_err(query_error(context))?;
    if let Some(fence) = DB::WRITE_FENCE {
        sqlx::query::<DB>(fence)
            .bind(lease::WRITE_FENCE_KEY)
            .execute(&mut *tx)
            .await
            .map_err(query_error("taking the write fence"))?;
    }
    Ok(WriteTx { tx, _turn: turn })
}

/// A sync's writing transaction, holding its turn (see [`WriteTurns`]) until it ends. It
/// reads as the connection it runs on.
struct WriteTx<'p, DB: sqlx::Database> {
    tx: sqlx::Transaction<'p, DB>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: sqlx::Database> WriteTx<'_, DB> {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: sqlx::Database> std::ops::Deref for WriteTx<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for WriteTx<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// A run about to start, as [`Store::begin_run`] records it.
#[derive(Debug)]
pub(crate) struct NewRun<'a> {
    pub(crate) trigger: Trigger,
    pub(crate) n_scopes: i64,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) scheduled_at: Option<DateTime<Utc>>,
    pub(crate) hostname: &'a str,
    pub(crate) holder: &'a str,
}

/// What [`Store::acquire_lease`] found.
#[derive(Debug)]
pub enum LeaseOutcome {
    /// This process has the lease, until it releases it.
    Acquired(Lease),
    /// Another process has it.
    Held {
        /// Who: `host:pid:nonce`.
        holder: String,
        /// Until when, unless renewed.
        until: Option<DateTime<Utc>>,
    },
    /// A run was already started for this schedule tick (by another replica).
    TickTaken,
}

/// The current time at the millisecond precision both databases keep, so a time written and
/// read back compares equal.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(3)
}

/// What the lease row said, before it became a [`LeaseOutcome`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RowLease {
    /// This process has the row.
    Acquired,
    /// Another process has it.
    Held {
        /// Who.
        holder: String,
        /// Until when, unless renewed.
        until: Option<DateTime<Utc>>,
    },
    /// The tick was claimed already.
    TickTaken,
}

fn expiry(now: DateTime<Utc>, length: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX)
}

fn hostname_or_unknown() -> String {
    let host = hostname();
    if host.is_empty() {
        "unknown-host".to_owned()
    } else {
        host
    }
}

/// This process's identity in the lease and in `sync_runs.holder`: host, pid and a random
/// nonce, so a restarted process with a reused pid is a different holder.
pub fn holder_id() -> &'static str {
    static HOLDER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOLDER.get_or_init(|| {
        let host = hostname_or_unknown();
        format!(
            "{host}:{}:{:08x}",
            std::process::id(),
            rand::random::<u32>()
        )
    })
}

/// Which history rows [`Store::history`] returns.
#[derive(Clone, Copy, Debug)]
pub enum HistoryFilter<'a> {
    /// Every row.
    All,
    /// The rows of one registry.
    Registry(&'a str),
    /// The rows one run wrote.
    Run(i64),
}

/// Parses a database URL into a driver's options; the error never holds the password.
fn parse_options<O: FromStr<Err = sqlx::Error>>(url: &str) -> Result<O, StoreError> {
    O::from_str(url).map_err(|e| StoreError::InvalidUrl(format!("{}: {e}", redact_url(url))))
}

/// A pool of at most `max_connections` on `options`, after one probe connection.
async fn open_pool<DB: sqlx::Database>(
    options: <DB::Connection as sqlx::Connection>::Options,
    max_connections: u32,
    backend: &'static str,
) -> Result<sqlx::Pool<DB>, StoreError>
where
    DB::Connection: Sized,
{
    probe(&options, backend).await?;
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })
}

/// Opens one connection and closes it, so that a database that refuses, does not exist or
/// rejects the credentials is reported at once with that cause; a pool would retry until its
/// acquire timeout and then report only that it timed out.
async fn probe<C>(options: &C, backend: &'static str) -> Result<(), StoreError>
where
    C: sqlx::ConnectOptions,
    C::Connection: Sized,
{
    use sqlx::Connection;
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| StoreError::Connect {
            backend,
            source: sqlx::Error::PoolTimedOut,
        })?
        .map_err(|source| StoreError::Connect { backend, source })?;
    let _ = connection.close().await;
    Ok(())
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_default()
}

//! What the terminal reports read, and the two maintenance commands: the SQL of `runs`,
//! `runs show`, `history`, `changes` and `status` here; `prune` in [`retention`] and
//! `grant-reader` in [`reader`].
//!
//! Every query reads the base tables (`registries`, `registry_history`, `sync_runs`,
//! `sync_run_scopes`), never the reporting views, so the reports work on a database of any
//! schema version this build migrates. A time bound is bound as a value of the backend's
//! own timestamp form ([`Backend::timestamp`]): on SQLite the same ISO-8601 text with
//! milliseconds that every stored time has, so text comparison is time comparison.

mod reader;
mod retention;

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};

pub use reader::{GrantError, GrantPlan, ReaderRole, READER_FUNCTIONS, READER_VIEWS};
pub use retention::{PruneOutcome, PruneRequest, PrunedRun};

use crate::store::{query_error, Backend, Pools, RunRecord, RunTotals, Store, StoreError};
use crate::sync::plan::ScopeCounts;
use crate::sync::{RunStatus, Scope, ScopeStatus, Trigger};

use super::queries::RUN_COLUMNS;

/// One history row with the raw content of the version before it, when that version is
/// still stored: the shape both `history` and `changes` read.
const SELECT_CHANGES: &str =
    "SELECT h.registry_id, h.version, h.change_kind, h.changed_fields, h.valid_from, h.valid_to, \
     h.sync_run_id, h.project_id, h.enterprise_project_id, h.region, h.registry_name, \
     h.registry_type, h.registry_addr, h.status, h.fail_reason, h.images_num, h.raw, \
     p.raw AS previous_raw, p.project_id AS previous_project_id, \
     p.enterprise_project_id AS previous_enterprise_project_id, p.region AS previous_region \
     FROM registry_history h \
     LEFT JOIN registry_history p ON p.registry_id = h.registry_id AND p.version = h.version - 1";

/// One scope of a run as `runs show` prints it: the whole `sync_run_scopes` row.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeReport {
    /// The scope.
    pub scope: Scope,
    /// How it ended.
    pub status: ScopeStatus,
    /// When its walk started.
    pub started_at: DateTime<Utc>,
    /// When it was applied or given up, if it was.
    pub finished_at: Option<DateTime<Utc>>,
    /// Pages read.
    pub n_pages: i64,
    /// Requests sent.
    pub n_requests: i64,
    /// Requests refused for throttling.
    pub n_throttled: i64,
    /// Retries made.
    pub n_retries: i64,
    /// `total_num` as the API last reported it.
    pub api_total: Option<i64>,
    /// Row counts.
    pub counts: ScopeCounts,
    /// Why it failed, or why its deletions were held.
    pub error: Option<String>,
    /// Huawei's `error_code` of the failure, when the API gave one.
    pub error_code: Option<String>,
    /// The HTTP status of the failure, when there was an answer.
    pub http_status: Option<i64>,
    /// Huawei's `request_id` of the failure.
    pub request_id: Option<String>,
}

/// One version of a registry, as `history` and `changes` print it.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionRecord {
    /// The registry.
    pub registry_id: String,
    /// The version this row describes.
    pub version: i64,
    /// `created`, `updated`, `deleted` or `restored`.
    pub change_kind: String,
    /// The fields that changed from the previous version.
    pub changed_fields: Vec<String>,
    /// When this version was first seen: the time of the change.
    pub valid_from: DateTime<Utc>,
    /// When the next version replaced it; `None` for the current one.
    pub valid_to: Option<DateTime<Utc>>,
    /// The run that wrote it.
    pub sync_run_id: i64,
    /// The project at this version.
    pub project_id: String,
    /// The enterprise project at this version, when the scope named one.
    pub enterprise_project_id: Option<String>,
    /// The region.
    pub region: String,
    /// `registry_name` at this version.
    pub registry_name: Option<String>,
    /// `registry_type` at this version.
    pub registry_type: Option<String>,
    /// `registry_addr` at this version.
    pub registry_addr: Option<String>,
    /// `status` at this version (`success`, `fail`, `accessing`).
    pub status: Option<String>,
    /// `fail_reason` at this version.
    pub fail_reason: Option<String>,
    /// `images_num` at this version.
    pub images_num: Option<i64>,
    /// The registry's raw JSON at this version.
    pub raw: Map<String, Value>,
    /// The version before this one, when it is still stored (`prune` may have removed it).
    pub previous: Option<PreviousVersion>,
}

/// What a version replaced: enough of the previous version to say what each changed field
/// was before.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviousVersion {
    /// Its raw JSON.
    pub raw: Map<String, Value>,
    /// Its project.
    pub project_id: String,
    /// Its enterprise project.
    pub enterprise_project_id: Option<String>,
    /// Its region.
    pub region: String,
}

/// One changed field of a version: its value before and after (`null` where absent).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// The field: a key of the registry's JSON, or `project_id`, `enterprise_project_id`,
    /// `region` for a move.
    pub field: String,
    /// The value before; `None` when the previous version is no longer stored.
    pub old: Option<Value>,
    /// The value after.
    pub new: Value,
}

impl VersionRecord {
    /// Each field of [`VersionRecord::changed_fields`] with its value before and after.
    pub fn changes(&self) -> Vec<FieldChange> {
        self.changed_fields
            .iter()
            .map(|field| FieldChange {
                field: field.clone(),
                old: self.previous.as_ref().map(|previous| {
                    field_value(
                        &previous.raw,
                        &previous.project_id,
                        previous.enterprise_project_id.as_deref(),
                        &previous.region,
                        field,
                    )
                }),
                new: field_value(
                    &self.raw,
                    &self.project_id,
                    self.enterprise_project_id.as_deref(),
                    &self.region,
                    field,
                ),
            })
            .collect()
    }
}

/// A field's value in a version: a location column for a move, else the JSON key.
fn field_value(
    raw: &Map<String, Value>,
    project_id: &str,
    enterprise_project_id: Option<&str>,
    region: &str,
    field: &str,
) -> Value {
    match field {
        "project_id" if !raw.contains_key(field) => Value::from(project_id),
        "enterprise_project_id" if !raw.contains_key(field) => {
            enterprise_project_id.map_or(Value::Null, Value::from)
        }
        "region" if !raw.contains_key(field) => Value::from(region),
        _ => raw.get(field).cloned().unwrap_or(Value::Null),
    }
}

/// Which registries a `history` argument names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryMatch {
    /// Exactly one: its id.
    One(String),
    /// Several registries bear that name: their ids.
    Ambiguous(Vec<String>),
    /// No registry has that id or name.
    None,
}

/// What the store holds, counted: the inventory part of `status`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Registries present (not retired).
    pub n_live: i64,
    /// Registries retired.
    pub n_retired: i64,
    /// `images_num` summed over the present registries.
    pub n_images: i64,
    /// Present registries by `status` (`""` where missing), most first.
    pub by_status: Vec<(String, i64)>,
    /// Present registries by `registry_type` (`""` where missing), most first.
    pub by_type: Vec<(String, i64)>,
}

/// A present registry whose connection fails (`status` is `fail`).
#[derive(Clone, Debug, PartialEq)]
pub struct FailingRegistry {
    /// Its id.
    pub id: String,
    /// Its name.
    pub registry_name: Option<String>,
    /// Its type.
    pub registry_type: Option<String>,
    /// Its address.
    pub registry_addr: Option<String>,
    /// Its project.
    pub project_id: String,
    /// Its enterprise project, when known.
    pub enterprise_project_id: Option<String>,
    /// Its region.
    pub region: String,
    /// Why HSS says it fails.
    pub fail_reason: Option<String>,
    /// Since when it has failed without interruption: the first of the unbroken run of
    /// stored versions with status `fail` that ends at the current one (a deletion breaks
    /// the run). `prune` can make
    /// this later than the truth (the older versions are gone).
    pub failing_since: Option<DateTime<Utc>>,
}

impl Store {
    /// One run, or `None` when no run has that id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn run(&self, run_id: i64) -> Result<Option<RunRecord>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::run(pool, Some(run_id)).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::run(pool, Some(run_id)).await,
        }
    }

    /// The newest run that has finished (whatever its status), or `None` before any.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn latest_finished_run(&self) -> Result<Option<RunRecord>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::run(pool, None).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::run(pool, None).await,
        }
    }

    /// Every scope row of a run, whole, in the order they were started.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn scope_reports(&self, run_id: i64) -> Result<Vec<ScopeReport>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::scope_reports(pool, run_id).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::scope_reports(pool, run_id).await,
        }
    }

    /// The registry that `key` names: an id (of a present, retired or only historical
    /// registry), else an exact `registry_name` of a stored registry, else an exact name some
    /// stored version had.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn find_registry(&self, key: &str) -> Result<RegistryMatch, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::find_registry(pool, key).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::find_registry(pool, key).await,
        }
    }

    /// Every stored version of one registry, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn registry_versions(
        &self,
        registry_id: &str,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => {
                Reports::<sqlx::Sqlite>::versions(pool, Filter::Registry(registry_id)).await
            }
            Pools::Postgres(pool) => {
                Reports::<sqlx::Postgres>::versions(pool, Filter::Registry(registry_id)).await
            }
        }
    }

    /// Every change (history row) from `since` on, in the order they were made.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn changes_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => {
                Reports::<sqlx::Sqlite>::versions(pool, Filter::Since(since)).await
            }
            Pools::Postgres(pool) => {
                Reports::<sqlx::Postgres>::versions(pool, Filter::Since(since)).await
            }
        }
    }

    /// The inventory counted: present and retired registries, images, by status and type.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn inventory(&self) -> Result<Inventory, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::inventory(pool).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::inventory(pool).await,
        }
    }

    /// The present registries whose connection fails, with since when, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the database fails.
    pub async fn failing_registries(&self) -> Result<Vec<FailingRegistry>, StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => Reports::<sqlx::Sqlite>::failing(pool).await,
            Pools::Postgres(pool) => Reports::<sqlx::Postgres>::failing(pool).await,
        }
    }
}

/// Which versions [`Reports::versions`] reads.
#[derive(Clone, Copy, Debug)]
enum Filter<'a> {
    /// One registry's, by version.
    Registry(&'a str),
    /// Every version first seen at or after the time, by time.
    Since(DateTime<Utc>),
}

/// The report queries for one backend; associated functions, so the trait bounds are
/// written once.
pub(crate) struct Reports<DB>(PhantomData<DB>);

impl<DB> Reports<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'q> i64: Encode<'q, DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'r> Json<Value>: Decode<'r, DB>,
    Json<Value>: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// The run `run_id`, or with `None` the newest finished run.
    async fn run(pool: &Pool<DB>, run_id: Option<i64>) -> Result<Option<RunRecord>, StoreError> {
        const CONTEXT: &str = "reading a run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let row = match run_id {
            Some(id) => {
                sqlx::query::<DB>(&format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
            }
            None => {
                sqlx::query::<DB>(&format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs WHERE finished_at IS NOT NULL \
                     ORDER BY id DESC LIMIT 1"
                ))
                .fetch_optional(&mut *conn)
                .await
            }
        }
        .map_err(query_error(CONTEXT))?;
        row.as_ref().map(read_run::<DB>).transpose()
    }

    async fn scope_reports(pool: &Pool<DB>, run_id: i64) -> Result<Vec<ScopeReport>, StoreError> {
        const CONTEXT: &str = "reading the scopes of a run";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = sqlx::query::<DB>(
            "SELECT region, project_id, enterprise_project_id, status, started_at, finished_at, \
             n_pages, n_requests, n_throttled, n_retries, api_total, n_fetched, n_inserted, \
             n_updated, n_unchanged, n_deleted, n_restored, n_held, error, error_code, \
             CAST(http_status AS BIGINT) AS http_status, request_id \
             FROM sync_run_scopes WHERE sync_run_id = $1 ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let number = |column| row.try_get::<i64, _>(column).map_err(query_error(CONTEXT));
                let text = |column| {
                    row.try_get::<String, _>(column)
                        .map_err(query_error(CONTEXT))
                };
                let status = text("status")?;
                let started_at: DB::Timestamp =
                    row.try_get("started_at").map_err(query_error(CONTEXT))?;
                let finished_at: Option<DB::Timestamp> =
                    row.try_get("finished_at").map_err(query_error(CONTEXT))?;
                Ok(ScopeReport {
                    scope: Scope {
                        region: text("region")?,
                        project_id: text("project_id")?,
                        enterprise_project_id: text("enterprise_project_id")?,
                    },
                    status: ScopeStatus::from_sql(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("sync_run_scopes.status {status:?}"))
                    })?,
                    started_at: DB::read_timestamp(started_at)?,
                    finished_at: finished_at.map(DB::read_timestamp).transpose()?,
                    n_pages: number("n_pages")?,
                    n_requests: number("n_requests")?,
                    n_throttled: number("n_throttled")?,
                    n_retries: number("n_retries")?,
                    api_total: row.try_get("api_total").map_err(query_error(CONTEXT))?,
                    counts: read_counts::<DB>(row, CONTEXT)?,
                    error: row.try_get("error").map_err(query_error(CONTEXT))?,
                    error_code: row.try_get("error_code").map_err(query_error(CONTEXT))?,
                    http_status: row.try_get("http_status").map_err(query_error(CONTEXT))?,
                    request_id: row.try_get("request_id").map_err(query_error(CONTEXT))?,
                })
            })
            .collect()
    }

    async fn find_registry(pool: &Pool<DB>, key: &str) -> Result<RegistryMatch, StoreError> {
        const CONTEXT: &str = "looking a registry up";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        // An id first, then a stored registry's current name, then any name it had.
        for sql in [
            "SELECT id FROM registries WHERE id = $1 \
             UNION SELECT registry_id FROM registry_history WHERE registry_id = $1",
            "SELECT id FROM registries WHERE registry_name = $1 ORDER BY id",
            "SELECT DISTINCT registry_id FROM registry_history WHERE registry_name = $1 \
             ORDER BY registry_id",
        ] {
            let ids: Vec<String> = sqlx::query_scalar::<DB, String>(sql)
                .bind(key.to_owned())
                .fetch_all(&mut *conn)
                .await
                .map_err(query_error(CONTEXT))?;
            match ids.len() {
                0 => continue,
                1 => {
                    return Ok(RegistryMatch::One(
                        ids.into_iter().next().unwrap_or_default(),
                    ))
                }
                _ => return Ok(RegistryMatch::Ambiguous(ids)),
            }
        }
        Ok(RegistryMatch::None)
    }

    async fn versions(
        pool: &Pool<DB>,
        filter: Filter<'_>,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        const CONTEXT: &str = "reading registry history";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let rows = match filter {
            Filter::Registry(id) => {
                sqlx::query::<DB>(&format!(
                    "{SELECT_CHANGES} WHERE h.registry_id = $1 ORDER BY h.version"
                ))
                .bind(id.to_owned())
                .fetch_all(&mut *conn)
                .await
            }
            Filter::Since(since) => {
                sqlx::query::<DB>(&format!(
                    "{SELECT_CHANGES} WHERE h.valid_from >= $1 \
                     ORDER BY h.valid_from, h.sync_run_id, h.registry_id, h.version"
                ))
                .bind(DB::timestamp(ceil_to_millis(since)))
                .fetch_all(&mut *conn)
                .await
            }
        }
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let get_text = |column| {
                    row.try_get::<Option<String>, _>(column)
                        .map_err(query_error(CONTEXT))
                };
                let changed: Json<Value> = row
                    .try_get("changed_fields")
                    .map_err(query_error(CONTEXT))?;
                let valid_from: DB::Timestamp =
                    row.try_get("valid_from").map_err(query_error(CONTEXT))?;
                let valid_to: Option<DB::Timestamp> =
                    row.try_get("valid_to").map_err(query_error(CONTEXT))?;
                let raw: Json<Value> = row.try_get("raw").map_err(query_error(CONTEXT))?;
                let previous_raw: Option<Json<Value>> =
                    row.try_get("previous_raw").map_err(query_error(CONTEXT))?;
                let previous = match previous_raw {
                    Some(raw) => Some(PreviousVersion {
                        raw: json_object(raw.0, "registry_history.raw")?,
                        project_id: row
                            .try_get("previous_project_id")
                            .map_err(query_error(CONTEXT))?,
                        enterprise_project_id: get_text("previous_enterprise_project_id")?,
                        region: row
                            .try_get("previous_region")
                            .map_err(query_error(CONTEXT))?,
                    }),
                    None => None,
                };
                Ok(VersionRecord {
                    registry_id: row.try_get("registry_id").map_err(query_error(CONTEXT))?,
                    version: row.try_get("version").map_err(query_error(CONTEXT))?,
                    change_kind: row.try_get("change_kind").map_err(query_error(CONTEXT))?,
                    changed_fields: serde_json::from_value(changed.0)
                        .map_err(|e| StoreError::Corrupt(format!("changed_fields: {e}")))?,
                    valid_from: DB::read_timestamp(valid_from)?,
                    valid_to: valid_to.map(DB::read_timestamp).transpose()?,
                    sync_run_id: row.try_get("sync_run_id").map_err(query_error(CONTEXT))?,
                    project_id: row.try_get("project_id").map_err(query_error(CONTEXT))?,
                    enterprise_project_id: get_text("enterprise_project_id")?,
                    region: row.try_get("region").map_err(query_error(CONTEXT))?,
                    registry_name: get_text("registry_name")?,
                    registry_type: get_text("registry_type")?,
                    registry_addr: get_text("registry_addr")?,
                    status: get_text("status")?,
                    fail_reason: get_text("fail_reason")?,
                    images_num: row.try_get("images_num").map_err(query_error(CONTEXT))?,
                    raw: json_object(raw.0, "registry_history.raw")?,
                    previous,
                })
            })
            .collect()
    }

    async fn inventory(pool: &Pool<DB>) -> Result<Inventory, StoreError> {
        const CONTEXT: &str = "counting the inventory";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        let totals = sqlx::query::<DB>(
            "SELECT \
               COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END), 0) AS n_live, \
               COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END), 0) AS n_retired, \
               CAST(COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN images_num ELSE 0 END), 0) AS BIGINT) AS n_images \
             FROM registries",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        let number = |column| {
            totals
                .try_get::<i64, _>(column)
                .map_err(query_error(CONTEXT))
        };
        let mut inventory = Inventory {
            n_live: number("n_live")?,
            n_retired: number("n_retired")?,
            n_images: number("n_images")?,
            ..Inventory::default()
        };
        for column in ["status", "registry_type"] {
            let rows = sqlx::query::<DB>(&format!(
                "SELECT COALESCE({column}, '') AS value, COUNT(*) AS n FROM registries \
                 WHERE deleted_at IS NULL GROUP BY 1 ORDER BY 2 DESC, 1"
            ))
            .fetch_all(&mut *conn)
            .await
            .map_err(query_error(CONTEXT))?;
            let counts = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get("value").map_err(query_error(CONTEXT))?,
                        row.try_get("n").map_err(query_error(CONTEXT))?,
                    ))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if column == "status" {
                inventory.by_status = counts;
            } else {
                inventory.by_type = counts;
            }
        }
        Ok(inventory)
    }

    async fn failing(pool: &Pool<DB>) -> Result<Vec<FailingRegistry>, StoreError> {
        const CONTEXT: &str = "reading failing registries";
        let mut conn = pool.acquire().await.map_err(query_error(CONTEXT))?;
        // The unbroken run of failing versions ends at the current one and starts after the
        // newest version that did not fail or was a deletion (as `registries_current` says).
        let rows = sqlx::query::<DB>(
            "SELECT r.id, r.registry_name, r.registry_type, r.registry_addr, r.project_id, \
               r.enterprise_project_id, r.region, r.fail_reason, \
               (SELECT MIN(h.valid_from) FROM registry_history h \
                 WHERE h.registry_id = r.id AND h.status = 'fail' \
                   AND h.version > COALESCE((SELECT MAX(x.version) FROM registry_history x \
                     WHERE x.registry_id = r.id \
                       AND (x.status IS NULL OR x.status <> 'fail' OR x.change_kind = 'deleted')), 0) \
               ) AS failing_since \
             FROM registries r WHERE r.deleted_at IS NULL AND r.status = 'fail' \
             ORDER BY r.registry_name, r.id",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(query_error(CONTEXT))?;
        rows.iter()
            .map(|row| {
                let text = |column| {
                    row.try_get::<Option<String>, _>(column)
                        .map_err(query_error(CONTEXT))
                };
                let since: Option<DB::Timestamp> =
                    row.try_get("failing_since").map_err(query_error(CONTEXT))?;
                Ok(FailingRegistry {
                    id: row.try_get("id").map_err(query_error(CONTEXT))?,
                    registry_name: text("registry_name")?,
                    registry_type: text("registry_type")?,
                    registry_addr: text("registry_addr")?,
                    project_id: row.try_get("project_id").map_err(query_error(CONTEXT))?,
                    enterprise_project_id: text("enterprise_project_id")?,
                    region: row.try_get("region").map_err(query_error(CONTEXT))?,
                    fail_reason: text("fail_reason")?,
                    failing_since: since.map(DB::read_timestamp).transpose()?,
                })
            })
            .collect()
    }
}

/// Reads a row of [`RUN_COLUMNS`].
pub(crate) fn read_run<DB>(row: &DB::Row) -> Result<RunRecord, StoreError>
where
    DB: Backend,
    for<'r> String: Decode<'r, DB>,
    String: Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    i64: Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    const CONTEXT: &str = "reading a run";
    let number = |column| row.try_get::<i64, _>(column).map_err(query_error(CONTEXT));
    let status: String = row.try_get("status").map_err(query_error(CONTEXT))?;
    let status = RunStatus::from_sql(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("sync_runs.status {status:?}")))?;
    let trigger: String = row.try_get("trigger").map_err(query_error(CONTEXT))?;
    let trigger = Trigger::from_sql(&trigger)
        .ok_or_else(|| StoreError::Corrupt(format!("sync_runs.trigger {trigger:?}")))?;
    let started_at: DB::Timestamp = row.try_get("started_at").map_err(query_error(CONTEXT))?;
    let finished_at: Option<DB::Timestamp> =
        row.try_get("finished_at").map_err(query_error(CONTEXT))?;
    let scheduled_at: Option<DB::Timestamp> =
        row.try_get("scheduled_at").map_err(query_error(CONTEXT))?;
    Ok(RunRecord {
        id: number("id")?,
        started_at: DB::read_timestamp(started_at)?,
        finished_at: finished_at.map(DB::read_timestamp).transpose()?,
        status,
        trigger,
        scheduled_at: scheduled_at.map(DB::read_timestamp).transpose()?,
        totals: RunTotals {
            status,
            n_scopes: number("n_scopes")?,
            n_scopes_failed: number("n_scopes_failed")?,
            n_pages: number("n_pages")?,
            n_requests: number("n_requests")?,
            n_throttled: number("n_throttled")?,
            n_retries: number("n_retries")?,
            counts: read_counts::<DB>(row, CONTEXT)?,
            error: row.try_get("error").map_err(query_error(CONTEXT))?,
        },
    })
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
        n_fetched: get("n_fetched")?,
        n_inserted: get("n_inserted")?,
        n_updated: get("n_updated")?,
        n_unchanged: get("n_unchanged")?,
        n_deleted: get("n_deleted")?,
        n_restored: get("n_restored")?,
        n_held: get("n_held")?,
    })
}

fn json_object(value: Value, column: &str) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(StoreError::Corrupt(format!(
            "{column} is not a JSON object"
        ))),
    }
}

/// `time` rounded up to the millisecond the stored times keep, so that `>=` against it keeps
/// exactly the times at or after `time`.
fn ceil_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::{DurationRound, TimeDelta};
    let millisecond = TimeDelta::milliseconds(1);
    match time.duration_trunc(millisecond) {
        Ok(truncated) if truncated == time => time,
        Ok(truncated) => truncated + millisecond,
        Err(_) => time,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_bound_is_rounded_up_to_the_millisecond_and_an_exact_one_is_kept() {
        let exact = Utc.with_ymd_and_hms(2026, 11, 28, 5, 3, 2).unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(ceil_to_millis(exact), exact);
        assert_eq!(
            ceil_to_millis(exact + chrono::Duration::microseconds(1)),
            exact + chrono::Duration::milliseconds(1)
        );
    }
}

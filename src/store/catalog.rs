//! The `projects` and `enterprise_projects` tables: the names of what a run covers, so the
//! reporting views (`migrations/*/0006_reporting.sql`) show "prod-east / finance" rather
//! than two ids. Refreshed at the start of every run from what discovery listed.

use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, IntoArguments, Pool, Type};

use crate::store::{query_error, Backend, Pools, Store, StoreError};
use crate::sync::scopes::Catalog;

/// Inserts a project, or refreshes it: a name, parent or status learnt earlier is kept when
/// this run did not list the project (an explicit `--project-id` without discovery).
const UPSERT_PROJECT: &str =
    "INSERT INTO projects (id, name, region, parent_id, status, first_seen_at, last_seen_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (id) DO UPDATE SET name = coalesce(excluded.name, projects.name), \
     region = excluded.region, parent_id = coalesce(excluded.parent_id, projects.parent_id), \
     status = coalesce(excluded.status, projects.status), last_seen_at = excluded.last_seen_at";

/// Inserts an enterprise project, or refreshes it, keeping a name learnt earlier as above.
const UPSERT_ENTERPRISE_PROJECT: &str =
    "INSERT INTO enterprise_projects (id, name, status, first_seen_at, last_seen_at) \
     VALUES ($1, $2, $3, $4, $4) \
     ON CONFLICT (id) DO UPDATE SET name = coalesce(excluded.name, enterprise_projects.name), \
     status = coalesce(excluded.status, enterprise_projects.status), \
     last_seen_at = excluded.last_seen_at";

impl Store {
    /// Records the projects and enterprise projects a run knows of, with their names, in one
    /// transaction; rows of earlier runs stay (history refers to them), with their
    /// `last_seen_at`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails; then nothing is written.
    pub async fn record_catalog(
        &self,
        catalog: &Catalog,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Pools::Sqlite(pool) => record_catalog_on(pool, catalog, now).await,
            Pools::Postgres(pool) => record_catalog_on(pool, catalog, now).await,
        }
    }
}

/// The `status` column's text for IAM's `enabled` and EPS's status.
fn status_text(enabled: Option<bool>) -> Option<String> {
    enabled.map(|enabled| if enabled { "enabled" } else { "disabled" }.to_owned())
}

async fn record_catalog_on<DB>(
    pool: &Pool<DB>,
    catalog: &Catalog,
    now: DateTime<Utc>,
) -> Result<(), StoreError>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> String: Encode<'q, DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    String: Type<DB>,
{
    const CONTEXT: &str = "recording projects and enterprise projects";
    let mut tx = pool
        .begin_with(DB::BEGIN_WRITE)
        .await
        .map_err(query_error(CONTEXT))?;
    for project in &catalog.projects {
        sqlx::query::<DB>(UPSERT_PROJECT)
            .bind(project.id.clone())
            .bind(project.name.clone())
            .bind(project.region.clone())
            .bind(project.parent_id.clone())
            .bind(status_text(project.enabled))
            .bind(DB::timestamp(now))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
    }
    for enterprise_project in &catalog.enterprise_projects {
        sqlx::query::<DB>(UPSERT_ENTERPRISE_PROJECT)
            .bind(enterprise_project.id.clone())
            .bind(enterprise_project.name.clone())
            .bind(status_text(enterprise_project.enabled))
            .bind(DB::timestamp(now))
            .execute(&mut *tx)
            .await
            .map_err(query_error(CONTEXT))?;
    }
    tx.commit().await.map_err(query_error(CONTEXT))?;
    Ok(())
}

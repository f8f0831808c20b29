//! The floor under a SQLite sync's CPU: what SQLite alone spends writing the rows a sync
//! keeps, with no HTTP, no parsing, no hashing and no diff.
//!
//! It copies the live registries of a database that a sync wrote (`--from`) into a fresh
//! database with hss-sync's schema (its own migrations), the way a first sync writes them: a
//! transaction every `--scopes-per-transaction` scopes (eight, as the engine groups the scopes
//! whose walks end together), each scope's rows in id order, and each row's first version read
//! back from the rows just written; with `--staged`, each scope's rows go through the staging
//! table first, 200 to a transaction, as walks stage their pages. Then it writes a 10 % change
//! the way a sync writes one, in transactions of as many scopes: of every 50 rows three get a
//! new version, one is retired and one gets a new neighbour (a new registry with its first
//! version), 6 %, 2 % and 2 % of the estate as the benchmark's mutation. It prints the CPU
//! seconds (user + system, this process, which is where SQLite runs) of each part, so that a
//! sync's own figure can be set against it on the same machine (docs/benchmarks.md).
//!
//! ```sh
//! # /tmp/issue9.db: a sync of the benchmark's estate (50,000 registries in 20 scopes); see
//! # docs/benchmarks.md, "The floor under SQLite's CPU, and a machine's speed"
//! cargo run --release --example sqlite_floor -- --from /tmp/issue9.db
//! ```
//!
//! Its source's scopes are grouped as a first sync would group them, so a database of another
//! shape (the demo's 50,000 fall in 3 scopes, one transaction) gives another floor.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

#[derive(Parser, Debug)]
struct Args {
    /// A SQLite database a sync wrote: its live registries are the rows copied.
    #[arg(long)]
    from: PathBuf,
    /// Where the copy goes (replaced); default a file in a new temporary directory.
    #[arg(long)]
    to: Option<PathBuf>,
    /// Scopes written in one transaction (the engine groups up to 8 whose walks end together).
    #[arg(long, default_value_t = 8)]
    scopes_per_transaction: usize,
    /// Stage each scope's rows first, 200 to a transaction as a walk stages its pages, and
    /// write the registries from the staging table, as the engine does.
    #[arg(long)]
    staged: bool,
    /// Times to run both parts, each into a fresh database.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU and wall time of one part.
struct Spent {
    cpu: f64,
    wall: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.from.is_file() {
        bail!("no database at {}", args.from.display());
    }
    let dir = tempfile::tempdir()?;
    let to = args
        .to
        .clone()
        .unwrap_or_else(|| dir.path().join("floor.db"));
    println!("| run | registries | scopes | first sync's writes: CPU s (wall s) | 10% change's writes: CPU s (wall s) | versions the change wrote |");
    println!("|--:|--:|--:|--:|--:|--:|");
    for run in 1..=args.runs {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", to.display()));
        }
        // The schema exactly as hss-sync makes it.
        let store = hss_sync::store::Store::connect(&format!("sqlite://{}", to.display())).await?;
        store.migrate().await?;
        store.close().await;
        let mut conn = SqliteConnectOptions::new()
            .filename(&to)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .connect()
            .await?;
        sqlx::query("ATTACH DATABASE ? AS src")
            .bind(args.from.display().to_string())
            .execute(&mut conn)
            .await?;
        sqlx::query(
            "INSERT INTO sync_runs (id, started_at, status, trigger) VALUES \
             (1, '2026-11-30T00:00:00Z', 'succeeded', 'cli'), \
             (2, '2026-11-30T01:00:00Z', 'succeeded', 'cli')",
        )
        .execute(&mut conn)
        .await?;
        let columns = Columns::read(&mut conn).await?;
        let scopes = scopes(&mut conn).await?;
        let groups: Vec<&[(String, String, String)]> =
            scopes.chunks(args.scopes_per_transaction.max(1)).collect();
        let (first, n) = first_sync(&mut conn, &columns, &groups, args.staged).await?;
        let (change, n_changed) = ten_percent(&mut conn, &columns, &groups).await?;
        conn.close().await?;
        println!(
            "| {run} | {n} | {} | {:.2} ({:.2}) | {:.2} ({:.2}) | {n_changed} |",
            scopes.len(),
            first.cpu,
            first.wall.as_secs_f64(),
            change.cpu,
            change.wall.as_secs_f64()
        );
    }
    Ok(())
}

/// The column lists the copies name.
struct Columns {
    /// Every column of `registries` but the ones a copy sets itself.
    registries: Vec<String>,
    /// The content columns `registry_history` shares with `registries`.
    content: Vec<String>,
    /// The columns of `sync_staging` that `registries` has too.
    staged: Vec<String>,
}

impl Columns {
    async fn read(conn: &mut SqliteConnection) -> anyhow::Result<Columns> {
        let registries = column_names(conn, "registries").await?;
        let history = column_names(conn, "registry_history").await?;
        let staging = column_names(conn, "sync_staging").await?;
        let staged = staging
            .iter()
            .filter(|c| registries.contains(c))
            .cloned()
            .collect();
        let content = history
            .iter()
            .filter(|c| registries.contains(c) && c.as_str() != "version")
            .cloned()
            .collect();
        let registries = registries
            .into_iter()
            .filter(|c| !matches!(c.as_str(), "version" | "last_sync_run_id" | "deleted_at"))
            .collect();
        Ok(Columns {
            registries,
            content,
            staged,
        })
    }
}

/// The columns of `table`, in order.
async fn column_names(conn: &mut SqliteConnection, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|row| row.try_get::<String, _>("name"))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Each (project, enterprise project, region) of the source's live registries.
async fn scopes(conn: &mut SqliteConnection) -> anyhow::Result<Vec<(String, String, String)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT project_id, COALESCE(enterprise_project_id, '') AS ep, region \
         FROM src.registries WHERE deleted_at IS NULL ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// The first versions, by run `run_id` and valid from `valid_from`, of the registries past a
/// rowid (bound): the rows just inserted, in the order they went in.
fn first_versions(columns: &Columns, run_id: i64, valid_from: &str) -> String {
    let content = columns.content.join(", ");
    format!(
        "INSERT INTO registry_history (registry_id, version, change_kind, changed_fields, \
         valid_from, sync_run_id, {content}) SELECT id, 1, 'created', '[]', {valid_from}, \
         {run_id}, {content} FROM registries WHERE rowid > ? ORDER BY rowid"
    )
}

/// The largest rowid of `registries`: the rows inserted after it are the new ones.
async fn largest_rowid(conn: &mut SqliteConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(rowid), 0) FROM registries")
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
    )
}

const IN_SCOPE: &str = "project_id = ? AND COALESCE(enterprise_project_id, '') = ? AND region = ?";

/// Writes every scope's live registries and their first versions, a transaction a group of
/// scopes; with `staged`, through the staging table.
async fn first_sync(
    conn: &mut SqliteConnection,
    columns: &Columns,
    groups: &[&[(String, String, String)]],
    staged: bool,
) -> anyhow::Result<(Spent, i64)> {
    let cols = columns.registries.join(", ");
    let rows = if staged {
        let from_staging: Vec<String> = columns
            .registries
            .iter()
            .map(|c| {
                if columns.staged.contains(c) {
                    format!("s.{c}")
                } else {
                    "'2026-11-30T00:00:00Z'".to_owned()
                }
            })
            .collect();
        format!(
            "INSERT INTO registries ({cols}, version, last_sync_run_id) SELECT {}, 1, 1 \
             FROM sync_staging s WHERE s.run_id = 1 AND s.scope_ix = ? ORDER BY s.id",
            from_staging.join(", ")
        )
    } else {
        format!(
            "INSERT INTO registries ({cols}, version, last_sync_run_id) SELECT {cols}, 1, 1 \
             FROM src.registries WHERE deleted_at IS NULL AND {IN_SCOPE} ORDER BY id"
        )
    };
    let staging_cols = columns.staged.join(", ");
    let stage = format!(
        "INSERT INTO sync_staging (run_id, scope_ix, {staging_cols}) SELECT 1, ?, \
         {staging_cols} FROM src.registries WHERE deleted_at IS NULL AND {IN_SCOPE} \
         AND rowid BETWEEN ? AND ? ORDER BY rowid"
    );
    // Each scope's rows of the source, by rowid, 200 at a time (read before the clock starts).
    let mut chunks = Vec::new();
    let scopes = groups.iter().flat_map(|g| g.iter()).enumerate();
    for (ix, (project, ep, region)) in scopes.filter(|_| staged) {
        let rowids: Vec<i64> = sqlx::query(&format!(
            "SELECT rowid FROM src.registries WHERE deleted_at IS NULL AND {IN_SCOPE} \
             ORDER BY rowid"
        ))
        .bind(project)
        .bind(ep)
        .bind(region)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
        for chunk in rowids.chunks(200) {
            chunks.push((
                ix as i64,
                project,
                ep,
                region,
                chunk[0],
                chunk[chunk.len() - 1],
            ));
        }
    }
    let versions = first_versions(columns, 1, "first_seen_at");
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for (ix, project, ep, region, first, last) in chunks {
        sqlx::query(&stage)
            .bind(ix)
            .bind(project)
            .bind(ep)
            .bind(region)
            .bind(first)
            .bind(last)
            .execute(&mut *conn)
            .await?;
    }
    let mut n = 0;
    let mut ix = 0_i64;
    for group in groups {
        let mut tx = conn.begin().await?;
        for (project, ep, region) in group.iter() {
            let rows = if staged {
                sqlx::query(&rows).bind(ix)
            } else {
                sqlx::query(&rows).bind(project).bind(ep).bind(region)
            };
            ix += 1;
            let before = largest_rowid(&mut tx).await?;
            n += rows.execute(&mut *tx).await?.rows_affected() as i64;
            sqlx::query(&versions)
                .bind(before)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    if staged {
        sqlx::query("DELETE FROM sync_staging")
            .execute(&mut *conn)
            .await?;
    }
    let spent = Spent {
        cpu: cpu_seconds() - cpu,
        wall: wall.elapsed(),
    };
    Ok((spent, n))
}

/// Writes a 10 % change, a transaction a group of scopes: of every 50 rows (by rowid) three get
/// a new version, one is retired and one gets a new registry beside it, as a sync writes them.
async fn ten_percent(
    conn: &mut SqliteConnection,
    columns: &Columns,
    groups: &[&[(String, String, String)]],
) -> anyhow::Result<(Spent, i64)> {
    let content = columns.content.join(", ");
    let cols = columns.registries.join(", ");
    let now = "'2026-11-30T01:00:00Z'";
    let picked = |residues: &str| {
        format!("SELECT id FROM registries WHERE {IN_SCOPE} AND rowid % 50 IN ({residues})")
    };
    let statements = [
        // The versions that end: the changed and the retired.
        format!(
            "UPDATE registry_history SET valid_to = {now} WHERE valid_to IS NULL AND \
             registry_id IN ({})",
            picked("0, 1, 2, 3")
        ),
        format!(
            "UPDATE registries SET status = 'changed', raw = raw || ' ', content_hash = \
             lower(hex(randomblob(32))), version = version + 1, last_changed_at = {now}, \
             last_sync_run_id = 2 WHERE id IN ({})",
            picked("0, 1, 2")
        ),
        format!(
            "UPDATE registries SET deleted_at = {now}, version = version + 1, \
             last_changed_at = {now}, last_sync_run_id = 2 WHERE id IN ({})",
            picked("3")
        ),
        format!(
            "INSERT INTO registry_history (registry_id, version, change_kind, changed_fields, \
             valid_from, sync_run_id, {content}) SELECT id, version, CASE WHEN deleted_at IS \
             NULL THEN 'updated' ELSE 'deleted' END, '[]', {now}, 2, {content} FROM registries \
             WHERE id IN ({}) ORDER BY id",
            picked("0, 1, 2, 3")
        ),
    ];
    let new_rows = format!(
        "INSERT INTO registries ({cols}, version, last_sync_run_id) SELECT {}, 1, 2 FROM \
         registries WHERE id IN ({}) ORDER BY id",
        columns
            .registries
            .iter()
            .map(|c| if c == "id" {
                "id || '-new'"
            } else {
                c.as_str()
            })
            .collect::<Vec<_>>()
            .join(", "),
        picked("4")
    );
    let new_versions = first_versions(columns, 2, now);
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    for group in groups {
        let mut tx = conn.begin().await?;
        for (project, ep, region) in group.iter() {
            for sql in &statements {
                sqlx::query(sql)
                    .bind(project)
                    .bind(ep)
                    .bind(region)
                    .execute(&mut *tx)
                    .await
                    .with_context(|| sql.clone())?;
            }
            let before = largest_rowid(&mut tx).await?;
            sqlx::query(&new_rows)
                .bind(project)
                .bind(ep)
                .bind(region)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&new_versions)
                .bind(before)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    let spent = Spent {
        cpu: cpu_seconds() - cpu,
        wall: wall.elapsed(),
    };
    // Every version the change wrote: updated, deleted and created.
    let changed: i64 = sqlx::query("SELECT COUNT(*) FROM registry_history WHERE sync_run_id = 2")
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
    Ok((spent, changed))
}

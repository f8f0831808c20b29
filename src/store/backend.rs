//! What differs between the two databases at the level of values: how a timestamp is kept.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

use crate::store::StoreError;

/// The tables a run stages what its walks list in (`migrations/*/0005_staging.sql` and
/// `0008_listed_pages.sql`): what walking a scope again, and clearing a run's staging, empty.
pub const STAGING_TABLES: [&str; 2] = ["sync_staging", "sync_listed_pages"];

/// A database the store's generic queries run on.
pub trait Backend: sqlx::Database {
    /// How a timestamp is bound and read: ISO-8601 UTC text on SQLite, `timestamptz` on
    /// PostgreSQL.
    type Timestamp: for<'q> Encode<'q, Self>
        + for<'r> Decode<'r, Self>
        + Type<Self>
        + Send
        + Sync
        + 'static;

    /// The statement that opens a writing transaction. SQLite's `BEGIN IMMEDIATE` takes the
    /// write lock up front (waiting for it under the busy timeout); a plain `BEGIN` that
    /// reads first and writes later fails with `SQLITE_BUSY_SNAPSHOT` when another
    /// connection wrote in between.
    const BEGIN_WRITE: &'static str;

    /// Rows per `INSERT` statement when writing many, as measured with `examples/sync_bench.rs`
    /// (20,000 new registries): PostgreSQL, a network round trip away, writes five times
    /// faster with 100 rows a statement than with one; SQLite, whose statements each cross to
    /// sqlx's worker thread, is fastest at 10 to 20 (1.8 s against 3.0 s with one row and
    /// 3.8 s with 100, where its multi-row `VALUES` gets slow).
    const ROWS_PER_INSERT: usize;

    /// Whether statements with many values take anonymous `?` placeholders, bound in the order
    /// they appear. SQLite does: sqlx looks a numbered one (`$7`) up by name, and SQLite finds a
    /// name by walking a list, so a statement with hundreds of `$N` costs quadratic time to
    /// bind (17 % of a large first sync's CPU, measured with `perf`). PostgreSQL needs `$N`.
    const ANONYMOUS_PLACEHOLDERS: bool;

    /// How a statement that writes many rows inside a sync's transaction begins: `INSERT`
    /// and `UPDATE`, with SQLite's `OR FAIL`. A SQLite statement that may stop part-way
    /// (a `NOT NULL`, `CHECK` or key constraint, left at its default `ABORT`) first copies
    /// every page it is about to change into a statement journal, so that it can undo
    /// itself; and past 64 KiB that journal is a temporary file. `OR FAIL` stops such a
    /// statement without undoing it, which needs no journal: the caller rolls the whole
    /// transaction back on any error anyway. In a 10 %-changed sync of 50,000 registries,
    /// staging alone wrote 108,000 pages of 4 KiB into statement journals, on pages freed by
    /// the run before. (A foreign key checked at once still needs the journal: inserting
    /// into `registries` and `registry_history` keeps it.) PostgreSQL has no such clause
    /// and needs none.
    const INSERT: &'static str;
    /// See [`Backend::INSERT`].
    const UPDATE: &'static str;

    /// Whether a statement's `WITH` may hold an `INSERT` or `UPDATE` (PostgreSQL's
    /// data-modifying common table expressions). A write to two tables of the same chosen rows
    /// is then one statement that chooses them once: inserting new registries and their first
    /// versions, or retiring registries. SQLite has no such `WITH`, and writes them with one
    /// statement a table, each choosing the rows again.
    const WRITING_WITH: bool;

    /// The first statement of a sync's writing transaction, if the backend needs one, bound
    /// to `lease::WRITE_FENCE_KEY`: on PostgreSQL it holds the write fence until the
    /// transaction ends. SQLite needs none: a killed process's transaction cannot commit.
    const WRITE_FENCE: Option<&'static str>;

    /// An aggregate of a chunk of `id` and `content_hash` rows into one string, each entry
    /// `<bytes of id>:<id><content hash>`, separated by commas.
    const ID_HASH_ENTRIES: &'static str;

    /// The statements that empty `tables` (the [`STAGING_TABLES`]) when no other run is going
    /// on. SQLite's `DELETE` without a `WHERE` frees a table's pages at once. PostgreSQL's
    /// `DELETE` marks every row dead, one by one, and leaves them for vacuum: a run of 500,000
    /// registries left as many dead rows, every run. `TRUNCATE` drops the tables' files
    /// instead; the lock it takes shuts out no one, as no other run stages.
    fn emptying(tables: &[&str]) -> Vec<String>;

    /// Spreads the ids of run `$1`'s listed pages (`sync_listed_pages`) into `sync_staging`,
    /// one row each: `json_each` of the JSON array on SQLite, `unnest` of the array on
    /// PostgreSQL.
    const SPREAD_LISTED_PAGES: &'static str;

    /// A list of texts (ids) bound as one value, so that a statement's text, and the prepared
    /// statement kept for it, does not follow how many there are: a JSON array on SQLite, an
    /// array on PostgreSQL. See [`Backend::in_list`].
    type TextList: for<'q> Encode<'q, Self> + Type<Self> + Send + Sync + 'static;
    /// A list of integers (staged rows) bound as one value; see [`Backend::TextList`].
    type IntList: for<'q> Encode<'q, Self> + Type<Self> + Send + Sync + 'static;

    /// Makes a [`Backend::TextList`].
    fn text_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Self::TextList;
    /// Makes a [`Backend::IntList`].
    fn int_list(items: impl IntoIterator<Item = i64>) -> Self::IntList;
    /// `<expression> IN` the list bound at `placeholder`, as what follows the expression:
    /// `IN (SELECT value FROM json_each(?))` on SQLite, `= ANY($n)` on PostgreSQL.
    fn in_list(placeholder: &str) -> String;

    /// How many rows a statement changed.
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Converts a time into the bound form.
    fn timestamp(time: DateTime<Utc>) -> Self::Timestamp;

    /// Converts a read value back.
    ///
    /// # Errors
    ///
    /// [`StoreError::Corrupt`] for text that is not a timestamp.
    fn read_timestamp(value: Self::Timestamp) -> Result<DateTime<Utc>, StoreError>;
}

impl Backend for Sqlite {
    type Timestamp = String;

    const WRITE_FENCE: Option<&'static str> = None;

    const ID_HASH_ENTRIES: &'static str =
        "group_concat(length(CAST(id AS BLOB)) || ':' || id || content_hash, ',')";

    type TextList = String;
    type IntList = String;

    fn text_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
        serde_json::Value::Array(
            items
                .into_iter()
                .map(|item| serde_json::Value::String(item.to_owned()))
                .collect(),
        )
        .to_string()
    }

    fn int_list(items: impl IntoIterator<Item = i64>) -> String {
        serde_json::Value::Array(items.into_iter().map(serde_json::Value::from).collect())
            .to_string()
    }

    fn in_list(placeholder: &str) -> String {
        format!("IN (SELECT value FROM json_each({placeholder}))")
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn emptying(tables: &[&str]) -> Vec<String> {
        tables
            .iter()
            .map(|table| format!("DELETE FROM {table}"))
            .collect()
    }

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    const ROWS_PER_INSERT: usize = 16;

    const ANONYMOUS_PLACEHOLDERS: bool = true;

    const INSERT: &'static str = "INSERT OR FAIL";
    const UPDATE: &'static str = "UPDATE OR FAIL";

    const WRITING_WITH: bool = false;

    const SPREAD_LISTED_PAGES: &'static str =
        "INSERT OR FAIL INTO sync_staging (run_id, scope_ix, id) SELECT p.run_id, p.scope_ix, \
         j.value FROM sync_listed_pages p, json_each(p.ids) j WHERE p.run_id = $1";

    fn timestamp(time: DateTime<Utc>) -> String {
        time.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    fn read_timestamp(value: String) -> Result<DateTime<Utc>, StoreError> {
        DateTime::parse_from_rfc3339(&value)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                // Rows written by hand with SQLite's datetime('now') have no 'T' and no zone.
                NaiveDateTime::parse_from_str(&value, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
            })
            .map_err(|_| StoreError::Corrupt(format!("{value:?} is not an ISO-8601 timestamp")))
    }
}

impl Backend for Postgres {
    type Timestamp = DateTime<Utc>;

    const WRITE_FENCE: Option<&'static str> = Some("SELECT pg_advisory_xact_lock_shared($1)");

    const ID_HASH_ENTRIES: &'static str =
        "string_agg(octet_length(id) || ':' || id || content_hash, ',')";

    type TextList = Vec<String>;
    type IntList = Vec<i64>;

    fn text_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        items.into_iter().map(str::to_owned).collect()
    }

    fn int_list(items: impl IntoIterator<Item = i64>) -> Vec<i64> {
        items.into_iter().collect()
    }

    fn in_list(placeholder: &str) -> String {
        format!("= ANY({placeholder})")
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn emptying(tables: &[&str]) -> Vec<String> {
        vec![format!("TRUNCATE {}", tables.join(", "))]
    }

    const BEGIN_WRITE: &'static str = "BEGIN";

    // At 25 values a row, 2,500 parameters: far below PostgreSQL's 65,535.
    const ROWS_PER_INSERT: usize = 100;

    const ANONYMOUS_PLACEHOLDERS: bool = false;

    const INSERT: &'static str = "INSERT";
    const UPDATE: &'static str = "UPDATE";

    const WRITING_WITH: bool = true;

    const SPREAD_LISTED_PAGES: &'static str =
        "INSERT INTO sync_staging (run_id, scope_ix, id) SELECT run_id, scope_ix, unnest(ids) \
         FROM sync_listed_pages WHERE run_id = $1";

    fn timestamp(time: DateTime<Utc>) -> DateTime<Utc> {
        time
    }

    fn read_timestamp(value: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn sqlite_timestamps_are_iso_8601_utc_with_milliseconds() {
        let time = Utc.with_ymd_and_hms(2026, 11, 28, 5, 3, 2).unwrap()
            + chrono::Duration::milliseconds(123);
        assert_eq!(Sqlite::timestamp(time), "2026-11-28T05:03:02.123Z");
        assert_eq!(
            Sqlite::read_timestamp(Sqlite::timestamp(time)).unwrap(),
            time
        );
        assert_eq!(
            Sqlite::read_timestamp("2026-11-28 05:03:02".to_owned()).unwrap(),
            time - chrono::Duration::milliseconds(123)
        );
        assert!(Sqlite::read_timestamp("yesterday".to_owned()).is_err());
    }
}

//! The three output formats of the reports. A report builds its rows once, as JSON objects
//! with a fixed list of columns; JSON prints them as an array, CSV as a header row and one
//! row each, and the table as aligned columns.

use std::io::{self, Write};

use serde_json::{Map, Value};

/// How a report is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// A JSON array of objects.
    Json,
    /// Comma-separated values with a header row (RFC 4180 quoting).
    Csv,
}

/// One row of a report: column name to value, in column order.
pub type Record = Map<String, Value>;

/// Writes `records` as a pretty-printed JSON array, with a final newline.
///
/// # Errors
///
/// When `out` cannot be written.
pub fn write_json(out: &mut (dyn Write + Send), records: &[Value]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, records)?;
    writeln!(out)
}

/// Writes a header row of `columns` and one row per record; each cell as [`cell`] gives it.
///
/// # Errors
///
/// When `out` cannot be written.
pub fn write_csv(
    out: &mut (dyn Write + Send),
    columns: &[&str],
    records: &[Record],
) -> io::Result<()> {
    let mut writer = csv::Writer::from_writer(&mut *out);
    writer.write_record(columns)?;
    for record in records {
        writer.write_record(columns.iter().map(|column| cell(record.get(*column))))?;
    }
    writer.flush()
}

/// Writes `columns` of `records` as a table: a header line and one line per record, each
/// column as wide as its widest cell; the last column is not padded.
///
/// # Errors
///
/// When `out` cannot be written.
pub fn write_table(
    out: &mut (dyn Write + Send),
    columns: &[&str],
    records: &[Record],
) -> io::Result<()> {
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|record| {
            columns
                .iter()
                .map(|column| cell(record.get(*column)).replace('\n', " "))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([column.len()])
                .max()
                .unwrap_or_default()
        })
        .collect();
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (i, value) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(value);
            } else {
                text.push_str(value);
                text.push_str(&" ".repeat(widths[i] - value.chars().count() + 2));
            }
        }
        text.trim_end().to_owned()
    };
    let header: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    Ok(())
}

/// A value as one CSV or table cell: empty for null or missing, text as it is, a list of
/// strings joined with `; `, anything else as compact JSON.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
    }
}

/// Builds a [`Record`] from `(column, value)` pairs, in their order.
pub fn record<const N: usize>(fields: [(&str, Value); N]) -> Record {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_quotes_commas_quotes_and_newlines_and_leaves_nulls_empty() {
        let records = [record([
            ("a", json!("x, \"y\"\nz")),
            ("b", Value::Null),
            ("c", json!(["p", "q"])),
            ("d", json!(3)),
        ])];
        let mut out = Vec::new();
        write_csv(&mut out, &["a", "b", "c", "d"], &records).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a,b,c,d\n\"x, \"\"y\"\"\nz\",,p; q,3\n"
        );
    }

    #[test]
    fn a_table_aligns_its_columns_and_an_empty_one_has_its_header() {
        let records = [
            record([("id", json!(1)), ("name", json!("alpha"))]),
            record([("id", json!(10)), ("name", Value::Null)]),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &["id", "name"], &records).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id  name\n1   alpha\n10\n");
        let mut out = Vec::new();
        write_table(&mut out, &["id", "name"], &[]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id  name\n");
    }
}

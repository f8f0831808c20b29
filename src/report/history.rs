//! `history REGISTRY` and `changes --since`: versions of registries, with what changed.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::report::output::{self, record, Format, Record};
use crate::report::time::iso;
use crate::report::ReportError;
use crate::store::reports::{RegistryMatch, VersionRecord};
use crate::store::Store;

/// The columns of a version, in `history` and `changes` (JSON and CSV).
pub const VERSION_COLUMNS: &[&str] = &[
    "registry_id",
    "registry_name",
    "version",
    "change_kind",
    "valid_from",
    "valid_to",
    "sync_run_id",
    "registry_type",
    "registry_addr",
    "status",
    "fail_reason",
    "images_num",
    "region",
    "project_id",
    "enterprise_project_id",
    "changed_fields",
    "changes",
];

const HISTORY_TABLE_COLUMNS: &[&str] = &[
    "version",
    "change_kind",
    "valid_from",
    "valid_to",
    "sync_run_id",
    "registry_name",
    "status",
    "changes",
];

const CHANGES_TABLE_COLUMNS: &[&str] = &[
    "valid_from",
    "sync_run_id",
    "change_kind",
    "registry_id",
    "registry_name",
    "registry_type",
    "changes",
];

/// The change kinds, in the order the summary line names them.
const KINDS: [&str; 4] = ["created", "updated", "deleted", "restored"];

/// Prints every stored version of the registry `key` names (an id, else an exact name),
/// oldest first, each with what changed.
///
/// # Errors
///
/// [`ReportError::UnknownRegistry`] or [`ReportError::AmbiguousRegistry`] when `key` names
/// no registry or several; otherwise when the store fails or `out` cannot be written.
pub async fn print_history(
    store: &Store,
    key: &str,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let registry_id = match store.find_registry(key).await? {
        RegistryMatch::One(id) => id,
        RegistryMatch::Ambiguous(ids) => {
            return Err(ReportError::AmbiguousRegistry {
                name: key.to_owned(),
                ids,
            })
        }
        RegistryMatch::None => return Err(ReportError::UnknownRegistry(key.to_owned())),
    };
    let versions = store.registry_versions(&registry_id).await?;
    let records: Vec<Record> = versions.iter().map(version_record).collect();
    match format {
        Format::Table => {
            let name = versions
                .iter()
                .rev()
                .find_map(|v| v.registry_name.clone())
                .unwrap_or_default();
            writeln!(
                out,
                "registry {registry_id} {name}: {} versions stored",
                versions.len()
            )?;
            output::write_table(out, HISTORY_TABLE_COLUMNS, &with_change_text(records))?;
        }
        _ => write_records(out, format, records)?,
    }
    Ok(())
}

/// Prints every change made at or after `since`, in the order made: what was created,
/// updated (with each field's old and new value), deleted and restored.
///
/// # Errors
///
/// When the store fails or `out` cannot be written.
pub async fn print_changes(
    store: &Store,
    since: DateTime<Utc>,
    format: Format,
    out: &mut (dyn Write + Send),
) -> Result<(), ReportError> {
    let versions = store.changes_since(since).await?;
    let records: Vec<Record> = versions.iter().map(version_record).collect();
    match format {
        Format::Table => {
            let counts: Vec<String> = KINDS
                .iter()
                .map(|kind| {
                    let n = versions.iter().filter(|v| v.change_kind == *kind).count();
                    format!("{n} {kind}")
                })
                .collect();
            writeln!(
                out,
                "{} changes since {}: {}",
                versions.len(),
                iso(since),
                counts.join(", ")
            )?;
            output::write_table(out, CHANGES_TABLE_COLUMNS, &with_change_text(records))?;
        }
        _ => write_records(out, format, records)?,
    }
    Ok(())
}

fn write_records(
    out: &mut (dyn Write + Send),
    format: Format,
    records: Vec<Record>,
) -> Result<(), ReportError> {
    if format == Format::Json {
        output::write_json(
            out,
            &records.into_iter().map(Value::Object).collect::<Vec<_>>(),
        )?;
    } else {
        output::write_csv(out, VERSION_COLUMNS, &with_change_text(records))?;
    }
    Ok(())
}

/// A version as a record; `changes` is an object of `{field: {"old": .., "new": ..}}`
/// (`old` absent when the previous version is no longer stored).
fn version_record(version: &VersionRecord) -> Record {
    let changes: Map<String, Value> = version
        .changes()
        .into_iter()
        .map(|change| {
            let mut values = Map::new();
            if let Some(old) = change.old {
                values.insert("old".to_owned(), old);
            }
            values.insert("new".to_owned(), change.new);
            (change.field, Value::Object(values))
        })
        .collect();
    record([
        ("registry_id", json!(version.registry_id)),
        ("registry_name", json!(version.registry_name)),
        ("version", json!(version.version)),
        ("change_kind", json!(version.change_kind)),
        ("valid_from", json!(iso(version.valid_from))),
        ("valid_to", json!(version.valid_to.map(iso))),
        ("sync_run_id", json!(version.sync_run_id)),
        ("registry_type", json!(version.registry_type)),
        ("registry_addr", json!(version.registry_addr)),
        ("status", json!(version.status)),
        ("fail_reason", json!(version.fail_reason)),
        ("images_num", json!(version.images_num)),
        ("region", json!(version.region)),
        ("project_id", json!(version.project_id)),
        (
            "enterprise_project_id",
            json!(version.enterprise_project_id),
        ),
        ("changed_fields", json!(version.changed_fields)),
        (
            "changes",
            if version.change_kind == "updated" {
                Value::Object(changes)
            } else {
                Value::Null
            },
        ),
    ])
}

/// The records with `changes` as one line of text, for CSV and the table:
/// `status: success -> fail; images_num: 3 -> 5` (`?` for an old value no longer stored).
fn with_change_text(records: Vec<Record>) -> Vec<Record> {
    records
        .into_iter()
        .map(|mut record| {
            if let Some(Value::Object(changes)) = record.get("changes") {
                let text = changes
                    .iter()
                    .map(|(field, values)| {
                        let show = |value: Option<&Value>| match value {
                            None => "?".to_owned(),
                            Some(Value::String(text)) => text.clone(),
                            Some(other) => other.to_string(),
                        };
                        format!(
                            "{field}: {} -> {}",
                            show(values.get("old")),
                            show(values.get("new"))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                record.insert("changes".to_owned(), Value::String(text));
            }
            record
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::reports::PreviousVersion;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(object) => object,
            _ => unreachable!(),
        }
    }

    #[test]
    fn an_update_shows_each_changed_field_old_and_new_moves_included() {
        let version = VersionRecord {
            registry_id: "r1".to_owned(),
            version: 2,
            change_kind: "updated".to_owned(),
            changed_fields: vec!["enterprise_project_id".to_owned(), "status".to_owned()],
            valid_from: Utc::now(),
            valid_to: None,
            sync_run_id: 2,
            project_id: "p".to_owned(),
            enterprise_project_id: Some("ep2".to_owned()),
            region: "r".to_owned(),
            registry_name: Some("harbor".to_owned()),
            registry_type: None,
            registry_addr: None,
            status: Some("fail".to_owned()),
            fail_reason: None,
            images_num: None,
            raw: object(json!({"id": "r1", "status": "fail"})),
            previous: Some(PreviousVersion {
                raw: object(json!({"id": "r1", "status": "success"})),
                project_id: "p".to_owned(),
                enterprise_project_id: Some("ep1".to_owned()),
                region: "r".to_owned(),
            }),
        };
        let record = version_record(&version);
        assert_eq!(
            record["changes"],
            json!({"enterprise_project_id": {"old": "ep1", "new": "ep2"}, "status": {"old": "success", "new": "fail"}})
        );
        let text = with_change_text(vec![record]);
        assert_eq!(
            text[0]["changes"],
            json!("enterprise_project_id: ep1 -> ep2; status: success -> fail")
        );
        let keys: Vec<&str> = text[0].keys().map(String::as_str).collect();
        assert_eq!(keys, VERSION_COLUMNS);

        let pruned = VersionRecord {
            previous: None,
            ..version
        };
        assert_eq!(
            with_change_text(vec![version_record(&pruned)])[0]["changes"],
            json!("enterprise_project_id: ? -> ep2; status: ? -> fail")
        );
    }
}

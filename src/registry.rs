//! The domain form of one HSS registry: the typed columns taken from the raw JSON object,
//! the content hash that decides whether it changed, and the list of changed fields.
//!
//! Every field may be missing or null on the wire, unknown enum strings are kept as they
//! come, and unknown extra keys stay in `raw`, so nothing the API says is lost.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `RegistryInfo` fields that get a column of their own, in schema order.
pub const STRING_FIELDS: [&str; 11] = [
    "registry_name",
    "registry_type",
    "api_version",
    "protocol",
    "registry_addr",
    "registry_username",
    "namespace",
    "connect_cluster_id",
    "get_scan_image_channel",
    "status",
    "fail_reason",
];

/// The integer `RegistryInfo` fields that get a column of their own, in schema order.
pub const INTEGER_FIELDS: [&str; 2] = ["images_num", "latest_sync_time"];

/// One registry as received, keyed by its `id`.
#[derive(Clone, Debug, PartialEq)]
pub struct Registry {
    /// The registry id, the primary key of the `registries` table.
    pub id: String,
    /// The JSON object exactly as the API returned it, unknown keys included.
    pub raw: Map<String, Value>,
    /// Hex SHA-256 of `raw` in canonical form (keys sorted, no whitespace).
    pub content_hash: String,
}

impl Registry {
    /// Builds a registry from one `data_list` item.
    ///
    /// # Errors
    ///
    /// Returns a message when the item has no usable `id`: without one it cannot be keyed,
    /// and the caller must treat its scope as incomplete.
    pub fn from_raw(raw: Map<String, Value>) -> Result<Self, String> {
        let id = match raw.get("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            Some(other) => return Err(format!("registry item has an unusable id: {other}")),
            None => return Err("registry item has no id".to_owned()),
        };
        let content_hash = content_hash(&raw);
        Ok(Registry {
            id,
            raw,
            content_hash,
        })
    }

    /// The value of a string column: strings as they are, numbers and booleans as text,
    /// null, missing, arrays and objects as `None` (they stay in `raw`).
    pub fn string_field(&self, name: &str) -> Option<String> {
        match self.raw.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The value of an integer column: integers, and strings that hold one; anything else `None`.
    pub fn integer_field(&self, name: &str) -> Option<i64> {
        match self.raw.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Hex SHA-256 of the canonical JSON form of `raw`: object keys sorted at every level.
/// Key order on the wire therefore never counts as a change.
pub fn content_hash(raw: &Map<String, Value>) -> String {
    let mut canonical = Vec::with_capacity(1024);
    write_canonical_object(raw, &mut canonical);
    hex::encode(Sha256::digest(&canonical))
}

/// The names of the top-level keys whose values differ between `old` and `new`, sorted.
/// A key present on one side only counts as changed.
pub fn changed_fields(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

fn write_canonical_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by_key(|(key, _)| *key);
    out.push(b'{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(key.as_str(), out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

/// A string or a scalar as serde_json writes it, straight into `out`.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and a string or a scalar always serializes.
    let _ = serde_json::to_writer(&mut *out, value);
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_canonical_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_json(text.as_str(), out),
        scalar => write_json(scalar, out),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn content_hash_ignores_key_order_but_not_values() {
        let a = object(json!({"id": "r1", "status": "success", "images_num": 3}));
        let b = object(json!({"images_num": 3, "status": "success", "id": "r1"}));
        let c = object(json!({"images_num": 4, "status": "success", "id": "r1"}));
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(
            content_hash(&object(json!({"b": 1, "a": "x"}))),
            hex::encode(Sha256::digest(br#"{"a":"x","b":1}"#))
        );
    }

    #[test]
    fn content_hash_of_every_kind_of_value_is_pinned() {
        // Stored hashes must not change with the code that computes them: a new hash for the
        // same content would count every stored registry as changed.
        let raw = object(json!({
            "id": "r\"1\\\n\u{1}é😀",
            "nested": {"z": [1, -2.5, 1e300, null, true, {"b": "x", "a": []}], "a": {}},
            "big": 18446744073709551615_u64,
            "neg": -9223372036854775808_i64,
            "f": false,
            "s": "ascii / slash \t tab",
        }));
        assert_eq!(
            content_hash(&raw),
            "e1a1c82e0beeff80ce833370edd15fb3333112cdc67ec43db8c0f23f64dd150d"
        );
    }

    #[test]
    fn changed_fields_names_changed_added_and_removed_keys() {
        let old = object(json!({"id": "r1", "status": "success", "namespace": "ns", "x": 1}));
        let new =
            object(json!({"id": "r1", "status": "fail", "fail_reason": "SERVER_ERROR", "x": 1}));
        assert_eq!(
            changed_fields(&old, &new),
            ["fail_reason", "namespace", "status"]
        );
    }

    #[test]
    fn fields_tolerate_nulls_wrong_types_and_unknown_values() {
        let registry = Registry::from_raw(object(json!({
            "id": "r1", "registry_type": "Quay", "images_num": "12", "latest_sync_time": null,
            "status": ["odd"], "new_field": {"a": 1}
        })))
        .unwrap();
        assert_eq!(
            registry.string_field("registry_type").as_deref(),
            Some("Quay")
        );
        assert_eq!(registry.integer_field("images_num"), Some(12));
        assert_eq!(registry.integer_field("latest_sync_time"), None);
        assert_eq!(registry.string_field("status"), None);
        assert_eq!(registry.string_field("namespace"), None);
        assert!(registry.raw.contains_key("new_field"));
    }

    #[test]
    fn item_without_id_is_rejected() {
        assert!(Registry::from_raw(object(json!({"registry_name": "x"}))).is_err());
        assert!(Registry::from_raw(object(json!({"id": ""}))).is_err());
        assert!(Registry::from_raw(object(json!({"id": null}))).is_err());
    }
}

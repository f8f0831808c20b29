//! The domain form of one HSS registry: the typed columns taken from the raw JSON object,
//! the content hash that decides whether it changed, and the list of changed fields.
//!
//! Every field may be missing or null on the wire, unknown enum strings are kept as they
//! come, and unknown extra keys stay in `raw`, so nothing the API says is lost.

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
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
        let id = id_of(raw.get("id"))?;
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
        string_of(self.raw.get(name)?)
    }

    /// The value of an integer column: integers, and strings that hold one; anything else `None`.
    pub fn integer_field(&self, name: &str) -> Option<i64> {
        integer_of(self.raw.get(name)?)
    }
}

/// A string column's value: see [`Registry::string_field`].
fn string_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// An integer column's value: see [`Registry::integer_field`].
fn integer_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A registry as staging writes it: the values of its columns, its JSON text as `raw` keeps
/// it (serde_json's writing of the parsed object, members in the order they came) and its
/// content hash. [`RawRegistry::into_staged`] makes it without parsing the item into a tree
/// of values, and tests check that it equals [`StagedRegistry::of`] the parsed registry.
#[derive(Clone, Debug, PartialEq)]
pub struct StagedRegistry {
    /// The registry id.
    pub id: String,
    /// The values of [`STRING_FIELDS`], in their order, as [`Registry::string_field`] gives them.
    pub strings: [Option<String>; STRING_FIELDS.len()],
    /// The values of [`INTEGER_FIELDS`], as [`Registry::integer_field`] gives them.
    pub integers: [Option<i64>; INTEGER_FIELDS.len()],
    /// The JSON text of the object.
    pub raw: String,
    /// [`Registry::content_hash`].
    pub content_hash: String,
}

impl StagedRegistry {
    /// What staging writes of a parsed registry.
    pub fn of(registry: &Registry) -> StagedRegistry {
        let mut raw = Vec::new();
        write_json(&registry.raw, &mut raw);
        StagedRegistry {
            id: registry.id.clone(),
            strings: STRING_FIELDS.map(|field| registry.string_field(field)),
            integers: INTEGER_FIELDS.map(|field| registry.integer_field(field)),
            // serde_json writes UTF-8.
            raw: String::from_utf8(raw).unwrap_or_default(),
            content_hash: registry.content_hash.clone(),
        }
    }
}

/// The key of a registry item: a string `id` that is not blank, or a numeric one as text.
fn id_of(id: Option<&Value>) -> Result<String, String> {
    match id {
        Some(Value::String(id)) if !id.trim().is_empty() => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        Some(other) => Err(format!("registry item has an unusable id: {other}")),
        None => Err("registry item has no id".to_owned()),
    }
}

/// One `data_list` item as received: its `id`, and where each of its members lies in the
/// text it came in, read in the same pass as the page around it (see [`RawItem`]), without
/// building its tree of values.
///
/// A walk finds most registries unchanged, and needs no more of them than this and their
/// content hash; only the others are staged, as a [`StagedRegistry`] written from the
/// members' texts ([`RawRegistry::into_staged`]). A confirming walk does not need the hash
/// of a registry the run listed already, so the hash is made when first asked for. It is
/// the one [`content_hash`] gives for the parsed object, byte for byte: a string with no
/// escape, an integer in plain digits, `true`, `false` and `null` are written canonically
/// as they come, and any other value is parsed and written as [`content_hash`] writes it.
#[derive(Clone, Debug)]
pub struct RawRegistry {
    /// The text the item lies in: its page's body, which the page's items share, so that
    /// reading a page copies it once rather than item by item.
    text: Arc<str>,
    id: Option<Value>,
    members: Vec<Member>,
    content_hash: OnceLock<String>,
}

/// Where one member of an item lies in its text.
#[derive(Clone, Debug)]
struct Member {
    key: Key,
    value: Range<usize>,
}

/// A member's key: where it lies in the text (between its quotes), or, when it held an
/// escape, the key it stands for.
#[derive(Clone, Debug)]
enum Key {
    At(Range<usize>),
    Unescaped(String),
}

impl RawRegistry {
    /// Reads one JSON object, given alone.
    ///
    /// # Errors
    ///
    /// Returns a message when the text is not a JSON object.
    pub fn parse(text: &str) -> Result<RawRegistry, String> {
        let text: Arc<str> = Arc::from(text);
        let item: RawItem<'_> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        RawRegistry::from_item(&text, item)
    }

    /// The registry `item` stands for, read from `text` (the text `item` was read from, in
    /// one pass with what surrounds it: see [`RawItem`]).
    ///
    /// # Errors
    ///
    /// Returns a message when the item is not a JSON object, or its `id` cannot be read.
    pub fn from_item(text: &Arc<str>, item: RawItem<'_>) -> Result<RawRegistry, String> {
        let members = match item {
            RawItem::Object(members) => members,
            RawItem::Other(what) => {
                return Err(format!("registry item is not a JSON object but {what}"))
            }
        };
        // Of equal keys the last is the one kept, as parsing into a map keeps it.
        let id = members
            .iter()
            .rev()
            .find(|(key, _)| key == "id")
            .map(|(_, value)| serde_json::from_str(value.get()))
            .transpose()
            .map_err(|e| e.to_string())?;
        // Keys and values are borrowed from `text`, so each lies at its own offset.
        let whole = text.as_ptr() as usize;
        let at = |part: &str| {
            let start = part.as_ptr() as usize - whole;
            start..start + part.len()
        };
        let members = members
            .into_iter()
            .map(|(key, value)| Member {
                key: match key {
                    Cow::Borrowed(key) => Key::At(at(key)),
                    Cow::Owned(key) => Key::Unescaped(key),
                },
                value: at(value.get()),
            })
            .collect();
        Ok(RawRegistry {
            text: Arc::clone(text),
            id,
            members,
            content_hash: OnceLock::new(),
        })
    }

    /// The item's `id` member, if it has one.
    pub fn id_value(&self) -> Option<&Value> {
        self.id.as_ref()
    }

    /// The registry id, by the rules of [`Registry::from_raw`].
    ///
    /// # Errors
    ///
    /// Returns a message when the item has no usable `id`.
    pub fn id(&self) -> Result<String, String> {
        id_of(self.id.as_ref())
    }

    /// Hex SHA-256 of the item in canonical form, as [`content_hash`] gives it.
    ///
    /// # Errors
    ///
    /// Returns a message when a value of the item cannot be read as JSON (a number out of
    /// range, say).
    pub fn content_hash(&self) -> Result<&str, String> {
        if let Some(hash) = self.content_hash.get() {
            return Ok(hash);
        }
        let mut members: Vec<(&str, &str)> = self.member_texts().collect();
        let mut canonical = Vec::with_capacity(written_length(&members));
        write_members(&mut members, &mut canonical, |value, out| {
            write_raw_canonical(value, out)
        })?;
        Ok(self.content_hash.get_or_init(|| hex_sha256(&canonical)))
    }

    /// The registry, with the item parsed whole.
    ///
    /// # Errors
    ///
    /// Returns a message when the item has no usable `id`, or cannot be read whole.
    pub fn into_registry(self) -> Result<Registry, String> {
        let id = self.id()?;
        let content_hash = self.content_hash()?.to_owned();
        // Member by member, as parsing the object whole inserts them: an equal key later
        // takes the first one's place.
        let mut raw = Map::with_capacity(self.members.len());
        for (key, value) in self.member_texts() {
            let value: Value = serde_json::from_str(value).map_err(|e| e.to_string())?;
            raw.insert(key.to_owned(), value);
        }
        Ok(Registry {
            id,
            raw,
            content_hash,
        })
    }

    /// What staging writes of the registry: its columns and its JSON text taken from the
    /// members' texts, which are written as they come where serde_json would write them the
    /// same (as for the content hash); any other value is parsed and written by serde_json.
    ///
    /// # Errors
    ///
    /// Returns a message when the item has no usable `id`, or a value cannot be read.
    pub fn into_staged(self) -> Result<StagedRegistry, String> {
        let id = self.id()?;
        let content_hash = self.content_hash()?.to_owned();
        let members: Vec<(&str, &str)> = self.member_texts().collect();
        if (1..members.len()).any(|i| members[..i].iter().any(|(key, _)| *key == members[i].0)) {
            // The last of equal keys takes the first one's place in a parsed object: rare
            // enough to be read as the parsed object.
            return Ok(StagedRegistry::of(&self.into_registry()?));
        }
        let mut raw = Vec::with_capacity(written_length(&members));
        let mut strings: [Option<String>; STRING_FIELDS.len()] = Default::default();
        let mut integers = [None; INTEGER_FIELDS.len()];
        raw.push(b'{');
        for (i, &(key, value)) in members.iter().enumerate() {
            if i > 0 {
                raw.push(b',');
            }
            write_json_str(key, &mut raw);
            raw.push(b':');
            if as_it_comes(value).is_some() {
                raw.extend_from_slice(value.as_bytes());
            } else {
                write_json(&parse_value(value)?, &mut raw);
            }
            if let Some(slot) = STRING_FIELDS.iter().position(|field| *field == key) {
                strings[slot] = string_of_text(value)?;
            } else if let Some(slot) = INTEGER_FIELDS.iter().position(|field| *field == key) {
                integers[slot] = integer_of_text(value)?;
            }
        }
        raw.push(b'}');
        Ok(StagedRegistry {
            id,
            strings,
            integers,
            raw: String::from_utf8(raw).map_err(|e| e.to_string())?,
            content_hash,
        })
    }

    /// Each member's key and the text of its value, in the order they come.
    fn member_texts(&self) -> impl Iterator<Item = (&str, &str)> {
        self.members.iter().map(|member| {
            let key = match &member.key {
                Key::At(at) => &self.text[at.clone()],
                Key::Unescaped(key) => key.as_str(),
            };
            (key, &self.text[member.value.clone()])
        })
    }
}

/// One item of a JSON array as read in the same pass as the array: a JSON object's members
/// in the order they come, each value as its text, borrowed from the text read; or what
/// else the item is. [`RawRegistry::from_item`] makes the registry of it.
pub enum RawItem<'a> {
    /// A JSON object.
    Object(Vec<(Cow<'a, str>, &'a RawValue)>),
    /// Not an object: what it is instead, in words ("a string").
    Other(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for RawItem<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = RawItem<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawItem<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(member) = map.next_entry::<BorrowedKey<'de>, &'de RawValue>()? {
                    members.push((member.0 .0, member.1));
                }
                Ok(RawItem::Object(members))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawItem<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawItem::Other("an array"))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("a string"))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("a boolean"))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("a number"))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("a number"))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("a number"))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawItem<'de>, E> {
                Ok(RawItem::Other("null"))
            }
        }
        let item: RawItem<'de> = deserializer.deserialize_any(Visit)?;
        Ok(item)
    }
}

/// An object key, borrowed from the text unless it holds an escape.
struct BorrowedKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for BorrowedKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> Visitor<'de> for Visit {
            type Value = BorrowedKey<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedKey(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// Writes one member's value, given as its text, as [`write_canonical`] writes it once
/// parsed.
fn write_raw_canonical(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    if as_it_comes(text).is_some() {
        out.extend_from_slice(text.as_bytes());
    } else {
        write_canonical(&parse_value(text)?, out);
    }
    Ok(())
}

/// A value whose text serde_json writes back as that same text once it is parsed, so that
/// it can be copied, and read without parsing.
enum AsItComes<'a> {
    /// A string with no escape (a JSON string holds no raw quote or control character):
    /// what lies between its quotes.
    String(&'a str),
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
    /// An integer in plain digits ([`is_plain_integer`]).
    Integer,
}

/// What the value whose text is `text` is, if serde_json writes it as it comes.
fn as_it_comes(text: &str) -> Option<AsItComes<'_>> {
    match text.as_bytes().first() {
        Some(b'"') if !text.contains('\\') => Some(AsItComes::String(&text[1..text.len() - 1])),
        Some(b't' | b'f') => Some(AsItComes::Bool),
        Some(b'n') => Some(AsItComes::Null),
        Some(b'-' | b'0'..=b'9') if is_plain_integer(text) => Some(AsItComes::Integer),
        _ => None,
    }
}

/// Room for members written back: each key and value with quotes, a colon and a comma.
fn written_length(members: &[(&str, &str)]) -> usize {
    members
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum::<usize>()
        + 2
}

fn parse_value(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// [`string_of`] the value whose text is `text`, parsing it only when it does not come as
/// serde_json writes it ([`as_it_comes`]).
fn string_of_text(text: &str) -> Result<Option<String>, String> {
    Ok(match as_it_comes(text) {
        Some(AsItComes::String(inner)) => Some(inner.to_owned()),
        Some(AsItComes::Bool | AsItComes::Integer) => Some(text.to_owned()),
        Some(AsItComes::Null) => None,
        None => string_of(&parse_value(text)?),
    })
}

/// [`integer_of`] the value whose text is `text`, as [`string_of_text`] reads it.
fn integer_of_text(text: &str) -> Result<Option<i64>, String> {
    Ok(match as_it_comes(text) {
        Some(AsItComes::String(inner)) => inner.trim().parse().ok(),
        Some(AsItComes::Integer) => text.parse().ok(),
        Some(AsItComes::Bool | AsItComes::Null) => None,
        None => integer_of(&parse_value(text)?),
    })
}

/// Whether `text` is an integer that serde_json reads as one and writes back as the same
/// digits: no fraction or exponent, no leading zero, not `-0`, and few enough digits to fit.
fn is_plain_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" && digits.len() == text.len() || !digits.starts_with('0'))
}

/// Hex SHA-256 of the canonical JSON form of `raw`: object keys sorted at every level.
/// Key order on the wire therefore never counts as a change.
pub fn content_hash(raw: &Map<String, Value>) -> String {
    let mut canonical = Vec::with_capacity(1024);
    write_canonical_object(raw, &mut canonical);
    hex_sha256(&canonical)
}

/// Hex SHA-256 of `bytes`, written through a buffer on the stack: `hex::encode` builds its
/// string a `char` at a time, which cost as much as the digest itself in a walk's profile.
fn hex_sha256(bytes: &[u8]) -> String {
    let mut hex = [0u8; 64];
    // 32 bytes of digest always fill 64 hex digits, which are ASCII.
    let Ok(()) = hex::encode_to_slice(Sha256::digest(bytes), &mut hex) else {
        unreachable!("a SHA-256 digest is 32 bytes")
    };
    String::from_utf8_lossy(&hex).into_owned()
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
    let Ok(()) = write_members(&mut entries, out, |value, out| {
        write_canonical(value, out);
        Ok::<(), Infallible>(())
    });
}

/// Writes an object's members sorted by key, each value by `write_value`. Of equal keys the
/// last is written, as parsing into a map keeps it.
fn write_members<K: AsRef<str>, V, E>(
    members: &mut [(K, V)],
    out: &mut Vec<u8>,
    mut write_value: impl FnMut(&V, &mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    members.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
    out.push(b'{');
    let mut first = true;
    for (i, (key, value)) in members.iter().enumerate() {
        if members
            .get(i + 1)
            .is_some_and(|next| next.0.as_ref() == key.as_ref())
        {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(key.as_ref(), out);
        out.push(b':');
        write_value(value, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// A string or a scalar as serde_json writes it, straight into `out`.
fn write_json<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and a string or a scalar always serializes.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// A string as serde_json writes it: between quotes, as it is when nothing in it needs an
/// escape (serde_json escapes only the quote, the backslash and control characters), which
/// is every key HSS sends; serde_json's writer otherwise.
fn write_json_str(text: &str, out: &mut Vec<u8>) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        write_json(text, out);
    }
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
        Value::String(text) => write_json_str(text, out),
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
    fn strings_are_written_as_serde_json_writes_them() {
        let mut texts: Vec<String> = (0u32..=0x80)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b"))
            .collect();
        texts.extend(["", "é😀", "\u{7f}", "plain-key_1", "\"\\"].map(str::to_owned));
        for text in texts {
            let mut out = Vec::new();
            write_json_str(&text, &mut out);
            assert_eq!(out, serde_json::to_vec(&text).unwrap(), "{text:?}");
        }
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

    /// Stages `raw` and parses it into a registry; checks that what is staged is what the
    /// registry would stage, and returns the registry.
    fn staged_as_parsed(raw: RawRegistry, text: &str) -> Result<Registry, String> {
        let staged = raw.clone().into_staged();
        let registry = raw.into_registry();
        let expected = registry.as_ref().map(StagedRegistry::of);
        assert_eq!(staged, expected.map_err(String::clone), "{text}");
        registry
    }

    /// Reads `text` both ways: in one pass, and parsed whole into a map.
    fn both_ways(text: &str) -> (RawRegistry, Map<String, Value>) {
        let raw = RawRegistry::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let map: Map<String, Value> = serde_json::from_str(text).unwrap();
        (raw, map)
    }

    #[test]
    fn an_item_read_in_one_pass_hashes_as_its_parsed_object_does() {
        let texts = [
            r#"{"id":"r1","status":"success","images_num":3}"#,
            r#"{ "images_num" : 3 , "status":"success",
                "id" : "r1" }"#,
            r#"{"id":"r\"1\\\n\u0001é😀","s":"a\/b \t","k\u0065y":"\u00e9"}"#,
            r#"{"n":[0,-0,1.0,1e2,-1.5E-3,123456789012345678,-123456789012345678,1234567890123456789]}"#,
            r#"{"big":18446744073709551615,"bigger":18446744073709551616,"neg":-9223372036854775808}"#,
            r#"{"z":0,"y":-0,"x":-12,"w":1e0,"v":0.0,"u":100000000000000000000}"#,
            r#"{"nested":{"z":[1,-2.5,1e300,null,true,{"b":"x","a":[]}],"a":{}},"f":false,"t":true,"n":null}"#,
            r#"{"dup":1,"id":"first","dup":"last","id":"second"}"#,
            r#"{}"#,
            r#"{"":"","id":""}"#,
        ];
        for text in texts {
            let (raw, map) = both_ways(text);
            assert_eq!(raw.content_hash().unwrap(), content_hash(&map), "{text}");
            assert_eq!(raw.id_value(), map.get("id"), "{text}");
            let registry = staged_as_parsed(raw, text);
            match Registry::from_raw(map) {
                Ok(expected) => assert_eq!(registry, Ok(expected), "{text}"),
                Err(e) => assert_eq!(registry, Err(e), "{text}"),
            }
        }
        let (raw, _) = both_ways(r#"{"dup":1,"id":"first","dup":"last","id":"second"}"#);
        assert_eq!(raw.id().unwrap(), "second");
    }

    #[test]
    fn random_items_read_in_one_pass_hash_and_stage_as_their_parsed_objects_do() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let pieces = [
            "\"plain\"",
            "\"esc\\\"aped\"",
            "\"\\u00e9t\\u00E9\"",
            "\"é😀\"",
            "\"\\/\"",
            "0",
            "-0",
            "17",
            "-17",
            "3.25",
            "1e5",
            "-2E-2",
            "99999999999999999999",
            "true",
            "false",
            "null",
            "[]",
            "[1,\"a\",{\"b\":2,\"a\":1}]",
            "{\"y\":[null],\"x\":{}}",
            "\" 42 \"",
            "\"12\\u0033\"",
            "\"x\"",
        ];
        let keys = [
            "id",
            "a",
            "b",
            "registry_name",
            "k\\u0065y",
            "status",
            "é",
            "images_num",
            "latest_sync_time",
            "st\\u0061tus",
        ];
        for _ in 0..2000 {
            let n = rng.gen_range(0..8);
            let members: Vec<String> = (0..n)
                .map(|_| {
                    let space = if rng.gen_bool(0.3) { " \n " } else { "" };
                    format!(
                        "{space}\"{}\"{space}:{space}{}{space}",
                        keys[rng.gen_range(0..keys.len())],
                        pieces[rng.gen_range(0..pieces.len())]
                    )
                })
                .collect();
            let text = format!("{{{}}}", members.join(","));
            let (raw, map) = both_ways(&text);
            assert_eq!(raw.content_hash().unwrap(), content_hash(&map), "{text}");
            assert_eq!(raw.id_value(), map.get("id"), "{text}");
            let registry = staged_as_parsed(raw, &text);
            if let Ok(registry) = registry {
                assert_eq!(registry.raw, map, "{text}");
            }
        }
    }

    #[test]
    fn an_item_whose_value_cannot_be_read_has_no_hash_and_no_registry() {
        let text = r#"{"id":"r1","images_num":1e400}"#;
        let raw = RawRegistry::parse(text).expect("an object with an id");
        assert_eq!(raw.id().unwrap(), "r1");
        assert!(raw.content_hash().is_err());
        assert!(raw.into_registry().is_err());
    }

    #[test]
    fn an_item_that_is_not_an_object_is_refused() {
        for text in ["[]", "1", "\"id\"", "null"] {
            let error = RawRegistry::parse(text).err().unwrap_or_default();
            assert!(error.contains("is not a JSON object"), "{text}: {error}");
        }
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

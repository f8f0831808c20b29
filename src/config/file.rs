//! Reading a config file: every problem at once, each with its key and line.
//!
//! The text is parsed once with spans (`toml_edit`), so that a syntax error, an unknown key
//! and a value of the wrong type each point at their line. The known keys are the fields of
//! [`RawConfig`] and of its sections, read from their `Deserialize` implementations, so they
//! are not listed again here. Each value is then deserialised on its own, so that one wrong
//! value does not hide the next.

use std::path::Path;

use serde::de::{self, Deserialize, Visitor};
use toml_edit::{ImDocument, Item, TableLike};
use url::Url;

use super::{
    ConfigError, CredentialSettings, FilterSettings, RawConfig, ServiceSettings,
    REDACTED_URL_PASSWORD,
};

/// The keys of [`RawConfig`] that are tables, in the order of `sections` in [`RawConfig::parse`].
const SECTIONS: [&str; 3] = ["credentials", "filters", "service"];

impl RawConfig {
    /// Reads a TOML config file, and warns when it holds a secret that others may read.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file and listing every problem in it: a syntax error, each
    /// unknown key and each value of the wrong type, with its key and line.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("config file {}: {e}", path.display())))?;
        let origin = format!("config file {}", path.display());
        let config =
            RawConfig::parse(&text, &origin).map_err(|problems| ConfigError { problems })?;
        if let Some(warning) = exposed_secrets_warning(path, &config) {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// Parses the text of a config file; `origin` names it in the problems.
    ///
    /// # Errors
    ///
    /// Every problem, in the order of their lines, each starting with its key
    /// (`service.schedule`) and naming `origin` and its line.
    pub fn parse(text: &str, origin: &str) -> Result<RawConfig, Vec<String>> {
        let document = ImDocument::parse(text).map_err(|e| {
            let at = e
                .span()
                .map(|span| format!(" at {}", position(text, span.start)))
                .unwrap_or_default();
            vec![format!(
                "{origin}: TOML syntax error{at}: {}",
                e.message().trim_end().replace('\n', "; ")
            )]
        })?;
        let sections = [
            fields_of::<CredentialSettings>(),
            fields_of::<FilterSettings>(),
            fields_of::<ServiceSettings>(),
        ];
        let mut problems = Vec::new();
        let top: &dyn TableLike = document.as_table();
        check_keys(text, top, None, fields_of::<RawConfig>(), &mut problems);
        for (section, fields) in SECTIONS.into_iter().zip(sections) {
            if let Some(table) = top.get(section).and_then(Item::as_table_like) {
                check_keys(text, table, Some(section), fields, &mut problems);
            }
        }
        if !problems.is_empty() {
            problems.sort_by_key(|(offset, _)| *offset);
            return Err(problems
                .into_iter()
                .map(|(offset, problem)| {
                    format!("{problem} ({origin}, {})", position(text, offset))
                })
                .collect());
        }
        match toml::from_str::<RawConfig>(text) {
            Ok(config) => Ok(config),
            // Unreachable when every key was checked alone; said plainly if not.
            Err(e) => Err(vec![format!("{origin}: {}", e.message())]),
        }
    }

    /// Whether the database URL holds a password.
    fn has_url_password(&self) -> bool {
        self.database_url()
            .and_then(|u| Url::parse(u).ok())
            .is_some_and(|u| u.password().is_some_and(|p| p != REDACTED_URL_PASSWORD))
    }
}

/// Checks each key of `table` (the top level when `section` is `None`): that it is one of
/// `fields`, and that its value deserialises, alone, into a [`RawConfig`]. Each problem is
/// pushed with the byte offset of its key.
fn check_keys(
    text: &str,
    table: &dyn TableLike,
    section: Option<&str>,
    fields: &[&str],
    problems: &mut Vec<(usize, String)>,
) {
    for (name, item) in table.iter() {
        let key = match section {
            Some(section) => format!("{section}.{name}"),
            None => name.to_owned(),
        };
        let offset = table
            .get_key_value(name)
            .and_then(|(k, _)| k.span())
            .or_else(|| item.span())
            .map_or(text.len(), |span| span.start);
        if !fields.contains(&name) {
            let hint = match closest(name, fields) {
                Some(field) => format!("did you mean {field}?"),
                None => format!("the keys here are {}", fields.join(", ")),
            };
            problems.push((offset, format!("{key}: unknown key; {hint}")));
            continue;
        }
        if section.is_none() && SECTIONS.contains(&name) {
            // A section: its keys are checked one by one.
            if !item.is_table_like() {
                problems.push((offset, format!("{key}: must be a table ([{key}])")));
            }
            continue;
        }
        let mut alone = toml_edit::DocumentMut::new();
        match section {
            Some(section) => {
                let mut table = toml_edit::Table::new();
                table.insert(name, item.clone());
                alone.insert(section, Item::Table(table));
            }
            None => {
                alone.insert(name, item.clone());
            }
        }
        if let Err(e) = toml::from_str::<RawConfig>(&alone.to_string()) {
            problems.push((offset, format!("{key}: {}", e.message().trim_end())));
        }
    }
}

/// The field nearest to `name` by edit distance, if it is near enough to be a misspelling.
fn closest<'a>(name: &str, fields: &[&'a str]) -> Option<&'a str> {
    fields
        .iter()
        .map(|field| (edit_distance(name, field), *field))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, field)| field)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// "line L, column C" of byte `offset` of `text`, both counted from 1.
fn position(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {column}")
}

/// The field names of a struct, as its `Deserialize` implementation declares them.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    /// A deserializer that only records the fields it is asked for.
    struct Fields<'a>(&'a mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Fields<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

/// A warning, as ssh gives for a private key, when the config file at `path` holds a secret
/// and its permissions let its group or others read it. Names the keys, never the values.
#[cfg(unix)]
pub fn exposed_secrets_warning(path: &Path, config: &RawConfig) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let mut keys = config.credentials.secret_keys();
    if config.has_url_password() {
        keys.push("database_url (a password)");
    }
    if keys.is_empty() {
        return None;
    }
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    let readers = match (mode & 0o040 != 0, mode & 0o004 != 0) {
        (false, false) => return None,
        (true, false) => "its group",
        (false, true) => "everyone",
        (true, true) => "its group and everyone",
    };
    Some(format!(
        "config file {} holds {} but its permissions {mode:04o} let {readers} read it: \
         run `chmod 600 {}`, or pass secrets in the environment",
        path.display(),
        keys.join(", "),
        path.display()
    ))
}

/// Permissions are not checked where they are not Unix modes.
#[cfg(not(unix))]
pub fn exposed_secrets_warning(_path: &Path, _config: &RawConfig) -> Option<String> {
    None
}

//! Configuration: command-line flags, environment variables and a TOML file, in that order
//! of precedence over the defaults, validated into one [`Config`].
//!
//! Each key is declared once, as a field of [`RawConfig`] (or of its sections
//! [`FilterSettings`], [`CredentialSettings`] and [`ServiceSettings`]): clap reads the field
//! from its flag and variable, serde from the file, and both fill the same all-`Option` type.
//! The layers are merged by serialising each to a TOML table and laying one over the other
//! ([`merge`]), the defaults being the lowest layer ([`RawConfig::defaults`], built from named
//! constants that the help text shows too). [`SyncConfig::build`] and [`ServiceConfig::build`]
//! validate the merged layer and report every problem at once, each naming its key; they also
//! fill in the values derived from others, so that `config check` prints, by serialising it,
//! the configuration as it will be used, as a file that can be fed back.
//!
//! # Layout
//!
//! - this file: the one declaration of every key, the layers and their merge.
//! - [`mod@file`]: reading a config file, with every problem's key and line.
//! - [`sync`]: [`SyncConfig`], what a sync needs, and the credentials.
//! - [`service`]: [`ServiceConfig`], what `hss-sync run` needs besides.

pub mod file;
pub mod service;
pub mod sync;

use std::path::PathBuf;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::endpoint::{DEFAULT_EPS_ENDPOINT, DEFAULT_IAM_ENDPOINT};
use crate::api::retry::{DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, DEFAULT_MAX_RETRIES};
use crate::api::DEFAULT_REQUEST_TIMEOUT;
use crate::sync::plan::{DEFAULT_MAX_DELETE_MIN, DEFAULT_MAX_DELETE_PERCENT};
use crate::sync::{
    DEFAULT_CONCURRENCY, DEFAULT_HISTORY_IGNORE_FIELDS, DEFAULT_MAX_REWALKS, DEFAULT_PAGE_LIMIT,
};

pub use file::exposed_secrets_warning;
pub use service::{ServiceConfig, ServiceSettings};
pub use sync::{CredentialConfig, SyncConfig};

/// The database used when none is given: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hss-sync.db";

/// ListRegistry requests a minute by default: HSS documents five calls a minute per user
/// per API (HSS API reference, "Limitations and Constraints").
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = 5;

/// What `config check` prints in place of a secret. Fed back in a file, a secret that is still
/// this placeholder is an error where it would be used, and ignored where the environment gives
/// the secret (the environment wins over the file); a database URL's password is printed as
/// `***` and treated the same way.
pub const REDACTED: &str = "[redacted]";

/// The password `config check` prints in a database URL (as [`crate::store::redact_url`] hides it).
pub const REDACTED_URL_PASSWORD: &str = "***";

/// Environment variables read outside clap; the credentials are named as Huawei's own samples
/// name them.
pub mod env {
    /// Access key id.
    pub const ACCESS_KEY: &str = "CLOUD_SDK_AK";
    /// Secret access key.
    pub const SECRET_KEY: &str = "CLOUD_SDK_SK";
    /// Security token of temporary credentials.
    pub const SECURITY_TOKEN: &str = "CLOUD_SDK_SECURITY_TOKEN";
    /// An IAM token to send as `X-Auth-Token` instead of signing.
    pub const AUTH_TOKEN: &str = "HSS_SYNC_AUTH_TOKEN";
    /// IAM password login: the account (domain) name.
    pub const IAM_DOMAIN: &str = "HSS_SYNC_IAM_DOMAIN";
    /// IAM password login: the user name.
    pub const IAM_USER: &str = "HSS_SYNC_IAM_USER";
    /// IAM password login: the password.
    pub const IAM_PASSWORD: &str = "HSS_SYNC_IAM_PASSWORD";
    /// Huawei's SDK override of the IAM endpoint.
    pub const SDK_IAM_ENDPOINT: &str = "HUAWEICLOUD_SDK_IAM_ENDPOINT";
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// Every problem found, each starting with the key it concerns.
    pub problems: Vec<String>,
}

impl ConfigError {
    /// A single problem.
    pub fn one(problem: String) -> ConfigError {
        ConfigError {
            problems: vec![problem],
        }
    }
}

/// How requests are authenticated, as configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// AK/SK when both are set, else an IAM password when user and password are set, else a given token.
    #[default]
    Auto,
    /// AK/SK signing (`CLOUD_SDK_AK`, `CLOUD_SDK_SK`, optional `CLOUD_SDK_SECURITY_TOKEN`).
    Aksk,
    /// A given IAM token (`HSS_SYNC_AUTH_TOKEN`).
    Token,
    /// IAM tokens fetched with a password (`HSS_SYNC_IAM_DOMAIN`, `_USER`, `_PASSWORD`).
    Iam,
}

/// A help line that ends with the default it names, as clap shows its own defaults.
fn with_default(help: &str, default: impl std::fmt::Display) -> String {
    format!("{help} [default: {default}]")
}

/// One layer of configuration: the config file, or what the flags and the environment said
/// (clap merges those two), or the defaults. This struct is the one declaration of every key:
/// its fields are the file's keys, clap makes each a flag (`--page-limit` for `page_limit`)
/// with the variable named in its `env`, and `None` (or an empty list) defers to the layer
/// below.
#[derive(Clone, Debug, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Huawei Cloud region, for example cn-north-4; picks the endpoint https://hss.{region}.myhuaweicloud.com.
    #[arg(long, env = "HSS_SYNC_REGION")]
    pub region: Option<String>,

    /// Project id to sync (repeatable, or comma-separated in the variable).
    #[arg(
        long = "project-id",
        env = "HSS_SYNC_PROJECT_IDS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub project_ids: Vec<String>,

    /// Enterprise project id (repeatable); default all_granted_eps: one scope per project covering all.
    #[arg(
        long = "enterprise-project-id",
        env = "HSS_SYNC_ENTERPRISE_PROJECT_IDS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enterprise_project_ids: Vec<String>,

    /// Find the account's projects (IAM) and enterprise projects (EPS) and sync them all.
    #[arg(long, env = "HSS_SYNC_DISCOVER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub discover: Option<bool>,

    /// HSS base URL for every region, overriding the region's (private endpoints, proxies, the simulator).
    #[arg(long, env = "HSS_SYNC_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// IAM endpoint for tokens and project discovery.
    #[arg(long, env = "HSS_SYNC_IAM_ENDPOINT", value_name = "URL",
          help = with_default("IAM endpoint for tokens and project discovery", DEFAULT_IAM_ENDPOINT))]
    pub iam_endpoint: Option<String>,

    /// EPS endpoint for enterprise project discovery.
    #[arg(long, env = "HSS_SYNC_EPS_ENDPOINT", value_name = "URL",
          help = with_default("EPS endpoint for enterprise project discovery", DEFAULT_EPS_ENDPOINT))]
    pub eps_endpoint: Option<String>,

    /// Account (domain) id, sent as X-Domain-Id to IAM and EPS with AK/SK.
    #[arg(long, env = "HSS_SYNC_DOMAIN_ID", value_name = "ID")]
    pub domain_id: Option<String>,

    /// How to authenticate: auto picks AK/SK, then an IAM password, then a given token, by which are set.
    #[arg(long, env = "HSS_SYNC_AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,

    /// Where the database is.
    #[command(flatten)]
    #[serde(
        rename = "database_url",
        default,
        skip_serializing_if = "DatabaseArgs::is_unset"
    )]
    pub database: DatabaseArgs,

    /// Items per ListRegistry page.
    #[arg(long, env = "HSS_SYNC_PAGE_LIMIT", value_name = "N",
          help = with_default("Items per ListRegistry page, 10 to 200", DEFAULT_PAGE_LIMIT))]
    pub page_limit: Option<u32>,

    /// ListRegistry requests a minute per credential and endpoint; 0 for no limit.
    #[arg(long, env = "HSS_SYNC_MAX_REQUESTS_PER_MINUTE", value_name = "N",
          help = with_default("ListRegistry requests a minute per credential and endpoint; 0 for no limit (HSS documents 5)", DEFAULT_MAX_REQUESTS_PER_MINUTE))]
    pub max_requests_per_minute: Option<u32>,

    /// ListRegistry requests in flight at once (scopes walked at once, and pages of a scope on the slots left).
    #[arg(long, env = "HSS_SYNC_CONCURRENCY", value_name = "N",
          help = with_default("ListRegistry requests in flight at once: scopes walked at once, and pages of a scope on the slots no scope waits for", DEFAULT_CONCURRENCY))]
    pub concurrency: Option<usize>,

    /// Retries of a failed request.
    #[arg(long, env = "HSS_SYNC_MAX_RETRIES", value_name = "N",
          help = with_default("Retries of a failed request (throttled, 5xx, network, bad JSON; never bad credentials)", DEFAULT_MAX_RETRIES))]
    pub max_retries: Option<u32>,

    /// First retry delay in milliseconds.
    #[arg(long, env = "HSS_SYNC_RETRY_BASE_DELAY_MS", value_name = "MS",
          help = with_default("First retry delay in milliseconds; doubles each retry, with jitter", DEFAULT_BASE_DELAY.as_millis()))]
    pub retry_base_delay_ms: Option<u64>,

    /// Longest retry delay in seconds.
    #[arg(long, env = "HSS_SYNC_RETRY_MAX_DELAY_SECONDS", value_name = "SECONDS",
          help = with_default("Longest retry delay in seconds, Retry-After included", DEFAULT_MAX_DELAY.as_secs()))]
    pub retry_max_delay_seconds: Option<u64>,

    /// Walks again of a scope whose pages did not add up.
    #[arg(long, env = "HSS_SYNC_MAX_REWALKS", value_name = "N",
          help = with_default("Walks again of a scope whose pages did not add up (the list changed mid-walk)", DEFAULT_MAX_REWALKS))]
    pub max_rewalks: Option<u32>,

    /// Walk a scope a second time before marking deleted the registries it missed.
    #[arg(long, env = "HSS_SYNC_CONFIRM_DELETIONS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL",
          help = with_default("Walk a scope a second time before marking deleted the registries it missed (offset paging can skip an item unnoticed while the list changes)", DEFAULT_CONFIRM_DELETIONS))]
    pub confirm_deletions: Option<bool>,

    /// Hold a scope's deletions above this percentage of its live registries.
    #[arg(long, env = "HSS_SYNC_MAX_DELETE_PERCENT", value_name = "PERCENT",
          help = with_default("Hold a scope's deletions when its walk would retire more than this percentage of its live registries", DEFAULT_MAX_DELETE_PERCENT))]
    pub max_delete_percent: Option<u32>,

    /// Never hold fewer deletions than this.
    #[arg(long, env = "HSS_SYNC_MAX_DELETE_MIN", value_name = "N",
          help = with_default("Never hold fewer deletions than this, however large a share of a scope they are", DEFAULT_MAX_DELETE_MIN))]
    pub max_delete_min: Option<u32>,

    /// Registry fields whose changes alone update the row without writing a history version.
    #[arg(long, env = "HSS_SYNC_HISTORY_IGNORE_FIELDS", value_delimiter = ',', value_name = "FIELD",
          help = with_default("Registry fields whose changes alone update the row but write no history version (comma-separated; \"\" for none)", DEFAULT_HISTORY_IGNORE_FIELDS.join(",")))]
    pub history_ignore_fields: Option<Vec<String>>,

    /// Retire what complete walks missed this run, even past --max-delete-percent (for one run, after checking that the registries are really gone).
    #[arg(long)]
    #[serde(skip)]
    pub accept_deletions: bool,

    /// Per-request timeout in seconds.
    #[arg(long, env = "HSS_SYNC_REQUEST_TIMEOUT_SECONDS", value_name = "SECONDS",
          help = with_default("Per-request timeout in seconds", DEFAULT_REQUEST_TIMEOUT.as_secs()))]
    pub request_timeout_seconds: Option<u64>,

    /// PEM file of extra CA certificates to trust.
    #[arg(long, env = "HSS_SYNC_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Accept any TLS certificate. Dangerous: only for a test endpoint you control.
    #[arg(long, env = "HSS_SYNC_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub insecure_skip_tls_verify: Option<bool>,

    /// `[credentials]`: the environment's own variables ([`mod@env`]) or the file, never flags.
    #[arg(skip)]
    #[serde(default, skip_serializing_if = "CredentialSettings::is_empty")]
    pub credentials: CredentialSettings,

    /// `[filters]`.
    #[command(flatten)]
    #[serde(default, skip_serializing_if = "FilterSettings::is_empty")]
    pub filters: FilterSettings,

    /// `[service]`: flags of `hss-sync run` only (`RunArgs` flattens [`ServiceSettings`]).
    #[arg(skip)]
    #[serde(default)]
    pub service: ServiceSettings,
}

/// Flags and environment: the same struct as the file's, so that no key is declared twice.
pub type Overrides = RawConfig;

/// Whether a second walk confirms deletions unless told otherwise.
pub const DEFAULT_CONFIRM_DELETIONS: bool = true;

impl RawConfig {
    /// The lowest layer: every key that has a default, at its default. Keys whose default is
    /// derived from others (the endpoints, `max_run_age_seconds`, the enterprise projects) are
    /// filled in by the builds.
    pub fn defaults() -> RawConfig {
        RawConfig {
            discover: Some(false),
            auth_mode: Some(AuthMode::Auto),
            database: DatabaseArgs {
                database_url: Some(DEFAULT_DATABASE_URL.to_owned()),
            },
            page_limit: Some(DEFAULT_PAGE_LIMIT),
            max_requests_per_minute: Some(DEFAULT_MAX_REQUESTS_PER_MINUTE),
            concurrency: Some(DEFAULT_CONCURRENCY),
            max_retries: Some(DEFAULT_MAX_RETRIES),
            retry_base_delay_ms: u64::try_from(DEFAULT_BASE_DELAY.as_millis()).ok(),
            retry_max_delay_seconds: Some(DEFAULT_MAX_DELAY.as_secs()),
            max_rewalks: Some(DEFAULT_MAX_REWALKS),
            confirm_deletions: Some(DEFAULT_CONFIRM_DELETIONS),
            max_delete_percent: Some(DEFAULT_MAX_DELETE_PERCENT),
            max_delete_min: u32::try_from(DEFAULT_MAX_DELETE_MIN).ok(),
            history_ignore_fields: Some(DEFAULT_HISTORY_IGNORE_FIELDS.map(str::to_owned).to_vec()),
            request_timeout_seconds: Some(DEFAULT_REQUEST_TIMEOUT.as_secs()),
            insecure_skip_tls_verify: Some(false),
            service: ServiceSettings::defaults(),
            ..RawConfig::default()
        }
    }

    /// The database URL as given, if it was.
    pub fn database_url(&self) -> Option<&str> {
        self.database.database_url.as_deref()
    }
}

/// `--database-url`, shared by every command that opens the database; the file's key is
/// `database_url`.
#[derive(Clone, Debug, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true,
          help = with_default("Database URL: sqlite://PATH or postgres://USER@HOST/DB", DEFAULT_DATABASE_URL))]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    fn is_unset(&self) -> bool {
        self.database_url.is_none()
    }
}

/// `[filters]`: sent with every ListRegistry request; a filtered sync never marks anything deleted.
#[derive(Clone, Debug, Default, PartialEq, Args, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Only registries whose name contains this (a filtered sync never marks anything deleted).
    #[arg(long, env = "HSS_SYNC_REGISTRY_NAME")]
    pub registry_name: Option<String>,

    /// Only these registry types, comma-separated (Harbor, Jfrog, SwrPrivate, SwrShared, SwrEnterprise, Other).
    #[arg(long, env = "HSS_SYNC_REGISTRY_TYPE")]
    pub registry_type: Option<String>,

    /// Only registries at this address.
    #[arg(long, env = "HSS_SYNC_REGISTRY_ADDR")]
    pub registry_addr: Option<String>,

    /// Only registries in this status (success, fail, accessing).
    #[arg(long = "status", env = "HSS_SYNC_STATUS")]
    pub status: Option<String>,
}

impl FilterSettings {
    fn is_empty(&self) -> bool {
        self == &FilterSettings::default()
    }
}

/// `[credentials]` of the config file; the environment's variables ([`mod@env`]) win over it.
/// Prefer the environment: a file with secrets must be readable by its owner only.
/// Serialised, every secret is [`REDACTED`]; `Debug` hides them too.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialSettings {
    /// `access_key`.
    pub access_key: Option<String>,
    /// `secret_key`.
    pub secret_key: Option<SecretString>,
    /// `security_token`.
    pub security_token: Option<SecretString>,
    /// `auth_token`.
    pub auth_token: Option<SecretString>,
    /// `iam_domain`.
    pub iam_domain: Option<String>,
    /// `iam_user`.
    pub iam_user: Option<String>,
    /// `iam_password`.
    pub iam_password: Option<SecretString>,
}

impl CredentialSettings {
    fn is_empty(&self) -> bool {
        self.redacted() == RedactedCredentials::default()
    }

    /// The same keys, with each secret that is set replaced by [`REDACTED`].
    fn redacted(&self) -> RedactedCredentials<'_> {
        let hidden = |s: &Option<SecretString>| s.as_ref().map(|_| REDACTED);
        RedactedCredentials {
            access_key: self.access_key.as_deref(),
            secret_key: hidden(&self.secret_key),
            security_token: hidden(&self.security_token),
            auth_token: hidden(&self.auth_token),
            iam_domain: self.iam_domain.as_deref(),
            iam_user: self.iam_user.as_deref(),
            iam_password: hidden(&self.iam_password),
        }
    }

    /// The keys of the secrets that are set (never their values).
    /// The placeholder [`REDACTED`] is not a secret.
    fn secret_keys(&self) -> Vec<&'static str> {
        [
            ("secret_key", &self.secret_key),
            ("security_token", &self.security_token),
            ("auth_token", &self.auth_token),
            ("iam_password", &self.iam_password),
        ]
        .into_iter()
        .filter(|(_, value)| {
            value
                .as_ref()
                .is_some_and(|v| v.expose_secret() != REDACTED)
        })
        .map(|(key, _)| key)
        .collect()
    }
}

/// What [`CredentialSettings`] shows of itself: its serialised and `Debug` form.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename = "CredentialSettings")]
struct RedactedCredentials<'a> {
    access_key: Option<&'a str>,
    secret_key: Option<&'a str>,
    security_token: Option<&'a str>,
    auth_token: Option<&'a str>,
    iam_domain: Option<&'a str>,
    iam_user: Option<&'a str>,
    iam_password: Option<&'a str>,
}

impl Serialize for CredentialSettings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

impl std::fmt::Debug for CredentialSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.redacted().fmt(f)
    }
}

impl PartialEq for CredentialSettings {
    /// Equal when the same keys are set and the non-secret ones agree; secrets are not compared.
    fn eq(&self, other: &Self) -> bool {
        self.redacted() == other.redacted()
    }
}

/// Lays the layers over each other, highest first: a key takes the value of the first layer
/// that sets it. Credentials are taken whole from the first layer that has any (only the file
/// has them), and `accept_deletions` from the first layer (only flags set it).
///
/// # Errors
///
/// A problem naming the layer that does not fit in TOML (an integer above `i64::MAX`).
pub fn merge(layers: &[&RawConfig]) -> Result<RawConfig, String> {
    let mut merged = toml::Table::new();
    for layer in layers.iter().rev() {
        let table = toml::Table::try_from(layer).map_err(|e| too_large(layer, e))?;
        lay_over(&mut merged, table);
    }
    let mut merged: RawConfig = from_table(merged)?;
    merged.credentials = layers
        .iter()
        .map(|layer| &layer.credentials)
        .find(|c| !c.is_empty())
        .cloned()
        .unwrap_or_default();
    merged.accept_deletions = layers.first().is_some_and(|l| l.accept_deletions);
    Ok(merged)
}

/// The problem of a layer that TOML cannot hold, naming its key: an integer above `i64::MAX`
/// is the one value a flag can give that TOML cannot.
fn too_large(layer: &RawConfig, error: toml::ser::Error) -> String {
    fn find(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::Number(n) if n.as_i64().is_none() && n.as_u64().is_some() => {
                Some(format!("{path}: {n} is larger than {}", i64::MAX))
            }
            serde_json::Value::Object(map) => map.iter().find_map(|(key, value)| {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                find(value, &path)
            }),
            _ => None,
        }
    }
    serde_json::to_value(layer)
        .ok()
        .and_then(|value| find(&value, ""))
        .unwrap_or_else(|| format!("configuration: {error}"))
}

/// Puts every key of `over` into `under`, table by table.
fn lay_over(under: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (under.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => lay_over(below, above),
            (_, value) => {
                under.insert(key, value);
            }
        }
    }
}

fn from_table<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| format!("configuration: {}", e.message()))
}

/// The configuration of `hss-sync run`: a sync's and the service's, validated together, and
/// the effective keys they were built from.
#[derive(Clone, Debug)]
pub struct Config {
    /// What each sync needs.
    pub sync: SyncConfig,
    /// What the service needs besides.
    pub service: ServiceConfig,
    /// Every key as it will be used, defaults and derived values included, for `config check`.
    pub effective: RawConfig,
}

impl Config {
    /// Merges flags and environment (`overrides`, plus the variables read through
    /// `lookup_env`) over the file (`file`) over the defaults, then validates.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem of both sections, each naming its key.
    pub fn build(
        overrides: &RawConfig,
        file: &RawConfig,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut merged =
            merge(&[overrides, file, &RawConfig::defaults()]).map_err(ConfigError::one)?;
        let service = ServiceConfig::build(&mut merged.service);
        let sync = SyncConfig::build_merged(&mut merged, lookup_env);
        match (sync, service) {
            (Ok(sync), Ok(service)) => Ok(Config {
                sync,
                service,
                effective: merged,
            }),
            (sync, service) => {
                let mut problems = Vec::new();
                problems.extend(sync.err().map(|e| e.problems).unwrap_or_default());
                problems.extend(service.err().map(|e| e.problems).unwrap_or_default());
                Err(ConfigError { problems })
            }
        }
    }

    /// The effective configuration as a TOML file, secrets redacted: what `config check`
    /// prints, and a file that `--config` takes back.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(&self.effective)
            .unwrap_or_else(|e| format!("# the configuration could not be written as TOML: {e}\n"));
        format!(
            "# effective configuration: flags > environment > config file > defaults\n\
             # auth: {}\n\
             # secrets are shown as \"{REDACTED}\" (a database password as \"{REDACTED_URL_PASSWORD}\"): \
             fed back, give them in the environment\n\n{body}",
            self.sync.auth_description()
        )
    }
}

/// The database URL of `overrides` over `file` over the default, by the same layering as
/// every other key (for the commands that only open the database).
///
/// # Errors
///
/// [`ConfigError`] when the layers cannot be merged.
pub fn database_url(overrides: &DatabaseArgs, file: &RawConfig) -> Result<String, ConfigError> {
    let overrides = RawConfig {
        database: overrides.clone(),
        ..RawConfig::default()
    };
    let merged = merge(&[&overrides, file, &RawConfig::defaults()]).map_err(ConfigError::one)?;
    Ok(merged
        .database
        .database_url
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))
}

#[cfg(test)]
mod tests;

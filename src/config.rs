//! Configuration: command-line flags, environment variables and a TOML file, in that order
//! of precedence, validated into one [`SyncConfig`].
//!
//! [`RawConfig`] is the file's shape (every key optional); [`SyncConfig::build`] merges the
//! sources and reports every problem at once, each naming its key.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::api::endpoint;
use crate::api::{Auth, RegistryFilters, DEFAULT_REQUEST_TIMEOUT};
use crate::signer::Credentials;
use crate::store::{redact_url, BackendKind};
use crate::sync::{Scope, ALL_GRANTED_EPS, DEFAULT_PAGE_LIMIT, PAGE_LIMIT_RANGE};

/// The database used when none is given: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hss-sync.db";

/// Environment variable names, as Huawei's own samples name the credentials.
pub mod env {
    /// Access key id.
    pub const ACCESS_KEY: &str = "CLOUD_SDK_AK";
    /// Secret access key.
    pub const SECRET_KEY: &str = "CLOUD_SDK_SK";
    /// Security token of temporary credentials.
    pub const SECURITY_TOKEN: &str = "CLOUD_SDK_SECURITY_TOKEN";
    /// An IAM token to send as `X-Auth-Token` instead of signing.
    pub const AUTH_TOKEN: &str = "HSS_SYNC_AUTH_TOKEN";
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    /// Every problem found, each starting with the key it concerns.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> ConfigError {
        ConfigError {
            problems: vec![problem],
        }
    }
}

/// The config file, as written. Every key is optional; flags and environment win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `region`.
    pub region: Option<String>,
    /// `project_ids`.
    pub project_ids: Option<Vec<String>>,
    /// `enterprise_project_ids`.
    pub enterprise_project_ids: Option<Vec<String>>,
    /// `endpoint`.
    pub endpoint: Option<String>,
    /// `database_url`.
    pub database_url: Option<String>,
    /// `page_limit`.
    pub page_limit: Option<u32>,
    /// `request_timeout_seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// `[credentials]`.
    #[serde(default)]
    pub credentials: RawCredentials,
    /// `[filters]`.
    #[serde(default)]
    pub filters: RawFilters,
}

/// `[credentials]` of the config file. Prefer the environment: a file with secrets must be
/// readable by its owner only.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// `access_key`.
    pub access_key: Option<String>,
    /// `secret_key`.
    pub secret_key: Option<SecretString>,
    /// `security_token`.
    pub security_token: Option<SecretString>,
    /// `auth_token`.
    pub auth_token: Option<SecretString>,
}

impl std::fmt::Debug for RawCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCredentials")
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// `[filters]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilters {
    /// `registry_name`.
    pub registry_name: Option<String>,
    /// `registry_type`.
    pub registry_type: Option<String>,
    /// `registry_addr`.
    pub registry_addr: Option<String>,
    /// `status`.
    pub status: Option<String>,
}

impl RawConfig {
    /// Reads a TOML config file.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the file when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<RawConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one(format!("config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            ConfigError::one(format!("config file {}: {}", path.display(), e.message()))
        })
    }
}

/// What flags and the environment said (clap merges those two); `None` defers to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--region`.
    pub region: Option<String>,
    /// `--project-id`.
    pub project_ids: Vec<String>,
    /// `--enterprise-project-id`.
    pub enterprise_project_ids: Vec<String>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--page-limit`.
    pub page_limit: Option<u32>,
    /// `--request-timeout-seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// `--registry-name` etc.
    pub filters: RegistryFilters,
}

/// A validated configuration for a sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The region.
    pub region: String,
    /// The HSS endpoint.
    pub endpoint: Url,
    /// Every scope, project by project.
    pub scopes: Vec<Scope>,
    /// The database URL (may hold a password: print [`SyncConfig::database_url_redacted`]).
    pub database_url: String,
    /// Page size.
    pub page_limit: u32,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Filters.
    pub filters: RegistryFilters,
    /// How requests are authenticated.
    pub auth: Auth,
}

impl SyncConfig {
    /// Merges flags and environment (`overrides`, plus the secret variables read through
    /// `lookup_env`) over the file (`file`), then validates.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem, each naming its key.
    pub fn build(
        overrides: Overrides,
        file: RawConfig,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<SyncConfig, ConfigError> {
        let mut problems = Vec::new();
        let region = overrides.region.or(file.region).unwrap_or_default();
        if region.is_empty() {
            problems.push(
                "region: missing (set --region, HSS_SYNC_REGION or `region` in the config file)"
                    .to_owned(),
            );
        }
        let explicit_endpoint = match overrides.endpoint.or(file.endpoint) {
            Some(text) => match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    problems.push(format!("endpoint: {text:?} is not an http(s) URL"));
                    None
                }
            },
            None => None,
        };
        let endpoint = if region.is_empty() {
            None
        } else {
            endpoint::resolve_hss_endpoint(&region, explicit_endpoint.as_ref(), &lookup_env)
                .map_err(|e| problems.push(format!("endpoint: {e}")))
                .ok()
        };
        let project_ids = non_empty_or(overrides.project_ids, file.project_ids.unwrap_or_default());
        if project_ids.is_empty() {
            problems.push(
                "project_ids: none given (set --project-id, HSS_SYNC_PROJECT_IDS or `project_ids` in the config file)"
                    .to_owned(),
            );
        }
        let enterprise_project_ids = non_empty_or(
            overrides.enterprise_project_ids,
            file.enterprise_project_ids.unwrap_or_default(),
        );
        let enterprise_project_ids = if enterprise_project_ids.is_empty() {
            vec![ALL_GRANTED_EPS.to_owned()]
        } else {
            enterprise_project_ids
        };
        if enterprise_project_ids.len() > 1
            && enterprise_project_ids.iter().any(|e| e == ALL_GRANTED_EPS)
        {
            problems.push(format!(
                "enterprise_project_ids: {ALL_GRANTED_EPS} already covers every enterprise project; \
                 give either it or specific ids, not both (their registries would be counted twice)"
            ));
        }
        for (key, values, max) in [
            ("project_ids", &project_ids, 64),
            ("enterprise_project_ids", &enterprise_project_ids, 256),
        ] {
            for value in values.iter() {
                if value.is_empty()
                    || value.len() > max
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    problems.push(format!("{key}: {value:?} is not a valid id (1 to {max} letters, digits, '-' or '_')"));
                }
            }
        }
        let page_limit = overrides
            .page_limit
            .or(file.page_limit)
            .unwrap_or(DEFAULT_PAGE_LIMIT);
        if !PAGE_LIMIT_RANGE.contains(&page_limit) {
            problems.push(format!(
                "page_limit: {page_limit} is outside {}..={} (the range ListRegistry accepts)",
                PAGE_LIMIT_RANGE.start(),
                PAGE_LIMIT_RANGE.end()
            ));
        }
        let timeout_seconds = overrides
            .request_timeout_seconds
            .or(file.request_timeout_seconds);
        if timeout_seconds == Some(0) {
            problems.push("request_timeout_seconds: must be at least 1".to_owned());
        }
        let request_timeout = timeout_seconds.map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs);
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if let Err(e) = BackendKind::from_url(&database_url) {
            problems.push(format!("database_url: {e}"));
        }
        let auth = build_auth(&file.credentials, &lookup_env)
            .map_err(|p| problems.push(p))
            .ok();
        let filters = RegistryFilters {
            registry_name: overrides
                .filters
                .registry_name
                .or(file.filters.registry_name),
            registry_type: overrides
                .filters
                .registry_type
                .or(file.filters.registry_type),
            registry_addr: overrides
                .filters
                .registry_addr
                .or(file.filters.registry_addr),
            status: overrides.filters.status.or(file.filters.status),
        };
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }
        let mut scopes = Vec::new();
        for project_id in dedup(project_ids) {
            for enterprise_project_id in dedup(enterprise_project_ids.clone()) {
                scopes.push(Scope {
                    region: region.clone(),
                    project_id: project_id.clone(),
                    enterprise_project_id,
                });
            }
        }
        Ok(SyncConfig {
            region,
            endpoint: endpoint.expect("checked above"),
            scopes,
            database_url,
            page_limit,
            request_timeout,
            filters,
            auth: auth.expect("checked above"),
        })
    }

    /// The database URL with any password hidden.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// A description of the auth mode without secrets, for the start-up log.
    pub fn auth_description(&self) -> String {
        match &self.auth {
            Auth::AkSk(c) if c.security_token.is_some() => {
                format!(
                    "AK/SK signing with temporary credentials (access key {})",
                    mask(&c.access_key)
                )
            }
            Auth::AkSk(c) => format!("AK/SK signing (access key {})", mask(&c.access_key)),
            Auth::Token(_) => "IAM token (X-Auth-Token)".to_owned(),
        }
    }
}

fn build_auth(
    file: &RawCredentials,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<Auth, String> {
    use secrecy::ExposeSecret;
    let from_env = |name: &str| lookup_env(name).filter(|v| !v.is_empty());
    let access_key = from_env(env::ACCESS_KEY).or_else(|| file.access_key.clone());
    let secret_key = from_env(env::SECRET_KEY).or_else(|| {
        file.secret_key
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
    });
    let security_token = from_env(env::SECURITY_TOKEN).or_else(|| {
        file.security_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
    });
    let auth_token = from_env(env::AUTH_TOKEN).or_else(|| {
        file.auth_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned())
    });
    match (access_key, secret_key, auth_token) {
        (Some(ak), Some(sk), _) => {
            let credentials = Credentials::new(ak, sk).map_err(|e| format!("credentials: {e}"))?;
            Ok(Auth::AkSk(match security_token {
                Some(token) => credentials.with_security_token(token),
                None => credentials,
            }))
        }
        (Some(_), None, _) => Err(format!(
            "credentials: {} is set but {} is not",
            env::ACCESS_KEY,
            env::SECRET_KEY
        )),
        (None, Some(_), _) => Err(format!(
            "credentials: {} is set but {} is not",
            env::SECRET_KEY,
            env::ACCESS_KEY
        )),
        (None, None, Some(token)) => Ok(Auth::Token(SecretString::from(token))),
        (None, None, None) => Err(format!(
            "credentials: none found (set {} and {}, or {}; or [credentials] in the config file)",
            env::ACCESS_KEY,
            env::SECRET_KEY,
            env::AUTH_TOKEN
        )),
    }
}

/// The first four characters of an access key and its length, enough to tell keys apart.
fn mask(access_key: &str) -> String {
    let head: String = access_key.chars().take(4).collect();
    format!("{head}… ({} characters)", access_key.chars().count())
}

fn non_empty_or(first: Vec<String>, second: Vec<String>) -> Vec<String> {
    let trimmed = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let first = trimmed(first);
    if first.is_empty() {
        trimmed(second)
    } else {
        first
    }
}

fn dedup(values: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn overrides() -> Overrides {
        Overrides {
            region: Some("cn-north-4".to_owned()),
            project_ids: vec!["p1".to_owned(), "p2".to_owned(), "p1".to_owned()],
            ..Default::default()
        }
    }

    const KEYS: &[(&str, &str)] = &[
        ("CLOUD_SDK_AK", "AKEXAMPLE"),
        ("CLOUD_SDK_SK", "secret-value"),
    ];

    #[test]
    fn defaults_give_one_all_granted_scope_per_project_and_sqlite() {
        let config = SyncConfig::build(overrides(), RawConfig::default(), env_of(KEYS)).unwrap();
        let scopes: Vec<String> = config.scopes.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            scopes,
            [
                "cn-north-4/p1/all_granted_eps",
                "cn-north-4/p2/all_granted_eps"
            ]
        );
        assert_eq!(config.database_url, "sqlite://hss-sync.db");
        assert_eq!(config.page_limit, 200);
        assert_eq!(
            config.endpoint.as_str(),
            "https://hss.cn-north-4.myhuaweicloud.com/"
        );
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_fills_the_rest() {
        let file: RawConfig = toml::from_str(
            r#"
            region = "eu-west-101"
            project_ids = ["fileproject"]
            enterprise_project_ids = ["0", "ep1"]
            page_limit = 50
            [filters]
            registry_type = "Harbor"
            "#,
        )
        .unwrap();
        let config = SyncConfig::build(overrides(), file, env_of(KEYS)).unwrap();
        assert_eq!(config.region, "cn-north-4");
        assert_eq!(config.scopes.len(), 4);
        assert_eq!(config.page_limit, 50);
        assert_eq!(config.filters.registry_type.as_deref(), Some("Harbor"));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let bad = Overrides {
            region: None,
            project_ids: vec![],
            enterprise_project_ids: vec!["all_granted_eps".to_owned(), "ep1".to_owned()],
            page_limit: Some(500),
            database_url: Some("mysql://x".to_owned()),
            ..Default::default()
        };
        let error = SyncConfig::build(bad, RawConfig::default(), env_of(&[])).unwrap_err();
        let keys: Vec<&str> = error
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "region",
                "project_ids",
                "enterprise_project_ids",
                "page_limit",
                "database_url",
                "credentials"
            ]
        );
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug_output() {
        let config = SyncConfig::build(overrides(), RawConfig::default(), env_of(KEYS)).unwrap();
        assert!(!format!("{config:?}").contains("secret-value"));
        assert!(!config.auth_description().contains("secret-value"));
        let half = SyncConfig::build(
            overrides(),
            RawConfig::default(),
            env_of(&[("CLOUD_SDK_SK", "secret-value")]),
        )
        .unwrap_err();
        assert!(!half.to_string().contains("secret-value"));
        let file: RawConfig =
            toml::from_str("[credentials]\naccess_key = \"A\"\nsecret_key = \"secret-value\"")
                .unwrap();
        assert!(!format!("{file:?}").contains("secret-value"));
    }

    #[test]
    fn an_auth_token_is_used_when_no_access_key_is_set() {
        let config = SyncConfig::build(
            overrides(),
            RawConfig::default(),
            env_of(&[("HSS_SYNC_AUTH_TOKEN", "tok")]),
        )
        .unwrap();
        assert!(matches!(config.auth, Auth::Token(_)));
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        assert!(toml::from_str::<RawConfig>("regoin = \"x\"").is_err());
    }
}

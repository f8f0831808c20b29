//! Configuration: command-line flags, environment variables and a TOML file, in that order
//! of precedence, validated into one [`SyncConfig`].
//!
//! [`RawConfig`] is the file's shape (every key optional); [`SyncConfig::build`] merges the
//! sources and reports every problem at once, each naming its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::api::endpoint::{self, EndpointError};
use crate::api::{
    ClientSettings, IamPassword, RegistryFilters, RetryPolicy, DEFAULT_REQUEST_TIMEOUT,
};
use crate::signer::Credentials;
use crate::store::{redact_url, BackendKind};
use crate::sync::plan::{DeletionGuard, DEFAULT_MAX_DELETE_MIN, DEFAULT_MAX_DELETE_PERCENT};
use crate::sync::{
    Scope, ALL_GRANTED_EPS, DEFAULT_CONCURRENCY, DEFAULT_MAX_REWALKS, DEFAULT_PAGE_LIMIT,
    PAGE_LIMIT_RANGE,
};

/// The database used when none is given: a file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hss-sync.db";

/// ListRegistry requests a minute by default: HSS documents five calls a minute per user
/// per API (HSS API reference, "Limitations and Constraints").
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = 5;

/// IAM's global endpoint; it issues tokens and lists projects for every region.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";

/// EPS is a global service.
pub const DEFAULT_EPS_ENDPOINT: &str = "https://eps.myhuaweicloud.com";

/// Environment variable names; the credentials are named as Huawei's own samples name them.
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
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
    /// `discover`.
    pub discover: Option<bool>,
    /// `endpoint`.
    pub endpoint: Option<String>,
    /// `iam_endpoint`.
    pub iam_endpoint: Option<String>,
    /// `eps_endpoint`.
    pub eps_endpoint: Option<String>,
    /// `domain_id`.
    pub domain_id: Option<String>,
    /// `database_url`.
    pub database_url: Option<String>,
    /// `page_limit`.
    pub page_limit: Option<u32>,
    /// `request_timeout_seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// `max_retries`.
    pub max_retries: Option<u32>,
    /// `retry_base_delay_ms`.
    pub retry_base_delay_ms: Option<u64>,
    /// `retry_max_delay_seconds`.
    pub retry_max_delay_seconds: Option<u64>,
    /// `max_requests_per_minute`.
    pub max_requests_per_minute: Option<u32>,
    /// `concurrency`.
    pub concurrency: Option<usize>,
    /// `max_rewalks`.
    pub max_rewalks: Option<u32>,
    /// `confirm_deletions`.
    pub confirm_deletions: Option<bool>,
    /// `max_delete_percent`.
    pub max_delete_percent: Option<u32>,
    /// `max_delete_min`.
    pub max_delete_min: Option<u32>,
    /// `ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `insecure_skip_tls_verify`.
    pub insecure_skip_tls_verify: Option<bool>,
    /// `auth_mode`.
    pub auth_mode: Option<AuthMode>,
    /// `[credentials]`.
    #[serde(default)]
    pub credentials: RawCredentials,
    /// `[filters]`.
    #[serde(default)]
    pub filters: RawFilters,
    /// `[service]`, read by `hss-sync run`.
    #[serde(default)]
    pub service: RawService,
}

/// `[service]` of the config file: the daemon's settings.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// `schedule`.
    pub schedule: Option<String>,
    /// `run_at_start`.
    pub run_at_start: Option<bool>,
    /// `listen`.
    pub listen: Option<String>,
    /// `shutdown_deadline_seconds`.
    pub shutdown_deadline_seconds: Option<u64>,
    /// `max_run_age_seconds`.
    pub max_run_age_seconds: Option<u64>,
    /// `lease_seconds`.
    pub lease_seconds: Option<u64>,
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
    /// `iam_domain`.
    pub iam_domain: Option<String>,
    /// `iam_user`.
    pub iam_user: Option<String>,
    /// `iam_password`.
    pub iam_password: Option<SecretString>,
}

impl std::fmt::Debug for RawCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<SecretString>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("RawCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &hidden(&self.secret_key))
            .field("security_token", &hidden(&self.security_token))
            .field("auth_token", &hidden(&self.auth_token))
            .field("iam_domain", &self.iam_domain)
            .field("iam_user", &self.iam_user)
            .field("iam_password", &hidden(&self.iam_password))
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
        let config: RawConfig = toml::from_str(&text).map_err(|e| {
            ConfigError::one(format!("config file {}: {}", path.display(), e.message()))
        })?;
        if let Some(warning) = exposed_secrets_warning(path, &config) {
            tracing::warn!("{warning}");
        }
        Ok(config)
    }

    /// The keys of the secrets this file holds (never their values).
    fn secret_keys(&self) -> Vec<&'static str> {
        let c = &self.credentials;
        let mut keys = Vec::new();
        for (key, set) in [
            ("secret_key", c.secret_key.is_some()),
            ("security_token", c.security_token.is_some()),
            ("auth_token", c.auth_token.is_some()),
            ("iam_password", c.iam_password.is_some()),
        ] {
            if set {
                keys.push(key);
            }
        }
        let url_password = self
            .database_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok().and_then(|u| u.password().map(|_| ())));
        if url_password.is_some() {
            keys.push("database_url (a password)");
        }
        keys
    }
}

/// A warning, as ssh gives for a private key, when the config file at `path` holds a secret
/// and its permissions let its group or others read it. Names the keys, never the values.
#[cfg(unix)]
pub fn exposed_secrets_warning(path: &Path, config: &RawConfig) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;

    let keys = config.secret_keys();
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

/// What flags and the environment said (clap merges those two); `None` defers to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--region`.
    pub region: Option<String>,
    /// `--project-id`.
    pub project_ids: Vec<String>,
    /// `--enterprise-project-id`.
    pub enterprise_project_ids: Vec<String>,
    /// `--discover`.
    pub discover: Option<bool>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--iam-endpoint`.
    pub iam_endpoint: Option<String>,
    /// `--eps-endpoint`.
    pub eps_endpoint: Option<String>,
    /// `--domain-id`.
    pub domain_id: Option<String>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--page-limit`.
    pub page_limit: Option<u32>,
    /// `--request-timeout-seconds`.
    pub request_timeout_seconds: Option<u64>,
    /// `--max-retries`.
    pub max_retries: Option<u32>,
    /// `--retry-base-delay-ms`.
    pub retry_base_delay_ms: Option<u64>,
    /// `--retry-max-delay-seconds`.
    pub retry_max_delay_seconds: Option<u64>,
    /// `--max-requests-per-minute`.
    pub max_requests_per_minute: Option<u32>,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--max-rewalks`.
    pub max_rewalks: Option<u32>,
    /// `--confirm-deletions`.
    pub confirm_deletions: Option<bool>,
    /// `--max-delete-percent`.
    pub max_delete_percent: Option<u32>,
    /// `--max-delete-min`.
    pub max_delete_min: Option<u32>,
    /// `--accept-deletions`: for one run, never from the file.
    pub accept_deletions: bool,
    /// `--ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: Option<bool>,
    /// `--auth-mode`.
    pub auth_mode: Option<AuthMode>,
    /// `--registry-name` etc.
    pub filters: RegistryFilters,
}

/// The credentials to authenticate with, as configured.
#[derive(Clone, Debug)]
pub enum CredentialConfig {
    /// AK/SK signing.
    AkSk(Credentials),
    /// A given IAM token.
    Token(SecretString),
    /// IAM password login.
    IamPassword(IamPassword),
}

/// A validated configuration for a sync.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The region of the explicit project ids; with discovery, restricts it to one region.
    pub region: Option<String>,
    /// The HSS endpoint for every region, overriding the region table.
    pub explicit_endpoint: Option<Url>,
    /// Explicit project ids (in `region`).
    pub project_ids: Vec<String>,
    /// Explicit enterprise project ids; empty means discovered, or `all_granted_eps`.
    pub enterprise_project_ids: Vec<String>,
    /// Find projects (IAM) and enterprise projects (EPS) of the account.
    pub discover: bool,
    /// IAM, for tokens and project listing.
    pub iam_endpoint: Url,
    /// EPS, for enterprise project listing.
    pub eps_endpoint: Url,
    /// The account id, sent as `X-Domain-Id` to global services with AK/SK.
    pub domain_id: Option<String>,
    /// The database URL (may hold a password: print [`SyncConfig::database_url_redacted`]).
    pub database_url: String,
    /// Page size.
    pub page_limit: u32,
    /// Scopes walked at once.
    pub concurrency: usize,
    /// Re-walks of a scope whose pages did not add up.
    pub max_rewalks: u32,
    /// Walk a scope again before retiring registries it missed.
    pub confirm_deletions: bool,
    /// The guard against mass deletion.
    pub deletion_guard: DeletionGuard,
    /// HTTP client settings: timeouts, TLS, retries, rate.
    pub client: ClientSettings,
    /// Filters.
    pub filters: RegistryFilters,
    /// The credentials.
    pub credentials: CredentialConfig,
    /// How the credentials were chosen.
    pub auth_mode: AuthMode,
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
        let discover = overrides.discover.or(file.discover).unwrap_or(false);
        let region = overrides
            .region
            .or(file.region)
            .filter(|r| !r.trim().is_empty());
        if region.is_none() && !discover {
            problems.push(
                "region: missing (set --region, HSS_SYNC_REGION or `region` in the config file, or use --discover)"
                    .to_owned(),
            );
        }
        if let Some(region) = &region {
            if let Err(e) = endpoint::default_hss_endpoint(region) {
                problems.push(format!("region: {e}"));
            }
        }
        let explicit_endpoint = parse_url(
            "endpoint",
            overrides.endpoint.or(file.endpoint),
            &mut problems,
        );
        if let (Some(region), None) = (&region, &explicit_endpoint) {
            match endpoint::resolve_hss_endpoint(region, None, &lookup_env) {
                Err(e @ endpoint::EndpointError::UnknownRegion { .. }) => {
                    problems.push(format!("region: {e}"))
                }
                Err(e) => problems.push(format!("endpoint: {e}")),
                Ok(_) => {}
            }
        }
        let global_suffix_eu = region.as_deref() == Some("eu-west-101");
        let iam_endpoint = parse_url(
            "iam_endpoint",
            overrides
                .iam_endpoint
                .or(file.iam_endpoint)
                .or_else(|| lookup_env(env::SDK_IAM_ENDPOINT).filter(|v| !v.is_empty())),
            &mut problems,
        )
        .unwrap_or_else(|| {
            let default = if global_suffix_eu {
                "https://iam.eu-west-101.myhuaweicloud.eu"
            } else {
                DEFAULT_IAM_ENDPOINT
            };
            Url::parse(default).expect("constant url")
        });
        let eps_endpoint = parse_url(
            "eps_endpoint",
            overrides.eps_endpoint.or(file.eps_endpoint),
            &mut problems,
        )
        .unwrap_or_else(|| {
            let default = if global_suffix_eu {
                "https://eps.eu-west-101.myhuaweicloud.eu"
            } else {
                DEFAULT_EPS_ENDPOINT
            };
            Url::parse(default).expect("constant url")
        });
        let project_ids = dedup(non_empty_or(
            overrides.project_ids,
            file.project_ids.unwrap_or_default(),
        ));
        if project_ids.is_empty() && !discover {
            problems.push(
                "project_ids: none given (set --project-id, HSS_SYNC_PROJECT_IDS or `project_ids` in the config file, or use --discover)"
                    .to_owned(),
            );
        }
        if !project_ids.is_empty() && region.is_none() {
            problems.push("region: explicit project ids need the region they are in".to_owned());
        }
        let enterprise_project_ids = dedup(non_empty_or(
            overrides.enterprise_project_ids,
            file.enterprise_project_ids.unwrap_or_default(),
        ));
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
                    problems.push(format!(
                        "{key}: {value:?} is not a valid id (1 to {max} letters, digits, '-' or '_')"
                    ));
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
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            max_retries: overrides
                .max_retries
                .or(file.max_retries)
                .unwrap_or(defaults.max_retries),
            base_delay: overrides
                .retry_base_delay_ms
                .or(file.retry_base_delay_ms)
                .map_or(defaults.base_delay, Duration::from_millis),
            max_delay: overrides
                .retry_max_delay_seconds
                .or(file.retry_max_delay_seconds)
                .map_or(defaults.max_delay, Duration::from_secs),
        };
        if retry.max_retries > 20 {
            problems.push(format!(
                "max_retries: {} is more than 20",
                retry.max_retries
            ));
        }
        if retry.base_delay > retry.max_delay {
            problems.push("retry_base_delay_ms: larger than retry_max_delay_seconds".to_owned());
        }
        let concurrency = overrides
            .concurrency
            .or(file.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=64).contains(&concurrency) {
            problems.push(format!("concurrency: {concurrency} is outside 1..=64"));
        }
        let max_rewalks = overrides
            .max_rewalks
            .or(file.max_rewalks)
            .unwrap_or(DEFAULT_MAX_REWALKS);
        let max_delete_percent = overrides
            .max_delete_percent
            .or(file.max_delete_percent)
            .unwrap_or(DEFAULT_MAX_DELETE_PERCENT);
        if max_delete_percent > 100 {
            problems.push(format!(
                "max_delete_percent: {max_delete_percent} is more than 100"
            ));
        }
        let deletion_guard = DeletionGuard {
            max_percent: max_delete_percent,
            min_count: overrides
                .max_delete_min
                .or(file.max_delete_min)
                .map_or(DEFAULT_MAX_DELETE_MIN, i64::from),
            accept: overrides.accept_deletions,
        };
        if max_rewalks > 10 {
            problems.push(format!("max_rewalks: {max_rewalks} is more than 10"));
        }
        let ca_file = overrides.ca_file.or(file.ca_file);
        if let Some(path) = &ca_file {
            if !path.is_file() {
                problems.push(format!(
                    "ca_file: {} is not a readable file",
                    path.display()
                ));
            }
        }
        let client = ClientSettings {
            request_timeout: timeout_seconds.map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs),
            ca_file,
            insecure_skip_tls_verify: overrides
                .insecure_skip_tls_verify
                .or(file.insecure_skip_tls_verify)
                .unwrap_or(false),
            retry,
            max_requests_per_minute: overrides
                .max_requests_per_minute
                .or(file.max_requests_per_minute)
                .unwrap_or(DEFAULT_MAX_REQUESTS_PER_MINUTE),
        };
        let database_url = overrides
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if let Err(e) = BackendKind::from_url(&database_url) {
            problems.push(format!("database_url: {e}"));
        }
        let auth_mode = overrides.auth_mode.or(file.auth_mode).unwrap_or_default();
        let credentials = build_credentials(auth_mode, &file.credentials, &lookup_env)
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
        let domain_id = overrides
            .domain_id
            .or(file.domain_id)
            .filter(|d| !d.is_empty());
        let Some(credentials) = credentials.filter(|_| problems.is_empty()) else {
            return Err(ConfigError { problems });
        };
        Ok(SyncConfig {
            region,
            explicit_endpoint,
            project_ids,
            enterprise_project_ids,
            discover,
            iam_endpoint,
            eps_endpoint,
            domain_id,
            database_url,
            page_limit,
            concurrency,
            max_rewalks,
            confirm_deletions: overrides
                .confirm_deletions
                .or(file.confirm_deletions)
                .unwrap_or(true),
            deletion_guard,
            client,
            filters,
            credentials,
            auth_mode,
        })
    }

    /// The scopes named explicitly: each project id in `region`, with each enterprise
    /// project id, or `all_granted_eps` when none is given.
    pub fn explicit_scopes(&self) -> Vec<Scope> {
        let Some(region) = &self.region else {
            return Vec::new();
        };
        let enterprise_project_ids = if self.enterprise_project_ids.is_empty() {
            vec![ALL_GRANTED_EPS.to_owned()]
        } else {
            self.enterprise_project_ids.clone()
        };
        let mut scopes = Vec::new();
        for project_id in &self.project_ids {
            for enterprise_project_id in &enterprise_project_ids {
                scopes.push(Scope {
                    region: region.clone(),
                    project_id: project_id.clone(),
                    enterprise_project_id: enterprise_project_id.clone(),
                });
            }
        }
        scopes
    }

    /// The HSS endpoint of `region`: `endpoint` when given, else Huawei's SDK override
    /// variable, else the region table.
    ///
    /// # Errors
    ///
    /// [`EndpointError`] for a malformed region id or override.
    pub fn hss_endpoint(
        &self,
        region: &str,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Url, EndpointError> {
        endpoint::resolve_hss_endpoint(region, self.explicit_endpoint.as_ref(), lookup_env)
    }

    /// The database URL with any password hidden.
    pub fn database_url_redacted(&self) -> String {
        redact_url(&self.database_url)
    }

    /// A description of the auth mode without secrets, for the start-up log.
    pub fn auth_description(&self) -> String {
        match &self.credentials {
            CredentialConfig::AkSk(c) if c.security_token.is_some() => format!(
                "AK/SK signing with temporary credentials (access key {})",
                mask(&c.access_key)
            ),
            CredentialConfig::AkSk(c) => {
                format!("AK/SK signing (access key {})", mask(&c.access_key))
            }
            CredentialConfig::Token(_) => "a given IAM token (X-Auth-Token)".to_owned(),
            CredentialConfig::IamPassword(p) => format!(
                "IAM tokens for user {} of account {} from {}",
                p.user, p.domain, self.iam_endpoint
            ),
        }
    }
}

fn parse_url(key: &str, text: Option<String>, problems: &mut Vec<String>) -> Option<Url> {
    let text = text.filter(|t| !t.trim().is_empty())?;
    match Url::parse(text.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Some(url)
        }
        _ => {
            problems.push(format!("{key}: {text:?} is not an http(s) URL"));
            None
        }
    }
}

fn build_credentials(
    mode: AuthMode,
    file: &RawCredentials,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<CredentialConfig, String> {
    let from_env = |name: &str| lookup_env(name).filter(|v| !v.is_empty());
    let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
    let access_key = from_env(env::ACCESS_KEY).or_else(|| file.access_key.clone());
    let secret_key = from_env(env::SECRET_KEY).or_else(|| secret(&file.secret_key));
    let security_token = from_env(env::SECURITY_TOKEN).or_else(|| secret(&file.security_token));
    let auth_token = from_env(env::AUTH_TOKEN).or_else(|| secret(&file.auth_token));
    let iam_domain = from_env(env::IAM_DOMAIN).or_else(|| file.iam_domain.clone());
    let iam_user = from_env(env::IAM_USER).or_else(|| file.iam_user.clone());
    let iam_password = from_env(env::IAM_PASSWORD).or_else(|| secret(&file.iam_password));
    let aksk = || -> Result<CredentialConfig, String> {
        match (&access_key, &secret_key) {
            (Some(ak), Some(sk)) => {
                let credentials = Credentials::new(ak.clone(), sk.clone())
                    .map_err(|e| format!("credentials: {e}"))?;
                Ok(CredentialConfig::AkSk(match &security_token {
                    Some(token) => credentials.with_security_token(token.clone()),
                    None => credentials,
                }))
            }
            (Some(_), None) => Err(format!(
                "credentials: {} is set but {} is not",
                env::ACCESS_KEY,
                env::SECRET_KEY
            )),
            (None, Some(_)) => Err(format!(
                "credentials: {} is set but {} is not",
                env::SECRET_KEY,
                env::ACCESS_KEY
            )),
            (None, None) => Err(format!(
                "credentials: auth mode aksk needs {} and {}",
                env::ACCESS_KEY,
                env::SECRET_KEY
            )),
        }
    };
    let iam = || -> Result<CredentialConfig, String> {
        let missing: Vec<&str> = [
            (env::IAM_DOMAIN, iam_domain.is_none()),
            (env::IAM_USER, iam_user.is_none()),
            (env::IAM_PASSWORD, iam_password.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "credentials: auth mode iam needs {}",
                missing.join(", ")
            ));
        }
        Ok(CredentialConfig::IamPassword(IamPassword {
            domain: iam_domain.clone().unwrap_or_default(),
            user: iam_user.clone().unwrap_or_default(),
            password: SecretString::from(iam_password.clone().unwrap_or_default()),
        }))
    };
    let token = || -> Result<CredentialConfig, String> {
        auth_token
            .clone()
            .map(|t| CredentialConfig::Token(SecretString::from(t)))
            .ok_or_else(|| format!("credentials: auth mode token needs {}", env::AUTH_TOKEN))
    };
    match mode {
        AuthMode::Aksk => aksk(),
        AuthMode::Iam => iam(),
        AuthMode::Token => token(),
        AuthMode::Auto => {
            if access_key.is_some() || secret_key.is_some() {
                aksk()
            } else if iam_user.is_some() || iam_password.is_some() {
                iam()
            } else if auth_token.is_some() {
                token()
            } else {
                Err(format!(
                    "credentials: none found (set {} and {}; or {}, {} and {}; or {}; or [credentials] in the config file)",
                    env::ACCESS_KEY,
                    env::SECRET_KEY,
                    env::IAM_DOMAIN,
                    env::IAM_USER,
                    env::IAM_PASSWORD,
                    env::AUTH_TOKEN
                ))
            }
        }
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
        let scopes: Vec<String> = config
            .explicit_scopes()
            .iter()
            .map(|s| s.to_string())
            .collect();
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
            config
                .hss_endpoint("cn-north-4", |_| None)
                .unwrap()
                .as_str(),
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
        assert_eq!(config.region.as_deref(), Some("cn-north-4"));
        assert_eq!(config.explicit_scopes().len(), 4);
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
        assert!(matches!(config.credentials, CredentialConfig::Token(_)));
    }

    #[test]
    fn the_example_config_file_parses_and_validates() {
        let file: RawConfig = toml::from_str(include_str!("../config/example.toml")).unwrap();
        assert_eq!(file.service.schedule.as_deref(), Some("0 */15 * * * *"));
        let config = SyncConfig::build(Overrides::default(), file, env_of(KEYS)).unwrap();
        assert_eq!(config.client.max_requests_per_minute, 5);
        assert_eq!(config.explicit_scopes().len(), 1);
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        assert!(toml::from_str::<RawConfig>("regoin = \"x\"").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_config_file_with_a_secret_readable_by_others_gets_a_warning_without_the_secret() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hss-sync.toml");
        let chmod =
            |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::write(
            &path,
            "database_url = \"postgres://u:db-password-value@h/db\"\n\
             [credentials]\naccess_key = \"AK\"\nsecret_key = \"secret-key-value\"\n",
        )
        .unwrap();

        chmod(0o644);
        let config = RawConfig::load(&path).unwrap();
        let warning = exposed_secrets_warning(&path, &config).expect("a warning");
        assert!(warning.contains("secret_key"), "{warning}");
        assert!(warning.contains("database_url"), "{warning}");
        assert!(warning.contains("0644"), "{warning}");
        assert!(warning.contains("chmod 600"), "{warning}");
        assert!(!warning.contains("secret-key-value"), "{warning}");
        assert!(!warning.contains("db-password-value"), "{warning}");

        chmod(0o640);
        let warning = exposed_secrets_warning(&path, &config).expect("a warning");
        assert!(warning.contains("its group read it"), "{warning}");

        chmod(0o600);
        assert_eq!(exposed_secrets_warning(&path, &config), None);

        // No secret, no warning, whoever may read the file.
        std::fs::write(&path, "region = \"cn-north-4\"\n").unwrap();
        chmod(0o644);
        let config = RawConfig::load(&path).unwrap();
        assert_eq!(exposed_secrets_warning(&path, &config), None);
    }
}

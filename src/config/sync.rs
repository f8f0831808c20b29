//! [`SyncConfig`]: what one sync needs, validated from the merged keys, and its credentials.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    env, merge, AuthMode, ConfigError, CredentialSettings, RawConfig, REDACTED,
    REDACTED_URL_PASSWORD,
};
use crate::api::endpoint::{self, EndpointError, GlobalService};
use crate::api::{ClientSettings, IamPassword, RegistryFilters, RetryPolicy};
use crate::signer::Credentials;
use crate::store::{redact_url, BackendKind};
use crate::sync::plan::DeletionGuard;
use crate::sync::{Scope, ALL_GRANTED_EPS, PAGE_LIMIT_RANGE};

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
    /// ListRegistry requests in flight at once (see `SyncOptions::concurrency`).
    pub concurrency: usize,
    /// Re-walks of a scope whose pages did not add up.
    pub max_rewalks: u32,
    /// Walk a scope again before retiring registries it missed.
    pub confirm_deletions: bool,
    /// The guard against mass deletion.
    pub deletion_guard: DeletionGuard,
    /// Registry fields whose changes alone make no history version.
    pub history_ignore_fields: Vec<String>,
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
    /// `lookup_env`) over the file (`file`) over the defaults, then validates.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem, each naming its key.
    pub fn build(
        overrides: RawConfig,
        file: RawConfig,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<SyncConfig, ConfigError> {
        let mut merged =
            merge(&[&overrides, &file, &RawConfig::defaults()]).map_err(ConfigError::one)?;
        SyncConfig::build_merged(&mut merged, lookup_env)
    }

    /// Validates the merged keys (every key with a default is set), and writes back the
    /// values as they will be used: the region's endpoints, `all_granted_eps`, the resolved
    /// auth mode, the credentials chosen (redacted when printed), the database URL without
    /// its password.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] listing every problem, each naming its key.
    pub(super) fn build_merged(
        merged: &mut RawConfig,
        lookup_env: impl Fn(&str) -> Option<String>,
    ) -> Result<SyncConfig, ConfigError> {
        let mut problems = Vec::new();
        let scope = scoping(merged, &lookup_env, &mut problems);
        // From here on every key has a default, so `unwrap_or_default` never takes its default.
        let page_limit = merged.page_limit.unwrap_or_default();
        if !PAGE_LIMIT_RANGE.contains(&page_limit) {
            problems.push(format!(
                "page_limit: {page_limit} is outside {}..={} (the range ListRegistry accepts)",
                PAGE_LIMIT_RANGE.start(),
                PAGE_LIMIT_RANGE.end()
            ));
        }
        let client = client_settings(merged, &mut problems);
        let concurrency = merged.concurrency.unwrap_or_default();
        if !(1..=64).contains(&concurrency) {
            problems.push(format!("concurrency: {concurrency} is outside 1..=64"));
        }
        let max_rewalks = merged.max_rewalks.unwrap_or_default();
        if max_rewalks > 10 {
            problems.push(format!("max_rewalks: {max_rewalks} is more than 10"));
        }
        let max_delete_percent = merged.max_delete_percent.unwrap_or_default();
        if max_delete_percent > 100 {
            problems.push(format!(
                "max_delete_percent: {max_delete_percent} is more than 100"
            ));
        }
        let deletion_guard = DeletionGuard {
            max_percent: max_delete_percent,
            min_count: i64::from(merged.max_delete_min.unwrap_or_default()),
            accept: merged.accept_deletions,
        };
        let database_url = merged.database_url().unwrap_or_default().to_owned();
        if let Err(e) = BackendKind::from_url(&database_url) {
            problems.push(format!("database_url: {e}"));
        }
        if url_password_is_redacted(&database_url) {
            problems.push(format!(
                "database_url: its password is {REDACTED_URL_PASSWORD:?}, the placeholder `config check` prints; \
                 give the URL in DATABASE_URL or --database-url"
            ));
        }
        let auth_mode = merged.auth_mode.unwrap_or_default();
        let credentials = build_credentials(auth_mode, &merged.credentials, &lookup_env)
            .map_err(|p| problems.push(p))
            .ok();
        let filters = RegistryFilters {
            registry_name: merged.filters.registry_name.clone(),
            registry_type: merged.filters.registry_type.clone(),
            registry_addr: merged.filters.registry_addr.clone(),
            status: merged.filters.status.clone(),
        };
        let domain_id = merged.domain_id.clone().filter(|d| !d.is_empty());
        let Some(credentials) = credentials.filter(|_| problems.is_empty()) else {
            return Err(ConfigError { problems });
        };
        let confirm_deletions = merged.confirm_deletions.unwrap_or_default();
        let history_ignore_fields: Vec<String> = merged
            .history_ignore_fields
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|field| field.trim().to_owned())
            .filter(|field| !field.is_empty())
            .collect();
        // The keys as they will be used, for `config check`.
        merged.region = scope.region.clone();
        merged.endpoint = scope.effective_endpoint.map(String::from);
        merged.iam_endpoint = Some(scope.iam_endpoint.to_string());
        merged.eps_endpoint = Some(scope.eps_endpoint.to_string());
        merged.project_ids = scope.project_ids.clone();
        merged.enterprise_project_ids =
            match (scope.enterprise_project_ids.is_empty(), scope.discover) {
                // Discovery lists them from EPS; nothing to show.
                (true, true) => Vec::new(),
                (true, false) => vec![ALL_GRANTED_EPS.to_owned()],
                (false, _) => scope.enterprise_project_ids.clone(),
            };
        merged.domain_id = domain_id.clone();
        merged.database.database_url = Some(redact_url(&database_url));
        merged.auth_mode = Some(credentials.mode());
        merged.credentials = credentials.settings();
        Ok(SyncConfig {
            region: scope.region,
            explicit_endpoint: scope.explicit_endpoint,
            project_ids: scope.project_ids,
            enterprise_project_ids: scope.enterprise_project_ids,
            discover: scope.discover,
            iam_endpoint: scope.iam_endpoint,
            eps_endpoint: scope.eps_endpoint,
            domain_id,
            database_url,
            page_limit,
            concurrency,
            max_rewalks,
            confirm_deletions,
            deletion_guard,
            history_ignore_fields,
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

impl CredentialConfig {
    /// The auth mode these credentials are used in.
    pub fn mode(&self) -> AuthMode {
        match self {
            CredentialConfig::AkSk(_) => AuthMode::Aksk,
            CredentialConfig::Token(_) => AuthMode::Token,
            CredentialConfig::IamPassword(_) => AuthMode::Iam,
        }
    }

    /// These credentials as `[credentials]` keys (their secrets redacted when serialised).
    fn settings(&self) -> CredentialSettings {
        let secret = |s: &str| Some(SecretString::from(s.to_owned()));
        match self {
            CredentialConfig::AkSk(c) => CredentialSettings {
                access_key: Some(c.access_key.clone()),
                secret_key: secret(REDACTED),
                security_token: c.security_token.as_ref().and_then(|_| secret(REDACTED)),
                ..CredentialSettings::default()
            },
            CredentialConfig::Token(_) => CredentialSettings {
                auth_token: secret(REDACTED),
                ..CredentialSettings::default()
            },
            CredentialConfig::IamPassword(p) => CredentialSettings {
                iam_domain: Some(p.domain.clone()),
                iam_user: Some(p.user.clone()),
                iam_password: secret(REDACTED),
                ..CredentialSettings::default()
            },
        }
    }
}

/// The keys that say what a run covers and where it sends its requests.
struct Scoping {
    region: Option<String>,
    discover: bool,
    explicit_endpoint: Option<Url>,
    /// The HSS endpoint of `region` as it will be used (explicit, override variable, or table).
    effective_endpoint: Option<Url>,
    iam_endpoint: Url,
    eps_endpoint: Url,
    project_ids: Vec<String>,
    enterprise_project_ids: Vec<String>,
}

/// Validates the region, the endpoints and the ids.
fn scoping(
    merged: &RawConfig,
    lookup_env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Scoping {
    let discover = merged.discover.unwrap_or_default();
    let region = merged.region.clone().filter(|r| !r.trim().is_empty());
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
    let explicit_endpoint = parse_url("endpoint", merged.endpoint.clone(), problems);
    let mut effective_endpoint = explicit_endpoint.clone();
    if let (Some(region), None) = (&region, &explicit_endpoint) {
        match endpoint::resolve_hss_endpoint(region, None, lookup_env) {
            Err(e @ endpoint::EndpointError::UnknownRegion { .. }) => {
                problems.push(format!("region: {e}"))
            }
            Err(e) => problems.push(format!("endpoint: {e}")),
            Ok(url) => effective_endpoint = Some(url),
        }
    }
    let iam_endpoint = parse_url(
        "iam_endpoint",
        merged
            .iam_endpoint
            .clone()
            .or_else(|| lookup_env(env::SDK_IAM_ENDPOINT).filter(|v| !v.is_empty())),
        problems,
    )
    .unwrap_or_else(|| endpoint::default_global_endpoint(GlobalService::Iam, region.as_deref()));
    let eps_endpoint = parse_url("eps_endpoint", merged.eps_endpoint.clone(), problems)
        .unwrap_or_else(|| {
            endpoint::default_global_endpoint(GlobalService::Eps, region.as_deref())
        });
    let project_ids = dedup(trimmed(&merged.project_ids));
    if project_ids.is_empty() && !discover {
        problems.push(
                "project_ids: none given (set --project-id, HSS_SYNC_PROJECT_IDS or `project_ids` in the config file, or use --discover)"
                    .to_owned(),
            );
    }
    if !project_ids.is_empty() && region.is_none() {
        problems.push("region: explicit project ids need the region they are in".to_owned());
    }
    let enterprise_project_ids = dedup(trimmed(&merged.enterprise_project_ids));
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
    Scoping {
        region,
        discover,
        explicit_endpoint,
        effective_endpoint,
        iam_endpoint,
        eps_endpoint,
        project_ids,
        enterprise_project_ids,
    }
}

/// The HTTP client's keys: timeout, retries, rate, TLS.
fn client_settings(merged: &RawConfig, problems: &mut Vec<String>) -> ClientSettings {
    let timeout_seconds = merged.request_timeout_seconds.unwrap_or_default();
    if timeout_seconds == 0 {
        problems.push("request_timeout_seconds: must be at least 1".to_owned());
    }
    let retry = RetryPolicy {
        max_retries: merged.max_retries.unwrap_or_default(),
        base_delay: Duration::from_millis(merged.retry_base_delay_ms.unwrap_or_default()),
        max_delay: Duration::from_secs(merged.retry_max_delay_seconds.unwrap_or_default()),
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
    let ca_file = merged.ca_file.clone();
    if let Some(path) = &ca_file {
        if !path.is_file() {
            problems.push(format!(
                "ca_file: {} is not a readable file",
                path.display()
            ));
        }
    }
    ClientSettings {
        request_timeout: Duration::from_secs(timeout_seconds),
        ca_file,
        insecure_skip_tls_verify: merged.insecure_skip_tls_verify.unwrap_or_default(),
        retry,
        max_requests_per_minute: merged.max_requests_per_minute.unwrap_or_default(),
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
    file: &CredentialSettings,
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
    // A file printed by `config check` holds the placeholder where a secret was; the
    // environment's secret wins over it, and where none does, the placeholder is an error.
    let placeholders: Vec<&str> = [
        ("secret_key", env::SECRET_KEY, &secret_key),
        ("security_token", env::SECURITY_TOKEN, &security_token),
        ("auth_token", env::AUTH_TOKEN, &auth_token),
        ("iam_password", env::IAM_PASSWORD, &iam_password),
    ]
    .into_iter()
    .filter(|(_, _, value)| value.as_deref() == Some(REDACTED))
    .map(|(_, variable, _)| variable)
    .collect();
    if !placeholders.is_empty() {
        return Err(format!(
            "credentials: the config file holds {REDACTED:?}, the placeholder `config check` prints, \
             where a secret was; give {} in the environment, or the secret in the file",
            placeholders.join(", ")
        ));
    }
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

/// The values trimmed, without the empty ones.
fn trimmed(values: &[String]) -> Vec<String> {
    values
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether `url` holds the password `config check` prints in place of the real one.
fn url_password_is_redacted(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| u.password() == Some(REDACTED_URL_PASSWORD))
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

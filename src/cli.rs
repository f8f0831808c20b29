//! The command line: clap definitions and one handler per command.
//!
//! Handlers write their report to the `out` they are given, so tests can read it; logs go
//! to standard error through `tracing`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::api::RegistryFilters;
use crate::config::{
    AuthMode, ConfigError, CredentialConfig, Overrides, RawConfig, SyncConfig, DEFAULT_DATABASE_URL,
};
use crate::demo::DemoArgs;
use crate::progress::TerminalProgress;
use crate::service::{self, Leased, ServiceConfig, ServiceOverrides};
use crate::sim::{SimConfig, SimCredentials, SimIamUser, Simulator};
use crate::store::{redact_url, Store};
use crate::sync::Trigger;
use crate::telemetry::LogFormat;
use crate::Exit;

/// Keeps a SQL copy of the container-image registries Huawei Cloud HSS knows about, with
/// their full change history.
#[derive(Debug, Parser)]
#[command(name = "hss-sync", version, about, long_about = None)]
pub struct Cli {
    /// TOML config file; flags and environment variables win over it.
    #[arg(long, global = true, env = "HSS_SYNC_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log line format on standard error (levels come from RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HSS_SYNC_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one sync of every scope, then exit (0 all scopes succeeded, 3 partial, 1 failed, 2 usage, 4 another sync holds the lease).
    Sync(Box<SyncArgs>),
    /// Run as a service: sync on a cron schedule, serve /healthz, /readyz and /metrics.
    Run(Box<RunArgs>),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply database migrations, then exit (sync does this too).
    Migrate(DatabaseArgs),
    /// Show the most recent sync runs and their scopes.
    Runs(RunsArgs),
    /// Serve the simulated HSS API, for trying hss-sync without a cloud account.
    Simulate(Box<SimulateArgs>),
    /// Run a self-contained demo: simulated API, two syncs with changes between them, SQLite.
    Demo(DemoArgs),
}

impl Command {
    /// The log level used when `RUST_LOG` is unset.
    pub fn default_log_directive(&self) -> &'static str {
        match self {
            Command::Demo(_) => "warn",
            _ => "info",
        }
    }
}

/// Where the database is.
#[derive(Debug, Args, Clone)]
pub struct DatabaseArgs {
    /// Database URL: sqlite://PATH (the default, hss-sync.db) or postgres://USER@HOST/DB.
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// Flags of `sync` (and of `run`).
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
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
    pub project_ids: Vec<String>,

    /// Enterprise project id (repeatable); default all_granted_eps: one scope per project covering all.
    #[arg(
        long = "enterprise-project-id",
        env = "HSS_SYNC_ENTERPRISE_PROJECT_IDS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    pub enterprise_project_ids: Vec<String>,

    /// Find the account's projects (IAM) and enterprise projects (EPS) and sync them all.
    #[arg(long, env = "HSS_SYNC_DISCOVER", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub discover: Option<bool>,

    /// HSS base URL for every region, overriding the region's (private endpoints, proxies, the simulator).
    #[arg(long, env = "HSS_SYNC_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,

    /// IAM endpoint for tokens and project discovery [default: https://iam.myhuaweicloud.com].
    #[arg(long, env = "HSS_SYNC_IAM_ENDPOINT", value_name = "URL")]
    pub iam_endpoint: Option<String>,

    /// EPS endpoint for enterprise project discovery [default: https://eps.myhuaweicloud.com].
    #[arg(long, env = "HSS_SYNC_EPS_ENDPOINT", value_name = "URL")]
    pub eps_endpoint: Option<String>,

    /// Account (domain) id, sent as X-Domain-Id to IAM and EPS with AK/SK.
    #[arg(long, env = "HSS_SYNC_DOMAIN_ID", value_name = "ID")]
    pub domain_id: Option<String>,

    /// How to authenticate: auto picks AK/SK, then an IAM password, then a given token, by which are set.
    #[arg(long, env = "HSS_SYNC_AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,

    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Items per ListRegistry page, 10 to 200 [default: 200].
    #[arg(long, env = "HSS_SYNC_PAGE_LIMIT", value_name = "N")]
    pub page_limit: Option<u32>,

    /// ListRegistry requests a minute per credential and endpoint; 0 for no limit [default: 5, HSS's documented limit].
    #[arg(long, env = "HSS_SYNC_MAX_REQUESTS_PER_MINUTE", value_name = "N")]
    pub max_requests_per_minute: Option<u32>,

    /// Scopes walked at once [default: 4].
    #[arg(long, env = "HSS_SYNC_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<usize>,

    /// Retries of a failed request (throttled, 5xx, network, bad JSON; never bad credentials) [default: 5].
    #[arg(long, env = "HSS_SYNC_MAX_RETRIES", value_name = "N")]
    pub max_retries: Option<u32>,

    /// First retry delay in milliseconds; doubles each retry, with jitter [default: 2000].
    #[arg(long, env = "HSS_SYNC_RETRY_BASE_DELAY_MS", value_name = "MS")]
    pub retry_base_delay_ms: Option<u64>,

    /// Longest retry delay in seconds, Retry-After included [default: 60].
    #[arg(long, env = "HSS_SYNC_RETRY_MAX_DELAY_SECONDS", value_name = "SECONDS")]
    pub retry_max_delay_seconds: Option<u64>,

    /// Walks again of a scope whose pages did not add up (the list changed mid-walk) [default: 2].
    #[arg(long, env = "HSS_SYNC_MAX_REWALKS", value_name = "N")]
    pub max_rewalks: Option<u32>,

    /// Walk a scope a second time before marking deleted the registries it missed (offset paging can skip an item unnoticed while the list changes) [default: true].
    #[arg(long, env = "HSS_SYNC_CONFIRM_DELETIONS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub confirm_deletions: Option<bool>,

    /// Hold a scope's deletions when its walk would retire more than this percentage of its live registries [default: 50].
    #[arg(long, env = "HSS_SYNC_MAX_DELETE_PERCENT", value_name = "PERCENT")]
    pub max_delete_percent: Option<u32>,

    /// Never hold fewer deletions than this, however large a share of a scope they are [default: 10].
    #[arg(long, env = "HSS_SYNC_MAX_DELETE_MIN", value_name = "N")]
    pub max_delete_min: Option<u32>,

    /// Retire what complete walks missed this run, even past --max-delete-percent (for one run, after checking that the registries are really gone).
    #[arg(long)]
    pub accept_deletions: bool,

    /// Per-request timeout in seconds [default: 60].
    #[arg(long, env = "HSS_SYNC_REQUEST_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub request_timeout_seconds: Option<u64>,

    /// PEM file of extra CA certificates to trust.
    #[arg(long, env = "HSS_SYNC_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// Accept any TLS certificate. Dangerous: only for a test endpoint you control.
    #[arg(long, env = "HSS_SYNC_INSECURE_SKIP_TLS_VERIFY", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub insecure_skip_tls_verify: Option<bool>,

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
    pub registry_status: Option<String>,
}

impl SyncArgs {
    /// What these flags (and their variables) say, for [`SyncConfig::build`].
    pub fn overrides(&self) -> Overrides {
        Overrides {
            region: self.region.clone(),
            project_ids: self.project_ids.clone(),
            enterprise_project_ids: self.enterprise_project_ids.clone(),
            discover: self.discover,
            endpoint: self.endpoint.clone(),
            iam_endpoint: self.iam_endpoint.clone(),
            eps_endpoint: self.eps_endpoint.clone(),
            domain_id: self.domain_id.clone(),
            database_url: self.database.database_url.clone(),
            page_limit: self.page_limit,
            request_timeout_seconds: self.request_timeout_seconds,
            max_retries: self.max_retries,
            retry_base_delay_ms: self.retry_base_delay_ms,
            retry_max_delay_seconds: self.retry_max_delay_seconds,
            max_requests_per_minute: self.max_requests_per_minute,
            concurrency: self.concurrency,
            max_rewalks: self.max_rewalks,
            confirm_deletions: self.confirm_deletions,
            max_delete_percent: self.max_delete_percent,
            max_delete_min: self.max_delete_min,
            accept_deletions: self.accept_deletions,
            ca_file: self.ca_file.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            auth_mode: self.auth_mode,
            filters: RegistryFilters {
                registry_name: self.registry_name.clone(),
                registry_type: self.registry_type.clone(),
                registry_addr: self.registry_addr.clone(),
                status: self.registry_status.clone(),
            },
        }
    }
}

/// Configuration tools.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (secrets redacted) or every problem, named by key.
    Check(Box<RunArgs>),
}

/// Flags of `run` (and of `config check`): every flag of `sync`, plus the service's.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub service: ServiceArgs,
}

/// The service's own flags.
#[derive(Debug, Args, Clone)]
pub struct ServiceArgs {
    /// Cron schedule in UTC with seconds, as tokio-cron-scheduler takes it ("0 */15 * * * *": every 15 minutes); five fields also work ("*/15 * * * *") [default: 0 */15 * * * *].
    #[arg(long, env = "HSS_SYNC_SCHEDULE", value_name = "CRON")]
    pub schedule: Option<String>,

    /// Also sync once right after start.
    #[arg(long, env = "HSS_SYNC_RUN_AT_START", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub run_at_start: Option<bool>,

    /// Address of the /healthz, /readyz and /metrics endpoint [default: 127.0.0.1:9464].
    #[arg(long, env = "HSS_SYNC_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Seconds a running sync may take to finish after SIGTERM before it is stopped at a page boundary [default: 20].
    #[arg(
        long,
        env = "HSS_SYNC_SHUTDOWN_DEADLINE_SECONDS",
        value_name = "SECONDS"
    )]
    pub shutdown_deadline_seconds: Option<u64>,

    /// /readyz fails when the last completed run finished longer ago than this [default: 3 schedule intervals, at least 3600].
    #[arg(long, env = "HSS_SYNC_MAX_RUN_AGE_SECONDS", value_name = "SECONDS")]
    pub max_run_age_seconds: Option<u64>,

    /// Length of the sync lease: the longest a replica that died mid-run blocks the others [default: 120].
    #[arg(long, env = "HSS_SYNC_LEASE_SECONDS", value_name = "SECONDS")]
    pub lease_seconds: Option<u64>,
}

impl ServiceArgs {
    fn overrides(&self) -> ServiceOverrides {
        ServiceOverrides {
            schedule: self.schedule.clone(),
            run_at_start: self.run_at_start,
            listen: self.listen.clone(),
            shutdown_deadline_seconds: self.shutdown_deadline_seconds,
            max_run_age_seconds: self.max_run_age_seconds,
            lease_seconds: self.lease_seconds,
        }
    }
}

/// Flags of `runs`.
#[derive(Debug, Args, Clone)]
pub struct RunsArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: i64,
}

/// Flags of `simulate`.
#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "HSS_SIM_LISTEN")]
    pub listen: SocketAddr,
    /// Seed of the synthetic estate; the same seed and sizes give the same estate.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Region the simulated projects live in.
    #[arg(long, default_value = "cn-north-4")]
    pub region: String,
    /// Number of projects.
    #[arg(long, default_value_t = 2)]
    pub projects: usize,
    /// Number of enterprise projects besides the default one ("0").
    #[arg(long, default_value_t = 2)]
    pub enterprise_projects: usize,
    /// Registries in each (project, enterprise project) scope.
    #[arg(long, default_value_t = 25)]
    pub registries_per_scope: usize,
    /// Access key the simulator accepts; with HSS_SIM_SECRET_KEY set too, it checks every signature.
    #[arg(long, env = "HSS_SIM_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Secret key the simulator checks signatures with (environment only, never shown).
    #[arg(long, env = "HSS_SIM_SECRET_KEY", hide_env_values = true, hide = true)]
    pub secret_key: Option<String>,
    /// More regions to spread the projects over (repeatable); each region's first project is named after it.
    #[arg(long = "extra-region", value_name = "REGION")]
    pub extra_regions: Vec<String>,
    /// IAM account (domain) name for password logins at POST /v3/auth/tokens.
    #[arg(long, env = "HSS_SIM_IAM_DOMAIN", requires = "iam_user")]
    pub iam_domain: Option<String>,
    /// IAM user name for password logins.
    #[arg(long, env = "HSS_SIM_IAM_USER", requires = "iam_domain")]
    pub iam_user: Option<String>,
    /// IAM password (environment only, never shown).
    #[arg(
        long,
        env = "HSS_SIM_IAM_PASSWORD",
        hide_env_values = true,
        hide = true
    )]
    pub iam_password: Option<String>,
    /// Static tokens accepted as X-Auth-Token for every project (environment only, comma-separated).
    #[arg(
        long,
        env = "HSS_SIM_ACCEPTED_TOKENS",
        value_delimiter = ',',
        hide_env_values = true,
        hide = true
    )]
    pub accepted_tokens: Vec<String>,
    /// Answer enterprise-project listing with 403, as for an account without enterprise projects.
    #[arg(long)]
    pub no_enterprise_projects: bool,
}

/// Runs a parsed command line and returns the process exit code.
///
/// # Errors
///
/// Any error that ends the command; [`exit_code_of`] maps it to an exit code.
pub async fn run(cli: Cli, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    match cli.command {
        Command::Sync(args) => sync_command(cli.config, *args, out).await,
        Command::Run(args) => run_command(cli.config, *args).await,
        Command::Config(ConfigCommand::Check(args)) => config_check(cli.config, *args, out),
        Command::Migrate(args) => {
            let url = database_url(cli.config.as_deref(), &args)?;
            let store = Store::open(&url).await?;
            store.close().await;
            writeln!(out, "migrations applied to {}", redact_url(&url))?;
            Ok(Exit::Success.code())
        }
        Command::Runs(args) => {
            let url = database_url(cli.config.as_deref(), &args.database)?;
            let store = Store::open_read_only(&url).await?;
            crate::report::print_runs(&store, args.limit, out).await?;
            store.close().await;
            Ok(Exit::Success.code())
        }
        Command::Simulate(args) => simulate_command(*args, out).await,
        Command::Demo(args) => crate::demo::run(args, out).await,
    }
}

/// The exit code for an error that ended a command: 2 for configuration and usage
/// problems, 1 for everything else.
pub fn exit_code_of(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<ConfigError>().is_some() {
        Exit::Usage.code()
    } else {
        Exit::Failure.code()
    }
}

/// A token cancelled on the first SIGINT or SIGTERM; a second signal exits at once.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let child = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Cancel before saying so: with standard error gone (a closed pipe) the log line
        // may fail, and the shutdown must not depend on it.
        child.cancel();
        let _ = std::panic::catch_unwind(|| {
            tracing::warn!(
                "signal received: shutting down gracefully (send it again to exit at once)"
            )
        });
        wait_for_signal().await;
        std::process::exit(Exit::Interrupted.code().into());
    });
    token
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn load_file(path: Option<&std::path::Path>) -> Result<RawConfig, ConfigError> {
    match path {
        Some(path) => RawConfig::load(path),
        None => Ok(RawConfig::default()),
    }
}

fn database_url(config: Option<&std::path::Path>, args: &DatabaseArgs) -> anyhow::Result<String> {
    let file = load_file(config)?;
    Ok(args
        .database_url
        .clone()
        .or(file.database_url)
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()))
}

async fn sync_command(
    config_path: Option<PathBuf>,
    args: SyncArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let file = load_file(config_path.as_deref())?;
    let lease = ServiceConfig::build(ServiceOverrides::default(), file.service.clone())?.lease;
    let config = SyncConfig::build(args.overrides(), file, |name| std::env::var(name).ok())?;
    let store = Store::open(&config.database_url).await?;
    let cancel = cancel_on_signal();
    let result = service::run_leased(
        &config,
        &store,
        None,
        lease,
        Trigger::Cli,
        Arc::new(TerminalProgress::on_stderr()),
        cancel,
    )
    .await;
    store.close().await;
    let report = match result? {
        Leased::Ran(report) => report,
        Leased::Skipped(reason) => {
            writeln!(out, "not syncing: {reason}; try again when it has finished")?;
            return Ok(Exit::LeaseHeld.code());
        }
    };
    writeln!(out, "{}", report.summary_line())?;
    if let Some(refused) = &report.credentials_refused {
        writeln!(out, "  stopped at the first refusal: {refused}")?;
    }
    // Scopes stopped by a refusal say nothing the line above does not.
    for scope in report.scopes.iter().filter(|s| {
        s.error
            .as_deref()
            .is_some_and(|e| !e.starts_with("stopped: "))
    }) {
        writeln!(
            out,
            "  scope {} {}: {}",
            scope.scope,
            scope.status,
            scope.error.as_deref().unwrap_or_default()
        )?;
    }
    Ok(report.status.exit_code())
}

async fn run_command(config_path: Option<PathBuf>, args: RunArgs) -> anyhow::Result<u8> {
    let file = load_file(config_path.as_deref())?;
    let (config, service) = build_run_config(&args, file)?;
    let store = Store::open(&config.database_url).await?;
    let shutdown = cancel_on_signal();
    let result = service::run_daemon(config, service, store.clone(), shutdown).await;
    store.close().await;
    result?;
    Ok(Exit::Success.code())
}

fn build_run_config(
    args: &RunArgs,
    file: RawConfig,
) -> Result<(SyncConfig, ServiceConfig), ConfigError> {
    let service = ServiceConfig::build(args.service.overrides(), file.service.clone());
    let sync = SyncConfig::build(args.sync.overrides(), file, |name| std::env::var(name).ok());
    match (sync, service) {
        (Ok(sync), Ok(service)) => Ok((sync, service)),
        (sync, service) => {
            let mut problems = Vec::new();
            problems.extend(sync.err().map(|e| e.problems).unwrap_or_default());
            problems.extend(service.err().map(|e| e.problems).unwrap_or_default());
            Err(ConfigError { problems })
        }
    }
}

fn config_check(
    config_path: Option<PathBuf>,
    args: RunArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let file = load_file(config_path.as_deref())?;
    let (config, service) = build_run_config(&args, file)?;
    let secret = |set: bool| if set { "\"[redacted]\"" } else { "(not set)" };
    let list = |v: &[String]| {
        format!(
            "[{}]",
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let opt = |v: &Option<String>| {
        v.as_ref()
            .map_or("(not set)".to_owned(), |v| format!("{v:?}"))
    };
    writeln!(
        out,
        "# effective configuration: flags > environment > config file > defaults"
    )?;
    writeln!(out, "region = {}", opt(&config.region))?;
    writeln!(out, "project_ids = {}", list(&config.project_ids))?;
    writeln!(
        out,
        "enterprise_project_ids = {}",
        list(&config.enterprise_project_ids)
    )?;
    writeln!(out, "discover = {}", config.discover)?;
    writeln!(
        out,
        "endpoint = {}",
        opt(&config.explicit_endpoint.as_ref().map(|u| u.to_string()))
    )?;
    writeln!(out, "iam_endpoint = {:?}", config.iam_endpoint.as_str())?;
    writeln!(out, "eps_endpoint = {:?}", config.eps_endpoint.as_str())?;
    writeln!(out, "domain_id = {}", opt(&config.domain_id))?;
    writeln!(out, "database_url = {:?}", config.database_url_redacted())?;
    writeln!(out, "page_limit = {}", config.page_limit)?;
    writeln!(
        out,
        "request_timeout_seconds = {}",
        config.client.request_timeout.as_secs()
    )?;
    writeln!(out, "max_retries = {}", config.client.retry.max_retries)?;
    writeln!(
        out,
        "retry_base_delay_ms = {}",
        config.client.retry.base_delay.as_millis()
    )?;
    writeln!(
        out,
        "retry_max_delay_seconds = {}",
        config.client.retry.max_delay.as_secs()
    )?;
    writeln!(
        out,
        "max_requests_per_minute = {}",
        config.client.max_requests_per_minute
    )?;
    writeln!(out, "concurrency = {}", config.concurrency)?;
    writeln!(out, "max_rewalks = {}", config.max_rewalks)?;
    writeln!(out, "confirm_deletions = {}", config.confirm_deletions)?;
    writeln!(
        out,
        "max_delete_percent = {}",
        config.deletion_guard.max_percent
    )?;
    writeln!(out, "max_delete_min = {}", config.deletion_guard.min_count)?;
    writeln!(
        out,
        "ca_file = {}",
        opt(&config
            .client
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string()))
    )?;
    writeln!(
        out,
        "insecure_skip_tls_verify = {}",
        config.client.insecure_skip_tls_verify
    )?;
    writeln!(
        out,
        "auth_mode = {:?}  # {}",
        format!("{:?}", config.auth_mode).to_lowercase(),
        config.auth_description()
    )?;
    writeln!(out, "\n[credentials]")?;
    match &config.credentials {
        CredentialConfig::AkSk(c) => {
            writeln!(out, "access_key = {:?}", c.access_key)?;
            writeln!(out, "secret_key = {}", secret(true))?;
            writeln!(
                out,
                "security_token = {}",
                secret(c.security_token.is_some())
            )?;
        }
        CredentialConfig::Token(_) => writeln!(out, "auth_token = {}", secret(true))?,
        CredentialConfig::IamPassword(p) => {
            writeln!(out, "iam_domain = {:?}", p.domain)?;
            writeln!(out, "iam_user = {:?}", p.user)?;
            writeln!(out, "iam_password = {}", secret(true))?;
        }
    }
    writeln!(out, "\n[filters]")?;
    writeln!(
        out,
        "registry_name = {}",
        opt(&config.filters.registry_name)
    )?;
    writeln!(
        out,
        "registry_type = {}",
        opt(&config.filters.registry_type)
    )?;
    writeln!(
        out,
        "registry_addr = {}",
        opt(&config.filters.registry_addr)
    )?;
    writeln!(out, "status = {}", opt(&config.filters.status))?;
    writeln!(out, "\n[service]")?;
    writeln!(out, "schedule = {:?}", service.schedule.expression())?;
    writeln!(out, "run_at_start = {}", service.run_at_start)?;
    writeln!(out, "listen = \"{}\"", service.listen)?;
    writeln!(
        out,
        "shutdown_deadline_seconds = {}",
        service.shutdown_deadline.as_secs()
    )?;
    writeln!(
        out,
        "max_run_age_seconds = {}",
        service.max_run_age.as_secs()
    )?;
    writeln!(out, "lease_seconds = {}", service.lease.as_secs())?;
    Ok(Exit::Success.code())
}

async fn simulate_command(args: SimulateArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<u8> {
    let credentials = match (args.access_key, args.secret_key) {
        (Some(access_key), Some(secret_key)) => Some(SimCredentials {
            access_key,
            secret_key,
        }),
        (None, None) => None,
        _ => {
            return Err(ConfigError {
                problems: vec![
                    "simulate: give both --access-key and HSS_SIM_SECRET_KEY, or neither"
                        .to_owned(),
                ],
            }
            .into())
        }
    };
    let checks_signatures = credentials.is_some();
    let iam_user = match (args.iam_domain, args.iam_user, args.iam_password) {
        (Some(domain), Some(user), Some(password)) => Some(SimIamUser {
            domain,
            user,
            password,
        }),
        (None, None, _) => None,
        _ => {
            return Err(ConfigError::one(
                "simulate: an IAM user needs --iam-domain, --iam-user and HSS_SIM_IAM_PASSWORD"
                    .to_owned(),
            )
            .into())
        }
    };
    let simulator = Simulator::new(SimConfig {
        seed: args.seed,
        region: args.region.clone(),
        regions: args.extra_regions.clone(),
        n_projects: args.projects,
        n_enterprise_projects: args.enterprise_projects,
        registries_per_scope: args.registries_per_scope,
        credentials,
        iam_user,
        accepted_tokens: args.accepted_tokens.clone(),
        eps_enabled: !args.no_enterprise_projects,
        ..SimConfig::default()
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    writeln!(
        out,
        "simulated HSS API for region {} listening on http://{address}",
        args.region
    )?;
    writeln!(
        out,
        "  {} registries in {} projects",
        simulator.registry_count(),
        args.projects
    )?;
    writeln!(
        out,
        "  signatures: {}",
        if checks_signatures {
            "checked (SDK-HMAC-SHA256)"
        } else {
            "not checked (no --access-key/HSS_SIM_SECRET_KEY)"
        }
    )?;
    writeln!(out, "  estate: curl http://{address}/sim/estate ; change it: curl -X POST -H 'content-type: application/json' -d '{{\"seed\":1,\"n_update\":5,\"n_delete\":2,\"n_add\":3}}' http://{address}/sim/mutate")?;
    writeln!(
        out,
        "  IAM (/v3/auth/tokens, /v3/projects) and EPS (/v1.0/enterprise-projects) answer here too: --iam-endpoint http://{address} --eps-endpoint http://{address}"
    )?;
    writeln!(
        out,
        "  faults: curl -X POST -H 'content-type: application/json' -d '{{\"kind\":\"quota\",\"max_requests\":5,\"window_seconds\":60,\"retry_after\":true}}' http://{address}/sim/faults"
    )?;
    let keys = if checks_signatures {
        "CLOUD_SDK_AK=<the --access-key> CLOUD_SDK_SK=\"$HSS_SIM_SECRET_KEY\""
    } else {
        "CLOUD_SDK_AK=any CLOUD_SDK_SK=any"
    };
    writeln!(
        out,
        "  sync it: {keys} hss-sync sync --region {} --endpoint http://{address} --max-requests-per-minute 0 --project-id {}",
        args.region,
        simulator.project_ids().join(",")
    )?;
    out.flush()?;
    let cancel = cancel_on_signal();
    simulator
        .serve(listener, async move { cancel.cancelled().await })
        .await
        .context("simulated API server failed")?;
    Ok(Exit::Success.code())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_shows_no_secret_values() {
        std::env::set_var("HSS_SIM_SECRET_KEY", "should-not-show");
        std::env::set_var("DATABASE_URL", "postgres://u:should-not-show@h/db");
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("simulate")
            .unwrap()
            .render_long_help()
            .to_string();
        let sync_help = Cli::command()
            .find_subcommand_mut("sync")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(!help.contains("should-not-show"), "{help}");
        assert!(!sync_help.contains("should-not-show"), "{sync_help}");
        assert!(sync_help.contains("--database-url"));
    }
}

//! The command line: clap definitions and one handler per command.
//!
//! Handlers write their report to the `out` they are given, so tests can read it; logs go
//! to standard error through `tracing`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::service::DEFAULT_LEASE;
use crate::config::{self, Config, ConfigError, DatabaseArgs, RawConfig, ServiceSettings};
use crate::demo::DemoArgs;
use crate::progress::TerminalProgress;
use crate::report::time::{self, Since};
use crate::report::{self, Format};
use crate::service::{self, Leased};
use crate::sim::{SimConfig, SimCredentials, SimIamUser, Simulator};
use crate::store::reports::{GrantError, GrantPlan, PruneRequest, ReaderRole};
use crate::store::{now, redact_url, BackendKind, LeaseOutcome, Store};
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
    /// Show the most recent sync runs and their failed scopes; `runs show ID` shows one run whole.
    Runs(RunsArgs),
    /// Show every stored version of one registry (by id or exact name) and what changed.
    History(HistoryArgs),
    /// Show what was created, updated, deleted and restored since a time or for a duration.
    Changes(ChangesArgs),
    /// Show the inventory, failing registries and the last run (exit 0 when it succeeded within --max-age, 1 otherwise).
    Status(StatusArgs),
    /// Remove old history versions and old runs; a registry's current version is never removed.
    Prune(PruneArgs),
    /// PostgreSQL only: let a role read the reporting views, and nothing else.
    GrantReader(GrantReaderArgs),
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

/// Flags of `sync` (and of `run`): every key of the configuration, declared once in
/// [`RawConfig`].
#[derive(Debug, Args, Clone)]
pub struct SyncArgs {
    #[command(flatten)]
    pub settings: RawConfig,
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
    pub service: ServiceSettings,
}

impl RunArgs {
    /// What the flags and the environment say, the service's keys included.
    fn overrides(self) -> RawConfig {
        RawConfig {
            service: self.service,
            ..self.sync.settings
        }
    }
}

/// The variable `grant-reader --create` reads the new role's password from: never a flag,
/// so it is not in the shell history or the process list.
pub const READER_PASSWORD_VARIABLE: &str = "HSS_SYNC_READER_PASSWORD";

/// `--format` of the reports.
#[derive(Debug, Args, Clone)]
pub struct FormatArgs {
    /// Output format: table (for people), json (an array of objects) or csv (with a header row).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Flags of `runs`.
#[derive(Debug, Args, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// `show ID`: one run.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How many runs to show.
    #[arg(long, default_value_t = 10)]
    pub limit: i64,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Subcommands of `runs`.
#[derive(Debug, Subcommand, Clone)]
pub enum RunsCommand {
    /// Show one run: its scopes, pages, API totals and errors (exit 1 when no run has the id).
    Show(RunShowArgs),
}

/// Flags of `runs show`.
#[derive(Debug, Args, Clone)]
pub struct RunShowArgs {
    /// The run's id, as `hss-sync runs` lists it.
    pub id: i64,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Flags of `history`.
#[derive(Debug, Args, Clone)]
pub struct HistoryArgs {
    /// The registry: its id, or its exact registry_name (an error lists the ids when several bear it).
    pub registry: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Flags of `changes`.
#[derive(Debug, Args, Clone)]
pub struct ChangesArgs {
    /// From when: a duration back from now (90m, 24h, 7d, 2w, 1h30m) or an ISO-8601 time (2026-11-28T05:03:02Z; without a zone, UTC; a date alone, its midnight UTC).
    #[arg(long, value_name = "DURATION|TIME", value_parser = time::parse_since)]
    pub since: Since,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Flags of `status`.
#[derive(Debug, Args, Clone)]
pub struct StatusArgs {
    /// How long ago the last run may have succeeded for the check to pass (exit 0): a duration such as 2h or 90m.
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = time::parse_duration)]
    pub max_age: Duration,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub output: FormatArgs,
}

/// Flags of `prune`.
#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["history_older_than", "runs_older_than"])))]
pub struct PruneArgs {
    /// Remove history versions replaced longer ago than this (7d, 90d, 2w); a current version is never removed.
    #[arg(long, value_name = "DURATION", value_parser = time::parse_duration)]
    pub history_older_than: Option<Duration>,
    /// Remove runs (and their scope rows) that finished longer ago than this, except those history or registries still refer to and the newest of each status.
    #[arg(long, value_name = "DURATION", value_parser = time::parse_duration)]
    pub runs_older_than: Option<Duration>,
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// Flags of `grant-reader`.
#[derive(Debug, Args, Clone)]
pub struct GrantReaderArgs {
    /// The PostgreSQL role (quoted as given, so case counts).
    pub role: String,
    /// Create the role, LOGIN, with the password in HSS_SYNC_READER_PASSWORD.
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub database: DatabaseArgs,
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
        Command::Runs(args) => runs_command(cli.config, args, out).await,
        Command::History(args) => {
            let store = open_read_only(cli.config.as_deref(), &args.database).await?;
            let result =
                report::print_history(&store, &args.registry, args.output.format, out).await;
            store.close().await;
            result?;
            Ok(Exit::Success.code())
        }
        Command::Changes(args) => {
            let store = open_read_only(cli.config.as_deref(), &args.database).await?;
            let since = args.since.resolve(now());
            let result = report::print_changes(&store, since, args.output.format, out).await;
            store.close().await;
            result?;
            Ok(Exit::Success.code())
        }
        Command::Status(args) => {
            let store = open_read_only(cli.config.as_deref(), &args.database).await?;
            let result =
                report::print_status(&store, args.max_age, now(), args.output.format, out).await;
            store.close().await;
            Ok(if result?.ok {
                Exit::Success.code()
            } else {
                Exit::Failure.code()
            })
        }
        Command::Prune(args) => prune_command(cli.config, args, out).await,
        Command::GrantReader(args) => grant_reader_command(cli.config, args, out).await,
        Command::Simulate(args) => simulate_command(*args, out).await,
        Command::Demo(args) => Ok(crate::demo::run(args, out).await?),
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
    Ok(config::database_url(args, &load_file(config)?)?)
}

/// The database of `args` (or the config file), opened read-only: what every report reads.
async fn open_read_only(
    config: Option<&std::path::Path>,
    args: &DatabaseArgs,
) -> anyhow::Result<Store> {
    let url = database_url(config, args)?;
    Ok(Store::open_read_only(&url).await?)
}

async fn runs_command(
    config_path: Option<PathBuf>,
    args: RunsArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let (database, format) = match &args.command {
        Some(RunsCommand::Show(show)) => (&show.database, show.output.format),
        None => (&args.database, args.output.format),
    };
    let store = open_read_only(config_path.as_deref(), database).await?;
    let result = match &args.command {
        Some(RunsCommand::Show(show)) => report::print_run(&store, show.id, format, out).await,
        None => report::print_runs_as(&store, args.limit, format, out).await,
    };
    store.close().await;
    result?;
    Ok(Exit::Success.code())
}

async fn prune_command(
    config_path: Option<PathBuf>,
    args: PruneArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let url = database_url(config_path.as_deref(), &args.database)?;
    let now = now();
    let request = PruneRequest {
        history_before: args.history_older_than.map(|d| time::ago(now, d)),
        runs_before: args.runs_older_than.map(|d| time::ago(now, d)),
        dry_run: args.dry_run,
    };
    let store = Store::open(&url).await?;
    // The lease keeps a sync from writing while history and runs are removed.
    let lease = match store.acquire_lease(None, DEFAULT_LEASE).await {
        Ok(LeaseOutcome::Acquired(lease)) => lease,
        Ok(LeaseOutcome::Held { holder, until }) => {
            store.close().await;
            writeln!(
                out,
                "not pruning: {}; try again when it has finished",
                service::Skipped::LeaseHeld { holder, until }
            )?;
            return Ok(Exit::LeaseHeld.code());
        }
        Ok(LeaseOutcome::TickTaken) => unreachable!("no tick was asked for"),
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let outcome = store.prune(&request).await;
    let released = lease.release().await;
    store.close().await;
    let outcome = outcome?;
    if let Err(e) = released {
        tracing::warn!(
            "could not release the sync lease (it lapses on its own): {}",
            crate::errors::chain(&e)
        );
    }
    report::print_prune(&request, &outcome, out)?;
    Ok(Exit::Success.code())
}

async fn grant_reader_command(
    config_path: Option<PathBuf>,
    args: GrantReaderArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let url = database_url(config_path.as_deref(), &args.database)?;
    let usage = |problem: String| ConfigError::one(format!("grant-reader: {problem}"));
    if BackendKind::from_url(&url)? != BackendKind::Postgres {
        return Err(usage(GrantError::NotPostgres.to_string()).into());
    }
    let role = ReaderRole::parse(&args.role).map_err(|e| usage(e.to_string()))?;
    let create_with_password = if args.create {
        match std::env::var(READER_PASSWORD_VARIABLE) {
            Ok(password) if !password.is_empty() => Some(SecretString::from(password)),
            _ => {
                return Err(usage(format!(
                    "--create needs the new role's password in {READER_PASSWORD_VARIABLE}"
                ))
                .into())
            }
        }
    } else {
        None
    };
    let plan = GrantPlan {
        role,
        create_with_password,
    };
    let store = Store::connect(&url).await?;
    let result = store.grant_reader(&plan).await;
    store.close().await;
    for statement in result? {
        writeln!(out, "{statement};")?;
    }
    Ok(Exit::Success.code())
}

/// The configuration from flags and environment (`overrides`) over the file at `config_path`.
fn build_config(
    config_path: Option<&std::path::Path>,
    overrides: &RawConfig,
) -> Result<Config, ConfigError> {
    let file = load_file(config_path)?;
    Config::build(overrides, &file, |name| std::env::var(name).ok())
}

async fn sync_command(
    config_path: Option<PathBuf>,
    args: SyncArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let Config {
        sync: config,
        service,
        ..
    } = build_config(config_path.as_deref(), &args.settings)?;
    let lease = service.lease;
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
    let Config {
        sync: config,
        service,
        ..
    } = build_config(config_path.as_deref(), &args.overrides())?;
    let store = Store::open(&config.database_url).await?;
    let shutdown = cancel_on_signal();
    let result = service::run_daemon(config, service, store.clone(), shutdown).await;
    store.close().await;
    result?;
    Ok(Exit::Success.code())
}

fn config_check(
    config_path: Option<PathBuf>,
    args: RunArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<u8> {
    let config = build_config(config_path.as_deref(), &args.overrides())?;
    write!(out, "{}", config.to_toml())?;
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

//! A simulated Huawei Cloud HSS `ListRegistry` API, faithful enough to sync against.
//!
//! `hss-sync demo`, `hss-sync simulate`, the integration tests and the benchmarks all talk to this
//! simulator over real HTTP, exactly as they would talk to `https://hss.{region}.myhuaweicloud.com`.
//! It is product code, not a test helper, and follows docs/huawei-api.md:
//!
//! * `GET /v5/{project_id}/image/registries` with the documented query parameters, ranges and defaults
//!   (§0), `{"total_num", "data_list"}` pages, and Huawei error bodies
//!   `{"error_code","error_msg","request_id"}` with a matching `X-Request-Id` header (§5);
//! * an estate of projects, enterprise projects and registries generated deterministically from a seed,
//!   with realistic field values (§1), spread over one or more regions, that can be mutated
//!   deterministically between syncs;
//! * optional AK/SK checking with its own `SDK-HMAC-SHA256` verifier (§3), independent of the client's
//!   signer so that a signer bug cannot be hidden by the same bug here;
//! * IAM password tokens (`POST /v3/auth/tokens`, §4) accepted as `X-Auth-Token`, with expiry;
//! * IAM `GET /v3/projects` (KeystoneListProjects) and EPS `GET /v1.0/enterprise-projects` (§6);
//! * injectable faults (failed pages or enterprise projects, truncated JSON, odd 200 answers such as
//!   `{}` or a page without `total_num`, short pages, a wrong `total_num`, latency, throttling and
//!   per-user quotas, hung responses, forbidden projects, estate drift during a walk, periodic server
//!   errors) for retry and consistency tests;
//! * targeted estate changes by registry id ([`EstateChange`]: add, update, delete, restore with the
//!   same id, move between enterprise projects or projects) for model-based tests;
//! * unauthenticated admin endpoints under `/sim/` for humans with curl.
//!
//! One server answers for every region and for the global IAM and EPS services, because the client
//! reaches all of them through one `--endpoint`.
//!
//! # Regions and project names
//! Projects are assigned round-robin over `[config.region] + config.regions` (duplicates dropped).
//! The first project of a region is its *main* project and is named exactly after the region
//! (`cn-north-4`); the k-th project of the region (k counting from 1, so the first sub-project has k = 2)
//! is a sub-project named `{region}_proj{k}` (`cn-north-4_proj2`) whose `parent_id` is the main project.
//! With `n_projects = 3` and regions `cn-north-4, ap-southeast-1` the projects are, in order,
//! `cn-north-4`, `ap-southeast-1` and `cn-north-4_proj2`.
//! IAM's project listing also holds entries that are not HSS projects and that a client must filter out:
//! `MOS` (OBS's default project) and, with `include_disabled_project`, a disabled
//! `{region}_retired` sub-project. Ids listed by IAM for the estate's projects are the ids ListRegistry
//! serves.
//!
//! # Authentication
//! Authentication is on when `credentials`, `iam_user` or `accepted_tokens` is set. Then every HSS, IAM
//! project-listing and EPS request must carry either an `Authorization: SDK-HMAC-SHA256 ..` header
//! (checked first when present) or an `X-Auth-Token`:
//! * an unknown or garbled token: 401 `APIG.0301` "Incorrect IAM authentication information: decrypt
//!   token fail";
//! * an expired token: 401 `APIG.0307` "The token must be updated.";
//! * on HSS, a token scoped to another project (or to the domain): 403 `HSS.0010` (access denied), the
//!   code this simulator already uses for an `X-Project-Id` that does not match the path, because it is
//!   the HSS backend, not APIG, that compares the token's project with the path;
//! * IAM and EPS accept any valid token, project- or domain-scoped, and the static `accepted_tokens`;
//! * IAM answers its own failures in IAM's shape, `{"error":{"code":401,"title":"Unauthorized",
//!   "message":..}}`.
//!
//! # Injecting faults with curl
//! `POST /sim/faults` takes one [`Fault`] as JSON, tagged by `kind`, and answers 201 with the fault as
//! installed, or 400 naming the unknown kind, the unknown or missing field or the bad value;
//! `POST /sim/faults/clear` removes them all. `GET /sim/faults` answers
//! `{"installed": [..], "kinds": [..]}`: the installed faults in the same JSON, and every kind with
//! its required and optional fields and an example ([`FAULT_KINDS`]). For example:
//! `curl -X POST -d '{"kind":"quota","max_requests":5,"window_seconds":60,"retry_after":true}'
//! http://127.0.0.1:8080/sim/faults`.
//!
//! # Changing the estate with curl
//! `POST /sim/mutate` takes a [`Mutation`] (`{"seed":1,"n_update":5,"n_delete":2,"n_add":3}`) or one
//! [`EstateChange`] tagged by `kind`, answered with `{"id": ..}` or 400 and the reason:
//! ```text
//! {"kind":"add","project_id":"..","enterprise_project_id":"0","seed":7}
//! {"kind":"update","id":"..","seed":7}
//! {"kind":"delete","id":".."}
//! {"kind":"restore","id":"..","update_seed":7}        (update_seed may be omitted: restored as it was)
//! {"kind":"move","id":"..","project_id":"..","enterprise_project_id":".."}
//! ```
//!
//! # Layout
//! Dependencies point one way: `router` → the services (`list_registry`, `iam`, `eps`, `admin`) →
//! `global`, `auth`, `faults`, `account` → `http`, `verify`, `estate`, and everything may use the
//! [`Simulator`] state defined here. No service imports another.
//! * `mod.rs`: the [`Simulator`] handle, [`SimConfig`], the request log and serving.
//! * `router.rs`: which handler answers which route.
//! * `list_registry.rs`: HSS ListRegistry, its parameters, pages and checks.
//! * `iam.rs`: IAM tokens, project listing and the caller's domain.
//! * `eps.rs`: EPS enterprise-project listing.
//! * `global.rs`: what IAM and EPS do around every answer (`X-Domain-Id`, logging).
//! * `auth.rs`: AK/SK and token authentication for every route, and APIG's refusals.
//! * `faults.rs`: the [`Fault`] enum (also its JSON), each kind's documentation, and where faults meet
//!   a request.
//! * `admin.rs`: the `/sim/` routes.
//! * `account.rs`: the account around the estate (domain, system projects, enterprise projects).
//! * `estate.rs`: the deterministic synthetic estate, [`Mutation`] and [`EstateChange`].
//! * `http.rs`: Huawei's error bodies, request ids and JSON responses.
//! * `verify.rs`: the independent signature verifier and `X-Sdk-Date` skew check.
//!
//! Each module's tests are in `<module>/tests.rs`, so a reader sees the code first.
//!
//! # Example
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use hss_sync::sim::{SimConfig, Simulator};
//! let simulator = Simulator::new(SimConfig::default());
//! let running = simulator.spawn_on_localhost().await?;
//! println!("HSS endpoint: {}", running.base_url());
//! running.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod account;
pub mod admin;
pub mod auth;
pub mod eps;
pub mod estate;
pub mod faults;
pub mod global;
pub mod http;
pub mod iam;
pub mod list_registry;
pub mod router;
pub mod verify;

#[cfg(test)]
mod testkit;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde_json::Value;

use account::Account;
use auth::IssuedToken;
use estate::Estate;
use faults::ActiveFault;

pub use estate::{EstateChange, EstateChangeError, Mutation, MutationSummary};
pub use faults::{Fault, FaultKind, FAULT_KINDS};

/// APIG rejects a request whose `X-Sdk-Date` is more than 15 minutes from server time (API signing guide).
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// At most this many [`RequestRecord`]s are kept, oldest dropped first, so a long `simulate` run or a
/// benchmark cannot grow the log without bound; far more than any test inspects.
pub const REQUEST_LOG_CAPACITY: usize = 10_000;

/// IAM tokens are valid for 24 hours (docs/huawei-api.md §4).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a [`Fault::Hang`] request waits before it finally answers 504: far longer than any client
/// timeout, so to the client the response never comes.
pub const HANG_DURATION: Duration = Duration::from_secs(60 * 60);

/// `RequestRecord::api` of a ListRegistry request.
pub const API_LIST_REGISTRY: &str = "ListRegistry";
/// `RequestRecord::api` of an IAM token request (`POST /v3/auth/tokens`).
pub const API_CREATE_TOKEN: &str = "CreateToken";
/// `RequestRecord::api` of an IAM project listing (`GET /v3/projects`).
pub const API_LIST_PROJECTS: &str = "ListProjects";

/// [`RequestRecord::api`] of IAM `KeystoneListAuthDomains` requests.
pub const API_LIST_AUTH_DOMAINS: &str = "ListAuthDomains";
/// `RequestRecord::api` of an EPS listing (`GET /v1.0/enterprise-projects`).
pub const API_LIST_ENTERPRISE_PROJECTS: &str = "ListEnterpriseProjects";
/// `RequestRecord::api` of a `/sim/` admin request.
pub const API_ADMIN: &str = "Admin";

/// How the simulated account looks and how strictly requests are checked.
/// `Debug` shows how many `accepted_tokens` there are, never the tokens.
#[derive(Clone)]
pub struct SimConfig {
    /// Seed for the estate; the same seed and sizes always give the same estate.
    pub seed: u64,
    /// Main region id, e.g. `cn-north-4`; the first region projects are assigned to, and the region of
    /// SWR registry addresses in its projects.
    pub region: String,
    /// Further regions; projects are spread round-robin over `[region] + regions` (duplicates dropped).
    /// Empty (the default) means just `region`.
    pub regions: Vec<String>,
    /// Number of projects; ids are 32 lower-case hex characters derived from the seed.
    pub n_projects: usize,
    /// Number of enterprise projects besides the default EP `"0"`; ids are UUID-shaped, from the seed.
    pub n_enterprise_projects: usize,
    /// Registries generated in each (project, enterprise project) scope, including EP `"0"`.
    pub registries_per_scope: usize,
    /// AK/SK that requests must be signed with; `None` disables the signature check.
    pub credentials: Option<SimCredentials>,
    /// Largest accepted distance between `X-Sdk-Date` and the server clock.
    pub max_clock_skew: Duration,
    /// The IAM user that `POST /v3/auth/tokens` accepts; `None` makes every password wrong.
    pub iam_user: Option<SimIamUser>,
    /// Validity of issued tokens; IAM's is 24 hours. Changeable later with [`Simulator::set_token_ttl`].
    pub token_ttl: Duration,
    /// Static tokens accepted as `X-Auth-Token` for every project, never expiring: a token handed to the
    /// client from outside (e.g. an environment variable).
    pub accepted_tokens: Vec<String>,
    /// List a disabled sub-project in IAM's project listing (a client must skip it).
    pub include_disabled_project: bool,
    /// Whether the account has enterprise projects enabled; when false, EPS answers 403 `EPS.0004`.
    pub eps_enabled: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            region: "cn-north-4".to_string(),
            regions: Vec::new(),
            n_projects: 2,
            n_enterprise_projects: 2,
            registries_per_scope: 25,
            credentials: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            iam_user: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            accepted_tokens: Vec::new(),
            include_disabled_project: false,
            eps_enabled: true,
        }
    }
}

impl SimConfig {
    /// Whether requests must authenticate: AK/SK, an IAM user or static tokens are configured.
    pub fn auth_enabled(&self) -> bool {
        self.credentials.is_some() || self.iam_user.is_some() || !self.accepted_tokens.is_empty()
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("seed", &self.seed)
            .field("region", &self.region)
            .field("regions", &self.regions)
            .field("n_projects", &self.n_projects)
            .field("n_enterprise_projects", &self.n_enterprise_projects)
            .field("registries_per_scope", &self.registries_per_scope)
            .field("credentials", &self.credentials)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("iam_user", &self.iam_user)
            .field("token_ttl", &self.token_ttl)
            .field(
                "accepted_tokens",
                &format_args!("[{} redacted]", self.accepted_tokens.len()),
            )
            .field("include_disabled_project", &self.include_disabled_project)
            .field("eps_enabled", &self.eps_enabled)
            .finish()
    }
}

/// The one IAM user whose password `POST /v3/auth/tokens` accepts. `Debug` redacts the password.
#[derive(Clone)]
pub struct SimIamUser {
    /// Account (domain) name, `auth.identity.password.user.domain.name`.
    pub domain: String,
    /// IAM user name.
    pub user: String,
    /// The user's password; never logged or returned.
    pub password: String,
}

impl fmt::Debug for SimIamUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimIamUser")
            .field("domain", &self.domain)
            .field("user", &self.user)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// The one access key / secret key pair the simulator accepts. `Debug` redacts the secret key.
#[derive(Clone)]
pub struct SimCredentials {
    /// Access key id (AK); not secret, APIG echoes it in error messages.
    pub access_key: String,
    /// Secret key (SK); never logged or returned.
    pub secret_key: String,
}

impl fmt::Debug for SimCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

/// One request as the simulator saw it: ListRegistry, IAM, EPS or admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Which API: [`API_LIST_REGISTRY`], [`API_CREATE_TOKEN`], [`API_LIST_PROJECTS`],
    /// [`API_LIST_ENTERPRISE_PROJECTS`] or [`API_ADMIN`].
    pub api: String,
    /// How the request tried to authenticate, valid or not: `aksk` (an `Authorization` header), `token`
    /// (an `X-Auth-Token` and no `Authorization`) or `none`.
    pub auth: String,
    /// HTTP method.
    pub method: String,
    /// Path as received (still percent-encoded).
    pub path: String,
    /// Raw query string as received, empty when there was none.
    pub query: String,
    /// HTTP status of the response; 0 while a [`Fault::Hang`] request has not answered.
    pub status: u16,
    /// The `Retry-After` seconds sent with the response, if any.
    pub retry_after: Option<u32>,
    /// The project id from the ListRegistry path; empty for the other APIs.
    pub project_id: String,
    /// `offset` as sent; None when absent or not an integer.
    pub offset: Option<u32>,
    /// `limit` as sent; None when absent or not an integer.
    pub limit: Option<u32>,
    /// `enterprise_project_id` as sent; None when absent.
    pub enterprise_project_id: Option<String>,
    /// True when the request carried a signature that verified; always false without credentials.
    pub had_valid_signature: bool,
    /// The `request_id` / `X-Request-Id` of the response.
    pub request_id: String,
    /// For ListRegistry: how many ListRegistry requests were being answered when this one
    /// arrived, itself included (a request is being answered until its response leaves the
    /// handler, latency and hanging included); 0 for the other APIs.
    pub in_flight: u32,
}

/// Shared handle to a running (or not yet served) simulator; clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    /// All mutable state, behind one lock that is never held across an `.await`.
    state: Arc<Mutex<State>>,
    /// Wakes requests held by [`Fault::Hang`]; notified when the server shuts down so graceful shutdown
    /// does not wait an hour for them.
    release_hung: Arc<tokio::sync::Notify>,
}

/// Everything the simulator remembers.
pub(crate) struct State {
    /// The configuration the simulator was created with.
    pub(crate) config: SimConfig,
    /// Projects, EPs and registries; changed by mutations and test helpers.
    pub(crate) estate: Estate,
    /// The account around the estate: domain, user, system projects, EP names; fixed at creation.
    pub(crate) account: Account,
    /// Active faults in insertion order, with their counters; exhausted ones are removed.
    pub(crate) faults: Vec<ActiveFault>,
    /// ListRegistry requests received, including rejected ones.
    pub(crate) request_count: u64,
    /// ListRegistry requests answered 429, whichever fault caused it.
    pub(crate) throttled_count: u64,
    /// The most recent requests of every API, at most [`REQUEST_LOG_CAPACITY`].
    pub(crate) request_log: VecDeque<RequestRecord>,
    /// Tokens issued by `POST /v3/auth/tokens`, by token text.
    pub(crate) tokens: HashMap<String, IssuedToken>,
    /// Tokens issued since creation.
    pub(crate) tokens_issued: u64,
    /// Validity of tokens issued from now on.
    pub(crate) token_ttl: Duration,
    /// Draws [`Fault::Latency`] delays; seeded from the estate seed.
    pub(crate) latency_rng: ChaCha8Rng,
    /// Drifts applied so far, mixed into the seed of each drift's new registries.
    pub(crate) n_drifts: u64,
    /// ListRegistry requests being answered now (see [`RequestRecord::in_flight`]).
    pub(crate) list_in_flight: u32,
}

impl RequestRecord {
    /// The record of a request to `api` as received, before it is answered: status 0, no retry, no
    /// ListRegistry parameters, no request id; the caller fills in what it learns.
    pub(crate) fn received(
        api: &str,
        auth: &str,
        method: &axum::http::Method,
        uri: &axum::http::Uri,
    ) -> Self {
        RequestRecord {
            api: api.to_string(),
            auth: auth.to_string(),
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().unwrap_or("").to_string(),
            status: 0,
            retry_after: None,
            project_id: String::new(),
            offset: None,
            limit: None,
            enterprise_project_id: None,
            had_valid_signature: false,
            request_id: String::new(),
            in_flight: 0,
        }
    }
}

impl State {
    /// Append a record to the request log, dropping the oldest beyond [`REQUEST_LOG_CAPACITY`].
    pub(crate) fn log_request(&mut self, record: RequestRecord) {
        if self.request_log.len() >= REQUEST_LOG_CAPACITY {
            self.request_log.pop_front();
        }
        self.request_log.push_back(record);
    }
}

impl Simulator {
    /// When a request arriving now is answered: [`Fault::Latency`]'s delay after its arrival,
    /// or at once without that fault. The delay covers the simulator's own work, as a real
    /// service's response time does, so that a client's wall time can be set against it.
    pub(crate) fn answer_at(&self) -> tokio::time::Instant {
        let delay = self.lock().next_latency().unwrap_or_default();
        tokio::time::Instant::now() + delay
    }

    /// Wait as a [`Fault::Hang`] request does: [`HANG_DURATION`], or until released by shutdown or
    /// [`Simulator::clear_faults`].
    pub(crate) async fn hang(&self) {
        let released = self.release_hung.notified();
        tokio::select! {
            () = tokio::time::sleep(HANG_DURATION) => {}
            () = released => {}
        }
    }

    /// Create a simulator whose estate is generated from `config.seed`.
    pub fn new(config: SimConfig) -> Self {
        let estate = Estate::generate(&config);
        let account = Account::generate(&config);
        let latency_rng = ChaCha8Rng::seed_from_u64(config.seed.rotate_left(29) ^ 0x1a7e_5c9d);
        let token_ttl = config.token_ttl;
        Simulator {
            state: Arc::new(Mutex::new(State {
                config,
                estate,
                account,
                faults: Vec::new(),
                request_count: 0,
                throttled_count: 0,
                request_log: VecDeque::new(),
                tokens: HashMap::new(),
                tokens_issued: 0,
                token_ttl,
                latency_rng,
                n_drifts: 0,
                list_in_flight: 0,
            })),
            release_hung: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The axum router serving the Huawei routes, the `/sim/` admin routes and the APIG 404 fallback.
    pub fn router(&self) -> axum::Router {
        router::router(self.clone())
    }

    /// Serve on an already bound listener until `shutdown` resolves (tests bind 127.0.0.1:0).
    ///
    /// # Errors
    /// Returns the I/O error that stopped the server.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let release_hung = self.release_hung.clone();
        let shutdown = async move {
            shutdown.await;
            // Graceful shutdown waits for in-flight requests; hung ones must give up now.
            release_hung.notify_waiters();
        };
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Bind `127.0.0.1:0`, serve in a background task, and return the address and a shutdown handle.
    ///
    /// # Errors
    /// Returns the error from binding the socket.
    pub async fn spawn_on_localhost(&self) -> std::io::Result<RunningSimulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let (shutdown_sender, shutdown_receiver) = tokio::sync::oneshot::channel::<()>();
        let simulator = self.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = shutdown_receiver.await;
            };
            if let Err(error) = simulator.serve(listener, shutdown).await {
                tracing::error!(%error, "simulated hss api stopped with an error");
            }
        });
        Ok(RunningSimulator {
            address,
            shutdown_sender,
            task,
        })
    }

    /// The configured main region id.
    pub fn region(&self) -> String {
        self.lock().config.region.clone()
    }

    /// Every region of the account, main region first, without duplicates.
    pub fn regions(&self) -> Vec<String> {
        self.lock().estate.regions.clone()
    }

    /// The region of a project, `None` for an unknown project.
    pub fn project_region(&self, project_id: &str) -> Option<String> {
        self.lock()
            .estate
            .project(project_id)
            .map(|p| p.region.clone())
    }

    /// `(project id, region)` of every project, in generation order.
    pub fn projects(&self) -> Vec<(String, String)> {
        self.lock()
            .estate
            .projects
            .iter()
            .map(|p| (p.project_id.clone(), p.region.clone()))
            .collect()
    }

    /// The IAM name of a project (`cn-north-4` or `cn-north-4_proj2`, see the module docs), `None` for
    /// an unknown project.
    pub fn project_name(&self, project_id: &str) -> Option<String> {
        self.lock()
            .estate
            .project(project_id)
            .map(|p| p.name.clone())
    }

    /// The account (domain) id: 32 lower-case hex characters derived from the seed.
    pub fn domain_id(&self) -> String {
        self.lock().account.domain_id.clone()
    }

    /// The configuration the simulator was created with.
    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// Project ids in generation order.
    pub fn project_ids(&self) -> Vec<String> {
        let state = self.lock();
        state
            .estate
            .projects
            .iter()
            .map(|p| p.project_id.clone())
            .collect()
    }

    /// Enterprise project ids, default EP `"0"` first.
    pub fn enterprise_project_ids(&self) -> Vec<String> {
        self.lock().estate.enterprise_project_ids.clone()
    }

    /// Current registries (as the JSON objects the API would return) of a project, optionally one EP,
    /// in the order ListRegistry pages them; for tests to compare against the database.
    /// An unknown project or EP gives an empty list.
    pub fn registries(&self, project_id: &str, enterprise_project_id: Option<&str>) -> Vec<Value> {
        let state = self.lock();
        let Some(project) = state.estate.project(project_id) else {
            return Vec::new();
        };
        project
            .scopes
            .iter()
            .filter(|s| enterprise_project_id.is_none_or(|ep| s.enterprise_project_id == ep))
            .flat_map(|s| s.registries.iter().cloned())
            .collect()
    }

    /// Total number of registries in the estate.
    pub fn registry_count(&self) -> usize {
        self.lock().estate.registry_count()
    }

    /// Change the estate deterministically: update `n_update` registries, delete `n_delete`, add `n_add`
    /// (spread over scopes). Returns the affected ids. Counts larger than the estate are clamped.
    pub fn mutate(&self, mutation: &Mutation) -> MutationSummary {
        let summary = self.lock().estate.mutate(mutation);
        tracing::info!(
            n_updated = summary.updated.len(),
            n_deleted = summary.deleted.len(),
            n_added = summary.added.len(),
            "simulated hss estate mutated"
        );
        summary
    }

    /// Make a scope hold exactly `n` registries (for page edge-case tests: 0, 200, 201), truncating or
    /// appending deterministic registries. An EP new to the project is created.
    ///
    /// # Panics
    /// If the project does not exist.
    pub fn set_registries_in_scope(&self, project_id: &str, enterprise_project_id: &str, n: usize) {
        let mut state = self.lock();
        let seed = state.config.seed;
        state
            .estate
            .set_registries_in_scope(seed, project_id, enterprise_project_id, n);
    }

    /// Append a raw registry object to a scope; fields may be missing, null or unknown and are returned
    /// exactly as given (tests of nullable fields, unknown fields and unknown enum strings).
    /// An EP new to the project is created.
    ///
    /// # Panics
    /// If the project does not exist.
    pub fn insert_registry(&self, project_id: &str, enterprise_project_id: &str, registry: Value) {
        self.lock()
            .estate
            .scope_mut(project_id, enterprise_project_id)
            .registries
            .push(registry);
    }

    /// Apply one [`EstateChange`]; returns the id of the registry it changed (the new one for `Add`).
    ///
    /// # Errors
    /// See [`EstateChangeError`]; the estate is unchanged then.
    pub fn apply_change(&self, change: &EstateChange) -> Result<String, EstateChangeError> {
        let result = self.lock().estate.apply_change(change);
        if let Ok(id) = &result {
            tracing::debug!(registry.id = %id, ?change, "simulated hss registry {id} changed");
        }
        result
    }

    /// Add a registry generated from `seed` at the end of a scope; returns its id.
    ///
    /// # Errors
    /// [`EstateChangeError::UnknownProject`].
    pub fn add_registry(
        &self,
        project_id: &str,
        enterprise_project_id: &str,
        seed: u64,
    ) -> Result<String, EstateChangeError> {
        self.apply_change(&EstateChange::Add {
            project_id: project_id.to_string(),
            enterprise_project_id: enterprise_project_id.to_string(),
            seed,
        })
    }

    /// Change a registry's fields (from `seed`) as a real one changes between syncs.
    ///
    /// # Errors
    /// [`EstateChangeError::UnknownRegistry`].
    pub fn update_registry(&self, id: &str, seed: u64) -> Result<(), EstateChangeError> {
        self.apply_change(&EstateChange::Update {
            id: id.to_string(),
            seed,
        })
        .map(drop)
    }

    /// Remove a registry, remembering it for [`Simulator::restore_registry`].
    ///
    /// # Errors
    /// [`EstateChangeError::UnknownRegistry`].
    pub fn delete_registry(&self, id: &str) -> Result<(), EstateChangeError> {
        self.apply_change(&EstateChange::Delete { id: id.to_string() })
            .map(drop)
    }

    /// Bring back a deleted registry with its id, in the scope it left, changed (from `update_seed`)
    /// or as it was.
    ///
    /// # Errors
    /// [`EstateChangeError::AlreadyPresent`] or [`EstateChangeError::NeverDeleted`].
    pub fn restore_registry(
        &self,
        id: &str,
        update_seed: Option<u64>,
    ) -> Result<(), EstateChangeError> {
        self.apply_change(&EstateChange::Restore {
            id: id.to_string(),
            update_seed,
        })
        .map(drop)
    }

    /// Move a registry to another enterprise project of its own project, keeping id and content.
    ///
    /// # Errors
    /// [`EstateChangeError::UnknownRegistry`].
    pub fn move_registry_to_enterprise_project(
        &self,
        id: &str,
        enterprise_project_id: &str,
    ) -> Result<(), EstateChangeError> {
        let project_id = self
            .locate_registry(id)
            .ok_or_else(|| EstateChangeError::UnknownRegistry(id.to_string()))?
            .0;
        self.move_registry_to_project(id, &project_id, enterprise_project_id)
    }

    /// Move a registry to a scope of another project (or its own), keeping id and content.
    ///
    /// # Errors
    /// [`EstateChangeError::UnknownRegistry`] or [`EstateChangeError::UnknownProject`].
    pub fn move_registry_to_project(
        &self,
        id: &str,
        project_id: &str,
        enterprise_project_id: &str,
    ) -> Result<(), EstateChangeError> {
        self.apply_change(&EstateChange::Move {
            id: id.to_string(),
            project_id: project_id.to_string(),
            enterprise_project_id: enterprise_project_id.to_string(),
        })
        .map(drop)
    }

    /// `(project id, enterprise project id)` of the registry with this id, `None` when it is not in the
    /// estate.
    pub fn locate_registry(&self, id: &str) -> Option<(String, String)> {
        let state = self.lock();
        let (p, s, _) = state.estate.position_of(id)?;
        let project = &state.estate.projects[p];
        Some((
            project.project_id.clone(),
            project.scopes[s].enterprise_project_id.clone(),
        ))
    }

    /// Ids of the registries deleted from the estate and not restored since, oldest deletion first;
    /// each can be passed to [`Simulator::restore_registry`].
    pub fn deleted_registry_ids(&self) -> Vec<String> {
        self.lock()
            .estate
            .deleted
            .iter()
            .map(|d| estate::registry_id(&d.registry))
            .collect()
    }

    /// Add a fault after the existing ones. A fault that can never fire (`times: Some(0)`, a period of
    /// 0) is not added.
    pub fn add_fault(&self, fault: Fault) {
        if !fault.never_fires() {
            self.lock().faults.push(ActiveFault::new(fault));
        }
    }

    /// The active faults, in the order they apply.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.iter().map(|f| f.fault.clone()).collect()
    }

    /// Remove every fault, and release requests held by [`Fault::Hang`] (they answer 504).
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
        self.release_hung.notify_waiters();
    }

    /// ListRegistry requests received, including rejected ones.
    pub fn request_count(&self) -> u64 {
        self.lock().request_count
    }

    /// ListRegistry requests answered 429 (by `Quota`, `ThrottleEveryNth` or a 429 `FailPage`).
    pub fn throttled_count(&self) -> u64 {
        self.lock().throttled_count
    }

    /// The most recent requests of every API, oldest first (at most [`REQUEST_LOG_CAPACITY`]); filter
    /// on [`RequestRecord::api`] for one API.
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lock().request_log.iter().cloned().collect()
    }

    /// Tokens issued by `POST /v3/auth/tokens` since creation.
    pub fn tokens_issued(&self) -> u64 {
        self.lock().tokens_issued
    }

    /// Make every token issued so far expired as of now (the next use gets 401 `APIG.0307`).
    /// Static `accepted_tokens` never expire.
    pub fn expire_tokens(&self) {
        let now = chrono::Utc::now();
        for token in self.lock().tokens.values_mut() {
            token.expires_at = token.expires_at.min(now);
        }
    }

    /// Set the validity of tokens issued from now on (tests of refresh before expiry use seconds).
    pub fn set_token_ttl(&self, token_ttl: Duration) {
        self.lock().token_ttl = token_ttl;
    }

    /// Lock the state; a poisoned lock is recovered because every update leaves the state consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("Simulator")
            .field("config", &state.config)
            .field("registry_count", &state.estate.registry_count())
            .field("n_faults", &state.faults.len())
            .field("request_count", &state.request_count)
            .field("tokens_issued", &state.tokens_issued)
            .finish()
    }
}

/// A simulator serving in a background task, from [`Simulator::spawn_on_localhost`].
#[derive(Debug)]
pub struct RunningSimulator {
    /// The bound socket address.
    address: SocketAddr,
    /// Dropping or sending stops the server gracefully.
    shutdown_sender: tokio::sync::oneshot::Sender<()>,
    /// The serving task, awaited by [`RunningSimulator::shutdown`].
    task: tokio::task::JoinHandle<()>,
}

impl RunningSimulator {
    /// The bound address, e.g. `127.0.0.1:54321`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The endpoint to configure in the client, e.g. `http://127.0.0.1:54321` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stop serving and wait for in-flight requests to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown_sender.send(());
        let _ = self.task.await;
    }
}

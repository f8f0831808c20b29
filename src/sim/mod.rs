//! A simulated Huawei Cloud HSS `ListRegistry` API, faithful enough to sync against.
//!
//! `hss-sync demo`, `hss-sync simulate`, the integration tests and the benchmarks all talk to this
//! simulator over real HTTP, exactly as they would talk to `https://hss.{region}.myhuaweicloud.com`.
//! It is product code, not a test helper, and follows HUAWEI-API.md:
//!
//! * `GET /v5/{project_id}/image/registries` with the documented query parameters, ranges and defaults
//!   (§0), `{"total_num", "data_list"}` pages, and Huawei error bodies
//!   `{"error_code","error_msg","request_id"}` with a matching `X-Request-Id` header (§5);
//! * an estate of projects, enterprise projects and registries generated deterministically from a seed,
//!   with realistic field values (§1), that can be mutated deterministically between syncs;
//! * optional AK/SK checking with its own `SDK-HMAC-SHA256` verifier (§3), independent of the client's
//!   signer so that a signer bug cannot be hidden by the same bug here;
//! * injectable faults (failed pages, truncated JSON, short pages, a wrong `total_num`) for retry and
//!   consistency tests;
//! * unauthenticated admin endpoints under `/sim/` for humans with curl.
//!
//! # Layout
//! * `mod.rs`: the [`Simulator`] handle, [`SimConfig`], [`Mutation`], [`Fault`] and serving.
//! * `estate.rs`: the deterministic synthetic estate and its mutations.
//! * `verify.rs`: the independent signature verifier and `X-Sdk-Date` skew check.
//! * `routes.rs`: the axum router, handlers and Huawei-style error bodies.
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

pub mod estate;
pub mod routes;
pub mod verify;

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use estate::Estate;

/// APIG rejects a request whose `X-Sdk-Date` is more than 15 minutes from server time (API signing guide).
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// At most this many [`RequestRecord`]s are kept, oldest dropped first, so a long `simulate` run or a
/// benchmark cannot grow the log without bound; far more than any test inspects.
pub const REQUEST_LOG_CAPACITY: usize = 10_000;

/// How the simulated account looks and how strictly requests are checked.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed for the estate; the same seed and sizes always give the same estate.
    pub seed: u64,
    /// Region id, e.g. `cn-north-4`; used in SWR registry addresses.
    pub region: String,
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
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            region: "cn-north-4".to_string(),
            n_projects: 2,
            n_enterprise_projects: 2,
            registries_per_scope: 25,
            credentials: None,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
        }
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

/// A deterministic change to the estate, as between two syncs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mutation {
    /// Seed for choosing and changing registries; the same seed on the same estate gives the same result.
    pub seed: u64,
    /// Registries to update (sync time always; sometimes status, fail reason, image count, name, protocol).
    pub n_update: usize,
    /// Registries to delete.
    pub n_delete: usize,
    /// Registries to add, spread round-robin over all scopes.
    pub n_add: usize,
}

/// The registry ids a [`Mutation`] touched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationSummary {
    /// Ids of updated registries.
    pub updated: Vec<String>,
    /// Ids of deleted registries.
    pub deleted: Vec<String>,
    /// Ids of added registries.
    pub added: Vec<String>,
}

/// A failure to inject into ListRegistry responses. Faults are checked in the order they were added;
/// the first matching `FailPage` or `MalformedJson` fault answers the request.
/// Faults apply only to requests that passed authentication and parameter validation.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Fail ListRegistry for this project (None = any) at this offset (None = any) with this HTTP status
    /// and a Huawei error body, `times` times (None = forever).
    FailPage {
        /// Project to fail, or any.
        project_id: Option<String>,
        /// Effective offset (after defaulting) to fail, or any.
        offset: Option<u32>,
        /// HTTP status, e.g. 429 or 500.
        status: u16,
        /// `error_code` of the body, e.g. `APIG.0308`.
        error_code: String,
        /// `error_msg` of the body.
        error_msg: String,
        /// How many requests to fail before the fault disappears; None = forever.
        times: Option<u32>,
    },
    /// Return a syntactically broken JSON body (a truncated page) with status 200.
    MalformedJson {
        /// Project to affect, or any.
        project_id: Option<String>,
        /// Effective offset to affect, or any.
        offset: Option<u32>,
        /// How many requests to affect; None = forever.
        times: Option<u32>,
    },
    /// Cap every page at this many items regardless of limit (the real API may return fewer than limit).
    MaxPageItems(usize),
    /// Report total_num as this value instead of the true count (inconsistency tests).
    WrongTotalNum {
        /// Project to affect, or any.
        project_id: Option<String>,
        /// The `total_num` to report.
        total_num: i64,
    },
}

impl Fault {
    /// APIG's throttling answer (HTTP 429, `APIG.0308`) for `project_id` (None = any), `times` times.
    pub fn rate_limited(project_id: Option<String>, times: Option<u32>) -> Fault {
        Fault::FailPage {
            project_id,
            offset: None,
            status: 429,
            error_code: "APIG.0308".to_string(),
            error_msg: "The throttling threshold has been reached: policy user over ratelimit,limit:5,time:1 minute"
                .to_string(),
            times,
        }
    }

    /// APIG's answer when the HSS backend is down (HTTP 502, `APIG.0201`) for `project_id` at `offset`.
    pub fn backend_unavailable(
        project_id: Option<String>,
        offset: Option<u32>,
        times: Option<u32>,
    ) -> Fault {
        Fault::FailPage {
            project_id,
            offset,
            status: 502,
            error_code: "APIG.0201".to_string(),
            error_msg: "Backend unavailable".to_string(),
            times,
        }
    }
}

/// One ListRegistry request as the simulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path as received (still percent-encoded).
    pub path: String,
    /// Raw query string as received, empty when there was none.
    pub query: String,
    /// HTTP status of the response.
    pub status: u16,
    /// The project id from the path.
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
}

/// Shared handle to a running (or not yet served) simulator; clones share the same state.
#[derive(Clone)]
pub struct Simulator {
    /// All mutable state, behind one lock that is never held across an `.await`.
    state: Arc<Mutex<State>>,
}

/// Everything the simulator remembers.
pub(crate) struct State {
    /// The configuration the simulator was created with.
    pub(crate) config: SimConfig,
    /// Projects, EPs and registries; changed by mutations and test helpers.
    pub(crate) estate: Estate,
    /// Active faults in insertion order; exhausted ones are removed.
    pub(crate) faults: Vec<Fault>,
    /// ListRegistry requests received, including rejected ones.
    pub(crate) request_count: u64,
    /// The most recent ListRegistry requests, at most [`REQUEST_LOG_CAPACITY`].
    pub(crate) request_log: VecDeque<RequestRecord>,
}

impl Simulator {
    /// Create a simulator whose estate is generated from `config.seed`.
    pub fn new(config: SimConfig) -> Self {
        let estate = Estate::generate(&config);
        Simulator {
            state: Arc::new(Mutex::new(State {
                config,
                estate,
                faults: Vec::new(),
                request_count: 0,
                request_log: VecDeque::new(),
            })),
        }
    }

    /// The axum router serving the Huawei routes, the `/sim/` admin routes and the APIG 404 fallback.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
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

    /// The configured region id.
    pub fn region(&self) -> String {
        self.lock().config.region.clone()
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
            .filter(|s| enterprise_project_id.map_or(true, |ep| s.enterprise_project_id == ep))
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

    /// Add a fault after the existing ones. A `FailPage` or `MalformedJson` fault with `times: Some(0)`
    /// would never fire, so it is not added.
    pub fn add_fault(&self, fault: Fault) {
        let never_fires = matches!(
            fault,
            Fault::FailPage { times: Some(0), .. } | Fault::MalformedJson { times: Some(0), .. }
        );
        if !never_fires {
            self.lock().faults.push(fault);
        }
    }

    /// Remove every fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// ListRegistry requests received, including rejected ones.
    pub fn request_count(&self) -> u64 {
        self.lock().request_count
    }

    /// The most recent ListRegistry requests, oldest first (at most [`REQUEST_LOG_CAPACITY`]).
    pub fn request_log(&self) -> Vec<RequestRecord> {
        self.lock().request_log.iter().cloned().collect()
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

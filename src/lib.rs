//! hss-sync keeps a SQL copy of the container-image registries that Huawei Cloud
//! Host Security Service (HSS) knows about, with their full change history.
//!
//! One run walks `ListRegistry` for every scope (a project and an enterprise project),
//! plans the difference against what the store holds, and applies it scope by scope,
//! each scope in one transaction, with a history row per change and an audit row per run
//! and per scope.
//!
//! # Layout
//!
//! - [`config`]: validated configuration from flags, environment and a TOML file.
//! - [`signer`]: Huawei's `SDK-HMAC-SHA256` request signing; pure.
//! - [`api`]: the only module that speaks HTTP; the HSS client and its wire types.
//! - [`registry`]: the domain form of one registry, its field list and content hash.
//! - [`sync`]: the sync engine (`run_once`) and the pure diff (`plan`).
//! - [`store`]: the only module that holds SQL; SQLite and PostgreSQL.
//! - [`sim`]: the simulated HSS API used by the demo, the tests and benchmarks.
//! - [`service`]: the long-running service: schedule, lease, health and metrics.
//! - [`demo`]: the whole product on one machine against the simulator.
//! - [`report`], [`progress`]: what the terminal shows: run listings and the progress bar.
//! - [`cli`]: the command line and the handlers of each command; nothing imports it.

pub mod api;
pub mod cli;
pub mod config;
pub mod demo;
pub mod errors;
pub mod exit;
pub mod progress;
pub mod registry;
pub mod report;
pub mod service;
pub mod signer;
pub mod sim;
pub mod store;
pub mod sync;
pub mod telemetry;

pub use exit::Exit;

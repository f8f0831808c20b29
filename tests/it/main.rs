//! The one integration-test binary: behaviour through `sync::run_once`, the store on both
//! backends, and the real `hss-sync` binary, all against the simulated HSS API.
//!
//! PostgreSQL tests use `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! create a fresh database per test, and fail (never skip) when it cannot be reached.

mod helpers;
mod invariants;

mod bench;
mod cli;
mod client;
mod deploy;
mod errors;
mod kill;
mod model;
mod pages;
mod pipes;
mod readonly;
mod reporting;
mod reports;
mod safety;
mod schema;
mod service;
mod signals;
mod sim_admin;
mod sync;

//! The HSS API client: the only module that speaks HTTP.
//!
//! [`client::HssClient`] signs and sends `ListRegistry` requests and turns Huawei's answers
//! into [`dto`] types or an [`ApiError`] that carries Huawei's `error_code`, `error_msg`
//! and `request_id`. [`transport::Transport`] retries what [`retry`] allows, paced by a
//! [`limiter`]; [`auth`] signs or adds tokens (fetching IAM tokens through the transport);
//! [`discovery`] lists IAM projects and EPS enterprise projects; [`endpoint`] maps a region
//! to its endpoints. Dependencies point one way: `client` and `discovery` use `auth`, which
//! uses `transport`, which uses neither.

pub mod auth;
pub mod client;
pub mod discovery;
pub mod dto;
pub mod endpoint;
mod error;
pub mod limiter;
pub mod retry;
pub mod transport;

pub use auth::{Auth, IamPassword, IamTokens, Target};
pub use client::{HssClient, HssClients, ListRegistryQuery, RegistryFilters};
pub use discovery::DiscoveryClient;
pub use dto::RegistryPage;
pub use error::ApiError;
pub use retry::RetryPolicy;
pub use transport::{Attempts, ClientSettings, Transport, DEFAULT_REQUEST_TIMEOUT};

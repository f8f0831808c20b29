//! The HSS API client: the only module that speaks HTTP.
//!
//! [`client::HssClient`] signs and sends `ListRegistry` requests and turns Huawei's answers
//! into [`dto`] types or an [`ApiError`] that carries Huawei's `error_code`, `error_msg`
//! and `request_id`. [`client::Transport`] retries what [`retry`] allows, paced by a
//! [`limiter`]; [`auth`] signs or adds tokens (fetching IAM tokens when asked);
//! [`discovery`] lists IAM projects and EPS enterprise projects; [`endpoint`] maps a region
//! to its endpoints.

pub mod auth;
pub mod client;
pub mod discovery;
pub mod dto;
pub mod endpoint;
pub mod limiter;
pub mod retry;

pub use auth::{Auth, IamPassword, IamTokens, Target};
pub use client::{
    ApiError, Attempts, ClientSettings, HssClient, HssClients, ListRegistryQuery, RegistryFilters,
    Transport, DEFAULT_REQUEST_TIMEOUT,
};
pub use discovery::DiscoveryClient;
pub use dto::RegistryPage;
pub use retry::RetryPolicy;

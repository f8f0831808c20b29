//! The HSS API client: the only module that speaks HTTP.
//!
//! [`client::HssClient`] signs and sends `ListRegistry` requests and turns Huawei's answers
//! into [`dto`] types or an [`ApiError`] that carries Huawei's `error_code`, `error_msg`
//! and `request_id`. [`endpoint`] maps a region to its HSS endpoint.

pub mod client;
pub mod dto;
pub mod endpoint;

pub use client::{
    ApiError, Auth, HssClient, ListRegistryQuery, RegistryFilters, DEFAULT_REQUEST_TIMEOUT,
};
pub use dto::RegistryPage;

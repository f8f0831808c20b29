//! [`HssClient`] sends `ListRegistry` requests through a [`Transport`], authenticated by an
//! [`Auth`]; [`HssClients`] holds one per endpoint.

use std::sync::Arc;

use url::Url;

use crate::api::auth::{Auth, Target, Unprepared};
use crate::api::dto::{ListRegistryResponse, RegistryPage};
use crate::api::limiter::RateLimiter;
use crate::api::transport::{
    build_request, header_text, host_of, status_error, Attempts, Call, ClientSettings, Transport,
    USER_AGENT,
};
use crate::api::ApiError;

/// Optional `ListRegistry` filters; `None` sends nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegistryFilters {
    /// `registry_name`.
    pub registry_name: Option<String>,
    /// `registry_type`, comma-separated for several.
    pub registry_type: Option<String>,
    /// `registry_addr`.
    pub registry_addr: Option<String>,
    /// `status`.
    pub status: Option<String>,
}

/// One `ListRegistry` page request.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRegistryQuery {
    /// `enterprise_project_id`; `None` sends none, which the API reads as `0`.
    pub enterprise_project_id: Option<String>,
    /// Items to skip.
    pub offset: u32,
    /// Items to return at most (10 to 200).
    pub limit: u32,
    /// Filters.
    pub filters: RegistryFilters,
}

impl ListRegistryQuery {
    /// The query pairs in the order built; the signer sorts them.
    pub fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        if let Some(ep) = &self.enterprise_project_id {
            pairs.push(("enterprise_project_id".to_owned(), ep.clone()));
        }
        pairs.push(("offset".to_owned(), self.offset.to_string()));
        pairs.push(("limit".to_owned(), self.limit.to_string()));
        let filters = [
            ("registry_name", &self.filters.registry_name),
            ("registry_type", &self.filters.registry_type),
            ("registry_addr", &self.filters.registry_addr),
            ("status", &self.filters.status),
        ];
        for (key, value) in filters {
            if let Some(value) = value {
                pairs.push((key.to_owned(), value.clone()));
            }
        }
        pairs
    }
}

/// Reads a JSON body as `T`: the reader of most answers (see [`Transport::get_json`]).
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

impl Transport {
    /// `GET base + path?query` for `target`, authenticated by `auth`, with retries; the
    /// answer's JSON body, read by `read` ([`read_json`], or a reader of its own), and its
    /// `X-Request-Id`.
    ///
    /// # Errors
    ///
    /// [`ApiError`] after retries, as [`Transport::execute`] gives it up; what `read`
    /// refuses as [`ApiError::Decode`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn get_json<T>(
        &self,
        auth: &Auth,
        base: &Url,
        path: &str,
        query: &[(String, String)],
        target: &Target,
        call: Call<'_>,
        attempts: &mut Attempts,
        read: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<(T, Option<String>), ApiError> {
        let operation = call.operation;
        let path = format!("{}{path}", base.path().trim_end_matches('/'));
        let host = host_of(base);
        self.execute(
            call,
            attempts,
            |force_refresh| {
                let headers = vec![
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                    ("User-Agent".to_owned(), USER_AGENT.to_owned()),
                ];
                let (host, path) = (host.clone(), path.clone());
                Box::pin(async move {
                    let request = Unprepared {
                        host: &host,
                        method: "GET",
                        path: &path,
                        query,
                        headers,
                    };
                    let prepared = auth.prepare(request, target, force_refresh).await?;
                    build_request(
                        self,
                        base,
                        reqwest::Method::GET,
                        &prepared.request_uri,
                        &prepared.headers,
                    )
                })
            },
            |status, headers, body| {
                let request_id = header_text(headers, "x-request-id");
                if !status.is_success() {
                    return Err(status_error(
                        operation.to_owned(),
                        status.as_u16(),
                        body,
                        headers,
                    ));
                }
                let parsed = read(body).map_err(|detail| ApiError::Decode {
                    operation: operation.to_owned(),
                    detail,
                    request_id: request_id.clone(),
                })?;
                Ok((parsed, request_id))
            },
        )
        .await
    }
}

/// The HSS client of one endpoint and one identity.
#[derive(Clone, Debug)]
pub struct HssClient {
    /// Sends requests with retries.
    transport: Transport,
    /// The HSS endpoint, for example `https://hss.cn-north-4.myhuaweicloud.com`; a path
    /// prefix is kept (private gateways mount HSS under one).
    base_url: Url,
    /// How requests are authenticated.
    auth: Auth,
    /// Shared by every request of this client, so concurrent scopes share the quota.
    limiter: Option<Arc<RateLimiter>>,
}

impl HssClient {
    /// Builds a client for `base_url`.
    ///
    /// # Errors
    ///
    /// [`ApiError::Setup`] when the URL is not http(s) or the HTTP client cannot be built.
    pub fn new(base_url: Url, auth: Auth, settings: &ClientSettings) -> Result<Self, ApiError> {
        let transport = Transport::new(settings)?;
        HssClient::with_transport(base_url, auth, transport, settings.max_requests_per_minute)
    }

    /// Builds a client on an existing transport.
    ///
    /// # Errors
    ///
    /// [`ApiError::Setup`] when the URL is not http(s).
    pub fn with_transport(
        base_url: Url,
        auth: Auth,
        transport: Transport,
        max_requests_per_minute: u32,
    ) -> Result<Self, ApiError> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(ApiError::Setup(format!(
                "endpoint {base_url} is not an http or https URL"
            )));
        }
        Ok(HssClient {
            transport,
            base_url,
            auth,
            limiter: RateLimiter::per_minute(max_requests_per_minute).map(Arc::new),
        })
    }

    /// Whether this client spaces its requests out (a rate is configured): its requests, and
    /// so the walks that make them, then end one spacing apart rather than together.
    pub fn is_paced(&self) -> bool {
        self.limiter.is_some()
    }

    /// The endpoint this client talks to.
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }

    /// What to tell the user when the API refuses this client's credentials.
    pub fn refusal_hint(&self) -> &'static str {
        self.auth.refusal_hint()
    }

    /// Fetches one `ListRegistry` page (`GET /v5/{project_id}/image/registries`), retrying
    /// as the settings allow; `attempts` counts what it cost.
    ///
    /// # Errors
    ///
    /// [`ApiError::Status`] for an HTTP error, [`ApiError::Decode`] for a body that is not
    /// the expected JSON, [`ApiError::Transport`] when no answer came; each after retries.
    pub async fn list_registries(
        &self,
        project_id: &str,
        query: &ListRegistryQuery,
        attempts: &mut Attempts,
    ) -> Result<RegistryPage, ApiError> {
        let operation = format!(
            "ListRegistry project {project_id} enterprise project {} offset {}",
            query.enterprise_project_id.as_deref().unwrap_or("0"),
            query.offset
        );
        let (parsed, request_id) = self
            .transport
            .get_json(
                &self.auth,
                &self.base_url,
                &format!("/v5/{project_id}/image/registries"),
                &query.pairs(),
                &Target::Project(project_id.to_owned()),
                Call {
                    operation: &operation,
                    api: "ListRegistry",
                    limiter: self.limiter.as_deref(),
                    can_refresh_token: self.auth.can_refresh(),
                },
                attempts,
                ListRegistryResponse::parse,
            )
            .await?;
        parsed
            .into_page(request_id.clone())
            .map_err(|detail| ApiError::Decode {
                operation,
                detail,
                request_id,
            })
    }
}

/// The HSS clients of a run: one per endpoint, found by region.
#[derive(Clone, Debug, Default)]
pub struct HssClients {
    /// Region to client; regions whose endpoint is the same share one client, and so one
    /// rate limiter.
    by_region: std::collections::BTreeMap<String, HssClient>,
    /// The client for any region not listed.
    fallback: Option<HssClient>,
}

impl HssClients {
    /// One client for every region (tests, the demo, a single `--endpoint`).
    pub fn single(client: HssClient) -> HssClients {
        HssClients {
            by_region: Default::default(),
            fallback: Some(client),
        }
    }

    /// Adds the client of `region`.
    pub fn insert(&mut self, region: String, client: HssClient) {
        self.by_region.insert(region, client);
    }

    /// The client of `region`.
    pub fn for_region(&self, region: &str) -> Option<&HssClient> {
        self.by_region.get(region).or(self.fallback.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer;

    #[test]
    fn query_pairs_hold_only_what_is_set() {
        let query = ListRegistryQuery {
            enterprise_project_id: Some("all_granted_eps".to_owned()),
            offset: 200,
            limit: 200,
            filters: RegistryFilters {
                registry_type: Some("Harbor,Jfrog".to_owned()),
                ..Default::default()
            },
        };
        let pairs = query.pairs();
        assert_eq!(
            signer::canonical_query_string(&pairs),
            "enterprise_project_id=all_granted_eps&limit=200&offset=200&registry_type=Harbor%2CJfrog"
        );
    }
}

//! Finding the scopes of an account: IAM projects (`GET /v3/projects`) and EPS enterprise
//! projects (`GET /v1.0/enterprise-projects`). Both are global services: requests act for
//! the account (`X-Domain-Id` when known, or a domain-scoped token).

use serde::de::DeserializeOwned;
use url::Url;

use crate::api::auth::{Auth, Target};
use crate::api::client::read_json;
use crate::api::dto::{
    EnterpriseProjectInfo, ListAuthDomainsResponse, ListEnterpriseProjectsResponse,
    ListProjectsResponse, ProjectInfo,
};
use crate::api::transport::{Attempts, Call, Transport};
use crate::api::ApiError;

/// Projects per IAM page. IAM takes up to 5000; a few hundred keeps each answer small.
pub const PROJECTS_PER_PAGE: u32 = 500;

/// Enterprise projects per EPS page: EPS's maximum.
pub const ENTERPRISE_PROJECTS_PER_PAGE: u32 = 1000;

/// The most pages a listing walks before it gives up, so a server that always says "next"
/// cannot keep a run forever.
const MAX_LISTING_PAGES: u32 = 1000;

/// A client for IAM and EPS listings.
#[derive(Clone, Debug)]
pub struct DiscoveryClient {
    /// Sends requests with retries.
    transport: Transport,
    /// How requests are authenticated.
    auth: Auth,
    /// IAM, for example `https://iam.myhuaweicloud.com`.
    iam_endpoint: Url,
    /// EPS, for example `https://eps.myhuaweicloud.com`.
    eps_endpoint: Url,
    /// The account id, sent as `X-Domain-Id` with AK/SK: the configured one, or the one
    /// IAM names on first use.
    domain_id: tokio::sync::OnceCell<Option<String>>,
}

impl DiscoveryClient {
    /// A client for the given endpoints.
    pub fn new(
        transport: Transport,
        auth: Auth,
        iam_endpoint: Url,
        eps_endpoint: Url,
        domain_id: Option<String>,
    ) -> Self {
        DiscoveryClient {
            transport,
            auth,
            iam_endpoint,
            eps_endpoint,
            domain_id: match domain_id {
                Some(id) => tokio::sync::OnceCell::new_with(Some(Some(id))),
                None => tokio::sync::OnceCell::new(),
            },
        }
    }

    /// The account id for `X-Domain-Id`. With AK/SK and none configured, it is asked of IAM
    /// (`GET /v3/auth/domains`), as Huawei's SDKs do for global services; tokens carry their
    /// account, so they need none.
    ///
    /// # Errors
    ///
    /// [`ApiError`] when IAM cannot name the account.
    pub async fn domain_id(&self, attempts: &mut Attempts) -> Result<Option<String>, ApiError> {
        if let Some(known) = self.domain_id.get() {
            return Ok(known.clone());
        }
        if !matches!(self.auth, Auth::AkSk(_)) {
            return Ok(None);
        }
        let operation = format!(
            "ListAuthDomains at {}",
            self.iam_endpoint.origin().ascii_serialization()
        );
        let call = Call {
            operation: &operation,
            api: "ListAuthDomains",
            limiter: None,
            can_refresh_token: false,
        };
        let (body, _): (ListAuthDomainsResponse, _) = self
            .transport
            .get_json(
                &self.auth,
                &self.iam_endpoint,
                "/v3/auth/domains",
                &[],
                &Target::Domain(None),
                call,
                attempts,
                read_json,
            )
            .await?;
        let id = body
            .domains
            .into_iter()
            .next()
            .map(|d| d.id)
            .ok_or_else(|| ApiError::Decode {
                operation,
                detail: "no domain in the answer".to_owned(),
                request_id: None,
            })?;
        let _ = self.domain_id.set(Some(id.clone()));
        Ok(Some(id))
    }

    /// Every project of the account, all pages.
    ///
    /// # Errors
    ///
    /// [`ApiError`] when IAM refuses or cannot be reached, after retries.
    pub async fn list_projects(
        &self,
        attempts: &mut Attempts,
    ) -> Result<Vec<ProjectInfo>, ApiError> {
        let mut projects = Vec::new();
        for page in 1..=MAX_LISTING_PAGES {
            let query = vec![
                ("page".to_owned(), page.to_string()),
                ("per_page".to_owned(), PROJECTS_PER_PAGE.to_string()),
            ];
            let body: ListProjectsResponse = self
                .get_json(
                    &self.iam_endpoint,
                    "/v3/projects",
                    &query,
                    "ListProjects",
                    attempts,
                )
                .await?;
            let n = body.projects.len();
            projects.extend(body.projects);
            let has_next = body
                .links
                .and_then(|l| l.next)
                .is_some_and(|n| !n.is_empty());
            if n < PROJECTS_PER_PAGE as usize || !has_next {
                break;
            }
        }
        Ok(projects)
    }

    /// Every enabled enterprise project of the account, all pages.
    ///
    /// # Errors
    ///
    /// [`ApiError`] when EPS refuses (for example when enterprise projects are not enabled
    /// for the account) or cannot be reached, after retries.
    pub async fn list_enterprise_projects(
        &self,
        attempts: &mut Attempts,
    ) -> Result<Vec<EnterpriseProjectInfo>, ApiError> {
        let mut found = Vec::new();
        let mut offset: u64 = 0;
        for _ in 0..MAX_LISTING_PAGES {
            let query = vec![
                ("offset".to_owned(), offset.to_string()),
                ("limit".to_owned(), ENTERPRISE_PROJECTS_PER_PAGE.to_string()),
                ("status".to_owned(), "1".to_owned()),
            ];
            let body: ListEnterpriseProjectsResponse = self
                .get_json(
                    &self.eps_endpoint,
                    "/v1.0/enterprise-projects",
                    &query,
                    "ListEnterpriseProjects",
                    attempts,
                )
                .await?;
            let n = body.enterprise_projects.len() as u64;
            found.extend(
                body.enterprise_projects
                    .into_iter()
                    .filter(|ep| ep.status.unwrap_or(1) == 1),
            );
            offset += n;
            if n == 0 || body.total_count.is_some_and(|total| offset >= total as u64) {
                break;
            }
        }
        Ok(found)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        base: &Url,
        path: &str,
        query: &[(String, String)],
        api: &'static str,
        attempts: &mut Attempts,
    ) -> Result<T, ApiError> {
        let operation = format!("{api} at {}", base.origin().ascii_serialization());
        let call = Call {
            operation: &operation,
            api,
            limiter: None,
            can_refresh_token: self.auth.can_refresh(),
        };
        let target = Target::Domain(self.domain_id(attempts).await?);
        let (body, _request_id) = self
            .transport
            .get_json(
                &self.auth, base, path, query, &target, call, attempts, read_json,
            )
            .await?;
        Ok(body)
    }
}

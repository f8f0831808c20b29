//! Which scopes a run covers, and the clients that reach them: explicit project ids, or the
//! projects and enterprise projects that IAM and EPS list for the account.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracing::{info, warn};
use url::Url;

use crate::api::dto::{EnterpriseProjectInfo, ProjectInfo};
use crate::api::endpoint;
use crate::api::{
    ApiError, Attempts, Auth, DiscoveryClient, HssClient, HssClients, IamTokens, Transport,
};
use crate::config::{CredentialConfig, SyncConfig};
use crate::sync::{Scope, ALL_GRANTED_EPS};

/// The default enterprise project's id; it is not always in EPS's list, but always exists.
pub const DEFAULT_ENTERPRISE_PROJECT: &str = "0";

/// What a run needs before its first ListRegistry request.
#[derive(Debug)]
pub struct Prepared {
    /// One client per distinct HSS endpoint, found by region.
    pub clients: HssClients,
    /// The scopes, project by project.
    pub scopes: Vec<Scope>,
    /// How the credentials authenticate (shared by every client).
    pub auth: Auth,
    /// Projects whose scopes name every enterprise project EPS lists for the account.
    pub projects_with_every_enterprise_project: BTreeSet<String>,
    /// The projects and enterprise projects the run knows of, with names where discovery
    /// listed them, for the store's `projects` and `enterprise_projects` tables.
    pub catalog: Catalog,
}

/// The projects and enterprise projects a run knows of: those IAM and EPS listed (with their
/// names), and those its scopes name without a listing (with none). Kept by the store so
/// that reports show names, not only ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Projects, by id.
    pub projects: Vec<CatalogProject>,
    /// Enterprise projects, by id.
    pub enterprise_projects: Vec<CatalogEnterpriseProject>,
}

/// One project of a [`Catalog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogProject {
    /// The project id.
    pub id: String,
    /// IAM's name, `None` when IAM was not asked.
    pub name: Option<String>,
    /// The region.
    pub region: String,
    /// IAM's parent (the region's main project for a sub-project).
    pub parent_id: Option<String>,
    /// Whether IAM says it is enabled; `None` when IAM was not asked.
    pub enabled: Option<bool>,
}

/// One enterprise project of a [`Catalog`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEnterpriseProject {
    /// The enterprise project id (`0` is the default one).
    pub id: String,
    /// EPS's name, `None` when EPS did not list it.
    pub name: Option<String>,
    /// Whether EPS says it is enabled; `None` when EPS did not list it.
    pub enabled: Option<bool>,
}

/// Setting a run up failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The HTTP client could not be built.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Discovery could not list the account's projects.
    #[error("project discovery failed")]
    Discovery(#[source] ApiError),
    /// A region has no usable endpoint.
    #[error("endpoint of region {region}: {detail}")]
    Endpoint {
        /// The region.
        region: String,
        /// Why.
        detail: String,
    },
}

/// Builds the auth, discovers scopes when asked, and builds one client per endpoint.
///
/// # Errors
///
/// [`SetupError`] when the HTTP client cannot be built, IAM cannot list projects, or a
/// region has no endpoint.
pub async fn prepare(
    config: &SyncConfig,
    lookup_env: impl Fn(&str) -> Option<String>,
) -> Result<Prepared, SetupError> {
    let transport = Transport::new(&config.client)?;
    let auth = match &config.credentials {
        CredentialConfig::AkSk(credentials) => Auth::AkSk(credentials.clone()),
        CredentialConfig::Token(token) => Auth::Token(token.clone()),
        CredentialConfig::IamPassword(password) => Auth::Iam(Arc::new(IamTokens::new(
            transport.clone(),
            config.iam_endpoint.clone(),
            password.clone(),
        ))),
    };
    let mut scopes = config.explicit_scopes();
    let mut projects_with_every_enterprise_project = BTreeSet::new();
    let mut listings = Listings::default();
    if config.discover {
        let discovery = DiscoveryClient::new(
            transport.clone(),
            auth.clone(),
            config.iam_endpoint.clone(),
            config.eps_endpoint.clone(),
            config.domain_id.clone(),
        );
        let explicit_projects: BTreeSet<String> =
            scopes.iter().map(|s| s.project_id.clone()).collect();
        let (discovered, every_enterprise_project) =
            discover_scopes(&discovery, config, scopes, &mut listings).await?;
        scopes = discovered;
        if every_enterprise_project {
            projects_with_every_enterprise_project = scopes
                .iter()
                .filter(|s| !explicit_projects.contains(&s.project_id))
                .map(|s| s.project_id.clone())
                .collect();
        }
    }
    let mut clients = HssClients::default();
    let mut by_endpoint: BTreeMap<Url, HssClient> = BTreeMap::new();
    for region in scopes
        .iter()
        .map(|s| s.region.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let url = config
            .hss_endpoint(&region, &lookup_env)
            .map_err(|e| SetupError::Endpoint {
                region: region.clone(),
                detail: e.to_string(),
            })?;
        let client = match by_endpoint.get(&url) {
            Some(client) => client.clone(),
            None => {
                let client = HssClient::with_transport(
                    url.clone(),
                    auth.clone(),
                    transport.clone(),
                    config.client.max_requests_per_minute,
                )?;
                by_endpoint.insert(url, client.clone());
                client
            }
        };
        clients.insert(region, client);
    }
    let catalog = catalog(&scopes, &listings.projects, &listings.enterprise_projects);
    Ok(Prepared {
        clients,
        scopes,
        auth,
        projects_with_every_enterprise_project,
        catalog,
    })
}

/// What IAM and EPS listed during discovery, for the [`Catalog`].
#[derive(Debug, Default)]
struct Listings {
    /// IAM's projects.
    projects: Vec<ProjectInfo>,
    /// EPS's enterprise projects, when EPS was asked and answered.
    enterprise_projects: Vec<EnterpriseProjectInfo>,
}

/// The discovered scopes, and whether their enterprise projects are every one EPS lists
/// (rather than ids given in the configuration, or `all_granted_eps`). What IAM and EPS
/// listed goes into `listings`.
async fn discover_scopes(
    discovery: &DiscoveryClient,
    config: &SyncConfig,
    explicit: Vec<Scope>,
    listings: &mut Listings,
) -> Result<(Vec<Scope>, bool), SetupError> {
    let mut attempts = Attempts::default();
    let projects = discovery
        .list_projects(&mut attempts)
        .await
        .map_err(SetupError::Discovery)?;
    let found = hss_projects(&projects, config.region.as_deref());
    info!(
        n_projects = found.len(),
        n_listed = projects.len(),
        "discovered {} HSS projects among the {} projects IAM listed",
        found.len(),
        projects.len()
    );
    let from_eps = config.enterprise_project_ids.is_empty();
    let enterprise_projects = if !from_eps {
        EnterpriseProjects::Listed(config.enterprise_project_ids.clone())
    } else {
        match discovery.list_enterprise_projects(&mut attempts).await {
            Ok(enterprise_projects) => {
                let ids = enterprise_project_ids(&enterprise_projects);
                listings.enterprise_projects = enterprise_projects;
                info!(
                    n_enterprise_projects = ids.len(),
                    "discovered {} enterprise projects",
                    ids.len()
                );
                EnterpriseProjects::Listed(ids)
            }
            Err(e) => {
                warn!(
                    "enterprise projects could not be listed ({}); syncing each project with {ALL_GRANTED_EPS} instead",
                    crate::errors::chain(&e)
                );
                EnterpriseProjects::AllGranted
            }
        }
    };
    let every_enterprise_project =
        from_eps && matches!(enterprise_projects, EnterpriseProjects::Listed(_));
    listings.projects = projects;
    Ok((
        combine(explicit, &found, &enterprise_projects),
        every_enterprise_project,
    ))
}

/// The [`Catalog`] of a run: every project IAM listed whose region is known (a region's main
/// project and its sub-projects, enabled or not) and every enterprise project EPS listed,
/// with their names; then every project and enterprise project a scope names that no listing
/// gave, with no name. `all_granted_eps` is not an enterprise project.
pub fn catalog(
    scopes: &[Scope],
    projects: &[ProjectInfo],
    enterprise_projects: &[EnterpriseProjectInfo],
) -> Catalog {
    let mains: BTreeMap<&str, &str> = projects
        .iter()
        .filter(|p| endpoint::is_hss_region(&p.name))
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let mut found: BTreeMap<String, CatalogProject> = BTreeMap::new();
    for project in projects {
        let region = mains.get(project.id.as_str()).copied().or_else(|| {
            project
                .parent_id
                .as_deref()
                .and_then(|parent| mains.get(parent).copied())
        });
        if let Some(region) = region {
            found.insert(
                project.id.clone(),
                CatalogProject {
                    id: project.id.clone(),
                    name: Some(project.name.clone()),
                    region: region.to_owned(),
                    parent_id: project.parent_id.clone(),
                    enabled: Some(project.enabled != Some(false)),
                },
            );
        }
    }
    let mut found_eps: BTreeMap<String, CatalogEnterpriseProject> = enterprise_projects
        .iter()
        .map(|ep| {
            let entry = CatalogEnterpriseProject {
                id: ep.id.clone(),
                name: ep.name.clone(),
                enabled: Some(ep.status.unwrap_or(1) == 1),
            };
            (ep.id.clone(), entry)
        })
        .collect();
    for scope in scopes {
        found
            .entry(scope.project_id.clone())
            .or_insert_with(|| CatalogProject {
                id: scope.project_id.clone(),
                name: None,
                region: scope.region.clone(),
                parent_id: None,
                enabled: None,
            });
        if scope.enterprise_project_id != ALL_GRANTED_EPS {
            found_eps
                .entry(scope.enterprise_project_id.clone())
                .or_insert_with(|| CatalogEnterpriseProject {
                    id: scope.enterprise_project_id.clone(),
                    name: None,
                    enabled: None,
                });
        }
    }
    Catalog {
        projects: found.into_values().collect(),
        enterprise_projects: found_eps.into_values().collect(),
    }
}

/// The enterprise projects discovered scopes cover.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnterpriseProjects {
    /// EPS is not available: one `all_granted_eps` scope per project.
    AllGranted,
    /// These ids.
    Listed(Vec<String>),
}

/// The projects HSS serves among IAM's list, with their regions: enabled projects named
/// after an HSS region (a region's main project), and enabled projects whose parent is
/// such a project (sub-projects). Others, such as OBS's `MOS`, are left out. `only_region`
/// keeps one region.
pub fn hss_projects(projects: &[ProjectInfo], only_region: Option<&str>) -> Vec<(String, String)> {
    let enabled = |p: &&ProjectInfo| p.enabled != Some(false);
    let mains: BTreeMap<&str, &str> = projects
        .iter()
        .filter(enabled)
        .filter(|p| endpoint::is_hss_region(&p.name))
        .map(|p| (p.id.as_str(), p.name.as_str()))
        .collect();
    let mut found = Vec::new();
    for project in projects.iter().filter(enabled) {
        let region = if let Some(region) = mains.get(project.id.as_str()) {
            *region
        } else if let Some(region) = project
            .parent_id
            .as_deref()
            .and_then(|parent| mains.get(parent))
        {
            *region
        } else {
            continue;
        };
        if only_region.is_none_or(|only| only == region) {
            found.push((region.to_owned(), project.id.clone()));
        }
    }
    found.sort();
    found.dedup();
    found
}

/// The enabled enterprise project ids, with the default one (`0`) first.
pub fn enterprise_project_ids(listed: &[EnterpriseProjectInfo]) -> Vec<String> {
    let mut ids = vec![DEFAULT_ENTERPRISE_PROJECT.to_owned()];
    for ep in listed.iter().filter(|ep| ep.status.unwrap_or(1) == 1) {
        if !ids.contains(&ep.id) {
            ids.push(ep.id.clone());
        }
    }
    ids
}

/// Explicit scopes plus one scope per discovered (project, enterprise project). A project
/// named both ways is covered once: its explicit scopes win, so a project never has both
/// `all_granted_eps` and specific enterprise projects.
pub fn combine(
    explicit: Vec<Scope>,
    discovered: &[(String, String)],
    enterprise_projects: &EnterpriseProjects,
) -> Vec<Scope> {
    let mut scopes = explicit;
    for (region, project_id) in discovered {
        if scopes.iter().any(|s| &s.project_id == project_id) {
            continue;
        }
        let ids = match enterprise_projects {
            EnterpriseProjects::AllGranted => vec![ALL_GRANTED_EPS.to_owned()],
            EnterpriseProjects::Listed(ids) => ids.clone(),
        };
        for enterprise_project_id in ids {
            scopes.push(Scope {
                region: region.clone(),
                project_id: project_id.clone(),
                enterprise_project_id,
            });
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str, name: &str, parent: Option<&str>, enabled: bool) -> ProjectInfo {
        ProjectInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            parent_id: parent.map(str::to_owned),
            enabled: Some(enabled),
        }
    }

    #[test]
    fn region_projects_and_their_sub_projects_are_kept_others_left_out() {
        let projects = [
            project("p-cn4", "cn-north-4", Some("domain"), true),
            project("p-ap1", "ap-southeast-1", Some("domain"), true),
            project("p-sub", "cn-north-4_prod", Some("p-cn4"), true),
            project("p-mos", "MOS", Some("domain"), true),
            project("p-off", "cn-east-3", Some("domain"), false),
            project("p-orphan", "cn-east-3_x", Some("p-off"), true),
        ];
        assert_eq!(
            hss_projects(&projects, None),
            [
                ("ap-southeast-1".to_owned(), "p-ap1".to_owned()),
                ("cn-north-4".to_owned(), "p-cn4".to_owned()),
                ("cn-north-4".to_owned(), "p-sub".to_owned()),
            ]
        );
        assert_eq!(hss_projects(&projects, Some("ap-southeast-1")).len(), 1);
    }

    #[test]
    fn the_default_enterprise_project_is_always_covered_and_disabled_ones_are_not() {
        let listed = [
            EnterpriseProjectInfo {
                id: "ep1".to_owned(),
                name: None,
                status: Some(1),
            },
            EnterpriseProjectInfo {
                id: "ep2".to_owned(),
                name: None,
                status: Some(2),
            },
            EnterpriseProjectInfo {
                id: "0".to_owned(),
                name: Some("default".to_owned()),
                status: Some(1),
            },
        ];
        assert_eq!(enterprise_project_ids(&listed), ["0", "ep1"]);
    }

    #[test]
    fn the_catalog_names_what_was_listed_and_keeps_unlisted_scope_ids_without_a_name() {
        let projects = [
            project("p-cn4", "cn-north-4", Some("domain"), true),
            project("p-sub", "cn-north-4_prod", Some("p-cn4"), false),
            project("p-mos", "MOS", Some("domain"), true),
        ];
        let listed = [EnterpriseProjectInfo {
            id: "ep1".to_owned(),
            name: Some("finance".to_owned()),
            status: Some(1),
        }];
        let scopes = [
            Scope::all_granted("ap-southeast-1", "p-explicit"),
            Scope {
                region: "cn-north-4".to_owned(),
                project_id: "p-cn4".to_owned(),
                enterprise_project_id: "0".to_owned(),
            },
        ];

        let catalog = catalog(&scopes, &projects, &listed);

        let found: Vec<(&str, Option<&str>, &str, Option<bool>)> = catalog
            .projects
            .iter()
            .map(|p| {
                (
                    p.id.as_str(),
                    p.name.as_deref(),
                    p.region.as_str(),
                    p.enabled,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("p-cn4", Some("cn-north-4"), "cn-north-4", Some(true)),
                ("p-explicit", None, "ap-southeast-1", None),
                ("p-sub", Some("cn-north-4_prod"), "cn-north-4", Some(false)),
            ]
        );
        let eps: Vec<(&str, Option<&str>)> = catalog
            .enterprise_projects
            .iter()
            .map(|e| (e.id.as_str(), e.name.as_deref()))
            .collect();
        assert_eq!(eps, [("0", None), ("ep1", Some("finance"))]);
    }

    #[test]
    fn explicit_scopes_win_and_no_project_is_covered_twice() {
        let explicit = vec![Scope::all_granted("cn-north-4", "p1")];
        let discovered = [
            ("cn-north-4".to_owned(), "p1".to_owned()),
            ("ap-southeast-1".to_owned(), "p2".to_owned()),
        ];
        let scopes = combine(
            explicit,
            &discovered,
            &EnterpriseProjects::Listed(vec!["0".to_owned(), "ep1".to_owned()]),
        );
        let names: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            [
                "cn-north-4/p1/all_granted_eps",
                "ap-southeast-1/p2/0",
                "ap-southeast-1/p2/ep1"
            ]
        );
        let fallback = combine(Vec::new(), &discovered, &EnterpriseProjects::AllGranted);
        assert!(fallback
            .iter()
            .all(|s| s.enterprise_project_id == ALL_GRANTED_EPS));
        assert_eq!(fallback.len(), 2);
    }
}

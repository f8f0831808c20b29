//! The simulated account's estate: projects, enterprise projects and the registries in each scope.
//!
//! Everything here is generated from a `ChaCha8Rng` seeded with the configured seed, so the same seed and
//! the same sizes always give the same estate, down to every field of every registry.
//! The clock is never read: `latest_sync_time` values are offsets from [`SYNC_TIME_BASE_MS`].
//!
//! Field values follow docs/huawei-api.md §1 (Go SDK `model_registry_info.go`): documented enums, documented
//! ranges, `namespace` only for the `Other` scan-image channel and `fail_reason` only for `fail`.
//! Registries are stored as `serde_json::Value` objects rather than a struct, so tests can insert raw
//! objects with missing, null or unknown fields and the simulator returns them exactly as stored.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use serde::{Deserialize, Serialize};

use super::SimConfig;

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

/// One targeted change to the estate, by registry id, as the tests of moves and restores need; for
/// `POST /sim/mutate` it is tagged by `kind` (see the module docs).
///
/// A registry keeps its id and content when it moves: HSS lists it under its new project or enterprise
/// project from then on, and no longer under the old one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EstateChange {
    /// Add a new registry, generated from `seed`, at the end of a scope (an EP new to the project is
    /// created).
    Add {
        /// The project to add to.
        project_id: String,
        /// The enterprise project to add to.
        enterprise_project_id: String,
        /// Seed of the new registry's fields and id.
        seed: u64,
    },
    /// Change a registry's fields as a real registry changes between syncs (from `seed`).
    Update {
        /// The registry.
        id: String,
        /// Seed of the change.
        seed: u64,
    },
    /// Remove a registry; it is remembered for [`EstateChange::Restore`].
    Delete {
        /// The registry.
        id: String,
    },
    /// Bring back a registry removed earlier, with the same id, at the end of the scope it was in;
    /// changed as by [`EstateChange::Update`] with `update_seed` when given.
    Restore {
        /// The registry.
        id: String,
        /// Seed of a change to apply on the way back, none to restore it as it was.
        #[serde(default)]
        update_seed: Option<u64>,
    },
    /// Move a registry to the end of another scope: another enterprise project of its project, or
    /// another project (an EP new to the project is created).
    Move {
        /// The registry.
        id: String,
        /// The project it moves to (its own, for a move between enterprise projects).
        project_id: String,
        /// The enterprise project it moves to.
        enterprise_project_id: String,
    },
}

/// Why an [`EstateChange`] could not be applied; the estate is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EstateChangeError {
    /// No registry with this id is in the estate.
    #[error("no registry {0} in the simulated estate")]
    UnknownRegistry(String),
    /// No project with this id.
    #[error("no project {0} in the simulated estate")]
    UnknownProject(String),
    /// A restore of a registry that is in the estate.
    #[error("registry {0} is in the simulated estate already")]
    AlreadyPresent(String),
    /// A restore of a registry that was never deleted.
    #[error("registry {0} was never deleted from the simulated estate")]
    NeverDeleted(String),
}

/// Base instant for generated `latest_sync_time` values: 2025-06-01T00:00:00Z in epoch milliseconds.
/// A fixed base (instead of "now") keeps the estate identical across runs for the same seed.
pub const SYNC_TIME_BASE_MS: i64 = 1_748_736_000_000;

/// How far before [`SYNC_TIME_BASE_MS`] generated sync times may lie: 90 days, in milliseconds.
const SYNC_TIME_SPREAD_MS: i64 = 90 * 24 * 60 * 60 * 1000;

/// Upper bound of `images_num` documented for `RegistryInfo`.
pub const MAX_IMAGES_NUM: i64 = 20_000;

/// CCE clusters per project that registries are attached to; a handful, so many registries share one,
/// as in a real account.
const CLUSTERS_PER_PROJECT: usize = 3;

/// One project of the simulated account.
#[derive(Clone, Debug)]
pub struct ProjectEstate {
    /// The project id: 32 lower-case hex characters.
    pub project_id: String,
    /// The region the project belongs to; projects are spread round-robin over the configured regions.
    pub region: String,
    /// The IAM project name: the region id for the region's main project (its first project), and
    /// `{region}_proj{k}` for the k-th project of that region (k counts from 1, the main project being
    /// the first), which IAM lists as a sub-project of the main one.
    pub name: String,
    /// Candidate `connect_cluster_id` values for this project's registries.
    pub cluster_ids: Vec<String>,
    /// The scopes of this project, one per enterprise project, default EP `"0"` first.
    pub scopes: Vec<Scope>,
}

/// The registries of one (project, enterprise project) pair, in the order ListRegistry returns them.
#[derive(Clone, Debug)]
pub struct Scope {
    /// The enterprise project id (`"0"` for the default EP).
    pub enterprise_project_id: String,
    /// The registries as the JSON objects the API returns.
    pub registries: Vec<Value>,
}

/// The whole simulated account.
#[derive(Clone, Debug)]
pub struct Estate {
    /// The configured main region id (`SimConfig::region`).
    pub region: String,
    /// Every region of the account, main region first, without duplicates.
    pub regions: Vec<String>,
    /// Every enterprise project id known to the account, `"0"` first.
    pub enterprise_project_ids: Vec<String>,
    /// The projects, in generation order.
    pub projects: Vec<ProjectEstate>,
    /// Registries removed from the estate (by a mutation, a drift or [`EstateChange::Delete`]) and not
    /// restored since, oldest first, at most one per id: [`EstateChange::Restore`] brings one back with
    /// the same id, as when an account re-adds a registry HSS forgot.
    pub deleted: Vec<DeletedRegistry>,
}

/// A registry that left the estate, and where it was.
#[derive(Clone, Debug)]
pub struct DeletedRegistry {
    /// The project it was in.
    pub project_id: String,
    /// The enterprise project it was in.
    pub enterprise_project_id: String,
    /// The registry as it was last served.
    pub registry: Value,
}

impl Estate {
    /// Generate the estate described by `config` from `config.seed`.
    pub fn generate(config: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let project_ids: Vec<String> = (0..config.n_projects)
            .map(|_| format!("{:032x}", rng.gen::<u128>()))
            .collect();
        let mut enterprise_project_ids = vec!["0".to_string()];
        enterprise_project_ids
            .extend((0..config.n_enterprise_projects).map(|_| uuid_like(&mut rng)));
        let regions = all_regions(config);
        let mut projects_per_region = vec![0_usize; regions.len()];
        let projects = project_ids
            .into_iter()
            .enumerate()
            .map(|(index, project_id)| {
                // The region is a pure function of the index, so it draws nothing from `rng` and a
                // single-region estate stays identical to the one generated before regions existed.
                let region_index = index % regions.len();
                let region = regions[region_index].clone();
                projects_per_region[region_index] += 1;
                let name = match projects_per_region[region_index] {
                    1 => region.clone(),
                    k => format!("{region}_proj{k}"),
                };
                let cluster_ids = (0..CLUSTERS_PER_PROJECT)
                    .map(|_| uuid_like(&mut rng))
                    .collect();
                let mut project = ProjectEstate {
                    project_id,
                    region,
                    name,
                    cluster_ids,
                    scopes: Vec::new(),
                };
                for enterprise_project_id in &enterprise_project_ids {
                    let registries = (0..config.registries_per_scope)
                        .map(|i| {
                            generate_registry(
                                &mut rng,
                                &project.region,
                                &project.cluster_ids,
                                i + 1,
                            )
                        })
                        .collect();
                    project.scopes.push(Scope {
                        enterprise_project_id: enterprise_project_id.clone(),
                        registries,
                    });
                }
                project
            })
            .collect();
        Estate {
            region: config.region.clone(),
            regions,
            enterprise_project_ids,
            projects,
            deleted: Vec::new(),
        }
    }

    /// The main project of `region` (its first project, the one IAM names after the region), if any.
    pub fn main_project(&self, region: &str) -> Option<&ProjectEstate> {
        self.projects.iter().find(|p| p.region == region)
    }

    /// The project with this id, if any.
    pub fn project(&self, project_id: &str) -> Option<&ProjectEstate> {
        self.projects.iter().find(|p| p.project_id == project_id)
    }

    /// Total number of registries in all scopes.
    pub fn registry_count(&self) -> usize {
        self.projects
            .iter()
            .flat_map(|p| &p.scopes)
            .map(|s| s.registries.len())
            .sum()
    }

    /// The scope for (`project_id`, `enterprise_project_id`), created empty if the EP is new to the project.
    ///
    /// # Panics
    /// If the project does not exist: callers are tests and tools, for which an unknown project is a bug.
    pub fn scope_mut(&mut self, project_id: &str, enterprise_project_id: &str) -> &mut Scope {
        if !self
            .enterprise_project_ids
            .iter()
            .any(|e| e == enterprise_project_id)
        {
            self.enterprise_project_ids
                .push(enterprise_project_id.to_string());
        }
        let project = self
            .projects
            .iter_mut()
            .find(|p| p.project_id == project_id)
            .unwrap_or_else(|| panic!("simulator has no project {project_id}"));
        let index = match project
            .scopes
            .iter()
            .position(|s| s.enterprise_project_id == enterprise_project_id)
        {
            Some(index) => index,
            None => {
                project.scopes.push(Scope {
                    enterprise_project_id: enterprise_project_id.to_string(),
                    registries: Vec::new(),
                });
                project.scopes.len() - 1
            }
        };
        &mut project.scopes[index]
    }

    /// Make the scope hold exactly `n` registries: truncate, or append registries generated from a seed
    /// derived from the estate seed, the scope and its current size (so the result is deterministic).
    pub fn set_registries_in_scope(
        &mut self,
        seed: u64,
        project_id: &str,
        enterprise_project_id: &str,
        n: usize,
    ) {
        let (region, cluster_ids) = self
            .project(project_id)
            .map(|p| (p.region.clone(), p.cluster_ids.clone()))
            .unwrap_or_else(|| (self.region.clone(), Vec::new()));
        let scope = self.scope_mut(project_id, enterprise_project_id);
        let current = scope.registries.len();
        if n <= current {
            scope.registries.truncate(n);
            return;
        }
        let derived = seed
            ^ fnv1a(project_id.as_bytes())
            ^ fnv1a(enterprise_project_id.as_bytes()).rotate_left(17)
            ^ (current as u64).rotate_left(41);
        let mut rng = ChaCha8Rng::seed_from_u64(derived);
        for i in current..n {
            let registry = generate_registry(&mut rng, &region, &cluster_ids, i + 1);
            scope.registries.push(registry);
        }
    }

    /// Apply `mutation` deterministically (from `mutation.seed` and the current estate).
    ///
    /// Updates and deletes are drawn without overlap from the registries present before the mutation;
    /// additions are spread round-robin over all scopes. Requests larger than the estate are clamped.
    pub fn mutate(&mut self, mutation: &Mutation) -> MutationSummary {
        let mut rng = ChaCha8Rng::seed_from_u64(mutation.seed);
        let mut summary = MutationSummary::default();

        // Positions (project, scope, index) of every registry, in stable order.
        let positions: Vec<(usize, usize, usize)> = self
            .projects
            .iter()
            .enumerate()
            .flat_map(|(p, project)| {
                project
                    .scopes
                    .iter()
                    .enumerate()
                    .flat_map(move |(s, scope)| (0..scope.registries.len()).map(move |i| (p, s, i)))
            })
            .collect();
        let mut chosen = positions.clone();
        chosen.shuffle(&mut rng);
        let n_delete = mutation.n_delete.min(chosen.len());
        let (to_delete, rest) = chosen.split_at(n_delete);
        // Only JSON objects can be updated field by field; raw non-object entries are left alone.
        let to_update: Vec<(usize, usize, usize)> = rest
            .iter()
            .copied()
            .filter(|&(p, s, i)| self.projects[p].scopes[s].registries[i].is_object())
            .take(mutation.n_update)
            .collect();

        for &(p, s, i) in &to_update {
            let registry = &mut self.projects[p].scopes[s].registries[i];
            update_registry(&mut rng, registry);
            summary.updated.push(registry_id(registry));
        }

        let mut deletions = to_delete.to_vec();
        // Remove from the back of each scope first so earlier indices stay valid.
        deletions.sort_by(|a, b| b.cmp(a));
        for (p, s, i) in deletions {
            let removed = self.projects[p].scopes[s].registries.remove(i);
            summary.deleted.push(registry_id(&removed));
            let project_id = self.projects[p].project_id.clone();
            let enterprise_project_id = self.projects[p].scopes[s].enterprise_project_id.clone();
            self.remember_deleted(project_id, enterprise_project_id, removed);
        }
        summary.deleted.reverse();

        let scopes: Vec<(usize, usize)> = self
            .projects
            .iter()
            .enumerate()
            .flat_map(|(p, project)| (0..project.scopes.len()).map(move |s| (p, s)))
            .collect();
        if !scopes.is_empty() {
            let start = rng.gen_range(0..scopes.len());
            for k in 0..mutation.n_add {
                let (p, s) = scopes[(start + k) % scopes.len()];
                let project = &mut self.projects[p];
                let serial = project.scopes[s].registries.len() + 1;
                let registry =
                    generate_registry(&mut rng, &project.region, &project.cluster_ids, serial);
                summary.added.push(registry_id(&registry));
                project.scopes[s].registries.push(registry);
            }
        }
        summary
    }
}

impl Estate {
    /// Shift a project's list the way concurrent changes do during an offset walk: delete the first
    /// `n_delete` registries of the list selected by `enterprise_project_id` (`None` = every scope in
    /// order, as `all_granted_eps` pages them), then insert `n_insert` new registries at the front of
    /// that list. Paging on by offset afterwards skips items (deletions) and repeats items (insertions).
    ///
    /// The new registries are generated from `seed`. An unknown project or EP changes nothing.
    pub fn drift_front(
        &mut self,
        seed: u64,
        project_id: &str,
        enterprise_project_id: Option<&str>,
        n_insert: usize,
        n_delete: usize,
    ) -> MutationSummary {
        let mut summary = MutationSummary::default();
        let Some(project) = self
            .projects
            .iter_mut()
            .find(|p| p.project_id == project_id)
        else {
            return summary;
        };
        let selected: Vec<usize> = (0..project.scopes.len())
            .filter(|&s| {
                enterprise_project_id.is_none_or(|ep| project.scopes[s].enterprise_project_id == ep)
            })
            .collect();
        let Some(&first_scope) = selected.first() else {
            return summary;
        };
        let mut remaining = n_delete;
        let mut removed = Vec::new();
        for &s in &selected {
            let scope = &mut project.scopes[s];
            let n = remaining.min(scope.registries.len());
            for registry in scope.registries.drain(..n) {
                summary.deleted.push(registry_id(&registry));
                removed.push((scope.enterprise_project_id.clone(), registry));
            }
            remaining -= n;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let serial_base = project.scopes[first_scope].registries.len();
        let inserted: Vec<Value> = (0..n_insert)
            .map(|i| {
                generate_registry(
                    &mut rng,
                    &project.region,
                    &project.cluster_ids,
                    serial_base + i + 1,
                )
            })
            .collect();
        summary.added = inserted.iter().map(registry_id).collect();
        project.scopes[first_scope]
            .registries
            .splice(0..0, inserted);
        let project_id = project.project_id.clone();
        for (enterprise_project_id, registry) in removed {
            self.remember_deleted(project_id.clone(), enterprise_project_id, registry);
        }
        summary
    }

    /// Where the registry with this id is: (project index, scope index, position in the scope).
    pub fn position_of(&self, id: &str) -> Option<(usize, usize, usize)> {
        self.projects.iter().enumerate().find_map(|(p, project)| {
            project.scopes.iter().enumerate().find_map(|(s, scope)| {
                scope
                    .registries
                    .iter()
                    .position(|r| registry_id(r) == id)
                    .map(|i| (p, s, i))
            })
        })
    }

    /// Apply one targeted change; see [`EstateChange`]. Returns the id of the registry changed.
    ///
    /// # Errors
    /// When the change names a registry that is not where the change needs it (absent for an update,
    /// a delete or a move; present, or never deleted, for a restore) or a project that does not exist.
    /// The estate is unchanged then.
    pub fn apply_change(&mut self, change: &EstateChange) -> Result<String, EstateChangeError> {
        match change {
            EstateChange::Add {
                project_id,
                enterprise_project_id,
                seed,
            } => {
                let project = self
                    .project(project_id)
                    .ok_or_else(|| EstateChangeError::UnknownProject(project_id.clone()))?;
                let (region, cluster_ids) = (project.region.clone(), project.cluster_ids.clone());
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                let scope = self.scope_mut(project_id, enterprise_project_id);
                let serial = scope.registries.len() + 1;
                let registry = generate_registry(&mut rng, &region, &cluster_ids, serial);
                let id = registry_id(&registry);
                scope.registries.push(registry);
                Ok(id)
            }
            EstateChange::Update { id, seed } => {
                let (p, s, i) = self
                    .position_of(id)
                    .ok_or_else(|| EstateChangeError::UnknownRegistry(id.clone()))?;
                let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                update_registry(&mut rng, &mut self.projects[p].scopes[s].registries[i]);
                Ok(id.clone())
            }
            EstateChange::Delete { id } => {
                let (p, s, i) = self
                    .position_of(id)
                    .ok_or_else(|| EstateChangeError::UnknownRegistry(id.clone()))?;
                let removed = self.projects[p].scopes[s].registries.remove(i);
                let project_id = self.projects[p].project_id.clone();
                let enterprise_project_id =
                    self.projects[p].scopes[s].enterprise_project_id.clone();
                self.remember_deleted(project_id, enterprise_project_id, removed);
                Ok(id.clone())
            }
            EstateChange::Restore { id, update_seed } => {
                if self.position_of(id).is_some() {
                    return Err(EstateChangeError::AlreadyPresent(id.clone()));
                }
                let index = self
                    .deleted
                    .iter()
                    .position(|d| registry_id(&d.registry) == *id)
                    .ok_or_else(|| EstateChangeError::NeverDeleted(id.clone()))?;
                let mut restored = self.deleted.remove(index);
                if let Some(seed) = update_seed {
                    let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                    update_registry(&mut rng, &mut restored.registry);
                }
                self.scope_mut(&restored.project_id, &restored.enterprise_project_id)
                    .registries
                    .push(restored.registry);
                Ok(id.clone())
            }
            EstateChange::Move {
                id,
                project_id,
                enterprise_project_id,
            } => {
                if self.project(project_id).is_none() {
                    return Err(EstateChangeError::UnknownProject(project_id.clone()));
                }
                let (p, s, i) = self
                    .position_of(id)
                    .ok_or_else(|| EstateChangeError::UnknownRegistry(id.clone()))?;
                let registry = self.projects[p].scopes[s].registries.remove(i);
                self.scope_mut(project_id, enterprise_project_id)
                    .registries
                    .push(registry);
                Ok(id.clone())
            }
        }
    }

    /// Keep a removed registry for [`EstateChange::Restore`], replacing an older record of the same id.
    fn remember_deleted(
        &mut self,
        project_id: String,
        enterprise_project_id: String,
        registry: Value,
    ) {
        let id = registry_id(&registry);
        self.deleted.retain(|d| registry_id(&d.registry) != id);
        self.deleted.push(DeletedRegistry {
            project_id,
            enterprise_project_id,
            registry,
        });
    }
}

/// The configured regions in project-assignment order: `config.region` first, then `config.regions`,
/// without duplicates or empty ids.
pub fn all_regions(config: &SimConfig) -> Vec<String> {
    let mut regions: Vec<String> = Vec::new();
    for region in std::iter::once(&config.region).chain(&config.regions) {
        if !region.is_empty() && !regions.contains(region) {
            regions.push(region.clone());
        }
    }
    if regions.is_empty() {
        // An empty main region still needs a bucket so projects can be assigned.
        regions.push(config.region.clone());
    }
    regions
}

/// Generate one realistic `RegistryInfo` object; `serial` numbers the registry within its scope and ends
/// up in its name (e.g. `harbor-prod-03`).
pub fn generate_registry(
    rng: &mut ChaCha8Rng,
    region: &str,
    cluster_ids: &[String],
    serial: usize,
) -> Value {
    let registry_type = weighted(
        rng,
        &[
            ("Harbor", 55),
            ("Jfrog", 28),
            ("SwrPrivate", 5),
            ("SwrShared", 3),
            ("SwrEnterprise", 5),
            ("Other", 4),
        ],
    );
    let environment = *["prod", "staging", "dev", "test", "qa", "dr", "shared"]
        .choose(rng)
        .expect("non-empty");
    let (name_prefix, registry_addr, registry_username) = match registry_type {
        "Harbor" => {
            let addr = if rng.gen_bool(0.35) {
                private_ip_with_port(rng)
            } else {
                format!("harbor-{environment}.{}", company_domain(rng))
            };
            let robot = *["hss-sync", "scanner", "ci", "readonly"]
                .choose(rng)
                .expect("non-empty");
            ("harbor", addr, format!("robot$hss+{robot}"))
        }
        "Jfrog" => {
            let addr = if rng.gen_bool(0.5) {
                format!(
                    "{}.jfrog.io",
                    ["acme", "globex", "initech", "umbrella"]
                        .choose(rng)
                        .expect("non-empty")
                )
            } else if rng.gen_bool(0.5) {
                format!("artifactory.{}", company_domain(rng))
            } else {
                private_ip_with_port(rng)
            };
            let user = *["svc-hss", "hss-reader", "admin", "scan-bot"]
                .choose(rng)
                .expect("non-empty");
            ("jfrog", addr, user.to_string())
        }
        "SwrPrivate" | "SwrShared" | "SwrEnterprise" => {
            let prefix = match registry_type {
                "SwrPrivate" => "swr-private",
                "SwrShared" => "swr-shared",
                _ => "swr-ee",
            };
            // SWR login user names have the form "{region}@{access key}".
            let user = format!("{region}@{}", upper_alnum(rng, 20));
            (prefix, format!("swr.{region}.myhuaweicloud.com"), user)
        }
        _ => {
            let addr = if rng.gen_bool(0.5) {
                format!("registry.{}", company_domain(rng))
            } else {
                private_ip_with_port(rng)
            };
            ("registry", addr, "registry-user".to_string())
        }
    };
    let is_swr = registry_type.starts_with("Swr");
    // SWR is always reached over HTTPS with the V2 registry API; self-hosted registries vary.
    let api_version = if !is_swr && rng.gen_bool(if registry_type == "Jfrog" { 0.3 } else { 0.05 })
    {
        "V1"
    } else {
        "V2"
    };
    let protocol = if is_swr || rng.gen_bool(0.8) {
        "https"
    } else {
        "http"
    };
    let channel = if rng.gen_bool(0.75) { "Swr" } else { "Other" };
    let connect_cluster_id = cluster_ids
        .choose(rng)
        .cloned()
        .unwrap_or_else(|| uuid_like(rng));
    let status = weighted(rng, &[("success", 80), ("fail", 12), ("accessing", 8)]);
    let images_num: i64 = match status {
        "accessing" => 0,
        _ if rng.gen_bool(0.05) => rng.gen_range(2_000..=MAX_IMAGES_NUM),
        _ => rng.gen_range(0..=1_500),
    };
    let latest_sync_time = if status == "accessing" {
        0
    } else {
        SYNC_TIME_BASE_MS - rng.gen_range(0..SYNC_TIME_SPREAD_MS)
    };

    let mut object = Map::new();
    object.insert("id".into(), json!(uuid_like(rng)));
    object.insert(
        "registry_name".into(),
        json!(format!("{name_prefix}-{environment}-{serial:02}")),
    );
    object.insert("registry_type".into(), json!(registry_type));
    object.insert("api_version".into(), json!(api_version));
    object.insert("protocol".into(), json!(protocol));
    object.insert("registry_addr".into(), json!(registry_addr));
    object.insert("registry_username".into(), json!(registry_username));
    if channel == "Other" {
        let namespace = *["library", "hss-scan", "security", "platform"]
            .choose(rng)
            .expect("non-empty");
        object.insert("namespace".into(), json!(namespace));
    }
    object.insert("connect_cluster_id".into(), json!(connect_cluster_id));
    object.insert("get_scan_image_channel".into(), json!(channel));
    object.insert("status".into(), json!(status));
    if status == "fail" {
        object.insert("fail_reason".into(), json!(fail_reason(rng)));
    }
    object.insert("images_num".into(), json!(images_num));
    object.insert("latest_sync_time".into(), json!(latest_sync_time));
    Value::Object(object)
}

/// Change a registry the way a real one changes between syncs: a new sync time always, and sometimes a
/// new status (keeping `fail_reason` consistent), image count, name or protocol.
fn update_registry(rng: &mut ChaCha8Rng, registry: &mut Value) {
    let Some(object) = registry.as_object_mut() else {
        return;
    };
    let previous_sync = object
        .get("latest_sync_time")
        .and_then(Value::as_i64)
        .filter(|&t| t > 0)
        .unwrap_or(SYNC_TIME_BASE_MS);
    // At least one minute later, so every update changes at least this field.
    let next_sync = previous_sync + rng.gen_range(60_000..=6 * 60 * 60 * 1000);
    object.insert("latest_sync_time".into(), json!(next_sync));

    if rng.gen_bool(0.5) {
        let status = weighted(rng, &[("success", 60), ("fail", 30), ("accessing", 10)]);
        object.insert("status".into(), json!(status));
        if status == "fail" {
            object.insert("fail_reason".into(), json!(fail_reason(rng)));
        } else {
            object.remove("fail_reason");
        }
    }
    if rng.gen_bool(0.6) {
        let old = object
            .get("images_num")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let new = (old + rng.gen_range(-50..=200)).clamp(0, MAX_IMAGES_NUM);
        object.insert("images_num".into(), json!(new));
    }
    if rng.gen_bool(0.15) {
        if let Some(name) = object.get("registry_name").and_then(Value::as_str) {
            let renamed = format!("{name}-renamed-{}", rng.gen_range(1..100));
            object.insert("registry_name".into(), json!(renamed));
        }
    }
    if rng.gen_bool(0.1) {
        let flipped = match object.get("protocol").and_then(Value::as_str) {
            Some("http") => "https",
            _ => "http",
        };
        object.insert("protocol".into(), json!(flipped));
    }
}

/// A UUID-shaped (version 4 layout) lower-case id drawn from `rng`.
pub fn uuid_like(rng: &mut ChaCha8Rng) -> String {
    let mut bits: u128 = rng.gen();
    bits = (bits & !(0xF << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The `id` field of a registry as a string, or its JSON text when it is missing or not a string.
pub fn registry_id(registry: &Value) -> String {
    match registry.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(other) => other.to_string(),
        None => "null".to_string(),
    }
}

fn fail_reason(rng: &mut ChaCha8Rng) -> &'static str {
    weighted(
        rng,
        &[
            ("REQUEST_API_ERROR", 60),
            ("CREATE_JOB_FAILED", 25),
            ("SERVER_ERROR", 15),
        ],
    )
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, choices: &[(T, u32)]) -> T {
    let total: u32 = choices.iter().map(|(_, w)| w).sum();
    let mut pick = rng.gen_range(0..total);
    for &(value, weight) in choices {
        if pick < weight {
            return value;
        }
        pick -= weight;
    }
    choices[choices.len() - 1].0
}

fn company_domain(rng: &mut ChaCha8Rng) -> &'static str {
    [
        "corp.example.com",
        "internal.example.net",
        "example.cn",
        "devops.example.org",
    ]
    .choose(rng)
    .expect("non-empty")
}

fn private_ip_with_port(rng: &mut ChaCha8Rng) -> String {
    let port = [80, 443, 5000, 8080, 8082, 8443]
        .choose(rng)
        .expect("non-empty");
    format!(
        "10.{}.{}.{}:{port}",
        rng.gen_range(0..=255),
        rng.gen_range(0..=255),
        rng.gen_range(1..=254)
    )
}

fn upper_alnum(rng: &mut ChaCha8Rng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// 64-bit FNV-1a, used only to derive per-scope seeds from ids (stable across platforms and releases,
/// unlike `std`'s `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;

//! The simulated account's estate: projects, enterprise projects and the registries in each scope.
//!
//! Everything here is generated from a `ChaCha8Rng` seeded with the configured seed, so the same seed and
//! the same sizes always give the same estate, down to every field of every registry.
//! The clock is never read: `latest_sync_time` values are offsets from [`SYNC_TIME_BASE_MS`].
//!
//! Field values follow HUAWEI-API.md §1 (Go SDK `model_registry_info.go`): documented enums, documented
//! ranges, `namespace` only for the `Other` scan-image channel and `fail_reason` only for `fail`.
//! Registries are stored as `serde_json::Value` objects rather than a struct, so tests can insert raw
//! objects with missing, null or unknown fields and the simulator returns them exactly as stored.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::{EstateChange, EstateChangeError, Mutation, MutationSummary, SimConfig};

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
                enterprise_project_id
                    .map_or(true, |ep| project.scopes[s].enterprise_project_id == ep)
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
mod tests {
    use super::*;
    use crate::sim::{EstateChange, EstateChangeError};

    fn config(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            n_projects: 3,
            n_enterprise_projects: 2,
            registries_per_scope: 40,
            ..SimConfig::default()
        }
    }

    /// Everything observable about an estate, as one JSON value for comparisons.
    fn snapshot(estate: &Estate) -> Value {
        json!({
            "eps": estate.enterprise_project_ids,
            "projects": estate.projects.iter().map(|p| json!({
                "id": p.project_id,
                "scopes": p.scopes.iter().map(|s| json!({"ep": s.enterprise_project_id, "registries": s.registries})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    fn is_uuid_like(text: &str) -> bool {
        let groups: Vec<&str> = text.split('-').collect();
        groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
            && text
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn same_seed_and_sizes_give_an_identical_estate() {
        let first = Estate::generate(&config(7));
        let second = Estate::generate(&config(7));
        assert_eq!(snapshot(&first), snapshot(&second));
        assert_eq!(first.registry_count(), 3 * 3 * 40);
    }

    #[test]
    fn different_seeds_give_different_estates() {
        let first = Estate::generate(&config(7));
        let second = Estate::generate(&config(8));
        assert_ne!(first.projects[0].project_id, second.projects[0].project_id);
        assert_ne!(snapshot(&first), snapshot(&second));
    }

    #[test]
    fn ids_have_the_documented_shapes() {
        let estate = Estate::generate(&config(1));
        assert_eq!(estate.enterprise_project_ids[0], "0");
        assert_eq!(estate.enterprise_project_ids.len(), 3);
        assert!(estate.enterprise_project_ids[1..]
            .iter()
            .all(|ep| is_uuid_like(ep)));
        for project in &estate.projects {
            assert_eq!(project.project_id.len(), 32);
            assert!(project
                .project_id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            let ids: Vec<&str> = project
                .scopes
                .iter()
                .map(|s| s.enterprise_project_id.as_str())
                .collect();
            assert_eq!(ids, estate.enterprise_project_ids);
        }
    }

    #[test]
    fn generated_registries_follow_the_documented_field_rules() {
        let estate = Estate::generate(&SimConfig {
            registries_per_scope: 300,
            ..config(3)
        });
        let mut seen_types = std::collections::BTreeSet::new();
        let mut seen_statuses = std::collections::BTreeSet::new();
        for registry in estate
            .projects
            .iter()
            .flat_map(|p| &p.scopes)
            .flat_map(|s| &s.registries)
        {
            let field = |name: &str| {
                registry
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            assert!(is_uuid_like(field("id")), "{registry}");
            assert!((1..=128).contains(&field("registry_name").len()));
            let registry_type = field("registry_type");
            assert!([
                "Harbor",
                "Jfrog",
                "SwrPrivate",
                "SwrShared",
                "SwrEnterprise",
                "Other"
            ]
            .contains(&registry_type));
            seen_types.insert(registry_type.to_string());
            assert!(["V1", "V2"].contains(&field("api_version")));
            assert!(["http", "https"].contains(&field("protocol")));
            assert!((1..=256).contains(&field("registry_addr").len()));
            assert!((1..=128).contains(&field("registry_username").len()));
            assert!(is_uuid_like(field("connect_cluster_id")));
            let channel = field("get_scan_image_channel");
            assert!(["Swr", "Other"].contains(&channel));
            assert_eq!(
                registry.get("namespace").is_some(),
                channel == "Other",
                "{registry}"
            );
            let status = field("status");
            assert!(["success", "fail", "accessing"].contains(&status));
            seen_statuses.insert(status.to_string());
            match registry.get("fail_reason").and_then(Value::as_str) {
                Some(reason) => {
                    assert_eq!(status, "fail");
                    assert!(["CREATE_JOB_FAILED", "REQUEST_API_ERROR", "SERVER_ERROR"]
                        .contains(&reason));
                }
                None => assert_ne!(status, "fail", "{registry}"),
            }
            let images = registry["images_num"].as_i64().unwrap();
            assert!((0..=MAX_IMAGES_NUM).contains(&images));
            let sync = registry["latest_sync_time"].as_i64().unwrap();
            assert!((0..=SYNC_TIME_BASE_MS).contains(&sync));
        }
        assert_eq!(
            seen_types.len(),
            6,
            "every registry type appears in a large estate"
        );
        assert_eq!(seen_statuses.len(), 3);
    }

    #[test]
    fn mutation_is_deterministic_and_changes_the_counts_it_reports() {
        let mutation = Mutation {
            seed: 99,
            n_update: 10,
            n_delete: 5,
            n_add: 7,
        };
        let mut first = Estate::generate(&config(5));
        let mut second = Estate::generate(&config(5));
        let before = snapshot(&first);
        let count_before = first.registry_count();

        let summary = first.mutate(&mutation);

        assert_eq!(summary, second.mutate(&mutation));
        assert_eq!(snapshot(&first), snapshot(&second));
        assert_eq!(
            (
                summary.updated.len(),
                summary.deleted.len(),
                summary.added.len()
            ),
            (10, 5, 7)
        );
        assert_eq!(first.registry_count(), count_before - 5 + 7);
        let all_after: Vec<&Value> = first
            .projects
            .iter()
            .flat_map(|p| &p.scopes)
            .flat_map(|s| &s.registries)
            .collect();
        let all_before: Vec<Value> = before["projects"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["scopes"].as_array().unwrap().clone())
            .flat_map(|s| s["registries"].as_array().unwrap().clone())
            .collect();
        let find =
            |list: &[&Value], id: &str| list.iter().find(|r| r["id"] == id).map(|r| (*r).clone());
        let before_refs: Vec<&Value> = all_before.iter().collect();
        for id in &summary.deleted {
            assert!(find(&all_after, id).is_none(), "deleted {id} is gone");
        }
        for id in &summary.updated {
            assert_ne!(
                find(&all_after, id),
                find(&before_refs, id),
                "updated {id} changed"
            );
            assert!(!summary.deleted.contains(id));
        }
        for id in &summary.added {
            assert!(find(&before_refs, id).is_none() && find(&all_after, id).is_some());
        }
    }

    #[test]
    fn mutation_with_another_seed_touches_other_registries() {
        let mut first = Estate::generate(&config(5));
        let mut second = Estate::generate(&config(5));
        let a = first.mutate(&Mutation {
            seed: 1,
            n_update: 10,
            ..Mutation::default()
        });
        let b = second.mutate(&Mutation {
            seed: 2,
            n_update: 10,
            ..Mutation::default()
        });
        assert_ne!(a.updated, b.updated);
    }

    #[test]
    fn mutation_larger_than_the_estate_is_clamped() {
        let mut estate = Estate::generate(&SimConfig {
            registries_per_scope: 2,
            ..config(5)
        });
        let total = estate.registry_count();
        let summary = estate.mutate(&Mutation {
            seed: 3,
            n_update: 100,
            n_delete: total + 5,
            n_add: 0,
        });
        assert_eq!(summary.deleted.len(), total);
        assert!(summary.updated.is_empty());
        assert_eq!(estate.registry_count(), 0);
    }

    #[test]
    fn set_registries_in_scope_truncates_and_extends_deterministically() {
        let mut first = Estate::generate(&config(5));
        let mut second = Estate::generate(&config(5));
        let project_id = first.projects[0].project_id.clone();
        for estate in [&mut first, &mut second] {
            estate.set_registries_in_scope(5, &project_id, "0", 201);
            assert_eq!(estate.projects[0].scopes[0].registries.len(), 201);
        }
        assert_eq!(snapshot(&first), snapshot(&second));
        first.set_registries_in_scope(5, &project_id, "0", 0);
        assert!(first.projects[0].scopes[0].registries.is_empty());
        first.set_registries_in_scope(5, &project_id, "new-ep", 3);
        assert_eq!(
            first.enterprise_project_ids.last().map(String::as_str),
            Some("new-ep")
        );
        assert_eq!(first.projects[0].scopes.last().unwrap().registries.len(), 3);
    }

    /// The estate as one string, in the shape used to record the pre-regions fingerprints below.
    fn fingerprint_text(estate: &Estate) -> String {
        let projects: Vec<Value> = estate
            .projects
            .iter()
            .map(|p| {
                json!({
                    "id": p.project_id,
                    "clusters": p.cluster_ids,
                    "scopes": p.scopes.iter().map(|s| json!({"ep": s.enterprise_project_id, "registries": s.registries})).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::to_string(&json!({"eps": estate.enterprise_project_ids, "projects": projects}))
            .unwrap()
    }

    #[test]
    fn single_region_estate_for_seed_42_is_unchanged_from_before_regions_existed() {
        // Recorded with the code before multi-region support (commit d05590a), SimConfig::default().
        let estate = Estate::generate(&SimConfig::default());
        let ids: Vec<&str> = estate
            .projects
            .iter()
            .map(|p| p.project_id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "f3453fc625799188ae90bfb5395d5ba1",
                "a09ab2f9581667526d71b708c5b6538c"
            ]
        );
        assert_eq!(
            estate.enterprise_project_ids,
            [
                "0",
                "2663b45b-a45d-429e-89e1-49d8bcb642b0",
                "cdca9b0d-2a12-4884-8edb-bf0150871314"
            ]
        );
        assert_eq!(
            registry_id(&estate.projects[0].scopes[0].registries[0]),
            "ad6c136f-fb87-4371-a33e-9421fc4b10b2"
        );
        let text = fingerprint_text(&estate);
        assert_eq!(
            (fnv1a(text.as_bytes()), text.len()),
            (0x64f0_bbe7_24ff_6eb1, 59_813)
        );

        // The same with three projects, which used to draw the third id where an EP id now sits.
        let estate = Estate::generate(&SimConfig {
            n_projects: 3,
            ..SimConfig::default()
        });
        assert_eq!(
            estate.projects[2].project_id,
            "2663b45ba45d829e49e149d8bcb642b0"
        );
        let text = fingerprint_text(&estate);
        assert_eq!(
            (fnv1a(text.as_bytes()), text.len()),
            (0x562e_cc1a_b113_a83f, 89_334)
        );
        assert!(estate.projects.iter().all(|p| p.region == "cn-north-4"));
        let names: Vec<&str> = estate.projects.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["cn-north-4", "cn-north-4_proj2", "cn-north-4_proj3"]
        );
    }

    #[test]
    fn projects_are_spread_round_robin_over_deduplicated_regions_with_main_and_sub_names() {
        let multi = SimConfig {
            seed: 42,
            n_projects: 5,
            regions: vec![
                "ap-southeast-1".into(),
                "cn-north-4".into(),
                "ap-southeast-1".into(),
            ],
            ..SimConfig::default()
        };
        let estate = Estate::generate(&multi);
        assert_eq!(estate.regions, ["cn-north-4", "ap-southeast-1"]);
        let layout: Vec<(&str, &str)> = estate
            .projects
            .iter()
            .map(|p| (p.region.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(
            layout,
            [
                ("cn-north-4", "cn-north-4"),
                ("ap-southeast-1", "ap-southeast-1"),
                ("cn-north-4", "cn-north-4_proj2"),
                ("ap-southeast-1", "ap-southeast-1_proj2"),
                ("cn-north-4", "cn-north-4_proj3"),
            ]
        );
        assert_eq!(
            estate.main_project("ap-southeast-1").unwrap().project_id,
            estate.projects[1].project_id
        );
        // Deterministic, and the ids do not depend on the regions.
        assert_eq!(
            fingerprint_text(&estate),
            fingerprint_text(&Estate::generate(&multi))
        );
        let single = Estate::generate(&SimConfig {
            n_projects: 5,
            ..SimConfig::default()
        });
        let ids = |e: &Estate| {
            e.projects
                .iter()
                .map(|p| p.project_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&estate), ids(&single));
        // SWR registries of a project carry its own region.
        let swr_addresses: Vec<&str> = estate.projects[1]
            .scopes
            .iter()
            .flat_map(|s| &s.registries)
            .filter_map(|r| r["registry_addr"].as_str())
            .filter(|a| a.starts_with("swr."))
            .collect();
        assert!(!swr_addresses.is_empty());
        assert!(swr_addresses
            .iter()
            .all(|a| *a == "swr.ap-southeast-1.myhuaweicloud.com"));
    }

    #[test]
    fn a_deleted_registry_is_restored_with_its_id_in_its_scope_as_it_was_or_changed() {
        let mut estate = Estate::generate(&config(5));
        let project_id = estate.projects[1].project_id.clone();
        let original = estate.projects[1].scopes[2].registries[4].clone();
        let id = registry_id(&original);
        let delete = EstateChange::Delete { id: id.clone() };
        let restore = |update_seed| EstateChange::Restore {
            id: id.clone(),
            update_seed,
        };

        assert_eq!(estate.apply_change(&delete), Ok(id.clone()));
        assert_eq!(estate.position_of(&id), None);
        assert_eq!(
            estate.apply_change(&delete),
            Err(EstateChangeError::UnknownRegistry(id.clone()))
        );
        assert_eq!(estate.apply_change(&restore(None)), Ok(id.clone()));
        assert_eq!(estate.position_of(&id), Some((1, 2, 39)));
        assert_eq!(estate.projects[1].scopes[2].registries[39], original);
        assert_eq!(
            estate.apply_change(&restore(None)),
            Err(EstateChangeError::AlreadyPresent(id.clone()))
        );

        estate.apply_change(&delete).unwrap();
        estate.apply_change(&restore(Some(8))).unwrap();
        let changed = &estate.projects[1].scopes[2].registries[39];
        assert_eq!(registry_id(changed), id);
        assert_ne!(changed, &original);
        assert!(estate.deleted.is_empty());

        // Drift and random mutations remember what they delete, too.
        let drifted = estate.drift_front(1, &project_id, Some("0"), 0, 2);
        let mutated = estate.mutate(&Mutation {
            seed: 4,
            n_delete: 3,
            ..Mutation::default()
        });
        let mut remembered: Vec<String> = estate
            .deleted
            .iter()
            .map(|d| registry_id(&d.registry))
            .collect();
        let mut expected = [drifted.deleted, mutated.deleted].concat();
        remembered.sort();
        expected.sort();
        assert_eq!(remembered, expected);
        assert_eq!(estate.deleted[0].project_id, project_id);
        assert_eq!(
            estate.apply_change(&EstateChange::Restore {
                id: "never-there".into(),
                update_seed: None
            }),
            Err(EstateChangeError::NeverDeleted("never-there".into()))
        );
    }

    #[test]
    fn a_moved_registry_keeps_its_id_and_content_and_leaves_its_old_scope() {
        let mut estate = Estate::generate(&config(5));
        let count = estate.registry_count();
        let original = estate.projects[0].scopes[0].registries[0].clone();
        let id = registry_id(&original);
        let (from_project, to_project) = (
            estate.projects[0].project_id.clone(),
            estate.projects[2].project_id.clone(),
        );
        let ep = estate.enterprise_project_ids[1].clone();
        let move_to = |project_id: &str, enterprise_project_id: &str| EstateChange::Move {
            id: id.clone(),
            project_id: project_id.to_string(),
            enterprise_project_id: enterprise_project_id.to_string(),
        };

        estate.apply_change(&move_to(&from_project, &ep)).unwrap();
        assert_eq!(estate.position_of(&id), Some((0, 1, 40)));
        estate.apply_change(&move_to(&to_project, "0")).unwrap();
        assert_eq!(estate.position_of(&id), Some((2, 0, 40)));
        assert_eq!(estate.projects[2].scopes[0].registries[40], original);
        assert_eq!(estate.registry_count(), count);
        assert_eq!(
            estate.apply_change(&move_to("nope", "0")),
            Err(EstateChangeError::UnknownProject("nope".into()))
        );

        let added = estate
            .apply_change(&EstateChange::Add {
                project_id: to_project.clone(),
                enterprise_project_id: ep.clone(),
                seed: 3,
            })
            .unwrap();
        assert_eq!(estate.position_of(&added), Some((2, 1, 40)));
        let before = estate.projects[2].scopes[1].registries[40].clone();
        estate
            .apply_change(&EstateChange::Update {
                id: added.clone(),
                seed: 3,
            })
            .unwrap();
        assert_ne!(estate.projects[2].scopes[1].registries[40], before);
    }

    #[test]
    fn drift_front_deletes_the_first_items_and_inserts_new_ones_in_front() {
        let mut estate = Estate::generate(&config(5));
        let project_id = estate.projects[0].project_id.clone();
        let before: Vec<String> = estate.projects[0]
            .scopes
            .iter()
            .flat_map(|s| s.registries.iter().map(registry_id))
            .collect();

        let summary = estate.drift_front(9, &project_id, None, 2, 41);

        let after: Vec<String> = estate.projects[0]
            .scopes
            .iter()
            .flat_map(|s| s.registries.iter().map(registry_id))
            .collect();
        assert_eq!(summary.deleted, before[..41]);
        assert_eq!(summary.added, after[..2]);
        assert_eq!(after[2..], before[41..]);
        assert_eq!(
            estate.projects[0].scopes[1].registries.len(),
            39,
            "deletion spans scopes"
        );
        let mut other = Estate::generate(&config(5));
        assert_eq!(other.drift_front(9, &project_id, None, 2, 41), summary);
        let untouched = estate.drift_front(9, "no-such-project", None, 2, 2);
        assert_eq!(untouched, MutationSummary::default());
    }
}

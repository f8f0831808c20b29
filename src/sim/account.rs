//! The simulated account around the estate: its domain, its IAM user, the system projects IAM lists
//! beside the estate's, and the enterprise projects EPS lists. Fixed at creation.

use chrono::{SecondsFormat, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::estate::{uuid_like, Estate};
use super::SimConfig;

/// Name of OBS's default project, which IAM lists beside the region projects (IAM doc example).
pub const OBS_DEFAULT_PROJECT_NAME: &str = "MOS";

/// Names given to the estate's enterprise projects, in order; numbered when there are more.
const ENTERPRISE_PROJECT_NAMES: &[&str] = &[
    "platform",
    "finance",
    "research",
    "marketing",
    "operations",
    "security",
    "data-lake",
    "mobile",
];

/// One enterprise project as EPS lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnterpriseProject {
    /// The id: `"0"` for the default EP, UUID-shaped otherwise.
    pub id: String,
    /// The name: `default` for EP `"0"`.
    pub name: String,
    /// 1 enabled, 2 disabled.
    pub status: u8,
    /// Creation time, UTC, `2018-05-18T06:49:06Z` style.
    pub created_at: String,
}

/// Everything about the account that is not in the [`Estate`]: fixed at creation, drawn from a generator
/// seeded with the estate seed but separate from the estate's, so adding it changed no estate.
#[derive(Clone, Debug)]
pub struct Account {
    /// The account (domain) id: 32 lower-case hex characters.
    pub domain_id: String,
    /// The account name: the IAM user's domain, or `hss-sim-account`.
    pub domain_name: String,
    /// The IAM user's id.
    pub user_id: String,
    /// Id of the `MOS` system project.
    pub obs_project_id: String,
    /// Id of the disabled sub-project listed when `include_disabled_project` is set.
    pub disabled_project_id: String,
    /// Id of the disabled enterprise project EPS lists; it holds no registries.
    pub disabled_enterprise_project_id: String,
}

impl Account {
    /// Generate the account for `config`.
    pub fn generate(config: &SimConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x6163_636f_756e_7421);
        let mut hex32 = || format!("{:032x}", rng.gen::<u128>());
        let domain_id = hex32();
        let user_id = hex32();
        let obs_project_id = hex32();
        let disabled_project_id = hex32();
        let disabled_enterprise_project_id = uuid_like(&mut rng);
        Account {
            domain_id,
            domain_name: config
                .iam_user
                .as_ref()
                .map_or_else(|| "hss-sim-account".to_string(), |u| u.domain.clone()),
            user_id,
            obs_project_id,
            disabled_project_id,
            disabled_enterprise_project_id,
        }
    }

    /// Every enterprise project EPS lists: `"0"` (`default`), the estate's EPs (enabled) in estate order,
    /// then one disabled EP that holds no registries. Creation times are fixed, one day apart.
    pub fn enterprise_projects(&self, estate: &Estate) -> Vec<EnterpriseProject> {
        let base = Utc
            .with_ymd_and_hms(2018, 5, 18, 6, 49, 6)
            .single()
            .expect("a valid fixed date");
        let at = |days: i64| {
            (base + chrono::Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
        };
        let mut list: Vec<EnterpriseProject> = estate
            .enterprise_project_ids
            .iter()
            .enumerate()
            .map(|(index, id)| EnterpriseProject {
                id: id.clone(),
                name: if id == "0" {
                    "default".to_string()
                } else {
                    enterprise_project_name(index)
                },
                status: 1,
                created_at: at(index as i64 * 37),
            })
            .collect();
        list.push(EnterpriseProject {
            id: self.disabled_enterprise_project_id.clone(),
            name: "archived".to_string(),
            status: 2,
            created_at: at(list.len() as i64 * 37),
        });
        list
    }
}

/// Name of the estate's `index`-th enterprise project (index 0 is `"0"`, named `default` elsewhere).
fn enterprise_project_name(index: usize) -> String {
    let k = index.saturating_sub(1);
    let base = ENTERPRISE_PROJECT_NAMES[k % ENTERPRISE_PROJECT_NAMES.len()];
    match k / ENTERPRISE_PROJECT_NAMES.len() {
        0 => base.to_string(),
        round => format!("{base}-{}", round + 1),
    }
}

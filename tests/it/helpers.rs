//! `TestApp`: a simulated HSS API on a loopback port, a fresh store, and a signed client.

use std::net::SocketAddr;

use hss_sync::api::{Auth, ClientSettings, HssClient, HssClients, RetryPolicy};
use hss_sync::signer::Credentials;
use hss_sync::sim::{SimConfig, SimCredentials, Simulator};
use hss_sync::store::{HistoryFilter, HistoryRecord, RegistryRecord, RunRecord, Store};
use hss_sync::sync::{self, RunReport, Scope, SyncOptions};
use tokio_util::sync::CancellationToken;

/// The access key every test signs with.
pub const ACCESS_KEY: &str = "HPUATESTACCESSKEY000";
/// The secret key every test signs with; tests assert it never reaches the database.
pub const SECRET_KEY: &str = "it-secret-key/With+Special=Chars-0123456789";

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}

/// A fresh, empty database.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => TestDb {
                url: fresh_postgres_database().await,
                _dir: None,
            },
        }
    }

    /// The SQLite file, for byte-level checks.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        self.url
            .strip_prefix("sqlite://")
            .map(std::path::PathBuf::from)
    }
}

/// The admin URL tests create their databases through.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn fresh_postgres_database() -> String {
    use sqlx::Connection;
    let admin_url = postgres_admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach PostgreSQL at {admin_url} ({e}); start it or set TEST_DATABASE_URL"
            )
        });
    let name = format!(
        "hss_sync_it_{}",
        rand::Rng::gen_range(&mut rand::thread_rng(), 0..u64::MAX)
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A simulated API, a store and a client wired together.
pub struct TestApp {
    pub sim: Simulator,
    pub address: SocketAddr,
    pub store: Store,
    pub db: TestDb,
    pub client: HssClients,
    stop: CancellationToken,
    /// Whether `sync` makes a version of every change (no `history_ignore_fields`).
    every_change: bool,
}

impl TestApp {
    /// Starts a simulator with `config` (signature checks on with the test keys) and a fresh store.
    pub async fn spawn(backend: Backend, config: SimConfig) -> TestApp {
        let sim = Simulator::new(SimConfig {
            credentials: Some(SimCredentials {
                access_key: ACCESS_KEY.to_owned(),
                secret_key: SECRET_KEY.to_owned(),
            }),
            ..config
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        {
            let sim = sim.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                sim.serve(listener, async move { stop.cancelled().await })
                    .await
            });
        }
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let client = client_for(address, SECRET_KEY);
        TestApp {
            sim,
            address,
            store,
            db,
            client,
            stop,
            every_change: false,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// One `all_granted_eps` scope per simulated project.
    pub fn all_granted_scopes(&self) -> Vec<Scope> {
        self.sim
            .project_ids()
            .into_iter()
            .map(|project_id| Scope::all_granted(self.sim.region(), project_id))
            .collect()
    }

    /// One scope per simulated (project, enterprise project).
    pub fn enterprise_project_scopes(&self) -> Vec<Scope> {
        let mut scopes = Vec::new();
        for project_id in self.sim.project_ids() {
            for ep in self.sim.enterprise_project_ids() {
                scopes.push(scope(&self.sim.region(), &project_id, &ep));
            }
        }
        scopes
    }

    pub async fn sync(&self, scopes: &[Scope]) -> RunReport {
        let mut options = SyncOptions::default();
        if self.every_change {
            options.history_ignore_fields.clear();
        }
        self.sync_with(scopes, options).await
    }

    /// This app, its `sync` making a version of every change, `latest_sync_time` alone
    /// included.
    pub fn versioning_every_change(mut self) -> TestApp {
        self.every_change = true;
        self
    }

    pub async fn sync_with(&self, scopes: &[Scope], options: SyncOptions) -> RunReport {
        sync::run_once(&self.client, &self.store, scopes, &options)
            .await
            .expect("sync run")
    }

    pub async fn registries(&self) -> Vec<RegistryRecord> {
        self.store.all_registries().await.expect("registries")
    }

    pub async fn live_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .registries()
            .await
            .into_iter()
            .filter(|r| r.deleted_at.is_none())
            .map(|r| r.registry.id)
            .collect();
        ids.sort();
        ids
    }

    /// The ids the simulator holds now, over every project.
    pub fn sim_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .sim
            .project_ids()
            .iter()
            .flat_map(|p| self.sim.registries(p, None))
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    /// Every registry the simulator serves, by id.
    pub fn sim_registries(&self) -> std::collections::HashMap<String, serde_json::Value> {
        self.sim
            .project_ids()
            .iter()
            .flat_map(|p| self.sim.registries(p, None))
            .map(|r| (r["id"].as_str().unwrap_or_default().to_owned(), r))
            .collect()
    }

    pub async fn history(&self, filter: HistoryFilter<'_>) -> Vec<HistoryRecord> {
        self.store.history(filter).await.expect("history")
    }

    pub async fn runs(&self) -> Vec<RunRecord> {
        self.store.recent_runs(100).await.expect("runs")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Client settings for tests: no rate limit, quick retries.
pub fn test_settings() -> ClientSettings {
    ClientSettings {
        retry: RetryPolicy {
            max_retries: 3,
            base_delay: std::time::Duration::from_millis(10),
            max_delay: std::time::Duration::from_millis(200),
        },
        ..ClientSettings::default()
    }
}

pub fn client_for(address: SocketAddr, secret_key: &str) -> HssClients {
    client_with(
        address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, secret_key).unwrap()),
        &test_settings(),
    )
}

pub fn client_with(address: SocketAddr, auth: Auth, settings: &ClientSettings) -> HssClients {
    HssClients::single(
        HssClient::new(
            url::Url::parse(&format!("http://{address}")).unwrap(),
            auth,
            settings,
        )
        .unwrap(),
    )
}

pub fn scope(region: &str, project_id: &str, enterprise_project_id: &str) -> Scope {
    Scope {
        region: region.to_owned(),
        project_id: project_id.to_owned(),
        enterprise_project_id: enterprise_project_id.to_owned(),
    }
}

/// A simulator configuration with `per_scope` registries in each of
/// `projects` x (`extra_eps` + 1) scopes.
pub fn estate(projects: usize, extra_eps: usize, per_scope: usize) -> SimConfig {
    SimConfig {
        seed: 11,
        n_projects: projects,
        n_enterprise_projects: extra_eps,
        registries_per_scope: per_scope,
        ..SimConfig::default()
    }
}

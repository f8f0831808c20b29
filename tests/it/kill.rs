//! The kill test: `kill -9` of the real `hss-sync sync` at random moments, with the estate
//! changing between runs; then the store must be intact, its invariants must hold (see
//! `invariants.rs`), and the next sync must start at once and converge.
//!
//! `HSS_KILL_SEED` replays a seed (every failure prints it); `HSS_KILL_ITERATIONS` sets the
//! kills per backend (default [`DEFAULT_ITERATIONS`]).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hss_sync::sim::{Fault, SimConfig};
use hss_sync::store::Store;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::helpers::{Backend, TestApp, ACCESS_KEY, SECRET_KEY};
use crate::invariants::{self, env_number, Violations, MAX_PENDING_DEPARTURES_PER_SCOPE};

/// Kills per backend when `HSS_KILL_ITERATIONS` is not set.
const DEFAULT_ITERATIONS: usize = 8;

/// How long the sync after the kills may take beyond an undisturbed one: far less than the
/// 120-second lease a dead process must not hold.
const RECOVERY_ALLOWANCE: Duration = Duration::from_secs(10);

async fn kill_9_at_random_moments_leaves_a_store_the_next_sync_repairs_at_once(backend: Backend) {
    let seed = env_number("HSS_KILL_SEED").unwrap_or_else(rand::random);
    let iterations = env_number("HSS_KILL_ITERATIONS").map_or(DEFAULT_ITERATIONS, |n| n as usize);
    eprintln!("kill test on {backend:?}: seed {seed}, {iterations} kills (replay with HSS_KILL_SEED={seed})");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Arrange: 2 projects x 2 enterprise projects x 30 registries, slow enough pages that a
    // run lasts a few hundred milliseconds, and one undisturbed run to time.
    let app = TestApp::spawn(
        backend,
        SimConfig {
            seed,
            n_projects: 2,
            n_enterprise_projects: 1,
            registries_per_scope: 30,
            ..SimConfig::default()
        },
    )
    .await;
    app.sim.add_fault(Fault::Latency {
        min: Duration::from_millis(5),
        max: Duration::from_millis(20),
    });
    let started = Instant::now();
    let first = sync_command(&app).output().expect("run hss-sync sync");
    let run_duration = started.elapsed();
    assert_eq!(
        first.status.code(),
        Some(0),
        "kill test seed {seed} on {backend:?}: the undisturbed sync failed: {}",
        text(&first)
    );

    // Act: change the estate, start a sync, kill it at a random moment; again and again.
    let mut outcomes = Vec::new();
    let mut restored_while_deleted: HashMap<String, i64> = HashMap::new();
    for iteration in 0..iterations {
        change_estate(&app, &mut rng, iteration, &mut restored_while_deleted).await;
        let delay = Duration::from_millis(rng.gen_range(0..=run_duration.as_millis() as u64));
        let mut child = sync_command(&app)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start hss-sync sync");
        tokio::time::sleep(delay).await;
        let outcome = match child.try_wait().expect("poll hss-sync") {
            Some(status) => format!("exited {:?} before the kill", status.code()),
            None => format!("killed after {} ms", delay.as_millis()),
        };
        // SIGKILL: no handler runs, no transaction is finished, no lease is given back.
        let _ = child.kill();
        child.wait().expect("reap hss-sync");
        outcomes.push(outcome);
    }
    let context = format!(
        "kill test seed {seed} on {backend:?} (replay with HSS_KILL_SEED={seed}); undisturbed run {} ms; iterations: {}",
        run_duration.as_millis(),
        outcomes.join(", ")
    );

    // Assert: an intact store whose invariants hold.
    if backend == Backend::Sqlite {
        use sqlx::Connection;
        let mut connection = sqlx::SqliteConnection::connect(&app.db.url)
            .await
            .expect("open the file");
        let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut connection)
            .await
            .expect("integrity check");
        assert_eq!(integrity, ["ok"], "{context}: sqlite integrity check");
    }
    let left_running: Vec<i64> = all_runs(&app.store)
        .await
        .into_iter()
        .filter(|r| r.status == "running")
        .map(|r| r.id)
        .collect();
    let estate = invariants::estate_snapshot(&app.sim);
    let mut violations = Violations::default();
    let records = app.registries().await;
    let history = app.history(hss_sync::store::HistoryFilter::All).await;
    let untouched_since_restore = untouched_since_restore(&records, &restored_while_deleted);
    invariants::check_present_not_deleted(
        &records,
        &estate,
        &untouched_since_restore,
        &mut violations,
    );
    invariants::check_history(&records, &history, &mut violations);
    violations.assert_none(&format!("{context}; after the kills"));

    // Act: the next sync.
    let started = Instant::now();
    let next = sync_command(&app).output().expect("run hss-sync sync");
    let next_duration = started.elapsed();

    // Assert: it started at once, converged, and closed what the killed runs left open.
    assert_ne!(
        next.status.code(),
        Some(4),
        "{context}: the sync after the kills found the lease held by a dead process: {}",
        text(&next)
    );
    assert_eq!(
        next.status.code(),
        Some(0),
        "{context}: the sync after the kills failed: {}",
        text(&next)
    );
    assert!(
        next_duration <= run_duration + RECOVERY_ALLOWANCE,
        "{context}: the sync after the kills took {} ms",
        next_duration.as_millis()
    );
    let runs = all_runs(&app.store).await;
    for run_id in &left_running {
        let status = runs
            .iter()
            .find(|r| r.id == *run_id)
            .map(|r| r.status.as_str());
        assert_eq!(
            status,
            Some("interrupted"),
            "{context}: run {run_id}, left running by a killed process, is not interrupted"
        );
    }
    let estate = invariants::estate_snapshot(&app.sim);
    let mut violations =
        invariants::check_store(&app.store, &estate, &HashSet::new(), &mut HashSet::new()).await;
    invariants::check_equals_estate(&app.registries().await, &estate, &mut violations);
    violations.assert_none(&format!("{context}; after the next sync"));
}
crate::on_both_backends!(kill_9_at_random_moments_leaves_a_store_the_next_sync_repairs_at_once);

/// `hss-sync sync` against the test's simulator and database: one scope per (project,
/// enterprise project), ten registries a page, quick retries, no rate limit.
fn sync_command(app: &TestApp) -> Command {
    let projects = app.sim.project_ids().join(",");
    let enterprise_projects = app.sim.enterprise_project_ids().join(",");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hss-sync"));
    command
        .args([
            "sync",
            "--region",
            "cn-north-4",
            "--endpoint",
            &app.endpoint(),
        ])
        .args(["--project-id", &projects])
        .args(["--enterprise-project-id", &enterprise_projects])
        .args(["--database-url", &app.db.url])
        .args(["--max-requests-per-minute", "0", "--page-limit", "10"])
        .args(["--concurrency", "2", "--retry-base-delay-ms", "10"])
        .env("CLOUD_SDK_AK", ACCESS_KEY)
        .env("CLOUD_SDK_SK", SECRET_KEY)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("HSS_SYNC_CONFIG");
    command
}

/// Between two runs: two updates, an addition, a deletion, every other time a move between
/// enterprise projects or projects, and a restore when something was deleted. A registry
/// leaves a scope only while the scope has fewer than [`MAX_PENDING_DEPARTURES_PER_SCOPE`]
/// departures not yet retired, so even if every run is killed the final sync retires fewer
/// than a mass-deletion guard would hold.
async fn change_estate(
    app: &TestApp,
    rng: &mut ChaCha8Rng,
    iteration: usize,
    restored_while_deleted: &mut HashMap<String, i64>,
) {
    let sim = &app.sim;
    let projects = sim.project_ids();
    let enterprise_projects = sim.enterprise_project_ids();
    let pick = |rng: &mut ChaCha8Rng| -> String {
        let ids: Vec<String> = invariants::estate_snapshot(sim).into_keys().collect();
        ids.choose(rng).expect("a registry").clone()
    };
    let records = app.registries().await;
    // A registry that may leave its scope, if any: one whose scope has room for a departure.
    let pick_leaving = |rng: &mut ChaCha8Rng| -> Option<String> {
        let estate = invariants::estate_snapshot(sim);
        let pending = invariants::pending_departures(&records, &estate);
        let ids: Vec<&String> = estate
            .iter()
            .filter(|(_, e)| {
                let key = (e.project_id.clone(), e.enterprise_project_id.clone());
                pending.get(&key).copied().unwrap_or(0) < MAX_PENDING_DEPARTURES_PER_SCOPE
            })
            .map(|(id, _)| id)
            .collect();
        ids.choose(rng).map(|id| (*id).clone())
    };
    for _ in 0..2 {
        let id = pick(rng);
        sim.update_registry(&id, rng.gen()).expect("update");
    }
    let project = projects.choose(rng).expect("a project");
    let ep = enterprise_projects.choose(rng).expect("an ep");
    sim.add_registry(project, ep, rng.gen()).expect("add");
    if let Some(id) = pick_leaving(rng) {
        sim.delete_registry(&id).expect("delete");
    }
    if let Some(id) = pick_leaving(rng).filter(|_| iteration.is_multiple_of(2)) {
        let (from_project, from_ep) = sim.locate_registry(&id).expect("located");
        if rng.gen_bool(0.5) {
            let to = enterprise_projects
                .iter()
                .find(|ep| **ep != from_ep)
                .expect("another ep");
            sim.move_registry_to_enterprise_project(&id, to)
                .expect("move");
        } else {
            let to = projects
                .iter()
                .find(|p| **p != from_project)
                .expect("another project");
            sim.move_registry_to_project(&id, to, &from_ep)
                .expect("move");
        }
    }
    let deleted = sim.deleted_registry_ids();
    if let Some(id) = deleted.choose(rng) {
        // A registry the store has marked deleted stays so until a run walks its scope; which
        // version it was at says whether any run has written it since.
        let stored = app
            .registries()
            .await
            .into_iter()
            .find(|r| r.registry.id == *id && r.deleted_at.is_some());
        if let Some(stored) = stored {
            restored_while_deleted.insert(id.clone(), stored.version);
        }
        let update_seed = rng.gen_bool(0.5).then(|| rng.gen());
        sim.restore_registry(id, update_seed).expect("restore");
    }
}

/// Registries restored in the estate while the store had them marked deleted, and not
/// written by any run since: a killed run may simply not have reached their scope.
fn untouched_since_restore(
    records: &[hss_sync::store::RegistryRecord],
    restored_while_deleted: &HashMap<String, i64>,
) -> HashSet<String> {
    records
        .iter()
        .filter(|r| restored_while_deleted.get(&r.registry.id) == Some(&r.version))
        .map(|r| r.registry.id.clone())
        .collect()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn all_runs(store: &Store) -> Vec<hss_sync::store::RunRecord> {
    store.recent_runs(i64::MAX).await.expect("read runs")
}

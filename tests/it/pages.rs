//! Page edge cases of the ListRegistry walk.

use std::time::Duration;

use hss_sync::sim::{Fault, Mutation, RequestRecord, API_LIST_REGISTRY};
use hss_sync::sync::{RunReport, RunStatus, SyncOptions};

use crate::helpers::{estate, Backend, TestApp};
use crate::on_both_backends;

/// Walks one scope holding `n` registries and returns (pages, requests, fetched).
async fn walk_scope_of(
    backend: Backend,
    n: usize,
    max_page_items: Option<usize>,
) -> (i64, i64, i64) {
    let app = TestApp::spawn(backend, estate(1, 0, n)).await;
    if let Some(max) = max_page_items {
        app.sim.add_fault(Fault::MaxPageItems(max));
    }
    let report = app.sync(&app.all_granted_scopes()).await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(app.live_ids().await, app.sim_ids(), "every registry stored");
    (report.n_pages, report.n_requests, report.counts.n_fetched)
}

async fn an_empty_estate_takes_one_request_and_stores_nothing(backend: Backend) {
    assert_eq!(walk_scope_of(backend, 0, None).await, (1, 1, 0));
}
on_both_backends!(an_empty_estate_takes_one_request_and_stores_nothing);

async fn exactly_200_registries_take_one_page(backend: Backend) {
    assert_eq!(walk_scope_of(backend, 200, None).await, (1, 1, 200));
}
on_both_backends!(exactly_200_registries_take_one_page);

async fn registries_201_take_two_pages(backend: Backend) {
    assert_eq!(walk_scope_of(backend, 201, None).await, (2, 2, 201));
}
on_both_backends!(registries_201_take_two_pages);

async fn pages_shorter_than_the_limit_are_followed_to_the_end(backend: Backend) {
    // 201 items at 37 a page: 6 pages, offsets advanced by what each page held.
    assert_eq!(walk_scope_of(backend, 201, Some(37)).await, (6, 6, 201));
}
on_both_backends!(pages_shorter_than_the_limit_are_followed_to_the_end);

/// The ListRegistry requests the simulator saw, in the order they arrived.
fn list_requests(app: &TestApp) -> Vec<RequestRecord> {
    app.sim
        .request_log()
        .into_iter()
        .filter(|r| r.api == API_LIST_REGISTRY)
        .collect()
}

/// The offsets `log` asked for, smallest first.
fn sorted_offsets(log: &[RequestRecord]) -> Vec<u32> {
    let mut offsets: Vec<u32> = log.iter().filter_map(|r| r.offset).collect();
    offsets.sort_unstable();
    offsets
}

/// An app whose simulated API answers every request `ms` after it arrives.
async fn slow_app(backend: Backend, projects: usize, per_scope: usize, ms: u64) -> TestApp {
    let app = TestApp::spawn(backend, estate(projects, 0, per_scope)).await;
    app.sim.add_fault(Fault::Latency {
        min: Duration::from_millis(ms),
        max: Duration::from_millis(ms),
    });
    app
}

fn with_concurrency(concurrency: usize) -> SyncOptions {
    SyncOptions {
        concurrency,
        ..SyncOptions::default()
    }
}

/// Syncs every scope of `app` with `concurrency` slots, checks that every registry is
/// stored, and returns the report, the ListRegistry requests, their offsets in order, and
/// the most requests that were in flight at once.
async fn sync_on_slots(
    app: &TestApp,
    concurrency: usize,
) -> (RunReport, Vec<RequestRecord>, Vec<u32>, Option<u32>) {
    let report = app
        .sync_with(&app.all_granted_scopes(), with_concurrency(concurrency))
        .await;
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(app.live_ids().await, app.sim_ids(), "every registry stored");
    let log = list_requests(app);
    let offsets = sorted_offsets(&log);
    let most = log.iter().map(|r| r.in_flight).max();
    (report, log, offsets, most)
}

async fn the_pages_of_a_scope_go_at_once_on_the_slots_no_walk_waits_for(backend: Backend) {
    // One scope of 1,001 registries: its first page says there are 6, and the other 5 are
    // asked for on the run's 4 slots.
    let app = slow_app(backend, 1, 1001, 100).await;

    let (report, log, offsets, most) = sync_on_slots(&app, 4).await;

    assert_eq!((report.n_pages, report.n_requests), (6, 6));
    assert_eq!(log[0].offset, Some(0));
    assert_eq!(log[0].in_flight, 1, "the first page goes alone");
    let each_once = [0, 200, 400, 600, 800, 1000];
    assert_eq!(offsets, each_once, "each page asked for once");
    assert_eq!(most, Some(4), "every free slot taken, and no more: {log:?}");
}
on_both_backends!(the_pages_of_a_scope_go_at_once_on_the_slots_no_walk_waits_for);

async fn no_more_requests_are_in_flight_than_the_concurrency(backend: Backend) {
    // Three scopes of 6 pages on 2 slots: the walks share them, and each page goes once.
    let app = slow_app(backend, 3, 1001, 50).await;

    let (report, log, offsets, most) = sync_on_slots(&app, 2).await;

    assert_eq!((offsets.len(), report.n_requests), (18, 18));
    assert_eq!(most, Some(2), "{log:?}");
}
on_both_backends!(no_more_requests_are_in_flight_than_the_concurrency);

async fn requests_in_flight_when_a_page_fails_are_counted(backend: Backend) {
    // The page at 200 fails while the pages at 400, 600 and 800 are asked for with it, on
    // the run's other three slots.
    let app = slow_app(backend, 1, 1001, 100).await;
    app.sim.add_fault(Fault::FailPage {
        project_id: None,
        offset: Some(200),
        status: 400,
        error_code: "HSS.1001".to_owned(),
        error_msg: "bad request".to_owned(),
        times: None,
    });

    let report = app
        .sync_with(&app.all_granted_scopes(), with_concurrency(4))
        .await;

    assert_eq!(report.status, RunStatus::Failed, "{report:?}");
    assert_eq!(
        report.n_pages, 1,
        "the pages after the failed one are not taken"
    );
    let log = list_requests(&app);
    assert_eq!(sorted_offsets(&log), [0, 200, 400, 600, 800], "{log:?}");
    assert_eq!(
        report.n_requests, 5,
        "the dropped requests are counted as sent"
    );
}
on_both_backends!(requests_in_flight_when_a_page_fails_are_counted);

async fn a_page_that_fails_mid_walk_retires_nothing_and_makes_the_run_partial(backend: Backend) {
    // Arrange: two projects of 250 registries, synced once.
    let app = TestApp::spawn(backend, estate(2, 0, 250)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let broken = app.sim.project_ids()[0].clone();
    let change = app.sim.mutate(&Mutation {
        seed: 4,
        n_delete: 20,
        n_update: 10,
        ..Default::default()
    });
    app.sim.add_fault(Fault::FailPage {
        project_id: Some(broken.clone()),
        offset: Some(200),
        status: 500,
        error_code: "HSS.1001".to_owned(),
        error_msg: "internal error".to_owned(),
        times: None,
    });

    // Act
    let report = app.sync(&scopes).await;

    // Assert
    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.status.exit_code(), 3);
    let failed = report
        .scopes
        .iter()
        .find(|s| s.scope.project_id == broken)
        .unwrap();
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.n_pages, 1, "the first page came back");
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("HTTP 500") && error.contains("HSS.1001") && error.contains("offset 200"),
        "{error}"
    );
    let rows = app.registries().await;
    assert!(
        rows.iter()
            .filter(|r| r.project_id == broken)
            .all(|r| r.deleted_at.is_none()),
        "nothing in the failed scope is retired"
    );
    // A registry can move to any scope, and the failed one might hold it: no scope of the
    // run retires anything, the healthy one included.
    let healthy_deleted = rows
        .iter()
        .filter(|r| r.project_id != broken && r.deleted_at.is_some())
        .count();
    assert_eq!(
        healthy_deleted, 0,
        "a failed scope holds every deletion of the run"
    );
    assert!(!change.deleted.is_empty());
    let runs = app.runs().await;
    assert_eq!(runs[0].status, "partial");
    assert_eq!(runs[0].totals.n_scopes_failed, 1);
    assert!(runs[0]
        .totals
        .error
        .as_deref()
        .unwrap()
        .contains("HSS.1001"));
}
on_both_backends!(a_page_that_fails_mid_walk_retires_nothing_and_makes_the_run_partial);

async fn a_wrong_total_num_is_detected_and_retires_nothing(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 40)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    app.sim.mutate(&Mutation {
        seed: 8,
        n_delete: 5,
        ..Default::default()
    });
    let project = app.sim.project_ids()[0].clone();
    app.sim.add_fault(Fault::WrongTotalNum {
        project_id: Some(project),
        total_num: 60,
    });

    let report = app.sync(&scopes).await;

    assert_eq!(report.status, RunStatus::Failed);
    assert!(report.scopes[0]
        .error
        .as_deref()
        .unwrap()
        .contains("did not add up"));
    assert_eq!(report.counts.n_deleted, 0);
    assert_eq!(app.live_ids().await.len(), 40);
}
on_both_backends!(a_wrong_total_num_is_detected_and_retires_nothing);

async fn a_small_page_limit_walks_more_pages(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 25)).await;
    let options = SyncOptions {
        page_limit: 10,
        ..SyncOptions::default()
    };
    let report = app.sync_with(&app.all_granted_scopes(), options).await;
    assert_eq!((report.n_pages, report.counts.n_fetched), (3, 25));
    let limits: Vec<Option<i64>> = app
        .sim
        .request_log()
        .iter()
        .map(|r| r.limit.map(i64::from))
        .collect();
    assert!(limits.iter().all(|l| *l == Some(10)), "{limits:?}");
}
on_both_backends!(a_small_page_limit_walks_more_pages);

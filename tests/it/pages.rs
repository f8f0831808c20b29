//! Page edge cases of the ListRegistry walk.

use hss_sync::sim::{Fault, Mutation};
use hss_sync::sync::{RunStatus, SyncOptions};

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

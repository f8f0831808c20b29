//! The production client against a misbehaving API: auth modes, token refresh, discovery,
//! retries, Retry-After, the rate limiter, forbidden projects and pagination drift.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hss_sync::api::{Auth, ClientSettings, IamPassword, IamTokens, RetryPolicy, Transport};
use hss_sync::config::{Overrides, RawConfig, SyncConfig};
use hss_sync::signer::Credentials;
use hss_sync::sim::{Fault, Mutation, SimConfig, SimIamUser};
use hss_sync::sync::{scopes, RunStatus, SyncOptions, ALL_GRANTED_EPS};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    client_with, estate, test_settings, Backend, TestApp, ACCESS_KEY, SECRET_KEY,
};

fn iam_user() -> SimIamUser {
    SimIamUser {
        domain: "acme".to_owned(),
        user: "hss-reader".to_owned(),
        password: "iam-password-that-must-not-leak".to_owned(),
    }
}

fn iam_auth(app: &TestApp, password: &str) -> (Auth, Arc<IamTokens>) {
    let tokens = Arc::new(IamTokens::new(
        Transport::new(&test_settings()).unwrap(),
        url::Url::parse(&app.endpoint()).unwrap(),
        IamPassword {
            domain: "acme".to_owned(),
            user: "hss-reader".to_owned(),
            password: SecretString::from(password.to_owned()),
        },
    ));
    (Auth::Iam(tokens.clone()), tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_credentials_are_signed_with_their_security_token() {
    let mut app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 30)).await;
    let credentials = Credentials::new(ACCESS_KEY, SECRET_KEY)
        .unwrap()
        .with_security_token("session-token-xyz");
    app.client = client_with(app.address, Auth::AkSk(credentials), &test_settings());

    let report = app.sync(&app.all_granted_scopes()).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert!(app.sim.request_log().iter().all(|r| r.had_valid_signature));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_token_is_sent_as_x_auth_token() {
    let config = SimConfig {
        accepted_tokens: vec!["given-token-123".to_owned()],
        ..estate(2, 0, 20)
    };
    let mut app = TestApp::spawn(Backend::Sqlite, config).await;
    app.client = client_with(
        app.address,
        Auth::Token(SecretString::from("given-token-123")),
        &test_settings(),
    );

    let report = app.sync(&app.all_granted_scopes()).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert!(app
        .sim
        .request_log()
        .iter()
        .filter(|r| r.api == "ListRegistry")
        .all(|r| r.auth == "token"));
    app.client = client_with(
        app.address,
        Auth::Token(SecretString::from("not-a-token")),
        &test_settings(),
    );
    let refused = app.sync(&app.all_granted_scopes()).await;
    assert_eq!(refused.status, RunStatus::Failed);
    assert!(refused.scopes[0]
        .error
        .as_deref()
        .unwrap()
        .contains("APIG.0301"));
}

async fn iam_password_login_caches_one_token_per_project_and_refreshes_it(backend: Backend) {
    let config = SimConfig {
        iam_user: Some(iam_user()),
        ..estate(2, 0, 20)
    };
    let mut app = TestApp::spawn(backend, config).await;
    let (auth, tokens) = iam_auth(&app, "iam-password-that-must-not-leak");
    app.client = client_with(app.address, auth, &test_settings());
    let scopes = app.all_granted_scopes();

    let first = app.sync(&scopes).await;
    let second = app.sync(&scopes).await;
    assert_eq!(
        (first.status, second.status),
        (RunStatus::Succeeded, RunStatus::Succeeded)
    );
    assert_eq!(
        app.sim.tokens_issued(),
        2,
        "one project-scoped token per project, reused"
    );
    assert_eq!(tokens.n_issued(), 2);

    // The server expires every token: the client is told "token must be updated" and fetches again.
    app.sim.expire_tokens();
    let third = app.sync(&scopes).await;
    assert_eq!(third.status, RunStatus::Succeeded, "{third:?}");
    assert_eq!(app.sim.tokens_issued(), 4);
    assert_eq!(
        third.n_requests,
        2 + 2,
        "one refused request per project, then the retry"
    );

    // A short-lived token is refreshed before it expires, without a refused request.
    app.sim.set_token_ttl(Duration::from_secs(2));
    app.sim.expire_tokens();
    app.sync(&scopes).await;
    let issued = app.sim.tokens_issued();
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let fourth = app.sync(&scopes).await;
    assert_eq!(fourth.status, RunStatus::Succeeded);
    assert_eq!(
        app.sim.tokens_issued(),
        issued + 2,
        "refreshed in the last quarter of its life"
    );
    assert_eq!(fourth.n_requests, 2, "no request was refused");
}
crate::on_both_backends!(iam_password_login_caches_one_token_per_project_and_refreshes_it);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_iam_password_fails_each_scope_with_iams_message_and_no_secret() {
    let config = SimConfig {
        iam_user: Some(iam_user()),
        ..estate(1, 0, 5)
    };
    let mut app = TestApp::spawn(Backend::Sqlite, config).await;
    let (auth, _) = iam_auth(&app, "wrong-password-value");
    app.client = client_with(app.address, auth, &test_settings());

    let report = app.sync(&app.all_granted_scopes()).await;

    assert_eq!(report.status, RunStatus::Failed);
    let error = report.scopes[0].error.as_deref().unwrap();
    assert!(
        error.contains("HTTP 401") && error.contains("password is wrong"),
        "{error}"
    );
    assert!(!error.contains("wrong-password-value"));
    let creates = app
        .sim
        .request_log()
        .iter()
        .filter(|r| r.api == "CreateToken")
        .count();
    assert_eq!(creates, 1, "a refused password is not retried");
}

fn discovery_config(app: &TestApp, overrides: Overrides) -> SyncConfig {
    let endpoint = app.endpoint();
    let overrides = Overrides {
        discover: Some(true),
        endpoint: Some(endpoint.clone()),
        iam_endpoint: Some(endpoint.clone()),
        eps_endpoint: Some(endpoint),
        max_requests_per_minute: Some(0),
        retry_base_delay_ms: Some(10),
        ..overrides
    };
    let keys = [("CLOUD_SDK_AK", ACCESS_KEY), ("CLOUD_SDK_SK", SECRET_KEY)];
    SyncConfig::build(overrides, RawConfig::default(), |name| {
        keys.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

async fn discovery_covers_every_region_project_and_enterprise_project(backend: Backend) {
    // Arrange: 3 projects over two regions (two main projects and one sub-project), 2 extra EPs.
    let config = SimConfig {
        regions: vec!["ap-southeast-1".to_owned()],
        include_disabled_project: true,
        ..estate(3, 2, 12)
    };
    let app = TestApp::spawn(backend, config).await;
    let config = discovery_config(&app, Overrides::default());

    // Act
    let prepared = scopes::prepare(&config, |_| None).await.unwrap();
    let report = hss_sync::sync::run_once(
        &prepared.clients,
        &app.store,
        &prepared.scopes,
        &SyncOptions::default(),
    )
    .await
    .unwrap();

    // Assert: one scope per (project, enterprise project), each in its project's region.
    let domain_lookups = app
        .sim
        .request_log()
        .iter()
        .filter(|r| r.api == "ListAuthDomains")
        .count();
    assert_eq!(
        domain_lookups, 1,
        "the account id is asked of IAM once, for X-Domain-Id"
    );
    assert_eq!(prepared.scopes.len(), 3 * 3);
    for scope in &prepared.scopes {
        assert_eq!(
            Some(scope.region.clone()),
            app.sim.project_region(&scope.project_id)
        );
        assert_ne!(scope.enterprise_project_id, ALL_GRANTED_EPS);
    }
    let mut regions: Vec<&str> = prepared.scopes.iter().map(|s| s.region.as_str()).collect();
    regions.dedup();
    assert!(regions.contains(&"ap-southeast-1") && regions.contains(&"cn-north-4"));
    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(app.live_ids().await, app.sim_ids());
    for row in app.registries().await {
        assert!(
            row.enterprise_project_id.is_some(),
            "each registry's enterprise project is known"
        );
    }
}
crate::on_both_backends!(discovery_covers_every_region_project_and_enterprise_project);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enterprise_projects_discovery_falls_back_to_all_granted_eps() {
    let config = SimConfig {
        eps_enabled: false,
        ..estate(2, 1, 6)
    };
    let app = TestApp::spawn(Backend::Sqlite, config).await;
    let config = discovery_config(&app, Overrides::default());

    let prepared = scopes::prepare(&config, |_| None).await.unwrap();

    assert_eq!(prepared.scopes.len(), 2);
    assert!(prepared
        .scopes
        .iter()
        .all(|s| s.enterprise_project_id == ALL_GRANTED_EPS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_ids_and_discovery_combine_without_double_counting() {
    let app = TestApp::spawn(Backend::Sqlite, estate(2, 1, 6)).await;
    let first = app.sim.project_ids()[0].clone();
    let config = discovery_config(
        &app,
        Overrides {
            region: Some("cn-north-4".to_owned()),
            project_ids: vec![first.clone()],
            ..Overrides::default()
        },
    );

    let prepared = scopes::prepare(&config, |_| None).await.unwrap();

    let of_first: Vec<_> = prepared
        .scopes
        .iter()
        .filter(|s| s.project_id == first)
        .collect();
    assert_eq!(of_first.len(), 1, "the explicit scope wins: {of_first:?}");
    assert_eq!(of_first[0].enterprise_project_id, ALL_GRANTED_EPS);
    assert_eq!(prepared.scopes.len(), 1 + 2);
}

async fn the_sync_converges_to_the_exact_estate_under_combined_faults(backend: Backend) {
    let mut app = TestApp::spawn(backend, estate(3, 1, 60)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    app.sim.mutate(&Mutation {
        seed: 21,
        n_update: 15,
        n_delete: 9,
        n_add: 12,
    });
    app.sim.add_fault(Fault::Latency {
        min: Duration::from_millis(1),
        max: Duration::from_millis(15),
    });
    app.sim.add_fault(Fault::ThrottleEveryNth {
        n: 4,
        retry_after_seconds: None,
    });
    app.sim.add_fault(Fault::ServerError {
        status: 503,
        every_nth: 5,
    });
    app.sim.add_fault(Fault::MalformedJson {
        project_id: None,
        offset: Some(50),
        times: Some(2),
    });
    app.sim.add_fault(Fault::Hang {
        project_id: None,
        offset: Some(100),
        times: Some(1),
    });
    let settings = ClientSettings {
        request_timeout: Duration::from_millis(700),
        retry: RetryPolicy {
            max_retries: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        },
        ..ClientSettings::default()
    };
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &settings,
    );

    let options = SyncOptions {
        page_limit: 50,
        // Every update is a version here, latest_sync_time alone included.
        history_ignore_fields: Vec::new(),
        ..SyncOptions::default()
    };
    let report = app.sync_with(&scopes, options).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert!(
        report.n_retries >= 4,
        "faults were met and retried: {report:?}"
    );
    assert!(report.n_throttled >= 1);
    assert_eq!(app.live_ids().await, app.sim_ids());
    assert_eq!(report.counts.n_deleted, 9);
    assert_eq!(report.counts.n_updated, 15);
    assert_eq!(report.counts.n_inserted, 12);
}
crate::on_both_backends!(the_sync_converges_to_the_exact_estate_under_combined_faults);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_over_a_shorter_backoff() {
    let app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 30)).await;
    app.sim.add_fault(Fault::Quota {
        max_requests: 1,
        window: Duration::from_millis(1500),
        retry_after: true,
    });
    let options = SyncOptions {
        page_limit: 20,
        ..SyncOptions::default()
    };

    let started = Instant::now();
    let report = app.sync_with(&app.all_granted_scopes(), options).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(report.n_throttled, 1);
    let log = app.sim.request_log();
    let throttled = log
        .iter()
        .find(|r| r.status == 429)
        .expect("one throttled request");
    assert_eq!(
        throttled.retry_after,
        Some(2),
        "1.5 s left in the window, rounded up"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_keeps_a_quota_without_429_storms() {
    // Arrange: 10 requests per 2 s on the server, 12 pages to fetch.
    let mut app = TestApp::spawn(Backend::Sqlite, estate(2, 0, 60)).await;
    app.sim.add_fault(Fault::Quota {
        max_requests: 10,
        window: Duration::from_secs(2),
        retry_after: true,
    });
    let scopes = app.all_granted_scopes();
    let options = || SyncOptions {
        page_limit: 10,
        ..SyncOptions::default()
    };

    // Act: with the limiter at the server's rate (300 a minute).
    let paced = ClientSettings {
        max_requests_per_minute: 300,
        ..test_settings()
    };
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &paced,
    );
    let limited = app.sync_with(&scopes, options()).await;

    // Assert: no request refused.
    assert_eq!(limited.status, RunStatus::Succeeded, "{limited:?}");
    assert_eq!(limited.n_throttled, 0, "{limited:?}");
    assert_eq!(limited.n_requests, 12, "6 pages of 10 for each project");

    // Without it, the same sync runs into the quota (so the assertion above can fail).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let unpaced = ClientSettings {
        retry: RetryPolicy {
            max_retries: 10,
            ..test_settings().retry
        },
        ..test_settings()
    };
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &unpaced,
    );
    let unlimited = app.sync_with(&scopes, options()).await;
    assert!(unlimited.n_throttled > 0, "{unlimited:?}");
}

async fn a_forbidden_project_keeps_its_rows_and_makes_the_run_partial(backend: Backend) {
    let app = TestApp::spawn(backend, estate(2, 0, 25)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    let forbidden = app.sim.project_ids()[1].clone();
    app.sim.mutate(&Mutation {
        seed: 2,
        n_delete: 10,
        ..Default::default()
    });
    app.sim.add_fault(Fault::Forbidden {
        project_id: forbidden.clone(),
    });

    let report = app.sync(&scopes).await;

    assert_eq!(report.status, RunStatus::Partial);
    assert_eq!(report.status.exit_code(), 3);
    let failed = report
        .scopes
        .iter()
        .find(|s| s.scope.project_id == forbidden)
        .unwrap();
    let error = failed.error.as_deref().unwrap();
    assert!(
        error.contains("HTTP 403") && error.contains("HSS.0013"),
        "{error}"
    );
    assert_eq!(failed.n_requests, 1, "a permission error is not retried");
    let rows = app.registries().await;
    let of_forbidden: Vec<_> = rows.iter().filter(|r| r.project_id == forbidden).collect();
    assert_eq!(of_forbidden.len(), 25);
    assert!(of_forbidden
        .iter()
        .all(|r| r.deleted_at.is_none() && r.version == 1));
}
crate::on_both_backends!(a_forbidden_project_keeps_its_rows_and_makes_the_run_partial);

async fn drift_during_a_walk_is_detected_and_the_scope_walked_again(backend: Backend) {
    let app = TestApp::spawn(backend, estate(1, 0, 35)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    app.sim.add_fault(Fault::DriftDuringWalk {
        project_id: None,
        after_requests: 1,
        n_insert: 3,
        n_delete: 2,
        times: Some(1),
    });
    let options = || SyncOptions {
        page_limit: 10,
        ..SyncOptions::default()
    };

    let report = app.sync_with(&scopes, options()).await;

    assert_eq!(report.status, RunStatus::Succeeded, "{report:?}");
    assert_eq!(
        report.scopes[0].n_walks, 3,
        "the drifting walk, the re-walk, and the walk that confirms the two deletions"
    );
    assert_eq!(app.live_ids().await, app.sim_ids());
    assert_eq!((report.counts.n_inserted, report.counts.n_deleted), (3, 2));

    // A list that never settles fails the scope and retires nothing.
    app.sim.clear_faults();
    app.sim.add_fault(Fault::DriftDuringWalk {
        project_id: None,
        after_requests: 1,
        n_insert: 2,
        n_delete: 1,
        times: None,
    });
    let before = app.live_ids().await;
    let unsettled = app.sync_with(&scopes, options()).await;
    assert_eq!(unsettled.status, RunStatus::Failed);
    assert_eq!(
        unsettled.scopes[0].n_walks, 3,
        "the first walk and two re-walks"
    );
    assert!(unsettled.scopes[0]
        .error
        .as_deref()
        .unwrap()
        .contains("did not add up"));
    assert_eq!(unsettled.counts.n_deleted, 0);
    let after = app.live_ids().await;
    assert!(
        before.iter().all(|id| after.contains(id)),
        "nothing retired"
    );
}
crate::on_both_backends!(drift_during_a_walk_is_detected_and_the_scope_walked_again);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_scope_does_not_hold_back_the_others() {
    let app = TestApp::spawn(Backend::Sqlite, estate(3, 0, 10)).await;
    let slow = app.sim.project_ids()[0].clone();
    app.sim.add_fault(Fault::Hang {
        project_id: Some(slow.clone()),
        offset: None,
        times: None,
    });
    let settings = ClientSettings {
        request_timeout: Duration::from_millis(800),
        retry: RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(10),
        },
        ..ClientSettings::default()
    };
    let mut app = app;
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &settings,
    );

    let started = Instant::now();
    let report = app
        .sync_with(
            &app.all_granted_scopes(),
            SyncOptions {
                cancel: CancellationToken::new(),
                ..SyncOptions::default()
            },
        )
        .await;

    assert_eq!(report.status, RunStatus::Partial);
    let failed = report
        .scopes
        .iter()
        .find(|s| s.scope.project_id == slow)
        .unwrap();
    assert!(
        failed.error.as_deref().unwrap().contains("timed out"),
        "{failed:?}"
    );
    assert!(report
        .scopes
        .iter()
        .filter(|s| s.scope.project_id != slow)
        .all(|s| s.status == "succeeded"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_with_another_accounts_domain_id_is_refused_with_iams_message() {
    let app = TestApp::spawn(Backend::Sqlite, estate(1, 0, 3)).await;
    let config = discovery_config(
        &app,
        Overrides {
            domain_id: Some("0000000000000000000000000000dead".to_owned()),
            ..Overrides::default()
        },
    );

    let error = hss_sync::sync::run_configured(
        &config,
        &app.store,
        hss_sync::sync::Trigger::Cli,
        None,
        std::sync::Arc::new(hss_sync::sync::NoProgress),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    let error = hss_sync::errors::chain(&error);

    assert!(
        error.contains("project discovery failed") && error.contains("HTTP 403"),
        "{error}"
    );
    assert!(error.contains("not your account"), "{error}");
    let runs = app.runs().await;
    assert_eq!(runs.len(), 1, "the failed run is in the audit trail");
    assert_eq!(runs[0].status, "failed");
    assert!(runs[0]
        .totals
        .error
        .as_deref()
        .unwrap()
        .contains("HTTP 403"));
}

async fn a_deletion_is_confirmed_by_a_second_walk_before_it_is_recorded(backend: Backend) {
    let mut app = TestApp::spawn(backend, estate(1, 0, 30)).await;
    let scopes = app.all_granted_scopes();
    app.sync(&scopes).await;
    app.sim.mutate(&Mutation {
        seed: 6,
        n_delete: 1,
        ..Default::default()
    });

    let confirmed = app.sync(&scopes).await;
    let unchanged = app.sync(&scopes).await;

    assert_eq!(
        (confirmed.counts.n_deleted, confirmed.scopes[0].n_walks),
        (1, 2)
    );
    assert_eq!(
        unchanged.scopes[0].n_walks, 1,
        "nothing missing, no second walk"
    );
    assert_eq!(app.live_ids().await, app.sim_ids());

    // When the confirming walk fails, nothing is retired and the scope fails.
    app.sim.mutate(&Mutation {
        seed: 7,
        n_delete: 1,
        ..Default::default()
    });
    app.sim.add_fault(Fault::ThrottleEveryNth {
        n: 2,
        retry_after_seconds: None,
    });
    let no_retries = ClientSettings {
        retry: RetryPolicy::none(),
        ..test_settings()
    };
    app.client = client_with(
        app.address,
        Auth::AkSk(Credentials::new(ACCESS_KEY, SECRET_KEY).unwrap()),
        &no_retries,
    );
    let before = app.live_ids().await;
    let unconfirmed = app.sync(&scopes).await;
    assert_eq!(unconfirmed.status, RunStatus::Failed, "{unconfirmed:?}");
    assert!(unconfirmed.scopes[0]
        .error
        .as_deref()
        .unwrap()
        .contains("confirms deletions"));
    assert_eq!(unconfirmed.counts.n_deleted, 0);
    assert_eq!(app.live_ids().await, before);
}
crate::on_both_backends!(a_deletion_is_confirmed_by_a_second_walk_before_it_is_recorded);

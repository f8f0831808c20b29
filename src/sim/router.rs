//! The simulator's axum router: which handler answers which Huawei route, the `/sim/` admin routes,
//! and APIG's 404 for everything else. The handlers live in the module of their service.

use axum::routing::{get, post};
use axum::Router;

use super::http::{api_not_found, ensure_request_id_header};
use super::{admin, eps, iam, list_registry, Simulator};

/// Build the simulator's router; see the module docs for what each route does.
pub fn router(simulator: Simulator) -> Router {
    let admin = Router::new()
        .route("/sim/estate", get(admin::admin_estate))
        .route("/sim/mutate", post(admin::admin_mutate))
        .route(
            "/sim/faults",
            get(admin::admin_faults).post(admin::admin_add_fault),
        )
        .route("/sim/faults/clear", post(admin::admin_clear_faults))
        .route("/sim/requests", get(admin::admin_requests))
        .route_layer(axum::middleware::from_fn_with_state(
            simulator.clone(),
            admin::log_admin_request,
        ));
    Router::new()
        .route(
            list_registry::LIST_REGISTRY_ROUTE,
            get(list_registry::list_registry).fallback(api_not_found),
        )
        .route(
            iam::CREATE_TOKEN_ROUTE,
            post(iam::create_token).fallback(api_not_found),
        )
        .route(
            iam::LIST_PROJECTS_ROUTE,
            get(iam::list_projects).fallback(api_not_found),
        )
        .route(
            iam::LIST_AUTH_DOMAINS_ROUTE,
            get(iam::list_auth_domains).fallback(api_not_found),
        )
        .route(
            eps::LIST_ENTERPRISE_PROJECTS_ROUTE,
            get(eps::list_enterprise_projects).fallback(api_not_found),
        )
        .merge(admin)
        .fallback(api_not_found)
        .layer(axum::middleware::map_response(ensure_request_id_header))
        .with_state(simulator)
}

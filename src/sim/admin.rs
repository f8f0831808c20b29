//! The unauthenticated `/sim/` admin routes, for humans with curl and for tests: the estate, its
//! changes, faults and the request log. They are not part of the Huawei API surface; they are logged
//! with `api = "Admin"` and never counted as ListRegistry requests.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::faults::{self, Fault};
use super::{EstateChange, Mutation, RequestRecord, Simulator, API_ADMIN};

/// `GET /sim/estate`: the account and the size of every scope.
pub(crate) async fn admin_estate(State(simulator): State<Simulator>) -> Response {
    let state = simulator.lock();
    let projects: Vec<Value> = state
        .estate
        .projects
        .iter()
        .map(|project| {
            let scopes: Vec<Value> = project
                .scopes
                .iter()
                .map(|scope| {
                    json!({
                        "enterprise_project_id": scope.enterprise_project_id,
                        "registry_count": scope.registries.len(),
                    })
                })
                .collect();
            json!({
                "project_id": project.project_id,
                "name": project.name,
                "region": project.region,
                "registry_count": project.scopes.iter().map(|s| s.registries.len()).sum::<usize>(),
                "scopes": scopes,
            })
        })
        .collect();
    let body = json!({
        "region": state.config.region,
        "regions": state.estate.regions,
        "domain_id": state.account.domain_id,
        "registry_count": state.estate.registry_count(),
        "request_count": state.request_count,
        "n_faults": state.faults.len(),
        "enterprise_project_ids": state.estate.enterprise_project_ids,
        "projects": projects,
    });
    Json(body).into_response()
}

/// `POST /sim/mutate`: a [`Mutation`], or one [`EstateChange`] when the body has a `kind`.
pub(crate) async fn admin_mutate(State(simulator): State<Simulator>, body: Bytes) -> Response {
    let bad_request = |error: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("invalid mutation: {error}")})),
        )
            .into_response()
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => return bad_request(error.to_string()),
    };
    if value.get("kind").is_none() {
        return match serde_json::from_value::<Mutation>(value) {
            Ok(mutation) => Json(simulator.mutate(&mutation)).into_response(),
            Err(error) => bad_request(error.to_string()),
        };
    }
    let change = match serde_json::from_value::<EstateChange>(value) {
        Ok(change) => change,
        Err(error) => return bad_request(error.to_string()),
    };
    match simulator.apply_change(&change) {
        Ok(id) => Json(json!({"id": id})).into_response(),
        Err(error) => bad_request(error.to_string()),
    }
}

/// `GET /sim/faults`: the installed faults in the order they apply, as JSON that `POST /sim/faults`
/// takes back, and the documentation of every fault kind.
pub(crate) async fn admin_faults(State(simulator): State<Simulator>) -> Response {
    Json(json!({
        "installed": simulator.faults(),
        "kinds": faults::FAULT_KINDS,
    }))
    .into_response()
}

/// `POST /sim/faults`: install one [`Fault`] and answer 201 with it as installed (defaults filled in),
/// or 400 naming the unknown kind, the unknown or missing field, or the bad value.
pub(crate) async fn admin_add_fault(State(simulator): State<Simulator>, body: Bytes) -> Response {
    let bad_request = |error: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": format!("invalid fault: {error}")})),
        )
            .into_response()
    };
    let fault = match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => fault,
        Err(error) => return bad_request(error.to_string()),
    };
    if fault.never_fires() {
        return bad_request(
            "it can never fire (times 0, or a period of 0), so it was not installed".to_string(),
        );
    }
    tracing::info!(?fault, "simulated hss fault added");
    simulator.add_fault(fault.clone());
    (StatusCode::CREATED, Json(fault)).into_response()
}

/// Log every `/sim/` request with `api = "Admin"` after it was answered.
pub(crate) async fn log_admin_request(
    State(simulator): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let received = RequestRecord::received(API_ADMIN, "none", request.method(), request.uri());
    let response = next.run(request).await;
    let record = RequestRecord {
        status: response.status().as_u16(),
        ..received
    };
    simulator.lock().log_request(record);
    response
}

/// `POST /sim/faults/clear`: remove every fault and release hung requests.
pub(crate) async fn admin_clear_faults(State(simulator): State<Simulator>) -> Response {
    simulator.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /sim/requests`: the request log, oldest first.
pub(crate) async fn admin_requests(State(simulator): State<Simulator>) -> Response {
    Json(simulator.request_log()).into_response()
}

#[cfg(test)]
mod tests;

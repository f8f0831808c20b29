//! The simulated EPS: `GET /v1.0/enterprise-projects` (ListEnterpriseProject), its paging, filters
//! and sort orders, and `EPS.0004` for an account without enterprise projects (docs/huawei-api.md §6).

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::apig_auth_error;
use super::global::{serve_global, GlobalRequest};
use super::http::{decode_query_pairs, first_value, huawei_error, json_response};
use super::{Simulator, State as SimState, API_LIST_ENTERPRISE_PROJECTS};

/// Path of EPS ListEnterpriseProject.
pub const LIST_ENTERPRISE_PROJECTS_ROUTE: &str = "/v1.0/enterprise-projects";

/// `limit` range of EPS ListEnterpriseProject; also its default (the maximum).
pub const EPS_LIMIT_RANGE: std::ops::RangeInclusive<i64> = 1..=1000;

/// `GET /v1.0/enterprise-projects`: EPS ListEnterpriseProject.
pub(crate) async fn list_enterprise_projects(
    State(simulator): State<Simulator>,
    request: GlobalRequest,
) -> Response {
    serve_global(
        &simulator,
        API_LIST_ENTERPRISE_PROJECTS,
        request,
        apig_auth_error,
        |state, request, request_id| {
            if !state.config.eps_enabled {
                return huawei_error(
                    StatusCode::FORBIDDEN,
                    "EPS.0004",
                    "Enterprise project not enabled or permission denied",
                    request_id,
                );
            }
            answer_list_enterprise_projects(state, &request.uri, request_id)
        },
    )
    .await
}

/// ListEnterpriseProject over the account's enterprise projects.
fn answer_list_enterprise_projects(state: &SimState, uri: &Uri, request_id: &str) -> Response {
    let pairs = decode_query_pairs(uri.query().unwrap_or(""));
    let get = |name: &str| first_value(&pairs, name);
    let error = |code: &str, message: &str| {
        huawei_error(StatusCode::BAD_REQUEST, code, message, request_id)
    };
    let offset = match get("offset").map(str::parse::<i64>) {
        None => 0,
        Some(Ok(offset)) if offset >= 0 => offset as usize,
        Some(_) => return error("EPS.0018", "Invalid offset."),
    };
    let limit = match get("limit").map(str::parse::<i64>) {
        None => *EPS_LIMIT_RANGE.end() as usize,
        Some(Ok(limit)) if EPS_LIMIT_RANGE.contains(&limit) => limit as usize,
        Some(_) => return error("EPS.0017", "Invalid limit."),
    };
    let status = match get("status") {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    let descending = match get("sort_dir") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    let by_name = match get("sort_key") {
        None | Some("created_at") => false,
        Some("name") => true,
        Some(_) => return error("EPS.0002", "Bad request."),
    };
    if get("type").is_some_and(|t| t != "prod" && t != "poc") {
        return error("EPS.0002", "Bad request.");
    }
    let mut matching: Vec<_> = state
        .account
        .enterprise_projects(&state.estate)
        .into_iter()
        .filter(|ep| get("id").is_none_or(|id| ep.id == id))
        .filter(|ep| get("name").is_none_or(|name| ep.name.contains(name)))
        .filter(|ep| status.is_none_or(|s| ep.status == s))
        .filter(|_| get("type").is_none_or(|t| t == "prod"))
        .collect();
    if by_name {
        matching.sort_by(|a, b| a.name.cmp(&b.name));
    } else {
        matching.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    }
    if descending {
        matching.reverse();
    }
    let total_count = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|ep| {
            json!({
                "id": ep.id,
                "name": ep.name,
                "description": if ep.id == "0" { "Default enterprise project" } else { "" },
                "status": ep.status,
                "created_at": ep.created_at,
                "updated_at": ep.created_at,
                "type": "prod",
                "delete_flag": false,
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        request_id,
        &json!({"enterprise_projects": page, "total_count": total_count}),
    )
}

#[cfg(test)]
mod tests;

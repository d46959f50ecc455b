//! The two-person rule over the API: ask to advance into a protected
//! phase, list the requests, approve (the advance follows at once) or deny.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{ErrorBody, done_response, parse_body, parse_id};
use super::auth::Caller;
use super::error::ApiError;
use super::views::RolloutView;
use crate::store::ApprovalRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rollouts/{id}/approvals", get(list).post(request))
        .route(
            "/api/v1/rollouts/{id}/approvals/{approval}/approve",
            post(approve),
        )
        .route(
            "/api/v1/rollouts/{id}/approvals/{approval}/deny",
            post(deny),
        )
}

/// A request to advance into a protected phase.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub reason: Option<String>,
    /// Also promote past failing bake time or gates (needs a reason).
    #[serde(default)]
    pub force: bool,
}

/// An approval or a denial.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApprovalList {
    /// Newest first.
    pub approvals: Vec<ApprovalRow>,
}

#[utoipa::path(get, path = "/api/v1/rollouts/{id}/approvals", params(("id" = i64, Path)),
    responses((status = 200, body = ApprovalList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ApprovalList>, ApiError> {
    Ok(axum::Json(ApprovalList {
        approvals: app.service.approvals(parse_id(&id)?).await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/rollouts/{id}/approvals", params(("id" = i64, Path)),
    request_body = ApprovalRequest,
    responses((status = 201, body = ApprovalRow), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn request(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let req: ApprovalRequest = parse_body(&b)?;
    let who = caller.principal(None)?;
    let row = app
        .service
        .request_approval(&who, id, req.reason, req.force)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(row)).into_response())
}

async fn decide(
    app: AppState,
    caller: Caller,
    id: String,
    approval: String,
    b: Bytes,
    approve: bool,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let approval: i64 = approval
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{approval:?} is not a request number")))?;
    let d: Decision = parse_body(&b)?;
    let who = caller.principal(None)?;
    let service = app.service.clone();
    // Detached: an approval's advance writes flags; a client hanging up
    // must not cut it short.
    let done =
        tokio::spawn(async move { service.decide(&who, id, approval, approve, d.reason).await })
            .await
            .map_err(|e| ApiError::Internal(format!("a decision's task failed: {e}")))??;
    match done {
        Some(done) => Ok(done_response(&app, done, StatusCode::OK)),
        None => Ok(axum::Json(ApprovalList {
            approvals: app.service.approvals(id).await?,
        })
        .into_response()),
    }
}

#[utoipa::path(post, path = "/api/v1/rollouts/{id}/approvals/{approval}/approve",
    params(("id" = i64, Path), ("approval" = i64, Path)), request_body = Decision,
    responses((status = 200, description = "approved and advanced", body = RolloutView), (status = 202, body = RolloutView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, approval)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiError> {
    decide(app, caller, id, approval, b, true).await
}

#[utoipa::path(post, path = "/api/v1/rollouts/{id}/approvals/{approval}/deny",
    params(("id" = i64, Path), ("approval" = i64, Path)), request_body = Decision,
    responses((status = 200, body = ApprovalList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deny(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, approval)): Path<(String, String)>,
    b: Bytes,
) -> Result<Response, ApiError> {
    decide(app, caller, id, approval, b, false).await
}

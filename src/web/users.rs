//! Users, for admins: list, add (with a password, in the body: never a
//! URL or a flag), change the role of, remove.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::domain::user::Role;
use crate::store::UserRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list).post(add))
        .route("/api/v1/users/{name}", put(change).delete(remove))
        .route(
            "/api/v1/sessions/{actor}",
            axum::routing::delete(end_sessions),
        )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    pub users: Vec<UserRow>,
}

/// A new user who signs in with a password.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    /// At least 12 characters; only its argon2id hash is stored.
    pub password: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// viewer, operator or admin.
    pub role: String,
}

#[utoipa::path(get, path = "/api/v1/users",
    responses((status = 200, body = UserList), (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody)))]
pub async fn list(State(app): State<AppState>) -> Result<axum::Json<UserList>, ApiError> {
    Ok(axum::Json(UserList {
        users: app.service.users().await?,
    }))
}

#[utoipa::path(post, path = "/api/v1/users", request_body = NewUser,
    responses((status = 201, body = UserRow), (status = 400, body = super::api::ErrorBody),
        (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody), (status = 409, body = super::api::ErrorBody)))]
pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewUser = super::api::parse_body(&body)?;
    let role = Role::parse(&req.role).map_err(ApiError::BadRequest)?;
    let who = caller.principal(None)?;
    let row = app
        .service
        .add_user(&who, req.name.trim(), role, req.password)
        .await?;
    Ok((StatusCode::CREATED, axum::Json(row)).into_response())
}

#[utoipa::path(put, path = "/api/v1/users/{name}", request_body = UserChange,
    params(("name" = String, Path, description = "The user's name")),
    responses((status = 204), (status = 400, body = super::api::ErrorBody), (status = 401, body = super::api::ErrorBody),
        (status = 403, body = super::api::ErrorBody), (status = 404, body = super::api::ErrorBody), (status = 409, body = super::api::ErrorBody)))]
pub async fn change(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let req: UserChange = super::api::parse_body(&body)?;
    let role = Role::parse(&req.role).map_err(ApiError::BadRequest)?;
    let who = caller.principal(None)?;
    app.service.set_user_role(&who, &name, role).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{name}",
    params(("name" = String, Path, description = "The user's name")),
    responses((status = 204), (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody),
        (status = 404, body = super::api::ErrorBody), (status = 409, body = super::api::ErrorBody)))]
pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = caller.principal(None)?;
    app.service.remove_user(&who, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    /// How many sessions ended.
    pub ended: u64,
}

#[utoipa::path(delete, path = "/api/v1/sessions/{actor}",
    params(("actor" = String, Path, description = "Whose sessions: user:NAME or oidc:NAME")),
    responses((status = 200, body = SessionsEnded), (status = 400, body = super::api::ErrorBody),
        (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody)))]
pub async fn end_sessions(
    State(app): State<AppState>,
    caller: Caller,
    Path(actor): Path<String>,
) -> Result<axum::Json<SessionsEnded>, ApiError> {
    let who = caller.principal(None)?;
    let ended = app.service.end_sessions(&who, &actor).await?;
    Ok(axum::Json(SessionsEnded { ended }))
}

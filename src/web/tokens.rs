//! API tokens for the CLI and automation, for admins: made (the secret is
//! in the answer once, never again), listed with their last use, revoked.
//! `GET /api/v1/me` tells any caller who they are.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use crate::domain::user::Role;
use crate::store::TokenRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{name}", delete(revoke))
}

/// Who the caller is.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    /// The audit actor of this caller's actions ("user:ada", "token:ci"),
    /// or null while sign-in is off.
    pub actor: Option<String>,
    pub role: Role,
    /// Whether sign-in is on.
    pub sign_in: bool,
}

#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = super::api::ErrorBody)))]
pub async fn me(State(app): State<AppState>, caller: Caller) -> axum::Json<Me> {
    axum::Json(Me {
        actor: caller.shown_name(),
        role: caller.role,
        sign_in: app.auth.mode != super::auth::AuthMode::None,
    })
}

/// A token to make.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    /// 2–64 characters: lower-case letters, digits, '.', '_', '-'.
    pub name: String,
    /// viewer, operator or admin.
    pub role: String,
    /// When it stops working (RFC 3339); none: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// Or: how long it works, as a plan duration ("30d", "12h").
    pub expires_in: Option<String>,
}

/// A token just made: `secret` is shown here once and never again.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[schema(value_type = Object)]
    pub token: serde_json::Value,
    pub secret: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenRow>,
}

/// The expiry a request asks for.
pub fn expiry(req: &NewToken, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match (&req.expires_at, &req.expires_in) {
        (Some(_), Some(_)) => Err(ApiError::BadRequest(
            "give \"expires_at\" or \"expires_in\", not both".into(),
        )),
        (Some(at), None) => Ok(Some(*at)),
        (None, Some(d)) => {
            let d = crate::plan::parse_any_duration(d)
                .map_err(|e| ApiError::BadRequest(format!("expires_in: {e}")))?;
            let d = chrono::TimeDelta::from_std(d)
                .map_err(|_| ApiError::BadRequest("expires_in is too long".into()))?;
            now.checked_add_signed(d)
                .map(Some)
                .ok_or_else(|| ApiError::BadRequest("expires_in is too long".into()))
        }
        (None, None) => Ok(None),
    }
}

/// Why no token may be made now: with sign-in off nothing would ever check
/// it, and a secret that opens nothing only invites being pasted around.
pub fn tokens_unchecked(app: &AppState) -> Option<&'static str> {
    (app.auth.mode == super::auth::AuthMode::None).then_some(
        "sign-in is off (--auth none), so a token would never be checked; \
         serve with --auth local to use tokens",
    )
}

#[utoipa::path(post, path = "/api/v1/tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = super::api::ErrorBody),
        (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody), (status = 409, body = super::api::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: NewToken = super::api::parse_body(&body)?;
    if let Some(why) = tokens_unchecked(&app) {
        return Err(ApiError::Conflict(why.into()));
    }
    let role = Role::parse(&req.role).map_err(ApiError::BadRequest)?;
    let now = Utc::now();
    let expires_at = expiry(&req, now)?;
    let who = caller.principal(None)?;
    let (row, secret) = app
        .service
        .create_token(&who, &req.name, role, expires_at, now)
        .await?;
    let token = serde_json::to_value(&row).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken { token, secret }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens",
    responses((status = 200, body = TokenList), (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody)))]
pub async fn list(State(app): State<AppState>) -> Result<axum::Json<TokenList>, ApiError> {
    Ok(axum::Json(TokenList {
        tokens: app.service.tokens().await?,
    }))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{name}", params(("name" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 400, body = super::api::ErrorBody),
        (status = 401, body = super::api::ErrorBody), (status = 403, body = super::api::ErrorBody), (status = 404, body = super::api::ErrorBody)))]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::domain::text::check("token name", &name, crate::domain::text::MAX_NAME_BYTES)?;
    let who = caller.principal(None)?;
    app.service.revoke_token(&who, &name, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

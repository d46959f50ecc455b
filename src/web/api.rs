//! The JSON API under `/api/v1`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use super::AppState;
use super::error::ApiError;
use super::views::*;
use crate::audit::VerifyReport;
use crate::plan::{self, Plan};
use crate::rollout::Command;
use crate::rollout::engine::{Ask, Outcome, valid_plan_name};
use crate::store::AuditFilter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rollgate API",
        description = "Staged feature-flag rollouts for AWS Lambda."
    ),
    paths(
        list_plans,
        show_plan,
        validate_plan,
        start_rollout,
        list_rollouts,
        show_rollout,
        advance,
        pause,
        resume,
        rollback,
        list_audit,
        verify_audit,
        export_audit
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;

/// The error shape of every failed request.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// bad_request | not_found | conflict | invalid_plan | write_refused | target_unavailable | internal
    pub code: String,
    pub message: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/plans", get(list_plans))
        .route("/api/v1/plans/validate", post(validate_plan))
        .route("/api/v1/plans/{name}", get(show_plan))
        .route("/api/v1/rollouts", get(list_rollouts).post(start_rollout))
        .route("/api/v1/rollouts/{id}", get(show_rollout))
        .route("/api/v1/rollouts/{id}/advance", post(advance))
        .route("/api/v1/rollouts/{id}/pause", post(pause))
        .route("/api/v1/rollouts/{id}/resume", post(resume))
        .route("/api/v1/rollouts/{id}/rollback", post(rollback))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/audit/export", get(export_audit))
        .fallback(|| async { ApiError::NotFound("no such API endpoint".into()) })
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Parses a JSON body; an empty body means all defaults.
fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid rollout id {id:?}: expected a number")))
}

fn outcome_response(outcome: Outcome, ok: StatusCode) -> Response {
    let status = if outcome.write_pending.is_some() {
        StatusCode::ACCEPTED
    } else {
        ok
    };
    (status, axum::Json(RolloutView::from(&outcome.rollout))).into_response()
}

#[utoipa::path(get, path = "/api/v1/plans", responses((status = 200, body = PlanList)))]
async fn list_plans(State(app): State<AppState>) -> Result<axum::Json<PlanList>, ApiError> {
    let dir = app.engine.plans_dir();
    let files = plan::load_dir(dir).map_err(|e| {
        ApiError::Internal(format!(
            "cannot read plans directory {}: {e}",
            dir.display()
        ))
    })?;
    let plans = files
        .into_iter()
        .map(|f| match Plan::parse(&f.name, &f.text) {
            Ok(p) => PlanSummary {
                valid: true,
                description: p.description.clone(),
                target_function: Some(p.target.function.clone()),
                phases: (0..p.phase_count())
                    .map(|i| p.phase_name(i).to_string())
                    .collect(),
                hash: plan::plan_hash(&f.text),
                errors: vec![],
                name: f.name,
            },
            Err(errors) => PlanSummary {
                valid: false,
                description: None,
                target_function: None,
                phases: vec![],
                hash: plan::plan_hash(&f.text),
                errors: errors
                    .iter()
                    .map(|e| format!("{}:{e}", f.path.display()))
                    .collect(),
                name: f.name,
            },
        })
        .collect();
    Ok(axum::Json(PlanList { plans }))
}

#[utoipa::path(get, path = "/api/v1/plans/{name}",
    params(("name" = String, Path, description = "plan name (file stem)")),
    responses((status = 200, description = "the parsed plan, its hash and text"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn show_plan(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let (plan, text) = app.engine.load_plan(&name)?;
    Ok(axum::Json(serde_json::json!({
        "name": plan.name,
        "hash": plan::plan_hash(&text),
        "plan": plan,
        "text": text,
    })))
}

#[derive(Deserialize)]
struct ValidateQuery {
    name: Option<String>,
}

/// Validates plan text sent as the body (TOML, any content type).
#[utoipa::path(post, path = "/api/v1/plans/validate",
    request_body(content = String, content_type = "application/toml", description = "plan text"),
    params(("name" = Option<String>, Query, description = "plan name to validate as (default: \"plan\")")),
    responses((status = 200, body = ValidationResult), (status = 422, body = ValidationResult)))]
async fn validate_plan(Query(q): Query<ValidateQuery>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return ApiError::BadRequest("the plan must be UTF-8 text".into()).into_response();
    };
    let name = q.name.unwrap_or_else(|| "plan".into());
    match Plan::parse(&name, text) {
        Ok(p) => axum::Json(ValidationResult {
            valid: true,
            errors: vec![],
            plan: serde_json::to_value(&p).ok(),
        })
        .into_response(),
        Err(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(serde_json::json!({
                "valid": false,
                "errors": errors,
                "error": {
                    "code": "invalid_plan",
                    "message": errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                },
            })),
        )
            .into_response(),
    }
}

#[utoipa::path(post, path = "/api/v1/rollouts", request_body = StartRequest,
    responses((status = 201, body = RolloutView), (status = 202, description = "started; the baseline write is still being retried", body = RolloutView),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_rollout(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req: StartRequest = parse_body(&body)?;
    if req.plan.is_empty() {
        return Err(ApiError::BadRequest(
            "\"plan\" (a plan name) is required".into(),
        ));
    }
    if !valid_plan_name(&req.plan) {
        return Err(ApiError::NotFound(format!("no plan named {:?}", req.plan)));
    }
    let actor = req.actor.unwrap_or_else(|| "api".into());
    let outcome = app.engine.start(&req.plan, &actor, req.reason).await?;
    Ok(outcome_response(outcome, StatusCode::CREATED))
}

#[derive(Deserialize)]
struct RolloutQuery {
    state: Option<String>,
    plan: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/rollouts",
    params(("state" = Option<String>, Query), ("plan" = Option<String>, Query)),
    responses((status = 200, body = RolloutList)))]
async fn list_rollouts(
    State(app): State<AppState>,
    Query(q): Query<RolloutQuery>,
) -> Result<axum::Json<RolloutList>, ApiError> {
    let rollouts = app
        .engine
        .store()
        .list_rollouts()
        .await?
        .iter()
        .filter(|r| q.state.as_deref().is_none_or(|s| r.state.as_str() == s))
        .filter(|r| q.plan.as_deref().is_none_or(|p| r.plan_name == p))
        .map(RolloutView::from)
        .collect();
    Ok(axum::Json(RolloutList { rollouts }))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = RolloutView), (status = 404, body = ErrorBody)))]
async fn show_rollout(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RolloutView>, ApiError> {
    let rollout = app.engine.get(parse_id(&id)?).await?;
    Ok(axum::Json(RolloutView::from(&rollout)))
}

/// `expected_version` from the body, or from an `If-Match` header.
fn expected_version(req: &CommandRequest, headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    if let Some(v) = req.expected_version {
        return Ok(Some(v));
    }
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(|s| s.trim().trim_matches('"'))
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest("If-Match must be a rollout version number".into())
            }),
    }
}

async fn run_command(
    app: AppState,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    command: fn(&CommandRequest) -> Command,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let req: CommandRequest = parse_body(&body)?;
    let cmd = command(&req);
    if req.to.is_some() && !matches!(cmd, Command::Rollback { .. }) {
        return Err(ApiError::BadRequest(
            "\"to\" only applies to rollback".into(),
        ));
    }
    let reason = req.reason.clone().filter(|r| !r.trim().is_empty());
    if matches!(cmd, Command::Rollback { .. }) && reason.is_none() {
        return Err(ApiError::BadRequest("a rollback needs a \"reason\"".into()));
    }
    if req.force && cmd != Command::Advance {
        return Err(ApiError::BadRequest(
            "\"force\" only applies to advance".into(),
        ));
    }
    if req.force && reason.is_none() {
        return Err(ApiError::BadRequest(
            "a forced advance needs a \"reason\"".into(),
        ));
    }
    let version = expected_version(&req, &headers)?;
    let actor = req.actor.clone().unwrap_or_else(|| "api".into());
    let outcome = app
        .engine
        .execute(
            id,
            cmd,
            Ask {
                actor,
                reason,
                expected_version: version,
                evidence: None,
                force: req.force,
            },
        )
        .await?;
    Ok(outcome_response(outcome, StatusCode::OK))
}

macro_rules! command_handler {
    ($name:ident, $path:literal, $cmd:expr) => {
        #[utoipa::path(post, path = $path, params(("id" = i64, Path)),
            request_body = CommandRequest,
            responses((status = 200, body = RolloutView),
                (status = 202, description = "accepted; the flag write is still being retried", body = RolloutView),
                (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
                (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
        async fn $name(
            State(app): State<AppState>,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Result<Response, ApiError> {
            run_command(app, id, headers, body, $cmd).await
        }
    };
}

command_handler!(advance, "/api/v1/rollouts/{id}/advance", |_| {
    Command::Advance
});
command_handler!(pause, "/api/v1/rollouts/{id}/pause", |_| Command::Pause);
command_handler!(resume, "/api/v1/rollouts/{id}/resume", |_| Command::Resume);
command_handler!(rollback, "/api/v1/rollouts/{id}/rollback", |r| {
    Command::Rollback { to: r.to }
});

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only entries of this rollout.
    rollout: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    /// RFC 3339 time: entries at or after it.
    since: Option<DateTime<Utc>>,
    /// RFC 3339 time: entries before it.
    until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    cursor: Option<i64>,
    /// Page size, 1..=1000 (default 100).
    limit: Option<i64>,
    /// Export format: jsonl (default) or csv.
    format: Option<String>,
}

impl AuditQuery {
    fn filter(&self, limit: Option<i64>) -> AuditFilter {
        AuditFilter {
            rollout_id: self.rollout,
            actor: self.actor.clone(),
            action: self.action.clone(),
            since: self.since,
            until: self.until,
            after: self.cursor,
            limit,
        }
    }
}

fn audit_query(
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<AuditQuery, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody)))]
async fn list_audit(
    State(app): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let q = audit_query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let records = app
        .engine
        .store()
        .list_audit(&q.filter(Some(limit + 1)))
        .await?;
    let has_more = records.len() as i64 > limit;
    let entries: Vec<AuditEntryView> = records
        .iter()
        .take(limit as usize)
        .map(AuditEntryView::from)
        .collect();
    let next_cursor = if has_more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    Ok(axum::Json(AuditPage {
        entries,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", responses((status = 200, body = VerifyReport)))]
async fn verify_audit(State(app): State<AppState>) -> Result<axum::Json<VerifyReport>, ApiError> {
    Ok(axum::Json(app.engine.store().verify_audit().await?))
}

#[utoipa::path(get, path = "/api/v1/audit/export", params(AuditQuery),
    responses((status = 200, description = "JSON Lines (application/x-ndjson) or CSV (text/csv)")))]
async fn export_audit(
    State(app): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = audit_query(q)?;
    let records = app.engine.store().list_audit(&q.filter(q.limit)).await?;
    let entries: Vec<AuditEntryView> = records.iter().map(AuditEntryView::from).collect();
    match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" | "json" => {
            let body = crate::audit::to_jsonl(&entries);
            Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
        }
        "csv" => {
            let body = crate::audit::to_csv(&records)
                .map_err(|e| ApiError::Internal(format!("csv export: {e}")))?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "unknown export format {other:?}: use jsonl or csv"
        ))),
    }
}

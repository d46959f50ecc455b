//! The JSON API under `/api/v1`. Handlers parse and check input, make a
//! principal of the caller, and call the service; nothing here touches the
//! store.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

use super::AppState;
use super::auth::Caller;
use super::error::ApiError;
use super::views::*;
use crate::audit::VerifyReport;
use crate::domain::text::{self, MAX_NAME_BYTES};
use crate::domain::{Action, RolloutId};
use crate::plan::{self, Plan};
use crate::rollout::{Command, State as RolloutState};
use crate::service::{Ask, Done, valid_plan_name};
use crate::store::{AuditFilter, RolloutFilter};

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
        preflight_plan,
        start_rollout,
        list_rollouts,
        show_rollout,
        advance,
        pause,
        resume,
        rollback,
        abandon,
        list_audit,
        verify_audit,
        export_audit,
        super::tokens::me,
        super::tokens::create,
        super::tokens::list,
        super::tokens::revoke,
        super::users::list,
        super::users::add,
        super::users::change,
        super::users::remove,
        super::users::end_sessions,
        super::approvals::list,
        super::approvals::request,
        super::approvals::approve,
        super::approvals::deny
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Every operation takes an API token (`Authorization: Bearer rgt_…`)
/// when sign-in is on; a browser's session cookie works too.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Every operation may answer these once sign-in is on.
        let refusals = [
            (
                "401",
                "no valid credential: missing, expired, revoked or unknown",
            ),
            (
                "403",
                "the role does not allow it, or a change from another site",
            ),
        ];
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for (status, why) in refusals {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| {
                            utoipa::openapi::ResponseBuilder::new()
                                .description(why)
                                .content(
                                    "application/json",
                                    utoipa::openapi::ContentBuilder::new()
                                        .schema(Some(utoipa::openapi::Ref::from_schema_name(
                                            "ErrorBody",
                                        )))
                                        .build(),
                                )
                                .build()
                                .into()
                        });
                }
            }
        }
    }
}

/// The error shape of every failed request.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// bad_request | unauthorized | forbidden | too_many_requests | not_found | conflict | invalid_plan | write_refused | target_unavailable | internal
    pub code: String,
    pub message: String,
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/plans", get(list_plans))
        .route("/api/v1/plans/validate", post(validate_plan))
        .route("/api/v1/plans/{name}", get(show_plan))
        .route("/api/v1/plans/{name}/preflight", post(preflight_plan))
        .route("/api/v1/rollouts", get(list_rollouts).post(start_rollout))
        .route("/api/v1/rollouts/{id}", get(show_rollout))
        .route("/api/v1/rollouts/{id}/advance", post(advance))
        .route("/api/v1/rollouts/{id}/pause", post(pause))
        .route("/api/v1/rollouts/{id}/resume", post(resume))
        .route("/api/v1/rollouts/{id}/rollback", post(rollback))
        .route("/api/v1/rollouts/{id}/abandon", post(abandon))
        .route("/api/v1/audit", get(list_audit))
        .route("/api/v1/audit/verify", get(verify_audit))
        .route("/api/v1/audit/export", get(export_audit))
}

async fn openapi() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Parses a JSON body; an empty body means all defaults.
pub(super) fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// A query string, or a 400 that says what is wrong with it.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| ApiError::BadRequest(format!("invalid query: {}", e.body_text())))
}

/// Runs a command in a task of its own: a client that hangs up does not cut
/// a flag write short (the request's future would be dropped with it).
async fn detached<F>(work: F) -> Result<Done, ApiError>
where
    F: std::future::Future<Output = Result<Done, crate::service::ServiceError>> + Send + 'static,
{
    match tokio::spawn(work).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::Internal(format!("a command's task failed: {e}"))),
    }
}

pub(super) fn parse_id(id: &str) -> Result<RolloutId, ApiError> {
    id.parse().map_err(ApiError::BadRequest)
}

pub(super) fn done_response(app: &AppState, done: Done, ok: StatusCode) -> Response {
    let status = if done.write_pending.is_some() {
        StatusCode::ACCEPTED
    } else {
        ok
    };
    let view = RolloutView::new(
        &done.rollout,
        app.service.plan_of(&done.rollout),
        app.service.freshness(),
        Utc::now(),
    );
    (status, axum::Json(view)).into_response()
}

#[utoipa::path(get, path = "/api/v1/plans", responses((status = 200, body = PlanList)))]
async fn list_plans(State(app): State<AppState>) -> Result<axum::Json<PlanList>, ApiError> {
    let dir = app.service.plans_dir();
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

/// A webhook URL as shown to people: scheme and host only (the path and
/// query of a Slack or Teams hook are its credentials).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("[host]")),
        Err(_) => "[webhook URL]".into(),
    }
}

#[utoipa::path(get, path = "/api/v1/plans/{name}",
    params(("name" = String, Path, description = "plan name (file stem)")),
    responses((status = 200, description = "the parsed plan, its hash and text (webhook URLs redacted)"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn show_plan(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    text::check("plan name", &name, MAX_NAME_BYTES)?;
    let (plan, original) = app.service.load_plan(&name)?;
    let hash = plan::plan_hash(&original);
    let mut text = original;
    let mut shown = serde_json::to_value(&plan)
        .map_err(|e| ApiError::Internal(format!("plan to JSON: {e}")))?;
    // Webhook URLs carry tokens: never shown, in the parsed plan or its text.
    shown["webhooks"] = serde_json::json!(
        plan.webhooks
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
    );
    for url in &plan.webhooks {
        text = text.replace(url.as_str(), &redact_url(url));
    }
    Ok(axum::Json(serde_json::json!({
        "name": plan.name,
        "hash": hash,
        "plan": shown,
        "text": text,
    })))
}

#[derive(Deserialize)]
struct ValidateQuery {
    name: Option<String>,
}

/// Validates plan text sent as the body (TOML, any content type).
#[utoipa::path(post, path = "/api/v1/plans/validate",
    request_body(content = String, content_type = "text/plain", description = "plan text (TOML)"),
    params(("name" = Option<String>, Query, description = "plan name to validate as (default: \"plan\")")),
    responses((status = 200, body = ValidationResult), (status = 422, body = ValidationResult)))]
async fn validate_plan(
    q: Result<Query<ValidateQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let Ok(text) = std::str::from_utf8(&body) else {
        return Err(ApiError::BadRequest("the plan must be UTF-8 text".into()));
    };
    let name = q.name.unwrap_or_else(|| "plan".into());
    text::check("name", &name, MAX_NAME_BYTES)?;
    Ok(match Plan::parse(&name, text) {
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
    })
}

#[utoipa::path(post, path = "/api/v1/rollouts", request_body = StartRequest,
    responses((status = 201, body = StartResponse), (status = 202, description = "started; the baseline write is still being retried", body = StartResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn start_rollout(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: StartRequest = parse_body(&body)?;
    if req.plan.is_empty() {
        return Err(ApiError::BadRequest(
            "\"plan\" (a plan name) is required".into(),
        ));
    }
    text::check("plan", &req.plan, MAX_NAME_BYTES)?;
    if !valid_plan_name(&req.plan) {
        return Err(ApiError::NotFound(format!("no plan named {:?}", req.plan)));
    }
    if req.force && req.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        return Err(ApiError::BadRequest(
            "a forced start needs a \"reason\"".into(),
        ));
    }
    let who = caller.principal(req.actor.as_deref())?;
    let service = app.service.clone();
    let started =
        match tokio::spawn(
            async move { service.start(&who, &req.plan, req.reason, req.force).await },
        )
        .await
        {
            Ok(result) => result?,
            Err(e) => return Err(ApiError::Internal(format!("a start's task failed: {e}"))),
        };
    let status = if started.done.write_pending.is_some() {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let rollout = RolloutView::new(
        &started.done.rollout,
        app.service.plan_of(&started.done.rollout),
        app.service.freshness(),
        Utc::now(),
    );
    Ok((
        status,
        axum::Json(StartResponse {
            rollout,
            preflight: started.preflight,
        }),
    )
        .into_response())
}

/// Runs the plan's preflight against AWS: every check with its outcome and
/// numbers. Writes nothing; a failing check is a 200 with `status = "fail"`.
#[utoipa::path(post, path = "/api/v1/plans/{name}/preflight",
    params(("name" = String, Path, description = "plan name (file stem)")),
    responses((status = 200, body = crate::preflight::Report), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn preflight_plan(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<axum::Json<crate::preflight::Report>, ApiError> {
    text::check("plan name", &name, MAX_NAME_BYTES)?;
    let service = app.service.clone();
    match tokio::spawn(async move { service.preflight(&name).await }).await {
        Ok(report) => Ok(axum::Json(report?)),
        Err(e) => Err(ApiError::Internal(format!(
            "a preflight's task failed: {e}"
        ))),
    }
}

#[utoipa::path(get, path = "/api/v1/rollouts", params(RolloutQuery),
    responses((status = 200, body = RolloutList), (status = 400, body = ErrorBody)))]
async fn list_rollouts(
    State(app): State<AppState>,
    q: Result<Query<RolloutQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<RolloutList>, ApiError> {
    let q = query(q)?;
    let state = q
        .state
        .as_deref()
        .map(|s| {
            RolloutState::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown state {s:?}: use one of {}",
                    RolloutState::ALL.map(|s| s.as_str()).join(", ")
                ))
            })
        })
        .transpose()?;
    if let Some(p) = &q.plan {
        text::check("plan", p, MAX_NAME_BYTES)?;
    }
    if q.limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let mut rollouts = app
        .service
        .rollouts(&RolloutFilter {
            state,
            plan: q.plan,
            before: q.cursor.map(RolloutId),
            limit: q.limit.map(|l| l + 1),
            ..RolloutFilter::default()
        })
        .await?;
    let next_cursor = match q.limit {
        Some(l) if rollouts.len() as i64 > l => {
            rollouts.truncate(l as usize);
            rollouts.last().map(|r| r.id.0)
        }
        _ => None,
    };
    let now = Utc::now();
    let freshness = app.service.freshness();
    Ok(axum::Json(RolloutList {
        // Each rollout is dropped once its view is made: a long list never
        // holds both in full.
        rollouts: rollouts
            .into_iter()
            .map(|r| RolloutView::new(&r, app.service.plan_of(&r), freshness, now))
            .collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{id}", params(("id" = i64, Path)),
    responses((status = 200, body = RolloutView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_rollout(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<RolloutView>, ApiError> {
    let rollout = app.service.rollout(parse_id(&id)?).await?;
    Ok(axum::Json(RolloutView::new(
        &rollout,
        app.service.plan_of(&rollout),
        app.service.freshness(),
        Utc::now(),
    )))
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
    caller: Caller,
    id: String,
    headers: HeaderMap,
    body: Bytes,
    command: fn(&CommandRequest) -> Command,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let req: CommandRequest = parse_body(&body)?;
    let cmd = command(&req);
    if req.to.is_some() && !cmd.is_rollback() {
        return Err(ApiError::BadRequest(
            "\"to\" only applies to rollback".into(),
        ));
    }
    let reason = text::reason(req.reason.clone())?;
    if matches!(cmd, Command::Rollback { .. } | Command::Abandon) && reason.is_none() {
        return Err(ApiError::BadRequest(format!(
            "a {} needs a \"reason\"",
            cmd.name()
        )));
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
    let who = caller.principal(req.actor.as_deref())?;
    let ask = Ask {
        reason,
        expected_version: expected_version(&req, &headers)?,
        force: req.force,
        ..Ask::default()
    };
    let service = app.service.clone();
    let done = detached(async move { service.command(&who, id, cmd, ask).await }).await?;
    Ok(done_response(&app, done, StatusCode::OK))
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
            caller: Caller,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Result<Response, ApiError> {
            run_command(app, caller, id, headers, body, $cmd).await
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
command_handler!(abandon, "/api/v1/rollouts/{id}/abandon", |_| {
    Command::Abandon
});

/// The store filter of an audit query, every value checked.
fn audit_filter(q: &AuditQuery, limit: Option<i64>) -> Result<AuditFilter, ApiError> {
    if let Some(actor) = &q.actor {
        text::check("actor", actor, MAX_NAME_BYTES)?;
    }
    let action = q
        .action
        .as_deref()
        .map(|a| {
            Action::parse(a).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown action {a:?}: use one of {}",
                    Action::ALL
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        })
        .transpose()?;
    Ok(AuditFilter {
        rollout_id: q.rollout.map(RolloutId),
        actor: q.actor.clone(),
        action,
        since: q.since,
        until: q.until,
        after: q.cursor,
        up_to: None,
        before: None,
        descending: false,
        limit,
    })
}

#[utoipa::path(get, path = "/api/v1/audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = ErrorBody)))]
async fn list_audit(
    State(app): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let records = app
        .service
        .audit(&audit_filter(&q, Some(limit + 1))?)
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
    Ok(axum::Json(app.service.verify_audit().await?))
}

/// Entries read from the database per chunk of an export.
const EXPORT_PAGE: i64 = 500;

#[derive(Clone, Copy, PartialEq)]
enum ExportFormat {
    Jsonl,
    Csv,
}

#[utoipa::path(get, path = "/api/v1/audit/export", params(AuditQuery),
    responses((status = 200, description = "JSON Lines (application/x-ndjson) or CSV (text/csv), streamed"), (status = 400, body = ErrorBody)))]
async fn export_audit(
    State(app): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let format = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" | "json" => ExportFormat::Jsonl,
        "csv" => ExportFormat::Csv,
        other => {
            return Err(ApiError::BadRequest(format!(
                "unknown export format {other:?}: use jsonl or csv"
            )));
        }
    };
    if q.limit.is_some_and(|l| l < 1) {
        return Err(ApiError::BadRequest("limit must be at least 1".into()));
    }
    let mut filter = audit_filter(&q, None)?;
    // A consistent snapshot: the log as it stood when the export began.
    filter.up_to = Some(app.service.audit_head().await?.map_or(0, |(seq, _)| seq));
    let service = app.service.clone();
    let remaining = q.limit.unwrap_or(i64::MAX);
    // Page by page from the database to the client: never the whole log in memory.
    let pages = futures_util::stream::unfold(
        (filter, remaining, true),
        move |(mut filter, remaining, first)| {
            let service = service.clone();
            async move {
                if remaining <= 0 {
                    return None;
                }
                filter.limit = Some(remaining.min(EXPORT_PAGE));
                let records = match service.audit(&filter).await {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "audit export stopped");
                        return Some((
                            Err(std::io::Error::other(e.to_string())),
                            (filter, 0, false),
                        ));
                    }
                };
                let Some(last) = records.last() else {
                    // An empty CSV export still has its header.
                    return (first && format == ExportFormat::Csv).then(|| {
                        let header = crate::audit::to_csv(&[], true).unwrap_or_default();
                        (Ok(Bytes::from(header)), (filter.clone(), 0, false))
                    });
                };
                filter.after = Some(last.seq);
                let chunk = match format {
                    ExportFormat::Jsonl => {
                        let views: Vec<AuditEntryView> =
                            records.iter().map(AuditEntryView::from).collect();
                        crate::audit::to_jsonl(&views)
                    }
                    ExportFormat::Csv => match crate::audit::to_csv(&records, first) {
                        Ok(c) => c,
                        Err(e) => {
                            return Some((
                                Err(std::io::Error::other(e.to_string())),
                                (filter, 0, false),
                            ));
                        }
                    },
                };
                let left = remaining - records.len() as i64;
                Some((Ok(Bytes::from(chunk)), (filter, left, false)))
            }
        },
    );
    let content_type = match format {
        ExportFormat::Jsonl => "application/x-ndjson",
        ExportFormat::Csv => "text/csv; charset=utf-8",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(pages),
    )
        .into_response())
}

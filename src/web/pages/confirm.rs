//! Every action's confirmation: a page that says exactly what will change
//! ("USE_REFACTORED_TOOLS false → true on dixon-smart-repair-handler"),
//! asks for a reason, and posts the command; then a redirect to the
//! rollout. Someone else acting first is a clear message with the current
//! state, on the same page.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::render::{self, FlagChange};
use super::{Chrome, PageError, html};
use crate::domain::RolloutId;
use crate::plan::RollbackTarget;
use crate::rollout::{Command, Rollout, readiness};
use crate::service::{Ask, Refusal, ServiceError};
use crate::web::AppState;
use crate::web::auth::Caller;

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    /// What is being confirmed, as a title ("Advance rollout #3 to tools").
    pub title: String,
    /// advance | pause | resume | rollback | abandon | start
    pub action: String,
    pub function: String,
    pub changes: Vec<FlagChange>,
    /// What happens, in a sentence (also when no flag changes).
    pub summary: String,
    pub blockers: Vec<String>,
    /// What the blockers are, as a heading.
    pub blocker_title: &'static str,
    /// `start`: the preflight just run.
    pub preflight: Option<crate::preflight::Report>,
    pub force_possible: bool,
    pub reason_required: bool,
    pub danger: bool,
    pub post_href: String,
    pub cancel_href: String,
    pub version: Option<i64>,
    pub plan: Option<String>,
    /// Rollback only: the target chosen (baseline or previous).
    pub rollback_to: Option<&'static str>,
    pub error: Option<String>,
    /// Someone else acted first: what the rollout is now.
    pub conflict: Option<String>,
    pub reason: String,
    pub actor: String,
    pub force: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConfirmQuery {
    to: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    actor: String,
    expected_version: Option<i64>,
    force: Option<String>,
    to: Option<String>,
}

fn parse_command(action: &str, to: Option<&str>) -> Result<Command, PageError> {
    let target = match to {
        None | Some("") => None,
        Some("baseline") => Some(RollbackTarget::Baseline),
        Some("previous") => Some(RollbackTarget::Previous),
        Some(other) => {
            return Err(PageError::bad_request(format!(
                "unknown rollback target {other:?}: use baseline or previous"
            )));
        }
    };
    Ok(match action {
        "advance" => Command::Advance,
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "rollback" => Command::Rollback { to: target },
        "abandon" => Command::Abandon,
        other => return Err(PageError::not_found(format!("no action {other:?}"))),
    })
}

/// The confirmation of `command` on `r`, before any input.
fn preview(app: &AppState, r: &Rollout, command: Command) -> ConfirmPage {
    let id = r.id;
    let function = r.target_function.clone();
    let (title, changes, summary, blockers, force_possible) = match command {
        Command::Advance => match r.phases.get(r.phase_index + 1) {
            Some(next) => {
                let plan = app.service.plan_of(r);
                let blockers = match plan.as_deref() {
                    Ok(p) => readiness::promotion_blockers(
                        p,
                        r.phase_index,
                        r.bake_started_at,
                        Utc::now(),
                        r.readiness.as_ref(),
                        app.service.freshness(),
                    ),
                    Err(e) => vec![e.clone()],
                };
                (
                    format!("Advance rollout #{id} to {}", next.name),
                    render::flag_changes(&r.desired_flags, &next.flags),
                    match (&r.alias, next.traffic) {
                        (Some(alias), Some(w)) => format!(
                            "Canary step {} begins: a version of {function} with its flags serves {w} % of alias {alias}'s invocations (the stable version the rest), and its bake clock starts.",
                            next.name
                        ),
                        (Some(alias), None) => format!(
                            "Phase {} begins: alias {alias} of {function} points at a version with its flags, for all traffic, and its bake clock starts.",
                            next.name
                        ),
                        (None, _) => format!(
                            "Phase {} begins: its flags are written to {function}, and its bake clock starts.",
                            next.name
                        ),
                    },
                    blockers.clone(),
                    !blockers.is_empty(),
                )
            }
            None => (
                format!("Complete rollout #{id}"),
                Vec::new(),
                "No flag changes: the rollout completes and the flags stay as they are.".into(),
                Vec::new(),
                false,
            ),
        },
        Command::Pause => (
            format!("Pause rollout #{id}"),
            Vec::new(),
            "No flag changes: the rollout stays in its phase until it is resumed. Guardrails keep watching it.".into(),
            Vec::new(),
            false,
        ),
        Command::Resume => (
            format!("Resume rollout #{id}"),
            Vec::new(),
            "No flag changes: the rollout carries on in its phase.".into(),
            Vec::new(),
            false,
        ),
        Command::Rollback { to } => {
            let target = to.unwrap_or(r.rollback_to);
            let (phase, ends) = if target == RollbackTarget::Previous && r.phase_index > 1 {
                (r.phase_index - 1, false)
            } else {
                (0, true)
            };
            let dest = r.phase_name_at(phase).to_string();
            (
                format!("Roll back rollout #{id}"),
                render::flag_changes(&r.desired_flags, r.flags_at(phase)),
                if ends {
                    format!("Every owned flag returns to its baseline value on {function}; the rollout ends as rolled back.")
                } else {
                    format!("The flags of phase {dest} are written to {function}; the rollout pauses there.")
                },
                Vec::new(),
                false,
            )
        }
        Command::Abandon => (
            format!("Abandon rollout #{id}"),
            Vec::new(),
            format!(
                "Nothing is written: the flags stay as they are on {function}{}. The rollout ends and frees the function.",
                r.observed_flags
                    .as_ref()
                    .map(|f| format!(
                        " ({})",
                        f.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
                    ))
                    .unwrap_or_default()
            ),
            Vec::new(),
            false,
        ),
    };
    let rollback_to = match command {
        Command::Rollback { to } => Some(match to.unwrap_or(r.rollback_to) {
            RollbackTarget::Baseline => "baseline",
            RollbackTarget::Previous => "previous",
        }),
        _ => None,
    };
    ConfirmPage {
        chrome: Chrome::new(app, "overview"),
        title,
        action: command.name().into(),
        function,
        changes,
        summary,
        blockers,
        blocker_title: "This phase is not ready to advance:",
        preflight: None,
        force_possible,
        reason_required: matches!(command, Command::Rollback { .. } | Command::Abandon),
        danger: matches!(command, Command::Rollback { .. } | Command::Abandon),
        post_href: format!("/rollouts/{id}/{}", command.name()),
        cancel_href: format!("/rollouts/{id}"),
        version: Some(r.version),
        plan: None,
        rollback_to,
        error: None,
        conflict: None,
        reason: String::new(),
        actor: String::new(),
        force: false,
    }
}

pub async fn command_page(
    State(app): State<AppState>,
    Path((id, action)): Path<(String, String)>,
    q: Result<Query<ConfirmQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let result = async {
        let id: RolloutId = id.parse().map_err(PageError::bad_request)?;
        let command = parse_command(&action, q.to.as_deref())?;
        let r = app.service.rollout(id).await?;
        let mut page = preview(&app, &r, command);
        if command == Command::Advance {
            ask_approval_instead(&app, &r, &mut page).await?;
        }
        Ok::<_, PageError>(page)
    }
    .await;
    match result {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

pub async fn command(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    form: Result<axum::Form<ActionForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let id: RolloutId = match id.parse() {
        Ok(id) => id,
        Err(e) => return PageError::bad_request(e).page(&app),
    };
    let command = match parse_command(&action, f.to.as_deref()) {
        Ok(c) => c,
        Err(e) => return e.page(&app),
    };
    let who = match dashboard_principal(&caller, &f.actor) {
        Ok(p) => p,
        Err(e) => {
            return again(
                &app,
                id,
                command,
                &f,
                StatusCode::BAD_REQUEST,
                Some(e.0),
                None,
            )
            .await;
        }
    };
    let force = f.force.as_deref() == Some("on");
    let ask = Ask {
        reason: Some(f.reason.clone()),
        // A rollback is never held back by a stale page: it always wins.
        expected_version: if command.is_rollback() {
            None
        } else {
            f.expected_version
        },
        force,
        ..Ask::default()
    };
    let service = app.service.clone();
    let who_moved = who.clone();
    let result =
        tokio::spawn(async move { service.command(&who_moved, id, command, ask).await }).await;
    match result {
        Ok(Ok(done)) => {
            let pending = if done.write_pending.is_some() {
                "&pending=1"
            } else {
                ""
            };
            Redirect::to(&format!("/rollouts/{id}?done={}{pending}", command.name()))
                .into_response()
        }
        // Only a change made since the page was shown is "someone else
        // acted first"; a refusal of the request itself (not ready, held)
        // is said as what it is.
        Ok(Err(ServiceError::Refused(refusal)))
            if !acted_meanwhile(&refusal, &app, id, f.expected_version).await =>
        {
            again(
                &app,
                id,
                command,
                &f,
                StatusCode::CONFLICT,
                Some(refusal.to_string()),
                None,
            )
            .await
        }
        Ok(Err(ServiceError::Refused(refusal))) => {
            let now = app.service.rollout(id).await.ok();
            let state = now.as_ref().map_or_else(String::new, |r| {
                format!(
                    " It is now {} in phase {} (version {}).",
                    r.state.as_str().replace('_', " "),
                    r.phase_name,
                    r.version
                )
            });
            let conflict =
                format!("{refusal}.{state} Review what would change now and confirm again.");
            again(
                &app,
                id,
                command,
                &f,
                StatusCode::CONFLICT,
                None,
                Some(conflict),
            )
            .await
        }
        Ok(Err(ServiceError::BadInput(m))) => {
            again(
                &app,
                id,
                command,
                &f,
                StatusCode::BAD_REQUEST,
                Some(m),
                None,
            )
            .await
        }
        Ok(Err(e)) => PageError::from(e).page(&app),
        Err(e) => PageError::Internal(format!("a command's task failed: {e}")).page(&app),
    }
}

/// Into a protected phase not yet approved, the advance's confirmation
/// becomes a request for a second operator's approval.
async fn ask_approval_instead(
    app: &AppState,
    r: &Rollout,
    page: &mut ConfirmPage,
) -> Result<(), PageError> {
    let protected = app.service.plan_of(r).ok().and_then(|p| {
        p.phases
            .get(r.phase_index)
            .filter(|p| p.protected)
            .map(|p| p.name.clone())
    });
    let Some(phase) = protected else {
        return Ok(());
    };
    if app.service.granted_approval(r).await?.is_some() {
        page.summary = format!(
            "{} A second operator approved entering {phase}.",
            page.summary
        );
        return Ok(());
    }
    page.title = format!("Ask to advance rollout #{} to {phase}", r.id);
    page.summary = format!(
        "Phase {phase} is protected: confirming asks a second operator to approve. The advance is made when they do (nothing is written now). {}",
        page.summary
    );
    page.action = "request approval".into();
    page.post_href = format!("/rollouts/{}/approvals", r.id);
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
pub struct ApprovalForm {
    #[serde(default)]
    reason: String,
    force: Option<String>,
}

/// Posts a request for approval (from the advance confirmation).
pub async fn request_approval(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    form: Result<axum::Form<ApprovalForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let id: RolloutId = match id.parse() {
        Ok(id) => id,
        Err(e) => return PageError::bad_request(e).page(&app),
    };
    let who = match dashboard_principal(&caller, "") {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    let reason = Some(f.reason).filter(|r| !r.trim().is_empty());
    match app
        .service
        .request_approval(&who, id, reason, f.force.as_deref() == Some("on"))
        .await
    {
        Ok(_) => Redirect::to(&format!("/rollouts/{id}?done=approval%20request#approvals"))
            .into_response(),
        Err(e) => PageError::from(e).page(&app),
    }
}

/// Approves (and advances) or denies a request.
pub async fn decide(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, approval, decision)): Path<(String, i64, String)>,
) -> Response {
    let id: RolloutId = match id.parse() {
        Ok(id) => id,
        Err(e) => return PageError::bad_request(e).page(&app),
    };
    let approve = match decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return PageError::not_found(format!("no decision {other:?}: approve or deny"))
                .page(&app);
        }
    };
    let who = match dashboard_principal(&caller, "") {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    let service = app.service.clone();
    let result =
        tokio::spawn(async move { service.decide(&who, id, approval, approve, None).await }).await;
    match result {
        Ok(Ok(Some(done))) => {
            let pending = if done.write_pending.is_some() {
                "&pending=1"
            } else {
                ""
            };
            Redirect::to(&format!("/rollouts/{id}?done=advance{pending}")).into_response()
        }
        Ok(Ok(None)) => Redirect::to(&format!("/rollouts/{id}?done=denial")).into_response(),
        Ok(Err(e)) => PageError::from(e).page(&app),
        Err(e) => PageError::Internal(format!("a decision's task failed: {e}")).page(&app),
    }
}

/// Who acts from the dashboard: the signed-in caller, or (sign-in off) the
/// name typed into the form, "dashboard" when none.
fn dashboard_principal(
    caller: &Caller,
    typed: &str,
) -> Result<crate::domain::Principal, crate::domain::InputError> {
    if caller.signed_in() {
        return caller.principal(None);
    }
    caller.principal(
        Some(typed)
            .filter(|a| !a.trim().is_empty())
            .or(Some("dashboard")),
    )
}

/// Whether a refusal comes from someone acting after the page was shown.
async fn acted_meanwhile(
    refusal: &Refusal,
    app: &AppState,
    id: RolloutId,
    page_version: Option<i64>,
) -> bool {
    match refusal {
        Refusal::VersionMismatch { .. } | Refusal::Concurrent { .. } => true,
        Refusal::Transition { .. } => match (app.service.rollout(id).await, page_version) {
            (Ok(now), Some(seen)) => now.version != seen,
            _ => false,
        },
        Refusal::NotReady { .. } | Refusal::NeedsApproval { .. } | Refusal::Busy(_) => false,
    }
}

/// The confirmation again, as the rollout stands now, with the input kept.
async fn again(
    app: &AppState,
    id: RolloutId,
    command: Command,
    f: &ActionForm,
    status: StatusCode,
    error: Option<String>,
    conflict: Option<String>,
) -> Response {
    let r = match app.service.rollout(id).await {
        Ok(r) => r,
        Err(e) => return PageError::from(e).page(app),
    };
    let mut page = preview(app, &r, command);
    page.error = error;
    page.conflict = conflict;
    page.reason = f.reason.clone();
    page.actor = f.actor.clone();
    page.force = f.force.as_deref() == Some("on");
    if r.state.is_terminal() && !r.write_pending() {
        page.summary = format!(
            "The rollout is {}: nothing more can be done with it.",
            r.state.as_str().replace('_', " ")
        );
        page.post_href = String::new();
    }
    (status, html(&page)).into_response()
}

#[derive(Debug, Default, Deserialize)]
pub struct StartQuery {
    #[serde(default)]
    plan: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    plan: String,
    force: Option<String>,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    actor: String,
}

/// What starting `plan` will write, as far as the function can be read now.
async fn start_preview(app: &AppState, plan_name: &str) -> Result<ConfirmPage, PageError> {
    let (plan, _) = app.service.load_plan(plan_name)?;
    let preflight = app.service.preflight(plan_name).await?;
    let failures: Vec<String> = preflight.failures().iter().map(|c| c.line()).collect();
    let current = app.service.peek_flags(&plan).await;
    let (changes, note) = match current {
        Ok(now) => (render::flag_changes(&now, &plan.flags), String::new()),
        Err(e) => (
            plan.flags
                .iter()
                .map(|(k, v)| FlagChange {
                    flag: k.clone(),
                    from: "?".into(),
                    to: v.clone(),
                })
                .collect(),
            format!(" (its current values could not be read: {e})"),
        ),
    };
    Ok(ConfirmPage {
        chrome: Chrome::new(app, "overview"),
        title: format!("Start plan {plan_name}"),
        action: "start".into(),
        function: plan.target.function.clone(),
        summary: format!(
            "A rollout of {plan_name} starts at its baseline: every owned flag is set to its baseline value on {}{note}; every other variable stays as it is.",
            plan.target.function
        ),
        changes,
        blockers: failures.clone(),
        blocker_title: "The preflight fails:",
        preflight: Some(preflight),
        force_possible: !failures.is_empty(),
        reason_required: false,
        danger: false,
        post_href: "/start".into(),
        cancel_href: "/".into(),
        version: None,
        plan: Some(plan_name.to_string()),
        rollback_to: None,
        error: None,
        conflict: None,
        reason: String::new(),
        actor: String::new(),
        force: false,
    })
}

pub async fn start_page(
    State(app): State<AppState>,
    q: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    match start_preview(&app, &q.plan).await {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

pub async fn start(
    State(app): State<AppState>,
    caller: Caller,
    form: Result<axum::Form<StartForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let who = match dashboard_principal(&caller, &f.actor) {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    let service = app.service.clone();
    let (plan, reason) = (f.plan.clone(), f.reason.clone());
    let force = f.force.as_deref() == Some("on");
    let result =
        tokio::spawn(async move { service.start(&who, &plan, Some(reason), force).await }).await;
    match result {
        Ok(Ok(started)) => {
            let done = started.done;
            let pending = if done.write_pending.is_some() {
                "&pending=1"
            } else {
                ""
            };
            Redirect::to(&format!(
                "/rollouts/{}?done=start{pending}",
                done.rollout.id
            ))
            .into_response()
        }
        Ok(Err(
            e @ (ServiceError::Refused(_)
            | ServiceError::BadInput(_)
            | ServiceError::Unprocessable(_)
            | ServiceError::PreflightFailed(_)),
        )) => {
            let status = match &e {
                ServiceError::Refused(_) => StatusCode::CONFLICT,
                ServiceError::BadInput(_) => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            match start_preview(&app, &f.plan).await {
                Ok(mut page) => {
                    page.error = Some(e.to_string());
                    page.reason = f.reason;
                    page.actor = f.actor;
                    page.force = force;
                    (status, html(&page)).into_response()
                }
                Err(pe) => pe.page(&app),
            }
        }
        Ok(Err(e)) => PageError::from(e).page(&app),
        Err(e) => PageError::Internal(format!("a command's task failed: {e}")).page(&app),
    }
}

//! The operator dashboard: server-rendered pages (askama templates under
//! `templates/`), every action a plain form (redirect after post) that
//! works without JavaScript; with it, htmx refreshes the numbers live.
//! Every action goes through the service with an operator principal.

mod assets;
mod audit;
mod confirm;
mod login;
mod overview;
mod plans;
pub mod render;
mod rollout;
mod tokens;
mod users;

use askama::Template;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use super::AppState;
use crate::service::ServiceError;
use crate::store::StoreError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/start", get(confirm::start_page).post(confirm::start))
        .route("/rollouts/{id}", get(rollout::page))
        .route(
            "/rollouts/{id}/{action}",
            get(confirm::command_page).post(confirm::command),
        )
        .route("/rollouts/{id}/approvals", post(confirm::request_approval))
        .route(
            "/rollouts/{id}/approvals/{approval}/{decision}",
            post(confirm::decide),
        )
        .route("/plans", get(plans::list))
        .route("/plans/{name}", get(plans::show))
        .route("/audit", get(audit::page))
        .route("/audit/verify", post(audit::verify_now))
        .route("/login", get(login::page).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/login/oidc", get(login::oidc_begin))
        .route("/login/oidc/callback", get(login::oidc_callback))
        .route("/admin/tokens", get(tokens::page).post(tokens::create))
        .route("/admin/tokens/{name}/revoke", post(tokens::revoke))
        .route("/admin/users", get(users::page).post(users::add))
        .route("/admin/users/{name}/role", post(users::set_role))
        .route("/admin/users/{name}/remove", post(users::remove))
        .route("/admin/users/{name}/sign-out", post(users::sign_out))
        .route("/demo/bad", post(rollout::demo_bad))
        .route("/demo/good", post(rollout::demo_good))
        .route("/static/{*path}", get(assets::serve))
}

/// The parts of every page: navigation, who is signed in, the form token
/// and the watcher's health.
pub struct Chrome {
    /// The nav entry to mark current: "overview", "plans" or "audit".
    pub current: &'static str,
    pub watcher: render::WatcherStatus,
    pub demo: bool,
    /// Sign-in is on (`--auth local`).
    pub auth_on: bool,
    /// The signed-in actor ("user:ada"), if any.
    pub signed_in_as: Option<String>,
    /// The audit actor of an action from this page ("user:ada"), when
    /// signed in.
    pub actor: String,
    pub role: &'static str,
    pub admin: bool,
    /// May start and step rollouts (operator or admin).
    pub may_operate: bool,
    /// The token every form posts as `csrf`.
    pub csrf: String,
}

impl Chrome {
    pub fn new(app: &AppState, current: &'static str) -> Self {
        use crate::domain::user::Role;
        let caller = crate::web::auth::current();
        let signed_in_as = caller.shown_name();
        Chrome {
            current,
            watcher: render::WatcherStatus::of(app),
            demo: app.demo.is_some(),
            auth_on: app.auth.mode != crate::web::auth::AuthMode::None,
            actor: signed_in_as.clone().unwrap_or_default(),
            signed_in_as,
            role: caller.role.as_str(),
            admin: caller.may(Role::Admin),
            may_operate: caller.may(Role::Operator),
            csrf: caller.form_token,
        }
    }
}

/// An error shown as a page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub status: u16,
    pub title: String,
    pub message: String,
}

/// What a page handler returns when it cannot show its page.
pub enum PageError {
    Status(StatusCode, String, String),
    Internal(String),
}

impl PageError {
    pub fn not_found(what: impl Into<String>) -> Self {
        PageError::Status(StatusCode::NOT_FOUND, "Not found".into(), what.into())
    }

    pub fn bad_request(what: impl Into<String>) -> Self {
        PageError::Status(StatusCode::BAD_REQUEST, "Bad request".into(), what.into())
    }

    /// Shown on `app`'s chrome.
    pub fn page(self, app: &AppState) -> Response {
        let (status, title, message) = match self {
            PageError::Status(s, t, m) => (s, t, m),
            PageError::Internal(cause) => {
                tracing::error!(%cause, "dashboard page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong".into(),
                    "The server log has the details.".into(),
                )
            }
        };
        let page = ErrorPage {
            chrome: Chrome::new(app, ""),
            status: status.as_u16(),
            title,
            message,
        };
        (status, html(&page)).into_response()
    }
}

impl From<ServiceError> for PageError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => PageError::not_found(m),
            ServiceError::BadInput(m) => PageError::bad_request(m),
            ServiceError::Refused(r) => PageError::Status(
                StatusCode::CONFLICT,
                "Not possible now".into(),
                r.to_string(),
            ),
            ServiceError::Unprocessable(m) => {
                PageError::Status(StatusCode::UNPROCESSABLE_ENTITY, "AWS refused it".into(), m)
            }
            ServiceError::PlanInvalid { plan, errors } => PageError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Plan {plan} is invalid"),
                errors.join("\n"),
            ),
            ServiceError::Unavailable(m) => {
                PageError::Status(StatusCode::SERVICE_UNAVAILABLE, "AWS unavailable".into(), m)
            }
            ServiceError::Forbidden(m) => {
                PageError::Status(StatusCode::FORBIDDEN, "Not yours to do".into(), m)
            }
            e @ ServiceError::PreflightFailed(_) => PageError::Status(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The preflight fails".into(),
                e.to_string(),
            ),
            ServiceError::Store(e) => match e {
                StoreError::NoSuchUser(_) => PageError::not_found(e.to_string()),
                StoreError::UserExists(_)
                | StoreError::TokenExists(_)
                | StoreError::ApprovalPending { .. }
                | StoreError::LastAdmin
                | StoreError::VersionConflict { .. }
                | StoreError::FunctionBusy { .. } => PageError::Status(
                    StatusCode::CONFLICT,
                    "Not possible now".into(),
                    e.to_string(),
                ),
                other => PageError::Internal(other.to_string()),
            },
        }
    }
}

/// Renders a template into a response (a failure is logged and a 500).
pub fn html<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

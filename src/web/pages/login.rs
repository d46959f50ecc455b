//! Signing in and out with a password. A successful sign-in always gets a
//! new session id (a session id planted before sign-in is worth nothing)
//! and ends the session the browser had; a sign-in is throttled per account
//! and per address.

use askama::Template;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::{Chrome, html};
use crate::service::SignInError;
use crate::web::AppState;
use crate::web::auth::{self, AuthMode, SESSION_COOKIE};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub chrome: Chrome,
    /// Sign-in is on.
    pub enabled: bool,
    /// Where to go after signing in (a local path).
    pub next: String,
    /// The name typed, kept after a failure.
    pub name: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// `next` when it is a path on this site; the overview otherwise (never
/// another site: "//evil.example" and "/\evil" are not local paths).
fn local_path(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control)
        && !next.starts_with("/login")
        && !next.starts_with("/logout");
    if local { next.to_string() } else { "/".into() }
}

fn login_page(app: &AppState, next: &str, name: &str) -> LoginPage {
    LoginPage {
        chrome: Chrome::new(app, ""),
        enabled: app.auth.mode == AuthMode::Local,
        next: local_path(next),
        name: name.to_string(),
        notice: None,
        error: None,
    }
}

pub async fn page(
    State(app): State<AppState>,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    html(&login_page(&app, &q.next, ""))
}

pub async fn sign_in(State(app): State<AppState>, req: Request) -> Response {
    let address = auth::client_address(&req);
    let old_session = auth::cookie(req.headers(), SESSION_COOKIE);
    let form = axum::Form::<LoginForm>::from_request(req, &()).await;
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.body_text()).into_response(),
    };
    if app.auth.mode != AuthMode::Local {
        return (StatusCode::NOT_FOUND, html(&login_page(&app, &f.next, ""))).into_response();
    }
    let name = f.name.trim().to_string();
    let result = app
        .service
        .sign_in_password(
            &name,
            &f.password,
            address,
            app.auth.limits,
            app.auth.throttle,
            Utc::now(),
        )
        .await;
    match result {
        Ok(session) => {
            // The browser's session from before (if any) ends here.
            if let Some(old) = old_session
                && let Err(e) = app.service.sign_out(&old).await
            {
                tracing::warn!(error = %e, "could not end the session before a sign-in");
            }
            let mut resp = Redirect::to(&local_path(&f.next)).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                auth::set_cookie(
                    SESSION_COOKIE,
                    &session.id,
                    app.auth.limits.absolute.num_seconds(),
                    app.auth.secure_cookies,
                ),
            );
            resp
        }
        Err(e) => {
            let status = match &e {
                SignInError::Wrong => StatusCode::UNAUTHORIZED,
                SignInError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                SignInError::Service(se) => {
                    tracing::error!(error = %se, "sign-in failed");
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            let mut page = login_page(&app, &f.next, &name);
            page.error = Some(match e {
                SignInError::Service(_) => {
                    "Signing in is not possible right now; the server log has the details.".into()
                }
                other => other.to_string(),
            });
            (status, html(&page)).into_response()
        }
    }
}

pub async fn sign_out(State(app): State<AppState>, req: Request) -> Response {
    if let Some(id) = auth::cookie(req.headers(), SESSION_COOKIE)
        && let Err(e) = app.service.sign_out(&id).await
    {
        tracing::error!(error = %e, "could not end a session");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "could not sign out; try again",
        )
            .into_response();
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(SESSION_COOKIE, "", 0, app.auth.secure_cookies),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path("/rollouts/3?x=1"), "/rollouts/3?x=1");
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example",
            "/\\evil",
            "/login",
            "/a\nb",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }
}

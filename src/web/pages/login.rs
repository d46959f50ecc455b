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
    /// Sign-in through the identity provider is offered.
    pub oidc: bool,
    /// Signed in through the identity provider: go on to this local path.
    /// (A page, not a redirect: the session cookie is SameSite=Strict, and
    /// a browser does not send it on a redirect that began at the
    /// provider's site.)
    pub continue_to: Option<String>,
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
        oidc: app.auth.oidc.is_some(),
        continue_to: None,
    }
}

/// The status and the message shown for a failed sign-in; the cause of a
/// failure on rollgate's side goes to the log only.
fn failure(e: SignInError) -> (StatusCode, String) {
    let status = match &e {
        SignInError::Wrong => StatusCode::UNAUTHORIZED,
        SignInError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        SignInError::OidcState(_) => StatusCode::BAD_REQUEST,
        SignInError::Oidc(crate::oidc::OidcError::Provider(_)) => StatusCode::BAD_GATEWAY,
        SignInError::Oidc(_) => StatusCode::FORBIDDEN,
        SignInError::Service(se) => {
            tracing::error!(error = %se, "sign-in failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    let message = match e {
        SignInError::Service(_) => {
            "Signing in is not possible right now; the server log has the details.".into()
        }
        other => other.to_string(),
    };
    (status, message)
}

/// The sign-in page again, saying why the sign-in failed.
fn failed(app: &AppState, next: &str, name: &str, e: SignInError) -> Response {
    let (status, message) = failure(e);
    let mut page = login_page(app, next, name);
    page.error = Some(message);
    (status, html(&page)).into_response()
}

/// `resp` with the new session's cookie; the browser's session from
/// before (if any) ends here.
async fn signed_in(
    app: &AppState,
    old_session: Option<String>,
    session: &crate::service::NewSession,
    mut resp: Response,
) -> Response {
    if let Some(old) = old_session
        && let Err(e) = app.service.sign_out(&old).await
    {
        tracing::warn!(error = %e, "could not end the session before a sign-in");
    }
    resp.headers_mut().append(
        header::SET_COOKIE,
        auth::set_cookie(
            &app.auth.cookie_name(SESSION_COOKIE),
            &session.id,
            app.auth.limits.absolute.num_seconds(),
            app.auth.secure_cookies,
        ),
    );
    resp
}

/// The cookie that ties an OIDC callback to the browser that began it.
/// SameSite=Lax, not Strict: it must come back with the provider's
/// redirect (a top-level GET from the provider's site).
const OIDC_COOKIE: &str = "rollgate_oidc";

/// `GET /login/oidc?next=…`: off to the identity provider.
pub async fn oidc_begin(
    State(app): State<AppState>,
    q: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let Some(provider) = app.auth.oidc.clone() else {
        return (StatusCode::NOT_FOUND, html(&login_page(&app, &q.next, ""))).into_response();
    };
    match app
        .service
        .begin_oidc(&provider, &local_path(&q.next), Utc::now())
        .await
    {
        Ok(begun) => {
            let mut resp = Redirect::to(&begun.url).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                auth::set_cookie_same_site(
                    &app.auth.cookie_name(OIDC_COOKIE),
                    &begun.browser_secret,
                    crate::service::OIDC_LOGIN_TTL.num_seconds(),
                    app.auth.secure_cookies,
                    "Lax",
                ),
            );
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not begin an OIDC sign-in");
            failed(&app, &q.next, "", e)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
}

/// `GET /login/oidc/callback?code=…&state=…`: back from the provider.
pub async fn oidc_callback(State(app): State<AppState>, req: Request) -> Response {
    let Some(provider) = app.auth.oidc.clone() else {
        return (StatusCode::NOT_FOUND, html(&login_page(&app, "", ""))).into_response();
    };
    let q = Query::<CallbackQuery>::try_from_uri(req.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let oidc_cookie = app.auth.cookie_name(OIDC_COOKIE);
    let browser = auth::cookie(req.headers(), &oidc_cookie);
    let clear_browser =
        auth::set_cookie_same_site(&oidc_cookie, "", 0, app.auth.secure_cookies, "Lax");
    let result = if !q.error.is_empty() {
        Err(app
            .service
            .abandon_oidc(&q.state, &q.error, browser.as_deref(), Utc::now())
            .await)
    } else if q.code.is_empty() || q.state.is_empty() {
        Err(SignInError::OidcState(
            "the identity provider sent no code and state: sign in again".into(),
        ))
    } else {
        app.service
            .finish_oidc(
                &provider,
                &q.state,
                &q.code,
                browser.as_deref(),
                app.auth.limits,
                Utc::now(),
            )
            .await
    };
    let old_session = auth::cookie(req.headers(), &app.auth.cookie_name(SESSION_COOKIE));
    let mut resp = match result {
        Ok((session, next)) => {
            let mut page = login_page(&app, &next, "");
            page.continue_to = Some(page.next.clone());
            signed_in(&app, old_session, &session, html(&page).into_response()).await
        }
        Err(e) => failed(&app, "", "", e),
    };
    resp.headers_mut().append(header::SET_COOKIE, clear_browser);
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
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
    let old_session = auth::cookie(req.headers(), &app.auth.cookie_name(SESSION_COOKIE));
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
            let next = Redirect::to(&local_path(&f.next)).into_response();
            signed_in(&app, old_session, &session, next).await
        }
        Err(e) => failed(&app, &f.next, &name, e),
    }
}

pub async fn sign_out(State(app): State<AppState>, req: Request) -> Response {
    if let Some(id) = auth::cookie(req.headers(), &app.auth.cookie_name(SESSION_COOKIE))
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
        auth::set_cookie(
            &app.auth.cookie_name(SESSION_COOKIE),
            "",
            0,
            app.auth.secure_cookies,
        ),
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

//! The admins' user page: every user with their role; a form to add one
//! (with a password), a role picker and a remove button per user. The same
//! rules as the API (`/api/v1/users`): audited, never the last admin.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::render::Ts;
use super::{Chrome, PageError, html};
use crate::domain::user::Role;
use crate::web::AppState;
use crate::web::auth::Caller;

pub struct UserLine {
    pub name: String,
    pub role: &'static str,
    pub created_at: Ts,
}

#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub chrome: Chrome,
    pub users: Vec<UserLine>,
    pub roles: Vec<&'static str>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

async fn users_page(app: &AppState) -> Result<UsersPage, PageError> {
    let users = app.service.users().await?;
    Ok(UsersPage {
        chrome: Chrome::new(app, "users"),
        users: users
            .into_iter()
            .map(|u| UserLine {
                name: u.name,
                role: u.role.as_str(),
                created_at: Ts::of(u.created_at),
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        notice: None,
        error: None,
    })
}

pub async fn page(State(app): State<AppState>) -> Response {
    match users_page(&app).await {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

/// The page again, with what happened (or why nothing did).
async fn after(app: &AppState, done: Result<String, String>) -> Response {
    match (done, users_page(app).await) {
        (Ok(notice), Ok(mut page)) => {
            page.notice = Some(notice);
            html(&page)
        }
        (Err(why), Ok(mut page)) => {
            page.error = Some(why);
            (StatusCode::BAD_REQUEST, html(&page)).into_response()
        }
        (_, Err(e)) => e.page(app),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct AddForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    form: Result<axum::Form<AddForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let done = async {
        let role = Role::parse(&f.role)?;
        let who = caller.principal(None).map_err(|e| e.0)?;
        let name = f.name.trim();
        app.service
            .add_user(&who, name, role, f.password)
            .await
            .map(|u| format!("{} added as {}.", u.name, u.role.as_str()))
            .map_err(|e| e.to_string())
    }
    .await;
    after(&app, done).await
}

#[derive(Debug, Default, Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

pub async fn set_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    form: Result<axum::Form<RoleForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let role = match Role::parse(&f.role) {
        Ok(r) => r,
        Err(e) => return after(&app, Err(e)).await,
    };
    let who = match caller.principal(None) {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    match app.service.set_user_role(&who, &name, role).await {
        Ok(()) => after(&app, Ok(format!("{name} is now {}.", role.as_str()))).await,
        Err(e) => PageError::from(e).page(&app),
    }
}

pub async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let who = match caller.principal(None) {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    match app.service.remove_user(&who, &name).await {
        Ok(()) => Redirect::to("/admin/users").into_response(),
        Err(e) => PageError::from(e).page(&app),
    }
}

/// Signs the user out everywhere (every session ends; tokens stay).
pub async fn sign_out(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let who = match caller.principal(None) {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    match app
        .service
        .end_sessions(&who, &format!("user:{name}"))
        .await
    {
        Ok(n) => {
            after(
                &app,
                Ok(format!(
                    "{name} is signed out everywhere; sessions ended: {n}."
                )),
            )
            .await
        }
        Err(e) => PageError::from(e).page(&app),
    }
}

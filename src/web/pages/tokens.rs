//! The admins' token page: every API token with its role, expiry and last
//! use; a form to make one (its secret is shown on the next page, once);
//! a button to revoke one.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::render::Ts;
use super::{Chrome, PageError, html};
use crate::domain::user::Role;
use crate::store::TokenRow;
use crate::web::AppState;
use crate::web::auth::Caller;
use crate::web::tokens::{NewToken, expiry};

/// One token as the page shows it.
pub struct TokenLine {
    pub name: String,
    pub role: &'static str,
    pub created_by: String,
    pub created_at: Ts,
    pub expires_at: Option<Ts>,
    pub last_used_at: Option<Ts>,
    pub revoked_at: Option<Ts>,
    /// Expired already (and not revoked).
    pub expired: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    pub chrome: Chrome,
    pub tokens: Vec<TokenLine>,
    pub roles: Vec<&'static str>,
    /// The token just made: its name and secret, shown this once.
    pub created: Option<(String, String)>,
    pub error: Option<String>,
}

fn line(t: TokenRow) -> TokenLine {
    let now = Utc::now();
    TokenLine {
        expired: t.revoked_at.is_none() && t.expires_at.is_some_and(|e| e <= now),
        name: t.name,
        role: t.role.as_str(),
        created_by: t.created_by,
        created_at: Ts::of(t.created_at),
        expires_at: t.expires_at.map(Ts::of),
        last_used_at: t.last_used_at.map(Ts::of),
        revoked_at: t.revoked_at.map(Ts::of),
    }
}

async fn tokens_page(app: &AppState) -> Result<TokensPage, PageError> {
    let tokens = app.service.tokens().await?;
    Ok(TokensPage {
        chrome: Chrome::new(app, "tokens"),
        tokens: tokens.into_iter().map(line).collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        created: None,
        error: None,
    })
}

pub async fn page(State(app): State<AppState>) -> Response {
    match tokens_page(&app).await {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// A plan duration ("30d"); empty: until revoked.
    #[serde(default)]
    expires_in: String,
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    form: Result<axum::Form<CreateForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let f = match form {
        Ok(axum::Form(f)) => f,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    let now = Utc::now();
    let made = async {
        if let Some(why) = crate::web::tokens::tokens_unchecked(&app) {
            return Err(why.to_string());
        }
        let role = Role::parse(&f.role)?;
        let req = NewToken {
            expires_in: Some(f.expires_in.trim().to_string()).filter(|s| !s.is_empty()),
            ..NewToken::default()
        };
        let expires_at = expiry(&req, now).map_err(|e| e.message())?;
        let who = caller.principal(None).map_err(|e| e.0)?;
        app.service
            .create_token(&who, f.name.trim(), role, expires_at, now)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match (made, tokens_page(&app).await) {
        (Ok((row, secret)), Ok(mut page)) => {
            page.created = Some((row.name, secret));
            (StatusCode::CREATED, html(&page)).into_response()
        }
        (Err(why), Ok(mut page)) => {
            page.error = Some(why);
            (StatusCode::BAD_REQUEST, html(&page)).into_response()
        }
        (_, Err(e)) => e.page(&app),
    }
}

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    let who = match caller.principal(None) {
        Ok(p) => p,
        Err(e) => return PageError::bad_request(e.0).page(&app),
    };
    match app.service.revoke_token(&who, &name, Utc::now()).await {
        Ok(()) => Redirect::to("/admin/tokens").into_response(),
        Err(e) => PageError::from(e).page(&app),
    }
}

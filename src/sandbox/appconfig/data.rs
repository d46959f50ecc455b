//! AppConfig's data plane (`aws-sdk-appconfigdata`): StartConfigurationSession
//! (`POST /configurationsessions`, identifiers by id or name) and
//! GetLatestConfiguration (`GET /configuration?configuration_token=…`).
//!
//! As AppConfig: every token is good for one call and for 24 hours; a call
//! before the session's poll interval has passed since the last one is
//! refused (`BadRequestException`, problem `PollIntervalNotSatisfied`) and
//! its token stays good; the body is empty when the session already has the
//! version it would get; while a deployment runs, a session gets the new
//! version once its fixed point (`deploy::bucket` of the session id) falls
//! within the deployment's percentage; after a rollback, the previous one.
//! Feature-flag profiles serve the values view. The traffic simulator's
//! execution environments go through the same two functions in-process.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{AppConfig, Error, FEATURE_FLAGS, deploy, flags};
use crate::sandbox::Shared;

/// A session's default poll interval, as AppConfig's.
const DEFAULT_INTERVAL: u32 = 60;
/// Tokens last 24 hours.
const TOKEN_LIFETIME: f64 = 24.0 * 3600.0;

#[derive(Debug, Clone)]
pub(in crate::sandbox) struct Session {
    pub app_id: String,
    pub env_id: String,
    pub profile_id: String,
    pub interval: u32,
    /// The session's fixed point in [0, 100) for deployment percentages.
    pub bucket: f64,
    /// The version it was last given.
    pub last: Option<u32>,
}

#[derive(Debug, Clone)]
pub(in crate::sandbox) struct Token {
    session: String,
    issued_at: f64,
    not_before: f64,
    used: bool,
}

/// One GetLatestConfiguration answer.
#[derive(Debug, Clone)]
pub(in crate::sandbox) struct Latest {
    pub next_token: String,
    pub interval: u32,
    /// Empty when the session already has this version.
    pub content: Vec<u8>,
    pub content_type: Option<String>,
    pub label: Option<String>,
}

fn bad_parameter(problem: &str, message: &str) -> Error {
    Error::bad_request(message.to_string()).with(json!({
        "Reason": "InvalidParameters",
        "Details": {"InvalidParameters": {"ConfigurationToken": {"Problem": problem}}},
    }))
}

fn missing(kind: &str, ident: &str) -> Error {
    Error::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("{kind} {ident} not found"),
    )
    .with(json!({ "ResourceType": kind.replace(' ', "") }))
}

impl AppConfig {
    fn issue_token(&mut self, session: &str, now: f64, not_before: f64) -> String {
        if self.tokens.len() > 50_000 {
            self.tokens
                .retain(|_, t| now - t.issued_at <= TOKEN_LIFETIME);
        }
        let n = self.issued;
        let id = self.new_id();
        let token = format!("AYAD{id}{n:x}{}", self.new_id());
        self.tokens.insert(
            token.clone(),
            Token {
                session: session.to_string(),
                issued_at: now,
                not_before,
                used: false,
            },
        );
        token
    }

    /// StartConfigurationSession at `now`: the initial token.
    pub fn start_session(
        &mut self,
        app: &str,
        env: &str,
        profile: &str,
        interval: Option<i64>,
        now: f64,
    ) -> Result<String, Error> {
        let interval = match interval {
            None => DEFAULT_INTERVAL,
            Some(i) if (15..=86_400).contains(&i) => i as u32,
            Some(i) => {
                return Err(Error::bad_request(format!(
                    "1 validation error detected: Value '{i}' at 'requiredMinimumPollIntervalInSeconds' failed to satisfy constraint: Member must have value between 15 and 86400"
                )));
            }
        };
        let a = self
            .applications
            .values()
            .find(|a| a.id == app || a.name == app)
            .ok_or_else(|| missing("Application", app))?;
        let e = a
            .environments
            .values()
            .find(|e| e.id == env || e.name == env)
            .ok_or_else(|| missing("Environment", env))?;
        let p = a
            .profiles
            .values()
            .find(|p| p.id == profile || p.name == profile)
            .ok_or_else(|| missing("Configuration Profile", profile))?;
        let session = Session {
            app_id: a.id.clone(),
            env_id: e.id.clone(),
            profile_id: p.id.clone(),
            interval,
            bucket: 0.0,
            last: None,
        };
        let id = format!("session-{}", self.new_id());
        let session = Session {
            bucket: deploy::bucket(&id),
            ..session
        };
        self.sessions.insert(id.clone(), session);
        Ok(self.issue_token(&id, now, now))
    }

    /// GetLatestConfiguration at `now`.
    pub fn latest(&mut self, token: &str, now: f64) -> Result<Latest, Error> {
        let t =
            self.tokens.get(token).cloned().ok_or_else(|| {
                bad_parameter("Corrupted", "The configuration token is not valid")
            })?;
        if t.used {
            return Err(bad_parameter(
                "Expired",
                "The configuration token was already used: pass the NextPollConfigurationToken of that call",
            ));
        }
        if now - t.issued_at > TOKEN_LIFETIME {
            return Err(bad_parameter(
                "Expired",
                "The configuration token expired (tokens are valid for 24 hours)",
            ));
        }
        if now < t.not_before {
            return Err(bad_parameter(
                "PollIntervalNotSatisfied",
                &format!(
                    "The session's poll interval has not passed: poll again in {:.0} seconds",
                    (t.not_before - now).ceil()
                ),
            ));
        }
        let s =
            self.sessions.get(&t.session).cloned().ok_or_else(|| {
                bad_parameter("Corrupted", "The configuration token is not valid")
            })?;
        let minute = self.minute;
        let app = self
            .applications
            .get(&s.app_id)
            .ok_or_else(|| missing("Application", &s.app_id))?;
        let profile = app
            .profiles
            .get(&s.profile_id)
            .ok_or_else(|| missing("Configuration Profile", &s.profile_id))?;
        let version = app
            .environments
            .get(&s.env_id)
            .and_then(|e| e.serves(&s.profile_id, s.bucket, now, minute))
            .ok_or_else(|| {
                missing(
                    "Deployment",
                    &format!("of {} to {}", profile.name, s.env_id),
                )
            })?;
        let v = profile
            .versions
            .get(version as usize - 1)
            .ok_or_else(|| missing("Configuration", &version.to_string()))?;
        let (content, content_type, label) = if s.last == Some(version) {
            (Vec::new(), None, None)
        } else if profile.kind == FEATURE_FLAGS {
            (
                flags::values_view(&v.content).to_string().into_bytes(),
                Some("application/json".to_string()),
                v.label.clone(),
            )
        } else {
            (
                v.content.clone(),
                Some(v.content_type.clone()),
                v.label.clone(),
            )
        };
        if let Some(t) = self.tokens.get_mut(token) {
            t.used = true;
        }
        if let Some(sess) = self.sessions.get_mut(&t.session) {
            sess.last = Some(version);
        }
        let next_token = self.issue_token(&t.session, now, now + f64::from(s.interval));
        Ok(Latest {
            next_token,
            interval: s.interval,
            content,
            content_type,
            label,
        })
    }
}

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/configurationsessions", post(start_session))
        .route("/configuration", get(get_latest))
}

async fn start_session(State(shared): State<Shared>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return Error::bad_request("The request body must be a JSON object").into_response(),
    };
    let ident = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .filter(|s| (1..=128).contains(&s.len()))
    };
    let (Some(app), Some(env), Some(profile)) = (
        ident("ApplicationIdentifier"),
        ident("EnvironmentIdentifier"),
        ident("ConfigurationProfileIdentifier"),
    ) else {
        return Error::bad_request(
            "ApplicationIdentifier, EnvironmentIdentifier and ConfigurationProfileIdentifier are required (1 to 128 characters)",
        )
        .into_response();
    };
    let interval = match body.get("RequiredMinimumPollIntervalInSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(i) => Some(i),
            None => {
                return Error::bad_request(
                    "RequiredMinimumPollIntervalInSeconds must be an integer",
                )
                .into_response();
            }
        },
    };
    let mut w = shared.lock();
    let now = w.appconfig.now();
    match w.appconfig.start_session(app, env, profile, interval, now) {
        Ok(token) => (
            StatusCode::CREATED,
            axum::Json(json!({ "InitialConfigurationToken": token })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn get_latest(
    State(shared): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = q.get("configuration_token").filter(|t| !t.is_empty()) else {
        return Error::bad_request("Missing required parameter ConfigurationToken").into_response();
    };
    let mut w = shared.lock();
    let now = w.appconfig.now();
    let latest = match w.appconfig.latest(token, now) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header("next-poll-configuration-token", &latest.next_token)
        .header("next-poll-interval-in-seconds", latest.interval.to_string());
    if let Some(ct) = &latest.content_type {
        b = b.header("content-type", ct);
    }
    if let Some(label) = &latest.label {
        b = b.header("version-label", label);
    }
    b.body(Body::from(latest.content))
        .unwrap_or_else(|_| Error::bad_request("unrepresentable header").into_response())
}

//! AWS AppConfig (REST-JSON), control plane (`control`) and data plane
//! (`data`), with AppConfig's semantics: optimistic hosted-version numbers,
//! one deployment per environment at a time, progression by the strategy
//! (`deploy`, pure), rollbacks by StopDeployment or by a CloudWatch alarm
//! the environment monitors, and sessions that get the new configuration by
//! the deployment's percentage.
//!
//! Errors are AppConfig's: the model's status, an `x-amzn-ErrorType` header
//! naming the exception (the SDK reads the code there) and a JSON body
//! `{"Message": "..."}`.

mod control;
pub(super) mod data;
pub mod deploy;
mod flags;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Shared;
use deploy::{Growth, Phase, Shape};

/// How long one strategy minute lasts by default: a real minute.
pub const DEFAULT_MINUTE: Duration = Duration::from_secs(60);

/// Hosted configurations are limited to 2 MB by default.
const MAX_CONTENT: usize = 2 * 1024 * 1024;

/// AppConfig lets a completed deployment be reverted for 72 hours.
const REVERT_WINDOW_MINUTES: f64 = 72.0 * 60.0;

pub(super) const FEATURE_FLAGS: &str = "AWS.AppConfig.FeatureFlags";
const FREEFORM: &str = "AWS.Freeform";

/// Everything AppConfig holds, plus its faults and clock.
#[derive(Debug)]
pub(super) struct AppConfig {
    pub applications: BTreeMap<String, Application>,
    pub strategies: BTreeMap<String, Strategy>,
    pub sessions: HashMap<String, data::Session>,
    pub tokens: HashMap<String, data::Token>,
    /// How long a strategy minute lasts (see `SandboxConfig::appconfig_minute`).
    pub minute: Duration,
    /// When set, AppConfig's time (epoch seconds) instead of the real clock.
    pub clock: Option<f64>,
    pub faults: Faults,
    /// Ids handed out so far (for fresh, deterministic ones).
    issued: u64,
}

/// AppConfig's injected faults (cleared by a reset).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(super) struct Faults {
    pub throttle_next: u64,
    pub fail_next: u64,
    /// profile id → content someone else stores as a new hosted version
    /// right after the next GetHostedConfigurationVersion of that profile.
    pub foreign_versions: BTreeMap<String, String>,
    /// Environments whose running (or next) deployment rolls back as if an
    /// alarm fired.
    pub rollback_next: BTreeSet<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            applications: BTreeMap::new(),
            strategies: predefined_strategies(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            minute: DEFAULT_MINUTE,
            clock: None,
            faults: Faults::default(),
            issued: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Application {
    pub id: String,
    pub name: String,
    pub description: String,
    pub environments: BTreeMap<String, Environment>,
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Monitor {
    pub alarm_arn: String,
    pub alarm_role_arn: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Environment {
    pub id: String,
    pub name: String,
    pub description: String,
    pub monitors: Vec<Monitor>,
    /// Deployment number N is at index N - 1.
    pub deployments: Vec<Deployment>,
}

#[derive(Debug, Clone)]
pub(super) struct Profile {
    pub id: String,
    pub name: String,
    pub description: String,
    pub location_uri: String,
    pub kind: String,
    pub retrieval_role_arn: Option<String>,
    /// Version number N is at index N - 1.
    pub versions: Vec<HostedVersion>,
}

#[derive(Debug, Clone)]
pub(super) struct HostedVersion {
    pub number: u32,
    pub content: Vec<u8>,
    pub content_type: String,
    pub description: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Clone)]
pub(super) struct Strategy {
    pub id: String,
    pub name: String,
    pub description: String,
    pub shape: Shape,
    pub replicate_to: String,
}

/// How a deployment ended other than by completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    RolledBack,
    Reverted,
}

#[derive(Debug, Clone)]
pub(super) struct Stopped {
    pub at: f64,
    pub how: Stop,
    /// `USER`, `CLOUDWATCH_ALARM`.
    pub by: &'static str,
}

#[derive(Debug, Clone)]
pub(super) struct Deployment {
    pub number: u32,
    pub profile_id: String,
    pub version: u32,
    pub strategy: Strategy,
    pub description: String,
    /// Epoch seconds, by AppConfig's clock.
    pub started_at: f64,
    /// The version of that profile deployed before this one, if any.
    pub previous: Option<u32>,
    pub stopped: Option<Stopped>,
}

/// A deployment's `State`, with its share.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum State {
    Deploying(f64),
    Baking,
    Complete(f64),
    RolledBack,
    Reverted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Deploying(_) => "DEPLOYING",
            State::Baking => "BAKING",
            State::Complete(_) => "COMPLETE",
            State::RolledBack => "ROLLED_BACK",
            State::Reverted => "REVERTED",
        }
    }

    /// Whether the deployment still holds its environment.
    pub fn running(self) -> bool {
        matches!(self, State::Deploying(_) | State::Baking)
    }
}

impl Deployment {
    /// Strategy minutes from the start to `t`.
    fn minutes(&self, t: f64, minute: Duration) -> f64 {
        (t - self.started_at) / minute.as_secs_f64().max(1e-9)
    }

    /// The state at `now`.
    pub fn state(&self, now: f64, minute: Duration) -> State {
        if let Some(s) = &self.stopped
            && s.at <= now
        {
            return match s.how {
                Stop::RolledBack => State::RolledBack,
                Stop::Reverted => State::Reverted,
            };
        }
        match deploy::phase(&self.strategy.shape, self.minutes(now, minute)) {
            Phase::Deploying { percent } => State::Deploying(percent),
            Phase::Baking => State::Baking,
            Phase::Complete { at_minutes } => {
                State::Complete(self.started_at + at_minutes * minute.as_secs_f64())
            }
        }
    }

    /// PercentageComplete: the share reached (kept when rolled back).
    pub fn percentage(&self, now: f64, minute: Duration) -> f64 {
        let until = self.stopped.as_ref().map_or(now, |s| s.at.min(now));
        deploy::percent_at(&self.strategy.shape, self.minutes(until, minute))
    }

    /// The version a session in `bucket` is served at `now`.
    pub fn serves(&self, bucket: f64, now: f64, minute: Duration) -> Option<u32> {
        match self.state(now, minute) {
            State::Deploying(p) if !deploy::in_share(bucket, p) => self.previous,
            State::Deploying(_) | State::Baking | State::Complete(_) => Some(self.version),
            State::RolledBack | State::Reverted => self.previous,
        }
    }
}

impl Environment {
    /// The environment's `State`, from its last deployment.
    pub fn state(&self, now: f64, minute: Duration) -> &'static str {
        match self.deployments.last().map(|d| d.state(now, minute)) {
            Some(State::Deploying(_) | State::Baking) => "DEPLOYING",
            Some(State::RolledBack) => "ROLLED_BACK",
            Some(State::Reverted) => "REVERTED",
            Some(State::Complete(_)) | None => "READY_FOR_DEPLOYMENT",
        }
    }

    /// The version of `profile` a session in `bucket` gets at `now`.
    pub fn serves(&self, profile: &str, bucket: f64, now: f64, minute: Duration) -> Option<u32> {
        self.deployments
            .iter()
            .rev()
            .find(|d| d.profile_id == profile)
            .and_then(|d| d.serves(bucket, now, minute))
    }

    /// The deployment holding the environment at `now`, if any.
    pub fn running(&mut self, now: f64, minute: Duration) -> Option<&mut Deployment> {
        self.deployments
            .last_mut()
            .filter(|d| d.state(now, minute).running())
    }
}

/// AWS's predefined strategies, under their real ids.
fn predefined_strategies() -> BTreeMap<String, Strategy> {
    let s = |id: &str, description: &str, duration, factor, growth, bake| Strategy {
        id: id.to_string(),
        name: id.to_string(),
        description: description.to_string(),
        shape: Shape {
            duration_minutes: duration,
            bake_minutes: bake,
            growth_factor: factor,
            growth,
        },
        replicate_to: "NONE".into(),
    };
    [
        s("AppConfig.AllAtOnce", "Quick", 0, 100.0, Growth::Linear, 10),
        s(
            "AppConfig.Linear50PercentEvery30Seconds",
            "Test/Demo",
            1,
            50.0,
            Growth::Linear,
            1,
        ),
        s(
            "AppConfig.Linear20PercentEvery6Minutes",
            "AWS Recommended",
            30,
            20.0,
            Growth::Linear,
            30,
        ),
        s(
            "AppConfig.Canary10Percent20Minutes",
            "AWS Recommended",
            20,
            10.0,
            Growth::Exponential,
            10,
        ),
    ]
    .into_iter()
    .map(|s| (s.id.clone(), s))
    .collect()
}

impl AppConfig {
    /// AppConfig's now, epoch seconds.
    pub fn now(&self) -> f64 {
        self.clock
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis() as f64 / 1000.0)
    }

    /// Changes the length of a strategy minute. Deployments keep the strategy
    /// minutes they have run so far (their start and stop times move on the
    /// sandbox's clock), so nothing jumps backwards or forwards.
    pub fn set_minute(&mut self, minute: Duration) {
        let minute = minute.max(Duration::from_millis(1));
        let now = self.now();
        let ratio = minute.as_secs_f64() / self.minute.as_secs_f64().max(1e-9);
        let rebase = |t: f64| now - (now - t) * ratio;
        for app in self.applications.values_mut() {
            for env in app.environments.values_mut() {
                for d in &mut env.deployments {
                    d.started_at = rebase(d.started_at);
                    if let Some(s) = &mut d.stopped {
                        s.at = rebase(s.at);
                    }
                }
            }
        }
        self.minute = minute;
    }

    /// A fresh 7-character id (lowercase letters and digits, as AWS's),
    /// unique among everything handed out.
    pub fn new_id(&mut self) -> String {
        self.issued += 1;
        let mut h = self.issued.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^= h >> 32;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..7)
            .map(|i| ALPHABET[((h >> (i * 5)) % 36) as usize] as char)
            .collect()
    }

    /// Applies what time and alarms do: deployments on environments whose
    /// monitored alarm is in ALARM (or with a pending rollback fault) roll back.
    pub fn settle(&mut self, alarm_since: &dyn Fn(&str) -> Option<f64>) {
        let now = self.now();
        let minute = self.minute;
        let pending = &mut self.faults.rollback_next;
        for app in self.applications.values_mut() {
            for env in app.environments.values_mut() {
                let forced = pending.contains(&env.id);
                let since = env
                    .monitors
                    .iter()
                    .filter_map(|m| alarm_name(&m.alarm_arn))
                    .filter_map(alarm_since)
                    .reduce(f64::min);
                let Some(d) = env.deployments.last_mut() else {
                    continue;
                };
                if d.stopped.is_some() {
                    continue;
                }
                if forced {
                    if d.state(now, minute).running() {
                        d.stopped = Some(Stopped {
                            at: now,
                            how: Stop::RolledBack,
                            by: "CLOUDWATCH_ALARM",
                        });
                        pending.remove(&env.id);
                    }
                    continue;
                }
                // The alarm went off at `since`: a deployment running then
                // (started before, not yet complete) rolled back then.
                if let Some(since) = since {
                    let at = since.max(d.started_at).min(now);
                    if d.state(at, minute).running() {
                        d.stopped = Some(Stopped {
                            at,
                            how: Stop::RolledBack,
                            by: "CLOUDWATCH_ALARM",
                        });
                    }
                }
            }
        }
    }

    /// The `/_sandbox/state` section.
    pub fn admin_view(&self) -> Value {
        let now = self.now();
        let minute = self.minute;
        let apps: Vec<Value> = self
            .applications
            .values()
            .map(|a| {
                json!({
                    "id": a.id,
                    "name": a.name,
                    "environments": a.environments.values().map(|e| json!({
                        "id": e.id,
                        "name": e.name,
                        "state": e.state(now, minute),
                        "monitors": e.monitors,
                        "deployed": a.profiles.keys().filter_map(|p| {
                            // What a session outside any partial share gets.
                            e.serves(p, 100.0, now, minute).map(|v| (p.clone(), v))
                        }).collect::<BTreeMap<_, _>>(),
                        "deployments": e.deployments.iter().map(|d| json!({
                            "number": d.number,
                            "profile": d.profile_id,
                            "version": d.version,
                            "previous": d.previous,
                            "strategy": d.strategy.id,
                            "state": d.state(now, minute).name(),
                            "percentage": d.percentage(now, minute),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "profiles": a.profiles.values().map(|p| json!({
                        "id": p.id,
                        "name": p.name,
                        "type": p.kind,
                        "versions": p.versions.iter().map(|v| json!({
                            "number": v.number,
                            "label": v.label,
                            "content_type": v.content_type,
                            "content": String::from_utf8_lossy(&v.content),
                        })).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "applications": apps,
            "sessions": self.sessions.len(),
            "minute_ms": self.minute.as_millis() as u64,
            "faults": self.faults,
        })
    }
}

/// The alarm name in `arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`.
pub(super) fn alarm_name(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(7, ':');
    let (Some("arn"), _, Some("cloudwatch"), _, _, Some("alarm"), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    (!name.is_empty()).then_some(name)
}

/// ISO 8601 with milliseconds, as AppConfig's JSON timestamps.
pub(super) fn iso(t: f64) -> String {
    chrono::DateTime::from_timestamp_millis((t * 1000.0).round() as i64)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An AppConfig error answer.
#[derive(Debug)]
pub(super) struct Error {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    extra: Value,
}

impl Error {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Error {
        Error {
            status,
            code,
            message: message.into(),
            extra: json!({}),
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    pub fn not_found(what: &str, id: &str) -> Error {
        let mut e = Error::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("{what} {id} not found"),
        );
        e.extra = json!({ "ResourceName": id });
        e
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Error {
        Error::new(StatusCode::CONFLICT, "ConflictException", message)
    }

    pub fn is_bad_request(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST
    }

    /// A data-plane call made before the session's poll interval passed.
    pub fn is_poll_too_early(&self) -> bool {
        self.extra["Details"]["InvalidParameters"]["ConfigurationToken"]["Problem"]
            == "PollIntervalNotSatisfied"
    }

    /// Extra members of the body (`Reason`, `Details`, `ResourceType`…).
    pub fn with(mut self, extra: Value) -> Error {
        self.extra = extra;
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut body = json!({ "Message": self.message });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            b.extend(extra.clone());
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.headers_mut().insert(
            "x-amzn-errortype",
            axum::http::HeaderValue::from_static(self.code),
        );
        resp
    }
}

pub(super) type Reply = Result<Response, Error>;

/// Throttling and 5xx faults, for both planes.
pub(super) fn take_fault(f: &mut Faults) -> Option<Error> {
    if super::take(&mut f.throttle_next) {
        Some(Error::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottlingException",
            "Rate exceeded",
        ))
    } else if super::take(&mut f.fail_next) {
        Some(Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerException",
            "injected fault: AppConfig encountered an internal error",
        ))
    } else {
        None
    }
}

/// Both planes' routes (their paths do not overlap).
pub(super) fn router() -> Router<Shared> {
    control::router()
        .merge(data::router())
        // Hosted versions may be up to 2 MB; a larger body gets AppConfig's
        // own 413, not the server's.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_CONTENT * 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_arns_name_their_alarm() {
        assert_eq!(
            alarm_name("arn:aws:cloudwatch:us-east-1:123456789012:alarm:errors-high"),
            Some("errors-high")
        );
        assert_eq!(
            alarm_name("arn:aws:cloudwatch:us-east-1:123456789012:alarm:a:b"),
            Some("a:b")
        );
        assert_eq!(alarm_name("arn:aws:sns:us-east-1:123456789012:topic"), None);
        assert_eq!(alarm_name("errors-high"), None);
    }

    #[test]
    fn ids_look_like_aws_ids_and_differ() {
        let mut a = AppConfig::default();
        let ids: BTreeSet<String> = (0..10_000).map(|_| a.new_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| {
            id.len() == 7
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        }));
    }

    fn deployment(strategy: &str, previous: Option<u32>) -> Deployment {
        Deployment {
            number: 1,
            profile_id: "p".into(),
            version: 2,
            strategy: predefined_strategies()[strategy].clone(),
            description: String::new(),
            started_at: 1000.0,
            previous,
            stopped: None,
        }
    }

    #[test]
    fn sessions_follow_the_percentage_and_the_rollback() {
        let minute = Duration::from_secs(60);
        let mut d = deployment("AppConfig.Linear50PercentEvery30Seconds", Some(1));
        // Before the first step nobody has it; after it, the lower half.
        assert_eq!(d.serves(10.0, 1010.0, minute), Some(1));
        assert_eq!(d.serves(10.0, 1031.0, minute), Some(2));
        assert_eq!(d.serves(60.0, 1031.0, minute), Some(1));
        assert_eq!(d.state(1061.0, minute), State::Baking);
        assert_eq!(d.serves(60.0, 1061.0, minute), Some(2));
        assert_eq!(d.state(1121.0, minute), State::Complete(1120.0));
        d.stopped = Some(Stopped {
            at: 1040.0,
            how: Stop::RolledBack,
            by: "USER",
        });
        assert_eq!(d.state(1050.0, minute), State::RolledBack);
        assert_eq!(d.serves(10.0, 1050.0, minute), Some(1));
        assert_eq!(d.percentage(1050.0, minute), 50.0, "the share it reached");
        // A scaled clock: a minute of 200 ms.
        let fast = Duration::from_millis(200);
        let d = deployment("AppConfig.AllAtOnce", None);
        assert_eq!(d.state(1000.0, fast), State::Baking);
        assert_eq!(d.state(1002.0, fast), State::Complete(1002.0));
    }
}

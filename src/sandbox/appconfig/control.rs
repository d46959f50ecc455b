//! AppConfig's control plane, as the official SDK sends it: applications,
//! environments (with alarm monitors), configuration profiles (hosted),
//! hosted configuration versions (optimistic `Latest-Version-Number`,
//! FeatureFlags validation), deployment strategies (AWS's predefined ones
//! included) and deployments (one per environment at a time; StopDeployment
//! rolls back or, with `Allow-Revert`, reverts). Resources are named by id.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::deploy::{self, EventKind, Growth, Shape};
use super::{
    AppConfig, Application, Deployment, Environment, Error, FEATURE_FLAGS, FREEFORM, HostedVersion,
    MAX_CONTENT, Monitor, Profile, REVERT_WINDOW_MINUTES, Reply, State as DState, Stop, Stopped,
    Strategy, flags, iso,
};
use crate::sandbox::Shared;

pub(super) fn router() -> Router<Shared> {
    let app = "/applications/{app}";
    Router::new()
        .route(
            "/applications",
            get(list_applications).post(create_application),
        )
        .route(app, get(get_application))
        .route(
            &format!("{app}/environments"),
            get(list_environments).post(create_environment),
        )
        .route(&format!("{app}/environments/{{env}}"), get(get_environment))
        .route(
            &format!("{app}/configurationprofiles"),
            get(list_profiles).post(create_profile),
        )
        .route(
            &format!("{app}/configurationprofiles/{{profile}}"),
            get(get_profile),
        )
        .route(
            &format!("{app}/configurationprofiles/{{profile}}/hostedconfigurationversions"),
            get(list_versions).post(create_version),
        )
        .route(
            &format!("{app}/configurationprofiles/{{profile}}/hostedconfigurationversions/{{n}}"),
            get(get_version),
        )
        .route(
            "/deploymentstrategies",
            get(list_strategies).post(create_strategy),
        )
        .route("/deploymentstrategies/{id}", get(get_strategy))
        .route(
            &format!("{app}/environments/{{env}}/deployments"),
            get(list_deployments).post(start_deployment),
        )
        .route(
            &format!("{app}/environments/{{env}}/deployments/{{n}}"),
            get(get_deployment).delete(stop_deployment),
        )
}

type Params = Query<HashMap<String, String>>;

fn json_body(body: &Bytes) -> Result<Map<String, Value>, Error> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Error::bad_request("The request body must be a JSON object")),
        Err(e) => Err(Error::bad_request(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// A string member within AppConfig's length limits; `None` when absent.
fn string(
    body: &Map<String, Value>,
    key: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(Error::bad_request(format!(
            "1 validation error detected: Value at '{key}' failed to satisfy constraint: Member must have length between {min} and {max}"
        ))),
        Some(_) => Err(Error::bad_request(format!("{key} must be a string"))),
    }
}

fn required(body: &Map<String, Value>, key: &str, min: usize, max: usize) -> Result<String, Error> {
    string(body, key, min, max)?
        .ok_or_else(|| Error::bad_request(format!("Missing required parameter {key}")))
}

/// An integer member within bounds; `None` when absent.
fn integer(body: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::bad_request(format!(
                "1 validation error detected: Value {v} at '{key}' failed to satisfy constraint: Member must be between {min} and {max}"
            ))),
        },
    }
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, axum::Json(v)).into_response()
}

fn ok(v: Value) -> Reply {
    Ok(axum::Json(v).into_response())
}

/// One page of `items` by `max_results` (1–50, default 50) and `next_token`.
fn page(items: Vec<Value>, q: &HashMap<String, String>) -> Result<Value, Error> {
    let max = match q.get("max_results") {
        None => 50,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=50).contains(&n) => n,
            _ => {
                return Err(Error::bad_request(format!(
                    "1 validation error detected: Value '{m}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50"
                )));
            }
        },
    };
    let start = match q.get("next_token") {
        None => 0,
        Some(t) => hex::decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
            .filter(|n: &usize| *n <= items.len())
            .ok_or_else(|| Error::bad_request("The next token is not valid"))?,
    };
    let end = (start + max).min(items.len());
    let mut out = json!({ "Items": items[start..end] });
    if end < items.len() {
        out["NextToken"] = json!(hex::encode(format!("offset:{end}")));
    }
    Ok(out)
}

fn application<'a>(ac: &'a mut AppConfig, id: &str) -> Result<&'a mut Application, Error> {
    ac.applications
        .get_mut(id)
        .ok_or_else(|| Error::not_found("Application", id))
}

fn environment<'a>(
    ac: &'a mut AppConfig,
    app: &str,
    env: &str,
) -> Result<&'a mut Environment, Error> {
    application(ac, app)?
        .environments
        .get_mut(env)
        .ok_or_else(|| Error::not_found("Environment", env))
}

fn profile<'a>(ac: &'a mut AppConfig, app: &str, id: &str) -> Result<&'a mut Profile, Error> {
    application(ac, app)?
        .profiles
        .get_mut(id)
        .ok_or_else(|| Error::not_found("Configuration profile", id))
}

fn application_json(a: &Application) -> Value {
    json!({ "Id": a.id, "Name": a.name, "Description": a.description })
}

async fn create_application(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body = json_body(&body)?;
    let name = required(&body, "Name", 1, 64)?;
    let description = string(&body, "Description", 0, 1024)?.unwrap_or_default();
    let mut w = shared.lock();
    let id = w.appconfig.new_id();
    let app = Application {
        id: id.clone(),
        name,
        description,
        environments: Default::default(),
        profiles: Default::default(),
    };
    let out = application_json(&app);
    w.appconfig.applications.insert(id, app);
    Ok(created(out))
}

async fn get_application(State(shared): State<Shared>, Path(app): Path<String>) -> Reply {
    let mut w = shared.lock();
    ok(application_json(application(&mut w.appconfig, &app)?))
}

async fn list_applications(State(shared): State<Shared>, Query(q): Params) -> Reply {
    let w = shared.lock();
    let items = w
        .appconfig
        .applications
        .values()
        .map(application_json)
        .collect();
    ok(page(items, &q)?)
}

fn environment_json(app: &str, e: &Environment, ac: &AppConfig) -> Value {
    json!({
        "ApplicationId": app,
        "Id": e.id,
        "Name": e.name,
        "Description": e.description,
        "State": e.state(ac.now(), ac.minute),
        "Monitors": e.monitors.iter().map(|m| {
            let mut v = json!({ "AlarmArn": m.alarm_arn });
            if let Some(role) = &m.alarm_role_arn {
                v["AlarmRoleArn"] = json!(role);
            }
            v
        }).collect::<Vec<_>>(),
    })
}

fn parse_monitors(body: &Map<String, Value>) -> Result<Vec<Monitor>, Error> {
    let list = match body.get("Monitors") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) if a.len() <= 5 => a,
        Some(Value::Array(_)) => {
            return Err(Error::bad_request(
                "1 validation error detected: Value at 'monitors' failed to satisfy constraint: Member must have length less than or equal to 5",
            ));
        }
        Some(_) => return Err(Error::bad_request("Monitors must be a list")),
    };
    list.iter()
        .map(|m| {
            let m = m
                .as_object()
                .ok_or_else(|| Error::bad_request("Each monitor must be an object"))?;
            Ok(Monitor {
                alarm_arn: required(m, "AlarmArn", 1, 2048)?,
                alarm_role_arn: string(m, "AlarmRoleArn", 20, 2048)?,
            })
        })
        .collect()
}

async fn create_environment(
    State(shared): State<Shared>,
    Path(app): Path<String>,
    body: Bytes,
) -> Reply {
    let body = json_body(&body)?;
    let name = required(&body, "Name", 1, 64)?;
    let description = string(&body, "Description", 0, 1024)?.unwrap_or_default();
    let monitors = parse_monitors(&body)?;
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    application(ac, &app)?;
    let id = ac.new_id();
    let env = Environment {
        id: id.clone(),
        name,
        description,
        monitors,
        deployments: Vec::new(),
    };
    let out = environment_json(&app, &env, ac);
    application(ac, &app)?.environments.insert(id, env);
    Ok(created(out))
}

async fn get_environment(
    State(shared): State<Shared>,
    Path((app, env)): Path<(String, String)>,
) -> Reply {
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let e = environment(ac, &app, &env)?.clone();
    ok(environment_json(&app, &e, ac))
}

async fn list_environments(
    State(shared): State<Shared>,
    Path(app): Path<String>,
    Query(q): Params,
) -> Reply {
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let a = application(ac, &app)?.clone();
    let items = a
        .environments
        .values()
        .map(|e| environment_json(&app, e, ac))
        .collect();
    ok(page(items, &q)?)
}

fn profile_json(app: &str, p: &Profile) -> Value {
    let mut v = json!({
        "ApplicationId": app,
        "Id": p.id,
        "Name": p.name,
        "Description": p.description,
        "LocationUri": p.location_uri,
        "Validators": [],
        "Type": p.kind,
    });
    if let Some(role) = &p.retrieval_role_arn {
        v["RetrievalRoleArn"] = json!(role);
    }
    v
}

async fn create_profile(
    State(shared): State<Shared>,
    Path(app): Path<String>,
    body: Bytes,
) -> Reply {
    let body = json_body(&body)?;
    let name = required(&body, "Name", 1, 128)?;
    let description = string(&body, "Description", 0, 1024)?.unwrap_or_default();
    let location_uri = required(&body, "LocationUri", 1, 2048)?;
    if location_uri != "hosted" {
        return Err(Error::bad_request(format!(
            "The sandbox hosts configurations itself: LocationUri must be \"hosted\", not {location_uri:?}"
        )));
    }
    let kind = string(&body, "Type", 1, 256)?.unwrap_or_else(|| FREEFORM.to_string());
    if kind != FREEFORM && kind != FEATURE_FLAGS {
        return Err(Error::bad_request(format!(
            "Type must be {FREEFORM} or {FEATURE_FLAGS}, not {kind:?}"
        )));
    }
    let retrieval_role_arn = string(&body, "RetrievalRoleArn", 20, 2048)?;
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    application(ac, &app)?;
    let id = ac.new_id();
    let p = Profile {
        id: id.clone(),
        name,
        description,
        location_uri,
        kind,
        retrieval_role_arn,
        versions: Vec::new(),
    };
    let out = profile_json(&app, &p);
    application(ac, &app)?.profiles.insert(id, p);
    Ok(created(out))
}

async fn get_profile(
    State(shared): State<Shared>,
    Path((app, id)): Path<(String, String)>,
) -> Reply {
    let mut w = shared.lock();
    ok(profile_json(&app, profile(&mut w.appconfig, &app, &id)?))
}

async fn list_profiles(
    State(shared): State<Shared>,
    Path(app): Path<String>,
    Query(q): Params,
) -> Reply {
    let mut w = shared.lock();
    let a = application(&mut w.appconfig, &app)?;
    let items = a
        .profiles
        .values()
        .filter(|p| q.get("type").is_none_or(|t| *t == p.kind))
        .map(|p| {
            json!({
                "ApplicationId": app,
                "Id": p.id,
                "Name": p.name,
                "LocationUri": p.location_uri,
                "ValidatorTypes": [],
                "Type": p.kind,
            })
        })
        .collect();
    ok(page(items, &q)?)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The hosted version's answer: the content as the body, the rest in headers.
fn version_response(status: StatusCode, app: &str, profile: &str, v: &HostedVersion) -> Response {
    let mut resp = (status, v.content.clone()).into_response();
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set("application-id", app);
    set("configuration-profile-id", profile);
    set("version-number", &v.number.to_string());
    set("content-type", &v.content_type);
    if let Some(d) = &v.description {
        set("description", d);
    }
    if let Some(l) = &v.label {
        set("versionlabel", l);
    }
    resp
}

async fn create_version(
    State(shared): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let content_type = header(&headers, "content-type")
        .filter(|c| !c.is_empty() && c.len() <= 255)
        .ok_or_else(|| Error::bad_request("Missing required parameter ContentType"))?
        .to_string();
    let latest = match header(&headers, "latest-version-number") {
        None => None,
        Some(n) => Some(n.trim().parse::<i64>().map_err(|_| {
            Error::bad_request(format!("Latest-Version-Number {n:?} is not an integer"))
        })?),
    };
    let label = header(&headers, "versionlabel").map(str::to_string);
    if let Some(l) = &label
        && (l.is_empty() || l.len() > 64 || l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Error::bad_request(
            "VersionLabel must be 1 to 64 characters and contain a non-numeric character",
        ));
    }
    let description = header(&headers, "description").map(str::to_string);
    if body.len() > MAX_CONTENT {
        return Err(Error::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "The configuration size is too large",
        )
        .with(json!({
            "Measure": "MEGABYTES",
            "Limit": 2.0,
            "Size": body.len() as f64 / (1024.0 * 1024.0),
        })));
    }
    let mut w = shared.lock();
    let p = profile(&mut w.appconfig, &app, &id)?;
    let current = p.versions.len() as i64;
    if let Some(latest) = latest
        && latest != current
    {
        return Err(Error::conflict(format!(
            "Latest-Version-Number {latest} does not match the latest version {current} of configuration profile {id}"
        )));
    }
    if p.kind == FEATURE_FLAGS {
        if !content_type.starts_with("application/json") {
            return Err(Error::bad_request(format!(
                "Feature flag configurations must be application/json, not {content_type}"
            )));
        }
        flags::validate(&body).map_err(Error::bad_request)?;
    }
    let v = HostedVersion {
        number: current as u32 + 1,
        content: body.to_vec(),
        content_type,
        description,
        label,
    };
    let resp = version_response(StatusCode::CREATED, &app, &id, &v);
    p.versions.push(v);
    Ok(resp)
}

fn version_number(n: &str) -> Result<u32, Error> {
    n.parse::<u32>()
        .map_err(|_| Error::bad_request(format!("Version number {n:?} is not a positive integer")))
}

async fn get_version(
    State(shared): State<Shared>,
    Path((app, id, n)): Path<(String, String, String)>,
) -> Reply {
    let n = version_number(&n)?;
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let foreign = ac.faults.foreign_versions.remove(&id);
    let p = profile(ac, &app, &id)?;
    let v = n
        .checked_sub(1)
        .and_then(|i| p.versions.get(i as usize))
        .ok_or_else(|| Error::not_found("Hosted configuration version", &n.to_string()))?;
    let resp = version_response(StatusCode::OK, &app, &id, v);
    // Someone else stores a version right after this read.
    if let Some(content) = foreign {
        let number = p.versions.len() as u32 + 1;
        p.versions.push(HostedVersion {
            number,
            content: content.into_bytes(),
            content_type: "application/json".into(),
            description: Some("a concurrent edit (sandbox fault)".into()),
            label: None,
        });
    }
    Ok(resp)
}

async fn list_versions(
    State(shared): State<Shared>,
    Path((app, id)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    let mut w = shared.lock();
    let p = profile(&mut w.appconfig, &app, &id)?;
    let wanted = q.get("version_label");
    let items = p
        .versions
        .iter()
        .rev()
        .filter(|v| match (wanted, &v.label) {
            (None, _) => true,
            (Some(w), Some(l)) => match w.strip_suffix('*') {
                Some(prefix) => l.starts_with(prefix),
                None => l == w,
            },
            (Some(_), None) => false,
        })
        .map(|v| {
            let mut s = json!({
                "ApplicationId": app,
                "ConfigurationProfileId": id,
                "VersionNumber": v.number,
                "ContentType": v.content_type,
            });
            if let Some(d) = &v.description {
                s["Description"] = json!(d);
            }
            if let Some(l) = &v.label {
                s["VersionLabel"] = json!(l);
            }
            s
        })
        .collect();
    ok(page(items, &q)?)
}

fn strategy_json(s: &Strategy) -> Value {
    json!({
        "Id": s.id,
        "Name": s.name,
        "Description": s.description,
        "DeploymentDurationInMinutes": s.shape.duration_minutes,
        "GrowthType": s.shape.growth.name(),
        "GrowthFactor": s.shape.growth_factor,
        "FinalBakeTimeInMinutes": s.shape.bake_minutes,
        "ReplicateTo": s.replicate_to,
    })
}

async fn create_strategy(State(shared): State<Shared>, body: Bytes) -> Reply {
    let body = json_body(&body)?;
    let name = required(&body, "Name", 1, 64)?;
    let description = string(&body, "Description", 0, 1024)?.unwrap_or_default();
    let duration = integer(&body, "DeploymentDurationInMinutes", 0, 1440)?.ok_or_else(|| {
        Error::bad_request("Missing required parameter DeploymentDurationInMinutes")
    })?;
    let bake = integer(&body, "FinalBakeTimeInMinutes", 0, 1440)?.unwrap_or(0);
    let factor = match body.get("GrowthFactor").map(Value::as_f64) {
        Some(Some(f)) if (1.0..=100.0).contains(&f) => f,
        Some(_) => {
            return Err(Error::bad_request(
                "1 validation error detected: Value at 'growthFactor' failed to satisfy constraint: Member must be between 1.0 and 100.0",
            ));
        }
        None => {
            return Err(Error::bad_request(
                "Missing required parameter GrowthFactor",
            ));
        }
    };
    let growth = match string(&body, "GrowthType", 1, 32)? {
        None => Growth::Linear,
        Some(g) => Growth::parse(&g).ok_or_else(|| {
            Error::bad_request(format!(
                "GrowthType must be LINEAR or EXPONENTIAL, not {g:?}"
            ))
        })?,
    };
    let replicate_to = string(&body, "ReplicateTo", 1, 32)?.unwrap_or_else(|| "NONE".into());
    if replicate_to != "NONE" && replicate_to != "SSM_DOCUMENT" {
        return Err(Error::bad_request(
            "ReplicateTo must be NONE or SSM_DOCUMENT",
        ));
    }
    let mut w = shared.lock();
    let id = w.appconfig.new_id();
    let s = Strategy {
        id: id.clone(),
        name,
        description,
        shape: Shape {
            duration_minutes: duration as u32,
            bake_minutes: bake as u32,
            growth_factor: factor,
            growth,
        },
        replicate_to,
    };
    let out = strategy_json(&s);
    w.appconfig.strategies.insert(id, s);
    Ok(created(out))
}

async fn get_strategy(State(shared): State<Shared>, Path(id): Path<String>) -> Reply {
    let w = shared.lock();
    let s = w
        .appconfig
        .strategies
        .get(&id)
        .ok_or_else(|| Error::not_found("Deployment strategy", &id))?;
    ok(strategy_json(s))
}

async fn list_strategies(State(shared): State<Shared>, Query(q): Params) -> Reply {
    let w = shared.lock();
    let items = w.appconfig.strategies.values().map(strategy_json).collect();
    ok(page(items, &q)?)
}

/// The event log, newest first: what time wrote, then the stop.
fn event_log(d: &Deployment, now: f64, ac: &AppConfig) -> Vec<Value> {
    let minute = ac.minute.as_secs_f64();
    let until = d.stopped.as_ref().map_or(now, |s| s.at.min(now));
    let elapsed = (until - d.started_at) / minute.max(1e-9);
    let mut events: Vec<Value> = deploy::timeline(&d.strategy.shape, elapsed)
        .into_iter()
        .map(|e| {
            let (kind, by, description) = match e.kind {
                EventKind::Started => (
                    "DEPLOYMENT_STARTED",
                    "USER",
                    "Deployment started".to_string(),
                ),
                EventKind::Percentage(p) => (
                    "PERCENTAGE_UPDATED",
                    "APPCONFIG",
                    format!("Configuration deployed to {p}% of clients"),
                ),
                EventKind::BakeStarted => (
                    "BAKE_TIME_STARTED",
                    "APPCONFIG",
                    "Deployment bake time started".to_string(),
                ),
                EventKind::Completed => (
                    "DEPLOYMENT_COMPLETED",
                    "APPCONFIG",
                    "Deployment completed".to_string(),
                ),
            };
            json!({
                "EventType": kind,
                "TriggeredBy": by,
                "Description": description,
                "OccurredAt": iso(d.started_at + e.at_minutes * minute),
            })
        })
        .collect();
    if let Some(s) = d.stopped.as_ref().filter(|s| s.at <= now) {
        let at = iso(s.at);
        match s.how {
            Stop::RolledBack => {
                let why = if s.by == "USER" {
                    "Rollback initiated by user"
                } else {
                    "Rollback initiated by a CloudWatch alarm"
                };
                events.push(json!({"EventType": "ROLLBACK_STARTED", "TriggeredBy": s.by,
                    "Description": why, "OccurredAt": at}));
                events.push(json!({"EventType": "ROLLBACK_COMPLETED", "TriggeredBy": s.by,
                    "Description": "Rollback completed", "OccurredAt": at}));
            }
            Stop::Reverted => events.push(json!({"EventType": "REVERT_COMPLETED",
                "TriggeredBy": s.by, "Description": "Configuration reverted to the previous version",
                "OccurredAt": at})),
        }
    }
    events.reverse();
    events
}

fn deployment_json(app: &Application, env: &str, d: &Deployment, ac: &AppConfig) -> Value {
    let now = ac.now();
    let profile = app.profiles.get(&d.profile_id);
    let mut v = summary_json(app, d, ac);
    let m = v.as_object_mut().expect("an object");
    m.insert("ApplicationId".into(), json!(app.id));
    m.insert("EnvironmentId".into(), json!(env));
    m.insert("DeploymentStrategyId".into(), json!(d.strategy.id));
    m.insert("ConfigurationProfileId".into(), json!(d.profile_id));
    m.insert(
        "ConfigurationLocationUri".into(),
        json!(profile.map_or("hosted", |p| p.location_uri.as_str())),
    );
    m.insert("Description".into(), json!(d.description));
    m.insert("EventLog".into(), json!(event_log(d, now, ac)));
    m.insert("AppliedExtensions".into(), json!([]));
    v
}

fn summary_json(app: &Application, d: &Deployment, ac: &AppConfig) -> Value {
    let now = ac.now();
    let state = d.state(now, ac.minute);
    let profile = app.profiles.get(&d.profile_id);
    let mut v = json!({
        "DeploymentNumber": d.number,
        "ConfigurationName": profile.map_or("", |p| p.name.as_str()),
        "ConfigurationVersion": d.version.to_string(),
        "DeploymentDurationInMinutes": d.strategy.shape.duration_minutes,
        "GrowthType": d.strategy.shape.growth.name(),
        "GrowthFactor": d.strategy.shape.growth_factor,
        "FinalBakeTimeInMinutes": d.strategy.shape.bake_minutes,
        "State": state.name(),
        "PercentageComplete": d.percentage(now, ac.minute),
        "StartedAt": iso(d.started_at),
    });
    if let DState::Complete(at) = state {
        v["CompletedAt"] = json!(iso(at));
    }
    if let Some(label) = profile
        .and_then(|p| p.versions.get(d.version as usize - 1))
        .and_then(|v| v.label.as_ref())
    {
        v["VersionLabel"] = json!(label);
    }
    v
}

async fn start_deployment(
    State(shared): State<Shared>,
    Path((app, env)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let body = json_body(&body)?;
    let strategy_id = required(&body, "DeploymentStrategyId", 1, 64)?;
    let profile_id = required(&body, "ConfigurationProfileId", 1, 64)?;
    let version = required(&body, "ConfigurationVersion", 1, 1024)?;
    let description = string(&body, "Description", 0, 1024)?.unwrap_or_default();
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let now = ac.now();
    let minute = ac.minute;
    environment(ac, &app, &env)?;
    let strategy = ac
        .strategies
        .get(&strategy_id)
        .cloned()
        .ok_or_else(|| Error::not_found("Deployment strategy", &strategy_id))?;
    let p = profile(ac, &app, &profile_id)?;
    let number = version
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=p.versions.len() as u32).contains(n))
        .ok_or_else(|| Error::not_found("Hosted configuration version", &version))?;
    let e = environment(ac, &app, &env)?;
    if let Some(running) = e.running(now, minute) {
        return Err(Error::conflict(format!(
            "Deployment {} is already in progress in environment {env}; only one deployment at a time",
            running.number
        )));
    }
    let previous = e.serves(&profile_id, 0.0, now, minute);
    let d = Deployment {
        number: e.deployments.len() as u32 + 1,
        profile_id,
        version: number,
        strategy,
        description,
        started_at: now,
        previous,
        stopped: None,
    };
    e.deployments.push(d.clone());
    let a = application(ac, &app)?.clone();
    Ok(created(deployment_json(&a, &env, &d, ac)))
}

fn deployment_number(n: &str) -> Result<u32, Error> {
    n.parse::<u32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::bad_request(format!("Deployment number {n:?} is not valid")))
}

async fn get_deployment(
    State(shared): State<Shared>,
    Path((app, env, n)): Path<(String, String, String)>,
) -> Reply {
    let n = deployment_number(&n)?;
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let d = environment(ac, &app, &env)?
        .deployments
        .get(n as usize - 1)
        .cloned()
        .ok_or_else(|| Error::not_found("Deployment", &n.to_string()))?;
    let a = application(ac, &app)?.clone();
    ok(deployment_json(&a, &env, &d, ac))
}

async fn list_deployments(
    State(shared): State<Shared>,
    Path((app, env)): Path<(String, String)>,
    Query(q): Params,
) -> Reply {
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    environment(ac, &app, &env)?;
    let a = application(ac, &app)?.clone();
    let items = a.environments[&env]
        .deployments
        .iter()
        .rev()
        .map(|d| summary_json(&a, d, ac))
        .collect();
    ok(page(items, &q)?)
}

async fn stop_deployment(
    State(shared): State<Shared>,
    Path((app, env, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Reply {
    let n = deployment_number(&n)?;
    let allow_revert =
        header(&headers, "allow-revert").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut w = shared.lock();
    let ac = &mut w.appconfig;
    let now = ac.now();
    let minute = ac.minute;
    let e = environment(ac, &app, &env)?;
    let last = e.deployments.len() as u32;
    let d = e
        .deployments
        .get_mut(n as usize - 1)
        .ok_or_else(|| Error::not_found("Deployment", &n.to_string()))?;
    let stop = match d.state(now, minute) {
        // StopDeployment works on DEPLOYING; with AllowRevert also on an
        // in-progress (baking) one, which rolls back too, and on a COMPLETE
        // one within 72 hours, which is REVERTED.
        DState::Deploying(_) => Stop::RolledBack,
        DState::Baking if allow_revert => Stop::RolledBack,
        DState::Complete(at) if allow_revert => {
            if n != last {
                return Err(Error::bad_request(format!(
                    "Deployment {n} is not the latest deployment of environment {env} and cannot be reverted"
                )));
            }
            if (now - at) / minute.as_secs_f64().max(1e-9) > REVERT_WINDOW_MINUTES {
                return Err(Error::bad_request(format!(
                    "Deployment {n} completed more than 72 hours ago and can no longer be reverted"
                )));
            }
            Stop::Reverted
        }
        s @ (DState::Baking | DState::Complete(_)) => {
            return Err(Error::bad_request(format!(
                "Deployment {n} is {} and can only be stopped with AllowRevert",
                s.name()
            )));
        }
        s => {
            return Err(Error::bad_request(format!(
                "Deployment {n} is already {}",
                s.name()
            )));
        }
    };
    d.stopped = Some(Stopped {
        at: now,
        how: stop,
        by: "USER",
    });
    let d = d.clone();
    let a = application(ac, &app)?.clone();
    let body = deployment_json(&a, &env, &d, ac);
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

//! Lambda's REST-JSON API, with AWS's semantics for the parts rollgate relies
//! on: revision preconditions, update status, conflicts and the 4 KB limit.
//!
//! Errors follow Lambda's convention, which the SDK maps to typed variants:
//! the status code, an `x-amzn-ErrorType` header naming the exception, and a
//! JSON body `{"Type": "User"|"Service", "message": "..."}`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ACCOUNT, EnvError, FaultState, Shared, new_id, now};
/// Lambda measures the environment as the JSON of the variables map.
const ENV_LIMIT: usize = 4096;
const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The configuration fields a version snapshots.
#[derive(Debug, Clone)]
struct Config {
    runtime: String,
    role: String,
    handler: String,
    description: String,
    memory_size: i64,
    timeout: i64,
    env: BTreeMap<String, String>,
    code_sha256: String,
    code_size: i64,
    last_modified: String,
}

#[derive(Debug, Clone)]
struct Alias {
    version: String,
    description: String,
    weights: BTreeMap<String, f64>,
    revision_id: String,
}

/// How a configuration shows the environment, per the faults on its function.
#[derive(Debug, Clone, Copy)]
enum EnvView<'a> {
    /// `Environment.Variables`, as usual.
    Variables,
    /// No `Environment` key at all (the hide-environment fault).
    Hidden,
    /// `Environment.Error` and no variables, as Lambda when KMS fails.
    Error(&'a EnvError),
}

impl<'a> EnvView<'a> {
    /// A hidden environment wins over a KMS error: the key is simply absent.
    fn of(faults: &'a FaultState, function: &str) -> EnvView<'a> {
        if faults.hidden_environments.contains(function) {
            EnvView::Hidden
        } else if let Some(e) = faults.kms_errors.get(function) {
            EnvView::Error(e)
        } else {
            EnvView::Variables
        }
    }
}

/// What a qualifier (none, `$LATEST`, a version number or an alias) names.
#[derive(Debug, Clone, Copy)]
enum Target {
    Latest,
    Version(u64),
}

/// How `$LATEST`'s last update failed (`LastUpdateStatus = Failed`).
#[derive(Debug)]
struct Failed {
    reason: String,
    reason_code: String,
    /// What to restore once the update is over, when Lambda aborts it.
    revert: Option<Box<Previous>>,
}

/// `$LATEST` as it was before an update that will not take effect.
#[derive(Debug)]
struct Previous {
    config: Config,
    env: BTreeMap<String, String>,
    dirty: bool,
}

#[derive(Debug)]
pub(super) struct Function {
    name: String,
    arn: String,
    /// `$LATEST`'s configuration; its `env` is unused (see `env`).
    config: Config,
    /// `$LATEST`'s environment, read by the other parts of the sandbox.
    pub(super) env: BTreeMap<String, String>,
    revision_id: String,
    /// While `now() < in_progress_until`, LastUpdateStatus is InProgress.
    in_progress_until: Option<Instant>,
    /// After that, `Failed` if the last update failed.
    failure: Option<Failed>,
    /// Code or configuration changed since the last PublishVersion.
    dirty: bool,
    /// Version number → (snapshot, the version's RevisionId).
    versions: BTreeMap<u64, (Config, String)>,
    aliases: BTreeMap<String, Alias>,
}

impl Function {
    fn in_progress(&self) -> bool {
        self.in_progress_until.is_some_and(|t| now() < t)
    }

    fn status(&self) -> &'static str {
        if self.in_progress() {
            "InProgress"
        } else if self.failure.is_some() {
            "Failed"
        } else {
            "Successful"
        }
    }

    /// `$LATEST`'s revision: it changes exactly when its configuration or
    /// code does, which is when Lambda recycles its execution environments.
    pub(super) fn revision(&self) -> &str {
        &self.revision_id
    }

    /// Whether an update is still `InProgress` (not yet in effect).
    pub(super) fn updating(&self) -> bool {
        self.in_progress()
    }

    /// Once a failed update is over, an aborted one gives back the previous
    /// configuration, with a new revision (the configuration changed again).
    pub(super) fn settle(&mut self) {
        if self.in_progress() {
            return;
        }
        if let Some(previous) = self.failure.as_mut().and_then(|f| f.revert.take()) {
            let Previous { config, env, dirty } = *previous;
            self.config = config;
            self.env = env;
            self.dirty = dirty;
            self.revision_id = new_id();
        }
    }

    /// Resolves a qualifier; `None` when the version or alias does not exist.
    fn target(&self, qualifier: Option<&str>) -> Option<Target> {
        match qualifier {
            None | Some("$LATEST") => Some(Target::Latest),
            Some(q) => match q.parse::<u64>() {
                Ok(n) => self.versions.contains_key(&n).then_some(Target::Version(n)),
                // Alias names are never all digits, and an alias points at
                // `$LATEST` or a number, so this recursion ends.
                Err(_) => self.target(Some(&self.aliases.get(q)?.version)),
            },
        }
    }

    /// The configuration document of `target`, its environment shown as `env` says.
    fn configuration(&self, target: Target, env: EnvView) -> Value {
        let (config, version, revision, arn, status) = match target {
            Target::Latest => {
                let mut config = self.config.clone();
                config.env = self.env.clone();
                (
                    config,
                    "$LATEST".to_string(),
                    self.revision_id.clone(),
                    self.arn.clone(),
                    self.status(),
                )
            }
            Target::Version(n) => {
                let (config, revision) = self.versions[&n].clone();
                (
                    config,
                    n.to_string(),
                    revision,
                    format!("{}:{n}", self.arn),
                    "Successful",
                )
            }
        };
        let mut out = json!({
            "FunctionName": self.name,
            "FunctionArn": arn,
            "Runtime": config.runtime,
            "Role": config.role,
            "Handler": config.handler,
            "CodeSize": config.code_size,
            "Description": config.description,
            "Timeout": config.timeout,
            "MemorySize": config.memory_size,
            "LastModified": config.last_modified,
            "CodeSha256": config.code_sha256,
            "Version": version,
            "TracingConfig": { "Mode": "PassThrough" },
            "RevisionId": revision,
            "State": "Active",
            "LastUpdateStatus": status,
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "EphemeralStorage": { "Size": 512 },
        });
        if let (Target::Latest, Some(f), "Failed") = (target, &self.failure, status) {
            out["LastUpdateStatusReason"] = json!(f.reason);
            out["LastUpdateStatusReasonCode"] = json!(f.reason_code);
        }
        match env {
            EnvView::Variables => out["Environment"] = json!({ "Variables": config.env }),
            EnvView::Hidden => {}
            EnvView::Error(e) => {
                out["Environment"] =
                    json!({ "Error": { "ErrorCode": e.code, "Message": e.message } });
            }
        }
        out
    }

    /// Records a change to `$LATEST`: a new revision, and `InProgress` for `delay`.
    fn touch(&mut self, delay: Duration) {
        self.revision_id = new_id();
        self.config.last_modified = timestamp();
        self.dirty = true;
        self.in_progress_until = (!delay.is_zero()).then(|| now() + delay);
        self.failure = None;
    }

    /// Changes made by someone else (the foreign-edit fault): no delay, so
    /// the caller's next write meets the precondition failure, not a conflict.
    pub(super) fn foreign_edit(&mut self, edit: super::ForeignEdit) {
        self.env.extend(edit.set);
        for key in &edit.unset {
            self.env.remove(key);
        }
        self.revision_id = new_id();
        self.config.last_modified = timestamp();
        self.dirty = true;
    }

    /// Publishes `$LATEST` as a new version, unless nothing changed since the
    /// last one (then Lambda returns that one, as here).
    fn publish(&mut self, description: Option<&str>) -> u64 {
        if let Some(&last) = self.versions.keys().next_back()
            && !self.dirty
        {
            return last;
        }
        let n = self.versions.keys().next_back().map_or(1, |v| v + 1);
        let mut config = self.config.clone();
        config.env = self.env.clone();
        if let Some(d) = description {
            config.description = d.to_string();
        }
        self.versions.insert(n, (config, new_id()));
        self.dirty = false;
        n
    }

    /// Where simulated callers' invocations go: through `alias` by its
    /// weights (each version under its own environment) when the function
    /// has it, with `outside_share` calling `$LATEST` unqualified; else
    /// all to `$LATEST`.
    pub(super) fn routes<'a>(
        &'a self,
        alias: &'a str,
        outside_share: f64,
    ) -> Vec<super::traffic::Route<'a>> {
        use super::traffic::Route;
        let latest = Route {
            env: &self.env,
            via: None,
            share: 1.0,
        };
        let Some(a) = self.aliases.get(alias) else {
            return vec![latest];
        };
        let env_of = |v: &str| match v.parse::<u64>().ok().and_then(|n| self.versions.get(&n)) {
            Some((config, _)) => &config.env,
            None => &self.env,
        };
        let outside = outside_share.clamp(0.0, 1.0);
        let extra: f64 = a.weights.values().sum::<f64>().clamp(0.0, 1.0);
        let mut routes = vec![Route {
            env: env_of(&a.version),
            via: Some((alias, a.version.clone())),
            share: (1.0 - extra) * (1.0 - outside),
        }];
        for (v, w) in &a.weights {
            routes.push(Route {
                env: env_of(v),
                via: Some((alias, v.clone())),
                share: w * (1.0 - outside),
            });
        }
        if outside > 0.0 {
            routes.push(Route {
                share: outside,
                ..latest
            });
        }
        routes
    }

    pub(super) fn admin_view(&self) -> Value {
        json!({
            "name": self.name,
            "arn": self.arn,
            "environment": self.env,
            "revision_id": self.revision_id,
            "last_update_status": self.status(),
            "last_update_status_reason": self.failure.as_ref().map(|f| &f.reason),
            "last_update_status_reason_code": self.failure.as_ref().map(|f| &f.reason_code),
            "code_sha256": self.config.code_sha256,
            "versions": self.versions.keys().collect::<Vec<_>>(),
            "aliases": self.aliases.iter().map(|(n, a)| (n.clone(), json!({
                "version": a.version, "weights": a.weights, "revision_id": a.revision_id,
            }))).collect::<BTreeMap<_, _>>(),
        })
    }

    fn alias_arn(&self, alias: &str) -> String {
        format!("{}:{alias}", self.arn)
    }

    fn alias_json(&self, name: &str, a: &Alias) -> Value {
        let mut v = json!({
            "AliasArn": self.alias_arn(name),
            "Name": name,
            "FunctionVersion": a.version,
            "Description": a.description,
            "RevisionId": a.revision_id,
        });
        if !a.weights.is_empty() {
            v["RoutingConfig"] = json!({ "AdditionalVersionWeights": a.weights });
        }
        v
    }

    fn alias_not_found(&self, alias: &str) -> AwsError {
        AwsError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("Cannot find alias arn: {}", self.alias_arn(alias)),
        )
    }

    fn version_exists(&self, v: &str) -> bool {
        v == "$LATEST"
            || v.parse::<u64>()
                .is_ok_and(|n| self.versions.contains_key(&n))
    }

    /// Lambda's rules for an alias: versions exist; with routing, at most one
    /// additional version, published, and not the primary one.
    fn check_routing(
        &self,
        version: &str,
        weights: &BTreeMap<String, f64>,
    ) -> Result<(), AwsError> {
        for v in std::iter::once(version).chain(weights.keys().map(String::as_str)) {
            if !self.version_exists(v) {
                return Err(AwsError::new(
                    StatusCode::NOT_FOUND,
                    "ResourceNotFoundException",
                    format!("Function not found: {}:{v}", self.arn),
                ));
            }
        }
        if weights.is_empty() {
            return Ok(());
        }
        if weights.len() > 1 {
            return Err(invalid(
                "Number of items in AdditionalVersionWeights cannot be greater than 1".into(),
            ));
        }
        if version == "$LATEST" || weights.contains_key("$LATEST") {
            return Err(invalid(
                "$LATEST is not supported for an alias pointing to more than 1 version".into(),
            ));
        }
        if weights.contains_key(version) {
            return Err(invalid(format!(
                "Invalid function version {version}. Function version {version} is already included in routing configuration."
            )));
        }
        Ok(())
    }
}

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/2015-03-31/functions",
            post(create_function).get(list_functions),
        )
        .route(
            "/2015-03-31/functions/",
            post(create_function).get(list_functions),
        )
        .route("/2015-03-31/functions/{name}", get(get_function))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration).put(update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(publish_version).get(list_versions),
        )
        .route("/2015-03-31/functions/{name}/code", put(update_code))
        .route(
            "/2015-03-31/functions/{name}/aliases",
            post(create_alias).get(list_aliases),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(get_alias).put(update_alias),
        )
}

/// An AWS error the SDK maps to its typed variant: `x-amzn-ErrorType` header
/// plus a JSON body with the message.
pub(super) fn aws_error(status: StatusCode, code: &str, message: &str) -> Response {
    let kind = if status.is_server_error() {
        "Service"
    } else {
        "User"
    };
    let mut resp = (
        status,
        axum::Json(json!({ "Type": kind, "message": message })),
    )
        .into_response();
    if let Ok(v) = code.parse() {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

/// An error answer, rendered by `aws_error`.
#[derive(Debug)]
pub(super) struct AwsError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
}

impl AwsError {
    fn new(status: StatusCode, code: impl Into<Cow<'static, str>>, message: String) -> AwsError {
        AwsError {
            status,
            code: code.into(),
            message,
        }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        aws_error(self.status, &self.code, &self.message)
    }
}

type Reply = Result<Response, AwsError>;

fn invalid(message: String) -> AwsError {
    AwsError::new(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message,
    )
}

fn precondition_failed() -> AwsError {
    AwsError::new(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
    )
}

fn update_in_progress(arn: &str) -> AwsError {
    AwsError::new(
        StatusCode::CONFLICT,
        "ResourceConflictException",
        format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {arn}"
        ),
    )
}

fn function_not_found(region: &str, name: &str, qualifier: Option<&str>) -> AwsError {
    let qualifier = qualifier.map(|q| format!(":{q}")).unwrap_or_default();
    AwsError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        format!("Function not found: arn:aws:lambda:{region}:{ACCOUNT}:function:{name}{qualifier}"),
    )
}

/// Writes go to `$LATEST` only, as in Lambda.
fn only_latest(qualifier: Option<&str>) -> Result<(), AwsError> {
    match qualifier {
        None | Some("$LATEST") => Ok(()),
        Some(_) => Err(invalid(
            "Current operation does not support versions other than $LATEST. Please set version to $LATEST or do not set a version in your request.".into(),
        )),
    }
}

/// The `RevisionId` precondition, when the request carries one.
fn check_revision(body: &Value, current: &str) -> Result<(), AwsError> {
    match str_field(body, "RevisionId") {
        Some(rev) if rev != current => Err(precondition_failed()),
        _ => Ok(()),
    }
}

/// The region from the SigV4 credential scope
/// (`Credential=AKID/20240101/REGION/lambda/aws4_request`), else us-east-1.
fn region(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
        .to_string()
}

/// Accepts a name, `name:qualifier`, or a full/partial ARN.
fn resolve(name: &str) -> (String, Option<String>) {
    let rest = match name.find("function:") {
        Some(i) => &name[i + "function:".len()..],
        None => name,
    };
    match rest.split_once(':') {
        Some((n, q)) => (n.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    }
}

/// Lambda's LastModified format: `2024-01-01T00:00:00.000+0000`.
fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Validates an environment the way Lambda does: key names, reserved keys,
/// and 4 KB measured as the JSON of the map.
fn check_env(env: &BTreeMap<String, String>) -> Result<(), AwsError> {
    for key in env.keys() {
        let mut chars = key.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && key.len() >= 2
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(invalid(format!(
                "1 validation error detected: Value at 'environment.variables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z]([a-zA-Z0-9_])+] (key {key:?})"
            )));
        }
        if RESERVED.contains(&key.as_str()) {
            return Err(invalid(format!(
                "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {key}"
            )));
        }
    }
    let measured = serde_json::to_string(env).unwrap_or_default();
    if measured.len() > ENV_LIMIT {
        return Err(invalid(format!(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {measured}"
        )));
    }
    Ok(())
}

/// `Environment.Variables`; `Some(empty)` for an `Environment` without
/// variables (which clears them, as in Lambda), `None` when absent.
fn parse_env(body: &Value) -> Result<Option<BTreeMap<String, String>>, AwsError> {
    match body.get("Environment").and_then(|e| e.get("Variables")) {
        None | Some(Value::Null) => Ok(body.get("Environment").map(|_| BTreeMap::new())),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|_| invalid("Environment.Variables must map strings to strings".into())),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, AwsError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|e| {
        AwsError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {e}"),
        )
    })
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

/// The deployment package's bytes: the decoded `ZipFile`, else the JSON of
/// the S3 location or image URI (enough to give each package its own hash).
fn code_bytes(code: &Value) -> Result<Vec<u8>, AwsError> {
    if let Some(zip) = str_field(code, "ZipFile") {
        return base64::decode(zip).ok_or_else(|| {
            AwsError::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                "Could not parse request body into json: ZipFile is not valid base64".into(),
            )
        });
    }
    let location: BTreeMap<&str, &Value> = ["S3Bucket", "S3Key", "S3ObjectVersion", "ImageUri"]
        .into_iter()
        .filter_map(|k| code.get(k).map(|v| (k, v)))
        .collect();
    Ok(serde_json::to_vec(&location).unwrap_or_default())
}

async fn create_function(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Reply {
    let body = parse_body(&body)?;
    let name = str_field(&body, "FunctionName")
        .map(|n| resolve(n).0)
        .ok_or_else(|| invalid("FunctionName is required".into()))?;
    let env = parse_env(&body)?.unwrap_or_default();
    check_env(&env)?;
    let code = code_bytes(body.get("Code").unwrap_or(&Value::Null))?;
    let region = region(&headers);
    let mut w = shared.lock();
    if w.functions.contains_key(&name) {
        return Err(AwsError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!("Function already exist: {name}"),
        ));
    }
    let text = |key: &str, default: &str| str_field(&body, key).unwrap_or(default).to_string();
    let int = |key: &str, default: i64| body.get(key).and_then(Value::as_i64).unwrap_or(default);
    let mut function = Function {
        arn: format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"),
        name: name.clone(),
        config: Config {
            runtime: text("Runtime", "python3.12"),
            role: text("Role", ""),
            handler: text("Handler", ""),
            description: text("Description", ""),
            memory_size: int("MemorySize", 128),
            timeout: int("Timeout", 3),
            env: BTreeMap::new(),
            code_sha256: base64::encode(&Sha256::digest(&code)),
            code_size: code.len() as i64,
            last_modified: timestamp(),
        },
        env,
        revision_id: new_id(),
        in_progress_until: None,
        failure: None,
        dirty: true,
        versions: BTreeMap::new(),
        aliases: BTreeMap::new(),
    };
    let target = if body.get("Publish").and_then(Value::as_bool) == Some(true) {
        Target::Version(function.publish(None))
    } else {
        Target::Latest
    };
    let out = function.configuration(target, EnvView::of(&w.faults, &name));
    w.functions.insert(name, function);
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[derive(serde::Deserialize)]
struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

async fn get_function(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Reply {
    let (name, qual) = resolve(&name);
    let qualifier = q.qualifier.or(qual);
    let w = shared.lock();
    let Some((f, target)) = w
        .functions
        .get(&name)
        .and_then(|f| Some((f, f.target(qualifier.as_deref())?)))
    else {
        return Err(function_not_found(
            &region(&headers),
            &name,
            qualifier.as_deref(),
        ));
    };
    Ok(axum::Json(json!({
        "Configuration": f.configuration(target, EnvView::of(&w.faults, &name)),
        "Code": {
            "RepositoryType": "S3",
            "Location": format!("https://sandbox.invalid/{name}.zip"),
        },
    }))
    .into_response())
}

async fn get_configuration(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Reply {
    let (name, qual) = resolve(&name);
    let qualifier = q.qualifier.or(qual);
    let mut w = shared.lock();
    let Some(config) = w.functions.get(&name).and_then(|f| {
        let target = f.target(qualifier.as_deref())?;
        Some(f.configuration(target, EnvView::of(&w.faults, &name)))
    }) else {
        return Err(function_not_found(
            &region(&headers),
            &name,
            qualifier.as_deref(),
        ));
    };
    // A foreign edit lands right after this read was answered.
    if let Some(edit) = w.faults.foreign_edits.remove(&name)
        && let Some(f) = w.functions.get_mut(&name)
    {
        f.foreign_edit(edit);
    }
    Ok(axum::Json(config).into_response())
}

async fn update_configuration(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    let (name, qual) = resolve(&name);
    only_latest(qual.as_deref())?;
    let env = parse_env(&body)?;
    if let Some(env) = &env {
        check_env(env)?;
    }
    let mut guard = shared.lock();
    let w = &mut *guard;
    let f = w
        .functions
        .get_mut(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    if f.in_progress() {
        return Err(update_in_progress(&f.arn));
    }
    check_revision(&body, &f.revision_id)?;
    // Lambda cannot encrypt a new environment with a key it cannot use: its
    // KMS exceptions are 502s.
    if env.is_some()
        && let Some(e) = w.faults.kms_errors.get(&name)
    {
        return Err(AwsError::new(
            StatusCode::BAD_GATEWAY,
            e.code.clone(),
            e.message.clone(),
        ));
    }
    // Accepted. If it is to fail and not take effect, remember what to restore.
    let failure = w.faults.failing_updates.remove(&name);
    let previous = failure.as_ref().filter(|u| !u.applied).map(|_| Previous {
        config: f.config.clone(),
        env: f.env.clone(),
        dirty: f.dirty,
    });
    if let Some(env) = env {
        // Replaces the whole environment, as Lambda does.
        f.env = env;
    }
    let c = &mut f.config;
    for (key, field) in [
        ("Description", &mut c.description),
        ("Handler", &mut c.handler),
        ("Runtime", &mut c.runtime),
        ("Role", &mut c.role),
    ] {
        if let Some(v) = str_field(&body, key) {
            *field = v.to_string();
        }
    }
    for (key, field) in [
        ("MemorySize", &mut c.memory_size),
        ("Timeout", &mut c.timeout),
    ] {
        if let Some(v) = body.get(key).and_then(Value::as_i64) {
            *field = v;
        }
    }
    f.touch(w.update_delay);
    if let Some(u) = failure {
        f.failure = Some(Failed {
            reason: u.reason,
            reason_code: u.reason_code,
            revert: previous.map(Box::new),
        });
        // With no update delay it is over at once.
        f.settle();
    }
    let out = f.configuration(Target::Latest, EnvView::of(&w.faults, &name));
    Ok(axum::Json(out).into_response())
}

/// UpdateFunctionCode: a deploy. New CodeSha256 and revision; the update
/// is `InProgress` for the update delay like a configuration change.
async fn update_code(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    let (name, qual) = resolve(&name);
    only_latest(qual.as_deref())?;
    let code = code_bytes(&body)?;
    let mut guard = shared.lock();
    let w = &mut *guard;
    let f = w
        .functions
        .get_mut(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    if f.in_progress() {
        return Err(update_in_progress(&f.arn));
    }
    check_revision(&body, &f.revision_id)?;
    f.config.code_sha256 = base64::encode(&Sha256::digest(&code));
    f.config.code_size = code.len() as i64;
    f.touch(w.update_delay);
    let target = if body.get("Publish").and_then(Value::as_bool) == Some(true) {
        Target::Version(f.publish(None))
    } else {
        Target::Latest
    };
    let out = f.configuration(target, EnvView::of(&w.faults, &name));
    Ok(axum::Json(out).into_response())
}

async fn publish_version(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    let (name, _) = resolve(&name);
    let mut guard = shared.lock();
    let w = &mut *guard;
    let f = w
        .functions
        .get_mut(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    if f.in_progress() {
        return Err(update_in_progress(&f.arn));
    }
    check_revision(&body, &f.revision_id)?;
    if let Some(sha) = str_field(&body, "CodeSha256")
        && sha != f.config.code_sha256
    {
        return Err(invalid(format!(
            "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again.",
            f.config.code_sha256
        )));
    }
    let n = f.publish(str_field(&body, "Description"));
    let out = f.configuration(Target::Version(n), EnvView::of(&w.faults, &name));
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

/// ListVersionsByFunction: `$LATEST`, then each version oldest first, at
/// most 50 a page, `NextMarker` to continue (as Lambda).
async fn list_versions(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListFunctionsQuery>,
) -> Reply {
    let (name, _) = resolve(&name);
    let page = q.max_items.unwrap_or(50).clamp(1, 50);
    let w = shared.lock();
    let f = w
        .functions
        .get(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    let view = EnvView::of(&w.faults, &name);
    let all: Vec<Target> = std::iter::once(Target::Latest)
        .chain(f.versions.keys().map(|n| Target::Version(*n)))
        .collect();
    let start = match q.marker.as_deref() {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| invalid(format!("Invalid marker: {m}")))?,
    };
    let versions: Vec<Value> = all
        .iter()
        .skip(start)
        .take(page)
        .map(|t| f.configuration(*t, view))
        .collect();
    let mut out = json!({ "Versions": versions });
    if start + page < all.len() {
        out["NextMarker"] = json!((start + page).to_string());
    }
    Ok(axum::Json(out).into_response())
}

/// `RoutingConfig.AdditionalVersionWeights`; `Some(empty)` for a
/// `RoutingConfig` without weights (which clears them), `None` when absent.
fn parse_weights(body: &Value) -> Result<Option<BTreeMap<String, f64>>, AwsError> {
    match body
        .get("RoutingConfig")
        .and_then(|r| r.get("AdditionalVersionWeights"))
    {
        None | Some(Value::Null) => Ok(body.get("RoutingConfig").map(|_| BTreeMap::new())),
        Some(v) => {
            let weights: BTreeMap<String, f64> =
                serde_json::from_value(v.clone()).map_err(|_| {
                    invalid("AdditionalVersionWeights must map versions to weights".into())
                })?;
            if weights.values().any(|w| !(0.0..=1.0).contains(w)) {
                return Err(invalid(
                    "Routing weights must be between 0.0 and 1.0".into(),
                ));
            }
            Ok(Some(weights))
        }
    }
}

async fn create_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    let weights = parse_weights(&body)?.unwrap_or_default();
    let (name, _) = resolve(&name);
    let (Some(alias), Some(version)) = (
        str_field(&body, "Name"),
        str_field(&body, "FunctionVersion"),
    ) else {
        return Err(invalid("Name and FunctionVersion are required".into()));
    };
    let mut w = shared.lock();
    let f = w
        .functions
        .get_mut(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    if f.aliases.contains_key(alias) {
        return Err(AwsError::new(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            format!("Alias already exists: {}", f.alias_arn(alias)),
        ));
    }
    f.check_routing(version, &weights)?;
    let a = Alias {
        version: version.to_string(),
        description: str_field(&body, "Description")
            .unwrap_or_default()
            .to_string(),
        weights,
        revision_id: new_id(),
    };
    let out = f.alias_json(alias, &a);
    f.aliases.insert(alias.to_string(), a);
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[derive(serde::Deserialize)]
struct ListAliasesQuery {
    #[serde(rename = "FunctionVersion")]
    function_version: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListFunctionsQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

/// ListFunctions: `$LATEST` configurations in name order, at most 50 a page
/// (as Lambda: more is never returned), `NextMarker` to continue.
async fn list_functions(
    State(shared): State<Shared>,
    Query(q): Query<ListFunctionsQuery>,
) -> Reply {
    let page = q.max_items.unwrap_or(50).clamp(1, 50);
    let w = shared.lock();
    let mut names = w
        .functions
        .keys()
        .filter(|n| q.marker.as_deref().is_none_or(|m| n.as_str() > m));
    let functions: Vec<Value> = names
        .by_ref()
        .take(page)
        .filter_map(|n| {
            let f = w.functions.get(n)?;
            Some(f.configuration(Target::Latest, EnvView::of(&w.faults, n)))
        })
        .collect();
    let mut out = json!({ "Functions": functions });
    if names.next().is_some()
        && let Some(last) = out["Functions"].as_array().and_then(|a| a.last())
    {
        out["NextMarker"] = last["FunctionName"].clone();
    }
    Ok(axum::Json(out).into_response())
}

async fn list_aliases(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListAliasesQuery>,
) -> Reply {
    let (name, _) = resolve(&name);
    let w = shared.lock();
    let f = w
        .functions
        .get(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    let aliases: Vec<Value> = f
        .aliases
        .iter()
        .filter(|(_, a)| q.function_version.as_deref().is_none_or(|v| v == a.version))
        .map(|(n, a)| f.alias_json(n, a))
        .collect();
    Ok(axum::Json(json!({ "Aliases": aliases })).into_response())
}

async fn get_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Reply {
    let (name, _) = resolve(&name);
    let w = shared.lock();
    let f = w
        .functions
        .get(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    let a = f
        .aliases
        .get(&alias)
        .ok_or_else(|| f.alias_not_found(&alias))?;
    Ok(axum::Json(f.alias_json(&alias, a)).into_response())
}

async fn update_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let body = parse_body(&body)?;
    let weights = parse_weights(&body)?;
    let (name, _) = resolve(&name);
    let mut w = shared.lock();
    let f = w
        .functions
        .get_mut(&name)
        .ok_or_else(|| function_not_found(&region(&headers), &name, None))?;
    let mut a = f
        .aliases
        .get(&alias)
        .cloned()
        .ok_or_else(|| f.alias_not_found(&alias))?;
    check_revision(&body, &a.revision_id)?;
    if let Some(v) = str_field(&body, "FunctionVersion") {
        a.version = v.to_string();
    }
    if let Some(d) = str_field(&body, "Description") {
        a.description = d.to_string();
    }
    if let Some(ws) = weights {
        a.weights = ws;
    }
    f.check_routing(&a.version, &a.weights)?;
    a.revision_id = new_id();
    let out = f.alias_json(&alias, &a);
    f.aliases.insert(alias, a);
    Ok(axum::Json(out).into_response())
}

/// Standard base64 (RFC 4648, padded): Lambda's CodeSha256 and the SDK's
/// encoding of `ZipFile`.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// `None` for anything but padded standard base64 (whitespace ignored).
    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if !digits.len().is_multiple_of(4) {
            return None;
        }
        let mut out = Vec::with_capacity(digits.len() / 4 * 3);
        for (i, quad) in digits.chunks(4).enumerate() {
            let last = i + 1 == digits.len() / 4;
            let pad = quad.iter().rev().take_while(|&&b| b == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return None;
            }
            let mut n = 0u32;
            for &b in &quad[..4 - pad] {
                let v = ALPHABET.iter().position(|&a| a == b)? as u32;
                n = (n << 6) | v;
            }
            n <<= 6 * pad as u32;
            let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
        }
        Some(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn round_trips() {
            for s in ["", "z", "zi", "zip", "zip!", "hello world"] {
                let e = super::encode(s.as_bytes());
                assert_eq!(super::decode(&e).as_deref(), Some(s.as_bytes()), "{e}");
            }
            assert_eq!(super::encode(b"zip"), "emlw");
            assert_eq!(super::decode("emk="), Some(b"zi".to_vec()));
            assert_eq!(super::decode("em=k"), None);
            assert_eq!(super::decode("emk"), None);
        }
    }
}

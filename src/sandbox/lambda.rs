//! Lambda's REST-JSON API, with AWS's semantics for the parts rollgate relies
//! on: revision preconditions, update status, conflicts and the 4 KB limit.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Shared, new_id, now};

const ACCOUNT: &str = "123456789012";
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

#[derive(Debug)]
pub(super) struct Function {
    name: String,
    arn: String,
    config: Config,
    pub(super) env: BTreeMap<String, String>,
    revision_id: String,
    /// While `now() < in_progress_until`, LastUpdateStatus is InProgress.
    in_progress_until: Option<std::time::Instant>,
    versions: BTreeMap<u64, (Config, String)>,
    aliases: BTreeMap<String, Alias>,
}

impl Function {
    fn in_progress(&self) -> bool {
        self.in_progress_until.is_some_and(|t| now() < t)
    }

    fn configuration(&self, qualifier: Option<&str>) -> Option<Value> {
        let (config, version, revision, arn, status) = match qualifier {
            None | Some("$LATEST") => {
                let mut config = self.config.clone();
                config.env = self.env.clone();
                (
                    config,
                    "$LATEST".to_string(),
                    self.revision_id.clone(),
                    self.arn.clone(),
                    if self.in_progress() {
                        "InProgress"
                    } else {
                        "Successful"
                    },
                )
            }
            Some(q) => {
                let n: u64 = match q.parse() {
                    Ok(n) => n,
                    Err(_) => {
                        let alias = self.aliases.get(q)?;
                        alias.version.parse().ok()?
                    }
                };
                let (config, revision) = self.versions.get(&n)?.clone();
                (
                    config,
                    n.to_string(),
                    revision,
                    format!("{}:{n}", self.arn),
                    "Successful",
                )
            }
        };
        Some(json!({
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
            "Environment": { "Variables": config.env },
            "RevisionId": revision,
            "State": "Active",
            "LastUpdateStatus": status,
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
        }))
    }

    pub(super) fn admin_view(&self) -> Value {
        json!({
            "name": self.name,
            "arn": self.arn,
            "environment": self.env,
            "revision_id": self.revision_id,
            "last_update_status": if self.in_progress() { "InProgress" } else { "Successful" },
            "code_sha256": self.config.code_sha256,
            "versions": self.versions.keys().collect::<Vec<_>>(),
            "aliases": self.aliases.iter().map(|(n, a)| (n.clone(), json!({
                "version": a.version, "weights": a.weights,
            }))).collect::<BTreeMap<_, _>>(),
        })
    }

    fn alias_json(&self, name: &str, a: &Alias) -> Value {
        let mut v = json!({
            "AliasArn": format!("{}:{name}", self.arn),
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
}

pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route("/2015-03-31/functions", post(create_function))
        .route("/2015-03-31/functions/", post(create_function))
        .route("/2015-03-31/functions/{name}", get(get_function))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_configuration).put(update_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/versions",
            post(publish_version),
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
    let mut resp = (
        status,
        axum::Json(json!({ "Type": "User", "message": message, "__type": code })),
    )
        .into_response();
    if let Ok(v) = code.parse() {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

fn bad(message: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message,
    )
}

fn precondition_failed() -> Response {
    aws_error(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailedException",
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
    )
}

fn update_in_progress(arn: &str) -> Response {
    aws_error(
        StatusCode::CONFLICT,
        "ResourceConflictException",
        &format!(
            "The operation cannot be performed at this time. An update is in progress for resource: {arn}"
        ),
    )
}

/// An error from request validation, rendered by `aws_error`.
pub(super) struct AwsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        aws_error(self.status, self.code, &self.message)
    }
}

fn invalid(message: String) -> AwsError {
    AwsError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidParameterValueException",
        message,
    }
}

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

fn not_found(name: &str, region: &str) -> Response {
    aws_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFoundException",
        &format!("Function not found: arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"),
    )
}

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
    serde_json::from_slice(body).map_err(|e| AwsError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidRequestContentException",
        message: format!("Could not parse request body into json: {e}"),
    })
}

fn str_field<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key).and_then(Value::as_str)
}

async fn create_function(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let Some(name) = str_field(&body, "FunctionName").map(|n| resolve(n).0) else {
        return bad("FunctionName is required");
    };
    let env = match parse_env(&body) {
        Ok(e) => e.unwrap_or_default(),
        Err(r) => return r.into_response(),
    };
    if let Err(r) = check_env(&env) {
        return r.into_response();
    }
    let code = body.get("Code").map(|c| c.to_string()).unwrap_or_default();
    let code_sha256 = {
        use base64_like::encode;
        encode(&Sha256::digest(code.as_bytes()))
    };
    let region = region(&headers);
    let mut w = shared.lock();
    if w.functions.contains_key(&name) {
        return aws_error(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            &format!("Function already exist: {name}"),
        );
    }
    let function = Function {
        arn: format!("arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"),
        name: name.clone(),
        config: Config {
            runtime: str_field(&body, "Runtime")
                .unwrap_or("python3.12")
                .to_string(),
            role: str_field(&body, "Role").unwrap_or_default().to_string(),
            handler: str_field(&body, "Handler").unwrap_or_default().to_string(),
            description: str_field(&body, "Description")
                .unwrap_or_default()
                .to_string(),
            memory_size: body
                .get("MemorySize")
                .and_then(Value::as_i64)
                .unwrap_or(128),
            timeout: body.get("Timeout").and_then(Value::as_i64).unwrap_or(3),
            env: BTreeMap::new(),
            code_sha256,
            code_size: code.len() as i64,
            last_modified: timestamp(),
        },
        env,
        revision_id: new_id(),
        in_progress_until: None,
        versions: BTreeMap::new(),
        aliases: BTreeMap::new(),
    };
    let out = function.configuration(None).unwrap_or_default();
    w.functions.insert(name, function);
    (StatusCode::CREATED, axum::Json(out)).into_response()
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
) -> Response {
    let (name, qual) = resolve(&name);
    let w = shared.lock();
    let Some(f) = w.functions.get(&name) else {
        return not_found(&name, &region(&headers));
    };
    match f.configuration(q.qualifier.as_deref().or(qual.as_deref())) {
        Some(config) => axum::Json(json!({
            "Configuration": config,
            "Code": { "RepositoryType": "S3", "Location": format!("https://sandbox.invalid/{name}.zip") },
        }))
        .into_response(),
        None => not_found(&name, &region(&headers)),
    }
}

async fn get_configuration(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Response {
    let (name, qual) = resolve(&name);
    let mut w = shared.lock();
    let Some(config) = w
        .functions
        .get(&name)
        .and_then(|f| f.configuration(q.qualifier.as_deref().or(qual.as_deref())))
    else {
        return not_found(&name, &region(&headers));
    };
    // A foreign edit lands right after this read was answered.
    if let Some(edit) = w.faults.foreign_edits.remove(&name)
        && let Some(f) = w.functions.get_mut(&name)
    {
        f.env.extend(edit);
        f.revision_id = new_id();
        f.config.last_modified = timestamp();
    }
    axum::Json(config).into_response()
}

async fn update_configuration(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let (name, _) = resolve(&name);
    let env = match parse_env(&body) {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    let mut w = shared.lock();
    let delay: Duration = w.update_delay;
    let Some(f) = w.functions.get_mut(&name) else {
        return not_found(&name, &region(&headers));
    };
    if f.in_progress() {
        return update_in_progress(&f.arn);
    }
    if let Some(rev) = str_field(&body, "RevisionId")
        && rev != f.revision_id
    {
        return precondition_failed();
    }
    if let Some(env) = &env
        && let Err(r) = check_env(env)
    {
        return r.into_response();
    }
    if let Some(env) = env {
        f.env = env;
    }
    if let Some(v) = str_field(&body, "Description") {
        f.config.description = v.to_string();
    }
    if let Some(v) = str_field(&body, "Handler") {
        f.config.handler = v.to_string();
    }
    if let Some(v) = str_field(&body, "Runtime") {
        f.config.runtime = v.to_string();
    }
    if let Some(v) = str_field(&body, "Role") {
        f.config.role = v.to_string();
    }
    if let Some(v) = body.get("MemorySize").and_then(Value::as_i64) {
        f.config.memory_size = v;
    }
    if let Some(v) = body.get("Timeout").and_then(Value::as_i64) {
        f.config.timeout = v;
    }
    f.revision_id = new_id();
    f.config.last_modified = timestamp();
    f.in_progress_until = (!delay.is_zero()).then(|| now() + delay);
    axum::Json(f.configuration(None).unwrap_or_default()).into_response()
}

/// UpdateFunctionCode: a deploy. New CodeSha256 and revision; the update
/// is `InProgress` for the update delay like a configuration change.
async fn update_code(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let (name, _) = resolve(&name);
    let mut w = shared.lock();
    let delay = w.update_delay;
    let Some(f) = w.functions.get_mut(&name) else {
        return not_found(&name, &region(&headers));
    };
    if f.in_progress() {
        return update_in_progress(&f.arn);
    }
    if let Some(rev) = str_field(&body, "RevisionId")
        && rev != f.revision_id
    {
        return precondition_failed();
    }
    let code = body.to_string();
    f.config.code_sha256 = base64_like::encode(&Sha256::digest(code.as_bytes()));
    f.config.code_size = code.len() as i64;
    f.revision_id = new_id();
    f.config.last_modified = timestamp();
    f.in_progress_until = (!delay.is_zero()).then(|| now() + delay);
    axum::Json(f.configuration(None).unwrap_or_default()).into_response()
}

async fn publish_version(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let (name, _) = resolve(&name);
    let mut w = shared.lock();
    let Some(f) = w.functions.get_mut(&name) else {
        return not_found(&name, &region(&headers));
    };
    if f.in_progress() {
        return update_in_progress(&f.arn);
    }
    if let Some(rev) = str_field(&body, "RevisionId")
        && rev != f.revision_id
    {
        return precondition_failed();
    }
    let n = f.versions.keys().next_back().map_or(1, |v| v + 1);
    let mut config = f.config.clone();
    config.env = f.env.clone();
    if let Some(d) = str_field(&body, "Description") {
        config.description = d.to_string();
    }
    f.versions.insert(n, (config, new_id()));
    let out = f.configuration(Some(&n.to_string())).unwrap_or_default();
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

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

fn version_exists(f: &Function, v: &str) -> bool {
    v == "$LATEST" || v.parse::<u64>().is_ok_and(|n| f.versions.contains_key(&n))
}

async fn create_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let weights = match parse_weights(&body) {
        Ok(w) => w.unwrap_or_default(),
        Err(r) => return r.into_response(),
    };
    let (name, _) = resolve(&name);
    let (Some(alias), Some(version)) = (
        str_field(&body, "Name"),
        str_field(&body, "FunctionVersion"),
    ) else {
        return bad("Name and FunctionVersion are required");
    };
    let mut w = shared.lock();
    let Some(f) = w.functions.get_mut(&name) else {
        return not_found(&name, &region(&headers));
    };
    if f.aliases.contains_key(alias) {
        return aws_error(
            StatusCode::CONFLICT,
            "ResourceConflictException",
            &format!("Alias already exists: {}:{alias}", f.arn),
        );
    }
    if !version_exists(f, version) || weights.keys().any(|v| !version_exists(f, v)) {
        return not_found(&format!("{name}:{version}"), &region(&headers));
    }
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
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn list_aliases(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let (name, _) = resolve(&name);
    let w = shared.lock();
    let Some(f) = w.functions.get(&name) else {
        return not_found(&name, &region(&headers));
    };
    let aliases: Vec<Value> = f.aliases.iter().map(|(n, a)| f.alias_json(n, a)).collect();
    axum::Json(json!({ "Aliases": aliases })).into_response()
}

async fn get_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
) -> Response {
    let (name, _) = resolve(&name);
    let w = shared.lock();
    match w
        .functions
        .get(&name)
        .and_then(|f| f.aliases.get(&alias).map(|a| f.alias_json(&alias, a)))
    {
        Some(v) => axum::Json(v).into_response(),
        None => aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!(
                "Alias not found: arn:aws:lambda:{}:{ACCOUNT}:function:{name}:{alias}",
                region(&headers)
            ),
        ),
    }
}

async fn update_alias(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    let weights = match parse_weights(&body) {
        Ok(w) => w,
        Err(r) => return r.into_response(),
    };
    let (name, _) = resolve(&name);
    let mut w = shared.lock();
    let Some(f) = w.functions.get_mut(&name) else {
        return not_found(&name, &region(&headers));
    };
    let versions_ok = str_field(&body, "FunctionVersion").is_none_or(|v| version_exists(f, v))
        && weights
            .as_ref()
            .is_none_or(|ws| ws.keys().all(|v| version_exists(f, v)));
    if !versions_ok {
        return not_found(&name, &region(&headers));
    }
    let Some(mut a) = f.aliases.get(&alias).cloned() else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Alias not found: {}:{alias}", f.arn),
        );
    };
    if let Some(rev) = str_field(&body, "RevisionId")
        && rev != a.revision_id
    {
        return precondition_failed();
    }
    if let Some(v) = str_field(&body, "FunctionVersion") {
        a.version = v.to_string();
    }
    if let Some(d) = str_field(&body, "Description") {
        a.description = d.to_string();
    }
    if let Some(ws) = weights {
        a.weights = ws;
    }
    a.revision_id = new_id();
    let out = f.alias_json(&alias, &a);
    f.aliases.insert(alias, a);
    axum::Json(out).into_response()
}

/// Standard base64, as Lambda reports CodeSha256.
mod base64_like {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::new();
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
}

//! The `lambda-env` backend: owned flags live in the Lambda function's
//! environment. Every write is read-modify-write under the function's
//! `RevisionId`, waits for `LastUpdateStatus = Successful`, and is verified by
//! a read-back (design rules 1 and 2). An environment that cannot be read
//! whole is never merged or written (rule 7).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::{Environment, EnvironmentResponse, LastUpdateStatus};
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::merge::{LAMBDA_ENV_LIMIT_BYTES, env_size_bytes, merge, owned_values, satisfies};
use crate::plan::Flags;

/// How hard a write tries before it reports the target unavailable, and how
/// long any one AWS call may take.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts of the whole read-merge-write-verify cycle.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long to wait for `LastUpdateStatus` to leave `InProgress`.
    pub settle_timeout: Duration,
    pub poll_interval: Duration,
    /// Longest one HTTP attempt of an AWS call may take.
    pub attempt_timeout: Duration,
    /// Longest one AWS call may take in all.
    pub operation_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            settle_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// The SDK timeout settings every AWS client of rollgate uses, so that
    /// no hung call can hold up a rollback.
    pub fn timeouts(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.attempt_timeout.min(Duration::from_secs(5)))
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }
}

/// A function's environment as Lambda answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Env {
    Vars(BTreeMap<String, String>),
    /// Lambda could not decrypt it (`Environment.Error`, e.g. KMS access lost).
    Error {
        code: String,
        message: String,
    },
    /// The answer had no `Environment` at all.
    Absent,
}

impl Env {
    pub(super) fn from_sdk(env: Option<&EnvironmentResponse>) -> Env {
        let Some(env) = env else { return Env::Absent };
        if let Some(e) = env.error() {
            return Env::Error {
                code: e.error_code().unwrap_or("EnvironmentError").to_string(),
                message: e.message().unwrap_or_default().to_string(),
            };
        }
        match env.variables() {
            Some(v) => Env::Vars(v.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            None => Env::Absent,
        }
    }

    /// The whole environment, or why it cannot be had. `expect_variables`:
    /// the function had variables at the last read, so an answer without
    /// any is a failed read, not an empty environment.
    pub fn whole(&self, expect_variables: bool) -> Result<BTreeMap<String, String>, String> {
        match self {
            Env::Vars(v) => Ok(v.clone()),
            Env::Absent if !expect_variables => Ok(BTreeMap::new()),
            Env::Absent => Err(
                "Lambda answered without the function's environment although it had variables; rollgate never writes what it could not read whole"
                    .into(),
            ),
            Env::Error { code, message } => Err(format!(
                "the function's environment cannot be read ({code}: {message}); rollgate never writes what it could not read whole"
            )),
        }
    }
}

/// The function's identity: its ARN without a version or alias qualifier,
/// so a name, an ARN and a partial ARN of one function are one function.
pub fn function_identity(arn: &str) -> String {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() > 7 && parts.first() == Some(&"arn") {
        parts[..7].join(":")
    } else {
        arn.to_string()
    }
}

/// An AWS call's failure as the service answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsError {
    pub code: Option<String>,
    pub status: Option<u16>,
    pub message: String,
}

impl AwsError {
    /// The caller lacks a permission (IAM or an SCP said no).
    pub fn is_denied(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "AccessDeniedException"
                    | "AccessDenied"
                    | "UnauthorizedOperation"
                    | "AuthorizationError"
            )
        ) || self.status == Some(403) && self.code.is_none()
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("ResourceNotFoundException" | "ResourceNotFound" | "NoSuchEntity")
        ) || self.status == Some(404) && self.code.is_none()
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, self.message.is_empty()) {
            (Some(c), false) => write!(f, "{c}: {}", self.message),
            (Some(c), true) => write!(f, "{c}"),
            (None, false) => write!(f, "{}", self.message),
            (None, true) => match self.status {
                Some(s) => write!(f, "HTTP {s}"),
                None => write!(f, "no answer in time (connection failure or timeout)"),
            },
        }
    }
}

/// The function as GetFunctionConfiguration answered, for preflight.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionFacts {
    /// Unqualified ARN (the function's identity).
    pub arn: String,
    pub name: String,
    pub state: Option<String>,
    pub state_reason: Option<String>,
    pub last_update: Option<String>,
    pub last_update_reason: Option<String>,
    pub env: Env,
    pub memory_mb: Option<i32>,
    pub timeout_s: Option<i32>,
}

/// What the function looked like when read.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Current values of the owned flags (absent keys left out).
    pub flags: Flags,
    pub revision_id: Option<String>,
    pub code_sha256: Option<String>,
    pub last_update_status: Option<String>,
    /// The unqualified ARN (identity) and name Lambda resolved the function to.
    pub function_arn: Option<String>,
    pub function_name: Option<String>,
    /// The environment had variables (any, owned or not).
    pub has_variables: bool,
}

/// One function in a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub env: Env,
    pub code_sha256: Option<String>,
}

/// The outcome of a successful write.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteReport {
    /// Owned flags before the write (absent keys left out).
    pub before: Flags,
    /// Owned flags as read back after the write.
    pub after: Flags,
    /// False when the function already held the desired values: nothing was written.
    pub wrote: bool,
    /// Read-modify-write cycles it took (1 = first try).
    pub attempts: usize,
    /// Why earlier cycles were retried (throttled, revision changed, …).
    pub retried_because: Vec<String>,
    pub revision_id: Option<String>,
    /// `lambda-alias`: where the alias points now, and the calls that
    /// took it there (published versions, alias updates), for the audit log.
    pub routing: Option<crate::rollout::AliasRouting>,
    pub steps: Vec<String>,
    /// Something worth knowing about a write that did land (e.g. Lambda
    /// reported the update Failed, but the read-back shows the values).
    pub note: Option<String>,
    /// `appconfig`: the deployment that carries the flags, complete.
    pub delivery: Option<crate::backend::appconfig::Delivery>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApplyError {
    /// The target refused the change, or it cannot be made (too large, no such
    /// function, access denied). Nothing was written.
    #[error("{0}")]
    Rejected(String),
    /// The target stayed unavailable through every retry (throttling, updates
    /// in progress, 5xx, timeouts). The write may be retried later.
    #[error("target unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: usize, last: String },
    /// The function's environment could not be read whole, so nothing was
    /// written; retried later, once it can.
    #[error("{0}")]
    Unreadable(String),
    /// The caller stopped wanting this write (a newer command, e.g. a
    /// rollback, replaced it) before it was confirmed.
    #[error("superseded by a newer command before it was confirmed")]
    Superseded,
    /// `appconfig`: the deployment is under way; the write is confirmed
    /// once it is complete (the reconciler follows it).
    #[error("{}", .0.delivery.describe())]
    Deploying(Box<crate::backend::appconfig::Deploying>),
    /// `appconfig`: the deployment was rolled back before it completed, by
    /// AppConfig itself (an alarm monitor) or by someone else; what was
    /// served before is served again.
    #[error("{}", .0.describe())]
    RolledBackByAppConfig(Box<crate::backend::appconfig::Delivery>),
}

/// One cycle's failure: retry it, give up, or stop until the environment
/// can be read again.
#[derive(Debug)]
pub(super) enum Step {
    Retry(String),
    /// Retry at once, without spending a backoff delay (the cycle already
    /// knows what to do differently).
    RetryNow(String),
    Reject(String),
    Unreadable(String),
}

impl From<Step> for ApplyError {
    fn from(s: Step) -> Self {
        match s {
            Step::Retry(m) | Step::RetryNow(m) => ApplyError::Unavailable {
                attempts: 1,
                last: m,
            },
            Step::Reject(m) => ApplyError::Rejected(m),
            Step::Unreadable(m) => ApplyError::Unreadable(m),
        }
    }
}

/// The one retry layer of every Lambda write (both backends): runs
/// `cycle` (a whole read-modify-write-verify) until it lands, is refused,
/// finds the environment unreadable, or `policy`'s attempts are spent,
/// with jittered exponential backoff between attempts. Every retry's
/// reason goes into the report (`retried_because`).
pub(super) async fn retrying<F, Fut>(
    policy: &RetryPolicy,
    function: &str,
    mut cycle: F,
) -> Result<WriteReport, ApplyError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<WriteReport, Step>>,
{
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.max_attempts.saturating_sub(1))
        .with_jitter()
        .build();
    let mut retried_because = Vec::new();
    loop {
        match cycle().await {
            Ok(mut report) => {
                report.attempts = retried_because.len() + 1;
                report.retried_because = retried_because;
                return Ok(report);
            }
            Err(Step::Reject(message)) => return Err(ApplyError::Rejected(message)),
            // KMS access does not come back within a retry budget: the
            // reconciler tries again later.
            Err(Step::Unreadable(message)) => return Err(ApplyError::Unreadable(message)),
            // Retried at once, but not for ever: a target that keeps
            // changing under every attempt counts against the budget too.
            Err(Step::RetryNow(reason)) => {
                retried_because.push(reason.clone());
                if retried_because.len() >= policy.max_attempts.saturating_mul(2) {
                    return Err(ApplyError::Unavailable {
                        attempts: retried_because.len(),
                        last: reason,
                    });
                }
            }
            Err(Step::Retry(reason)) => {
                tracing::info!(function, %reason, "flag write will be retried");
                retried_because.push(reason.clone());
                match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => {
                        return Err(ApplyError::Unavailable {
                            attempts: retried_because.len(),
                            last: reason,
                        });
                    }
                }
            }
        }
    }
}

/// Writes owned flags into Lambda functions' environments.
#[derive(Clone)]
pub struct LambdaEnvBackend {
    pub(super) client: aws_sdk_lambda::Client,
    /// Clients for plans that name a region other than the default one.
    regional: Arc<Mutex<HashMap<String, aws_sdk_lambda::Client>>>,
    pub(super) policy: RetryPolicy,
}

impl LambdaEnvBackend {
    /// The SDK's own retries are turned off: this backend is the one retry
    /// layer, so every retry is bounded by `policy` and shows up in the audit
    /// log (`retried_because`) instead of hiding inside a slow call. Every
    /// call has an attempt and an operation timeout.
    pub fn new(config: &aws_config::SdkConfig, policy: RetryPolicy) -> Self {
        let lambda_config = aws_sdk_lambda::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(policy.timeouts())
            .build();
        LambdaEnvBackend {
            client: aws_sdk_lambda::Client::from_conf(lambda_config),
            regional: Arc::default(),
            policy,
        }
    }

    /// The same backend talking to another region (a plan's `target.region`).
    pub fn in_region(&self, region: Option<&str>) -> LambdaEnvBackend {
        let Some(region) = region else {
            return self.clone();
        };
        let mut regional = self.regional.lock().unwrap_or_else(|p| p.into_inner());
        let client = regional
            .entry(region.to_string())
            .or_insert_with(|| {
                let config = self
                    .client
                    .config()
                    .to_builder()
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                aws_sdk_lambda::Client::from_conf(config)
            })
            .clone();
        LambdaEnvBackend {
            client,
            regional: self.regional.clone(),
            policy: self.policy.clone(),
        }
    }

    /// Every function in the region by identity (unqualified ARN): name,
    /// environment and code hash. ListFunctions returns 50 a page, so this
    /// is N/50 calls for N functions instead of N reads — how the watcher
    /// checks many rollouts.
    pub async fn list_all(&self) -> Result<HashMap<String, Listed>, ApplyError> {
        let mut out = HashMap::new();
        let mut pages = self.client.list_functions().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ApplyError::Unavailable {
                attempts: 1,
                last: format!(
                    "ListFunctions: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                ),
            })?;
            for f in page.functions() {
                let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else {
                    continue;
                };
                out.insert(
                    function_identity(arn),
                    Listed {
                        name: name.to_string(),
                        env: Env::from_sdk(f.environment()),
                        code_sha256: f.code_sha256().map(str::to_string),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Reads the function's owned flags, revision and identity. An
    /// environment that cannot be read whole is `Unreadable`.
    pub async fn read(
        &self,
        function: &str,
        owned: &Flags,
        expect_variables: bool,
    ) -> Result<Observed, ApplyError> {
        let cfg = self.get(function).await?;
        let env = cfg
            .env
            .whole(expect_variables)
            .map_err(ApplyError::Unreadable)?;
        Ok(cfg.observed(&env, owned))
    }

    /// Like `read` (with `desired`'s keys as the owned ones), but refuses
    /// (`Rejected`) when writing `desired` into the function's current
    /// environment would break Lambda's size limit. Writes nothing.
    pub async fn read_checking_fit(
        &self,
        function: &str,
        desired: &Flags,
    ) -> Result<Observed, ApplyError> {
        let cfg = self.get(function).await?;
        let env = cfg.env.whole(false).map_err(ApplyError::Unreadable)?;
        let size = env_size_bytes(&merge(&env, desired));
        if size > LAMBDA_ENV_LIMIT_BYTES {
            return Err(ApplyError::Rejected(too_large(size)));
        }
        Ok(cfg.observed(&env, desired))
    }

    /// The function's identity and code, whatever its environment holds:
    /// for a plan that writes no variable (`appconfig`), an environment
    /// Lambda cannot decrypt is no obstacle.
    pub async fn read_identity(&self, function: &str) -> Result<Observed, ApplyError> {
        let cfg = self.get(function).await?;
        Ok(cfg.observed(&BTreeMap::new(), &Flags::new()))
    }

    /// Everything preflight asks of the function: identity, state, last
    /// update, environment (or its error), memory and timeout. Throttles
    /// and 5xx are retried within the policy's attempts; anything else is
    /// returned as AWS said it.
    pub async fn inspect(&self, function: &str) -> Result<FunctionFacts, AwsError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .get_function_configuration()
                .function_name(function)
                .send()
                .await;
            let e = match result {
                Ok(out) => {
                    return Ok(FunctionFacts {
                        arn: out
                            .function_arn()
                            .map(function_identity)
                            .unwrap_or_else(|| function.to_string()),
                        name: out.function_name().unwrap_or(function).to_string(),
                        state: out.state().map(|s| s.as_str().to_string()),
                        state_reason: out.state_reason().map(str::to_string),
                        last_update: out.last_update_status().map(|s| s.as_str().to_string()),
                        last_update_reason: out.last_update_status_reason().map(str::to_string),
                        env: Env::from_sdk(out.environment()),
                        memory_mb: out.memory_size(),
                        timeout_s: out.timeout(),
                    });
                }
                Err(e) => e,
            };
            let error = AwsError {
                code: e.code().map(str::to_string),
                status: e.raw_response().map(|r| r.status().as_u16()),
                message: e.message().map(redact).unwrap_or_default(),
            };
            let retry = matches!(
                classify(e.code(), e.message(), error.status),
                Step::Retry(_)
            ) && !error.is_denied();
            if !retry || attempt >= self.policy.max_attempts.max(1) {
                return Err(error);
            }
            tokio::time::sleep(self.policy.min_delay * attempt as u32).await;
        }
    }

    /// Sets the owned flags to `desired`, leaving every other variable as it
    /// is. Idempotent: when the function already holds `desired`, nothing is
    /// written. Stops at once (`Superseded`) when `cancel` fires, even in
    /// the middle of a call, so a newer command (a rollback) never waits
    /// for this one. `expect_variables`: see [`Env::whole`].
    pub async fn apply(
        &self,
        function: &str,
        desired: &Flags,
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ApplyError::Superseded),
            result = self.apply_retrying(function, desired, expect_variables) => result,
        }
    }

    async fn apply_retrying(
        &self,
        function: &str,
        desired: &Flags,
        expect_variables: bool,
    ) -> Result<WriteReport, ApplyError> {
        retrying(&self.policy, function, || {
            self.apply_once(function, desired, expect_variables)
        })
        .await
    }

    async fn apply_once(
        &self,
        function: &str,
        desired: &Flags,
        expect_variables: bool,
    ) -> Result<WriteReport, Step> {
        let cfg = self.get(function).await?;
        if cfg.status == Some(LastUpdateStatus::InProgress) {
            return Err(Step::Retry(
                "an update of the function is in progress".into(),
            ));
        }
        let env = cfg.env.whole(expect_variables).map_err(Step::Unreadable)?;
        let before = owned_values(&env, desired);
        // In place and confirmed by Lambda: nothing to write. In place but
        // the last update Failed: not confirmed (Lambda runs the previous
        // configuration), so it is written again below.
        if satisfies(&env, desired) && cfg.status != Some(LastUpdateStatus::Failed) {
            return Ok(WriteReport {
                after: before.clone(),
                before,
                wrote: false,
                attempts: 1,
                retried_because: Vec::new(),
                revision_id: cfg.revision_id,
                note: None,
                routing: None,
                steps: Vec::new(),
                delivery: None,
            });
        }
        let merged = merge(&env, desired);
        let size = env_size_bytes(&merged);
        if size > LAMBDA_ENV_LIMIT_BYTES {
            return Err(Step::Reject(too_large(size)));
        }
        let mut request = self
            .client
            .update_function_configuration()
            .function_name(function)
            .environment(
                Environment::builder()
                    .set_variables(Some(merged.into_iter().collect()))
                    .build(),
            );
        if let Some(revision) = &cfg.revision_id {
            request = request.revision_id(revision);
        }
        request.send().await.map_err(|e| {
            classify(
                e.code(),
                e.message(),
                e.raw_response().map(|r| r.status().as_u16()),
            )
        })?;
        let failed = self.wait_until_settled(function).await?;
        // Read back, also after a Failed update: what is live decides.
        let after = self.get(function).await?;
        let after_env = after.env.whole(true).map_err(Step::Unreadable)?;
        let in_place = satisfies(&after_env, desired);
        match (failed, in_place) {
            (None, true) => {}
            (None, false) => {
                return Err(Step::Retry(
                    "read-back after the write did not show the intended values".into(),
                ));
            }
            // Rule 2: finished only when Lambda reports Successful.
            (Some(failure), true) => {
                return Err(Step::Retry(format!(
                    "Lambda reports the update Failed ({failure}) although the read-back shows the values; not finished until Lambda reports Successful"
                )));
            }
            (Some(failure), false) => return Err(failed_update(failure)),
        }
        Ok(WriteReport {
            before,
            after: owned_values(&after_env, desired),
            wrote: true,
            attempts: 1,
            retried_because: Vec::new(),
            revision_id: after.revision_id,
            note: None,
            routing: None,
            steps: Vec::new(),
            delivery: None,
        })
    }

    /// Polls until `LastUpdateStatus` leaves `InProgress`; returns why it
    /// failed when it ended `Failed`.
    async fn wait_until_settled(&self, function: &str) -> Result<Option<UpdateFailure>, Step> {
        let deadline = tokio::time::Instant::now() + self.policy.settle_timeout;
        loop {
            let cfg = self.get(function).await?;
            match cfg.status {
                Some(LastUpdateStatus::InProgress) => {}
                Some(LastUpdateStatus::Failed) => {
                    return Ok(Some(UpdateFailure {
                        code: cfg.status_reason_code,
                        reason: cfg.status_reason,
                    }));
                }
                // Successful, or an emulator that does not report it.
                _ => return Ok(None),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Step::Retry(format!(
                    "the update was still in progress after {:?}",
                    self.policy.settle_timeout
                )));
            }
            tokio::time::sleep(self.policy.poll_interval).await;
        }
    }

    pub(super) async fn get(&self, function: &str) -> Result<FunctionConfig, Step> {
        self.get_qualified(function, None).await
    }

    /// The configuration of one version (`None`: `$LATEST`).
    pub(super) async fn get_qualified(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionConfig, Step> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .map_err(|e| {
                classify(
                    e.code(),
                    e.message(),
                    e.raw_response().map(|r| r.status().as_u16()),
                )
            })?;
        Ok(FunctionConfig {
            env: Env::from_sdk(out.environment()),
            revision_id: out.revision_id().map(str::to_string),
            code_sha256: out.code_sha256().map(str::to_string),
            status: out.last_update_status().cloned(),
            status_reason: out.last_update_status_reason().map(str::to_string),
            status_reason_code: out
                .last_update_status_reason_code()
                .map(|c| c.as_str().to_string()),
            arn: out.function_arn().map(function_identity),
            name: out.function_name().map(str::to_string),
            settings: settings(
                out.runtime(),
                out.handler(),
                out.role(),
                out.memory_size(),
                out.timeout(),
                out.layers(),
            ),
        })
    }

    /// This backend with another retry policy (a best-effort write that
    /// must not hold up the caller for long).
    pub(super) fn with_policy(&self, policy: RetryPolicy) -> LambdaEnvBackend {
        LambdaEnvBackend {
            client: self.client.clone(),
            regional: self.regional.clone(),
            policy,
        }
    }
}

/// A configuration's settings a version freezes besides code and
/// environment, in words (equal words: the same behaviour).
pub(super) fn settings(
    runtime: Option<&aws_sdk_lambda::types::Runtime>,
    handler: Option<&str>,
    role: Option<&str>,
    memory: Option<i32>,
    timeout: Option<i32>,
    layers: &[aws_sdk_lambda::types::Layer],
) -> String {
    format!(
        "runtime {:?}, handler {:?}, role {:?}, memory {:?} MB, timeout {:?} s, layers {:?}",
        runtime.map(|r| r.as_str()),
        handler,
        role,
        memory,
        timeout,
        layers.iter().filter_map(|l| l.arn()).collect::<Vec<_>>(),
    )
}

pub(super) struct FunctionConfig {
    pub(super) env: Env,
    pub(super) revision_id: Option<String>,
    pub(super) code_sha256: Option<String>,
    /// What a published version freezes besides code and environment, in
    /// words: two configurations with equal settings ship the same.
    pub(super) settings: String,
    status: Option<LastUpdateStatus>,
    status_reason: Option<String>,
    status_reason_code: Option<String>,
    arn: Option<String>,
    name: Option<String>,
}

impl FunctionConfig {
    fn observed(&self, env: &BTreeMap<String, String>, owned: &Flags) -> Observed {
        Observed {
            flags: owned_values(env, owned),
            revision_id: self.revision_id.clone(),
            code_sha256: self.code_sha256.clone(),
            last_update_status: self.status.as_ref().map(|s| s.as_str().to_string()),
            function_arn: self.arn.clone(),
            function_name: self.name.clone(),
            has_variables: !env.is_empty(),
        }
    }
}

/// Why Lambda says an update failed.
#[derive(Debug, Clone, PartialEq)]
struct UpdateFailure {
    code: Option<String>,
    reason: Option<String>,
}

impl std::fmt::Display for UpdateFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.code.as_deref().unwrap_or("Failed"),
            self.reason.as_deref().map(redact).unwrap_or_default()
        )
    }
}

/// A `Failed` update whose read-back does not show the values: Lambda's
/// own internal errors are retried; anything else is final.
fn failed_update(failure: UpdateFailure) -> Step {
    let message = format!(
        "Lambda reports the update failed ({failure}) and the read-back shows the flags unchanged"
    );
    match failure.code.as_deref() {
        Some("InternalError") => Step::Retry(message),
        _ => Step::Reject(message),
    }
}

/// Decides whether an AWS error is worth retrying. Pure, so it is tested on
/// codes alone: throttling, conflicts, stale revisions, 5xx, timeouts and
/// credentials that expired or a clock that drifted (they refresh) retry;
/// the rest (not found, invalid parameter, access denied) is final.
pub(super) fn classify(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Step {
    let message = message.map(redact);
    let text = match (code, message.as_deref()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => match status {
            Some(s) => format!("HTTP {s} from Lambda"),
            None => {
                "Lambda could not be reached in time (connection failure or timeout)".to_string()
            }
        },
    };
    let mentions = |needle: &str| {
        message
            .as_deref()
            .is_some_and(|m| m.to_ascii_lowercase().contains(needle))
    };
    match code {
        Some("PreconditionFailedException") => Step::Retry(
            "the function changed between read and write (RevisionId); re-reading".into(),
        ),
        Some(
            "TooManyRequestsException"
            | "ResourceConflictException"
            | "ServiceException"
            | "ThrottlingException"
            | "EC2ThrottledException"
            | "ResourceNotReadyException"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "RequestExpired"
            | "RequestTimeTooSkewed",
        ) => Step::Retry(text),
        // A signature that expired in flight or a skewed clock: the SDK
        // corrects its clock skew from the answer, so a retry succeeds. A
        // wrong secret key is final.
        Some("InvalidSignatureException") if mentions("signature expired") || mentions("skew") => {
            Step::Retry(text)
        }
        _ => match status {
            None => Step::Retry(text),
            Some(s) if s == 429 || s >= 500 => Step::Retry(text),
            Some(_) => Step::Reject(text),
        },
    }
}

fn too_large(size: usize) -> String {
    format!(
        "the function's environment would be {size} bytes, over Lambda's {LAMBDA_ENV_LIMIT_BYTES}-byte limit; nothing was written"
    )
}

/// Lambda quotes the whole environment in some errors ("String measured:
/// {...}"); other variables may be secrets, so that part never leaves here.
fn redact(message: &str) -> String {
    match message.find("String measured:") {
        Some(i) => format!("{}[environment redacted]", &message[..i]),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_messages_quoting_the_environment_are_redacted() {
        let Step::Reject(text) = classify(
            Some("InvalidParameterValueException"),
            Some("exceeded the 4KB limit. String measured: {\"DB_PASSWORD\":\"hunter2\"}"),
            Some(400),
        ) else {
            panic!("a 400 is final");
        };
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("4KB limit") && text.contains("[environment redacted]"));
    }

    fn retries(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> bool {
        matches!(classify(code, message, status), Step::Retry(_))
    }

    /// code, message, status → retried?
    type Row<'a> = (Option<&'a str>, Option<&'a str>, Option<u16>, bool);

    #[test]
    fn transient_errors_retry_and_final_ones_do_not() {
        #[rustfmt::skip]
        let table: &[Row] = &[
            (Some("TooManyRequestsException"), None, Some(429), true),
            (Some("ResourceConflictException"), None, Some(409), true),
            (Some("PreconditionFailedException"), None, Some(412), true),
            (Some("ServiceException"), None, Some(500), true),
            (None, None, Some(503), true),
            (None, None, None, true), // network failures and timeouts
            (Some("KMSAccessDeniedException"), None, Some(502), true),
            (Some("ExpiredTokenException"), Some("The security token included in the request is expired"), Some(403), true),
            (Some("RequestExpired"), None, Some(400), true),
            (Some("InvalidSignatureException"), Some("Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"), Some(403), true),
            (Some("InvalidSignatureException"), Some("The request signature we calculated does not match the signature you provided"), Some(403), false),
            (Some("ResourceNotFoundException"), None, Some(404), false),
            (Some("InvalidParameterValueException"), None, Some(400), false),
            (Some("AccessDeniedException"), None, Some(403), false),
            (Some("UnrecognizedClientException"), None, Some(403), false),
        ];
        for (code, message, status, want) in table {
            assert_eq!(
                retries(*code, *message, *status),
                *want,
                "{code:?} {message:?}"
            );
        }
    }

    #[test]
    fn a_failed_update_is_final_unless_lambda_erred_itself() {
        let failure = |code: &str| UpdateFailure {
            code: Some(code.into()),
            reason: Some("why".into()),
        };
        assert!(matches!(
            failed_update(failure("InternalError")),
            Step::Retry(_)
        ));
        let Step::Reject(m) = failed_update(failure("KMSKeyAccessDenied")) else {
            panic!("final");
        };
        assert!(
            m.contains("KMSKeyAccessDenied: why") && m.contains("unchanged"),
            "{m}"
        );
    }

    #[test]
    fn an_environment_is_read_whole_or_not_at_all() {
        let vars: BTreeMap<String, String> = [("A".to_string(), "1".to_string())].into();
        assert_eq!(Env::Vars(vars.clone()).whole(true), Ok(vars));
        assert_eq!(Env::Absent.whole(false), Ok(BTreeMap::new()));
        assert!(Env::Absent.whole(true).is_err());
        let kms = Env::Error {
            code: "KMSAccessDeniedException".into(),
            message: "denied".into(),
        };
        let e = kms.whole(false).unwrap_err();
        assert!(e.contains("KMSAccessDeniedException: denied"), "{e}");
    }

    #[test]
    fn identities_drop_qualifiers_only() {
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:dixon";
        assert_eq!(function_identity(arn), arn);
        assert_eq!(function_identity(&format!("{arn}:prod")), arn);
        assert_eq!(function_identity(&format!("{arn}:$LATEST")), arn);
        assert_eq!(function_identity("dixon"), "dixon");
    }
}

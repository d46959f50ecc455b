//! The `lambda-env` backend: owned flags live in the Lambda function's
//! environment. Every write is read-modify-write under the function's
//! `RevisionId`, waits for `LastUpdateStatus = Successful`, and is verified by
//! a read-back (design rules 1 and 2).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::{Environment, LastUpdateStatus};
use backon::{BackoffBuilder, ExponentialBuilder};

use super::merge::{LAMBDA_ENV_LIMIT_BYTES, env_size_bytes, merge, owned_values, satisfies};
use crate::plan::Flags;

/// How hard a write tries before it reports the target unavailable.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts of the whole read-merge-write-verify cycle.
    pub max_attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// How long to wait for `LastUpdateStatus` to leave `InProgress`.
    pub settle_timeout: Duration,
    pub poll_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            settle_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
        }
    }
}

/// What the function looked like when read.
#[derive(Debug, Clone)]
pub struct Observed {
    /// Current values of the owned flags (absent keys left out).
    pub flags: Flags,
    pub revision_id: Option<String>,
    pub code_sha256: Option<String>,
    pub last_update_status: Option<String>,
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
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ApplyError {
    /// The target refused the change, or it cannot be made (too large, no such
    /// function, access denied). Nothing was written.
    #[error("{0}")]
    Rejected(String),
    /// The target stayed unavailable through every retry (throttling, updates
    /// in progress, 5xx). The write may be retried later.
    #[error("target unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: usize, last: String },
    /// The caller stopped wanting this write (a newer command, e.g. a
    /// rollback, replaced it) before it was confirmed.
    #[error("superseded by a newer command before it was confirmed")]
    Superseded,
}

/// One cycle's failure: retry it, or give up.
enum Step {
    Retry(String),
    Reject(String),
}

/// Writes owned flags into Lambda functions' environments.
#[derive(Clone)]
pub struct LambdaEnvBackend {
    client: aws_sdk_lambda::Client,
    /// Clients for plans that name a region other than the default one.
    regional: Arc<Mutex<HashMap<String, aws_sdk_lambda::Client>>>,
    policy: RetryPolicy,
}

impl LambdaEnvBackend {
    /// The SDK's own retries are turned off: this backend is the one retry
    /// layer, so every retry is bounded by `policy` and shows up in the audit
    /// log (`retried_because`) instead of hiding inside a slow call.
    pub fn new(config: &aws_config::SdkConfig, policy: RetryPolicy) -> Self {
        let lambda_config = aws_sdk_lambda::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
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

    /// Every function in the region, by name: its environment and code hash.
    /// ListFunctions returns 50 a page, so this is N/50 calls for N
    /// functions instead of N reads — how the watcher checks many rollouts.
    pub async fn list_all(
        &self,
    ) -> Result<HashMap<String, (BTreeMap<String, String>, Option<String>)>, ApplyError> {
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
                let Some(name) = f.function_name() else {
                    continue;
                };
                let env = f
                    .environment()
                    .and_then(|e| e.variables())
                    .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                out.insert(name.to_string(), (env, f.code_sha256().map(str::to_string)));
            }
        }
        Ok(out)
    }

    /// Reads the function's owned flags and revision.
    pub async fn read(&self, function: &str, owned: &Flags) -> Result<Observed, ApplyError> {
        let cfg = self.get(function).await.map_err(|s| match s {
            Step::Retry(m) => ApplyError::Unavailable {
                attempts: 1,
                last: m,
            },
            Step::Reject(m) => ApplyError::Rejected(m),
        })?;
        Ok(Observed {
            flags: owned_values(&cfg.env, owned),
            revision_id: cfg.revision_id,
            code_sha256: cfg.code_sha256,
            last_update_status: cfg.status.map(|s| s.as_str().to_string()),
        })
    }

    /// Like `read` (with `desired`'s keys as the owned ones), but refuses
    /// (`Rejected`) when writing `desired` into the function's current
    /// environment would break Lambda's size limit. Writes nothing.
    pub async fn read_checking_fit(
        &self,
        function: &str,
        desired: &Flags,
    ) -> Result<Observed, ApplyError> {
        let cfg = self.get(function).await.map_err(|s| match s {
            Step::Retry(m) => ApplyError::Unavailable {
                attempts: 1,
                last: m,
            },
            Step::Reject(m) => ApplyError::Rejected(m),
        })?;
        let size = env_size_bytes(&merge(&cfg.env, desired));
        if size > LAMBDA_ENV_LIMIT_BYTES {
            return Err(ApplyError::Rejected(too_large(size)));
        }
        Ok(Observed {
            flags: owned_values(&cfg.env, desired),
            revision_id: cfg.revision_id,
            code_sha256: cfg.code_sha256,
            last_update_status: cfg.status.map(|s| s.as_str().to_string()),
        })
    }

    /// Sets the owned flags to `desired`, leaving every other variable as it is.
    /// Idempotent: when the function already holds `desired`, nothing is written.
    pub async fn apply(&self, function: &str, desired: &Flags) -> Result<WriteReport, ApplyError> {
        self.apply_while(function, desired, || true).await
    }

    /// Like `apply`, but gives up between attempts once `still_wanted` says
    /// no, so a pending write never holds up the command that replaced it.
    pub async fn apply_while(
        &self,
        function: &str,
        desired: &Flags,
        still_wanted: impl Fn() -> bool,
    ) -> Result<WriteReport, ApplyError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.policy.min_delay)
            .with_max_delay(self.policy.max_delay)
            .with_max_times(self.policy.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut retried_because = Vec::new();
        loop {
            if !still_wanted() {
                return Err(ApplyError::Superseded);
            }
            match self.apply_once(function, desired).await {
                Ok(mut report) => {
                    report.attempts = retried_because.len() + 1;
                    report.retried_because = retried_because;
                    return Ok(report);
                }
                Err(Step::Reject(message)) => return Err(ApplyError::Rejected(message)),
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

    async fn apply_once(&self, function: &str, desired: &Flags) -> Result<WriteReport, Step> {
        let cfg = self.get(function).await?;
        if cfg.status == Some(LastUpdateStatus::InProgress) {
            return Err(Step::Retry(
                "an update of the function is in progress".into(),
            ));
        }
        let before = owned_values(&cfg.env, desired);
        if satisfies(&cfg.env, desired) {
            return Ok(WriteReport {
                after: before.clone(),
                before,
                wrote: false,
                attempts: 1,
                retried_because: Vec::new(),
                revision_id: cfg.revision_id,
            });
        }
        let merged = merge(&cfg.env, desired);
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
        self.wait_until_settled(function).await?;
        let after = self.get(function).await?;
        if !satisfies(&after.env, desired) {
            return Err(Step::Retry(
                "read-back after the write did not show the intended values".into(),
            ));
        }
        Ok(WriteReport {
            before,
            after: owned_values(&after.env, desired),
            wrote: true,
            attempts: 1,
            retried_because: Vec::new(),
            revision_id: after.revision_id,
        })
    }

    /// Polls until `LastUpdateStatus` leaves `InProgress`.
    async fn wait_until_settled(&self, function: &str) -> Result<(), Step> {
        let deadline = tokio::time::Instant::now() + self.policy.settle_timeout;
        loop {
            let cfg = self.get(function).await?;
            match cfg.status {
                Some(LastUpdateStatus::InProgress) => {}
                Some(LastUpdateStatus::Failed) => {
                    return Err(Step::Reject(format!(
                        "Lambda reports the update failed: {}",
                        cfg.status_reason.unwrap_or_default()
                    )));
                }
                // Successful, or an emulator that does not report it.
                _ => return Ok(()),
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

    async fn get(&self, function: &str) -> Result<FunctionConfig, Step> {
        let out = self
            .client
            .get_function_configuration()
            .function_name(function)
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
            env: out
                .environment()
                .and_then(|e| e.variables())
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
            revision_id: out.revision_id().map(str::to_string),
            code_sha256: out.code_sha256().map(str::to_string),
            status: out.last_update_status().cloned(),
            status_reason: out.last_update_status_reason().map(str::to_string),
        })
    }
}

struct FunctionConfig {
    env: BTreeMap<String, String>,
    revision_id: Option<String>,
    code_sha256: Option<String>,
    status: Option<LastUpdateStatus>,
    status_reason: Option<String>,
}

/// Decides whether an AWS error is worth retrying. Pure, so it is tested on
/// codes alone: throttling, conflicts, stale revisions and 5xx retry; the rest
/// (not found, invalid parameter, access denied) is final.
fn classify(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Step {
    let message = message.map(redact);
    let text = match (code, message.as_deref()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => match status {
            Some(s) => format!("HTTP {s} from Lambda"),
            None => "Lambda could not be reached".to_string(),
        },
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
            | "ResourceNotReadyException",
        ) => Step::Retry(text),
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

    fn retries(code: Option<&str>, status: Option<u16>) -> bool {
        matches!(classify(code, None, status), Step::Retry(_))
    }

    #[test]
    fn transient_errors_retry_and_final_ones_do_not() {
        assert!(retries(Some("TooManyRequestsException"), Some(429)));
        assert!(retries(Some("ResourceConflictException"), Some(409)));
        assert!(retries(Some("PreconditionFailedException"), Some(412)));
        assert!(retries(Some("ServiceException"), Some(500)));
        assert!(retries(None, Some(503)));
        assert!(retries(None, None), "network failures retry");
        assert!(!retries(Some("ResourceNotFoundException"), Some(404)));
        assert!(!retries(Some("InvalidParameterValueException"), Some(400)));
        assert!(!retries(Some("AccessDeniedException"), Some(403)));
    }
}

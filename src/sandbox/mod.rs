//! A local AWS sandbox for tests and the demo: a loopback HTTP server that
//! speaks the real AWS wire protocols for exactly the operations rollgate
//! uses, so the official SDK (and the AWS CLI) talk to it unchanged. It
//! imports nothing of the control plane.
//!
//! Lambda (REST-JSON, under `/2015-03-31/functions`): CreateFunction,
//! GetFunction, GetFunctionConfiguration, UpdateFunctionConfiguration
//! (`RevisionId` precondition, `InProgress` for the update delay,
//! `ResourceConflictException` during it, 4 KB environment limit, `Failed`
//! with a reason when a fault says so), UpdateFunctionCode, ListFunctions,
//! PublishVersion, CreateAlias, GetAlias, UpdateAlias, ListAliases.
//!
//! CloudWatch (rpcv2Cbor, `POST /service/GraniteServiceVersion20100801/operation/<Op>`;
//! awsJson1_0, `POST /` with `X-Amz-Target`, as botocore and the AWS CLI
//! speak it; awsQuery, `POST /` form-encoded with `Action=`, XML answers;
//! gzip-encoded bodies on all three), with CloudWatch's documented
//! behaviour (see `cloudwatch.rs`): a metric delay (`SandboxConfig::metric_delay`,
//! default 60 s), data stored by the minute (by the second at
//! `StorageResolution` 1), Period rules and StartTime rounding, partial
//! last buckets, coarser periods for old data, no datapoint for a zero count.
//! PutMetricData, GetMetricData (Sum, Average, SampleCount, Minimum, Maximum,
//! pNN, simple metric math, at most 500 queries, NextToken pagination),
//! PutMetricAlarm (validated as CloudWatch validates it: a single metric or
//! `Metrics`, metric math with exactly one `ReturnData`, periods, operators,
//! `DatapointsToAlarm` ≤ `EvaluationPeriods`; `Tags` on creation),
//! PutCompositeAlarm (initially `INSUFFICIENT_DATA`; the rule
//! is kept, not evaluated), DeleteAlarms (names of no alarm are ignored),
//! ListTagsForResource, TagResource, UntagResource, DescribeAlarms as AWS answers it (only metric
//! alarms unless `AlarmTypes` names `CompositeAlarm`; `AlarmNames`, at most
//! 100, or `AlarmNamePrefix`; `StateValue`; `MaxRecords` 1 to 100, default
//! 50, else `ValidationError`; `NextToken` pages across both types, metric
//! alarms first), SetAlarmState (either type). Errors carry AWS's
//! `x-amzn-query-error` code (`InvalidParameterValue;Sender`), which the SDK
//! and the CLI report as the error code.
//!
//! AppConfig (REST-JSON, see `appconfig/`), control plane: CreateApplication,
//! GetApplication, ListApplications; CreateEnvironment (`Monitors` naming
//! CloudWatch alarm ARNs), GetEnvironment, ListEnvironments (`State`
//! READY_FOR_DEPLOYMENT, DEPLOYING, ROLLED_BACK, REVERTED, from the last
//! deployment); CreateConfigurationProfile (`LocationUri` `hosted` only,
//! `Type` `AWS.Freeform` or `AWS.AppConfig.FeatureFlags`),
//! GetConfigurationProfile, ListConfigurationProfiles;
//! CreateHostedConfigurationVersion (raw body, 2 MB at most, else 413
//! `PayloadTooLargeException`; a `Latest-Version-Number` that is not the
//! latest → 409 `ConflictException`; FeatureFlags content validated against
//! AppConfig's format, a broken value or a value for an undefined flag → 400
//! `BadRequestException` naming it), GetHostedConfigurationVersion,
//! ListHostedConfigurationVersions (newest first); CreateDeploymentStrategy,
//! GetDeploymentStrategy, ListDeploymentStrategies, with AWS's predefined
//! `AppConfig.AllAtOnce`, `AppConfig.Linear50PercentEvery30Seconds`,
//! `AppConfig.Linear20PercentEvery6Minutes`, `AppConfig.Canary10Percent20Minutes`
//! under those ids; StartDeployment (409 `ConflictException` while another
//! deployment of the environment is DEPLOYING or BAKING), GetDeployment
//! (`EventLog` newest first), ListDeployments (newest first), StopDeployment
//! (a DEPLOYING one → ROLLED_BACK; with `Allow-Revert: true` also a BAKING
//! one → ROLLED_BACK and a COMPLETE one, for 72 hours, → REVERTED; otherwise
//! 400), all by id (404 `ResourceNotFoundException` otherwise); lists take
//! `max_results` (1–50) and `next_token`. Deployments progress by their
//! strategy as AWS documents it (LINEAR G, 2G…; EXPONENTIAL G·2^N; steps
//! evenly over the duration; then BAKING; then COMPLETE), on the sandbox's
//! AppConfig minute (`SandboxConfig::appconfig_minute`, default a real
//! minute) and clock (`Sandbox::set_appconfig_clock`, default the real one).
//! A deployment still running when an alarm its environment monitors is in
//! ALARM in the sandbox's CloudWatch rolls back (`TriggeredBy:
//! CLOUDWATCH_ALARM`), from the time the alarm went off; a rollback or a
//! revert gives every client the previous version again.
//!
//! AppConfig data plane: StartConfigurationSession (identifiers by id or
//! name; `RequiredMinimumPollIntervalInSeconds` 15–86400, default 60) and
//! GetLatestConfiguration: each token is good once (reuse → 400) and for 24
//! hours; a call before the poll interval has passed is refused (400,
//! `PollIntervalNotSatisfied`, the token stays good); the body is empty when
//! the session already has that version; nothing deployed yet → 404
//! `ResourceNotFoundException`. During a deployment a session gets the new
//! version once its fixed point (a hash of its id, in [0, 100)) is below
//! the deployment's `PercentageComplete`. FeatureFlags profiles serve the
//! values view, `{"KEY": {"enabled": BOOL, "ATTR": VALUE}}`.
//!
//! STS and IAM (awsQuery on `POST /`, told from CloudWatch's by the form's
//! `Version`, else the SigV4 scope's service; see `sts.rs`, `iam.rs`):
//! GetCallerIdentity (the caller, `Sandbox::set_caller_arn`), GetRole (any
//! name, Path `/`), SimulatePrincipalPolicy (`allowed` unless denied).
//!
//! Permissions (see `access.rs`): every operation served is the IAM action
//! `service:OperationName`; a denied one (`Faults::deny`, `{"deny": [...]}`)
//! answers AccessDenied in its service's shape — Lambda and AppConfig 403
//! `AccessDeniedException`, CloudWatch 403 `AccessDenied` (its awsQuery
//! code, in all three protocols), IAM 403 `AccessDenied` — with AWS's
//! message naming the caller, and is `implicitDeny` in the simulator.
//! `sts:GetCallerIdentity` answers even when denied, as in AWS.
//!
//! Admin endpoints (JSON), for tests, the demo and operators:
//!
//! - `GET  /_sandbox/state` — `{"functions": [{"name", "arn", "environment",
//!   "revision_id", "last_update_status", "last_update_status_reason",
//!   "last_update_status_reason_code", "code_sha256", "versions",
//!   "aliases"}], "faults": {...}, "update_delay_ms", "metric_delay_ms",
//!   "cloudwatch": {...}, "appconfig": {"applications": [{"id", "name",
//!   "environments": [{"id", "name", "state", "monitors", "deployed":
//!   {PROFILE_ID: VERSION}, "deployments": [{"number", "profile", "version",
//!   "previous", "strategy", "state", "percentage"}]}], "profiles": [{"id",
//!   "name", "type", "versions": [{"number", "label", "content_type",
//!   "content"}]}]}], "sessions", "minute_ms", "faults"},
//!   "appconfig_minute_ms"}`;
//!   the environment shown is the stored one, whatever the faults show callers.
//! - `POST /_sandbox/faults` — switch faults on; every field optional, and
//!   fields left out keep their current setting:
//!   `{"throttle_next": N, "fail_next": N, "latency_ms": MS,
//!     "update_delay_ms": MS, "metric_delay_ms": MS,
//!     "foreign_edit": {"function": NAME, "set": {"KEY": "VALUE"}, "unset": ["KEY"]},
//!     "kms_error": {"function": NAME, "code": CODE, "message": TEXT}, "kms_ok": NAME,
//!     "hide_environment": NAME, "show_environment": NAME,
//!     "hang_next": N, "hang_ms": MS, "expired_token_next": N,
//!     "clock_skew_next": N,
//!     "fail_next_update": {"function": NAME, "reason": TEXT,
//!       "reason_code": CODE, "applied": BOOL},
//!     "appconfig_throttle_next": N, "appconfig_fail_next": N,
//!     "appconfig_minute_ms": MS,
//!     "appconfig_foreign_version": {"profile": PROFILE_ID, "content": TEXT},
//!     "appconfig_rollback_next": {"environment": ENV_ID},
//!     "deny": ["service:Operation", ...], "allow": ["service:Operation", ...],
//!     "allow_all": true}`.
//!   - `throttle_next`: the next N Lambda calls answer 429
//!     `TooManyRequestsException` (`Reason: CallerRateLimitExceeded`,
//!     `Retry-After: 1`);
//!   - `fail_next`: the next N Lambda calls answer 500 `ServiceException`;
//!   - `hang_next`: the next N Lambda calls are held `hang_ms` (default
//!     600000, ten minutes) before they are served, so a client must time
//!     out by itself; a call whose caller gave up meanwhile never happens;
//!   - `expired_token_next`: the next N Lambda calls answer 403
//!     `ExpiredTokenException` "The security token included in the request
//!     is expired";
//!   - `clock_skew_next`: the next N Lambda calls answer 403
//!     `InvalidSignatureException` "Signature expired: T-10m is now earlier
//!     than T-5m (T - 5 min.)", T the real current time (`20260101T001000Z`
//!     form), as for a caller whose clock is ten minutes behind;
//!   - `latency_ms`: every Lambda call is answered that much later (0 = off);
//!   - `update_delay_ms`: how long `LastUpdateStatus` stays `InProgress`
//!     after later updates (a setting, not a fault: reset keeps it);
//!   - `metric_delay_ms`: CloudWatch's metric delay, for every read from
//!     then on (a setting too: reset keeps it);
//!   - `foreign_edit`: right after the next GetFunctionConfiguration of that
//!     function is answered, someone else sets (`set`) and deletes (`unset`)
//!     those variables, bumping its `RevisionId`, so the caller's next update
//!     carrying the revision it just read fails with 412
//!     `PreconditionFailedException`. One pending edit per function;
//!   - `kms_error`: Lambda can no longer decrypt that function's environment.
//!     Every configuration the sandbox returns for it (GetFunctionConfiguration,
//!     GetFunction, ListFunctions, qualified versions, the answers to writes)
//!     carries `"Environment": {"Error": {"ErrorCode", "Message"}}` and no
//!     `Variables`, as Lambda's do; an UpdateFunctionConfiguration carrying
//!     `Environment` answers 502 with the code as error type (Lambda's KMS
//!     exceptions are 502s). `code` defaults to `KMSAccessDeniedException`,
//!     `message` to Lambda's wording for the code. The stored variables are
//!     untouched and show again after `kms_ok` (or a reset);
//!   - `hide_environment`: configurations of that function come back with no
//!     `Environment` key at all, though it has variables, until
//!     `show_environment` (or a reset). Hidden wins over a KMS error;
//!   - `fail_next_update`: the next UpdateFunctionConfiguration of that
//!     function is accepted as usual (200, `InProgress` for the update delay)
//!     and, once the delay is over, the function reports `LastUpdateStatus =
//!     Failed` with `LastUpdateStatusReason` (`reason`, else a generic one)
//!     and `LastUpdateStatusReasonCode` (`reason_code`, one of Lambda's, e.g.
//!     `KMSKeyAccessDenied`; default `InternalError`). `applied: false` (the
//!     default) is Lambda aborting the update: the previous configuration and
//!     variables come back, with a new `RevisionId`; `applied: true` keeps
//!     the new ones. The next update that succeeds clears the status.
//!
//!   - `appconfig_throttle_next`: the next N AppConfig calls (either
//!     plane) answer 429 `ThrottlingException`; `appconfig_fail_next`: 500
//!     `InternalServerException` (throttles first);
//!   - `appconfig_minute_ms`: how long a strategy minute lasts (a setting:
//!     reset keeps it); running deployments keep the minutes they have run;
//!   - `appconfig_foreign_version`: right after the next
//!     GetHostedConfigurationVersion of that profile is answered, someone
//!     else creates a new hosted version with `content`, so a
//!     CreateHostedConfigurationVersion with the `Latest-Version-Number` just
//!     read fails 409. One pending version per profile;
//!   - `appconfig_rollback_next`: the deployment running on that
//!     environment (or, if none is, the next one to start) rolls back as if
//!     a monitored alarm had fired.
//!
//!   - `deny`: the caller may no longer perform those IAM actions (added to
//!     those already denied; matched without regard to case; no
//!     wildcards); `allow` takes actions off the list, `allow_all` clears
//!     it (a reset does too). `GET /_sandbox/state` shows `faults.denied`
//!     and `caller_arn`.
//!
//!   A Lambda call meets at most one of the counted faults, in the order
//!   `hang_next`, `expired_token_next`, `clock_skew_next` (AWS authenticates
//!   before it rate-limits), a denial (it authorizes next), `throttle_next`,
//!   `fail_next`.
//!
//!   Answers `{"ok": true}`, or 400 `{"error": "..."}` for an unknown field,
//!   an empty function name, an error code that is not letters and digits,
//!   one function both set and cleared in one request, an action that is not
//!   `service:Operation`, or one both denied and allowed; a refused request
//!   changes nothing.
//! - `POST /_sandbox/reset` — all faults off, AppConfig's too (update delay,
//!   AppConfig minute, functions and AppConfig resources stay,
//!   and so does a `Failed` status already reported).
//! - `GET  /_sandbox/traffic`, `POST /_sandbox/traffic` — the traffic
//!   simulator's knobs: `{"enabled": BOOL, "invocations_per_tick": N,
//!   "bad_flags": ["FLAG", ...], "alias": "live", "outside_share": 0.0}`
//!   (fields optional on POST): callers invoke `alias` when the function
//!   has it (by its weights, each version with its own environment), and
//!   `outside_share` of them call `$LATEST` unqualified. Invocations run
//!   in execution environments (see `execution`): a pool per version of
//!   about `invocations_per_tick / 20` (at least one), each with the
//!   variables it captured at its cold start; an update of `$LATEST` that
//!   took effect recycles them all. A function with `APPCONFIG_APPLICATION`,
//!   `APPCONFIG_ENVIRONMENT` and `APPCONFIG_PROFILE` (names or ids) reads
//!   flags as the AppConfig Lambda extension does (a data-plane session per
//!   environment, polled every `AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS`,
//!   default 45); a flag `use_optimized_prompts` with `enabled: true` counts
//!   as `USE_OPTIMIZED_PROMPTS=true`. `bad_flags` match either spelling.
//!   `GET /_sandbox/state` shows, per function, `"execution_environments":
//!   {NAME: {"cold_starts", "groups": [{"version", "flags", "environments"}]}}`.
//!
//! Lambda errors carry AWS's status code, an `x-amzn-ErrorType` header and a
//! `{"Type": ..., "message": ...}` body; every Lambda answer carries an
//! `x-amzn-RequestId`. Unknown routes answer 404 `UnknownOperationException`.

mod access;
mod appconfig;
mod cloudwatch;
pub mod execution;
mod iam;
mod lambda;
mod query;
mod sts;
pub mod traffic;

pub use cloudwatch::AlarmView;

/// The account every sandbox resource belongs to (in ARNs).
const ACCOUNT: &str = "123456789012";

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

/// How a sandbox starts; everything here can also change while it runs.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// How long `LastUpdateStatus` stays `InProgress` after an update.
    pub update_delay: Duration,
    /// Emit simulated traffic this often (when the simulator is enabled).
    pub traffic_tick: Option<Duration>,
    /// How long after it was put (PutMetricData, or the simulator's
    /// emission, by the sandbox's clock) a datum becomes visible to
    /// GetMetricData, whatever its timestamp. Real CloudWatch's is about a
    /// minute: [`DEFAULT_METRIC_DELAY`] by default; tests and the demo use 0.
    pub metric_delay: Duration,
    /// How long one minute of an AppConfig deployment strategy lasts in the
    /// sandbox (durations, steps, bake times, the 72-hour revert window):
    /// a real minute by default; tests and the demo use e.g. 200 ms.
    pub appconfig_minute: Duration,
}

/// CloudWatch's usual delay before a datum can be read back.
pub const DEFAULT_METRIC_DELAY: Duration = Duration::from_secs(60);

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            update_delay: Duration::ZERO,
            traffic_tick: None,
            metric_delay: DEFAULT_METRIC_DELAY,
            appconfig_minute: appconfig::DEFAULT_MINUTE,
        }
    }
}

/// Injected faults, switchable at run time.
#[derive(Debug, Default, Clone)]
struct FaultState {
    throttle_next: u64,
    fail_next: u64,
    latency: Duration,
    /// function name → the edit someone else makes after its next read.
    foreign_edits: HashMap<String, ForeignEdit>,
    /// function name → why Lambda cannot decrypt its environment.
    kms_errors: BTreeMap<String, EnvError>,
    /// Functions whose reads come back without an `Environment` key.
    hidden_environments: BTreeSet<String>,
    /// The next N Lambda calls are held this long before they are served.
    hang_next: u64,
    hang: Duration,
    /// The next N Lambda calls are refused: expired session token.
    expired_token_next: u64,
    /// The next N Lambda calls are refused: signed too long ago (clock skew).
    clock_skew_next: u64,
    /// function name → how its next UpdateFunctionConfiguration ends.
    failing_updates: BTreeMap<String, UpdateFailure>,
    /// IAM actions the caller may not perform (see `access`).
    denied: access::Denied,
}

/// An update Lambda accepts and then reports `LastUpdateStatus = Failed`.
#[derive(Debug, Clone, serde::Serialize)]
struct UpdateFailure {
    reason: String,
    reason_code: String,
    /// Whether the new configuration is in place despite the failure;
    /// otherwise Lambda keeps the previous one.
    applied: bool,
}

impl UpdateFailure {
    fn new(reason: &str, reason_code: &str, applied: bool) -> UpdateFailure {
        let reason = if reason.is_empty() {
            format!("The function update failed ({reason_code}).")
        } else {
            reason.to_string()
        };
        UpdateFailure {
            reason,
            reason_code: reason_code.to_string(),
            applied,
        }
    }
}

/// Lambda's `LastUpdateStatusReasonCode` values (the SDK's enum).
const REASON_CODES: &[&str] = &[
    "CapacityProviderScalingLimitExceeded",
    "DependencyError",
    "DisabledKMSKey",
    "DisallowedByVpcEncryptionControl",
    "EFSIOError",
    "EFSMountConnectivityError",
    "EFSMountFailure",
    "EFSMountTimeout",
    "EniLimitExceeded",
    "FunctionError",
    "ImageAccessDenied",
    "ImageDeleted",
    "InsufficientCapacity",
    "InsufficientRolePermissions",
    "InternalError",
    "InvalidConfiguration",
    "InvalidImage",
    "InvalidRuntime",
    "InvalidSecurityGroup",
    "InvalidStateKMSKey",
    "InvalidSubnet",
    "InvalidZipFileException",
    "KMSKeyAccessDenied",
    "KMSKeyNotFound",
    "ServiceQuotaExceededException",
    "SubnetOutOfIPAddresses",
    "VcpuLimitExceeded",
];

/// The one counted fault a Lambda call meets, if any.
enum CallFault {
    Hang(Duration),
    ExpiredToken,
    ClockSkew,
    /// The caller may not perform the operation: AWS's message.
    Denied(String),
    Throttle,
    Fail,
}

/// Counts one down; true when it was not zero.
fn take(n: &mut u64) -> bool {
    let some = *n > 0;
    *n = n.saturating_sub(1);
    some
}

impl FaultState {
    /// Takes the next counted fault. A call meets at most one, in this
    /// order: hang, expired token, clock skew (AWS authenticates a call
    /// before it counts it against the rate), a `denial` (then it authorizes
    /// it: a denied call counts no throttle or 5xx), throttle, 5xx.
    fn take_call_fault(&mut self, denial: Option<String>) -> Option<CallFault> {
        if take(&mut self.hang_next) {
            Some(CallFault::Hang(self.hang))
        } else if take(&mut self.expired_token_next) {
            Some(CallFault::ExpiredToken)
        } else if take(&mut self.clock_skew_next) {
            Some(CallFault::ClockSkew)
        } else if let Some(message) = denial {
            Some(CallFault::Denied(message))
        } else if take(&mut self.throttle_next) {
            Some(CallFault::Throttle)
        } else if take(&mut self.fail_next) {
            Some(CallFault::Fail)
        } else {
            None
        }
    }
}

/// How long `hang_next` holds a call when the request names no `hang_ms`:
/// ten minutes, longer than any sane client waits.
const DEFAULT_HANG: Duration = Duration::from_secs(600);

/// What Lambda shows in `Environment.Error` when it cannot decrypt a
/// function's variables (KMS access lost, key disabled or deleted).
#[derive(Debug, Clone, serde::Serialize)]
struct EnvError {
    code: String,
    message: String,
}

impl EnvError {
    /// `message`, or Lambda's wording for `code` when there is none.
    fn new(code: &str, message: Option<&str>) -> EnvError {
        EnvError {
            code: code.to_string(),
            message: message.map_or_else(|| kms_message(code), str::to_string),
        }
    }
}

/// Lambda's message for the usual KMS exceptions. `KMSAccessDeniedException`
/// is worded as AWS words it (space missing before "KMS Message" included).
fn kms_message(code: &str) -> String {
    let why = match code {
        "KMSAccessDeniedException" => {
            return "Lambda was unable to decrypt the environment variables because KMS access was denied. Please check the function's KMS key settings. KMS Exception: AccessDeniedExceptionKMS Message: The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.".to_string();
        }
        "KMSDisabledException" => "the KMS key used is disabled",
        "KMSInvalidStateException" => "the state of the KMS key used is not valid for Decrypt",
        "KMSNotFoundException" => "the KMS key was not found",
        _ => "of a KMS error",
    };
    format!(
        "Lambda was unable to decrypt the environment variables because {why}. Please check the function's KMS key settings."
    )
}

/// A concurrent edit by someone else: variables set and variables removed.
#[derive(Debug, Default, Clone, serde::Serialize)]
struct ForeignEdit {
    set: BTreeMap<String, String>,
    unset: BTreeSet<String>,
}

#[derive(Debug)]
struct World {
    /// Who the sandbox's caller is (STS's GetCallerIdentity, AccessDenied messages).
    caller_arn: String,
    functions: BTreeMap<String, lambda::Function>,
    faults: FaultState,
    update_delay: Duration,
    cloudwatch: cloudwatch::CloudWatch,
    appconfig: appconfig::AppConfig,
    traffic: traffic::TrafficSettings,
    noise: Option<traffic::Noise>,
    /// function name → its execution environments (see `execution`).
    fleets: BTreeMap<String, execution::Fleet>,
}

impl Default for World {
    fn default() -> Self {
        World {
            caller_arn: access::default_caller(),
            functions: BTreeMap::new(),
            faults: FaultState::default(),
            update_delay: Duration::ZERO,
            cloudwatch: cloudwatch::CloudWatch::default(),
            appconfig: appconfig::AppConfig::default(),
            traffic: traffic::TrafficSettings::default(),
            noise: None,
            fleets: BTreeMap::new(),
        }
    }
}

impl World {
    /// AWS's AccessDenied message when the caller may not perform `action`
    /// (on `resource`), else `None`.
    fn denial(&self, action: &str, resource: Option<&str>) -> Option<String> {
        self.faults
            .denied
            .contains(action)
            .then(|| access::message(&self.caller_arn, action, resource))
    }

    /// Applies what time alone changes: updates that ended `Failed` without
    /// taking effect give their function back its previous configuration.
    fn settle(&mut self) {
        for f in self.functions.values_mut() {
            f.settle();
        }
        // Deployments whose monitored alarm is in ALARM roll back.
        let cloudwatch = &self.cloudwatch;
        self.appconfig
            .settle(&|alarm| cloudwatch.in_alarm_since(alarm));
    }

    /// One tick of simulated traffic for every function, at `at` (epoch seconds).
    fn emit_traffic(&mut self, at: f64) {
        let noise = self
            .noise
            .get_or_insert_with(|| traffic::Noise::new(0x5eed));
        for (name, f) in &self.functions {
            let routes = f.routes(&self.traffic.alias, self.traffic.outside_share);
            if self.traffic.invocations_per_tick == 0 {
                continue;
            }
            // Invocations run in execution environments, with what each
            // captured at its start and what its AppConfig extension polled.
            let function = execution::Function {
                name,
                revision: f.revision(),
                updating: f.updating(),
            };
            let served = self.fleets.entry(name.clone()).or_default().tick(
                &function,
                &routes,
                self.traffic.invocations_per_tick,
                at,
                &mut self.appconfig,
            );
            let routes: Vec<traffic::Route<'_>> = served
                .iter()
                .map(|(env, via, share)| traffic::Route {
                    env,
                    via: via.as_ref().map(|(a, v)| (a.as_str(), v.clone())),
                    share: *share,
                })
                .collect();
            traffic::emit(
                &mut self.cloudwatch,
                name,
                &routes,
                &self.traffic,
                at,
                noise,
            );
        }
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<World>>);

impl Shared {
    /// The world, settled to the present (see `World::settle`), so every
    /// reader sees what time has done.
    fn lock(&self) -> MutexGuard<'_, World> {
        let mut w = self.0.lock().unwrap_or_else(|p| p.into_inner());
        w.settle();
        w
    }
}

/// In-process fault control (the same as `POST /_sandbox/faults`).
pub struct Faults {
    shared: Shared,
}

impl Faults {
    /// The next `n` Lambda calls are throttled (429 TooManyRequestsException).
    pub fn throttle_next(&self, n: u64) {
        self.shared.lock().faults.throttle_next = n;
    }

    /// The next `n` Lambda calls fail with 500 ServiceException.
    pub fn fail_next(&self, n: u64) {
        self.shared.lock().faults.fail_next = n;
    }

    /// The next `n` Lambda calls are held for `hang` before they are served
    /// (and take effect), so a client without a timeout shorter than that
    /// hangs with them. Counted before throttles and 5xx faults.
    pub fn hang_next(&self, n: u64, hang: Duration) {
        let mut w = self.shared.lock();
        w.faults.hang_next = n;
        w.faults.hang = hang;
    }

    /// The next `n` Lambda calls answer 403 `ExpiredTokenException`, as when
    /// the caller's session credentials ran out.
    pub fn expired_token_next(&self, n: u64) {
        self.shared.lock().faults.expired_token_next = n;
    }

    /// The next `n` Lambda calls answer 403 `InvalidSignatureException`
    /// ("Signature expired: ..."), as when the caller's clock is more than
    /// five minutes behind; the message names the real current times, the
    /// request as signed ten minutes ago.
    pub fn clock_skew_next(&self, n: u64) {
        self.shared.lock().faults.clock_skew_next = n;
    }

    /// The next UpdateFunctionConfiguration of `function` is accepted as usual
    /// (200, `InProgress` for the update delay) and then ends with
    /// `LastUpdateStatus = Failed`, `LastUpdateStatusReason = reason` (empty:
    /// a generic one) and `LastUpdateStatusReasonCode = InternalError`. With
    /// `applied` false Lambda aborts the update: once it has failed, the
    /// previous configuration and variables are back. With `applied` true the
    /// new ones stay. A later update that succeeds clears the status.
    pub fn fail_next_update(&self, function: &str, reason: &str, applied: bool) {
        self.fail_next_update_with(function, reason, "InternalError", applied);
    }

    /// Like `fail_next_update` with another reason code, e.g. `KMSKeyAccessDenied`.
    pub fn fail_next_update_with(
        &self,
        function: &str,
        reason: &str,
        reason_code: &str,
        applied: bool,
    ) {
        self.shared.lock().faults.failing_updates.insert(
            function.to_string(),
            UpdateFailure::new(reason, reason_code, applied),
        );
    }

    /// Every Lambda call is answered after `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().faults.latency = latency;
    }

    /// Right after the next GetFunctionConfiguration of `function`, someone
    /// else sets `vars` on it (bumping its RevisionId).
    pub fn foreign_edit_after_next_get(&self, function: &str, vars: BTreeMap<String, String>) {
        self.foreign_change_after_next_get(function, vars, BTreeSet::new());
    }

    /// Like `foreign_edit_after_next_get`, and the other editor also deletes
    /// the variables in `unset`. Replaces any edit pending for `function`.
    pub fn foreign_change_after_next_get(
        &self,
        function: &str,
        set: BTreeMap<String, String>,
        unset: BTreeSet<String>,
    ) {
        self.shared
            .lock()
            .faults
            .foreign_edits
            .insert(function.to_string(), ForeignEdit { set, unset });
    }

    /// Lambda can no longer decrypt `function`'s environment (KMS access
    /// denied): reads show `Environment.Error` with `KMSAccessDeniedException`
    /// instead of the variables, and an update carrying an environment
    /// answers 502 with that code. The stored variables are kept.
    pub fn kms_error(&self, function: &str) {
        self.kms_error_with(function, "KMSAccessDeniedException", "");
    }

    /// Like `kms_error`, with another error code (e.g. `KMSDisabledException`)
    /// and message; an empty message means Lambda's wording for that code.
    pub fn kms_error_with(&self, function: &str, code: &str, message: &str) {
        let message = (!message.is_empty()).then_some(message);
        self.shared
            .lock()
            .faults
            .kms_errors
            .insert(function.to_string(), EnvError::new(code, message));
    }

    /// KMS access is back: `function`'s variables show again.
    pub fn kms_ok(&self, function: &str) {
        self.shared.lock().faults.kms_errors.remove(function);
    }

    /// Reads of `function` come back without any `Environment` key, though it
    /// has variables (until `show_environment` or a reset).
    pub fn hide_environment(&self, function: &str) {
        self.shared
            .lock()
            .faults
            .hidden_environments
            .insert(function.to_string());
    }

    /// Undoes `hide_environment`.
    pub fn show_environment(&self, function: &str) {
        self.shared
            .lock()
            .faults
            .hidden_environments
            .remove(function);
    }

    /// The next `n` AppConfig calls (control or data plane) answer 429
    /// `ThrottlingException`.
    pub fn appconfig_throttle_next(&self, n: u64) {
        self.shared.lock().appconfig.faults.throttle_next = n;
    }

    /// The next `n` AppConfig calls answer 500 `InternalServerException`.
    pub fn appconfig_fail_next(&self, n: u64) {
        self.shared.lock().appconfig.faults.fail_next = n;
    }

    /// Right after the next GetHostedConfigurationVersion of `profile` (an
    /// id) is answered, someone else creates a new hosted version of it with
    /// `content` (`application/json`), so a CreateHostedConfigurationVersion
    /// carrying the `Latest-Version-Number` just read fails 409.
    pub fn appconfig_foreign_version(&self, profile: &str, content: &str) {
        self.shared
            .lock()
            .appconfig
            .faults
            .foreign_versions
            .insert(profile.to_string(), content.to_string());
    }

    /// The deployment running on `environment` (an id), or the next one to
    /// start there, rolls back as if a monitored alarm had fired
    /// (`TriggeredBy: CLOUDWATCH_ALARM`).
    pub fn appconfig_rollback_next(&self, environment: &str) {
        self.shared
            .lock()
            .appconfig
            .faults
            .rollback_next
            .insert(environment.to_string());
    }

    /// The caller may no longer perform the IAM action `action`
    /// (`service:OperationName`, e.g. `lambda:UpdateFunctionConfiguration`;
    /// matched without regard to case, no wildcards): every call of that
    /// operation answers AccessDenied in its service's shape, and IAM's
    /// SimulatePrincipalPolicy reports `implicitDeny` for it. As in AWS,
    /// `sts:GetCallerIdentity` still answers. Until `allow` or a reset.
    ///
    /// # Panics
    ///
    /// If `action` is not of the form `service:OperationName`.
    pub fn deny(&self, action: &str) {
        assert!(
            access::is_action(action),
            "not an IAM action (service:OperationName): {action:?}"
        );
        self.shared.lock().faults.denied.deny(action);
    }

    /// Undoes `deny` for `action`.
    pub fn allow(&self, action: &str) {
        self.shared.lock().faults.denied.allow(action);
    }

    /// All faults off.
    pub fn reset(&self) {
        let mut w = self.shared.lock();
        w.faults = FaultState::default();
        w.appconfig.faults = appconfig::Faults::default();
    }
}

/// A running sandbox.
pub struct Sandbox {
    port: u16,
    faults: Faults,
    task: tokio::task::JoinHandle<()>,
    simulator: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(s) = &self.simulator {
            s.abort();
        }
    }
}

impl Sandbox {
    /// Binds 127.0.0.1:`port` (0 = any free port) and serves in the background.
    pub async fn start(port: u16, config: SandboxConfig) -> std::io::Result<Sandbox> {
        let shared = Shared::default();
        {
            let mut w = shared.lock();
            w.update_delay = config.update_delay;
            w.cloudwatch.metric_delay = config.metric_delay;
            w.appconfig.minute = config.appconfig_minute;
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let port = listener.local_addr()?.port();
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let simulator = config.traffic_tick.map(|tick| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(tick);
                loop {
                    interval.tick().await;
                    let mut w = shared.lock();
                    if w.traffic.enabled {
                        w.emit_traffic(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
                    }
                }
            })
        });
        Ok(Sandbox {
            port,
            faults: Faults { shared },
            task,
            simulator,
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// In-process fault control (the same switches as `/_sandbox/faults`).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// A function's current environment, if the function exists.
    pub fn function_env(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.faults
            .shared
            .lock()
            .functions
            .get(name)
            .map(|f| f.env.clone())
    }

    /// The simulator's knobs.
    pub fn traffic(&self) -> traffic::TrafficSettings {
        self.faults.shared.lock().traffic.clone()
    }

    pub fn set_traffic(&self, settings: traffic::TrafficSettings) {
        self.faults.shared.lock().traffic = settings;
    }

    /// Emits one tick of traffic for every function now, whatever `enabled` says
    /// (tests drive time themselves this way).
    pub fn emit_traffic_at(&self, at: chrono::DateTime<chrono::Utc>) {
        self.faults
            .shared
            .lock()
            .emit_traffic(at.timestamp_millis() as f64 / 1000.0);
    }

    /// How many of `function`'s execution environments run which flags, and
    /// its cold starts so far (`None` before the simulator first ran it).
    pub fn execution_environments(&self, function: &str) -> Option<execution::FleetView> {
        self.faults
            .shared
            .lock()
            .fleets
            .get(function)
            .map(execution::Fleet::view)
    }

    /// Cold starts of `function`'s execution environments so far.
    pub fn cold_starts(&self, function: &str) -> u64 {
        self.faults
            .shared
            .lock()
            .fleets
            .get(function)
            .map_or(0, execution::Fleet::cold_starts)
    }

    /// GetMetricData calls and queries served so far.
    pub fn get_metric_data_stats(&self) -> (u64, u64) {
        let w = self.faults.shared.lock();
        (
            w.cloudwatch.get_metric_data_calls,
            w.cloudwatch.get_metric_data_queries,
        )
    }

    /// Changes the update delay for updates made from now on.
    pub fn set_update_delay(&self, delay: Duration) {
        self.faults.shared.lock().update_delay = delay;
    }

    /// Changes CloudWatch's metric delay (see `SandboxConfig::metric_delay`);
    /// it applies to every datum read from now on, whenever it was put.
    pub fn set_metric_delay(&self, delay: Duration) {
        self.faults.shared.lock().cloudwatch.metric_delay = delay;
    }

    /// Changes how long a strategy minute of AppConfig lasts (see
    /// `SandboxConfig::appconfig_minute`); running deployments keep the
    /// strategy minutes they have run and go on at the new pace.
    pub fn set_appconfig_minute(&self, minute: Duration) {
        self.faults.shared.lock().appconfig.set_minute(minute);
    }

    /// Sets AppConfig's clock: `Some(t)` makes deployments progress, tokens
    /// expire and poll intervals pass by `t` (a simulated clock, moved by
    /// the caller), `None` goes back to the real time.
    pub fn set_appconfig_clock(&self, now: Option<chrono::DateTime<chrono::Utc>>) {
        self.faults.shared.lock().appconfig.clock =
            now.map(|t| t.timestamp_millis() as f64 / 1000.0);
    }

    /// Makes `arn` the caller: STS's GetCallerIdentity answers it (its
    /// account is the ARN's), and AccessDenied messages name it. The default
    /// is `arn:aws:sts::123456789012:assumed-role/rollgate-operator/rollgate`.
    pub fn set_caller_arn(&self, arn: &str) {
        self.faults.shared.lock().caller_arn = arn.to_string();
    }

    /// Every CloudWatch alarm (metric and composite), by name.
    pub fn alarms(&self) -> Vec<AlarmView> {
        self.faults.shared.lock().cloudwatch.alarm_views()
    }

    /// The next `n` GetMetricData calls succeed but answer every query
    /// with `StatusCode = InternalError` and no values.
    pub fn fail_next_metric_queries(&self, n: u64) {
        self.faults.shared.lock().cloudwatch.query_errors_next = n;
    }
}

/// Runs the sandbox until Ctrl-C (for `rollgate sandbox --port P`).
pub async fn serve_forever(
    port: u16,
    config: SandboxConfig,
    traffic: traffic::TrafficSettings,
) -> std::io::Result<()> {
    let metric_delay = config.metric_delay;
    let minute = config.appconfig_minute;
    let sandbox = Sandbox::start(port, config).await?;
    sandbox.set_traffic(traffic);
    println!(
        "AWS sandbox (Lambda, CloudWatch, AppConfig, STS, IAM) listening on {}",
        sandbox.url()
    );
    println!(
        "  CloudWatch data are readable {}s after they are put (--metric-delay)",
        metric_delay.as_secs_f64()
    );
    println!(
        "  AppConfig (control and data plane, FeatureFlags profiles, AWS's predefined strategies): a strategy minute lasts {}s (appconfig_minute_ms in /_sandbox/faults)",
        minute.as_secs_f64()
    );
    println!(
        "  export AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
        sandbox.url()
    );
    println!(
        "  fault injection: POST {}/_sandbox/faults, state: GET {}/_sandbox/state",
        sandbox.url(),
        sandbox.url()
    );
    let _ = tokio::signal::ctrl_c().await;
    Ok(())
}

fn router(shared: Shared) -> Router {
    Router::new()
        .merge(
            lambda::router()
                .layer(middleware::from_fn_with_state(
                    shared.clone(),
                    inject_faults,
                ))
                .layer(middleware::from_fn(request_id)),
        )
        .merge(cloudwatch::router())
        .route(
            "/",
            post(dispatch_root).layer(tower_http::decompression::RequestDecompressionLayer::new()),
        )
        .merge(
            appconfig::router()
                .layer(middleware::from_fn_with_state(
                    shared.clone(),
                    inject_appconfig_faults,
                ))
                .layer(middleware::from_fn(request_id)),
        )
        .route("/_sandbox/state", get(state))
        .route("/_sandbox/faults", post(set_faults))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/traffic", get(get_traffic).post(set_traffic))
        .route("/_sandbox/traffic/emit", post(emit_traffic))
        .fallback(|| async {
            lambda::aws_error(
                axum::http::StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "the sandbox does not implement this operation",
            )
        })
        .method_not_allowed_fallback(|| async {
            lambda::aws_error(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "UnknownOperationException",
                "the sandbox does not implement this method on this resource",
            )
        })
        .with_state(shared)
}

/// The awsQuery services share `POST /`: a form names its API in `Version`
/// (2010-08-01 CloudWatch, 2010-05-08 IAM, 2011-06-15 STS), which every
/// SDK, boto3 and the AWS CLI send; without one, the SigV4 credential
/// scope's service (`monitoring`, `iam`, `sts`) decides. CloudWatch's
/// awsJson1_0 (`X-Amz-Target`), and anything else, goes to CloudWatch.
async fn dispatch_root(
    State(shared): State<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = if headers.contains_key("x-amz-target") {
        None
    } else {
        query::action_and_version(&body)
    };
    let Some((_, version)) = form else {
        return cloudwatch::dispatch_root(&shared, &headers, &body);
    };
    let scope = access::credential_scope(&headers).map(|(_, service)| service);
    match (version.as_deref(), scope.as_deref()) {
        (Some("2010-05-08"), _) | (None, Some("iam")) => iam::dispatch(&shared, &body),
        (Some("2011-06-15"), _) | (None, Some("sts")) => sts::dispatch(&shared, &body),
        _ => cloudwatch::dispatch_root(&shared, &headers, &body),
    }
}

/// Every Lambda answer names its request, as AWS's do (the SDK reports it).
async fn request_id(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(v) = new_id().parse() {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// Latency, hangs, throttling and 5xx faults, applied before any Lambda operation.
async fn inject_faults(State(shared): State<Shared>, req: Request, next: Next) -> Response {
    let action = access::lambda_action(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    );
    let (latency, fault) = {
        let mut w = shared.lock();
        let denial = action
            .as_ref()
            .and_then(|(action, resource)| w.denial(action, resource.as_deref()));
        (w.faults.latency, w.faults.take_call_fault(denial))
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        None => next.run(req).await,
        Some(CallFault::Hang(hang)) => {
            // If the caller gave up meanwhile, hyper drops this future and
            // the call never happens.
            tokio::time::sleep(hang).await;
            next.run(req).await
        }
        Some(CallFault::ExpiredToken) => lambda::aws_error(
            axum::http::StatusCode::FORBIDDEN,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        ),
        Some(CallFault::ClockSkew) => lambda::aws_error(
            axum::http::StatusCode::FORBIDDEN,
            "InvalidSignatureException",
            &signature_expired(chrono::Utc::now()),
        ),
        Some(CallFault::Denied(message)) => lambda::aws_error(
            axum::http::StatusCode::FORBIDDEN,
            "AccessDeniedException",
            &message,
        ),
        Some(CallFault::Throttle) => throttled(),
        Some(CallFault::Fail) => lambda::aws_error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "injected fault: the service encountered an internal error",
        ),
    }
}

/// AppConfig's throttling and 5xx faults, before any AppConfig operation
/// (control and data plane).
async fn inject_appconfig_faults(
    State(shared): State<Shared>,
    req: Request,
    next: Next,
) -> Response {
    let action = access::appconfig_action(req.method(), req.uri().path(), req.headers());
    let fault = {
        let mut w = shared.lock();
        let denial = action
            .as_ref()
            .and_then(|(action, resource)| w.denial(action, resource.as_deref()));
        match denial {
            // Authorization comes before AppConfig's throttles and 5xx.
            Some(message) => Some(appconfig::Error::new(
                axum::http::StatusCode::FORBIDDEN,
                "AccessDeniedException",
                message,
            )),
            None => appconfig::take_fault(&mut w.appconfig.faults),
        }
    };
    match fault {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    }
}

/// AWS's message for a request signed more than five minutes before `now`
/// (here: ten minutes, a caller whose clock is that far behind).
fn signature_expired(now: chrono::DateTime<chrono::Utc>) -> String {
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    format!(
        "Signature expired: {} is now earlier than {} ({} - 5 min.)",
        at(now - chrono::Duration::minutes(10)),
        at(now - chrono::Duration::minutes(5)),
        at(now)
    )
}

/// Lambda's answer to a throttled call.
fn throttled() -> Response {
    let mut resp = (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [
            ("x-amzn-errortype", "TooManyRequestsException"),
            ("retry-after", "1"),
        ],
        axum::Json(json!({
            "Type": "User",
            "message": "Rate exceeded",
            "Reason": "CallerRateLimitExceeded",
            "retryAfterSeconds": "1",
        })),
    )
        .into_response();
    resp.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("static header"),
    );
    resp
}

async fn state(State(shared): State<Shared>) -> impl IntoResponse {
    let w = shared.lock();
    let functions: Vec<serde_json::Value> = w
        .functions
        .values()
        .map(lambda::Function::admin_view)
        .collect();
    axum::Json(json!({
        "functions": functions,
        "faults": {
            "throttle_next": w.faults.throttle_next,
            "fail_next": w.faults.fail_next,
            "latency_ms": w.faults.latency.as_millis() as u64,
            "foreign_edits": w.faults.foreign_edits,
            "kms_errors": w.faults.kms_errors,
            "hidden_environments": w.faults.hidden_environments,
            "hang_next": w.faults.hang_next,
            "hang_ms": w.faults.hang.as_millis() as u64,
            "expired_token_next": w.faults.expired_token_next,
            "clock_skew_next": w.faults.clock_skew_next,
            "failing_updates": w.faults.failing_updates,
            "denied": w.faults.denied.list(),
        },
        "caller_arn": w.caller_arn,
        "update_delay_ms": w.update_delay.as_millis() as u64,
        "metric_delay_ms": w.cloudwatch.metric_delay.as_millis() as u64,
        "cloudwatch": w.cloudwatch.admin_view(),
        "appconfig": w.appconfig.admin_view(),
        "execution_environments": w
            .fleets
            .iter()
            .map(|(name, fleet)| (name.clone(), fleet.view()))
            .collect::<BTreeMap<_, _>>(),
        "appconfig_minute_ms": w.appconfig.minute.as_millis() as u64,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    throttle_next: Option<u64>,
    fail_next: Option<u64>,
    latency_ms: Option<u64>,
    update_delay_ms: Option<u64>,
    metric_delay_ms: Option<u64>,
    metric_query_errors_next: Option<u64>,
    foreign_edit: Option<ForeignEditRequest>,
    kms_error: Option<KmsErrorRequest>,
    kms_ok: Option<String>,
    hide_environment: Option<String>,
    show_environment: Option<String>,
    hang_next: Option<u64>,
    hang_ms: Option<u64>,
    expired_token_next: Option<u64>,
    clock_skew_next: Option<u64>,
    fail_next_update: Option<FailUpdateRequest>,
    appconfig_throttle_next: Option<u64>,
    appconfig_fail_next: Option<u64>,
    appconfig_minute_ms: Option<u64>,
    appconfig_foreign_version: Option<ForeignVersionRequest>,
    appconfig_rollback_next: Option<RollbackRequest>,
    deny: Option<Vec<String>>,
    allow: Option<Vec<String>>,
    allow_all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForeignVersionRequest {
    profile: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    environment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailUpdateRequest {
    function: String,
    #[serde(default)]
    reason: String,
    reason_code: Option<String>,
    #[serde(default)]
    applied: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KmsErrorRequest {
    function: String,
    code: Option<String>,
    message: Option<String>,
}

impl FaultRequest {
    /// Everything a request could get wrong beyond its JSON shape, checked
    /// before any fault changes (a refused request changes nothing).
    fn check(&self) -> Result<(), String> {
        let functions = [
            self.foreign_edit
                .as_ref()
                .map(|e| ("foreign_edit", &e.function)),
            self.kms_error.as_ref().map(|e| ("kms_error", &e.function)),
            self.kms_ok.as_ref().map(|f| ("kms_ok", f)),
            self.hide_environment
                .as_ref()
                .map(|f| ("hide_environment", f)),
            self.show_environment
                .as_ref()
                .map(|f| ("show_environment", f)),
            self.fail_next_update
                .as_ref()
                .map(|f| ("fail_next_update", &f.function)),
        ];
        for (field, function) in functions.into_iter().flatten() {
            if function.is_empty() {
                return Err(format!("{field}: the function name is empty"));
            }
        }
        if let Some(e) = &self.kms_error {
            if let Some(code) = &e.code
                && !is_error_code(code)
            {
                return Err(format!(
                    "kms_error.code: {code:?} is not an exception name (letters and digits)"
                ));
            }
            if self.kms_ok.as_ref() == Some(&e.function) {
                return Err(format!("kms_error and kms_ok both name {:?}", e.function));
            }
        }
        if let Some(code) = self
            .fail_next_update
            .as_ref()
            .and_then(|f| f.reason_code.as_ref())
            && !REASON_CODES.contains(&code.as_str())
        {
            return Err(format!(
                "fail_next_update.reason_code: {code:?} is not one of Lambda's: {}",
                REASON_CODES.join(", ")
            ));
        }
        if self
            .appconfig_foreign_version
            .as_ref()
            .is_some_and(|f| f.profile.is_empty())
        {
            return Err("appconfig_foreign_version: the profile id is empty".into());
        }
        if self
            .appconfig_rollback_next
            .as_ref()
            .is_some_and(|r| r.environment.is_empty())
        {
            return Err("appconfig_rollback_next: the environment id is empty".into());
        }
        for (field, actions) in [("deny", &self.deny), ("allow", &self.allow)] {
            if let Some(bad) = actions.iter().flatten().find(|a| !access::is_action(a)) {
                return Err(format!(
                    "{field}: {bad:?} is not an IAM action (service:OperationName, no wildcards)"
                ));
            }
        }
        if let (Some(deny), Some(allow)) = (&self.deny, &self.allow)
            && let Some(both) = deny
                .iter()
                .find(|d| allow.iter().any(|a| a.eq_ignore_ascii_case(d)))
        {
            return Err(format!("deny and allow both name {both:?}"));
        }
        if self.allow_all == Some(true) && self.deny.is_some() {
            return Err("deny and allow_all cannot be combined".into());
        }
        if self.appconfig_minute_ms == Some(0) {
            return Err("appconfig_minute_ms must be at least 1".into());
        }
        if self.hide_environment.is_some() && self.hide_environment == self.show_environment {
            return Err("hide_environment and show_environment name the same function".into());
        }
        Ok(())
    }
}

/// An AWS exception name: ASCII letters and digits, e.g. `KMSDisabledException`.
fn is_error_code(code: &str) -> bool {
    !code.is_empty() && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForeignEditRequest {
    function: String,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    unset: BTreeSet<String>,
}

async fn set_faults(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": format!("invalid fault request: {e}") })),
            )
                .into_response();
        }
    };
    if let Err(e) = req.check() {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": format!("invalid fault request: {e}") })),
        )
            .into_response();
    }
    let mut w = shared.lock();
    if let Some(n) = req.throttle_next {
        w.faults.throttle_next = n;
    }
    if let Some(n) = req.fail_next {
        w.faults.fail_next = n;
    }
    if let Some(ms) = req.latency_ms {
        w.faults.latency = Duration::from_millis(ms);
    }
    if let Some(ms) = req.metric_delay_ms {
        w.cloudwatch.metric_delay = Duration::from_millis(ms);
    }
    if let Some(n) = req.metric_query_errors_next {
        w.cloudwatch.query_errors_next = n;
    }
    if let Some(ms) = req.update_delay_ms {
        w.update_delay = Duration::from_millis(ms);
    }
    if let Some(edit) = req.foreign_edit {
        w.faults.foreign_edits.insert(
            edit.function,
            ForeignEdit {
                set: edit.set,
                unset: edit.unset,
            },
        );
    }
    if let Some(e) = req.kms_error {
        let code = e.code.as_deref().unwrap_or("KMSAccessDeniedException");
        let error = EnvError::new(code, e.message.as_deref());
        w.faults.kms_errors.insert(e.function, error);
    }
    if let Some(f) = req.kms_ok {
        w.faults.kms_errors.remove(&f);
    }
    if let Some(f) = req.hide_environment {
        w.faults.hidden_environments.insert(f);
    }
    if let Some(f) = req.show_environment {
        w.faults.hidden_environments.remove(&f);
    }
    if let Some(n) = req.hang_next {
        w.faults.hang_next = n;
        w.faults.hang = DEFAULT_HANG;
    }
    if let Some(ms) = req.hang_ms {
        w.faults.hang = Duration::from_millis(ms);
    }
    if let Some(n) = req.expired_token_next {
        w.faults.expired_token_next = n;
    }
    if let Some(n) = req.clock_skew_next {
        w.faults.clock_skew_next = n;
    }
    if let Some(f) = req.fail_next_update {
        let code = f.reason_code.as_deref().unwrap_or("InternalError");
        let failure = UpdateFailure::new(&f.reason, code, f.applied);
        w.faults.failing_updates.insert(f.function, failure);
    }
    if let Some(n) = req.appconfig_throttle_next {
        w.appconfig.faults.throttle_next = n;
    }
    if let Some(n) = req.appconfig_fail_next {
        w.appconfig.faults.fail_next = n;
    }
    if let Some(ms) = req.appconfig_minute_ms {
        w.appconfig.set_minute(Duration::from_millis(ms));
    }
    if let Some(f) = req.appconfig_foreign_version {
        w.appconfig
            .faults
            .foreign_versions
            .insert(f.profile, f.content);
    }
    if let Some(r) = req.appconfig_rollback_next {
        w.appconfig.faults.rollback_next.insert(r.environment);
    }
    if req.allow_all == Some(true) {
        w.faults.denied = access::Denied::default();
    }
    for action in req.allow.iter().flatten() {
        w.faults.denied.allow(action);
    }
    for action in req.deny.iter().flatten() {
        w.faults.denied.deny(action);
    }
    axum::Json(json!({ "ok": true })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficRequest {
    enabled: Option<bool>,
    invocations_per_tick: Option<u32>,
    /// Replaces the set of bad flags.
    bad_flags: Option<std::collections::BTreeSet<String>>,
    alias: Option<String>,
    outside_share: Option<f64>,
}

async fn get_traffic(State(shared): State<Shared>) -> impl IntoResponse {
    axum::Json(shared.lock().traffic.clone())
}

async fn set_traffic(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: TrafficRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": format!("invalid traffic request: {e}") })),
            )
                .into_response();
        }
    };
    if req.outside_share.is_some_and(|o| !(0.0..=1.0).contains(&o)) {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "outside_share must be between 0.0 and 1.0" })),
        )
            .into_response();
    }
    let mut w = shared.lock();
    if let Some(e) = req.enabled {
        w.traffic.enabled = e;
    }
    if let Some(n) = req.invocations_per_tick {
        w.traffic.invocations_per_tick = n;
    }
    if let Some(b) = req.bad_flags {
        w.traffic.bad_flags = b;
    }
    if let Some(a) = req.alias {
        w.traffic.alias = a;
    }
    if let Some(o) = req.outside_share {
        w.traffic.outside_share = o;
    }
    axum::Json(w.traffic.clone()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitRequest {
    /// Epoch seconds of the last tick.
    end: f64,
    /// Ticks to emit, `every_secs` apart, ending at `end`.
    ticks: u32,
    every_secs: f64,
}

/// Emits simulated traffic for past (or future) times in one call, so a
/// benchmark or test in another process can lay down exactly the data it needs.
async fn emit_traffic(State(shared): State<Shared>, body: axum::body::Bytes) -> Response {
    let req: EmitRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": format!("invalid emit request: {e}") })),
            )
                .into_response();
        }
    };
    let mut w = shared.lock();
    for i in 0..req.ticks {
        w.emit_traffic(req.end - f64::from(i) * req.every_secs);
    }
    axum::Json(json!({ "ok": true, "ticks": req.ticks })).into_response()
}

async fn reset(State(shared): State<Shared>) -> impl IntoResponse {
    let mut w = shared.lock();
    w.faults = FaultState::default();
    w.appconfig.faults = appconfig::Faults::default();
    axum::Json(json!({ "ok": true }))
}

/// A fresh id in the shape of AWS's UUIDs (RevisionId, RequestId).
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let a = t ^ n.rotate_left(32);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a & 0xfff) as u16,
        (n & 0xfff) as u16,
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) & 0xffff_ffff_ffff
    )
}

/// Monotonic "now" for update delays.
fn now() -> Instant {
    Instant::now()
}

//! The `appconfig` backend: flags kept in an AWS AppConfig feature-flag
//! profile, which the function reads through the AppConfig Lambda
//! extension, so a change recycles no execution environment.
//!
//! A write follows the same rules as `lambda-env`'s, with AppConfig's
//! preconditions:
//!
//! 1. read the latest hosted version and merge only the owned values
//!    (`document.rs`); every other flag, attribute and constraint stays;
//! 2. `CreateHostedConfigurationVersion` with `LatestVersionNumber` as the
//!    precondition (a concurrent edit is a 409: re-read and re-merge);
//! 3. `StartDeployment` with the plan's strategy (rollbacks and drift
//!    reverts: its `rollback_strategy`). One deployment per environment at
//!    a time: a running one is waited out, except by a rollback, which
//!    stops a running deployment of its profile (`StopDeployment`);
//! 4. follow the deployment (`DEPLOYING` → `BAKING` → `COMPLETE`). The write
//!    is confirmed at `COMPLETE` only; until then it stays pending
//!    ([`ApplyError::Deploying`], recorded at each new state or
//!    percentage): the command follows it for a while, the reconciler
//!    after that. A
//!    deployment AppConfig rolled back by itself (its alarm monitors) is
//!    [`ApplyError::RolledBackByAppConfig`].
//!
//! Versions are immutable, so their documents are cached by number.

pub mod document;
mod names;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_appconfig::error::ProvideErrorMetadata;
use aws_sdk_appconfig::primitives::Blob;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::lambda_env::{RetryPolicy, Step, classify, retrying};
use super::{ApplyError, WriteReport};
use crate::plan::{AppConfigTarget, Flags};
pub use document::Document;
pub use names::Ids;

/// At most this many pages of 50 deployments are read to find what the
/// profile serves (an environment shared by many profiles).
const MAX_DEPLOYMENT_PAGES: usize = 20;

/// The longest a command waits for its deployment inline before it
/// answers "pending" and leaves the rest to the reconciler.
const FOLLOW_INLINE: Duration = Duration::from_secs(20);

/// A deployment as rollgate last saw it: what the rollout stores and the
/// dashboard shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// The rollout generation this deployment carries.
    pub generation: i64,
    pub application_id: String,
    pub environment_id: String,
    pub profile_id: String,
    /// The hosted configuration version deployed.
    pub version: i32,
    pub deployment: i32,
    /// The deployment strategy, as the plan names it.
    pub strategy: String,
    /// AppConfig's `DeploymentState`.
    pub state: String,
    pub percentage: f32,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The extension's poll interval: the new flags reach every execution
    /// environment at most this long after `completed_at`.
    pub poll_interval_secs: u64,
    /// Who rolled the deployment back (AppConfig's `TriggeredBy`), if it was.
    pub rolled_back_by: Option<String>,
    /// Why, in AppConfig's words.
    pub rollback_reason: Option<String>,
}

impl Delivery {
    /// When the flags count as live: one extension poll after `COMPLETE`.
    pub fn live_at(&self) -> Option<DateTime<Utc>> {
        let poll = chrono::TimeDelta::seconds(self.poll_interval_secs.min(86_400) as i64);
        self.completed_at
            .filter(|_| self.state == "COMPLETE")
            .map(|c| c + poll)
    }

    pub fn is_running(&self) -> bool {
        running(&self.state)
    }

    /// One line for the audit log, the dashboard and the CLI.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "AppConfig deployment {} of version {} ({}): {}",
            self.deployment, self.version, self.strategy, self.state
        );
        if self.is_running() {
            s.push_str(&format!(" {:.0} %", self.percentage));
        }
        if let Some(by) = &self.rolled_back_by {
            s.push_str(&format!(" by {by}"));
            if let Some(why) = &self.rollback_reason {
                s.push_str(&format!(" ({why})"));
            }
        }
        if let Some(live) = self.live_at() {
            s.push_str(&format!(
                "; live from {} (complete + the extension's {} s poll)",
                live.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                self.poll_interval_secs
            ));
        }
        s
    }
}

/// Deployment states in which AppConfig refuses another deployment to the
/// environment.
fn running(state: &str) -> bool {
    matches!(
        state,
        "DEPLOYING" | "BAKING" | "ROLLING_BACK" | "VALIDATING"
    )
}

/// States whose configuration is no longer served: the one before is.
fn undone(state: &str) -> bool {
    matches!(state, "ROLLED_BACK" | "REVERTED" | "ROLLING_BACK")
}

/// A deployment under way: what a write did so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploying {
    pub delivery: Delivery,
    /// The calls this attempt made (version created, deployment started).
    pub steps: Vec<String>,
    pub retried_because: Vec<String>,
}

/// One deployment of an environment, as `ListDeployments`/`GetDeployment` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub number: i32,
    pub profile_id: Option<String>,
    pub profile_name: Option<String>,
    pub version: Option<i32>,
    pub state: String,
    pub percentage: f32,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub rolled_back_by: Option<String>,
    pub rollback_reason: Option<String>,
    /// The deployment strategy (`GetDeployment` only).
    pub strategy: Option<String>,
}

impl Seen {
    fn of_profile(&self, ids: &Ids) -> bool {
        match &self.profile_id {
            Some(id) => *id == ids.profile_id,
            None => self.profile_name.as_deref() == Some(ids.profile_name.as_str()),
        }
    }
}

/// What the environment serves for the profile: the newest deployment of
/// it that was not rolled back (the one before a rolled-back one is what
/// AppConfig went back to).
pub fn served<'a>(deployments: &'a [Seen], ids: &Ids) -> Option<&'a Seen> {
    deployments
        .iter()
        .filter(|d| d.of_profile(ids))
        .find(|d| !undone(&d.state))
}

/// The environment's running deployment (of any profile), if any.
pub fn busy(deployments: &[Seen]) -> Option<&Seen> {
    deployments.iter().find(|d| running(&d.state))
}

fn time(t: Option<&aws_sdk_appconfig::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

fn step_of<E: ProvideErrorMetadata>(e: &aws_sdk_appconfig::error::SdkError<E>) -> Step {
    classify(
        e.code(),
        e.message(),
        e.raw_response().map(|r| r.status().as_u16()),
    )
}

fn code_of<E: ProvideErrorMetadata>(e: &aws_sdk_appconfig::error::SdkError<E>) -> Option<String> {
    e.code().map(str::to_string)
}

/// How a write is meant: a step forward waits for a busy environment; an
/// urgent one (rollback, drift revert) stops a running deployment of its
/// own profile and deploys with the rollback strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Forward,
    Urgent,
}

/// What a write is asked to do.
pub struct Ask<'a> {
    pub target: &'a AppConfigTarget,
    pub desired: &'a Flags,
    pub urgency: Urgency,
    pub generation: i64,
    /// The deployment this generation already started, as last stored.
    pub known: Option<&'a Delivery>,
    /// When the write's intent was recorded: a deployment of its values
    /// started since then is this write's, even if a crash kept it from
    /// being stored.
    pub since: Option<DateTime<Utc>>,
    /// A description for the hosted version and the deployment.
    pub description: String,
}

/// A hosted version: application id, profile id, version number.
type VersionKey = (String, String, i32);

/// Writes owned flags into AppConfig feature-flag profiles.
#[derive(Clone)]
pub struct AppConfigBackend {
    client: aws_sdk_appconfig::Client,
    regional: Arc<Mutex<HashMap<String, aws_sdk_appconfig::Client>>>,
    policy: RetryPolicy,
    ids: Arc<Mutex<HashMap<String, Ids>>>,
    documents: Arc<Mutex<HashMap<VersionKey, Document>>>,
}

impl AppConfigBackend {
    /// Like `LambdaEnvBackend::new`: the SDK's retries off (this backend
    /// retries, visibly), every call under the policy's timeouts.
    pub fn new(config: &aws_config::SdkConfig, policy: RetryPolicy) -> Self {
        let conf = aws_sdk_appconfig::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(policy.timeouts())
            .build();
        AppConfigBackend {
            client: aws_sdk_appconfig::Client::from_conf(conf),
            regional: Arc::default(),
            policy,
            ids: Arc::default(),
            documents: Arc::default(),
        }
    }

    /// The same backend talking to another region.
    pub fn in_region(&self, region: Option<&str>) -> AppConfigBackend {
        let Some(region) = region else {
            return self.clone();
        };
        let client = self
            .regional
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(region.to_string())
            .or_insert_with(|| {
                let conf = self
                    .client
                    .config()
                    .to_builder()
                    .region(aws_config::Region::new(region.to_string()))
                    .build();
                aws_sdk_appconfig::Client::from_conf(conf)
            })
            .clone();
        AppConfigBackend {
            client,
            ..self.clone()
        }
    }

    /// The region the client talks to, for the identity a rollout holds.
    pub fn region(&self) -> String {
        self.client
            .config()
            .region()
            .map_or_else(|| "us-east-1".to_string(), |r| r.to_string())
    }

    /// The identity a rollout holds: one profile in one environment,
    /// however the plan names them.
    pub fn identity(&self, ids: &Ids) -> String {
        format!(
            "arn:aws:appconfig:{}::application/{}/environment/{}/configurationprofile/{}",
            self.region(),
            ids.application_id,
            ids.environment_id,
            ids.profile_id
        )
    }

    /// Resolves the target's names to ids (cached), checking the profile
    /// is a hosted feature-flag profile.
    async fn resolve(&self, target: &AppConfigTarget) -> Result<Ids, Step> {
        let key = format!(
            "{}|{}|{}|{}|{}|{}",
            self.region(),
            target.application,
            target.environment,
            target.profile,
            target.strategy,
            target.rollback_strategy
        );
        if let Some(ids) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(ids.clone());
        }
        let ids = names::resolve(&self.client, target).await?;
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, ids.clone());
        Ok(ids)
    }

    /// The environment's deployments, newest first (one page: AppConfig
    /// keeps the newest first, and only the newest matter).
    async fn deployments(&self, ids: &Ids, known: Option<i32>) -> Result<Vec<Seen>, Step> {
        let mut seen: Vec<Seen> = Vec::new();
        let mut token: Option<String> = None;
        // Pages until the profile's served deployment (and the one this
        // write knows) are in: other profiles' deployments may fill pages.
        for _ in 0..MAX_DEPLOYMENT_PAGES {
            let out = self
                .client
                .list_deployments()
                .application_id(&ids.application_id)
                .environment_id(&ids.environment_id)
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| step_of(&e))?;
            seen.extend(out.items().iter().map(|d| Seen {
                number: d.deployment_number(),
                profile_id: d.configuration_profile_id().map(str::to_string),
                profile_name: d.configuration_name().map(str::to_string),
                version: d.configuration_version().and_then(|v| v.parse().ok()),
                state: d.state().map_or("", |s| s.as_str()).to_string(),
                percentage: d.percentage_complete().unwrap_or(0.0),
                started_at: time(d.started_at()),
                completed_at: time(d.completed_at()),
                rolled_back_by: None,
                rollback_reason: None,
                strategy: None,
            }));
            let found_known = known.is_none_or(|k| seen.iter().any(|d| d.number <= k));
            if served(&seen, ids).is_some() && found_known {
                break;
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        // Newest first whatever order the pages came in.
        seen.sort_by_key(|d| std::cmp::Reverse(d.number));
        Ok(seen)
    }

    /// One deployment with its event log (who rolled it back, and why).
    async fn deployment(&self, ids: &Ids, number: i32) -> Result<Seen, Step> {
        let d = self
            .client
            .get_deployment()
            .application_id(&ids.application_id)
            .environment_id(&ids.environment_id)
            .deployment_number(number)
            .send()
            .await
            .map_err(|e| step_of(&e))?;
        let rollback = d.event_log().iter().find(|e| {
            e.event_type().is_some_and(|t| {
                matches!(
                    t.as_str(),
                    "ROLLBACK_STARTED" | "ROLLBACK_COMPLETED" | "REVERT_COMPLETED"
                )
            })
        });
        Ok(Seen {
            number: d.deployment_number(),
            profile_id: d.configuration_profile_id().map(str::to_string),
            profile_name: d.configuration_name().map(str::to_string),
            version: d.configuration_version().and_then(|v| v.parse().ok()),
            state: d.state().map_or("", |s| s.as_str()).to_string(),
            percentage: d.percentage_complete().unwrap_or(0.0),
            started_at: time(d.started_at()),
            completed_at: time(d.completed_at()),
            rolled_back_by: rollback
                .and_then(|e| e.triggered_by())
                .map(|t| t.as_str().to_string()),
            rollback_reason: rollback.and_then(|e| e.description()).map(str::to_string),
            strategy: d.deployment_strategy_id().map(str::to_string),
        })
    }

    /// The profile's newest hosted version number, if it has any.
    async fn latest_version(&self, ids: &Ids) -> Result<Option<i32>, Step> {
        let out = self
            .client
            .list_hosted_configuration_versions()
            .application_id(&ids.application_id)
            .configuration_profile_id(&ids.profile_id)
            .max_results(1)
            .send()
            .await
            .map_err(|e| step_of(&e))?;
        Ok(out.items().iter().map(|v| v.version_number()).max())
    }

    /// A hosted version's document (cached: versions never change).
    async fn document(&self, ids: &Ids, version: i32) -> Result<Document, Step> {
        let key = (ids.application_id.clone(), ids.profile_id.clone(), version);
        if let Some(d) = self
            .documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(d.clone());
        }
        self.fetch_document(ids, version).await
    }

    /// A hosted version's document as AppConfig answers it now (a write
    /// reads the version it merges into afresh, as `lambda-env` reads the
    /// environment it merges into).
    async fn fetch_document(&self, ids: &Ids, version: i32) -> Result<Document, Step> {
        let key = (ids.application_id.clone(), ids.profile_id.clone(), version);
        let out = self
            .client
            .get_hosted_configuration_version()
            .application_id(&ids.application_id)
            .configuration_profile_id(&ids.profile_id)
            .version_number(version)
            .send()
            .await
            .map_err(|e| step_of(&e))?;
        let content = out
            .content()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default();
        let doc = Document::parse(&content)
            .map_err(|why| Step::Reject(format!("version {version}: {why}")))?;
        self.documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, doc.clone());
        Ok(doc)
    }

    /// The owned flags the environment serves now, and the deployment that
    /// serves them. Never deployed: every owned flag reads disabled (what
    /// the extension serves then is nothing; the function's defaults).
    pub async fn served_flags(
        &self,
        target: &AppConfigTarget,
        owned: &Flags,
    ) -> Result<(Flags, Option<Seen>), ApplyError> {
        let ids = self.resolve(target).await.map_err(ApplyError::from)?;
        let deployments = self
            .deployments(&ids, None)
            .await
            .map_err(ApplyError::from)?;
        let Some(current) = served(&deployments, &ids).cloned() else {
            let empty = Document::parse(b"{\"flags\": {}}").map_err(ApplyError::Rejected)?;
            return Ok((empty.owned_values(owned.keys()), None));
        };
        let Some(version) = current.version else {
            return Err(ApplyError::Rejected(format!(
                "deployment {} names no hosted version",
                current.number
            )));
        };
        let doc = self
            .document(&ids, version)
            .await
            .map_err(ApplyError::from)?;
        Ok((doc.owned_values_against(owned), Some(current)))
    }

    /// Checks before a start: the target resolves, the profile is a hosted
    /// feature-flag profile with a version, and every phase's values merge
    /// into it (flags defined, constraints met). Returns the ids and the
    /// owned flags served now.
    pub async fn check(
        &self,
        target: &AppConfigTarget,
        phases: &[&Flags],
    ) -> Result<(Ids, Flags), ApplyError> {
        let ids = self.resolve(target).await.map_err(ApplyError::from)?;
        let latest = self
            .latest_version(&ids)
            .await
            .map_err(ApplyError::from)?
            .ok_or_else(|| ApplyError::Rejected(no_version(&ids)))?;
        let doc = self
            .document(&ids, latest)
            .await
            .map_err(ApplyError::from)?;
        for flags in phases {
            doc.merged(flags).map_err(|why| {
                ApplyError::Rejected(format!("profile {}: {why}", ids.profile_name))
            })?;
        }
        let Some(owned) = phases.first() else {
            return Ok((ids, Flags::new()));
        };
        let (flags, _) = self.served_flags(target, owned).await?;
        Ok((ids, flags))
    }

    /// Brings the environment to serving `ask.desired`: see the module doc.
    pub async fn apply(
        &self,
        ask: &Ask<'_>,
        token: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        let attempt = retrying(&self.policy, &ask.target.profile, || async {
            if token.is_cancelled() {
                return Err(Step::Reject(SUPERSEDED.into()));
            }
            self.cycle(ask).await
        });
        let report = tokio::select! {
            r = attempt => r,
            _ = token.cancelled() => return Err(ApplyError::Superseded),
        }
        .map_err(|e| match e {
            ApplyError::Rejected(m) if m == SUPERSEDED => ApplyError::Superseded,
            e => {
                // A refusal may come from ids gone stale (a profile or a
                // strategy recreated): resolve them again next time.
                if matches!(e, ApplyError::Rejected(_)) {
                    self.ids.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
                e
            }
        })?;
        match report.delivery.clone() {
            Some(d) if d.rolled_back_by.is_some() || undone(&d.state) => {
                Err(match ask.urgency {
                    Urgency::Forward => ApplyError::RolledBackByAppConfig(Box::new(d)),
                    // A rollback is never given up: refused (alerted once),
                    // and deployed again by the reconciler.
                    Urgency::Urgent => ApplyError::Rejected(format!(
                        "AppConfig rolled back the deployment of this write ({}): a monitored alarm in ALARM undoes every deployment that bakes; rollgate deploys it again, at most once a minute (give the plan a rollback_strategy without bake time)",
                        d.rolled_back_by.as_deref().unwrap_or("APPCONFIG")
                    )),
                })
            }
            Some(d) if d.state != "COMPLETE" => Err(ApplyError::Deploying(Box::new(Deploying {
                delivery: d,
                steps: report.steps,
                retried_because: report.retried_because,
            }))),
            _ => Ok(report),
        }
    }

    /// How often a deployment under way is looked at again while a
    /// command waits for it.
    pub fn follow_every(&self) -> Duration {
        (self.policy.poll_interval * 4).max(Duration::from_millis(50))
    }

    /// How long a command follows its deployment before it answers
    /// "pending" and leaves the rest to the reconciler.
    pub fn follow_for(&self) -> Duration {
        self.policy.settle_timeout.min(FOLLOW_INLINE)
    }

    /// One attempt: read, decide, and create or deploy what is missing.
    async fn cycle(&self, ask: &Ask<'_>) -> Result<WriteReport, Step> {
        let ids = self.resolve(ask.target).await?;
        let strategy = match ask.urgency {
            Urgency::Forward => (&ids.strategy_id, &ask.target.strategy),
            Urgency::Urgent => (&ids.rollback_strategy_id, &ask.target.rollback_strategy),
        };
        let deployments = self
            .deployments(&ids, ask.known.map(|k| k.deployment))
            .await?;
        let delivery_of = |seen: &Seen, version: i32| Delivery {
            generation: ask.generation,
            application_id: ids.application_id.clone(),
            environment_id: ids.environment_id.clone(),
            profile_id: ids.profile_id.clone(),
            version,
            deployment: seen.number,
            // The deployment's own strategy where AppConfig said it.
            strategy: seen.strategy.clone().unwrap_or_else(|| strategy.1.clone()),
            state: seen.state.clone(),
            percentage: seen.percentage,
            started_at: seen.started_at,
            completed_at: seen.completed_at,
            poll_interval_secs: ask.target.poll_interval.as_secs(),
            rolled_back_by: seen.rolled_back_by.clone(),
            rollback_reason: seen.rollback_reason.clone(),
        };
        let mut report = WriteReport {
            before: Flags::new(),
            after: ask.desired.clone(),
            wrote: false,
            attempts: 1,
            retried_because: Vec::new(),
            revision_id: None,
            routing: None,
            steps: Vec::new(),
            note: None,
            delivery: None,
        };

        // This write's own deployment: the one stored for this generation,
        // else (a crash kept it from being stored) the profile's newest if
        // it started after the intent, carries the write's values and was
        // rolled back. Rolled back since (by AppConfig's monitors, or
        // stopped by someone), it is the answer of a step forward, not a
        // cue to deploy the same version again; an urgent write deploys
        // again.
        let own = match ask.known.filter(|k| k.generation == ask.generation) {
            Some(k) => deployments
                .iter()
                .find(|d| d.number == k.deployment)
                .map(|d| (d.number, k.version)),
            None => match deployments.iter().find(|d| d.of_profile(&ids)) {
                Some(newest)
                    if ask.urgency == Urgency::Forward
                        && started_since(newest, ask.since)
                        && undone(&newest.state) =>
                {
                    match newest.version {
                        Some(v)
                            if self
                                .document(&ids, v)
                                .await?
                                .owned_values_against(ask.desired)
                                == *ask.desired =>
                        {
                            Some((newest.number, v))
                        }
                        _ => None,
                    }
                }
                _ => None,
            },
        };
        if let Some((number, version)) = own {
            let seen = self.deployment(&ids, number).await?;
            if undone(&seen.state) && ask.urgency == Urgency::Forward {
                let mut d = delivery_of(&seen, version);
                d.rolled_back_by.get_or_insert_with(|| "APPCONFIG".into());
                report.delivery = Some(d);
                return Ok(report);
            }
            // A rollback's own deployment undone (a monitored alarm in
            // ALARM undoes any deployment that bakes): deployed again, but
            // not more than once a minute.
            if undone(&seen.state) && redeploy_wait(seen.started_at, chrono::Utc::now()).is_some() {
                return Err(Step::Retry(format!(
                    "AppConfig rolled back this write's deployment {} ({}); it is deployed again a minute after it started. A monitored alarm in ALARM undoes every deployment that bakes: give the plan a rollback_strategy without bake time",
                    seen.number,
                    seen.rolled_back_by.as_deref().unwrap_or("by AppConfig")
                )));
            }
        }

        // A rollback (or a revert) still under way: wait for it to end.
        if let Some(d) = deployments
            .iter()
            .find(|d| d.of_profile(&ids) && d.state == "ROLLING_BACK")
        {
            return Err(Step::Retry(format!(
                "deployment {} of the profile is ROLLING_BACK; waiting for it to end",
                d.number
            )));
        }

        // What is served now, and whether it already holds the values.
        let current = served(&deployments, &ids);
        if let Some(current) = current
            && let Some(version) = current.version
        {
            let doc = self.document(&ids, version).await?;
            report.before = doc.owned_values_against(ask.desired);
            if report.before == *ask.desired {
                // Its strategy and event log, which the listing lacks.
                let current = &self.deployment(&ids, current.number).await?;
                report.delivery = Some(delivery_of(current, version));
                // This generation's own deployment, followed to here.
                let own = ask.known.is_some_and(|k| {
                    k.generation == ask.generation && k.deployment == current.number
                });
                report.wrote = own;
                report.steps.push(if own {
                    format!(
                        "deployment {} of version {version} is {}",
                        current.number, current.state
                    )
                } else {
                    format!(
                        "deployment {} (version {version}) already carries the values",
                        current.number
                    )
                });
                return Ok(report);
            }
        }

        // One deployment per environment: wait, or stop our profile's.
        if let Some(running) = busy(&deployments) {
            if ask.urgency == Urgency::Urgent && running.of_profile(&ids) {
                // AppConfig stops a DEPLOYING deployment as is; one baking
                // or validating needs AllowRevert.
                let revert = running.state != "DEPLOYING";
                self.client
                    .stop_deployment()
                    .application_id(&ids.application_id)
                    .environment_id(&ids.environment_id)
                    .deployment_number(running.number)
                    .allow_revert(revert)
                    .send()
                    .await
                    .map_err(|e| step_of(&e))?;
                return Err(Step::RetryNow(format!(
                    "stopped deployment {} ({}{}) of the profile to roll back",
                    running.number,
                    running.state,
                    if revert { ", reverted" } else { "" }
                )));
            }
            return Err(Step::Retry(format!(
                "environment {} is busy: deployment {} ({}) is {}; AppConfig runs one deployment per environment at a time, so this write waits",
                ids.environment_name,
                running.number,
                running.profile_name.as_deref().unwrap_or("another profile"),
                running.state
            )));
        }

        // The version to deploy: the latest if it already holds the values,
        // else a new one made from it.
        let latest = self
            .latest_version(&ids)
            .await?
            .ok_or_else(|| Step::Reject(no_version(&ids)))?;
        let latest_doc = self.fetch_document(&ids, latest).await?;
        // The latest version may hold changes nobody deployed yet. A step
        // forward merges into it (and says so); a rollback or a revert
        // ships nothing new: it merges into what is served.
        let served_doc = match current.and_then(|c| c.version) {
            Some(v) => Some(self.document(&ids, v).await?),
            None => None,
        };
        let unserved = served_doc
            .as_ref()
            .filter(|s| !s.same_outside(&latest_doc, ask.desired.keys()));
        let doc = match (ask.urgency, unserved) {
            (Urgency::Urgent, Some(served_doc)) => served_doc,
            (Urgency::Forward, Some(_)) => {
                report.note = Some(format!(
                    "version {latest}, which this write builds on, holds changes outside the plan's flags that were not deployed yet; they ship with it"
                ));
                &latest_doc
            }
            _ => &latest_doc,
        };
        let as_latest = std::ptr::eq(doc, &latest_doc);
        let version = if as_latest && doc.owned_values_against(ask.desired) == *ask.desired {
            latest
        } else {
            let merged = doc
                .merged(ask.desired)
                .map_err(|why| Step::Reject(format!("profile {}: {why}", ids.profile_name)))?;
            let created = self
                .client
                .create_hosted_configuration_version()
                .application_id(&ids.application_id)
                .configuration_profile_id(&ids.profile_id)
                .content(Blob::new(merged.to_bytes()))
                .content_type("application/json")
                .latest_version_number(latest)
                .description(truncate(&ask.description, 1024))
                .send()
                .await;
            match created {
                Ok(out) => {
                    let v = out.version_number();
                    report.steps.push(format!(
                        "created hosted version {v} (precondition: latest version {latest})"
                    ));
                    report.wrote = true;
                    v
                }
                Err(e) if code_of(&e).as_deref() == Some("ConflictException") => {
                    return Err(Step::RetryNow(format!(
                        "another hosted version was created after version {latest} was read; re-reading and merging again"
                    )));
                }
                Err(e) => return Err(step_of(&e)),
            }
        };
        let started = self
            .client
            .start_deployment()
            .application_id(&ids.application_id)
            .environment_id(&ids.environment_id)
            .configuration_profile_id(&ids.profile_id)
            .configuration_version(version.to_string())
            .deployment_strategy_id(strategy.0)
            .description(truncate(&ask.description, 1024))
            .send()
            .await;
        match started {
            Ok(d) => {
                let seen = Seen {
                    number: d.deployment_number(),
                    profile_id: Some(ids.profile_id.clone()),
                    profile_name: Some(ids.profile_name.clone()),
                    version: Some(version),
                    state: d.state().map_or("DEPLOYING", |s| s.as_str()).to_string(),
                    percentage: d.percentage_complete().unwrap_or(0.0),
                    started_at: time(d.started_at()),
                    completed_at: time(d.completed_at()),
                    rolled_back_by: None,
                    rollback_reason: None,
                    strategy: Some(strategy.1.clone()),
                };
                report.steps.push(format!(
                    "started deployment {} of version {version} with {}",
                    seen.number, strategy.1
                ));
                report.wrote = true;
                report.delivery = Some(delivery_of(&seen, version));
                Ok(report)
            }
            Err(e) if code_of(&e).as_deref() == Some("ConflictException") => {
                Err(Step::Retry(format!(
                    "environment {} started another deployment meanwhile (ConflictException); waiting for it",
                    ids.environment_name
                )))
            }
            Err(e) => Err(step_of(&e)),
        }
    }
}

/// Whether `d` started after a write's intent was recorded (`since`),
/// allowing AppConfig's clock to be a few seconds behind rollgate's.
fn started_since(d: &Seen, since: Option<DateTime<Utc>>) -> bool {
    match (d.started_at, since) {
        (Some(started), Some(since)) => started >= since - chrono::TimeDelta::seconds(5),
        _ => false,
    }
}

/// How long an urgent write waits before deploying again after AppConfig
/// undid its deployment: none once a minute has passed since it started.
fn redeploy_wait(started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<chrono::TimeDelta> {
    let left = started? + chrono::TimeDelta::seconds(60) - now;
    (left > chrono::TimeDelta::zero()).then_some(left)
}

/// The marker of a cycle that saw its write superseded.
const SUPERSEDED: &str = "superseded";

fn no_version(ids: &Ids) -> String {
    format!(
        "profile {} has no hosted configuration version: create its flag definitions (flags, attributes, constraints) first",
        ids.profile_name
    )
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids {
            application_id: "app1234".into(),
            environment_id: "env1234".into(),
            environment_name: "prod".into(),
            profile_id: "pro1234".into(),
            profile_name: "flags".into(),
            strategy_id: "s".into(),
            rollback_strategy_id: "AppConfig.AllAtOnce".into(),
        }
    }

    fn seen(number: i32, profile: &str, version: i32, state: &str) -> Seen {
        Seen {
            number,
            profile_id: Some(profile.into()),
            profile_name: None,
            version: Some(version),
            state: state.into(),
            percentage: 100.0,
            started_at: None,
            completed_at: None,
            rolled_back_by: None,
            rollback_reason: None,
            strategy: None,
        }
    }

    #[test]
    fn a_rolled_back_deployment_serves_the_one_before() {
        let d = vec![
            seen(4, "other", 9, "COMPLETE"),
            seen(3, "pro1234", 7, "ROLLED_BACK"),
            seen(2, "pro1234", 6, "COMPLETE"),
        ];
        assert_eq!(served(&d, &ids()).map(|s| s.number), Some(2));
        assert_eq!(busy(&d), None);
        let d = vec![
            seen(5, "other", 1, "BAKING"),
            seen(2, "pro1234", 6, "COMPLETE"),
        ];
        assert_eq!(busy(&d).map(|s| s.number), Some(5));
        assert_eq!(served(&[seen(1, "other", 1, "COMPLETE")], &ids()), None);
    }

    #[test]
    fn a_deployment_is_a_writes_own_only_if_it_started_after_the_intent() {
        let t = DateTime::<Utc>::UNIX_EPOCH + chrono::TimeDelta::seconds(1000);
        let s = chrono::TimeDelta::seconds;
        let at = |started: Option<DateTime<Utc>>| Seen {
            started_at: started,
            ..seen(3, "pro1234", 7, "ROLLED_BACK")
        };
        assert!(started_since(&at(Some(t + s(2))), Some(t)));
        assert!(
            started_since(&at(Some(t - s(4))), Some(t)),
            "a few seconds of skew"
        );
        assert!(
            !started_since(&at(Some(t - s(30))), Some(t)),
            "an earlier generation's"
        );
        assert!(!started_since(&at(None), Some(t)));
        assert!(!started_since(&at(Some(t)), None));
    }

    #[test]
    fn an_undone_rollback_deployment_is_redeployed_at_most_once_a_minute() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let s = chrono::TimeDelta::seconds;
        assert_eq!(redeploy_wait(Some(t), t + s(10)), Some(s(50)));
        assert_eq!(redeploy_wait(Some(t), t + s(60)), None);
        assert_eq!(redeploy_wait(None, t), None);
    }

    #[test]
    fn live_is_one_poll_after_complete() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let mut d = Delivery {
            generation: 1,
            application_id: "a".into(),
            environment_id: "e".into(),
            profile_id: "p".into(),
            version: 2,
            deployment: 3,
            strategy: "AppConfig.AllAtOnce".into(),
            state: "BAKING".into(),
            percentage: 100.0,
            started_at: Some(t),
            completed_at: None,
            poll_interval_secs: 45,
            rolled_back_by: None,
            rollback_reason: None,
        };
        assert_eq!(d.live_at(), None);
        assert!(d.describe().contains("BAKING 100 %"));
        d.state = "COMPLETE".into();
        d.completed_at = Some(t + chrono::TimeDelta::seconds(600));
        assert_eq!(d.live_at(), Some(t + chrono::TimeDelta::seconds(645)));
        assert!(d.describe().contains("45 s poll"));
    }
}

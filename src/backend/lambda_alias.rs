//! The `lambda-alias` backend: owned flags live in published versions, and
//! callers invoke an alias whose weights decide which version serves each
//! invocation. A canary step is one `UpdateAlias`; so is a rollback.
//!
//! Each write converges the alias to a `Desired` (stable flags, and the
//! canary's flags with their share), each call with its AWS precondition:
//!
//! 1. `GetAlias`: its versions and `RevisionId`. An alias that does not
//!    exist, or points at `$LATEST`, is refused: `$LATEST` has no frozen
//!    environment and cannot carry weights.
//! 2. A version holding each wanted set of flags: the alias's own versions
//!    first, then older versions with the same code and the same other
//!    variables (`ListVersionsByFunction`), else a new one: the flags are
//!    merged into `$LATEST` (as `lambda-env` does, owned keys only, waiting
//!    for `Successful`), then `PublishVersion` with the `RevisionId` just
//!    read and the stable version's `CodeSha256`, so code that was never
//!    published is never shipped with the flags. (Lambda returns the last
//!    version when nothing changed, so nothing is published twice.)
//! 3. `UpdateAlias` with the alias's `RevisionId`: the stable version, and
//!    `AdditionalVersionWeights = {canary: share}` during a canary step.
//! 4. `$LATEST` is given the stable flags back (after the alias moved, so a
//!    rollback waits for nothing), so an unqualified invoke never runs
//!    half-rolled-out flags; then the alias is read back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use tokio_util::sync::CancellationToken;

use super::lambda_env::{
    ApplyError, Env, LambdaEnvBackend, RetryPolicy, Step, WriteReport, classify, retrying,
};
use super::merge::{owned_values, satisfies};
use crate::plan::Flags;
use crate::rollout::{AliasRouting, Desired};

/// Writes owned flags through versions and a weighted alias.
#[derive(Clone)]
pub struct LambdaAliasBackend {
    env: LambdaEnvBackend,
}

/// An alias as Lambda answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasState {
    pub version: String,
    /// Additional version → weight (0.0–1.0).
    pub weights: BTreeMap<String, f64>,
    pub revision_id: Option<String>,
}

impl AliasState {
    /// As rollgate records routing: weights in whole percent.
    pub fn routing(&self) -> AliasRouting {
        let canary = self.weights.iter().next();
        AliasRouting {
            stable_version: self.version.clone(),
            canary_version: canary.map(|(v, _)| v.clone()),
            canary_weight: canary.map(|(_, w)| percent(*w)),
            positions: BTreeMap::new(),
        }
    }
}

/// A weight as Lambda stores it (0.0–1.0) in whole percent.
pub fn percent(weight: f64) -> u32 {
    (weight * 100.0).round().clamp(0.0, 100.0) as u32
}

/// The routing `UpdateAlias` must leave for `stable` and `canary`.
pub fn wanted_routing(stable: &str, canary: Option<(&str, u32)>) -> AliasRouting {
    match canary {
        Some((v, w)) if v != stable && w > 0 => AliasRouting {
            stable_version: stable.to_string(),
            canary_version: Some(v.to_string()),
            canary_weight: Some(w.min(100)),
            positions: BTreeMap::new(),
        },
        _ => AliasRouting {
            stable_version: stable.to_string(),
            canary_version: None,
            canary_weight: None,
            positions: BTreeMap::new(),
        },
    }
}

/// A published version's environment and code.
#[derive(Debug, Clone)]
struct Version {
    number: String,
    env: BTreeMap<String, String>,
    code_sha256: Option<String>,
    settings: String,
}

impl Version {
    /// Everything but the owned flags: another version is an equal
    /// substitute only if these and the code match.
    fn others(&self, owned: &Flags) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter(|(k, _)| !owned.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// What one write cycle learnt and did.
#[derive(Default)]
struct Work {
    /// The alias's version, read once it is needed.
    primary: Option<Version>,
    /// Versions known with their environments.
    candidates: Vec<Version>,
    /// `ListVersionsByFunction` was read this cycle.
    listed: bool,
    /// `$LATEST` was written this cycle.
    latest_touched: bool,
    steps: Vec<String>,
}

/// Only reached if a version was recorded as read and was not: a version
/// that matches nothing, so nothing is taken for a substitute of it.
fn unreachable_version(state: &AliasState) -> Version {
    Version {
        number: state.version.clone(),
        env: BTreeMap::new(),
        code_sha256: None,
        settings: String::new(),
    }
}

/// What `candidate` has that `base` does not, besides the owned `flags`:
/// other code, other settings, other variables (named, values never shown:
/// they may be secrets).
fn unpublished_changes(candidate: &Version, base: &Version, flags: &Flags) -> Option<String> {
    if candidate.code_sha256 != base.code_sha256 {
        return Some(format!(
            "its code ({} instead of {})",
            candidate.code_sha256.as_deref().unwrap_or("?"),
            base.code_sha256.as_deref().unwrap_or("?")
        ));
    }
    if candidate.settings != base.settings {
        return Some(format!(
            "its settings ({} instead of {})",
            candidate.settings, base.settings
        ));
    }
    let (a, b) = (candidate.others(flags), base.others(flags));
    if a != b {
        let keys: std::collections::BTreeSet<&String> = a
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .chain(b.keys().filter(|k| !a.contains_key(*k)))
            .collect();
        return Some(format!(
            "other environment variables ({})",
            keys.into_iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    None
}

impl LambdaAliasBackend {
    pub fn new(env: LambdaEnvBackend) -> Self {
        LambdaAliasBackend { env }
    }

    /// The alias, or why it cannot carry a rollout.
    pub async fn alias(&self, function: &str, alias: &str) -> Result<AliasState, ApplyError> {
        self.get_alias(function, alias).await.map_err(Into::into)
    }

    /// Checks that `alias` can carry a rollout (exists, points at a
    /// published version whose environment can be read) and returns the
    /// owned flags its version serves.
    pub async fn check(
        &self,
        function: &str,
        alias: &str,
        owned: &Flags,
    ) -> Result<(AliasState, Flags), ApplyError> {
        let state = self.get_alias(function, alias).await?;
        let primary = self.version(function, &state.version).await?;
        Ok((state, owned_values(&primary.env, owned)))
    }

    /// The owned flags published version `number` holds.
    pub async fn version_flags(
        &self,
        function: &str,
        number: &str,
        owned: &Flags,
    ) -> Result<Flags, ApplyError> {
        let v = self.version(function, number).await?;
        Ok(owned_values(&v.env, owned))
    }

    /// Converges the alias to `desired`. Stops at once (`Superseded`) when
    /// `cancel` fires. `expect_variables`: see [`Env::whole`].
    /// `hints`: versions this rollout published or recorded, by the flags
    /// they hold; used without reading them (versions are immutable), so a
    /// rollback to one is one `UpdateAlias` even when KMS cannot decrypt it.
    pub async fn apply(
        &self,
        function: &str,
        alias: &str,
        desired: Desired<'_>,
        hints: &[(Flags, String)],
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ApplyError::Superseded),
            result = self.apply_retrying(function, alias, &desired, hints, expect_variables, cancel) => result,
        }
    }

    async fn apply_retrying(
        &self,
        function: &str,
        alias: &str,
        desired: &Desired<'_>,
        hints: &[(Flags, String)],
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        let use_hints = AtomicBool::new(!hints.is_empty());
        retrying(&self.env.policy, function, || {
            let hinted = use_hints.load(Ordering::Relaxed);
            let use_hints = &use_hints;
            async move {
                let hints = if hinted { hints } else { &[] };
                match self
                    .apply_once(function, alias, desired, hints, expect_variables, cancel)
                    .await
                {
                    // A recorded version may have been deleted since: once
                    // more at once, finding the versions afresh.
                    Err(Step::Reject(m)) if hinted => {
                        use_hints.store(false, Ordering::Relaxed);
                        Err(Step::RetryNow(format!(
                            "{m}; trying again without the versions this rollout recorded"
                        )))
                    }
                    other => other,
                }
            }
        })
        .await
    }

    /// One cycle: move the alias, then give `$LATEST` the stable flags back
    /// whatever happened (a refused publish may have left it with the
    /// canary's), then read the alias back.
    async fn apply_once(
        &self,
        function: &str,
        alias: &str,
        desired: &Desired<'_>,
        hints: &[(Flags, String)],
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, Step> {
        let state = self.get_alias(function, alias).await?;
        let mut work = Work::default();
        let moved = self
            .move_alias(
                function,
                alias,
                desired,
                hints,
                &state,
                expect_variables,
                cancel,
                &mut work,
            )
            .await;
        let note = match (&moved, work.latest_touched) {
            // Nothing was written and nothing moved: nothing to put back.
            (Err(_), false) => None,
            _ => {
                self.restore_latest(
                    function,
                    desired.flags,
                    expect_variables,
                    cancel,
                    &mut work.steps,
                )
                .await
            }
        };
        let (want, before) = moved?;
        let after_state = self.get_alias(function, alias).await?;
        if !after_state.routing().same_split(&want) {
            return Err(Step::Retry(format!(
                "read-back of alias {alias} shows {} instead of {}",
                describe(&after_state.routing()),
                describe(&want)
            )));
        }
        let serving = desired.canary.map_or(desired.flags, |(f, _)| f);
        Ok(WriteReport {
            before,
            after: serving.clone(),
            wrote: !work.steps.is_empty(),
            attempts: 1,
            retried_because: Vec::new(),
            revision_id: after_state.revision_id,
            note,
            routing: Some(want),
            steps: work.steps,
            delivery: None,
        })
    }

    /// Finds (or publishes) the versions and updates the alias; returns
    /// the routing it wants and the owned flags the position's traffic ran
    /// before (best effort: empty when that version cannot be read).
    #[allow(clippy::too_many_arguments)]
    async fn move_alias(
        &self,
        function: &str,
        alias: &str,
        desired: &Desired<'_>,
        hints: &[(Flags, String)],
        state: &AliasState,
        expect_variables: bool,
        cancel: &CancellationToken,
        work: &mut Work,
    ) -> Result<(AliasRouting, Flags), Step> {
        let owned = owned_keys(desired);
        let serving_before = match (&desired.canary, state.weights.keys().next()) {
            (Some(_), Some(canary)) => canary.clone(),
            _ => state.version.clone(),
        };
        let before = match self.read_once(function, &serving_before, work).await {
            Ok(v) => owned_values(&v.env, &owned),
            Err(Step::Unreadable(_)) => Flags::new(),
            Err(e) => return Err(e),
        };
        let stable = self
            .version_with(
                function,
                desired.flags,
                hints,
                state,
                expect_variables,
                cancel,
                work,
            )
            .await?;
        let canary = match desired.canary {
            Some((flags, weight)) => Some((
                self.version_with(
                    function,
                    flags,
                    hints,
                    state,
                    expect_variables,
                    cancel,
                    work,
                )
                .await?,
                weight,
            )),
            None => None,
        };
        let want = wanted_routing(&stable, canary.as_ref().map(|(v, w)| (v.as_str(), *w)));
        if !state.routing().same_split(&want) {
            self.update_alias(function, alias, &want, state.revision_id.as_deref())
                .await?;
            work.steps
                .push(format!("UpdateAlias {alias}: {}", describe(&want)));
        }
        Ok((want, before))
    }

    /// `$LATEST` gets the stable flags (a best-effort write with a short
    /// retry budget: the alias has moved already, so this never holds up a
    /// rollback for long). A failure is a note; the watcher sees a
    /// `$LATEST` left with other flags and converges again.
    async fn restore_latest(
        &self,
        function: &str,
        stable: &Flags,
        expect_variables: bool,
        cancel: &CancellationToken,
        steps: &mut Vec<String>,
    ) -> Option<String> {
        let quick = self.env.with_policy(RetryPolicy {
            max_attempts: 3,
            settle_timeout: std::time::Duration::from_secs(30),
            ..self.env.policy.clone()
        });
        match quick
            .apply(function, stable, expect_variables, cancel)
            .await
        {
            Ok(r) if r.wrote => {
                steps.push("$LATEST given the stable flags back".into());
                None
            }
            Ok(_) => None,
            Err(e) => Some(format!(
                "$LATEST could not be given the stable flags back ({e}); the watcher tries again"
            )),
        }
    }

    /// A version holding `flags`: one this rollout recorded (versions are
    /// immutable, so it is trusted without a read), one of the alias's,
    /// an older one with the same code, settings and other variables as
    /// the alias's version, or a newly published one.
    #[allow(clippy::too_many_arguments)]
    async fn version_with(
        &self,
        function: &str,
        flags: &Flags,
        hints: &[(Flags, String)],
        state: &AliasState,
        expect_variables: bool,
        cancel: &CancellationToken,
        work: &mut Work,
    ) -> Result<String, Step> {
        if let Some((_, v)) = hints.iter().find(|(f, _)| f == flags) {
            return Ok(v.clone());
        }
        if work.primary.is_none() {
            let primary = self.read_once(function, &state.version, work).await?;
            // The alias's own version is the first candidate.
            work.candidates.retain(|v| v.number != primary.number);
            work.candidates.insert(0, primary.clone());
            if let Some(extra) = state.weights.keys().next() {
                // An unreadable additional version is simply no candidate.
                let _ = self.read_once(function, extra, work).await;
            }
            work.primary = Some(primary);
        }
        let primary = work
            .primary
            .clone()
            .unwrap_or_else(|| unreachable_version(state));
        let substitute = |v: &Version| {
            satisfies(&v.env, flags)
                && v.code_sha256 == primary.code_sha256
                && v.settings == primary.settings
                && v.others(flags) == primary.others(flags)
        };
        if let Some(v) = work.candidates.iter().find(|v| substitute(v)) {
            return Ok(v.number.clone());
        }
        if !work.listed {
            work.listed = true;
            let mut older = self.list_versions(function).await?;
            // Newest first: the most recent equal version is reused.
            older.sort_by_key(|v| std::cmp::Reverse(v.number.parse::<u64>().unwrap_or(0)));
            work.candidates.extend(older);
            if let Some(v) = work.candidates.iter().find(|v| substitute(v)) {
                return Ok(v.number.clone());
            }
        }
        let published = self
            .publish(function, flags, &primary, expect_variables, cancel, work)
            .await?;
        work.steps.push(format!(
            "PublishVersion {} ({})",
            published.number,
            flag_summary(flags)
        ));
        let number = published.number.clone();
        work.candidates.push(published);
        Ok(number)
    }

    /// Merges `flags` into `$LATEST` and publishes it. Refused before
    /// anything is written when `$LATEST` differs from the alias's version
    /// in anything but the owned flags (code, settings, other variables):
    /// publishing would ship that too. The publish itself is conditional on
    /// the `RevisionId` written and the version's `CodeSha256`.
    async fn publish(
        &self,
        function: &str,
        flags: &Flags,
        primary: &Version,
        expect_variables: bool,
        cancel: &CancellationToken,
        work: &mut Work,
    ) -> Result<Version, Step> {
        let latest = self.env.get(function).await?;
        let latest_env = latest
            .env
            .whole(expect_variables)
            .map_err(Step::Unreadable)?;
        let unpublished = unpublished_changes(
            &Version {
                number: "$LATEST".into(),
                env: latest_env,
                code_sha256: latest.code_sha256.clone(),
                settings: latest.settings.clone(),
            },
            primary,
            flags,
        );
        if let Some(what) = unpublished {
            return Err(Step::Reject(format!(
                "$LATEST differs from version {} (which alias traffic runs) in {what}: publishing would ship that with the flags; publish or revert it first",
                primary.number
            )));
        }
        work.latest_touched = true;
        // The write's read-back names the revision now on `$LATEST`.
        let written = match self
            .env
            .apply(function, flags, expect_variables, cancel)
            .await
        {
            Ok(report) => report,
            Err(ApplyError::Rejected(m)) => return Err(Step::Reject(m)),
            Err(ApplyError::Unreadable(m)) => return Err(Step::Unreadable(m)),
            Err(ApplyError::Unavailable { last, .. }) => return Err(Step::Retry(last)),
            Err(ApplyError::Superseded) => return Err(Step::Retry("superseded".into())),
            Err(e @ (ApplyError::Deploying(_) | ApplyError::RolledBackByAppConfig(_))) => {
                return Err(Step::Reject(format!("unexpected from a Lambda write: {e}")));
            }
        };
        let mut request = self
            .env
            .client
            .publish_version()
            .function_name(function)
            .description(format!("rollgate: {}", flag_summary(flags)));
        if let Some(revision) = &written.revision_id {
            request = request.revision_id(revision);
        }
        if let Some(code) = &primary.code_sha256 {
            request = request.code_sha256(code);
        }
        let out = request.send().await.map_err(|e| {
            let step = classify(
                e.code(),
                e.message(),
                e.raw_response().map(|r| r.status().as_u16()),
            );
            match (e.code(), step) {
                // Lambda says "CodeSHA256 ... is different": someone
                // deployed between the check and the publish.
                (Some("InvalidParameterValueException"), Step::Reject(m))
                    if m.contains("CodeSHA256") =>
                {
                    Step::Reject(format!(
                        "$LATEST's code changed before publishing ({m}); rollgate ships flags, not code"
                    ))
                }
                (_, step) => step,
            }
        })?;
        let number = out
            .version()
            .ok_or_else(|| Step::Retry("PublishVersion answered without a version".into()))?
            .to_string();
        // Read back rather than trust the answer's copy of the environment
        // (not every emulator includes it).
        let version = self.version(function, &number).await?;
        // A concurrent edit of `$LATEST` between write and publish fails
        // the RevisionId precondition; this catches an emulator without it.
        if !satisfies(&version.env, flags)
            || unpublished_changes(&version, primary, flags).is_some()
        {
            return Err(Step::Retry(format!(
                "published version {} is not the stable version with the flags; publishing again",
                version.number
            )));
        }
        Ok(version)
    }

    async fn get_alias(&self, function: &str, alias: &str) -> Result<AliasState, Step> {
        let out = self
            .env
            .client
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ResourceNotFoundException") {
                    return Step::Reject(format!(
                        "alias {alias} of function {function} does not exist; create it pointing at the published version callers run"
                    ));
                }
                classify(
                    e.code(),
                    e.message(),
                    e.raw_response().map(|r| r.status().as_u16()),
                )
            })?;
        let version = out.function_version().unwrap_or("$LATEST").to_string();
        if version == "$LATEST" {
            return Err(Step::Reject(format!(
                "alias {alias} of function {function} points at $LATEST, which has no frozen environment and cannot carry weights; point it at a published version first"
            )));
        }
        let weights = out
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        Ok(AliasState {
            version,
            weights,
            revision_id: out.revision_id().map(str::to_string),
        })
    }

    /// Version `number`, read at most once a cycle (kept in `work`).
    async fn read_once(
        &self,
        function: &str,
        number: &str,
        work: &mut Work,
    ) -> Result<Version, Step> {
        if let Some(v) = work.candidates.iter().find(|v| v.number == number) {
            return Ok(v.clone());
        }
        let v = self.version(function, number).await?;
        work.candidates.push(v.clone());
        Ok(v)
    }

    async fn version(&self, function: &str, number: &str) -> Result<Version, Step> {
        let cfg = self.env.get_qualified(function, Some(number)).await?;
        // A version's environment is frozen: one that cannot be read (KMS)
        // cannot be compared, so nothing is written.
        let env = cfg.env.whole(false).map_err(Step::Unreadable)?;
        Ok(Version {
            number: number.to_string(),
            env,
            code_sha256: cfg.code_sha256,
            settings: cfg.settings,
        })
    }

    /// Every published version (not `$LATEST`), with its environment.
    async fn list_versions(&self, function: &str) -> Result<Vec<Version>, Step> {
        let mut out = Vec::new();
        let mut pages = self
            .env
            .client
            .list_versions_by_function()
            .function_name(function)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                classify(
                    e.code(),
                    e.message(),
                    e.raw_response().map(|r| r.status().as_u16()),
                )
            })?;
            for v in page.versions() {
                let Some(number) = v.version().filter(|n| *n != "$LATEST") else {
                    continue;
                };
                // Versions whose environment cannot be read are no substitute.
                if let Ok(env) = Env::from_sdk(v.environment()).whole(false) {
                    out.push(Version {
                        number: number.to_string(),
                        env,
                        code_sha256: v.code_sha256().map(str::to_string),
                        settings: super::lambda_env::settings(
                            v.runtime(),
                            v.handler(),
                            v.role(),
                            v.memory_size(),
                            v.timeout(),
                            v.layers(),
                        ),
                    });
                }
            }
        }
        Ok(out)
    }

    async fn update_alias(
        &self,
        function: &str,
        alias: &str,
        want: &AliasRouting,
        revision_id: Option<&str>,
    ) -> Result<(), Step> {
        let weights: HashMap<String, f64> = match (&want.canary_version, want.canary_weight) {
            (Some(v), Some(w)) => [(v.clone(), f64::from(w) / 100.0)].into(),
            _ => HashMap::new(),
        };
        let mut request = self
            .env
            .client
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(&want.stable_version)
            .routing_config(
                AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(weights))
                    .build(),
            );
        if let Some(revision) = revision_id {
            request = request.revision_id(revision);
        }
        request.send().await.map_err(|e| {
            classify(
                e.code(),
                e.message(),
                e.raw_response().map(|r| r.status().as_u16()),
            )
        })?;
        Ok(())
    }
}

/// Every key either set of desired flags owns.
fn owned_keys(desired: &Desired<'_>) -> Flags {
    let mut owned = desired.flags.clone();
    if let Some((canary, _)) = desired.canary {
        owned.extend(canary.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    owned
}

/// "version 6" or "version 6, 10 % to version 7".
pub fn describe(r: &AliasRouting) -> String {
    match (&r.canary_version, r.canary_weight) {
        (Some(v), Some(w)) => format!("version {} with {w} % to version {v}", r.stable_version),
        _ => format!("version {}", r.stable_version),
    }
}

fn flag_summary(flags: &Flags) -> String {
    flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_in_whole_percent() {
        let s = AliasState {
            version: "6".into(),
            weights: [("7".to_string(), 0.1)].into(),
            revision_id: None,
        };
        assert_eq!(s.routing(), wanted_routing("6", Some(("7", 10))));
        assert_eq!(percent(0.499_999), 50);
        assert_eq!(
            wanted_routing("6", Some(("6", 10))),
            wanted_routing("6", None),
            "a canary on the stable version is no canary"
        );
        assert_eq!(wanted_routing("6", Some(("7", 0))).canary_version, None);
        assert_eq!(
            describe(&wanted_routing("6", Some(("7", 50)))),
            "version 6 with 50 % to version 7"
        );
    }
}

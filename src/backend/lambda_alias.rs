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

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use backon::{BackoffBuilder, ExponentialBuilder};
use tokio_util::sync::CancellationToken;

use super::lambda_env::{ApplyError, Env, LambdaEnvBackend, Step, WriteReport, classify};
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
        },
        _ => AliasRouting {
            stable_version: stable.to_string(),
            canary_version: None,
            canary_weight: None,
        },
    }
}

/// A published version's environment and code.
#[derive(Debug, Clone)]
struct Version {
    number: String,
    env: BTreeMap<String, String>,
    code_sha256: Option<String>,
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
    pub async fn apply(
        &self,
        function: &str,
        alias: &str,
        desired: Desired<'_>,
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(ApplyError::Superseded),
            result = self.apply_retrying(function, alias, &desired, expect_variables, cancel) => result,
        }
    }

    async fn apply_retrying(
        &self,
        function: &str,
        alias: &str,
        desired: &Desired<'_>,
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, ApplyError> {
        let policy = &self.env.policy;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(policy.min_delay)
            .with_max_delay(policy.max_delay)
            .with_max_times(policy.max_attempts.saturating_sub(1))
            .with_jitter()
            .build();
        let mut retried_because = Vec::new();
        loop {
            match self
                .apply_once(function, alias, desired, expect_variables, cancel)
                .await
            {
                Ok(mut report) => {
                    report.attempts = retried_because.len() + 1;
                    report.retried_because = retried_because;
                    return Ok(report);
                }
                Err(Step::Reject(m)) => return Err(ApplyError::Rejected(m)),
                Err(Step::Unreadable(m)) => return Err(ApplyError::Unreadable(m)),
                Err(Step::Retry(reason)) => {
                    tracing::info!(function, alias, %reason, "alias write will be retried");
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

    async fn apply_once(
        &self,
        function: &str,
        alias: &str,
        desired: &Desired<'_>,
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<WriteReport, Step> {
        let owned = owned_keys(desired);
        let state = self.get_alias(function, alias).await?;
        let primary = self.version(function, &state.version).await?;
        let additional = match state.weights.keys().next() {
            Some(v) => Some(self.version(function, v).await?),
            None => None,
        };
        // What the position's traffic ran before: the canary's version
        // when there is one, else the primary.
        let serving_before = match (&desired.canary, &additional) {
            (Some(_), Some(a)) => a,
            _ => &primary,
        };
        let before = owned_values(&serving_before.env, &owned);
        let mut steps = Vec::new();
        let mut latest_touched = false;
        let mut candidates: Vec<Version> = std::iter::once(primary.clone())
            .chain(additional.clone())
            .collect();
        let mut listed = false;
        let stable = self
            .version_with(
                function,
                desired.flags,
                &primary,
                &mut candidates,
                &mut listed,
                expect_variables,
                &mut steps,
                &mut latest_touched,
                cancel,
            )
            .await?;
        let canary = match desired.canary {
            Some((flags, weight)) => Some((
                self.version_with(
                    function,
                    flags,
                    &primary,
                    &mut candidates,
                    &mut listed,
                    expect_variables,
                    &mut steps,
                    &mut latest_touched,
                    cancel,
                )
                .await?,
                weight,
            )),
            None => None,
        };
        let want = wanted_routing(&stable, canary.as_ref().map(|(v, w)| (v.as_str(), *w)));
        let moved = state.routing() != want;
        if moved {
            self.update_alias(function, alias, &want, state.revision_id.as_deref())
                .await?;
            steps.push(format!("UpdateAlias {alias}: {}", describe(&want)));
        }
        // `$LATEST` keeps the stable flags. Not on the critical path: the
        // alias has moved, so a failure here is a note, not a failed write.
        let mut note = None;
        if latest_touched
            || self
                .env
                .get(function)
                .await
                .ok()
                .and_then(|c| c.env.whole(expect_variables).ok())
                .is_some_and(|env| !satisfies(&env, desired.flags))
        {
            match self
                .env
                .apply(function, desired.flags, expect_variables, cancel)
                .await
            {
                Ok(r) if r.wrote => steps.push("$LATEST given the stable flags back".into()),
                Ok(_) => {}
                Err(ApplyError::Superseded) => {
                    return Err(Step::Retry("superseded".into()));
                }
                Err(e) => {
                    note = Some(format!(
                        "the alias is in place, but $LATEST could not be given the stable flags back: {e}"
                    ))
                }
            }
        }
        let after_state = self.get_alias(function, alias).await?;
        if after_state.routing() != want {
            return Err(Step::Retry(format!(
                "read-back of alias {alias} shows {} instead of {}",
                describe(&after_state.routing()),
                describe(&want)
            )));
        }
        let serving = match &canary {
            Some((_, _)) => desired.canary.map(|(f, _)| f).unwrap_or(desired.flags),
            None => desired.flags,
        };
        Ok(WriteReport {
            before,
            after: serving.clone(),
            wrote: moved || !steps.is_empty(),
            attempts: 1,
            retried_because: Vec::new(),
            revision_id: after_state.revision_id,
            note,
            routing: Some(want),
            steps,
        })
    }

    /// A version holding `flags`: one already known, an older one with the
    /// same code and other variables as `primary`, or a newly published one.
    #[allow(clippy::too_many_arguments)]
    async fn version_with(
        &self,
        function: &str,
        flags: &Flags,
        primary: &Version,
        candidates: &mut Vec<Version>,
        listed: &mut bool,
        expect_variables: bool,
        steps: &mut Vec<String>,
        latest_touched: &mut bool,
        cancel: &CancellationToken,
    ) -> Result<String, Step> {
        let substitute = |v: &Version| {
            satisfies(&v.env, flags)
                && v.code_sha256 == primary.code_sha256
                && v.others(flags) == primary.others(flags)
        };
        if let Some(v) = candidates.iter().find(|v| substitute(v)) {
            return Ok(v.number.clone());
        }
        if !*listed {
            *listed = true;
            let mut older = self.list_versions(function).await?;
            // Newest first: the most recent equal version is reused.
            older.sort_by_key(|v| std::cmp::Reverse(v.number.parse::<u64>().unwrap_or(0)));
            candidates.extend(older);
            if let Some(v) = candidates.iter().find(|v| substitute(v)) {
                return Ok(v.number.clone());
            }
        }
        let published = self
            .publish(function, flags, primary, expect_variables, cancel)
            .await?;
        *latest_touched = true;
        steps.push(format!(
            "PublishVersion {} ({})",
            published.number,
            flag_summary(flags)
        ));
        let number = published.number.clone();
        candidates.push(published);
        Ok(number)
    }

    /// Merges `flags` into `$LATEST` and publishes it, on the precondition
    /// that `$LATEST` is still the revision written and runs `primary`'s code.
    async fn publish(
        &self,
        function: &str,
        flags: &Flags,
        primary: &Version,
        expect_variables: bool,
        cancel: &CancellationToken,
    ) -> Result<Version, Step> {
        match self
            .env
            .apply(function, flags, expect_variables, cancel)
            .await
        {
            Ok(_) => {}
            Err(ApplyError::Rejected(m)) => return Err(Step::Reject(m)),
            Err(ApplyError::Unreadable(m)) => return Err(Step::Unreadable(m)),
            Err(ApplyError::Unavailable { last, .. }) => return Err(Step::Retry(last)),
            Err(ApplyError::Superseded) => return Err(Step::Retry("superseded".into())),
        }
        let latest = self.env.get(function).await?;
        if let (Some(code), Some(want)) = (&latest.code_sha256, &primary.code_sha256)
            && code != want
        {
            return Err(Step::Reject(format!(
                "$LATEST runs code {code} but the alias's version {} runs {want}: publishing would ship that code with the flags; publish or revert the code first",
                primary.number
            )));
        }
        let mut request = self
            .env
            .client
            .publish_version()
            .function_name(function)
            .description(format!("rollgate: {}", flag_summary(flags)));
        if let Some(revision) = &latest.revision_id {
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
                // deployed between the read and the publish.
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
        if !satisfies(&version.env, flags) {
            return Err(Step::Retry(format!(
                "published version {} does not hold the flags; publishing again",
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

    async fn version(&self, function: &str, number: &str) -> Result<Version, Step> {
        let cfg = self.env.get_qualified(function, Some(number)).await?;
        // A version's environment is frozen: one that cannot be read (KMS)
        // cannot be compared, so nothing is written.
        let env = cfg.env.whole(false).map_err(Step::Unreadable)?;
        Ok(Version {
            number: number.to_string(),
            env,
            code_sha256: cfg.code_sha256,
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

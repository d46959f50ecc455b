//! What the watcher reads through the service, and how its findings are
//! recorded: baselines, readiness, a restarted bake clock, observations,
//! drift reverts, an environment that cannot be read. Each record is made
//! only while the rollout is still at the version the watcher judged, so a
//! decision on a stale snapshot changes nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Done, Service, ServiceError};
use crate::audit::NewAuditEntry;
use crate::backend::{ApplyError, Listed};
use crate::domain::{
    Action, Baseline, GateResult, Outcome, Principal, Readiness, RolloutId, WatchMemory,
};
use crate::plan::Flags;
use crate::rollout::{PendingWrite, Rollout, WriteCause};
use crate::store::{Patch, StoreError};

/// What reading a rollout's function found.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionRead {
    /// The owned flags as they are, and the code hash. `lambda-alias`:
    /// the flags the position's traffic runs, and where the alias points
    /// (no code hash: versions are immutable; a deploy to `$LATEST`
    /// reaches no caller of the alias).
    Seen {
        flags: Flags,
        code_sha256: Option<String>,
        routing: Option<crate::rollout::AliasRouting>,
        /// `lambda-alias`: `$LATEST`'s owned flags, which should be the
        /// stable ones (an unqualified invoke runs them).
        latest: Option<Flags>,
    },
    /// The environment cannot be read whole (e.g. KMS access lost): why.
    Unreadable(String),
    /// The read failed (throttled, unreachable): why; nothing to conclude.
    Failed(String),
}

impl FunctionRead {
    /// From a ListFunctions entry.
    pub fn from_listing(listed: &Listed, r: &Rollout) -> FunctionRead {
        match listed.env.whole(r.expects_variables()) {
            Ok(env) => FunctionRead::Seen {
                flags: crate::backend::merge::owned_values(&env, &r.desired_flags),
                code_sha256: listed.code_sha256.clone(),
                routing: None,
                latest: None,
            },
            Err(why) => FunctionRead::Unreadable(why),
        }
    }
}

/// `$LATEST`'s values of `stable`'s keys.
async fn backend_latest(
    backend: &crate::backend::LambdaEnvBackend,
    r: &Rollout,
    stable: &Flags,
) -> Result<Flags, ApplyError> {
    backend
        .in_region(r.write_region().as_deref())
        .read(&r.target_function, stable, r.expects_variables())
        .await
        .map(|o| o.flags)
}

impl Service {
    /// Every rollout the watcher judges, with its memory.
    pub async fn watched(&self) -> Result<Vec<(Rollout, WatchMemory)>, ServiceError> {
        let rollouts = self.store.list_watched().await?;
        let mut memories = self.store.watch_memories().await?;
        Ok(rollouts
            .into_iter()
            .map(|r| {
                let m = memories.remove(&r.id).unwrap_or_default();
                (r, m)
            })
            .collect())
    }

    /// Every function of the default region by identity (paged ListFunctions).
    pub async fn list_functions(&self) -> Result<HashMap<String, Listed>, ServiceError> {
        self.backend
            .list_all()
            .await
            .map_err(|e| ServiceError::Unavailable(e.to_string()))
    }

    /// Reads the rollout's function: owned flags and code hash (an
    /// alias rollout: its alias, and the flags of the version serving the
    /// position when the alias is not where rollgate left it).
    pub async fn read_function(&self, r: &Rollout) -> FunctionRead {
        if let Some(target) = &r.appconfig {
            // The flags the environment serves now (the newest deployment
            // of the profile not rolled back): drift when they differ.
            let appconfig = self.appconfig.in_region(r.write_region().as_deref());
            return match appconfig.served_flags(target, &r.desired_flags).await {
                Ok((flags, _)) => FunctionRead::Seen {
                    flags,
                    code_sha256: None,
                    routing: None,
                    latest: None,
                },
                Err(ApplyError::Unreadable(why)) => FunctionRead::Unreadable(why),
                Err(e) => FunctionRead::Failed(e.to_string()),
            };
        }
        let backend = self.backend.in_region(r.write_region().as_deref());
        if let Some(alias) = &r.alias {
            let alias_backend = crate::backend::LambdaAliasBackend::new(backend);
            let state = match alias_backend.alias(&r.target_function, alias).await {
                Ok(s) => s,
                Err(ApplyError::Unreadable(why)) => return FunctionRead::Unreadable(why),
                Err(e) => return FunctionRead::Failed(e.to_string()),
            };
            let routing = state.routing();
            // `$LATEST`, which a refused or interrupted write may have left
            // with other flags (an unreadable one is not held against it).
            let stable = r.desired().flags.clone();
            let latest = match backend_latest(&self.backend, r, &stable).await {
                Ok(flags) => Some(flags),
                Err(ApplyError::Unreadable(_)) => None,
                Err(e) => return FunctionRead::Failed(e.to_string()),
            };
            if r.routing
                .as_ref()
                .is_some_and(|known| known.same_split(&routing))
            {
                return FunctionRead::Seen {
                    flags: r.desired_flags.clone(),
                    code_sha256: None,
                    routing: r.routing.clone(),
                    latest,
                };
            }
            let serving = match (r.traffic_at(r.phase_index), &routing.canary_version) {
                (Some(_), Some(canary)) => canary.clone(),
                _ => routing.stable_version.clone(),
            };
            return match alias_backend
                .version_flags(&r.target_function, &serving, &r.desired_flags)
                .await
            {
                Ok(flags) => FunctionRead::Seen {
                    flags,
                    code_sha256: None,
                    routing: Some(routing),
                    latest,
                },
                Err(ApplyError::Unreadable(why)) => FunctionRead::Unreadable(why),
                Err(e) => FunctionRead::Failed(e.to_string()),
            };
        }
        match backend
            .read(&r.target_function, &r.desired_flags, r.expects_variables())
            .await
        {
            Ok(o) => FunctionRead::Seen {
                flags: o.flags,
                code_sha256: o.code_sha256,
                routing: None,
                latest: None,
            },
            Err(ApplyError::Unreadable(why)) => FunctionRead::Unreadable(why),
            Err(e) => FunctionRead::Failed(e.to_string()),
        }
    }

    /// Records a rollout's baseline metrics (again, when a read came back
    /// more complete than the one on record).
    pub async fn record_baseline(
        &self,
        who: &Principal,
        r: &Rollout,
        baseline: &Baseline,
        lookback_secs: u64,
        at: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let entry = NewAuditEntry::new(who, Action::BaselineRecorded, Outcome::Recorded)
            .rollout(r.id, &r.phase_name)
            .detail(json!({
                "lookback_secs": lookback_secs,
                "until": r.created_at,
                "metrics": baseline,
                "complete": baseline.is_complete(),
            }));
        Ok(self
            .store
            .patch_rollout(r.id, r.version, Patch::Baseline(baseline, at), vec![entry])
            .await?)
    }

    /// Records the current phase's latest evaluation (no audit entry: the
    /// numbers are on the rollout, and decisions made on them are audited).
    pub async fn record_readiness(
        &self,
        r: &Rollout,
        readiness: &Readiness,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .patch_rollout(r.id, r.version, Patch::Readiness(readiness), Vec::new())
            .await?)
    }

    /// The owned flags as the watcher read them (drift shows on the rollout).
    pub async fn record_observed(
        &self,
        r: &Rollout,
        flags: &Flags,
        at: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .store
            .patch_rollout(r.id, r.version, Patch::Observed(flags, at), Vec::new())
            .await?)
    }

    /// The function's code changed during the phase: its bake restarts.
    pub async fn restart_bake(
        &self,
        who: &Principal,
        r: &Rollout,
        before: &str,
        after: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let entry = NewAuditEntry::new(who, Action::CodeChanged, Outcome::BakeRestarted)
            .rollout(r.id, &r.phase_name)
            .reason(Some(
                "the function's code changed during the phase (a deploy): data from the old code says nothing about the new, so the bake clock restarts".into(),
            ))
            .detail(json!({ "code_sha256_before": before, "code_sha256_after": after }));
        Ok(self
            .store
            .patch_rollout(r.id, r.version, Patch::BakeRestarted(at), vec![entry])
            .await?)
    }

    /// A breach that only observes (or a pause guardrail on a rollout
    /// already paused): recorded and announced, nothing else.
    pub async fn record_breach(
        &self,
        who: &Principal,
        r: &Rollout,
        reason: &str,
        evidence: Value,
    ) -> Result<(), ServiceError> {
        let entry = NewAuditEntry::new(who, Action::GuardrailBreach, Outcome::Observed)
            .rollout(r.id, &r.phase_name)
            .reason(Some(reason.to_string()))
            .detail(evidence.clone());
        self.store.append_audit(vec![entry]).await?;
        self.announce(
            r,
            "breach",
            &format!("rollout #{} ({}): observe — {reason}", r.id, r.plan_name),
            evidence,
        );
        Ok(())
    }

    /// Writes the desired flags back after someone changed them behind
    /// rollgate's back: intent and audit entry first, then the write. Only
    /// if the rollout is still at the version the drift was seen at
    /// (`None` otherwise: nothing done).
    pub async fn revert_drift(
        &self,
        who: &Principal,
        r: &Rollout,
        observed: &Flags,
        evidence: Value,
        now: DateTime<Utc>,
    ) -> Result<Option<Done>, ServiceError> {
        if r.state.is_terminal() || r.write_pending() {
            return Ok(None);
        }
        let mut next = r.clone();
        next.generation += 1;
        next.pending_write = Some(PendingWrite {
            generation: next.generation,
            command: WriteCause::DriftRevert,
            actor: who.actor().to_string(),
            expect_variables: r.expects_variables(),
            reason: Some("the function's flags drifted from the rollout's".into()),
            recorded_at: now,
            target_state: Some(r.state),
            previous_state: r.state,
            previous_phase: r.phase_index,
            previous_phase_name: r.phase_name.clone(),
            previous_flags: r.desired_flags.clone(),
        });
        let entry = NewAuditEntry::new(who, Action::DriftDetected, Outcome::Reverting)
            .rollout(r.id, &r.phase_name)
            .flags(Some(observed.clone()), Some(r.desired_flags.clone()))
            .reason(Some(
                "owned flags changed outside rollgate; reverting (drift policy \"revert\")".into(),
            ))
            .detail(evidence);
        match self.store.save_rollout(&next, r, vec![entry]).await {
            Ok(_) => {}
            Err(StoreError::VersionConflict { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        self.announce(
            r,
            "drift",
            &format!(
                "rollout #{} ({}): owned flags of {} drifted; reverted",
                r.id, r.plan_name, r.target_function
            ),
            json!({ "observed": observed, "desired": r.desired_flags }),
        );
        self.supersede(r.id, next.generation, false);
        self.converge(r.id, who).await.map(Some)
    }

    /// The function's environment cannot be read whole: shown on the
    /// rollout, recorded, announced.
    pub async fn function_unreadable(
        &self,
        who: &Principal,
        r: &Rollout,
        cause: &str,
    ) -> Result<bool, ServiceError> {
        let entry = NewAuditEntry::new(who, Action::FunctionUnreadable, Outcome::Observed)
            .rollout(r.id, &r.phase_name)
            .reason(Some(cause.to_string()));
        let recorded = self
            .store
            .patch_rollout(
                r.id,
                r.version,
                Patch::FunctionError(Some(cause)),
                vec![entry],
            )
            .await?;
        if recorded {
            tracing::warn!(rollout = %r.id, cause, "function environment unreadable");
            self.announce(
                r,
                "environment_unreadable",
                &format!(
                    "rollout #{} ({}): {cause}; drift is not judged and no flag is written until it can be read",
                    r.id, r.plan_name
                ),
                json!({ "error": cause }),
            );
        }
        Ok(recorded)
    }

    /// The function can be read whole again.
    pub async fn function_readable(
        &self,
        who: &Principal,
        r: &Rollout,
    ) -> Result<bool, ServiceError> {
        let entry = NewAuditEntry::new(who, Action::FunctionReadable, Outcome::Observed)
            .rollout(r.id, &r.phase_name)
            .reason(Some("the function's environment can be read again".into()));
        Ok(self
            .store
            .patch_rollout(r.id, r.version, Patch::FunctionError(None), vec![entry])
            .await?)
    }

    /// The rollout's plan snapshot no longer parses: recorded once; the
    /// rollout can still be rolled back or abandoned.
    pub async fn plan_unreadable(
        &self,
        who: &Principal,
        r: &Rollout,
        error: &str,
    ) -> Result<(), ServiceError> {
        let entry = NewAuditEntry::new(who, Action::PlanUnreadable, Outcome::Observed)
            .rollout(r.id, &r.phase_name)
            .reason(Some(format!(
                "{error}; guardrails cannot be judged: roll it back or abandon it"
            )));
        Ok(self.store.append_audit(vec![entry]).await?)
    }

    /// A manual phase became ready: its webhooks hear it.
    pub fn announce_ready(&self, r: &Rollout, phase: &str, gates: &[GateResult]) {
        self.announce(
            r,
            "ready_for_approval",
            &format!(
                "rollout #{} ({}): phase {phase} is ready for approval (bake time over, every gate holds)",
                r.id, r.plan_name
            ),
            json!({ "gates": gates }),
        );
    }

    /// Keeps a tick's evaluations for the charts.
    pub async fn record_points(
        &self,
        points: &[(RolloutId, crate::domain::MetricPoint)],
    ) -> Result<(), ServiceError> {
        let result = self.store.insert_points(points).await;
        self.sparks().forget(points.iter().map(|(id, _)| *id));
        Ok(result?)
    }

    /// Bounds a rollout's chart history (see `Store::thin_points`).
    pub async fn thin_points(&self, id: RolloutId, cap: usize) -> Result<usize, ServiceError> {
        Ok(self.store.thin_points(id, cap).await?)
    }

    /// Stores several rollouts' watcher memories in one transaction.
    pub async fn save_watch_memories(
        &self,
        memories: &[(RolloutId, WatchMemory)],
        at: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        Ok(self.store.put_watch_memories(memories, at).await?)
    }

    pub async fn save_watch_memory(
        &self,
        id: RolloutId,
        memory: &WatchMemory,
        at: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        Ok(self.store.put_watch_memory(id, memory, at).await?)
    }
}

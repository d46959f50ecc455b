//! The engine: records a command's intent and its audit entry in one
//! transaction, then converges the function to the rollout's desired flags
//! through the backend and records the outcome (design rules 1–4).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::json;

use super::{Command, PendingWrite, Rollout, State, decide};
use crate::backend::{ApplyError, LambdaEnvBackend};
use crate::plan::{self, Plan};
use crate::store::{NewAuditEntry, Store, StoreError};
use crate::telemetry::Telemetry;

/// The actor recorded for writes finished after a restart.
pub const RECOVERY_ACTOR: &str = "rollgate/recovery";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    /// The command is not allowed now (state, version, a busy function).
    #[error("{0}")]
    Conflict(String),
    /// The request is well-formed but cannot be carried out (invalid plan,
    /// a write the target refuses).
    #[error("{0}")]
    Unprocessable(String),
    #[error("plan {plan} is invalid")]
    PlanInvalid { plan: String, errors: Vec<String> },
    /// AWS could not be reached or kept failing; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks for a command, and how.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub actor: String,
    pub reason: Option<String>,
    pub expected_version: Option<i64>,
    /// Recorded with the command's audit entry (e.g. the watcher's numbers).
    pub evidence: Option<serde_json::Value>,
    /// Promote a phase whose bake time or gates do not allow it yet.
    pub force: bool,
}

/// What a command did: the rollout as it now stands, and whether its flag
/// write is still pending (recorded, retried in the background).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rollout: Rollout,
    pub write_pending: Option<String>,
}

pub struct Engine {
    store: Store,
    backend: LambdaEnvBackend,
    plans_dir: PathBuf,
    /// One writer per function at a time, so a later command's write can
    /// never be overtaken by an earlier one's.
    function_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Newest desired generation this process recorded per rollout: a write
    /// of an older generation stops retrying as soon as a newer one exists.
    newest_generation: Arc<Mutex<HashMap<i64, i64>>>,
    telemetry: Arc<Telemetry>,
}

/// A plan name is a file stem: no paths, no hidden files.
pub fn valid_plan_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Engine {
    pub fn new(
        store: Store,
        backend: LambdaEnvBackend,
        plans_dir: PathBuf,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Engine {
            store,
            backend,
            plans_dir,
            function_locks: Mutex::new(HashMap::new()),
            newest_generation: Arc::default(),
            telemetry,
        }
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn plans_dir(&self) -> &Path {
        &self.plans_dir
    }

    /// Reads and validates `plans_dir/NAME.toml`.
    pub fn load_plan(&self, name: &str) -> Result<(Plan, String), EngineError> {
        if !valid_plan_name(name) {
            return Err(EngineError::NotFound(format!("no plan named {name:?}")));
        }
        let path = self.plans_dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|_| {
            EngineError::NotFound(format!(
                "no plan named {name:?} in {}",
                self.plans_dir.display()
            ))
        })?;
        let plan = Plan::parse(name, &text).map_err(|errors| EngineError::PlanInvalid {
            plan: name.to_string(),
            errors: errors
                .iter()
                .map(|e| format!("{}:{e}", path.display()))
                .collect(),
        })?;
        Ok((plan, text))
    }

    /// Starts a rollout of plan `plan_name`: records it at the baseline phase
    /// and writes the baseline flags.
    pub async fn start(
        &self,
        plan_name: &str,
        actor: &str,
        reason: Option<String>,
    ) -> Result<Outcome, EngineError> {
        let (plan, text) = self.load_plan(plan_name)?;
        let function = plan.target.function.clone();
        if let Some(active) = self.store.active_rollout_for(&function).await? {
            return Err(busy(&function, &active));
        }
        let backend = self.backend.in_region(plan.target.region.as_deref());
        let cannot_start = |e: ApplyError| match e {
            ApplyError::Rejected(m) => {
                EngineError::Unprocessable(format!("cannot start on function {function}: {m}"))
            }
            ApplyError::Unavailable { .. } | ApplyError::Superseded => {
                EngineError::Unavailable(format!("cannot read function {function}: {e}"))
            }
        };
        // Refuse before recording anything when the baseline cannot fit.
        let observed = backend
            .read_checking_fit(&function, &plan.flags)
            .await
            .map_err(cannot_start)?;
        let now = Utc::now();
        let rollout = Rollout {
            id: 0,
            plan_name: plan.name.clone(),
            plan_hash: plan::plan_hash(&text),
            plan_text: text,
            target_function: function.clone(),
            state: State::Pending,
            phase_index: 0,
            phase_name: plan.phase_name(0).to_string(),
            desired_flags: plan.flags.clone(),
            observed_flags: Some(observed.flags.clone()),
            observed_at: Some(now),
            generation: 1,
            applied_generation: 0,
            pending_write: Some(PendingWrite {
                generation: 1,
                command: "start".into(),
                actor: actor.to_string(),
                reason: reason.clone(),
                recorded_at: now,
                previous_state: State::Pending,
                previous_phase: 0,
                previous_phase_name: plan.phase_name(0).to_string(),
                previous_flags: observed.flags.clone(),
            }),
            last_error: None,
            version: 1,
            created_at: now,
            updated_at: now,
            baseline: None,
            baseline_at: None,
            bake_started_at: Some(now),
            readiness: None,
            phase_stats: None,
            streaks: None,
        };
        let entry = NewAuditEntry {
            actor: actor.to_string(),
            action: "start".into(),
            phase: Some(rollout.phase_name.clone()),
            flags_before: Some(observed.flags),
            flags_after: Some(rollout.desired_flags.clone()),
            reason,
            outcome: "accepted".into(),
            detail: Some(json!({
                "plan": rollout.plan_name,
                "plan_hash": rollout.plan_hash,
                "function": function,
            })),
            ..NewAuditEntry::default()
        };
        let stored = match self.store.insert_rollout(&rollout, vec![entry]).await {
            Ok(r) => r,
            Err(StoreError::FunctionBusy { .. }) => {
                return Err(match self.store.active_rollout_for(&function).await? {
                    Some(active) => busy(&function, &active),
                    None => EngineError::Conflict(format!(
                        "function {function} already has an active rollout"
                    )),
                });
            }
            Err(e) => return Err(e.into()),
        };
        self.converge(stored.id, None).await
    }

    /// Carries out `command` as `ask` describes: who asks and why, the
    /// expected version, the evidence behind it (the watcher's numbers), and
    /// whether a phase that is not ready is promoted anyway (`force`).
    pub async fn execute(
        &self,
        id: i64,
        command: Command,
        ask: Ask,
    ) -> Result<Outcome, EngineError> {
        let Ask {
            actor,
            reason,
            expected_version,
            evidence,
            force,
        } = ask;
        let actor = actor.as_str();
        let now = Utc::now();
        let current = self.get(id).await?;
        if let Some(v) = expected_version
            && v != current.version
        {
            return Err(EngineError::Conflict(format!(
                "rollout {id} is at version {}, not the expected version {v}; reload it and retry",
                current.version
            )));
        }
        let plan = snapshot_plan(&current)?;
        let transition = decide(current.position(plan.phase_count()), command, plan.rollback)
            .map_err(|why| {
                EngineError::Conflict(format!("cannot {} rollout {id}: {why}", command.name()))
            })?;

        // Promotion needs a baked phase whose gates hold, unless forced.
        let mut forced_past = Vec::new();
        if command == Command::Advance {
            let phase = current
                .phase_index
                .checked_sub(1)
                .and_then(|i| plan.phases.get(i));
            let blockers = super::readiness::blockers(
                phase,
                current.bake_started_at,
                now,
                current.readiness.as_ref(),
            );
            if !blockers.is_empty() {
                if !force {
                    return Err(EngineError::Conflict(format!(
                        "phase {} of rollout {id} is not ready to advance: {}; an operator may override with force and a reason",
                        current.phase_name,
                        blockers.join("; ")
                    )));
                }
                if reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
                    return Err(EngineError::Unprocessable(
                        "forcing an advance past failing checks needs a reason".into(),
                    ));
                }
                forced_past = blockers;
            }
        }

        let mut next = current.clone();
        next.state = transition.state;
        next.phase_index = transition.phase;
        next.phase_name = plan.phase_name(transition.phase).to_string();
        if transition.phase != current.phase_index {
            // A new phase: its own bake clock and gates; remember how the
            // one we leave did (the next phase's "previous phase").
            next.bake_started_at = Some(now);
            next.readiness = None;
            if command == Command::Advance
                && let Some(observed) = current.readiness.as_ref().and_then(|r| r.get("observed"))
            {
                let mut stats = current.phase_stats.clone().unwrap_or_else(|| json!({}));
                stats[current.phase_name.as_str()] = observed.clone();
                next.phase_stats = Some(stats);
            }
        }
        if transition.write_flags {
            next.desired_flags = plan.flags_at(transition.phase).clone();
            next.generation += 1;
            next.pending_write = Some(PendingWrite {
                generation: next.generation,
                command: command.name().to_string(),
                actor: actor.to_string(),
                reason: reason.clone(),
                recorded_at: Utc::now(),
                previous_state: current.state,
                previous_phase: current.phase_index,
                previous_phase_name: current.phase_name.clone(),
                previous_flags: current.desired_flags.clone(),
            });
        }
        let mut entry = NewAuditEntry {
            actor: actor.to_string(),
            action: command.name().to_string(),
            phase: Some(next.phase_name.clone()),
            flags_before: Some(current.desired_flags.clone()),
            flags_after: Some(next.desired_flags.clone()),
            reason,
            outcome: "accepted".into(),
            detail: Some(json!({
                "from": { "state": current.state, "phase": current.phase_name },
                "to": { "state": next.state, "phase": next.phase_name },
            })),
            ..NewAuditEntry::default()
        };
        if let Some(detail) = entry.detail.as_mut() {
            if let Some(evidence) = evidence {
                detail["evidence"] = evidence;
            }
            if !forced_past.is_empty() {
                detail["forced"] = json!(true);
                detail["forced_past"] = json!(forced_past);
            }
        }
        let saved = self
            .store
            .save_rollout(&next, current.version, vec![entry])
            .await
            .map_err(|e| match e {
                StoreError::VersionConflict { .. } => EngineError::Conflict(format!(
                    "cannot {} rollout {id}: it was changed concurrently (version {}); reload it and retry",
                    command.name(),
                    current.version
                )),
                other => other.into(),
            })?;
        if transition.write_flags {
            self.note_generation(id, saved.generation);
            self.converge(id, None).await
        } else {
            Ok(Outcome {
                rollout: saved,
                write_pending: None,
            })
        }
    }

    /// Every function of the default region: environment and code hash.
    pub async fn list_functions(
        &self,
    ) -> Result<HashMap<String, (crate::plan::Flags, Option<String>)>, EngineError> {
        self.backend
            .list_all()
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))
    }

    /// Reads the function's owned flags and code hash as they are now.
    pub async fn observe(
        &self,
        rollout: &Rollout,
    ) -> Result<crate::backend::Observed, EngineError> {
        let region = snapshot_plan(rollout)?.target.region;
        self.backend
            .in_region(region.as_deref())
            .read(&rollout.target_function, &rollout.desired_flags)
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))
    }

    /// Writes the desired flags back after someone changed them behind
    /// rollgate's back: intent and audit entry first, then the write.
    pub async fn revert_drift(
        &self,
        id: i64,
        actor: &str,
        observed: &crate::plan::Flags,
        evidence: serde_json::Value,
    ) -> Result<Outcome, EngineError> {
        let current = self.get(id).await?;
        let mut next = current.clone();
        next.generation += 1;
        next.pending_write = Some(PendingWrite {
            generation: next.generation,
            command: "drift_revert".into(),
            actor: actor.to_string(),
            reason: Some("the function's flags drifted from the rollout's".into()),
            recorded_at: Utc::now(),
            previous_state: current.state,
            previous_phase: current.phase_index,
            previous_phase_name: current.phase_name.clone(),
            previous_flags: current.desired_flags.clone(),
        });
        let entry = NewAuditEntry {
            actor: actor.to_string(),
            action: "drift_detected".into(),
            phase: Some(current.phase_name.clone()),
            flags_before: Some(observed.clone()),
            flags_after: Some(current.desired_flags.clone()),
            reason: Some(
                "owned flags changed outside rollgate; reverting (drift policy \"revert\")".into(),
            ),
            outcome: "reverting".into(),
            detail: Some(evidence),
            ..NewAuditEntry::default()
        };
        self.store
            .save_rollout(&next, current.version, vec![entry])
            .await
            .map_err(|e| match e {
                StoreError::VersionConflict { .. } => {
                    EngineError::Conflict("the rollout changed meanwhile".into())
                }
                other => other.into(),
            })?;
        self.note_generation(id, next.generation);
        self.converge(id, None).await
    }

    pub async fn get(&self, id: i64) -> Result<Rollout, EngineError> {
        self.store
            .get_rollout(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("no rollout with id {id}")))
    }

    /// Finishes every recorded but unconfirmed write: at start-up (after a
    /// crash) and periodically (after the target was unavailable).
    pub async fn recover(&self) -> Result<usize, EngineError> {
        let ids = self.store.rollouts_with_pending_writes().await?;
        for &id in &ids {
            if let Err(e) = self.converge(id, Some(RECOVERY_ACTOR)).await {
                tracing::warn!(rollout = id, error = %e, "could not finish a pending flag write");
            }
        }
        Ok(ids.len())
    }

    /// Writes the rollout's desired flags until the confirmed generation
    /// catches up with the desired one, recording each outcome.
    async fn converge(
        &self,
        id: i64,
        actor_override: Option<&str>,
    ) -> Result<Outcome, EngineError> {
        let function = self.get(id).await?.target_function;
        let lock = self.function_lock(&function);
        let _guard = lock.lock().await;
        loop {
            let current = self.get(id).await?;
            if current.applied_generation >= current.generation {
                return Ok(Outcome {
                    rollout: current,
                    write_pending: None,
                });
            }
            let intent = current.pending_write.clone();
            let actor = actor_override
                .map(str::to_string)
                .or_else(|| intent.as_ref().map(|i| i.actor.clone()))
                .unwrap_or_else(|| "rollgate".into());
            let command = intent.as_ref().map_or("converge", |i| i.command.as_str());
            let region = snapshot_plan(&current)?.target.region;
            let newest = self.newest_generation.clone();
            let generation = current.generation;
            let still_wanted = move || {
                newest
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .is_none_or(|&g| g <= generation)
            };
            let result = self
                .backend
                .in_region(region.as_deref())
                .apply_while(
                    &current.target_function,
                    &current.desired_flags,
                    still_wanted,
                )
                .await;
            let mut next = current.clone();
            let mut entry = NewAuditEntry {
                actor,
                action: "flags_write".into(),
                phase: Some(current.phase_name.clone()),
                ..NewAuditEntry::default()
            };
            let mut failure = None;
            match result {
                Ok(report) => {
                    next.applied_generation = current.generation;
                    next.pending_write = None;
                    next.observed_flags = Some(report.after.clone());
                    next.observed_at = Some(Utc::now());
                    next.last_error = None;
                    if next.state == State::Pending {
                        next.state = State::Active;
                    }
                    entry.outcome = if report.wrote {
                        "applied"
                    } else {
                        "already_in_place"
                    }
                    .into();
                    self.telemetry
                        .count_write(&entry.outcome, report.attempts.saturating_sub(1));
                    entry.flags_before = Some(report.before);
                    entry.flags_after = Some(report.after);
                    entry.detail = Some(json!({
                        "command": command,
                        "generation": current.generation,
                        "attempts": report.attempts,
                        "retried_because": report.retried_because,
                        "revision_id": report.revision_id,
                        "recovered": actor_override == Some(RECOVERY_ACTOR),
                    }));
                }
                Err(ApplyError::Rejected(message)) => {
                    // Nothing was written: undo the command, except a rollback
                    // or start, which leave the rollout failed (a rollback may
                    // be retried once the cause is fixed).
                    next.applied_generation = current.generation;
                    next.pending_write = None;
                    next.last_error = Some(message.clone());
                    let undone = match &intent {
                        Some(i) if i.command != "rollback" && i.command != "start" => {
                            next.state = i.previous_state;
                            next.phase_index = i.previous_phase;
                            next.phase_name = i.previous_phase_name.clone();
                            next.desired_flags = i.previous_flags.clone();
                            true
                        }
                        _ => {
                            next.state = State::Failed;
                            false
                        }
                    };
                    entry.outcome = "rejected".into();
                    self.telemetry.count_write("rejected", 0);
                    entry.flags_after = Some(current.desired_flags.clone());
                    entry.detail = Some(json!({
                        "command": command,
                        "generation": current.generation,
                        "error": message,
                        "command_undone": undone,
                    }));
                    failure = Some(EngineError::Unprocessable(format!(
                        "the flag write was refused: {message}; {}",
                        if undone {
                            format!("the {command} was undone")
                        } else {
                            "the rollout is marked failed".to_string()
                        }
                    )));
                }
                Err(ApplyError::Superseded) => {
                    entry.outcome = "superseded".into();
                    self.telemetry.count_write("superseded", 0);
                    entry.rollout_id = Some(id);
                    entry.flags_after = Some(current.desired_flags.clone());
                    entry.detail = Some(json!({
                        "command": command,
                        "generation": current.generation,
                        "why": "a newer command replaced this write before it was confirmed",
                    }));
                    self.store.append_audit(vec![entry]).await?;
                    continue;
                }
                Err(e @ ApplyError::Unavailable { .. }) => {
                    if let ApplyError::Unavailable { attempts, .. } = &e {
                        self.telemetry.count_write("unavailable", *attempts);
                    }
                    let message = e.to_string();
                    if current.last_error.as_deref() == Some(message.as_str()) {
                        // Already recorded: don't add an entry per retry round.
                        return Ok(Outcome {
                            rollout: current,
                            write_pending: Some(message),
                        });
                    }
                    next.last_error = Some(message.clone());
                    entry.outcome = "retrying".into();
                    entry.flags_after = Some(current.desired_flags.clone());
                    entry.detail = Some(json!({
                        "command": command,
                        "generation": current.generation,
                        "error": message,
                    }));
                    let saved = self.save_outcome(&next, &current, entry).await?;
                    return Ok(Outcome {
                        rollout: saved.unwrap_or(current),
                        write_pending: Some(message),
                    });
                }
            }
            let saved = self.save_outcome(&next, &current, entry).await?;
            if let Some(err) = failure
                && saved.is_some()
            {
                return Err(err);
            }
            // Saved, or superseded by a newer command: loop to check the
            // newest desired generation.
        }
    }

    /// Saves a write's outcome. If a command changed the rollout meanwhile,
    /// the entry is still recorded (the write did happen) and `None` is
    /// returned so the caller converges again on the newer state.
    async fn save_outcome(
        &self,
        next: &Rollout,
        current: &Rollout,
        mut entry: NewAuditEntry,
    ) -> Result<Option<Rollout>, EngineError> {
        match self
            .store
            .save_rollout(next, current.version, vec![entry.clone()])
            .await
        {
            Ok(saved) => Ok(Some(saved)),
            Err(StoreError::VersionConflict { .. }) => {
                entry.rollout_id = Some(current.id);
                if let Some(detail) = entry.detail.as_mut() {
                    detail["superseded"] = json!(true);
                }
                self.store.append_audit(vec![entry]).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn note_generation(&self, id: i64, generation: i64) {
        let mut newest = self
            .newest_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = newest.entry(id).or_insert(generation);
        *entry = (*entry).max(generation);
    }

    fn function_lock(&self, function: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .function_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.entry(function.to_string()).or_default().clone()
    }
}

/// The plan snapshot a rollout started with.
pub fn snapshot_plan(rollout: &Rollout) -> Result<Plan, EngineError> {
    Plan::parse(&rollout.plan_name, &rollout.plan_text).map_err(|errors| {
        EngineError::Store(StoreError::Corrupt(format!(
            "rollout {}'s plan snapshot no longer parses: {}",
            rollout.id,
            errors.first().map(ToString::to_string).unwrap_or_default()
        )))
    })
}

fn busy(function: &str, active: &Rollout) -> EngineError {
    EngineError::Conflict(format!(
        "function {function} already has an active rollout: #{} of plan {} ({}, phase {}); complete or roll it back first",
        active.id,
        active.plan_name,
        active.state.as_str(),
        active.phase_name
    ))
}

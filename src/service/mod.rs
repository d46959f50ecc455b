//! The one writer (design rule 8): the only code that changes rollouts,
//! flags or the audit log. The JSON API, the CLI (through the API), the
//! watcher and the reconciler all call it, each with a `Principal` that
//! says who is acting; the audit actor comes from it.
//!
//! A command records its intent and audit entry in one transaction (pure
//! decisions from `rollout::state` and `rollout::readiness`), then converges
//! the function to the desired flags through the backend (`writes`). The
//! watcher's findings are recorded by `watch`.

mod access;
mod approvals;
mod errors;
mod preflight;
mod read;
mod sparks;
mod users;
pub use users::add_user;
mod watch;
mod writes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use access::{
    NewSession, OIDC_LOGIN_TTL, OidcBegun, SignInError, TokenCheck, create_token, decoy_hash,
};
pub use errors::{Refusal, ServiceError};
pub use read::Verification;
pub use watch::FunctionRead;

use crate::audit::{AuditRecord, NewAuditEntry, VerifyReport};
use crate::backend::{AppConfigBackend, ApplyError, LambdaEnvBackend};
use crate::domain::{Action, Outcome, Principal, RolloutId, WatchMemory, text};
use crate::notify::{Notifier, payload};
use crate::plan::{self, Plan};
use crate::rollout::readiness::{self, Freshness};
use crate::rollout::{Command, PendingWrite, Rollout, State, WriteCause, decide, phase_flags};
use crate::store::{AuditFilter, RolloutFilter, Store, StoreError};
use crate::telemetry::Telemetry;

/// How a command is asked for, beyond who asks.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub reason: Option<String>,
    /// Refuse unless the rollout is still at this version.
    pub expected_version: Option<i64>,
    /// Recorded with the command's audit entry (e.g. the watcher's numbers).
    pub evidence: Option<Value>,
    /// Promote a phase whose bake time or gates do not allow it yet.
    pub force: bool,
    /// The time the command is judged at (the watcher's tick); now if unset.
    pub at: Option<DateTime<Utc>>,
    /// Tell the plan's webhooks about it, as this event, once it is recorded.
    pub announce: Option<&'static str>,
}

/// What a command did: the rollout as it now stands, and why its flag
/// write is still pending (recorded, retried in the background), if it is.
#[derive(Debug, Clone)]
pub struct Done {
    pub rollout: Rollout,
    pub write_pending: Option<String>,
}

/// A start: the rollout as it now stands, and the preflight it passed
/// (or was forced past).
#[derive(Debug, Clone)]
pub struct Started {
    pub done: Done,
    pub preflight: crate::preflight::Report,
}

/// What the service is configured with.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub plans_dir: PathBuf,
    /// How old gate results may be and still allow an advance.
    pub freshness: Freshness,
}

pub struct Service {
    store: Store,
    backend: LambdaEnvBackend,
    appconfig: AppConfigBackend,
    preflighter: crate::preflight::Preflighter,
    config: ServiceConfig,
    telemetry: Arc<Telemetry>,
    notifier: Notifier,
    /// One write per function at a time in this process, so a later
    /// command's write is never overtaken by an earlier one's.
    function_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The write running per rollout: its generation and the token that
    /// stops it the moment a newer command supersedes it.
    running: Mutex<HashMap<RolloutId, (i64, CancellationToken)>>,
    /// Parsed plan snapshots by hash.
    plans: Mutex<HashMap<String, Result<Arc<Plan>, String>>>,
    /// The audit chain's last verification.
    verified: Mutex<Option<Verification>>,
    /// The overview's sparklines, reused for a few seconds.
    sparks: Mutex<sparks::SparkCache>,
    /// The valid plans' names, and when they were read.
    plan_names: Mutex<PlanNames>,
    /// The key of sign-in throttle buckets (made once, kept in the
    /// database so every process agrees; read from it once here).
    throttle_key: tokio::sync::OnceCell<String>,
}

/// The valid plans' names as last read.
#[derive(Default)]
struct PlanNames {
    read_at: Option<std::time::Instant>,
    names: Arc<Vec<String>>,
    /// A caller is reading them again.
    refreshing: bool,
}

/// A plan name is a file stem: no paths, no hidden files.
pub fn valid_plan_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Service {
    pub fn new(
        store: Store,
        backend: LambdaEnvBackend,
        appconfig: AppConfigBackend,
        preflighter: crate::preflight::Preflighter,
        config: ServiceConfig,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        Service {
            store,
            backend,
            appconfig,
            preflighter,
            config,
            telemetry,
            notifier: Notifier::default(),
            function_locks: Mutex::default(),
            running: Mutex::default(),
            plans: Mutex::default(),
            verified: Mutex::default(),
            sparks: Mutex::default(),
            plan_names: Mutex::default(),
            throttle_key: tokio::sync::OnceCell::new(),
        }
    }

    fn plan_names(&self) -> std::sync::MutexGuard<'_, PlanNames> {
        self.plan_names.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sparks(&self) -> std::sync::MutexGuard<'_, sparks::SparkCache> {
        self.sparks.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    pub fn plans_dir(&self) -> &Path {
        &self.config.plans_dir
    }

    pub fn freshness(&self) -> Freshness {
        self.config.freshness
    }

    /// Keeps the phase flags, region and webhooks with rollouts stored
    /// before rollgate kept them (at start-up), while their snapshots parse.
    pub async fn keep_plan_facts(&self) -> Result<usize, ServiceError> {
        let old = self.store.rollouts_missing_plan_facts().await?;
        let mut kept = 0;
        for r in old.iter().filter(|r| !r.phases.is_empty()) {
            self.store.keep_plan_facts(r).await?;
            kept += 1;
        }
        Ok(kept)
    }

    /// Resolves functions held under a name (rollouts stored before
    /// identities were resolved) to their ARNs, so another spelling of the
    /// same function is refused.
    pub async fn resolve_identities(&self) -> Result<(), ServiceError> {
        for r in self.store.held_without_arn().await? {
            let read = self
                .backend
                .in_region(r.write_region().as_deref())
                .read(&r.target_function, &r.desired_flags, false)
                .await;
            match read {
                Ok(o) => {
                    if let (Some(arn), Some(name)) = (o.function_arn, o.function_name) {
                        self.store.set_identity(r.id, &arn, &name).await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(rollout = %r.id, error = %e, "could not resolve the function's ARN yet")
                }
            }
        }
        Ok(())
    }

    /// The owned flags of `plan`'s function as they are now (for a start's
    /// confirmation; writes nothing).
    pub async fn peek_flags(&self, plan: &Plan) -> Result<crate::plan::Flags, String> {
        if let Some(target) = &plan.target.appconfig {
            return self
                .appconfig
                .in_region(plan.target.region.as_deref())
                .served_flags(target, &plan.flags)
                .await
                .map(|(flags, _)| flags)
                .map_err(|e| e.to_string());
        }
        self.backend
            .in_region(plan.target.region.as_deref())
            .read(&plan.target.function, &plan.flags, false)
            .await
            .map(|o| o.flags)
            .map_err(|e| e.to_string())
    }

    /// The database answers.
    /// The store, for what is not a change of rollouts: the leader lease.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn ping(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// Closes the database (at shutdown).
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Reads and validates `plans_dir/NAME.toml`.
    pub fn load_plan(&self, name: &str) -> Result<(Plan, String), ServiceError> {
        if !valid_plan_name(name) {
            return Err(ServiceError::NotFound(format!("no plan named {name:?}")));
        }
        let path = self.config.plans_dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ServiceError::NotFound(format!(
                "no plan named {name:?} in {}",
                self.config.plans_dir.display()
            )),
            _ => ServiceError::Unprocessable(format!(
                "plan {name:?} cannot be read from {}: {e}",
                path.display()
            )),
        })?;
        let plan = Plan::parse(name, &text).map_err(|errors| ServiceError::PlanInvalid {
            plan: name.to_string(),
            errors: errors
                .iter()
                .map(|e| format!("{}:{e}", path.display()))
                .collect(),
        })?;
        Ok((plan, text))
    }

    pub async fn rollout(&self, id: RolloutId) -> Result<Rollout, ServiceError> {
        self.store
            .get_rollout(id)
            .await?
            .ok_or_else(|| ServiceError::NotFound(format!("no rollout with id {id}")))
    }

    pub async fn rollouts(&self, filter: &RolloutFilter) -> Result<Vec<Rollout>, ServiceError> {
        Ok(self.store.list_rollouts(filter).await?)
    }

    /// The watcher's memory of a rollout.
    pub async fn watch_memory(&self, id: RolloutId) -> Result<WatchMemory, ServiceError> {
        Ok(self.store.watch_memory(id).await?)
    }

    pub async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, ServiceError> {
        Ok(self.store.list_audit(filter).await?)
    }

    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, ServiceError> {
        Ok(self.store.audit_head().await?)
    }

    pub async fn verify_audit(&self) -> Result<VerifyReport, ServiceError> {
        Ok(self.store.verify_audit().await?)
    }

    /// Starts a rollout of plan `plan_name`: resolves the function, records
    /// the rollout at the baseline phase and writes the baseline flags.
    ///
    /// The plan's preflight runs first: a failing check refuses the start
    /// unless `force` (with a reason); the start's audit entry records the
    /// warnings and any failure forced past.
    pub async fn start(
        &self,
        who: &Principal,
        plan_name: &str,
        reason: Option<String>,
        force: bool,
    ) -> Result<Started, ServiceError> {
        let reason = text::reason(reason)?;
        if force && reason.is_none() {
            return Err(ServiceError::BadInput(
                "forcing a start past failing preflight checks needs a reason".into(),
            ));
        }
        let (plan, text) = self.load_plan(plan_name)?;
        let function = plan.target.function.clone();
        // Held under this very spelling: say so before asking Lambda.
        if let Some(holder) = self.store.active_rollout_named(&function).await? {
            return Err(Refusal::function_busy(&function, &holder).into());
        }
        let preflight = self.preflight_plan(&plan, Utc::now()).await?;
        let failures: Vec<String> = preflight.failures().iter().map(|c| c.line()).collect();
        if !failures.is_empty() && !force {
            return Err(ServiceError::PreflightFailed(Box::new(preflight)));
        }
        let mut preflight_detail = json!({
            "status": preflight.status,
            "warnings": preflight.warnings().iter().map(|c| c.line()).collect::<Vec<_>>(),
        });
        if !failures.is_empty() {
            preflight_detail["forced_past"] = json!(failures);
        }
        let backend = self.backend.in_region(plan.target.region.as_deref());
        // Refuse before recording anything when the function cannot be
        // read whole or the baseline cannot fit.
        // (AppConfig flags are not in the environment: the function is
        // only watched, so only its identity is read.)
        let read = match &plan.target.appconfig {
            None => backend.read_checking_fit(&function, &plan.flags).await,
            Some(_) => backend.read_identity(&function).await,
        };
        let observed = read.map_err(|e| start_refusal(&format!("function {function}"), e))?;
        // An appconfig rollout holds its profile in its environment, and
        // starts from the values served there; every phase's values must
        // fit the profile's flag definitions and constraints.
        let mut appconfig_identity = None;
        let mut observed = observed;
        if let Some(target) = &plan.target.appconfig {
            let appconfig = self.appconfig.in_region(plan.target.region.as_deref());
            let phases: Vec<&crate::plan::Flags> = std::iter::once(&plan.flags)
                .chain(plan.phases.iter().map(|p| &p.flags))
                .collect();
            let what = format!(
                "AppConfig profile {} in environment {} of application {}",
                target.profile, target.environment, target.application
            );
            let (ids, flags) = appconfig
                .check(target, &phases)
                .await
                .map_err(|e| start_refusal(&what, e))?;
            observed.flags = flags;
            appconfig_identity = Some(appconfig.identity(&ids));
        }
        // A lambda-alias rollout starts from what the alias serves; an alias
        // that does not exist or points at $LATEST is refused here.
        if let Some(alias) = &plan.target.alias {
            let (state, flags) = crate::backend::LambdaAliasBackend::new(backend.clone())
                .check(&function, alias, &plan.flags)
                .await
                .map_err(|e| start_refusal(&format!("alias {alias} of function {function}"), e))?;
            // Weights someone else set are another deployment under way
            // (CodeDeploy, a hand-made canary): never clobbered by a start.
            if !state.weights.is_empty() {
                return Err(ServiceError::Refused(Refusal::Busy(format!(
                    "alias {alias} of function {function} already splits its traffic ({}): another deployment may be under way; finish it or clear the weights first",
                    crate::backend::lambda_alias::describe(&state.routing())
                ))));
            }
            observed.flags = flags;
        }
        // One function, however the plan spells it (name, ARN, partial ARN).
        let function_arn = appconfig_identity
            .or_else(|| observed.function_arn.clone())
            .unwrap_or_else(|| function.clone());
        let function_name = observed
            .function_name
            .clone()
            .unwrap_or_else(|| function.clone());
        if let Some(holder) = self.store.active_rollout_for(&function_arn).await? {
            return Err(Refusal::function_busy(&function, &holder).into());
        }
        let now = Utc::now();
        let phase_name = plan.phase_name(0).to_string();
        let rollout = Rollout {
            id: RolloutId(0),
            plan_name: plan.name.clone(),
            plan_hash: plan::plan_hash(&text),
            plan_text: text,
            target_function: function.clone(),
            function_arn: function_arn.clone(),
            function_name,
            phases: phase_flags(&plan),
            rollback_to: plan.rollback,
            region: plan.target.region.clone(),
            webhooks: plan.webhooks.clone(),
            state: State::Pending,
            phase_index: 0,
            phase_name: phase_name.clone(),
            desired_flags: plan.flags.clone(),
            observed_flags: Some(observed.flags.clone()),
            observed_at: Some(now),
            generation: 1,
            applied_generation: 0,
            pending_write: Some(PendingWrite {
                generation: 1,
                command: WriteCause::Start,
                actor: who.actor().to_string(),
                expect_variables: observed.has_variables,
                reason: reason.clone(),
                recorded_at: now,
                target_state: Some(State::Active),
                previous_state: State::Pending,
                previous_phase: 0,
                previous_phase_name: phase_name.clone(),
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
            phase_stats: Default::default(),
            function_error: None,
            live_since: None,
            alias: plan.target.alias.clone(),
            routing: None,
            appconfig: plan.target.appconfig.clone(),
            delivery: None,
        };
        let entry = NewAuditEntry::new(who, Action::Start, Outcome::Accepted)
            .flags(Some(observed.flags.clone()), Some(plan.flags.clone()))
            .reason(reason)
            .detail(json!({
                "plan": rollout.plan_name,
                "plan_hash": rollout.plan_hash,
                "function": function,
                "function_arn": function_arn,
                "preflight": preflight_detail,
            }));
        let mut entry = entry;
        entry.phase = Some(phase_name);
        let stored = match self.store.insert_rollout(&rollout, vec![entry]).await {
            Ok(r) => r,
            Err(StoreError::FunctionBusy { .. }) => {
                return Err(match self.store.active_rollout_for(&function_arn).await? {
                    Some(holder) => Refusal::function_busy(&function, &holder).into(),
                    None => ServiceError::Refused(Refusal::Busy(format!(
                        "function {function} already has an active rollout"
                    ))),
                });
            }
            Err(e) => return Err(e.into()),
        };
        // The code seen at the start: a deploy before the first tick still
        // restarts the bake clock. (Best effort: the rollout is recorded.)
        let memory = WatchMemory {
            code_sha256: observed.code_sha256,
            ..WatchMemory::default()
        };
        if let Err(e) = self.store.put_watch_memory(stored.id, &memory, now).await {
            tracing::warn!(rollout = %stored.id, error = %e, "could not store the code hash seen at the start");
        }
        let done = self.converge(stored.id, who).await?;
        Ok(Started { done, preflight })
    }

    /// Carries out `command` for `who` as `ask` describes.
    pub async fn command(
        &self,
        who: &Principal,
        id: RolloutId,
        command: Command,
        ask: Ask,
    ) -> Result<Done, ServiceError> {
        let reason = text::reason(ask.reason)?;
        if matches!(command, Command::Rollback { .. } | Command::Abandon) && reason.is_none() {
            return Err(ServiceError::BadInput(format!(
                "a {} needs a reason",
                command.name()
            )));
        }
        let now = ask.at.unwrap_or_else(Utc::now);
        let current = self.rollout(id).await?;
        if let Some(v) = ask.expected_version
            && v != current.version
        {
            return Err(Refusal::VersionMismatch {
                id,
                expected: v,
                actual: current.version,
            }
            .into());
        }
        let transition =
            decide(current.position(), command, current.rollback_to).map_err(|why| {
                Refusal::Transition {
                    id,
                    command: command.name(),
                    why,
                }
            })?;
        if transition.write_flags && current.phases.is_empty() {
            // Never write made-up flags: a rollout from before phase flags
            // were kept, whose snapshot no longer parses, can only end.
            return Err(Refusal::Busy(format!(
                "rollout {id}'s phase flags are unknown (its plan snapshot no longer parses and it predates rollgate keeping them); abandon it and set the flags by hand"
            ))
            .into());
        }

        // Promotion needs a baked phase whose gates hold, unless forced,
        // and into a protected phase a second operator's approval.
        let mut forced_past = Vec::new();
        let mut approval = None;
        if command == Command::Advance {
            let plan = current.plan().map_err(|e| {
                ServiceError::Refused(Refusal::Busy(format!(
                    "{e}; only rollback and abandon are possible"
                )))
            })?;
            let blockers = readiness::promotion_blockers(
                &plan,
                current.phase_index,
                current.bake_started_at,
                now,
                current.readiness.as_ref(),
                self.config.freshness,
            );
            if !blockers.is_empty() {
                if !ask.force {
                    return Err(Refusal::NotReady {
                        id,
                        phase: current.phase_name.clone(),
                        blockers,
                    }
                    .into());
                }
                if reason.is_none() {
                    return Err(ServiceError::BadInput(
                        "forcing an advance past failing checks needs a reason".into(),
                    ));
                }
                forced_past = blockers;
            }
            if let Some(entering) = plan.phases.get(current.phase_index).filter(|p| p.protected) {
                approval = Some(self.granted_approval(&current).await?.ok_or_else(|| {
                    Refusal::NeedsApproval {
                        id,
                        phase: entering.name.clone(),
                    }
                })?);
            }
        }

        let next = next_rollout(&current, command, transition, who, &reason, now);
        let mut detail = json!({
            "from": { "state": current.state, "phase": current.phase_name },
            "to": { "state": next.state, "phase": next.phase_name },
        });
        if let Some(evidence) = ask.evidence.clone() {
            detail["evidence"] = evidence;
        }
        if let Some(a) = &approval {
            detail["approval"] =
                json!({ "id": a.id, "requested_by": a.requested_by, "approved_by": a.decided_by });
        }
        if !forced_past.is_empty() {
            detail["forced"] = json!(true);
            detail["forced_past"] = json!(forced_past);
        }
        let (before, after) = if command == Command::Abandon {
            // Nothing is written: record the flags as they stand.
            if let Some(w) = &current.pending_write
                && current.write_pending()
            {
                detail["abandoned_write"] = json!({ "generation": w.generation, "command": w.command, "flags": current.desired_flags });
            }
            (
                current.observed_flags.clone(),
                current.observed_flags.clone(),
            )
        } else {
            (
                Some(current.desired_flags.clone()),
                Some(next.desired_flags.clone()),
            )
        };
        let mut entry = NewAuditEntry::new(who, audit_action(command), Outcome::Accepted)
            .flags(before, after)
            .reason(reason.clone())
            .detail(detail);
        entry.phase = Some(next.phase_name.clone());
        let saved = self
            .store
            .save_rollout(&next, &current, vec![entry])
            .await
            .map_err(|e| match e {
                StoreError::VersionConflict { .. } => ServiceError::Refused(Refusal::Concurrent {
                    id,
                    command: command.name(),
                    version: current.version,
                }),
                StoreError::FunctionBusy { function } => ServiceError::Refused(Refusal::Busy(
                    format!("function {function} is held by another rollout"),
                )),
                other => other.into(),
            })?;
        if let Some(event) = ask.announce {
            self.announce(
                &saved,
                event,
                &format!(
                    "rollout #{} ({}): {} — {}",
                    saved.id,
                    saved.plan_name,
                    command.name(),
                    reason.as_deref().unwrap_or("")
                ),
                ask.evidence.unwrap_or(Value::Null),
            );
        }
        if transition.cancel_write || transition.write_flags {
            // Stop a write of an older generation at once.
            self.supersede(id, saved.generation, transition.cancel_write);
        }
        if transition.write_flags {
            self.converge(id, who).await
        } else {
            Ok(Done {
                rollout: saved,
                write_pending: None,
            })
        }
    }

    /// Sends `text` to the plan's webhooks as `event` (never blocks).
    fn announce(&self, r: &Rollout, event: &str, text: &str, detail: Value) {
        if r.webhooks.is_empty() {
            return;
        }
        self.notifier.send(
            &r.webhooks,
            payload(
                event,
                r.id.0,
                &r.plan_name,
                &r.target_function,
                text,
                detail,
            ),
        );
    }
}

/// Why a start cannot read `what`: refused (422) or AWS unavailable (503).
fn start_refusal(what: &str, e: ApplyError) -> ServiceError {
    match e {
        ApplyError::Rejected(m) | ApplyError::Unreadable(m) => {
            ServiceError::Unprocessable(format!("cannot start on {what}: {m}"))
        }
        e => ServiceError::Unavailable(format!("cannot read {what}: {e}")),
    }
}

/// The audit action of a command.
fn audit_action(command: Command) -> Action {
    match command {
        Command::Advance => Action::Advance,
        Command::Pause => Action::Pause,
        Command::Resume => Action::Resume,
        Command::Rollback { .. } => Action::Rollback,
        Command::Abandon => Action::Abandon,
    }
}

/// The rollout after `transition`: its new position, a fresh bake clock and
/// readiness in a new phase (the phase left by an advance keeps its
/// statistics), and the intent of its write.
fn next_rollout(
    current: &Rollout,
    command: Command,
    transition: crate::rollout::Transition,
    who: &Principal,
    reason: &Option<String>,
    now: DateTime<Utc>,
) -> Rollout {
    let mut next = current.clone();
    next.state = transition.state;
    next.phase_index = transition.phase;
    next.phase_name = current.phase_name_at(transition.phase).to_string();
    if transition.phase != current.phase_index {
        next.bake_started_at = Some(now);
        next.readiness = None;
        if command == Command::Advance
            && let Some(r) = current
                .readiness
                .as_ref()
                .filter(|r| r.phase == current.phase_name)
        {
            next.phase_stats.record(&current.phase_name, &r.observed);
        }
    }
    if let Some(cause) = WriteCause::of(command).filter(|_| transition.write_flags) {
        next.desired_flags = current.flags_at(transition.phase).clone();
        next.generation += 1;
        next.pending_write = Some(PendingWrite {
            generation: next.generation,
            command: cause,
            expect_variables: current.expects_variables(),
            actor: who.actor().to_string(),
            reason: reason.clone(),
            recorded_at: now,
            target_state: Some(transition.state),
            previous_state: current.state,
            previous_phase: current.phase_index,
            previous_phase_name: current.phase_name.clone(),
            previous_flags: current.desired_flags.clone(),
        });
    }
    if transition.cancel_write {
        next.pending_write = None;
        next.applied_generation = next.generation;
        next.last_error = None;
    }
    next
}

//! Flag writes: converging a function to its rollout's desired flags, one
//! write per function at a time, recording each outcome (pure
//! `rollout::write`), stopping a write the moment a newer command replaces
//! it, and finishing recorded writes after a crash or an outage.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Done, Service, ServiceError};
use crate::audit::NewAuditEntry;
use crate::domain::{Action, Outcome, Principal, RolloutId};
use crate::rollout::write::{Alert, after_write};
use crate::rollout::{Rollout, WriteCause};
use crate::store::StoreError;

/// How often a running write checks the database for a newer command from
/// another process (one in this process stops it at once).
const SUPERSEDE_POLL: Duration = Duration::from_millis(300);

impl Service {
    /// Finishes every recorded but unconfirmed write: at start-up (after a
    /// crash) and periodically (after AWS was unavailable, or while a
    /// refused rollback waits for its cause to be fixed). Returns how many
    /// writes were pending.
    ///
    /// Writes recorded less than `min_age` ago are left to the command that
    /// recorded them (in this or another process), so two processes do not
    /// race to make the same write; start-up recovery passes zero.
    pub async fn reconcile(
        &self,
        who: &Principal,
        min_age: std::time::Duration,
    ) -> Result<usize, ServiceError> {
        if let Err(e) = self.resolve_identities().await {
            tracing::warn!(error = %e, "resolving function identities");
        }
        let ids = self.store.rollouts_with_pending_writes().await?;
        let min_age = chrono::TimeDelta::from_std(min_age).unwrap_or(chrono::TimeDelta::MAX);
        for &id in &ids {
            // Being written by this process right now.
            if self
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains_key(&id)
            {
                continue;
            }
            // A time ahead of this clock (another process's, skewed) is
            // not trusted to be recent.
            let recent = self.store.get_rollout(id).await?.is_some_and(|r| {
                r.pending_write.as_ref().is_some_and(|w| {
                    let age = Utc::now() - w.recorded_at;
                    age >= chrono::TimeDelta::zero() && age < min_age
                })
            });
            if recent {
                continue;
            }
            if let Err(e) = self.converge(id, who).await {
                tracing::warn!(rollout = %id, error = %e, "could not finish a pending flag write");
            }
        }
        Ok(ids.len())
    }

    /// Writes the rollout's desired flags until the confirmed generation
    /// catches up with the desired one, recording each outcome. A caller
    /// converges the generation it found; when a newer command replaces it,
    /// that command's own caller (or the reconciler) writes the newer one.
    pub(super) async fn converge(
        &self,
        id: RolloutId,
        who: &Principal,
    ) -> Result<Done, ServiceError> {
        let first = self.rollout(id).await?;
        let lock = self.function_lock(&first.function_arn);
        let _guard = lock.lock().await;
        let mut mine = first.generation;
        let following = std::time::Instant::now();
        let mut verify_newest = false;
        loop {
            let current = self.rollout(id).await?;
            if std::mem::take(&mut verify_newest) && !current.write_pending() {
                // A write of ours landed after the rollout moved on and its
                // newest flags were already confirmed (by another process):
                // ours may have overwritten them, so they are written again.
                // (Newest flags still pending are written after ours by
                // their own write, which reads afresh.)
                self.rewrite_newest(&current, who).await?;
            }
            let newer = current.generation > mine && *who != Principal::Reconciler;
            if newer || !current.write_pending() {
                let write_pending = current
                    .write_pending()
                    .then(|| "superseded by a newer command, whose write follows".to_string());
                return Ok(Done {
                    rollout: current,
                    write_pending,
                });
            }
            let result = self.run_write(&current, true).await;
            let now = Utc::now();
            let written = after_write(&current, &result, now);
            // An AppConfig deployment under way is followed for a while
            // (each new state stored as it comes), then left to the
            // reconciler.
            // (Not by the reconciler: one deployment followed must not hold
            // up the other rollouts' pending writes.)
            let follow = written.outcome == Outcome::Deploying
                && *who != Principal::Reconciler
                && following.elapsed() < self.appconfig.follow_for();
            let (retries, landed) = match &result {
                Ok(r) => (r.attempts.saturating_sub(1), true),
                Err(crate::backend::ApplyError::Unavailable { attempts, .. }) => (*attempts, false),
                Err(_) => (0, false),
            };
            // A deployment looked at again is not another write.
            if written.record || written.outcome != Outcome::Deploying {
                self.telemetry
                    .count_write(written.outcome.as_str(), retries);
            }
            let mut detail = written.detail.clone();
            if *who == Principal::Reconciler {
                // Finished by the reconciler for whoever asked (after a
                // crash, an outage, or while a refusal persists).
                detail["recovered"] = json!(true);
                detail["asked_by"] = json!(current.pending_write.as_ref().map(|w| &w.actor));
            }
            let mut entry = NewAuditEntry::new(who, Action::FlagsWrite, written.outcome)
                .flags(written.flags_before.clone(), written.flags_after.clone())
                .detail(detail);
            entry.phase = Some(current.phase_name.clone());
            if written.outcome == Outcome::Superseded {
                entry.rollout_id = Some(id);
                self.store.append_audit(vec![entry]).await?;
                continue;
            }
            if !written.record {
                if follow {
                    tokio::time::sleep(self.appconfig.follow_every()).await;
                    continue;
                }
                return Ok(Done {
                    rollout: current,
                    write_pending: written.pending,
                });
            }
            match self
                .store
                .save_rollout(&written.next, &current, vec![entry.clone()])
                .await
            {
                Ok(saved) => {
                    if let Some(alert) = &written.alert {
                        self.alert(&saved, alert);
                    }
                    if saved.generation > current.generation {
                        // The outcome recorded a write of its own (AppConfig
                        // rolled back by itself: rollgate's rollback follows
                        // at once, under this lock).
                        mine = saved.generation;
                        continue;
                    }
                    if let Some(message) = written.refused {
                        return Err(ServiceError::Unprocessable(message));
                    }
                    if follow {
                        tokio::time::sleep(self.appconfig.follow_every()).await;
                        continue;
                    }
                    if written.pending.is_some() {
                        return Ok(Done {
                            rollout: saved,
                            write_pending: written.pending,
                        });
                    }
                }
                Err(StoreError::VersionConflict { .. }) => {
                    // A command changed the rollout meanwhile. The write did
                    // happen (or was tried): record it, then look again.
                    entry.rollout_id = Some(id);
                    if let Some(d) = entry.detail.as_mut() {
                        d["superseded"] = json!(true);
                    }
                    self.store.append_audit(vec![entry]).await?;
                    verify_newest = landed;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Runs the backend write of `current`'s desired flags, stoppable by a
    /// newer command of this process at once and of another within
    /// `SUPERSEDE_POLL`.
    /// `pending`: the write makes a recorded intent (it stops when that is
    /// confirmed or abandoned elsewhere); otherwise it re-asserts confirmed
    /// flags and stops only for a newer generation.
    async fn run_write(
        &self,
        current: &Rollout,
        pending: bool,
    ) -> Result<crate::backend::WriteReport, crate::backend::ApplyError> {
        let token = self.begin_write(current.id, current.generation);
        let done = CancellationToken::new();
        let poll = {
            let store = self.store.clone();
            let (token, done, id, generation) =
                (token.clone(), done.clone(), current.id, current.generation);
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = done.cancelled() => return,
                        _ = tokio::time::sleep(SUPERSEDE_POLL) => {}
                    }
                    // A newer command, or this generation confirmed or
                    // abandoned elsewhere: this write is not wanted any more.
                    // When that cannot be told (the database does not
                    // answer), stop too: the intent stays recorded and the
                    // reconciler finishes it.
                    let wanted = matches!(
                        store.get_rollout(id).await,
                        Ok(Some(now)) if now.generation == generation && (now.write_pending() || !pending)
                    );
                    if !wanted {
                        token.cancel();
                        return;
                    }
                }
            })
        };
        let region = current.write_region();
        let expect_variables = current.expects_variables();
        let backend = self.backend.in_region(region.as_deref());
        let result = match (&current.alias, &current.appconfig) {
            (_, Some(target)) => {
                use crate::backend::appconfig::{Ask, Urgency};
                let cause = current.pending_write.as_ref().map(|w| w.command);
                let urgency = match cause {
                    Some(WriteCause::Rollback | WriteCause::DriftRevert) => Urgency::Urgent,
                    _ => Urgency::Forward,
                };
                let ask = Ask {
                    target,
                    desired: &current.desired_flags,
                    urgency,
                    generation: current.generation,
                    known: current.delivery.as_ref(),
                    since: current.pending_write.as_ref().map(|w| w.recorded_at),
                    description: format!(
                        "rollgate rollout {} ({}), {} to {}, generation {}",
                        current.id,
                        current.plan_name,
                        cause.map_or("converge", |c| c.as_str()),
                        current.phase_name,
                        current.generation
                    ),
                };
                self.appconfig
                    .in_region(current.write_region().as_deref())
                    .apply(&ask, &token)
                    .await
            }
            (None, None) => {
                backend
                    .apply(
                        &current.target_function,
                        &current.desired_flags,
                        expect_variables,
                        &token,
                    )
                    .await
            }
            (Some(alias), None) => {
                crate::backend::LambdaAliasBackend::new(backend)
                    .apply(
                        &current.target_function,
                        alias,
                        current.desired(),
                        &current.version_hints(),
                        expect_variables,
                        &token,
                    )
                    .await
            }
        };
        done.cancel();
        let _ = poll.await;
        self.end_write(current.id, current.generation);
        result
    }

    /// Writes the newest desired flags again (idempotent) after a
    /// superseded write landed late; records it only if it changed anything.
    /// Never for an abandoned rollout (nothing more is written for it) or a
    /// function another rollout holds now.
    async fn rewrite_newest(&self, current: &Rollout, who: &Principal) -> Result<(), ServiceError> {
        if current.state == crate::rollout::State::Abandoned {
            return Ok(());
        }
        if let Some(holder) = self.store.active_rollout_for(&current.function_arn).await?
            && holder.id != current.id
        {
            return Ok(());
        }
        let result = self.run_write(current, false).await;
        if let Ok(report) = &result
            && report.wrote
        {
            let mut entry = NewAuditEntry::new(who, Action::FlagsWrite, Outcome::Applied)
                .flags(Some(report.before.clone()), Some(report.after.clone()))
                .detail(json!({
                    "command": "converge",
                    "generation": current.generation,
                    "why": "an older write landed after this generation was confirmed; the newest flags were written again",
                }));
            entry.rollout_id = Some(current.id);
            entry.phase = Some(current.phase_name.clone());
            self.store.append_audit(vec![entry]).await?;
        }
        Ok(())
    }

    /// Tells the plan's webhooks what a write's result needs them to know.
    fn alert(&self, r: &Rollout, alert: &Alert) {
        let (event, what) = match alert {
            Alert::RollbackFailed(m) => (
                "rollback_failed",
                format!(
                    "AWS refused the rollback ({m}); the rollout is failed and rollgate keeps retrying"
                ),
            ),
            Alert::EnvironmentUnreadable(m) => (
                "environment_unreadable",
                format!("{m}; the write waits until the environment can be read"),
            ),
            Alert::RolledBackByAppConfig(m) => (
                "appconfig_rolled_back",
                format!("{m}; rollgate rolls the rollout back"),
            ),
        };
        tracing::warn!(rollout = %r.id, event, "{what}");
        self.announce(
            r,
            event,
            &format!("rollout #{} ({}): {what}", r.id, r.plan_name),
            json!({ "error": r.last_error }),
        );
    }

    /// Registers the write of `generation` and returns its stop token
    /// (already stopped if a newer generation is running).
    fn begin_write(&self, id: RolloutId, generation: i64) -> CancellationToken {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let token = CancellationToken::new();
        match running.get(&id) {
            Some((g, _)) if *g > generation => token.cancel(),
            Some((_, old)) => {
                old.cancel();
                running.insert(id, (generation, token.clone()));
            }
            None => {
                running.insert(id, (generation, token.clone()));
            }
        }
        token
    }

    fn end_write(&self, id: RolloutId, generation: i64) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(&id).is_some_and(|(g, _)| *g == generation) {
            running.remove(&id);
        }
    }

    /// Stops a running write older than `newest` (or any, when `all`).
    pub(super) fn supersede(&self, id: RolloutId, newest: i64, all: bool) {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, token)) = running.get(&id)
            && (all || *g < newest)
        {
            token.cancel();
        }
    }

    fn function_lock(&self, function: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .function_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        locks.entry(function.to_string()).or_default().clone()
    }
}

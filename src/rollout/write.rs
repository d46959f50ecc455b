//! What a flag write's result does to a rollout, as a pure function: the
//! rollout to store, the audit entry, whether anyone must be alerted, and
//! what the caller is told. The service runs the write and stores this.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Rollout, State, WriteCause};
use crate::backend::{ApplyError, WriteReport};
use crate::domain::Outcome;
use crate::plan::Flags;

/// Who must hear about a write's result, beyond the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// A rollback was refused by AWS; rollgate keeps retrying it.
    RollbackFailed(String),
    /// The function's environment cannot be read whole; nothing is written
    /// until it can.
    EnvironmentUnreadable(String),
    /// AppConfig rolled a deployment back by itself (or someone stopped
    /// it): rollgate rolls the rollout back too.
    RolledBackByAppConfig(String),
}

/// The result of `after_write`.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The rollout to store.
    pub next: Rollout,
    pub outcome: Outcome,
    pub flags_before: Option<Flags>,
    pub flags_after: Option<Flags>,
    pub detail: Value,
    /// False when nothing new happened (the same failure again): store and
    /// record nothing.
    pub record: bool,
    pub alert: Option<Alert>,
    /// The write was refused: the caller's error message.
    pub refused: Option<String>,
    /// The write is still pending: why (the caller answers 202).
    pub pending: Option<String>,
}

/// What `result` (a write of `current`'s desired flags) does to `current`.
/// `Superseded` is not handled here: the write was abandoned for a newer one.
pub fn after_write(
    current: &Rollout,
    result: &Result<WriteReport, ApplyError>,
    now: DateTime<Utc>,
) -> Written {
    let intent = current.pending_write.as_ref();
    let command = intent.map_or("converge", |i| i.command.as_str());
    let cause = intent.map(|i| i.command);
    let mut next = current.clone();
    let base = json!({ "command": command, "generation": current.generation });
    let with = |extra: Value| {
        let mut d = base.clone();
        if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(extra.clone());
        }
        d
    };
    let unchanged_error = |message: &str| current.last_error.as_deref() == Some(message);
    match result {
        Ok(report) => {
            // Flags that changed, or a command's intent now confirmed, are
            // live from now (later is safe: older data is never judged).
            if report.wrote || intent.is_some() {
                // AppConfig: once the deployment is complete and the
                // extension has polled (`Delivery::live_at`).
                let live = report
                    .delivery
                    .as_ref()
                    .and_then(|d| d.live_at())
                    .map_or(now, |at| at.max(now));
                next.live_since = Some(live);
                // A phase delivered by AppConfig bakes from then on.
                if report.delivery.is_some()
                    && matches!(cause, Some(WriteCause::Advance | WriteCause::Start))
                {
                    next.bake_started_at = Some(live);
                }
            }
            if let Some(d) = &report.delivery {
                next.delivery = Some(d.clone());
            }
            next.applied_generation = current.generation;
            next.pending_write = None;
            next.observed_flags = Some(report.after.clone());
            next.observed_at = Some(now);
            if let Some(routing) = &report.routing {
                next.routing = Some(current.routing_after(routing));
            }
            next.last_error = None;
            next.state = match (current.state, intent.and_then(|i| i.target_state)) {
                (State::Pending, _) => State::Active,
                // A rollback refused for a while has landed at last.
                (State::Failed, Some(target)) if cause == Some(WriteCause::Rollback) => target,
                (state, _) => state,
            };
            Written {
                next,
                outcome: if report.wrote {
                    Outcome::Applied
                } else {
                    Outcome::AlreadyInPlace
                },
                flags_before: Some(report.before.clone()),
                flags_after: Some(report.after.clone()),
                detail: with(json!({
                    "attempts": report.attempts,
                    "retried_because": report.retried_because,
                    "revision_id": report.revision_id,
                    "note": report.note,
                    "routing": report.routing,
                    "steps": report.steps,
                    "appconfig": report.delivery,
                })),
                record: true,
                alert: None,
                refused: None,
                pending: None,
            }
        }
        Err(ApplyError::Rejected(message)) if cause == Some(WriteCause::Rollback) => {
            // A rollback is never given up: the rollout is failed, the
            // intent stays, and the reconciler retries until it lands.
            next.state = State::Failed;
            next.last_error = Some(message.clone());
            let first = !unchanged_error(message) || current.state != State::Failed;
            Written {
                next,
                outcome: Outcome::Rejected,
                flags_before: None,
                flags_after: Some(current.desired_flags.clone()),
                detail: with(
                    json!({ "error": message, "command_undone": false, "retrying": true }),
                ),
                record: first,
                alert: first.then(|| Alert::RollbackFailed(message.clone())),
                refused: Some(format!(
                    "the rollback's flag write was refused: {message}; the rollout is failed and rollgate keeps retrying the rollback"
                )),
                pending: None,
            }
        }
        Err(ApplyError::Rejected(message)) => {
            // Nothing was written: undo the command, except a start, which
            // leaves the rollout failed (roll it back or abandon it).
            next.applied_generation = current.generation;
            next.pending_write = None;
            next.last_error = Some(message.clone());
            let undone = match intent {
                Some(i) if i.command != WriteCause::Start => {
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
            Written {
                next,
                outcome: Outcome::Rejected,
                flags_before: None,
                flags_after: Some(current.desired_flags.clone()),
                detail: with(json!({ "error": message, "command_undone": undone })),
                record: true,
                alert: None,
                refused: Some(format!(
                    "the flag write was refused: {message}; {}",
                    if undone {
                        format!("the {command} was undone")
                    } else {
                        "the rollout is marked failed".to_string()
                    }
                )),
                pending: None,
            }
        }
        Err(ApplyError::Unreadable(message)) => {
            next.last_error = Some(message.clone());
            let first = !unchanged_error(message);
            Written {
                next,
                outcome: Outcome::Blocked,
                flags_before: None,
                flags_after: Some(current.desired_flags.clone()),
                detail: with(json!({ "error": message })),
                record: first,
                alert: first.then(|| Alert::EnvironmentUnreadable(message.clone())),
                refused: None,
                pending: Some(message.clone()),
            }
        }
        Err(e @ ApplyError::Unavailable { .. }) => {
            let message = e.to_string();
            next.last_error = Some(message.clone());
            Written {
                next,
                outcome: Outcome::Retrying,
                flags_before: None,
                flags_after: Some(current.desired_flags.clone()),
                detail: with(json!({ "error": message })),
                // Already recorded: no entry per retry round.
                record: !unchanged_error(&message),
                alert: None,
                refused: None,
                pending: Some(message),
            }
        }
        Err(ApplyError::Deploying(deploying)) => {
            // Recorded at each new state or percentage: the audit log
            // follows the deployment.
            let d = &deploying.delivery;
            let changed = current.delivery.as_ref().is_none_or(|k| {
                (k.generation, k.deployment, k.state.as_str())
                    != (d.generation, d.deployment, d.state.as_str())
                    || k.percentage != d.percentage
            });
            next.delivery = Some(d.clone());
            next.last_error = None;
            Written {
                next,
                outcome: Outcome::Deploying,
                flags_before: None,
                flags_after: Some(current.desired_flags.clone()),
                detail: with(json!({
                    "appconfig": d,
                    "steps": deploying.steps,
                    "retried_because": deploying.retried_because,
                })),
                record: changed,
                alert: None,
                refused: None,
                pending: Some(d.describe()),
            }
        }
        Err(ApplyError::RolledBackByAppConfig(d)) => {
            rolled_back_by_appconfig(current, d, now, with)
        }
        Err(ApplyError::Superseded) => Written {
            next,
            outcome: Outcome::Superseded,
            flags_before: None,
            flags_after: Some(current.desired_flags.clone()),
            detail: with(json!({
                "why": "a newer command replaced this write before it was confirmed",
            })),
            record: true,
            alert: None,
            refused: None,
            pending: None,
        },
    }
}

/// AppConfig rolled a step forward back by itself (its alarm monitors), or
/// someone stopped it: the environment serves what it served before. The
/// rollout is rolled back as after a breached guardrail: to the plan's
/// rollback target, with a rollback write recorded to follow at once (a
/// no-op when AppConfig already went back there). A start rolled back
/// leaves the rollout failed.
fn rolled_back_by_appconfig(
    current: &Rollout,
    d: &crate::backend::Delivery,
    now: DateTime<Utc>,
    with: impl Fn(Value) -> Value,
) -> Written {
    let message = format!(
        "{}; the environment serves what it served before",
        d.describe()
    );
    let mut next = current.clone();
    next.delivery = Some(d.clone());
    next.last_error = Some(message.clone());
    let intent = current.pending_write.as_ref();
    let rolled_back_to = match intent {
        Some(i) if i.command != WriteCause::Start => {
            let to = match current.rollback_to {
                crate::plan::RollbackTarget::Baseline => 0,
                crate::plan::RollbackTarget::Previous => i.previous_phase,
            };
            next.state = State::RolledBack;
            next.phase_index = to;
            next.phase_name = current.phase_name_at(to).to_string();
            next.desired_flags = current.flags_at(to).clone();
            next.generation += 1;
            next.readiness = None;
            next.bake_started_at = Some(now);
            next.pending_write = Some(super::PendingWrite {
                generation: next.generation,
                command: WriteCause::Rollback,
                actor: "appconfig".into(),
                reason: Some(message.clone()),
                recorded_at: now,
                target_state: Some(State::RolledBack),
                previous_state: i.previous_state,
                previous_phase: i.previous_phase,
                previous_phase_name: i.previous_phase_name.clone(),
                previous_flags: i.previous_flags.clone(),
                expect_variables: i.expect_variables,
            });
            Some(next.phase_name.clone())
        }
        _ => {
            next.applied_generation = current.generation;
            next.pending_write = None;
            next.state = State::Failed;
            None
        }
    };
    Written {
        outcome: Outcome::RolledBackByAppconfig,
        flags_before: None,
        flags_after: Some(next.desired_flags.clone()),
        detail: with(json!({
            "appconfig": d,
            "rolled_back_by": d.rolled_back_by,
            "rolled_back_to": rolled_back_to,
        })),
        record: true,
        alert: Some(Alert::RolledBackByAppConfig(message.clone())),
        refused: Some(match &rolled_back_to {
            Some(to) => format!("{message}; rollgate rolls the rollout back to {to}"),
            None => format!("{message}; the rollout is marked failed"),
        }),
        pending: None,
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PhaseStats, RolloutId};
    use crate::plan::RollbackTarget;
    use crate::rollout::{PendingWrite, PhaseFlags};

    fn flags(v: &str) -> Flags {
        [("F".to_string(), v.to_string())].into()
    }

    fn rollout(command: WriteCause, state: State, target: Option<State>) -> Rollout {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        Rollout {
            id: RolloutId(1),
            plan_name: "p".into(),
            plan_hash: "h".into(),
            plan_text: String::new(),
            target_function: "f".into(),
            function_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            function_name: "f".into(),
            phases: vec![
                PhaseFlags {
                    name: "baseline".into(),
                    flags: flags("off"),
                    traffic: None,
                    stable: None,
                },
                PhaseFlags {
                    name: "on".into(),
                    flags: flags("on"),
                    traffic: None,
                    stable: None,
                },
            ],
            rollback_to: RollbackTarget::Baseline,
            region: None,
            webhooks: Vec::new(),
            state,
            phase_index: 1,
            phase_name: "on".into(),
            desired_flags: flags("on"),
            observed_flags: None,
            observed_at: None,
            generation: 3,
            applied_generation: 2,
            pending_write: Some(PendingWrite {
                generation: 3,
                command,
                actor: "alice".into(),
                expect_variables: false,
                reason: None,
                recorded_at: now,
                target_state: target,
                previous_state: State::Active,
                previous_phase: 0,
                previous_phase_name: "baseline".into(),
                previous_flags: flags("off"),
            }),
            last_error: None,
            version: 5,
            created_at: now,
            updated_at: now,
            baseline: None,
            baseline_at: None,
            bake_started_at: None,
            readiness: None,
            phase_stats: PhaseStats::default(),
            function_error: None,
            live_since: None,
            alias: None,
            routing: None,
            appconfig: None,
            delivery: None,
        }
    }

    fn report(wrote: bool) -> WriteReport {
        WriteReport {
            before: flags("off"),
            after: flags("on"),
            wrote,
            attempts: 1,
            retried_because: vec![],
            revision_id: None,
            note: None,
            routing: None,
            steps: vec![],
            delivery: None,
        }
    }

    const NOW: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

    #[test]
    fn a_confirmed_write_clears_the_intent() {
        let w = after_write(
            &rollout(WriteCause::Advance, State::Active, Some(State::Active)),
            &Ok(report(true)),
            NOW,
        );
        assert_eq!(w.outcome, Outcome::Applied);
        assert_eq!(w.next.applied_generation, 3);
        assert_eq!(w.next.pending_write, None);
        assert_eq!(w.next.observed_flags, Some(flags("on")));
        let w = after_write(
            &rollout(WriteCause::Start, State::Pending, None),
            &Ok(report(false)),
            NOW,
        );
        assert_eq!(
            (w.outcome, w.next.state),
            (Outcome::AlreadyInPlace, State::Active)
        );
        // A rollback that was refused for a while lands: its target state.
        let w = after_write(
            &rollout(WriteCause::Rollback, State::Failed, Some(State::RolledBack)),
            &Ok(report(true)),
            NOW,
        );
        assert_eq!(w.next.state, State::RolledBack);
    }

    fn delivery(state: &str) -> crate::backend::Delivery {
        crate::backend::Delivery {
            generation: 3,
            application_id: "a".into(),
            environment_id: "e".into(),
            profile_id: "p".into(),
            version: 7,
            deployment: 4,
            strategy: "AppConfig.Linear50PercentEvery30Seconds".into(),
            state: state.into(),
            percentage: 50.0,
            started_at: Some(NOW),
            completed_at: None,
            poll_interval_secs: 45,
            rolled_back_by: None,
            rollback_reason: None,
        }
    }

    fn deploying(state: &str) -> crate::backend::appconfig::Deploying {
        crate::backend::appconfig::Deploying {
            delivery: delivery(state),
            steps: vec!["started deployment 4 of version 7".into()],
            retried_because: vec![],
        }
    }

    #[test]
    fn an_appconfig_deployment_is_followed_and_live_one_poll_after_it_completes() {
        let r = rollout(WriteCause::Advance, State::Active, Some(State::Active));
        let w = after_write(
            &r,
            &Err(ApplyError::Deploying(Box::new(deploying("DEPLOYING")))),
            NOW,
        );
        assert_eq!(w.outcome, Outcome::Deploying);
        assert!(w.record && w.next.write_pending());
        assert!(w.pending.unwrap().contains("DEPLOYING 50 %"));
        assert_eq!(w.next.delivery.as_ref().map(|d| d.deployment), Some(4));
        // The same state and percentage again: nothing new to record.
        let again = after_write(
            &w.next,
            &Err(ApplyError::Deploying(Box::new(deploying("DEPLOYING")))),
            NOW,
        );
        assert!(!again.record);
        let baking = after_write(
            &w.next,
            &Err(ApplyError::Deploying(Box::new(deploying("BAKING")))),
            NOW,
        );
        assert!(baking.record);

        let mut done = delivery("COMPLETE");
        let completed = NOW + chrono::TimeDelta::seconds(90);
        done.completed_at = Some(completed);
        let mut report = report(true);
        report.delivery = Some(done);
        let w = after_write(&w.next, &Ok(report), NOW + chrono::TimeDelta::seconds(91));
        assert!(!w.next.write_pending());
        let live = completed + chrono::TimeDelta::seconds(45);
        assert_eq!(w.next.live_since, Some(live));
        assert_eq!(
            w.next.bake_started_at,
            Some(live),
            "the bake starts when the flags are live"
        );
        assert_eq!(w.detail["appconfig"]["deployment"], 4);
        assert_eq!(w.detail["appconfig"]["version"], 7);
    }

    #[test]
    fn a_step_appconfig_rolled_back_rolls_the_rollout_back_with_a_write_to_follow() {
        let r = rollout(WriteCause::Advance, State::Active, Some(State::Active));
        let mut d = delivery("ROLLED_BACK");
        d.rolled_back_by = Some("CLOUDWATCH_ALARM".into());
        let w = after_write(
            &r,
            &Err(ApplyError::RolledBackByAppConfig(Box::new(d.clone()))),
            NOW,
        );
        assert_eq!(w.outcome, Outcome::RolledBackByAppconfig);
        assert_eq!((w.next.state, w.next.phase_index), (State::RolledBack, 0));
        assert_eq!(w.next.desired_flags, flags("off"));
        assert_eq!(w.next.generation, r.generation + 1);
        let intent = w.next.pending_write.as_ref().unwrap();
        assert_eq!(intent.command, WriteCause::Rollback);
        assert!(
            intent
                .reason
                .as_deref()
                .unwrap()
                .contains("CLOUDWATCH_ALARM")
        );
        assert!(
            matches!(&w.alert, Some(Alert::RolledBackByAppConfig(m)) if m.contains("deployment 4"))
        );
        // A start AppConfig rolled back leaves the rollout failed.
        let s = rollout(WriteCause::Start, State::Pending, Some(State::Active));
        let w = after_write(
            &s,
            &Err(ApplyError::RolledBackByAppConfig(Box::new(d))),
            NOW,
        );
        assert_eq!(w.next.state, State::Failed);
        assert!(!w.next.write_pending());
    }

    #[test]
    fn a_refused_advance_is_undone_and_a_refused_rollback_keeps_retrying() {
        let refused = Err(ApplyError::Rejected("AccessDeniedException: no".into()));
        let w = after_write(
            &rollout(WriteCause::Advance, State::Active, Some(State::Active)),
            &refused,
            NOW,
        );
        assert_eq!((w.next.state, w.next.phase_index), (State::Active, 0));
        assert_eq!(w.next.desired_flags, flags("off"));
        assert!(!w.next.write_pending());
        assert!(w.refused.unwrap().contains("the advance was undone"));
        assert_eq!(w.alert, None);

        let mut r = rollout(
            WriteCause::Rollback,
            State::RolledBack,
            Some(State::RolledBack),
        );
        let w = after_write(&r, &refused, NOW);
        assert_eq!(w.next.state, State::Failed);
        assert!(w.next.write_pending(), "the rollback stays pending");
        assert!(w.next.holds_function());
        assert_eq!(
            w.alert,
            Some(Alert::RollbackFailed("AccessDeniedException: no".into()))
        );
        assert!(w.record);
        // The same refusal again: nothing new to record or announce.
        r = w.next;
        let again = after_write(&r, &refused, NOW);
        assert!(!again.record);
        assert_eq!(again.alert, None);
    }

    #[test]
    fn an_unreadable_environment_blocks_the_write_and_alerts_once() {
        let blocked = Err(ApplyError::Unreadable(
            "KMSAccessDeniedException: denied".into(),
        ));
        let r = rollout(
            WriteCause::Rollback,
            State::RolledBack,
            Some(State::RolledBack),
        );
        let w = after_write(&r, &blocked, NOW);
        assert_eq!(w.outcome, Outcome::Blocked);
        assert_eq!(w.next.state, State::RolledBack);
        assert!(w.next.write_pending());
        assert!(w.pending.is_some() && w.refused.is_none());
        assert!(matches!(w.alert, Some(Alert::EnvironmentUnreadable(_))));
        let again = after_write(&w.next, &blocked, NOW);
        assert!(!again.record && again.alert.is_none());
    }

    #[test]
    fn a_start_on_a_function_with_variables_never_takes_a_missing_environment_for_an_empty_one() {
        let mut r = rollout(WriteCause::Start, State::Pending, Some(State::Active));
        r.applied_generation = 0;
        r.observed_flags = Some(Flags::new()); // none of the owned flags yet
        assert!(!r.expects_variables());
        if let Some(w) = r.pending_write.as_mut() {
            w.expect_variables = true; // the start's read saw other variables
        }
        assert!(r.expects_variables());
    }

    #[test]
    fn writes_go_to_the_region_of_the_functions_arn() {
        let mut r = rollout(WriteCause::Advance, State::Active, Some(State::Active));
        r.function_arn = "arn:aws:lambda:eu-west-1:1:function:f".into();
        r.region = Some("us-east-1".into());
        assert_eq!(r.write_region().as_deref(), Some("eu-west-1"));
        r.function_arn = "f".into(); // not resolved: the plan's region
        assert_eq!(r.write_region().as_deref(), Some("us-east-1"));
    }

    #[test]
    fn unavailability_is_recorded_once_per_distinct_error() {
        let down = Err(ApplyError::Unavailable {
            attempts: 3,
            last: "throttled".into(),
        });
        let r = rollout(WriteCause::Advance, State::Active, Some(State::Active));
        let w = after_write(&r, &down, NOW);
        assert!(w.record && w.next.write_pending());
        assert!(!after_write(&w.next, &down, NOW).record);
    }
}

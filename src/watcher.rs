//! The watcher: each tick fetches the guardrail metrics of every watched
//! rollout in as few GetMetricData calls as possible, holds them to the
//! plan's thresholds (pure `metrics::eval`), and hands decisions to the
//! engine — a rollback, a pause, or an observation in the audit log, each
//! with the numbers behind it. It also records each rollout's baseline.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::metrics::cloudwatch::CloudWatch;
use crate::metrics::eval::{self, Evaluation, Observation, References, Verdict};
use crate::metrics::queries::{self, Series};
use crate::notify::{Notifier, payload};
use crate::plan::{
    Approval, DriftPolicy, Guardrail, GuardrailAction, GuardrailKind, InsufficientData, MetricRef,
    NoDataPolicy, Phase, Plan,
};
use crate::rollout::engine::{Ask, Engine, snapshot_plan};
use crate::rollout::{Command, Rollout, State};
use crate::store::NewAuditEntry;

/// The actor the watcher's commands and entries are recorded under.
pub const WATCHER_ACTOR: &str = "rollgate/watcher";

/// The name a metric is stored under in a baseline.
pub fn metric_label(metric: &MetricRef) -> String {
    match metric {
        MetricRef::ErrorRate => "error_rate".into(),
        MetricRef::DurationAvg => "duration_avg".into(),
        MetricRef::DurationPercentile(p) => format!("duration_p{p}"),
        MetricRef::Throttles => "throttles".into(),
        MetricRef::Invocations => "invocations".into(),
        MetricRef::Custom(name) => name.clone(),
    }
}

/// Guardrails in force in rollout phase `phase` (none at the baseline).
pub fn guardrails_at(plan: &Plan, phase: usize) -> Vec<&Guardrail> {
    match phase.checked_sub(1).and_then(|i| plan.phases.get(i)) {
        Some(p) => plan.guardrails.iter().chain(&p.guardrails).collect(),
        None => Vec::new(),
    }
}

/// The plan phase of rollout phase `phase` (none at the baseline).
fn phase_at(plan: &Plan, phase: usize) -> Option<&Phase> {
    phase.checked_sub(1).and_then(|i| plan.phases.get(i))
}

/// A number at `path` in a stored JSON document.
fn reference(doc: Option<&Value>, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(doc?, |v, key| v.get(*key))
        .and_then(Value::as_f64)
}

/// Every metric the plan's guardrails and gates refer to.
fn plan_metrics(plan: &Plan) -> Vec<MetricRef> {
    let mut out: Vec<MetricRef> = Vec::new();
    let guardrail_metrics = plan
        .guardrails
        .iter()
        .chain(plan.phases.iter().flat_map(|p| &p.guardrails))
        .filter_map(|g| match &g.kind {
            GuardrailKind::Metric(c) => Some(c.metric.clone()),
            GuardrailKind::Alarm { .. } => None,
        });
    let gate_metrics = plan
        .phases
        .iter()
        .flat_map(|p| &p.gates)
        .map(|g| g.condition.metric.clone());
    for m in guardrail_metrics.chain(gate_metrics) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// Rollouts watched at once within a tick.
const WATCH_CONCURRENCY: usize = 32;
/// From this many watched rollouts on, a tick lists the functions (50 per
/// call) instead of reading each one.
const LIST_THRESHOLD: usize = 50;
/// What a tick fetched once for all rollouts.
#[derive(Clone, Copy)]
struct Seen<'a> {
    values: &'a HashMap<u64, HashMap<Series, f64>>,
    firing: &'a [String],
    listing: Option<&'a Listing>,
    now: DateTime<Utc>,
}

/// Functions by name: environment and code hash.
type Listing = HashMap<String, (crate::plan::Flags, Option<String>)>;
/// GetMetricData calls in flight at once within a tick.
const FETCH_CONCURRENCY: usize = 8;

/// What reading the function found.
enum Finding {
    Nothing,
    BakeRestarted,
    Drift,
}

/// What one tick did, for diagnostics, metrics and benchmarks.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TickReport {
    pub at: Option<DateTime<Utc>>,
    pub rollouts_watched: usize,
    pub get_metric_data_calls: usize,
    pub queries: usize,
    pub decisions: Vec<Value>,
    pub errors: Vec<String>,
    /// Wall time spent fetching metrics and alarms, and on the rollouts' own work.
    pub fetch_ms: f64,
    pub rollouts_ms: f64,
}

pub struct Watcher {
    engine: Arc<Engine>,
    cloudwatch: CloudWatch,
    /// Consecutive breaches per (rollout, guardrail).
    streaks: Mutex<HashMap<(i64, String), u32>>,
    /// The code hash last seen per rollout's function: a change restarts the bake.
    code_seen: Mutex<HashMap<i64, String>>,
    /// Parsed plan snapshots by hash: parsing once, not every tick.
    plans: Mutex<HashMap<String, Arc<Plan>>>,
    /// Rollouts whose stored streaks have been loaded into `streaks`.
    streaks_loaded: Mutex<std::collections::HashSet<i64>>,
    /// Since when each (rollout, guardrail) has had insufficient data.
    silent_since: Mutex<HashMap<(i64, String), DateTime<Utc>>>,
    /// (rollout, phase) already announced as ready for approval.
    ready_announced: Mutex<std::collections::HashSet<(i64, String)>>,
    notifier: Notifier,
    last: Mutex<TickReport>,
}

impl Watcher {
    pub fn new(engine: Arc<Engine>, aws: &aws_config::SdkConfig) -> Self {
        Watcher {
            engine,
            cloudwatch: CloudWatch::new(aws),
            streaks: Mutex::default(),
            code_seen: Mutex::default(),
            ready_announced: Mutex::default(),
            silent_since: Mutex::default(),
            streaks_loaded: Mutex::default(),
            plans: Mutex::default(),
            notifier: Notifier::default(),
            last: Mutex::default(),
        }
    }

    /// The rollout's plan snapshot, parsed once per distinct plan text.
    fn plan_of(&self, r: &Rollout) -> Option<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = plans.get(&r.plan_hash) {
            return Some(p.clone());
        }
        let plan = Arc::new(snapshot_plan(r).ok()?);
        plans.insert(r.plan_hash.clone(), plan.clone());
        Some(plan)
    }

    pub fn last_tick(&self) -> TickReport {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One pass over every active or paused rollout (guardrails protect a
    /// paused rollout too).
    pub async fn tick(&self, now: DateTime<Utc>) -> TickReport {
        let started = std::time::Instant::now();
        let report = self.tick_inner(now).await;
        let t = self.engine.telemetry();
        t.watcher_ticks.inc();
        t.watcher_tick_seconds
            .observe(started.elapsed().as_secs_f64());
        t.watched_rollouts.set(report.rollouts_watched as i64);
        t.cloudwatch_calls
            .inc_by(report.get_metric_data_calls as u64);
        t.cloudwatch_queries.inc_by(report.queries as u64);
        self.finish(report)
    }

    async fn tick_inner(&self, now: DateTime<Utc>) -> TickReport {
        let mut report = TickReport {
            at: Some(now),
            ..TickReport::default()
        };
        let rollouts = match self.engine.store().list_rollouts().await {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(e.to_string());
                return report;
            }
        };
        let watched: Vec<(Rollout, Arc<Plan>)> = rollouts
            .into_iter()
            .filter(|r| matches!(r.state, State::Active | State::Paused))
            .filter(|r| r.applied_generation >= r.generation)
            .filter_map(|r| self.plan_of(&r).map(|p| (r, p)))
            .collect();
        report.rollouts_watched = watched.len();

        let mut recorded = std::collections::HashSet::new();
        for (r, plan) in watched.iter().filter(|(r, _)| r.baseline.is_none()) {
            match self.record_baseline(r, plan, &mut report).await {
                Ok(()) => {
                    recorded.insert(r.id);
                }
                Err(e) => report
                    .errors
                    .push(format!("rollout {}: baseline: {e}", r.id)),
            }
        }

        // Every series every guardrail and gate needs, fetched in the fewest calls.
        let needs = watched.iter().flat_map(|(r, plan)| {
            let gates = phase_at(plan, r.phase_index)
                .map(|p| {
                    p.gates
                        .iter()
                        .map(|g| (g.window.as_secs(), g.condition.metric.clone()))
                })
                .into_iter()
                .flatten();
            guardrails_at(plan, r.phase_index)
                .into_iter()
                .filter_map(|g| match &g.kind {
                    GuardrailKind::Metric(c) => Some((g.window.as_secs(), c.metric.clone())),
                    GuardrailKind::Alarm { .. } => None,
                })
                .chain(gates)
                .flat_map(|(w, m)| {
                    queries::series_for(&m, &r.target_function, &plan.metrics)
                        .into_iter()
                        .map(move |s| (w, s))
                })
                .collect::<Vec<_>>()
        });
        let mut values: HashMap<u64, HashMap<Series, f64>> = HashMap::new();
        let fetch_started = std::time::Instant::now();
        let batches = queries::batches(needs);
        report.queries += batches.iter().map(|b| b.series.len()).sum::<usize>();
        let fetches: Vec<_> = batches
            .iter()
            .map(
                |batch| async move { (batch.window_secs, self.cloudwatch.fetch(batch, now).await) },
            )
            .collect();
        let fetched: Vec<_> = futures_util::stream::iter(fetches)
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect()
            .await;
        for (window, result) in fetched {
            match result {
                Ok((v, calls)) => {
                    report.get_metric_data_calls += calls;
                    values.entry(window).or_default().extend(v);
                }
                Err(e) => report.errors.push(e),
            }
        }
        let alarm_names: Vec<String> = watched
            .iter()
            .flat_map(|(r, plan)| guardrails_at(plan, r.phase_index))
            .filter_map(|g| match &g.kind {
                GuardrailKind::Alarm { alarm } => Some(alarm.clone()),
                GuardrailKind::Metric(_) => None,
            })
            .collect();
        let firing = if alarm_names.is_empty() {
            Vec::new()
        } else {
            self.cloudwatch
                .alarms_firing(&alarm_names)
                .await
                .unwrap_or_else(|e| {
                    report.errors.push(e);
                    Vec::new()
                })
        };

        // Rollouts are independent: watch them concurrently (bounded), each
        // with its own small report, merged afterwards.
        report.fetch_ms = fetch_started.elapsed().as_secs_f64() * 1000.0;
        let rollouts_started = std::time::Instant::now();
        // Many rollouts: one paged ListFunctions instead of a read each.
        let listing = if watched.len() >= LIST_THRESHOLD {
            match self.engine.list_functions().await {
                Ok(l) => Some(l),
                Err(e) => {
                    report.errors.push(format!("ListFunctions: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let seen = Seen {
            values: &values,
            firing: &firing,
            listing: listing.as_ref(),
            now,
        };
        let jobs: Vec<_> = watched
            .iter()
            .map(|(r, plan)| self.watch_one(r, plan, recorded.contains(&r.id), &seen))
            .collect();
        let parts: Vec<TickReport> = futures_util::stream::iter(jobs)
            .buffer_unordered(WATCH_CONCURRENCY)
            .collect()
            .await;
        for part in parts {
            report.decisions.extend(part.decisions);
            report.errors.extend(part.errors);
        }
        report.rollouts_ms = rollouts_started.elapsed().as_secs_f64() * 1000.0;
        report
    }

    /// One rollout's share of a tick: guardrails, then the function (drift,
    /// deploys), then gates.
    async fn watch_one(
        &self,
        r: &Rollout,
        plan: &Plan,
        baseline_just_recorded: bool,
        seen: &Seen<'_>,
    ) -> TickReport {
        let Seen {
            values,
            firing,
            listing,
            now,
        } = *seen;
        let mut report = TickReport::default();
        let mut fresh = r.clone();
        if baseline_just_recorded {
            match self.engine.get(r.id).await {
                Ok(f) => fresh = f,
                Err(e) => {
                    report.errors.push(format!("rollout {}: {e}", r.id));
                    return report;
                }
            }
        }
        let decision = self.evaluate(&fresh, plan, fresh.baseline.as_ref(), values, firing, now);
        // Persist the breach counts when they changed, so a restart resumes them.
        let counts = self.streaks_of(r.id);
        if fresh.streaks.as_ref().unwrap_or(&json!({})) != &counts
            && let Err(e) = self.engine.store().set_streaks(r.id, &counts).await
        {
            report
                .errors
                .push(format!("rollout {}: streaks: {e}", r.id));
        }
        if let Some((guardrail, evaluation)) = decision {
            self.act(&fresh, guardrail, evaluation, &mut report).await;
            return report;
        }
        match self
            .check_function(&fresh, plan, listing, &mut report)
            .await
        {
            Ok(Finding::Drift) => return report, // readiness can wait a tick
            Ok(Finding::BakeRestarted) => match self.engine.get(r.id).await {
                Ok(f) => fresh = f,
                Err(e) => {
                    report.errors.push(format!("rollout {}: {e}", r.id));
                    return report;
                }
            },
            Ok(Finding::Nothing) => {}
            Err(e) => report.errors.push(format!("rollout {}: {e}", r.id)),
        }
        if let Err(e) = self
            .check_readiness(&fresh, plan, values, now, &mut report)
            .await
        {
            report
                .errors
                .push(format!("rollout {}: readiness: {e}", r.id));
        }
        report
    }

    /// Reads the function: a new code hash restarts the bake clock; owned
    /// flags that differ from the desired ones are drift, handled by the
    /// plan's policy. Returns whether drift was found.
    async fn check_function(
        &self,
        r: &Rollout,
        plan: &Plan,
        listing: Option<&Listing>,
        report: &mut TickReport,
    ) -> Result<Finding, String> {
        let mut finding = Finding::Nothing;
        // From the tick's ListFunctions when the function is in it (default
        // region), otherwise a read of its own.
        let listed = listing
            .filter(|_| plan.target.region.is_none())
            .and_then(|l| l.get(&r.target_function));
        let observed = match listed {
            Some((env, code_sha256)) => crate::backend::Observed {
                flags: crate::backend::merge::owned_values(env, &r.desired_flags),
                revision_id: None,
                code_sha256: code_sha256.clone(),
                last_update_status: None,
            },
            None => self.engine.observe(r).await.map_err(|e| e.to_string())?,
        };
        if let Some(sha) = observed.code_sha256.clone() {
            let previous = self
                .code_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(r.id, sha.clone());
            if let Some(previous) = previous.filter(|p| *p != sha) {
                let entry = NewAuditEntry {
                    actor: WATCHER_ACTOR.into(),
                    action: "code_changed".into(),
                    phase: Some(r.phase_name.clone()),
                    reason: Some(
                        "the function's code changed during the phase (a deploy): data from the old code says nothing about the new, so the bake clock restarts".into(),
                    ),
                    outcome: "bake_restarted".into(),
                    detail: Some(json!({ "code_sha256_before": previous, "code_sha256_after": sha })),
                    ..NewAuditEntry::default()
                };
                self.engine
                    .store()
                    .set_watch_state(r.id, None, Some(Utc::now()), vec![entry])
                    .await
                    .map_err(|e| e.to_string())?;
                report.decisions.push(json!({ "rollout": r.id, "action": "bake_restarted", "reason": "code changed" }));
                finding = Finding::BakeRestarted;
            }
        }
        if observed.flags == r.desired_flags {
            return Ok(finding);
        }
        let evidence =
            json!({ "observed": observed.flags, "desired": r.desired_flags, "policy": plan.drift });
        let action = match (plan.drift, r.state) {
            (DriftPolicy::Revert, _) => {
                self.engine
                    .revert_drift(r.id, WATCHER_ACTOR, &observed.flags, evidence)
                    .await
                    .map_err(|e| e.to_string())?;
                "drift_revert"
            }
            (DriftPolicy::Pause, State::Active) => {
                self.engine
                    .execute(
                        r.id,
                        Command::Pause,
                        Ask {
                            actor: WATCHER_ACTOR.into(),
                            reason: Some(
                                "owned flags changed outside rollgate (drift policy \"pause\")"
                                    .into(),
                            ),
                            evidence: Some(evidence),
                            ..Ask::default()
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                "drift_pause"
            }
            // Already paused: the drift was recorded when it paused.
            (DriftPolicy::Pause, _) => return Ok(Finding::Drift),
        };
        self.engine.telemetry().count_decision(action);
        tracing::warn!(rollout = r.id, action, "drift");
        self.notifier.send(
            &plan.webhooks,
            payload(
                "drift",
                r.id,
                &r.plan_name,
                &r.target_function,
                &format!(
                    "rollout #{} ({}): owned flags of {} drifted; {}",
                    r.id,
                    r.plan_name,
                    r.target_function,
                    if action == "drift_revert" {
                        "reverted"
                    } else {
                        "paused"
                    }
                ),
                json!({ "observed": observed.flags, "desired": r.desired_flags }),
            ),
        );
        report
            .decisions
            .push(json!({ "rollout": r.id, "action": action, "reason": "owned flags drifted" }));
        Ok(Finding::Drift)
    }

    /// Evaluates the current phase's gates, records them when they change
    /// (or are a minute old), and promotes a ready `auto` phase.
    async fn check_readiness(
        &self,
        r: &Rollout,
        plan: &Plan,
        values: &HashMap<u64, HashMap<Series, f64>>,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) -> Result<(), String> {
        let Some(phase) = phase_at(plan, r.phase_index) else {
            return Ok(());
        };
        let previous = r
            .phase_index
            .checked_sub(1)
            .map(|i| plan.phase_name(i).to_string());
        let empty = HashMap::new();
        let mut observed = serde_json::Map::new();
        let gates: Vec<Value> = phase
            .gates
            .iter()
            .map(|g| {
                let label = metric_label(&g.condition.metric);
                let window_values = values.get(&g.window.as_secs()).unwrap_or(&empty);
                let o = queries::observe(&g.condition.metric, &r.target_function, &plan.metrics, window_values);
                observed.insert(label.clone(), json!(o.value));
                let references = References {
                    baseline: reference(r.baseline.as_ref(), &[&label, "value"]),
                    previous_phase: previous
                        .as_deref()
                        .and_then(|p| reference(r.phase_stats.as_ref(), &[p, &label])),
                };
                let e = eval::evaluate(&label, &g.condition, o, g.min_samples, references);
                json!({ "name": g.name, "verdict": e.verdict, "explanation": e.explanation, "evaluation": e })
            })
            .collect();
        let readiness = json!({ "evaluated_at": now, "gates": gates, "observed": observed });
        let blockers = crate::rollout::readiness::blockers(
            Some(phase),
            r.bake_started_at,
            Utc::now(),
            Some(&readiness),
        );
        let verdicts = |v: Option<&Value>| -> Vec<(Value, Value)> {
            v.and_then(|r| r.get("gates"))
                .and_then(Value::as_array)
                .map(|gs| {
                    gs.iter()
                        .map(|g| (g["name"].clone(), g["verdict"].clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let stale = r
            .readiness
            .as_ref()
            .and_then(|x| x.get("evaluated_at"))
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .is_none_or(|t| now - t.to_utc() > chrono::Duration::seconds(60));
        // Phases without gates have nothing to record: readiness is bake time.
        let changed = stale
            || blockers.is_empty()
            || verdicts(r.readiness.as_ref()) != verdicts(Some(&readiness));
        if !phase.gates.is_empty() && changed {
            self.engine
                .store()
                .set_watch_state(r.id, Some(&readiness), None, Vec::new())
                .await
                .map_err(|e| e.to_string())?;
        }
        if blockers.is_empty()
            && phase.approval == Approval::Manual
            && self
                .ready_announced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((r.id, phase.name.clone()))
        {
            self.notifier.send(
                &plan.webhooks,
                payload(
                    "ready_for_approval",
                    r.id,
                    &r.plan_name,
                    &r.target_function,
                    &format!(
                        "rollout #{} ({}): phase {} is ready for approval (bake time over, every gate holds)",
                        r.id, r.plan_name, phase.name
                    ),
                    json!({ "gates": readiness["gates"] }),
                ),
            );
            report.decisions.push(
                json!({ "rollout": r.id, "action": "ready_for_approval", "phase": phase.name }),
            );
        }
        if blockers.is_empty() && r.state == State::Active && phase.approval == Approval::Auto {
            let reason = format!(
                "phase {} is ready: its bake time has elapsed and every gate holds",
                phase.name
            );
            self.engine
                .execute(
                    r.id,
                    Command::Advance,
                    Ask {
                        actor: WATCHER_ACTOR.into(),
                        reason: Some(reason.clone()),
                        evidence: Some(json!({ "gates": readiness["gates"] })),
                        ..Ask::default()
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
            self.engine.telemetry().count_decision("advance");
            report
                .decisions
                .push(json!({ "rollout": r.id, "action": "advance", "reason": reason }));
        }
        Ok(())
    }

    fn finish(&self, report: TickReport) -> TickReport {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = report.clone();
        report
    }

    /// Updates streaks; returns the guardrail that must act now, if any
    /// (a rollback guardrail before a pause before an observation).
    fn evaluate<'p>(
        &self,
        r: &Rollout,
        plan: &'p Plan,
        baseline: Option<&Value>,
        values: &HashMap<u64, HashMap<Series, f64>>,
        firing: &[String],
        now: DateTime<Utc>,
    ) -> Option<(&'p Guardrail, Evaluation)> {
        let mut acting: Vec<(&Guardrail, Evaluation)> = Vec::new();
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        // After a restart, resume the counts the previous process stored.
        let mut loaded = self
            .streaks_loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if loaded.insert(r.id)
            && let Some(stored) = r.streaks.as_ref().and_then(Value::as_object)
        {
            for (name, count) in stored {
                if let Some(n) = count.as_u64() {
                    streaks.insert((r.id, name.clone()), n as u32);
                }
            }
        }
        drop(loaded);
        for g in guardrails_at(plan, r.phase_index) {
            let evaluation = match &g.kind {
                GuardrailKind::Alarm { alarm } => {
                    let on = firing.contains(alarm);
                    Evaluation {
                        verdict: if on { Verdict::Breach } else { Verdict::Pass },
                        observed: None,
                        samples: 0,
                        min_samples: 0,
                        threshold: None,
                        reference: None,
                        explanation: format!(
                            "CloudWatch alarm {alarm} is {}",
                            if on { "in ALARM" } else { "not in ALARM" }
                        ),
                    }
                }
                GuardrailKind::Metric(c) => {
                    let empty = HashMap::new();
                    let window_values = values.get(&g.window.as_secs()).unwrap_or(&empty);
                    let observation = queries::observe(
                        &c.metric,
                        &r.target_function,
                        &plan.metrics,
                        window_values,
                    );
                    let label = metric_label(&c.metric);
                    let references = References {
                        baseline: baseline
                            .and_then(|b| b.get(&label))
                            .and_then(|m| m.get("value"))
                            .and_then(Value::as_f64),
                        previous_phase: None,
                    };
                    let e = eval::evaluate(&label, c, observation, g.min_samples, references);
                    self.apply_no_data_policy(r.id, &g.name, plan.insufficient_data, e, now)
                }
            };
            let key = (r.id, g.name.clone());
            let streak =
                eval::next_streak(streaks.get(&key).copied().unwrap_or(0), evaluation.verdict);
            streaks.insert(key, streak);
            // Alarms already aggregate over their own periods: act at once.
            let needed = match g.kind {
                GuardrailKind::Alarm { .. } => 1,
                GuardrailKind::Metric(_) => g.consecutive,
            };
            if eval::should_act(streak, needed) {
                acting.push((g, evaluation));
            }
        }
        acting.sort_by_key(|(g, _)| match g.action {
            GuardrailAction::Rollback => 0,
            GuardrailAction::Pause => 1,
            GuardrailAction::Observe => 2,
        });
        acting.into_iter().next()
    }

    /// Under `policy = "breach"`, a guardrail that has had insufficient data
    /// for `after` counts as breached; any real verdict resets the clock.
    fn apply_no_data_policy(
        &self,
        id: i64,
        guardrail: &str,
        policy: InsufficientData,
        mut e: Evaluation,
        now: DateTime<Utc>,
    ) -> Evaluation {
        let mut silent = self.silent_since.lock().unwrap_or_else(|p| p.into_inner());
        let key = (id, guardrail.to_string());
        if e.verdict != Verdict::InsufficientData {
            silent.remove(&key);
            return e;
        }
        let since = *silent.entry(key).or_insert(now);
        let after = chrono::Duration::from_std(policy.after).unwrap_or(chrono::TimeDelta::MAX);
        if policy.policy == NoDataPolicy::Breach && now - since >= after {
            e.verdict = Verdict::Breach;
            e.explanation = format!(
                "{} — insufficient data for {}s, which this plan treats as a breach",
                e.explanation,
                (now - since).num_seconds()
            );
        }
        e
    }

    async fn act(&self, r: &Rollout, g: &Guardrail, e: Evaluation, report: &mut TickReport) {
        let evidence = json!({
            "guardrail": g.name,
            "action": g.action,
            "window_secs": g.window.as_secs(),
            "consecutive": g.consecutive,
            "evaluation": e,
        });
        let reason = format!("guardrail {} breached: {}", g.name, e.explanation);
        let command = match (g.action, r.state) {
            (GuardrailAction::Rollback, _) => Some(Command::Rollback { to: None }),
            (GuardrailAction::Pause, State::Active) => Some(Command::Pause),
            _ => None,
        };
        let result = match command {
            Some(cmd) => self
                .engine
                .execute(
                    r.id,
                    cmd,
                    Ask {
                        actor: WATCHER_ACTOR.into(),
                        reason: Some(reason.clone()),
                        evidence: Some(evidence.clone()),
                        ..Ask::default()
                    },
                )
                .await
                .map(|_| cmd.name().to_string())
                .map_err(|e| e.to_string()),
            None => {
                // Observe (or pause while paused): record once per streak.
                let streak = self.streak(r.id, &g.name);
                if streak != g.consecutive.max(1) && !matches!(g.kind, GuardrailKind::Alarm { .. })
                {
                    return;
                }
                self.engine
                    .store()
                    .append_audit(vec![NewAuditEntry {
                        actor: WATCHER_ACTOR.into(),
                        action: "guardrail_breach".into(),
                        rollout_id: Some(r.id),
                        phase: Some(r.phase_name.clone()),
                        reason: Some(reason.clone()),
                        outcome: "observed".into(),
                        detail: Some(evidence.clone()),
                        ..NewAuditEntry::default()
                    }])
                    .await
                    .map(|_| "observe".to_string())
                    .map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(done) => {
                if done != "observe" {
                    self.reset_streaks(r.id);
                }
                self.engine.telemetry().count_decision(&done);
                let plan = snapshot_plan(r).ok();
                let event = match done.as_str() {
                    "observe" => "breach",
                    other => other,
                };
                self.notifier.send(
                    plan.as_ref().map_or(&[][..], |p| &p.webhooks[..]),
                    payload(
                        event,
                        r.id,
                        &r.plan_name,
                        &r.target_function,
                        &format!("rollout #{} ({}): {done} — {reason}", r.id, r.plan_name),
                        evidence.clone(),
                    ),
                );
                tracing::warn!(rollout = r.id, guardrail = %g.name, action = %done, %reason, "guardrail breached");
                report.decisions.push(json!({
                    "rollout": r.id, "guardrail": g.name, "action": done, "reason": reason,
                }));
            }
            Err(err) => report.errors.push(format!("rollout {}: {err}", r.id)),
        }
    }

    fn streak(&self, id: i64, guardrail: &str) -> u32 {
        let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        streaks
            .get(&(id, guardrail.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// This rollout's non-zero breach counts, by guardrail.
    fn streaks_of(&self, id: i64) -> Value {
        let streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        let counts: serde_json::Map<String, Value> = streaks
            .iter()
            .filter(|((rid, _), n)| *rid == id && **n > 0)
            .map(|((_, name), n)| (name.clone(), json!(n)))
            .collect();
        Value::Object(counts)
    }

    fn reset_streaks(&self, id: i64) {
        let mut streaks = self.streaks.lock().unwrap_or_else(|p| p.into_inner());
        streaks.retain(|(rid, _), _| *rid != id);
    }

    /// Fetches the plan's metrics over the look-back window before the
    /// rollout started and stores them as its baseline.
    async fn record_baseline(
        &self,
        r: &Rollout,
        plan: &Plan,
        report: &mut TickReport,
    ) -> Result<(), String> {
        let window = plan.baseline.lookback.as_secs();
        let metrics = plan_metrics(plan);
        let needs = metrics.iter().flat_map(|m| {
            queries::series_for(m, &r.target_function, &plan.metrics)
                .into_iter()
                .map(|s| (window, s))
        });
        let mut values = HashMap::new();
        for batch in queries::batches(needs) {
            report.queries += batch.series.len();
            let (v, calls) = self.cloudwatch.fetch(&batch, r.created_at).await?;
            report.get_metric_data_calls += calls;
            values.extend(v);
        }
        let baseline: BTreeMap<String, Value> = metrics
            .iter()
            .map(|m| {
                let o: Observation =
                    queries::observe(m, &r.target_function, &plan.metrics, &values);
                (
                    metric_label(m),
                    json!({ "value": o.value, "samples": o.samples }),
                )
            })
            .collect();
        let baseline = json!(baseline);
        self.engine
            .store()
            .set_baseline(
                r.id,
                &baseline,
                Utc::now(),
                NewAuditEntry {
                    actor: WATCHER_ACTOR.into(),
                    action: "baseline_recorded".into(),
                    phase: Some(r.phase_name.clone()),
                    outcome: "recorded".into(),
                    detail: Some(json!({
                        "lookback_secs": window,
                        "until": r.created_at,
                        "metrics": baseline,
                    })),
                    ..NewAuditEntry::default()
                },
            )
            .await
            .map_err(|e| e.to_string())
    }
}

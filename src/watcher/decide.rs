//! The watcher's decision for one rollout, as a pure function: what one
//! tick observed (metric values, alarms, the function, a fresh baseline)
//! and what the watcher remembers go in; `Decision`s and the new memory
//! come out. The service carries the decisions out. Tests call `judge`
//! with plain numbers.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::domain::judge::{
    self as stats, CountReference, Counts, JudgeVerdict, Tolerance, median,
};
use crate::domain::{
    Baseline, GateResult, MetricPoint, MetricValue, PointKind, Readiness, WatchMemory,
};
use crate::metrics::cloudwatch::Fetched;
use crate::metrics::eval::{self, Evaluation, Observation, References, Verdict, min_samples_for};
use crate::metrics::periods::{self, Range, Span};
use crate::metrics::queries::{self, Scope, Series};
use crate::plan::{
    Approval, Bound, Condition, DriftPolicy, Flags, Guardrail, GuardrailAction, GuardrailKind,
    InconclusivePolicy, InsufficientData, Judge, MetricRef, NoDataPolicy, Phase, Plan, Reference,
};
use crate::rollout::readiness::{self, Freshness};
use crate::rollout::{Rollout, State};
use crate::service::FunctionRead;

/// What a tick read from CloudWatch, and what it could not read: a series
/// whose fetch failed is unknown, never "no datapoint" (which a count reads
/// as zero), and alarms that could not be described are not "not in ALARM".
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// Per series and span: a value, or `None` for no datapoint. A pair
    /// that is absent could not be read this tick (its call failed).
    pub values: Fetched,
    /// The alarms in ALARM; `None` when DescribeAlarms failed.
    pub firing: Option<HashSet<String>>,
}

impl Readings {
    /// `metric` over `span`; `None` when a series behind it could not be read.
    pub fn observe(
        &self,
        metric: &MetricRef,
        function: &str,
        plan: &Plan,
        span: Span,
    ) -> Option<Observation> {
        self.observe_in(metric, Scope::Function(function), plan, span)
    }

    /// `metric` over `span` for the invocations `scope` names.
    pub fn observe_in(
        &self,
        metric: &MetricRef,
        scope: Scope<'_>,
        plan: &Plan,
        span: Span,
    ) -> Option<Observation> {
        let present = self.present(metric, scope, plan, span)?;
        Some(queries::observe_in(metric, scope, &plan.metrics, &present))
    }

    /// The values behind `metric` over `span` (a missing one: no datapoint);
    /// `None` when a series could not be read.
    fn present(
        &self,
        metric: &MetricRef,
        scope: Scope<'_>,
        plan: &Plan,
        span: Span,
    ) -> Option<HashMap<Series, f64>> {
        let mut present = HashMap::new();
        for s in queries::series_in(metric, scope, &plan.metrics) {
            if let Some(v) = self.values.get(&(s.clone(), span))? {
                present.insert(s, *v);
            }
        }
        Some(present)
    }

    /// Errors and invocations of `scope` over `span`; `None` when unread.
    fn counts(&self, scope: Scope<'_>, plan: &Plan, span: Span) -> Option<Counts> {
        let metric = MetricRef::ErrorRate;
        let present = self.present(&metric, scope, plan, span)?;
        let series = queries::series_in(&metric, scope, &plan.metrics);
        let get = |i: usize| series.get(i).and_then(|s| present.get(s)).copied();
        // No datapoint for a count is zero (Lambda publishes none).
        let whole = |v: Option<f64>| v.filter(|v| v.is_finite() && *v > 0.0).unwrap_or(0.0) as u64;
        Some(Counts {
            events: whole(get(0)),
            trials: whole(get(1)),
        })
    }
}

/// The invocations a position is judged on, and the stable version's.
#[derive(Debug, Clone, Copy)]
pub struct Scopes<'a> {
    pub subject: Scope<'a>,
    pub stable: Option<Scope<'a>>,
}

/// A canary step of an alias rollout is judged on the canary version's
/// invocations (and compares with the stable version's); everything else
/// on the whole function's.
pub fn scopes_of(r: &Rollout, position: usize) -> Scopes<'_> {
    if let (Some(alias), Some(_), Some(routing)) = (&r.alias, r.traffic_at(position), &r.routing)
        && let Some(canary) = &routing.canary_version
    {
        return Scopes {
            subject: Scope::Version {
                function: &r.function_name,
                alias,
                version: canary,
            },
            stable: Some(Scope::Version {
                function: &r.function_name,
                alias,
                version: &routing.stable_version,
            }),
        };
    }
    Scopes {
        subject: Scope::Function(&r.function_name),
        stable: None,
    }
}

/// Where a rollout's data starts (its live flags took effect) and up to
/// where it is complete (settled whole minutes), this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    pub live_since: i64,
    pub complete_until: i64,
}

impl Clock {
    pub fn of(r: &Rollout, plan: &Plan, now: DateTime<Utc>) -> Clock {
        Clock {
            live_since: r.live_since().timestamp(),
            complete_until: periods::complete_until(now.timestamp(), plan.settle.as_secs() as i64),
        }
    }

    /// The periods of `g` (window `window`) to judge now.
    fn due(&self, window: u64, judged_until: Option<i64>) -> Option<Range> {
        periods::due_periods(
            window as i64,
            self.live_since,
            judged_until,
            self.complete_until,
        )
    }

    /// Every complete minute since the live flags took effect (at most
    /// the latest day): what a sequential test reads.
    fn minutes(&self) -> Option<Range> {
        periods::minutes_since(self.live_since, self.complete_until)
    }

    /// The recent span a gate (or a phase statistic) of `window` reads.
    fn recent(&self, window: u64) -> Option<Span> {
        periods::recent_span(window as i64, self.live_since, self.complete_until)
    }
}

/// The end of the last period guardrail `name` judged in the live phase.
fn judged_until(memory: &WatchMemory, r: &Rollout, name: &str) -> Option<i64> {
    if memory.live_since != Some(r.live_since()) {
        return None;
    }
    memory.judged_until.get(name).map(|t| t.timestamp())
}

/// Whether the tick goes on to the function and the phase's gates (no
/// write pending, not finished).
fn judges_phase(r: &Rollout) -> bool {
    !r.write_pending() && matches!(r.state, State::Active | State::Paused)
}

/// Every (range, series) `judge` reads for this rollout this tick: the
/// metric guardrails' periods not judged yet, and the recent spans of the
/// phase's gates and statistics.
pub fn reads(
    r: &Rollout,
    plan: &Plan,
    memory: &WatchMemory,
    now: DateTime<Utc>,
) -> Vec<(Range, Series)> {
    let clock = Clock::of(r, plan, now);
    let mut out = Vec::new();
    let mut add = |range: Range, metric: &MetricRef, scope: Scope<'_>| {
        out.extend(
            queries::series_in(metric, scope, &plan.metrics)
                .into_iter()
                .map(|s| (range, s)),
        )
    };
    let live = scopes_of(r, live_phase(r));
    for g in guardrails_at(plan, live_phase(r)) {
        let GuardrailKind::Metric(c) = &g.kind else {
            continue;
        };
        let due = match c.judge {
            Judge::Threshold => clock.due(g.window.as_secs(), judged_until(memory, r, &g.name)),
            // A new minute is due: every minute since the flags went live.
            Judge::Sequential => clock
                .due(periods::MINUTE as u64, judged_until(memory, r, &g.name))
                .and_then(|_| clock.minutes()),
        };
        if let Some(range) = due {
            add_condition(&mut add, range, c, live);
        }
    }
    if judges_phase(r) {
        let scopes = scopes_of(r, r.phase_index);
        for (window, metric) in phase_reads(plan, r.phase_index) {
            if let Some(span) = clock.recent(window) {
                add(Range::single(span), &metric, scopes.subject);
            }
        }
        for g in phase_at(plan, r.phase_index)
            .into_iter()
            .flat_map(|p| &p.gates)
        {
            let range = match g.condition.judge {
                Judge::Threshold => clock.recent(g.window.as_secs()).map(Range::single),
                Judge::Sequential => clock.minutes(),
            };
            if let Some(range) = range {
                add_condition(&mut add, range, &g.condition, scopes);
            }
        }
        // Traffic that reaches the function outside the alias.
        if let (Some(stable), Some(span)) = (scopes.stable, clock.recent(OUTSIDE_WINDOW)) {
            let range = Range::single(span);
            for scope in [Scope::Function(&r.function_name), scopes.subject, stable] {
                add(range, &MetricRef::Invocations, scope);
            }
        }
    }
    out
}

/// How far back traffic outside the alias is counted.
const OUTSIDE_WINDOW: u64 = 300;

/// The series a condition reads over `range`: the subject's, and the
/// stable version's when it compares with it.
fn add_condition(
    add: &mut impl FnMut(Range, &MetricRef, Scope<'_>),
    range: Range,
    c: &Condition,
    scopes: Scopes<'_>,
) {
    add(range, &c.metric, scopes.subject);
    if c.reference == Reference::Stable
        && let Some(stable) = scopes.stable
    {
        add(range, &c.metric, stable);
    }
}

/// The name a metric is stored under in baselines and statistics.
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

/// The plan phase of rollout phase `phase` (none at the baseline).
pub fn phase_at(plan: &Plan, phase: usize) -> Option<&Phase> {
    phase.checked_sub(1).and_then(|i| plan.phases.get(i))
}

/// Guardrails in force in rollout phase `phase` (none at the baseline).
/// Guardrails that compare with the stable version apply to canary steps only.
pub fn guardrails_at(plan: &Plan, phase: usize) -> Vec<&Guardrail> {
    let canary = plan.is_canary_step(phase);
    match phase_at(plan, phase) {
        Some(p) => plan
            .guardrails
            .iter()
            .chain(&p.guardrails)
            .filter(|g| canary || !compares_with_stable(g))
            .collect(),
        None => Vec::new(),
    }
}

fn compares_with_stable(g: &Guardrail) -> bool {
    matches!(&g.kind, GuardrailKind::Metric(c) if c.reference == Reference::Stable)
}

/// The phase whose flags are live: while a write is pending, the one it
/// left (a refused rollback's rollout is still judged by the guardrails of
/// the phase whose flags are still on the function).
pub fn live_phase(r: &Rollout) -> usize {
    match &r.pending_write {
        Some(w) if r.write_pending() => w.previous_phase,
        _ => r.phase_index,
    }
}

/// (window seconds, metric) of every guardrail and gate in force in `phase`.
pub fn metrics_at(plan: &Plan, phase: usize) -> Vec<(u64, MetricRef)> {
    let guardrails = guardrails_at(plan, phase)
        .into_iter()
        .filter_map(|g| match &g.kind {
            GuardrailKind::Metric(c) => Some((g.window.as_secs(), c.metric.clone())),
            GuardrailKind::Alarm { .. } => None,
        });
    let gates = phase_at(plan, phase)
        .into_iter()
        .flat_map(|p| &p.gates)
        .map(|g| (g.window.as_secs(), g.condition.metric.clone()));
    guardrails.chain(gates).collect()
}

/// (window seconds, metric) of what the phase's readiness reads: every
/// gate, and each other guardrail metric once (a metric a gate reads is
/// observed over the gate's window).
pub fn phase_reads(plan: &Plan, phase: usize) -> Vec<(u64, MetricRef)> {
    let gates: Vec<(u64, MetricRef)> = phase_at(plan, phase)
        .into_iter()
        .flat_map(|p| &p.gates)
        .map(|g| (g.window.as_secs(), g.condition.metric.clone()))
        .collect();
    let mut out = gates.clone();
    for (window, metric) in metrics_at(plan, phase) {
        if !out.iter().any(|(_, m)| *m == metric) {
            out.push((window, metric));
        }
    }
    out
}

/// Every metric the plan's guardrails and gates refer to (its baseline).
pub fn plan_metrics(plan: &Plan) -> Vec<MetricRef> {
    let mut out: Vec<MetricRef> = Vec::new();
    for phase in 1..plan.phase_count() {
        for (_, m) in metrics_at(plan, phase) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// The baseline from values fetched over the look-back window.
pub fn baseline_from(plan: &Plan, function_name: &str, values: &HashMap<Series, f64>) -> Baseline {
    Baseline(
        plan_metrics(plan)
            .iter()
            .map(|m| {
                let o = queries::observe(m, function_name, &plan.metrics, values);
                (
                    metric_label(m),
                    MetricValue {
                        value: o.value,
                        samples: o.samples,
                    },
                )
            })
            .collect(),
    )
}

/// When to read an incomplete baseline again: 5 minutes, doubling up to 6 hours.
pub fn baseline_retry_delay(attempts: u32) -> TimeDelta {
    let minutes = 5i64.saturating_mul(1 << attempts.saturating_sub(1).min(7));
    TimeDelta::minutes(minutes.min(360))
}

/// The numbers behind a guardrail decision, as the audit log records them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuardrailEvidence {
    pub guardrail: String,
    pub action: GuardrailAction,
    pub window_secs: u64,
    pub consecutive: u32,
    pub evaluation: Evaluation,
}

/// What drift looked like.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftEvidence {
    pub observed: Flags,
    pub desired: Flags,
    pub policy: DriftPolicy,
    /// `lambda-alias`: where the alias points, and where rollgate left it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_routing: Option<crate::rollout::AliasRouting>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired_routing: Option<crate::rollout::AliasRouting>,
    /// `lambda-alias`: `$LATEST`'s owned flags, when not the stable ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest: Option<Flags>,
}

/// Something the service should do about a rollout.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record this baseline (first read, or a more complete one).
    RecordBaseline(Baseline),
    Rollback {
        reason: String,
        evidence: GuardrailEvidence,
    },
    Pause {
        reason: String,
        evidence: GuardrailEvidence,
    },
    /// Record (and announce) a breach without acting.
    Observe {
        reason: String,
        evidence: GuardrailEvidence,
    },
    FunctionUnreadable(String),
    FunctionReadable,
    RestartBake {
        before: String,
        after: String,
    },
    RevertDrift(DriftEvidence),
    PauseForDrift(DriftEvidence),
    RecordReadiness(Readiness),
    /// Keep these evaluations for the dashboard's charts.
    RecordPoints(Vec<MetricPoint>),
    /// The owned flags as read now differ from those last recorded.
    RecordObserved(Flags),
    AnnounceReady {
        phase: String,
        gates: Vec<GateResult>,
    },
    Advance {
        reason: String,
        gates: Vec<GateResult>,
    },
}

impl Decision {
    /// The name a tick report and the metrics use.
    pub fn action(&self) -> &'static str {
        match self {
            Decision::RecordBaseline(_) => "baseline_recorded",
            Decision::Rollback { .. } => "rollback",
            Decision::Pause { .. } => "pause",
            Decision::Observe { .. } => "observe",
            Decision::FunctionUnreadable(_) => "function_unreadable",
            Decision::FunctionReadable => "function_readable",
            Decision::RestartBake { .. } => "bake_restarted",
            Decision::RevertDrift(_) => "drift_revert",
            Decision::PauseForDrift(_) => "drift_pause",
            Decision::RecordReadiness(_) => "readiness_recorded",
            Decision::RecordPoints(_) => "points_recorded",
            Decision::RecordObserved(_) => "observed_recorded",
            Decision::AnnounceReady { .. } => "ready_for_approval",
            Decision::Advance { .. } => "advance",
        }
    }

    /// Bookkeeping rather than a decision worth reporting.
    pub fn is_record(&self) -> bool {
        matches!(
            self,
            Decision::RecordBaseline(_)
                | Decision::RecordReadiness(_)
                | Decision::RecordPoints(_)
                | Decision::RecordObserved(_)
        )
    }
}

/// What one tick observed about one rollout, and how the watcher runs.
pub struct Input<'a> {
    pub rollout: &'a Rollout,
    pub plan: &'a Plan,
    pub memory: &'a WatchMemory,
    pub readings: &'a Readings,
    /// The function as read this tick (`None`: not read, a write is pending).
    pub function: Option<&'a FunctionRead>,
    /// A baseline read this tick.
    pub fresh_baseline: Option<&'a Baseline>,
    pub now: DateTime<Utc>,
    /// Gate results are recorded again once they are this old (the tick
    /// interval), so an advance always finds fresh ones.
    pub refresh_readiness: TimeDelta,
    pub freshness: Freshness,
    /// How often evaluations are kept for the charts (`points_every`).
    pub points_every: TimeDelta,
}

/// The decisions for one rollout, and the watcher's new memory of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub decisions: Vec<Decision>,
    pub memory: WatchMemory,
}

/// How long a phase without gates keeps its recorded statistics before
/// they are refreshed (they only serve as the next phase's reference).
const STATS_REFRESH: TimeDelta = TimeDelta::minutes(10);

/// How often evaluations are kept for the charts: six watcher intervals,
/// between 5 seconds and a minute (a minute at the default 10 s ticks).
pub fn points_every(tick: TimeDelta) -> TimeDelta {
    (tick * 6).clamp(TimeDelta::seconds(5), TimeDelta::minutes(1))
}

/// Judges one rollout: guardrails first (a rollback or pause ends the
/// tick's work on it), then the function (unreadable, deploys, drift), then
/// readiness and promotion.
pub fn judge(input: &Input<'_>) -> Judgement {
    let r = input.rollout;
    let mut memory = input.memory.clone();
    let mut decisions = Vec::new();

    let mut baseline = r.baseline.as_ref();
    if let Some(fresh) = input.fresh_baseline {
        let values = |b: &Baseline| b.0.values().filter(|m| m.value.is_some()).count();
        if baseline.is_none_or(|old| old != fresh && values(fresh) >= values(old)) {
            decisions.push(Decision::RecordBaseline(fresh.clone()));
            baseline = Some(fresh);
        }
        if fresh.is_complete() {
            memory.baseline_retry_at = None;
            memory.baseline_attempts = 0;
        } else {
            memory.baseline_attempts = memory.baseline_attempts.saturating_add(1);
            memory.baseline_retry_at =
                Some(input.now + baseline_retry_delay(memory.baseline_attempts));
        }
    }

    // New live flags: their periods and streaks start over.
    let live_since = r.live_since();
    if memory.live_since != Some(live_since) {
        memory.streaks.clear();
        memory.judged_until.clear();
        memory.silent_since.clear();
        memory.live_since = Some(live_since);
    }

    let keep_points = memory
        .points_at
        .is_none_or(|t| input.now - t >= input.points_every || t > input.now);
    let (acted, unjudged, points) = judge_guardrails(input, baseline, &mut memory);
    // One point per period judged: the charts show every value acted on.
    if !points.is_empty() {
        decisions.push(Decision::RecordPoints(points));
    }
    if let Some(acted) = acted {
        decisions.push(acted);
        if !matches!(decisions.last(), Some(Decision::Observe { .. })) {
            return Judgement { decisions, memory };
        }
    }

    if !judges_phase(r) {
        return Judgement { decisions, memory };
    }
    let mut bake_started_at = r.bake_started_at;
    match input.function {
        None | Some(FunctionRead::Failed(_)) => {}
        Some(FunctionRead::Unreadable(cause)) => {
            if r.function_error.as_deref() != Some(cause.as_str()) {
                decisions.push(Decision::FunctionUnreadable(cause.clone()));
            }
        }
        Some(FunctionRead::Seen {
            flags,
            code_sha256,
            routing,
            latest,
        }) => {
            if r.function_error.is_some() {
                decisions.push(Decision::FunctionReadable);
            }
            if r.observed_flags.as_ref() != Some(flags) {
                decisions.push(Decision::RecordObserved(flags.clone()));
            }
            if let Some(sha) = code_sha256 {
                if let Some(before) = memory.code_sha256.as_ref().filter(|b| *b != sha) {
                    decisions.push(Decision::RestartBake {
                        before: before.clone(),
                        after: sha.clone(),
                    });
                    bake_started_at = Some(input.now);
                }
                memory.code_sha256 = Some(sha.clone());
            }
            // An alias moved (version or weights) is drift like a flag
            // changed: the versions behind it are no longer rollgate's.
            let moved = match (routing, &r.routing) {
                (Some(seen), Some(known)) => !seen.same_split(known),
                _ => false,
            };
            // `$LATEST` must keep the stable flags (an unqualified invoke).
            let latest_off = latest.as_ref().is_some_and(|l| l != r.desired().flags);
            if *flags != r.desired_flags || moved || latest_off {
                let evidence = DriftEvidence {
                    observed: flags.clone(),
                    desired: r.desired_flags.clone(),
                    policy: input.plan.drift,
                    observed_routing: routing.clone().filter(|_| moved),
                    desired_routing: r.routing.clone().filter(|_| moved),
                    latest: latest.clone().filter(|_| latest_off),
                };
                match (input.plan.drift, r.state) {
                    (DriftPolicy::Revert, _) => decisions.push(Decision::RevertDrift(evidence)),
                    (DriftPolicy::Pause, State::Active) => {
                        decisions.push(Decision::PauseForDrift(evidence))
                    }
                    // Already paused: the drift was recorded when it paused.
                    (DriftPolicy::Pause, _) => {}
                }
                return Judgement { decisions, memory }; // readiness can wait a tick
            }
        }
    }

    let Some(phase) = phase_at(input.plan, r.phase_index) else {
        return Judgement { decisions, memory };
    };
    let mut readiness = evaluate_phase(input, phase, baseline);
    readiness.unjudged_guardrails = guardrails_at(input.plan, r.phase_index)
        .into_iter()
        .filter(|g| matches!(g.kind, GuardrailKind::Metric(_)))
        .filter(|g| judged_until(&memory, r, &g.name).is_none())
        .map(|g| g.name.clone())
        .collect();
    if let Some(decision) = after_max_wait(input, phase, &mut readiness, &mut memory) {
        decisions.push(decision);
        return Judgement { decisions, memory };
    }
    let refresh = if phase.gates.is_empty() {
        STATS_REFRESH
    } else {
        input.refresh_readiness
    };
    let changed = r.readiness.as_ref().is_none_or(|old| {
        !old.same_verdicts(&readiness) || input.now - old.evaluated_at >= refresh
    });
    let mut blockers = readiness::blockers(
        Some(phase),
        bake_started_at,
        input.now,
        Some(&readiness),
        input.freshness,
    );
    // Outside the release windows a ready phase waits (and says so in its
    // blockers); it is neither promoted nor announced until one opens.
    blockers.extend(input.plan.schedule.blocker(input.now));
    let gates = readiness.gates.clone();
    if keep_points && !gates.is_empty() {
        memory.points_at = Some(input.now);
        decisions.push(Decision::RecordPoints(
            phase
                .gates
                .iter()
                .zip(&gates)
                .map(|(g, r)| {
                    let label = metric_label(&g.condition.metric);
                    MetricPoint::of(
                        PointKind::Gate,
                        &r.name,
                        &label,
                        input.now,
                        Some(g.window.as_secs()),
                        &r.evaluation,
                    )
                })
                .collect(),
        ));
    }
    if changed {
        decisions.push(Decision::RecordReadiness(readiness));
    }
    if !blockers.is_empty() {
        // Announced again when it becomes ready again.
        memory.ready_announced = None;
    } else if unjudged {
        // A guardrail could not be judged this tick: promote nothing on it.
    } else {
        if phase.approval == Approval::Manual
            && memory.ready_announced.as_deref() != Some(phase.name.as_str())
        {
            memory.ready_announced = Some(phase.name.clone());
            decisions.push(Decision::AnnounceReady {
                phase: phase.name.clone(),
                gates: gates.clone(),
            });
        }
        if phase.approval == Approval::Auto && r.state == State::Active {
            decisions.push(Decision::Advance {
                reason: format!(
                    "phase {} is ready: its bake time has elapsed and every gate holds",
                    phase.name
                ),
                gates,
            });
        }
    }
    Judgement { decisions, memory }
}

/// A position whose sequential gates are still inconclusive `max_wait`
/// after its flags took effect: the plan's `on_inconclusive` decides. A
/// pause or rollback is returned; "promote" counts those gates as passed.
fn after_max_wait(
    input: &Input<'_>,
    phase: &Phase,
    readiness: &mut Readiness,
    memory: &mut WatchMemory,
) -> Option<Decision> {
    let r = input.rollout;
    let spec = input.plan.judge;
    let max_wait = TimeDelta::from_std(spec.max_wait?).ok()?;
    if r.state != State::Active || input.now - r.live_since() < max_wait {
        return None;
    }
    let acted = memory.max_wait_acted == Some(r.live_since());
    let waiting: Vec<usize> = phase
        .gates
        .iter()
        .zip(&readiness.gates)
        .enumerate()
        // Inconclusive by the judge's own verdict: a gate that could not be
        // read this tick, or has nothing to compare with, is not "waited out".
        .filter(|(_, (g, result))| {
            g.condition.judge == Judge::Sequential
                && result.verdict == Verdict::InsufficientData
                && result
                    .evaluation
                    .judgement
                    .as_ref()
                    .is_some_and(|j| j.verdict == JudgeVerdict::Inconclusive)
        })
        .map(|(i, _)| i)
        .collect();
    let first = *waiting.first()?;
    let names: Vec<&str> = waiting
        .iter()
        .map(|i| readiness.gates[*i].name.as_str())
        .collect();
    let reason = format!(
        "gate{} {} still inconclusive {} after phase {} went live (judge.max_wait)",
        if names.len() > 1 { "s" } else { "" },
        names.join(", "),
        humanize(max_wait),
        phase.name
    );
    let evidence = |action| GuardrailEvidence {
        guardrail: "judge.max_wait".into(),
        action,
        window_secs: max_wait.num_seconds().max(0) as u64,
        consecutive: 1,
        evaluation: readiness.gates[first].evaluation.clone(),
    };
    if acted && spec.on_inconclusive != InconclusivePolicy::Promote {
        // Paused once already for these flags: an operator resumed it.
        return None;
    }
    if spec.on_inconclusive != InconclusivePolicy::Promote {
        memory.max_wait_acted = Some(r.live_since());
    }
    match spec.on_inconclusive {
        InconclusivePolicy::Pause => Some(Decision::Pause {
            reason: format!("{reason}; paused for an operator to decide"),
            evidence: evidence(GuardrailAction::Pause),
        }),
        InconclusivePolicy::Rollback => Some(Decision::Rollback {
            reason: format!("{reason}; rolling back"),
            evidence: evidence(GuardrailAction::Rollback),
        }),
        InconclusivePolicy::Promote => {
            for i in waiting {
                let gate = &mut readiness.gates[i];
                gate.verdict = Verdict::Pass;
                gate.evaluation.verdict = Verdict::Pass;
                gate.explanation = format!(
                    "{} — inconclusive after judge.max_wait, which this plan counts as passed",
                    gate.explanation
                );
                gate.evaluation.explanation = gate.explanation.clone();
            }
            None
        }
    }
}

fn humanize(d: TimeDelta) -> String {
    let s = d.num_seconds();
    match s {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Evaluates every guardrail in force, updating streaks, judged periods
/// and silence clocks in `memory`; returns what the first guardrail that
/// must act does (a rollback before a pause before an observation), whether
/// some guardrail could not be judged because its data could not be read
/// (it is skipped: its streak and periods stay as they were), and one chart
/// point per period judged.
fn judge_guardrails(
    input: &Input<'_>,
    baseline: Option<&Baseline>,
    memory: &mut WatchMemory,
) -> (Option<Decision>, bool, Vec<MetricPoint>) {
    let r = input.rollout;
    let plan = input.plan;
    let phase = live_phase(r);
    let previous = previous_phase(r, phase);
    let clock = Clock::of(r, plan, input.now);
    let scopes = scopes_of(r, phase);
    let mut acting: Vec<(&Guardrail, Evaluation, bool)> = Vec::new();
    let mut unjudged = false;
    let mut points = Vec::new();
    for g in guardrails_at(plan, phase) {
        let before = memory.streak(&g.name);
        let (evaluation, needed) = match &g.kind {
            GuardrailKind::Alarm { alarm } => match &input.readings.firing {
                // Alarms aggregate over their own periods: judged every
                // tick, acted on at once.
                Some(firing) => {
                    let e = alarm_evaluation(alarm, firing.contains(alarm));
                    memory.set_streak(&g.name, eval::next_streak(before, e.verdict));
                    (e, 1)
                }
                None => {
                    unjudged = true;
                    continue;
                }
            },
            GuardrailKind::Metric(c) if c.judge == Judge::Sequential => {
                let Some(due) = clock.due(periods::MINUTE as u64, judged_until(memory, r, &g.name))
                else {
                    continue;
                };
                let Some(minutes) = clock.minutes() else {
                    continue;
                };
                let label = metric_label(&c.metric);
                let fixed = fixed_reference(r, baseline, previous.as_deref(), &label);
                let Some(e) = sequential(input, c, &label, minutes, scopes, fixed) else {
                    unjudged = true;
                    continue;
                };
                let at = DateTime::from_timestamp(due.end, 0).unwrap_or(input.now);
                points.push(MetricPoint::of(
                    PointKind::Guardrail,
                    &g.name,
                    &label,
                    at,
                    Some(periods::MINUTE as u64),
                    &e,
                ));
                memory.judged_until.insert(g.name.clone(), at);
                let streak = eval::next_streak(memory.streak(&g.name), e.verdict);
                memory.set_streak(&g.name, streak);
                if e.verdict != Verdict::Breach {
                    continue;
                }
                // The test already weighs every minute: it acts at once.
                (e, 1)
            }
            GuardrailKind::Metric(c) => {
                let Some(range) = clock.due(g.window.as_secs(), judged_until(memory, r, &g.name))
                else {
                    continue; // no new complete period: the streak stands
                };
                let label = metric_label(&c.metric);
                let mut references = References {
                    baseline: baseline.and_then(|b| b.value(&label)),
                    previous_phase: previous
                        .as_deref()
                        .and_then(|p| r.phase_stats.value(p, &label)),
                    stable: None,
                };
                let mut last_breach = None;
                for span in range.spans() {
                    let Some(observation) =
                        input
                            .readings
                            .observe_in(&c.metric, scopes.subject, plan, span)
                    else {
                        unjudged = true;
                        break;
                    };
                    if c.reference == Reference::Stable {
                        let Some(stable) = scopes
                            .stable
                            .map(|st| input.readings.observe_in(&c.metric, st, plan, span))
                        else {
                            // No stable version known (yet): nothing to compare.
                            break;
                        };
                        let Some(stable) = stable else {
                            unjudged = true;
                            break;
                        };
                        references.stable = stable.value.filter(|_| {
                            stable.samples >= min_samples_for(&c.metric, g.min_samples)
                        });
                    }
                    let e = eval::evaluate(
                        &label,
                        c,
                        observation,
                        min_samples_for(&c.metric, g.min_samples),
                        references,
                    );
                    let at = span.end_time();
                    let e = apply_no_data_policy(memory, &g.name, plan.insufficient_data, e, at);
                    points.push(MetricPoint::of(
                        PointKind::Guardrail,
                        &g.name,
                        &label,
                        at,
                        Some(span.secs() as u64),
                        &e,
                    ));
                    let streak = eval::next_streak(memory.streak(&g.name), e.verdict);
                    memory.set_streak(&g.name, streak);
                    memory.judged_until.insert(g.name.clone(), at);
                    if e.verdict == Verdict::Breach {
                        last_breach = Some(e);
                    }
                }
                // Acts only on a breach judged now, never on old streaks.
                let Some(e) = last_breach else { continue };
                (e, g.consecutive.max(1))
            }
        };
        let streak = memory.streak(&g.name);
        if eval::should_act(streak, needed) {
            acting.push((g, evaluation, before < needed));
        }
    }
    acting.sort_by_key(|(g, _, _)| match g.action {
        GuardrailAction::Rollback => 0,
        GuardrailAction::Pause => 1,
        GuardrailAction::Observe => 2,
    });
    let Some((g, evaluation, first)) = acting.into_iter().next() else {
        return (None, unjudged, points);
    };
    let reason = format!("guardrail {} breached: {}", g.name, evaluation.explanation);
    let evidence = GuardrailEvidence {
        guardrail: g.name.clone(),
        action: g.action,
        window_secs: g.window.as_secs(),
        consecutive: g.consecutive,
        evaluation,
    };
    let pending = r.write_pending();
    let decision = match g.action {
        // Already rolling back: nothing more to ask for.
        GuardrailAction::Rollback if r.rollback_pending() => None,
        GuardrailAction::Rollback => Some(Decision::Rollback { reason, evidence }),
        GuardrailAction::Pause if r.state == State::Active && !pending => {
            Some(Decision::Pause { reason, evidence })
        }
        // Observe, or pause on a rollout that cannot pause: once per streak.
        _ if first => Some(Decision::Observe { reason, evidence }),
        _ => None,
    };
    (decision, unjudged, points)
}

fn alarm_evaluation(alarm: &str, firing: bool) -> Evaluation {
    Evaluation {
        verdict: if firing {
            Verdict::Breach
        } else {
            Verdict::Pass
        },
        observed: None,
        samples: 0,
        min_samples: 0,
        threshold: None,
        reference: None,
        explanation: format!(
            "CloudWatch alarm {alarm} is {}",
            if firing { "in ALARM" } else { "not in ALARM" }
        ),
        judgement: None,
    }
}

/// Under `policy = "breach"`, a guardrail that has had insufficient data
/// for `after` counts as breached; any real verdict resets the clock.
fn apply_no_data_policy(
    memory: &mut WatchMemory,
    guardrail: &str,
    policy: InsufficientData,
    mut e: Evaluation,
    now: DateTime<Utc>,
) -> Evaluation {
    if e.verdict != Verdict::InsufficientData {
        memory.silent_since.remove(guardrail);
        return e;
    }
    let since = *memory
        .silent_since
        .entry(guardrail.to_string())
        .or_insert(now);
    let after = TimeDelta::from_std(policy.after).unwrap_or(TimeDelta::MAX);
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

/// The current phase's gates and every metric of the phase, evaluated
/// over their recent spans (complete minutes since the phase began).
fn evaluate_phase(input: &Input<'_>, phase: &Phase, baseline: Option<&Baseline>) -> Readiness {
    let r = input.rollout;
    let plan = input.plan;
    let clock = Clock::of(r, plan, input.now);
    let previous = previous_phase(r, r.phase_index);
    let scopes = scopes_of(r, r.phase_index);
    let observe_in = |window: u64, metric: &MetricRef, scope: Scope<'_>| {
        let span = clock.recent(window).ok_or(Unread::NotYet)?;
        input
            .readings
            .observe_in(metric, scope, plan, span)
            .ok_or(Unread::Failed)
    };
    let observe = |window: u64, metric: &MetricRef| observe_in(window, metric, scopes.subject);
    let mut observed = BTreeMap::new();
    for (window, metric) in phase_reads(plan, r.phase_index) {
        if let Ok(o) = observe(window, &metric) {
            observed.entry(metric_label(&metric)).or_insert(o.value);
        }
    }
    // Invocations that reached the function outside the alias (callers of
    // `$LATEST` or of a version): they run neither the canary nor the stable.
    if let (Some(stable), Some(span)) = (scopes.stable, clock.recent(OUTSIDE_WINDOW)) {
        let count = |scope| {
            input
                .readings
                .observe_in(&MetricRef::Invocations, scope, plan, span)
                .and_then(|o| o.value)
        };
        if let (Some(all), Some(canary), Some(stable)) = (
            count(Scope::Function(&r.function_name)),
            count(scopes.subject),
            count(stable),
        ) {
            observed.insert(
                "outside_alias_invocations".to_string(),
                Some((all - canary - stable).max(0.0)),
            );
        }
    }
    let gates = phase
        .gates
        .iter()
        .map(|g| {
            let label = metric_label(&g.condition.metric);
            let mut references = References {
                baseline: baseline.and_then(|b| b.value(&label)),
                previous_phase: previous
                    .as_deref()
                    .and_then(|p| r.phase_stats.value(p, &label)),
                stable: None,
            };
            let e = if g.condition.judge == Judge::Sequential {
                let fixed = fixed_reference(r, baseline, previous.as_deref(), &label);
                match clock.minutes() {
                    None => Err(Unread::NotYet),
                    Some(minutes) => {
                        sequential(input, &g.condition, &label, minutes, scopes, fixed)
                            .ok_or(Unread::Failed)
                    }
                }
            } else {
                let stable = match (g.condition.reference, scopes.stable) {
                    (Reference::Stable, Some(st)) => {
                        observe_in(g.window.as_secs(), &g.condition.metric, st).map(Some)
                    }
                    _ => Ok(None),
                };
                stable.and_then(|stable| {
                    if let Some(st) = stable {
                        references.stable = st.value.filter(|_| {
                            st.samples >= min_samples_for(&g.condition.metric, g.min_samples)
                        });
                    }
                    let o = observe(g.window.as_secs(), &g.condition.metric)?;
                    Ok(eval::evaluate(
                        &label,
                        &g.condition,
                        o,
                        min_samples_for(&g.condition.metric, g.min_samples),
                        references,
                    ))
                })
            };
            let e = match e {
                Ok(e) => e,
                Err(why) => Evaluation {
                    verdict: Verdict::InsufficientData,
                    observed: None,
                    samples: 0,
                    min_samples: g.min_samples,
                    threshold: None,
                    reference: None,
                    explanation: match why {
                        Unread::NotYet => format!(
                            "{label}: no complete minute of data since the phase began yet (data settles for {}s)",
                            plan.settle.as_secs()
                        ),
                        Unread::Failed => format!("{label}: CloudWatch could not be read this tick"),
                    },
                    judgement: None,
                },
            };
            GateResult {
                name: g.name.clone(),
                verdict: e.verdict,
                explanation: e.explanation.clone(),
                evaluation: e,
            }
        })
        .collect();
    Readiness {
        phase: phase.name.clone(),
        evaluated_at: input.now,
        gates,
        observed,
        unjudged_guardrails: Vec::new(),
    }
}

/// The position `previous_phase` refers to from `position`: the phase
/// before (for a canary phase's steps and its 100 % position alike, the
/// last full position before the phase, not its own earlier step).
fn previous_phase(r: &Rollout, position: usize) -> Option<String> {
    (position > 0).then(|| r.phase_name_at(r.stable_of(position)).to_string())
}

/// A fixed reference of a sequential test (the baseline, or the previous
/// phase): its value and, for the baseline, the invocations behind it.
#[derive(Debug, Clone, Copy)]
struct Fixed {
    value: Option<f64>,
    samples: Option<u64>,
}

fn fixed_reference(
    r: &Rollout,
    baseline: Option<&Baseline>,
    previous: Option<&str>,
    label: &str,
) -> [Fixed; 2] {
    let from_baseline = baseline.and_then(|b| b.0.get(label));
    [
        Fixed {
            value: from_baseline.and_then(|m| m.value),
            samples: from_baseline.map(|m| m.samples),
        },
        Fixed {
            value: previous.and_then(|p| r.phase_stats.value(p, label)),
            samples: None,
        },
    ]
}

/// A fixed reference known only as a rate is taken as known exactly: a
/// million notional trials.
const KNOWN_RATE_TRIALS: u64 = 1_000_000;

/// A `judge = "sequential"` condition over every minute since the flags
/// went live. `None` when a minute's data could not be read this tick.
fn sequential(
    input: &Input<'_>,
    c: &Condition,
    label: &str,
    minutes: Range,
    scopes: Scopes<'_>,
    fixed: [Fixed; 2],
) -> Option<Evaluation> {
    let plan = input.plan;
    let config = stats::JudgeConfig {
        alpha: plan.judge.alpha,
        ..stats::JudgeConfig::default()
    };
    let tolerance = match c.bound {
        Bound::MaxDelta(d) => Tolerance::Delta(d),
        Bound::MaxRatio(k) => Tolerance::Ratio(k),
        // Refused by plan validation.
        _ => {
            return Some(inconclusive(
                label,
                "judge = \"sequential\" needs max_delta or max_ratio",
            ));
        }
    };
    let reference = match c.reference {
        Reference::Stable => None,
        Reference::Baseline => Some(fixed[0]),
        Reference::PreviousPhase => Some(fixed[1]),
    };
    if c.reference == Reference::Stable && scopes.stable.is_none() {
        return Some(inconclusive(
            label,
            "no stable version serves traffic to compare with",
        ));
    }
    let mut too_few = None;
    let (judgement, subject_value, reference_value) = if c.metric == MetricRef::ErrorRate {
        let subject: Vec<Counts> = minutes
            .spans()
            .map(|span| input.readings.counts(scopes.subject, plan, span))
            .collect::<Option<_>>()?;
        let rate = |counts: &[Counts]| {
            let (e, t) = counts
                .iter()
                .fold((0u64, 0u64), |(e, t), c| (e + c.events, t + c.trials));
            eval::error_rate_percent(e as f64, t as f64)
        };
        match (reference, scopes.stable) {
            (None, Some(stable)) => {
                let stable: Vec<Counts> = minutes
                    .spans()
                    .map(|span| input.readings.counts(stable, plan, span))
                    .collect::<Option<_>>()?;
                (
                    stats::judge_counts(
                        label,
                        &subject,
                        CountReference::Concurrent(&stable),
                        tolerance,
                        &config,
                    ),
                    rate(&subject),
                    rate(&stable),
                )
            }
            (
                Some(Fixed {
                    value: Some(value),
                    samples,
                }),
                _,
            ) => {
                let trials = samples.filter(|s| *s > 0).unwrap_or(KNOWN_RATE_TRIALS);
                let events = (value / 100.0 * trials as f64).round().max(0.0) as u64;
                (
                    stats::judge_counts(
                        label,
                        &subject,
                        CountReference::Fixed(Counts { events, trials }),
                        tolerance,
                        &config,
                    ),
                    rate(&subject),
                    Some(value),
                )
            }
            _ => return Some(inconclusive(label, "no reference value to compare with")),
        }
    } else {
        let values_in = |scope: Scope<'_>| -> Option<Vec<(f64, u64)>> {
            let mut out = Vec::new();
            for span in minutes.spans() {
                let o = input.readings.observe_in(&c.metric, scope, plan, span)?;
                if let Some(v) = o.value.filter(|v| v.is_finite() && o.samples > 0) {
                    out.push((v, o.samples));
                }
            }
            Some(out)
        };
        let with_samples = values_in(scopes.subject)?;
        let subject: Vec<f64> = with_samples.iter().map(|(v, _)| *v).collect();
        too_few = percentile_too_thin(&c.metric, &with_samples);
        let values_in =
            |scope| values_in(scope).map(|v| v.into_iter().map(|(v, _)| v).collect::<Vec<f64>>());
        match (reference, scopes.stable) {
            (None, Some(stable)) => {
                let stable = values_in(stable)?;
                (
                    stats::judge_values(label, &subject, &stable, tolerance, &config),
                    median(&subject),
                    median(&stable),
                )
            }
            (Some(Fixed { value: Some(v), .. }), _) => (
                crate::domain::sign_test::judge_values_fixed(
                    label, &subject, v, tolerance, &config,
                ),
                median(&subject),
                Some(v),
            ),
            _ => return Some(inconclusive(label, "no reference value to compare with")),
        }
    };
    let judgement = match too_few {
        Some(why) if judgement.verdict == JudgeVerdict::NoRegression => stats::Judgement {
            verdict: JudgeVerdict::Inconclusive,
            explanation: format!("{} — but {why}", judgement.explanation),
            ..judgement
        },
        _ => judgement,
    };
    Some(evaluation_of(judgement, subject_value, reference_value))
}

/// A percentile of a minute with few invocations reads low (the
/// nearest-rank p99 of 120 invocations is below the true p99 more often
/// than not), which would let a canary look as fast as it is not. Below
/// ten invocations past the percentile a minute, it may still show a
/// regression but never vouch for its absence.
fn percentile_too_thin(metric: &MetricRef, datapoints: &[(f64, u64)]) -> Option<String> {
    let MetricRef::DurationPercentile(p) = metric else {
        return None;
    };
    let needed = (10.0 / (1.0 - p / 100.0)).ceil().max(1.0) as u64;
    let mut samples: Vec<u64> = datapoints.iter().map(|(_, n)| *n).collect();
    samples.sort_unstable();
    let typical = samples.get(samples.len() / 2).copied().unwrap_or(0);
    (typical < needed).then(|| {
        format!(
            "a minute's p{p} from {typical} invocations reads low; \"no regression\" needs {needed} a minute"
        )
    })
}

/// A sequential verdict as the audit log and charts record evaluations:
/// the subject's pooled value (error rate over every minute, or the median
/// minute) against the reference's.
fn evaluation_of(j: stats::Judgement, observed: Option<f64>, reference: Option<f64>) -> Evaluation {
    Evaluation {
        verdict: match j.verdict {
            JudgeVerdict::Regression => Verdict::Breach,
            JudgeVerdict::NoRegression => Verdict::Pass,
            JudgeVerdict::Inconclusive => Verdict::InsufficientData,
        },
        observed,
        samples: j.subject_samples,
        min_samples: 0,
        threshold: None,
        reference,
        explanation: j.explanation.clone(),
        judgement: Some(j),
    }
}

fn inconclusive(label: &str, why: &str) -> Evaluation {
    Evaluation {
        verdict: Verdict::InsufficientData,
        observed: None,
        samples: 0,
        min_samples: 0,
        threshold: None,
        reference: None,
        explanation: format!("{label}: {why}"),
        judgement: None,
    }
}

/// Why a span has no observation.
enum Unread {
    /// The phase has no complete minute yet.
    NotYet,
    /// Its GetMetricData call failed.
    Failed,
}

#[cfg(test)]
mod tests;

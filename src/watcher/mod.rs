//! The watcher: observe → decide → act. Each tick fetches what every
//! watched rollout needs once (metrics in the fewest GetMetricData calls,
//! alarms, functions, due baselines), a pure function (`decide::judge`)
//! returns each rollout's decisions and new memory, and the service carries
//! them out as `Principal::Watcher`. Its memory is stored, so a restart
//! resumes it. The tick's `now` is the only clock it reads.

pub mod decide;
pub mod drift;
mod observe;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::backend::Listed;
use crate::domain::{Baseline, Principal, RolloutId, WatchMemory};
use crate::metrics::cloudwatch::{CloudWatch, Fetched};
use crate::plan::{GuardrailKind, Plan};
use crate::rollout::{Command, Rollout, State};
use crate::service::{Ask, FunctionRead, Service, ServiceError};
use decide::{Decision, Input, Readings, guardrails_at, judge, live_phase, reads};

/// Rollouts watched at once within a tick.
const WATCH_CONCURRENCY: usize = 32;
/// Default drift-check interval and Lambda API budget (calls a second, of
/// an account's ~15 that deploy pipelines share).
pub const DEFAULT_DRIFT_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_LAMBDA_BUDGET: f64 = 2.0;
/// Baselines read at once within a tick.
const BASELINE_CONCURRENCY: usize = 4;

/// One decision the watcher carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Acted {
    pub rollout: RolloutId,
    pub action: &'static str,
    pub reason: String,
}

/// What one tick did, for diagnostics, metrics and benchmarks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TickReport {
    pub at: Option<DateTime<Utc>>,
    pub rollouts_watched: usize,
    pub get_metric_data_calls: usize,
    pub queries: usize,
    pub decisions: Vec<Acted>,
    pub errors: Vec<String>,
    /// Wall time spent fetching metrics and alarms, and on the rollouts' own work.
    pub fetch_ms: f64,
    pub rollouts_ms: f64,
    /// Functions checked for drift, and the Lambda calls that took.
    pub drift_checks: usize,
    pub lambda_calls: u32,
    /// Evaluations to keep for the charts (written once per tick, for all).
    #[serde(skip)]
    points: Vec<(RolloutId, crate::domain::MetricPoint)>,
    /// Watch memories that changed (written once per tick, for all).
    #[serde(skip)]
    memories: Vec<(RolloutId, WatchMemory)>,
}

/// Points kept per guardrail or gate of a rollout before older ones are
/// thinned out (12 hours at one a minute).
const POINTS_CAP: usize = 720;
/// How often histories are thinned.
const THIN_EVERY: TimeDelta = TimeDelta::hours(1);

/// What a tick fetched once for all rollouts.
struct Seen<'a> {
    readings: &'a Readings,
    listing: Option<&'a HashMap<String, Listed>>,
    /// The rollouts whose function is checked this tick.
    checks: &'a std::collections::HashSet<RolloutId>,
    now: DateTime<Utc>,
}

/// Drift checks: when each rollout's function was last read, the budget,
/// and how many functions the last listing returned.
struct DriftState {
    every: Duration,
    budget: drift::Budget,
    checked: HashMap<RolloutId, DateTime<Utc>>,
    functions: usize,
}

pub struct Watcher {
    service: Arc<Service>,
    cloudwatch: CloudWatch,
    /// How often it ticks: gate results are recorded again at this age.
    interval: Duration,
    last: Mutex<TickReport>,
    /// When histories were last thinned.
    thinned_at: Mutex<Option<DateTime<Utc>>>,
    /// Values of complete periods already read, kept while still needed.
    cache: Mutex<Fetched>,
    drift: Mutex<DriftState>,
}

impl Watcher {
    pub fn new(service: Arc<Service>, cloudwatch: CloudWatch, interval: Duration) -> Self {
        Watcher {
            service,
            cloudwatch,
            interval,
            last: Mutex::default(),
            thinned_at: Mutex::default(),
            cache: Mutex::default(),
            drift: Mutex::new(DriftState {
                every: DEFAULT_DRIFT_INTERVAL,
                budget: drift::Budget::new(DEFAULT_LAMBDA_BUDGET),
                checked: HashMap::new(),
                functions: 0,
            }),
        }
    }

    /// Checks each function for drift every `every` (zero: every tick),
    /// spending at most `calls_per_second` Lambda calls on it.
    pub fn with_drift(self, every: Duration, calls_per_second: f64) -> Self {
        {
            let mut d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
            d.every = every;
            d.budget = drift::Budget::new(calls_per_second);
        }
        self
    }

    pub fn last_tick(&self) -> TickReport {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// One pass over every watched rollout (guardrails protect a paused or
    /// failed rollout too).
    pub async fn tick(&self, now: DateTime<Utc>) -> TickReport {
        let started = std::time::Instant::now();
        let report = self.tick_inner(now).await;
        let t = self.service.telemetry();
        t.watcher_ticks.inc();
        t.watcher_tick_seconds
            .observe(started.elapsed().as_secs_f64());
        t.watched_rollouts.set(report.rollouts_watched as i64);
        t.cloudwatch_calls
            .inc_by(report.get_metric_data_calls as u64);
        t.cloudwatch_queries.inc_by(report.queries as u64);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = report.clone();
        report
    }

    async fn tick_inner(&self, now: DateTime<Utc>) -> TickReport {
        let mut report = TickReport {
            at: Some(now),
            ..TickReport::default()
        };
        let watched = match self.service.watched().await {
            Ok(w) => w,
            Err(e) => {
                report.errors.push(e.to_string());
                return report;
            }
        };
        report.rollouts_watched = watched.len();
        let watched: Vec<(Rollout, Result<Arc<Plan>, String>, WatchMemory)> = watched
            .into_iter()
            .map(|(r, m)| {
                let plan = self.service.plan_of(&r);
                (r, plan, m)
            })
            .collect();
        let fetch_started = std::time::Instant::now();
        let mut cost = observe::Cost::default();

        // Baselines first: the first, and incomplete ones when due again.
        let due: Vec<_> = watched
            .iter()
            .filter_map(|(r, plan, m)| Some((r, plan.as_ref().ok()?, m)))
            .filter(|(r, _, m)| match &r.baseline {
                None => true,
                Some(b) => !b.is_complete() && m.baseline_retry_at.is_none_or(|t| now >= t),
            })
            .map(|(r, plan, _)| async move {
                (
                    r.id,
                    observe::baseline(&self.cloudwatch, r, plan, now).await,
                )
            })
            .collect();
        let mut baselines: HashMap<RolloutId, Baseline> = HashMap::new();
        let fetched: Vec<_> = futures_util::stream::iter(due)
            .buffer_unordered(BASELINE_CONCURRENCY)
            .collect()
            .await;
        for (id, result) in fetched {
            match result {
                Ok((b, c)) => {
                    cost.calls += c.calls;
                    cost.queries += c.queries;
                    baselines.insert(id, b);
                }
                Err(e) => cost.errors.push(format!("rollout {id}: baseline: {e}")),
            }
        }

        let judged: Vec<(&Rollout, &Plan)> = watched
            .iter()
            .filter_map(|(r, plan, _)| Some((r, plan.as_ref().ok()?.as_ref())))
            .collect();
        let needs = watched
            .iter()
            .filter_map(|(r, plan, memory)| Some(reads(r, plan.as_ref().ok()?, memory, now)))
            .flatten()
            .collect();
        let mut readings = Readings {
            values: observe::metric_values(&self.cloudwatch, needs, &self.cache, &mut cost).await,
            firing: None,
        };
        let alarms = judged
            .iter()
            .flat_map(|(r, plan)| guardrails_at(plan, live_phase(r)))
            .filter_map(|g| match &g.kind {
                GuardrailKind::Alarm { alarm } => Some(alarm.clone()),
                GuardrailKind::Metric(_) => None,
            })
            .collect();
        readings.firing = observe::firing(&self.cloudwatch, alarms, &mut cost).await;
        report.get_metric_data_calls = cost.calls;
        report.queries = cost.queries;
        report.errors.append(&mut cost.errors);
        report.fetch_ms = fetch_started.elapsed().as_secs_f64() * 1000.0;

        let rollouts_started = std::time::Instant::now();
        // Drift checks: the functions due, within the Lambda budget; many
        // at once by one paged ListFunctions instead of a read each.
        let candidates: Vec<RolloutId> = watched
            .iter()
            .filter(|(r, _, _)| {
                !r.write_pending() && matches!(r.state, State::Active | State::Paused)
            })
            .map(|(r, _, _)| r.id)
            .collect();
        let checks = {
            let mut d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
            d.checked.retain(|id, _| candidates.contains(id));
            d.budget.refill(now);
            let every = TimeDelta::from_std(d.every).unwrap_or(TimeDelta::MAX);
            let plan = drift::plan_checks(
                &candidates,
                &d.checked,
                now,
                every,
                d.budget.available(),
                d.functions,
            );
            d.budget.spend(plan.calls(), now);
            plan
        };
        report.drift_checks = checks.ids().len();
        report.lambda_calls = checks.calls();
        let listing = match &checks {
            drift::Checks::List { pages, .. } => match self.service.list_functions().await {
                Ok(l) => {
                    // The account may hold more functions than planned
                    // for: the pages beyond are charged as debt.
                    let actual = l.len().div_ceil(drift::PAGE).max(1) as u32;
                    let extra = actual.saturating_sub(*pages);
                    let mut d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
                    d.functions = l.len();
                    d.budget.spend(extra, now);
                    report.lambda_calls += extra;
                    Some(l)
                }
                Err(e) => {
                    report.errors.push(format!("ListFunctions: {e}"));
                    None
                }
            },
            drift::Checks::Each(_) => None,
        };
        let checked: std::collections::HashSet<RolloutId> = match &listing {
            None if matches!(checks, drift::Checks::List { .. }) => Default::default(),
            _ => checks.ids().iter().copied().collect(),
        };
        let seen = Seen {
            readings: &readings,
            listing: listing.as_ref(),
            checks: &checked,
            now,
        };
        let jobs: Vec<_> = watched
            .iter()
            .map(|(r, plan, memory)| self.watch_one(r, plan, memory, baselines.get(&r.id), &seen))
            .collect();
        let parts: Vec<TickReport> = futures_util::stream::iter(jobs)
            .buffer_unordered(WATCH_CONCURRENCY)
            .collect()
            .await;
        let mut points = Vec::new();
        let mut memories = Vec::new();
        for part in parts {
            report.decisions.extend(part.decisions);
            report.errors.extend(part.errors);
            points.extend(part.points);
            memories.extend(part.memories);
        }
        // Every rollout's memory in one transaction: a period completing
        // changes all of them at once.
        if let Err(e) = self.service.save_watch_memories(&memories, now).await {
            report.errors.push(format!("watch memory: {e}"));
        }
        {
            let mut d = self.drift.lock().unwrap_or_else(|p| p.into_inner());
            d.checked.extend(checked.iter().map(|id| (*id, now)));
            let t = self.service.telemetry();
            t.drift_calls.inc_by(u64::from(report.lambda_calls));
            t.drift_budget_used.set(d.budget.used_ratio(now));
        }
        if let Err(e) = self.service.record_points(&points).await {
            report.errors.push(format!("chart points: {e}"));
        }
        let due = {
            let mut thinned = self.thinned_at.lock().unwrap_or_else(|p| p.into_inner());
            let due = thinned.is_none_or(|t| now - t >= THIN_EVERY || t > now);
            if due {
                *thinned = Some(now);
            }
            due
        };
        if due {
            for (r, _, _) in &watched {
                if let Err(e) = self.service.thin_points(r.id, POINTS_CAP).await {
                    report
                        .errors
                        .push(format!("rollout {}: thinning chart points: {e}", r.id));
                }
            }
        }
        report.rollouts_ms = rollouts_started.elapsed().as_secs_f64() * 1000.0;
        report
    }

    /// One rollout's share of a tick: read its function, judge, act, and
    /// store the memory if it changed.
    async fn watch_one(
        &self,
        r: &Rollout,
        plan: &Result<Arc<Plan>, String>,
        memory: &WatchMemory,
        fresh_baseline: Option<&Baseline>,
        seen: &Seen<'_>,
    ) -> TickReport {
        let mut report = TickReport::default();
        let plan = match plan {
            Ok(p) => p,
            Err(error) => {
                self.plan_unreadable(r, memory, error, seen.now, &mut report)
                    .await;
                return report;
            }
        };
        let function = if r.write_pending()
            || !matches!(r.state, State::Active | State::Paused)
            || !seen.checks.contains(&r.id)
        {
            None
        } else {
            // Listed functions are keyed by ARN: one of another region is
            // not in the default region's listing and is read on its own.
            // An alias rollout reads its alias (GetAlias), never a listing.
            let listed = seen
                .listing
                .filter(|_| r.alias.is_none())
                .and_then(|l| l.get(&r.function_arn));
            Some(match listed {
                Some(listed) => FunctionRead::from_listing(listed, r),
                None => self.service.read_function(r).await,
            })
        };
        if let Some(FunctionRead::Failed(e)) = &function {
            report
                .errors
                .push(format!("rollout {}: reading the function: {e}", r.id));
        }
        // Refreshed at half the interval, so every tick rewrites it even
        // when ticks jitter: an advance never finds it stale while the
        // watcher is healthy.
        let interval = TimeDelta::from_std(self.interval / 2).unwrap_or(TimeDelta::seconds(5));
        let judgement = judge(&Input {
            rollout: r,
            plan,
            memory,
            readings: seen.readings,
            function: function.as_ref(),
            fresh_baseline,
            now: seen.now,
            refresh_readiness: interval,
            points_every: decide::points_every(
                TimeDelta::from_std(self.interval).unwrap_or(TimeDelta::seconds(10)),
            ),
            freshness: self.service.freshness(),
        });
        let mut new_memory = judgement.memory;
        for decision in judgement.decisions {
            if let Decision::RecordPoints(points) = decision {
                report.points.extend(points.into_iter().map(|p| (r.id, p)));
                continue;
            }
            let action = decision.action();
            let reason = reason_of(&decision);
            match self.act(r, plan, decision, seen.now).await {
                Ok(done) => {
                    if done.streaks_reset {
                        new_memory.streaks.clear();
                    }
                    if let Some(w) = done.warning {
                        report
                            .errors
                            .push(format!("rollout {}: {action}: {w}", r.id));
                    }
                    if done.reported {
                        self.service.telemetry().count_decision(action);
                        if matches!(action, "rollback" | "pause" | "observe") {
                            tracing::warn!(rollout = %r.id, action, %reason, "guardrail breached");
                        }
                        report.decisions.push(Acted {
                            rollout: r.id,
                            action,
                            reason,
                        });
                    }
                }
                Err(e) => {
                    // A rollback or pause that could not be recorded (a
                    // concurrent command, the database) is judged again
                    // next tick: the periods it judged are not used up.
                    if matches!(action, "rollback" | "pause") {
                        new_memory = memory.clone();
                    }
                    report
                        .errors
                        .push(format!("rollout {}: {action}: {e}", r.id))
                }
            }
        }
        if new_memory != *memory {
            report.memories.push((r.id, new_memory));
        }
        report
    }

    /// Has the service carry out one decision.
    async fn act(
        &self,
        r: &Rollout,
        plan: &Plan,
        decision: Decision,
        now: DateTime<Utc>,
    ) -> Result<ActOutcome, String> {
        let who = &Principal::Watcher;
        let s = &self.service;
        let e = |e: crate::service::ServiceError| e.to_string();
        let reported = |ok: bool| ActOutcome {
            reported: ok,
            streaks_reset: false,
            warning: None,
        };
        Ok(match decision {
            Decision::RecordBaseline(b) => {
                s.record_baseline(who, r, &b, plan.baseline.lookback.as_secs(), now)
                    .await
                    .map_err(e)?;
                reported(false)
            }
            Decision::RecordReadiness(readiness) => {
                s.record_readiness(r, &readiness).await.map_err(e)?;
                reported(false)
            }
            Decision::RecordObserved(flags) => {
                s.record_observed(r, &flags, now).await.map_err(e)?;
                reported(false)
            }
            // Collected by `watch_one` and written once for the whole tick.
            Decision::RecordPoints(_) => reported(false),
            Decision::Rollback { reason, evidence } => {
                // Decided on this tick's snapshot: carried out only if no
                // one (an operator, another process's watcher) changed the
                // rollout since; otherwise the next tick judges again.
                let ask = Ask {
                    reason: Some(reason),
                    evidence: Some(json!(evidence)),
                    expected_version: Some(r.version),
                    at: Some(now),
                    announce: Some("rollback"),
                    ..Ask::default()
                };
                // A rollback AWS refuses is still recorded (the rollout is
                // failed, the write retried, the webhooks told): done, with
                // a warning in the tick report.
                let warning = match s
                    .command(who, r.id, Command::Rollback { to: None }, ask)
                    .await
                {
                    Ok(_) => None,
                    Err(ServiceError::Unprocessable(m)) => Some(m),
                    Err(other) => return Err(other.to_string()),
                };
                ActOutcome {
                    reported: true,
                    streaks_reset: true,
                    warning,
                }
            }
            Decision::Pause { reason, evidence } => {
                let ask = Ask {
                    reason: Some(reason),
                    evidence: Some(json!(evidence)),
                    expected_version: Some(r.version),
                    at: Some(now),
                    announce: Some("pause"),
                    ..Ask::default()
                };
                s.command(who, r.id, Command::Pause, ask).await.map_err(e)?;
                ActOutcome {
                    reported: true,
                    streaks_reset: true,
                    warning: None,
                }
            }
            Decision::Observe { reason, evidence } => {
                s.record_breach(who, r, &reason, json!(evidence))
                    .await
                    .map_err(e)?;
                reported(true)
            }
            Decision::FunctionUnreadable(cause) => {
                reported(s.function_unreadable(who, r, &cause).await.map_err(e)?)
            }
            Decision::FunctionReadable => reported(s.function_readable(who, r).await.map_err(e)?),
            Decision::RestartBake { before, after } => reported(
                s.restart_bake(who, r, &before, &after, now)
                    .await
                    .map_err(e)?,
            ),
            Decision::RevertDrift(evidence) => {
                let done = s
                    .revert_drift(who, r, &evidence.observed, json!(evidence), now)
                    .await
                    .map_err(e)?;
                reported(done.is_some())
            }
            Decision::PauseForDrift(evidence) => {
                let ask = Ask {
                    reason: Some(
                        "owned flags changed outside rollgate (drift policy \"pause\")".into(),
                    ),
                    evidence: Some(json!(evidence)),
                    expected_version: Some(r.version),
                    at: Some(now),
                    announce: Some("drift"),
                    ..Ask::default()
                };
                s.command(who, r.id, Command::Pause, ask).await.map_err(e)?;
                reported(true)
            }
            Decision::AnnounceReady { phase, gates } => {
                s.announce_ready(r, &phase, &gates);
                reported(true)
            }
            Decision::Advance { reason, gates } => {
                let ask = Ask {
                    reason: Some(reason),
                    evidence: Some(json!({ "gates": gates })),
                    expected_version: Some(r.version),
                    at: Some(now),
                    ..Ask::default()
                };
                s.command(who, r.id, Command::Advance, ask)
                    .await
                    .map_err(e)?;
                reported(true)
            }
        })
    }

    /// A rollout whose plan snapshot no longer parses: reported once, and
    /// kept in the watched set (shown as needing attention).
    async fn plan_unreadable(
        &self,
        r: &Rollout,
        memory: &WatchMemory,
        error: &str,
        now: DateTime<Utc>,
        report: &mut TickReport,
    ) {
        report.errors.push(format!("rollout {}: {error}", r.id));
        if memory.plan_error.as_deref() == Some(error) {
            return;
        }
        let result = self
            .service
            .plan_unreadable(&Principal::Watcher, r, error)
            .await;
        let saved = self
            .service
            .save_watch_memory(
                r.id,
                &WatchMemory {
                    plan_error: Some(error.to_string()),
                    ..memory.clone()
                },
                now,
            )
            .await;
        match result.and(saved) {
            Ok(()) => report.decisions.push(Acted {
                rollout: r.id,
                action: "plan_unreadable",
                reason: error.to_string(),
            }),
            Err(e) => report.errors.push(format!("rollout {}: {e}", r.id)),
        }
    }
}

/// What carrying out a decision did.
struct ActOutcome {
    /// A decision worth reporting was carried out.
    reported: bool,
    /// A rollback or pause was recorded: the streaks start over.
    streaks_reset: bool,
    /// Done, but worth an operator's attention (e.g. AWS refused the write).
    warning: Option<String>,
}

fn reason_of(d: &Decision) -> String {
    match d {
        Decision::Rollback { reason, .. }
        | Decision::Pause { reason, .. }
        | Decision::Observe { reason, .. }
        | Decision::Advance { reason, .. } => reason.clone(),
        Decision::FunctionUnreadable(cause) => cause.clone(),
        Decision::FunctionReadable => "the function can be read again".into(),
        Decision::RestartBake { .. } => "code changed".into(),
        Decision::RevertDrift(_) | Decision::PauseForDrift(_) => "owned flags drifted".into(),
        Decision::AnnounceReady { phase, .. } => format!("phase {phase} is ready for approval"),
        Decision::RecordBaseline(_)
        | Decision::RecordReadiness(_)
        | Decision::RecordPoints(_)
        | Decision::RecordObserved(_) => String::new(),
    }
}

//! Benchmarks of the CloudWatch time model (issue 8), on a simulated clock
//! driving the real watcher against the sandbox (in its own process):
//!
//! - **cost**: metrics requested from GetMetricData per rollout-day, and
//!   dollars, at 1, 100 and 1,000 seed-plan rollouts over a simulated hour
//!   of 10 s ticks — side by side with what polling every series every tick
//!   requested (computed from the plans by that rule) and with CloudWatch
//!   alarms on the same guardrails;
//! - **time to rollback end to end**: from the first bad invocation to the
//!   flags restored, with CloudWatch's ingestion delay modelled (data of an
//!   invocation at `t` reaches CloudWatch at `t + delay`), for the seed
//!   plan's guardrails and for a severe one-minute guardrail, the bad
//!   moment spread over the period grid.

use std::time::Instant;

use chrono::{TimeDelta, Utc};
use serde_json::json;

use super::{rig_with_plans, rollouts_in_first_phase};
use crate::metrics::queries;
use crate::plan::Plan;
use crate::watcher::decide::metrics_at;

/// GetMetricData's price: $0.01 per 1,000 metrics requested.
const DOLLARS_PER_METRIC: f64 = 0.01 / 1000.0;
/// A standard-resolution CloudWatch alarm, per metric it reads, per month.
const DOLLARS_PER_ALARM_METRIC_MONTH: f64 = 0.10;
const TICK: i64 = 10;

/// The seed plan for `function` (its custom metric's dimension too), with
/// a one-hour look-back (the baseline's length does not change the cost of
/// watching, and an hour of traffic is quick to lay down).
fn seed_plan(function: &str, extra: &str) -> String {
    let seed = include_str!("../../rollout-plans/dixon-smart-repair.toml")
        .replace("dixon-smart-repair-handler", function)
        .replace("lookback = \"7d\"", "lookback = \"1h\"");
    // Extra guardrails go before the first phase (top-level tables).
    seed.replacen("[[phases]]", &format!("{extra}\n[[phases]]"), 1)
}

/// One row of the cost table.
pub struct Cost {
    pub rollouts: usize,
    /// Measured over the simulated hour.
    pub metrics_per_hour: u64,
    pub calls_per_hour: u64,
    /// What polling every series every tick requested, per hour.
    pub polled_per_hour: u64,
    /// CloudWatch alarms mirroring the guardrails: metrics they read.
    pub alarm_metrics: u64,
}

/// Metrics the old rule requested per tick for one rollout in `phase`:
/// every (window, series) of its guardrails and gates.
fn polled_per_tick(plan: &Plan, function: &str, phase: usize) -> usize {
    let mut all = std::collections::BTreeSet::new();
    for (window, metric) in metrics_at(plan, phase) {
        for s in queries::series_for(&metric, function, &plan.metrics) {
            all.insert((window, s));
        }
    }
    all.len()
}

/// Metrics CloudWatch alarms on the plan's metric guardrails would read
/// (error rate: Errors and Invocations in a metric-math alarm).
fn alarm_metrics(plan: &Plan, function: &str, phase: usize) -> usize {
    crate::watcher::decide::guardrails_at(plan, phase)
        .into_iter()
        .filter_map(|g| match &g.kind {
            crate::plan::GuardrailKind::Metric(c) => Some(c.metric.clone()),
            crate::plan::GuardrailKind::Alarm { .. } => None,
        })
        .map(|m| match m {
            crate::plan::MetricRef::ErrorRate => 2,
            other => queries::series_for(&other, function, &plan.metrics)
                .len()
                .min(1),
        })
        .sum()
}

pub async fn cost(n: usize) -> anyhow::Result<Cost> {
    let plans: Vec<(String, String)> = (0..n)
        .map(|i| {
            let f = format!("fn-{i:05}");
            let text = seed_plan(&f, "");
            (f, text)
        })
        .collect();
    let rig = rig_with_plans(&plans).await?;
    let names: Vec<String> = plans.iter().map(|(f, _)| f.clone()).collect();
    // Started and moved to their first phase without traffic: the cost of
    // watching does not depend on the data.
    rollouts_in_first_phase(&rig.app, &names).await?;
    let plan = Plan::parse("seed", &plans[0].1).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let polled = polled_per_tick(&plan, &names[0], 1) as u64 * n as u64;
    let alarms = alarm_metrics(&plan, &names[0], 1) as u64 * n as u64;
    let (calls_before, queries_before) = rig.sandbox.get_metric_data_stats().await?;
    let start = Utc::now();
    for step in 1..=(3600 / TICK) {
        let report = rig
            .app
            .state
            .watcher
            .tick(start + TimeDelta::seconds(step * TICK))
            .await;
        anyhow::ensure!(report.errors.is_empty(), "{:?}", report.errors);
    }
    let (calls, queries) = rig.sandbox.get_metric_data_stats().await?;
    rig.app.stop().await;
    Ok(Cost {
        rollouts: n,
        metrics_per_hour: queries - queries_before,
        calls_per_hour: calls - calls_before,
        polled_per_hour: polled * (3600 / TICK) as u64,
        alarm_metrics: alarms,
    })
}

/// One end-to-end run's result: seconds from the first bad invocation to
/// the flags restored.
pub struct Timeline {
    pub label: &'static str,
    pub samples: Vec<f64>,
}

/// Time to rollback end to end on a simulated clock: good traffic, the
/// phase goes live, then at `bad_after` its invocations turn bad; data
/// reaches CloudWatch `delay` after the invocation; the watcher ticks
/// every 10 s. One function per run, so runs never see each other's data.
pub async fn end_to_end(
    label: &'static str,
    extra_guardrails: &str,
    delay: TimeDelta,
    runs: usize,
) -> anyhow::Result<Timeline> {
    let plans: Vec<(String, String)> = (0..runs)
        .map(|i| {
            let f = format!("e2e-{i:03}");
            let text = seed_plan(&f, extra_guardrails);
            (f, text)
        })
        .collect();
    let rig = rig_with_plans(&plans).await?;
    // An hour of healthy traffic before now: every function's baseline.
    rig.sandbox
        .set_traffic(json!({ "bad_flags": [], "invocations_per_tick": 200 }))
        .await?;
    rig.sandbox.traffic(60, Utc::now()).await?;
    let mut samples = Vec::new();
    // The simulator emits for every function: each run's simulated time
    // starts where the last one's ended, so no run sees data another laid
    // down for its function (healthy data from before, under its old flags,
    // only lengthens the phase's healthy start).
    let mut end = Utc::now();
    for (k, (function, _)) in plans.iter().enumerate() {
        let ids = rollouts_in_first_phase(&rig.app, std::slice::from_ref(function)).await?;
        let live = Utc::now().max(end);
        // The bad moment, spread over a five-minute grid across runs.
        let bad_at = live + TimeDelta::seconds(360 + (300 * k as i64) / runs as i64);
        let mut at = live;
        let rolled_back_at = loop {
            at += TimeDelta::seconds(TICK);
            anyhow::ensure!(
                at - live < TimeDelta::hours(1),
                "{label}: no rollback within an hour"
            );
            // What reaches CloudWatch now: the invocations of `delay` ago,
            // under the conditions of then.
            let invoked = at - delay;
            let bad = invoked >= bad_at;
            rig.sandbox
                .set_traffic(json!({
                    "bad_flags": if bad { vec!["USE_OPTIMIZED_PROMPTS"] } else { vec![] },
                    "invocations_per_tick": 200,
                }))
                .await?;
            rig.sandbox.traffic_at(invoked).await?;
            let started = Instant::now();
            let report = rig.app.state.watcher.tick(at).await;
            if report.decisions.iter().any(|d| d.action == "rollback") {
                break at + TimeDelta::from_std(started.elapsed()).unwrap_or_default();
            }
        };
        let r = rig.app.state.service.rollout(ids[0]).await?;
        anyhow::ensure!(
            r.observed_flags
                .as_ref()
                .and_then(|f| f.get("USE_OPTIMIZED_PROMPTS"))
                .map(String::as_str)
                == Some("false"),
            "{label}: run {k} did not restore the flags"
        );
        end = at + delay;
        samples.push((rolled_back_at - bad_at).as_seconds_f64());
        eprintln!("{label}: run {k}: {:.0} s", samples.last().unwrap());
    }
    rig.app.stop().await;
    Ok(Timeline { label, samples })
}

/// The severe-breach guardrail the plan reference recommends.
pub const SEVERE: &str = r#"
[[guardrails]]
name = "error-rate-severe"
metric = "error_rate"
max_delta = 5.0
window = "1m"
consecutive = 1
min_samples = 50
"#;

/// Prints the cost and timing tables (Markdown).
pub async fn run(sizes: &[usize], runs: usize) -> anyhow::Result<String> {
    let mut text = String::new();
    text.push_str(
        "### GetMetricData cost per rollout-day (seed plan in `prompts`: 2 guardrails, 3 gates)\n\n\
         | rollouts | metrics requested / hour (measured) | calls / hour | per rollout-day | $ per rollout-day | polling every tick: metrics / rollout-day | $ | CloudWatch alarms on the guardrails: $ per rollout-day |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for &n in sizes.iter().filter(|n| **n > 0) {
        let c = cost(n).await?;
        let per_day = c.metrics_per_hour as f64 * 24.0 / n as f64;
        let polled_day = c.polled_per_hour as f64 * 24.0 / n as f64;
        let alarms_day = c.alarm_metrics as f64 / n as f64 * DOLLARS_PER_ALARM_METRIC_MONTH / 30.0;
        text.push_str(&format!(
            "| {} | {} | {} | {:.0} | ${:.3} | {:.0} | ${:.3} | ${:.4} |\n",
            n,
            c.metrics_per_hour,
            c.calls_per_hour,
            per_day,
            per_day * DOLLARS_PER_METRIC,
            polled_day,
            polled_day * DOLLARS_PER_METRIC,
            alarms_day,
        ));
        eprintln!("cost {n}: done");
    }
    text.push('\n');
    text.push_str(
        "### Time to rollback, end to end (first bad invocation → flags restored; CloudWatch delay 60 s, settle 2 min, 10 s ticks)\n\n\
         | guardrails | runs | min | p50 | max |\n|---|---|---|---|---|\n",
    );
    for (label, extra) in [
        ("seed plan: error rate and p99, 5 min × 3", ""),
        (
            "seed plan + severe: error rate > baseline + 5, 1 min × 1",
            SEVERE,
        ),
    ] {
        let mut t = end_to_end(label, extra, TimeDelta::seconds(60), runs).await?;
        t.samples.sort_by(f64::total_cmp);
        text.push_str(&format!(
            "| {} | {} | {:.0} s | {:.0} s | {:.0} s |\n",
            t.label,
            t.samples.len(),
            t.samples.first().copied().unwrap_or_default(),
            super::percentile(&t.samples, 50.0),
            t.samples.last().copied().unwrap_or_default(),
        ));
    }
    Ok(text)
}

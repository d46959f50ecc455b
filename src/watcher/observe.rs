//! The watcher's reads: every series every rollout needs in the fewest
//! GetMetricData calls, the alarms in ALARM, and baselines over each
//! rollout's look-back window. I/O only; the decisions are in `decide`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::decide::{Readings, Values, baseline_from, plan_metrics};
use crate::domain::Baseline;
use crate::metrics::cloudwatch::CloudWatch;
use crate::metrics::queries::{self, Series};
use crate::plan::{MetricRef, Plan};
use crate::rollout::Rollout;

/// GetMetricData calls in flight at once within a tick.
pub const FETCH_CONCURRENCY: usize = 8;

/// What fetching cost, and what went wrong.
#[derive(Debug, Default)]
pub struct Cost {
    pub calls: usize,
    pub queries: usize,
    pub errors: Vec<String>,
}

/// Fetches every needed (window, metric) of every rollout, batched by
/// window into calls of at most 500 queries. The series of a call that
/// failed are marked unknown in `readings`.
pub async fn metric_values<'a>(
    cloudwatch: &CloudWatch,
    needs: impl IntoIterator<Item = (&'a Rollout, &'a Plan, Vec<(u64, MetricRef)>)>,
    now: DateTime<Utc>,
    cost: &mut Cost,
    readings: &mut Readings,
) {
    let series = needs.into_iter().flat_map(|(r, plan, metrics)| {
        metrics
            .into_iter()
            .flat_map(|(window, m)| {
                queries::series_for(&m, &r.function_name, &plan.metrics)
                    .into_iter()
                    .map(move |s| (window, s))
            })
            .collect::<Vec<_>>()
    });
    let batches = queries::batches(series);
    cost.queries += batches.iter().map(|b| b.series.len()).sum::<usize>();
    let fetches: Vec<_> = batches
        .iter()
        .map(|batch| async move { (batch, cloudwatch.fetch(batch, now).await) })
        .collect();
    let fetched: Vec<_> = futures_util::stream::iter(fetches)
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let values: &mut Values = &mut readings.values;
    for (batch, result) in fetched {
        match result {
            Ok((v, calls)) => {
                cost.calls += calls;
                values.entry(batch.window_secs).or_default().extend(v);
            }
            Err(e) => {
                cost.errors.push(e);
                readings
                    .unknown
                    .extend(batch.series.iter().map(|s| (batch.window_secs, s.clone())));
            }
        }
    }
}

/// The alarms among `names` that are in ALARM; `None` when they could not
/// be described (unknown, not "not in ALARM").
pub async fn firing(
    cloudwatch: &CloudWatch,
    names: Vec<String>,
    cost: &mut Cost,
) -> Option<HashSet<String>> {
    if names.is_empty() {
        return Some(HashSet::new());
    }
    let mut names = names;
    names.sort();
    names.dedup();
    match cloudwatch.alarms_firing(&names).await {
        Ok(firing) => Some(firing),
        Err(e) => {
            cost.errors.push(e);
            None
        }
    }
}

/// The plan's metrics over the look-back window before the rollout started.
pub async fn baseline(
    cloudwatch: &CloudWatch,
    r: &Rollout,
    plan: &Plan,
) -> Result<(Baseline, Cost), String> {
    let window = plan.baseline.lookback.as_secs();
    let needs = plan_metrics(plan).into_iter().flat_map(|m| {
        queries::series_for(&m, &r.function_name, &plan.metrics)
            .into_iter()
            .map(move |s| (window, s))
    });
    let mut cost = Cost::default();
    let mut values: HashMap<Series, f64> = HashMap::new();
    for batch in queries::batches(needs) {
        cost.queries += batch.series.len();
        let (v, calls) = cloudwatch.fetch(&batch, r.created_at).await?;
        cost.calls += calls;
        values.extend(v);
    }
    Ok((baseline_from(plan, &r.function_name, &values), cost))
}

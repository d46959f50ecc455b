//! The watcher's reads: every series every rollout needs in the fewest
//! GetMetricData calls (each complete period once), the alarms in ALARM,
//! and baselines over each rollout's look-back window. I/O only; the
//! decisions are in `decide`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::decide::{baseline_from, plan_metrics};
use crate::domain::Baseline;
use crate::metrics::cloudwatch::{CloudWatch, Fetched};
use crate::metrics::periods::{self, Range, Span};
use crate::metrics::queries::{self, Series};
use crate::plan::Plan;
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

/// Reads what `needs` asks for that `cache` does not hold yet, in the
/// fewest GetMetricData calls, and returns every needed value. The cache
/// keeps them for the next ticks (a complete period does not change, so
/// each is requested once) and drops what is no longer needed. A span
/// whose call failed is left out: unknown.
pub async fn metric_values(
    cloudwatch: &CloudWatch,
    needs: Vec<(Range, Series)>,
    cache: &Mutex<Fetched>,
    cost: &mut Cost,
) -> Fetched {
    let wanted: HashSet<(Series, Span)> = needs
        .iter()
        .flat_map(|(range, s)| range.spans().map(move |span| (s.clone(), span)))
        .collect();
    let missing: Vec<(Range, Series)> = {
        let cached = cache.lock().unwrap_or_else(|p| p.into_inner());
        needs
            .into_iter()
            .filter(|(range, s)| {
                range
                    .spans()
                    .any(|span| !cached.contains_key(&(s.clone(), span)))
            })
            .collect()
    };
    let batches = queries::batches(missing);
    cost.queries += batches.iter().map(|b| b.series.len()).sum::<usize>();
    let fetches: Vec<_> = batches
        .iter()
        .map(|batch| async move { cloudwatch.fetch(batch).await })
        .collect();
    let fetched: Vec<_> = futures_util::stream::iter(fetches)
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut cached = cache.lock().unwrap_or_else(|p| p.into_inner());
    for result in fetched {
        match result {
            Ok((values, calls)) => {
                cost.calls += calls;
                cached.extend(values);
            }
            Err(e) => cost.errors.push(e),
        }
    }
    cached.retain(|k, _| wanted.contains(k));
    cached.clone()
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

/// The plan's metrics over the look-back window before the rollout
/// started (settled, aligned data only).
pub async fn baseline(
    cloudwatch: &CloudWatch,
    r: &Rollout,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<(Baseline, Cost), String> {
    let span = periods::baseline_span(
        plan.baseline.lookback.as_secs() as i64,
        r.created_at.timestamp(),
        now.timestamp(),
        plan.settle.as_secs() as i64,
    );
    let range = Range::single(span);
    let needs = plan_metrics(plan).into_iter().flat_map(|m| {
        queries::series_for(&m, &r.function_name, &plan.metrics)
            .into_iter()
            .map(move |s| (range, s))
    });
    let mut cost = Cost::default();
    let mut values: HashMap<Series, f64> = HashMap::new();
    for batch in queries::batches(needs) {
        cost.queries += batch.series.len();
        let (v, calls) = cloudwatch.fetch(&batch).await?;
        cost.calls += calls;
        values.extend(v.into_iter().filter_map(|((s, _), v)| Some((s, v?))));
    }
    Ok((baseline_from(plan, &r.function_name, &values), cost))
}

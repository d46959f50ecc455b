//! Which CloudWatch series a guardrail or gate needs, and how to batch them
//! into the fewest GetMetricData calls (at most 500 queries each, one time
//! range per call). Pure code; `cloudwatch` does the I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::plan::{CustomMetric, MetricRef};

use super::eval::{Observation, error_rate_percent};
use super::periods::Range;

/// CloudWatch's limit on queries per GetMetricData call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";

/// One CloudWatch statistic of one metric.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
    pub stat: String,
}

/// Which invocations a series counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// Every invocation of the function (`FunctionName` only).
    Function(&'a str),
    /// The invocations of `alias` that ran `version` (Lambda publishes
    /// these with `Resource = function:alias` and `ExecutedVersion`).
    Version {
        function: &'a str,
        alias: &'a str,
        version: &'a str,
    },
}

impl Scope<'_> {
    fn lambda_dimensions(&self) -> BTreeMap<String, String> {
        match self {
            Scope::Function(f) => [("FunctionName".to_string(), f.to_string())].into(),
            Scope::Version {
                function,
                alias,
                version,
            } => [
                ("FunctionName".to_string(), function.to_string()),
                ("Resource".to_string(), format!("{function}:{alias}")),
                ("ExecutedVersion".to_string(), version.to_string()),
            ]
            .into(),
        }
    }
}

fn lambda(name: &str, scope: Scope<'_>, stat: &str) -> Series {
    Series {
        namespace: LAMBDA_NAMESPACE.into(),
        name: name.into(),
        dimensions: scope.lambda_dimensions(),
        stat: stat.into(),
    }
}

/// The series behind a metric: (value series, samples series). Error rate
/// is computed from two sums, so it has no single value series.
pub fn series_for(
    metric: &MetricRef,
    function: &str,
    customs: &BTreeMap<String, CustomMetric>,
) -> Vec<Series> {
    series_in(metric, Scope::Function(function), customs)
}

/// `series_for` over the invocations `scope` names. A custom metric has a
/// version only through its `version_dimension`; without one it is read
/// as declared.
pub fn series_in(
    metric: &MetricRef,
    scope: Scope<'_>,
    customs: &BTreeMap<String, CustomMetric>,
) -> Vec<Series> {
    let function = scope;
    let invocations = lambda("Invocations", function, "Sum");
    match metric {
        MetricRef::ErrorRate => vec![lambda("Errors", function, "Sum"), invocations],
        MetricRef::DurationAvg => vec![lambda("Duration", function, "Average"), invocations],
        MetricRef::DurationPercentile(p) => {
            vec![lambda("Duration", function, &format!("p{p}")), invocations]
        }
        MetricRef::Throttles => vec![lambda("Throttles", function, "Sum"), invocations],
        MetricRef::Invocations => vec![invocations],
        MetricRef::Custom(name) => match customs.get(name) {
            Some(c) => {
                let mut dimensions = c.dimensions.clone();
                if let (Scope::Version { version, .. }, Some(d)) = (scope, &c.version_dimension) {
                    dimensions.insert(d.clone(), version.to_string());
                }
                let base = Series {
                    namespace: c.namespace.clone(),
                    name: c.metric_name.clone(),
                    dimensions,
                    stat: c.stat.clone(),
                };
                let count = Series {
                    stat: "SampleCount".into(),
                    ..base.clone()
                };
                vec![base, count]
            }
            None => vec![],
        },
    }
}

/// The observation of `metric` from fetched values (missing = no data).
pub fn observe(
    metric: &MetricRef,
    function: &str,
    customs: &BTreeMap<String, CustomMetric>,
    values: &HashMap<Series, f64>,
) -> Observation {
    observe_in(metric, Scope::Function(function), customs, values)
}

/// `observe` over the invocations `scope` names.
pub fn observe_in(
    metric: &MetricRef,
    scope: Scope<'_>,
    customs: &BTreeMap<String, CustomMetric>,
    values: &HashMap<Series, f64>,
) -> Observation {
    let series = series_in(metric, scope, customs);
    let get = |i: usize| series.get(i).and_then(|s| values.get(s)).copied();
    match metric {
        MetricRef::ErrorRate => {
            let invocations = get(1).unwrap_or(0.0);
            Observation {
                // No data for Errors with invocations present means zero errors.
                value: error_rate_percent(get(0).unwrap_or(0.0), invocations),
                samples: invocations as u64,
            }
        }
        // CloudWatch has no datapoint for a count that is zero: a missing
        // Invocations or Throttles sum is 0, not "no data".
        MetricRef::Invocations => Observation {
            value: Some(get(0).unwrap_or(0.0)),
            samples: get(0).unwrap_or(0.0) as u64,
        },
        MetricRef::Throttles => Observation {
            value: Some(get(0).unwrap_or(0.0)),
            samples: get(1).unwrap_or(0.0) as u64,
        },
        _ => Observation {
            value: get(0),
            samples: get(1).unwrap_or(0.0) as u64,
        },
    }
}

/// One GetMetricData call: a time range and at most 500 series.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub range: Range,
    pub series: Vec<Series>,
}

/// Groups the needed (range, series) pairs by range, drops duplicates and
/// cuts each group into calls of at most 500 queries: the fewest calls there
/// can be, `Σ ceil(series in range / 500)`.
pub fn batches(needs: impl IntoIterator<Item = (Range, Series)>) -> Vec<Batch> {
    let mut by_range: BTreeMap<Range, BTreeSet<Series>> = BTreeMap::new();
    for (range, series) in needs {
        by_range.entry(range).or_default().insert(series);
    }
    by_range
        .into_iter()
        .flat_map(|(range, set)| {
            let all: Vec<Series> = set.into_iter().collect();
            all.chunks(MAX_QUERIES_PER_CALL)
                .map(|chunk| Batch {
                    range,
                    series: chunk.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MINUTES: Range = Range {
        start: 0,
        end: 300,
        period: 300,
    };

    #[test]
    fn batches_are_minimal_and_deduplicated() {
        let needs = (0..1_200).flat_map(|i| {
            let f = format!("fn{i}");
            series_for(&MetricRef::ErrorRate, &f, &BTreeMap::new())
                .into_iter()
                .chain(series_for(
                    &MetricRef::DurationPercentile(99.0),
                    &f,
                    &BTreeMap::new(),
                ))
                .map(|s| (FIVE_MINUTES, s))
                .collect::<Vec<_>>()
        });
        // 1,200 functions × (errors, invocations, p99) = 3,600 distinct series.
        let b = batches(needs);
        assert_eq!(b.len(), 8);
        assert!(b.iter().all(|b| b.series.len() <= MAX_QUERIES_PER_CALL));
        assert_eq!(b.iter().map(|b| b.series.len()).sum::<usize>(), 3_600);
    }

    #[test]
    fn ranges_are_separate_calls() {
        let s = lambda("Invocations", Scope::Function("f"), "Sum");
        let hour = Range {
            period: 3600,
            ..FIVE_MINUTES
        };
        let b = batches([
            (FIVE_MINUTES, s.clone()),
            (hour, s.clone()),
            (FIVE_MINUTES, s),
        ]);
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn observations_from_values() {
        let mut v = HashMap::new();
        v.insert(lambda("Errors", Scope::Function("f"), "Sum"), 6.0);
        v.insert(lambda("Invocations", Scope::Function("f"), "Sum"), 200.0);
        let o = observe(&MetricRef::ErrorRate, "f", &BTreeMap::new(), &v);
        assert_eq!(o.value, Some(3.0));
        assert_eq!(o.samples, 200);
        let none = observe(&MetricRef::DurationAvg, "f", &BTreeMap::new(), &v);
        assert_eq!(none.value, None);
        assert_eq!(none.samples, 200);
        let nothing = observe(&MetricRef::ErrorRate, "g", &BTreeMap::new(), &v);
        assert_eq!(nothing.value, None, "no invocations, no error rate");
        // Zero traffic publishes no datapoints: counts are zero, not missing.
        let quiet = observe(&MetricRef::Invocations, "g", &BTreeMap::new(), &v);
        assert_eq!((quiet.value, quiet.samples), (Some(0.0), 0));
        let throttles = observe(&MetricRef::Throttles, "f", &BTreeMap::new(), &v);
        assert_eq!((throttles.value, throttles.samples), (Some(0.0), 200));
    }
}

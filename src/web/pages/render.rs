//! Pure helpers that turn stored data into what templates show: times,
//! durations, flag changes, sparklines, chart data, watcher status.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;

use crate::domain::{Baseline, MetricPoint, PointKind};
use crate::plan::Flags;
use crate::web::AppState;

/// A time as templates show it: RFC 3339 UTC in `datetime` and as the text
/// (the page's script turns the text into the viewer's local time).
#[derive(Debug, Clone, PartialEq)]
pub struct Ts {
    pub iso: String,
    pub text: String,
}

impl Ts {
    pub fn of(t: DateTime<Utc>) -> Ts {
        Ts {
            iso: t.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }

    /// From a stored RFC 3339 string (shown as is if it does not parse).
    pub fn parse(s: &str) -> Ts {
        DateTime::parse_from_rfc3339(s).map_or_else(
            |_| Ts {
                iso: s.to_string(),
                text: s.to_string(),
            },
            |t| Ts::of(t.to_utc()),
        )
    }
}

/// "2h05m", "3m10s", "45s".
pub fn duration(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        s if s >= 86_400 => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// A number as people read it: up to two decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

pub fn opt_num(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".into(), num)
}

/// One owned flag changing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub flag: String,
    pub from: String,
    pub to: String,
}

/// The flags that differ between `from` and `to` (a missing one is "unset").
pub fn flag_changes(from: &Flags, to: &Flags) -> Vec<FlagChange> {
    let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
    keys.into_iter()
        .filter(|k| from.get(*k) != to.get(*k))
        .map(|k| FlagChange {
            flag: k.clone(),
            from: from.get(k).cloned().unwrap_or_else(|| "unset".into()),
            to: to.get(k).cloned().unwrap_or_else(|| "unset".into()),
        })
        .collect()
}

/// An inline SVG sparkline of `values` (120×28), with a text alternative.
/// Only numbers are formatted in, so it is safe to include unescaped.
pub fn sparkline(values: &[Option<f64>], what: &str) -> String {
    let known: Vec<(usize, f64)> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.filter(|v| v.is_finite()).map(|v| (i, v)))
        .collect();
    let last = known.last().map(|(_, v)| num(*v));
    let label = match &last {
        Some(l) => format!("{what} over the last hour, now {l}"),
        None => format!("{what}: no data in the last hour"),
    };
    let escaped = label
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;");
    if known.len() < 2 {
        return format!(
            r#"<svg class="sparkline" viewBox="0 0 120 28" role="img" aria-label="{escaped}"><title>{escaped}</title></svg>"#
        );
    }
    let lo = known.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
    let hi = known
        .iter()
        .map(|(_, v)| *v)
        .fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = values.len().max(2) - 1;
    let mut points = String::new();
    for (i, v) in &known {
        let x = *i as f64 / n as f64 * 118.0 + 1.0;
        let y = 26.0 - (v - lo) / span * 24.0;
        let _ = write!(points, "{x:.1},{y:.1} ");
    }
    format!(
        r#"<svg class="sparkline" viewBox="0 0 120 28" role="img" aria-label="{escaped}"><title>{escaped}</title><polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>"#,
        points.trim_end()
    )
}

/// The watcher as the top of every page shows it.
#[derive(Debug, Clone)]
pub struct WatcherStatus {
    pub running: bool,
    pub healthy: bool,
    pub last_tick: Option<Ts>,
    pub watched: usize,
    pub errors: usize,
}

impl WatcherStatus {
    pub fn of(app: &AppState) -> WatcherStatus {
        let tick = app.watcher.last_tick();
        let report = app.watcher_health.report(Utc::now());
        WatcherStatus {
            running: report.running,
            healthy: report.running && !report.stale,
            last_tick: tick.at.map(Ts::of),
            watched: tick.rollouts_watched,
            errors: tick.errors.len(),
        }
    }
}

/// One chart's data, in the format the page's script draws (and its text
/// alternative reads).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartData {
    pub title: String,
    pub unit: String,
    pub x: Vec<i64>,
    pub series: Vec<ChartSeries>,
    pub markers: Vec<ChartMarker>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartSeries {
    pub label: String,
    /// observed | stable | threshold | baseline
    pub kind: &'static str,
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChartMarker {
    pub at: i64,
    pub label: String,
    /// phase | breach | rollback
    pub kind: &'static str,
}

/// The unit a metric is measured in.
pub fn unit(label: &str) -> &'static str {
    match label {
        "error_rate" => "%",
        l if l.starts_with("duration") => "ms",
        "throttles" | "invocations" => "count",
        _ => "",
    }
}

/// The markers the audit log gives a chart: phase changes, breaches,
/// rollbacks (and pauses, drift), from (time, action, phase) entries.
pub fn markers(entries: &[(String, String, Option<String>)]) -> Vec<ChartMarker> {
    entries
        .iter()
        .filter_map(|(at, action, phase)| {
            let at = DateTime::parse_from_rfc3339(at).ok()?.timestamp();
            let kind = match action.as_str() {
                "advance" | "start" | "resume" | "pause" => "phase",
                "guardrail_breach" | "drift_detected" | "code_changed" => "breach",
                "rollback" | "abandon" => "rollback",
                _ => return None,
            };
            let label = match (action.as_str(), phase) {
                ("advance", Some(p)) => format!("advance → {p}"),
                ("start", _) => "start".to_string(),
                (a, _) => a.replace('_', " "),
            };
            Some(ChartMarker { at, label, kind })
        })
        .collect()
}

/// The most points a chart draws (a chart is about 1,000 pixels wide).
const MAX_CHART_POINTS: usize = 240;
/// The newest points a chart always draws as they are.
const RECENT_CHART_POINTS: usize = 60;

/// The indices of `n` points a chart draws: every one when they fit, else
/// the newest `RECENT_CHART_POINTS` and an even sample of the older ones.
pub fn chart_indices(n: usize) -> Vec<usize> {
    if n <= MAX_CHART_POINTS {
        return (0..n).collect();
    }
    let recent_from = n - RECENT_CHART_POINTS;
    let slots = MAX_CHART_POINTS - RECENT_CHART_POINTS;
    let mut out: Vec<usize> = (0..slots).map(|i| i * recent_from / slots).collect();
    out.dedup();
    out.extend(recent_from..n);
    out
}

/// How long before a chart's first point a marker is still drawn.
const MARKER_LEAD_SECS: i64 = 300;

/// One chart per metric: the values observed (by the guardrail or gate
/// that measures it; the first one seen), each guardrail's and gate's
/// threshold over time, the baseline, and the markers.
pub fn charts(
    points: &[MetricPoint],
    baseline: Option<&Baseline>,
    markers: &[ChartMarker],
) -> Vec<ChartData> {
    charts_against_stable(points, baseline, markers, &BTreeSet::new())
}

/// `charts`, where the guardrails and gates named in `stable` compare a
/// canary with the stable version: their references are drawn as the
/// stable version's line, next to the canary's observed one, on one chart.
pub fn charts_against_stable(
    points: &[MetricPoint],
    baseline: Option<&Baseline>,
    markers: &[ChartMarker],
    stable: &BTreeSet<String>,
) -> Vec<ChartData> {
    let mut by_label: BTreeMap<&str, Vec<&MetricPoint>> = BTreeMap::new();
    for p in points {
        by_label.entry(p.label.as_str()).or_default().push(p);
    }
    by_label
        .into_iter()
        .map(|(label, pts)| {
            let times: BTreeSet<i64> = pts.iter().map(|p| p.at.timestamp()).collect();
            let x: Vec<i64> = times.into_iter().collect();
            let index = |t: i64| x.binary_search(&t).ok();
            // Series by (kind, name): the first is the observed line.
            let mut names: Vec<(PointKind, &str)> = Vec::new();
            for p in &pts {
                if !names.contains(&(p.kind, p.name.as_str())) {
                    names.push((p.kind, p.name.as_str()));
                }
            }
            let mut observed = vec![None; x.len()];
            let mut stable_line = vec![None; x.len()];
            let mut series = Vec::new();
            let first = names.first().copied();
            for (kind, name) in &names {
                let mut threshold = vec![None; x.len()];
                for p in pts.iter().filter(|p| p.kind == *kind && p.name == *name) {
                    if let Some(i) = index(p.at.timestamp()) {
                        threshold[i] = p.threshold;
                        if stable.contains(*name) {
                            stable_line[i] = stable_line[i].or(p.reference);
                        }
                        if first == Some((*kind, *name)) || observed[i].is_none() {
                            observed[i] = observed[i].or(p.value);
                        }
                    }
                }
                if threshold.iter().any(Option::is_some) {
                    series.push(ChartSeries {
                        label: format!("{} {name} threshold", kind.as_str()),
                        kind: "threshold",
                        values: threshold,
                    });
                }
            }
            let against_stable = stable_line.iter().any(Option::is_some);
            series.insert(
                0,
                ChartSeries {
                    label: if against_stable {
                        "observed (the canary during canary steps)".into()
                    } else {
                        "observed".into()
                    },
                    kind: "observed",
                    values: observed,
                },
            );
            if against_stable {
                series.insert(
                    1,
                    ChartSeries {
                        label: "stable version".into(),
                        kind: "stable",
                        values: stable_line,
                    },
                );
            }
            if let Some(b) = baseline.and_then(|b| b.value(label)) {
                series.push(ChartSeries {
                    label: "baseline".into(),
                    kind: "baseline",
                    values: vec![Some(b); x.len()],
                });
            }
            let lo = x.first().copied();
            let keep = chart_indices(x.len());
            let x: Vec<i64> = keep.iter().map(|&i| x[i]).collect();
            for s in &mut series {
                s.values = keep
                    .iter()
                    .map(|&i| s.values.get(i).copied().flatten())
                    .collect();
            }
            ChartData {
                title: label.to_string(),
                unit: unit(label).to_string(),
                // Markers from shortly before the chart's first point (a
                // phase change comes before its first data) to now (a
                // rollback comes after the data that caused it).
                markers: markers
                    .iter()
                    .filter(|m| lo.is_some_and(|lo| m.at >= lo - MARKER_LEAD_SECS))
                    .cloned()
                    .collect(),
                x,
                series,
            }
        })
        .collect()
}

/// JSON safe to put inside `<script type="application/json">`: a `</`
/// cannot end the script element.
pub fn script_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace("</", "<\\/")
        .replace("<!--", "<\\!--")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::eval::Verdict;

    fn flags(pairs: &[(&str, &str)]) -> Flags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flag_changes_name_what_changes() {
        let from = flags(&[("A", "false"), ("B", "false")]);
        let to = flags(&[("A", "true"), ("B", "false"), ("C", "on")]);
        assert_eq!(
            flag_changes(&from, &to),
            [
                FlagChange {
                    flag: "A".into(),
                    from: "false".into(),
                    to: "true".into()
                },
                FlagChange {
                    flag: "C".into(),
                    from: "unset".into(),
                    to: "on".into()
                },
            ]
        );
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(num(1.0), "1");
        assert_eq!(num(1.256), "1.26");
        assert_eq!(num(f64::NAN), "–");
        assert_eq!(duration(TimeDelta::seconds(7265)), "2h01m");
        assert_eq!(duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(duration(TimeDelta::seconds(-3)), "0s");
    }

    #[test]
    fn sparklines_are_svg_with_a_text_alternative() {
        let s = sparkline(&[Some(1.0), None, Some(3.0), Some(2.0)], "error rate");
        assert!(s.starts_with("<svg class=\"sparkline\""), "{s}");
        assert!(
            s.contains("aria-label=\"error rate over the last hour, now 2\""),
            "{s}"
        );
        let points = s
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 3, "three known points: {s}");
        let empty = sparkline(&[], "error rate");
        assert!(empty.contains("no data"), "{empty}");
        let hostile = sparkline(&[], "<script>\"");
        assert!(!hostile.contains("<script>"), "{hostile}");
    }

    #[test]
    fn long_histories_are_drawn_with_a_bounded_number_of_points() {
        assert_eq!(chart_indices(3), [0, 1, 2]);
        let kept = chart_indices(720);
        assert_eq!(kept.len(), MAX_CHART_POINTS);
        assert_eq!(kept.first(), Some(&0));
        assert_eq!(
            &kept[kept.len() - 60..],
            (660..720).collect::<Vec<_>>().as_slice(),
            "the last hour as it is"
        );
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn charts_group_points_by_metric_with_thresholds_baseline_and_markers() {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let point = |kind, name: &str, min: i64, v: f64, thr: f64| MetricPoint {
            kind,
            name: name.into(),
            label: "error_rate".into(),
            at: t0 + TimeDelta::minutes(min),
            window_secs: Some(300),
            value: Some(v),
            samples: 100,
            verdict: Verdict::Pass,
            threshold: Some(thr),
            reference: Some(1.0),
        };
        let points = [
            point(PointKind::Guardrail, "error-rate", 0, 1.0, 3.0),
            point(PointKind::Gate, "error-rate", 0, 1.1, 3.0),
            point(PointKind::Guardrail, "error-rate", 1, 4.0, 3.0),
        ];
        let mut baseline = Baseline::default();
        baseline.0.insert(
            "error_rate".into(),
            crate::domain::MetricValue {
                value: Some(1.0),
                samples: 10,
            },
        );
        let marks = vec![ChartMarker {
            at: (t0 + TimeDelta::seconds(30)).timestamp(),
            label: "advance → prompts".into(),
            kind: "phase",
        }];
        let charts = charts(&points, Some(&baseline), &marks);
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!((c.title.as_str(), c.unit.as_str()), ("error_rate", "%"));
        assert_eq!(c.x.len(), 2);
        let kinds: Vec<&str> = c.series.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ["observed", "threshold", "threshold", "baseline"]);
        assert_eq!(
            c.series[0].values,
            [Some(1.0), Some(4.0)],
            "the guardrail's line"
        );
        assert_eq!(c.markers.len(), 1);
        let late = ChartMarker {
            at: (t0 + TimeDelta::minutes(5)).timestamp(),
            label: "rollback".into(),
            kind: "rollback",
        };
        let early = ChartMarker {
            at: (t0 - TimeDelta::hours(1)).timestamp(),
            label: "start".into(),
            kind: "phase",
        };
        let with_more = super::charts(&points, None, &[early, late]);
        assert_eq!(
            with_more[0].markers.len(),
            1,
            "a rollback after the last point is drawn; an hour before is not"
        );
        assert!(!script_json(&json_str()).contains("</script"));
    }

    fn json_str() -> serde_json::Value {
        serde_json::json!({ "label": "</script><script>alert(1)</script>" })
    }
}

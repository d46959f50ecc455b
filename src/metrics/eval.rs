//! Guardrail and gate maths as pure functions over numbers: a window's
//! observation and its references in, a verdict with the numbers that made it
//! out (design rule 5). The watcher feeds these; tests call them directly.

use serde::{Deserialize, Serialize};

use crate::plan::{Bound, Condition, Reference};

/// What CloudWatch said about one metric over one evaluation window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Observation {
    /// The metric's value; `None` when CloudWatch returned no data.
    pub value: Option<f64>,
    /// Samples behind it (invocations in the window).
    pub samples: u64,
}

/// The values relative bounds compare against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct References {
    pub baseline: Option<f64>,
    pub previous_phase: Option<f64>,
    /// The stable version over the same window (canary steps).
    pub stable: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The condition holds.
    Pass,
    /// The condition does not hold.
    Breach,
    /// Too few samples, no data, or no reference: no decision either way.
    InsufficientData,
}

/// A verdict and the evidence behind it, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub observed: Option<f64>,
    pub samples: u64,
    pub min_samples: u64,
    /// The limit the observation was held to (reference combined with the bound).
    pub threshold: Option<f64>,
    /// The reference value used by a relative bound.
    pub reference: Option<f64>,
    /// One line for people: "error_rate 7.20 > 3.00 (baseline 1.00 + 2.00)".
    pub explanation: String,
    /// A sequential test's evidence: the test, its statistic, the samples
    /// and the effect (`judge = "sequential"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judgement: Option<crate::domain::judge::Judgement>,
}

/// The limit a bound sets given its reference, and whether it is an upper one.
/// `None` when a relative bound has no reference to work from.
pub fn threshold(bound: Bound, reference: Option<f64>) -> Option<(f64, bool)> {
    match bound {
        Bound::Max(v) => Some((v, true)),
        Bound::Min(v) => Some((v, false)),
        Bound::MaxDelta(d) => reference.map(|r| (r + d, true)),
        Bound::MinDelta(d) => reference.map(|r| (r - d, false)),
        Bound::MaxRatio(k) => reference.map(|r| (r * k, true)),
        Bound::MinRatio(k) => reference.map(|r| (r * k, false)),
    }
}

fn describe_limit(bound: Bound, reference: Option<f64>, reference_name: &str) -> String {
    match (bound, reference) {
        (Bound::Max(v) | Bound::Min(v), _) => format!("{v:.2}"),
        (Bound::MaxDelta(d), Some(r)) => format!("{reference_name} {r:.2} + {d:.2}"),
        (Bound::MinDelta(d), Some(r)) => format!("{reference_name} {r:.2} − {d:.2}"),
        (Bound::MaxRatio(k) | Bound::MinRatio(k), Some(r)) => {
            format!("{reference_name} {r:.2} × {k}")
        }
        (_, None) => format!("no {reference_name}"),
    }
}

/// Holds one observation to a condition.
pub fn evaluate(
    metric_name: &str,
    condition: &Condition,
    observation: Observation,
    min_samples: u64,
    references: References,
) -> Evaluation {
    let (reference, reference_name) = match condition.reference {
        Reference::Baseline => (references.baseline, "baseline"),
        Reference::PreviousPhase => (references.previous_phase, "previous phase"),
        Reference::Stable => (references.stable, "stable"),
    };
    let relative = !matches!(condition.bound, Bound::Max(_) | Bound::Min(_));
    let reference = if relative { reference } else { None };
    let limit = threshold(condition.bound, reference);
    let mut evaluation = Evaluation {
        verdict: Verdict::InsufficientData,
        observed: observation.value,
        samples: observation.samples,
        min_samples,
        threshold: limit.map(|(t, _)| t),
        reference,
        explanation: String::new(),
        judgement: None,
    };
    let Some(value) = observation.value.filter(|v| v.is_finite()) else {
        evaluation.explanation = format!("{metric_name}: no data in the window");
        return evaluation;
    };
    if observation.samples < min_samples {
        evaluation.explanation = format!(
            "{metric_name}: {} samples, fewer than the {min_samples} needed to decide",
            observation.samples
        );
        return evaluation;
    }
    let Some((limit, upper)) = limit else {
        evaluation.explanation =
            format!("{metric_name}: no {reference_name} value to compare with");
        return evaluation;
    };
    let holds = if upper {
        value <= limit
    } else {
        value >= limit
    };
    let (op, verdict) = match (holds, upper) {
        (true, true) => ("≤", Verdict::Pass),
        (true, false) => ("≥", Verdict::Pass),
        (false, true) => (">", Verdict::Breach),
        (false, false) => ("<", Verdict::Breach),
    };
    evaluation.verdict = verdict;
    evaluation.explanation = format!(
        "{metric_name} {value:.2} {op} {limit:.2} ({}; {} samples)",
        describe_limit(condition.bound, reference, reference_name),
        observation.samples
    );
    evaluation
}

/// The sample size a condition on `metric` needs. A count of invocations
/// is judged as it is (zero invocations is the finding a `min` bound looks
/// for), so it needs none.
pub fn min_samples_for(metric: &crate::plan::MetricRef, min_samples: u64) -> u64 {
    match metric {
        crate::plan::MetricRef::Invocations => 0,
        _ => min_samples,
    }
}

/// Consecutive breaching evaluations so far, after one more verdict. A pass
/// resets the streak; insufficient data leaves it where it was (it proves
/// nothing either way).
pub fn next_streak(streak: u32, verdict: Verdict) -> u32 {
    match verdict {
        Verdict::Breach => streak.saturating_add(1),
        Verdict::Pass => 0,
        Verdict::InsufficientData => streak,
    }
}

/// Whether a guardrail acts now: its streak reached `consecutive`.
pub fn should_act(streak: u32, consecutive: u32) -> bool {
    streak >= consecutive.max(1)
}

/// A phase may be promoted only when every gate passes: insufficient data is
/// never a pass (a phase is never promoted on silence).
pub fn gates_hold(verdicts: &[Verdict]) -> bool {
    verdicts.iter().all(|v| *v == Verdict::Pass)
}

/// Errors / Invocations in percent; `None` without invocations.
pub fn error_rate_percent(errors: f64, invocations: f64) -> Option<f64> {
    (invocations > 0.0).then(|| errors / invocations * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::MetricRef;

    fn cond(bound: Bound, reference: Reference) -> Condition {
        Condition {
            metric: MetricRef::ErrorRate,
            bound,
            reference,
            judge: crate::plan::Judge::Threshold,
        }
    }

    fn obs(value: f64, samples: u64) -> Observation {
        Observation {
            value: Some(value),
            samples,
        }
    }

    const BASE: References = References {
        baseline: Some(1.0),
        previous_phase: Some(2.0),
        stable: Some(1.5),
    };

    /// bound, reference, observation, min samples, references → verdict, threshold
    type Row = (
        Bound,
        Reference,
        Observation,
        u64,
        References,
        Verdict,
        Option<f64>,
    );

    #[test]
    fn decision_table() {
        use Bound::*;
        use Reference::*;
        use Verdict::*;
        #[rustfmt::skip]
        let table: &[Row] = &[
            // absolute bounds
            (Max(3000.0), Baseline, obs(2999.0, 500), 100, BASE, Pass, Some(3000.0)),
            (Max(3000.0), Baseline, obs(3000.0, 500), 100, BASE, Pass, Some(3000.0)),
            (Max(3000.0), Baseline, obs(3000.1, 500), 100, BASE, Breach, Some(3000.0)),
            (Min(4.0), Baseline, obs(3.9, 500), 100, BASE, Breach, Some(4.0)),
            // error rate ≤ baseline + 2 points
            (MaxDelta(2.0), Baseline, obs(2.9, 500), 100, BASE, Pass, Some(3.0)),
            (MaxDelta(2.0), Baseline, obs(3.1, 500), 100, BASE, Breach, Some(3.0)),
            // p99 ≤ baseline × 1.25
            (MaxRatio(1.25), Baseline, obs(1.25, 500), 100, BASE, Pass, Some(1.25)),
            (MaxRatio(1.25), Baseline, obs(1.3, 500), 100, BASE, Breach, Some(1.25)),
            // ≥ 15 % faster: duration ≤ baseline × 0.85
            (MaxRatio(0.85), Baseline, obs(0.80, 500), 100, BASE, Pass, Some(0.85)),
            // no regression against the previous phase
            (MaxRatio(1.0), PreviousPhase, obs(2.1, 500), 100, BASE, Breach, Some(2.0)),
            (MinDelta(0.5), Baseline, obs(0.4, 500), 100, BASE, Breach, Some(0.5)),
            (MinRatio(0.9), Baseline, obs(0.95, 500), 100, BASE, Pass, Some(0.9)),
            // minimum samples: no decision on 3 invocations, however bad
            (MaxDelta(2.0), Baseline, obs(100.0, 3), 100, BASE, InsufficientData, Some(3.0)),
            (MaxDelta(2.0), Baseline, obs(100.0, 100), 100, BASE, Breach, Some(3.0)),
            // no data, no reference
            (Max(1.0), Baseline, Observation { value: None, samples: 0 }, 1, BASE, InsufficientData, Some(1.0)),
            (MaxRatio(1.25), Baseline, obs(1.0, 500), 100, References::default(), InsufficientData, None),
            (Max(1.0), Baseline, obs(f64::NAN, 500), 100, BASE, InsufficientData, Some(1.0)),
        ];
        for (i, (bound, reference, o, min, refs, want, limit)) in table.iter().enumerate() {
            let e = evaluate("m", &cond(*bound, *reference), *o, *min, *refs);
            assert_eq!(e.verdict, *want, "row {i}: {e:?}");
            assert_eq!(e.threshold, *limit, "row {i}: {e:?}");
            assert!(!e.explanation.is_empty());
        }
    }

    #[test]
    fn evidence_names_the_numbers() {
        let e = evaluate(
            "error_rate",
            &cond(Bound::MaxDelta(2.0), Reference::Baseline),
            obs(7.2, 480),
            100,
            BASE,
        );
        assert_eq!(e.verdict, Verdict::Breach);
        assert_eq!(
            e.explanation,
            "error_rate 7.20 > 3.00 (baseline 1.00 + 2.00; 480 samples)"
        );
        assert_eq!(e.reference, Some(1.0));
    }

    #[test]
    fn consecutive_breaches_before_acting() {
        use Verdict::*;
        let run = |verdicts: &[Verdict], needed: u32| {
            let mut streak = 0;
            verdicts
                .iter()
                .map(|v| {
                    streak = next_streak(streak, *v);
                    should_act(streak, needed)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(&[Breach, Breach, Breach], 3), [false, false, true]);
        assert_eq!(
            run(&[Breach, Breach, Pass, Breach], 3),
            [false, false, false, false]
        );
        assert_eq!(
            run(&[Breach, InsufficientData, Breach, Breach], 3),
            [false, false, false, true],
            "insufficient data neither resets nor counts"
        );
        assert_eq!(run(&[Breach], 1), [true]);
    }

    #[test]
    fn zero_invocations_breach_a_min_invocations_bound() {
        let c = Condition {
            metric: MetricRef::Invocations,
            bound: Bound::Min(100.0),
            reference: Reference::Baseline,
            judge: crate::plan::Judge::Threshold,
        };
        let quiet = Observation {
            value: Some(0.0),
            samples: 0,
        };
        let e = evaluate(
            "invocations",
            &c,
            quiet,
            min_samples_for(&c.metric, 100),
            References::default(),
        );
        assert_eq!(e.verdict, Verdict::Breach, "{e:?}");
        assert_eq!(min_samples_for(&MetricRef::ErrorRate, 100), 100);
    }

    #[test]
    fn gates_never_pass_on_silence() {
        use Verdict::*;
        assert!(gates_hold(&[Pass, Pass]));
        assert!(!gates_hold(&[Pass, InsufficientData]));
        assert!(!gates_hold(&[Pass, Breach]));
        assert_eq!(error_rate_percent(3.0, 200.0), Some(1.5));
        assert_eq!(error_rate_percent(0.0, 0.0), None);
    }
}

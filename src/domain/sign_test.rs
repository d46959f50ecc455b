//! A value metric (per-minute p99, average duration, tokens per request)
//! judged against one fixed reference value: the baseline's or the
//! previous phase's, which are single numbers, not a series a rank test
//! could compare with. Pure maths.
//!
//! The test is the one-sided **sign test** of the per-minute datapoints
//! against the value the tolerance allows (`reference × k` or
//! `reference + d`): if the subject's median is at or below it, each
//! datapoint is above it with probability at most ½, so the count above is
//! stochastically at most Binomial(n, ½). Regression: that count's upper
//! tail is at most the look's α; no regression: the count below's is. α is
//! spent over looks as `α·6/(π²j²)` at the j-th datapoint, as
//! `judge::judge_values` does, so checking every minute stays valid.
//! Minutes are treated as independent (as every per-minute judge does).

use super::judge::{
    JudgeConfig, JudgeVerdict, Judgement, Tolerance, alpha_at_look as spent, median,
};

const SIGN_TEST: &str = "sign-test";

/// P(Binomial(n, ½) ≥ k), summed in log space (n up to a day of minutes).
fn upper_tail(n: usize, k: usize) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    // ln C(n, i) incrementally from i = k.
    let mut ln_c = ln_choose(n, k);
    let mut total = 0.0;
    for i in k..=n {
        total += (ln_c + ln_half_n).exp();
        if i < n {
            ln_c += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        }
    }
    total.min(1.0)
}

fn ln_choose(n: usize, k: usize) -> f64 {
    let k = k.min(n - k);
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

/// The subject's per-minute datapoints against one reference value.
pub fn judge_values_fixed(
    metric: &str,
    subject: &[f64],
    reference: f64,
    tolerance: Tolerance,
    config: &JudgeConfig,
) -> Judgement {
    let points: Vec<f64> = subject.iter().copied().filter(|v| v.is_finite()).collect();
    let n = points.len();
    let inconclusive = |why: String| Judgement {
        verdict: JudgeVerdict::Inconclusive,
        test: SIGN_TEST.into(),
        statistic: 1.0,
        threshold: spent(config.alpha, n),
        subject_samples: n as u64,
        reference_samples: 1,
        effect: None,
        explanation: format!("{metric}: {why}"),
        regression_statistic: 1.0,
        no_regression_statistic: 1.0,
    };
    if !reference.is_finite() {
        return inconclusive("no finite reference value to compare with".into());
    }
    if !(config.alpha > 0.0 && config.alpha < 1.0) {
        return inconclusive(format!("alpha {} is not between 0 and 1", config.alpha));
    }
    let allowed = tolerance.allowed(reference);
    if !allowed.is_finite() {
        return inconclusive("the tolerance gives no finite limit".into());
    }
    if n < config.min_samples_per_side.max(1) {
        return inconclusive(format!(
            "{n} datapoints, fewer than the {} needed to judge",
            config.min_samples_per_side.max(1)
        ));
    }
    let above = points.iter().filter(|v| **v > allowed).count();
    let below = points.iter().filter(|v| **v < allowed).count();
    // Datapoints exactly at the limit say nothing either way.
    let decided = above + below;
    let p_worse = upper_tail(decided, above);
    let p_within = upper_tail(decided, below);
    let level = spent(config.alpha, n);
    let verdict = if p_worse <= level {
        JudgeVerdict::Regression
    } else if p_within <= level {
        JudgeVerdict::NoRegression
    } else {
        JudgeVerdict::Inconclusive
    };
    // At least `min_samples_per_side` (≥ 1) points are here.
    let m = median(&points).unwrap_or(f64::NAN);
    let effect = match tolerance {
        Tolerance::Ratio(_) => (reference != 0.0).then(|| m / reference),
        Tolerance::Delta(_) => Some(m - reference),
    };
    let statistic = match verdict {
        JudgeVerdict::NoRegression => p_within,
        JudgeVerdict::Regression => p_worse,
        JudgeVerdict::Inconclusive => p_worse.min(p_within),
    };
    let word = match verdict {
        JudgeVerdict::Regression => "regression",
        JudgeVerdict::NoRegression => "no regression",
        JudgeVerdict::Inconclusive => "inconclusive",
    };
    Judgement {
        verdict,
        test: SIGN_TEST.into(),
        statistic,
        threshold: level,
        subject_samples: n as u64,
        reference_samples: 1,
        effect,
        explanation: format!(
            "{metric}: median minute {m:.2} vs limit {allowed:.2} (reference {reference:.2}); {above} of {n} minutes above, {below} below; sign test p = {statistic:.2e} vs {level:.2e} → {word}"
        ),
        regression_statistic: p_worse,
        no_regression_statistic: p_within,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tails_match_hand_counts() {
        // P(Bin(4, ½) ≥ 3) = (4 + 1) / 16.
        assert!((upper_tail(4, 3) - 5.0 / 16.0).abs() < 1e-12);
        assert_eq!(upper_tail(4, 0), 1.0);
        assert_eq!(upper_tail(4, 5), 0.0);
        // Symmetry of Bin(20, ½): P(X ≥ 11) = P(X ≤ 9) = 1 − P(X ≥ 10).
        assert!((upper_tail(20, 11) - (1.0 - upper_tail(20, 10))).abs() < 1e-12);
        assert!(upper_tail(1_440, 1_000) < 1e-40, "large n stays finite");
    }

    #[test]
    fn verdicts_follow_the_data() {
        let cfg = JudgeConfig::default();
        // Twenty minutes all 30 % above a ×1.25 limit: a regression.
        let worse = vec![1300.0; 20];
        let j = judge_values_fixed("p99", &worse, 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Regression, "{}", j.explanation);
        assert!((j.effect.unwrap() - 1.3).abs() < 1e-12);
        // All well below: no regression.
        let fine = vec![900.0; 20];
        let j = judge_values_fixed("p99", &fine, 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::NoRegression, "{}", j.explanation);
        // Half and half around the limit: no evidence either way.
        let mixed: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 1200.0 } else { 1300.0 })
            .collect();
        let j = judge_values_fixed("p99", &mixed, 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
        // Too few minutes, or no reference: inconclusive, never a panic.
        let j = judge_values_fixed("p99", &worse[..3], 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
        let j = judge_values_fixed("p99", &worse, f64::NAN, Tolerance::Delta(5.0), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
        let j = judge_values_fixed("p99", &[f64::NAN; 30], 1000.0, Tolerance::Delta(5.0), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
    }

    /// Five minutes all above is p = 1/32, above the first looks' spent α:
    /// one bad minute repeated a few times is not yet a verdict.
    #[test]
    fn early_looks_need_more_evidence() {
        let cfg = JudgeConfig::default();
        let j = judge_values_fixed("p99", &[2000.0; 5], 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
        let j = judge_values_fixed("p99", &[2000.0; 16], 1000.0, Tolerance::Ratio(1.25), &cfg);
        assert_eq!(j.verdict, JudgeVerdict::Regression, "{}", j.explanation);
    }
}

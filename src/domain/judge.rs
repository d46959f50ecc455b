//! The statistical judge of a canary step: is the subject (the canary, or
//! the phase under way) worse than its reference by more than a tolerance
//! allows, within it, or is it too early to say? Pure maths; no I/O.
//!
//! Both judges are **stateless and anytime-valid**: the caller passes the
//! whole series since the step started, every minute, and may act on the
//! first verdict. Each verdict is wrong with probability at most `alpha`
//! however many times it is asked:
//!
//! - [`judge_counts`] (error rate, throttle rate): mixture sequential
//!   probability ratio tests. Each is a nonnegative supermartingale under
//!   its null hypothesis, so by Ville's inequality it ever reaches `1/α`
//!   with probability at most α (Robbins 1970; Ramdas et al. 2023, "Game-
//!   theoretic statistics and safe anytime-valid inference"). Against the
//!   concurrent stable version it conditions on each minute's total events,
//!   which removes the unknown stable rate (the counting-process test of
//!   Lindon, Sanden and Shirikian 2022, "Rapid regression detection in
//!   software deployments through sequential testing", Netflix).
//! - [`judge_values`] (per-minute p99 or average duration, tokens per
//!   request): one-sided Mann–Whitney U tests of the subject against the
//!   reference moved by the tolerance (the rank test of Kayenta's judge,
//!   with the tolerance as the minimum effect), α spent over looks as
//!   `α·6/(π²j²)` at the j-th subject datapoint (their sum is α: a union
//!   bound makes every look valid).
//!
//! **Regression** rejects "the subject is within the tolerance";
//! **NoRegression** rejects "the subject is beyond the tolerance"; neither
//! is **Inconclusive** (also the answer for any input that cannot be
//! judged, with the reason in the explanation). A subject exactly on the
//! tolerance stays inconclusive with probability at least 1 − 2α.

use serde::{Deserialize, Serialize};

/// What the judge concluded; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeVerdict {
    Regression,
    NoRegression,
    Inconclusive,
}

/// How much worse than the reference the subject may be, in the metric's own unit:
/// `Ratio(k)`: subject ≤ reference × k; `Delta(d)`: subject ≤ reference + d
/// (for error rates d is in percentage points, i.e. 2.0 = 2 points).
/// Lower-is-better metrics only (error rate, durations, tokens): "worse" = higher.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Tolerance {
    Ratio(f64),
    Delta(f64),
}

impl Tolerance {
    /// The largest subject value the tolerance allows for `reference`
    /// (`Delta` in the metric's own unit: for rates as fractions, pass
    /// points / 100 yourself).
    pub fn allowed(self, reference: f64) -> f64 {
        match self {
            Tolerance::Ratio(k) => reference * k,
            Tolerance::Delta(d) => reference + d,
        }
    }

    fn describe(self) -> String {
        match self {
            Tolerance::Ratio(k) => format!("×{k:.2}"),
            Tolerance::Delta(d) => format!("{d:+.2}"),
        }
    }

    fn problem(self) -> Option<String> {
        match self {
            Tolerance::Ratio(k) if !(k.is_finite() && k > 0.0) => {
                Some(format!("the ratio tolerance {k} is not a positive number"))
            }
            Tolerance::Delta(d) if !d.is_finite() => {
                Some(format!("the delta tolerance {d} is not a finite number"))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// The chance of a wrong verdict, for each of the two verdicts.
    pub alpha: f64,
    /// Datapoints each side needs before [`judge_values`] judges at all.
    pub min_samples_per_side: usize,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            alpha: 0.01,
            min_samples_per_side: 5,
        }
    }
}

impl JudgeConfig {
    fn problem(&self) -> Option<String> {
        (!(self.alpha > 0.0 && self.alpha < 1.0))
            .then(|| format!("alpha {} is not between 0 and 1", self.alpha))
    }
}

/// One period (one minute) of a count metric for one version: `events`
/// (errors, throttles) out of `trials` (invocations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub events: u64,
    pub trials: u64,
}

impl Counts {
    fn rate(self) -> f64 {
        self.events as f64 / self.trials as f64
    }

    fn plus(self, other: Counts) -> Counts {
        Counts {
            events: self.events.saturating_add(other.events),
            trials: self.trials.saturating_add(other.trials),
        }
    }

    fn total(periods: &[Counts]) -> Counts {
        periods.iter().fold(Counts::default(), |a, &b| a.plus(b))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum CountReference<'a> {
    /// The stable version over the same periods as the subject (aligned by
    /// index; same length — if one series is longer, its extra periods are
    /// left out until the other has them).
    Concurrent(&'a [Counts]),
    /// A fixed earlier sample (the baseline window, or the previous phase),
    /// totals only.
    Fixed(Counts),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    pub verdict: JudgeVerdict,
    /// "mixture-sprt" for counts, "mann-whitney" for values.
    pub test: String,
    /// The statistic of the verdict's test: the e-value (mixture likelihood
    /// ratio) for counts, the z score for values. When inconclusive, the
    /// larger of the two tests' statistics.
    pub statistic: f64,
    /// The level the statistic had to reach: `1/α` for the SPRT (a little
    /// more where part of α is spent on a bound of the reference rate),
    /// the z critical value of the look for Mann–Whitney.
    pub threshold: f64,
    /// Invocations (counts) or datapoints (values) of the subject.
    pub subject_samples: u64,
    pub reference_samples: u64,
    /// Observed effect: for `Ratio`, subject / reference (rates for counts,
    /// medians for values; `None` when the reference is 0); for `Delta`,
    /// subject − reference (rates in percentage points; medians in the
    /// metric's unit). `None` when there is nothing to compare.
    pub effect: Option<f64>,
    /// One line for people, naming the test, the statistic, the samples
    /// and the effect.
    pub explanation: String,
    /// The statistic of the test for "worse than the tolerance allows".
    #[serde(default)]
    pub regression_statistic: f64,
    /// The statistic of the test for "within the tolerance".
    #[serde(default)]
    pub no_regression_statistic: f64,
}

const MIXTURE_SPRT: &str = "mixture-sprt";
const MANN_WHITNEY: &str = "mann-whitney";

/// Alternatives the regression test bets on, as multiples of the tolerance
/// boundary (a rate ratio for the conditional test, an odds ratio for the
/// one-sample test), equally weighted. Spread geometrically so that an
/// effect anywhere from 10 % to 20× is within a factor ~1.4 of a bet; the
/// price of the mixture is ln 9 ≈ 2.2 nats of evidence.
const WORSE: [f64; 9] = [1.1, 1.25, 1.5, 2.0, 2.75, 4.0, 6.0, 10.0, 20.0];
/// The same for the no-regression test, below the boundary.
const BETTER: [f64; 8] = [0.9, 0.8, 0.65, 0.5, 0.35, 0.2, 0.1, 0.05];
/// The share of α spent on a confidence bound of the reference's rate when
/// the test needs one (a `Delta` tolerance, or a `Fixed` reference); the
/// test itself gets the rest, so each verdict stays wrong at most α.
const REFERENCE_ALPHA_SHARE: f64 = 0.1;
/// Rates are kept this far inside (0, 1) where a boundary reaches an end.
const RATE_EPSILON: f64 = 1e-9;

/// Error rate / throttle rate (events per trial), judged sequentially; see
/// the module documentation. Which test, by reference and tolerance:
///
/// - `Concurrent` with `Ratio(k)`, or `Delta(0)` (the same as `Ratio(1)`):
///   the **conditional** mixture SPRT. Errors are rare events, modelled as
///   Poisson counts with rates `p_s` (subject) and `p_r` (stable); given a
///   minute's total `n` events, the subject's share is
///   Binomial(n, θ(r)), θ(r) = ρr / (ρr + 1 − ρ), with r = p_s/p_r and ρ
///   that minute's subject share of invocations (the canary weight may
///   change between minutes). The stable rate, even if it drifts from
///   minute to minute, cancels. The regression e-value is the mixture over
///   r = k·m (m in 1.1…20) of Π LR(r)/LR(k); under any r ≤ k each term is
///   a supermartingale (the factor's expectation is linear in θ and 1 at
///   θ(k)). The no-regression e-value mirrors it with m in 0.05…0.9. With
///   binomial rather than Poisson counts and r = 1 the test is
///   conservative (Hoeffding 1963: sampling without replacement is
///   convex-order smaller); at other r it is exact as the rates go to 0,
///   and the simulation (`bench --canary`) checks it at the boundary.
/// - `Concurrent` with `Delta(d ≠ 0)`: the stable rate does not cancel
///   from a difference, so it is bounded instead: an anytime-valid
///   confidence sequence of the stable rate (Robbins' beta-binomial
///   mixture, Jeffreys prior, at `α/10`) gives, through each minute, upper
///   and lower bounds `U_t`, `L_t`; the subject's Bernoulli stream is
///   tested by a **one-sample** mixture SPRT against `U_t + d` (regression)
///   and `L_t + d` (no regression), minute by minute, with the remaining
///   `0.9·α`. Wherever the sequence covers the stable rate, those
///   boundaries are on the safe side of the true one, so a wrong verdict
///   needs the sequence or the test to fail: probability ≤ α/10 + 0.9·α.
///   (The subject's minute is independent of the stable minute the bound
///   already includes.) This assumes a stable rate constant over the step.
/// - `Fixed` reference (a baseline week, a previous phase): the same
///   one-sample test against `k·U` / `k·L` or `U + d` / `L + d`, with
///   `U`, `L` fixed-sample Chernoff bounds (`n·KL(p̂‖p) = ln(10/α)`) of the
///   reference rate. A week of data makes them the reference rate itself
///   (treating it as known); a short previous phase would otherwise turn
///   its own noise into false verdicts.
///
/// Periods with no invocations carry no evidence and are skipped.
pub fn judge_counts(
    metric: &str,
    subject: &[Counts],
    reference: CountReference<'_>,
    tolerance: Tolerance,
    config: &JudgeConfig,
) -> Judgement {
    let (reference_periods, reference_total) = match reference {
        CountReference::Concurrent(periods) => {
            let aligned = &periods[..periods.len().min(subject.len())];
            (Some(aligned), Counts::total(aligned))
        }
        CountReference::Fixed(total) => (None, total),
    };
    let subject = match reference_periods {
        Some(r) => &subject[..subject.len().min(r.len())],
        None => subject,
    };
    let subject_total = Counts::total(subject);
    let side = if reference_periods.is_some() {
        "stable"
    } else {
        "reference"
    };
    let summary = CountSummary {
        metric,
        side,
        subject: subject_total,
        reference: reference_total,
        tolerance,
    };
    if let Some(why) = count_problem(
        subject,
        reference_periods,
        reference_total,
        tolerance,
        config,
    ) {
        return summary.inconclusive(&why, config);
    }
    let evidence = match (reference_periods, tolerance) {
        (Some(r), Tolerance::Ratio(k)) => conditional_evidence(subject, r, k, config.alpha),
        (Some(r), Tolerance::Delta(0.0)) => conditional_evidence(subject, r, 1.0, config.alpha),
        (Some(r), Tolerance::Delta(d)) => delta_evidence(subject, r, d / 100.0, config.alpha),
        (None, tolerance) => fixed_evidence(subject, reference_total, tolerance, config.alpha),
    };
    summary.judge(&evidence)
}

/// Why a count series cannot be judged, if it cannot.
fn count_problem(
    subject: &[Counts],
    reference_periods: Option<&[Counts]>,
    reference_total: Counts,
    tolerance: Tolerance,
    config: &JudgeConfig,
) -> Option<String> {
    let invalid = |periods: &[Counts]| periods.iter().position(|c| c.events > c.trials);
    if let Some(why) = config.problem().or_else(|| tolerance.problem()) {
        return Some(why);
    }
    if subject.is_empty() {
        return Some("no periods to judge yet".into());
    }
    if let Some(i) = invalid(subject) {
        return Some(format!("subject period {i} has more events than trials"));
    }
    if let Some(i) = reference_periods.and_then(invalid) {
        return Some(format!("reference period {i} has more events than trials"));
    }
    if reference_total.events > reference_total.trials {
        return Some("the reference has more events than trials".into());
    }
    if Counts::total(subject).trials == 0 {
        return Some("no subject invocations yet".into());
    }
    if reference_total.trials == 0 {
        return Some("no reference invocations".into());
    }
    None
}

/// The two log e-values of a count test, and what they had to reach.
#[derive(Debug, Clone, PartialEq)]
struct Evidence {
    log_regression: f64,
    log_no_regression: f64,
    /// 1/α of the test itself (after any share spent on a bound).
    threshold: f64,
    /// How the test was made, for the explanation.
    method: String,
}

/// The conditional test against the concurrent stable version for a rate
/// ratio boundary `k`; see [`judge_counts`].
fn conditional_evidence(subject: &[Counts], reference: &[Counts], k: f64, alpha: f64) -> Evidence {
    let mut worse = [0.0; WORSE.len()];
    let mut better = [0.0; BETTER.len()];
    for (s, r) in subject.iter().zip(reference) {
        let Some((x, n, rho)) = conditional_period(*s, *r) else {
            continue;
        };
        for (sum, m) in worse.iter_mut().zip(WORSE) {
            *sum += conditional_log_lr(x, n, rho, k * m, k);
        }
        for (sum, m) in better.iter_mut().zip(BETTER) {
            *sum += conditional_log_lr(x, n, rho, k * m, k);
        }
    }
    let events = Counts::total(subject).events + Counts::total(reference).events;
    let method = if events == 0 {
        "conditional on each minute's errors; no errors on either side yet, and a ratio needs some"
    } else {
        "conditional on each minute's errors"
    };
    Evidence {
        log_regression: log_mean_exp(&worse),
        log_no_regression: log_mean_exp(&better),
        threshold: 1.0 / alpha,
        method: method.into(),
    }
}

/// A period's subject events, total events and subject share of trials,
/// if it carries evidence (events, and trials on both sides).
fn conditional_period(subject: Counts, reference: Counts) -> Option<(f64, f64, f64)> {
    let n = subject.events + reference.events;
    if n == 0 || subject.trials == 0 || reference.trials == 0 {
        return None;
    }
    let rho = subject.trials as f64 / (subject.trials as f64 + reference.trials as f64);
    Some((subject.events as f64, n as f64, rho))
}

/// ln LR(r)/LR(k) of `x` subject events out of `n` in a period with
/// subject share `rho`, x ~ Binomial(n, θ(r)), θ(r) = ρr/(ρr + 1 − ρ):
/// `x·ln(r/k) + n·ln((1 + ρ(k−1)) / (1 + ρ(r−1)))`.
fn conditional_log_lr(x: f64, n: f64, rho: f64, r: f64, k: f64) -> f64 {
    x * (r / k).ln() + n * ((rho * (k - 1.0)).ln_1p() - (rho * (r - 1.0)).ln_1p())
}

/// The one-sample test with a `Delta(d)` tolerance (`d` as a fraction)
/// against the concurrent stable version, through its confidence
/// sequence; see [`judge_counts`].
fn delta_evidence(subject: &[Counts], reference: &[Counts], d: f64, alpha: f64) -> Evidence {
    let bound_alpha = alpha * REFERENCE_ALPHA_SHARE;
    let mut seen = Counts::default();
    let mut last = (f64::NAN, f64::NAN);
    let boundaries = subject.iter().zip(reference).map(|(s, r)| {
        seen = seen.plus(*r);
        let (low, high) = mixture_confidence_sequence(seen, bound_alpha);
        last = (high + d, low + d);
        (*s, high + d, low + d)
    });
    let (log_regression, log_no_regression) = one_sample_evidence(boundaries);
    Evidence {
        log_regression,
        log_no_regression,
        threshold: 1.0 / (alpha - bound_alpha),
        method: format!(
            "one-sample against the stable rate's {:.1} % confidence sequence {:+.2} points: > {} / < {}",
            100.0 * (1.0 - bound_alpha),
            100.0 * d,
            percent(last.0),
            percent(last.1)
        ),
    }
}

/// The one-sample test against a fixed reference; see [`judge_counts`].
fn fixed_evidence(
    subject: &[Counts],
    reference: Counts,
    tolerance: Tolerance,
    alpha: f64,
) -> Evidence {
    let bound_alpha = alpha * REFERENCE_ALPHA_SHARE;
    let (low, high) = chernoff_bounds(reference, bound_alpha);
    let allowed = |rate: f64| match tolerance {
        Tolerance::Ratio(k) => rate * k,
        Tolerance::Delta(d) => rate + d / 100.0,
    };
    let (upper, lower) = (allowed(high), allowed(low));
    let (log_regression, log_no_regression) =
        one_sample_evidence(subject.iter().map(|s| (*s, upper, lower)));
    Evidence {
        log_regression,
        log_no_regression,
        threshold: 1.0 / (alpha - bound_alpha),
        method: format!(
            "one-sample against the reference's {:.1} % bounds, tolerance applied: > {} / < {}",
            100.0 * (1.0 - bound_alpha),
            percent(upper),
            percent(lower)
        ),
    }
}

/// Log mixture e-values of the subject's Bernoulli stream, period by
/// period, against "rate ≤ upper" (regression) and "rate ≥ lower" (no
/// regression). Alternatives are odds multiples of the boundary, so they
/// stay inside (0, 1). A boundary that the rate cannot cross (upper ≥ 1,
/// lower ≤ 0) gives no evidence; one beyond the other end is pulled inside,
/// which only makes the hypothesis tested larger.
fn one_sample_evidence(periods: impl Iterator<Item = (Counts, f64, f64)>) -> (f64, f64) {
    let mut worse = [0.0; WORSE.len()];
    let mut better = [0.0; BETTER.len()];
    for (counts, upper, lower) in periods {
        let (x, t) = (counts.events as f64, counts.trials as f64);
        if t == 0.0 {
            continue;
        }
        if upper < 1.0 {
            let b = upper.max(RATE_EPSILON);
            for (sum, m) in worse.iter_mut().zip(WORSE) {
                *sum += binomial_log_lr(x, t, odds_multiple(b, m), b);
            }
        }
        if lower > 0.0 {
            let b = lower.min(1.0 - RATE_EPSILON);
            for (sum, m) in better.iter_mut().zip(BETTER) {
                *sum += binomial_log_lr(x, t, odds_multiple(b, m), b);
            }
        }
    }
    (log_mean_exp(&worse), log_mean_exp(&better))
}

/// The rate whose odds are `m` times those of `p`.
fn odds_multiple(p: f64, m: f64) -> f64 {
    let odds = m * p / (1.0 - p);
    odds / (1.0 + odds)
}

/// ln of the binomial likelihood ratio of rate `q` to rate `b` for `x`
/// events in `t` trials.
fn binomial_log_lr(x: f64, t: f64, q: f64, b: f64) -> f64 {
    x * (q / b).ln() + (t - x) * ((-q).ln_1p() - (-b).ln_1p())
}

/// An anytime-valid confidence sequence for a Bernoulli rate at level
/// `alpha`: the rates p at which Robbins' beta-binomial mixture martingale
/// (Jeffreys prior Beta(½, ½)) stays below 1/α. Covers the true rate at
/// every sample size at once with probability ≥ 1 − α.
fn mixture_confidence_sequence(seen: Counts, alpha: f64) -> (f64, f64) {
    let (x, t) = (seen.events as f64, seen.trials as f64);
    if t == 0.0 {
        return (0.0, 1.0);
    }
    let log_mixture = ln_beta(0.5 + x, 0.5 + t - x) - ln_beta(0.5, 0.5);
    let log_martingale = |p: f64| log_mixture - log_likelihood(x, t, p);
    rate_interval(seen, (1.0 / alpha).ln(), log_martingale)
}

/// Fixed-sample Chernoff bounds for a Bernoulli rate, each side at level
/// `alpha`: the rates p with n·KL(p̂‖p) < ln(1/α).
fn chernoff_bounds(seen: Counts, alpha: f64) -> (f64, f64) {
    let (x, t) = (seen.events as f64, seen.trials as f64);
    let best = log_likelihood(x, t, x / t);
    rate_interval(seen, (1.0 / alpha).ln(), |p| best - log_likelihood(x, t, p))
}

/// The interval around the observed rate where `evidence` (convex, least
/// at the observed rate) stays below `level`, by bisection; each end is
/// rounded outwards, which only widens the interval.
fn rate_interval(seen: Counts, level: f64, evidence: impl Fn(f64) -> f64) -> (f64, f64) {
    let observed = seen.rate();
    // 45 halvings of [0, 1]: 3e-14, far finer than any rate that matters.
    let crossing = |mut inside: f64, mut outside: f64| {
        for _ in 0..45 {
            let middle = 0.5 * (inside + outside);
            if evidence(middle) < level {
                inside = middle;
            } else {
                outside = middle;
            }
        }
        outside
    };
    let low = if seen.events == 0 {
        0.0
    } else {
        crossing(observed, 0.0)
    };
    let high = if seen.events == seen.trials {
        1.0
    } else {
        crossing(observed, 1.0)
    };
    (low, high)
}

/// ln p^x (1−p)^(t−x), with 0·ln 0 = 0.
fn log_likelihood(x: f64, t: f64, p: f64) -> f64 {
    let term = |count: f64, q: f64| if count == 0.0 { 0.0 } else { count * q.ln() };
    term(x, p) + term(t - x, 1.0 - p)
}

/// What [`judge_counts`] reports besides the evidence.
struct CountSummary<'a> {
    metric: &'a str,
    side: &'a str,
    subject: Counts,
    reference: Counts,
    tolerance: Tolerance,
}

impl CountSummary<'_> {
    fn effect(&self) -> Option<f64> {
        if self.subject.trials == 0 || self.reference.trials == 0 {
            return None;
        }
        let (s, r) = (self.subject.rate(), self.reference.rate());
        match self.tolerance {
            Tolerance::Ratio(_) => (r > 0.0).then(|| s / r),
            Tolerance::Delta(_) => Some(100.0 * (s - r)),
        }
    }

    /// "canary 3.10 % vs stable 1.02 % (×3.04) over 12,000/108,000 invocations; tolerance ×1.00"
    fn observed(&self) -> String {
        let rate = |c: Counts| {
            if c.trials == 0 {
                "–".to_string()
            } else {
                percent(c.rate())
            }
        };
        let effect = match (self.effect(), self.tolerance) {
            (Some(e), Tolerance::Ratio(_)) => format!(" (×{e:.2})"),
            (Some(e), Tolerance::Delta(_)) => format!(" ({e:+.2} points)"),
            (None, _) => String::new(),
        };
        let tolerance = match self.tolerance {
            Tolerance::Delta(d) => format!("{d:+.2} points"),
            ratio => ratio.describe(),
        };
        format!(
            "{}: canary {} vs {} {}{effect} over {}/{} invocations; tolerance {tolerance}",
            self.metric,
            rate(self.subject),
            self.side,
            rate(self.reference),
            thousands(self.subject.trials),
            thousands(self.reference.trials),
        )
    }

    fn inconclusive(&self, why: &str, config: &JudgeConfig) -> Judgement {
        let threshold = if config.problem().is_none() {
            1.0 / config.alpha
        } else {
            0.0
        };
        Judgement {
            verdict: JudgeVerdict::Inconclusive,
            test: MIXTURE_SPRT.into(),
            statistic: 1.0,
            threshold,
            subject_samples: self.subject.trials,
            reference_samples: self.reference.trials,
            effect: self.effect().filter(|e| e.is_finite()),
            explanation: format!("{}; not judged: {why} → inconclusive", self.observed()),
            regression_statistic: 1.0,
            no_regression_statistic: 1.0,
        }
    }

    fn judge(&self, evidence: &Evidence) -> Judgement {
        let reached = |log_e: f64| log_e >= evidence.threshold.ln();
        let (verdict, log_statistic) = if reached(evidence.log_regression) {
            (JudgeVerdict::Regression, evidence.log_regression)
        } else if reached(evidence.log_no_regression) {
            (JudgeVerdict::NoRegression, evidence.log_no_regression)
        } else {
            let larger = evidence.log_regression.max(evidence.log_no_regression);
            (JudgeVerdict::Inconclusive, larger)
        };
        let threshold = evidence.threshold;
        let conclusion = match verdict {
            JudgeVerdict::Regression => "≥ threshold → regression",
            JudgeVerdict::NoRegression => "≥ threshold → no regression",
            JudgeVerdict::Inconclusive => "both < threshold → inconclusive",
        };
        let explanation = format!(
            "{}; mixture SPRT ({}): regression {}, no regression {}, threshold {} ({conclusion})",
            self.observed(),
            evidence.method,
            number(e_value(evidence.log_regression)),
            number(e_value(evidence.log_no_regression)),
            number(threshold),
        );
        Judgement {
            verdict,
            test: MIXTURE_SPRT.into(),
            statistic: e_value(log_statistic),
            threshold,
            subject_samples: self.subject.trials,
            reference_samples: self.reference.trials,
            effect: self.effect(),
            explanation,
            regression_statistic: e_value(evidence.log_regression),
            no_regression_statistic: e_value(evidence.log_no_regression),
        }
    }
}

/// Per-period datapoints of a value metric (per-minute p99 or average
/// duration, average tokens per request), judged by one-sided Mann–Whitney
/// U tests (normal approximation with continuity and tie corrections):
/// regression tests "subject > reference moved by the tolerance"
/// (`reference × k` or `reference + d`), no regression the reverse. This is
/// Kayenta's rank test with the tolerance as the minimum effect that
/// counts. The test at the j-th subject datapoint has level
/// `α_j = α·6/(π²j²)`: Σ α_j = α, so however often the caller asks, each
/// verdict is wrong with probability ≤ α (a union bound over j). Fewer than
/// `min_samples_per_side` datapoints on either side, or any that is not
/// finite (the caller drops missing minutes), is inconclusive. The effect is
/// the ratio (or difference) of the medians. The test assumes datapoints
/// independent within each side, which per-minute statistics of
/// independent invocations are.
pub fn judge_values(
    metric: &str,
    subject: &[f64],
    reference: &[f64],
    tolerance: Tolerance,
    config: &JudgeConfig,
) -> Judgement {
    let summary = ValueSummary {
        metric,
        subject,
        reference,
        tolerance,
    };
    if let Some(why) = value_problem(subject, reference, tolerance, config) {
        return summary.inconclusive(&why);
    }
    let moved: Vec<f64> = reference.iter().map(|&r| tolerance.allowed(r)).collect();
    let ranks = mann_whitney(subject, &moved);
    let spent = alpha_at_look(config.alpha, subject.len());
    let critical = -normal_quantile(spent);
    summary.judge(&ranks, critical, spent)
}

/// The α of look `j` (1-based, one look per subject datapoint): the
/// looks' α sum to `alpha` (Σ 6/(π²j²) = 1), so by a union bound every
/// look of a per-look test stays valid.
pub fn alpha_at_look(alpha: f64, look: usize) -> f64 {
    let j = look.max(1) as f64;
    alpha * 6.0 / (std::f64::consts::PI.powi(2) * j * j)
}

/// Why value series cannot be judged, if they cannot.
fn value_problem(
    subject: &[f64],
    reference: &[f64],
    tolerance: Tolerance,
    config: &JudgeConfig,
) -> Option<String> {
    if let Some(why) = config.problem().or_else(|| tolerance.problem()) {
        return Some(why);
    }
    let not_finite = |side: &[f64]| side.iter().filter(|v| !v.is_finite()).count();
    let (bad_subject, bad_reference) = (not_finite(subject), not_finite(reference));
    if bad_subject + bad_reference > 0 {
        return Some(format!(
            "{bad_subject} subject and {bad_reference} reference datapoints are not finite numbers"
        ));
    }
    let needed = config.min_samples_per_side.max(1);
    (subject.len() < needed || reference.len() < needed).then(|| {
        format!(
            "needs {needed} datapoints on each side, has {} and {}",
            subject.len(),
            reference.len()
        )
    })
}

/// The Mann–Whitney U statistic of `subject` against `reference` and the z
/// scores of the two one-sided tests.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RankTest {
    /// Pairs with the subject larger, ties counting one half.
    u: f64,
    /// z of "subject larger": (U − n₁n₂/2 − ½)/σ, as scipy's
    /// `mannwhitneyu(alternative="greater", method="asymptotic")`.
    z_greater: f64,
    /// z of "subject smaller": (n₁n₂/2 − U − ½)/σ.
    z_less: f64,
}

fn mann_whitney(subject: &[f64], reference: &[f64]) -> RankTest {
    let (n1, n2) = (subject.len() as f64, reference.len() as f64);
    let mut all: Vec<(f64, bool)> = subject
        .iter()
        .map(|&v| (v, true))
        .chain(reference.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut subject_rank_sum, mut tie_term) = (0.0, 0.0);
    let mut start = 0;
    while start < all.len() {
        let end = start + all[start..].partition_point(|v| v.0 == all[start].0);
        // Ranks start..end (1-based start+1..=end) share their average.
        let average = (start + 1 + end) as f64 / 2.0;
        let tied = (end - start) as f64;
        subject_rank_sum += average * all[start..end].iter().filter(|v| v.1).count() as f64;
        tie_term += tied.powi(3) - tied;
        start = end;
    }
    let n = n1 + n2;
    let u = subject_rank_sum - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    let z = |excess: f64| {
        if variance > 0.0 {
            (excess - 0.5) / variance.sqrt()
        } else {
            0.0
        }
    };
    RankTest {
        u,
        z_greater: z(u - mean),
        z_less: z(mean - u),
    }
}

/// What [`judge_values`] reports besides the test.
struct ValueSummary<'a> {
    metric: &'a str,
    subject: &'a [f64],
    reference: &'a [f64],
    tolerance: Tolerance,
}

impl ValueSummary<'_> {
    fn medians(&self) -> Option<(f64, f64)> {
        Some((median(self.subject)?, median(self.reference)?))
    }

    fn effect(&self) -> Option<f64> {
        let (s, r) = self.medians()?;
        let effect = match self.tolerance {
            Tolerance::Ratio(_) => (r != 0.0).then(|| s / r)?,
            Tolerance::Delta(_) => s - r,
        };
        effect.is_finite().then_some(effect)
    }

    /// "canary median 2,560 vs reference median 2,540 (×1.01) over 12/12 datapoints; tolerance ×1.10"
    fn observed(&self) -> String {
        let medians = match self.medians() {
            Some((s, r)) if s.is_finite() && r.is_finite() => {
                format!(
                    "canary median {} vs reference median {}",
                    value(s),
                    value(r)
                )
            }
            _ => "canary vs reference".to_string(),
        };
        let effect = match (self.effect(), self.tolerance) {
            (Some(e), Tolerance::Ratio(_)) => format!(" (×{e:.2})"),
            (Some(e), Tolerance::Delta(_)) => format!(" ({})", signed_value(e)),
            (None, _) => String::new(),
        };
        format!(
            "{}: {medians}{effect} over {}/{} datapoints; tolerance {}",
            self.metric,
            self.subject.len(),
            self.reference.len(),
            self.tolerance.describe()
        )
    }

    fn inconclusive(&self, why: &str) -> Judgement {
        Judgement {
            verdict: JudgeVerdict::Inconclusive,
            test: MANN_WHITNEY.into(),
            statistic: 0.0,
            threshold: 0.0,
            subject_samples: self.subject.len() as u64,
            reference_samples: self.reference.len() as u64,
            effect: self.effect(),
            explanation: format!("{}; not judged: {why} → inconclusive", self.observed()),
            regression_statistic: 0.0,
            no_regression_statistic: 0.0,
        }
    }

    fn judge(&self, test: &RankTest, critical: f64, spent: f64) -> Judgement {
        let (verdict, statistic) = if test.z_greater >= critical {
            (JudgeVerdict::Regression, test.z_greater)
        } else if test.z_less >= critical {
            (JudgeVerdict::NoRegression, test.z_less)
        } else {
            let larger = test.z_greater.max(test.z_less);
            (JudgeVerdict::Inconclusive, larger)
        };
        let conclusion = match verdict {
            JudgeVerdict::Regression => "regression",
            JudgeVerdict::NoRegression => "no regression",
            JudgeVerdict::Inconclusive => "inconclusive",
        };
        let explanation = format!(
            "{}; Mann–Whitney U {:.1} against the reference moved by the tolerance: z regression {:.2}, no regression {:.2}, critical {:.2} (α {spent:.1e} at look {}) → {conclusion}",
            self.observed(),
            test.u,
            test.z_greater,
            test.z_less,
            critical,
            self.subject.len(),
        );
        Judgement {
            verdict,
            test: MANN_WHITNEY.into(),
            statistic,
            threshold: critical,
            subject_samples: self.subject.len() as u64,
            reference_samples: self.reference.len() as u64,
            effect: self.effect(),
            explanation,
            regression_statistic: test.z_greater,
            no_regression_statistic: test.z_less,
        }
    }
}

/// The median (the mean of the middle two for an even count); `None` for
/// no values.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        0.5 * (sorted[mid - 1] + sorted[mid])
    } else {
        sorted[mid]
    })
}

/// ln of the mean of the exponentials, without overflow.
fn log_mean_exp(logs: &[f64]) -> f64 {
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if top == f64::NEG_INFINITY || logs.is_empty() {
        return f64::NEG_INFINITY;
    }
    let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
    top + sum.ln() - (logs.len() as f64).ln()
}

/// An e-value from its logarithm, finite (JSON has no infinity).
fn e_value(log: f64) -> f64 {
    log.min(690.0).exp()
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9: about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1−x) = π / sin(πx).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The complementary error function, to about 1e-14 relative: a series
/// without cancellation below 2.5, a continued fraction above.
fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        // erf x = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum
    } else {
        // erfc x = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3/2/(x + …))))
        let mut fraction = x;
        for n in (1..=60).rev() {
            fraction = x + (n as f64 / 2.0) / fraction;
        }
        (-x * x).exp() / (std::f64::consts::PI.sqrt() * fraction)
    }
}

/// The standard normal distribution function.
pub(crate) fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The standard normal quantile function: Acklam's rational
/// approximation, refined by one Halley step on [`normal_cdf`] (full
/// double precision in both tails). 0 and 1 give ∓infinity; outside [0, 1], NaN.
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let horner = |coefficients: &[f64], x: f64| coefficients.iter().fold(0.0, |s, c| s * x + c);
    let tail = |q: f64| {
        let r = (-2.0 * q.ln()).sqrt();
        horner(&C, r) / (horner(&D, r) * r + 1.0)
    };
    let x = if p < 0.02425 {
        tail(p)
    } else if p > 1.0 - 0.02425 {
        -tail(1.0 - p)
    } else {
        let q = p - 0.5;
        let r = q * q;
        horner(&A, r) * q / (horner(&B, r) * r + 1.0)
    };
    // One Halley step on Φ(x) − p; in the upper half through the
    // complement, where Φ(−x) keeps its precision.
    let error = if p > 0.5 {
        (1.0 - p) - normal_cdf(-x)
    } else {
        normal_cdf(x) - p
    };
    let u = error * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    x - u / (1.0 + x * u / 2.0)
}

fn percent(rate: f64) -> String {
    format!("{:.2} %", 100.0 * rate)
}

/// 108000 → "108,000".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An e-value for people: "412.0", "3.1e12".
fn number(x: f64) -> String {
    if x >= 1e6 {
        format!("{x:.1e}")
    } else if x >= 0.01 || x == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0e}")
    }
}

/// A datapoint for people: "2,560", "0.85".
fn value(x: f64) -> String {
    if x.abs() >= 1000.0 && x.abs() < 1e15 {
        let sign = if x < 0.0 { "-" } else { "" };
        format!("{sign}{}", thousands(x.abs().round() as u64))
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn signed_value(x: f64) -> String {
    if x >= 0.0 {
        format!("+{}", value(x))
    } else {
        value(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs().max(1e-300)
    }

    fn counts(events: u64, trials: u64) -> Counts {
        Counts { events, trials }
    }

    /// `minutes` identical minutes of (events, trials).
    fn minutes(n: usize, events: u64, trials: u64) -> Vec<Counts> {
        vec![counts(events, trials); n]
    }

    fn config() -> JudgeConfig {
        JudgeConfig::default()
    }

    fn concurrent(subject: &[Counts], stable: &[Counts], tolerance: Tolerance) -> Judgement {
        judge_counts(
            "error_rate",
            subject,
            CountReference::Concurrent(stable),
            tolerance,
            &config(),
        )
    }

    // --- Known cases, computed by hand (and checked in Python 3.11). ---

    #[test]
    fn conditional_likelihood_ratio_of_one_period_by_hand() {
        // 3 of 4 errors on the subject, equal traffic (θ(1) = ½, θ(2) = ⅔):
        // LR = (⅔ / ½)³ (⅓ / ½)¹ = 8 · (2/3)⁴ = 128/81.
        let lr = conditional_log_lr(3.0, 4.0, 0.5, 2.0, 1.0).exp();
        assert!(close(lr, 128.0 / 81.0, 1e-12), "{lr}");
        // At r = k the ratio is 1 whatever the data.
        assert_eq!(conditional_log_lr(3.0, 4.0, 0.3, 2.5, 2.5), 0.0);
    }

    #[test]
    fn mixture_is_the_mean_over_the_grid() {
        // One period: 3 errors / 100 on the canary, 1 / 100 on the stable.
        // Python: mean over WORSE of (m^3 · (1/(1 + (m−1)/2))^4) = 1.3098245446254404,
        // over BETTER 0.36801351259347886.
        let j = concurrent(&[counts(3, 100)], &[counts(1, 100)], Tolerance::Ratio(1.0));
        assert!(close(
            j.regression_statistic,
            1.309_824_544_625_440_4,
            1e-12
        ));
        assert!(close(
            j.no_regression_statistic,
            0.368_013_512_593_478_86,
            1e-12
        ));
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
        assert_eq!(j.threshold, 100.0);
        assert_eq!(j.test, "mixture-sprt");
        assert_eq!(j.effect, Some(3.0));
    }

    #[test]
    fn binomial_likelihood_ratio_by_hand() {
        // 2 events in 10 trials, 0.3 against 0.1: 3² · (0.7/0.9)⁸.
        let lr = binomial_log_lr(2.0, 10.0, 0.3, 0.1).exp();
        assert!(close(lr, 1.205_276_680_655_884_3, 1e-12), "{lr}");
        assert!(close(odds_multiple(0.5, 3.0), 0.75, 1e-15));
    }

    #[test]
    fn rate_bounds_with_no_events_by_hand() {
        // Chernoff: 1000·(−ln(1−p)) = ln 1000 ⇒ p = 1 − 0.001^(1/1000).
        let (low, high) = chernoff_bounds(counts(0, 1000), 0.001);
        assert_eq!(low, 0.0);
        assert!(close(high, 0.006_883_951_579_066_183, 1e-9), "{high}");
        // Mixture: ln B(½, 1000.5) − ln B(½, ½) − 1000 ln(1−p) = ln 1000.
        let (low, high) = mixture_confidence_sequence(counts(0, 1000), 0.001);
        assert_eq!(low, 0.0);
        assert!(close(high, 0.010_874_562_617_347_094, 1e-9), "{high}");
        // The anytime-valid sequence is wider than the fixed-sample bound.
        let (l1, h1) = chernoff_bounds(counts(100, 10_000), 0.001);
        let (l2, h2) = mixture_confidence_sequence(counts(100, 10_000), 0.001);
        assert!(
            l2 < l1 && l1 < 0.01 && 0.01 < h1 && h1 < h2,
            "{l1} {h1} {l2} {h2}"
        );
    }

    #[test]
    fn normal_functions_match_scipy() {
        // scipy.stats.norm 1.17.1: ppf(0.975), ppf(1e-6), ppf(0.3), isf(1e-12), cdf(−3), cdf(1), cdf(−8).
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054, 1e-13));
        assert!(close(normal_quantile(1e-6), -4.753_424_308_822_899, 1e-13));
        assert!(close(normal_quantile(0.3), -0.524_400_512_708_040_9, 1e-13));
        assert!(close(-normal_quantile(1e-12), 7.034_483_825_301_131, 1e-13));
        assert!(close(normal_cdf(-3.0), 0.001_349_898_031_630_093_3, 1e-12));
        assert!(close(normal_cdf(1.0), 0.841_344_746_068_542_9, 1e-14));
        assert!(close(normal_cdf(-8.0), 6.220_960_574_271_74e-16, 1e-10));
        assert!(normal_quantile(f64::NAN).is_nan() && normal_quantile(1.5).is_nan());
    }

    #[test]
    fn ln_gamma_matches_python() {
        // math.lgamma
        for (x, want) in [
            (0.5, 0.572_364_942_924_700_4),
            (3.7, 1.428_072_326_665_388_3),
            (10.0, 12.801_827_480_081_467),
            (1000.5, 5_908.674_175_848_678),
            (1e7 + 0.5, 151_180_957.428_521_72),
        ] {
            assert!(close(ln_gamma(x), want, 1e-13), "{x}: {}", ln_gamma(x));
        }
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu(x, y, alternative=…, method="asymptotic",
        // use_continuity=True), scipy 1.17.1, with a three-way tie at 3.1:
        // U = 38.0; "greater" p = 0.008889186484350711 (z = norm.isf(p) =
        // 2.3702019202711706); "less" p = 0.994028948091233 (z = −2.5138505214997244).
        let x = [3.1, 2.4, 5.0, 4.4, 3.1, 6.2];
        let y = [2.0, 3.1, 1.5, 2.8, 2.2, 3.0, 1.9];
        let t = mann_whitney(&x, &y);
        assert_eq!(t.u, 38.0);
        assert!(close(t.z_greater, 2.370_201_920_271_170_6, 1e-12), "{t:?}");
        assert!(close(t.z_less, -2.513_850_521_499_724_4, 1e-12), "{t:?}");
        assert!(close(
            1.0 - normal_cdf(t.z_greater),
            0.008_889_186_484_350_711,
            1e-10
        ));
        // Through judge_values (Ratio(1): the reference unmoved): 6 looks in,
        // α₆ = 0.01·6/(36π²), far above z = 2.37, so inconclusive.
        let j = judge_values("p99", &x, &y, Tolerance::Ratio(1.0), &config());
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
        assert_eq!(j.regression_statistic, t.z_greater);
        assert_eq!(j.effect, Some(3.75 / 2.2));
    }

    #[test]
    fn values_spend_alpha_over_looks() {
        // scipy: norm.isf(0.01·6/(π²·144)) = 3.931452102666137 at look 12.
        let subject: Vec<f64> = (0..12).map(|i| 100.0 + i as f64).collect();
        let j = judge_values("p99", &subject, &subject, Tolerance::Ratio(1.0), &config());
        assert!(
            close(j.threshold, 3.931_452_102_666_137, 1e-12),
            "{}",
            j.threshold
        );
        assert_eq!(j.test, "mann-whitney");
        // Complete separation at 12 vs 12: z = (144 − 72 − ½)/√(144·25/12) = 4.128 ≥ 3.93.
        let slow: Vec<f64> = subject.iter().map(|v| v * 2.0).collect();
        let j = judge_values("p99", &slow, &subject, Tolerance::Ratio(1.0), &config());
        assert_eq!(j.verdict, JudgeVerdict::Regression, "{}", j.explanation);
        assert!(close(j.statistic, 71.5 / 300f64.sqrt(), 1e-12));
        // ...but not at 10 vs 10 (max z 3.75 < 3.84): the spending needs looks.
        let j = judge_values(
            "p99",
            &slow[..10],
            &subject[..10],
            Tolerance::Ratio(1.0),
            &config(),
        );
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
    }

    // --- Tolerance maths. ---

    #[test]
    fn ratio_and_delta_tolerances_on_counts() {
        // Canary 3 %, stable 1 %, an hour at 200 invocations/s and 10 %.
        let canary = minutes(60, 360, 12_000);
        let stable = minutes(60, 1_080, 108_000);
        let verdict = |t| concurrent(&canary, &stable, t).verdict;
        assert_eq!(verdict(Tolerance::Ratio(1.0)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Ratio(2.0)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Ratio(4.0)), JudgeVerdict::NoRegression);
        assert_eq!(verdict(Tolerance::Delta(0.0)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Delta(1.0)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Delta(3.0)), JudgeVerdict::NoRegression);
        // Exactly on the boundary (3 % = 1 % × 3 = 1 % + 2 points): neither.
        assert_eq!(verdict(Tolerance::Ratio(3.0)), JudgeVerdict::Inconclusive);
        assert_eq!(verdict(Tolerance::Delta(2.0)), JudgeVerdict::Inconclusive);
        // Delta(0) is Ratio(1): the same test, the effect in points.
        let (d, r) = (
            concurrent(&canary, &stable, Tolerance::Delta(0.0)),
            concurrent(&canary, &stable, Tolerance::Ratio(1.0)),
        );
        assert_eq!(d.regression_statistic, r.regression_statistic);
        assert!(close(d.effect.unwrap(), 2.0, 1e-12) && close(r.effect.unwrap(), 3.0, 1e-12));
    }

    #[test]
    fn fixed_reference_applies_the_tolerance_to_its_rate() {
        // A week at 1 % (reference rate all but known); the canary at 1.5 %.
        let week = counts(1_209_600, 120_960_000);
        let canary = minutes(60, 180, 12_000);
        let verdict = |t| {
            judge_counts(
                "error_rate",
                &canary,
                CountReference::Fixed(week),
                t,
                &config(),
            )
        };
        assert_eq!(
            verdict(Tolerance::Ratio(1.0)).verdict,
            JudgeVerdict::Regression
        );
        assert_eq!(
            verdict(Tolerance::Delta(0.2)).verdict,
            JudgeVerdict::Regression
        );
        assert_eq!(
            verdict(Tolerance::Ratio(2.0)).verdict,
            JudgeVerdict::NoRegression
        );
        assert_eq!(
            verdict(Tolerance::Delta(1.0)).verdict,
            JudgeVerdict::NoRegression
        );
        // Ratio(2) and Delta(1) bound at the same 2 %: nearly the same evidence
        // (the reference bounds differ by a hair).
        let (r, d) = (
            verdict(Tolerance::Ratio(2.0)),
            verdict(Tolerance::Delta(1.0)),
        );
        let ratio = r.no_regression_statistic.ln() / d.no_regression_statistic.ln();
        assert!((0.95..1.05).contains(&ratio), "{ratio}");
        assert!(
            r.explanation.contains("vs reference 1.00 %"),
            "{}",
            r.explanation
        );
        assert!(close(d.effect.unwrap(), 0.5, 1e-9));
    }

    #[test]
    fn a_small_fixed_reference_is_not_taken_as_exact() {
        // 5 errors in 1,000 previous-phase invocations (0.5 %, but 1 % is
        // plausible); a canary at 0.9 % over 60,000 is not shown worse.
        let canary = minutes(5, 108, 12_000);
        let j = judge_counts(
            "error_rate",
            &canary,
            CountReference::Fixed(counts(5, 1_000)),
            Tolerance::Ratio(1.0),
            &config(),
        );
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
    }

    #[test]
    fn a_small_stable_sample_is_not_taken_as_exact_for_a_difference() {
        // The stable version's 10 errors in 1,000 (1 %, but 2 % is
        // plausible); the canary at 2.5 % over 100,000 is not shown more
        // than 1 point worse, though it is 1.5 points above the estimate.
        let j = concurrent(
            &[counts(2_500, 100_000)],
            &[counts(10, 1_000)],
            Tolerance::Delta(1.0),
        );
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
        // With a large stable sample at the same rate, it is.
        let j = concurrent(
            &[counts(2_500, 100_000)],
            &[counts(10_000, 1_000_000)],
            Tolerance::Delta(1.0),
        );
        assert_eq!(j.verdict, JudgeVerdict::Regression, "{}", j.explanation);
    }

    #[test]
    fn values_tolerances_move_the_reference() {
        let reference: Vec<f64> = (0..20).map(|i| 1000.0 + i as f64).collect();
        let slower: Vec<f64> = reference.iter().map(|r| r * 1.2).collect();
        let verdict = |t| judge_values("p99", &slower, &reference, t, &config()).verdict;
        assert_eq!(verdict(Tolerance::Ratio(1.1)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Ratio(1.3)), JudgeVerdict::NoRegression);
        // +20 % of ~1010 is ~202.
        assert_eq!(verdict(Tolerance::Delta(100.0)), JudgeVerdict::Regression);
        assert_eq!(verdict(Tolerance::Delta(400.0)), JudgeVerdict::NoRegression);
        let j = judge_values("p99", &slower, &reference, Tolerance::Delta(0.0), &config());
        assert!(
            close(j.effect.unwrap(), 0.2 * 1009.5, 1e-12),
            "{:?}",
            j.effect
        );
        let j = judge_values("p99", &slower, &reference, Tolerance::Ratio(1.0), &config());
        assert!(close(j.effect.unwrap(), 1.2, 1e-12));
    }

    // --- Monotonicity. ---

    #[test]
    fn more_canary_errors_never_make_regression_less_likely() {
        let stable = minutes(10, 100, 10_000);
        for tolerance in [
            Tolerance::Ratio(1.0),
            Tolerance::Ratio(1.5),
            Tolerance::Delta(0.5),
        ] {
            let mut previous: Option<Judgement> = None;
            for errors in 0..=60 {
                let canary = minutes(10, errors, 1_000);
                let j = concurrent(&canary, &stable, tolerance);
                if let Some(p) = previous {
                    assert!(
                        j.regression_statistic >= p.regression_statistic,
                        "{tolerance:?} {errors}"
                    );
                    assert!(j.no_regression_statistic <= p.no_regression_statistic);
                    assert!(
                        p.verdict != JudgeVerdict::Regression
                            || j.verdict == JudgeVerdict::Regression
                    );
                }
                previous = Some(j);
            }
            assert_eq!(
                previous.unwrap().verdict,
                JudgeVerdict::Regression,
                "{tolerance:?}"
            );
        }
        let mut last = 0.0;
        for errors in 0..=40 {
            let j = judge_counts(
                "error_rate",
                &minutes(10, errors, 1_000),
                CountReference::Fixed(counts(10_000, 1_000_000)),
                Tolerance::Ratio(1.0),
                &config(),
            );
            assert!(j.regression_statistic >= last);
            last = j.regression_statistic;
        }
    }

    #[test]
    fn slower_canary_datapoints_never_make_regression_less_likely() {
        let reference: Vec<f64> = (0..15).map(|i| 2000.0 + 7.0 * i as f64).collect();
        let mut last = f64::NEG_INFINITY;
        for step in 0..40 {
            let subject: Vec<f64> = reference
                .iter()
                .map(|r| r * (0.9 + 0.01 * step as f64))
                .collect();
            let j = judge_values(
                "p99",
                &subject,
                &reference,
                Tolerance::Ratio(1.1),
                &config(),
            );
            assert!(j.regression_statistic >= last);
            last = j.regression_statistic;
        }
    }

    // --- Edge cases: never a panic, always inconclusive with the reason. ---

    fn assert_inconclusive(j: &Judgement, why: &str) {
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive, "{}", j.explanation);
        assert!(
            j.explanation.contains(why),
            "{:?} lacks {why:?}",
            j.explanation
        );
        round_trips(j);
    }

    fn round_trips(j: &Judgement) {
        let text = serde_json::to_string(j).expect("a judgement serializes");
        let back: Judgement = serde_json::from_str(&text).expect("and reads back");
        assert_eq!(&back, j);
    }

    #[test]
    fn count_edge_cases() {
        let some = minutes(3, 1, 100);
        let t = Tolerance::Ratio(1.0);
        assert_inconclusive(&concurrent(&[], &[], t), "no periods");
        assert_inconclusive(&concurrent(&some, &[], t), "no periods");
        assert_inconclusive(
            &concurrent(&minutes(3, 0, 0), &some, t),
            "no subject invocations",
        );
        assert_inconclusive(
            &concurrent(&some, &minutes(3, 0, 0), t),
            "no reference invocations",
        );
        assert_inconclusive(
            &concurrent(&[counts(5, 4)], &some, t),
            "more events than trials",
        );
        assert_inconclusive(
            &concurrent(&some, &[counts(5, 4)], t),
            "more events than trials",
        );
        assert_inconclusive(
            &concurrent(&some, &some, Tolerance::Ratio(0.0)),
            "not a positive",
        );
        assert_inconclusive(
            &concurrent(&some, &some, Tolerance::Ratio(f64::NAN)),
            "not a positive",
        );
        assert_inconclusive(
            &concurrent(&some, &some, Tolerance::Delta(f64::INFINITY)),
            "not a finite",
        );
        let bad_alpha = JudgeConfig {
            alpha: 1.5,
            ..config()
        };
        let j = judge_counts("e", &some, CountReference::Concurrent(&some), t, &bad_alpha);
        assert_inconclusive(&j, "alpha");
        let j = judge_counts(
            "e",
            &some,
            CountReference::Fixed(counts(0, 0)),
            t,
            &config(),
        );
        assert_inconclusive(&j, "no reference invocations");
        // Zero-trial minutes in the middle are skipped, not fatal.
        let gappy = [counts(1, 100), counts(0, 0), counts(2, 100)];
        assert_eq!(concurrent(&gappy, &gappy, t).subject_samples, 200);
    }

    #[test]
    fn no_errors_anywhere_says_why_a_ratio_cannot_decide() {
        let canary = minutes(60, 0, 12_000);
        let stable = minutes(60, 0, 108_000);
        let j = concurrent(&canary, &stable, Tolerance::Ratio(1.0));
        assert_inconclusive(&j, "no errors on either side");
        assert_eq!(j.effect, None);
        // A difference can: 720,000 clean invocations are within 1 point.
        let j = concurrent(&canary, &stable, Tolerance::Delta(1.0));
        assert_eq!(j.verdict, JudgeVerdict::NoRegression, "{}", j.explanation);
        assert_eq!(j.effect, Some(0.0));
        round_trips(&j);
    }

    #[test]
    fn value_edge_cases() {
        let five = [1.0, 2.0, 3.0, 4.0, 5.0];
        let t = Tolerance::Ratio(1.0);
        assert_inconclusive(
            &judge_values("p99", &[], &[], t, &config()),
            "needs 5 datapoints",
        );
        assert_inconclusive(
            &judge_values("p99", &five[..4], &five, t, &config()),
            "has 4 and 5",
        );
        let nan = [1.0, f64::NAN, 3.0, 4.0, 5.0];
        assert_inconclusive(
            &judge_values("p99", &nan, &five, t, &config()),
            "not finite",
        );
        let inf = [1.0, 2.0, 3.0, 4.0, f64::INFINITY];
        assert_inconclusive(
            &judge_values("p99", &five, &inf, t, &config()),
            "not finite",
        );
        assert_inconclusive(
            &judge_values("p99", &five, &five, Tolerance::Ratio(-1.0), &config()),
            "not a positive",
        );
        // All equal: no variance, no evidence either way.
        let flat = [7.0; 20];
        let j = judge_values("p99", &flat, &flat, t, &config());
        assert_eq!(j.verdict, JudgeVerdict::Inconclusive);
        round_trips(&j);
        // A zero reference median has no ratio.
        let zeros = [0.0; 20];
        assert_eq!(
            judge_values("p99", &flat, &zeros, t, &config()).effect,
            None
        );
    }

    #[test]
    fn overwhelming_evidence_stays_finite_for_json() {
        let j = concurrent(
            &minutes(60, 6_000, 12_000),
            &minutes(60, 10, 108_000),
            Tolerance::Ratio(1.0),
        );
        assert_eq!(j.verdict, JudgeVerdict::Regression);
        assert!(j.statistic.is_finite() && j.statistic > 1e200);
        round_trips(&j);
    }

    // --- What the caller sees. ---

    #[test]
    fn explanation_names_test_samples_effect_and_verdict() {
        let j = concurrent(
            &minutes(1, 372, 12_000),
            &minutes(1, 1_102, 108_000),
            Tolerance::Ratio(1.0),
        );
        assert_eq!(j.verdict, JudgeVerdict::Regression);
        assert_eq!((j.subject_samples, j.reference_samples), (12_000, 108_000));
        for part in [
            "error_rate: canary 3.10 % vs stable 1.02 % (×3.04) over 12,000/108,000 invocations",
            "tolerance ×1.00",
            "mixture SPRT",
            "threshold 100.0",
            "→ regression",
        ] {
            assert!(
                j.explanation.contains(part),
                "{:?} lacks {part:?}",
                j.explanation
            );
        }
        let j = judge_values(
            "duration_p99",
            &[2560.0; 6],
            &[2540.0; 6],
            Tolerance::Ratio(1.1),
            &config(),
        );
        assert!(
            j.explanation.contains(
                "canary median 2,560 vs reference median 2,540 (×1.01) over 6/6 datapoints"
            ),
            "{}",
            j.explanation
        );
        assert!(j.explanation.contains("Mann–Whitney U"));
    }

    #[test]
    fn longer_series_are_judged_on_the_periods_both_have() {
        let canary = minutes(5, 3, 1_000);
        let stable = minutes(4, 10, 9_000);
        let j = concurrent(&canary, &stable, Tolerance::Ratio(1.0));
        let same = concurrent(&canary[..4], &stable, Tolerance::Ratio(1.0));
        assert_eq!(j, same);
        assert_eq!(j.subject_samples, 4_000);
    }

    #[test]
    fn canary_weight_may_change_between_minutes() {
        // 10 % then 50 %: each minute's own share is used, so a canary at the
        // stable rate shows no regression evidence beyond chance either way.
        let canary = [counts(10, 1_000), counts(50, 5_000)];
        let stable = [counts(90, 9_000), counts(50, 5_000)];
        let j = concurrent(&canary, &stable, Tolerance::Ratio(1.0));
        assert!(j.regression_statistic < 1.0, "{}", j.explanation);
        // Pooling the minutes instead would dilute the canary's share wrongly;
        // with the same totals in one minute the evidence differs.
        let pooled = concurrent(
            &[counts(60, 6_000)],
            &[counts(140, 14_000)],
            Tolerance::Ratio(1.0),
        );
        assert_ne!(pooled.regression_statistic, j.regression_statistic);
    }
}

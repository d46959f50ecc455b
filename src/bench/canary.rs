//! `rollgate bench --canary`: the canary judge (issue 10) on simulated
//! canaries, against the fixed-threshold rule rollgate uses today. Pure and
//! seeded: no AWS, no sandbox, the same numbers on every run.
//!
//! The model, minute by minute for [`HORIZON`] minutes from the start of a
//! canary step:
//!
//! - `60·R` invocations a minute (R = total invocations a second); each
//!   goes to the canary with probability [`WEIGHT`] (a weighted Lambda
//!   alias routes each invocation at random), so the canary's share varies
//!   from minute to minute as it does in production.
//! - Errors: Binomial(invocations, rate), drawn exactly; the stable rate is
//!   [`STABLE_ERROR`].
//! - Durations: log-normal, median [`MEDIAN_MS`] and σ = [`SIGMA`] (p99 ≈
//!   3.2 s: an API calling a model). A slower canary multiplies every one
//!   of its durations. Percentiles are nearest-rank (the ⌈0.99n⌉-th of n)
//!   and exact: the top order statistics of a minute's n uniforms are
//!   drawn directly (Rényi's representation: exponential spacings), as deep
//!   as that minute's p99 and every five-minute window's p99 need, and
//!   mapped through the log-normal quantile. No invocation is drawn one by
//!   one, so 2,000 invocations a second cost no more than 20.
//!
//! Rules, each checked at the end of every minute:
//!
//! - the judge ([`judge::judge_counts`], [`judge::judge_values`], α = 1 %),
//!   on the whole series since the step started, as the watcher calls it;
//! - the fixed threshold of today's guardrails with `consecutive = 1`:
//!   canary − stable error rate over the trailing five minutes > t points,
//!   canary p99 / stable p99 over the trailing five minutes > t; from the
//!   first complete window (minute 5); for comparison also over each
//!   minute alone. t is the seed plan's (2 points, ×1.25) or calibrated on
//!   the A/A runs to the judge's false-rollback rate (or to 1 %).
//!
//! CloudWatch's delay is not modelled: it adds the same to every rule.

use crate::domain::judge::{
    self, CountReference, Counts, JudgeConfig, JudgeVerdict, Tolerance, normal_quantile,
};

/// Minutes each canary is watched.
pub const HORIZON: usize = 60;
/// The canary's share of invocations.
pub const WEIGHT: f64 = 0.1;
pub const STABLE_ERROR: f64 = 0.01;
pub const MEDIAN_MS: f64 = 800.0;
pub const SIGMA: f64 = 0.6;
/// The fixed rule's trailing window, in minutes.
const WINDOW: usize = 5;
/// The seed plan's guardrails: error rate +2 points, p99 ×1.25.
const SEED_POINTS: f64 = 2.0;
const SEED_RATIO: f64 = 1.25;
/// The regressions to detect: 1 % → 3 % errors; every duration ×1.25.
const BAD_ERROR: f64 = 0.03;
const BAD_SLOWDOWN: f64 = 1.25;
/// Tolerances: "no worse than stable" for rollbacks; what lets a step
/// promote early.
const ROLLBACK_ERROR: Tolerance = Tolerance::Delta(0.0);
const ROLLBACK_P99: Tolerance = Tolerance::Ratio(1.0);
const PROMOTE_ERROR: Tolerance = Tolerance::Delta(1.0);
const PROMOTE_P99: Tolerance = Tolerance::Ratio(1.1);
/// The rate (invocations a second) of the detailed tables.
const MAIN_RATE: f64 = 200.0;
const SEED: u64 = 0x00ca_7a2d_1e57_2026;

/// xoshiro256++ (Blackman and Vigna), seeded through SplitMix64: small,
/// fast, and good enough for a simulation.
pub struct Rng {
    state: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut split_mix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            state: [split_mix(), split_mix(), split_mix(), split_mix()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on (0, 1), never 0 or 1.
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exponential(&mut self) -> f64 {
        -self.uniform().ln()
    }

    /// Standard normal (Box–Muller; one of the pair is dropped).
    fn normal(&mut self) -> f64 {
        let radius = (-2.0 * self.uniform().ln()).sqrt();
        radius * (std::f64::consts::TAU * self.uniform()).cos()
    }

    /// Gamma(shape, 1) for shape ≥ 1 (Marsaglia and Tsang 2000).
    fn gamma(&mut self, shape: f64) -> f64 {
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d * v;
            }
        }
    }

    /// Beta(a, b) for a, b ≥ 1.
    fn beta(&mut self, a: f64, b: f64) -> f64 {
        let x = self.gamma(a);
        x / (x + self.gamma(b))
    }

    /// Binomial(n, p), exactly. Small means count successes by geometric
    /// waiting times (O(np)); large ones split on the median order
    /// statistic of the n uniforms, a Beta variate, and recurse into the
    /// side that holds p (Knuth, TAOCP 3.4.1): O(log n) levels.
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if p <= 0.0 || n == 0 {
            return 0;
        }
        if p >= 1.0 {
            return n;
        }
        if p > 0.5 {
            return n - self.binomial(n, 1.0 - p);
        }
        if n as f64 * p < 40.0 {
            return self.binomial_by_waiting(n, p);
        }
        let a = n / 2 + 1;
        let x = self.beta(a as f64, (n + 1 - a) as f64);
        if x >= p {
            // The a − 1 uniforms below x are uniform on (0, x).
            self.binomial(a - 1, p / x)
        } else {
            // x itself and those below it are under p; the n − a above are
            // uniform on (x, 1).
            a + self.binomial(n - a, (p - x) / (1.0 - x))
        }
    }

    fn binomial_by_waiting(&mut self, n: u64, p: f64) -> u64 {
        let log_fail = (-p).ln_1p();
        let (mut successes, mut position) = (0, 0u64);
        loop {
            // A positive float: `as` truncates, which is floor here.
            let gap = (self.uniform().ln() / log_fail) as u64 + 1;
            position = position.saturating_add(gap);
            if position > n {
                return successes;
            }
            successes += 1;
        }
    }
}

/// What a simulated canary does.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    per_second: f64,
    canary_error: f64,
    /// Every canary duration is multiplied by this.
    slowdown: f64,
    errors: bool,
    durations: bool,
}

impl Traffic {
    fn a_a(per_second: f64) -> Traffic {
        Traffic {
            per_second,
            canary_error: STABLE_ERROR,
            slowdown: 1.0,
            errors: true,
            durations: true,
        }
    }

    fn bad_errors(per_second: f64) -> Traffic {
        Traffic {
            canary_error: BAD_ERROR,
            durations: false,
            ..Traffic::a_a(per_second)
        }
    }

    fn slow(per_second: f64) -> Traffic {
        Traffic {
            slowdown: BAD_SLOWDOWN,
            errors: false,
            ..Traffic::a_a(per_second)
        }
    }

    fn with_canary_error(self, rate: f64) -> Traffic {
        Traffic {
            canary_error: rate,
            durations: false,
            ..self
        }
    }
}

/// One simulated canary step, minute by minute (index 0 = minute 1).
struct Series {
    canary: Vec<Counts>,
    stable: Vec<Counts>,
    canary_p99: Vec<f64>,
    stable_p99: Vec<f64>,
    /// The fixed rule's statistics: canary − stable error rate in points,
    /// canary / stable p99; over the trailing five minutes and, for
    /// comparison, over each minute alone.
    points: Checks,
    p99_ratio: Checks,
    minute_points: Checks,
    minute_p99_ratio: Checks,
}

/// A fixed rule's statistic at each minute it is checked.
#[derive(Debug, Clone, Default)]
struct Checks {
    /// The minute of `values[0]` (1-based).
    first_minute: usize,
    values: Vec<f64>,
}

impl Checks {
    /// The first minute at which the statistic exceeds `threshold`.
    fn fires(&self, threshold: f64) -> Option<usize> {
        let i = self.values.iter().position(|&v| v > threshold)?;
        Some(i + self.first_minute)
    }

    fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The nearest-rank p99 of `n` values, counted from the top (1 = the
/// largest): n − ⌈0.99n⌉ + 1, in integers.
fn p99_rank_from_top(n: u64) -> usize {
    (n - (99 * n).div_ceil(100) + 1) as usize
}

/// The top order statistics of a minute's `n` uniforms, as exponential
/// spacings `s_1 < s_2 < …` (the j-th largest uniform is e^(−s_j); Rényi:
/// s_j = s_(j−1) + E_j/(n − j + 1) with E_j standard exponential), drawn
/// only as deep as asked.
struct Tail {
    n: u64,
    spacings: Vec<f64>,
}

impl Tail {
    fn draw(rng: &mut Rng, n: u64, depth: usize) -> Tail {
        let mut tail = Tail {
            n,
            spacings: Vec::new(),
        };
        tail.deepen(rng, depth);
        tail
    }

    fn deepen(&mut self, rng: &mut Rng, depth: usize) {
        let depth = depth.min(self.n as usize);
        let mut sum = self.spacings.last().copied().unwrap_or(0.0);
        while self.spacings.len() < depth {
            sum += rng.exponential() / (self.n - self.spacings.len() as u64) as f64;
            self.spacings.push(sum);
        }
    }

    fn complete(&self) -> bool {
        self.spacings.len() as u64 == self.n
    }
}

/// The duration whose upper-tail probability is 1 − e^(−s).
fn duration_at(spacing: f64, slowdown: f64) -> f64 {
    let upper_tail = -(-spacing).exp_m1();
    MEDIAN_MS * slowdown * (-SIGMA * normal_quantile(upper_tail)).exp()
}

/// The `rank`-th smallest element of the union of sorted lists (1-based):
/// for each list, a binary search for the element whose rank in the union
/// is `rank`.
fn kth_of_sorted(lists: &[&[f64]], rank: usize) -> Option<f64> {
    let rank_in_union = |v: f64| -> usize {
        lists
            .iter()
            .map(|l| l.partition_point(|&x| x < v))
            .sum::<usize>()
            + 1
    };
    for list in lists {
        let i = list.partition_point(|&v| rank_in_union(v) < rank);
        if let Some(&v) = list.get(i)
            && rank_in_union(v) == rank
        {
            return Some(v);
        }
    }
    None
}

impl Series {
    fn simulate(traffic: Traffic, rng: &mut Rng) -> Series {
        let per_minute = (traffic.per_second * 60.0).round() as u64;
        let canary_trials: Vec<u64> = (0..HORIZON)
            .map(|_| rng.binomial(per_minute, WEIGHT))
            .collect();
        let stable_trials: Vec<u64> = canary_trials.iter().map(|c| per_minute - c).collect();
        let counts = |trials: &[u64], rate: f64, rng: &mut Rng| -> Vec<Counts> {
            trials
                .iter()
                .map(|&t| Counts {
                    events: if traffic.errors {
                        rng.binomial(t, rate)
                    } else {
                        0
                    },
                    trials: t,
                })
                .collect()
        };
        let canary = counts(&canary_trials, traffic.canary_error, rng);
        let stable = counts(&stable_trials, STABLE_ERROR, rng);
        let points = |c: &[Counts], s: &[Counts]| 100.0 * (rate_of(c) - rate_of(s));
        let (canary_p99, canary_window) = if traffic.durations {
            percentiles(&canary_trials, traffic.slowdown, rng)
        } else {
            (Vec::new(), Vec::new())
        };
        let (stable_p99, stable_window) = if traffic.durations {
            percentiles(&stable_trials, 1.0, rng)
        } else {
            (Vec::new(), Vec::new())
        };
        let ratios = |c: &[f64], s: &[f64]| Checks {
            first_minute: if c.len() == HORIZON { 1 } else { WINDOW },
            values: c.iter().zip(s).map(|(c, s)| c / s).collect(),
        };
        Series {
            points: windows(&canary, &stable, WINDOW, points),
            minute_points: windows(&canary, &stable, 1, points),
            p99_ratio: ratios(&canary_window, &stable_window),
            minute_p99_ratio: ratios(&canary_p99, &stable_p99),
            canary,
            stable,
            canary_p99,
            stable_p99,
        }
    }
}

fn rate_of(periods: &[Counts]) -> f64 {
    let (events, trials) = periods
        .iter()
        .fold((0, 0), |(e, t), c| (e + c.events, t + c.trials));
    if trials == 0 {
        0.0
    } else {
        events as f64 / trials as f64
    }
}

/// `statistic(canary window, stable window)` over each trailing window of
/// `length` minutes.
fn windows(
    canary: &[Counts],
    stable: &[Counts],
    length: usize,
    statistic: impl Fn(&[Counts], &[Counts]) -> f64,
) -> Checks {
    Checks {
        first_minute: length,
        values: (length..=canary.len())
            .map(|end| statistic(&canary[end - length..end], &stable[end - length..end]))
            .collect(),
    }
}

/// Per-minute p99s and trailing five-minute p99s of one version's
/// durations, given its invocations each minute.
fn percentiles(trials: &[u64], slowdown: f64, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let mut tails: Vec<Tail> = trials
        .iter()
        .map(|&n| Tail::draw(rng, n, first_depth(n)))
        .collect();
    let minute = tails
        .iter()
        .map(|tail| {
            let spacing = tail.spacings.get(p99_rank_from_top(tail.n) - 1);
            spacing.map_or(f64::NAN, |&s| duration_at(s, slowdown))
        })
        .collect();
    let window = (WINDOW..=trials.len())
        .map(|end| {
            let rank = p99_rank_from_top(trials[end - WINDOW..end].iter().sum());
            let spacing = window_spacing(&mut tails[end - WINDOW..end], rank, rng);
            duration_at(spacing, slowdown)
        })
        .collect();
    (minute, window)
}

/// How deep to draw a minute's tail at first: its own p99, and about what
/// it gives a five-minute window's p99 (a fifth of that rank) with room
/// to spare; [`window_spacing`] draws deeper when a window needs it.
fn first_depth(n: u64) -> usize {
    let share = p99_rank_from_top(n);
    share + 4 * (share as f64).sqrt() as usize + 8
}

/// The `rank`-th smallest spacing of a window's minutes (its p99), exact:
/// a tail drawn only partly is deepened while its deepest value is below
/// the answer (a value not yet drawn could come before it).
fn window_spacing(tails: &mut [Tail], rank: usize, rng: &mut Rng) -> f64 {
    loop {
        let lists: Vec<&[f64]> = tails.iter().map(|t| t.spacings.as_slice()).collect();
        let answer = kth_of_sorted(&lists, rank);
        let short: Vec<usize> = (0..tails.len())
            .filter(|&i| {
                let t = &tails[i];
                let deepest = t.spacings.last().copied().unwrap_or(0.0);
                !t.complete() && answer.is_none_or(|a| deepest < a)
            })
            .collect();
        match answer {
            Some(a) if short.is_empty() => return a,
            None if short.is_empty() => return f64::NAN,
            _ => {
                for i in short {
                    let depth = 2 * tails[i].spacings.len() + 16;
                    tails[i].deepen(rng, depth);
                }
            }
        }
    }
}

/// The first minute (1-based) at which `verdict_at(minutes)` is `wanted`.
fn first(wanted: JudgeVerdict, mut verdict_at: impl FnMut(usize) -> JudgeVerdict) -> Option<usize> {
    (1..=HORIZON).find(|&m| verdict_at(m) == wanted)
}

/// The first minutes of a regression and of a no-regression verdict.
fn first_both(mut verdict_at: impl FnMut(usize) -> JudgeVerdict) -> (Option<usize>, Option<usize>) {
    let (mut regression, mut no_regression) = (None, None);
    for m in 1..=HORIZON {
        match verdict_at(m) {
            JudgeVerdict::Regression => regression = regression.or(Some(m)),
            JudgeVerdict::NoRegression => no_regression = no_regression.or(Some(m)),
            JudgeVerdict::Inconclusive => {}
        }
        if regression.is_some() && no_regression.is_some() {
            break;
        }
    }
    (regression, no_regression)
}

fn error_verdict(series: &Series, tolerance: Tolerance) -> impl FnMut(usize) -> JudgeVerdict {
    move |m| {
        judge::judge_counts(
            "error_rate",
            &series.canary[..m],
            CountReference::Concurrent(&series.stable[..m]),
            tolerance,
            &JudgeConfig::default(),
        )
        .verdict
    }
}

fn p99_verdict(series: &Series, tolerance: Tolerance) -> impl FnMut(usize) -> JudgeVerdict {
    move |m| {
        judge::judge_values(
            "duration_p99",
            &series.canary_p99[..m],
            &series.stable_p99[..m],
            tolerance,
            &JudgeConfig::default(),
        )
        .verdict
    }
}

/// Minutes to a verdict over many runs (`None`: not within the horizon).
#[derive(Debug, Clone, Default)]
pub struct Times(Vec<Option<usize>>);

impl Times {
    pub fn share(&self) -> f64 {
        self.0.iter().filter(|t| t.is_some()).count() as f64 / self.0.len().max(1) as f64
    }

    /// The nearest-rank quantile, runs without a verdict counting as
    /// later than the horizon.
    pub fn quantile(&self, q: f64) -> Option<usize> {
        let mut sorted = self.0.clone();
        sorted.sort_by_key(|t| t.unwrap_or(usize::MAX));
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
        sorted.get(rank - 1).copied().flatten()
    }

    fn minutes(&self, q: f64) -> String {
        match self.quantile(q) {
            Some(m) => format!("{m} min"),
            None => format!("> {HORIZON} min"),
        }
    }
}

fn collect(series: &[Series], f: impl Fn(&Series) -> Option<usize>) -> Times {
    Times(series.iter().map(f).collect())
}

/// The A/A runs at one rate: false rollbacks, early promotions, and the
/// fixed thresholds calibrated on them.
#[derive(Debug, Clone)]
pub struct AaResult {
    pub per_second: f64,
    pub runs: usize,
    pub judge_error: Times,
    pub judge_p99: Times,
    pub judge_either: Times,
    pub promote_error: Times,
    pub promote_p99: Times,
    pub seed_error: Times,
    pub seed_p99: Times,
    /// Calibrated to the judge's own A/A rate on each metric.
    pub calibrated_points: f64,
    pub calibrated_ratio: f64,
    /// Calibrated to 1 % false rollbacks (α).
    pub one_percent_points: f64,
    pub one_percent_ratio: f64,
    /// A one-minute window, calibrated to the judge's rate.
    pub minute_points: f64,
    pub minute_ratio: f64,
    /// The median canary / stable per-minute p99, canary = stable: below
    /// 1 where the canary's minute holds too few invocations for its p99.
    pub p99_reading: f64,
}

fn median_ratio(series: &[Series]) -> f64 {
    let mut all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.minute_p99_ratio.values.iter().copied())
        .filter(|r| r.is_finite())
        .collect();
    all.sort_by(f64::total_cmp);
    all.get(all.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The smallest threshold that at most `rate` of the runs' maxima exceed.
fn calibrate(maxima: &[f64], rate: f64) -> f64 {
    let mut sorted = maxima.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let allowed = (rate * sorted.len() as f64 + 1e-9).floor() as usize;
    sorted
        .get(allowed.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn maxima(series: &[Series], checks: impl Fn(&Series) -> &Checks) -> Vec<f64> {
    series.iter().map(|s| checks(s).max()).collect()
}

fn simulate_runs(traffic: Traffic, runs: usize, seed: u64) -> Vec<Series> {
    let mut rng = Rng::new(seed);
    (0..runs)
        .map(|_| Series::simulate(traffic, &mut rng))
        .collect()
}

fn seed_for(per_second: f64, scenario: u64) -> u64 {
    SEED ^ (per_second.to_bits().rotate_left(17)) ^ scenario.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

pub fn a_a(per_second: f64, runs: usize) -> AaResult {
    let series = simulate_runs(Traffic::a_a(per_second), runs, seed_for(per_second, 1));
    let judge_error = collect(&series, |s| {
        first(JudgeVerdict::Regression, error_verdict(s, ROLLBACK_ERROR))
    });
    let judge_p99 = collect(&series, |s| {
        first(JudgeVerdict::Regression, p99_verdict(s, ROLLBACK_P99))
    });
    let judge_either = Times(
        judge_error
            .0
            .iter()
            .zip(&judge_p99.0)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => Some(*a.min(b)),
                (a, b) => a.or(*b),
            })
            .collect(),
    );
    let point_maxima = maxima(&series, |s| &s.points);
    let ratio_maxima = maxima(&series, |s| &s.p99_ratio);
    AaResult {
        per_second,
        runs,
        promote_error: collect(&series, |s| {
            first(JudgeVerdict::NoRegression, error_verdict(s, PROMOTE_ERROR))
        }),
        promote_p99: collect(&series, |s| {
            first(JudgeVerdict::NoRegression, p99_verdict(s, PROMOTE_P99))
        }),
        seed_error: collect(&series, |s| s.points.fires(SEED_POINTS)),
        seed_p99: collect(&series, |s| s.p99_ratio.fires(SEED_RATIO)),
        calibrated_points: calibrate(&point_maxima, judge_error.share()),
        calibrated_ratio: calibrate(&ratio_maxima, judge_p99.share()),
        minute_points: calibrate(&maxima(&series, |s| &s.minute_points), judge_error.share()),
        p99_reading: median_ratio(&series),
        minute_ratio: calibrate(&maxima(&series, |s| &s.minute_p99_ratio), judge_p99.share()),
        one_percent_points: calibrate(&point_maxima, 0.01),
        one_percent_ratio: calibrate(&ratio_maxima, 0.01),
        judge_error,
        judge_p99,
        judge_either,
    }
}

/// Time to detect the two regressions at one rate, by rule.
#[derive(Debug, Clone)]
pub struct DetectResult {
    pub per_second: f64,
    pub judge_error: Times,
    /// The judge with the promotion tolerance (+1 point) as its only one.
    pub judge_error_loose: Times,
    pub seed_error: Times,
    pub calibrated_error: Times,
    pub one_percent_error: Times,
    pub judge_p99: Times,
    pub seed_p99: Times,
    pub calibrated_p99: Times,
    pub one_percent_p99: Times,
    pub minute_error: Times,
    pub minute_p99: Times,
}

pub fn detect(aa: &AaResult, runs: usize) -> DetectResult {
    let rate = aa.per_second;
    let bad = simulate_runs(Traffic::bad_errors(rate), runs, seed_for(rate, 2));
    let slow = simulate_runs(Traffic::slow(rate), runs, seed_for(rate, 3));
    let points = |t: f64| collect(&bad, |s| s.points.fires(t));
    let ratio = |t: f64| collect(&slow, |s| s.p99_ratio.fires(t));
    DetectResult {
        per_second: rate,
        judge_error: collect(&bad, |s| {
            first(JudgeVerdict::Regression, error_verdict(s, ROLLBACK_ERROR))
        }),
        judge_error_loose: collect(&bad, |s| {
            first(JudgeVerdict::Regression, error_verdict(s, PROMOTE_ERROR))
        }),
        seed_error: points(SEED_POINTS),
        calibrated_error: points(aa.calibrated_points),
        one_percent_error: points(aa.one_percent_points),
        judge_p99: collect(&slow, |s| {
            first(JudgeVerdict::Regression, p99_verdict(s, ROLLBACK_P99))
        }),
        seed_p99: ratio(SEED_RATIO),
        calibrated_p99: ratio(aa.calibrated_ratio),
        one_percent_p99: ratio(aa.one_percent_ratio),
        minute_error: collect(&bad, |s| s.minute_points.fires(aa.minute_points)),
        minute_p99: collect(&slow, |s| s.minute_p99_ratio.fires(aa.minute_ratio)),
    }
}

/// A canary exactly on its tolerance: how often each verdict (both wrong)
/// is reached within the horizon.
#[derive(Debug, Clone)]
pub struct BoundaryResult {
    pub case: String,
    pub regression: Times,
    pub no_regression: Times,
}

pub fn boundary(per_second: f64, runs: usize) -> Vec<BoundaryResult> {
    let base = Traffic::a_a(per_second);
    let at = |rate: f64, seed: u64| {
        simulate_runs(
            base.with_canary_error(rate),
            runs,
            seed_for(per_second, seed),
        )
    };
    let concurrent = |series: &[Series], tolerance: Tolerance| {
        let (regression, no_regression): (Vec<_>, Vec<_>) = series
            .iter()
            .map(|s| first_both(error_verdict(s, tolerance)))
            .unzip();
        (Times(regression), Times(no_regression))
    };
    let double = at(2.0 * STABLE_ERROR, 4);
    let plus_one = at(STABLE_ERROR + 0.01, 5);
    let same = at(STABLE_ERROR, 6);
    // A previous phase of one hour at the stable version's traffic.
    let mut rng = Rng::new(seed_for(per_second, 7));
    let previous_trials = (per_second * 3600.0 * (1.0 - WEIGHT)).round() as u64;
    let previous: Vec<Counts> = (0..runs)
        .map(|_| Counts {
            events: rng.binomial(previous_trials, STABLE_ERROR),
            trials: previous_trials,
        })
        .collect();
    let fixed = |series: &[Series], tolerance: Tolerance| {
        let (regression, no_regression): (Vec<_>, Vec<_>) = series
            .iter()
            .zip(&previous)
            .map(|(s, &reference)| {
                first_both(|m| {
                    judge::judge_counts(
                        "error_rate",
                        &s.canary[..m],
                        CountReference::Fixed(reference),
                        tolerance,
                        &JudgeConfig::default(),
                    )
                    .verdict
                })
            })
            .unzip();
        (Times(regression), Times(no_regression))
    };
    let rate = rate_label(per_second);
    let cases = [
        (
            format!("{rate} inv/s: error rate 2 % vs stable 1 %, `Ratio(2.0)` (conditional)"),
            concurrent(&double, Tolerance::Ratio(2.0)),
        ),
        (
            format!(
                "{rate} inv/s: error rate 2 % vs stable 1 %, `Delta(1.0)` (one-sample, confidence sequence)"
            ),
            concurrent(&plus_one, Tolerance::Delta(1.0)),
        ),
        (
            format!(
                "{rate} inv/s: error rate 1 % vs a previous hour at 1 %, `Fixed`, `Ratio(1.0)`"
            ),
            fixed(&same, Tolerance::Ratio(1.0)),
        ),
        (
            format!(
                "{rate} inv/s: error rate 2 % vs a previous hour at 1 %, `Fixed`, `Delta(1.0)`"
            ),
            fixed(&plus_one, Tolerance::Delta(1.0)),
        ),
    ];
    cases
        .into_iter()
        .map(|(case, (regression, no_regression))| BoundaryResult {
            case,
            regression,
            no_regression,
        })
        .collect()
}

/// A canary whose durations are all ×1.1 judged with `Ratio(1.1)`: on the
/// tolerance by construction, but its per-minute p99 comes from a tenth of
/// the invocations.
pub fn p99_boundary(per_second: f64, runs: usize) -> BoundaryResult {
    let traffic = Traffic {
        slowdown: 1.1,
        ..Traffic::slow(per_second)
    };
    let series = simulate_runs(traffic, runs, seed_for(per_second, 8));
    let (regression, no_regression): (Vec<_>, Vec<_>) = series
        .iter()
        .map(|s| first_both(p99_verdict(s, Tolerance::Ratio(1.1))))
        .unzip();
    BoundaryResult {
        case: format!(
            "{} inv/s: every canary duration ×1.1, p99 `Ratio(1.1)` (Mann–Whitney)",
            rate_label(per_second)
        ),
        regression: Times(regression),
        no_regression: Times(no_regression),
    }
}

fn pct(share: f64) -> String {
    format!("{:.1} %", 100.0 * share)
}

fn rate_label(per_second: f64) -> String {
    if per_second.fract() != 0.0 {
        format!("{per_second}")
    } else if (1000.0..1e6).contains(&per_second) {
        let s = format!("{per_second:.0}");
        format!("{},{}", &s[..s.len() - 3], &s[s.len() - 3..])
    } else {
        format!("{per_second:.0}")
    }
}

/// The benchmark, as Markdown: `runs` canaries per scenario and rate
/// (`rates` in invocations a second; the detailed tables at 200 or the
/// first given).
pub fn run(runs: usize, rates: &[f64]) -> String {
    let runs = runs.max(1);
    let mut rates: Vec<f64> = rates.iter().copied().filter(|r| *r > 0.0).collect();
    if rates.is_empty() {
        rates.push(MAIN_RATE);
    }
    let aa: Vec<AaResult> = rates.iter().map(|&r| a_a(r, runs)).collect();
    let detections: Vec<DetectResult> = aa.iter().map(|a| detect(a, runs)).collect();
    let main = rates.iter().position(|&r| r == MAIN_RATE).unwrap_or(0);
    let mut boundaries = boundary(rates[main], runs);
    boundaries.extend(rates.iter().map(|&r| p99_boundary(r, runs)));
    let report = Report {
        aa: &aa,
        detections: &detections,
        main,
        boundaries: &boundaries,
    };
    let mut out = header(runs);
    out.push_str(&aa_table(&aa));
    out.push_str(&detect_table(&detections[main], &aa[main]));
    out.push_str(&rates_table(&detections, &aa));
    out.push_str(&boundary_table(&boundaries, runs));
    out.push_str(&report.summary());
    out
}

fn header(runs: usize) -> String {
    format!(
        "Simulated canaries ({} per scenario and rate, seeded): canary weight {:.0} %, stable error rate {:.0} %, \
         durations log-normal (median {MEDIAN_MS:.0} ms, σ {SIGMA}, p99 ≈ {:.1} s), each canary checked every minute for {HORIZON} minutes. \
         The judge: α = 1 % per verdict; rollback tolerance error rate `Delta(0.0)`, p99 `Ratio(1.0)` (\"no worse than stable\"); \
         promotion tolerance error rate `Delta(1.0)`, p99 `Ratio(1.1)`. The fixed rule: canary − stable over the trailing 5 minutes > t \
         (p99: canary / stable > t), `consecutive = 1`, from minute 5 (for comparison also over each minute alone); \
         calibrated thresholds are set on the same A/A runs.\n\n",
        rate_label(runs as f64),
        100.0 * WEIGHT,
        100.0 * STABLE_ERROR,
        MEDIAN_MS * (SIGMA * -normal_quantile(0.01)).exp() / 1000.0,
    )
}

fn aa_table(aa: &[AaResult]) -> String {
    let mut out = String::from(
        "### A/A: canary = stable\n\n\
         False rollbacks within the hour, and the share that the judge lets promote early (median minutes to it):\n\n\
         | inv/s | judge: error rate | judge: p99 | judge: either | fixed, seed plan (+2 points / ×1.25) | fixed, calibrated to the judge's rate: t | fixed, calibrated to 1 %: t | judge promotes: error rate | judge promotes: p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for a in aa {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} / {} | {:.2} points / ×{:.3} | {:.2} points / ×{:.3} | {} ({}) | {} ({}) |\n",
            rate_label(a.per_second),
            pct(a.judge_error.share()),
            pct(a.judge_p99.share()),
            pct(a.judge_either.share()),
            pct(a.seed_error.share()),
            pct(a.seed_p99.share()),
            a.calibrated_points,
            a.calibrated_ratio,
            a.one_percent_points,
            a.one_percent_ratio,
            pct(a.promote_error.share()),
            a.promote_error.minutes(0.5),
            pct(a.promote_p99.share()),
            a.promote_p99.minutes(0.5),
        ));
    }
    out.push('\n');
    out
}

fn detect_row(rule: &str, error: &Times, p99: Option<&Times>) -> String {
    let cells = |t: &Times| {
        format!(
            "{} | {} | {}",
            t.minutes(0.5),
            t.minutes(0.9),
            pct(t.share())
        )
    };
    format!(
        "| {rule} | {} | {} |\n",
        cells(error),
        p99.map_or("– | – | –".to_string(), cells)
    )
}

fn detect_table(d: &DetectResult, aa: &AaResult) -> String {
    let mut out = format!(
        "### Time to detect at {} inv/s\n\n\
         Error rate 1 % → 3 % (+2 points) from the start of the step; p99 +25 % (every canary duration ×1.25). \
         Minutes from the step's start to the rollback verdict (runs without one count as later than the horizon):\n\n\
         | rule | +2 points: median | p90 | detected | p99 +25 %: median | p90 | detected |\n\
         |---|---|---|---|---|---|---|\n",
        rate_label(d.per_second)
    );
    out.push_str(&detect_row(
        "judge (error `Delta(0.0)`, p99 `Ratio(1.0)`)",
        &d.judge_error,
        Some(&d.judge_p99),
    ));
    out.push_str(&detect_row(
        "judge, error `Delta(1.0)`",
        &d.judge_error_loose,
        None,
    ));
    out.push_str(&detect_row(
        "fixed, seed plan (+2 points, ×1.25)",
        &d.seed_error,
        Some(&d.seed_p99),
    ));
    out.push_str(&detect_row(
        &format!(
            "fixed, calibrated to the judge's A/A rate ({:.2} points, ×{:.3})",
            aa.calibrated_points, aa.calibrated_ratio
        ),
        &d.calibrated_error,
        Some(&d.calibrated_p99),
    ));
    out.push_str(&detect_row(
        &format!(
            "fixed, calibrated to 1 % ({:.2} points, ×{:.3})",
            aa.one_percent_points, aa.one_percent_ratio
        ),
        &d.one_percent_error,
        Some(&d.one_percent_p99),
    ));
    out.push_str(&detect_row(
        &format!(
            "fixed, 1-minute window, calibrated to the judge's A/A rate ({:.2} points, ×{:.3})",
            aa.minute_points, aa.minute_ratio
        ),
        &d.minute_error,
        Some(&d.minute_p99),
    ));
    out.push('\n');
    out
}

fn rates_table(detections: &[DetectResult], aa: &[AaResult]) -> String {
    let mut out = String::from(
        "### Across traffic\n\n\
         The same, at each rate (fixed rule calibrated to the judge's A/A rate at that rate):\n\n\
         | inv/s | rule | A/A false rollbacks (error / p99) | +2 points: median | p90 | detected | p99 +25 %: median | p90 | detected |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (d, a) in detections.iter().zip(aa) {
        let cells = |t: &Times| {
            format!(
                "{} | {} | {}",
                t.minutes(0.5),
                t.minutes(0.9),
                pct(t.share())
            )
        };
        out.push_str(&format!(
            "| {} | judge | {} / {} | {} | {} |\n",
            rate_label(d.per_second),
            pct(a.judge_error.share()),
            pct(a.judge_p99.share()),
            cells(&d.judge_error),
            cells(&d.judge_p99)
        ));
        out.push_str(&format!(
            "| {} | fixed, 5 min ({:.2} points, ×{:.3}) | {} / {} | {} | {} |\n",
            rate_label(d.per_second),
            a.calibrated_points,
            a.calibrated_ratio,
            pct(a.judge_error.share()),
            pct(a.judge_p99.share()),
            cells(&d.calibrated_error),
            cells(&d.calibrated_p99)
        ));
        out.push_str(&format!(
            "| {} | fixed, 1 min ({:.2} points, ×{:.3}) | {} / {} | {} | {} |\n",
            rate_label(d.per_second),
            a.minute_points,
            a.minute_ratio,
            pct(a.judge_error.share()),
            pct(a.judge_p99.share()),
            cells(&d.minute_error),
            cells(&d.minute_p99)
        ));
    }
    out.push('\n');
    out
}

fn boundary_table(results: &[BoundaryResult], runs: usize) -> String {
    let mut out = format!(
        "### On the tolerance\n\n\
         A canary exactly on its tolerance ({} runs each): both verdicts are wrong, and each should be reached in at most α = 1 % of runs \
         within the hour (the A/A rows above are the `Ratio(1.0)` case of the conditional test).\n\n\
         | case | regression | no regression |\n|---|---|---|\n",
        rate_label(runs as f64)
    );
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            r.case,
            pct(r.regression.share()),
            pct(r.no_regression.share())
        ));
    }
    out.push('\n');
    out
}

/// All results, for the closing paragraph.
struct Report<'a> {
    aa: &'a [AaResult],
    detections: &'a [DetectResult],
    main: usize,
    boundaries: &'a [BoundaryResult],
}

impl Report<'_> {
    fn summary(&self) -> String {
        [
            self.false_rollbacks(),
            self.error_regression(),
            self.p99_regression(),
            self.validity(),
        ]
        .join("\n\n")
            + "\n"
    }

    fn lowest(&self) -> usize {
        (0..self.aa.len())
            .min_by(|&a, &b| self.aa[a].per_second.total_cmp(&self.aa[b].per_second))
            .unwrap_or(0)
    }

    fn false_rollbacks(&self) -> String {
        let worst = self
            .aa
            .iter()
            .map(|a| a.judge_either.share())
            .fold(0.0, f64::max);
        let seed = self
            .aa
            .iter()
            .max_by(|a, b| a.seed_p99.share().total_cmp(&b.seed_p99.share()))
            .filter(|a| a.seed_p99.share() > 0.05);
        let mut text = format!(
            "**False rollbacks.** On A/A canaries the judge rolled back at most {} at any rate, on either guardrail (α = 1 % each).",
            pct(worst)
        );
        if let Some(a) = seed {
            text.push_str(&format!(
                " The seed plan's p99 ×1.25 alone rolled back {} at {} inv/s, where a five-minute p99 comes from about {:.0} canary invocations.",
                pct(a.seed_p99.share()),
                rate_label(a.per_second),
                a.per_second * 60.0 * WEIGHT * WINDOW as f64
            ));
        }
        text
    }

    fn error_regression(&self) -> String {
        let (a, d) = (&self.aa[self.main], &self.detections[self.main]);
        let (la, ld) = (&self.aa[self.lowest()], &self.detections[self.lowest()]);
        let thresholds: Vec<f64> = self
            .aa
            .iter()
            .flat_map(|a| [a.calibrated_points, a.minute_points])
            .collect();
        let (low, high) = thresholds
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), &t| (l.min(t), h.max(t)));
        format!(
            "**The +2 point regression.** At {} inv/s the judge rolled it back in {} of runs, median {} (p90 {}); \
             the fixed rule at the judge's false-alarm rate in {} (p90 {}) over five minutes, which it cannot act before, \
             and in {} (p90 {}) over one minute, with {:.2} points as its threshold. \
             At {} inv/s the judge took {} (p90 {}), the five-minute rule {} (p90 {}) and the one-minute rule {} (p90 {}). \
             The fixed thresholds that match the judge's false-alarm rate run from {:.2} to {:.2} points with traffic and window; \
             the judge's α is the same everywhere.",
            rate_label(a.per_second),
            pct(d.judge_error.share()),
            d.judge_error.minutes(0.5),
            d.judge_error.minutes(0.9),
            d.calibrated_error.minutes(0.5),
            d.calibrated_error.minutes(0.9),
            d.minute_error.minutes(0.5),
            d.minute_error.minutes(0.9),
            a.minute_points,
            rate_label(la.per_second),
            ld.judge_error.minutes(0.5),
            ld.judge_error.minutes(0.9),
            ld.calibrated_error.minutes(0.5),
            ld.calibrated_error.minutes(0.9),
            ld.minute_error.minutes(0.5),
            ld.minute_error.minutes(0.9),
            low,
            high,
        )
    }

    fn p99_regression(&self) -> String {
        let (a, d) = (&self.aa[self.main], &self.detections[self.main]);
        let (la, ld) = (&self.aa[self.lowest()], &self.detections[self.lowest()]);
        format!(
            "**p99.** A rank test on per-minute datapoints, with α spent over looks, cannot conclude before minute {} \
             (even complete separation needs that many datapoints a side): at {} inv/s it took {} where the calibrated five-minute ratio \
             over every invocation took {}. At {} inv/s, where a five-minute p99 is noisy, the judge caught the +25 % in {} of runs within the hour, \
             the calibrated five-minute ratio in {}. The canary's per-minute p99 comes from a tenth of the invocations and reads low \
             (nearest rank; the A/A median canary / stable ratio is ×{:.3} at {} inv/s, ×{:.3} at {}), \
             which lets p99 promote too easily at low traffic (the p99 rows of the last table) and hides part of a slowdown; \
             a count of invocations slower than a fixed duration, judged like errors by the mixture SPRT, would avoid both.",
            first_possible_look(),
            rate_label(a.per_second),
            d.judge_p99.minutes(0.5),
            d.calibrated_p99.minutes(0.5),
            rate_label(la.per_second),
            pct(ld.judge_p99.share()),
            pct(ld.calibrated_p99.share()),
            la.p99_reading,
            rate_label(la.per_second),
            a.p99_reading,
            rate_label(a.per_second),
        )
    }

    fn validity(&self) -> String {
        let worst = |error: bool| {
            self.boundaries
                .iter()
                .filter(|b| b.case.contains("error rate") == error)
                .map(|b| b.regression.share().max(b.no_regression.share()))
                .fold(0.0, f64::max)
        };
        format!(
            "**On the tolerance**, no error-rate test reached a wrong verdict in more than {} of runs; \
             the p99 rows reached one in up to {}.",
            pct(worst(true)),
            pct(worst(false))
        )
    }
}

/// The first look at which the values judge can conclude at all: complete
/// separation of j datapoints a side.
fn first_possible_look() -> usize {
    (1..=HORIZON)
        .find(|&j| {
            let low: Vec<f64> = (0..j).map(|i| i as f64).collect();
            let high: Vec<f64> = low.iter().map(|v| v + j as f64).collect();
            let j = judge::judge_values(
                "p99",
                &high,
                &low,
                Tolerance::Ratio(1.0),
                &JudgeConfig::default(),
            );
            j.verdict == JudgeVerdict::Regression
        })
        .unwrap_or(HORIZON)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs per scenario: small enough for a debug build, large enough for
    /// the bounds below to mean something.
    const RUNS: usize = 200;

    fn mean_and_variance(draws: &[f64]) -> (f64, f64) {
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let variance = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, variance)
    }

    #[test]
    fn binomial_draws_have_the_binomial_mean_and_variance() {
        let mut rng = Rng::new(7);
        // Waiting times (np = 12), the Beta split (np = 12,000, 1,080) and
        // the mirror for p > ½.
        for (n, p) in [(1_200, 0.01), (120_000, 0.1), (108_000, 0.01), (1_000, 0.7)] {
            let draws: Vec<f64> = (0..4_000).map(|_| rng.binomial(n, p) as f64).collect();
            let (mean, variance) = mean_and_variance(&draws);
            let (want_mean, want_variance) = (n as f64 * p, n as f64 * p * (1.0 - p));
            // 5 standard errors of the mean; ±10 % on the variance (its
            // standard error at 4,000 draws is about 2.2 %).
            assert!(
                (mean - want_mean).abs() < 5.0 * (want_variance / 4_000.0).sqrt(),
                "{n} {p}: mean {mean}"
            );
            assert!(
                (variance / want_variance - 1.0).abs() < 0.1,
                "{n} {p}: variance {variance}"
            );
        }
        assert_eq!(rng.binomial(0, 0.5), 0);
        assert_eq!(rng.binomial(10, 0.0), 0);
        assert_eq!(rng.binomial(10, 1.0), 10);
    }

    #[test]
    fn nearest_rank_p99() {
        // ⌈0.99 n⌉-th smallest, counted from the top.
        assert_eq!(p99_rank_from_top(100), 2);
        assert_eq!(p99_rank_from_top(120), 2);
        assert_eq!(p99_rank_from_top(1_200), 13);
        assert_eq!(p99_rank_from_top(1), 1);
    }

    #[test]
    fn kth_of_sorted_lists_matches_sorting_them_all() {
        let mut rng = Rng::new(11);
        let lists: Vec<Vec<f64>> = (0..5)
            .map(|i| Tail::draw(&mut rng, 50 + 10 * i, 30).spacings)
            .collect();
        let mut all: Vec<f64> = lists.iter().flatten().copied().collect();
        all.sort_by(f64::total_cmp);
        let slices: Vec<&[f64]> = lists.iter().map(Vec::as_slice).collect();
        for rank in 1..=all.len() {
            assert_eq!(
                kth_of_sorted(&slices, rank),
                Some(all[rank - 1]),
                "rank {rank}"
            );
        }
        assert_eq!(kth_of_sorted(&slices, all.len() + 1), None);
    }

    #[test]
    fn a_window_p99_draws_deeper_until_it_is_exact() {
        let mut rng = Rng::new(13);
        // Shallow tails: the window's p99 (rank 31 of 3,000) needs more.
        let mut tails: Vec<Tail> = (0..5).map(|_| Tail::draw(&mut rng, 600, 3)).collect();
        let answer = window_spacing(&mut tails, p99_rank_from_top(3_000), &mut rng);
        let mut drawn: Vec<f64> = tails.iter().flat_map(|t| t.spacings.clone()).collect();
        drawn.sort_by(f64::total_cmp);
        assert_eq!(answer, drawn[p99_rank_from_top(3_000) - 1]);
        // Whatever is not drawn yet comes after the answer.
        assert!(
            tails
                .iter()
                .all(|t| t.complete() || *t.spacings.last().unwrap() >= answer)
        );
    }

    #[test]
    fn simulated_p99_is_the_log_normal_p99() {
        // The stable version at 2,000 inv/s: 108,000 invocations a minute,
        // p99 within a fraction of a percent of median · e^(2.326σ).
        let mut rng = Rng::new(17);
        let trials = vec![108_000; 10];
        let (minute, window) = percentiles(&trials, 1.0, &mut rng);
        let want = MEDIAN_MS * (SIGMA * -normal_quantile(0.01)).exp();
        for p99 in minute.iter().chain(&window) {
            assert!((p99 / want - 1.0).abs() < 0.02, "{p99} vs {want}");
        }
        assert_eq!(window.len(), 10 - WINDOW + 1);
    }

    /// A/A at 200 inv/s, shared by the tests below (simulated once).
    fn a_a_at_200() -> &'static AaResult {
        static RESULT: std::sync::OnceLock<AaResult> = std::sync::OnceLock::new();
        RESULT.get_or_init(|| a_a(MAIN_RATE, RUNS))
    }

    #[test]
    fn a_a_canaries_are_rarely_rolled_back_and_mostly_promoted() {
        let aa = a_a_at_200();
        // α = 1 % a guardrail; 3 % leaves room for 200 runs' noise (a true
        // 1 % gives more than 6 of 200 with probability 0.5 %).
        assert!(
            aa.judge_error.share() <= 0.03,
            "error: {}",
            aa.judge_error.share()
        );
        assert!(
            aa.judge_p99.share() <= 0.03,
            "p99: {}",
            aa.judge_p99.share()
        );
        // Within 1 point and 10 %: the judge says so within the hour.
        assert!(
            aa.promote_error.share() >= 0.9,
            "{}",
            aa.promote_error.share()
        );
        assert!(aa.promote_p99.share() >= 0.9, "{}", aa.promote_p99.share());
    }

    #[test]
    fn a_two_point_regression_is_caught_sooner_than_by_the_fixed_rule() {
        let aa = a_a_at_200();
        let d = detect(aa, RUNS);
        assert!(d.judge_error.share() >= 0.95, "{}", d.judge_error.share());
        let judge = d
            .judge_error
            .quantile(0.5)
            .expect("the judge detects most runs");
        let fixed = d.calibrated_error.quantile(0.5).unwrap_or(usize::MAX);
        assert!(judge < fixed, "judge {judge} min, fixed {fixed} min");
        // One minute holds ~36 canary and ~108 stable errors: about 13 nats
        // of evidence for a tripled rate against the ~7 the test needs, so
        // the first minute decides in most runs.
        assert_eq!(judge, 1, "median minutes to detect");
        // And the p99 slowdown, within the horizon.
        assert!(d.judge_p99.share() >= 0.95, "{}", d.judge_p99.share());
    }

    #[test]
    fn tests_beyond_villes_inequality_hold_alpha_on_the_tolerance() {
        for b in boundary(MAIN_RATE, RUNS) {
            assert!(
                b.regression.share() <= 0.03,
                "{}: {}",
                b.case,
                b.regression.share()
            );
            assert!(
                b.no_regression.share() <= 0.03,
                "{}: {}",
                b.case,
                b.no_regression.share()
            );
        }
    }

    #[test]
    fn the_report_has_every_table() {
        let text = run(20, &[200.0]);
        for part in [
            "### A/A: canary = stable",
            "### Time to detect at 200 inv/s",
            "### Across traffic",
            "### On the tolerance",
            "**The +2 point regression.**",
        ] {
            assert!(text.contains(part), "missing {part}");
        }
    }
}

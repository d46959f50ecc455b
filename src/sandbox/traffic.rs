//! The traffic simulator: for every sandbox function it emits the metrics
//! Lambda would (AWS/Lambda Invocations, Errors, Duration distribution,
//! Throttles) and the handler's custom tokens-per-request metric, at levels
//! that depend on the function's current flags. Any flag can be made "bad"
//! (more errors, slower) to show an automatic rollback.
//!
//! As Lambda, it publishes no datapoint for a count of zero: a function
//! with no invocations gets no datum at all, and a tick without errors (or
//! throttles: the simulator never throttles) gets no `Errors` (`Throttles`)
//! datum. Data are standard resolution (stored by the minute).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::cloudwatch::{CloudWatch, Datum, MetricKey, Resolution};

pub const LAMBDA_NAMESPACE: &str = "AWS/Lambda";
pub const TOKENS_NAMESPACE: &str = "DixonSmartRepair";
pub const TOKENS_METRIC: &str = "TokensPerRequest";

/// Knobs of the simulator, switchable at run time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TrafficSettings {
    /// Emit traffic on every tick.
    pub enabled: bool,
    /// Invocations per function per tick.
    pub invocations_per_tick: u32,
    /// Flags that, when "true" on a function, make it fail and slow down.
    pub bad_flags: BTreeSet<String>,
}

impl Default for TrafficSettings {
    fn default() -> Self {
        TrafficSettings {
            enabled: false,
            invocations_per_tick: 200,
            bad_flags: BTreeSet::new(),
        }
    }
}

/// A function's expected behaviour under its current flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Errors / Invocations, 0..1.
    pub error_rate: f64,
    pub mean_duration_ms: f64,
    pub tokens_per_request: f64,
}

fn on(env: &BTreeMap<String, String>, flag: &str) -> bool {
    env.get(flag)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The seed's story in numbers: optimized prompts cut tokens by 87 % and
/// time by 20 %; refactored tools and full optimization shave a little more.
/// A bad flag that is on adds 10 points of errors and doubles the duration.
pub fn levels(env: &BTreeMap<String, String>, bad_flags: &BTreeSet<String>) -> Levels {
    let mut l = Levels {
        error_rate: 0.01,
        mean_duration_ms: 2000.0,
        tokens_per_request: 3480.0,
    };
    if on(env, "USE_OPTIMIZED_PROMPTS") || on(env, "USE_FULL_OPTIMIZATION") {
        l.mean_duration_ms *= 0.8;
        l.tokens_per_request = 448.0;
    }
    if on(env, "USE_REFACTORED_TOOLS") {
        l.mean_duration_ms *= 0.95;
    }
    if on(env, "USE_FULL_OPTIMIZATION") {
        l.mean_duration_ms *= 0.95;
    }
    for flag in bad_flags {
        if on(env, flag) {
            l.error_rate += 0.10;
            l.mean_duration_ms *= 2.0;
        }
    }
    l
}

/// A small deterministic generator (xorshift), enough for plausible noise.
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed.max(1))
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn key(namespace: &str, name: &str, function: &str) -> MetricKey {
    MetricKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
        dimensions: [("FunctionName".to_string(), function.to_string())].into(),
    }
}

/// Emits one tick of traffic for `function` at `at` (epoch seconds).
pub(super) fn emit(
    cw: &mut CloudWatch,
    function: &str,
    env: &BTreeMap<String, String>,
    settings: &TrafficSettings,
    at: f64,
    noise: &mut Noise,
) {
    let l = levels(env, &settings.bad_flags);
    let n = f64::from(settings.invocations_per_tick);
    if n <= 0.0 {
        // No invocations: Lambda publishes nothing at all.
        return;
    }
    let errors = (0..settings.invocations_per_tick)
        .filter(|_| noise.uniform() < l.error_rate)
        .count() as f64;
    // Durations: 20 buckets spread around the mean (a long right tail).
    let buckets = 20;
    let per_bucket = n / f64::from(buckets);
    let durations: Vec<(f64, f64)> = (0..buckets)
        .map(|i| {
            let q = (f64::from(i) + 0.5) / f64::from(buckets);
            let shape = -(1.0 - q).ln(); // exponential quantiles, mean 1
            let jitter = 0.95 + 0.1 * noise.uniform();
            (
                (l.mean_duration_ms * (0.5 + 0.5 * shape) * jitter).round(),
                per_bucket,
            )
        })
        .collect();
    // The simulator models no concurrency limit: nothing is throttled.
    let throttles = 0.0;
    let mut put = |namespace: &str, name: &str, values: Vec<(f64, f64)>| {
        cw.put(
            key(namespace, name, function),
            Datum::from_values(at, values),
            Resolution::Standard,
        );
    };
    put(LAMBDA_NAMESPACE, "Invocations", vec![(n, 1.0)]);
    // A count of zero is no datapoint at all (readers take a missing count as 0).
    if errors > 0.0 {
        put(LAMBDA_NAMESPACE, "Errors", vec![(errors, 1.0)]);
    }
    if throttles > 0.0 {
        put(LAMBDA_NAMESPACE, "Throttles", vec![(throttles, 1.0)]);
    }
    put(LAMBDA_NAMESPACE, "Duration", durations);
    let tokens = l.tokens_per_request * (0.97 + 0.06 * noise.uniform());
    put(TOKENS_NAMESPACE, TOKENS_METRIC, vec![(tokens.round(), n)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flags_move_the_levels() {
        let none = BTreeSet::new();
        let base = levels(&env(&[]), &none);
        let prompts = levels(&env(&[("USE_OPTIMIZED_PROMPTS", "true")]), &none);
        assert!(prompts.mean_duration_ms <= base.mean_duration_ms * 0.85);
        assert!(prompts.tokens_per_request <= base.tokens_per_request * 0.2);
        let bad: BTreeSet<String> = ["USE_OPTIMIZED_PROMPTS".to_string()].into();
        let broken = levels(&env(&[("USE_OPTIMIZED_PROMPTS", "true")]), &bad);
        assert!(broken.error_rate > base.error_rate + 0.05);
        assert_eq!(
            levels(&env(&[("USE_OPTIMIZED_PROMPTS", "false")]), &bad),
            base,
            "a bad flag that is off changes nothing"
        );
    }

    /// Throttles never show (the simulator never throttles, and a zero count
    /// is no datapoint); Errors show when the tick has some.
    #[test]
    fn one_tick_emits_every_nonzero_metric() {
        let mut cw = CloudWatch::default();
        let settings = TrafficSettings {
            enabled: true,
            ..TrafficSettings::default()
        };
        emit(
            &mut cw,
            "f",
            &env(&[]),
            &settings,
            100.0,
            &mut Noise::new(7),
        );
        let names: BTreeSet<&str> = cw.metrics.keys().map(|k| k.name.as_str()).collect();
        assert_eq!(
            names,
            ["Duration", "Errors", "Invocations", "TokensPerRequest"].into()
        );
        let durations = &cw.metrics[&key(LAMBDA_NAMESPACE, "Duration", "f")][0];
        assert_eq!(durations.count, 200.0);
        let mean = durations.sum / durations.count;
        assert!((1800.0..2200.0).contains(&mean), "{mean}");
        assert_eq!(durations.at, 60.0, "stored by the minute");
    }

    /// No invocations, no datum; no errors, no Errors datum.
    #[test]
    fn zero_counts_are_no_datapoints() {
        let mut cw = CloudWatch::default();
        let idle = TrafficSettings {
            enabled: true,
            invocations_per_tick: 0,
            ..TrafficSettings::default()
        };
        let mut noise = Noise::new(7);
        emit(&mut cw, "f", &env(&[]), &idle, 100.0, &mut noise);
        assert!(cw.metrics.is_empty(), "{:?}", cw.metrics.keys());
        // One invocation at a 1 % error rate: some ticks have no error.
        let one = TrafficSettings {
            enabled: true,
            invocations_per_tick: 1,
            ..TrafficSettings::default()
        };
        for i in 0..20 {
            emit(
                &mut cw,
                "f",
                &env(&[]),
                &one,
                f64::from(i) * 60.0,
                &mut noise,
            );
        }
        let count = |name: &str| {
            cw.metrics
                .get(&key(LAMBDA_NAMESPACE, name, "f"))
                .map_or(0, Vec::len)
        };
        assert_eq!(count("Invocations"), 20);
        assert!(count("Errors") < 20, "{}", count("Errors"));
        assert!(
            cw.metrics
                .get(&key(LAMBDA_NAMESPACE, "Errors", "f"))
                .into_iter()
                .flatten()
                .all(|d| d.sum > 0.0)
        );
        assert_eq!(count("Throttles"), 0);
    }
}

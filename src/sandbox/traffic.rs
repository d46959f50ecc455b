//! The traffic simulator: for every sandbox function it emits the metrics
//! Lambda would (AWS/Lambda Invocations, Errors, Duration distribution,
//! Throttles) and the handler's custom tokens-per-request metric, at levels
//! that depend on the function's current flags. Any flag can be made "bad"
//! (more errors, slower) to show an automatic rollback.
//!
//! Callers invoke the function's alias (`alias`, default `live`) when it
//! has one: each invocation goes to a version at random with the alias's
//! weights and runs under that version's own environment, and metrics
//! carry Lambda's `Resource = function:alias` and `ExecutedVersion`
//! dimensions besides `FunctionName` (the handler's tokens metric carries
//! `FunctionVersion`, as a handler would publish it from
//! `AWS_LAMBDA_FUNCTION_VERSION`). `outside_share` of the invocations call
//! the function unqualified (`$LATEST`) instead. Without the alias, every
//! invocation runs `$LATEST`.
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
    /// Flags that, when "true" on a function, make it fail and slow down
    /// (names matched case-insensitively, so an AppConfig flag key works too).
    pub bad_flags: BTreeSet<String>,
    /// The alias callers invoke, when the function has it.
    pub alias: String,
    /// Share of invocations (0.0–1.0) that call the function unqualified
    /// even though it has the alias.
    pub outside_share: f64,
}

impl Default for TrafficSettings {
    fn default() -> Self {
        TrafficSettings {
            enabled: false,
            invocations_per_tick: 200,
            bad_flags: BTreeSet::new(),
            alias: "live".into(),
            outside_share: 0.0,
        }
    }
}

/// Where a share of a function's invocations goes.
#[derive(Debug, Clone)]
pub struct Route<'a> {
    /// The environment the invocations run under.
    pub env: &'a BTreeMap<String, String>,
    /// Through which alias, to which version; `None`: unqualified (`$LATEST`).
    pub via: Option<(&'a str, String)>,
    /// Share of the invocations, 0.0–1.0.
    pub share: f64,
}

/// One route's invocations in a tick.
struct Served {
    invocations: f64,
    errors: f64,
    durations: Vec<(f64, f64)>,
    tokens: f64,
}

/// A function's expected behaviour under its current flags.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Levels {
    /// Errors / Invocations, 0..1.
    pub error_rate: f64,
    pub mean_duration_ms: f64,
    pub tokens_per_request: f64,
}

/// Whether `flag` is "true" in `env`; the name is matched case-insensitively,
/// so `use_optimized_prompts` (an AppConfig flag key) and
/// `USE_OPTIMIZED_PROMPTS` (a variable) are one flag.
fn on(env: &BTreeMap<String, String>, flag: &str) -> bool {
    env.iter()
        .any(|(k, v)| k.eq_ignore_ascii_case(flag) && v.eq_ignore_ascii_case("true"))
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
    keyed(namespace, name, &[("FunctionName", function.to_string())])
}

fn keyed(namespace: &str, name: &str, dimensions: &[(&str, String)]) -> MetricKey {
    MetricKey {
        namespace: namespace.to_string(),
        name: name.to_string(),
        dimensions: dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// Emits one tick of traffic for `function` at `at` (epoch seconds), its
/// invocations split over `routes` at random by their shares.
pub(super) fn emit(
    cw: &mut CloudWatch,
    function: &str,
    routes: &[Route<'_>],
    settings: &TrafficSettings,
    at: f64,
    noise: &mut Noise,
) {
    if settings.invocations_per_tick == 0 || routes.is_empty() {
        // No invocations: Lambda publishes nothing at all.
        return;
    }
    // Each invocation picks its route, as Lambda's weighted alias does.
    let mut counts = vec![0u32; routes.len()];
    let total: f64 = routes.iter().map(|r| r.share.max(0.0)).sum();
    for _ in 0..settings.invocations_per_tick {
        let mut pick = noise.uniform() * total;
        let mut chosen = routes.len() - 1;
        for (i, r) in routes.iter().enumerate() {
            pick -= r.share.max(0.0);
            if pick < 0.0 {
                chosen = i;
                break;
            }
        }
        counts[chosen] += 1;
    }
    let served: Vec<Served> = routes
        .iter()
        .zip(&counts)
        .map(|(route, n)| serve(route, *n, settings, noise))
        .collect();
    let mut put = |key: MetricKey, values: Vec<(f64, f64)>| {
        if !values.is_empty() {
            cw.put(key, Datum::from_values(at, values), Resolution::Standard);
        }
    };
    // A count of zero is no datapoint at all (readers take a missing count
    // as 0); the simulator models no concurrency limit, so no Throttles.
    let count = |v: f64| if v > 0.0 { vec![(v, 1.0)] } else { vec![] };
    let sum =
        |f: &dyn Fn(&Served) -> f64, which: &[&Served]| which.iter().map(|s| f(s)).sum::<f64>();
    let all: Vec<&Served> = served.iter().collect();
    let by_dims = |dims: &[(&str, String)],
                   which: &[&Served],
                   put: &mut dyn FnMut(MetricKey, Vec<(f64, f64)>)| {
        put(
            keyed(LAMBDA_NAMESPACE, "Invocations", dims),
            count(sum(&|s| s.invocations, which)),
        );
        put(
            keyed(LAMBDA_NAMESPACE, "Errors", dims),
            count(sum(&|s| s.errors, which)),
        );
        put(
            keyed(LAMBDA_NAMESPACE, "Duration", dims),
            which.iter().flat_map(|s| s.durations.clone()).collect(),
        );
    };
    let function_dims = [("FunctionName", function.to_string())];
    by_dims(&function_dims, &all, &mut put);
    let tokens = |which: &[&Served]| -> Vec<(f64, f64)> {
        which
            .iter()
            .filter(|s| s.invocations > 0.0)
            .map(|s| (s.tokens, s.invocations))
            .collect()
    };
    put(key(TOKENS_NAMESPACE, TOKENS_METRIC, function), tokens(&all));
    // Per alias and per executed version, as Lambda publishes for an alias.
    let mut aliases: BTreeMap<&str, Vec<&Served>> = BTreeMap::new();
    for (route, s) in routes.iter().zip(&served) {
        let version = match &route.via {
            Some((alias, version)) => {
                aliases.entry(alias).or_default().push(s);
                let dims = [
                    ("FunctionName", function.to_string()),
                    ("Resource", format!("{function}:{alias}")),
                    ("ExecutedVersion", version.clone()),
                ];
                by_dims(&dims, &[s], &mut put);
                version.clone()
            }
            None => "$LATEST".to_string(),
        };
        put(
            keyed(
                TOKENS_NAMESPACE,
                TOKENS_METRIC,
                &[
                    ("FunctionName", function.to_string()),
                    ("FunctionVersion", version),
                ],
            ),
            tokens(&[s]),
        );
    }
    for (alias, which) in aliases {
        let dims = [
            ("FunctionName", function.to_string()),
            ("Resource", format!("{function}:{alias}")),
        ];
        by_dims(&dims, &which, &mut put);
    }
}

/// `n` invocations under `route`'s environment.
fn serve(route: &Route<'_>, n: u32, settings: &TrafficSettings, noise: &mut Noise) -> Served {
    let l = levels(route.env, &settings.bad_flags);
    let errors = (0..n).filter(|_| noise.uniform() < l.error_rate).count() as f64;
    let invocations = f64::from(n);
    // Durations: 20 buckets spread around the mean (a long right tail).
    let buckets = 20;
    let per_bucket = invocations / f64::from(buckets);
    let durations = if n == 0 {
        Vec::new()
    } else {
        (0..buckets)
            .map(|i| {
                let q = (f64::from(i) + 0.5) / f64::from(buckets);
                let shape = -(1.0 - q).ln(); // exponential quantiles, mean 1
                let jitter = 0.95 + 0.1 * noise.uniform();
                (
                    (l.mean_duration_ms * (0.5 + 0.5 * shape) * jitter).round(),
                    per_bucket,
                )
            })
            .collect()
    };
    let tokens = (l.tokens_per_request * (0.97 + 0.06 * noise.uniform())).round();
    Served {
        invocations,
        errors,
        durations,
        tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unqualified(env: &BTreeMap<String, String>) -> Route<'_> {
        Route {
            env,
            via: None,
            share: 1.0,
        }
    }

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
        // A bad flag named as AppConfig spells it is the same flag.
        let lower: BTreeSet<String> = ["use_optimized_prompts".to_string()].into();
        assert_eq!(
            levels(&env(&[("USE_OPTIMIZED_PROMPTS", "true")]), &lower),
            broken
        );
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
        let e = env(&[]);
        emit(
            &mut cw,
            "f",
            &[unqualified(&e)],
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

    /// A weighted alias: each invocation picks a version by the weights and
    /// runs under that version's environment; metrics carry Lambda's
    /// `Resource` and `ExecutedVersion` dimensions beside `FunctionName`.
    #[test]
    fn an_alias_splits_invocations_by_weight_and_version() {
        let mut cw = CloudWatch::default();
        let settings = TrafficSettings {
            enabled: true,
            invocations_per_tick: 1_000,
            bad_flags: ["USE_OPTIMIZED_PROMPTS".to_string()].into(),
            ..TrafficSettings::default()
        };
        let stable = env(&[("USE_OPTIMIZED_PROMPTS", "false")]);
        let canary = env(&[("USE_OPTIMIZED_PROMPTS", "true")]);
        let routes = [
            Route {
                env: &stable,
                via: Some(("live", "1".into())),
                share: 0.9,
            },
            Route {
                env: &canary,
                via: Some(("live", "2".into())),
                share: 0.1,
            },
        ];
        let mut noise = Noise::new(11);
        for i in 0..100 {
            emit(
                &mut cw,
                "f",
                &routes,
                &settings,
                f64::from(i) * 60.0,
                &mut noise,
            );
        }
        let total = |name: &str, dims: &[(&str, String)]| -> f64 {
            cw.metrics
                .get(&keyed(LAMBDA_NAMESPACE, name, dims))
                .map_or(0.0, |d| d.iter().map(|d| d.sum).sum())
        };
        let version = |v: &str| {
            vec![
                ("FunctionName", "f".to_string()),
                ("Resource", "f:live".to_string()),
                ("ExecutedVersion", v.to_string()),
            ]
        };
        let all = total("Invocations", &[("FunctionName", "f".into())]);
        assert_eq!(all, 100_000.0);
        let (v1, v2) = (
            total("Invocations", &version("1")),
            total("Invocations", &version("2")),
        );
        assert_eq!(v1 + v2, all);
        assert_eq!(
            total(
                "Invocations",
                &[("FunctionName", "f".into()), ("Resource", "f:live".into())]
            ),
            all
        );
        assert!((9_000.0..11_000.0).contains(&v2), "canary share {v2}");
        // The bad flag is on in version 2 only: 11 % errors there, 1 % in 1.
        let rate = |v: &str, n: f64| total("Errors", &version(v)) / n;
        assert!((0.09..0.13).contains(&rate("2", v2)), "{}", rate("2", v2));
        assert!(rate("1", v1) < 0.02, "{}", rate("1", v1));
        // The handler's tokens metric carries the version too.
        let tokens = |v: &str| {
            cw.metrics
                .get(&keyed(
                    TOKENS_NAMESPACE,
                    TOKENS_METRIC,
                    &[("FunctionName", "f".into()), ("FunctionVersion", v.into())],
                ))
                .map_or(0.0, |d| {
                    d.iter().map(|d| d.sum / d.count).sum::<f64>() / d.len() as f64
                })
        };
        assert!(
            tokens("2") < tokens("1") * 0.2,
            "{} {}",
            tokens("2"),
            tokens("1")
        );
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
        let e = env(&[]);
        emit(&mut cw, "f", &[unqualified(&e)], &idle, 100.0, &mut noise);
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
                &[unqualified(&e)],
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

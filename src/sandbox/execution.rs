//! Execution environments for the traffic simulator: each function version
//! runs in a small pool of warm environments (about one per 20 invocations
//! of a tick, at least one), each with the variables it captured when it
//! started (a cold start). An update of `$LATEST` that took effect (a new
//! revision, no longer `InProgress`) recycles every warm environment of
//! `$LATEST`, as Lambda does: the next invocations cold-start fresh ones.
//!
//! An environment whose variables name `APPCONFIG_APPLICATION`,
//! `APPCONFIG_ENVIRONMENT` and `APPCONFIG_PROFILE` runs the AppConfig Lambda
//! extension: at init it opens a data-plane session (poll interval
//! `AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS`, default 45, kept within
//! AppConfig's 15–86400) and fetches the configuration, then polls every
//! interval, keeping the last configuration it got. Calls go in-process
//! through the data plane's own functions, so sessions, tokens, poll
//! intervals and deployment percentages apply as they do over HTTP. An
//! invocation runs with the environment's variables overlaid with the
//! flags: a feature flag `KEY` with `enabled: B` reads as variable
//! `KEY` uppercased = `"B"` (`use_optimized_prompts` → `USE_OPTIMIZED_PROMPTS`),
//! a plain top-level string, number or boolean as itself.
//!
//! Polls are staggered as real environments' are: one started during a
//! tick started at a point of that tick, one already warm when the
//! simulator first saw its function at a point of the poll interval before;
//! the point is a hash of the environment's id, so the simulator stays
//! deterministic.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::appconfig::{AppConfig, deploy};
use super::traffic::Route;

pub const APPCONFIG_APPLICATION: &str = "APPCONFIG_APPLICATION";
pub const APPCONFIG_ENVIRONMENT: &str = "APPCONFIG_ENVIRONMENT";
pub const APPCONFIG_PROFILE: &str = "APPCONFIG_PROFILE";
/// The AppConfig Lambda extension's own poll-interval variable.
pub const POLL_INTERVAL: &str = "AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS";
/// The extension's default poll interval, in seconds.
pub const DEFAULT_POLL_INTERVAL: u32 = 45;

/// Invocations per tick one warm environment serves.
const INVOCATIONS_PER_ENVIRONMENT: u32 = 20;

#[derive(Debug, Clone)]
struct Environment {
    /// `$LATEST`'s revision when it started (versions never change).
    revision: String,
    vars: BTreeMap<String, String>,
    extension: Option<Extension>,
}

/// The AppConfig extension inside one environment.
#[derive(Debug, Clone)]
struct Extension {
    app: String,
    env: String,
    profile: String,
    interval: u32,
    token: Option<String>,
    next_poll: f64,
    /// The last configuration, as variables.
    flags: BTreeMap<String, String>,
}

/// One function's environments, by version (`$LATEST`, `1`, …).
#[derive(Debug, Default)]
pub(super) struct Fleet {
    pools: BTreeMap<String, Vec<Environment>>,
    cold_starts: u64,
    started: u64,
    last_tick: Option<f64>,
}

/// How many environments run which flags, for one function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetView {
    /// Cold starts since the simulator first ran the function.
    pub cold_starts: u64,
    /// Environments grouped by version and the flags they run with.
    pub groups: Vec<FlagGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlagGroup {
    pub version: String,
    /// The variables that look like flags (`true`/`false`) as invocations see them.
    pub flags: BTreeMap<String, String>,
    pub environments: usize,
}

impl FleetView {
    /// (environments where `flag` reads `value`, all environments); the
    /// flag's name is matched case-insensitively.
    pub fn running(&self, flag: &str, value: &str) -> (usize, usize) {
        let total = self.groups.iter().map(|g| g.environments).sum();
        let with = self
            .groups
            .iter()
            .filter(|g| {
                g.flags
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(flag) && v.eq_ignore_ascii_case(value))
            })
            .map(|g| g.environments)
            .sum();
        (with, total)
    }
}

/// The poll interval an environment's variables ask for.
pub fn poll_interval(vars: &BTreeMap<String, String>) -> u32 {
    vars.get(POLL_INTERVAL)
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(DEFAULT_POLL_INTERVAL)
        .clamp(15, 86_400)
}

/// Variables from a configuration AppConfig served (see the module doc).
pub fn flags_of(content: &[u8]) -> BTreeMap<String, String> {
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(content) else {
        return BTreeMap::new();
    };
    doc.into_iter()
        .filter_map(|(k, v)| match v {
            Value::Object(flag) => match flag.get("enabled") {
                Some(Value::Bool(b)) => Some((k.to_ascii_uppercase(), b.to_string())),
                _ => None,
            },
            Value::String(s) => Some((k, s)),
            Value::Bool(b) => Some((k, b.to_string())),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect()
}

/// Environments needed per pool: invocations over 20, at least one per
/// pool that gets a share.
pub fn pool_size(invocations_per_tick: u32, share: f64) -> usize {
    if share <= 0.0 || invocations_per_tick == 0 {
        return 0;
    }
    let concurrency = f64::from((invocations_per_tick / INVOCATIONS_PER_ENVIRONMENT).max(1));
    ((concurrency * share).ceil() as usize).max(1)
}

impl Extension {
    fn new(vars: &BTreeMap<String, String>) -> Option<Extension> {
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
        Some(Extension {
            app: get(APPCONFIG_APPLICATION)?,
            env: get(APPCONFIG_ENVIRONMENT)?,
            profile: get(APPCONFIG_PROFILE)?,
            interval: poll_interval(vars),
            token: None,
            next_poll: 0.0,
            flags: BTreeMap::new(),
        })
    }

    /// One poll at `t`: a session first if there is none; the configuration
    /// if AppConfig has one for this session. Failures wait for the next poll.
    fn poll(&mut self, t: f64, ac: &mut AppConfig) {
        self.next_poll = t + f64::from(self.interval);
        if self.token.is_none() {
            match ac.start_session(
                &self.app,
                &self.env,
                &self.profile,
                Some(i64::from(self.interval)),
                t,
            ) {
                Ok(token) => self.token = Some(token),
                Err(_) => return,
            }
        }
        let Some(token) = &self.token else {
            return;
        };
        match ac.latest(token, t) {
            Ok(latest) => {
                self.token = Some(latest.next_token);
                if !latest.content.is_empty() {
                    self.flags = flags_of(&latest.content);
                }
            }
            // A token AppConfig no longer takes: a new session next time.
            Err(e) if e.is_bad_request() && !e.is_poll_too_early() => self.token = None,
            Err(_) => {}
        }
    }

    /// Every poll due by `at`, at its own time.
    fn catch_up(&mut self, at: f64, ac: &mut AppConfig) {
        for _ in 0..10_000 {
            if self.next_poll > at {
                break;
            }
            let t = self.next_poll;
            self.poll(t, ac);
        }
    }
}

impl Environment {
    /// What an invocation here runs with.
    fn effective(&self) -> BTreeMap<String, String> {
        let mut vars = self.vars.clone();
        if let Some(ext) = &self.extension {
            vars.extend(ext.flags.clone());
        }
        vars
    }
}

/// A point in [0, 1) for `id` (where in a span an environment started).
fn phase(id: &str) -> f64 {
    deploy::bucket(id) / 100.0
}

/// The version a route runs.
fn version_of(route: &Route<'_>) -> String {
    route
        .via
        .as_ref()
        .map_or_else(|| "$LATEST".to_string(), |(_, v)| v.clone())
}

/// The function a tick is for: its name, `$LATEST`'s revision, and whether
/// an update is still in progress.
pub(super) struct Function<'a> {
    pub name: &'a str,
    pub revision: &'a str,
    pub updating: bool,
}

/// What one share of a tick's invocations runs with: (variables, via, share).
pub(super) type Served = (BTreeMap<String, String>, Option<(String, String)>, f64);

impl Fleet {
    /// Brings the pools up to date for a tick at `at` and splits `routes`
    /// by what their environments run with.
    pub fn tick(
        &mut self,
        f: &Function<'_>,
        routes: &[Route<'_>],
        invocations_per_tick: u32,
        at: f64,
        ac: &mut AppConfig,
    ) -> Vec<Served> {
        let first = self.last_tick.is_none();
        let span_start = self.last_tick.unwrap_or(at);
        self.last_tick = Some(at);
        let mut shares: BTreeMap<String, (f64, &BTreeMap<String, String>)> = BTreeMap::new();
        for r in routes {
            let e = shares.entry(version_of(r)).or_insert((0.0, r.env));
            e.0 += r.share.max(0.0);
        }
        self.pools.retain(|v, _| shares.contains_key(v));
        for (version, (share, vars)) in &shares {
            let pool = self.pools.entry(version.clone()).or_default();
            let latest = version == "$LATEST";
            // An update in effect recycles every warm environment.
            if latest && !f.updating {
                pool.retain(|e| e.revision == f.revision);
            }
            let want = pool_size(invocations_per_tick, *share);
            pool.truncate(want);
            while pool.len() < want {
                self.started += 1;
                self.cold_starts += 1;
                let id = format!("{}/{version}/{}", f.name, self.started);
                // When in the last tick (or, for environments already warm
                // when the simulator first ran the function, in the last
                // poll interval) this one started.
                let span = if first {
                    f64::from(poll_interval(vars))
                } else {
                    at - span_start
                };
                let init = at - span * phase(&id);
                let mut extension = Extension::new(vars);
                if let Some(ext) = &mut extension {
                    ext.poll(init, ac);
                }
                pool.push(Environment {
                    revision: if latest {
                        f.revision.to_string()
                    } else {
                        String::new()
                    },
                    vars: (*vars).clone(),
                    extension,
                });
            }
            for e in pool.iter_mut() {
                if let Some(ext) = &mut e.extension {
                    ext.catch_up(at, ac);
                }
            }
        }
        let mut out = Vec::new();
        for r in routes {
            let Some(pool) = self.pools.get(&version_of(r)).filter(|p| !p.is_empty()) else {
                continue;
            };
            let mut groups: BTreeMap<BTreeMap<String, String>, usize> = BTreeMap::new();
            for e in pool {
                *groups.entry(e.effective()).or_default() += 1;
            }
            let via = r.via.as_ref().map(|(a, v)| (a.to_string(), v.clone()));
            for (vars, n) in groups {
                let share = r.share * n as f64 / pool.len() as f64;
                out.push((vars, via.clone(), share));
            }
        }
        out
    }

    /// How many environments run which flags.
    pub fn view(&self) -> FleetView {
        let mut groups: BTreeMap<(String, BTreeMap<String, String>), usize> = BTreeMap::new();
        for (version, pool) in &self.pools {
            for e in pool {
                let flags = e
                    .effective()
                    .into_iter()
                    .filter(|(_, v)| {
                        v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
                    })
                    .collect();
                *groups.entry((version.clone(), flags)).or_default() += 1;
            }
        }
        FleetView {
            cold_starts: self.cold_starts,
            groups: groups
                .into_iter()
                .map(|((version, flags), environments)| FlagGroup {
                    version,
                    flags,
                    environments,
                })
                .collect(),
        }
    }

    pub fn cold_starts(&self) -> u64 {
        self.cold_starts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn pools_scale_with_invocations() {
        assert_eq!(pool_size(200, 1.0), 10);
        assert_eq!(pool_size(200, 0.1), 1);
        assert_eq!(pool_size(200, 0.25), 3);
        assert_eq!(pool_size(5, 1.0), 1);
        assert_eq!(pool_size(0, 1.0), 0);
        assert_eq!(pool_size(200, 0.0), 0);
    }

    #[test]
    fn the_extension_interval_comes_from_its_variable() {
        assert_eq!(poll_interval(&vars(&[])), 45);
        assert_eq!(poll_interval(&vars(&[(POLL_INTERVAL, "90")])), 90);
        assert_eq!(poll_interval(&vars(&[(POLL_INTERVAL, "5")])), 15);
        assert_eq!(poll_interval(&vars(&[(POLL_INTERVAL, "x")])), 45);
    }

    #[test]
    fn served_configurations_read_as_variables() {
        let ff = br#"{"use_optimized_prompts": {"enabled": true, "model": "small"}, "use_refactored_tools": {"enabled": false}}"#;
        assert_eq!(
            flags_of(ff),
            vars(&[
                ("USE_OPTIMIZED_PROMPTS", "true"),
                ("USE_REFACTORED_TOOLS", "false")
            ])
        );
        assert_eq!(
            flags_of(br#"{"MODE": "fast", "ON": true, "N": 3}"#),
            vars(&[("MODE", "fast"), ("ON", "true"), ("N", "3")])
        );
        assert!(flags_of(b"not json").is_empty());
    }

    fn route(env: &BTreeMap<String, String>) -> Route<'_> {
        Route {
            env,
            via: None,
            share: 1.0,
        }
    }

    /// A new revision recycles `$LATEST`'s environments once it is in
    /// effect, not while the update is in progress.
    #[test]
    fn an_update_in_effect_recycles_the_pool() {
        let mut fleet = Fleet::default();
        let mut ac = AppConfig::default();
        let at = |revision, updating| Function {
            name: "f",
            revision,
            updating,
        };
        let old = vars(&[("USE_OPTIMIZED_PROMPTS", "false")]);
        let new = vars(&[("USE_OPTIMIZED_PROMPTS", "true")]);
        fleet.tick(&at("r1", false), &[route(&old)], 200, 0.0, &mut ac);
        assert_eq!(fleet.cold_starts(), 10);
        fleet.tick(&at("r1", false), &[route(&old)], 200, 1.0, &mut ac);
        assert_eq!(fleet.cold_starts(), 10, "warm environments stay");
        let served = fleet.tick(&at("r2", true), &[route(&new)], 200, 2.0, &mut ac);
        assert_eq!(
            fleet.cold_starts(),
            10,
            "in progress: the old ones still serve"
        );
        assert_eq!(served[0].0, old);
        let served = fleet.tick(&at("r2", false), &[route(&new)], 200, 3.0, &mut ac);
        assert_eq!(fleet.cold_starts(), 20);
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].0, new);
        assert_eq!(
            fleet.view().running("use_optimized_prompts", "true"),
            (10, 10)
        );
    }
}

//! What preflight's reads mean: each function here takes plain values (what
//! Lambda, CloudWatch, IAM answered) and returns checks. No I/O.

use std::collections::BTreeMap;

use crate::backend::Env;
pub use crate::backend::lambda_env::FunctionFacts;
use crate::backend::merge::{LAMBDA_ENV_LIMIT_BYTES, env_size_bytes, merge};
use crate::domain::MetricValue;
use crate::metrics::eval::min_samples_for;
use crate::plan::{BackendKind, Bound, GuardrailKind, MetricRef, Plan, Reference};
use crate::watcher::decide::metric_label;

use super::Check;

/// How an AWS read went, for the checks that report it.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<T> {
    Ok(T),
    /// The caller may not: AccessDenied and its kin.
    Denied(String),
    /// The thing asked for does not exist.
    NotFound(String),
    /// Anything else (throttled through every retry, 5xx, unreachable).
    Failed(String),
}

impl<T> Read<T> {
    pub fn as_ref(&self) -> Read<&T> {
        match self {
            Read::Ok(t) => Read::Ok(t),
            Read::Denied(m) => Read::Denied(m.clone()),
            Read::NotFound(m) => Read::NotFound(m.clone()),
            Read::Failed(m) => Read::Failed(m.clone()),
        }
    }

    pub fn ok(&self) -> Option<&T> {
        match self {
            Read::Ok(t) => Some(t),
            _ => None,
        }
    }
}

/// The checks of the function itself: it exists, is Active, its last
/// update succeeded, and its environment can be read (only a backend that
/// writes the environment fails on an unreadable one).
pub fn function_checks(
    function: &str,
    read: &Read<FunctionFacts>,
    backend: BackendKind,
) -> Vec<Check> {
    let exists = Check::named(
        "function.exists",
        format!("function {function} exists and can be read"),
    );
    let f = match read {
        Read::Ok(f) => f,
        Read::NotFound(m) => return vec![exists.fail(format!("no such function: {m}"))],
        Read::Denied(m) => {
            return vec![exists.fail(format!(
                "lambda:GetFunctionConfiguration is denied to rollgate: {m}"
            ))];
        }
        Read::Failed(m) => return vec![exists.fail(format!("it could not be read: {m}"))],
    };
    let sizes = format!(
        "{} (memory {} MB, timeout {} s)",
        f.arn,
        f.memory_mb.map_or("?".into(), |m| m.to_string()),
        f.timeout_s.map_or("?".into(), |t| t.to_string())
    );
    let mut out = vec![exists.pass(sizes)];
    let reason = |r: &Option<String>| r.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let state = Check::named("function.state", "the function is Active");
    out.push(match f.state.as_deref() {
        Some("Active") => state.pass("State Active"),
        None => state.pass("Lambda reported no State (an emulator); taken as Active"),
        Some(s) => state.fail(format!(
            "State {s}{}: Lambda refuses configuration updates until it is Active",
            reason(&f.state_reason)
        )),
    });
    let update = Check::named("function.last_update", "its last update was Successful");
    out.push(match f.last_update.as_deref() {
        Some("Successful") | None => update.pass("LastUpdateStatus Successful"),
        Some("InProgress") => update.warn(
            "LastUpdateStatus InProgress: another update is under way; rollgate's first write waits for it",
        ),
        Some(s) => update.fail(format!(
            "LastUpdateStatus {s}{}: fix the function's configuration before a rollout writes to it",
            reason(&f.last_update_reason)
        )),
    });
    let env = Check::named("function.environment", "its environment can be read whole");
    let writes_env = backend != BackendKind::AppConfig;
    out.push(match &f.env {
        Env::Vars(v) => env.pass(format!(
            "{} variables, {} of {LAMBDA_ENV_LIMIT_BYTES} bytes",
            v.len(),
            env_size_bytes(v)
        )),
        Env::Absent => env.pass("no variables yet"),
        Env::Error { code, message } if writes_env => env.fail(format!(
            "Environment.Error {code}: {message}; rollgate never writes what it could not read whole (check the function's KMS key and rollgate's kms:Decrypt)"
        )),
        Env::Error { code, message } => env.warn(format!(
            "Environment.Error {code}: {message}; the appconfig backend does not write the environment, but the function itself may not start"
        )),
    });
    out
}

/// Another active rollout holds the function (under any spelling).
pub fn holder_check(function: &str, holder: Option<(i64, &str, &str)>) -> Check {
    let c = Check::named(
        "function.holder",
        format!("no other rollout holds {function}"),
    );
    match holder {
        None => c.pass("no active rollout holds it"),
        Some((id, plan, phase)) => c.fail(format!(
            "rollout #{id} of plan {plan} holds it (phase {phase}); finish or roll it back first"
        )),
    }
}

/// Every phase's environment fits Lambda's 4 KB limit with the other
/// variables as they are now.
pub fn fit_check(plan: &Plan, env: &BTreeMap<String, String>) -> Check {
    let c = Check::named(
        "environment.fit",
        format!("every phase's environment fits Lambda's {LAMBDA_ENV_LIMIT_BYTES}-byte limit"),
    );
    let sizes: Vec<(String, usize)> = (0..plan.phase_count())
        .map(|i| {
            (
                plan.phase_name(i).to_string(),
                env_size_bytes(&merge(env, plan.flags_at(i))),
            )
        })
        .collect();
    let listed = sizes
        .iter()
        .map(|(p, s)| format!("{p} {s}"))
        .collect::<Vec<_>>()
        .join(", ");
    match sizes.iter().find(|(_, s)| *s > LAMBDA_ENV_LIMIT_BYTES) {
        Some((phase, size)) => c.fail(format!(
            "phase {phase} would make it {size} bytes, over the limit by {} (bytes per phase: {listed}); shorten or remove other variables first",
            size - LAMBDA_ENV_LIMIT_BYTES
        )),
        None => c.pass(format!("bytes per phase: {listed}")),
    }
}

/// The plan's release windows now: None without a `[schedule]`. A closed
/// window only warns (the rollout may start; its promotions wait), but a
/// schedule that allows no promotion within two years fails: the rollout
/// could never leave its first phase.
pub fn schedule_check(plan: &Plan, now: chrono::DateTime<chrono::Utc>) -> Option<Check> {
    use crate::plan::WindowState;
    let c = Check::named("schedule", "the release windows allow promotion");
    let said = plan.schedule.describe(now)?;
    Some(match plan.schedule.state_at(now) {
        WindowState::Unrestricted | WindowState::Open { .. } => {
            c.pass(format!("promotion allowed now: {said}"))
        }
        WindowState::Closed {
            opens_at: Some(_), ..
        } => c.warn(format!(
            "promotion is held now ({said}); a rollout may start, and each phase that becomes ready waits for the window"
        )),
        WindowState::Closed { opens_at: None, .. } => c.fail(format!(
            "{said}: no phase could ever be promoted; fix [schedule] promote and freeze"
        )),
    })
}

/// One guardrail or gate condition on a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Use {
    /// "guardrail error-rate", "gate faster of phase prompts".
    pub what: String,
    pub metric: MetricRef,
    pub bound: Bound,
    pub reference: Reference,
    pub window_secs: u64,
    pub min_samples: u64,
}

impl Use {
    /// Compares with the baseline: without baseline data it judges nothing.
    pub fn needs_baseline(&self) -> bool {
        self.reference == Reference::Baseline
            && !matches!(self.bound, Bound::Max(_) | Bound::Min(_))
    }
}

/// Every metric condition of the plan's guardrails and gates.
pub fn uses(plan: &Plan) -> Vec<Use> {
    let mut out = Vec::new();
    let guardrails = plan
        .guardrails
        .iter()
        .map(|g| (format!("guardrail {}", g.name), g))
        .chain(plan.phases.iter().flat_map(|p| {
            p.guardrails
                .iter()
                .map(move |g| (format!("guardrail {} of phase {}", g.name, p.name), g))
        }));
    for (what, g) in guardrails {
        if let GuardrailKind::Metric(c) = &g.kind {
            out.push(Use {
                what,
                metric: c.metric.clone(),
                bound: c.bound,
                reference: c.reference,
                window_secs: g.window.as_secs(),
                min_samples: g.min_samples,
            });
        }
    }
    for p in &plan.phases {
        for g in &p.gates {
            out.push(Use {
                what: format!("gate {} of phase {}", g.name, p.name),
                metric: g.condition.metric.clone(),
                bound: g.condition.bound,
                reference: g.condition.reference,
                window_secs: g.window.as_secs(),
                min_samples: g.min_samples,
            });
        }
    }
    // One canary step's conditions repeat per step: the first names them.
    out.dedup_by(|a, b| {
        a.metric == b.metric
            && a.bound == b.bound
            && a.window_secs == b.window_secs
            && a.what == b.what
    });
    out
}

fn human_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Per metric: the baseline over the look-back window has data, enough of
/// it per window for each condition's `min_samples`, and a value a
/// relative bound can be relative to. A relative condition without a
/// baseline fails (it would silently judge "insufficient data" for the
/// whole rollout); an absolute one only warns.
pub fn baseline_checks(plan: &Plan, baseline: &Read<BTreeMap<String, MetricValue>>) -> Vec<Check> {
    let uses = uses(plan);
    let lookback = plan.baseline.lookback.as_secs().max(60);
    let mut labels: Vec<(String, MetricRef)> = Vec::new();
    for u in &uses {
        let label = metric_label(&u.metric);
        if !labels.iter().any(|(l, _)| *l == label) {
            labels.push((label, u.metric.clone()));
        }
    }
    labels
        .into_iter()
        .map(|(label, metric)| {
            let mine: Vec<&Use> = uses.iter().filter(|u| u.metric == metric).collect();
            let c = Check::named(
                format!("baseline.{label}"),
                format!(
                    "{label} has baseline data over the last {} ({})",
                    human_secs(lookback),
                    mine.iter().map(|u| u.what.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
            let relative: Vec<&&Use> = mine.iter().filter(|u| u.needs_baseline()).collect();
            let values = match baseline {
                Read::Ok(v) => v,
                Read::Denied(m) => {
                    return c.fail(format!("cloudwatch:GetMetricData is denied to rollgate: {m}"));
                }
                Read::NotFound(m) | Read::Failed(m) => {
                    return c.fail(format!("CloudWatch could not be read: {m}"));
                }
            };
            let got = values.get(&label).copied().unwrap_or(MetricValue {
                value: None,
                samples: 0,
            });
            let needed = mine
                .iter()
                .map(|u| min_samples_for(&metric, u.min_samples))
                .max()
                .unwrap_or(0);
            let no_data = got.value.is_none() || (needed > 0 && got.samples == 0);
            if no_data || got.samples < needed {
                let found = if no_data {
                    "no data".to_string()
                } else {
                    format!("{} samples, fewer than the {needed} one window needs", got.samples)
                };
                let detail = match relative.first() {
                    Some(u) => format!(
                        "{found} over the last {}: {} compares with the baseline and would judge nothing (\"insufficient data\") for the whole rollout; let the function take traffic first, or shorten baseline.lookback",
                        human_secs(lookback),
                        u.what
                    ),
                    None => format!(
                        "{found} over the last {}; its conditions are absolute, so they judge once the phase has traffic",
                        human_secs(lookback)
                    ),
                };
                return if relative.is_empty() { c.warn(detail) } else { c.fail(detail) };
            }
            let value = got.value.map(number).unwrap_or_default();
            // At the baseline's average rate, how many samples one window holds.
            let thin: Vec<String> = mine
                .iter()
                .filter_map(|u| {
                    let need = min_samples_for(&metric, u.min_samples);
                    let per_window =
                        got.samples as f64 * u.window_secs as f64 / lookback as f64;
                    (need > 0 && per_window < need as f64).then(|| {
                        format!(
                            "{} needs {need} per {} window but the baseline averages {:.0}",
                            u.what,
                            human_secs(u.window_secs),
                            per_window
                        )
                    })
                })
                .collect();
            let numbers = format!(
                "baseline {value} from {} samples over the last {}",
                got.samples,
                human_secs(lookback)
            );
            if thin.is_empty() {
                c.pass(numbers)
            } else {
                c.warn(format!(
                    "{numbers}; at that rate {}: expect \"insufficient data\" often",
                    thin.join("; ")
                ))
            }
        })
        .collect()
}

/// Each custom metric a condition reads is being published: samples over
/// the last hour (and over the look-back window when there are none).
pub fn published_checks(
    plan: &Plan,
    last_hour: &Read<BTreeMap<String, MetricValue>>,
    baseline: &Read<BTreeMap<String, MetricValue>>,
) -> Vec<Check> {
    let used: Vec<String> = uses(plan)
        .into_iter()
        .filter_map(|u| match u.metric {
            MetricRef::Custom(n) => Some(n),
            _ => None,
        })
        .fold(Vec::new(), |mut acc, n| {
            if !acc.contains(&n) {
                acc.push(n);
            }
            acc
        });
    used.into_iter()
        .filter_map(|name| {
            let m = plan.metrics.get(&name)?;
            let dims = m
                .dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let series = format!("{}/{} {{{dims}}}", m.namespace, m.metric_name);
            let c = Check::named(
                format!("metric.{name}"),
                format!("custom metric {name} ({series}) is being published"),
            );
            let samples = |r: &Read<BTreeMap<String, MetricValue>>| {
                r.ok().and_then(|v| v.get(&name)).map_or(0, |v| v.samples)
            };
            Some(match last_hour {
                Read::Denied(e) => c.fail(format!("cloudwatch:GetMetricData is denied to rollgate: {e}")),
                Read::NotFound(e) | Read::Failed(e) => c.fail(format!("CloudWatch could not be read: {e}")),
                Read::Ok(_) if samples(last_hour) > 0 => {
                    c.pass(format!("{} samples in the last hour", samples(last_hour)))
                }
                Read::Ok(_) if samples(baseline) > 0 => c.warn(format!(
                    "nothing in the last hour, though {} samples over the look-back window: has the handler stopped publishing it?",
                    samples(baseline)
                )),
                Read::Ok(_) => c.fail(format!(
                    "no datapoints at all over the last {}: the handler does not publish it (check the namespace, name and dimensions; dimensions must match exactly)",
                    human_secs(plan.baseline.lookback.as_secs())
                )),
            })
        })
        .collect()
}

/// The alarms guardrails follow exist.
pub fn alarm_checks(plan: &Plan, found: &Read<BTreeMap<String, String>>) -> Vec<Check> {
    let mut names: Vec<(&str, &str)> = Vec::new();
    let all = plan
        .guardrails
        .iter()
        .chain(plan.phases.iter().flat_map(|p| &p.guardrails));
    for g in all {
        if let GuardrailKind::Alarm { alarm } = &g.kind
            && !names.iter().any(|(a, _)| a == alarm)
        {
            names.push((alarm.as_str(), g.name.as_str()));
        }
    }
    names
        .into_iter()
        .map(|(alarm, guardrail)| {
            let c = Check::named(
                format!("alarm.{alarm}"),
                format!("alarm {alarm} (guardrail {guardrail}) exists"),
            );
            match found {
                Read::Ok(states) => match states.get(alarm) {
                    Some(state) if state == "ALARM" => c.warn(
                        "it exists and is in ALARM now: the guardrail would breach at once",
                    ),
                    Some(state) => c.pass(format!("state {state}")),
                    None => c.fail(
                        "no CloudWatch alarm has this name in the region: the guardrail would never fire",
                    ),
                },
                Read::Denied(m) => c.fail(format!("cloudwatch:DescribeAlarms is denied to rollgate: {m}")),
                Read::NotFound(m) | Read::Failed(m) => c.fail(format!("the alarms could not be described: {m}")),
            }
        })
        .collect()
}

/// How one read rollgate needs went.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    Allowed,
    Denied(String),
    /// The read failed otherwise: says nothing about the permission.
    Unknown(String),
}

/// Every read rollgate needs was done once: each one denied fails.
pub fn read_permissions_check(reads: &[(String, Access)]) -> Check {
    let c = Check::named("permissions.read", "rollgate may make every read it needs");
    let denied: Vec<String> = reads
        .iter()
        .filter_map(|(a, r)| match r {
            Access::Denied(m) => Some(format!("{a} ({m})")),
            _ => None,
        })
        .collect();
    let unknown: Vec<&str> = reads
        .iter()
        .filter_map(|(a, r)| matches!(r, Access::Unknown(_)).then_some(a.as_str()))
        .collect();
    let allowed: Vec<&str> = reads
        .iter()
        .filter_map(|(a, r)| matches!(r, Access::Allowed).then_some(a.as_str()))
        .collect();
    if !denied.is_empty() {
        c.fail(format!("denied: {}", denied.join("; ")))
    } else if !unknown.is_empty() {
        c.warn(format!(
            "allowed: {}; not known (the read failed for another reason): {}",
            allowed.join(", "),
            unknown.join(", ")
        ))
    } else {
        c.pass(format!("allowed: {}", allowed.join(", ")))
    }
}

/// The IAM actions rollgate's writes need for `plan`, each with the
/// resource it acts on (`*` where the ARN is not known before the write).
pub fn needed_writes(plan: &Plan, function_arn: &str) -> Vec<(String, String)> {
    let on = |a: &str, r: &str| (a.to_string(), r.to_string());
    let mut out = match plan.target.backend {
        BackendKind::LambdaEnv => vec![on("lambda:UpdateFunctionConfiguration", function_arn)],
        BackendKind::LambdaAlias => {
            let alias = format!(
                "{function_arn}:{}",
                plan.target.alias.as_deref().unwrap_or("*")
            );
            vec![
                on("lambda:UpdateFunctionConfiguration", function_arn),
                on("lambda:PublishVersion", function_arn),
                on("lambda:UpdateAlias", &alias),
            ]
        }
        BackendKind::AppConfig => vec![
            on("appconfig:CreateHostedConfigurationVersion", "*"),
            on("appconfig:StartDeployment", "*"),
            on("appconfig:StopDeployment", "*"),
        ],
    };
    if false
    /* BACKSTOP: plan.backstop.is_some() */
    {
        out.push(on("cloudwatch:PutMetricAlarm", "*"));
        out.push(on("cloudwatch:DeleteAlarms", "*"));
        out.push(on("cloudwatch:TagResource", "*"));
    }
    out
}

/// What IAM's policy simulator said about the caller's writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Simulation {
    /// action → decision (`allowed`, `implicitDeny`, `explicitDeny`), for `principal`.
    Done {
        principal: String,
        decisions: Vec<(String, String)>,
    },
    /// The caller may not simulate (or the call failed): why.
    Unavailable(String),
}

/// rollgate's writes are allowed, as `iam:SimulatePrincipalPolicy` says
/// where the caller may ask it; otherwise a warning that lists them.
pub fn write_permissions_check(needed: &[(String, String)], sim: &Simulation) -> Check {
    let c = Check::named(
        "permissions.write",
        "rollgate may make the writes the plan needs",
    );
    let actions = needed
        .iter()
        .map(|(a, r)| format!("{a} on {r}"))
        .collect::<Vec<_>>()
        .join(", ");
    match sim {
        Simulation::Unavailable(why) => {
            c.warn(format!("not checked ({why}); the writes need: {actions}"))
        }
        Simulation::Done {
            principal,
            decisions,
        } => {
            let refused: Vec<String> = needed
                .iter()
                .filter_map(|(a, r)| {
                    let d = decisions
                        .iter()
                        .find(|(da, _)| da.eq_ignore_ascii_case(a))
                        .map(|(_, d)| d.as_str());
                    match d {
                        Some("allowed") => None,
                        Some(d) => Some(format!("{a} on {r} ({d})")),
                        None => Some(format!("{a} on {r} (not evaluated)")),
                    }
                })
                .collect();
            if refused.is_empty() {
                c.pass(format!("{principal} is allowed: {actions}"))
            } else {
                c.fail(format!(
                    "{principal} is not allowed: {}; grant them in its IAM policy",
                    refused.join(", ")
                ))
            }
        }
    }
}

/// An assumed-role session's role ARN (what the policy simulator takes);
/// other principals as they are. `None` for ARNs that are neither.
pub fn simulation_principal(caller_arn: &str) -> Option<String> {
    // arn:aws:sts::123456789012:assumed-role/NAME/SESSION
    let parts: Vec<&str> = caller_arn.splitn(6, ':').collect();
    let [arn, partition, service, _, account, resource] = parts.as_slice() else {
        return None;
    };
    if *arn != "arn" {
        return None;
    }
    match *service {
        "sts" => {
            let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
            (!role.is_empty()).then(|| format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        "iam" => Some(caller_arn.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");

    fn seed() -> Plan {
        Plan::parse("dixon-smart-repair", SEED).unwrap()
    }

    fn facts(env: Env) -> FunctionFacts {
        FunctionFacts {
            arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            name: "f".into(),
            state: Some("Active".into()),
            state_reason: None,
            last_update: Some("Successful".into()),
            last_update_reason: None,
            env,
            memory_mb: Some(1024),
            timeout_s: Some(30),
        }
    }

    fn worst(checks: &[Check]) -> super::super::Status {
        checks.iter().map(|c| c.status).max().unwrap()
    }

    use super::super::Status;

    #[test]
    fn a_function_must_exist_be_active_settled_and_readable() {
        let ok = function_checks("f", &Read::Ok(facts(Env::Absent)), BackendKind::LambdaEnv);
        assert_eq!(worst(&ok), Status::Pass, "{ok:?}");
        assert!(ok[0].detail.contains("memory 1024 MB, timeout 30 s"));
        let missing = function_checks(
            "f",
            &Read::NotFound("Function not found".into()),
            BackendKind::LambdaEnv,
        );
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].status, Status::Fail);
        let mut pending = facts(Env::Absent);
        pending.state = Some("Pending".into());
        pending.last_update = Some("Failed".into());
        pending.last_update_reason = Some("EniLimitExceeded".into());
        let c = function_checks("f", &Read::Ok(pending), BackendKind::LambdaEnv);
        assert_eq!(c[1].status, Status::Fail);
        assert_eq!(c[2].status, Status::Fail);
        assert!(c[2].detail.contains("EniLimitExceeded"), "{c:?}");
        let kms = Env::Error {
            code: "KMSAccessDeniedException".into(),
            message: "no".into(),
        };
        let c = function_checks("f", &Read::Ok(facts(kms.clone())), BackendKind::LambdaEnv);
        assert_eq!(c[3].status, Status::Fail);
        let c = function_checks("f", &Read::Ok(facts(kms)), BackendKind::AppConfig);
        assert_eq!(
            c[3].status,
            Status::Warn,
            "appconfig never writes the environment"
        );
    }

    #[test]
    fn release_windows_pass_when_open_warn_when_closed_and_fail_when_never_open() {
        use crate::plan::{parse_freeze, parse_window};
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let mut plan = seed();
        assert_eq!(schedule_check(&plan, at("2026-12-07T10:00:00Z")), None);
        let window = parse_window("Mon-Thu 09:00-16:00 Europe/London").unwrap();
        plan.schedule.promote = vec![window.clone()];
        // Monday 10:00 in London (GMT in December).
        let c = schedule_check(&plan, at("2026-12-07T10:00:00Z")).unwrap();
        assert_eq!(c.status, Status::Pass, "{c:?}");
        assert!(c.detail.contains("open until 16:00 Europe/London"), "{c:?}");
        // Friday: held until Monday 09:00.
        let c = schedule_check(&plan, at("2026-12-11T10:00:00Z")).unwrap();
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.detail.contains("2026-12-14T09:00:00Z"), "{c:?}");
        // A freeze longer than the horizon: no promotion ever.
        plan.schedule.freeze = vec![parse_freeze("2026-01-01..2030-01-01", window.zone()).unwrap()];
        let c = schedule_check(&plan, at("2026-12-07T10:00:00Z")).unwrap();
        assert_eq!(c.status, Status::Fail, "{c:?}");
    }

    #[test]
    fn the_phase_that_breaks_the_size_limit_is_named() {
        let plan = seed();
        let small: BTreeMap<String, String> = [("A".to_string(), "b".to_string())].into();
        assert_eq!(fit_check(&plan, &small).status, Status::Pass);
        // Lambda measures the JSON of the map, so the room left is what an
        // empty PAD leaves; the baseline's "false"s make it the largest phase.
        let with_pad =
            |n: usize| -> BTreeMap<String, String> { [("PAD".to_string(), "x".repeat(n))].into() };
        let room = LAMBDA_ENV_LIMIT_BYTES - env_size_bytes(&merge(&with_pad(0), plan.flags_at(0)));
        let c = fit_check(&plan, &with_pad(room));
        assert_eq!(c.status, Status::Pass, "exactly at the limit fits: {c:?}");
        let c = fit_check(&plan, &with_pad(room + 1));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.detail.contains("over the limit by 1"), "{c:?}");
        assert!(
            c.detail.starts_with("phase baseline would make it"),
            "{c:?}"
        );
    }

    fn values(pairs: &[(&str, Option<f64>, u64)]) -> Read<BTreeMap<String, MetricValue>> {
        Read::Ok(
            pairs
                .iter()
                .map(|(l, v, s)| {
                    (
                        l.to_string(),
                        MetricValue {
                            value: *v,
                            samples: *s,
                        },
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn a_relative_condition_without_a_baseline_fails_and_a_thin_one_warns() {
        let plan = seed();
        // 7 days, 100 per 5 minutes = 201,600 samples for a full rate.
        let full = values(&[
            ("error_rate", Some(0.5), 300_000),
            ("duration_p99", Some(900.0), 300_000),
            ("duration_avg", Some(400.0), 300_000),
            ("tokens_per_request", Some(1200.0), 300_000),
        ]);
        let c = baseline_checks(&plan, &full);
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|c| c.status == Status::Pass), "{c:?}");
        assert!(
            c[0].detail
                .contains("baseline 0.5 from 300000 samples over the last 7d"),
            "{c:?}"
        );

        let thin = values(&[
            ("error_rate", Some(0.5), 1_000),
            ("duration_p99", Some(900.0), 1_000),
            ("duration_avg", Some(400.0), 1_000),
            ("tokens_per_request", None, 0),
        ]);
        let c = baseline_checks(&plan, &thin);
        assert_eq!(c[0].status, Status::Warn, "{c:?}");
        assert!(c[0].detail.contains("needs 100 per 5m window"), "{c:?}");
        let tokens = c
            .iter()
            .find(|c| c.id == "baseline.tokens_per_request")
            .unwrap();
        assert_eq!(tokens.status, Status::Fail);
        assert!(
            tokens.detail.contains("gate fewer-tokens of phase prompts"),
            "{tokens:?}"
        );

        let denied = baseline_checks(&plan, &Read::Denied("AccessDenied".into()));
        assert!(denied.iter().all(|c| c.status == Status::Fail));
    }

    #[test]
    fn an_unpublished_custom_metric_fails_a_stale_one_warns() {
        let plan = seed();
        let none = values(&[]);
        let c = published_checks(&plan, &none, &none);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].id, "metric.tokens_per_request");
        assert_eq!(c[0].status, Status::Fail);
        assert!(c[0].title.contains(
            "DixonSmartRepair/TokensPerRequest {FunctionName=dixon-smart-repair-handler}"
        ));
        let old = values(&[("tokens_per_request", Some(1.0), 50)]);
        assert_eq!(published_checks(&plan, &none, &old)[0].status, Status::Warn);
        assert_eq!(published_checks(&plan, &old, &old)[0].status, Status::Pass);
    }

    #[test]
    fn write_permissions_come_from_the_simulator_or_warn() {
        let plan = seed();
        let needed = needed_writes(&plan, "arn:f");
        assert_eq!(
            needed,
            [(
                "lambda:UpdateFunctionConfiguration".to_string(),
                "arn:f".to_string()
            )]
        );
        let allowed = Simulation::Done {
            principal: "arn:aws:iam::1:role/r".into(),
            decisions: vec![(
                "lambda:UpdateFunctionConfiguration".into(),
                "allowed".into(),
            )],
        };
        assert_eq!(
            write_permissions_check(&needed, &allowed).status,
            Status::Pass
        );
        let denied = Simulation::Done {
            principal: "arn:aws:iam::1:role/r".into(),
            decisions: vec![(
                "lambda:UpdateFunctionConfiguration".into(),
                "implicitDeny".into(),
            )],
        };
        let c = write_permissions_check(&needed, &denied);
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.detail
                .contains("lambda:UpdateFunctionConfiguration on arn:f (implicitDeny)")
        );
        let c = write_permissions_check(&needed, &Simulation::Unavailable("AccessDenied".into()));
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail
                .contains("lambda:UpdateFunctionConfiguration on arn:f")
        );
    }

    #[test]
    fn read_permissions_fail_on_a_denial_only() {
        let reads = vec![
            (
                "lambda:GetFunctionConfiguration".to_string(),
                Access::Allowed,
            ),
            (
                "cloudwatch:GetMetricData".to_string(),
                Access::Unknown("timeout".into()),
            ),
        ];
        assert_eq!(read_permissions_check(&reads).status, Status::Warn);
        let mut reads = reads;
        reads.push((
            "cloudwatch:DescribeAlarms".into(),
            Access::Denied("AccessDenied".into()),
        ));
        let c = read_permissions_check(&reads);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("cloudwatch:DescribeAlarms"));
    }

    #[test]
    fn principals_for_the_simulator() {
        assert_eq!(
            simulation_principal("arn:aws:sts::123456789012:assumed-role/deployer/alice")
                .as_deref(),
            Some("arn:aws:iam::123456789012:role/deployer")
        );
        assert_eq!(
            simulation_principal("arn:aws:iam::123456789012:user/ci").as_deref(),
            Some("arn:aws:iam::123456789012:user/ci")
        );
        assert_eq!(simulation_principal("nonsense"), None);
        assert_eq!(
            simulation_principal("arn:aws:sts::1:federated-user/x"),
            None
        );
    }

    #[test]
    fn a_missing_alarm_fails() {
        let text = SEED.replace(
            "# [[guardrails]]\n# name = \"errors-alarm\"\n# alarm = \"dixon-smart-repair-errors\"",
            "[[guardrails]]\nname = \"errors-alarm\"\nalarm = \"dixon-smart-repair-errors\"",
        );
        let plan = Plan::parse("p", &text).unwrap();
        let none = Read::Ok(BTreeMap::new());
        let c = alarm_checks(&plan, &none);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, Status::Fail);
        let ok = Read::Ok([("dixon-smart-repair-errors".to_string(), "OK".to_string())].into());
        assert_eq!(alarm_checks(&plan, &ok)[0].status, Status::Pass);
    }
}

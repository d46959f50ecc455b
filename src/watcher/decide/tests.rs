//! Tables for `judge`: plain numbers in, decisions out.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::*;
use crate::domain::{MetricValue, PhaseStats, RolloutId};
use crate::rollout::{PendingWrite, phase_flags};

const FUNCTION: &str = "f";

fn plan(extra: &str) -> Plan {
    Plan::parse(
        "p",
        &format!(
            r#"[target]
function = "{FUNCTION}"
[flags]
FA = "off"
FB = "off"
[defaults]
bake = "1h"
{extra}
[[phases]]
name = "one"
set = {{ FA = "on" }}
[[phases]]
name = "two"
set = {{ FB = "on" }}
"#
        ),
    )
    .unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
        .unwrap()
        .to_utc()
}

fn flags(a: &str, b: &str) -> Flags {
    [
        ("FA".to_string(), a.to_string()),
        ("FB".to_string(), b.to_string()),
    ]
    .into()
}

/// A rollout of `plan` in `phase`, baked since `t0`, flags applied.
fn rollout(plan: &Plan, phase: usize, state: State) -> Rollout {
    Rollout {
        id: RolloutId(7),
        plan_name: "p".into(),
        plan_hash: "h".into(),
        plan_text: String::new(),
        target_function: FUNCTION.into(),
        function_arn: format!("arn:aws:lambda:us-east-1:1:function:{FUNCTION}"),
        function_name: FUNCTION.into(),
        phases: phase_flags(plan),
        rollback_to: plan.rollback,
        region: None,
        webhooks: Vec::new(),
        state,
        phase_index: phase,
        phase_name: plan.phase_name(phase).into(),
        desired_flags: plan.flags_at(phase).clone(),
        observed_flags: Some(plan.flags_at(phase).clone()),
        observed_at: Some(t0()),
        generation: 2,
        applied_generation: 2,
        pending_write: None,
        last_error: None,
        version: 3,
        created_at: t0(),
        updated_at: t0(),
        baseline: Some(Baseline(
            [
                (
                    "error_rate".to_string(),
                    MetricValue {
                        value: Some(1.0),
                        samples: 5000,
                    },
                ),
                (
                    "duration_avg".to_string(),
                    MetricValue {
                        value: Some(100.0),
                        samples: 5000,
                    },
                ),
            ]
            .into(),
        )),
        baseline_at: Some(t0()),
        bake_started_at: Some(t0()),
        readiness: None,
        phase_stats: PhaseStats::default(),
        function_error: None,
    }
}

fn lambda(name: &str, stat: &str) -> Series {
    Series {
        namespace: "AWS/Lambda".into(),
        name: name.into(),
        dimensions: [("FunctionName".to_string(), FUNCTION.to_string())].into(),
        stat: stat.into(),
    }
}

/// Values for a window: error rate `errors`/1000 and average duration.
fn values(window: u64, errors: f64, duration: f64) -> Values {
    let mut v = HashMap::new();
    v.insert(lambda("Invocations", "Sum"), 1000.0);
    v.insert(lambda("Errors", "Sum"), errors);
    v.insert(lambda("Duration", "Average"), duration);
    [(window, v)].into()
}

struct Case<'a> {
    rollout: &'a Rollout,
    plan: &'a Plan,
    memory: WatchMemory,
    readings: Readings,
    function: Option<FunctionRead>,
    now: DateTime<Utc>,
}

impl<'a> Case<'a> {
    fn new(rollout: &'a Rollout, plan: &'a Plan) -> Self {
        Case {
            rollout,
            plan,
            memory: WatchMemory::default(),
            readings: Readings {
                firing: Some(HashSet::new()),
                ..Readings::default()
            },
            function: Some(FunctionRead::Seen {
                flags: rollout.desired_flags.clone(),
                code_sha256: Some("code-1".into()),
            }),
            now: t0() + TimeDelta::minutes(30),
        }
    }

    fn judge(&self) -> Judgement {
        judge(&Input {
            rollout: self.rollout,
            plan: self.plan,
            memory: &self.memory,
            readings: &self.readings,
            function: self.function.as_ref(),
            fresh_baseline: None,
            now: self.now,
            refresh_readiness: TimeDelta::seconds(10),
            freshness: Freshness {
                max_age: TimeDelta::seconds(20),
            },
            points_every: points_every(TimeDelta::seconds(10)),
        })
    }
}

/// The decision of `j` that `pick` selects (points and records aside).
fn find<T>(j: &Judgement, pick: impl Fn(&Decision) -> Option<T>) -> Option<T> {
    j.decisions.iter().find_map(pick)
}

fn actions(j: &Judgement) -> Vec<&'static str> {
    j.decisions
        .iter()
        .filter(|d| !d.is_record())
        .map(Decision::action)
        .collect()
}

const ERROR_RATE: &str = r#"
[[guardrails]]
name = "errors"
metric = "error_rate"
max_delta = 2.0
consecutive = 2
"#;

#[test]
fn guardrails_act_after_consecutive_breaches_and_by_priority() {
    let plan = plan(&format!(
        "{ERROR_RATE}
[[guardrails]]
name = \"slow\"
metric = \"duration_avg\"
max_ratio = 1.25
consecutive = 1
action = \"pause\"
"
    ));
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    // error rate 5 % > 1 + 2; 200 ms > 100 × 1.25: both breach.
    case.readings.values = values(300, 50.0, 200.0);
    let first = case.judge();
    assert_eq!(
        actions(&first),
        ["pause"],
        "pause acts at once; rollback needs 2"
    );
    assert_eq!(first.memory.streak("errors"), 1);
    case.memory = first.memory;
    let second = case.judge();
    assert_eq!(
        actions(&second),
        ["rollback"],
        "a rollback outranks a pause"
    );
    let Some((reason, evidence)) = find(&second, |d| match d {
        Decision::Rollback { reason, evidence } => Some((reason.clone(), evidence.clone())),
        _ => None,
    }) else {
        panic!("{second:?}");
    };
    assert!(
        reason.starts_with("guardrail errors breached: error_rate 5.00 > 3.00"),
        "{reason}"
    );
    assert_eq!(evidence.window_secs, 300);
    assert_eq!(evidence.evaluation.samples, 1000);
}

#[test]
fn a_pass_resets_and_too_few_samples_hold_the_streak() {
    let plan = plan(ERROR_RATE);
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.memory.set_streak("errors", 1);
    case.readings.values = values(300, 5.0, 100.0); // 0.5 %: passes
    assert_eq!(case.judge().memory.streak("errors"), 0);
    let mut few = values(300, 50.0, 100.0);
    few.get_mut(&300)
        .unwrap()
        .insert(lambda("Invocations", "Sum"), 20.0); // < 100 samples
    case.readings.values = few;
    let j = case.judge();
    assert_eq!(
        j.memory.streak("errors"),
        1,
        "insufficient data neither counts nor resets"
    );
    assert!(actions(&j).is_empty());
}

#[test]
fn a_previous_phase_guardrail_is_held_to_the_previous_phase() {
    let mut text = String::new();
    text.push_str(&format!(
        "[target]\nfunction = \"{FUNCTION}\"\n[flags]\nFA = \"off\"\nFB = \"off\"\n[defaults]\nbake = \"1h\"\n"
    ));
    text.push_str(
        r#"[[phases]]
name = "one"
set = { FA = "on" }
[[phases]]
name = "two"
set = { FB = "on" }
  [[phases.guardrails]]
  name = "no-slower"
  metric = "duration_avg"
  max_ratio = 1.1
  compare_to = "previous_phase"
  consecutive = 1
"#,
    );
    let plan = Plan::parse("p", &text).unwrap();
    let r = rollout(&plan, 2, State::Active);
    let mut case = Case::new(&r, &plan);
    case.readings.values = values(300, 0.0, 150.0);
    // No statistics of phase one: no reference, no decision.
    let j = case.judge();
    assert!(actions(&j).is_empty(), "{j:?}");
    // Phase one ran at 120 ms: 150 > 132 breaches.
    let mut with_stats = r.clone();
    with_stats.phase_stats.0.insert(
        "one".into(),
        BTreeMap::from([("duration_avg".to_string(), 120.0)]),
    );
    case.rollout = &with_stats;
    let j = case.judge();
    let Some(evidence) = find(&j, |d| match d {
        Decision::Rollback { evidence, .. } => Some(evidence.clone()),
        _ => None,
    }) else {
        panic!("{j:?}");
    };
    assert_eq!(evidence.evaluation.reference, Some(120.0));
    assert!(
        evidence
            .evaluation
            .explanation
            .contains("previous phase 120.00 × 1.1")
    );
}

#[test]
fn zero_invocations_breach_a_min_invocations_guardrail() {
    let plan = plan(
        r#"
[[guardrails]]
name = "traffic"
metric = "invocations"
min = 10
consecutive = 1
"#,
    );
    let r = rollout(&plan, 1, State::Active);
    let case = Case::new(&r, &plan); // no datapoints at all
    assert_eq!(actions(&case.judge()), ["rollback"]);
}

#[test]
fn a_rollback_already_pending_is_not_asked_for_again_but_the_rollout_stays_judged() {
    let plan = plan(
        ERROR_RATE
            .replace("consecutive = 2", "consecutive = 1")
            .as_str(),
    );
    let mut r = rollout(&plan, 0, State::Failed);
    r.generation = 3;
    r.desired_flags = plan.flags_at(0).clone();
    r.pending_write = Some(PendingWrite {
        generation: 3,
        command: crate::rollout::WriteCause::Rollback,
        actor: "rollgate/watcher".into(),
        expect_variables: true,
        reason: None,
        recorded_at: t0(),
        target_state: Some(State::RolledBack),
        previous_state: State::Active,
        previous_phase: 1,
        previous_phase_name: "one".into(),
        previous_flags: plan.flags_at(1).clone(),
    });
    let mut case = Case::new(&r, &plan);
    case.readings.values = values(300, 50.0, 100.0);
    let j = case.judge();
    // Phase one's flags are still live: its guardrails still count.
    assert_eq!(j.memory.streak("errors"), 1);
    assert!(actions(&j).is_empty(), "{j:?}");
}

#[test]
fn drift_is_reverted_or_paused_and_an_unreadable_environment_never_is() {
    let revert = plan("");
    let r = rollout(&revert, 1, State::Active);
    let mut case = Case::new(&r, &revert);
    case.function = Some(FunctionRead::Seen {
        flags: flags("off", "off"),
        code_sha256: None,
    });
    assert_eq!(actions(&case.judge()), ["drift_revert"]);

    let pause = plan("[drift]\npolicy = \"pause\"\n");
    let r = rollout(&pause, 1, State::Active);
    let mut case = Case::new(&r, &pause);
    case.function = Some(FunctionRead::Seen {
        flags: flags("off", "off"),
        code_sha256: None,
    });
    assert_eq!(actions(&case.judge()), ["drift_pause"]);
    let paused = rollout(&pause, 1, State::Paused);
    case.rollout = &paused;
    assert!(actions(&case.judge()).is_empty(), "already paused");

    // KMS: no drift judged, no write; reported once.
    let r = rollout(&revert, 1, State::Active);
    let mut case = Case::new(&r, &revert);
    let cause = "the function's environment cannot be read (KMSAccessDeniedException: denied)";
    case.function = Some(FunctionRead::Unreadable(cause.into()));
    assert_eq!(actions(&case.judge()), ["function_unreadable"]);
    let mut known = r.clone();
    known.function_error = Some(cause.into());
    case.rollout = &known;
    assert!(actions(&case.judge()).is_empty(), "already reported");
    case.function = Some(FunctionRead::Seen {
        flags: known.desired_flags.clone(),
        code_sha256: None,
    });
    assert_eq!(actions(&case.judge()), ["function_readable"]);
}

#[test]
fn evaluations_are_kept_for_the_charts_once_a_minute() {
    let plan = plan(ERROR_RATE);
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.readings.values = values(300, 5.0, 100.0); // healthy: nothing acts
    let points = |j: &Judgement| {
        j.decisions
            .iter()
            .filter_map(|d| match d {
                Decision::RecordPoints(p) => Some(p.clone()),
                _ => None,
            })
            .flatten()
            .collect::<Vec<_>>()
    };
    let first = case.judge();
    let kept = points(&first);
    assert_eq!(kept.len(), 1, "{first:?}");
    assert_eq!(kept[0].name, "errors");
    assert_eq!(kept[0].label, "error_rate");
    assert_eq!(kept[0].value, Some(0.5));
    assert_eq!(kept[0].threshold, Some(3.0));
    assert_eq!(kept[0].verdict, crate::metrics::eval::Verdict::Pass);
    case.memory = first.memory;
    case.now += TimeDelta::seconds(10);
    assert!(
        points(&case.judge()).is_empty(),
        "not again within the minute"
    );
    case.now += TimeDelta::seconds(50);
    assert_eq!(points(&case.judge()).len(), 1);
    assert_eq!(points_every(TimeDelta::seconds(1)), TimeDelta::seconds(6));
    assert_eq!(
        points_every(TimeDelta::milliseconds(100)),
        TimeDelta::seconds(5)
    );
    assert_eq!(points_every(TimeDelta::seconds(30)), TimeDelta::minutes(1));
}

#[test]
fn the_values_a_guardrail_acts_on_are_always_kept() {
    let plan = plan(&ERROR_RATE.replace("consecutive = 2", "consecutive = 1"));
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.memory.points_at = Some(case.now - TimeDelta::seconds(5)); // kept just now
    case.readings.values = values(300, 50.0, 100.0);
    let j = case.judge();
    assert_eq!(actions(&j), ["rollback"]);
    assert!(
        j.decisions
            .iter()
            .any(|d| matches!(d, Decision::RecordPoints(p) if p[0].value == Some(5.0)))
    );
}

#[test]
fn a_new_code_hash_restarts_the_bake_even_across_a_restart() {
    let plan = plan("");
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    // What a previous process remembered (stored), then a deploy.
    case.memory.code_sha256 = Some("code-0".into());
    let j = case.judge();
    assert_eq!(
        j.decisions.first(),
        Some(&Decision::RestartBake {
            before: "code-0".into(),
            after: "code-1".into(),
        })
    );
    assert_eq!(j.memory.code_sha256.as_deref(), Some("code-1"));
    case.memory = j.memory;
    assert!(actions(&case.judge()).is_empty());
}

#[test]
fn readiness_is_recorded_fresh_and_promotes_auto_phases_only_when_it_holds() {
    let plan = Plan::parse(
        "p",
        &format!(
            r#"[target]
function = "{FUNCTION}"
[flags]
FA = "off"
[defaults]
bake = "1h"
approval = "auto"
[[phases]]
name = "one"
set = {{ FA = "on" }}
  [[phases.gates]]
  name = "faster"
  metric = "duration_avg"
  max_ratio = 0.9
  window = "5m"
"#
        ),
    )
    .unwrap();
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.readings.values = values(300, 0.0, 80.0);
    // Baked for 30 minutes only: recorded, not promoted.
    let j = case.judge();
    assert!(
        find(&j, |d| match d {
            Decision::RecordReadiness(x) => Some(x.phase == "one"),
            _ => None,
        })
        .unwrap()
    );
    assert!(actions(&j).is_empty());
    // After the bake: promoted.
    case.now = t0() + TimeDelta::hours(2);
    let j = case.judge();
    assert_eq!(actions(&j), ["advance"]);
    let Some(readiness) = find(&j, |d| match d {
        Decision::RecordReadiness(x) => Some(x.clone()),
        _ => None,
    }) else {
        panic!("{j:?}");
    };
    assert_eq!(readiness.observed["duration_avg"], Some(80.0));
    // A slower phase is never promoted.
    case.readings.values = values(300, 0.0, 95.0);
    assert!(actions(&case.judge()).is_empty());
    // No data is never a pass.
    case.readings.values = Values::new();
    assert!(actions(&case.judge()).is_empty());
}

#[test]
fn manual_phases_are_announced_once_until_they_stop_being_ready() {
    let plan = plan("");
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.now = t0() + TimeDelta::hours(2);
    let j = case.judge();
    assert_eq!(actions(&j), ["ready_for_approval"]);
    case.memory = j.memory;
    assert!(actions(&case.judge()).is_empty(), "announced once");
}

#[test]
fn the_silence_clock_turns_into_a_breach_under_the_breach_policy() {
    let plan = plan(&format!(
        "[insufficient_data]\npolicy = \"breach\"\nafter = \"5m\"\n{}",
        ERROR_RATE.replace("consecutive = 2", "consecutive = 1")
    ));
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    let first = case.judge();
    assert!(actions(&first).is_empty());
    assert_eq!(first.memory.silent_since.get("errors"), Some(&case.now));
    case.memory = first.memory;
    case.now += TimeDelta::minutes(5);
    assert_eq!(actions(&case.judge()), ["rollback"]);
}

#[test]
fn incomplete_baselines_are_read_again_later_and_recorded_when_better() {
    let plan = plan(ERROR_RATE);
    let mut r = rollout(&plan, 1, State::Active);
    r.baseline = None;
    let empty = Baseline(BTreeMap::from([(
        "error_rate".to_string(),
        MetricValue {
            value: None,
            samples: 0,
        },
    )]));
    let case = Case::new(&r, &plan);
    let judge_with = |fresh: &Baseline, memory: &WatchMemory, rollout: &Rollout| {
        judge(&Input {
            rollout,
            plan: &plan,
            memory,
            readings: &case.readings,
            function: None,
            fresh_baseline: Some(fresh),
            now: case.now,
            refresh_readiness: TimeDelta::seconds(10),
            freshness: Freshness {
                max_age: TimeDelta::seconds(20),
            },
            points_every: points_every(TimeDelta::seconds(10)),
        })
    };
    let j = judge_with(&empty, &WatchMemory::default(), &r);
    assert!(matches!(
        j.decisions.first(),
        Some(Decision::RecordBaseline(_))
    ));
    assert_eq!(j.memory.baseline_attempts, 1);
    assert_eq!(
        j.memory.baseline_retry_at,
        Some(case.now + TimeDelta::minutes(5))
    );
    r.baseline = Some(empty.clone());
    let full = Baseline(BTreeMap::from([(
        "error_rate".to_string(),
        MetricValue {
            value: Some(1.2),
            samples: 900,
        },
    )]));
    let j = judge_with(&full, &j.memory, &r);
    assert_eq!(j.decisions.first(), Some(&Decision::RecordBaseline(full)));
    assert_eq!(j.memory.baseline_retry_at, None);
    assert_eq!(baseline_retry_delay(2), TimeDelta::minutes(10));
    assert_eq!(baseline_retry_delay(20), TimeDelta::hours(6));
}

#[test]
fn data_that_could_not_be_read_is_unknown_not_zero() {
    let plan = plan(
        r#"
[[guardrails]]
name = "traffic"
metric = "invocations"
min = 10
consecutive = 1

[[guardrails]]
name = "health"
alarm = "dixon-health"
"#,
    );
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.now = t0() + TimeDelta::hours(2); // baked: it would be ready
    // The GetMetricData call for the window failed; DescribeAlarms too.
    case.readings
        .unknown
        .insert((300, lambda("Invocations", "Sum")));
    case.readings.firing = None;
    case.memory.set_streak("traffic", 0);
    let j = case.judge();
    assert!(
        actions(&j).is_empty(),
        "no rollback, no announcement: {j:?}"
    );
    assert_eq!(j.memory.streak("traffic"), 0);
    // Read again: zero invocations is a finding.
    case.readings.unknown.clear();
    case.readings.firing = Some(HashSet::new());
    assert_eq!(actions(&case.judge()), ["rollback"]);
}

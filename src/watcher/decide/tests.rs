//! Tables for `judge`: plain numbers in, decisions out.

use std::collections::{BTreeMap, HashSet};

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
        live_since: None,
        alias: None,
        routing: None,
        appconfig: None,
        delivery: None,
    }
}

/// 1,000 invocations with `errors` errors at `duration` ms on average.
fn healthy_or_not(errors: f64, duration: f64) -> impl Fn(&Series) -> Option<f64> {
    move |s: &Series| match (s.name.as_str(), s.stat.as_str()) {
        ("Invocations", "Sum") => Some(1000.0),
        ("Errors", "Sum") => Some(errors),
        ("Duration", "Average") => Some(duration),
        _ => None,
    }
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
                routing: None,
                latest: None,
            }),
            // The first five-minute period since t0 has just settled.
            now: t0() + TimeDelta::minutes(7),
        }
        .remembering_the_phase()
    }

    /// Memory of the live phase (fresh memory belongs to none).
    fn remembering_the_phase(mut self) -> Self {
        self.memory.live_since = Some(self.rollout.live_since());
        self
    }

    /// CloudWatch's answer to everything this tick reads: `value` per
    /// series (`None`: no datapoint).
    fn fill(&mut self, value: impl Fn(&Series) -> Option<f64>) {
        self.readings.values = reads(self.rollout, self.plan, &self.memory, self.now)
            .into_iter()
            .flat_map(|(range, s)| {
                let v = value(&s);
                range
                    .spans()
                    .map(move |span| ((s.clone(), span), v))
                    .collect::<Vec<_>>()
            })
            .collect();
    }

    /// The next five-minute period has settled; the memory is `j`'s.
    fn next_period(&mut self, j: Judgement) {
        self.memory = j.memory;
        self.now += TimeDelta::minutes(5);
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
    case.fill(healthy_or_not(50.0, 200.0));
    let first = case.judge();
    assert_eq!(
        actions(&first),
        ["pause"],
        "pause acts at once; rollback needs 2"
    );
    assert_eq!(first.memory.streak("errors"), 1);
    // The same period again: nothing new to judge.
    case.memory = first.memory.clone();
    let again = case.judge();
    assert!(actions(&again).is_empty(), "{again:?}");
    assert_eq!(again.memory.streak("errors"), 1);
    case.next_period(first);
    case.fill(healthy_or_not(50.0, 200.0));
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
    case.fill(healthy_or_not(5.0, 100.0)); // 0.5 %: passes
    assert_eq!(case.judge().memory.streak("errors"), 0);
    case.fill(|s| match s.name.as_str() {
        "Invocations" => Some(20.0), // < 100 samples
        _ => healthy_or_not(50.0, 100.0)(s),
    });
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
    case.fill(healthy_or_not(0.0, 150.0));
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
    let mut case = Case::new(&r, &plan);
    case.fill(|_| None); // no datapoints at all: CloudWatch's zero
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
    case.fill(healthy_or_not(50.0, 100.0));
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
        routing: None,
        latest: None,
    });
    assert_eq!(actions(&case.judge()), ["drift_revert"]);

    let pause = plan("[drift]\npolicy = \"pause\"\n");
    let r = rollout(&pause, 1, State::Active);
    let mut case = Case::new(&r, &pause);
    case.function = Some(FunctionRead::Seen {
        flags: flags("off", "off"),
        code_sha256: None,
        routing: None,
        latest: None,
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
        routing: None,
        latest: None,
    });
    assert_eq!(actions(&case.judge()), ["function_readable"]);
}

#[test]
fn each_period_is_judged_and_kept_for_the_charts_once() {
    let plan = plan(ERROR_RATE);
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    case.fill(healthy_or_not(5.0, 100.0)); // healthy: nothing acts
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
    assert_eq!(kept[0].at, t0() + TimeDelta::minutes(5), "the period's end");
    assert_eq!(kept[0].window_secs, Some(300));
    case.memory = first.memory.clone();
    // The next period, 00:05–00:10, settles at 00:12.
    case.now += TimeDelta::seconds(290);
    case.fill(healthy_or_not(5.0, 100.0));
    assert!(
        points(&case.judge()).is_empty(),
        "not again before the next period settles"
    );
    case.now += TimeDelta::seconds(10);
    case.fill(healthy_or_not(5.0, 100.0));
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
    case.fill(healthy_or_not(50.0, 100.0));
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
    case.fill(healthy_or_not(0.0, 80.0));
    // Baked for 7 minutes only: recorded, not promoted.
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
    case.fill(healthy_or_not(0.0, 80.0));
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
    case.fill(healthy_or_not(0.0, 95.0));
    assert!(actions(&case.judge()).is_empty());
    // No data is never a pass, nor is data that could not be read.
    case.fill(|_| None);
    assert!(actions(&case.judge()).is_empty());
    case.readings.values.clear();
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
    case.fill(|_| None);
    let first = case.judge();
    assert!(actions(&first).is_empty());
    assert_eq!(
        first.memory.silent_since.get("errors"),
        Some(&(t0() + TimeDelta::minutes(5))),
        "silent since the end of the first silent period"
    );
    case.next_period(first);
    case.fill(|_| None);
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
    case.readings.values.clear();
    case.readings.firing = None;
    case.memory.set_streak("traffic", 0);
    let j = case.judge();
    assert!(
        actions(&j).is_empty(),
        "no rollback, no announcement: {j:?}"
    );
    assert_eq!(j.memory.streak("traffic"), 0);
    // Read again: zero invocations is a finding.
    case.fill(|_| None);
    case.readings.firing = Some(HashSet::new());
    assert_eq!(actions(&case.judge()), ["rollback"]);
}

const ONE_MINUTE_THREE_TIMES: &str = r#"
[[guardrails]]
name = "errors"
metric = "error_rate"
max_delta = 2.0
window = "1m"
consecutive = 3
"#;

#[test]
fn consecutive_counts_distinct_bad_minutes_not_ticks() {
    let plan = plan(ONE_MINUTE_THREE_TIMES);
    let mut r = rollout(&plan, 1, State::Active);
    r.live_since = Some(t0() + TimeDelta::seconds(10));
    let mut case = Case::new(&r, &plan);
    // 00:03:00: minute 00:01 has settled (00:00 began before the phase).
    case.now = t0() + TimeDelta::minutes(3);
    let mut bad_minutes = 0;
    for tick in 0..60 {
        // Ticks every 10 s over ten minutes: the first minute judged is
        // bad, the others healthy.
        case.fill(healthy_or_not(
            if bad_minutes < 1 { 50.0 } else { 5.0 },
            100.0,
        ));
        let j = case.judge();
        assert!(actions(&j).is_empty(), "tick {tick}: {j:?}");
        if j.memory.streak("errors") == 1 {
            bad_minutes = 1;
        }
        case.memory = j.memory;
        case.now += TimeDelta::seconds(10);
    }
    assert_eq!(bad_minutes, 1, "the bad minute was judged");
    assert_eq!(case.memory.streak("errors"), 0, "later minutes passed");

    // Three bad minutes in a row: the tick that judges the third acts,
    // two minutes of ticks after the first was judged.
    let mut ticks = 0;
    let acted = loop {
        case.fill(healthy_or_not(50.0, 100.0));
        let j = case.judge();
        ticks += 1;
        if !actions(&j).is_empty() {
            break actions(&j);
        }
        case.memory = j.memory;
        case.now += TimeDelta::seconds(10);
        assert!(ticks < 100);
    };
    assert_eq!(acted, ["rollback"]);
    assert_eq!(case.memory.streak("errors"), 2);
    assert!((13..=18).contains(&ticks), "{ticks} ticks");
}

#[test]
fn nothing_before_the_phase_and_no_filling_period_is_read() {
    let plan = plan(&format!(
        "{ONE_MINUTE_THREE_TIMES}\n[cloudwatch]\nsettle = \"90s\"\n"
    ));
    let mut r = rollout(&plan, 1, State::Active);
    let live = t0() + TimeDelta::seconds(125); // 00:02:05
    r.live_since = Some(live);
    let mut case = Case::new(&r, &plan);
    // 00:05:29: minute 00:03 has not settled for 90 s; 00:02 began before.
    case.now = t0() + TimeDelta::seconds(329);
    assert!(reads(&r, &plan, &case.memory, case.now).is_empty());
    case.fill(healthy_or_not(50.0, 100.0));
    let j = case.judge();
    assert_eq!(j.memory.streak("errors"), 0);
    assert!(j.memory.judged_until.is_empty());
    // 00:05:30: minute 00:03 is complete, and the only one judged.
    case.now += TimeDelta::seconds(1);
    let needed = reads(&r, &plan, &case.memory, case.now);
    assert!(!needed.is_empty());
    for (range, _) in &needed {
        assert!(range.start >= live.timestamp(), "{range:?}");
        assert!(range.end <= (t0() + TimeDelta::minutes(4)).timestamp());
    }
    case.fill(healthy_or_not(50.0, 100.0));
    let j = case.judge();
    assert_eq!(j.memory.streak("errors"), 1);
    assert_eq!(
        j.memory.judged_until["errors"],
        t0() + TimeDelta::minutes(4)
    );
}

#[test]
fn new_live_flags_start_the_periods_and_streaks_over() {
    let plan = plan(ONE_MINUTE_THREE_TIMES);
    let before = rollout(&plan, 1, State::Active);
    let mut r = before.clone();
    let mut case = Case::new(&before, &plan);
    case.memory.set_streak("errors", 2);
    case.memory
        .judged_until
        .insert("errors".into(), t0() + TimeDelta::minutes(4));
    // A rollback to this phase (or a drift revert) wrote the flags again.
    r.live_since = Some(t0() + TimeDelta::minutes(4) + TimeDelta::seconds(30));
    case.rollout = &r;
    case.now = t0() + TimeDelta::minutes(7);
    case.fill(healthy_or_not(50.0, 100.0));
    let j = case.judge();
    assert!(actions(&j).is_empty(), "old streaks never count: {j:?}");
    assert_eq!(
        j.memory.streak("errors"),
        0,
        "minute 00:04 is not the phase's"
    );
    assert_eq!(j.memory.live_since, r.live_since);
}

#[test]
fn a_phase_is_not_promoted_before_each_guardrail_judged_a_period_of_it() {
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
[[guardrails]]
name = "hourly-errors"
metric = "error_rate"
max_delta = 2.0
window = "1h"
[[phases]]
name = "one"
set = {{ FA = "on" }}
"#
        ),
    )
    .unwrap();
    let r = rollout(&plan, 1, State::Active);
    let mut case = Case::new(&r, &plan);
    // Baked (an hour since t0), but the first hour is not settled yet.
    case.now = t0() + TimeDelta::minutes(61);
    case.fill(healthy_or_not(5.0, 100.0));
    let j = case.judge();
    assert!(actions(&j).is_empty(), "{j:?}");
    let readiness = find(&j, |d| match d {
        Decision::RecordReadiness(x) => Some(x.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(readiness.unjudged_guardrails, ["hourly-errors"]);
    let blockers = crate::rollout::readiness::blockers(
        plan.phases.first(),
        r.bake_started_at,
        case.now,
        Some(&readiness),
        Freshness {
            max_age: TimeDelta::seconds(20),
        },
    );
    assert_eq!(
        blockers,
        ["guardrail hourly-errors has not judged a complete period of this phase yet"]
    );
    // 01:02: the hour has settled and passes: promoted.
    case.memory = j.memory;
    case.now = t0() + TimeDelta::minutes(62);
    case.fill(healthy_or_not(5.0, 100.0));
    assert_eq!(actions(&case.judge()), ["advance"]);
}

//! Whether a phase may be promoted: its bake time has elapsed and every gate
//! holds in a fresh evaluation of this very phase (insufficient data is
//! never a pass). Pure; the watcher records readiness, the service asks
//! here before an advance.

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::Readiness;
use crate::metrics::eval::Verdict;
use crate::plan::Phase;

/// When a bake that started at `start` ends; `None` when no clock can
/// represent it (durations are bounded at parse time, so only a corrupt
/// record gets here).
pub fn bake_end(start: DateTime<Utc>, bake: std::time::Duration) -> Option<DateTime<Utc>> {
    TimeDelta::from_std(bake)
        .ok()
        .and_then(|d| start.checked_add_signed(d))
}

/// What the service needs to judge readiness: how old an evaluation may be.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    /// Gate results older than this never allow an advance (two watcher
    /// intervals: a watcher that stopped must not keep promoting).
    pub max_age: TimeDelta,
}

/// Why rollout phase `index` of `plan` may not be promoted at `now`: the
/// phase's own blockers, and the plan's release windows (which hold every
/// promotion, from the baseline too; never a rollback).
pub fn promotion_blockers(
    plan: &crate::plan::Plan,
    index: usize,
    bake_started_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    readiness: Option<&Readiness>,
    freshness: Freshness,
) -> Vec<String> {
    let phase = index.checked_sub(1).and_then(|i| plan.phases.get(i));
    let mut out = blockers(phase, bake_started_at, now, readiness, freshness);
    out.extend(plan.schedule.blocker(now));
    out
}

/// Why `phase` (named `phase_name` in the rollout) may not be promoted at
/// `now` (empty = ready).
pub fn blockers(
    phase: Option<&Phase>,
    bake_started_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    readiness: Option<&Readiness>,
    freshness: Freshness,
) -> Vec<String> {
    let Some(phase) = phase else {
        return Vec::new(); // the baseline: an operator starts the first phase
    };
    let mut out = Vec::new();
    match bake_started_at.map(|start| bake_end(start, phase.bake)) {
        None => out.push("its bake clock has not started".to_string()),
        Some(None) => out.push("its bake time ends beyond any date rollgate can hold".to_string()),
        Some(Some(ends)) if now < ends => {
            let left = (ends - now).num_seconds();
            out.push(format!(
                "its bake time runs until {} ({}h{:02}m left)",
                ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                left / 3600,
                (left % 3600) / 60
            ));
        }
        Some(Some(_)) => {}
    }
    if let Some(r) = readiness.filter(|r| r.phase == phase.name) {
        for g in &r.unjudged_guardrails {
            out.push(format!(
                "guardrail {g} has not judged a complete period of this phase yet"
            ));
        }
    }
    if phase.gates.is_empty() {
        return out;
    }
    let readiness = match readiness {
        Some(r) if r.phase != phase.name => {
            out.push(format!(
                "the gate results on record are for phase {:?}, not {}; waiting for the watcher to evaluate this phase",
                r.phase, phase.name
            ));
            return out;
        }
        Some(r) if now - r.evaluated_at > freshness.max_age => {
            out.push(format!(
                "the gate results are {}s old (evaluated {}), older than two watcher intervals; waiting for a fresh evaluation",
                (now - r.evaluated_at).num_seconds(),
                r.evaluated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
            return out;
        }
        other => other,
    };
    for gate in &phase.gates {
        match readiness.and_then(|r| r.gate(&gate.name)) {
            Some(g) if g.verdict == Verdict::Pass => {}
            Some(g) => out.push(format!(
                "gate {} does not hold: {}",
                gate.name, g.explanation
            )),
            None => out.push(format!("gate {} has not been evaluated yet", gate.name)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::GateResult;
    use crate::metrics::eval::Evaluation;
    use crate::plan::Plan;

    const PLAN: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");
    const FRESH: Freshness = Freshness {
        max_age: TimeDelta::seconds(20),
    };

    fn gate(name: &str, verdict: Verdict, explanation: &str) -> GateResult {
        GateResult {
            name: name.into(),
            verdict,
            explanation: explanation.into(),
            evaluation: Evaluation {
                verdict,
                observed: None,
                samples: 0,
                min_samples: 0,
                threshold: None,
                reference: None,
                explanation: explanation.into(),
                judgement: None,
            },
        }
    }

    fn readiness(phase: &str, at: DateTime<Utc>, gates: Vec<GateResult>) -> Readiness {
        Readiness {
            phase: phase.into(),
            evaluated_at: at,
            gates,
            observed: Default::default(),
            unjudged_guardrails: Vec::new(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn bake_and_gates_block_until_they_hold() {
        let plan = Plan::parse("p", PLAN).unwrap();
        let prompts = plan.phases.first();
        let start = t("2026-01-01T00:00:00Z");
        let early = start + TimeDelta::hours(47);
        let late = start + TimeDelta::hours(48);
        let passing = |at| {
            readiness(
                "prompts",
                at,
                vec![
                    gate("faster", Verdict::Pass, ""),
                    gate("fewer-tokens", Verdict::Pass, ""),
                    gate("error-rate", Verdict::Pass, ""),
                ],
            )
        };
        let b = blockers(prompts, Some(start), early, Some(&passing(early)), FRESH);
        assert_eq!(b.len(), 1);
        assert!(
            b[0].contains("bake time runs until 2026-01-03T00:00:00Z (1h00m left)"),
            "{b:?}"
        );
        assert!(blockers(prompts, Some(start), late, Some(&passing(late)), FRESH).is_empty());

        let silent = readiness(
            "prompts",
            late,
            vec![
                gate(
                    "faster",
                    Verdict::InsufficientData,
                    "duration_avg: no data in the window",
                ),
                gate("fewer-tokens", Verdict::Pass, ""),
            ],
        );
        assert_eq!(
            blockers(prompts, Some(start), late, Some(&silent), FRESH),
            [
                "gate faster does not hold: duration_avg: no data in the window",
                "gate error-rate has not been evaluated yet",
            ]
        );
        assert_eq!(
            blockers(prompts, None, late, Some(&passing(late)), FRESH),
            ["its bake clock has not started"]
        );
        assert!(
            blockers(None, None, late, None, FRESH).is_empty(),
            "the baseline is never blocked"
        );
        // A phase without gates needs only its bake time.
        assert!(blockers(plan.phases.get(2), Some(start), late, None, FRESH).is_empty());
    }

    #[test]
    fn stale_or_foreign_readiness_never_allows_an_advance() {
        let plan = Plan::parse("p", PLAN).unwrap();
        let prompts = plan.phases.first();
        let start = t("2026-01-01T00:00:00Z");
        let now = start + TimeDelta::hours(49);
        let all_pass = |phase: &str, at| {
            readiness(
                phase,
                at,
                ["faster", "fewer-tokens", "error-rate"]
                    .map(|g| gate(g, Verdict::Pass, ""))
                    .to_vec(),
            )
        };
        // Exactly two intervals old: still fresh; older: stale.
        let at_limit = all_pass("prompts", now - TimeDelta::seconds(20));
        assert!(blockers(prompts, Some(start), now, Some(&at_limit), FRESH).is_empty());
        let stale = all_pass("prompts", now - TimeDelta::seconds(21));
        let b = blockers(prompts, Some(start), now, Some(&stale), FRESH);
        assert_eq!(b.len(), 1);
        assert!(b[0].contains("21s old"), "{b:?}");
        // Results recorded for the phase before never count for this one.
        let foreign = all_pass("baseline", now);
        let b = blockers(prompts, Some(start), now, Some(&foreign), FRESH);
        assert!(b[0].contains("not prompts"), "{b:?}");
        // Results from before a restart of a pre-upgrade row (no phase).
        let unnamed = all_pass("", now);
        assert_eq!(
            blockers(prompts, Some(start), now, Some(&unnamed), FRESH).len(),
            1
        );
    }

    #[test]
    fn a_bake_no_clock_can_hold_blocks_instead_of_panicking() {
        let mut plan = Plan::parse("p", PLAN).unwrap();
        plan.phases[2].bake = std::time::Duration::from_secs(u64::MAX);
        let b = blockers(
            plan.phases.get(2),
            Some(t("2026-01-01T00:00:00Z")),
            t("2026-01-02T00:00:00Z"),
            None,
            FRESH,
        );
        assert_eq!(b, ["its bake time ends beyond any date rollgate can hold"]);
        assert_eq!(
            bake_end(DateTime::<Utc>::MAX_UTC, std::time::Duration::from_secs(1)),
            None
        );
    }
}

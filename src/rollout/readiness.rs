//! Whether a phase may be promoted: its bake time has elapsed and every gate
//! holds (insufficient data is never a pass). Pure; the watcher records gate
//! results, the engine asks here before an advance.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::plan::Phase;

/// Why `phase` may not be promoted at `now` (empty = ready).
/// `readiness` is the watcher's latest record: `{"gates": [{"name", "verdict", "explanation"}]}`.
pub fn blockers(
    phase: Option<&Phase>,
    bake_started_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    readiness: Option<&Value>,
) -> Vec<String> {
    let Some(phase) = phase else {
        return Vec::new(); // the baseline: an operator starts the first phase
    };
    let mut out = Vec::new();
    let bake = chrono::Duration::from_std(phase.bake).unwrap_or(chrono::TimeDelta::MAX);
    match bake_started_at {
        None => out.push("its bake clock has not started".to_string()),
        Some(start) => {
            let ends = start + bake;
            if now < ends {
                let left = (ends - now).num_seconds();
                out.push(format!(
                    "its bake time runs until {} ({}h{:02}m left)",
                    ends.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    left / 3600,
                    (left % 3600) / 60
                ));
            }
        }
    }
    if !phase.gates.is_empty() {
        let results = readiness
            .and_then(|r| r.get("gates"))
            .and_then(Value::as_array);
        for gate in &phase.gates {
            let result = results.and_then(|rs| rs.iter().find(|g| g["name"] == gate.name.as_str()));
            match result {
                Some(g) if g["verdict"] == "pass" => {}
                Some(g) => out.push(format!(
                    "gate {} does not hold: {}",
                    gate.name,
                    g["explanation"].as_str().unwrap_or("no verdict")
                )),
                None => out.push(format!("gate {} has not been evaluated yet", gate.name)),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;
    use serde_json::json;

    const PLAN: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");

    #[test]
    fn bake_and_gates_block_until_they_hold() {
        let plan = Plan::parse("p", PLAN).unwrap();
        let prompts = plan.phases.first();
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let passing = json!({ "gates": [
            { "name": "faster", "verdict": "pass" },
            { "name": "fewer-tokens", "verdict": "pass" },
            { "name": "error-rate", "verdict": "pass" },
        ]});
        let early = start + chrono::Duration::hours(47);
        let late = start + chrono::Duration::hours(48);
        let b = blockers(prompts, Some(start), early, Some(&passing));
        assert_eq!(b.len(), 1);
        assert!(
            b[0].contains("bake time runs until 2026-01-03T00:00:00Z (1h00m left)"),
            "{b:?}"
        );
        assert!(blockers(prompts, Some(start), late, Some(&passing)).is_empty());

        let silent = json!({ "gates": [
            { "name": "faster", "verdict": "insufficient_data", "explanation": "duration_avg: no data in the window" },
            { "name": "fewer-tokens", "verdict": "pass" },
        ]});
        let b = blockers(prompts, Some(start), late, Some(&silent));
        assert_eq!(
            b,
            [
                "gate faster does not hold: duration_avg: no data in the window",
                "gate error-rate has not been evaluated yet",
            ]
        );
        assert_eq!(
            blockers(prompts, None, late, Some(&passing)),
            ["its bake clock has not started"]
        );
        assert!(
            blockers(None, None, late, None).is_empty(),
            "the baseline is never blocked"
        );
        // A phase without gates needs only its bake time.
        assert!(blockers(plan.phases.get(2), Some(start), late, None).is_empty());
    }
}

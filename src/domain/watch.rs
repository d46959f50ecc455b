//! What the watcher measures and remembers, as types: a rollout's baseline,
//! its current phase's readiness, finished phases' statistics, and the
//! watcher's memory of a rollout (persisted as one record, so a restart
//! resumes all of it).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::metrics::eval::{Evaluation, Verdict};

/// One metric over a window: its value (none without data) and the samples
/// behind it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricValue {
    pub value: Option<f64>,
    pub samples: u64,
}

/// The metrics of the look-back window before a rollout started, by label
/// (`error_rate`, `duration_p99`, a custom metric's name, …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Baseline(pub BTreeMap<String, MetricValue>);

impl Baseline {
    pub fn value(&self, label: &str) -> Option<f64> {
        self.0.get(label).and_then(|m| m.value)
    }

    /// Every metric came back with a value: nothing to re-read.
    pub fn is_complete(&self) -> bool {
        self.0.values().all(|m| m.value.is_some())
    }
}

/// One gate's latest verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GateResult {
    pub name: String,
    #[schema(value_type = String)]
    pub verdict: Verdict,
    pub explanation: String,
    #[schema(value_type = Object)]
    pub evaluation: Evaluation,
}

/// The watcher's latest evaluation of a rollout's current phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// The phase evaluated; results for another phase never count.
    #[serde(default)]
    pub phase: String,
    pub evaluated_at: DateTime<Utc>,
    pub gates: Vec<GateResult>,
    /// Every guardrail and gate metric of the phase, by label: what becomes
    /// the phase's statistics (the next phase's `previous_phase`) when it is
    /// left by an advance.
    pub observed: BTreeMap<String, Option<f64>>,
    /// Metric guardrails that have not judged a complete period of this
    /// phase yet: a phase is never promoted before its guardrails looked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unjudged_guardrails: Vec<String>,
}

impl Readiness {
    pub fn gate(&self, name: &str) -> Option<&GateResult> {
        self.gates.iter().find(|g| g.name == name)
    }

    /// The same verdicts as `other` (ignoring times and numbers).
    pub fn same_verdicts(&self, other: &Readiness) -> bool {
        self.phase == other.phase
            && self.unjudged_guardrails == other.unjudged_guardrails
            && self.gates.len() == other.gates.len()
            && self
                .gates
                .iter()
                .zip(&other.gates)
                .all(|(a, b)| a.name == b.name && a.verdict == b.verdict)
    }
}

/// Metrics of finished phases: phase name → label → value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct PhaseStats(pub BTreeMap<String, BTreeMap<String, f64>>);

impl PhaseStats {
    pub fn value(&self, phase: &str, label: &str) -> Option<f64> {
        self.0.get(phase).and_then(|m| m.get(label)).copied()
    }

    /// Records what was observed in `phase` (values without data left out).
    pub fn record(&mut self, phase: &str, observed: &BTreeMap<String, Option<f64>>) {
        let values: BTreeMap<String, f64> = observed
            .iter()
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v)))
            .collect();
        if !values.is_empty() {
            self.0.insert(phase.to_string(), values);
        }
    }
}

/// What a metric point measured: a guardrail or a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    Guardrail,
    Gate,
}

impl PointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Guardrail => "guardrail",
            PointKind::Gate => "gate",
        }
    }

    pub fn parse(s: &str) -> Option<PointKind> {
        match s {
            "guardrail" => Some(PointKind::Guardrail),
            "gate" => Some(PointKind::Gate),
            _ => None,
        }
    }
}

/// One evaluation the watcher made, kept for the dashboard's charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub kind: PointKind,
    /// The guardrail's or gate's name.
    pub name: String,
    /// The metric (`error_rate`, `duration_p99`, a custom metric's name).
    pub label: String,
    pub at: DateTime<Utc>,
    /// The period the value covers, in seconds, ending at `at` (the
    /// guardrail's or gate's window; none for an alarm's state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    pub value: Option<f64>,
    pub samples: u64,
    pub verdict: Verdict,
    pub threshold: Option<f64>,
    pub reference: Option<f64>,
}

impl MetricPoint {
    pub fn of(
        kind: PointKind,
        name: &str,
        label: &str,
        at: DateTime<Utc>,
        window_secs: Option<u64>,
        e: &Evaluation,
    ) -> Self {
        MetricPoint {
            kind,
            name: name.to_string(),
            label: label.to_string(),
            at,
            window_secs,
            value: e.observed,
            samples: e.samples,
            verdict: e.verdict,
            threshold: e.threshold,
            reference: e.reference,
        }
    }
}

/// Everything the watcher remembers about a rollout between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchMemory {
    /// Consecutive breaching evaluations per guardrail (non-zero only).
    pub streaks: BTreeMap<String, u32>,
    /// Since when each guardrail has had insufficient data.
    pub silent_since: BTreeMap<String, DateTime<Utc>>,
    /// The function's code hash last seen: a change restarts the bake clock,
    /// even when it happened while rollgate was down.
    pub code_sha256: Option<String>,
    /// The phase already announced as ready for approval.
    pub ready_announced: Option<String>,
    /// The plan-snapshot error already reported (reported once).
    pub plan_error: Option<String>,
    /// When to read an incomplete baseline again, and how often it was.
    pub baseline_retry_at: Option<DateTime<Utc>>,
    pub baseline_attempts: u32,
    /// When its gates' evaluations were last kept for the charts (once a
    /// minute; guardrails keep one per period they judge).
    pub points_at: Option<DateTime<Utc>>,
    /// The `live_since` of the phase the streaks and periods below belong
    /// to: when the live flags change, they start over.
    pub live_since: Option<DateTime<Utc>>,
    /// The end of the last period each metric guardrail judged: every
    /// period is judged once.
    pub judged_until: BTreeMap<String, DateTime<Utc>>,
    /// The live flags (by when they took effect) whose `judge.max_wait`
    /// already paused or rolled back: once per position, so an operator
    /// who resumes is not paused again.
    pub max_wait_acted: Option<DateTime<Utc>>,
}

impl WatchMemory {
    pub fn streak(&self, guardrail: &str) -> u32 {
        self.streaks.get(guardrail).copied().unwrap_or(0)
    }

    pub fn set_streak(&mut self, guardrail: &str, n: u32) {
        if n == 0 {
            self.streaks.remove(guardrail);
        } else {
            self.streaks.insert(guardrail.to_string(), n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trips_and_reads_old_documents() {
        let mut m = WatchMemory::default();
        m.set_streak("error-rate", 2);
        m.code_sha256 = Some("abc".into());
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<WatchMemory>(&text).unwrap(), m);
        // A record written before a field existed still loads.
        let old: WatchMemory = serde_json::from_str(r#"{"streaks":{"p99":1}}"#).unwrap();
        assert_eq!(old.streak("p99"), 1);
        m.set_streak("error-rate", 0);
        assert!(m.streaks.is_empty());
    }

    #[test]
    fn readiness_of_old_rows_belongs_to_no_phase() {
        let r: Readiness = serde_json::from_str(
            r#"{"evaluated_at":"2026-01-01T00:00:00Z","gates":[],"observed":{"error_rate":null,"duration_avg":12.5}}"#,
        )
        .unwrap();
        assert_eq!(r.phase, "");
        let mut stats = PhaseStats::default();
        stats.record("prompts", &r.observed);
        assert_eq!(stats.value("prompts", "duration_avg"), Some(12.5));
        assert_eq!(stats.value("prompts", "error_rate"), None);
    }

    #[test]
    fn baselines_know_when_they_are_incomplete() {
        let mut b = Baseline::default();
        b.0.insert(
            "error_rate".into(),
            MetricValue {
                value: Some(1.0),
                samples: 10,
            },
        );
        assert!(b.is_complete());
        b.0.insert(
            "tokens".into(),
            MetricValue {
                value: None,
                samples: 0,
            },
        );
        assert!(!b.is_complete());
        assert_eq!(b.value("error_rate"), Some(1.0));
    }
}

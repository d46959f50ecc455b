//! Rollouts: the pure state machine (`state`), the stored rollout record, and
//! the engine that records intent, writes flags and records the outcome.

pub mod engine;
pub mod readiness;
pub mod state;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::plan::Flags;
pub use state::{Command, Position, State, Transition, decide};

/// One run of a plan, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub id: i64,
    pub plan_name: String,
    /// sha256 of `plan_text`.
    pub plan_hash: String,
    /// The plan as it was when the rollout started; later edits of the file
    /// never change a running rollout.
    pub plan_text: String,
    pub target_function: String,
    pub state: State,
    /// 0 = baseline, 1.. = the plan's phases.
    pub phase_index: usize,
    pub phase_name: String,
    /// What the owned flags should be now.
    pub desired_flags: Flags,
    /// The owned flags as last read from the function.
    pub observed_flags: Option<Flags>,
    pub observed_at: Option<DateTime<Utc>>,
    /// Bumped on every change of `desired_flags`.
    pub generation: i64,
    /// The generation last confirmed written and read back.
    pub applied_generation: i64,
    /// The recorded intent of a write not yet confirmed.
    pub pending_write: Option<PendingWrite>,
    pub last_error: Option<String>,
    /// Optimistic-concurrency version, bumped on every change.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Baseline metrics recorded by the watcher: label → value and samples.
    pub baseline: Option<serde_json::Value>,
    pub baseline_at: Option<DateTime<Utc>>,
    /// When the current phase's bake time started (phase entry, or the last
    /// event that restarted it).
    pub bake_started_at: Option<DateTime<Utc>>,
    /// The watcher's latest gate results for the current phase.
    pub readiness: Option<serde_json::Value>,
    /// Metrics of finished phases, by phase name: the `previous_phase` reference.
    pub phase_stats: Option<serde_json::Value>,
    /// The watcher's consecutive-breach counts per guardrail.
    pub streaks: Option<serde_json::Value>,
}

impl Rollout {
    pub fn position(&self, phase_count: usize) -> Position {
        Position {
            state: self.state,
            phase: self.phase_index,
            phase_count,
            write_pending: self.applied_generation < self.generation,
        }
    }

    /// A rollout holds its function (no other may start) until it is terminal.
    pub fn holds_function(&self) -> bool {
        !self.state.is_terminal()
    }
}

/// The intent of a flag write, recorded before the write is made so a
/// restart can finish it, or undo the command if the target refuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingWrite {
    pub generation: i64,
    /// The command that asked for the write (start, advance, rollback, …).
    pub command: String,
    pub actor: String,
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// Where the rollout stood before the command, to return to if the
    /// target refuses the write.
    pub previous_state: State,
    pub previous_phase: usize,
    pub previous_phase_name: String,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub previous_flags: Flags,
}

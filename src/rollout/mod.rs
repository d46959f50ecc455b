//! Rollouts as pure code: the stored rollout record, the state machine
//! (`state`), whether a phase may be promoted (`readiness`), and what a
//! flag write's result does to a rollout (`write`). The service persists
//! and carries out what these decide.

pub mod health;
pub mod readiness;
pub mod state;
pub mod write;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{Baseline, PhaseStats, Readiness, RolloutId};
use crate::plan::{Flags, Plan, RollbackTarget};
pub use state::{Command, Position, Refusal, State, Transition, decide};

/// A phase's name and the complete owned flags it sets (index 0: baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseFlags {
    pub name: String,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub flags: Flags,
    /// A canary step: the percentage of the alias's invocations these
    /// flags serve (the rest run the `stable` position's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<u32>,
    /// The last position with all traffic before this one's phase: what
    /// serves the rest during a canary step and what `previous` returns to.
    #[serde(default)]
    pub stable: Option<usize>,
}

/// What a `lambda-alias` rollout's alias points at, as last confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AliasRouting {
    /// The version serving all traffic but the canary's share.
    pub stable_version: String,
    /// The version with the canary flags, and its share in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<u32>,
    /// The version that served each position so far (position index →
    /// version): a rollback to one of them is one `UpdateAlias`, without
    /// reading or publishing anything.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub positions: BTreeMap<usize, String>,
}

impl AliasRouting {
    /// The split in words: "10 % to version 2 (canary), 90 % to version 1
    /// (stable)", or "100 % to version 1".
    pub fn split_words(&self) -> String {
        match (&self.canary_version, self.canary_weight) {
            (Some(canary), Some(w)) => format!(
                "{w} % to version {canary} (canary), {} % to version {} (stable)",
                100u32.saturating_sub(w),
                self.stable_version
            ),
            _ => format!("100 % to version {}", self.stable_version),
        }
    }

    /// The same versions and weights (what `positions` remembers aside).
    pub fn same_split(&self, other: &AliasRouting) -> bool {
        self.stable_version == other.stable_version
            && self.canary_version == other.canary_version
            && self.canary_weight == other.canary_weight
    }
}

/// What the backend should make the target look like for one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired<'a> {
    /// `lambda-env`: the flags. `lambda-alias`: the stable flags, all
    /// traffic but the canary's.
    pub flags: &'a Flags,
    /// `lambda-alias` canary step: the canary's flags and percentage.
    pub canary: Option<(&'a Flags, u32)>,
}

/// Every phase's flags of `plan`, baseline first: kept with the rollout so
/// it can be rolled back even if its plan snapshot stops parsing.
pub fn phase_flags(plan: &Plan) -> Vec<PhaseFlags> {
    (0..plan.phase_count())
        .map(|i| {
            let phase = i.checked_sub(1).and_then(|p| plan.phases.get(p));
            PhaseFlags {
                name: plan.phase_name(i).to_string(),
                flags: plan.flags_at(i).clone(),
                traffic: phase.and_then(|p| p.traffic),
                stable: phase.map(|p| p.stable),
            }
        })
        .collect()
}

/// One run of a plan, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    pub id: RolloutId,
    pub plan_name: String,
    /// sha256 of `plan_text`.
    pub plan_hash: String,
    /// The plan as it was when the rollout started; later edits of the file
    /// never change a running rollout.
    pub plan_text: String,
    /// The function as the plan names it (name, ARN or partial ARN).
    pub target_function: String,
    /// The function's unqualified ARN, as Lambda resolved it: the identity a
    /// rollout holds, so two spellings of one function are one function.
    pub function_arn: String,
    /// The function's name (CloudWatch's `FunctionName` dimension).
    pub function_name: String,
    /// Every phase's flags, baseline first (from the plan at the start).
    pub phases: Vec<PhaseFlags>,
    /// The plan's rollback target.
    pub rollback_to: RollbackTarget,
    /// The plan's `target.region`, if it names one.
    pub region: Option<String>,
    /// The plan's webhooks (never shown; they carry tokens).
    pub webhooks: Vec<String>,
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
    /// Optimistic-concurrency version, bumped on every command.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Baseline metrics recorded by the watcher.
    pub baseline: Option<Baseline>,
    pub baseline_at: Option<DateTime<Utc>>,
    /// When the current phase's bake time started (phase entry, or the last
    /// event that restarted it).
    pub bake_started_at: Option<DateTime<Utc>>,
    /// The watcher's latest evaluation of the current phase.
    pub readiness: Option<Readiness>,
    /// Metrics of finished phases: the `previous_phase` reference.
    pub phase_stats: PhaseStats,
    /// Why the function cannot be read whole right now (e.g. KMS), as the
    /// watcher last saw it; `None` when it reads fine.
    pub function_error: Option<String>,
    /// When the live phase's flags took effect (their write was confirmed):
    /// the watcher judges a phase only on data from then on.
    pub live_since: Option<DateTime<Utc>>,
    /// `lambda-alias`: the alias callers invoke; `None` for `lambda-env`.
    pub alias: Option<String>,
    /// `lambda-alias`: the routing the last confirmed write left.
    pub routing: Option<AliasRouting>,
    /// `appconfig`: the feature-flag profile the flags live in (the
    /// function is then only watched); `None` for the Lambda backends.
    pub appconfig: Option<crate::plan::AppConfigTarget>,
    /// `appconfig`: the deployment of the newest write, as last seen.
    pub delivery: Option<crate::backend::Delivery>,
}

impl Rollout {
    /// The canary percentage of position `index`, if it is a canary step.
    pub fn traffic_at(&self, index: usize) -> Option<u32> {
        self.phases.get(index).and_then(|p| p.traffic)
    }

    /// The position whose flags serve all traffic but a canary step's, and
    /// that a `previous` rollback from `index` returns to.
    pub fn stable_of(&self, index: usize) -> usize {
        self.phases
            .get(index)
            .and_then(|p| p.stable)
            .unwrap_or(index.saturating_sub(1))
    }

    /// Versions known to hold positions' flags (published or recorded by
    /// this rollout), for the alias backend to use without a read.
    pub fn version_hints(&self) -> Vec<(Flags, String)> {
        self.routing
            .iter()
            .flat_map(|r| &r.positions)
            .filter(|(i, _)| **i < self.phases.len())
            .map(|(i, v)| (self.flags_at(*i).clone(), v.clone()))
            .collect()
    }

    /// The routing a confirmed write left, with the versions of the
    /// positions it served recorded.
    pub fn routing_after(&self, written: &AliasRouting) -> AliasRouting {
        let mut next = written.clone();
        next.positions = self
            .routing
            .as_ref()
            .map(|r| r.positions.clone())
            .unwrap_or_default();
        next.positions.extend(written.positions.clone());
        match (&written.canary_version, self.traffic_at(self.phase_index)) {
            (Some(canary), Some(_)) => {
                next.positions.insert(self.phase_index, canary.clone());
                next.positions.insert(
                    self.stable_of(self.phase_index),
                    written.stable_version.clone(),
                );
            }
            _ => {
                next.positions
                    .insert(self.phase_index, written.stable_version.clone());
            }
        }
        next
    }

    /// What the target should look like now.
    pub fn desired(&self) -> Desired<'_> {
        match (&self.alias, self.traffic_at(self.phase_index)) {
            (Some(_), Some(weight)) => Desired {
                flags: self.flags_at(self.stable_of(self.phase_index)),
                canary: Some((&self.desired_flags, weight)),
            },
            _ => Desired {
                flags: &self.desired_flags,
                canary: None,
            },
        }
    }

    pub fn phase_count(&self) -> usize {
        self.phases.len().max(1)
    }

    pub fn position(&self) -> Position {
        Position {
            state: self.state,
            phase: self.phase_index,
            phase_count: self.phase_count(),
            write_pending: self.write_pending(),
            previous: self.stable_of(self.phase_index),
        }
    }

    /// Since when the flags now on the function have been there, as far
    /// as rollgate knows (older rows: the bake start, else the start).
    pub fn live_since(&self) -> DateTime<Utc> {
        self.live_since
            .or(self.bake_started_at)
            .unwrap_or(self.created_at)
    }

    pub fn write_pending(&self) -> bool {
        self.applied_generation < self.generation
    }

    /// A rollout holds its function (no other may start on it) until it is
    /// terminal and its last write is confirmed or given up: a rollback
    /// still being written keeps the function.
    pub fn holds_function(&self) -> bool {
        !self.state.is_terminal() || self.write_pending()
    }

    /// The region writes go to: the one in the function's ARN, else the
    /// plan's (else the default).
    pub fn write_region(&self) -> Option<String> {
        let parts: Vec<&str> = self.function_arn.split(':').collect();
        match parts.as_slice() {
            ["arn", _, "lambda", region, ..] if !region.is_empty() => Some(region.to_string()),
            _ => self.region.clone(),
        }
    }

    /// The name of phase `index`.
    pub fn phase_name_at(&self, index: usize) -> &str {
        self.phases.get(index).map_or("?", |p| p.name.as_str())
    }

    /// The owned flags of phase `index` (the baseline's when out of range).
    pub fn flags_at(&self, index: usize) -> &Flags {
        self.phases
            .get(index)
            .or_else(|| self.phases.first())
            .map_or(&self.desired_flags, |p| &p.flags)
    }

    /// Whether the function is known to have variables: after a confirmed
    /// write it has rollgate's at least, and a start records whether it had
    /// any. An answer without an environment is then a failed read.
    pub fn expects_variables(&self) -> bool {
        self.applied_generation > 0
            || self.observed_flags.as_ref().is_some_and(|f| !f.is_empty())
            || self
                .pending_write
                .as_ref()
                .is_some_and(|w| w.expect_variables)
    }

    /// A rollback write is recorded and not yet confirmed.
    pub fn rollback_pending(&self) -> bool {
        self.write_pending()
            && self
                .pending_write
                .as_ref()
                .is_some_and(|w| w.command == WriteCause::Rollback)
    }

    /// The plan snapshot, parsed (an error when it no longer parses).
    pub fn plan(&self) -> Result<Plan, String> {
        Plan::parse(&self.plan_name, &self.plan_text).map_err(|errors| {
            format!(
                "the plan snapshot of rollout {} no longer parses: {}",
                self.id,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
    }
}

/// What asked for a flag write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WriteCause {
    Start,
    Advance,
    Rollback,
    /// The watcher writing the desired flags back after drift.
    DriftRevert,
}

impl WriteCause {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteCause::Start => "start",
            WriteCause::Advance => "advance",
            WriteCause::Rollback => "rollback",
            WriteCause::DriftRevert => "drift_revert",
        }
    }

    /// The cause of a command's write (only advance and rollback write).
    pub fn of(command: Command) -> Option<WriteCause> {
        match command {
            Command::Advance => Some(WriteCause::Advance),
            Command::Rollback { .. } => Some(WriteCause::Rollback),
            Command::Pause | Command::Resume | Command::Abandon => None,
        }
    }
}

/// The intent of a flag write, recorded before the write is made so a
/// restart can finish it, or undo the command if the target refuses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingWrite {
    pub generation: i64,
    /// What asked for the write.
    pub command: WriteCause,
    pub actor: String,
    pub reason: Option<String>,
    pub recorded_at: DateTime<Utc>,
    /// The state the command moved the rollout to (a rollback that was
    /// refused for a while returns to it once its write lands).
    #[serde(default)]
    pub target_state: Option<State>,
    /// The function had variables when this was recorded: an answer
    /// without any is then a failed read, never an empty environment.
    #[serde(default)]
    pub expect_variables: bool,
    /// Where the rollout stood before the command, to return to if the
    /// target refuses the write.
    pub previous_state: State,
    pub previous_phase: usize,
    pub previous_phase_name: String,
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub previous_flags: Flags,
}

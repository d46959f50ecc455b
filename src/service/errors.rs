//! What the service answers when it does not do what was asked.

use crate::domain::{InputError, RolloutId};
use crate::rollout::{self, Rollout};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    /// Malformed input: nothing was changed.
    #[error("{0}")]
    BadInput(String),
    /// Not allowed now (state, version, readiness, a busy function).
    #[error("{0}")]
    Refused(Refusal),
    /// Well-formed, but AWS refuses it (an invalid environment, access).
    #[error("{0}")]
    Unprocessable(String),
    #[error("plan {plan} is invalid")]
    PlanInvalid { plan: String, errors: Vec<String> },
    /// AWS could not be reached or kept failing; nothing was changed.
    #[error("{0}")]
    Unavailable(String),
    /// The caller may not do this (e.g. approve their own request).
    #[error("{0}")]
    Forbidden(String),
    /// A start's preflight failed; nothing was recorded.
    #[error("{}", preflight_refusal(.0))]
    PreflightFailed(Box<crate::preflight::Report>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn preflight_refusal(report: &crate::preflight::Report) -> String {
    format!(
        "plan {}'s preflight failed: {}; fix them, or force the start with a reason",
        report.plan,
        report
            .failures()
            .iter()
            .map(|c| c.line())
            .collect::<Vec<_>>()
            .join("; ")
    )
}

impl From<InputError> for ServiceError {
    fn from(e: InputError) -> Self {
        ServiceError::BadInput(e.0)
    }
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::Refused(r)
    }
}

/// Why a command is refused (HTTP 409).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The state machine says no.
    Transition {
        id: RolloutId,
        command: &'static str,
        why: rollout::Refusal,
    },
    VersionMismatch {
        id: RolloutId,
        expected: i64,
        actual: i64,
    },
    /// Bake time or gates do not allow an advance yet.
    NotReady {
        id: RolloutId,
        phase: String,
        blockers: Vec<String>,
    },
    /// Entering a protected phase needs a second operator's approval.
    NeedsApproval { id: RolloutId, phase: String },
    /// Another command changed the rollout between read and save.
    Concurrent {
        id: RolloutId,
        command: &'static str,
        version: i64,
    },
    /// The function is held, or the rollout cannot do this at all.
    Busy(String),
}

impl Refusal {
    pub fn function_busy(function: &str, holder: &Rollout) -> Refusal {
        let pending = if holder.state.is_terminal() && holder.write_pending() {
            " whose last flag write is still being made"
        } else {
            ""
        };
        Refusal::Busy(format!(
            "function {function} already has an active rollout: #{} of plan {} ({}, phase {}){pending}; complete, roll back or abandon it first",
            holder.id,
            holder.plan_name,
            holder.state.as_str(),
            holder.phase_name
        ))
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Transition { id, command, why } => {
                write!(f, "cannot {command} rollout {id}: {why}")
            }
            Refusal::VersionMismatch {
                id,
                expected,
                actual,
            } => write!(
                f,
                "rollout {id} is at version {actual}, not the expected version {expected}; reload it and retry"
            ),
            Refusal::NotReady {
                id,
                phase,
                blockers,
            } => write!(
                f,
                "phase {phase} of rollout {id} is not ready to advance: {}; an operator may override with force and a reason",
                blockers.join("; ")
            ),
            Refusal::NeedsApproval { id, phase } => write!(
                f,
                "phase {phase} is protected: advancing rollout {id} into it needs a second operator's approval; request one (the dashboard's advance, or POST /api/v1/rollouts/{id}/approvals) and have another operator approve it"
            ),
            Refusal::Concurrent {
                id,
                command,
                version,
            } => write!(
                f,
                "cannot {command} rollout {id}: it was changed concurrently (version {version}); reload it and retry"
            ),
            Refusal::Busy(m) => f.write_str(m),
        }
    }
}

//! The rollout state machine as pure code: (state, command) → transition or a
//! refusal that says why. The engine persists and executes what this decides.

use serde::{Deserialize, Serialize};

use crate::plan::RollbackTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Created; the baseline flags are being written.
    Pending,
    /// In phase N, flags applied.
    Active,
    /// Frozen in its phase by an operator (or a `previous` rollback).
    Paused,
    /// Advanced past its last phase; the flags stay.
    Completed,
    /// Returned to baseline; the rollout is over.
    RolledBack,
    /// A write could not be made; only a rollback is possible.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Paused => "paused",
            State::Completed => "completed",
            State::RolledBack => "rolled_back",
            State::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [
            State::Pending,
            State::Active,
            State::Paused,
            State::Completed,
            State::RolledBack,
            State::Failed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Terminal rollouts accept no command and no longer hold their function.
    pub fn is_terminal(self) -> bool {
        matches!(self, State::Completed | State::RolledBack)
    }
}

/// What an operator (or, later, the watcher) asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    Advance,
    Pause,
    Resume,
    /// `to` overrides the plan's rollback target.
    Rollback {
        to: Option<RollbackTarget>,
    },
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Advance => "advance",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Rollback { .. } => "rollback",
        }
    }
}

/// Where a rollout stands, as far as the state machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub state: State,
    /// 0 = baseline, 1.. = the plan's phases.
    pub phase: usize,
    /// Phases including the baseline.
    pub phase_count: usize,
    /// A flag write has been recorded but not yet confirmed.
    pub write_pending: bool,
}

/// The new position, and whether the flags must be written for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub state: State,
    pub phase: usize,
    pub write_flags: bool,
}

/// Decides what `command` does at `pos`, given the plan's rollback target.
/// Rollback is accepted from every non-terminal state, even while another
/// write is pending: rollback always wins (design rule 4).
pub fn decide(
    pos: Position,
    command: Command,
    plan_rollback: RollbackTarget,
) -> Result<Transition, String> {
    use State::*;
    if pos.state.is_terminal() {
        return Err(format!(
            "the rollout is {}; it accepts no more commands (start a new rollout instead)",
            pos.state.as_str().replace('_', " ")
        ));
    }
    match command {
        Command::Rollback { to } => {
            let target = to.unwrap_or(plan_rollback);
            if target == RollbackTarget::Previous && pos.phase > 1 {
                Ok(Transition {
                    state: Paused,
                    phase: pos.phase - 1,
                    write_flags: true,
                })
            } else {
                Ok(Transition {
                    state: RolledBack,
                    phase: 0,
                    write_flags: true,
                })
            }
        }
        _ if pos.write_pending => Err(format!(
            "a flag write for this rollout is still in progress; {} it once the write is confirmed (rollback is always allowed)",
            command.name()
        )),
        Command::Advance => match pos.state {
            Active if pos.phase + 1 < pos.phase_count => Ok(Transition {
                state: Active,
                phase: pos.phase + 1,
                write_flags: true,
            }),
            Active => Ok(Transition {
                state: Completed,
                phase: pos.phase,
                write_flags: false,
            }),
            Paused => Err("the rollout is paused; resume it before advancing".into()),
            Pending => Err("the rollout is still starting; advance once it is active".into()),
            Failed => Err("the rollout failed; only a rollback is possible".into()),
            Completed | RolledBack => unreachable!("terminal states return early"),
        },
        Command::Pause => match pos.state {
            Active => Ok(Transition {
                state: Paused,
                phase: pos.phase,
                write_flags: false,
            }),
            Paused => Err("the rollout is already paused".into()),
            other => Err(format!(
                "only an active rollout can be paused; this one is {}",
                other.as_str()
            )),
        },
        Command::Resume => match pos.state {
            Paused => Ok(Transition {
                state: Active,
                phase: pos.phase,
                write_flags: false,
            }),
            other => Err(format!(
                "only a paused rollout can be resumed; this one is {}",
                other.as_str()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RollbackTarget::*;
    use State::*;

    fn at(state: State, phase: usize) -> Position {
        Position {
            state,
            phase,
            phase_count: 4,
            write_pending: false,
        }
    }

    fn ok(state: State, phase: usize, write_flags: bool) -> Result<Transition, String> {
        Ok(Transition {
            state,
            phase,
            write_flags,
        })
    }

    #[test]
    fn advance_walks_the_phases_then_completes() {
        assert_eq!(
            decide(at(Active, 0), Command::Advance, Baseline),
            ok(Active, 1, true)
        );
        assert_eq!(
            decide(at(Active, 2), Command::Advance, Baseline),
            ok(Active, 3, true)
        );
        assert_eq!(
            decide(at(Active, 3), Command::Advance, Baseline),
            ok(Completed, 3, false)
        );
    }

    #[test]
    fn illegal_commands_are_refused_with_a_reason() {
        for (pos, cmd, why) in [
            (at(Completed, 3), Command::Advance, "completed"),
            (
                at(RolledBack, 0),
                Command::Rollback { to: None },
                "rolled back",
            ),
            (at(Paused, 1), Command::Advance, "paused"),
            (at(Paused, 1), Command::Pause, "already paused"),
            (at(Active, 1), Command::Resume, "only a paused"),
            (at(Failed, 1), Command::Advance, "only a rollback"),
            (at(Pending, 0), Command::Advance, "still starting"),
        ] {
            let err = decide(pos, cmd, Baseline).unwrap_err();
            assert!(err.contains(why), "{cmd:?} at {pos:?}: {err}");
        }
    }

    #[test]
    fn rollback_targets() {
        assert_eq!(
            decide(at(Active, 2), Command::Rollback { to: None }, Baseline),
            ok(RolledBack, 0, true)
        );
        assert_eq!(
            decide(at(Active, 2), Command::Rollback { to: None }, Previous),
            ok(Paused, 1, true)
        );
        // From the first phase, "previous" is the baseline: the rollout ends.
        assert_eq!(
            decide(at(Active, 1), Command::Rollback { to: None }, Previous),
            ok(RolledBack, 0, true)
        );
        assert_eq!(
            decide(
                at(Paused, 3),
                Command::Rollback { to: Some(Baseline) },
                Previous
            ),
            ok(RolledBack, 0, true)
        );
        assert_eq!(
            decide(at(Failed, 2), Command::Rollback { to: None }, Baseline),
            ok(RolledBack, 0, true)
        );
    }

    #[test]
    fn rollback_wins_over_a_pending_write_but_advance_waits() {
        let pending = Position {
            write_pending: true,
            ..at(Active, 1)
        };
        assert!(
            decide(pending, Command::Advance, Baseline)
                .unwrap_err()
                .contains("in progress")
        );
        assert_eq!(
            decide(pending, Command::Rollback { to: None }, Baseline),
            ok(RolledBack, 0, true)
        );
    }

    #[test]
    fn pause_and_resume() {
        assert_eq!(
            decide(at(Active, 1), Command::Pause, Baseline),
            ok(Paused, 1, false)
        );
        assert_eq!(
            decide(at(Paused, 1), Command::Resume, Baseline),
            ok(Active, 1, false)
        );
    }
}

//! The rollout state machine as pure code: (position, command) → transition,
//! or a typed refusal that says why. The service persists and executes what
//! this decides.

use serde::{Deserialize, Serialize};

use crate::plan::RollbackTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// A write could not be made: the start's, or a rollback's (which is
    /// retried until it lands). Only rollback and abandon are possible.
    Failed,
    /// Ended by an operator without writing anything; the flags stay as
    /// they were.
    Abandoned,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Pending,
        State::Active,
        State::Paused,
        State::Completed,
        State::RolledBack,
        State::Failed,
        State::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Paused => "paused",
            State::Completed => "completed",
            State::RolledBack => "rolled_back",
            State::Failed => "failed",
            State::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal rollouts accept no command.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Completed | State::RolledBack | State::Abandoned
        )
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str().replace('_', " "))
    }
}

/// What an operator (or the watcher) asks of a rollout.
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
    /// End the rollout without writing anything; frees the function.
    Abandon,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Advance => "advance",
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Rollback { .. } => "rollback",
            Command::Abandon => "abandon",
        }
    }

    pub fn is_rollback(self) -> bool {
        matches!(self, Command::Rollback { .. })
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
    /// Where a `previous` rollback returns to: the last position with all
    /// traffic before this phase (the phase before, without canary steps).
    pub previous: usize,
}

/// The new position, whether the flags must be written for it, and whether
/// a pending write is given up (abandon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub state: State,
    pub phase: usize,
    pub write_flags: bool,
    pub cancel_write: bool,
}

/// Why the state machine refuses a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Terminal(State),
    WritePending(&'static str),
    Paused,
    Starting,
    Failed,
    AlreadyPaused,
    NotActive(State),
    NotPaused(State),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Terminal(s) => write!(
                f,
                "the rollout is {s}; it accepts no more commands (start a new rollout instead)"
            ),
            Refusal::WritePending(command) => write!(
                f,
                "a flag write for this rollout is still in progress; {command} it once the write is confirmed (rollback and abandon are always allowed)"
            ),
            Refusal::Paused => f.write_str("the rollout is paused; resume it before advancing"),
            Refusal::Starting => {
                f.write_str("the rollout is still starting; advance once it is active")
            }
            Refusal::Failed => {
                f.write_str("the rollout failed; only a rollback or abandon is possible")
            }
            Refusal::AlreadyPaused => f.write_str("the rollout is already paused"),
            Refusal::NotActive(s) => {
                write!(f, "only an active rollout can be paused; this one is {s}")
            }
            Refusal::NotPaused(s) => {
                write!(f, "only a paused rollout can be resumed; this one is {s}")
            }
        }
    }
}

/// Decides what `command` does at `pos`, given the plan's rollback target.
/// Rollback and abandon are accepted from every non-terminal state, even
/// while another write is pending: rollback always wins (design rule 4).
pub fn decide(
    pos: Position,
    command: Command,
    plan_rollback: RollbackTarget,
) -> Result<Transition, Refusal> {
    use State::*;
    // A terminal rollout whose last write never landed (a rollback AWS
    // keeps refusing) can still be abandoned: that frees its function.
    let abandoning_a_write = command == Command::Abandon && pos.write_pending;
    if pos.state.is_terminal() && !abandoning_a_write {
        return Err(Refusal::Terminal(pos.state));
    }
    let to = |state, phase, write_flags| Transition {
        state,
        phase,
        write_flags,
        cancel_write: false,
    };
    match command {
        Command::Rollback { to: target } => {
            let target = target.unwrap_or(plan_rollback);
            if target == RollbackTarget::Previous && pos.previous > 0 && pos.previous < pos.phase {
                Ok(to(Paused, pos.previous, true))
            } else {
                Ok(to(RolledBack, 0, true))
            }
        }
        Command::Abandon => Ok(Transition {
            cancel_write: true,
            ..to(Abandoned, pos.phase, false)
        }),
        _ if pos.write_pending => Err(Refusal::WritePending(command.name())),
        Command::Advance => match pos.state {
            Active if pos.phase + 1 < pos.phase_count => Ok(to(Active, pos.phase + 1, true)),
            Active => Ok(to(Completed, pos.phase, false)),
            Paused => Err(Refusal::Paused),
            Pending => Err(Refusal::Starting),
            Failed => Err(Refusal::Failed),
            Completed | RolledBack | Abandoned => Err(Refusal::Terminal(pos.state)),
        },
        Command::Pause => match pos.state {
            Active => Ok(to(Paused, pos.phase, false)),
            Paused => Err(Refusal::AlreadyPaused),
            other => Err(Refusal::NotActive(other)),
        },
        Command::Resume => match pos.state {
            Paused => Ok(to(Active, pos.phase, false)),
            other => Err(Refusal::NotPaused(other)),
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
            previous: phase.saturating_sub(1),
        }
    }

    fn ok(state: State, phase: usize, write_flags: bool) -> Result<Transition, Refusal> {
        Ok(Transition {
            state,
            phase,
            write_flags,
            cancel_write: false,
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
        for (pos, cmd, refusal, why) in [
            (
                at(Completed, 3),
                Command::Advance,
                Refusal::Terminal(Completed),
                "completed",
            ),
            (
                at(RolledBack, 0),
                Command::Rollback { to: None },
                Refusal::Terminal(RolledBack),
                "rolled back",
            ),
            (
                at(Abandoned, 1),
                Command::Abandon,
                Refusal::Terminal(Abandoned),
                "abandoned",
            ),
            (at(Paused, 1), Command::Advance, Refusal::Paused, "paused"),
            (
                at(Paused, 1),
                Command::Pause,
                Refusal::AlreadyPaused,
                "already paused",
            ),
            (
                at(Active, 1),
                Command::Resume,
                Refusal::NotPaused(Active),
                "only a paused",
            ),
            (
                at(Failed, 1),
                Command::Advance,
                Refusal::Failed,
                "only a rollback",
            ),
            (
                at(Pending, 0),
                Command::Advance,
                Refusal::Starting,
                "still starting",
            ),
        ] {
            let err = decide(pos, cmd, Baseline).unwrap_err();
            assert_eq!(err, refusal, "{cmd:?} at {pos:?}");
            assert!(err.to_string().contains(why), "{cmd:?} at {pos:?}: {err}");
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
    fn rollback_and_abandon_win_over_a_pending_write_but_advance_waits() {
        let pending = Position {
            write_pending: true,
            ..at(Active, 1)
        };
        assert_eq!(
            decide(pending, Command::Advance, Baseline),
            Err(Refusal::WritePending("advance"))
        );
        assert_eq!(
            decide(pending, Command::Rollback { to: None }, Baseline),
            ok(RolledBack, 0, true)
        );
        assert_eq!(
            decide(pending, Command::Abandon, Baseline),
            Ok(Transition {
                state: Abandoned,
                phase: 1,
                write_flags: false,
                cancel_write: true,
            })
        );
    }

    #[test]
    fn abandon_ends_every_non_terminal_state_without_a_write() {
        for state in [Pending, Active, Paused, Failed] {
            let t = decide(at(state, 2), Command::Abandon, Baseline).unwrap();
            assert_eq!((t.state, t.phase, t.write_flags), (Abandoned, 2, false));
        }
        // A rollback recorded but never written can be given up too.
        let stuck = Position {
            write_pending: true,
            ..at(RolledBack, 0)
        };
        let t = decide(stuck, Command::Abandon, Baseline).unwrap();
        assert_eq!((t.state, t.cancel_write), (Abandoned, true));
        assert_eq!(
            decide(stuck, Command::Advance, Baseline),
            Err(Refusal::Terminal(RolledBack))
        );
        assert_eq!(
            decide(at(RolledBack, 0), Command::Abandon, Baseline),
            Err(Refusal::Terminal(RolledBack))
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
        assert_eq!(
            decide(at(Failed, 1), Command::Pause, Baseline),
            Err(Refusal::NotActive(Failed))
        );
    }

    #[test]
    fn states_parse_by_name_only() {
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("Active"), None);
        assert_eq!(State::parse("running"), None);
    }
}

//! A rollout's health at a glance, for people: one word out of a few,
//! decided from what is stored (pure).

use super::{Rollout, State};
use crate::domain::WatchMemory;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// In progress, nothing wrong seen.
    Ok,
    /// A guardrail is breaching (not yet enough in a row to act).
    Breaching,
    RolledBack,
    /// The function's owned flags differ from the desired ones.
    Drift,
    /// Something an operator must look at (failed, unreadable, a write
    /// AWS keeps refusing, a plan that no longer parses).
    NeedsAttention,
    /// Completed or abandoned: nothing to watch.
    Done,
}

impl Health {
    pub fn label(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Breaching => "breaching",
            Health::RolledBack => "rolled back",
            Health::Drift => "drift",
            Health::NeedsAttention => "needs attention",
            Health::Done => "done",
        }
    }

    /// The CSS modifier the dashboard styles it with.
    pub fn css(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Breaching => "breaching",
            Health::RolledBack => "rolled-back",
            Health::Drift => "drift",
            Health::NeedsAttention => "attention",
            Health::Done => "neutral",
        }
    }
}

/// The health of `r`, given what the watcher remembers of it and whether
/// its plan snapshot still parses.
pub fn health(r: &Rollout, memory: Option<&WatchMemory>, plan_parses: bool) -> Health {
    let attention = !plan_parses
        || r.state == State::Failed
        || r.function_error.is_some()
        || (r.write_pending() && r.last_error.is_some());
    if attention {
        return Health::NeedsAttention;
    }
    match r.state {
        State::RolledBack => return Health::RolledBack,
        State::Completed | State::Abandoned => return Health::Done,
        State::Pending | State::Active | State::Paused | State::Failed => {}
    }
    let drift = !r.write_pending()
        && r.observed_flags
            .as_ref()
            .is_some_and(|seen| *seen != r.desired_flags);
    if drift {
        return Health::Drift;
    }
    if memory.is_some_and(|m| !m.streaks.is_empty()) {
        return Health::Breaching;
    }
    Health::Ok
}

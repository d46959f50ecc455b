//! What an audit entry says happened (`Action`) and how it ended
//! (`Outcome`). Stored as their snake_case names.

use serde::{Deserialize, Serialize};

/// Declares a string-backed enum: serde names, `as_str`, `parse` and `ALL`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// What happened.
    Action {
        Start = "start",
        Advance = "advance",
        Pause = "pause",
        Resume = "resume",
        Rollback = "rollback",
        /// An operator ended a rollout without writing anything.
        Abandon = "abandon",
        /// A flag write's outcome.
        FlagsWrite = "flags_write",
        BaselineRecorded = "baseline_recorded",
        /// A guardrail breach that only observes (or pauses a paused rollout).
        GuardrailBreach = "guardrail_breach",
        DriftDetected = "drift_detected",
        CodeChanged = "code_changed",
        /// The function's environment could not be read whole (e.g. KMS).
        FunctionUnreadable = "function_unreadable",
        /// It can be read again.
        FunctionReadable = "function_readable",
        /// The rollout's stored plan snapshot no longer parses.
        PlanUnreadable = "plan_unreadable",
        /// A user was added (name and role; never the password).
        UserAdded = "user_added",
        /// An admin changed a user's role.
        UserRoleChanged = "user_role_changed",
        /// An admin removed a user (their sessions end with it).
        UserRemoved = "user_removed",
        /// An admin ended someone's sessions (signed out everywhere).
        SessionsEnded = "sessions_ended",
        /// An API token was made (name, role, expiry; never the token).
        TokenCreated = "token_created",
        TokenRevoked = "token_revoked",
        /// An operator asked to advance into a protected phase.
        ApprovalRequested = "approval_requested",
        /// A second operator approved it (the advance follows).
        ApprovalGranted = "approval_granted",
        ApprovalDenied = "approval_denied",
    }
}

named_enum! {
    /// How it ended.
    Outcome {
        /// A command was recorded (its write, if any, follows).
        Accepted = "accepted",
        Applied = "applied",
        AlreadyInPlace = "already_in_place",
        /// AWS was unavailable; the write stays pending and is retried.
        Retrying = "retrying",
        /// AWS refused the write; nothing was written.
        Rejected = "rejected",
        /// A newer command replaced this write before it was confirmed.
        Superseded = "superseded",
        /// The write was not attempted: the function's environment could not
        /// be read whole. It stays pending and is retried.
        Blocked = "blocked",
        /// `appconfig`: the deployment is under way (its state and
        /// percentage); the write is confirmed when it completes.
        Deploying = "deploying",
        /// `appconfig`: AppConfig rolled the deployment back by itself (an
        /// alarm monitor), or someone stopped it; rollgate rolls back too.
        RolledBackByAppconfig = "rolled_back_by_appconfig",
        Observed = "observed",
        Reverting = "reverting",
        BakeRestarted = "bake_restarted",
        Recorded = "recorded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::parse(o.as_str()), Some(*o));
        }
        assert_eq!(Action::parse("nope"), None);
    }
}

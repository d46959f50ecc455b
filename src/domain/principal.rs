//! Who is acting. Every change goes through the service with a principal,
//! and the audit log's actor comes from it, never from elsewhere.
//! Authentication will only change how an operator principal is made.

use super::text::{self, InputError, MAX_NAME_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person (or script) using the API or CLI, by the name it claims.
    Operator { name: String },
    /// The watcher loop: guardrails, gates, drift, baselines.
    Watcher,
    /// The loop that finishes recorded but unconfirmed writes.
    Reconciler,
    /// rollgate itself (start-up recovery, tools).
    System,
}

/// The actor recorded for an operator who gave no name.
pub const ANONYMOUS_OPERATOR: &str = "api";

impl Principal {
    /// An operator by a claimed name; `None` or blank means "api".
    pub fn operator(name: Option<&str>) -> Result<Principal, InputError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let name = name.unwrap_or(ANONYMOUS_OPERATOR);
        text::check("actor", name, MAX_NAME_BYTES)?;
        if name.starts_with("rollgate/") || name == "rollgate" {
            return Err(InputError(format!(
                "actor {name:?} is reserved for rollgate's own loops"
            )));
        }
        Ok(Principal::Operator {
            name: name.to_string(),
        })
    }

    /// The name the audit log records.
    pub fn actor(&self) -> &str {
        match self {
            Principal::Operator { name } => name,
            Principal::Watcher => "rollgate/watcher",
            Principal::Reconciler => "rollgate/reconciler",
            Principal::System => "rollgate",
        }
    }

    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::Operator { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_come_from_principals() {
        assert_eq!(Principal::operator(Some("alice")).unwrap().actor(), "alice");
        assert_eq!(Principal::operator(None).unwrap().actor(), "api");
        assert_eq!(Principal::operator(Some("  ")).unwrap().actor(), "api");
        assert_eq!(Principal::Watcher.actor(), "rollgate/watcher");
        assert_eq!(Principal::Reconciler.actor(), "rollgate/reconciler");
        assert!(Principal::operator(Some("rollgate/watcher")).is_err());
        assert!(Principal::operator(Some("bob\0")).is_err());
    }
}

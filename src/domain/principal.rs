//! Who is acting. Every change goes through the service with a principal,
//! and the audit log's actor comes from it, never from elsewhere.
//! Authentication will only change how an operator principal is made.

use super::text::{self, InputError, MAX_NAME_BYTES};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person (or script) using the API or CLI, by the name it claims:
    /// only while sign-in is off (`rollgate serve --auth none`).
    Operator { name: String },
    /// Someone who proved who they are: a signed-in user (`user:NAME`, or
    /// `oidc:NAME` through the identity provider) or an API token
    /// (`token:NAME`). The actor says both who and how.
    SignedIn { actor: String },
    /// The watcher loop: guardrails, gates, drift, baselines.
    Watcher,
    /// The loop that finishes recorded but unconfirmed writes.
    Reconciler,
    /// rollgate itself (start-up recovery, tools).
    System,
}

/// What [`Principal::behind`] finds behind an actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind<'a> {
    Person(&'a str),
    Token(&'a str),
}

/// How signed-in actors begin; no claimed name may.
pub const SIGNED_IN_PREFIXES: [&str; 4] = ["user:", "oidc:", "token:", "proxy:"];

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
        if SIGNED_IN_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(InputError(format!(
                "actor {name:?} looks like a signed-in identity; only sign-in gives those"
            )));
        }
        Ok(Principal::Operator {
            name: name.to_string(),
        })
    }

    /// A user signed in with a password.
    pub fn user(name: &str) -> Principal {
        Principal::SignedIn {
            actor: format!("user:{name}"),
        }
    }

    /// A user signed in through the identity provider.
    pub fn oidc_user(name: &str) -> Principal {
        Principal::SignedIn {
            actor: format!("oidc:{name}"),
        }
    }

    /// A user an authenticating reverse proxy vouched for.
    pub fn proxy_user(name: &str) -> Principal {
        Principal::SignedIn {
            actor: format!("proxy:{name}"),
        }
    }

    /// An API token, by its name.
    pub fn token(name: &str) -> Principal {
        Principal::SignedIn {
            actor: format!("token:{name}"),
        }
    }

    /// The name the audit log records.
    pub fn actor(&self) -> &str {
        match self {
            Principal::Operator { name } => name,
            Principal::SignedIn { actor } => actor,
            Principal::Watcher => "rollgate/watcher",
            Principal::Reconciler => "rollgate/reconciler",
            Principal::System => "rollgate",
        }
    }

    /// Who is behind an actor, for the two-person rule: a person (the same
    /// name signed in locally, through the identity provider or the proxy
    /// is taken to be one person), a token (whose creator is behind it),
    /// or the actor itself.
    pub fn behind(actor: &str) -> Behind<'_> {
        if let Some(name) = actor.strip_prefix("token:") {
            return Behind::Token(name);
        }
        ["user:", "oidc:", "proxy:"]
            .iter()
            .find_map(|p| actor.strip_prefix(p))
            .map_or(Behind::Person(actor), Behind::Person)
    }

    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            Principal::Operator { .. } | Principal::SignedIn { .. }
        )
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
        assert_eq!(Principal::user("ada").actor(), "user:ada");
        assert_eq!(Principal::token("ci").actor(), "token:ci");
        assert_eq!(Principal::oidc_user("ada").actor(), "oidc:ada");
        assert_eq!(Principal::behind("user:ada"), Behind::Person("ada"));
        assert_eq!(Principal::behind("oidc:ada"), Behind::Person("ada"));
        assert_eq!(Principal::behind("proxy:ada"), Behind::Person("ada"));
        assert_eq!(Principal::behind("alice"), Behind::Person("alice"));
        assert_eq!(Principal::behind("token:ci"), Behind::Token("ci"));
        for claimed in ["user:ada", "token:ci", "oidc:x", "proxy:y"] {
            assert!(Principal::operator(Some(claimed)).is_err(), "{claimed}");
        }
    }
}

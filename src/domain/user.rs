//! Who may sign in, and what they may do: user names, roles, and password
//! rules and hashing (argon2id, in PHC strings). Pure code except the
//! hashing's random salt.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// Fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most bytes a password may have (hashing stays cheap to refuse).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a user may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything except secrets.
    Viewer,
    /// Start, advance, pause, resume, roll back and abandon rollouts.
    Operator,
    /// Users, tokens and protection settings too.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use viewer, operator or admin"))
    }
}

/// A user name: 2–64 characters, lower-case letters, digits, `.`, `_`, `-`,
/// starting with a letter (so it never looks like a token or a path).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_len = (2..=64).contains(&name.chars().count());
    let first = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok_len && first && rest {
        Ok(())
    } else {
        Err(format!(
            "invalid user name {name:?}: 2–64 characters, lower-case letters, digits, '.', '_' or '-', starting with a letter"
        ))
    }
}

/// A password long enough to resist guessing and short enough to hash.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password is too short: at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    if password.chars().any(char::is_control) {
        return Err("the password contains control characters".into());
    }
    Ok(())
}

/// The argon2id hash of `password` with a fresh random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches the PHC `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_a_fresh_salt() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("correct horse"));
        assert!(verify_password("correct horse battery", &a));
        assert!(!verify_password("correct horse battery!", &a));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn names_roles_and_passwords_are_checked() {
        for ok in ["ada", "ops.bot", "a1", "on-call_2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Ada",
            "1ada",
            "ada lovelace",
            "ada/x",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Role::parse("operator"), Ok(Role::Operator));
        assert!(
            Role::parse("root")
                .unwrap_err()
                .contains("viewer, operator or admin")
        );
        assert!(check_password("short").unwrap_err().contains("at least 12"));
        assert!(check_password(&"x".repeat(2000)).is_err());
        assert!(check_password("twelve chars\u{7}").is_err());
        assert!(check_password("twelve chars").is_ok());
    }
}

//! Checks on free text from outside (reasons, names, filters) before it
//! reaches the database or the audit log: PostgreSQL refuses NUL in text,
//! and control characters in an audit log only hide what happened.

/// Bad input: a clear message, and nothing changed (400 on the API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Longest reason accepted, in bytes.
pub const MAX_REASON_BYTES: usize = 4096;
/// Longest name (actor, filter value) accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Refuses text with NUL or other control characters (tab, newline and
/// carriage return are fine) or longer than `max_bytes`.
pub fn check(field: &str, value: &str, max_bytes: usize) -> Result<(), InputError> {
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(InputError(format!(
            "{field} contains a control character (U+{:04X}); send plain text",
            c as u32
        )));
    }
    if value.len() > max_bytes {
        return Err(InputError(format!(
            "{field} is {} bytes long; at most {max_bytes} are accepted",
            value.len()
        )));
    }
    Ok(())
}

/// A reason as given: checked, trimmed, and `None` when blank.
pub fn reason(value: Option<String>) -> Result<Option<String>, InputError> {
    let Some(value) = value else { return Ok(None) };
    check("reason", &value, MAX_REASON_BYTES)?;
    let trimmed = value.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused() {
        for bad in ["a\0b", "\0", "x\u{1b}[31m", "\u{7f}"] {
            let e = check("reason", bad, 100).unwrap_err();
            assert!(e.0.contains("control character"), "{bad:?}: {e}");
        }
        assert!(check("reason", "line one\nline two\ttab", 100).is_ok());
        assert!(check("reason", "héllo — ünïcode", 100).is_ok());
        assert!(check("actor", &"a".repeat(101), 100).is_err());
    }

    #[test]
    fn blank_reasons_are_none() {
        assert_eq!(reason(None), Ok(None));
        assert_eq!(reason(Some("  ".into())), Ok(None));
        assert_eq!(reason(Some(" why ".into())), Ok(Some("why".into())));
        assert!(reason(Some("nul\0".into())).is_err());
    }
}

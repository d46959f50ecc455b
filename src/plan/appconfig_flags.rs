//! What an `appconfig` plan may own: AppConfig feature-flag keys, and
//! attribute values of those flags as `FLAG.ATTRIBUTE`. Pure checks, shared
//! by plan validation and the backend.

/// AppConfig's rule for flag keys and attribute names:
/// `^[a-z][a-zA-Z0-9_-]{0,63}$`.
pub fn valid_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && k.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
}

/// An owned key: a flag's `enabled`, or one of its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedKey<'a> {
    Enabled(&'a str),
    Attribute { flag: &'a str, attribute: &'a str },
}

impl<'a> OwnedKey<'a> {
    pub fn flag(&self) -> &'a str {
        match self {
            OwnedKey::Enabled(f) | OwnedKey::Attribute { flag: f, .. } => f,
        }
    }
}

/// Splits `flag` or `flag.attribute` (no check).
pub fn split(key: &str) -> OwnedKey<'_> {
    match key.split_once('.') {
        Some((flag, attribute)) => OwnedKey::Attribute { flag, attribute },
        None => OwnedKey::Enabled(key),
    }
}

/// Why `key` cannot be an owned AppConfig key, if it cannot.
pub fn check_key(key: &str) -> Result<(), String> {
    let rule = "AppConfig flag keys and attribute names match ^[a-z][a-zA-Z0-9_-]{0,63}$";
    match split(key) {
        OwnedKey::Enabled(flag) if !valid_name(flag) => Err(format!(
            "flag key {key:?} is not an AppConfig flag key ({rule})"
        )),
        OwnedKey::Attribute { flag, attribute } => {
            if !valid_name(flag) {
                Err(format!(
                    "{key:?}: {flag:?} is not an AppConfig flag key ({rule}); an attribute is written FLAG.ATTRIBUTE"
                ))
            } else if !valid_name(attribute) {
                Err(format!(
                    "{key:?}: {attribute:?} is not an AppConfig attribute name ({rule}; one '.' separates flag and attribute)"
                ))
            } else {
                Ok(())
            }
        }
        OwnedKey::Enabled(_) => Ok(()),
    }
}

/// Why `value` cannot be the value of owned key `key`: a flag's own key
/// is its `enabled`, "true" or "false". Attribute values are checked
/// against the flag's constraints in the profile, at the write.
pub fn check_value(key: &str, value: &str) -> Result<(), String> {
    match split(key) {
        OwnedKey::Enabled(_) if value != "true" && value != "false" => Err(format!(
            "flag {key}: {value:?} is not \"true\" or \"false\" (an AppConfig flag key sets the flag's enabled; set an attribute as \"{key}.ATTRIBUTE\")"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_appconfig_rules() {
        assert!(check_key("use_optimized_prompts").is_ok());
        assert!(check_key("use-x2").is_ok());
        assert!(check_key("use_optimized_prompts.variant").is_ok());
        assert!(check_key(&"a".repeat(64)).is_ok());
        assert!(check_key(&"a".repeat(65)).is_err());
        assert!(check_key("USE_OPTIMIZED_PROMPTS").is_err());
        assert!(check_key("1flag").is_err());
        assert!(check_key("flag.Variant").is_err());
        assert!(check_key("flag.a.b").is_err());
        assert!(check_key("flag.").is_err());
        assert!(check_key(".attr").is_err());
    }

    #[test]
    fn an_enabled_key_takes_true_or_false_only() {
        assert!(check_value("f", "true").is_ok());
        assert!(check_value("f", "false").is_ok());
        assert!(check_value("f", "TRUE").is_err());
        assert!(check_value("f", "1").is_err());
        assert!(check_value("f.variant", "v2").is_ok());
    }
}

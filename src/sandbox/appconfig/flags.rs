//! The `AWS.AppConfig.FeatureFlags` format: AppConfig validates a hosted
//! version of a feature-flag profile against it, and serves clients only
//! the values (`{"KEY": {"enabled": BOOL, "ATTR": VALUE}}`).
//!
//! ```json
//! {"version": "1",
//!  "flags": {"KEY": {"name": "...", "description": "...",
//!    "attributes": {"ATTR": {"constraints": {"type": "string", "enum": [...],
//!      "pattern": "...", "required": true}}}}},
//!  "values": {"KEY": {"enabled": true, "ATTR": "..."}}}
//! ```
//!
//! Keys (flags and attributes) match `^[a-z][a-zA-Z0-9_-]{0,63}$`; constraint
//! types are `string`, `number`, `boolean`, `string[]`, `number[]`; strings
//! take `enum` and `pattern`, numbers `enum`, `minimum` and `maximum`,
//! arrays `maxItems` and `elements` (constraints on each element).

use serde_json::{Map, Value};

/// Whether `key` is a valid flag or attribute key.
pub fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some('a'..='z'))
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks a FeatureFlags document; the error names what is wrong.
pub fn validate(content: &[u8]) -> Result<(), String> {
    let doc: Value = serde_json::from_slice(content)
        .map_err(|e| format!("The feature flag configuration is not valid JSON: {e}"))?;
    let doc = doc
        .as_object()
        .ok_or("The feature flag configuration must be a JSON object")?;
    for key in doc.keys() {
        if !matches!(key.as_str(), "version" | "flags" | "values") {
            return Err(format!("Unknown top-level property '{key}'"));
        }
    }
    match doc.get("version") {
        Some(Value::String(v)) if v == "1" => {}
        Some(v) => return Err(format!("Unsupported feature flag schema version {v}")),
        None => return Err("Missing required property 'version'".into()),
    }
    let empty = Map::new();
    let flags = object(doc.get("flags"), "flags")?.unwrap_or(&empty);
    for (key, flag) in flags {
        check_flag(key, flag)?;
    }
    let values = object(doc.get("values"), "values")?.unwrap_or(&empty);
    for (key, value) in values {
        let Some(flag) = flags.get(key) else {
            return Err(format!(
                "Flag value '{key}' has no flag definition in 'flags'"
            ));
        };
        check_value(key, flag, value)?;
    }
    Ok(())
}

fn object<'a>(v: Option<&'a Value>, what: &str) -> Result<Option<&'a Map<String, Value>>, String> {
    match v {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(format!("'{what}' must be an object")),
    }
}

fn check_flag(key: &str, flag: &Value) -> Result<(), String> {
    if !valid_key(key) {
        return Err(format!(
            "Flag key '{key}' must match ^[a-z][a-zA-Z0-9_-]{{0,63}}$"
        ));
    }
    let flag = flag
        .as_object()
        .ok_or_else(|| format!("Flag '{key}' must be an object"))?;
    for (k, v) in flag {
        match k.as_str() {
            "name" | "description" | "_createdAt" | "_updatedAt" => {
                if !v.is_string() {
                    return Err(format!("Flag '{key}': '{k}' must be a string"));
                }
            }
            "_deprecation" => {}
            "attributes" => {
                let attrs = v
                    .as_object()
                    .ok_or_else(|| format!("Flag '{key}': 'attributes' must be an object"))?;
                if attrs.len() > 25 {
                    return Err(format!("Flag '{key}' has more than 25 attributes"));
                }
                for (name, attr) in attrs {
                    check_attribute(key, name, attr)?;
                }
            }
            other => return Err(format!("Flag '{key}': unknown property '{other}'")),
        }
    }
    Ok(())
}

const TYPES: &[&str] = &["string", "number", "boolean", "string[]", "number[]"];

fn check_attribute(flag: &str, name: &str, attr: &Value) -> Result<(), String> {
    if !valid_key(name) {
        return Err(format!(
            "Flag '{flag}': attribute key '{name}' must match ^[a-z][a-zA-Z0-9_-]{{0,63}}$"
        ));
    }
    let Some(c) = attr.get("constraints") else {
        return Ok(());
    };
    let ty = c
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("Flag '{flag}' attribute '{name}': constraints need a 'type'"))?;
    if !TYPES.contains(&ty) {
        return Err(format!(
            "Flag '{flag}' attribute '{name}': type '{ty}' is not one of {}",
            TYPES.join(", ")
        ));
    }
    if let Some(p) = c.get("pattern").and_then(Value::as_str)
        && regex::Regex::new(p).is_err()
    {
        return Err(format!(
            "Flag '{flag}' attribute '{name}': pattern '{p}' is not a valid regular expression"
        ));
    }
    Ok(())
}

fn check_value(key: &str, flag: &Value, value: &Value) -> Result<(), String> {
    let value = value
        .as_object()
        .ok_or_else(|| format!("Flag value '{key}' must be an object"))?;
    match value.get("enabled") {
        Some(Value::Bool(_)) => {}
        Some(other) => {
            return Err(format!(
                "Flag value '{key}': 'enabled' must be a boolean, got {other}"
            ));
        }
        None => return Err(format!("Flag value '{key}' is missing 'enabled'")),
    }
    let attrs = flag.get("attributes").and_then(Value::as_object);
    for (name, v) in value {
        if matches!(
            name.as_str(),
            "enabled" | "_createdAt" | "_updatedAt" | "_variants"
        ) {
            continue;
        }
        let Some(attr) = attrs.and_then(|a| a.get(name)) else {
            return Err(format!(
                "Flag value '{key}': attribute '{name}' is not defined for the flag"
            ));
        };
        if let Some(c) = attr.get("constraints") {
            check_constraints(c, v)
                .map_err(|why| format!("Flag value '{key}' attribute '{name}' value {v} {why}"))?;
        }
    }
    for (name, attr) in attrs.into_iter().flatten() {
        let required = attr
            .get("constraints")
            .and_then(|c| c.get("required"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if required && !value.contains_key(name) {
            return Err(format!(
                "Flag value '{key}' is missing required attribute '{name}'"
            ));
        }
    }
    Ok(())
}

/// Why `v` breaks the constraints `c`, if it does.
fn check_constraints(c: &Value, v: &Value) -> Result<(), String> {
    let ty = c.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "string" => scalar(c, v, true),
        "number" => scalar(c, v, false),
        "boolean" => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| "is not a boolean".to_string()),
        "string[]" | "number[]" => {
            let items = v
                .as_array()
                .ok_or_else(|| format!("is not an array ({ty})"))?;
            if let Some(max) = c.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                return Err(format!("has more than {max} items"));
            }
            let empty = Value::Object(Map::new());
            let elements = c.get("elements").unwrap_or(&empty);
            for item in items {
                scalar(elements, item, ty == "string[]")
                    .map_err(|why| format!("has an element {item} that {why}"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A string or number against `enum`, `pattern`, `minimum`, `maximum`.
fn scalar(c: &Value, v: &Value, string: bool) -> Result<(), String> {
    if string && !v.is_string() {
        return Err("is not a string".into());
    }
    if !string && !v.is_number() {
        return Err("is not a number".into());
    }
    if let Some(allowed) = c.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        return Err(format!(
            "is not one of the enum values {}",
            Value::from(allowed.clone())
        ));
    }
    if let (Some(p), Some(s)) = (c.get("pattern").and_then(Value::as_str), v.as_str())
        && regex::Regex::new(p).is_ok_and(|re| !re.is_match(s))
    {
        return Err(format!("does not match the pattern {p}"));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = c.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("is less than the minimum {min}"));
        }
        if let Some(max) = c.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("is greater than the maximum {max}"));
        }
    }
    Ok(())
}

/// What AppConfig serves clients of a (valid) FeatureFlags document: every
/// defined flag with its `enabled` (false without a value) and attribute values.
pub fn values_view(content: &[u8]) -> Value {
    let doc: Value = serde_json::from_slice(content).unwrap_or(Value::Null);
    let mut out = Map::new();
    let values = doc.get("values").and_then(Value::as_object);
    for key in doc
        .get("flags")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|f| f.keys())
    {
        let mut entry = Map::new();
        let value = values.and_then(|v| v.get(key)).and_then(Value::as_object);
        entry.insert(
            "enabled".into(),
            Value::Bool(
                value
                    .and_then(|v| v.get("enabled"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            ),
        );
        for (k, v) in value.into_iter().flatten() {
            if !k.starts_with('_') && k != "enabled" {
                entry.insert(k.clone(), v.clone());
            }
        }
        out.insert(key.clone(), Value::Object(entry));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(doc: Value) -> Result<(), String> {
        validate(doc.to_string().as_bytes())
    }

    fn doc_with_value(value: Value) -> Value {
        json!({"version": "1",
            "flags": {"prompts": {"name": "Prompts", "attributes": {
                "model": {"constraints": {"type": "string", "enum": ["small", "large"]}},
                "ratio": {"constraints": {"type": "number", "minimum": 0, "maximum": 1}},
                "region": {"constraints": {"type": "string", "pattern": "^[a-z]{2}-[a-z]+-\\d$"}},
                "tags": {"constraints": {"type": "string[]", "maxItems": 2, "elements": {"enum": ["a", "b"]}}},
            }}},
            "values": {"prompts": value}})
    }

    #[test]
    fn keys_follow_the_format() {
        assert!(valid_key("use_optimized_prompts"));
        assert!(valid_key("a"));
        assert!(valid_key("aB9-_"));
        assert!(!valid_key("Upper"));
        assert!(!valid_key("9lives"));
        assert!(!valid_key(""));
        assert!(!valid_key("has space"));
        assert!(!valid_key(&"a".repeat(65)));
    }

    #[test]
    fn valid_documents_pass() {
        assert_eq!(check(json!({"version": "1"})), Ok(()));
        assert_eq!(
            check(doc_with_value(
                json!({"enabled": true, "model": "small", "ratio": 0.5,
                "region": "us-east-1", "tags": ["a", "b"]})
            )),
            Ok(())
        );
    }

    #[test]
    fn broken_values_are_named() {
        let err = |v: Value| check(doc_with_value(v)).unwrap_err();
        assert!(err(json!({"enabled": true, "model": "huge"})).contains("'model'"));
        assert!(err(json!({"enabled": true, "ratio": 2})).contains("maximum"));
        assert!(err(json!({"enabled": true, "ratio": "x"})).contains("not a number"));
        assert!(err(json!({"enabled": true, "region": "nowhere"})).contains("pattern"));
        assert!(err(json!({"enabled": true, "tags": ["a", "b", "a"]})).contains("more than 2"));
        assert!(err(json!({"enabled": true, "tags": ["c"]})).contains("element"));
        assert!(err(json!({"enabled": "yes"})).contains("'enabled'"));
        assert!(err(json!({"model": "small"})).contains("missing 'enabled'"));
        assert!(err(json!({"enabled": true, "colour": 1})).contains("'colour'"));
    }

    #[test]
    fn structure_errors() {
        assert!(
            validate(b"{not json")
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(check(json!({"flags": {}})).unwrap_err().contains("version"));
        assert!(check(json!({"version": "2"})).is_err());
        assert!(check(json!({"version": "1", "extra": 1})).is_err());
        let undefined =
            json!({"version": "1", "flags": {}, "values": {"ghost": {"enabled": true}}});
        assert!(check(undefined).unwrap_err().contains("'ghost'"));
        let bad_key = json!({"version": "1", "flags": {"Bad": {"name": "b"}}});
        assert!(check(bad_key).unwrap_err().contains("'Bad'"));
        let bad_type = json!({"version": "1", "flags": {"f": {"attributes": {"a": {"constraints": {"type": "date"}}}}}});
        assert!(check(bad_type).unwrap_err().contains("'date'"));
        let required = json!({"version": "1",
            "flags": {"f": {"attributes": {"a": {"constraints": {"type": "number", "required": true}}}}},
            "values": {"f": {"enabled": false}}});
        assert!(
            check(required)
                .unwrap_err()
                .contains("required attribute 'a'")
        );
    }

    #[test]
    fn clients_get_the_values_view() {
        let doc = json!({"version": "1",
            "flags": {"on": {"name": "On"}, "off": {"name": "Off"}},
            "values": {"on": {"enabled": true, "level": 3, "_updatedAt": "x"}}});
        assert_eq!(
            values_view(doc.to_string().as_bytes()),
            json!({"on": {"enabled": true, "level": 3}, "off": {"enabled": false}})
        );
    }
}

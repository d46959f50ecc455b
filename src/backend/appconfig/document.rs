//! The `AWS.AppConfig.FeatureFlags` document, as pure functions: reading
//! the owned values out of it, and merging desired values into it while
//! every other flag, attribute, constraint and metadata field stays as it
//! was. Values are checked against the flag's attribute constraints the way
//! AppConfig's validator checks them, so a bad value is refused before any
//! version is created.

use serde_json::{Map, Value};

use crate::plan::Flags;
use crate::plan::appconfig_flags::{OwnedKey, split};

/// A parsed document; the JSON text round-trips through `serde_json`
/// (key order may change, meaning never does).
#[derive(Debug, Clone, PartialEq)]
pub struct Document(Value);

impl Document {
    /// Parses a hosted version's content.
    pub fn parse(content: &[u8]) -> Result<Document, String> {
        let value: Value = serde_json::from_slice(content).map_err(|e| {
            format!("the profile's latest version is not JSON ({e}); is it a feature-flag profile?")
        })?;
        if !value.get("flags").is_some_and(Value::is_object) {
            return Err("the profile's latest version has no \"flags\" object: it is not an AWS.AppConfig.FeatureFlags document".into());
        }
        Ok(Document(value))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    pub fn as_value(&self) -> &Value {
        &self.0
    }

    fn definition(&self, flag: &str) -> Option<&Value> {
        self.0.get("flags").and_then(|f| f.get(flag))
    }

    fn value_of(&self, flag: &str) -> Option<&Value> {
        self.0.get("values").and_then(|v| v.get(flag))
    }

    /// The owned keys' current values, rendered as a plan writes them:
    /// `enabled` as "true"/"false" (a flag without a value is disabled, as
    /// AppConfig serves it), attributes as strings (arrays as JSON text).
    /// An attribute without a value is left out.
    pub fn owned_values<'a>(&self, owned: impl IntoIterator<Item = &'a String>) -> Flags {
        let mut out = Flags::new();
        for key in owned {
            match split(key) {
                OwnedKey::Enabled(flag) => {
                    let on = self
                        .value_of(flag)
                        .and_then(|v| v.get("enabled"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    out.insert(key.clone(), on.to_string());
                }
                OwnedKey::Attribute { flag, attribute } => {
                    if let Some(v) = self.value_of(flag).and_then(|v| v.get(attribute)) {
                        out.insert(key.clone(), render(v));
                    }
                }
            }
        }
        out
    }

    /// The owned values as `owned_values` renders them, except that a
    /// value equal to the one `desired` names once typed by the flag's
    /// constraints (`"0.50"` for `0.5`, `'["eu", "us"]'` for `["eu","us"]`)
    /// reads as `desired` spells it: what a write compares and drift is
    /// judged on, so a value in another spelling is not a change.
    pub fn owned_values_against(&self, desired: &Flags) -> Flags {
        let mut out = self.owned_values(desired.keys());
        for (key, wanted) in desired {
            let OwnedKey::Attribute { flag, attribute } = split(key) else {
                continue;
            };
            let current = self.value_of(flag).and_then(|v| v.get(attribute));
            let constraints = self
                .definition(flag)
                .and_then(|d| d.get("attributes"))
                .and_then(|a| a.get(attribute))
                .and_then(|a| a.get("constraints"));
            if let (Some(current), Ok(typed)) = (current, typed(wanted, constraints, current))
                && same_value(current, &typed)
            {
                out.insert(key.clone(), wanted.clone());
            }
        }
        out
    }

    /// Whether `self` and `other` are the same document apart from the
    /// owned values: every flag definition, every other value, metadata.
    pub fn same_outside<'a>(
        &self,
        other: &Document,
        owned: impl IntoIterator<Item = &'a String> + Clone,
    ) -> bool {
        without(&self.0, owned.clone()) == without(&other.0, owned)
    }

    /// The document with `desired` merged in, or why it cannot be: an
    /// owned flag or attribute the profile does not define, or a value its
    /// constraints refuse. Nothing else changes.
    pub fn merged(&self, desired: &Flags) -> Result<Document, String> {
        let mut doc = self.0.clone();
        for (key, wanted) in desired {
            let flag = split(key).flag();
            let Some(definition) = self.definition(flag) else {
                return Err(format!(
                    "flag {flag} is not defined in the profile; add it to the feature-flag profile (with its attributes and constraints) before rolling it out"
                ));
            };
            let new = match split(key) {
                OwnedKey::Enabled(_) => match wanted.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    other => return Err(format!("flag {flag}: {other:?} is not true or false")),
                },
                OwnedKey::Attribute { attribute, .. } => {
                    let Some(attr) = definition.get("attributes").and_then(|a| a.get(attribute))
                    else {
                        return Err(format!(
                            "flag {flag} defines no attribute {attribute}; define it in the profile first"
                        ));
                    };
                    let current = self.value_of(flag).and_then(|v| v.get(attribute));
                    let constraints = attr.get("constraints");
                    let value = typed(wanted, constraints, current)
                        .map_err(|why| format!("{key} = {wanted:?}: {why}"))?;
                    if let Some(c) = constraints {
                        check(&value, c).map_err(|why| format!("{key} = {wanted:?}: {why}"))?;
                    }
                    value
                }
            };
            let field = match split(key) {
                OwnedKey::Enabled(_) => "enabled",
                OwnedKey::Attribute { attribute, .. } => attribute,
            };
            let root = doc
                .as_object_mut()
                .ok_or("the document is not a JSON object")?;
            let values = root
                .entry("values")
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(values) = values.as_object_mut() else {
                return Err("the document's \"values\" is not an object".into());
            };
            let entry = values
                .entry(flag.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            let Some(entry) = entry.as_object_mut() else {
                return Err(format!("the value of flag {flag} is not an object"));
            };
            if !entry.contains_key("enabled") {
                // AppConfig requires `enabled` in every value.
                entry.insert("enabled".into(), Value::Bool(false));
            }
            entry.insert(field.to_string(), new);
        }
        Ok(Document(doc))
    }
}

/// JSON equality with numbers compared by value (`50` is `50.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        _ => a == b,
    }
}

/// `doc` with the owned values taken out.
fn without<'a>(doc: &Value, owned: impl IntoIterator<Item = &'a String>) -> Value {
    let mut doc = doc.clone();
    for key in owned {
        let (flag, field) = match split(key) {
            OwnedKey::Enabled(flag) => (flag, "enabled"),
            OwnedKey::Attribute { flag, attribute } => (flag, attribute),
        };
        if let Some(v) = doc
            .get_mut("values")
            .and_then(|v| v.get_mut(flag))
            .and_then(Value::as_object_mut)
        {
            v.remove(field);
        }
    }
    doc
}

/// A JSON value as a plan writes it.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `wanted` as the JSON type the attribute's constraints name; without a
/// type, the type of its current value, else a string.
fn typed(
    wanted: &str,
    constraints: Option<&Value>,
    current: Option<&Value>,
) -> Result<Value, String> {
    let kind = constraints
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            current.map(|v| match v {
                Value::Bool(_) => "boolean".to_string(),
                Value::Number(_) => "number".to_string(),
                Value::Array(_) => "array".to_string(),
                _ => "string".to_string(),
            })
        })
        .unwrap_or_else(|| "string".into());
    match kind.as_str() {
        "string" => Ok(Value::String(wanted.to_string())),
        "boolean" => match wanted {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err("the attribute is a boolean: \"true\" or \"false\"".into()),
        },
        "number" => number(wanted).ok_or_else(|| "the attribute is a number".to_string()),
        "string[]" | "number[]" | "array" => {
            let v: Value = serde_json::from_str(wanted).map_err(|_| {
                format!(
                    "the attribute is a {kind}: write it as a JSON array, e.g. '[\"a\", \"b\"]'"
                )
            })?;
            let Value::Array(items) = &v else {
                return Err(format!(
                    "the attribute is a {kind}: write it as a JSON array"
                ));
            };
            let ok = match kind.as_str() {
                "string[]" => items.iter().all(Value::is_string),
                "number[]" => items.iter().all(Value::is_number),
                _ => true,
            };
            if ok {
                Ok(v)
            } else {
                Err(format!(
                    "every element of a {kind} must be a {}",
                    &kind[..kind.len() - 2]
                ))
            }
        }
        other => Err(format!(
            "the profile gives the attribute an unknown type {other:?}"
        )),
    }
}

fn number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
}

/// AppConfig's attribute constraints: `enum`, `pattern` (strings),
/// `minimum`/`maximum` (numbers), and `elements` for arrays.
fn check(value: &Value, c: &Value) -> Result<(), String> {
    if let Value::Array(items) = value {
        if let Some(elements) = c.get("elements") {
            for item in items {
                check(item, elements)?;
            }
        }
        return Ok(());
    }
    if let Some(allowed) = c.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a == value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        return Err(format!(
            "not one of the values the flag allows ({})",
            list.join(", ")
        ));
    }
    if let (Some(pattern), Some(s)) = (c.get("pattern").and_then(Value::as_str), value.as_str()) {
        let re = regex::Regex::new(pattern)
            .map_err(|e| format!("the flag's pattern {pattern:?} does not compile ({e})"))?;
        if !re.is_match(s) {
            return Err(format!("does not match the flag's pattern {pattern:?}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = c.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("below the flag's minimum {min}"));
        }
        if let Some(max) = c.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("above the flag's maximum {max}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Document {
        Document(json!({
            "version": "1",
            "flags": {
                "use_optimized_prompts": {
                    "name": "Optimized prompts",
                    "attributes": {
                        "variant": {"constraints": {"type": "string", "enum": ["v1", "v2"]}},
                        "share": {"constraints": {"type": "number", "minimum": 0, "maximum": 100}},
                        "model": {"constraints": {"type": "string", "pattern": "^claude-"}},
                        "regions": {"constraints": {"type": "string[]", "elements": {"type": "string", "enum": ["eu", "us"]}}}
                    }
                },
                "other_team_flag": {"name": "Not ours", "_deprecation": {"status": "planned"}}
            },
            "values": {
                "use_optimized_prompts": {"enabled": false, "variant": "v1", "share": 10},
                "other_team_flag": {"enabled": true}
            }
        }))
    }

    fn flags(pairs: &[(&str, &str)]) -> Flags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merging_changes_only_owned_values() {
        let before = doc();
        let after = before
            .merged(&flags(&[
                ("use_optimized_prompts", "true"),
                ("use_optimized_prompts.variant", "v2"),
            ]))
            .unwrap();
        let v = after.as_value();
        assert_eq!(
            v["values"]["use_optimized_prompts"],
            json!({"enabled": true, "variant": "v2", "share": 10})
        );
        assert_eq!(v["flags"], before.as_value()["flags"]);
        assert_eq!(v["values"]["other_team_flag"], json!({"enabled": true}));
        assert_eq!(v["version"], "1");
        let owned = [
            "use_optimized_prompts".to_string(),
            "use_optimized_prompts.variant".to_string(),
        ];
        assert_eq!(
            after.owned_values(&owned),
            flags(&[
                ("use_optimized_prompts", "true"),
                ("use_optimized_prompts.variant", "v2")
            ])
        );
    }

    #[test]
    fn a_value_in_another_spelling_is_the_same_value() {
        let d = doc()
            .merged(&flags(&[
                ("use_optimized_prompts.share", "50.0"),
                ("use_optimized_prompts.regions", "[\"eu\", \"us\"]"),
            ]))
            .unwrap();
        let desired = flags(&[
            ("use_optimized_prompts.share", "50.0"),
            ("use_optimized_prompts.regions", "[\"eu\", \"us\"]"),
        ]);
        // Rendered from JSON the spellings differ; against the plan's they are equal.
        assert_ne!(d.owned_values(desired.keys()), desired);
        assert_eq!(d.owned_values_against(&desired), desired);
        // 10 (the first version's integer) is "10.0".
        assert_eq!(
            doc().owned_values_against(&flags(&[("use_optimized_prompts.share", "10.0")]))["use_optimized_prompts.share"],
            "10.0"
        );
        let other = flags(&[("use_optimized_prompts.share", "51")]);
        assert_eq!(
            d.owned_values_against(&other)["use_optimized_prompts.share"],
            "50.0"
        );
    }

    #[test]
    fn documents_are_compared_outside_the_owned_values() {
        let a = doc();
        let owned = ["use_optimized_prompts".to_string()];
        let b = a
            .merged(&flags(&[("use_optimized_prompts", "true")]))
            .unwrap();
        assert!(a.same_outside(&b, &owned));
        let mut c = b.as_value().clone();
        c["values"]["other_team_flag"]["enabled"] = serde_json::json!(false);
        assert!(!a.same_outside(&Document(c), &owned));
    }

    #[test]
    fn constraints_refuse_bad_values() {
        let d = doc();
        let refused = |k: &str, v: &str| d.merged(&flags(&[(k, v)])).unwrap_err();
        assert!(refused("use_optimized_prompts.variant", "v3").contains("not one of"));
        assert!(refused("use_optimized_prompts.share", "101").contains("maximum"));
        assert!(refused("use_optimized_prompts.share", "lots").contains("number"));
        assert!(refused("use_optimized_prompts.model", "gpt").contains("pattern"));
        assert!(refused("use_optimized_prompts.regions", "[\"mars\"]").contains("not one of"));
        assert!(refused("use_optimized_prompts.regions", "eu").contains("JSON array"));
        assert!(refused("use_optimized_prompts.colour", "red").contains("defines no attribute"));
        assert!(refused("missing_flag", "true").contains("not defined"));
        assert!(
            d.merged(&flags(&[("use_optimized_prompts.share", "55")]))
                .is_ok()
        );
        assert!(
            d.merged(&flags(&[("use_optimized_prompts.regions", "[\"eu\"]")]))
                .is_ok()
        );
    }

    #[test]
    fn a_flag_without_a_value_reads_disabled_and_gets_one() {
        let d = Document(json!({"version": "1", "flags": {"f": {"name": "F"}}}));
        assert_eq!(d.owned_values(&["f".to_string()]), flags(&[("f", "false")]));
        let m = d.merged(&flags(&[("f", "true")])).unwrap();
        assert_eq!(m.as_value()["values"]["f"], json!({"enabled": true}));
    }

    #[test]
    fn only_feature_flag_documents_parse() {
        assert!(Document::parse(b"{\"flags\": {}}").is_ok());
        assert!(Document::parse(b"not json").is_err());
        assert!(Document::parse(b"{\"a\": 1}").is_err());
    }
}

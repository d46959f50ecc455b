//! Pure environment arithmetic: merging owned flags into a function's
//! environment, and Lambda's size limit. No I/O here.

use std::collections::BTreeMap;

use crate::plan::Flags;

/// Lambda's limit on the environment, measured as the JSON of the variable map.
pub const LAMBDA_ENV_LIMIT_BYTES: usize = 4096;

/// The function's environment with the owned flags set to `desired`.
/// Every key not in `desired` is kept exactly as it was.
pub fn merge(current: &BTreeMap<String, String>, desired: &Flags) -> BTreeMap<String, String> {
    let mut merged = current.clone();
    for (key, value) in desired {
        merged.insert(key.clone(), value.clone());
    }
    merged
}

/// The owned flags' current values in `env` (absent keys are left out).
pub fn owned_values(env: &BTreeMap<String, String>, owned: &Flags) -> Flags {
    owned
        .keys()
        .filter_map(|k| env.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// True when every desired flag already has its desired value in `env`.
pub fn satisfies(env: &BTreeMap<String, String>, desired: &Flags) -> bool {
    desired.iter().all(|(k, v)| env.get(k) == Some(v))
}

/// Size of the environment as Lambda measures it: the JSON of the map.
pub fn env_size_bytes(env: &BTreeMap<String, String>) -> usize {
    serde_json::to_string(env).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn merge_keeps_foreign_keys_and_sets_owned() {
        let env = map(&[("TABLE_NAME", "t"), ("USE_X", "false")]);
        let merged = merge(&env, &map(&[("USE_X", "true"), ("USE_Y", "true")]));
        assert_eq!(
            merged,
            map(&[("TABLE_NAME", "t"), ("USE_X", "true"), ("USE_Y", "true")])
        );
    }

    #[test]
    fn size_is_measured_as_json() {
        assert_eq!(env_size_bytes(&map(&[("A", "b")])), r#"{"A":"b"}"#.len());
        assert_eq!(env_size_bytes(&BTreeMap::new()), 2);
    }

    proptest! {
        /// For random environments and random owned-flag changes, the merge
        /// changes exactly the owned keys that differ and nothing else.
        #[test]
        fn merge_changes_exactly_the_owned_keys(
            env in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,12}", ".{0,20}", 0..30),
            desired in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,12}", "(true|false|[a-z0-9]{0,5})", 0..6),
        ) {
            let merged = merge(&env, &desired);
            for (k, v) in &merged {
                match desired.get(k) {
                    Some(d) => prop_assert_eq!(v, d),
                    None => prop_assert_eq!(Some(v), env.get(k)),
                }
            }
            for k in env.keys().chain(desired.keys()) {
                prop_assert!(merged.contains_key(k));
            }
            prop_assert_eq!(merged.len(), env.keys().chain(desired.keys()).collect::<std::collections::BTreeSet<_>>().len());
            prop_assert!(satisfies(&merged, &desired));
            prop_assert_eq!(owned_values(&merged, &desired), desired.clone());
        }
    }
}

//! Identifiers.

use serde::{Deserialize, Serialize};

/// A rollout's id, assigned by the database.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = i64)]
pub struct RolloutId(pub i64);

impl std::fmt::Display for RolloutId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for RolloutId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(RolloutId)
            .ok_or_else(|| format!("invalid rollout id {s:?}: expected a positive number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_positive_numbers_only() {
        assert_eq!("42".parse::<RolloutId>(), Ok(RolloutId(42)));
        for bad in ["", "0", "-1", "x", "1.5", "99999999999999999999"] {
            assert!(bad.parse::<RolloutId>().is_err(), "{bad:?}");
        }
    }
}

//! Rollout plans: the TOML format, its validation (errors with line and
//! column) and its JSON Schema.

mod model;

pub use model::*;

/// One problem found in a plan file, located by 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlanError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl Plan {
    /// Parses and validates plan text. `name` is the plan's name (its file stem).
    pub fn parse(name: &str, text: &str) -> Result<Plan, Vec<PlanError>> {
        let _ = (name, text);
        todo!("plan parsing")
    }
}

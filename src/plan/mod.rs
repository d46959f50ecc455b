//! Rollout plans: the TOML format, its validation (errors with line and
//! column) and its JSON Schema.

pub mod appconfig_flags;
mod model;
mod parse;
mod raw;
mod schedule;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use model::*;
pub use parse::{MAX_DURATION, line_col, parse_any_duration, parse_duration};
pub use schedule::{
    Freeze, PromoteWindow, Schedule, WindowState, parse_freeze, parse_window, parse_zone,
};

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
    /// Every problem found is reported, each with its line and column.
    pub fn parse(name: &str, text: &str) -> Result<Plan, Vec<PlanError>> {
        parse::parse(name, text)
    }
}

/// A plan file as found on disk, not yet parsed.
#[derive(Debug, Clone)]
pub struct PlanFile {
    /// The file stem: the plan's name.
    pub name: String,
    pub path: PathBuf,
    pub text: String,
}

/// Every `*.toml` file in `dir`, sorted by name.
pub fn load_dir(dir: &Path) -> Result<Vec<PlanFile>, std::io::Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)?;
            files.push(PlanFile { name, path, text });
        }
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

/// Validates one file; each message is `path:line:col: message`.
pub fn validate_file(path: &Path) -> Result<Plan, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Plan::parse(&name, &text).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}:{e}", path.display()))
            .collect()
    })
}

/// JSON Schema (draft 2020-12) of the plan file format, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(raw::RawPlan);
    serde_json::to_value(schema).unwrap_or_default()
}

/// Hex sha256 of a plan's text: identifies the exact plan a rollout runs.
pub fn plan_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

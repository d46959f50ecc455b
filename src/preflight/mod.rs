//! Preflight: the deployment guide's checklist, checked against the real
//! account before anything is written. `findings` turns what was read into
//! checks (pure); `gather` does the reads. The service runs it for
//! `rollgate plan preflight`, its API and the plan page, and before every
//! start (a failing check refuses the start unless forced with a reason).

pub mod findings;
pub mod gather;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use gather::Preflighter;

/// How a check came out. Ordered: the worst wins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Works, but something an operator should know (shown, and recorded
    /// in the start's audit entry).
    Warn,
    /// A start is refused unless forced with a reason.
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check: what was checked, how it came out, and the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Check {
    /// Stable identifier, e.g. `function.state`, `baseline.error_rate`,
    /// `alarm.errors-alarm`, `permissions.write`.
    pub id: String,
    /// What is checked, in words.
    pub title: String,
    pub status: Status,
    /// What was found, with the numbers.
    pub detail: String,
}

impl Check {
    pub fn named(id: impl Into<String>, title: impl Into<String>) -> CheckBuilder {
        CheckBuilder {
            id: id.into(),
            title: title.into(),
        }
    }

    /// `id: detail`, the line a refusal or an audit entry carries.
    pub fn line(&self) -> String {
        format!("{}: {}", self.id, self.detail)
    }
}

/// Half a check: named, waiting for its outcome.
pub struct CheckBuilder {
    id: String,
    title: String,
}

impl CheckBuilder {
    fn with(self, status: Status, detail: impl Into<String>) -> Check {
        Check {
            id: self.id,
            title: self.title,
            status,
            detail: detail.into(),
        }
    }
    pub fn pass(self, detail: impl Into<String>) -> Check {
        self.with(Status::Pass, detail)
    }
    pub fn warn(self, detail: impl Into<String>) -> Check {
        self.with(Status::Warn, detail)
    }
    pub fn fail(self, detail: impl Into<String>) -> Check {
        self.with(Status::Fail, detail)
    }
}

/// A plan's preflight: every check, and the worst outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Report {
    pub plan: String,
    pub checked_at: DateTime<Utc>,
    /// The worst check's status (`pass` when every check passed).
    pub status: Status,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(plan: &str, checked_at: DateTime<Utc>, checks: Vec<Check>) -> Report {
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        Report {
            plan: plan.to_string(),
            checked_at,
            status,
            checks,
        }
    }

    fn with_status(&self, status: Status) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.status == status).collect()
    }

    pub fn failures(&self) -> Vec<&Check> {
        self.with_status(Status::Fail)
    }

    pub fn warnings(&self) -> Vec<&Check> {
        self.with_status(Status::Warn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_check_decides() {
        let now = Utc::now();
        let pass = Check::named("a", "A").pass("fine");
        let warn = Check::named("b", "B").warn("hm");
        let fail = Check::named("c", "C").fail("no");
        assert_eq!(Report::new("p", now, vec![]).status, Status::Pass);
        assert_eq!(
            Report::new("p", now, vec![pass.clone(), warn.clone()]).status,
            Status::Warn
        );
        let r = Report::new("p", now, vec![fail.clone(), pass, warn]);
        assert_eq!(r.status, Status::Fail);
        assert_eq!(r.failures(), [&fail]);
        assert_eq!(r.warnings().len(), 1);
        assert_eq!(fail.line(), "c: no");
    }
}

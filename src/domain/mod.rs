//! The typed domain every layer shares: ids, who is acting, audit actions
//! and outcomes, what the watcher remembers and records, and the checks
//! every piece of free text passes before it reaches the database. Pure
//! types; no I/O.

pub mod audit;
pub mod auth;
pub mod ids;
pub mod judge;
pub mod oidc;
pub mod principal;
pub mod sign_test;
pub mod text;
pub mod user;
pub mod watch;

pub use audit::{Action, Outcome};
pub use ids::RolloutId;
pub use principal::Principal;
pub use text::InputError;
pub use watch::{
    Baseline, GateResult, MetricPoint, MetricValue, PhaseStats, PointKind, Readiness, WatchMemory,
};

//! Metrics: what guardrails and gates need from CloudWatch (`queries`), how
//! it is fetched (`cloudwatch`), and the maths that turns numbers into
//! verdicts (`eval`, pure functions).

pub mod cloudwatch;
pub mod eval;
pub mod periods;
pub mod queries;

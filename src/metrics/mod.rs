//! Metrics: guardrail and gate evaluation over CloudWatch numbers. The
//! maths lives in `eval` as pure functions; CloudWatch queries and the watcher
//! loop build on it.

pub mod eval;

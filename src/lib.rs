//! rollgate: staged feature-flag rollouts for AWS Lambda.
//!
//! Data flows plan → rollout engine → backend. The CLI (`main.rs`) and the
//! web layer sit on top; the engine in the middle; plan types, rollout state
//! types, the store, backends and the sandbox at the bottom.

pub mod app;
pub mod audit;
pub mod backend;
pub mod bench;
pub mod client;
pub mod demo;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod rollout;
pub mod sandbox;
pub mod store;
pub mod telemetry;
pub mod watcher;
pub mod web;

//! rollgate: staged feature-flag rollouts for AWS Lambda.
//!
//! Imports point downwards. The CLI (`main.rs`, `cli`) and the web layer
//! sit on top; the watcher and the service (the one writer) in the middle;
//! the typed domain, plans, the pure rollout state machine, metrics maths,
//! the store, backends and the sandbox at the bottom.

pub mod app;
pub mod audit;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod client;
pub mod demo;
pub mod domain;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod oidc;
pub mod plan;
pub mod preflight;
pub mod rollout;
pub mod sandbox;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod watcher;
pub mod web;

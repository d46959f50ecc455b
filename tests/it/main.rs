//! One integration-test binary (one link, shared build) with a module per area.

mod abandon;
mod appconfig;
mod approvals;
mod audit_log;
mod auth;
mod aws_cli;
mod browser;
mod canary;
mod cli;
mod common;
mod concurrency;
mod dashboard;
mod faults;
mod fuzz;
mod ha;
mod hardening;
mod kms;
mod lifecycle;
mod moto;
pub mod oidc;
mod plan_files;
mod preflight;
mod readiness;
mod recovery;
mod rollouts;
mod sandbox_appconfig;
mod sandbox_clients;
mod sandbox_cloudwatch;
mod sandbox_iam;
mod sandbox_lambda;

mod schemathesis;
mod tls;
mod watcher;

//! One integration-test binary (one link, shared build) with a module per area.

mod audit_log;
mod cli;
mod common;
mod faults;
mod moto;
mod recovery;
mod rollouts;

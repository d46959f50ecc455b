//! rollgate: staged feature-flag rollouts for AWS Lambda.

pub mod plan;
pub mod sandbox;

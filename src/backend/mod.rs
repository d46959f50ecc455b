//! Where flags are written. Today one backend, `lambda-env`; `lambda-alias`
//! and `appconfig` come later, and a trait will join them then.

pub mod lambda_env;
pub mod merge;

pub use lambda_env::{
    ApplyError, Env, LambdaEnvBackend, Listed, Observed, RetryPolicy, WriteReport,
    function_identity,
};

//! Where flags are written: `lambda-env` (the function's environment) and
//! `lambda-alias` (published versions behind a weighted alias, which it
//! reaches through `lambda-env`'s writes of `$LATEST`). `appconfig` comes
//! later; a trait will join them once a third one shares their shape.

pub mod lambda_alias;
pub mod lambda_env;
pub mod merge;

pub use lambda_alias::{AliasState, LambdaAliasBackend};
pub use lambda_env::{
    ApplyError, Env, LambdaEnvBackend, Listed, Observed, RetryPolicy, WriteReport,
    function_identity,
};

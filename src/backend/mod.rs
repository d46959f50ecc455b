//! Where flags are written: `lambda-env` (the function's environment),
//! `lambda-alias` (published versions behind a weighted alias, which it
//! reaches through `lambda-env`'s writes of `$LATEST`) and `appconfig`
//! (AWS AppConfig feature flags). They share the retry layer, the report
//! and the error type; their calls differ too much (an alias needs
//! routing, AppConfig a deployment to follow) for one `apply` signature to
//! say anything a `match` on the plan's backend does not say better.

pub mod appconfig;
pub mod lambda_alias;
pub mod lambda_env;
pub mod merge;

pub use appconfig::{AppConfigBackend, Delivery};
pub use lambda_alias::{AliasState, LambdaAliasBackend};
pub use lambda_env::{
    ApplyError, AwsError, Env, FunctionFacts, LambdaEnvBackend, Listed, Observed, RetryPolicy,
    WriteReport, function_identity,
};

//! `rollgate bench --flag-delivery` (issue 11, "Evidence"): how long a flag
//! change takes to reach every execution environment, and how many cold
//! starts it costs, when the flag lives in the Lambda function's
//! environment (`lambda-env`) against AWS AppConfig feature flags read by
//! the AppConfig Lambda extension (`appconfig`).
//!
//! In-process, on a sandbox whose AppConfig clock and traffic are driven
//! by a simulated clock (`Sandbox::set_appconfig_clock`,
//! `Sandbox::emit_traffic_at`, a tick a second), so a 30-minute linear
//! deployment takes a moment. Writes go through the official SDKs as the
//! product would make them: lambda-env reads the configuration and writes
//! the merged variables with UpdateFunctionConfiguration (RevisionId
//! precondition); appconfig creates a hosted version (Latest-Version-Number)
//! and starts a deployment, or stops one.
//!
//! The model (see `sandbox::execution`): 200 invocations a tick keep ten
//! warm execution environments per function. An environment write that took
//! effect recycles all of them (the next invocations cold-start ten fresh
//! ones, which read the new variables at init); Lambda's own update time
//! (`LastUpdateStatus = InProgress`, seconds in AWS) is left out here, so
//! lambda-env's time is one tick. AppConfig deployments recycle nothing:
//! each environment's extension sees the new configuration at its next poll
//! (every 45 s, the extension's default; environments started at different
//! times, so their polls are spread over the interval), and during a gradual
//! deployment only once its session falls within the deployment's
//! percentage. Each run uses other function names, so other poll phases.

use std::time::Duration;

use aws_sdk_appconfig::primitives::Blob;
use chrono::{DateTime, Utc};

use crate::sandbox::{Sandbox, SandboxConfig, traffic::TrafficSettings};

const FLAG: &str = "USE_OPTIMIZED_PROMPTS";
/// Ticks of the simulated clock.
const TICK_SECS: i64 = 1;
/// Give up on a scenario after this long.
const LIMIT_SECS: i64 = 2 * 3600;

fn flags(on: bool) -> String {
    format!(
        r#"{{"version":"1","flags":{{"use_optimized_prompts":{{"name":"Optimized prompts"}}}},"values":{{"use_optimized_prompts":{{"enabled":{on}}}}}}}"#
    )
}

/// One measured change.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    seconds: f64,
    cold_starts: u64,
}

/// The rows of the table, in order.
const SCENARIOS: &[&str] = &[
    "false→true: lambda-env (UpdateFunctionConfiguration)",
    "false→true: appconfig, AppConfig.AllAtOnce",
    "false→true: appconfig, AppConfig.Linear50PercentEvery30Seconds",
    "false→true: appconfig, AppConfig.Linear20PercentEvery6Minutes",
    "true→false (rollback): lambda-env (UpdateFunctionConfiguration)",
    "true→false (rollback): appconfig, AllAtOnce of the old values",
    "true→false (rollback): appconfig, StopDeployment 12 min into Linear20PercentEvery6Minutes",
];

struct Run {
    sandbox: Sandbox,
    now: DateTime<Utc>,
    lambda: aws_sdk_lambda::Client,
    appconfig: aws_sdk_appconfig::Client,
    app: String,
    env: String,
    profile: String,
    env_fn: String,
    ac_fn: String,
}

impl Run {
    async fn start(run: usize) -> anyhow::Result<Run> {
        let sandbox = Sandbox::start(
            0,
            SandboxConfig {
                metric_delay: Duration::ZERO,
                ..SandboxConfig::default()
            },
        )
        .await?;
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
        sandbox.set_appconfig_clock(Some(now));
        let aws = crate::demo::sandbox_aws_config(&sandbox.url()).await;
        let lambda = aws_sdk_lambda::Client::new(&aws);
        let appconfig = aws_sdk_appconfig::Client::new(&aws);
        let app = appconfig
            .create_application()
            .name("repair")
            .send()
            .await?
            .id
            .unwrap_or_default();
        let env = appconfig
            .create_environment()
            .application_id(&app)
            .name("prod")
            .send()
            .await?
            .id
            .unwrap_or_default();
        let profile = appconfig
            .create_configuration_profile()
            .application_id(&app)
            .name("flags")
            .location_uri("hosted")
            .r#type("AWS.AppConfig.FeatureFlags")
            .send()
            .await?
            .id
            .unwrap_or_default();
        let mut r = Run {
            sandbox,
            now,
            lambda,
            appconfig,
            app,
            env,
            profile,
            env_fn: format!("handler-env-{run}"),
            ac_fn: format!("handler-appconfig-{run}"),
        };
        r.new_version(false).await?;
        r.deploy("AppConfig.AllAtOnce", 1).await?;
        r.skip(11 * 60);
        for (name, vars) in [
            (r.env_fn.clone(), vec![(FLAG, "false"), ("OTHER", "kept")]),
            (
                r.ac_fn.clone(),
                vec![
                    ("APPCONFIG_APPLICATION", "repair"),
                    ("APPCONFIG_ENVIRONMENT", "prod"),
                    ("APPCONFIG_PROFILE", "flags"),
                    ("OTHER", "kept"),
                ],
            ),
        ] {
            let mut e = aws_sdk_lambda::types::Environment::builder();
            for (k, v) in vars {
                e = e.variables(k, v);
            }
            r.lambda
                .create_function()
                .function_name(name)
                .runtime(aws_sdk_lambda::types::Runtime::Python312)
                .role("arn:aws:iam::123456789012:role/handler")
                .handler("handler.handler")
                .code(
                    aws_sdk_lambda::types::FunctionCode::builder()
                        .zip_file(aws_sdk_lambda::primitives::Blob::new(b"zip".to_vec()))
                        .build(),
                )
                .environment(e.build())
                .send()
                .await?;
        }
        r.sandbox.set_traffic(TrafficSettings {
            invocations_per_tick: 200,
            ..TrafficSettings::default()
        });
        r.tick();
        Ok(r)
    }

    /// One tick at the simulated now.
    fn tick(&self) {
        self.sandbox.set_appconfig_clock(Some(self.now));
        self.sandbox.emit_traffic_at(self.now);
    }

    /// Moves the simulated clock on by `secs`, traffic every tick.
    fn skip(&mut self, secs: i64) {
        for _ in 0..secs / TICK_SECS {
            self.now += chrono::Duration::seconds(TICK_SECS);
            self.tick();
        }
    }

    /// (environments of `function` where the flag reads `value`, all).
    fn running(&self, function: &str, value: bool) -> (usize, usize) {
        self.sandbox
            .execution_environments(function)
            .map_or((0, 0), |v| v.running(FLAG, &value.to_string()))
    }

    /// Ticks until every environment of `function` runs `value`.
    fn until_all(&mut self, function: &str, value: bool) -> anyhow::Result<Outcome> {
        let cold = self.sandbox.cold_starts(function);
        let start = self.now;
        loop {
            self.now += chrono::Duration::seconds(TICK_SECS);
            self.tick();
            let (with, all) = self.running(function, value);
            if all > 0 && with == all {
                return Ok(Outcome {
                    seconds: (self.now - start).num_milliseconds() as f64 / 1000.0,
                    cold_starts: self.sandbox.cold_starts(function) - cold,
                });
            }
            if (self.now - start).num_seconds() > LIMIT_SECS {
                anyhow::bail!("{function} never ran {FLAG}={value} everywhere");
            }
        }
    }

    /// lambda-env's write: read, merge the flag, write with the revision.
    async fn write_env(&self, value: bool) -> anyhow::Result<()> {
        let config = self
            .lambda
            .get_function_configuration()
            .function_name(&self.env_fn)
            .send()
            .await?;
        let mut vars = config
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        vars.insert(FLAG.to_string(), value.to_string());
        self.lambda
            .update_function_configuration()
            .function_name(&self.env_fn)
            .set_revision_id(config.revision_id().map(str::to_string))
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(vars))
                    .build(),
            )
            .send()
            .await?;
        Ok(())
    }

    /// A new hosted version (optimistic on the latest number); its number.
    async fn new_version(&self, on: bool) -> anyhow::Result<u32> {
        let latest = self
            .appconfig
            .list_hosted_configuration_versions()
            .application_id(&self.app)
            .configuration_profile_id(&self.profile)
            .max_results(1)
            .send()
            .await?
            .items()
            .first()
            .map_or(0, |v| v.version_number());
        let v = self
            .appconfig
            .create_hosted_configuration_version()
            .application_id(&self.app)
            .configuration_profile_id(&self.profile)
            .content_type("application/json")
            .content(Blob::new(flags(on)))
            .latest_version_number(latest)
            .send()
            .await?;
        Ok(v.version_number() as u32)
    }

    async fn deploy(&self, strategy: &str, version: u32) -> anyhow::Result<i32> {
        self.sandbox.set_appconfig_clock(Some(self.now));
        Ok(self
            .appconfig
            .start_deployment()
            .application_id(&self.app)
            .environment_id(&self.env)
            .deployment_strategy_id(strategy)
            .configuration_profile_id(&self.profile)
            .configuration_version(version.to_string())
            .send()
            .await?
            .deployment_number())
    }

    async fn stop(&self, n: i32) -> anyhow::Result<()> {
        self.sandbox.set_appconfig_clock(Some(self.now));
        self.appconfig
            .stop_deployment()
            .application_id(&self.app)
            .environment_id(&self.env)
            .deployment_number(n)
            .send()
            .await?;
        Ok(())
    }

    /// Every scenario once, in the order of [`SCENARIOS`].
    async fn measure(mut self) -> anyhow::Result<Vec<Outcome>> {
        let (env_fn, ac_fn) = (self.env_fn.clone(), self.ac_fn.clone());
        let mut out = vec![None; SCENARIOS.len()];
        // lambda-env, on then off.
        self.write_env(true).await?;
        out[0] = Some(self.until_all(&env_fn, true)?);
        self.skip(60);
        self.write_env(false).await?;
        out[4] = Some(self.until_all(&env_fn, false)?);
        // AppConfig all at once, on, then the old values all at once.
        let on = self.new_version(true).await?;
        self.deploy("AppConfig.AllAtOnce", on).await?;
        out[1] = Some(self.until_all(&ac_fn, true)?);
        self.skip(11 * 60);
        self.deploy("AppConfig.AllAtOnce", 1).await?;
        out[5] = Some(self.until_all(&ac_fn, false)?);
        self.skip(11 * 60);
        // Linear, fast and slow; then back off (not measured).
        self.deploy("AppConfig.Linear50PercentEvery30Seconds", on)
            .await?;
        out[2] = Some(self.until_all(&ac_fn, true)?);
        self.skip(3 * 60);
        self.deploy("AppConfig.AllAtOnce", 1).await?;
        self.skip(11 * 60);
        self.deploy("AppConfig.Linear20PercentEvery6Minutes", on)
            .await?;
        out[3] = Some(self.until_all(&ac_fn, true)?);
        self.skip(31 * 60);
        self.deploy("AppConfig.AllAtOnce", 1).await?;
        self.skip(11 * 60);
        // A gradual deployment stopped while 40 % have it.
        let n = self
            .deploy("AppConfig.Linear20PercentEvery6Minutes", on)
            .await?;
        self.skip(12 * 60);
        self.stop(n).await?;
        out[6] = Some(self.until_all(&ac_fn, false)?);
        Ok(out.into_iter().flatten().collect())
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn duration(secs: f64) -> String {
    if secs >= 120.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{secs:.0} s")
    }
}

/// Runs every scenario `runs` times; Markdown for BENCHMARKS.md.
pub async fn run(runs: usize) -> anyhow::Result<String> {
    let mut results: Vec<Vec<Outcome>> = vec![Vec::new(); SCENARIOS.len()];
    for run in 0..runs.max(1) {
        let outcomes = Run::start(run).await?.measure().await?;
        for (i, o) in outcomes.into_iter().enumerate() {
            results[i].push(o);
        }
    }
    let mut text = format!(
        "Flag delivery, {} runs (simulated clock, a tick a second; 200 invocations a tick = 10 warm execution environments per function; AppConfig extension poll interval 45 s):\n\n",
        runs.max(1)
    );
    text.push_str("| change | every environment runs it after (median / max) | cold starts (median / max) |\n");
    text.push_str("|---|---|---|\n");
    for (name, outcomes) in SCENARIOS.iter().zip(&results) {
        let mut secs: Vec<f64> = outcomes.iter().map(|o| o.seconds).collect();
        secs.sort_by(f64::total_cmp);
        let mut cold: Vec<f64> = outcomes.iter().map(|o| o.cold_starts as f64).collect();
        cold.sort_by(f64::total_cmp);
        text.push_str(&format!(
            "| {name} | {} / {} | {:.0} / {:.0} |\n",
            duration(percentile(&secs, 0.5)),
            duration(percentile(&secs, 1.0)),
            percentile(&cold, 0.5),
            percentile(&cold, 1.0),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_durations() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 1.0), 4.0);
        assert!(percentile(&[], 0.5).is_nan());
        assert_eq!(duration(45.0), "45 s");
        assert_eq!(duration(1830.0), "30.5 min");
    }

    #[test]
    fn the_flag_documents_are_valid_feature_flags() {
        for on in [false, true] {
            let v: serde_json::Value = serde_json::from_str(&flags(on)).unwrap();
            assert_eq!(v["values"]["use_optimized_prompts"]["enabled"], on);
        }
    }
}

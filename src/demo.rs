//! `rollgate demo`: the sandbox, a `dixon-smart-repair-handler` function with
//! a few unrelated variables, and rollgate serving the seed plan on SQLite.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};

use crate::app::{self, ServeConfig};
use crate::sandbox::{Sandbox, SandboxConfig};

pub const DEMO_FUNCTION: &str = "dixon-smart-repair-handler";
/// The canary example's function: published version 1 behind alias `live`.
pub const DEMO_CANARY_FUNCTION: &str = "dixon-smart-repair-canary";
pub const DEMO_ALIAS: &str = "live";
const SEED_PLAN: &str = include_str!("../rollout-plans/dixon-smart-repair.toml");
const CANARY_PLAN: &str = include_str!("../rollout-plans/dixon-smart-repair-canary.toml");
/// The demo copy of the seed plan's name.
pub const DEMO_PLAN: &str = "dixon-smart-repair-demo";
/// The demo copy of the canary plan's name.
pub const DEMO_CANARY_PLAN: &str = "dixon-smart-repair-canary-demo";
const APPCONFIG_PLAN: &str = include_str!("../rollout-plans/dixon-smart-repair-appconfig.toml");
/// The AppConfig example's function: it reads its flags through the
/// AppConfig extension (the sandbox's simulator polls as it does).
pub const DEMO_APPCONFIG_FUNCTION: &str = "dixon-smart-repair-appconfig";
/// The demo copy of the AppConfig plan's name.
pub const DEMO_APPCONFIG_PLAN: &str = "dixon-smart-repair-appconfig-demo";
/// The AppConfig example's application, environment and profile, as the
/// shipped plan names them.
pub const DEMO_APPCONFIG_APPLICATION: &str = "dixon-smart-repair";
pub const DEMO_APPCONFIG_ENVIRONMENT: &str = "production";
pub const DEMO_APPCONFIG_PROFILE: &str = "feature-flags";
/// How long a strategy minute of AppConfig lasts in the demo's sandbox.
pub const DEMO_APPCONFIG_MINUTE: Duration = Duration::from_secs(2);
/// The profile's first version: the plan's three flags disabled, and a
/// flag of another team's (with an attribute and its constraints) that
/// rollgate must leave exactly as it is.
pub const DEMO_APPCONFIG_FLAGS: &str = r#"{
  "version": "1",
  "flags": {
    "use_optimized_prompts": {"name": "Optimized prompts", "attributes": {"variant": {"constraints": {"type": "string", "enum": ["v1", "v2"]}}}},
    "use_refactored_tools": {"name": "Refactored tools"},
    "use_full_optimization": {"name": "Full optimization"},
    "maintenance_banner": {"name": "Maintenance banner (another team's)", "attributes": {"text": {"constraints": {"type": "string", "required": true}}}}
  },
  "values": {
    "use_optimized_prompts": {"enabled": false, "variant": "v1"},
    "use_refactored_tools": {"enabled": false},
    "use_full_optimization": {"enabled": false},
    "maintenance_banner": {"enabled": true, "text": "Scheduled maintenance Sunday 02:00 UTC"}
  }
}"#;

/// The seed plan's shape with times a demo can show: bakes of 2 minutes,
/// gates over the last 2 minutes, guardrails judging each minute and
/// acting on the first bad one, a 15-minute baseline, and a settle delay
/// of 5 s (the demo's sandbox publishes metrics at once; real CloudWatch
/// needs the default 2 minutes).
pub fn demo_plan(seed: &str) -> String {
    let mut out = String::new();
    for line in seed.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("bake = ") {
            out.push_str(&format!("{indent}bake = \"2m\"\n"));
        } else if trimmed.starts_with("step_bake = ") {
            out.push_str(&format!("{indent}step_bake = \"1m\"\n"));
        } else if trimmed.starts_with("max_wait = ") {
            out.push_str(&format!("{indent}max_wait = \"10m\"\n"));
        } else if trimmed.starts_with("lookback = ") {
            out.push_str(&format!("{indent}lookback = \"15m\"\n"));
        } else if trimmed.starts_with("window = ") {
            out.push_str(&format!("{indent}window = \"1m\"\n"));
        } else if trimmed.starts_with("consecutive = ") {
            out.push_str(&format!("{indent}consecutive = 1\n"));
        } else if trimmed.starts_with("description = ") {
            out.push_str("description = \"Demo copy: the same phases, flags, guardrails and gates, with bakes of minutes, not hours\"\n");
        } else {
            out.push_str(line);
            out.push('\n');
            if trimmed == "[[phases.gates]]" {
                out.push_str(&format!("{indent}window = \"2m\"\n"));
            }
        }
    }
    out.push_str("\n# The demo's sandbox publishes metrics at once (no CloudWatch delay).\n[cloudwatch]\nsettle = \"5s\"\n");
    out
}

pub struct DemoConfig {
    pub listen: SocketAddr,
    pub sandbox_port: u16,
    /// Plans directory; when it does not exist the embedded seed plan is used.
    pub plans_dir: PathBuf,
    pub database_url: Option<String>,
    pub update_delay: Duration,
    /// Watcher tick.
    pub watch_interval: Duration,
}

/// AWS settings pointing at a sandbox, exactly as a user would configure an
/// endpoint override (the product has no sandbox-only code path).
pub async fn sandbox_aws_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "sandbox",
            "sandbox",
            None,
            None,
            "rollgate-demo",
        ))
        .load()
        .await
}

/// Creates the demo function with its unrelated variables and baseline flags.
pub async fn create_demo_function(aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    create_function_named(&aws_sdk_lambda::Client::new(aws), DEMO_FUNCTION).await
}

async fn create_function_named(lambda: &aws_sdk_lambda::Client, name: &str) -> anyhow::Result<()> {
    let vars: HashMap<String, String> = [
        ("TABLE_NAME", "dixon-sessions"),
        ("LOG_LEVEL", "INFO"),
        ("MODEL_ID", "anthropic.claude-3-5-sonnet"),
        ("USE_V2_HANDLER", "false"),
        ("USE_OPTIMIZED_PROMPTS", "false"),
        ("USE_REFACTORED_TOOLS", "false"),
        ("USE_FULL_OPTIMIZATION", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    create_function_with(lambda, name, vars).await
}

async fn create_function_with(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    vars: HashMap<String, String>,
) -> anyhow::Result<()> {
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/dixon-smart-repair")
        .handler("strands_best_practices_handler.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"demo".to_vec()))
                .build(),
        )
        .environment(Environment::builder().set_variables(Some(vars)).build())
        .send()
        .await?;
    Ok(())
}

/// Creates the canary example's function: the same variables, published
/// as version 1, with alias `live` (what callers invoke) pointing at it.
pub async fn create_demo_canary_function(aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    let lambda = aws_sdk_lambda::Client::new(aws);
    create_function_named(&lambda, DEMO_CANARY_FUNCTION).await?;
    let version = lambda
        .publish_version()
        .function_name(DEMO_CANARY_FUNCTION)
        .send()
        .await?;
    lambda
        .create_alias()
        .function_name(DEMO_CANARY_FUNCTION)
        .name(DEMO_ALIAS)
        .function_version(version.version().unwrap_or("1"))
        .send()
        .await?;
    Ok(())
}

/// The demo copy of the AppConfig plan: demo times, and the demo's own
/// function (whose environment points the extension at the profile).
pub fn demo_appconfig_plan(text: &str) -> String {
    demo_plan(text).replace(DEMO_FUNCTION, DEMO_APPCONFIG_FUNCTION)
}

/// Creates the AppConfig example: its function (the usual variables, the
/// flags out of them, and the extension's settings pointing at the
/// profile), the application, the environment, the feature-flag profile
/// with [`DEMO_APPCONFIG_FLAGS`] as version 1, deployed all at once.
pub async fn create_demo_appconfig(aws: &aws_config::SdkConfig) -> anyhow::Result<()> {
    create_demo_appconfig_monitored(aws, None).await
}

/// Like [`create_demo_appconfig`], the environment monitoring CloudWatch
/// alarm `alarm` (AppConfig rolls a deployment back while it is in ALARM).
pub async fn create_demo_appconfig_monitored(
    aws: &aws_config::SdkConfig,
    alarm: Option<&str>,
) -> anyhow::Result<()> {
    use aws_sdk_appconfig::primitives::Blob as AppConfigBlob;
    let lambda = aws_sdk_lambda::Client::new(aws);
    let vars: HashMap<String, String> = [
        ("TABLE_NAME", "dixon-sessions"),
        ("LOG_LEVEL", "INFO"),
        ("MODEL_ID", "anthropic.claude-3-5-sonnet"),
        ("APPCONFIG_APPLICATION", DEMO_APPCONFIG_APPLICATION),
        ("APPCONFIG_ENVIRONMENT", DEMO_APPCONFIG_ENVIRONMENT),
        ("APPCONFIG_PROFILE", DEMO_APPCONFIG_PROFILE),
        ("AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS", "45"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    create_function_with(&lambda, DEMO_APPCONFIG_FUNCTION, vars).await?;
    let ac = aws_sdk_appconfig::Client::new(aws);
    let app = ac
        .create_application()
        .name(DEMO_APPCONFIG_APPLICATION)
        .send()
        .await?;
    let app = app.id().unwrap_or_default().to_string();
    let mut env = ac
        .create_environment()
        .application_id(&app)
        .name(DEMO_APPCONFIG_ENVIRONMENT);
    if let Some(alarm) = alarm {
        env = env.monitors(
            aws_sdk_appconfig::types::Monitor::builder()
                .alarm_arn(format!(
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
                ))
                .alarm_role_arn("arn:aws:iam::123456789012:role/appconfig-monitors")
                .build()?,
        );
    }
    let env = env.send().await?;
    let env = env.id().unwrap_or_default().to_string();
    let profile = ac
        .create_configuration_profile()
        .application_id(&app)
        .name(DEMO_APPCONFIG_PROFILE)
        .location_uri("hosted")
        .r#type("AWS.AppConfig.FeatureFlags")
        .send()
        .await?;
    let profile = profile.id().unwrap_or_default().to_string();
    let version = ac
        .create_hosted_configuration_version()
        .application_id(&app)
        .configuration_profile_id(&profile)
        .content(AppConfigBlob::new(DEMO_APPCONFIG_FLAGS.as_bytes().to_vec()))
        .content_type("application/json")
        .send()
        .await?;
    ac.start_deployment()
        .application_id(&app)
        .environment_id(&env)
        .configuration_profile_id(&profile)
        .configuration_version(version.version_number().to_string())
        .deployment_strategy_id(crate::plan::APPCONFIG_ALL_AT_ONCE)
        .send()
        .await?;
    Ok(())
}

pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(
        config.sandbox_port,
        SandboxConfig {
            update_delay: config.update_delay,
            traffic_tick: Some(Duration::from_secs(1)),
            // The demo shows rollbacks within minutes: metrics at once.
            metric_delay: Duration::ZERO,
            // A strategy minute of AppConfig lasts 2 s: the plan's linear
            // 30-minute deployment (and 30-minute bake) takes 2 minutes.
            appconfig_minute: DEMO_APPCONFIG_MINUTE,
        },
    )
    .await?;
    sandbox.set_traffic(crate::sandbox::traffic::TrafficSettings {
        enabled: true,
        ..Default::default()
    });
    let aws = sandbox_aws_config(&sandbox.url()).await;
    create_demo_function(&aws).await?;
    create_demo_canary_function(&aws).await?;
    create_demo_appconfig(&aws).await?;

    let work = std::env::temp_dir().join(format!("rollgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    // The plans: those of --plans (or the seed), plus the seed's demo copy.
    let plans_dir = work.join("rollout-plans");
    std::fs::create_dir_all(&plans_dir)?;
    let mut seed = SEED_PLAN.to_string();
    let mut canary = CANARY_PLAN.to_string();
    let mut appconfig = APPCONFIG_PLAN.to_string();
    if config.plans_dir.is_dir() {
        for f in crate::plan::load_dir(&config.plans_dir)? {
            match f.name.as_str() {
                "dixon-smart-repair" => seed = f.text.clone(),
                "dixon-smart-repair-canary" => canary = f.text.clone(),
                "dixon-smart-repair-appconfig" => appconfig = f.text.clone(),
                _ => {}
            }
            std::fs::write(plans_dir.join(format!("{}.toml", f.name)), &f.text)?;
        }
    } else {
        std::fs::write(plans_dir.join("dixon-smart-repair.toml"), SEED_PLAN)?;
        std::fs::write(
            plans_dir.join("dixon-smart-repair-canary.toml"),
            CANARY_PLAN,
        )?;
        std::fs::write(
            plans_dir.join("dixon-smart-repair-appconfig.toml"),
            APPCONFIG_PLAN,
        )?;
    }
    std::fs::write(
        plans_dir.join(format!("{DEMO_PLAN}.toml")),
        demo_plan(&seed),
    )?;
    std::fs::write(
        plans_dir.join(format!("{DEMO_CANARY_PLAN}.toml")),
        demo_plan(&canary),
    )?;
    std::fs::write(
        plans_dir.join(format!("{DEMO_APPCONFIG_PLAN}.toml")),
        demo_appconfig_plan(&appconfig),
    )?;
    // Twenty minutes of traffic before now: baselines have data at once.
    let now = chrono::Utc::now();
    for i in 1..=120 {
        sandbox.emit_traffic_at(now - chrono::Duration::seconds(i * 10));
    }
    let database_url = config.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            work.join("rollgate-demo.db").display()
        )
    });
    let mut serve = ServeConfig::new(config.listen, plans_dir.clone(), database_url.clone());
    serve.watch_interval = Some(config.watch_interval);
    serve.demo_sandbox = Some(sandbox.url());
    let running = app::start(&serve, &aws).await?;
    let url = running.url();
    println!("rollgate demo is running\n");
    println!("  dashboard      {url}/   <- open this");
    println!(
        "                 start plan {DEMO_PLAN} (2-minute bakes), watch its gates pass and the phase"
    );
    println!(
        "                 become ready for approval, advance it, then press \"Demo: make this phase bad\""
    );
    println!(
        "                 or start {DEMO_CANARY_PLAN}: each phase on 10 %, then 50 % of alias {DEMO_ALIAS}, judged against the stable version"
    );
    println!(
        "                 or start {DEMO_APPCONFIG_PLAN}: the flags in AppConfig feature flags, deployed linearly (a strategy minute lasts {} s here) and read by the function every 45 s",
        DEMO_APPCONFIG_MINUTE.as_secs()
    );
    println!("  rollgate API   {url}/api/v1/rollouts");
    println!(
        "  AWS sandbox    {} (Lambda, CloudWatch, simulated traffic for {DEMO_FUNCTION})",
        sandbox.url()
    );
    println!("  plans          {}", plans_dir.display());
    println!("  database       {database_url}\n");
    println!("Try, in another terminal:");
    println!("  rollgate rollout start --plan dixon-smart-repair --server {url}");
    println!("  rollgate rollout advance 1 --reason 'baseline looks good' --server {url}");
    println!("  rollgate rollout rollback 1 --reason 'error rate up' --server {url}");
    println!("  rollgate audit list --server {url}");
    println!(
        "  rollgate sandbox bad USE_OPTIMIZED_PROMPTS --url {}   # watch the watcher roll it back",
        sandbox.url()
    );
    println!(
        "  curl {}/_sandbox/state   # the function's environment",
        sandbox.url()
    );
    println!("\nCtrl-C stops it.");
    app::shutdown_signal().await;
    running.stop().await;
    // The demo's files (database, plans) go with it.
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_plan_is_the_seed_with_minutes_for_hours() {
        let seed = crate::plan::Plan::parse("dixon-smart-repair", SEED_PLAN).unwrap();
        let demo = crate::plan::Plan::parse(DEMO_PLAN, &demo_plan(SEED_PLAN)).unwrap();
        assert_eq!(demo.flags, seed.flags);
        assert_eq!(demo.phases.len(), seed.phases.len());
        for (d, s) in demo.phases.iter().zip(&seed.phases) {
            assert_eq!((&d.name, &d.flags), (&s.name, &s.flags));
            assert_eq!(d.bake, Duration::from_secs(120));
            assert_eq!(d.gates.len(), s.gates.len());
            assert!(d.gates.iter().all(|g| g.window == Duration::from_secs(120)));
        }
        assert_eq!(demo.guardrails.len(), seed.guardrails.len());
        assert!(
            demo.guardrails
                .iter()
                .all(|g| g.window == Duration::from_secs(60))
        );
        assert_eq!(demo.baseline.lookback, Duration::from_secs(900));
        assert!(demo.guardrails.iter().all(|g| g.consecutive == 1));
        assert_eq!(demo.settle, Duration::from_secs(5));
        // The seed's [schedule] and [backstop] are commented examples.
        assert!(demo.schedule.is_unrestricted() && demo.backstop.is_none());
    }
}

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
const SEED_PLAN: &str = include_str!("../rollout-plans/dixon-smart-repair.toml");

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
    let lambda = aws_sdk_lambda::Client::new(aws);
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
    lambda
        .create_function()
        .function_name(DEMO_FUNCTION)
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

pub async fn run(config: DemoConfig) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(
        config.sandbox_port,
        SandboxConfig {
            update_delay: config.update_delay,
            traffic_tick: Some(Duration::from_secs(1)),
        },
    )
    .await?;
    sandbox.set_traffic(crate::sandbox::traffic::TrafficSettings {
        enabled: true,
        ..Default::default()
    });
    let aws = sandbox_aws_config(&sandbox.url()).await;
    create_demo_function(&aws).await?;

    let work = std::env::temp_dir().join(format!("rollgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let plans_dir = if config.plans_dir.is_dir() {
        config.plans_dir.clone()
    } else {
        let dir = work.join("rollout-plans");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("dixon-smart-repair.toml"), SEED_PLAN)?;
        dir
    };
    let database_url = config.database_url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            work.join("rollgate-demo.db").display()
        )
    });
    let mut serve = ServeConfig::new(config.listen, plans_dir.clone(), database_url.clone());
    serve.watch_interval = Some(config.watch_interval);
    let running = app::start(&serve, &aws).await?;
    let url = running.url();
    println!("rollgate demo is running\n");
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
    Ok(())
}

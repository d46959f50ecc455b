//! `rollgate bench`: measurements against the sandbox, printed as numbers
//! (timings are never asserted in tests). Run it in release mode:
//! `cargo run --release -- bench`.
//!
//! - time to rollback: from the tick at which a complete period of
//!   breaching data is first judged (a guardrail with `consecutive = 1`) to
//!   flags restored and verified, over many runs;
//! - the CloudWatch time model (`--periods`, in `periods`): GetMetricData
//!   cost per rollout-day, and time to rollback end to end on a simulated
//!   clock with CloudWatch's delay;
//! - watcher scale: N active rollouts with 5 guardrail metrics each — calls
//!   per tick against the minimum, tick wall time and CPU, process RSS;
//! - the dashboard and JSON API under load (`--dashboard`, in `dashboard`),
//!   with the open-loop load generator of `rollgate bench-load` (`load`);
//! - the canary judge on simulated canaries (`--canary`, in `canary`):
//!   false rollbacks, time to detect, early promotion, against the fixed
//!   threshold rule (pure and seeded, no sandbox);
//! - flag delivery (`--flag-delivery`, in `flag_delivery`): time until every
//!   simulated execution environment runs a changed flag, and the cold
//!   starts it costs, lambda-env against AppConfig (issue 11).

pub mod canary;
pub mod dashboard;
pub mod flag_delivery;
pub mod load;
pub mod periods;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;

use crate::app::{self, RunningApp, ServeConfig};
use crate::demo;
use crate::domain::{Principal, RolloutId};
use crate::metrics::queries::MAX_QUERIES_PER_CALL;
use crate::rollout::Command;
use crate::service::Ask;

/// A plan with five guardrail metrics for `function`.
fn bench_plan(function: &str, consecutive: u32) -> String {
    format!(
        r#"[target]
function = "{function}"
[flags]
USE_OPTIMIZED_PROMPTS = "false"
[defaults]
bake = "1h"
[metrics.tokens_per_request]
namespace = "DixonSmartRepair"
metric_name = "TokensPerRequest"
dimensions = {{ FunctionName = "{function}" }}
stat = "Average"
[[guardrails]]
name = "error-rate"
metric = "error_rate"
max_delta = 2.0
consecutive = {consecutive}
[[guardrails]]
name = "p99"
metric = "duration_p99"
max_ratio = 1.25
consecutive = {consecutive}
[[guardrails]]
name = "avg"
metric = "duration_avg"
max_ratio = 1.25
consecutive = {consecutive}
[[guardrails]]
name = "throttles"
metric = "throttles"
max = 100
consecutive = {consecutive}
[[guardrails]]
name = "tokens"
metric = "tokens_per_request"
max_ratio = 1.5
consecutive = {consecutive}
[[phases]]
name = "prompts"
set = {{ USE_OPTIMIZED_PROMPTS = "true" }}
"#
    )
}

/// The sandbox in its own process, so CPU and RSS measured here are
/// rollgate's alone.
struct SandboxProcess {
    child: std::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SandboxProcess {
    async fn start() -> anyhow::Result<SandboxProcess> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(std::env::current_exe()?)
            // No delay in the sandbox: the benchmarks that model
            // CloudWatch's delay do it on their own simulated clock.
            .args([
                "sandbox",
                "--port",
                &port.to_string(),
                "--metric-delay",
                "0",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let sandbox = SandboxProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if sandbox
                .http
                .get(format!("{}/_sandbox/traffic", sandbox.url))
                .send()
                .await
                .is_ok()
            {
                return Ok(sandbox);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("the sandbox did not start")
    }

    async fn set_traffic(&self, settings: serde_json::Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/traffic", self.url))
            .json(&settings)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// One tick of traffic stamped `at`.
    async fn traffic_at(&self, at: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/traffic/emit", self.url))
            .json(&json!({
                "end": at.timestamp_millis() as f64 / 1000.0,
                "ticks": 1,
                "every_secs": 10.0,
            }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// GetMetricData (calls, metrics requested) served so far.
    async fn get_metric_data_stats(&self) -> anyhow::Result<(u64, u64)> {
        let state: serde_json::Value = self
            .http
            .get(format!("{}/_sandbox/state", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let cw = &state["cloudwatch"];
        Ok((
            cw["get_metric_data_calls"].as_u64().unwrap_or_default(),
            cw["get_metric_data_queries"].as_u64().unwrap_or_default(),
        ))
    }

    /// Traffic every 10 s over the `minutes` before `end`.
    async fn traffic(&self, minutes: i64, end: chrono::DateTime<Utc>) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/_sandbox/traffic/emit", self.url))
            .json(&json!({
                "end": (end - chrono::Duration::seconds(10)).timestamp() as f64,
                "ticks": minutes * 6,
                "every_secs": 10.0,
            }))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

struct Rig {
    sandbox: SandboxProcess,
    app: RunningApp,
    aws: aws_config::SdkConfig,
    _dir: tempfile::TempDir,
}

async fn rig(functions: usize, consecutive: u32) -> anyhow::Result<Rig> {
    let plans: Vec<(String, String)> = (0..functions)
        .map(|i| {
            let name = format!("fn-{i:05}");
            let text = bench_plan(&name, consecutive);
            (name, text)
        })
        .collect();
    rig_with_plans(&plans).await
}

/// A sandbox in its own process, a function per plan (function name, plan
/// text; the plan is named after its function), and rollgate on SQLite
/// with no watcher loop (benchmarks tick it by hand).
async fn rig_with_plans(plans: &[(String, String)]) -> anyhow::Result<Rig> {
    let dir = tempfile::tempdir()?;
    let plans_dir = dir.path().join("plans");
    std::fs::create_dir_all(&plans_dir)?;
    let sandbox = SandboxProcess::start().await?;
    let aws = demo::sandbox_aws_config(&sandbox.url).await;
    let lambda = aws_sdk_lambda::Client::new(&aws);
    for (function, text) in plans {
        create_function(&lambda, function).await?;
        std::fs::write(plans_dir.join(format!("{function}.toml")), text)?;
    }
    let mut config = ServeConfig::new(
        "127.0.0.1:0".parse()?,
        plans_dir,
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    );
    config.watch_interval = None;
    let app = app::start(&config, &aws).await?;
    Ok(Rig {
        sandbox,
        app,
        aws,
        _dir: dir,
    })
}

async fn create_function(lambda: &aws_sdk_lambda::Client, name: &str) -> anyhow::Result<()> {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/bench")
        .handler("h.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"x".to_vec()))
                .build(),
        )
        .environment(
            Environment::builder()
                .variables("USE_OPTIMIZED_PROMPTS", "false")
                .variables("TABLE_NAME", "t")
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Starts a rollout of every plan, records baselines, moves each to its
/// first phase (forced: no bake in a benchmark).
async fn rollouts_in_first_phase(
    app: &RunningApp,
    names: &[String],
) -> anyhow::Result<Vec<RolloutId>> {
    let service = &app.state.service;
    let who = Principal::operator(Some("bench"))?;
    let mut ids = Vec::new();
    for name in names {
        // Benchmark functions have no week of history: past preflight.
        let reason = Some("benchmark".to_string());
        ids.push(
            service
                .start(&who, name, reason, true)
                .await?
                .done
                .rollout
                .id,
        );
    }
    app.state.watcher.tick(Utc::now()).await;
    for &id in &ids {
        service
            .command(
                &who,
                id,
                Command::Advance,
                Ask {
                    reason: Some("bench".into()),
                    force: true,
                    ..Ask::default()
                },
            )
            .await?;
    }
    Ok(ids)
}

pub async fn time_to_rollback(runs: usize) -> anyhow::Result<Vec<f64>> {
    let rig = rig(1, 1).await?;
    let name = "fn-00000".to_string();
    let mut samples = Vec::new();
    for _ in 0..runs {
        rig.sandbox.set_traffic(json!({ "bad_flags": [] })).await?;
        let now = Utc::now();
        rig.sandbox
            .traffic(10, now - chrono::Duration::minutes(10))
            .await?;
        let ids = rollouts_in_first_phase(&rig.app, std::slice::from_ref(&name)).await?;
        rig.sandbox
            .set_traffic(json!({ "bad_flags": ["USE_OPTIMIZED_PROMPTS"] }))
            .await?;
        // Bad data over the phase's first ten minutes, judged at the tick
        // that first sees a complete, settled five-minute period of it.
        let live = Utc::now();
        rig.sandbox
            .traffic(10, live + chrono::Duration::minutes(10))
            .await?;
        let now = live + chrono::Duration::minutes(12);
        let started = Instant::now();
        let report = rig.app.state.watcher.tick(now).await;
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        let rolled_back = report.decisions.iter().any(|d| d.action == "rollback");
        let r = rig.app.state.service.rollout(ids[0]).await?;
        anyhow::ensure!(
            rolled_back
                && r.observed_flags
                    .as_ref()
                    .and_then(|f| f.get("USE_OPTIMIZED_PROMPTS"))
                    .map(String::as_str)
                    == Some("false"),
            "run did not roll back: {report:?}"
        );
        samples.push(elapsed);
    }
    rig.app.stop().await;
    Ok(samples)
}

pub struct ScaleResult {
    pub rollouts: usize,
    pub queries: usize,
    pub calls: usize,
    pub minimum_calls: usize,
    pub tick_ms: f64,
    pub tick_cpu_ms: f64,
    pub rss_mb: f64,
    pub fetch_ms: f64,
    pub rollouts_ms: f64,
    /// The next tick, with no new period: wall time and metrics requested.
    pub idle_ms: f64,
    pub idle_queries: usize,
}

pub async fn watcher_scale(n: usize) -> anyhow::Result<ScaleResult> {
    let rig = rig(n, 3).await?;
    let names: Vec<String> = (0..n).map(|i| format!("fn-{i:05}")).collect();
    let now = Utc::now();
    rig.sandbox
        .set_traffic(json!({ "invocations_per_tick": 50 }))
        .await?;
    rig.sandbox
        .traffic(10, now - chrono::Duration::minutes(5))
        .await?;
    rollouts_in_first_phase(&rig.app, &names).await?;
    // The phase's first ten minutes of data; a warm-up tick (functions
    // read, statistics recorded, nothing complete yet), then the tick at
    // which the first five-minute periods are complete and settled: every
    // series of every rollout is read then (the heavy tick), and the next,
    // idle, one. Both within the 10 minutes a phase without gates keeps
    // its recorded statistics (their refresh is a write per rollout).
    let live = Utc::now();
    rig.sandbox
        .traffic(10, live + chrono::Duration::minutes(10))
        .await?;
    rig.app
        .state
        .watcher
        .tick(live + chrono::Duration::minutes(3))
        .await;
    let at = live + chrono::Duration::minutes(12);
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let report = rig.app.state.watcher.tick(at).await;
    let tick_ms = started.elapsed().as_secs_f64() * 1000.0;
    let tick_cpu_ms = (cpu_seconds() - cpu_before) * 1000.0;
    anyhow::ensure!(report.errors.is_empty(), "tick errors: {:?}", report.errors);
    anyhow::ensure!(
        report.rollouts_watched == n,
        "watched {} of {n}",
        report.rollouts_watched
    );
    let idle_started = Instant::now();
    let idle = rig
        .app
        .state
        .watcher
        .tick(at + chrono::Duration::seconds(10))
        .await;
    let idle_ms = idle_started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(
        idle.errors.is_empty(),
        "idle tick errors: {:?}",
        idle.errors
    );
    let result = ScaleResult {
        rollouts: n,
        queries: report.queries,
        calls: report.get_metric_data_calls,
        minimum_calls: report.queries.div_ceil(MAX_QUERIES_PER_CALL),
        tick_ms,
        tick_cpu_ms,
        rss_mb: rss_mb(),
        fetch_ms: report.fetch_ms,
        rollouts_ms: report.rollouts_ms,
        idle_ms,
        idle_queries: idle.queries,
    };
    let _ = &rig.aws;
    rig.app.stop().await;
    Ok(result)
}

/// This process's user + system CPU time, from /proc (Linux).
fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// A process's user + system CPU time (`pid` a number or `self`), from
/// /proc (Linux); 0 when it cannot be read.
fn cpu_seconds_of(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may contain spaces).
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs both benchmarks and prints a report (Markdown).
pub async fn run(runs: usize, sizes: &[usize], out: Option<&Path>) -> anyhow::Result<()> {
    let mut text = String::new();
    let mut samples = time_to_rollback(runs).await?;
    samples.sort_by(f64::total_cmp);
    text.push_str(&format!(
        "### Time to rollback ({runs} runs, sandbox update delay 0)\n\n\
         From the start of the tick that judges the first complete period of breaching data to flags restored and verified:\n\n\
         | p50 | p99 | max |\n|---|---|---|\n| {:.1} ms | {:.1} ms | {:.1} ms |\n\n",
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
        samples.last().copied().unwrap_or_default()
    ));
    text.push_str(
        "### Watcher scale (5 guardrail metrics per rollout, 7 CloudWatch series each)\n\n\
         The tick at which a five-minute period completes (every series read), then the next tick:\n\n\
         | rollouts | queries | GetMetricData calls | minimum ceil(q/500) | tick wall | of which metrics fetch | of which per-rollout work | tick CPU | RSS | next tick: queries, wall |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for &n in sizes {
        let r = watcher_scale(n).await?;
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} MB | {}, {:.0} ms |\n",
            r.rollouts,
            r.queries,
            r.calls,
            r.minimum_calls,
            r.tick_ms,
            r.fetch_ms,
            r.rollouts_ms,
            r.tick_cpu_ms,
            r.rss_mb,
            r.idle_queries,
            r.idle_ms
        ));
        eprintln!("scale {n}: done");
    }
    println!("{text}");
    if let Some(path) = out {
        std::fs::write(path, &text)?;
    }
    let _ = (json!(null), Duration::ZERO);
    Ok(())
}

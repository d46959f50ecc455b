//! The `rollgate` command line: argument parsing and dispatch only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use rollgate::app::{self, ServeConfig};
use rollgate::client::{self, Client, ClientError};
use rollgate::{demo, plan, sandbox};

#[derive(Parser)]
#[command(
    name = "rollgate",
    version,
    about = "Staged feature-flag rollouts for AWS Lambda"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ROLLGATE_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Output {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the API server.
    Serve(ServeArgs),
    /// Run the sandbox, a demo function and the server, all local.
    Demo(DemoArgs),
    /// Run the local AWS sandbox (Lambda, CloudWatch) on a loopback port, or
    /// steer a running one's traffic simulator (`bad FLAG`, `good`).
    Sandbox {
        #[command(subcommand)]
        action: Option<SandboxAction>,
        #[arg(long, default_value_t = 4566)]
        port: u16,
        /// How long a function stays `LastUpdateStatus=InProgress` after an update.
        #[arg(long, default_value_t = 0)]
        update_delay_ms: u64,
        /// Simulate traffic (metrics every second for every function).
        #[arg(long)]
        traffic: bool,
        /// A flag that makes a function fail and slow down while it is "true" (repeatable).
        #[arg(long)]
        bad_flag: Vec<String>,
    },
    /// Measure time to rollback and watcher scale against the sandbox
    /// (run with --release); prints Markdown for BENCHMARKS.md.
    Bench {
        /// Time-to-rollback runs.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Rollout counts for the scale benchmark.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
        rollouts: Vec<usize>,
        /// Also write the report here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check plan files, print the plan JSON Schema.
    #[command(subcommand)]
    Plan(PlanCmd),
    /// Start, inspect and step rollouts on a running server.
    #[command(subcommand)]
    Rollout(RolloutCmd),
    /// Read, verify and export the audit log of a running server.
    #[command(subcommand)]
    Audit(AuditCmd),
}

#[derive(Subcommand)]
enum SandboxAction {
    /// Make a flag "bad": while it is "true", the simulated function fails
    /// more and slows down (to watch rollgate roll it back).
    Bad {
        flag: String,
        /// The running sandbox (printed by `rollgate demo`).
        #[arg(long, env = "ROLLGATE_SANDBOX")]
        url: String,
    },
    /// Make every flag good again.
    Good {
        #[arg(long, env = "ROLLGATE_SANDBOX")]
        url: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "ROLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, env = "ROLLGATE_PLANS", default_value = "rollout-plans")]
    plans: PathBuf,
    /// sqlite://FILE, postgres://… or a file path.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://rollgate.db?mode=rwc"
    )]
    database: String,
    /// Seconds between retries of recorded but unconfirmed flag writes.
    #[arg(long, env = "ROLLGATE_RECONCILE_INTERVAL", default_value_t = 5)]
    reconcile_interval: u64,
    /// Seconds between watcher ticks (guardrail evaluation); 0 disables the watcher.
    #[arg(long, env = "ROLLGATE_WATCH_INTERVAL", default_value_t = 10)]
    watch_interval: u64,
}

#[derive(Args)]
struct DemoArgs {
    #[arg(long, env = "ROLLGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Sandbox port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    sandbox_port: u16,
    #[arg(long, env = "ROLLGATE_PLANS", default_value = "rollout-plans")]
    plans: PathBuf,
    /// Defaults to a fresh SQLite file in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    #[arg(long, default_value_t = 500)]
    update_delay_ms: u64,
    /// Seconds between watcher ticks.
    #[arg(long, default_value_t = 5)]
    watch_interval: u64,
}

#[derive(Subcommand)]
enum PlanCmd {
    /// Validate plan files; prints `file:line:col: message` per problem.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Print the JSON Schema of the plan format.
    Schema,
}

#[derive(Args, Clone)]
struct Remote {
    /// rollgate server URL.
    #[arg(
        long,
        env = "ROLLGATE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    #[arg(long, value_enum, default_value = "human", global = true)]
    output: Output,
    /// Recorded as the actor in the audit log.
    #[arg(long, env = "ROLLGATE_ACTOR", global = true)]
    actor: Option<String>,
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Start a rollout of a plan.
    Start {
        #[arg(long)]
        plan: String,
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one rollout, or list them all.
    Status {
        id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Move to the next phase (or complete after the last).
    Advance {
        #[command(flatten)]
        step: StepArgs,
        /// Promote although bake time or gates say not yet (needs --reason).
        #[arg(long)]
        force: bool,
    },
    /// Freeze the rollout in its phase.
    Pause(StepArgs),
    /// Unfreeze a paused rollout.
    Resume(StepArgs),
    /// Return the flags to the plan's rollback target.
    Rollback {
        #[command(flatten)]
        step: StepArgs,
        /// Override the plan's target: baseline or previous.
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Args)]
struct StepArgs {
    id: String,
    #[arg(long)]
    reason: Option<String>,
    /// Refuse unless the rollout is at this version.
    #[arg(long)]
    expected_version: Option<i64>,
    #[command(flatten)]
    remote: Remote,
}

#[derive(Args)]
struct AuditFilterArgs {
    #[arg(long)]
    rollout: Option<i64>,
    #[arg(long)]
    actor_filter: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time.
    #[arg(long)]
    until: Option<String>,
}

impl AuditFilterArgs {
    fn query(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        if let Some(r) = self.rollout {
            q.push(("rollout", r.to_string()));
        }
        for (k, v) in [
            ("actor", &self.actor_filter),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        q
    }
}

#[derive(Subcommand)]
enum AuditCmd {
    /// List entries (oldest first), following cursors.
    List {
        #[command(flatten)]
        filter: AuditFilterArgs,
        /// Stop after this many entries.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check the hash chain; exits non-zero when an entry was edited or deleted.
    Verify {
        #[command(flatten)]
        remote: Remote,
    },
    /// Export entries as JSON Lines or CSV on stdout.
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn,sqlx=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Serve(a) => {
            let mut config = ServeConfig::new(a.listen, a.plans, a.database);
            config.reconcile_interval = Duration::from_secs(a.reconcile_interval.max(1));
            config.watch_interval =
                (a.watch_interval > 0).then(|| Duration::from_secs(a.watch_interval));
            app::serve(config, app::aws_config_from_env().await).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo(a) => {
            demo::run(demo::DemoConfig {
                listen: a.listen,
                sandbox_port: a.sandbox_port,
                plans_dir: a.plans,
                database_url: a.database,
                update_delay: Duration::from_millis(a.update_delay_ms),
                watch_interval: Duration::from_secs(a.watch_interval.max(1)),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sandbox {
            action: Some(action),
            ..
        } => {
            let (url, bad_flags) = match action {
                SandboxAction::Bad { flag, url } => (url, vec![flag]),
                SandboxAction::Good { url } => (url, vec![]),
            };
            let resp = reqwest::Client::new()
                .post(format!("{}/_sandbox/traffic", url.trim_end_matches('/')))
                .json(&json!({ "bad_flags": bad_flags }))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach the sandbox at {url}: {e}"))?;
            if !resp.status().is_success() {
                anyhow::bail!(
                    "the sandbox refused: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            let settings: Value = resp.json().await?;
            println!("bad flags now: {}", settings["bad_flags"]);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sandbox {
            action: None,
            port,
            update_delay_ms,
            traffic,
            bad_flag,
        } => {
            sandbox::serve_forever(
                port,
                sandbox::SandboxConfig {
                    update_delay: Duration::from_millis(update_delay_ms),
                    traffic_tick: Some(Duration::from_secs(1)),
                },
                sandbox::traffic::TrafficSettings {
                    enabled: traffic,
                    bad_flags: bad_flag.into_iter().collect(),
                    ..Default::default()
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            runs,
            rollouts,
            out,
        } => {
            rollgate::bench::run(runs, &rollouts, out.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plan(PlanCmd::Validate { files, output }) => Ok(validate_plans(&files, output)),
        Cmd::Plan(PlanCmd::Schema) => {
            println!("{}", serde_json::to_string_pretty(&plan::json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rollout(cmd) => rollout(cmd).await.map_err(Into::into),
        Cmd::Audit(cmd) => audit(cmd).await.map_err(Into::into),
    }
}

fn validate_plans(files: &[PathBuf], output: Output) -> ExitCode {
    let mut failed = false;
    let mut results = Vec::new();
    for file in files {
        match plan::validate_file(file) {
            Ok(p) => {
                if output == Output::Human {
                    println!(
                        "{}: ok ({} phases, function {})",
                        file.display(),
                        p.phases.len(),
                        p.target.function
                    );
                }
                results.push(json!({ "file": file, "valid": true, "errors": [] }));
            }
            Err(errors) => {
                failed = true;
                if output == Output::Human {
                    errors.iter().for_each(|e| eprintln!("{e}"));
                }
                results.push(json!({ "file": file, "valid": false, "errors": errors }));
            }
        }
    }
    if output == Output::Json {
        println!("{}", Value::Array(results));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn default_actor(remote: &Remote) -> String {
    remote.actor.clone().unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        format!("{user} (cli)")
    })
}

fn print_rollout(body: &Value, output: Output, status: u16) -> Result<(), ClientError> {
    if output == Output::Json {
        println!("{body}");
        return Ok(());
    }
    let r = client::parse_rollout(body)?;
    print!("{}", client::render_rollout(&r));
    if status == 202 {
        eprintln!("warning: the flag write is not confirmed yet; rollgate keeps retrying it");
    }
    Ok(())
}

async fn rollout(cmd: RolloutCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        RolloutCmd::Start {
            plan,
            reason,
            remote,
        } => {
            let c = Client::new(&remote.server);
            let a = c
                .post(
                    "/api/v1/rollouts",
                    &json!({ "plan": plan, "reason": reason, "actor": default_actor(&remote) }),
                )
                .await?;
            print_rollout(&a.body, remote.output, a.status)?;
        }
        RolloutCmd::Status { id, remote } => {
            let c = Client::new(&remote.server);
            match id {
                Some(id) => {
                    let a = c.get(&format!("/api/v1/rollouts/{id}")).await?;
                    print_rollout(&a.body, remote.output, a.status)?;
                }
                None => {
                    let a = c.get("/api/v1/rollouts").await?;
                    if remote.output == Output::Json {
                        println!("{}", a.body);
                    } else {
                        let list: rollgate::web::views::RolloutList =
                            serde_json::from_value(a.body)
                                .map_err(|e| ClientError::Protocol(e.to_string()))?;
                        if list.rollouts.is_empty() {
                            println!("no rollouts yet");
                        }
                        for r in &list.rollouts {
                            println!("{}", client::render_rollout_row(r));
                        }
                    }
                }
            }
        }
        RolloutCmd::Advance { step: s, force } => {
            step(s, "advance", force.then_some(("force", json!(true)))).await?
        }
        RolloutCmd::Pause(s) => step(s, "pause", None).await?,
        RolloutCmd::Resume(s) => step(s, "resume", None).await?,
        RolloutCmd::Rollback { step: s, to } => {
            step(s, "rollback", to.map(|t| ("to", json!(t)))).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn step(s: StepArgs, command: &str, extra: Option<(&str, Value)>) -> Result<(), ClientError> {
    let c = Client::new(&s.remote.server);
    let mut body = json!({
        "reason": s.reason,
        "expected_version": s.expected_version,
        "actor": default_actor(&s.remote),
    });
    if let Some((key, value)) = extra {
        body[key] = value;
    }
    let a = c
        .post(&format!("/api/v1/rollouts/{}/{command}", s.id), &body)
        .await?;
    print_rollout(&a.body, s.remote.output, a.status)
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn audit(cmd: AuditCmd) -> Result<ExitCode, ClientError> {
    match cmd {
        AuditCmd::List {
            filter,
            limit,
            remote,
        } => {
            let c = Client::new(&remote.server);
            let mut cursor: Option<i64> = None;
            let mut shown = 0;
            let mut all = Vec::new();
            loop {
                let mut q = filter.query();
                q.push(("limit", limit.clamp(1, 1000).to_string()));
                if let Some(cur) = cursor {
                    q.push(("cursor", cur.to_string()));
                }
                let a = c.get(&format!("/api/v1/audit{}", query_string(&q))).await?;
                let page = client::parse_audit_page(&a.body)?;
                for e in page.entries {
                    if shown >= limit {
                        break;
                    }
                    shown += 1;
                    if remote.output == Output::Json {
                        all.push(e);
                    } else {
                        println!("{}", client::render_audit_entry(&e));
                    }
                }
                match page.next_cursor {
                    Some(next) if shown < limit => cursor = Some(next),
                    _ => break,
                }
            }
            if remote.output == Output::Json {
                println!("{}", serde_json::to_string(&all).unwrap_or_default());
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCmd::Verify { remote } => {
            let c = Client::new(&remote.server);
            let a = c.get("/api/v1/audit/verify").await?;
            let ok = a.body["ok"].as_bool() == Some(true);
            if remote.output == Output::Json {
                println!("{}", a.body);
            } else if ok {
                println!("audit log intact: {} entries verified", a.body["entries"]);
            } else {
                println!("AUDIT LOG TAMPERED: {} entries checked", a.body["entries"]);
                for p in a.body["problems"].as_array().into_iter().flatten() {
                    println!(
                        "  entry {}: {}",
                        p["seq"],
                        p["problem"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        AuditCmd::Export {
            filter,
            format,
            remote,
        } => {
            let c = Client::new(&remote.server);
            let mut q = filter.query();
            q.push(("format", format));
            let text = c
                .get_text(&format!("/api/v1/audit/export{}", query_string(&q)))
                .await?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

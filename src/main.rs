//! The `rollgate` command line: argument parsing and dispatch only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use rollgate::app::{self, ServeConfig};
use rollgate::cli::{self, Remote};
use rollgate::client::Step;
use rollgate::domain::RolloutId;
use rollgate::plan::RollbackTarget;
use rollgate::web::views::AuditQuery;
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
    Serve(Box<ServeArgs>),
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
        /// How long after it is put a metric datum becomes visible to
        /// GetMetricData, as CloudWatch's delay: "60s", "2m", "500ms", or
        /// seconds ("0" = at once).
        #[arg(long, default_value = "60s", value_parser = parse_metric_delay)]
        metric_delay: Duration,
        /// Simulate traffic (metrics every second for every function).
        #[arg(long)]
        traffic: bool,
        /// A flag that makes a function fail and slow down while it is "true" (repeatable).
        #[arg(long)]
        bad_flag: Vec<String>,
    },
    /// Measure time to rollback and watcher scale against the sandbox, or
    /// (--dashboard) the dashboard and API under load, or (--canary) the
    /// canary judge on simulated canaries (run with --release); prints
    /// Markdown for BENCHMARKS.md.
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
        /// Instead: GetMetricData cost per rollout-day and end-to-end time to
        /// rollback on a simulated clock (see BENCHMARKS.md, "CloudWatch time").
        #[arg(long)]
        periods: bool,
        /// Periods: rollout counts for the cost table.
        #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
        cost_rollouts: Vec<usize>,
        /// Periods: end-to-end runs per guardrail set.
        #[arg(long, default_value_t = 10)]
        e2e_runs: usize,
        /// Instead: the dashboard and JSON API under load from another
        /// process, on a seeded store (see BENCHMARKS.md, "Dashboard").
        #[arg(long)]
        dashboard: bool,
        /// Dashboard: keep the seeded SQLite files in this directory and
        /// reuse them on the next run.
        #[arg(long)]
        reuse: Option<PathBuf>,
        /// Dashboard: rollouts in the main data set.
        #[arg(long, default_value_t = 1000)]
        dashboard_rollouts: usize,
        /// Dashboard: audit entries in the main data set.
        #[arg(long, default_value_t = 1_000_000)]
        audit_entries: usize,
        /// Dashboard: requests per second on each endpoint.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// Dashboard: measured seconds per endpoint.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        /// Dashboard: skip the data sets a tenth the size.
        #[arg(long)]
        no_scaling: bool,
        /// Instead: the canary judge on simulated canaries, against the
        /// fixed threshold rule (see BENCHMARKS.md, "Canary judge").
        #[arg(long)]
        canary: bool,
        /// Canary: simulated canaries per scenario and rate.
        #[arg(long, default_value_t = 1000)]
        canary_runs: usize,
        /// Canary: total invocations a second (canary and stable).
        #[arg(long, value_delimiter = ',', default_value = "20,200,2000")]
        canary_rates: Vec<f64>,
        /// Instead: flag delivery, lambda-env against AppConfig, on a
        /// simulated clock (see BENCHMARKS.md, "Flag delivery").
        #[arg(long)]
        flag_delivery: bool,
        /// Flag delivery: runs (each with other poll phases).
        #[arg(long, default_value_t = 10)]
        flag_delivery_runs: usize,
    },
    /// The dashboard benchmark's load generator (open loop, run as a
    /// process of its own); prints its figures as JSON.
    #[command(hide = true)]
    BenchLoad {
        /// Requested in turn (repeatable).
        #[arg(long, required = true)]
        url: Vec<String>,
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
        #[arg(long, default_value_t = 2.0)]
        warmup_seconds: f64,
        #[arg(long, default_value_t = 256)]
        max_in_flight: usize,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
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
    /// Manage the people who may sign in (on the server's database).
    #[command(subcommand)]
    User(UserCmd),
    /// Manage API tokens on the server's database (the first admin token;
    /// admins also make them from the API or the dashboard).
    #[command(subcommand)]
    Token(TokenCmd),
}

#[derive(Args)]
struct DatabaseArg {
    /// The server's database (as `rollgate serve --database`).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://rollgate.db?mode=rwc"
    )]
    database: String,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Make a token; prints its secret once (stdout), never again.
    Create {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// It stops working after this long ("30d", "12h"); default: never.
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// List tokens: role, state, expiry, last use (never the secrets).
    List {
        #[command(flatten)]
        db: DatabaseArg,
        #[arg(long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Revoke a token: every server refuses it from its next request.
    Revoke {
        name: String,
        #[command(flatten)]
        db: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. The password is asked for twice (not echoed), or read
    /// as one line from stdin when stdin is not a terminal; never a flag.
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// The server's database (as `rollgate serve --database`).
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://rollgate.db?mode=rwc"
        )]
        database: String,
    },
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
    /// Seconds the leader lease lasts unrenewed: with several servers on one
    /// PostgreSQL database, another takes over this long after the leader dies.
    #[arg(long, env = "ROLLGATE_LEASE_TTL", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600))]
    lease_ttl: u64,
    /// Seconds between drift checks of each rollout's function.
    #[arg(long, env = "ROLLGATE_DRIFT_INTERVAL", default_value_t = 60)]
    drift_interval: u64,
    /// Lambda API calls a second drift checks may use (the account's
    /// control-plane budget, about 15 a second, is shared with deploys).
    #[arg(long, env = "ROLLGATE_LAMBDA_BUDGET", default_value_t = 2.0)]
    lambda_budget: f64,
    /// Listen on a non-loopback address although sign-in is off: anyone
    /// who reaches it can change flags. Only on a trusted network.
    #[arg(long, env = "ROLLGATE_INSECURE_LISTEN_WITHOUT_AUTH")]
    insecure_listen_without_auth: bool,
    /// With --auth none: a DNS name requests may be addressed to besides
    /// localhost and IP addresses (repeatable, or comma-separated), e.g.
    /// the public name a proxy in front keeps in `Host`. Others get 403.
    #[arg(long, env = "ROLLGATE_ALLOWED_HOST", value_delimiter = ',')]
    allowed_host: Vec<String>,
    /// Who must sign in: "none" (names are claimed; loopback only unless
    /// forced), or "local" (users from `rollgate user add` sign in with
    /// passwords; automation uses API tokens).
    #[arg(long, env = "ROLLGATE_AUTH", value_enum, default_value = "none")]
    auth: AuthArg,
    /// A signed-in session ends after this long unused ("30m").
    #[arg(long, env = "ROLLGATE_SESSION_IDLE", default_value = "30m", value_parser = parse_time_delta)]
    session_idle: chrono::TimeDelta,
    /// ... and this long after sign-in, used or not ("12h").
    #[arg(long, env = "ROLLGATE_SESSION_MAX", default_value = "12h", value_parser = parse_time_delta)]
    session_max: chrono::TimeDelta,
    /// Mark cookies Secure (sent over HTTPS only): set it when browsers
    /// reach rollgate through a TLS-terminating proxy.
    #[arg(long, env = "ROLLGATE_SECURE_COOKIES")]
    secure_cookies: bool,
    /// With --auth local: believe a user name in this header (e.g.
    /// x-forwarded-user) when it comes from a --trusted-proxy address; the
    /// user must exist (`rollgate user add`), its role is rollgate's.
    #[arg(long, env = "ROLLGATE_TRUST_PROXY_HEADER", requires = "trusted_proxy")]
    trust_proxy_header: Option<axum::http::HeaderName>,
    /// The authenticating proxy's own address (repeatable, or comma-separated).
    #[arg(
        long,
        env = "ROLLGATE_TRUSTED_PROXY",
        value_delimiter = ',',
        requires = "trust_proxy_header"
    )]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key).
    /// Cookies are then Secure and answers carry HSTS.
    #[arg(long, env = "ROLLGATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "ROLLGATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With --auth local: also let users sign in through this OpenID
    /// Connect provider (its issuer URL, as in its ID tokens).
    #[arg(long, env = "ROLLGATE_OIDC_ISSUER", requires_all = ["oidc_client_id", "oidc_redirect_url"])]
    oidc_issuer: Option<String>,
    /// rollgate's client id at the provider.
    #[arg(long, env = "ROLLGATE_OIDC_CLIENT_ID")]
    oidc_client_id: Option<String>,
    /// A file holding the client secret (or set ROLLGATE_OIDC_CLIENT_SECRET;
    /// never on the command line). Neither: a public client, PKCE only.
    #[arg(long, env = "ROLLGATE_OIDC_CLIENT_SECRET_FILE")]
    oidc_client_secret_file: Option<PathBuf>,
    /// rollgate's public URL of /login/oidc/callback, as registered with
    /// the provider (e.g. https://rollgate.example.com/login/oidc/callback).
    #[arg(long, env = "ROLLGATE_OIDC_REDIRECT_URL")]
    oidc_redirect_url: Option<String>,
    /// Which provider group gives which role: GROUP=ROLE (repeatable, or
    /// comma-separated), e.g. rollgate-admins=admin. Users in none of
    /// them are not let in; the highest role given wins.
    #[arg(long, env = "ROLLGATE_OIDC_ROLE", value_delimiter = ',')]
    oidc_role: Vec<String>,
    /// The ID token (or userinfo) claim that lists the user's groups.
    #[arg(long, env = "ROLLGATE_OIDC_ROLES_CLAIM", default_value = "groups")]
    oidc_roles_claim: String,
    /// The claim that names the user in the audit log (oidc:NAME).
    #[arg(
        long,
        env = "ROLLGATE_OIDC_NAME_CLAIM",
        default_value = "preferred_username"
    )]
    oidc_name_claim: String,
    /// Scopes to ask for besides openid (repeatable, or comma-separated).
    #[arg(
        long,
        env = "ROLLGATE_OIDC_SCOPE",
        value_delimiter = ',',
        default_value = "profile,email"
    )]
    oidc_scope: Vec<String>,
    /// Another audience an ID token may name besides the client id
    /// (repeatable); a token naming any audience not listed is refused.
    #[arg(long, env = "ROLLGATE_OIDC_AUDIENCE", value_delimiter = ',')]
    oidc_audience: Vec<String>,
}

/// The identity provider from the serve flags, if one is configured.
fn oidc_from_args(a: &ServeArgs) -> anyhow::Result<Option<rollgate::oidc::OidcProvider>> {
    let Some(issuer) = a.oidc_issuer.clone() else {
        return Ok(None);
    };
    let client_secret = match (
        &a.oidc_client_secret_file,
        std::env::var("ROLLGATE_OIDC_CLIENT_SECRET"),
    ) {
        (Some(path), _) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("--oidc-client-secret-file {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        (None, Ok(secret)) if !secret.trim().is_empty() => Some(secret.trim().to_string()),
        _ => None,
    };
    let roles = a
        .oidc_role
        .iter()
        .map(|m| rollgate::domain::oidc::parse_role_mapping(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--oidc-role {e}"))?;
    let settings = rollgate::domain::oidc::OidcSettings {
        issuer,
        client_id: a.oidc_client_id.clone().unwrap_or_default(),
        client_secret,
        redirect_url: a.oidc_redirect_url.clone().unwrap_or_default(),
        audiences: a.oidc_audience.clone(),
        scopes: a
            .oidc_scope
            .iter()
            .filter(|s| !s.is_empty() && *s != "openid")
            .cloned()
            .collect(),
        roles_claim: a.oidc_roles_claim.clone(),
        roles,
        name_claim: a.oidc_name_claim.clone(),
    };
    rollgate::oidc::OidcProvider::new(settings)
        .map(Some)
        .map_err(|e| anyhow::anyhow!(e))
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum AuthArg {
    None,
    Local,
}

/// A plan duration ("30m", "12h") as a time span.
fn parse_time_delta(s: &str) -> Result<chrono::TimeDelta, String> {
    let d = plan::parse_duration(s)?;
    chrono::TimeDelta::from_std(d).map_err(|_| format!("{s:?} is too long"))
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
    /// Check plan NAME against AWS through the server (the function, every
    /// phase's environment size, baseline data, custom metrics, alarms,
    /// permissions); writes nothing. Exits 1 when a check fails.
    Preflight {
        /// Plan name (file stem in the server's plans directory).
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args, Clone)]
struct RemoteArgs {
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
    /// Recorded as the actor in the audit log, while the server has
    /// sign-in off (with sign-in on, the server knows who you are).
    #[arg(long, env = "ROLLGATE_ACTOR", global = true)]
    actor: Option<String>,
    /// An API token (from an admin): sent as "Authorization: Bearer". Prefer
    /// the environment variable: a flag shows in `ps` and shell history.
    #[arg(long, env = "ROLLGATE_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Also trust this CA certificate (PEM) for an https:// server (a
    /// private CA); the system's CAs are trusted anyway.
    #[arg(long, env = "ROLLGATE_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
}

impl RemoteArgs {
    fn remote(&self) -> Remote {
        Remote {
            server: self.server.clone(),
            json: self.output == Output::Json,
            actor: self.actor.clone(),
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
        }
    }
}

/// `--metric-delay`: plain seconds ("0", "90"), milliseconds ("500ms"), or
/// a plan duration ("60s", "2m", "1m30s").
fn parse_metric_delay(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    if let Some(ms) = s.strip_suffix("ms")
        && let Ok(ms) = ms.parse::<u64>()
    {
        return Ok(Duration::from_millis(ms));
    }
    // "0s", "0m": the plan parser refuses zero, a delay may be none.
    let number = s.trim_end_matches(['s', 'm', 'h', 'd']);
    if !number.is_empty() && number.len() + 1 == s.len() && number.bytes().all(|b| b == b'0') {
        return Ok(Duration::ZERO);
    }
    plan::parse_duration(s)
}

fn parse_id(s: &str) -> Result<RolloutId, String> {
    s.parse()
}

fn parse_target(s: &str) -> Result<RollbackTarget, String> {
    match s {
        "baseline" => Ok(RollbackTarget::Baseline),
        "previous" => Ok(RollbackTarget::Previous),
        other => Err(format!("{other:?}: use baseline or previous")),
    }
}

#[derive(Subcommand)]
enum RolloutCmd {
    /// Start a rollout of a plan.
    Start {
        #[arg(long)]
        plan: String,
        #[arg(long)]
        reason: Option<String>,
        /// Start although a preflight check fails (needs --reason; the
        /// audit log records the failures forced past).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one rollout, or list them all.
    Status {
        #[arg(value_parser = parse_id)]
        id: Option<RolloutId>,
        #[command(flatten)]
        remote: RemoteArgs,
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
    /// Return the flags to the plan's rollback target (needs --reason).
    Rollback {
        #[command(flatten)]
        step: StepArgs,
        /// Override the plan's target: baseline or previous.
        #[arg(long, value_parser = parse_target)]
        to: Option<RollbackTarget>,
    },
    /// End a rollout without writing anything and free its function (needs
    /// --reason); the flags stay as they are.
    Abandon(StepArgs),
}

#[derive(Args)]
struct StepArgs {
    #[arg(value_parser = parse_id)]
    id: RolloutId,
    #[arg(long)]
    reason: Option<String>,
    /// Refuse unless the rollout is at this version.
    #[arg(long)]
    expected_version: Option<i64>,
    #[command(flatten)]
    remote: RemoteArgs,
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
    since: Option<DateTime<Utc>>,
    /// RFC 3339 time.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
}

impl AuditFilterArgs {
    fn query(&self) -> AuditQuery {
        AuditQuery {
            rollout: self.rollout,
            actor: self.actor_filter.clone(),
            action: self.action.clone(),
            since: self.since,
            until: self.until,
            ..AuditQuery::default()
        }
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
        remote: RemoteArgs,
    },
    /// Check the hash chain; exits non-zero when an entry was edited or deleted.
    Verify {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Export entries as JSON Lines or CSV on stdout.
    Export {
        #[command(flatten)]
        filter: AuditFilterArgs,
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        remote: RemoteArgs,
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
            // Read before the rest of `a` is taken apart.
            let oidc = oidc_from_args(&a)?;
            let mut config = ServeConfig::new(a.listen, a.plans, a.database);
            config.reconcile_interval = Duration::from_secs(a.reconcile_interval.max(1));
            config.watch_interval =
                (a.watch_interval > 0).then(|| Duration::from_secs(a.watch_interval));
            config.lease_ttl = Duration::from_secs(a.lease_ttl);
            config.drift_interval = Duration::from_secs(a.drift_interval);
            if !(a.lambda_budget.is_finite() && a.lambda_budget > 0.0) {
                anyhow::bail!("--lambda-budget must be a positive number of calls a second");
            }
            config.lambda_budget = a.lambda_budget;
            config.insecure_listen_without_auth = a.insecure_listen_without_auth;
            config.tls = match (a.tls_cert.clone(), a.tls_key.clone()) {
                (Some(cert), Some(key)) => Some(app::TlsFiles { cert, key }),
                _ => None,
            };
            if a.session_idle > a.session_max {
                anyhow::bail!("--session-idle must not be longer than --session-max");
            }
            if a.session_max > chrono::TimeDelta::days(30) {
                anyhow::bail!("--session-max is at most 30d (a stolen cookie must not last)");
            }
            if oidc.is_some() && a.auth != AuthArg::Local {
                anyhow::bail!("--oidc-issuer needs --auth local (sign-in on)");
            }
            config.auth = rollgate::web::auth::AuthConfig {
                mode: match a.auth {
                    AuthArg::None => rollgate::web::auth::AuthMode::None,
                    AuthArg::Local => rollgate::web::auth::AuthMode::Local,
                },
                limits: rollgate::domain::auth::SessionLimits {
                    idle: a.session_idle,
                    absolute: a.session_max,
                },
                secure_cookies: a.secure_cookies,
                proxy: a
                    .trust_proxy_header
                    .map(|header| rollgate::web::auth::ProxyTrust {
                        header,
                        from: a.trusted_proxy.clone(),
                    }),
                oidc: oidc.map(std::sync::Arc::new),
                allowed_hosts: a.allowed_host.clone(),
                ..Default::default()
            };
            if config.auth.proxy.is_some() && a.auth != AuthArg::Local {
                anyhow::bail!(
                    "--trust-proxy-header needs --auth local (the proxy's users are rollgate users)"
                );
            }
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
        } => match action {
            SandboxAction::Bad { flag, url } => cli::sandbox_bad_flags(&url, vec![flag]).await,
            SandboxAction::Good { url } => cli::sandbox_bad_flags(&url, vec![]).await,
        },
        Cmd::Sandbox {
            action: None,
            port,
            update_delay_ms,
            metric_delay,
            traffic,
            bad_flag,
        } => {
            sandbox::serve_forever(
                port,
                sandbox::SandboxConfig {
                    update_delay: Duration::from_millis(update_delay_ms),
                    traffic_tick: Some(Duration::from_secs(1)),
                    metric_delay,
                    ..sandbox::SandboxConfig::default()
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
            flag_delivery: true,
            flag_delivery_runs,
            out,
            ..
        } => {
            let text = rollgate::bench::flag_delivery::run(flag_delivery_runs).await?;
            println!("{text}");
            if let Some(out) = out {
                std::fs::write(out, &text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            canary: true,
            canary_runs,
            canary_rates,
            out,
            ..
        } => {
            let text = rollgate::bench::canary::run(canary_runs, &canary_rates);
            println!("{text}");
            if let Some(out) = out {
                std::fs::write(out, &text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            dashboard: true,
            reuse,
            dashboard_rollouts,
            audit_entries,
            rate,
            seconds,
            no_scaling,
            out,
            ..
        } => {
            rollgate::bench::dashboard::run(rollgate::bench::dashboard::DashboardArgs {
                reuse,
                rollouts: dashboard_rollouts,
                audit_entries,
                rate,
                seconds,
                scaling: !no_scaling,
                out,
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            periods: true,
            cost_rollouts,
            e2e_runs,
            out,
            ..
        } => {
            let text = rollgate::bench::periods::run(&cost_rollouts, e2e_runs.max(1)).await?;
            println!("{text}");
            if let Some(out) = out {
                std::fs::write(out, &text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench {
            runs,
            rollouts,
            out,
            ..
        } => {
            rollgate::bench::run(runs, &rollouts, out.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::BenchLoad {
            url,
            rate,
            seconds,
            warmup_seconds,
            max_in_flight,
            timeout_ms,
        } => {
            rollgate::bench::load::main(rollgate::bench::load::LoadSpec {
                urls: url,
                rate,
                seconds,
                warmup_seconds,
                max_in_flight,
                timeout: Duration::from_millis(timeout_ms),
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Plan(PlanCmd::Validate { files, output }) => {
            Ok(cli::validate_plans(&files, output == Output::Json))
        }
        Cmd::Plan(PlanCmd::Preflight { name, remote }) => cli::preflight(&remote.remote(), &name)
            .await
            .map_err(Into::into),
        Cmd::Plan(PlanCmd::Schema) => {
            println!("{}", serde_json::to_string_pretty(&plan::json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Rollout(cmd) => rollout(cmd).await.map_err(Into::into),
        Cmd::Audit(cmd) => audit(cmd).await.map_err(Into::into),
        Cmd::User(UserCmd::Add {
            name,
            role,
            database,
        }) => {
            cli::user_add(&database, &name, &role).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Token(TokenCmd::Create {
            name,
            role,
            expires_in,
            db,
            output,
        }) => {
            cli::token_create(
                &db.database,
                &name,
                &role,
                expires_in.as_deref(),
                output == Output::Json,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Token(TokenCmd::List { db, output }) => {
            cli::token_list(&db.database, output == Output::Json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Token(TokenCmd::Revoke { name, db }) => {
            cli::token_revoke(&db.database, &name).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn step_args(s: StepArgs, force: bool, to: Option<RollbackTarget>) -> (Remote, cli::StepArgs) {
    (
        s.remote.remote(),
        cli::StepArgs {
            id: s.id,
            reason: s.reason,
            expected_version: s.expected_version,
            force,
            to,
        },
    )
}

async fn rollout(cmd: RolloutCmd) -> Result<ExitCode, rollgate::client::ClientError> {
    match cmd {
        RolloutCmd::Start {
            plan,
            reason,
            force,
            remote,
        } => cli::start(&remote.remote(), plan, reason, force).await,
        RolloutCmd::Status { id, remote } => cli::status(&remote.remote(), id).await,
        RolloutCmd::Advance { step, force } => {
            let (remote, args) = step_args(step, force, None);
            cli::step(&remote, Step::Advance, args).await
        }
        RolloutCmd::Pause(step) => {
            let (remote, args) = step_args(step, false, None);
            cli::step(&remote, Step::Pause, args).await
        }
        RolloutCmd::Resume(step) => {
            let (remote, args) = step_args(step, false, None);
            cli::step(&remote, Step::Resume, args).await
        }
        RolloutCmd::Rollback { step, to } => {
            let (remote, args) = step_args(step, false, to);
            cli::step(&remote, Step::Rollback, args).await
        }
        RolloutCmd::Abandon(step) => {
            let (remote, args) = step_args(step, false, None);
            cli::step(&remote, Step::Abandon, args).await
        }
    }
}

async fn audit(cmd: AuditCmd) -> Result<ExitCode, rollgate::client::ClientError> {
    match cmd {
        AuditCmd::List {
            filter,
            limit,
            remote,
        } => cli::audit_list(&remote.remote(), filter.query(), limit).await,
        AuditCmd::Verify { remote } => cli::audit_verify(&remote.remote()).await,
        AuditCmd::Export {
            filter,
            format,
            remote,
        } => {
            let query = AuditQuery {
                format: Some(format),
                ..filter.query()
            };
            cli::audit_export(&remote.remote(), query).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_delay_flag() {
        let d = |s| parse_metric_delay(s);
        assert_eq!(d("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("90"), Ok(Duration::from_secs(90)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("0s"), Ok(Duration::ZERO));
        assert_eq!(d("1500ms"), Ok(Duration::from_millis(1500)));
        assert!(d("soon").is_err());
        assert!(d("s").is_err());
    }
}

//! The black-box test harness: the real server on a random loopback port,
//! a fresh database (a temp SQLite file, or a new PostgreSQL database), and a
//! fresh AWS sandbox reached through the official SDK.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rollgate::app::{self, RunningApp, ServeConfig};
use rollgate::backend::RetryPolicy;
use rollgate::demo;
use rollgate::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

pub const FUNCTION: &str = demo::DEMO_FUNCTION;
pub const FLAGS: [&str; 3] = [
    "USE_OPTIMIZED_PROMPTS",
    "USE_REFACTORED_TOOLS",
    "USE_FULL_OPTIMIZATION",
];
/// Variables of the function the plan does not own: they must never change.
pub const UNRELATED: [(&str, &str); 4] = [
    ("TABLE_NAME", "dixon-sessions"),
    ("LOG_LEVEL", "INFO"),
    ("MODEL_ID", "anthropic.claude-3-5-sonnet"),
    ("USE_V2_HANDLER", "false"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Runs the test body once per database.
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Db::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Db::Postgres).await
            }
        }
    };
}

pub fn repo_plans_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rollout-plans")
}

/// PostgreSQL server for tests (trust auth on these machines).
pub fn postgres_admin_url() -> String {
    std::env::var("ROLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new empty database URL: a temp SQLite file, or `CREATE DATABASE` on PostgreSQL.
pub async fn fresh_database(db: Db, dir: &tempfile::TempDir) -> String {
    match db {
        Db::Sqlite => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("rollgate.db").display()
        ),
        Db::Postgres => {
            use sqlx::Connection;
            let name = format!("rollgate_test_{}_{}", std::process::id(), rand_suffix());
            let admin = postgres_admin_url();
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL must be running on 127.0.0.1:5432 (see README)");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            format!("{base}/{name}")
        }
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{nanos}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Which AWS the control plane talks to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aws {
    /// rollgate's own sandbox (in-process, loopback HTTP).
    Sandbox,
    /// moto_server, an independent emulator (`pip install 'moto[server]'`).
    Moto,
}

pub struct Options {
    pub aws: Aws,
    pub plans_dir: PathBuf,
    pub update_delay: Duration,
    pub retry: RetryPolicy,
    pub reconcile_interval: Duration,
    /// Run the watcher loop every so often (default: none; tests tick by hand).
    pub watch_interval: Option<Duration>,
    /// Drift checks (default: every tick, as tests tick by hand and expect
    /// each tick to see the function), and their Lambda budget.
    pub drift_interval: Duration,
    pub lambda_budget: f64,
    /// Sign-in (default: off, names claimed).
    pub auth: rollgate::web::auth::AuthConfig,
    /// Serve HTTPS with these files.
    pub tls: Option<rollgate::app::TlsFiles>,
    /// Listen here (default: a free loopback port picked at bind).
    pub listen: Option<std::net::SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            aws: Aws::Sandbox,
            plans_dir: repo_plans_dir(),
            update_delay: Duration::from_millis(0),
            retry: fast_retry(),
            reconcile_interval: Duration::from_millis(200),
            watch_interval: None,
            drift_interval: Duration::ZERO,
            lambda_budget: 10.0,
            auth: rollgate::web::auth::AuthConfig::default(),
            tls: None,
            listen: None,
        }
    }
}

/// Retries quickly so fault tests run fast; same logic as production.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        settle_timeout: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        attempt_timeout: Duration::from_secs(3),
        operation_timeout: Duration::from_secs(4),
    }
}

pub struct TestApp {
    pub url: String,
    pub http: reqwest::Client,
    pub sandbox: Sandbox,
    pub aws: aws_config::SdkConfig,
    pub lambda: aws_sdk_lambda::Client,
    pub database_url: String,
    pub app: Option<RunningApp>,
    pub moto: Option<Moto>,
    pub dir: tempfile::TempDir,
    /// An API token `get` and `post` send (sign-in on).
    pub token: Option<String>,
}

/// A moto_server child process, killed on drop.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn start_moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server not found: pip install 'moto[server]' (.ci/run does)");
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http
            .get(format!("{}/moto-api/", moto.url))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // moto's CreateFunction wants the execution role to exist in its IAM.
    let resp = http
        .post(format!("{}/", moto.url))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("Action=CreateRole&Version=2010-05-08&RoleName=dixon-smart-repair&AssumeRolePolicyDocument=%7B%7D")
        .send()
        .await
        .expect("moto IAM CreateRole");
    assert!(
        resp.status().is_success(),
        "moto CreateRole: {}",
        resp.text().await.unwrap_or_default()
    );
    moto
}

pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, Options::default()).await
}

/// A SQLite-backed app serving the plans in `plans_dir` (tests' own plans).
pub async fn spawn_app_with_plans(plans_dir: &std::path::Path) -> TestApp {
    spawn_app_with(
        Db::Sqlite,
        Options {
            plans_dir: plans_dir.to_path_buf(),
            ..Options::default()
        },
    )
    .await
}

pub async fn spawn_app_with(db: Db, opts: Options) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            update_delay: opts.update_delay,
            traffic_tick: None,
            // Tests lay down metrics and read them back at once.
            metric_delay: Duration::ZERO,
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let moto = match opts.aws {
        Aws::Sandbox => None,
        Aws::Moto => Some(start_moto().await),
    };
    let endpoint = moto
        .as_ref()
        .map_or_else(|| sandbox.url(), |m| m.url.clone());
    let aws = demo::sandbox_aws_config(&endpoint).await;
    demo::create_demo_function(&aws).await.unwrap();
    let database_url = fresh_database(db, &dir).await;
    let mut config = ServeConfig::new(
        opts.listen
            .unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()),
        opts.plans_dir,
        database_url.clone(),
    );
    config.retry = opts.retry;
    config.reconcile_interval = opts.reconcile_interval;
    config.watch_interval = opts.watch_interval;
    config.drift_interval = opts.drift_interval;
    config.lambda_budget = opts.lambda_budget;
    config.auth = opts.auth;
    config.tls = opts.tls;
    let app = app::start(&config, &aws).await.unwrap();
    TestApp {
        url: app.url(),
        http: reqwest::Client::new(),
        lambda: aws_sdk_lambda::Client::new(&aws),
        sandbox,
        aws,
        database_url,
        app: Some(app),
        moto,
        dir,
        token: None,
    }
}

impl TestApp {
    pub fn state(&self) -> &rollgate::web::AppState {
        &self.app.as_ref().unwrap().state
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .authed(self.http.get(format!("{}{path}", self.url)))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .authed(self.http.post(format!("{}{path}", self.url)))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn start_seed(&self) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/rollouts",
                json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Sends a command. An advance is forced: these tests step phases at
    /// once, not after 48 h bake times (readiness has tests of its own).
    pub async fn command(&self, id: i64, cmd: &str, reason: &str) -> (u16, Value) {
        let body = if cmd == "advance" {
            json!({ "reason": reason, "force": true })
        } else {
            json!({ "reason": reason })
        };
        self.post(&format!("/api/v1/rollouts/{id}/{cmd}"), body)
            .await
    }

    /// The function's whole environment, read through the official SDK.
    pub async fn function_env(&self) -> std::collections::BTreeMap<String, String> {
        self.function_env_of(FUNCTION, None).await
    }

    /// The whole environment of `function` at `qualifier` (a version;
    /// `None`: `$LATEST`).
    pub async fn function_env_of(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> std::collections::BTreeMap<String, String> {
        let out = self
            .lambda
            .get_function_configuration()
            .function_name(function)
            .set_qualifier(qualifier.map(str::to_string))
            .send()
            .await
            .unwrap();
        out.environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Asserts the owned flags have the given values and every unrelated
    /// variable is untouched.
    pub async fn assert_env(&self, flags: [&str; 3]) {
        self.assert_env_of(FUNCTION, None, flags).await;
    }

    /// `assert_env` for `function` at `qualifier` (see `function_env_of`).
    pub async fn assert_env_of(&self, function: &str, qualifier: Option<&str>, flags: [&str; 3]) {
        let env = self.function_env_of(function, qualifier).await;
        for (name, want) in FLAGS.iter().zip(flags) {
            assert_eq!(
                env.get(*name).map(String::as_str),
                Some(want),
                "{name} of {function}:{qualifier:?} in {env:?}"
            );
        }
        for (name, want) in UNRELATED {
            assert_eq!(
                env.get(name).map(String::as_str),
                Some(want),
                "{name} must survive: {env:?}"
            );
        }
        assert_eq!(
            env.len(),
            FLAGS.len() + UNRELATED.len(),
            "no variable added or lost: {env:?}"
        );
    }

    /// Another rollgate process on the same database and AWS (the seed
    /// plans; no watcher loop), as after a restart.
    pub async fn second_process(&self) -> RunningApp {
        let mut config = ServeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            repo_plans_dir(),
            self.database_url.clone(),
        );
        config.watch_interval = None;
        config.drift_interval = Duration::ZERO;
        app::start(&config, &self.aws).await.unwrap()
    }

    /// Stops the server gracefully (as `rollgate serve` does on SIGTERM).
    pub async fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await;
        }
    }

    /// Creates another (empty-environment) function, with the demo's
    /// role (which moto has too).
    pub async fn create_function(&self, name: &str) {
        self.lambda
            .create_function()
            .function_name(name)
            .role("arn:aws:iam::123456789012:role/dixon-smart-repair")
            .handler("h.h")
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(b"z".to_vec()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// Sets the function's whole environment behind rollgate's back.
    pub async fn set_env(&self, env: std::collections::BTreeMap<String, String>) {
        self.lambda
            .update_function_configuration()
            .function_name(FUNCTION)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(env.into_iter().collect()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    /// The rollout as the API shows it.
    pub async fn rollout(&self, id: i64) -> Value {
        let (status, body) = self.get(&format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Polls the rollout until `done` holds (at most ~10 s).
    pub async fn wait_for(&self, id: i64, done: impl Fn(&Value) -> bool) -> Value {
        let mut r = Value::Null;
        for _ in 0..200 {
            r = self.rollout(id).await;
            if done(&r) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rollout {id} never got there: {r}");
    }

    /// Asserts one variable's value on the function.
    pub async fn assert_flag(&self, name: &str, want: &str) {
        let env = self.function_env().await;
        assert_eq!(
            env.get(name).map(String::as_str),
            Some(want),
            "{name} in {env:?}"
        );
    }

    /// A connection pool of its own to the app's database, for what only
    /// someone with database access could do (e.g. tampering).
    pub async fn raw_db(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.database_url).await.unwrap()
    }

    /// An API token made on the server's side (as `rollgate token create`
    /// does on the database); its secret.
    pub async fn make_token(&self, name: &str, role: rollgate::domain::user::Role) -> String {
        self.state()
            .service
            .create_token(
                &rollgate::domain::Principal::System,
                name,
                role,
                None,
                chrono::Utc::now(),
            )
            .await
            .unwrap()
            .1
    }

    /// Adds a user who may sign in (as `rollgate user add` does).
    pub async fn add_user(&self, name: &str, role: rollgate::domain::user::Role, password: &str) {
        let hash = rollgate::domain::user::hash_password(password).unwrap();
        let entry = rollgate::audit::NewAuditEntry::new(
            &rollgate::domain::Principal::System,
            rollgate::domain::Action::UserAdded,
            rollgate::domain::Outcome::Applied,
        );
        self.state()
            .service
            .store()
            .add_user(name, role, &hash, chrono::Utc::now(), entry)
            .await
            .unwrap();
    }

    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/v1/audit{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["entries"].as_array().unwrap().clone()
    }
}

/// A `rollgate serve` child process, killed (SIGKILL) on drop.
pub struct ServeProcess {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Owns `child` (killed on drop, before anything can fail) and waits
    /// until it answers `/healthz` on `url`.
    pub async fn started(child: std::process::Child, url: String) -> ServeProcess {
        let server = ServeProcess { child, url };
        for _ in 0..200 {
            if reqwest::get(format!("{}/healthz", server.url))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rollgate serve did not come up at {}", server.url);
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

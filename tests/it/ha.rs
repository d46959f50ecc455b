//! Several rollgate processes on one database: one leads (runs the watcher
//! and the reconciler), the others serve and stand by; when the leader is
//! killed another takes over within the lease and finishes what it was
//! doing; a former leader that lost its lease writes nothing; SQLite serves
//! one server only.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{self, Db, FUNCTION, ServeProcess, UNRELATED, free_port, spawn_app};

/// `rollgate serve` as a user starts it, on `database`, against the sandbox,
/// with a 3 s lease and 1 s loops.
fn serve_command(database: &str, sandbox_url: &str, plans: &std::path::Path) -> (Command, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollgate"));
    cmd.args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--lease-ttl",
        "3",
        "--watch-interval",
        "1",
        "--reconcile-interval",
        "1",
    ])
    .env("ROLLGATE_PLANS", plans)
    .env("DATABASE_URL", database)
    .env("AWS_ENDPOINT_URL", sandbox_url)
    .env("AWS_REGION", "us-east-1")
    .env("AWS_ACCESS_KEY_ID", "test")
    .env("AWS_SECRET_ACCESS_KEY", "test")
    .env("AWS_CONFIG_FILE", "/nonexistent")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    .env("AWS_EC2_METADATA_DISABLED", "true");
    (cmd, format!("http://127.0.0.1:{port}"))
}

async fn serve(database: &str, sandbox_url: &str, plans: &std::path::Path) -> ServeProcess {
    let (mut cmd, url) = serve_command(database, sandbox_url, plans);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rollgate serve");
    ServeProcess::started(child, url).await
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn leads(server: &ServeProcess) -> bool {
    get(&format!("{}/readyz", server.url)).await["leader"]["leader"] == true
}

async fn eventually<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A plan whose guardrail follows a CloudWatch alarm (acted on at once).
fn alarm_plan() -> tempfile::TempDir {
    crate::watcher::plan_with_guardrail(
        "[[guardrails]]\nname = \"errors-alarm\"\nalarm = \"dixon-errors\"\n",
    )
}

async fn alarm(cw: &aws_sdk_cloudwatch::Client, state: aws_sdk_cloudwatch::types::StateValue) {
    cw.set_alarm_state()
        .alarm_name("dixon-errors")
        .state_value(state)
        .state_reason("test")
        .send()
        .await
        .unwrap();
}

/// Issue 8: two `rollgate serve` processes on one PostgreSQL database; the
/// leader is killed (SIGKILL) in the middle of the watcher's rollback; the
/// other takes over within the lease and finishes it: exactly one rollback
/// in the audit log, the flags restored, every other variable intact, the
/// chain verifying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_process_finishes_a_rollback_the_killed_leader_began() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = rollgate::sandbox::Sandbox::start(0, Default::default())
        .await
        .unwrap();
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&aws);
    cw.put_metric_alarm()
        .alarm_name("dixon-errors")
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    alarm(&cw, aws_sdk_cloudwatch::types::StateValue::Ok).await;
    let database = common::fresh_database(Db::Postgres, &dir).await;
    let plans = alarm_plan();

    let mut first = serve(&database, &sandbox.url(), plans.path()).await;
    eventually("the first process leads", Duration::from_secs(10), || {
        leads(&first)
    })
    .await;
    let second = serve(&database, &sandbox.url(), plans.path()).await;
    let ready = get(&format!("{}/readyz", second.url)).await;
    assert_eq!(ready["leader"]["leader"], false, "{ready}");
    assert_eq!(ready["watcher"]["loop"]["standby"], true, "{ready}");
    assert_eq!(
        ready["leader"]["holder"],
        get(&format!("{}/readyz", first.url)).await["leader"]["this_process"]
    );

    // Either process serves the API.
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{}/api/v1/rollouts", second.url))
        .json(&json!({ "plan": "guarded", "reason": "ha", "force": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_i64().expect("started");
    let advanced = http
        .post(format!("{}/api/v1/rollouts/{id}/advance", first.url))
        .json(&json!({ "reason": "to prompts" }))
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), 200);
    let rollout_url = format!("{}/api/v1/rollouts/{id}", second.url);
    eventually("the phase is live", Duration::from_secs(10), || async {
        get(&rollout_url).await["write_pending"] == false
    })
    .await;

    // Lambda takes 6 s to apply each update: the rollback is in flight
    // when the leader dies.
    sandbox.set_update_delay(Duration::from_secs(6));
    alarm(&cw, aws_sdk_cloudwatch::types::StateValue::Alarm).await;
    eventually(
        "the leader's watcher records the rollback",
        Duration::from_secs(15),
        || async {
            let r = get(&rollout_url).await;
            r["pending_write"]["command"] == "rollback"
        },
    )
    .await;
    let killed_at = Instant::now();
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    eventually(
        "the other process finishes the rollback",
        Duration::from_secs(30),
        || async {
            let r = get(&rollout_url).await;
            r["state"] == "rolled_back" && r["write_pending"] == false
        },
    )
    .await;
    let took = killed_at.elapsed();
    assert!(leads(&second).await, "the survivor leads");
    // Lease (3 s) + a reconciler pass + Lambda's 6 s: well within 30 s.
    assert!(took < Duration::from_secs(25), "took {took:?}");

    let audit = get(&format!(
        "{}/api/v1/audit?rollout={id}&action=rollback",
        second.url
    ))
    .await;
    let rollbacks = audit["entries"].as_array().unwrap();
    assert_eq!(rollbacks.len(), 1, "exactly one rollback: {audit}");
    assert_eq!(rollbacks[0]["actor"], "rollgate/watcher");
    let env = sandbox.function_env(FUNCTION).unwrap();
    assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "false");
    for (k, v) in UNRELATED {
        assert_eq!(env[k], v, "{k} survives");
    }
    let verify = get(&format!("{}/api/v1/audit/verify", second.url)).await;
    assert_eq!(verify["ok"], true, "{verify}");
    let metrics = reqwest::get(format!("{}/metrics", second.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "rollgate_leader 1"),
        "{metrics}"
    );
    let epoch = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rollgate_leader_epoch "))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap();
    assert!(epoch >= 2, "a takeover bumps the epoch: {epoch}");
}

/// A former leader that wakes up after losing its lease (paused,
/// partitioned) writes nothing: its fenced work fails in the transaction
/// that would record it.
async fn a_former_leader_writes_nothing(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    let service = app.state().service.clone();
    let leadership = &app.state().leadership;
    let old = leadership.fence().expect("the test app leads");
    // Another process takes over (here: forcibly, as after the lease
    // expired while this one was paused).
    let takeover = service
        .store()
        .claim_lease(
            "elsewhere/10.0.0.2:8080",
            chrono::Utc::now(),
            Duration::from_secs(15),
            true,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(takeover, old.epoch + 1);

    let before = app.rollout(id).await;
    let entries = app.audit(&format!("?rollout={id}")).await.len();
    let rollback = rollgate::store::lease::fenced(
        old.clone(),
        service.command(
            &rollgate::domain::Principal::Watcher,
            rollgate::domain::RolloutId(id),
            rollgate::rollout::Command::Rollback { to: None },
            rollgate::service::Ask {
                reason: Some("a stale judgement".into()),
                ..Default::default()
            },
        ),
    )
    .await;
    let error = rollback.expect_err("fenced").to_string();
    assert!(error.contains("no longer leads"), "{error}");
    // A watcher tick under the old epoch records nothing either.
    let tick =
        rollgate::store::lease::fenced(old, app.state().watcher.tick(chrono::Utc::now())).await;
    assert!(
        tick.errors.iter().any(|e| e.contains("no longer leads")),
        "{tick:?}"
    );
    let after = app.rollout(id).await;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["state"], "active");
    assert_eq!(app.audit(&format!("?rollout={id}")).await.len(), entries);
    app.assert_flag("USE_OPTIMIZED_PROMPTS", "true").await;
    // The new leader's writes go through.
    let fence = rollgate::store::lease::Fence {
        holder: "elsewhere/10.0.0.2:8080".into(),
        epoch: takeover,
    };
    rollgate::store::lease::fenced(
        fence,
        service.command(
            &rollgate::domain::Principal::Watcher,
            rollgate::domain::RolloutId(id),
            rollgate::rollout::Command::Rollback { to: None },
            rollgate::service::Ask {
                reason: Some("the new leader's judgement".into()),
                ..Default::default()
            },
        ),
    )
    .await
    .unwrap();
    app.assert_flag("USE_OPTIMIZED_PROMPTS", "false").await;
}
crate::on_both_databases!(a_former_leader_writes_nothing);

/// SQLite serves one server: a second `rollgate serve` on the same file is
/// refused with a message that says why and what to do; once the first is
/// gone (even killed), a new one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_sqlite_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = rollgate::sandbox::Sandbox::start(0, Default::default())
        .await
        .unwrap();
    let database = common::fresh_database(Db::Sqlite, &dir).await;
    let plans = common::repo_plans_dir();
    let mut first = serve(&database, &sandbox.url(), &plans).await;
    let (mut cmd, _) = serve_command(&database, &sandbox.url(), &plans);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another rollgate server is already using the SQLite database")
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let again = serve(&database, &sandbox.url(), &plans).await;
    assert!(leads(&again).await, "a restart after a kill leads at once");
}

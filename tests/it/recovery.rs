//! Crash recovery: the real `rollgate serve` process is killed (SIGKILL)
//! after a write's intent was recorded; a restart finishes or reconciles it.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, Db, ServeProcess, free_port};

/// Starts `rollgate serve` configured the way a user would: AWS settings from
/// the standard environment variables.
async fn serve(database: &str, sandbox_url: &str) -> ServeProcess {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ROLLGATE_PLANS", common::repo_plans_dir())
        .env("DATABASE_URL", database)
        .env("AWS_ENDPOINT_URL_LAMBDA", sandbox_url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn rollgate serve");
    ServeProcess::started(child, format!("http://127.0.0.1:{port}")).await
}

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_interrupted_by_a_crash_is_finished_on_restart() {
    // Case 1: the update reached Lambda, the crash hit while rollgate waited
    // for LastUpdateStatus=Successful. Case 2: the crash hit before the
    // update was sent (every Lambda answer slowed down).
    for slow_calls in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let sandbox = rollgate::sandbox::Sandbox::start(0, Default::default())
            .await
            .unwrap();
        let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
        rollgate::demo::create_demo_function(&aws).await.unwrap();
        let database = common::fresh_database(Db::Sqlite, &dir).await;

        let server = serve(&database, &sandbox.url()).await;
        let http = reqwest::Client::new();
        let started: Value = http
            .post(format!("{}/api/v1/rollouts", server.url))
            .json(&json!({ "plan": "dixon-smart-repair", "reason": "crash test", "force": true }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = started["id"].as_i64().unwrap();

        if slow_calls {
            sandbox.faults().set_latency(Duration::from_secs(5));
        } else {
            sandbox.set_update_delay(Duration::from_secs(3));
        }
        let advance_url = format!("{}/api/v1/rollouts/{id}/advance", server.url);
        let advancing = tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(advance_url)
                .json(&json!({ "reason": "to prompts" }))
                .send()
                .await;
        });
        // Wait until the intent is recorded, then kill -9.
        let rollout_url = format!("{}/api/v1/rollouts/{id}", server.url);
        let mut pending = false;
        for _ in 0..100 {
            if sandbox_call_pending(&rollout_url).await {
                pending = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(pending, "the advance's intent was never visible");
        if !slow_calls {
            // Let the update reach Lambda before the crash.
            for _ in 0..100 {
                let env = sandbox.function_env(common::FUNCTION).unwrap();
                if env["USE_OPTIMIZED_PROMPTS"] == "true" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        drop(server); // SIGKILL
        advancing.abort();
        sandbox.faults().set_latency(Duration::ZERO);
        sandbox.set_update_delay(Duration::ZERO);

        let server = serve(&database, &sandbox.url()).await;
        // Recovery runs before the server answers.
        let r = get(&format!("{}/api/v1/rollouts/{id}", server.url)).await;
        assert_eq!(r["write_pending"], false, "{r}");
        assert_eq!(r["state"], "active");
        assert_eq!(r["phase_name"], "prompts");
        assert_eq!(r["observed_flags"]["USE_OPTIMIZED_PROMPTS"], "true");
        let env = sandbox.function_env(common::FUNCTION).unwrap();
        assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "true");
        assert_eq!(env["USE_REFACTORED_TOOLS"], "false");
        for (k, v) in common::UNRELATED {
            assert_eq!(env[k], v);
        }
        let audit = get(&format!("{}/api/v1/audit?rollout={id}", server.url)).await;
        let entries = audit["entries"].as_array().unwrap();
        let last = entries.last().unwrap();
        assert_eq!(last["action"], "flags_write", "{audit}");
        assert_eq!(last["actor"], "rollgate/reconciler");
        assert_eq!(last["detail"]["recovered"], true);
        let expected_outcome = if slow_calls {
            "applied"
        } else {
            "already_in_place"
        };
        assert_eq!(last["outcome"], expected_outcome, "{last}");
        let advances = entries.iter().filter(|e| e["action"] == "advance").count();
        assert_eq!(advances, 1, "the command is recorded once");
        let verify = get(&format!("{}/api/v1/audit/verify", server.url)).await;
        assert_eq!(verify["ok"], true, "{verify}");
    }
}

async fn sandbox_call_pending(rollout_url: &str) -> bool {
    match reqwest::get(rollout_url).await {
        Ok(r) => r
            .json::<Value>()
            .await
            .map(|v| v["write_pending"] == true)
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// SIGTERM stops `rollgate serve` gracefully: a request in flight is
/// answered, the loops and the server are awaited, and it exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_request_in_flight_finish_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let sandbox = rollgate::sandbox::Sandbox::start(0, Default::default())
        .await
        .unwrap();
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let mut server = serve(&database, &sandbox.url()).await;
    let http = reqwest::Client::new();
    let started: Value = http
        .post(format!("{}/api/v1/rollouts", server.url))
        .json(&json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_i64().unwrap();
    // Every Lambda call now takes a while: the advance is in flight when
    // the signal arrives.
    sandbox.faults().set_latency(Duration::from_millis(400));
    let url = server.url.clone();
    let advance = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/rollouts/{id}/advance"))
            .json(&json!({ "reason": "in flight", "force": true }))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    assert_eq!(
        advance.await.unwrap().unwrap(),
        200,
        "answered, not dropped"
    );
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = server.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("rollgate serve exits after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert_eq!(
        sandbox.function_env(common::FUNCTION).unwrap()["USE_OPTIMIZED_PROMPTS"],
        "true"
    );
    let _ = Db::Sqlite;
}

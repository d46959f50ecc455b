//! Faults between rollgate and Lambda: each ends in a correct write (foreign
//! edits survive) or a clear failure recorded in the audit log — never a lost
//! variable.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::types::Environment;
use serde_json::{Value, json};

use crate::common::{
    Db, FUNCTION, Options, UNRELATED, fast_retry, spawn_app, spawn_app_with, spawn_app_with_plans,
};

async fn last_write(app: &crate::common::TestApp, id: i64) -> Value {
    app.audit(&format!("?rollout={id}&action=flags_write"))
        .await
        .last()
        .cloned()
        .unwrap()
}

fn retried_because(entry: &Value) -> String {
    entry["detail"]["retried_because"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_until_the_write_lands() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().throttle_next(5);
    let (status, body) = app.command(id, "advance", "through throttling").await;
    assert_eq!(status, 200, "{body}");
    app.assert_env(["true", "false", "false"]).await;
    let entry = last_write(&app, id).await;
    assert_eq!(entry["outcome"], "applied");
    assert!(
        retried_because(&entry).contains("TooManyRequests"),
        "{entry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().fail_next(4);
    let (status, body) = app.command(id, "advance", "through 5xx").await;
    assert_eq!(status, 200, "{body}");
    app.assert_env(["true", "false", "false"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_in_progress_is_waited_out_and_kept() {
    // The update stays in progress for 600 ms, so the advance surely meets
    // it; 20 attempts (up to 100 ms apart, with jitter) surely outlast it,
    // however loaded the machine: the wait is tested, not its speed.
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            retry: rollgate::backend::RetryPolicy {
                max_attempts: 20,
                ..fast_retry()
            },
            ..Options::default()
        },
    )
    .await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.set_update_delay(Duration::from_millis(600));
    // Someone else updates the function just before the advance.
    let mut env = app.function_env().await;
    env.insert("DEPLOYED_BY".into(), "pipeline".into());
    app.lambda
        .update_function_configuration()
        .function_name(FUNCTION)
        .environment(
            Environment::builder()
                .set_variables(Some(env.into_iter().collect()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = app.command(id, "advance", "while deploying").await;
    assert_eq!(status, 200, "{body}");
    let env = app.function_env().await;
    assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "true");
    assert_eq!(env["DEPLOYED_BY"], "pipeline", "the other update survives");
    for (k, v) in UNRELATED {
        assert_eq!(env[k], v);
    }
    let entry = last_write(&app, id).await;
    assert!(retried_because(&entry).contains("in progress"), "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_edit_between_read_and_write_survives() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let edit: BTreeMap<String, String> = [("EDITED_BY_HAND".to_string(), "yes".to_string())].into();
    app.sandbox
        .faults()
        .foreign_edit_after_next_get(FUNCTION, edit);
    let (status, body) = app.command(id, "advance", "race a human").await;
    assert_eq!(status, 200, "{body}");
    let env = app.function_env().await;
    assert_eq!(
        env["EDITED_BY_HAND"], "yes",
        "the concurrent edit is not overwritten"
    );
    assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "true");
    for (k, v) in UNRELATED {
        assert_eq!(env[k], v);
    }
    let entry = last_write(&app, id).await;
    assert!(retried_because(&entry).contains("RevisionId"), "{entry}");
}

async fn unavailable_target_keeps_the_intent_and_rollback_wins(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().throttle_next(100_000);
    let (status, body) = app.command(id, "advance", "during an outage").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["write_pending"], true);
    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .contains("TooManyRequests"),
        "{body}"
    );
    let entry = last_write(&app, id).await;
    assert_eq!(entry["outcome"], "retrying");

    // An advance must wait; a rollback is accepted and overrides the advance.
    let (status, _) = app.command(id, "advance", "again").await;
    assert_eq!(status, 409);
    let (status, body) = app.command(id, "rollback", "abort during outage").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "rolled_back");

    // The outage ends: the background reconciler lands the rollback.
    app.sandbox.faults().reset();
    let mut done = Value::Null;
    for _ in 0..200 {
        let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
        if r["write_pending"] == false {
            done = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done["state"], "rolled_back", "{done}");
    assert_eq!(done["last_error"], Value::Null);
    app.assert_env(["false", "false", "false"]).await;
    let entry = last_write(&app, id).await;
    assert_eq!(entry["outcome"], "already_in_place", "{entry}");
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}
crate::on_both_databases!(unavailable_target_keeps_the_intent_and_rollback_wins);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_over_4kb_is_refused_and_nothing_changes() {
    let plans = tempfile::tempdir().unwrap();
    let big = "x".repeat(300);
    std::fs::write(
        plans.path().join("big.toml"),
        format!(
            r#"
[target]
function = "{FUNCTION}"
[flags]
BIG_FLAG = "off"
[defaults]
bake = "1h"
[[phases]]
name = "huge"
set = {{ BIG_FLAG = "{big}" }}
"#
        ),
    )
    .unwrap();
    let app = spawn_app_with_plans(plans.path()).await;
    // Fill the function's environment close to the 4 KB limit.
    let mut env = app.function_env().await;
    env.insert("FILLER".into(), "f".repeat(3750));
    app.lambda
        .update_function_configuration()
        .function_name(FUNCTION)
        .environment(
            Environment::builder()
                .set_variables(Some(env.clone().into_iter().collect()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, started) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "big", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_i64().unwrap();
    let before = app.function_env().await;

    let (status, body) = app.command(id, "advance", "too big").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "write_refused");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("4096"),
        "{body}"
    );
    assert_eq!(app.function_env().await, before, "nothing was written");
    let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
    assert_eq!(r["state"], "active");
    assert_eq!(r["phase_name"], "baseline", "the advance was undone");
    assert_eq!(r["desired_flags"]["BIG_FLAG"], "off");
    let entry = last_write(&app, id).await;
    assert_eq!(entry["outcome"], "rejected");
    assert_eq!(entry["detail"]["command_undone"], true);
}

/// A rollback recorded while an advance's write is still retrying stops that
/// write at its next attempt (recorded as superseded) instead of waiting out
/// the advance's whole retry budget; the rollback's flags land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_preempts_a_retrying_advance() {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            retry: rollgate::backend::RetryPolicy {
                max_attempts: 25,
                min_delay: Duration::from_millis(200),
                max_delay: Duration::from_millis(200),
                ..crate::common::fast_retry()
            },
            reconcile_interval: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().throttle_next(100_000);
    let url = app.url.clone();
    let advance = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/rollouts/{id}/advance"))
            .json(&json!({ "reason": "slow advance" }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    // Wait until the advance's intent is recorded and its write is retrying.
    for _ in 0..100 {
        let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
        if r["write_pending"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rollback = {
        let url = app.url.clone();
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/api/v1/rollouts/{id}/rollback"))
                .json(&json!({ "reason": "abort" }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.sandbox.faults().reset();
    let (advance_status, rollback_status) = (advance.await.unwrap(), rollback.await.unwrap());
    assert!(matches!(advance_status, 200 | 202), "{advance_status}");
    assert_eq!(rollback_status, 200);

    let writes = app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let outcomes: Vec<&str> = writes
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert!(outcomes.contains(&"superseded"), "{outcomes:?}");
    let superseded = writes
        .iter()
        .find(|e| e["outcome"] == "superseded")
        .unwrap();
    assert_eq!(
        superseded["flags_after"]["USE_OPTIMIZED_PROMPTS"], "true",
        "the advance's write was the one dropped"
    );
    assert_eq!(outcomes.last(), Some(&"already_in_place"));
    app.assert_env(["false", "false", "false"]).await;
    let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
    assert_eq!(r["state"], "rolled_back");
    assert_eq!(r["write_pending"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_baseline_cannot_fit_is_refused_before_anything_is_recorded() {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(
        plans.path().join("wide.toml"),
        format!(
            "[target]\nfunction = \"{FUNCTION}\"\n[flags]\nWIDE_FLAG = \"{}\"\n[defaults]\nbake = \"1h\"\n[[phases]]\nname = \"on\"\nset = {{ WIDE_FLAG = \"on\" }}\n",
            "w".repeat(4000)
        ),
    )
    .unwrap();
    let app = spawn_app_with_plans(plans.path()).await;
    let before = app.function_env().await;
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "wide", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096-byte limit"),
        "{body}"
    );
    assert_eq!(app.function_env().await, before);
    let (_, list) = app.get("/api/v1/rollouts").await;
    assert_eq!(list["rollouts"], json!([]));
    assert!(app.audit("").await.is_empty());
}

/// Defect 12: an update Lambda reports `Failed` is read back before the
/// write is called refused: values not in place → refused and undone;
/// values in place → applied, with a note; Lambda's own internal error →
/// retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_update_is_read_back_before_it_is_called_refused() {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            update_delay: Duration::from_millis(50),
            ..Options::default()
        },
    )
    .await;
    let id = app.start_seed().await["id"].as_i64().unwrap();

    app.sandbox.faults().fail_next_update_with(
        crate::common::FUNCTION,
        "Lambda was unable to encrypt the environment: KMS key access denied",
        "KMSKeyAccessDenied",
        false,
    );
    let (status, body) = app.command(id, "advance", "to prompts").await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("KMSKeyAccessDenied") && message.contains("unchanged"),
        "{message}"
    );
    app.assert_env(["false", "false", "false"]).await;
    assert_eq!(app.rollout(id).await["phase_name"], "baseline", "undone");

    // The values show, but Lambda says Failed: not finished (rule 2). It
    // is written again until Lambda reports Successful.
    app.sandbox.faults().fail_next_update_with(
        crate::common::FUNCTION,
        "the configuration update failed after it was applied",
        "KMSKeyAccessDenied",
        true,
    );
    let (status, body) = app.command(id, "advance", "to prompts, again").await;
    assert_eq!(status, 200, "{body}");
    app.assert_env(["true", "false", "false"]).await;
    let entry = last_write(&app, id).await;
    assert_eq!(entry["outcome"], "applied");
    assert!(
        retried_because(&entry).contains("not finished until Lambda reports Successful"),
        "{entry}"
    );
    let status = app
        .lambda
        .get_function_configuration()
        .function_name(crate::common::FUNCTION)
        .send()
        .await
        .unwrap();
    assert_eq!(
        status.last_update_status(),
        Some(&aws_sdk_lambda::types::LastUpdateStatus::Successful)
    );

    app.sandbox
        .faults()
        .fail_next_update(crate::common::FUNCTION, "internal error", false);
    let (status, body) = app.command(id, "advance", "to tools").await;
    assert_eq!(status, 200, "Lambda's own error is retried: {body}");
    app.assert_env(["true", "true", "false"]).await;
    assert!(retried_because(&last_write(&app, id).await).contains("InternalError"));
}

/// Defect 12: credentials that expired (they refresh) and a skewed clock
/// (the SDK corrects it) are transient, not final.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_and_a_skewed_clock_are_retried() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().expired_token_next(2);
    let (status, body) = app.command(id, "advance", "expired").await;
    assert_eq!(status, 200, "{body}");
    assert!(retried_because(&last_write(&app, id).await).contains("ExpiredTokenException"));
    app.sandbox.faults().clock_skew_next(1);
    let (status, body) = app.command(id, "advance", "skewed").await;
    assert_eq!(status, 200, "{body}");
    assert!(retried_because(&last_write(&app, id).await).contains("Signature expired"));
    app.assert_env(["true", "true", "false"]).await;
}

/// Defect 13: a call that hangs is cut off by its attempt timeout and
/// retried; it cannot hold the write up for longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_is_cut_off_and_retried() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().hang_next(1, Duration::from_secs(600));
    let (status, body) = app.command(id, "advance", "through a hang").await;
    assert_eq!(status, 200, "{body}");
    app.assert_env(["true", "false", "false"]).await;
    let why = retried_because(&last_write(&app, id).await);
    assert!(why.contains("in time"), "{why}");
}

/// Defect 13: a rollback stops a write that is stuck in a call at once,
/// instead of waiting for it (here its timeout is a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_preempts_a_hung_write_immediately() {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            retry: rollgate::backend::RetryPolicy {
                attempt_timeout: Duration::from_secs(60),
                operation_timeout: Duration::from_secs(60),
                ..crate::common::fast_retry()
            },
            reconcile_interval: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().hang_next(1, Duration::from_secs(600));
    let url = app.url.clone();
    let advance = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/rollouts/{id}/advance"))
            .json(&json!({ "reason": "hangs", "force": true }))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    app.wait_for(id, |r| r["write_pending"] == true).await;
    let rollback = tokio::time::timeout(
        Duration::from_secs(20),
        app.command(id, "rollback", "abort the hung advance"),
    )
    .await
    .expect("the rollback does not wait for the hung call");
    assert_eq!(rollback.0, 200, "{}", rollback.1);
    assert_eq!(rollback.1["state"], "rolled_back");
    let advance_status = tokio::time::timeout(Duration::from_secs(20), advance)
        .await
        .expect("the advance's request ends too")
        .unwrap();
    assert_eq!(
        advance_status, 202,
        "superseded, its successor's write follows"
    );
    app.assert_env(["false", "false", "false"]).await;
    let writes = app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let superseded = writes
        .iter()
        .find(|e| e["outcome"] == "superseded")
        .expect("the hung write is recorded as superseded");
    assert_eq!(superseded["flags_after"]["USE_OPTIMIZED_PROMPTS"], "true");
}

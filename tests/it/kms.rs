//! Defect 1: a function whose environment Lambda cannot decrypt (KMS access
//! lost: `Environment.Error`, no `Variables`) or that answers without its
//! environment is never merged or written. The rollout shows the cause,
//! webhooks hear it, a rollback waits (and answers at once) and lands when
//! access returns; a start is refused with the cause.

use std::time::Duration;

use serde_json::json;

use crate::common::{Db, FUNCTION, UNRELATED, spawn_app, spawn_app_with_plans};
use crate::on_both_databases;
use crate::watcher::{plan_with_guardrail, receiver, start_guarded, tick, traffic_before_now};

async fn kms_loss_blocks_every_write_until_access_returns(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let (status, _) = app.command(id, "advance", "to prompts").await;
    assert_eq!(status, 200);
    let before = app.sandbox.function_env(FUNCTION).unwrap();

    app.sandbox.faults().kms_error(FUNCTION);
    // The watcher reads it: no drift judged (an unreadable environment is
    // not an empty one), the cause is shown and recorded once.
    traffic_before_now(&app, 5);
    let report = tick(&app).await;
    assert!(
        report
            .decisions
            .iter()
            .any(|d| d.action == "function_unreadable"),
        "{report:?}"
    );
    assert!(
        !report.decisions.iter().any(|d| d.action == "drift_revert"),
        "{report:?}"
    );
    let r = app.rollout(id).await;
    let cause = r["function_error"].as_str().unwrap();
    assert!(cause.contains("KMSAccessDeniedException"), "{r}");
    assert!(
        r["attention"]
            .to_string()
            .contains("KMSAccessDeniedException"),
        "shown as needing attention: {r}"
    );
    assert!(
        tick(&app).await.decisions.is_empty(),
        "reported once, not every tick"
    );
    assert_eq!(
        app.audit(&format!("?rollout={id}&action=function_unreadable"))
            .await
            .len(),
        1
    );

    // An operator's rollback is recorded and answered at once, unwritten.
    let (status, body) = app
        .command(id, "rollback", "abort while KMS is broken")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "rolled_back");
    assert_eq!(body["write_pending"], true);
    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .contains("KMSAccessDeniedException"),
        "{body}"
    );
    let blocked = app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    assert_eq!(blocked.last().unwrap()["outcome"], "blocked");
    // The reconciler keeps trying; nothing is ever written meanwhile.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(app.sandbox.function_env(FUNCTION).unwrap(), before);
    let (status, _) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(
        status, 409,
        "the function stays held while the rollback waits"
    );

    // Access returns: the rollback lands, every other variable intact.
    app.sandbox.faults().kms_ok(FUNCTION);
    let done = app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(done["state"], "rolled_back", "{done}");
    app.assert_env(["false", "false", "false"]).await;
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}
on_both_databases!(kms_loss_blocks_every_write_until_access_returns);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_on_an_unreadable_function_is_refused_with_the_cause() {
    let app = spawn_app(Db::Sqlite).await;
    app.sandbox.faults().kms_error(FUNCTION);
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("KMSAccessDeniedException") && message.contains("cannot be read"),
        "{message}"
    );
    let (_, list) = app.get("/api/v1/rollouts").await;
    assert_eq!(
        list["rollouts"].as_array().unwrap().len(),
        0,
        "nothing recorded"
    );
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["entries"], 0);
}

/// Drift revert must never write only the owned flags into a function whose
/// variables it could not read: the old behaviour wiped them every tick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_never_reverted_into_an_environment_that_could_not_be_read() {
    let (hook, got) = receiver().await;
    let plans = plan_with_guardrail(&format!("[notify]\nwebhooks = [\"{hook}\"]\n"));
    let app = spawn_app_with_plans(plans.path()).await;
    let id = start_guarded(&app).await;
    app.sandbox.faults().kms_error(FUNCTION);
    for _ in 0..3 {
        let report = tick(&app).await;
        assert!(report.errors.is_empty(), "{report:?}");
    }
    app.sandbox.faults().kms_ok(FUNCTION);
    let env = app.function_env().await;
    for (k, v) in UNRELATED {
        assert_eq!(env[k], v, "{env:?}");
    }
    assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "true");
    let writes = app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    assert_eq!(writes.len(), 2, "start and advance only: {writes:?}");
    // The webhook heard it, once.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = got.lock().unwrap().clone();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let unreadable: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "environment_unreadable")
        .collect();
    assert_eq!(unreadable.len(), 1, "{events:?}");
    assert!(
        unreadable[0]["text"]
            .as_str()
            .unwrap()
            .contains("KMSAccessDeniedException")
    );
    // Readable again: recorded, the attention clears.
    let report = tick(&app).await;
    assert!(
        report
            .decisions
            .iter()
            .any(|d| d.action == "function_readable"),
        "{report:?}"
    );
    let r = app.rollout(id).await;
    assert_eq!(r["function_error"], serde_json::Value::Null);
    assert_eq!(r["attention"], json!([]));
}

/// An answer without the environment, from a function that had variables,
/// is a failed read, not an empty environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_the_environment_is_never_taken_for_an_empty_one() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().hide_environment(FUNCTION);
    let (status, body) = app.command(id, "advance", "to prompts").await;
    assert_eq!(status, 202, "{body}");
    assert!(
        body["last_error"]
            .as_str()
            .unwrap()
            .contains("without the function's environment"),
        "{body}"
    );
    app.sandbox.faults().show_environment(FUNCTION);
    let done = app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(done["phase_name"], "prompts");
    app.assert_env(["true", "false", "false"]).await;
}

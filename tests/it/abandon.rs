//! Defect 6: a way out of a stuck rollout (`abandon`), and a rollout whose
//! stored plan no longer parses is still rolled back and shown as needing
//! attention, never silently dropped from watching.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Db, spawn_app};
use crate::on_both_databases;
use crate::watcher::tick;

async fn abandon_ends_a_stuck_rollout_without_writing(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().throttle_next(100_000);
    let (status, stuck) = app.command(id, "advance", "during an outage").await;
    assert_eq!(status, 202, "{stuck}");
    let path = format!("/api/v1/rollouts/{id}/abandon");
    let (status, body) = app.post(&path, json!({})).await;
    assert_eq!(status, 400, "a reason is required: {body}");
    let (status, body) = app
        .post(
            &path,
            json!({ "reason": "AWS outage; we will start over", "actor": "alice" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "abandoned");
    assert_eq!(body["write_pending"], false);

    // The pending advance is never written, even after the outage ends.
    app.sandbox.faults().reset();
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.assert_env(["false", "false", "false"]).await;
    let entry = app
        .audit(&format!("?rollout={id}&action=abandon"))
        .await
        .pop()
        .unwrap();
    assert_eq!(entry["actor"], "alice");
    assert_eq!(entry["reason"], "AWS outage; we will start over");
    assert_eq!(
        entry["flags_before"], entry["flags_after"],
        "the flags as they stand: {entry}"
    );
    assert_eq!(entry["flags_after"]["USE_OPTIMIZED_PROMPTS"], "false");
    assert_eq!(
        entry["detail"]["abandoned_write"]["flags"]["USE_OPTIMIZED_PROMPTS"],
        "true"
    );
    // The function is free; the abandoned rollout accepts nothing more.
    let (status, body) = app.post(&path, json!({ "reason": "again" })).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}
on_both_databases!(abandon_ends_a_stuck_rollout_without_writing);

/// A stored plan that stops parsing (here: a bake written before durations
/// were bounded) is shown as needing attention, reported once by the
/// watcher, refuses an advance, and still rolls back from the flags kept
/// with the rollout.
async fn a_rollout_whose_plan_no_longer_parses_still_rolls_back(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    let pool = app.raw_db().await;
    sqlx::query(
        // A snapshot is immutable, so rollgate keys parsed plans by its hash:
        // a changed snapshot comes with its own hash.
        "UPDATE rollouts SET plan_hash = 'changed', plan_text = REPLACE(plan_text, 'bake = \"48h\"', 'bake = \"100000000d\"') WHERE id = $1",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();

    let r = app.rollout(id).await;
    let attention = r["attention"].to_string();
    assert!(
        attention.contains("no longer parses") && attention.contains("too long"),
        "{r}"
    );
    assert_eq!(r["ready"], false);
    let report = tick(&app).await;
    assert_eq!(report.rollouts_watched, 1, "still watched");
    assert!(
        report
            .decisions
            .iter()
            .any(|d| d.action == "plan_unreadable"),
        "{report:?}"
    );
    tick(&app).await;
    assert_eq!(
        app.audit(&format!("?rollout={id}&action=plan_unreadable"))
            .await
            .len(),
        1,
        "reported once"
    );
    let (status, body) = app.command(id, "advance", "onwards").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only rollback and abandon")
    );

    let (status, body) = app.command(id, "rollback", "plan is broken").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rolled_back");
    app.assert_env(["false", "false", "false"]).await;
    let _: Value = body;
}
on_both_databases!(a_rollout_whose_plan_no_longer_parses_still_rolls_back);

/// A rollback that cannot be written (AWS keeps refusing, KMS is gone)
/// leaves a rolled-back rollout holding its function: abandon frees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_that_cannot_be_written_can_be_abandoned() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    app.sandbox.faults().kms_error(crate::common::FUNCTION);
    let (status, body) = app.command(id, "rollback", "abort").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "rolled_back");
    let (status, body) = app
        .command(id, "abandon", "KMS key deleted; fixing by hand")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "abandoned");
    app.sandbox.faults().kms_ok(crate::common::FUNCTION);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.assert_env(["true", "false", "false"]).await; // nothing more written
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "the function is free: {body}");
}

/// A rollout stored before rollgate kept phase flags with it, whose plan
/// snapshot no longer parses, has no flags to roll back to: it is never
/// "rolled back" to made-up values, only abandoned. One whose snapshot
/// parses gets them kept at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_rollouts_get_their_phase_flags_kept_or_are_never_written_from_guesses() {
    let app = spawn_app(Db::Sqlite).await;
    let kept = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(kept, "advance", "to prompts").await.0, 200);
    let pool = app.raw_db().await;
    // As a row written before the upgrade looks.
    sqlx::query(
        "UPDATE rollouts SET phases = NULL, rollback_to = NULL, webhooks = NULL WHERE id = $1",
    )
    .bind(kept)
    .execute(&pool)
    .await
    .unwrap();
    let second = app.second_process().await;
    let phases: Option<String> = sqlx::query_scalar("SELECT phases FROM rollouts WHERE id = $1")
        .bind(kept)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        phases.unwrap().contains("USE_REFACTORED_TOOLS"),
        "kept at start-up"
    );
    second.stop().await;

    sqlx::query(
        "UPDATE rollouts SET phases = NULL, plan_hash = 'changed', plan_text = REPLACE(plan_text, 'bake = \"48h\"', 'bake = \"999d\"') WHERE id = $1",
    )
    .bind(kept)
    .execute(&pool)
    .await
    .unwrap();
    let (status, body) = app.command(kept, "rollback", "broken plan").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("phase flags are unknown")
    );
    app.assert_env(["true", "false", "false"]).await;
    let (status, body) = app.command(kept, "abandon", "set by hand").await;
    assert_eq!(status, 200, "{body}");
}

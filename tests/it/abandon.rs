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
        .post("/api/v1/rollouts", json!({ "plan": "dixon-smart-repair" }))
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
        "UPDATE rollouts SET plan_text = REPLACE(plan_text, 'bake = \"48h\"', 'bake = \"100000000d\"') WHERE id = $1",
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

//! Bake time and gates: a phase is promoted only when both allow it; `auto`
//! phases promote themselves; no data never promotes; an operator may force
//! with a reason, which the audit log records.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::{Db, TestApp, repo_plans_dir, spawn_app, spawn_app_with_plans};

/// Simulated traffic over the `minutes` before `end`, a tick every 10 s.
fn traffic_before(app: &TestApp, end: DateTime<Utc>, minutes: i64) {
    for i in 1..=(minutes * 6) {
        app.sandbox
            .emit_traffic_at(end - chrono::Duration::seconds(i * 10));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbaked_phase_needs_force_and_a_reason() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let path = format!("/api/v1/rollouts/{id}/advance");
    // From the baseline an operator starts the first phase freely.
    let (status, body) = app.post(&path, json!({ "reason": "go" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], false);
    assert!(
        body["blockers"][0]
            .as_str()
            .unwrap()
            .contains("bake time runs until"),
        "{body}"
    );

    let (status, body) = app.post(&path, json!({ "reason": "too early" })).await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not ready to advance") && message.contains("bake time"),
        "{message}"
    );
    assert!(
        message.contains("gate faster has not been evaluated yet"),
        "{message}"
    );

    let (status, _) = app.post(&path, json!({ "force": true })).await;
    assert_eq!(status, 400, "force needs a reason");
    let (status, _) = app
        .post(
            &format!("/api/v1/rollouts/{id}/pause"),
            json!({ "force": true, "reason": "x" }),
        )
        .await;
    assert_eq!(status, 400, "force is for advance only");

    let (status, body) = app
        .post(
            &path,
            json!({ "force": true, "reason": "hotfix needs tools now" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phase_name"], "tools");
    let advance = app.audit(&format!("?rollout={id}&action=advance")).await;
    let forced = advance.last().unwrap();
    assert_eq!(forced["detail"]["forced"], true);
    assert!(
        forced["detail"]["forced_past"][0]
            .as_str()
            .unwrap()
            .contains("bake time")
    );
    assert_eq!(forced["reason"], "hotfix needs tools now");
}

/// The seed plan with bake times of one second, `auto` approval or not.
fn fast_seed(auto: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(repo_plans_dir().join("dixon-smart-repair.toml")).unwrap();
    let mut fast = seed.replace("bake = \"48h\"", "bake = \"1s\"");
    if auto {
        fast = fast.replace("approval = \"manual\"", "approval = \"auto\"");
    }
    assert_ne!(fast, seed);
    std::fs::write(dir.path().join("dixon-smart-repair.toml"), fast).unwrap();
    dir
}

fn fast_auto_seed() -> tempfile::TempDir {
    fast_seed(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_plan_promotes_itself_when_every_gate_holds() {
    let plans = fast_auto_seed();
    let app = spawn_app_with_plans(plans.path()).await;
    let now = Utc::now();
    traffic_before(&app, now - chrono::Duration::hours(1), 60);
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.state().watcher.tick(now).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/rollouts/{id}/advance"),
            json!({ "reason": "start prompts" }),
        )
        .await;
    assert_eq!(status, 200);

    // Each phase's own traffic lives in its own (simulated) hour.
    for (k, phase) in ["prompts", "tools", "full"].iter().enumerate() {
        let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(r["phase_name"], *phase, "{r}");
        let at = now + chrono::Duration::hours(2 * (k as i64 + 1));
        traffic_before(&app, at, 50);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let report = app.state().watcher.tick(at).await;
        assert!(report.errors.is_empty(), "{report:?}");
        assert_eq!(report.decisions.len(), 1, "phase {phase}: {report:?}");
        assert_eq!(report.decisions[0].action, "advance");
    }
    let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
    assert_eq!(r["state"], "completed", "{r}");
    app.assert_env(["true", "true", "true"]).await;
    // tools was held to prompts: its previous-phase gates had a reference.
    let advances = app
        .audit(&format!(
            "?rollout={id}&action=advance&actor=rollgate/watcher"
        ))
        .await;
    assert_eq!(advances.len(), 3);
    let tools_gates = &advances[1]["detail"]["evidence"]["gates"];
    let no_slower = tools_gates
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "no-slower-than-prompts")
        .unwrap();
    assert_eq!(no_slower["verdict"], "pass", "{no_slower}");
    assert!(
        no_slower["evaluation"]["reference"].as_f64().is_some(),
        "{no_slower}"
    );
    assert!(
        r["phase_stats"]["prompts"]["tokens_per_request"]
            .as_f64()
            .unwrap()
            < 1000.0,
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_data_never_promotes_a_phase() {
    let plans = fast_auto_seed();
    let app = spawn_app_with_plans(plans.path()).await;
    let now = Utc::now();
    traffic_before(&app, now - chrono::Duration::hours(1), 30);
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.state().watcher.tick(now).await;
    app.post(
        &format!("/api/v1/rollouts/{id}/advance"),
        json!({ "reason": "start prompts" }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Silence: no traffic at all in the phase's window.
    let later = now + chrono::Duration::hours(3);
    for _ in 0..3 {
        let report = app.state().watcher.tick(later).await;
        assert!(report.decisions.is_empty(), "{report:?}");
    }
    let (_, r) = app.get(&format!("/api/v1/rollouts/{id}")).await;
    assert_eq!(r["phase_name"], "prompts");
    assert_eq!(r["ready"], false);
    let blockers: Vec<&str> = r["blockers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap())
        .collect();
    assert!(
        blockers.iter().any(|b| b.contains("no data")),
        "{blockers:?}"
    );
    let _: Value = r;
}

/// Defect 11: gate results older than two watcher intervals never allow an
/// advance (a watcher that stopped must not keep promoting); fresh ones do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_gate_results_never_allow_an_advance() {
    let plans = fast_seed(false);
    let app = spawn_app_with_plans(plans.path()).await;
    let now = Utc::now();
    traffic_before(&app, now - chrono::Duration::hours(2), 60);
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.state().watcher.tick(now).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/rollouts/{id}/advance"),
            json!({ "reason": "start prompts" }),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The phase went live two hours ago (as far as the watcher can tell),
    // every gate passes on its data, but the evaluation the watcher
    // recorded is an hour old by the time anyone asks.
    let pool = app.raw_db().await;
    sqlx::query("UPDATE rollouts SET live_since = $1 WHERE id = $2")
        .bind(
            (Utc::now() - chrono::Duration::hours(2))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        )
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    traffic_before(&app, Utc::now(), 50);
    let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
    traffic_before(&app, an_hour_ago, 50);
    let report = app.state().watcher.tick(an_hour_ago).await;
    assert!(report.errors.is_empty(), "{report:?}");
    let r = app.rollout(id).await;
    assert_eq!(r["readiness"]["phase"], "prompts", "{r}");
    assert!(
        r["readiness"]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["verdict"] == "pass"),
        "{r}"
    );
    let path = format!("/api/v1/rollouts/{id}/advance");
    let (status, body) = app.post(&path, json!({ "reason": "looks good" })).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("older than two watcher intervals"),
        "{body}"
    );
    // A fresh evaluation allows it.
    app.state().watcher.tick(Utc::now()).await;
    let (status, body) = app.post(&path, json!({ "reason": "looks good" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phase_name"], "tools");
    let _: Value = body;
}

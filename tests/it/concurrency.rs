//! One function is one function however it is named (defect 5); a rollout
//! that no longer owns the function writes nothing, and decisions made on
//! a stale snapshot change nothing (defect 8); audit appends from several
//! processes on one database never collide and verify always sees a
//! consistent log (defect 14).

use serde_json::{Value, json};

use crate::common::{Db, FUNCTION, Options, TestApp, repo_plans_dir, spawn_app, spawn_app_with};
use crate::on_both_databases;
use rollgate::domain::{Principal, RolloutId};
use rollgate::rollout::Command;
use rollgate::service::{Ask, ServiceError};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:dixon-smart-repair-handler";

/// The seed plan, also as copies naming the function by ARN and partial ARN.
fn seed_spelled_three_ways() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(repo_plans_dir().join("dixon-smart-repair.toml")).unwrap();
    let name_line = format!("function = \"{FUNCTION}\"");
    assert!(seed.contains(&name_line));
    std::fs::write(dir.path().join("by-name.toml"), &seed).unwrap();
    std::fs::write(
        dir.path().join("by-arn.toml"),
        seed.replace(&name_line, &format!("function = \"{ARN}\"")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("by-partial-arn.toml"),
        seed.replace(
            &name_line,
            &format!("function = \"123456789012:function:{FUNCTION}\""),
        ),
    )
    .unwrap();
    dir
}

async fn one_function_named_three_ways_is_held_once(db: Db) {
    let plans = seed_spelled_three_ways();
    let app = spawn_app_with(
        db,
        Options {
            plans_dir: plans.path().to_path_buf(),
            ..Options::default()
        },
    )
    .await;
    let (status, first) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "by-arn", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["function_arn"], ARN);
    for other in ["by-name", "by-partial-arn", "by-arn"] {
        let (status, body) = app
            .post(
                "/api/v1/rollouts",
                json!({ "plan": other, "reason": "test", "force": true }),
            )
            .await;
        assert_eq!(status, 409, "{other}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("#1 of plan by-arn"),
            "{body}"
        );
    }
    // Released, the function can be taken under another name.
    let id = first["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "rollback", "done").await.0, 200);
    let (status, second) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "by-partial-arn", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["function_arn"], ARN);
    assert_eq!(second["id"], 2, "ids come from the database");
}
on_both_databases!(one_function_named_three_ways_is_held_once);

/// A rollback recorded but not yet written keeps the function: a new
/// rollout must not start writing the same variables under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_still_being_written_keeps_the_function() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    app.sandbox.faults().throttle_next(100_000);
    let (status, body) = app.command(id, "rollback", "abort").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "rolled_back");
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still being made"),
        "{body}"
    );
    app.sandbox.faults().reset();
    app.wait_for(id, |r| r["write_pending"] == false).await;
    app.assert_env(["false", "false", "false"]).await;
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The watcher decided on a snapshot; an operator changed the rollout
/// before the decision was carried out: nothing is written or recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_on_a_stale_snapshot_change_nothing() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    let service = &app.state().service;
    let seen = service.rollout(RolloutId(id)).await.unwrap();
    // Meanwhile an operator pauses it and flips a flag by hand.
    assert_eq!(app.command(id, "pause", "investigating").await.0, 200);
    let mut env = app.function_env().await;
    env.insert("USE_OPTIMIZED_PROMPTS".into(), "false".into());
    app.set_env(env.clone()).await;
    let entries_before = app.audit("?limit=1000").await.len();

    let observed = [("USE_OPTIMIZED_PROMPTS".to_string(), "false".to_string())].into();
    let reverted = service
        .revert_drift(
            &Principal::Watcher,
            &seen,
            &observed,
            json!({}),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    assert!(reverted.is_none(), "stale: not carried out");
    let paused = service
        .command(
            &Principal::Watcher,
            RolloutId(id),
            Command::Pause,
            Ask {
                reason: Some("drift".into()),
                expected_version: Some(seen.version),
                ..Ask::default()
            },
        )
        .await;
    assert!(
        matches!(paused, Err(ServiceError::Refused(_))),
        "{paused:?}"
    );
    let recorded = service
        .record_readiness(
            &seen,
            &rollgate::domain::Readiness {
                phase: seen.phase_name.clone(),
                evaluated_at: chrono::Utc::now(),
                gates: vec![],
                observed: Default::default(),
                unjudged_guardrails: vec![],
            },
        )
        .await
        .unwrap();
    assert!(!recorded, "a stale evaluation is not recorded");
    assert_eq!(app.function_env().await, env, "nothing written");
    assert_eq!(
        app.audit("?limit=1000").await.len(),
        entries_before,
        "nothing recorded"
    );
}

fn fleet_plans(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("fleet-{i:02}.toml")),
            format!("[target]\nfunction = \"fleet-{i:02}\"\n[flags]\nFLEET_FLAG = \"off\"\n[defaults]\nbake = \"1h\"\n[[phases]]\nname = \"on\"\nset = {{ FLEET_FLAG = \"on\" }}\n"),
        )
        .unwrap();
    }
    dir
}

async fn create_fleet(app: &TestApp, n: usize) {
    for i in 0..n {
        app.create_function(&format!("fleet-{i:02}")).await;
    }
}

/// Two processes on one database start rollouts and append to the audit
/// log at the same time, while both verify it over and over.
async fn two_processes_append_to_one_audit_log(db: Db) {
    let n = 24;
    let plans = fleet_plans(n);
    // Each start finishes its own write; the reconcilers leave recent
    // intents to the process that recorded them.
    let app = spawn_app_with(
        db,
        Options {
            plans_dir: plans.path().to_path_buf(),
            reconcile_interval: std::time::Duration::from_secs(5),
            ..Options::default()
        },
    )
    .await;
    create_fleet(&app, n).await;
    let mut config = rollgate::app::ServeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        plans.path().to_path_buf(),
        app.database_url.clone(),
    );
    config.watch_interval = None;
    let second = rollgate::app::start(&config, &app.aws).await.unwrap();
    let urls = [app.url.clone(), second.url()];
    let http = reqwest::Client::new();
    let starts = (0..n).map(|i| {
        let (http, url) = (http.clone(), urls[i % 2].clone());
        async move {
            let resp = http
                .post(format!("{url}/api/v1/rollouts"))
                .json(&json!({ "plan": format!("fleet-{i:02}"), "reason": "fleet", "force": true }))
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    });
    let verifies = (0..10).map(|i| {
        let (http, url) = (http.clone(), urls[i % 2].clone());
        async move {
            let v: Value = http
                .get(format!("{url}/api/v1/audit/verify"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v
        }
    });
    let (started, verified) = tokio::join!(
        futures_util::future::join_all(starts),
        futures_util::future::join_all(verifies)
    );
    let mut ids: Vec<i64> = started
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        (1..=n as i64).collect::<Vec<_>>(),
        "distinct ids from the database"
    );
    for v in verified {
        assert_eq!(v["ok"], true, "a consistent snapshot every time: {v}");
    }
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    // start + flags_write per rollout.
    assert_eq!(verify["entries"], 2 * n as u64, "{verify}");
    second.stop().await;
}
on_both_databases!(two_processes_append_to_one_audit_log);

/// A function held under its name by a rollout stored before identities
/// were resolved is resolved to its ARN by the reconciler, so the same
/// function spelled as an ARN is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_held_by_name_from_before_the_upgrade_are_resolved() {
    let plans = seed_spelled_three_ways();
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            plans_dir: plans.path().to_path_buf(),
            ..Options::default()
        },
    )
    .await;
    let (status, first) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "by-name", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    let pool = app.raw_db().await;
    sqlx::query(
        "UPDATE rollouts SET function_arn = target_function, active_target = target_function",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The reconciler's next pass (every 200 ms here) resolves it.
    let mut resolved = String::new();
    for _ in 0..100 {
        resolved = sqlx::query_scalar("SELECT active_target FROM rollouts WHERE id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
        if resolved.starts_with("arn:") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(resolved, ARN);
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "by-arn", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
}

/// The watcher's records do not bump the version (operators' expected
/// versions stay valid), so a command that read the rollout just before
/// one must not write the stale value back: a save writes only what the
/// command changed. (Seen in the demo: a baseline recorded during an
/// advance was lost and recorded again.)
async fn a_command_never_overwrites_what_the_watcher_recorded_meanwhile(db: Db) {
    use rollgate::domain::{Baseline, MetricValue};
    use rollgate::store::{Patch, Store};
    let app = spawn_app(db).await;
    let id = RolloutId(app.start_seed().await["id"].as_i64().unwrap());
    let store = Store::connect(&app.database_url).await.unwrap();
    let before = store.get_rollout(id).await.unwrap().unwrap();
    assert_eq!(before.baseline, None);
    let baseline = Baseline(
        [(
            "error_rate".to_string(),
            MetricValue {
                value: Some(1.2),
                samples: 900,
            },
        )]
        .into(),
    );
    let recorded = store
        .patch_rollout(
            id,
            before.version,
            Patch::Baseline(&baseline, chrono::Utc::now()),
            vec![],
        )
        .await
        .unwrap();
    assert!(recorded);
    let mut next = before.clone();
    next.state = rollgate::rollout::State::Paused;
    store.save_rollout(&next, &before, vec![]).await.unwrap();
    let after = store.get_rollout(id).await.unwrap().unwrap();
    assert_eq!(after.state, rollgate::rollout::State::Paused);
    assert_eq!(
        after.baseline,
        Some(baseline),
        "the watcher's record survives"
    );
    assert_eq!(after.version, before.version + 1);
    // A second save from the same stale read is refused.
    assert!(store.save_rollout(&next, &before, vec![]).await.is_err());
}
on_both_databases!(a_command_never_overwrites_what_the_watcher_recorded_meanwhile);

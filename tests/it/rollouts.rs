//! The seed plan end to end through the API against the sandbox, illegal
//! commands, concurrency and the error shape.

use serde_json::{Value, json};

use crate::common::{Db, Options, spawn_app, spawn_app_with};
use crate::on_both_databases;

fn id(body: &Value) -> i64 {
    body["id"].as_i64().expect("rollout id")
}

async fn seed_plan_end_to_end(db: Db) {
    let app = spawn_app(db).await;
    let started = app.start_seed().await;
    let rid = id(&started);
    assert_eq!(started["state"], "active");
    assert_eq!(started["phase_name"], "baseline");
    assert_eq!(started["plan"], "dixon-smart-repair");
    assert_eq!(started["target_function"], "dixon-smart-repair-handler");
    assert_eq!(started["plan_hash"].as_str().unwrap().len(), 64);
    assert_eq!(started["write_pending"], false);
    app.assert_env(["false", "false", "false"]).await;

    let expected = [
        ("prompts", ["true", "false", "false"]),
        ("tools", ["true", "true", "false"]),
        ("full", ["true", "true", "true"]),
    ];
    let mut version = started["version"].as_i64().unwrap();
    for (phase, flags) in expected {
        let (status, body) = app.command(rid, "advance", &format!("to {phase}")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["state"], "active");
        assert_eq!(body["phase_name"], phase);
        assert!(body["version"].as_i64().unwrap() > version);
        version = body["version"].as_i64().unwrap();
        for (name, want) in crate::common::FLAGS.iter().zip(flags) {
            assert_eq!(body["desired_flags"][name], want);
            assert_eq!(body["observed_flags"][name], want);
        }
        app.assert_env(flags).await;
    }
    let (_, shown) = app.get(&format!("/api/v1/rollouts/{rid}")).await;
    assert_eq!(shown["phase_index"], 3);
    assert_eq!(shown["next_phase"], Value::Null);

    let (status, body) = app.command(rid, "rollback", "error rate up").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rolled_back");
    assert_eq!(body["phase_name"], "baseline");
    app.assert_env(["false", "false", "false"]).await;

    // One entry per command and one per write, in order, and the chain verifies.
    let entries = app.audit(&format!("?rollout={rid}")).await;
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("start", "accepted"),
            ("flags_write", "already_in_place"),
            ("advance", "accepted"),
            ("flags_write", "applied"),
            ("advance", "accepted"),
            ("flags_write", "applied"),
            ("advance", "accepted"),
            ("flags_write", "applied"),
            ("rollback", "accepted"),
            ("flags_write", "applied"),
        ]
    );
    let rollback = &entries[8];
    assert_eq!(rollback["reason"], "error rate up");
    assert_eq!(rollback["actor"], "api");
    assert_eq!(rollback["flags_before"]["USE_FULL_OPTIMIZATION"], "true");
    assert_eq!(rollback["flags_after"]["USE_FULL_OPTIMIZATION"], "false");
    let last_write = &entries[9];
    assert_eq!(last_write["flags_before"]["USE_OPTIMIZED_PROMPTS"], "true");
    assert_eq!(last_write["flags_after"]["USE_OPTIMIZED_PROMPTS"], "false");
    for e in &entries {
        for (name, _) in crate::common::UNRELATED {
            assert!(
                e["flags_before"].get(name).is_none(),
                "only owned flags are audited"
            );
        }
    }
    let (status, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["entries"], 10);
}
on_both_databases!(seed_plan_end_to_end);

async fn illegal_commands_are_refused(db: Db) {
    let app = spawn_app(db).await;
    let rid = id(&app.start_seed().await);

    // A second active rollout on the same function.
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already has an active rollout")
    );

    // Resume an active rollout; advance a paused one.
    let (status, body) = app.command(rid, "resume", "x").await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = app.command(rid, "pause", "lunch").await;
    assert_eq!(status, 200);
    let (status, body) = app.command(rid, "advance", "x").await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("paused")
    );
    let (status, body) = app.command(rid, "resume", "back").await;
    assert_eq!(status, 200, "{body}");

    // Walk to the end; one more advance completes; then nothing is allowed.
    for _ in 0..3 {
        assert_eq!(app.command(rid, "advance", "go").await.0, 200);
    }
    let (status, body) = app.command(rid, "advance", "done").await;
    assert_eq!(status, 200);
    assert_eq!(body["state"], "completed");
    app.assert_env(["true", "true", "true"]).await;
    let (status, body) = app.command(rid, "advance", "again").await;
    assert_eq!(status, 409);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("completed"),
        "{body}"
    );
    let (status, _) = app.command(rid, "rollback", "too late").await;
    assert_eq!(status, 409);

    // The function is free again once the rollout is completed.
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.assert_env(["false", "false", "false"]).await;
}
on_both_databases!(illegal_commands_are_refused);

#[tokio::test]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let app = spawn_app(Db::Sqlite).await;
    let rid = id(&app.start_seed().await);
    let rollback_path = format!("/api/v1/rollouts/{rid}/rollback");
    let advance_path = format!("/api/v1/rollouts/{rid}/advance");
    let cases: Vec<(&str, &str, Value, u16, &str)> = vec![
        (
            "POST",
            "/api/v1/rollouts",
            json!({ "plan": "no-such-plan" }),
            404,
            "not_found",
        ),
        (
            "POST",
            "/api/v1/rollouts",
            json!({ "plan": "../etc/passwd" }),
            404,
            "not_found",
        ),
        ("POST", "/api/v1/rollouts", json!({}), 400, "bad_request"),
        (
            "POST",
            "/api/v1/rollouts",
            json!({ "plan": "dixon-smart-repair", "bogus": 1 }),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/rollouts/abc/advance",
            json!({}),
            400,
            "bad_request",
        ),
        (
            "POST",
            "/api/v1/rollouts/999/advance",
            json!({}),
            404,
            "not_found",
        ),
        ("GET", "/api/v1/rollouts/999", Value::Null, 404, "not_found"),
        ("GET", "/api/v1/plans/nope", Value::Null, 404, "not_found"),
        ("POST", &rollback_path, json!({}), 400, "bad_request"),
        (
            "POST",
            &advance_path,
            json!({ "to": "baseline" }),
            400,
            "bad_request",
        ),
        (
            "POST",
            &advance_path,
            json!({ "expected_version": 999 }),
            409,
            "conflict",
        ),
        (
            "GET",
            "/api/v1/audit?limit=0",
            Value::Null,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/audit?since=yesterday",
            Value::Null,
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/v1/audit/export?format=xml",
            Value::Null,
            400,
            "bad_request",
        ),
        ("GET", "/api/v1/nothing-here", Value::Null, 404, "not_found"),
    ];
    for (method, path, body, want_status, want_code) in cases {
        let req = match method {
            "GET" => app.http.get(format!("{}{path}", app.url)),
            _ => app.http.post(format!("{}{path}", app.url)).json(&body),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let got: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, want_status, "{method} {path}: {got}");
        assert_eq!(got["error"]["code"], want_code, "{method} {path}: {got}");
        assert!(
            got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Invalid JSON
    let resp = app
        .http
        .post(format!("{}/api/v1/rollouts", app.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    // Nothing changed by any of it.
    let (_, r) = app.get(&format!("/api/v1/rollouts/{rid}")).await;
    assert_eq!(r["phase_name"], "baseline");
    assert_eq!(r["state"], "active");
    app.assert_env(["false", "false", "false"]).await;
}

async fn concurrent_advances_one_wins(db: Db) {
    let app = spawn_app_with(
        db,
        Options {
            update_delay: std::time::Duration::from_millis(100),
            ..Options::default()
        },
    )
    .await;
    let started = app.start_seed().await;
    let rid = id(&started);

    // Same expected version: exactly one may win.
    let version = started["version"].as_i64().unwrap();
    let body = json!({ "reason": "race", "expected_version": version });
    let path = format!("/api/v1/rollouts/{rid}/advance");
    let (a, b) = tokio::join!(app.post(&path, body.clone()), app.post(&path, body.clone()));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    app.assert_env(["true", "false", "false"]).await;

    // Without a version: the second sees the first's write in flight and is refused.
    let (a, b) = tokio::join!(
        app.post(&path, json!({ "reason": "race 2", "force": true })),
        app.post(&path, json!({ "reason": "race 2", "force": true }))
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    app.assert_env(["true", "true", "false"]).await;
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}
on_both_databases!(concurrent_advances_one_wins);

#[tokio::test]
async fn if_match_header_is_an_expected_version() {
    let app = spawn_app(Db::Sqlite).await;
    let started = app.start_seed().await;
    let rid = id(&started);
    let url = format!("{}/api/v1/rollouts/{rid}/pause", app.url);
    let stale = app
        .http
        .post(&url)
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();
    let current = started["version"].as_i64().unwrap();
    assert_ne!(current, 1);
    assert_eq!(stale.status().as_u16(), 409);
    let ok = app
        .http
        .post(&url)
        .header("If-Match", format!("\"{current}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

#[tokio::test]
async fn rollback_to_previous_pauses_on_the_previous_phase() {
    let app = spawn_app(Db::Sqlite).await;
    let rid = id(&app.start_seed().await);
    app.command(rid, "advance", "a").await;
    app.command(rid, "advance", "b").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/rollouts/{rid}/rollback"),
            json!({ "reason": "tools look off", "to": "previous" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "paused");
    assert_eq!(body["phase_name"], "prompts");
    app.assert_env(["true", "false", "false"]).await;
}

#[tokio::test]
async fn plans_are_listed_shown_and_validated() {
    let app = spawn_app(Db::Sqlite).await;
    let (status, body) = app.get("/api/v1/plans").await;
    assert_eq!(status, 200);
    let seed = body["plans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "dixon-smart-repair")
        .expect("seed plan listed");
    assert_eq!(seed["valid"], true);
    assert_eq!(
        seed["phases"],
        json!(["baseline", "prompts", "tools", "full"])
    );

    let (status, body) = app.get("/api/v1/plans/dixon-smart-repair").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["plan"]["target"]["function"],
        "dixon-smart-repair-handler"
    );
    assert!(body["text"].as_str().unwrap().contains("[[phases]]"));

    let seed_text =
        std::fs::read_to_string(crate::common::repo_plans_dir().join("dixon-smart-repair.toml"))
            .unwrap();
    let resp = app
        .http
        .post(format!("{}/api/v1/plans/validate", app.url))
        .body(seed_text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let bad = seed_text.replacen("[target]", "[target]\nbogus_field = 1", 1);
    let resp = app
        .http
        .post(format!("{}/api/v1/plans/validate", app.url))
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["valid"], false);
    assert!(body["errors"][0]["line"].as_u64().unwrap() > 1, "{body}");
    assert_eq!(body["error"]["code"], "invalid_plan");
}

#[tokio::test]
async fn ops_endpoints_and_openapi() {
    let app = spawn_app(Db::Sqlite).await;
    let r = app
        .http
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["database"], "ok");
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/plans",
        "/api/v1/plans/{name}",
        "/api/v1/plans/validate",
        "/api/v1/rollouts",
        "/api/v1/rollouts/{id}",
        "/api/v1/rollouts/{id}/advance",
        "/api/v1/rollouts/{id}/pause",
        "/api/v1/rollouts/{id}/resume",
        "/api/v1/rollouts/{id}/rollback",
        "/api/v1/audit",
        "/api/v1/audit/verify",
        "/api/v1/audit/export",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
}

/// `GET /api/v1/rollouts?limit=N` pages newest first; `next_cursor` leads
/// to the next older page and is null on the last; without `limit` every
/// rollout comes back; a limit out of range is a 400.
async fn the_rollout_list_pages_newest_first_by_cursor(db: Db) {
    let app = spawn_app(db).await;
    for _ in 0..3 {
        let id = app.start_seed().await["id"].as_i64().unwrap();
        let (status, body) = app.command(id, "abandon", "next").await;
        assert_eq!(status, 200, "{body}");
    }
    let ids = |body: &serde_json::Value| -> Vec<i64> {
        body["rollouts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let (status, all) = app.get("/api/v1/rollouts").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        (ids(&all), all["next_cursor"].clone()),
        (vec![3, 2, 1], serde_json::Value::Null)
    );

    let (_, first) = app.get("/api/v1/rollouts?limit=2").await;
    assert_eq!(
        (ids(&first), first["next_cursor"].as_i64()),
        (vec![3, 2], Some(2))
    );
    let (_, second) = app.get("/api/v1/rollouts?limit=2&cursor=2").await;
    assert_eq!(
        (ids(&second), second["next_cursor"].clone()),
        (vec![1], serde_json::Value::Null)
    );
    let (_, filtered) = app
        .get("/api/v1/rollouts?state=abandoned&limit=3&cursor=3")
        .await;
    assert_eq!(ids(&filtered), vec![2, 1]);

    for bad in ["limit=0", "limit=1001", "limit=x", "cursor=y"] {
        let (status, body) = app.get(&format!("/api/v1/rollouts?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
on_both_databases!(the_rollout_list_pages_newest_first_by_cursor);

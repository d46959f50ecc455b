//! The two-person rule: advancing into a protected phase needs a second
//! operator's approval (request, then approve or deny, both audited and on
//! the dashboard); nobody approves their own request; rollback and abandon
//! never wait for one.

use rollgate::domain::user::Role;
use rollgate::web::auth::{AuthConfig, AuthMode};
use serde_json::{Value, json};

use crate::common::{Db, Options, TestApp, repo_plans_dir, spawn_app_with};
use crate::on_both_databases;

/// The seed plan with its "tools" phase protected, in a plans directory of
/// the test's own.
fn protected_plans() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(repo_plans_dir().join("dixon-smart-repair.toml")).unwrap();
    let text = seed.replace("name = \"tools\"\n", "name = \"tools\"\nprotected = true\n");
    assert_ne!(text, seed);
    std::fs::write(dir.path().join("dixon-smart-repair.toml"), text).unwrap();
    dir
}

struct Ops {
    app: TestApp,
    _plans: tempfile::TempDir,
    otto: String,
    olga: String,
    vera: String,
}

async fn spawn(db: Db) -> Ops {
    let plans = protected_plans();
    let mut app = spawn_app_with(
        db,
        Options {
            plans_dir: plans.path().to_path_buf(),
            auth: AuthConfig {
                mode: AuthMode::Local,
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (otto, olga, vera) = (
        app.make_token("otto", Role::Operator).await,
        app.make_token("olga", Role::Operator).await,
        app.make_token("vera", Role::Viewer).await,
    );
    app.token = Some(otto.clone());
    Ops {
        app,
        _plans: plans,
        otto,
        olga,
        vera,
    }
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn two_person_rule_guards_a_protected_phase(db: Db) {
    let ops = spawn(db).await;
    let app = &ops.app;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let base = format!("/api/v1/rollouts/{id}");
    // prompts is not protected: a plain (forced) advance.
    let (s, _) = app.command(id, "advance", "prompts").await;
    assert_eq!(s, 200);
    // tools is: the advance is refused and says how to get there.
    let (s, body) = app.command(id, "advance", "tools").await;
    assert_eq!(s, 409, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("protected") && msg.contains("approval"),
        "{msg}"
    );
    app.assert_flag("USE_REFACTORED_TOOLS", "false").await;

    // otto asks; a second pending request is refused; a viewer may not ask.
    let (s, a) = post(
        app,
        &ops.otto,
        &format!("{base}/approvals"),
        json!({ "reason": "tools look good", "force": true }),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    assert_eq!(
        (a["state"].as_str(), a["to_phase"].as_str()),
        (Some("pending"), Some("tools"))
    );
    let aid = a["id"].as_i64().unwrap();
    let (s, _) = post(app, &ops.olga, &format!("{base}/approvals"), json!({})).await;
    assert_eq!(s, 409);
    let (s, _) = post(app, &ops.vera, &format!("{base}/approvals"), json!({})).await;
    assert_eq!(s, 403);
    // Self-approval is refused, and so is a viewer's approval.
    let (s, body) = post(
        app,
        &ops.otto,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("second operator")
    );
    let (s, _) = post(
        app,
        &ops.vera,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403);
    app.assert_flag("USE_REFACTORED_TOOLS", "false").await;
    // The dashboard shows it waiting, with approve and deny for a second operator.
    let page = app
        .http
        .get(format!("{}/rollouts/{id}", app.url))
        .bearer_auth(&ops.olga)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("waiting for a second operator")
            && page.contains("Approve and advance to tools")
    );
    // olga approves: the advance is made at once, as olga.
    let (s, r) = post(
        app,
        &ops.olga,
        &format!("{base}/approvals/{aid}/approve"),
        json!({ "reason": "checked" }),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["phase_name"], "tools");
    app.assert_env(["true", "true", "false"]).await;
    let (s, _) = post(
        app,
        &ops.olga,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, 409, "decided once");

    let entries = app.audit(&format!("?rollout={id}")).await;
    let find = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action}"))
            .clone()
    };
    assert_eq!(find("approval_requested")["actor"], "token:otto");
    let granted = find("approval_granted");
    assert_eq!(granted["actor"], "token:olga");
    assert_eq!(granted["detail"]["requested_by"], "token:otto");
    let advance = entries
        .iter()
        .rev()
        .find(|e| e["action"] == "advance" && e["phase"] == "tools")
        .unwrap();
    assert_eq!(advance["actor"], "token:olga");
    assert_eq!(advance["detail"]["approval"]["requested_by"], "token:otto");

    // Rollback never waits for anyone.
    let (s, body) = app.command(id, "rollback", "bad tools").await;
    assert!(s == 200 || s == 202, "{body}");
}
on_both_databases!(two_person_rule_guards_a_protected_phase);

/// A denied request advances nothing; a request lapses when the rollout
/// moves on; the requester may withdraw.
async fn denied_and_lapsed_requests_advance_nothing(db: Db) {
    let ops = spawn(db).await;
    let app = &ops.app;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let base = format!("/api/v1/rollouts/{id}");
    app.command(id, "advance", "prompts").await;
    let (_, a) = post(
        app,
        &ops.otto,
        &format!("{base}/approvals"),
        json!({ "force": true, "reason": "r" }),
    )
    .await;
    let aid = a["id"].as_i64().unwrap();
    let (s, list) = post(
        app,
        &ops.olga,
        &format!("{base}/approvals/{aid}/deny"),
        json!({ "reason": "not yet" }),
    )
    .await;
    assert_eq!(s, 200, "{list}");
    assert_eq!(list["approvals"][0]["state"], "denied");
    assert_eq!(
        app.audit("?action=approval_denied").await[0]["actor"],
        "token:olga"
    );
    let (s, _) = app.command(id, "advance", "tools").await;
    assert_eq!(s, 409, "denied: still no advance");
    app.assert_flag("USE_REFACTORED_TOOLS", "false").await;

    // Asked again, then the rollout is rolled back to the previous phase
    // and re-advanced: the old request no longer applies.
    let (s, a) = post(
        app,
        &ops.otto,
        &format!("{base}/approvals"),
        json!({ "force": true, "reason": "again" }),
    )
    .await;
    assert_eq!(s, 201);
    let aid = a["id"].as_i64().unwrap();
    let (s, _) = post(
        app,
        &ops.otto,
        &format!("{base}/rollback"),
        json!({ "reason": "oops", "to": "previous" }),
    )
    .await;
    assert!(s == 200 || s == 202);
    let (s, body) = post(
        app,
        &ops.olga,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lapsed"),
        "{body}"
    );
    let (_, list) = app.get(&format!("{base}/approvals")).await;
    assert_eq!(list["approvals"][0]["state"], "denied");
    assert_eq!(list["approvals"][0]["decided_by"], "rollgate");
    app.assert_flag("USE_REFACTORED_TOOLS", "false").await;
}
on_both_databases!(denied_and_lapsed_requests_advance_nothing);

#[test]
fn a_protected_phase_after_an_auto_phase_is_refused_with_its_place() {
    let seed = std::fs::read_to_string(repo_plans_dir().join("dixon-smart-repair.toml")).unwrap();
    let text = seed
        .replace(
            "name = \"prompts\"\n",
            "name = \"prompts\"\napproval = \"auto\"\n",
        )
        .replace("name = \"tools\"\n", "name = \"tools\"\nprotected = true\n");
    let errors = rollgate::plan::Plan::parse("p", &text).unwrap_err();
    let line = text.lines().position(|l| l == "protected = true").unwrap() + 1;
    assert!(
        errors
            .iter()
            .any(|e| e.line == line && e.to_string().contains("approval = \"auto\"")),
        "{errors:?}"
    );
}

/// A token is its maker's hand: an admin cannot approve their own request
/// through a token they made. Tokens an admin made for two operators are
/// still two people (the main test above).
async fn a_token_cannot_approve_its_makers_request(db: Db) {
    let ops = spawn(db).await;
    let app = &ops.app;
    let ada = app.make_token("ada", Role::Admin).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let base = format!("/api/v1/rollouts/{id}");
    assert_eq!(app.command(id, "advance", "prompts").await.0, 200);
    let (s, a) = post(
        app,
        &ada,
        &format!("{base}/approvals"),
        json!({ "force": true, "reason": "ship tools" }),
    )
    .await;
    assert_eq!(s, 201, "{a}");
    let aid = a["id"].as_i64().unwrap();
    let (s, made) = post(
        app,
        &ada,
        "/api/v1/tokens",
        json!({ "name": "ada-bot", "role": "operator" }),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    let bot = made["secret"].as_str().unwrap().to_string();
    let (s, body) = post(
        app,
        &bot,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("token:ada-bot") && msg.contains("as token:ada"),
        "{msg}"
    );
    app.assert_flag("USE_REFACTORED_TOOLS", "false").await;
    let (s, r) = post(
        app,
        &ops.olga,
        &format!("{base}/approvals/{aid}/approve"),
        json!({}),
    )
    .await;
    assert_eq!((s, r["phase_name"].as_str()), (200, Some("tools")), "{r}");
}
on_both_databases!(a_token_cannot_approve_its_makers_request);

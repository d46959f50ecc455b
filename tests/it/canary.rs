//! Canary phases on the `lambda-alias` backend, against the sandbox and
//! moto through the official SDK: each step's versions, their environments
//! and the alias's weights; rollback as one alias update; drift of the
//! alias; plans refused when the alias cannot carry a rollout; and a bad
//! canary caught by the sequential judge against the stable version.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::common::{Aws, Db, Options, TestApp, spawn_app_with};
use crate::watcher::{Sim, tick, traffic_before_now};
use rollgate::demo::{DEMO_ALIAS, DEMO_CANARY_FUNCTION, create_demo_canary_function};

const PLAN: &str = "dixon-smart-repair-canary";

async fn app_on(aws: Aws) -> TestApp {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            aws,
            ..Options::default()
        },
    )
    .await;
    create_demo_canary_function(&app.aws).await.unwrap();
    app
}

/// (primary version, additional version → weight) of the alias.
async fn alias(app: &TestApp) -> (String, BTreeMap<String, f64>) {
    let a = app
        .lambda
        .get_alias()
        .function_name(DEMO_CANARY_FUNCTION)
        .name(DEMO_ALIAS)
        .send()
        .await
        .unwrap();
    let weights = a
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .map(|w| w.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    (a.function_version().unwrap().to_string(), weights)
}

/// Asserts the owned flags of `qualifier` (a version number, or
/// `$LATEST`), and that every other variable is exactly as the function had it.
async fn assert_flags(app: &TestApp, qualifier: &str, want: [&str; 3]) {
    app.assert_env_of(DEMO_CANARY_FUNCTION, Some(qualifier), want)
        .await;
}

async fn published(app: &TestApp) -> Vec<String> {
    let out = app
        .lambda
        .list_versions_by_function()
        .function_name(DEMO_CANARY_FUNCTION)
        .send()
        .await
        .unwrap();
    out.versions()
        .iter()
        .filter_map(|v| v.version())
        .filter(|v| *v != "$LATEST")
        .map(str::to_string)
        .collect()
}

async fn start(app: &TestApp) -> i64 {
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": PLAN, "reason": "canary test", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    app.wait_for(id, |r| {
        r["state"] == "active" && r["write_pending"] == false
    })
    .await;
    id
}

async fn advance(app: &TestApp, id: i64, to: &str) -> Value {
    let (status, body) = app.command(id, "advance", "next step").await;
    assert_eq!(status, 200, "{body}");
    let r = app.rollout(id).await;
    assert_eq!(r["phase_name"], to, "{r}");
    assert_eq!(r["write_pending"], false, "{r}");
    r
}

fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// The whole step sequence: versions published only when flags change,
/// their environments, the alias after each step, `$LATEST` left with the
/// stable flags, and a rollback that is one alias update.
async fn steps_shift_the_alias(aws: Aws) {
    let app = app_on(aws).await;
    let id = start(&app).await;
    // Version 1 already holds the baseline flags: nothing is published.
    assert_eq!(alias(&app).await, ("1".into(), weights(&[])));
    assert_eq!(published(&app).await, ["1"]);

    let r = advance(&app, id, "prompts@10%").await;
    assert_eq!(r["traffic"], 10, "{r}");
    assert_eq!(r["routing"]["stable_version"], "1", "{r}");
    assert_eq!(r["routing"]["canary_version"], "2", "{r}");
    assert_eq!(r["routing"]["canary_weight"], 10, "{r}");
    // The versions each position ran, for rollbacks without a lookup.
    assert_eq!(
        r["routing"]["positions"],
        json!({ "0": "1", "1": "2" }),
        "{r}"
    );
    assert_eq!(alias(&app).await, ("1".into(), weights(&[("2", 0.1)])));
    assert_flags(&app, "2", ["true", "false", "false"]).await;
    assert_flags(&app, "1", ["false", "false", "false"]).await;
    // An unqualified invoke runs the stable flags, never the canary's.
    assert_flags(&app, "$LATEST", ["false", "false", "false"]).await;

    advance(&app, id, "prompts@50%").await;
    assert_eq!(alias(&app).await, ("1".into(), weights(&[("2", 0.5)])));
    assert_eq!(
        published(&app).await,
        ["1", "2"],
        "the same version, more weight"
    );

    advance(&app, id, "prompts").await;
    assert_eq!(alias(&app).await, ("2".into(), weights(&[])));
    assert_flags(&app, "$LATEST", ["true", "false", "false"]).await;

    let r = advance(&app, id, "tools@10%").await;
    assert_eq!(r["routing"]["stable_version"], "2");
    let (primary, w) = alias(&app).await;
    assert_eq!(primary, "2");
    let canary = w.keys().next().unwrap().clone();
    assert_eq!(w[&canary], 0.1);
    assert_flags(&app, &canary, ["true", "true", "false"]).await;

    let before = published(&app).await;
    let (status, body) = app.command(id, "rollback", "canary looks bad").await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .wait_for(id, |r| {
            r["state"] == "rolled_back" && r["write_pending"] == false
        })
        .await;
    // Back to the version with the baseline flags, all weight, nothing new published.
    assert_eq!(alias(&app).await, ("1".into(), weights(&[])), "{r}");
    assert_eq!(published(&app).await, before);
    assert_flags(&app, "$LATEST", ["false", "false", "false"]).await;

    // The audit log names each call.
    let writes = app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let steps: Vec<String> = writes
        .iter()
        .flat_map(|e| e["detail"]["steps"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("PublishVersion 2")),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s == "UpdateAlias live: version 1 with 10 % to version 2"),
        "{steps:?}"
    );
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_on_the_sandbox() {
    steps_shift_the_alias(Aws::Sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_on_moto() {
    steps_shift_the_alias(Aws::Moto).await;
}

/// Code uploaded to `$LATEST` but not published: a step that needs a new
/// version is refused before `$LATEST` is touched (publishing would ship
/// the code with the flags), the advance is undone, and a rollback still
/// needs only the alias.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_code_on_latest_is_never_shipped() {
    let app = app_on(Aws::Sandbox).await;
    let id = start(&app).await;
    advance(&app, id, "prompts@10%").await;
    advance(&app, id, "prompts@50%").await;
    advance(&app, id, "prompts").await;
    app.lambda
        .update_function_code()
        .function_name(DEMO_CANARY_FUNCTION)
        .zip_file(aws_sdk_lambda::primitives::Blob::new(b"new code".to_vec()))
        .send()
        .await
        .unwrap();
    // Let the code update settle before the next write.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let before = published(&app).await;
    let (status, body) = app.command(id, "advance", "tools").await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("its code"), "{message}");
    let r = app.rollout(id).await;
    assert_eq!(r["phase_name"], "prompts", "the advance is undone: {r}");
    assert_eq!(published(&app).await, before, "nothing published");
    assert_eq!(alias(&app).await, ("2".into(), weights(&[])));
    assert_flags(&app, "$LATEST", ["true", "false", "false"]).await;

    let (status, body) = app.command(id, "rollback", "back out").await;
    assert_eq!(status, 200, "{body}");
    app.wait_for(id, |r| {
        r["state"] == "rolled_back" && r["write_pending"] == false
    })
    .await;
    assert_eq!(alias(&app).await, ("1".into(), weights(&[])));
    assert_eq!(published(&app).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_alias_cannot_carry_a_rollout_is_refused() {
    alias_refusals(Aws::Sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_whose_alias_cannot_carry_a_rollout_is_refused_on_moto() {
    alias_refusals(Aws::Moto).await;
}

async fn alias_refusals(aws: Aws) {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            aws,
            ..Options::default()
        },
    )
    .await;
    app.create_function(DEMO_CANARY_FUNCTION).await;
    let start = || async {
        app.post(
            "/api/v1/rollouts",
            json!({ "plan": PLAN, "reason": "canary test", "force": true }),
        )
        .await
    };
    let (status, body) = start().await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("alias live of function"),
        "{body}"
    );
    app.lambda
        .create_alias()
        .function_name(DEMO_CANARY_FUNCTION)
        .name(DEMO_ALIAS)
        .function_version("$LATEST")
        .send()
        .await
        .unwrap();
    let (status, body) = start().await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("points at $LATEST"),
        "{body}"
    );
    // An alias already splitting its traffic: someone else's canary.
    let v1 = app
        .lambda
        .publish_version()
        .function_name(DEMO_CANARY_FUNCTION)
        .send()
        .await
        .unwrap();
    app.lambda
        .update_function_configuration()
        .function_name(DEMO_CANARY_FUNCTION)
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("LOG_LEVEL", "DEBUG")
                .build(),
        )
        .send()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let v2 = app
        .lambda
        .publish_version()
        .function_name(DEMO_CANARY_FUNCTION)
        .send()
        .await
        .unwrap();
    app.lambda
        .update_alias()
        .function_name(DEMO_CANARY_FUNCTION)
        .name(DEMO_ALIAS)
        .function_version(v1.version().unwrap())
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some(
                    [(v2.version().unwrap().to_string(), 0.2)].into(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = start().await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already splits its traffic (version 1 with 20 % to version 2)"),
        "{body}"
    );
    let (_, rollouts) = app.get("/api/v1/rollouts").await;
    assert_eq!(
        rollouts["rollouts"].as_array().map(Vec::len),
        Some(0),
        "{rollouts}"
    );
}

/// Someone moves the alias behind rollgate's back: the watcher sees it and
/// puts the alias back where the rollout wants it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_alias_is_drift_and_is_reverted() {
    moved_alias_is_reverted(Aws::Sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_alias_is_drift_and_is_reverted_on_moto() {
    moved_alias_is_reverted(Aws::Moto).await;
}

async fn moved_alias_is_reverted(aws: Aws) {
    let app = app_on(aws).await;
    let id = start(&app).await;
    advance(&app, id, "prompts@10%").await;
    app.lambda
        .update_alias()
        .function_name(DEMO_CANARY_FUNCTION)
        .name(DEMO_ALIAS)
        .routing_config(
            aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                .set_additional_version_weights(Some([("2".to_string(), 0.9)].into()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let report = tick(&app).await;
    let actions: Vec<&str> = report.decisions.iter().map(|d| d.action).collect();
    assert!(actions.contains(&"drift_revert"), "{report:?}");
    app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(alias(&app).await, ("1".into(), weights(&[("2", 0.1)])));
    let drift = app
        .audit(&format!("?rollout={id}&action=drift_detected"))
        .await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        drift[0]["detail"]["observed_routing"]["canary_weight"], 90,
        "{drift:?}"
    );
}

/// A canary whose flags are bad: the sequential error-rate guardrail sees
/// the canary's minutes against the stable version's and rolls back with
/// one alias update, naming the test in the evidence; the stable version
/// never served the bad flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_is_caught_against_the_stable_version() {
    let app = app_on(Aws::Sandbox).await;
    traffic_before_now(&app, 30);
    let id = start(&app).await;
    tick(&app).await;
    advance(&app, id, "prompts@10%").await;
    crate::watcher::bad(&app, &["USE_OPTIMIZED_PROMPTS"], 400);
    let mut sim = Sim::now();
    let (report, secs) = sim.until_decision(&app, 20 * 60).await;
    let actions: Vec<&str> = report.decisions.iter().map(|d| d.action).collect();
    assert_eq!(actions, ["rollback"], "{report:?}");
    assert!(secs <= 10 * 60, "caught within minutes: {secs} s");
    let r = app
        .wait_for(id, |r| {
            r["state"] == "rolled_back" && r["write_pending"] == false
        })
        .await;
    assert_eq!(alias(&app).await, ("1".into(), weights(&[])), "{r}");
    let rollbacks = app.audit(&format!("?rollout={id}&action=rollback")).await;
    let evidence = &rollbacks[0]["detail"]["evidence"];
    // Either canary-vs-stable guardrail may see it first: both are bad.
    let test = match evidence["guardrail"].as_str() {
        Some("error-rate") => "mixture-sprt",
        Some("p99-duration") => "mann-whitney",
        other => panic!("rolled back by {other:?}: {evidence}"),
    };
    let judgement = &evidence["evaluation"]["judgement"];
    assert_eq!(judgement["verdict"], "regression", "{evidence}");
    assert_eq!(judgement["test"], test, "{evidence}");
    assert!(
        judgement["subject_samples"].as_u64().unwrap() > 0,
        "{evidence}"
    );
}

/// Equal canary and stable: no rollback, and the step's sequential gates
/// pass on evidence, so the step promotes itself after its bake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_step_promotes_itself() {
    let app = app_on(Aws::Sandbox).await;
    traffic_before_now(&app, 30);
    let id = start(&app).await;
    tick(&app).await;
    advance(&app, id, "prompts@10%").await;
    // 5 % of callers invoke the function unqualified, around the alias.
    app.sandbox
        .set_traffic(rollgate::sandbox::traffic::TrafficSettings {
            invocations_per_tick: 400,
            outside_share: 0.05,
            ..Default::default()
        });
    let mut sim = Sim::now();
    let mut promoted = false;
    let mut outside = None;
    for _ in 0..(90 * 6) {
        let report = sim.step(&app).await;
        let actions: Vec<&str> = report.decisions.iter().map(|d| d.action).collect();
        assert!(!actions.contains(&"rollback"), "{report:?}");
        if actions.contains(&"advance") {
            promoted = true;
            break;
        }
        if let Some(n) =
            app.rollout(id).await["readiness"]["observed"]["outside_alias_invocations"].as_f64()
        {
            outside = Some(n);
        }
    }
    // Reported: about 5 % of five minutes of 2,400 invocations a minute.
    let outside = outside.expect("traffic outside the alias is reported");
    assert!((200.0..1_200.0).contains(&outside), "{outside}");
    let r = app.rollout(id).await;
    assert!(promoted, "{r}");
    assert_eq!(r["phase_name"], "prompts@50%", "{r}");
    // The dashboard shows the split, and canary and stable on one chart.
    let html = app
        .http
        .get(format!("{}/rollouts/{id}", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("50 % to version 2 (canary), 50 % to version 1 (stable) on alias live"),
        "{html}"
    );
    assert!(
        html.contains(r#""kind":"stable""#),
        "no stable line in a chart: {html}"
    );
    let advanced = app.audit(&format!("?rollout={id}&action=advance")).await;
    let gates = advanced.last().unwrap()["detail"].to_string();
    assert!(
        gates.contains("no_regression") || gates.contains("mixture-sprt"),
        "{gates}"
    );
}

/// `judge.max_wait`: a step whose sequential duration gate is still
/// inconclusive after 5 minutes (a rank test needs about 11 minutes of
/// datapoints) is paused once; resumed, it is not paused again for the
/// same step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_wait_pauses_an_inconclusive_step_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("waiting.toml"),
        format!(
            r#"[target]
backend = "lambda-alias"
function = "{DEMO_CANARY_FUNCTION}"
alias = "{DEMO_ALIAS}"
[flags]
USE_REFACTORED_TOOLS = "false"
[defaults]
bake = "1h"
step_bake = "1m"
[judge]
max_wait = "5m"
[cloudwatch]
settle = "5s"
[[phases]]
name = "tools"
set = {{ USE_REFACTORED_TOOLS = "true" }}
traffic = [50]
  [[phases.gates]]
  name = "much-faster"
  metric = "duration_avg"
  max_ratio = 0.5
  compare_to = "stable"
  judge = "sequential"
"#
        ),
    )
    .unwrap();
    let app = crate::common::spawn_app_with_plans(dir.path()).await;
    create_demo_canary_function(&app.aws).await.unwrap();
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "waiting", "reason": "t", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    app.wait_for(id, |r| r["write_pending"] == false).await;
    advance(&app, id, "tools@50%").await;
    crate::watcher::bad(&app, &[], 200);
    let mut sim = Sim::now();
    let (report, secs) = sim.until_decision(&app, 15 * 60).await;
    let actions: Vec<&str> = report.decisions.iter().map(|d| d.action).collect();
    assert_eq!(actions, ["pause"], "{report:?}");
    assert!(secs >= 5 * 60, "not before max_wait: {secs} s");
    let r = app.rollout(id).await;
    assert_eq!(r["state"], "paused", "{r}");
    let (status, body) = app.command(id, "resume", "keep waiting").await;
    assert_eq!(status, 200, "{body}");
    for report in sim.run(&app, 5 * 60).await {
        let actions: Vec<&str> = report.decisions.iter().map(|d| d.action).collect();
        assert!(!actions.contains(&"pause"), "paused again: {report:?}");
    }
    assert_eq!(app.rollout(id).await["state"], "active");
}

/// On `lambda-alias`, a phase without `traffic` moves all traffic at once:
/// one new version, the alias on it with no weights; and a step's bake
/// defaults to 10 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phase_without_traffic_moves_the_alias_at_once() {
    let plan = format!(
        r#"[target]
backend = "lambda-alias"
function = "{DEMO_CANARY_FUNCTION}"
alias = "{DEMO_ALIAS}"
[flags]
USE_OPTIMIZED_PROMPTS = "false"
[defaults]
bake = "1h"
[[phases]]
name = "canary"
set = {{ USE_OPTIMIZED_PROMPTS = "true" }}
traffic = [20]
[[phases]]
name = "at-once"
set = {{ USE_REFACTORED_TOOLS = "true" }}
"#
    )
    .replace(
        "USE_OPTIMIZED_PROMPTS = \"false\"\n",
        "USE_OPTIMIZED_PROMPTS = \"false\"\nUSE_REFACTORED_TOOLS = \"false\"\n",
    );
    let parsed = rollgate::plan::Plan::parse("at-once", &plan).unwrap();
    assert_eq!(parsed.phases[0].bake, std::time::Duration::from_secs(600));
    assert_eq!(
        parsed.phase_count(),
        4,
        "baseline, canary@20%, canary, at-once"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("at-once.toml"), &plan).unwrap();
    let app = crate::common::spawn_app_with_plans(dir.path()).await;
    create_demo_canary_function(&app.aws).await.unwrap();
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "at-once", "reason": "t", "force": true }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_i64().unwrap();
    app.wait_for(id, |r| r["write_pending"] == false).await;
    advance(&app, id, "canary@20%").await;
    assert_eq!(alias(&app).await, ("1".into(), weights(&[("2", 0.2)])));
    advance(&app, id, "canary").await;
    let r = advance(&app, id, "at-once").await;
    assert_eq!(r["traffic"], Value::Null, "{r}");
    assert_eq!(alias(&app).await, ("3".into(), weights(&[])));
    assert_eq!(published(&app).await, ["1", "2", "3"]);
    let env = app.function_env_of(DEMO_CANARY_FUNCTION, Some("3")).await;
    assert_eq!(env["USE_OPTIMIZED_PROMPTS"], "true");
    assert_eq!(env["USE_REFACTORED_TOOLS"], "true");
}

//! Preflight against the sandbox: every check passing and failing, through
//! `POST /api/v1/plans/{name}/preflight`, and a start refused on a failure
//! unless forced with a reason.

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};

use crate::common::{FUNCTION, TestApp, spawn_app_with_plans};

const SEED: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");

/// The seed plan judged over a 30-minute baseline (the sandbox's history
/// is laid down by the test) with data settled at once.
fn short_seed() -> String {
    format!(
        "{}\n[cloudwatch]\nsettle = \"1s\"\n",
        SEED.replace("lookback = \"7d\"", "lookback = \"30m\"")
    )
}

async fn app_with(plans: &[(&str, String)]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in plans {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    (spawn_app_with_plans(dir.path()).await, dir)
}

/// 30 minutes of traffic before now, one tick a minute (200 invocations each).
fn lay_down_history(app: &TestApp) {
    let now = Utc::now();
    for m in 1..=30 {
        app.sandbox.emit_traffic_at(now - TimeDelta::minutes(m));
    }
}

async fn preflight(app: &TestApp, plan: &str) -> Value {
    let (status, body) = app
        .post(&format!("/api/v1/plans/{plan}/preflight"), Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

fn status_of(report: &Value, id: &str) -> String {
    check(report, id)["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_function_with_history_passes_every_check() {
    let (app, _dir) = app_with(&[("seed", short_seed())]).await;
    lay_down_history(&app);
    let report = preflight(&app, "seed").await;
    for id in [
        "function.exists",
        "function.state",
        "function.last_update",
        "function.environment",
        "function.holder",
        "environment.fit",
        "baseline.error_rate",
        "baseline.duration_p99",
        "baseline.duration_avg",
        "baseline.tokens_per_request",
        "metric.tokens_per_request",
        "permissions.read",
    ] {
        assert_eq!(status_of(&report, id), "pass", "{id}: {report:#}");
    }
    assert_ne!(report["status"], "fail", "{report:#}");
    // The numbers behind it.
    let tokens = check(&report, "metric.tokens_per_request");
    assert!(
        tokens["detail"]
            .as_str()
            .unwrap()
            .contains("samples in the last hour"),
        "{tokens}"
    );
    let baseline = check(&report, "baseline.error_rate")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(baseline.contains("samples over the last 30m"), "{baseline}");
    // A start passes without force and records the outcome.
    let (status, started) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "seed", "reason": "week 2" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert_ne!(started["preflight"]["status"], "fail");
    let entries = app.audit("?action=start").await;
    assert!(
        entries[0]["detail"]["preflight"]["status"].is_string(),
        "{:#}",
        entries[0]
    );
    assert!(
        entries[0]["detail"]["preflight"]
            .get("forced_past")
            .is_none()
    );
    // Now the function is held.
    let report = preflight(&app, "seed").await;
    assert_eq!(status_of(&report, "function.holder"), "fail", "{report:#}");
}

#[tokio::test]
async fn no_baseline_data_and_no_custom_metric_fail_and_refuse_the_start() {
    let (app, _dir) = app_with(&[("seed", short_seed())]).await;
    let report = preflight(&app, "seed").await;
    assert_eq!(report["status"], "fail");
    let p99 = check(&report, "baseline.duration_p99");
    assert_eq!(p99["status"], "fail");
    assert!(
        p99["detail"]
            .as_str()
            .unwrap()
            .contains("guardrail p99-duration compares with the baseline"),
        "{p99}"
    );
    let tokens = check(&report, "metric.tokens_per_request");
    assert_eq!(tokens["status"], "fail");
    assert!(
        tokens["detail"]
            .as_str()
            .unwrap()
            .contains("no datapoints at all"),
        "{tokens}"
    );

    let (status, body) = app
        .post("/api/v1/rollouts", json!({ "plan": "seed", "reason": "x" }))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "preflight_failed");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("baseline.duration_p99"),
        "{body}"
    );
    assert_eq!(body["error"]["details"]["status"], "fail");
    let (_, list) = app.get("/api/v1/rollouts").await;
    assert_eq!(list["rollouts"], json!([]), "nothing was recorded");
    assert!(app.audit("").await.is_empty(), "nothing was audited");

    // Forcing needs a reason.
    let (status, body) = app
        .post("/api/v1/rollouts", json!({ "plan": "seed", "force": true }))
        .await;
    assert_eq!(status, 400, "{body}");
    // With one, the start goes ahead and the audit says what was forced past.
    let (status, started) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "seed", "force": true, "reason": "new function, no history yet" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let entry = &app.audit("?action=start").await[0];
    let forced = entry["detail"]["preflight"]["forced_past"].to_string();
    assert!(forced.contains("baseline.duration_p99"), "{entry:#}");
    assert!(forced.contains("metric.tokens_per_request"), "{entry:#}");
    assert_eq!(entry["reason"], "new function, no history yet");
}

#[tokio::test]
async fn a_missing_function_fails() {
    let text = short_seed().replace(
        "function = \"dixon-smart-repair-handler\"",
        "function = \"no-such-function\"",
    );
    let (app, _dir) = app_with(&[("missing", text)]).await;
    let report = preflight(&app, "missing").await;
    let exists = check(&report, "function.exists");
    assert_eq!(exists["status"], "fail");
    assert!(
        exists["detail"]
            .as_str()
            .unwrap()
            .contains("no such function"),
        "{exists}"
    );
    let (status, body) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "missing", "reason": "x" }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "preflight_failed");
}

#[tokio::test]
async fn an_environment_too_large_at_the_third_phase_is_named() {
    // A long flag value that only the last phase sets.
    let text = short_seed()
        .replace(
            "USE_FULL_OPTIMIZATION = \"false\"",
            "USE_FULL_OPTIMIZATION = \"off\"",
        )
        .replace(
            "set = { USE_FULL_OPTIMIZATION = \"true\" }",
            &format!(
                "set = {{ USE_FULL_OPTIMIZATION = \"{}\" }}",
                "y".repeat(1500)
            ),
        );
    let (app, _dir) = app_with(&[("wide", text)]).await;
    lay_down_history(&app);
    // Fill the function so the baseline and the first phases fit, the last not.
    let mut env = app.function_env().await;
    let used: usize = env.iter().map(|(k, v)| k.len() + v.len()).sum();
    env.insert("PADDING".into(), "p".repeat(4096 - used - 1000));
    app.set_env(env.clone()).await;
    let report = preflight(&app, "wide").await;
    let fit = check(&report, "environment.fit");
    assert_eq!(fit["status"], "fail", "{report:#}");
    let detail = fit["detail"].as_str().unwrap();
    assert!(detail.starts_with("phase full would make it"), "{detail}");
    assert!(detail.contains("bytes per phase: baseline"), "{detail}");
    assert_eq!(app.function_env().await, env, "preflight writes nothing");
}

#[tokio::test]
async fn a_missing_alarm_fails_and_an_existing_one_passes() {
    let text = short_seed().replace(
        "# [[guardrails]]\n# name = \"errors-alarm\"\n# alarm = \"dixon-smart-repair-errors\"",
        "[[guardrails]]\nname = \"errors-alarm\"\nalarm = \"dixon-smart-repair-errors\"",
    );
    let (app, _dir) = app_with(&[("alarmed", text)]).await;
    lay_down_history(&app);
    let report = preflight(&app, "alarmed").await;
    assert_eq!(
        status_of(&report, "alarm.dixon-smart-repair-errors"),
        "fail",
        "{report:#}"
    );
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&app.aws);
    cloudwatch
        .put_metric_alarm()
        .alarm_name("dixon-smart-repair-errors")
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("FunctionName")
                .value(FUNCTION)
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let report = preflight(&app, "alarmed").await;
    assert_eq!(
        status_of(&report, "alarm.dixon-smart-repair-errors"),
        "pass",
        "{report:#}"
    );
}

#[tokio::test]
async fn an_unknown_plan_is_a_404_and_the_cli_prints_every_check() {
    let (app, _dir) = app_with(&[("seed", short_seed())]).await;
    let (status, body) = app.post("/api/v1/plans/nope/preflight", Value::Null).await;
    assert_eq!(status, 404, "{body}");
    let exe = env!("CARGO_BIN_EXE_rollgate");
    let out = tokio::process::Command::new(exe)
        .args(["plan", "preflight", "seed", "--server", &app.url])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failing check exits 1: {stdout}"
    );
    assert!(
        stdout.contains("FAIL  metric.tokens_per_request"),
        "{stdout}"
    );
    assert!(stdout.contains("preflight of plan seed: fail"), "{stdout}");
    lay_down_history(&app);
    let out = tokio::process::Command::new(exe)
        .args([
            "plan",
            "preflight",
            "seed",
            "--server",
            &app.url,
            "--output",
            "json",
        ])
        .output()
        .await
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(report["status"], "fail", "{report:#}");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test]
async fn a_denied_permission_fails_reads_and_writes_alike() {
    let (app, _dir) = app_with(&[("seed", short_seed())]).await;
    lay_down_history(&app);
    let report = preflight(&app, "seed").await;
    let writes = check(&report, "permissions.write");
    assert_eq!(writes["status"], "pass", "{report:#}");
    assert!(
        writes["detail"]
            .as_str()
            .unwrap()
            .contains("lambda:UpdateFunctionConfiguration on arn:aws:lambda:"),
        "{writes}"
    );

    app.sandbox
        .faults()
        .deny("lambda:UpdateFunctionConfiguration");
    let report = preflight(&app, "seed").await;
    let writes = check(&report, "permissions.write");
    assert_eq!(writes["status"], "fail", "{report:#}");
    assert!(
        writes["detail"].as_str().unwrap().contains("implicitDeny"),
        "{writes}"
    );
    let (status, body) = app
        .post("/api/v1/rollouts", json!({ "plan": "seed", "reason": "x" }))
        .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (422, json!("preflight_failed"))
    );

    app.sandbox.faults().deny("cloudwatch:GetMetricData");
    let report = preflight(&app, "seed").await;
    assert_eq!(status_of(&report, "permissions.read"), "fail", "{report:#}");
    assert_eq!(status_of(&report, "baseline.error_rate"), "fail");

    // A caller who may not simulate gets a warning that lists the writes.
    app.sandbox.faults().reset();
    app.sandbox.faults().deny("iam:SimulatePrincipalPolicy");
    let report = preflight(&app, "seed").await;
    let writes = check(&report, "permissions.write");
    assert_eq!(writes["status"], "warn", "{report:#}");
    assert!(
        writes["detail"].as_str().unwrap().contains("not checked"),
        "{writes}"
    );
}

/// The seed with a release window that is closed now (a day that is not
/// today, in Tokyo: across the date line from UTC).
fn windowed(window: &str) -> String {
    format!("{}\n[schedule]\npromote = [\"{window}\"]\n", short_seed())
}

#[tokio::test]
async fn promotion_waits_for_the_release_window_and_rollback_never_does() {
    use chrono::Datelike;
    let tokyo_now = Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    // Every day but today (Tokyo's today, which may be UTC's yesterday or tomorrow).
    let names = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let today = tokyo_now.weekday().num_days_from_monday() as usize;
    let closed_days: Vec<&str> = (0..7).filter(|d| *d != today).map(|d| names[d]).collect();
    let closed = format!("{} 00:00-24:00 Asia/Tokyo", closed_days.join(","));
    let open = format!("{} 00:00-24:00 Asia/Tokyo", names[today]);
    let (app, dir) = app_with(&[("held", windowed(&closed))]).await;
    lay_down_history(&app);
    let (status, started) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "held", "reason": "week 2" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_i64().unwrap();
    let window = started["release_window"].as_str().unwrap_or_default();
    assert!(window.starts_with("closed: "), "{started:#}");
    assert!(window.contains("Asia/Tokyo"), "{window}");

    let (status, body) = app
        .post(
            &format!("/api/v1/rollouts/{id}/advance"),
            json!({ "reason": "go" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("outside the release windows"), "{message}");
    app.assert_env(["false", "false", "false"]).await;

    // Forced with a reason, an operator may still promote.
    let (status, body) = app
        .post(
            &format!("/api/v1/rollouts/{id}/advance"),
            json!({ "reason": "incident fix, approved by the on-call lead", "force": true }),
        )
        .await;
    assert!(status == 200 || status == 202, "{body}");
    app.assert_env(["true", "false", "false"]).await;
    let entry = &app.audit("?action=advance").await[0];
    assert!(
        entry["detail"]["forced_past"]
            .to_string()
            .contains("outside the release windows"),
        "{entry:#}"
    );
    // A rollback is never held by the window.
    let (status, body) = app
        .post(
            &format!("/api/v1/rollouts/{id}/rollback"),
            json!({ "reason": "error rate up" }),
        )
        .await;
    assert!(status == 200 || status == 202, "{body}");
    app.assert_env(["false", "false", "false"]).await;

    // The same plan with today's window open: the window blocks nothing.
    std::fs::write(dir.path().join("open.toml"), windowed(&open)).unwrap();
    let (status, started) = app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": "open", "reason": "week 2" }),
        )
        .await;
    assert_eq!(status, 201, "{started}");
    assert!(
        started["release_window"]
            .as_str()
            .unwrap()
            .starts_with("open until"),
        "{started:#}"
    );
    let id = started["id"].as_i64().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/rollouts/{id}/advance"),
            json!({ "reason": "go" }),
        )
        .await;
    assert!(status == 200 || status == 202, "{body}");
}

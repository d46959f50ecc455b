//! The `appconfig` backend against the sandbox's AppConfig through the
//! official SDK: the write sequence (only owned values change, the latest
//! version as precondition, a deployment followed to COMPLETE, live one
//! extension poll later), a concurrent edit re-read and merged, a busy
//! environment waited out, a rollback stopping the running deployment,
//! AppConfig's own rollback noticed and followed, drift reverted, start
//! refusals, and the seed's phases end to end with a bad phase rolled back.

use std::time::Duration;

use aws_sdk_appconfig::primitives::Blob;
use serde_json::{Value, json};

use crate::common::{Options, TestApp, spawn_app_with};
use crate::watcher::{Sim, bad, traffic_before_now};
use rollgate::demo::{
    DEMO_APPCONFIG_APPLICATION, DEMO_APPCONFIG_ENVIRONMENT, DEMO_APPCONFIG_FLAGS,
    DEMO_APPCONFIG_PLAN, DEMO_APPCONFIG_PROFILE, create_demo_appconfig_monitored,
    demo_appconfig_plan,
};

const SHIPPED: &str = include_str!("../../rollout-plans/dixon-smart-repair-appconfig.toml");
const ALARM: &str = "dixon-smart-repair-errors";

struct Fx {
    app: TestApp,
    ac: aws_sdk_appconfig::Client,
    app_id: String,
    env_id: String,
    profile_id: String,
    _plans: tempfile::TempDir,
}

/// The demo's AppConfig example with its plan (`edit` changes the plan
/// text), a strategy minute of `minute`, the environment monitoring ALARM.
async fn setup(minute: Duration, edit: impl Fn(String) -> String) -> Fx {
    let plans = tempfile::tempdir().unwrap();
    std::fs::write(
        plans.path().join(format!("{DEMO_APPCONFIG_PLAN}.toml")),
        edit(demo_appconfig_plan(SHIPPED)),
    )
    .unwrap();
    let app = spawn_app_with(
        crate::common::Db::Sqlite,
        Options {
            plans_dir: plans.path().to_path_buf(),
            ..Options::default()
        },
    )
    .await;
    app.sandbox.set_appconfig_minute(minute);
    create_demo_appconfig_monitored(&app.aws, Some(ALARM))
        .await
        .unwrap();
    let ac = aws_sdk_appconfig::Client::new(&app.aws);
    let app_id = ac.list_applications().send().await.unwrap().items()[0]
        .id()
        .unwrap()
        .to_string();
    let env_id = ac
        .list_environments()
        .application_id(&app_id)
        .send()
        .await
        .unwrap()
        .items()[0]
        .id()
        .unwrap()
        .to_string();
    let profile_id = ac
        .list_configuration_profiles()
        .application_id(&app_id)
        .send()
        .await
        .unwrap()
        .items()[0]
        .id()
        .unwrap()
        .to_string();
    let fx = Fx {
        app,
        ac,
        app_id,
        env_id,
        profile_id,
        _plans: plans,
    };
    fx.wait_idle().await;
    fx
}

impl Fx {
    /// Until no deployment of the environment runs.
    async fn wait_idle(&self) {
        for _ in 0..400 {
            let d = self.deployments().await;
            if !d.iter().any(|d| {
                matches!(
                    d["state"].as_str(),
                    Some("DEPLOYING" | "BAKING" | "ROLLING_BACK")
                )
            }) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the environment stayed busy: {:?}",
            self.deployments().await
        );
    }

    /// The environment's deployments, newest first, as JSON.
    async fn deployments(&self) -> Vec<Value> {
        let out = self
            .ac
            .list_deployments()
            .application_id(&self.app_id)
            .environment_id(&self.env_id)
            .send()
            .await
            .unwrap();
        let mut v: Vec<Value> = out
            .items()
            .iter()
            .map(|d| {
                json!({
                    "number": d.deployment_number(),
                    "version": d.configuration_version(),
                    "state": d.state().map(|s| s.as_str()),
                    "profile": d.configuration_name(),
                })
            })
            .collect();
        v.sort_by_key(|d| -d["number"].as_i64().unwrap());
        v
    }

    async fn deployment(
        &self,
        number: i64,
    ) -> aws_sdk_appconfig::operation::get_deployment::GetDeploymentOutput {
        self.ac
            .get_deployment()
            .application_id(&self.app_id)
            .environment_id(&self.env_id)
            .deployment_number(number as i32)
            .send()
            .await
            .unwrap()
    }

    async fn version(&self, n: i64) -> Value {
        let out = self
            .ac
            .get_hosted_configuration_version()
            .application_id(&self.app_id)
            .configuration_profile_id(&self.profile_id)
            .version_number(n as i32)
            .send()
            .await
            .unwrap();
        serde_json::from_slice(out.content().unwrap().as_ref()).unwrap()
    }

    async fn latest_version(&self) -> i64 {
        let out = self
            .ac
            .list_hosted_configuration_versions()
            .application_id(&self.app_id)
            .configuration_profile_id(&self.profile_id)
            .send()
            .await
            .unwrap();
        out.items()
            .iter()
            .map(|v| v.version_number() as i64)
            .max()
            .unwrap()
    }

    /// The document the environment serves: the newest deployment not
    /// rolled back.
    async fn served(&self) -> Value {
        let d = self.deployments().await;
        let current = d
            .iter()
            .find(|d| !matches!(d["state"].as_str(), Some("ROLLED_BACK" | "REVERTED")))
            .expect("something deployed");
        self.version(current["version"].as_str().unwrap().parse().unwrap())
            .await
    }

    /// Asserts the served `enabled` of the three flags, and that everything
    /// else in the document is exactly as the profile's first version had it.
    async fn assert_served(&self, want: [bool; 3]) {
        let served = self.served().await;
        assert_same_but_owned(&served, want);
    }

    async fn start(&self) -> i64 {
        let (status, body) = self
            .app
            .post(
                "/api/v1/rollouts",
                json!({ "plan": DEMO_APPCONFIG_PLAN, "reason": "appconfig test", "force": true }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_i64().unwrap();
        self.app
            .wait_for(id, |r| {
                r["state"] == "active" && r["write_pending"] == false
            })
            .await;
        id
    }

    /// Another team's Freeform profile in the same application, with a
    /// version 1; returns its id.
    async fn other_team_profile(&self) -> String {
        let other = self
            .ac
            .create_configuration_profile()
            .application_id(&self.app_id)
            .name("other-team")
            .location_uri("hosted")
            .r#type("AWS.Freeform")
            .send()
            .await
            .unwrap();
        let other = other.id().unwrap().to_string();
        self.ac
            .create_hosted_configuration_version()
            .application_id(&self.app_id)
            .configuration_profile_id(&other)
            .content(Blob::new(b"{}".to_vec()))
            .content_type("application/json")
            .send()
            .await
            .unwrap();
        other
    }

    /// Deploys version 1 of profile `other` to the environment (AllAtOnce).
    async fn deploy_other(&self, other: &str) {
        self.ac
            .start_deployment()
            .application_id(&self.app_id)
            .environment_id(&self.env_id)
            .configuration_profile_id(other)
            .configuration_version("1")
            .deployment_strategy_id("AppConfig.AllAtOnce")
            .send()
            .await
            .unwrap();
    }

    /// Deploys `doc` as someone else would (AllAtOnce).
    async fn foreign_deploy(&self, doc: &Value) -> i64 {
        let v = self
            .ac
            .create_hosted_configuration_version()
            .application_id(&self.app_id)
            .configuration_profile_id(&self.profile_id)
            .content(Blob::new(serde_json::to_vec(doc).unwrap()))
            .content_type("application/json")
            .send()
            .await
            .unwrap();
        let d = self
            .ac
            .start_deployment()
            .application_id(&self.app_id)
            .environment_id(&self.env_id)
            .configuration_profile_id(&self.profile_id)
            .configuration_version(v.version_number().to_string())
            .deployment_strategy_id("AppConfig.AllAtOnce")
            .send()
            .await
            .unwrap();
        d.deployment_number() as i64
    }
}

const OWNED: [&str; 3] = [
    "use_optimized_prompts",
    "use_refactored_tools",
    "use_full_optimization",
];

fn assert_same_but_owned(doc: &Value, want: [bool; 3]) {
    let first: Value = serde_json::from_str(DEMO_APPCONFIG_FLAGS).unwrap();
    assert_eq!(doc["flags"], first["flags"], "flag definitions untouched");
    assert_eq!(doc["version"], first["version"]);
    assert_eq!(
        doc["values"]["maintenance_banner"], first["values"]["maintenance_banner"],
        "another team's flag untouched"
    );
    for (flag, on) in OWNED.iter().zip(want) {
        assert_eq!(doc["values"][flag]["enabled"], on, "{flag} in {doc}");
    }
    assert_eq!(
        doc["values"]["use_optimized_prompts"]["variant"], "v1",
        "an attribute the plan does not own stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_creates_a_version_from_the_latest_and_deploys_it_to_complete() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let id = fx.start().await;
    // The baseline was already served: nothing created, nothing deployed.
    assert_eq!(fx.latest_version().await, 1);
    assert_eq!(fx.deployments().await.len(), 1);

    let (status, body) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["phase_name"], "prompts");
    assert_eq!(body["write_pending"], false, "{body}");
    // Version 2 made from version 1 with the precondition, deployed with
    // the plan's strategy, followed to COMPLETE.
    assert_eq!(fx.latest_version().await, 2);
    fx.assert_served([true, false, false]).await;
    let d = fx.deployments().await;
    assert_eq!(
        (d[0]["number"].as_i64(), d[0]["version"].as_str()),
        (Some(2), Some("2"))
    );
    assert_eq!(d[0]["state"], "COMPLETE");
    let deployment = fx.deployment(2).await;
    assert_eq!(
        deployment.deployment_strategy_id(),
        Some("AppConfig.Linear20PercentEvery6Minutes")
    );
    // Live one extension poll (45 s) after the deployment completed; the
    // bake starts then.
    let delivery = &body["delivery"];
    assert_eq!(
        (
            delivery["version"].as_i64(),
            delivery["deployment"].as_i64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(delivery["state"], "COMPLETE");
    let completed: chrono::DateTime<chrono::Utc> =
        delivery["completed_at"].as_str().unwrap().parse().unwrap();
    let live: chrono::DateTime<chrono::Utc> = body["live_since"].as_str().unwrap().parse().unwrap();
    assert_eq!(live, completed + chrono::TimeDelta::seconds(45));
    assert_eq!(body["bake_started_at"], body["live_since"]);
    // The audit log names the version and the deployment, and what it took.
    let writes = fx
        .app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let last = writes
        .iter()
        .find(|w| w["outcome"] == "applied")
        .expect("an applied write");
    assert_eq!(last["detail"]["appconfig"]["version"], 2);
    assert_eq!(last["detail"]["appconfig"]["deployment"], 2);
    // The calls, recorded as the deployment started; the deployment
    // followed state by state until it completed.
    let first = writes
        .iter()
        .find(|w| w["outcome"] == "deploying")
        .expect("the deployment recorded as it started");
    let steps = first["detail"]["steps"].to_string();
    assert_eq!(first["detail"]["appconfig"]["state"], "DEPLOYING");
    assert!(
        last["detail"]["steps"]
            .to_string()
            .contains("deployment 2 of version 2 is COMPLETE"),
        "{last}"
    );
    assert!(
        steps.contains("created hosted version 2 (precondition: latest version 1)"),
        "{steps}"
    );
    assert!(
        steps.contains(
            "started deployment 2 of version 2 with AppConfig.Linear20PercentEvery6Minutes"
        ),
        "{steps}"
    );
    // The rollout page and status say where it stands.
    let page = fx
        .app
        .http
        .get(format!("{}/rollouts/{id}", fx.app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("AppConfig deployment 2 of version 2"),
        "{page}"
    );
    assert!(page.contains("45 s poll"));

    // The next step changes only its own flag.
    let (status, body) = fx.app.command(id, "advance", "tools").await;
    assert_eq!(status, 200, "{body}");
    fx.assert_served([true, true, false]).await;
    assert_eq!(fx.latest_version().await, 3);

    // A rollback: all disabled again, with the rollback strategy.
    let (status, body) = fx.app.command(id, "rollback", "enough").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rolled_back");
    fx.assert_served([false, false, false]).await;
    let d = fx.deployments().await;
    let last = fx.deployment(d[0]["number"].as_i64().unwrap()).await;
    assert_eq!(last.deployment_strategy_id(), Some("AppConfig.AllAtOnce"));
    let (_, verify) = fx.app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_created_meanwhile_is_re_read_and_merged() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let id = fx.start().await;
    // Right after rollgate reads version 1, someone creates version 2 with
    // another banner text: rollgate's version 2 fails its precondition.
    let mut theirs: Value = serde_json::from_str(DEMO_APPCONFIG_FLAGS).unwrap();
    theirs["values"]["maintenance_banner"]["text"] = json!("Maintenance moved to Monday");
    fx.app
        .sandbox
        .faults()
        .appconfig_foreign_version(&fx.profile_id, &theirs.to_string());
    let (status, body) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fx.latest_version().await, 3, "theirs is 2, ours 3");
    let served = fx.served().await;
    assert_eq!(
        served["values"]["maintenance_banner"]["text"],
        "Maintenance moved to Monday"
    );
    assert_eq!(served["values"]["use_optimized_prompts"]["enabled"], true);
    let writes = fx
        .app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let applied = writes.iter().find(|w| w["outcome"] == "deploying").unwrap();
    assert!(
        applied["detail"]["retried_because"]
            .to_string()
            .contains("another hosted version was created"),
        "{applied}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_environment_is_waited_out() {
    let fx = setup(Duration::from_millis(100), |p| p).await;
    let id = fx.start().await;
    // Someone deploys another profile's configuration to the environment:
    // AllAtOnce bakes 10 strategy minutes (1 s here).
    let other = fx.other_team_profile().await;
    fx.deploy_other(&other).await;
    let (status, body) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 202, "the write waits: {body}");
    let r = fx.app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(r["phase_name"], "prompts");
    fx.assert_served([true, false, false]).await;
    let writes = fx
        .app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    assert!(
        writes.iter().any(|w| w["outcome"] == "retrying"
            && w["detail"]["error"]
                .as_str()
                .unwrap_or("")
                .contains("one deployment per environment")),
        "{writes:?}"
    );
    assert!(writes.iter().any(|w| w["outcome"] == "applied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_stops_the_running_deployment_and_serves_the_baseline_at_once() {
    // A strategy minute of 1 s: the plan's linear deployment takes a minute.
    let fx = setup(Duration::from_secs(1), |p| p).await;
    let id = fx.start().await;
    let (status, body) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 202, "still deploying: {body}");
    assert_eq!(body["delivery"]["state"], "DEPLOYING", "{body}");
    let deploying = body["delivery"]["deployment"].as_i64().unwrap();
    let (status, body) = fx.app.command(id, "rollback", "stop it").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rolled_back");
    assert_eq!(body["write_pending"], false);
    let stopped = fx.deployment(deploying).await;
    assert_eq!(stopped.state().map(|s| s.as_str()), Some("ROLLED_BACK"));
    assert!(
        stopped
            .event_log()
            .iter()
            .any(|e| e.triggered_by().map(|t| t.as_str()) == Some("USER")),
        "stopped by rollgate: {:?}",
        stopped.event_log()
    );
    // Stopping gave the environment version 1 back: nothing else deployed.
    fx.assert_served([false, false, false]).await;
    let d = fx.deployments().await;
    assert_eq!(d[0]["number"].as_i64(), Some(deploying), "{d:?}");
    let writes = fx
        .app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let last = writes.last().unwrap();
    assert!(
        last["detail"]["retried_because"]
            .to_string()
            .contains(&format!("stopped deployment {deploying}")),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_appconfig_rolls_back_by_itself_rolls_the_rollout_back() {
    let fx = setup(Duration::from_millis(200), |p| p).await;
    let id = fx.start().await;
    let cw = aws_sdk_cloudwatch::Client::new(&fx.app.aws);
    cw.put_metric_alarm()
        .alarm_name(ALARM)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let advance = {
        let url = fx.app.url.clone();
        let http = fx.app.http.clone();
        tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/v1/rollouts/{id}/advance"))
                .json(&json!({ "reason": "prompts", "force": true }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    // The alarm fires while the deployment runs: AppConfig rolls it back.
    fx.app
        .wait_for(id, |r| r["delivery"]["state"] == "DEPLOYING")
        .await;
    cw.set_alarm_state()
        .alarm_name(ALARM)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("errors up")
        .send()
        .await
        .unwrap();
    let (status, body) = advance.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "rolled_back", "{body}");
    assert_eq!(body["phase_name"], "baseline");
    assert_eq!(body["write_pending"], false);
    fx.assert_served([false, false, false]).await;
    let entries = fx.app.audit(&format!("?rollout={id}")).await;
    let noticed = entries
        .iter()
        .find(|e| e["outcome"] == "rolled_back_by_appconfig")
        .expect("AppConfig's rollback recorded");
    assert_eq!(
        noticed["detail"]["rolled_back_by"], "CLOUDWATCH_ALARM",
        "{noticed}"
    );
    assert_eq!(noticed["detail"]["rolled_back_to"], "baseline");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "flags_write" && e["outcome"] == "already_in_place"),
        "rollgate's own rollback confirmed: {entries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_behind_rollgates_back_is_drift_and_reverted() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let id = fx.start().await;
    let (status, _) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200);
    // Someone deploys the prompts flag off again.
    let mut doc = fx.served().await;
    doc["values"]["use_optimized_prompts"]["enabled"] = json!(false);
    fx.foreign_deploy(&doc).await;
    fx.wait_idle().await;
    fx.assert_served([false, false, false]).await;
    let report = crate::watcher::tick(&fx.app).await;
    assert!(
        report.decisions.iter().any(|d| d.action == "drift_revert"),
        "{report:?}"
    );
    let r = fx.app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(
        (r["state"].as_str(), r["phase_name"].as_str()),
        (Some("active"), Some("prompts"))
    );
    fx.assert_served([true, false, false]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_is_refused_when_the_profile_cannot_carry_the_plan() {
    // A plan owning an attribute whose constraints refuse a phase's value.
    let fx = setup(Duration::from_millis(20), |p| {
        p.replace(
            "use_full_optimization = \"false\"\n",
            "use_full_optimization = \"false\"\n\"use_optimized_prompts.variant\" = \"v1\"\n",
        )
        .replace(
            "set = { use_optimized_prompts = \"true\" }",
            "set = { use_optimized_prompts = \"true\", \"use_optimized_prompts.variant\" = \"v3\" }",
        )
    })
    .await;
    let (status, body) = fx
        .app
        .post(
            "/api/v1/rollouts",
            json!({ "plan": DEMO_APPCONFIG_PLAN, "reason": "x", "force": true }),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "use_optimized_prompts.variant = \"v3\": not one of the values the flag allows"
        ),
        "{message}"
    );
    // Nothing was written or recorded.
    assert_eq!(fx.latest_version().await, 1);
    let (_, list) = fx.app.get("/api/v1/rollouts").await;
    assert_eq!(list["rollouts"].as_array().map(Vec::len), Some(0), "{list}");

    // A profile that does not exist, and a freeform one.
    for (profile, want) in [
        (
            "nope",
            "AppConfig has no configuration profile named \"nope\"",
        ),
        (
            "freeform",
            "is of type AWS.Freeform, not AWS.AppConfig.FeatureFlags",
        ),
    ] {
        if profile == "freeform" {
            fx.ac
                .create_configuration_profile()
                .application_id(&fx.app_id)
                .name("freeform")
                .location_uri("hosted")
                .r#type("AWS.Freeform")
                .send()
                .await
                .unwrap();
        }
        let text = demo_appconfig_plan(SHIPPED).replace(
            &format!("profile = \"{DEMO_APPCONFIG_PROFILE}\""),
            &format!("profile = \"{profile}\""),
        );
        std::fs::write(fx._plans.path().join("other.toml"), text).unwrap();
        let (status, body) = fx
            .app
            .post(
                "/api/v1/rollouts",
                json!({ "plan": "other", "reason": "x", "force": true }),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(want),
            "{body}"
        );
    }
    let _ = (DEMO_APPCONFIG_APPLICATION, DEMO_APPCONFIG_ENVIRONMENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_three_phases_run_to_completion_on_appconfig() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let app = &fx.app;
    traffic_before_now(app, 20);
    let id = fx.start().await;
    // One simulated clock for the whole run (the function's environments
    // poll by it).
    let mut sim = Sim::now();
    for (phase, served) in [
        ("prompts", [true, false, false]),
        ("tools", [true, true, false]),
        ("full", [true, true, true]),
    ] {
        let (status, body) = app.command(id, "advance", phase).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["phase_name"], phase);
        fx.assert_served(served).await;
        // Healthy traffic under the new flags: no guardrail acts (the
        // phase becomes ready for approval, its gates met).
        let reports = sim.run(app, 10 * 60).await;
        let acted: Vec<&str> = reports
            .iter()
            .flat_map(|r| r.decisions.iter().map(|d| d.action))
            .collect();
        assert!(
            acted.iter().all(|a| *a == "ready_for_approval"),
            "{phase}: {acted:?}"
        );
        if phase != "full" {
            assert!(acted.contains(&"ready_for_approval"), "{phase}: {acted:?}");
        }
    }
    let (status, body) = app.command(id, "advance", "done").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "completed", "{body}");
    fx.assert_served([true, true, true]).await;
    // Three steps, three versions and three deployments, each followed to
    // COMPLETE; no cold start of the function's environments.
    assert_eq!(fx.latest_version().await, 4);
    assert_eq!(fx.deployments().await.len(), 4);
    // Every execution environment runs the last phase's flags, and the
    // only cold starts were the first environments' own.
    let fleet = app
        .sandbox
        .execution_environments(rollgate::demo::DEMO_APPCONFIG_FUNCTION)
        .expect("the simulator ran the function");
    let (on, all) = fleet.running("use_full_optimization", "true");
    assert!(all > 0 && on == all, "{fleet:?}");
    assert_eq!(fleet.cold_starts, all as u64, "{fleet:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_phases_run_on_appconfig_and_a_bad_phase_is_rolled_back() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let app = &fx.app;
    traffic_before_now(app, 20);
    let id = fx.start().await;
    bad(app, &["use_refactored_tools"], 200);
    let (status, body) = app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200, "{body}");
    fx.assert_served([true, false, false]).await;
    let (status, body) = app.command(id, "advance", "tools").await;
    assert_eq!(status, 200, "{body}");
    fx.assert_served([true, true, false]).await;
    // The function picks the flags up at its next poll, errors rise, and
    // the watcher rolls the rollout back to the baseline.
    let mut sim = Sim::now();
    let (report, _) = sim.until_decision(app, 30 * 60).await;
    assert_eq!(report.decisions[0].action, "rollback", "{report:?}");
    let r = app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(r["state"], "rolled_back");
    fx.assert_served([false, false, false]).await;
    let rollback = app.audit(&format!("?rollout={id}&action=rollback")).await;
    assert_eq!(rollback[0]["actor"], "rollgate/watcher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_from_appconfig_are_retried_and_recorded() {
    let fx = setup(Duration::from_millis(20), |p| p).await;
    let id = fx.start().await;
    let faults = fx.app.sandbox.faults();
    faults.appconfig_throttle_next(2);
    faults.appconfig_fail_next(1);
    let (status, body) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200, "{body}");
    fx.assert_served([true, false, false]).await;
    let writes = fx
        .app
        .audit(&format!("?rollout={id}&action=flags_write"))
        .await;
    let retried: String = writes
        .iter()
        .map(|w| w["detail"]["retried_because"].to_string())
        .collect();
    assert!(retried.contains("ThrottlingException"), "{writes:?}");
    assert!(retried.contains("InternalServerException"), "{writes:?}");
    // More throttling than the retry budget: the step stays pending and
    // the reconciler lands it once AppConfig answers again.
    let (status, _) = fx.app.command(id, "advance", "tools").await;
    assert_eq!(status, 200);
    faults.appconfig_throttle_next(40);
    let (status, body) = fx.app.command(id, "advance", "full").await;
    assert_eq!(status, 202, "{body}");
    let r = fx.app.wait_for(id, |r| r["write_pending"] == false).await;
    assert_eq!(r["phase_name"], "full");
    fx.assert_served([true, true, true]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_profile_serves_is_found_behind_pages_of_other_deployments() {
    let fx = setup(Duration::from_millis(1), |p| p).await;
    let id = fx.start().await;
    let (status, _) = fx.app.command(id, "advance", "prompts").await;
    assert_eq!(status, 200);
    // Another team deploys its own profile 60 times to the environment:
    // the plan's deployment is no longer on ListDeployments' first page.
    let other = fx.other_team_profile().await;
    for _ in 0..60 {
        fx.deploy_other(&other).await;
        fx.wait_idle().await;
    }
    let first_page = fx
        .ac
        .list_deployments()
        .application_id(&fx.app_id)
        .environment_id(&fx.env_id)
        .max_results(50)
        .send()
        .await
        .unwrap();
    assert!(
        first_page
            .items()
            .iter()
            .all(|d| d.configuration_name() == Some("other-team")),
        "the plan's deployment is past the first page"
    );
    // No false drift: the watcher finds what the profile serves.
    let report = crate::watcher::tick(&fx.app).await;
    assert!(report.decisions.is_empty(), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let r = fx.app.rollout(id).await;
    assert_eq!(r["observed_flags"]["use_optimized_prompts"], "true", "{r}");
    // And a step forward still builds on it.
    let (status, body) = fx.app.command(id, "advance", "tools").await;
    assert_eq!(status, 200, "{body}");
    fx.assert_served([true, true, false]).await;
}

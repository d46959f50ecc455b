//! The sandbox's AppConfig, judged by the official SDKs (`aws-sdk-appconfig`
//! for the control plane, `aws-sdk-appconfigdata` for the data plane) and
//! by boto3: every operation rollgate uses, optimistic version numbers, one
//! deployment per environment, progression by the strategy on the sandbox's
//! AppConfig clock, rollbacks (StopDeployment, alarms, the fault), sessions,
//! tokens and poll intervals, percentage-based serving, FeatureFlags
//! validation, and the traffic simulator's execution environments.

use std::time::Duration;

use aws_sdk_appconfig::Client;
use aws_sdk_appconfig::error::ProvideErrorMetadata;
use aws_sdk_appconfig::primitives::Blob;
use aws_sdk_appconfig::types::{
    DeploymentEventType, DeploymentState, EnvironmentState, GrowthType, Monitor, TriggeredBy,
};
use chrono::{DateTime, Utc};
use rollgate::sandbox::{Sandbox, SandboxConfig};

const FLAGS_OFF: &str = r#"{"version":"1","flags":{"use_optimized_prompts":{"name":"Optimized prompts"}},"values":{"use_optimized_prompts":{"enabled":false}}}"#;
const FLAGS_ON: &str = r#"{"version":"1","flags":{"use_optimized_prompts":{"name":"Optimized prompts"}},"values":{"use_optimized_prompts":{"enabled":true}}}"#;

async fn start() -> Sandbox {
    Sandbox::start(0, SandboxConfig::default()).await.unwrap()
}

async fn client(sandbox: &Sandbox) -> Client {
    Client::new(&rollgate::demo::sandbox_aws_config(&sandbox.url()).await)
}

/// A client that does not retry, to see faults as they are.
async fn client_without_retries(sandbox: &Sandbox) -> Client {
    let sdk = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    let config = aws_sdk_appconfig::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

fn at_minutes(m: f64) -> DateTime<Utc> {
    t0() + chrono::Duration::milliseconds((m * 60_000.0) as i64)
}

/// An application, an environment (optionally monitoring `alarm`) and a
/// feature-flag profile with FLAGS_OFF (v1) and FLAGS_ON (v2).
struct Fixture {
    app: String,
    env: String,
    profile: String,
}

async fn fixture(ac: &Client, alarm: Option<&str>) -> Fixture {
    let app = ac.create_application().name("repair").send().await.unwrap();
    let app = app.id().unwrap().to_string();
    let mut env = ac.create_environment().application_id(&app).name("prod");
    if let Some(alarm) = alarm {
        env = env.monitors(
            Monitor::builder()
                .alarm_arn(format!(
                    "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
                ))
                .alarm_role_arn("arn:aws:iam::123456789012:role/appconfig-alarms")
                .build()
                .unwrap(),
        );
    }
    let env = env.send().await.unwrap().id().unwrap().to_string();
    let profile = ac
        .create_configuration_profile()
        .application_id(&app)
        .name("flags")
        .location_uri("hosted")
        .r#type("AWS.AppConfig.FeatureFlags")
        .send()
        .await
        .unwrap()
        .id()
        .unwrap()
        .to_string();
    for content in [FLAGS_OFF, FLAGS_ON] {
        ac.create_hosted_configuration_version()
            .application_id(&app)
            .configuration_profile_id(&profile)
            .content_type("application/json")
            .content(Blob::new(content))
            .send()
            .await
            .unwrap();
    }
    Fixture { app, env, profile }
}

impl Fixture {
    async fn deploy(&self, ac: &Client, strategy: &str, version: u32) -> i32 {
        ac.start_deployment()
            .application_id(&self.app)
            .environment_id(&self.env)
            .deployment_strategy_id(strategy)
            .configuration_profile_id(&self.profile)
            .configuration_version(version.to_string())
            .send()
            .await
            .unwrap()
            .deployment_number()
    }

    async fn deployment(
        &self,
        ac: &Client,
        n: i32,
    ) -> aws_sdk_appconfig::operation::get_deployment::GetDeploymentOutput {
        ac.get_deployment()
            .application_id(&self.app)
            .environment_id(&self.env)
            .deployment_number(n)
            .send()
            .await
            .unwrap()
    }

    async fn env_state(&self, ac: &Client) -> EnvironmentState {
        ac.get_environment()
            .application_id(&self.app)
            .environment_id(&self.env)
            .send()
            .await
            .unwrap()
            .state()
            .unwrap()
            .clone()
    }
}

fn status<E>(
    e: &aws_sdk_appconfig::error::SdkError<E, aws_sdk_appconfig::config::http::HttpResponse>,
) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

#[tokio::test]
async fn applications_environments_and_profiles_by_id() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let f = fixture(&ac, Some("errors-high")).await;
    assert_eq!(f.app.len(), 7);
    assert!(
        f.app
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    let app = ac
        .get_application()
        .application_id(&f.app)
        .send()
        .await
        .unwrap();
    assert_eq!(app.name(), Some("repair"));
    let env = ac
        .get_environment()
        .application_id(&f.app)
        .environment_id(&f.env)
        .send()
        .await
        .unwrap();
    assert_eq!(env.state(), Some(&EnvironmentState::ReadyForDeployment));
    assert_eq!(
        env.monitors()[0].alarm_arn(),
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:errors-high"
    );
    let profile = ac
        .get_configuration_profile()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .send()
        .await
        .unwrap();
    assert_eq!(profile.r#type(), Some("AWS.AppConfig.FeatureFlags"));
    assert_eq!(profile.location_uri(), Some("hosted"));
    // Lists, paged.
    for name in ["a", "b"] {
        ac.create_application().name(name).send().await.unwrap();
    }
    let first = ac.list_applications().max_results(2).send().await.unwrap();
    assert_eq!(first.items().len(), 2);
    let rest = ac
        .list_applications()
        .max_results(2)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.items().len(), 1);
    assert_eq!(rest.next_token(), None);
    let envs = ac
        .list_environments()
        .application_id(&f.app)
        .send()
        .await
        .unwrap();
    assert_eq!(envs.items().len(), 1);
    let profiles = ac
        .list_configuration_profiles()
        .application_id(&f.app)
        .send()
        .await
        .unwrap();
    assert_eq!(profiles.items()[0].id(), Some(f.profile.as_str()));
    // By name is not by id: AppConfig's control plane wants ids.
    let e = ac
        .get_application()
        .application_id("repair")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    assert!(e.into_service_error().is_resource_not_found_exception());
    let e = ac
        .get_environment()
        .application_id(&f.app)
        .environment_id("nope123")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    let e = ac.list_applications().max_results(51).send().await;
    assert!(e.is_err(), "MaxResults above 50 is refused");
}

#[tokio::test]
async fn hosted_versions_are_optimistic() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let v = ac
        .get_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .version_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(v.version_number(), 2);
    assert_eq!(v.content().unwrap().as_ref(), FLAGS_ON.as_bytes());
    assert_eq!(v.content_type(), Some("application/json"));
    assert_eq!(v.application_id(), Some(f.app.as_str()));
    // The latest is 2: a writer who read 2 may write, one who read 1 may not.
    let created = ac
        .create_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .content_type("application/json")
        .content(Blob::new(FLAGS_OFF))
        .latest_version_number(2)
        .version_label("v3-off")
        .description("back off")
        .send()
        .await
        .unwrap();
    assert_eq!(created.version_number(), 3);
    assert_eq!(created.version_label(), Some("v3-off"));
    assert_eq!(created.description(), Some("back off"));
    assert_eq!(created.configuration_profile_id(), Some(f.profile.as_str()));
    let e = ac
        .create_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .content_type("application/json")
        .content(Blob::new(FLAGS_ON))
        .latest_version_number(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 409);
    assert!(e.into_service_error().is_conflict_exception());
    // Newest first, paged.
    let list = ac
        .list_hosted_configuration_versions()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .max_results(2)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = list.items().iter().map(|v| v.version_number()).collect();
    assert_eq!(numbers, vec![3, 2]);
    let rest = ac
        .list_hosted_configuration_versions()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .next_token(list.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.items()[0].version_number(), 1);
    // A label of digits only is refused; a missing version is a 404.
    let e = ac
        .create_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .content_type("application/json")
        .content(Blob::new(FLAGS_ON))
        .version_label("42")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("BadRequestException"));
    let e = ac
        .get_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .version_number(9)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
}

#[tokio::test]
async fn feature_flag_versions_are_validated() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let create = |content: &'static str| {
        ac.create_hosted_configuration_version()
            .application_id(&f.app)
            .configuration_profile_id(&f.profile)
            .content_type("application/json")
            .content(Blob::new(content))
            .send()
    };
    let with_model = r#"{"version":"1","flags":{"prompts":{"name":"P","attributes":{"model":{"constraints":{"type":"string","enum":["small","large"],"required":true}},"share":{"constraints":{"type":"number","minimum":0,"maximum":1}},"region":{"constraints":{"type":"string","pattern":"^[a-z]{2}-[a-z]+-\\d$"}}}}},"values":{"prompts":{"enabled":true,"model":"small","share":0.5,"region":"eu-west-1"}}}"#;
    create(with_model).await.unwrap();
    for (content, named) in [
        (
            r#"{"version":"1","flags":{"prompts":{"name":"P","attributes":{"model":{"constraints":{"type":"string","enum":["small","large"]}}}}},"values":{"prompts":{"enabled":true,"model":"huge"}}}"#,
            "'model'",
        ),
        (
            r#"{"version":"1","flags":{"prompts":{"name":"P","attributes":{"share":{"constraints":{"type":"number","maximum":1}}}}},"values":{"prompts":{"enabled":true,"share":3}}}"#,
            "maximum",
        ),
        (
            r#"{"version":"1","flags":{"prompts":{"name":"P","attributes":{"region":{"constraints":{"type":"string","pattern":"^[a-z]{2}-[a-z]+-\\d$"}}}}},"values":{"prompts":{"enabled":true,"region":"mars"}}}"#,
            "pattern",
        ),
        (
            r#"{"version":"1","flags":{"prompts":{"name":"P"}},"values":{"ghost":{"enabled":true}}}"#,
            "'ghost'",
        ),
        (
            r#"{"version":"1","flags":{"Prompts":{"name":"P"}}}"#,
            "'Prompts'",
        ),
        (r#"{"flags":{}}"#, "version"),
        ("not json", "JSON"),
    ] {
        let e = create(content).await.unwrap_err();
        assert_eq!(status(&e), 400, "{content}");
        let message = e.message().unwrap_or_default().to_string();
        assert!(e.into_service_error().is_bad_request_exception());
        assert!(message.contains(named), "{message} should name {named}");
    }
    // A freeform profile takes anything.
    let free = ac
        .create_configuration_profile()
        .application_id(&f.app)
        .name("free")
        .location_uri("hosted")
        .send()
        .await
        .unwrap();
    assert_eq!(free.r#type(), Some("AWS.Freeform"));
    ac.create_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(free.id().unwrap())
        .content_type("text/plain")
        .content(Blob::new("not json at all"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn deployment_strategies_include_aws_predefined_ones() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    for (id, duration, factor, growth, bake) in [
        ("AppConfig.AllAtOnce", 0, 100.0, GrowthType::Linear, 10),
        (
            "AppConfig.Linear50PercentEvery30Seconds",
            1,
            50.0,
            GrowthType::Linear,
            1,
        ),
        (
            "AppConfig.Linear20PercentEvery6Minutes",
            30,
            20.0,
            GrowthType::Linear,
            30,
        ),
        (
            "AppConfig.Canary10Percent20Minutes",
            20,
            10.0,
            GrowthType::Exponential,
            10,
        ),
    ] {
        let s = ac
            .get_deployment_strategy()
            .deployment_strategy_id(id)
            .send()
            .await
            .unwrap();
        assert_eq!(s.id(), Some(id));
        assert_eq!(s.deployment_duration_in_minutes(), duration, "{id}");
        assert_eq!(s.growth_factor(), Some(factor), "{id}");
        assert_eq!(s.growth_type(), Some(&growth), "{id}");
        assert_eq!(s.final_bake_time_in_minutes(), bake, "{id}");
    }
    let custom = ac
        .create_deployment_strategy()
        .name("quarters")
        .deployment_duration_in_minutes(8)
        .growth_factor(25.0)
        .growth_type(GrowthType::Linear)
        .final_bake_time_in_minutes(2)
        .send()
        .await
        .unwrap();
    assert_eq!(custom.id().unwrap().len(), 7);
    let all = ac.list_deployment_strategies().send().await.unwrap();
    assert_eq!(all.items().len(), 5);
    let e = ac
        .create_deployment_strategy()
        .name("too-fast")
        .deployment_duration_in_minutes(8)
        .growth_factor(0.5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);
    let e = ac
        .get_deployment_strategy()
        .deployment_strategy_id("abcdefg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
}

/// A custom LINEAR strategy (25 % every 2 minutes of 8, bake 2) on the
/// sandbox's AppConfig clock; a second deployment meanwhile is a 409.
#[tokio::test]
async fn linear_deployments_step_then_bake_then_complete() {
    let sandbox = start().await;
    sandbox.set_appconfig_clock(Some(t0()));
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let strategy = ac
        .create_deployment_strategy()
        .name("quarters")
        .deployment_duration_in_minutes(8)
        .growth_factor(25.0)
        .final_bake_time_in_minutes(2)
        .send()
        .await
        .unwrap();
    let n = f.deploy(&ac, strategy.id().unwrap(), 2).await;
    assert_eq!(n, 1);
    let d = f.deployment(&ac, n).await;
    assert_eq!(d.state(), Some(&DeploymentState::Deploying));
    assert_eq!(d.percentage_complete(), Some(0.0));
    assert_eq!(d.started_at().unwrap().secs(), t0().timestamp());
    assert_eq!(d.configuration_version(), Some("2"));
    assert_eq!(d.configuration_name(), Some("flags"));
    assert_eq!(d.growth_type(), Some(&GrowthType::Linear));
    assert_eq!(f.env_state(&ac).await, EnvironmentState::Deploying);
    for (minute, percent) in [(1.9, 0.0), (2.0, 25.0), (4.5, 50.0), (7.99, 75.0)] {
        sandbox.set_appconfig_clock(Some(at_minutes(minute)));
        let d = f.deployment(&ac, n).await;
        assert_eq!(d.percentage_complete(), Some(percent), "at {minute} min");
        assert_eq!(d.state(), Some(&DeploymentState::Deploying));
    }
    // One deployment per environment at a time, baking included.
    let busy = ac
        .start_deployment()
        .application_id(&f.app)
        .environment_id(&f.env)
        .deployment_strategy_id("AppConfig.AllAtOnce")
        .configuration_profile_id(&f.profile)
        .configuration_version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&busy), 409);
    assert!(busy.into_service_error().is_conflict_exception());
    sandbox.set_appconfig_clock(Some(at_minutes(8.5)));
    let d = f.deployment(&ac, n).await;
    assert_eq!(d.state(), Some(&DeploymentState::Baking));
    assert_eq!(d.percentage_complete(), Some(100.0));
    assert_eq!(d.completed_at(), None);
    let busy = ac
        .start_deployment()
        .application_id(&f.app)
        .environment_id(&f.env)
        .deployment_strategy_id("AppConfig.AllAtOnce")
        .configuration_profile_id(&f.profile)
        .configuration_version("1")
        .send()
        .await;
    assert!(busy.is_err(), "baking still holds the environment");
    sandbox.set_appconfig_clock(Some(at_minutes(10.0)));
    let d = f.deployment(&ac, n).await;
    assert_eq!(d.state(), Some(&DeploymentState::Complete));
    assert_eq!(
        d.completed_at().unwrap().secs(),
        at_minutes(10.0).timestamp()
    );
    assert_eq!(f.env_state(&ac).await, EnvironmentState::ReadyForDeployment);
    // The event log, newest first.
    let kinds: Vec<DeploymentEventType> = d
        .event_log()
        .iter()
        .map(|e| e.event_type().unwrap().clone())
        .collect();
    use DeploymentEventType as E;
    assert_eq!(
        kinds,
        vec![
            E::DeploymentCompleted,
            E::BakeTimeStarted,
            E::PercentageUpdated,
            E::PercentageUpdated,
            E::PercentageUpdated,
            E::PercentageUpdated,
            E::DeploymentStarted
        ]
    );
    assert_eq!(
        d.event_log().last().unwrap().triggered_by(),
        Some(&TriggeredBy::User)
    );
    assert_eq!(
        d.event_log()[0].triggered_by(),
        Some(&TriggeredBy::Appconfig)
    );
    // Now another may start; ListDeployments is newest first.
    let n2 = f.deploy(&ac, "AppConfig.AllAtOnce", 1).await;
    assert_eq!(n2, 2);
    let list = ac
        .list_deployments()
        .application_id(&f.app)
        .environment_id(&f.env)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = list.items().iter().map(|d| d.deployment_number()).collect();
    assert_eq!(numbers, vec![2, 1]);
}

/// Canary10Percent20Minutes: 10, 20, 40, 80 % four minutes apart, 100 %
/// at 20 minutes, bake 10.
#[tokio::test]
async fn exponential_deployments_double_each_step() {
    let sandbox = start().await;
    sandbox.set_appconfig_clock(Some(t0()));
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let n = f.deploy(&ac, "AppConfig.Canary10Percent20Minutes", 2).await;
    for (minute, percent) in [
        (3.0, 0.0),
        (4.0, 10.0),
        (8.0, 20.0),
        (12.0, 40.0),
        (16.0, 80.0),
    ] {
        sandbox.set_appconfig_clock(Some(at_minutes(minute)));
        let d = f.deployment(&ac, n).await;
        assert_eq!(d.percentage_complete(), Some(percent), "at {minute} min");
    }
    sandbox.set_appconfig_clock(Some(at_minutes(20.0)));
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Baking)
    );
    sandbox.set_appconfig_clock(Some(at_minutes(30.0)));
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Complete)
    );
}

/// The sandbox's minute can be short: AllAtOnce bakes 10 minutes of 100 ms.
#[tokio::test]
async fn the_appconfig_minute_scales_real_time() {
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            appconfig_minute: Duration::from_millis(100),
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Baking)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Complete)
    );
    // Changed at run time through the admin endpoint, and kept by a reset.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .body(r#"{"appconfig_minute_ms": 60000}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    http.post(format!("{}/_sandbox/reset", sandbox.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Complete),
        "a new pace does not undo the minutes already run"
    );
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 1).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Baking),
        "a real minute again: still baking"
    );
    let state: serde_json::Value = http
        .get(format!("{}/_sandbox/state", sandbox.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["appconfig_minute_ms"], 60000);
    let app = &state["appconfig"]["applications"][0];
    assert_eq!(app["environments"][0]["deployments"][1]["state"], "BAKING");
    assert_eq!(app["profiles"][0]["versions"][1]["content"], FLAGS_ON);
}

#[tokio::test]
async fn stop_deployment_rolls_back_or_reverts() {
    let sandbox = start().await;
    sandbox.set_appconfig_clock(Some(t0()));
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let stop = |n: i32, revert: bool| {
        let mut s = ac
            .stop_deployment()
            .application_id(&f.app)
            .environment_id(&f.env)
            .deployment_number(n);
        if revert {
            s = s.allow_revert(true);
        }
        s.send()
    };
    // DEPLOYING: StopDeployment rolls it back.
    let n = f
        .deploy(&ac, "AppConfig.Linear20PercentEvery6Minutes", 2)
        .await;
    sandbox.set_appconfig_clock(Some(at_minutes(7.0)));
    let stopped = stop(n, false).await.unwrap();
    assert_eq!(stopped.state(), Some(&DeploymentState::RolledBack));
    let events = stopped.event_log();
    assert_eq!(
        events[0].event_type(),
        Some(&DeploymentEventType::RollbackCompleted)
    );
    assert_eq!(
        events[1].event_type(),
        Some(&DeploymentEventType::RollbackStarted)
    );
    assert_eq!(events[0].triggered_by(), Some(&TriggeredBy::User));
    assert_eq!(f.env_state(&ac).await, EnvironmentState::RolledBack);
    assert!(stop(n, false).await.is_err(), "already rolled back");
    // BAKING: refused without AllowRevert, rolled back with it (in progress).
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    let e = stop(n, false).await.unwrap_err();
    assert_eq!(status(&e), 400);
    assert!(e.into_service_error().is_bad_request_exception());
    assert_eq!(
        stop(n, true).await.unwrap().state(),
        Some(&DeploymentState::RolledBack)
    );
    // COMPLETE: refused without AllowRevert, REVERTED with it.
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    sandbox.set_appconfig_clock(Some(at_minutes(30.0)));
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Complete)
    );
    assert_eq!(status(&stop(n, false).await.unwrap_err()), 400);
    let reverted = stop(n, true).await.unwrap();
    assert_eq!(reverted.state(), Some(&DeploymentState::Reverted));
    assert_eq!(
        reverted.event_log()[0].event_type(),
        Some(&DeploymentEventType::RevertCompleted)
    );
    assert_eq!(f.env_state(&ac).await, EnvironmentState::Reverted);
    // Past 72 hours a completed deployment can no longer be reverted.
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    sandbox.set_appconfig_clock(Some(at_minutes(30.0 + 10.0 + 73.0 * 60.0)));
    assert_eq!(status(&stop(n, true).await.unwrap_err()), 400);
    let e = stop(99, false).await.unwrap_err();
    assert_eq!(status(&e), 404);
}

/// An environment monitoring a CloudWatch alarm: the sandbox's own alarm
/// going into ALARM rolls the running deployment back, as AppConfig does.
#[tokio::test]
async fn a_monitored_alarm_rolls_the_deployment_back() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let cw =
        aws_sdk_cloudwatch::Client::new(&rollgate::demo::sandbox_aws_config(&sandbox.url()).await);
    cw.put_metric_alarm()
        .alarm_name("errors-high")
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
    let f = fixture(&ac, Some("errors-high")).await;
    let n = f
        .deploy(&ac, "AppConfig.Linear20PercentEvery6Minutes", 2)
        .await;
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Deploying)
    );
    cw.set_alarm_state()
        .alarm_name("errors-high")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("errors")
        .send()
        .await
        .unwrap();
    let d = f.deployment(&ac, n).await;
    assert_eq!(d.state(), Some(&DeploymentState::RolledBack));
    assert_eq!(
        d.event_log()[0].triggered_by(),
        Some(&TriggeredBy::CloudwatchAlarm)
    );
    assert_eq!(f.env_state(&ac).await, EnvironmentState::RolledBack);
    // An environment without the monitor is untouched.
    let other = fixture(&ac, None).await;
    let m = other.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    assert_eq!(
        other.deployment(&ac, m).await.state(),
        Some(&DeploymentState::Baking)
    );
}

#[tokio::test]
async fn the_rollback_fault_rolls_back_as_an_alarm_would() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    sandbox.faults().appconfig_rollback_next(&f.env);
    let d = f.deployment(&ac, n).await;
    assert_eq!(d.state(), Some(&DeploymentState::RolledBack));
    assert_eq!(
        d.event_log()[0].triggered_by(),
        Some(&TriggeredBy::CloudwatchAlarm)
    );
    // Once: the next deployment runs.
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    assert_eq!(
        f.deployment(&ac, n).await.state(),
        Some(&DeploymentState::Baking)
    );
}

#[tokio::test]
async fn throttling_and_5xx_faults() {
    let sandbox = start().await;
    let ac = client_without_retries(&sandbox).await;
    sandbox.faults().appconfig_throttle_next(1);
    let e = ac.list_applications().send().await.unwrap_err();
    assert_eq!(status(&e), 429);
    assert_eq!(e.code(), Some("ThrottlingException"));
    sandbox.faults().appconfig_fail_next(1);
    let e = ac.list_applications().send().await.unwrap_err();
    assert_eq!(status(&e), 500);
    assert!(e.into_service_error().is_internal_server_exception());
    ac.list_applications().send().await.unwrap();
    // The SDK's own retries ride out a short burst.
    let retrying = client(&sandbox).await;
    sandbox.faults().appconfig_throttle_next(1);
    retrying.list_applications().send().await.unwrap();
    // A reset clears them; so does the admin endpoint's request.
    sandbox.faults().appconfig_fail_next(5);
    sandbox.faults().reset();
    ac.list_applications().send().await.unwrap();
}

/// Someone else writes a version right after our read: our write carrying
/// the number we read is a 409.
#[tokio::test]
async fn a_foreign_version_after_a_read_makes_the_write_conflict() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .json(&serde_json::json!({"appconfig_foreign_version": {"profile": f.profile, "content": FLAGS_OFF}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let read = ac
        .get_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .version_number(2)
        .send()
        .await
        .unwrap();
    let e = ac
        .create_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .content_type("application/json")
        .content(Blob::new(FLAGS_ON))
        .latest_version_number(read.version_number())
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_conflict_exception());
    let v3 = ac
        .get_hosted_configuration_version()
        .application_id(&f.app)
        .configuration_profile_id(&f.profile)
        .version_number(3)
        .send()
        .await
        .unwrap();
    assert_eq!(v3.content().unwrap().as_ref(), FLAGS_OFF.as_bytes());
    // Unknown fields and empty ids are refused.
    let r = http
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .body(r#"{"appconfig_rollback_next": {"environment": ""}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

async fn data_client(sandbox: &Sandbox) -> aws_sdk_appconfigdata::Client {
    let sdk = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    let config = aws_sdk_appconfigdata::config::Builder::from(&sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_appconfigdata::Client::from_conf(config)
}

async fn session(
    data: &aws_sdk_appconfigdata::Client,
    app: &str,
    env: &str,
    profile: &str,
) -> String {
    data.start_configuration_session()
        .application_identifier(app)
        .environment_identifier(env)
        .configuration_profile_identifier(profile)
        .required_minimum_poll_interval_in_seconds(15)
        .send()
        .await
        .unwrap()
        .initial_configuration_token()
        .unwrap()
        .to_string()
}

fn bad_request_problem(
    e: aws_sdk_appconfigdata::error::SdkError<
        aws_sdk_appconfigdata::operation::get_latest_configuration::GetLatestConfigurationError,
        aws_sdk_appconfigdata::config::http::HttpResponse,
    >,
) -> String {
    use aws_sdk_appconfigdata::types::BadRequestDetails;
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 400);
    match e.into_service_error() {
        aws_sdk_appconfigdata::operation::get_latest_configuration::GetLatestConfigurationError::BadRequestException(b) => {
            match b.details() {
                Some(BadRequestDetails::InvalidParameters(p)) => p["ConfigurationToken"]
                    .problem()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                other => panic!("no details: {other:?}"),
            }
        }
        other => panic!("not a BadRequestException: {other:?}"),
    }
}

/// A session by names gets the values view; tokens are single-use, the
/// poll interval is enforced, an unchanged version is an empty body, and
/// after a revert the previous version comes back.
#[tokio::test]
async fn sessions_poll_tokens_and_intervals() {
    let sandbox = start().await;
    sandbox.set_appconfig_clock(Some(t0()));
    let ac = client(&sandbox).await;
    let data = data_client(&sandbox).await;
    let f = fixture(&ac, None).await;
    let token = session(&data, "repair", "prod", "flags").await;
    // Nothing deployed yet.
    let e = data
        .get_latest_configuration()
        .configuration_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 404);
    let n = f.deploy(&ac, "AppConfig.AllAtOnce", 1).await;
    let first = data
        .get_latest_configuration()
        .configuration_token(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.next_poll_interval_in_seconds(), 15);
    assert_eq!(first.content_type(), Some("application/json"));
    let values: serde_json::Value =
        serde_json::from_slice(first.configuration().unwrap().as_ref()).unwrap();
    assert_eq!(
        values,
        serde_json::json!({"use_optimized_prompts": {"enabled": false}})
    );
    // The token was used.
    let reused = data
        .get_latest_configuration()
        .configuration_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_request_problem(reused), "Expired");
    // Too early for the next one; the token stays good.
    let next = first.next_poll_configuration_token().unwrap().to_string();
    sandbox.set_appconfig_clock(Some(t0() + chrono::Duration::seconds(10)));
    let early = data
        .get_latest_configuration()
        .configuration_token(&next)
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_request_problem(early), "PollIntervalNotSatisfied");
    sandbox.set_appconfig_clock(Some(t0() + chrono::Duration::seconds(15)));
    let same = data
        .get_latest_configuration()
        .configuration_token(&next)
        .send()
        .await
        .unwrap();
    assert!(
        same.configuration().is_none_or(|c| c.as_ref().is_empty()),
        "no change: empty body"
    );
    // Deploy ON after the first completes; the session sees it on its next poll.
    sandbox.set_appconfig_clock(Some(at_minutes(11.0)));
    let m = f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    assert_eq!(m, n + 1);
    let on = data
        .get_latest_configuration()
        .configuration_token(same.next_poll_configuration_token().unwrap())
        .send()
        .await
        .unwrap();
    let values: serde_json::Value =
        serde_json::from_slice(on.configuration().unwrap().as_ref()).unwrap();
    assert_eq!(values["use_optimized_prompts"]["enabled"], true);
    // Revert it (baking: AllowRevert rolls it back); OFF comes back.
    ac.stop_deployment()
        .application_id(&f.app)
        .environment_id(&f.env)
        .deployment_number(m)
        .allow_revert(true)
        .send()
        .await
        .unwrap();
    sandbox.set_appconfig_clock(Some(at_minutes(11.5)));
    let back = data
        .get_latest_configuration()
        .configuration_token(on.next_poll_configuration_token().unwrap())
        .send()
        .await
        .unwrap();
    let values: serde_json::Value =
        serde_json::from_slice(back.configuration().unwrap().as_ref()).unwrap();
    assert_eq!(values["use_optimized_prompts"]["enabled"], false);
    // Tokens expire after 24 hours.
    sandbox.set_appconfig_clock(Some(at_minutes(11.5 + 24.0 * 60.0 + 1.0)));
    let expired = data
        .get_latest_configuration()
        .configuration_token(back.next_poll_configuration_token().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_request_problem(expired), "Expired");
    let garbage = data
        .get_latest_configuration()
        .configuration_token("not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad_request_problem(garbage), "Corrupted");
}

#[tokio::test]
async fn session_requests_are_checked() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let data = data_client(&sandbox).await;
    let f = fixture(&ac, None).await;
    // By id works as well as by name.
    session(&data, &f.app, &f.env, &f.profile).await;
    let e = data
        .start_configuration_session()
        .application_identifier("repair")
        .environment_identifier("prod")
        .configuration_profile_identifier("flags")
        .required_minimum_poll_interval_in_seconds(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 400);
    let e = data
        .start_configuration_session()
        .application_identifier("repair")
        .environment_identifier("staging")
        .configuration_profile_identifier("flags")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().unwrap().status().as_u16(), 404);
    assert!(e.into_service_error().is_resource_not_found_exception());
    // Data-plane faults.
    sandbox.faults().appconfig_throttle_next(1);
    let e = data
        .start_configuration_session()
        .application_identifier("repair")
        .environment_identifier("prod")
        .configuration_profile_identifier("flags")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_throttling_exception());
}

/// During a deployment sessions get the new version by the percentage, and
/// keep it as the share grows; after a rollback all get the old one.
#[tokio::test]
async fn sessions_get_the_new_version_by_the_percentage() {
    let sandbox = start().await;
    sandbox.set_appconfig_clock(Some(t0()));
    let ac = client(&sandbox).await;
    let data = data_client(&sandbox).await;
    let f = fixture(&ac, None).await;
    f.deploy(&ac, "AppConfig.AllAtOnce", 1).await;
    let mut tokens = Vec::new();
    for _ in 0..200 {
        tokens.push(session(&data, "repair", "prod", "flags").await);
    }
    let mut enabled = vec![false; tokens.len()];
    let poll = async |tokens: &mut Vec<String>, enabled: &mut Vec<bool>| {
        for (i, t) in tokens.iter_mut().enumerate() {
            let r = data
                .get_latest_configuration()
                .configuration_token(t.as_str())
                .send()
                .await
                .unwrap();
            if let Some(c) = r.configuration().filter(|c| !c.as_ref().is_empty()) {
                let v: serde_json::Value = serde_json::from_slice(c.as_ref()).unwrap();
                enabled[i] = v["use_optimized_prompts"]["enabled"] == true;
            }
            *t = r.next_poll_configuration_token().unwrap().to_string();
        }
        enabled.iter().filter(|e| **e).count()
    };
    assert_eq!(poll(&mut tokens, &mut enabled).await, 0);
    sandbox.set_appconfig_clock(Some(at_minutes(11.0)));
    let strategy = ac
        .create_deployment_strategy()
        .name("quarters")
        .deployment_duration_in_minutes(8)
        .growth_factor(25.0)
        .final_bake_time_in_minutes(2)
        .send()
        .await
        .unwrap();
    let n = f.deploy(&ac, strategy.id().unwrap(), 2).await;
    let mut seen = Vec::new();
    let mut before = enabled.clone();
    for minute in [11.5, 13.0, 15.0, 17.0] {
        sandbox.set_appconfig_clock(Some(at_minutes(minute)));
        seen.push(poll(&mut tokens, &mut enabled).await);
        assert!(
            before.iter().zip(&enabled).all(|(b, e)| !b || *e),
            "a session that had the new version keeps it"
        );
        before = enabled.clone();
    }
    assert_eq!(seen[0], 0, "0 % at first");
    assert!((25..=75).contains(&seen[1]), "about 25 %: {seen:?}");
    assert!((75..=125).contains(&seen[2]), "about 50 %: {seen:?}");
    assert!((125..=175).contains(&seen[3]), "about 75 %: {seen:?}");
    ac.stop_deployment()
        .application_id(&f.app)
        .environment_id(&f.env)
        .deployment_number(n)
        .send()
        .await
        .unwrap();
    sandbox.set_appconfig_clock(Some(at_minutes(18.0)));
    assert_eq!(
        poll(&mut tokens, &mut enabled).await,
        0,
        "all back after the rollback"
    );
}

async fn lambda_function(
    sandbox: &Sandbox,
    name: &str,
    vars: &[(&str, &str)],
) -> aws_sdk_lambda::Client {
    let lambda =
        aws_sdk_lambda::Client::new(&rollgate::demo::sandbox_aws_config(&sandbox.url()).await);
    let mut env = aws_sdk_lambda::types::Environment::builder();
    for (k, v) in vars {
        env = env.variables(*k, *v);
    }
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/r")
        .handler("h.handler")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(b"zip".to_vec()))
                .build(),
        )
        .environment(env.build())
        .send()
        .await
        .unwrap();
    lambda
}

/// The simulator's execution environments read flags as the AppConfig
/// extension does: an AppConfig deployment reaches each environment at its
/// own next poll (45 s by default, 60 here), without a cold start; an
/// environment write recycles them all (cold starts), and the fresh ones
/// fetch the flags at init.
#[tokio::test]
async fn simulated_environments_poll_appconfig_and_recycle_on_env_writes() {
    let sandbox = start().await;
    let ac = client(&sandbox).await;
    let before = t0() - chrono::Duration::minutes(30);
    sandbox.set_appconfig_clock(Some(before));
    let f = fixture(&ac, None).await;
    f.deploy(&ac, "AppConfig.AllAtOnce", 1).await;
    let lambda = lambda_function(
        &sandbox,
        "handler",
        &[
            ("APPCONFIG_APPLICATION", "repair"),
            ("APPCONFIG_ENVIRONMENT", "prod"),
            ("APPCONFIG_PROFILE", "flags"),
            ("AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS", "60"),
            ("OTHER", "kept"),
        ],
    )
    .await;
    sandbox.set_traffic(rollgate::sandbox::traffic::TrafficSettings {
        invocations_per_tick: 200,
        ..Default::default()
    });
    let tick = |t: DateTime<Utc>| {
        sandbox.set_appconfig_clock(Some(t));
        sandbox.emit_traffic_at(t);
        sandbox
            .execution_environments("handler")
            .unwrap()
            .running("USE_OPTIMIZED_PROMPTS", "true")
    };
    assert_eq!(tick(t0()), (0, 10), "ten warm environments, flag off");
    assert_eq!(sandbox.cold_starts("handler"), 10);
    // ON, all at once, right after t0: each environment sees it at its next poll.
    sandbox.set_appconfig_clock(Some(t0() + chrono::Duration::seconds(1)));
    f.deploy(&ac, "AppConfig.AllAtOnce", 2).await;
    let mut counts = Vec::new();
    for s in (2..=62).step_by(5) {
        let (on, all) = tick(t0() + chrono::Duration::seconds(s));
        assert_eq!(all, 10);
        counts.push(on);
    }
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert!(counts[0] < 10, "not all at once: {counts:?}");
    assert!(
        counts.iter().any(|c| (1..10).contains(c)),
        "polls are staggered: {counts:?}"
    );
    assert_eq!(*counts.last().unwrap(), 10, "all within one poll interval");
    assert_eq!(
        sandbox.cold_starts("handler"),
        10,
        "an AppConfig deployment recycles nothing"
    );
    // An environment write recycles every environment.
    lambda
        .update_function_configuration()
        .function_name("handler")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("APPCONFIG_APPLICATION", "repair")
                .variables("APPCONFIG_ENVIRONMENT", "prod")
                .variables("APPCONFIG_PROFILE", "flags")
                .variables("AWS_APPCONFIG_EXTENSION_POLL_INTERVAL_SECONDS", "60")
                .variables("OTHER", "changed")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tick(t0() + chrono::Duration::seconds(70)), (10, 10));
    assert_eq!(
        sandbox.cold_starts("handler"),
        20,
        "ten cold starts; the new environments fetched the flags at init"
    );
    // The state shows it too.
    let state: serde_json::Value = reqwest::get(format!("{}/_sandbox/state", sandbox.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fleet = &state["execution_environments"]["handler"];
    assert_eq!(fleet["cold_starts"], 20);
    assert_eq!(fleet["groups"][0]["flags"]["USE_OPTIMIZED_PROMPTS"], "true");
    assert_eq!(fleet["groups"][0]["environments"], 10);
}

/// A Lambda-environment flag write reaches every environment at the next
/// tick, through cold starts (one pool of two for 40 invocations a tick).
#[tokio::test]
async fn env_flag_writes_reach_environments_through_cold_starts() {
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            metric_delay: Duration::ZERO,
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let lambda = lambda_function(&sandbox, "plain", &[("USE_OPTIMIZED_PROMPTS", "false")]).await;
    sandbox.set_traffic(rollgate::sandbox::traffic::TrafficSettings {
        invocations_per_tick: 40,
        ..Default::default()
    });
    sandbox.emit_traffic_at(t0());
    assert_eq!(sandbox.cold_starts("plain"), 2);
    lambda
        .update_function_configuration()
        .function_name("plain")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("USE_OPTIMIZED_PROMPTS", "true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    sandbox.emit_traffic_at(t0() + chrono::Duration::minutes(1));
    let view = sandbox.execution_environments("plain").unwrap();
    assert_eq!(view.running("USE_OPTIMIZED_PROMPTS", "true"), (2, 2));
    assert_eq!(view.cold_starts, 4);
}

/// boto3's `appconfig` and `appconfigdata` clients: create → hosted version
/// → deploy → get the latest configuration, a stale version number (409),
/// and StopDeployment; prints what they saw as JSON.
const BOTO3_SCRIPT: &str = r#"import json, sys
import botocore.session
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
session = botocore.session.get_session()
def client(name):
    return session.create_client(name, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")
ac, data = client("appconfig"), client("appconfigdata")
def body(b):
    return b.read() if hasattr(b, "read") else b
def code(f):
    try:
        f()
        return None
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]

app = ac.create_application(Name="boto3-app")["Id"]
env = ac.create_environment(ApplicationId=app, Name="prod")["Id"]
profile = ac.create_configuration_profile(ApplicationId=app, Name="flags", LocationUri="hosted",
    Type="AWS.AppConfig.FeatureFlags")["Id"]
flags = lambda on: json.dumps({"version": "1", "flags": {"use_optimized_prompts": {"name": "P"}},
    "values": {"use_optimized_prompts": {"enabled": on}}}).encode()
v1 = ac.create_hosted_configuration_version(ApplicationId=app, ConfigurationProfileId=profile,
    Content=flags(False), ContentType="application/json", LatestVersionNumber=0, VersionLabel="off")
v2 = ac.create_hosted_configuration_version(ApplicationId=app, ConfigurationProfileId=profile,
    Content=flags(True), ContentType="application/json", LatestVersionNumber=1)
stale = code(lambda: ac.create_hosted_configuration_version(ApplicationId=app,
    ConfigurationProfileId=profile, Content=flags(True), ContentType="application/json",
    LatestVersionNumber=1))
got = ac.get_hosted_configuration_version(ApplicationId=app, ConfigurationProfileId=profile,
    VersionNumber=1)
d1 = ac.start_deployment(ApplicationId=app, EnvironmentId=env, DeploymentStrategyId="AppConfig.AllAtOnce",
    ConfigurationProfileId=profile, ConfigurationVersion="2")
busy = code(lambda: ac.start_deployment(ApplicationId=app, EnvironmentId=env,
    DeploymentStrategyId="AppConfig.AllAtOnce", ConfigurationProfileId=profile, ConfigurationVersion="1"))
token = data.start_configuration_session(ApplicationIdentifier="boto3-app", EnvironmentIdentifier="prod",
    ConfigurationProfileIdentifier="flags", RequiredMinimumPollIntervalInSeconds=15)["InitialConfigurationToken"]
latest = data.get_latest_configuration(ConfigurationToken=token)
reused = code(lambda: data.get_latest_configuration(ConfigurationToken=token))
no_revert = code(lambda: ac.stop_deployment(ApplicationId=app, EnvironmentId=env, DeploymentNumber=1))
stopped = ac.stop_deployment(ApplicationId=app, EnvironmentId=env, DeploymentNumber=1, AllowRevert=True)
deployment = ac.get_deployment(ApplicationId=app, EnvironmentId=env, DeploymentNumber=1)
print(json.dumps({
    "v1": [v1["VersionNumber"], v1.get("VersionLabel"), v1["ContentType"]],
    "v2": v2["VersionNumber"],
    "stale": stale,
    "got": [got["VersionNumber"], body(got["Content"]).decode()],
    "deployed": [d1["DeploymentNumber"], d1["State"], d1["PercentageComplete"], d1["StartedAt"].isoformat()],
    "busy": busy,
    "latest": [json.loads(body(latest["Configuration"])), latest["ContentType"],
        latest["NextPollIntervalInSeconds"], bool(latest["NextPollConfigurationToken"])],
    "reused": reused,
    "no_revert": no_revert,
    "stopped": [stopped["State"], [e["EventType"] for e in stopped["EventLog"]][:2],
        stopped["EventLog"][0]["TriggeredBy"]],
    "environment": ac.get_environment(ApplicationId=app, EnvironmentId=env)["State"],
    "event_times": [e["OccurredAt"].isoformat() for e in deployment["EventLog"]],
}))
"#;

#[tokio::test]
async fn boto3_round_trip_conflict_and_stop() {
    let sandbox = start().await;
    let endpoint = sandbox.url();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", BOTO3_SCRIPT, &endpoint])
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env_remove("AWS_DATA_PATH")
            .output()
            .expect("python3 with boto3 must be installed: pip install boto3 (.ci/run does)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    use serde_json::json;
    assert_eq!(out["v1"], json!([1, "off", "application/json"]));
    assert_eq!(out["v2"], 2);
    assert_eq!(out["stale"], json!(["ConflictException", 409]));
    assert!(
        out["got"][1]
            .as_str()
            .unwrap()
            .contains("\"enabled\": false")
    );
    assert_eq!(out["deployed"][0], 1);
    assert_eq!(out["deployed"][1], "BAKING");
    assert_eq!(out["deployed"][2], 100.0);
    assert_eq!(out["busy"], json!(["ConflictException", 409]));
    assert_eq!(
        out["latest"],
        json!([{"use_optimized_prompts": {"enabled": true}}, "application/json", 15, true])
    );
    assert_eq!(out["reused"], json!(["BadRequestException", 400]));
    assert_eq!(out["no_revert"], json!(["BadRequestException", 400]));
    assert_eq!(
        out["stopped"],
        json!([
            "ROLLED_BACK",
            ["ROLLBACK_COMPLETED", "ROLLBACK_STARTED"],
            "USER"
        ])
    );
    assert_eq!(out["environment"], "ROLLED_BACK");
    assert!(
        out["event_times"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_str().unwrap().contains('T'))
    );
}

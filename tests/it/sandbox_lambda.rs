//! The sandbox's Lambda API, judged by the official Rust SDK: typed errors,
//! revision preconditions, update status, the 4 KB limit, versions, aliases,
//! fault injection and the admin endpoints.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError as UpdateErr;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Environment, FunctionCode, LastUpdateStatus,
};
use rollgate::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn client(sandbox: &Sandbox, retries: bool) -> aws_sdk_lambda::Client {
    let sdk = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    let mut config = aws_sdk_lambda::config::Builder::from(&sdk);
    if !retries {
        config = config.retry_config(RetryConfig::disabled());
    }
    aws_sdk_lambda::Client::from_conf(config.build())
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::builder().set_variables(Some(vars)).build()
}

async fn create(lambda: &aws_sdk_lambda::Client, name: &str) {
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/r")
        .handler("h.handler")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"zip".to_vec()))
                .build(),
        )
        .environment(env(&[("KEY", "1")]))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn create_get_update_with_revision_precondition() {
    let sandbox = Sandbox::start(0, SandboxConfig::default()).await.unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn1").await;
    let got = lambda
        .get_function_configuration()
        .function_name("fn1")
        .send()
        .await
        .unwrap();
    assert_eq!(got.function_name(), Some("fn1"));
    assert_eq!(
        got.function_arn(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:fn1")
    );
    assert_eq!(
        got.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    let rev = got.revision_id().unwrap().to_string();

    let updated = lambda
        .update_function_configuration()
        .function_name("fn1")
        .environment(env(&[("KEY", "1"), ("KEY2", "2")]))
        .revision_id(&rev)
        .send()
        .await
        .unwrap();
    assert_ne!(updated.revision_id().unwrap(), rev);
    assert_eq!(
        updated.environment().unwrap().variables().unwrap()["KEY2"],
        "2"
    );

    // The old revision is stale now.
    let err = lambda
        .update_function_configuration()
        .function_name("fn1")
        .environment(env(&[("KEY", "x")]))
        .revision_id(&rev)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateErr::PreconditionFailedException(_)),
        "{err:?}"
    );

    // By ARN, and GetFunction.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:fn1";
    let by_arn = lambda
        .get_function()
        .function_name(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_arn
            .configuration()
            .unwrap()
            .environment()
            .unwrap()
            .variables()
            .unwrap()["KEY"],
        "1"
    );

    let missing = lambda
        .get_function_configuration()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
}

#[tokio::test]
async fn updates_stay_in_progress_for_the_delay_and_conflict_meanwhile() {
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            update_delay: Duration::from_millis(300),
            traffic_tick: None,
        },
    )
    .await
    .unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn2").await;
    let out = lambda
        .update_function_configuration()
        .function_name("fn2")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let err = lambda
        .update_function_configuration()
        .function_name("fn2")
        .environment(env(&[("KEY", "3")]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateErr::ResourceConflictException(_)),
        "{err:?}"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = lambda
        .get_function_configuration()
        .function_name("fn2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(got.environment().unwrap().variables().unwrap()["KEY"], "2");
}

#[tokio::test]
async fn environment_limit_and_key_rules() {
    let sandbox = Sandbox::start(0, SandboxConfig::default()).await.unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn3").await;
    let big = "v".repeat(4090);
    let err = lambda
        .update_function_configuration()
        .function_name("fn3")
        .environment(env(&[("BIG", &big)]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateErr::InvalidParameterValueException(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("4KB"), "{err}");
    // Exactly at the limit is fine: {"BIG":"…"} is 10 bytes of JSON around the value.
    let fits = "v".repeat(4096 - 10);
    lambda
        .update_function_configuration()
        .function_name("fn3")
        .environment(env(&[("BIG", &fits)]))
        .send()
        .await
        .unwrap();
    for bad in ["AWS_REGION", "1ABC"] {
        let err = lambda
            .update_function_configuration()
            .function_name("fn3")
            .environment(env(&[(bad, "x")]))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(err, UpdateErr::InvalidParameterValueException(_)),
            "{bad}: {err:?}"
        );
    }
    assert_eq!(
        sandbox.function_env("fn3").unwrap()["BIG"],
        fits,
        "refused updates changed nothing"
    );
}

#[tokio::test]
async fn faults_map_to_typed_sdk_errors() {
    let sandbox = Sandbox::start(0, SandboxConfig::default()).await.unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn4").await;

    sandbox.faults().throttle_next(1);
    let err = lambda
        .update_function_configuration()
        .function_name("fn4")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateErr::TooManyRequestsException(_)),
        "{err:?}"
    );

    sandbox.faults().fail_next(1);
    let err = lambda
        .update_function_configuration()
        .function_name("fn4")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateErr::ServiceException(_)), "{err:?}");

    // With the SDK's default retries, one throttle is absorbed.
    let retrying = client(&sandbox, true).await;
    sandbox.faults().throttle_next(1);
    retrying
        .get_function_configuration()
        .function_name("fn4")
        .send()
        .await
        .unwrap();

    // A foreign edit lands right after the next read.
    sandbox
        .faults()
        .foreign_edit_after_next_get("fn4", [("OTHER".to_string(), "edit".to_string())].into());
    let read = lambda
        .get_function_configuration()
        .function_name("fn4")
        .send()
        .await
        .unwrap();
    assert!(
        read.environment()
            .unwrap()
            .variables()
            .unwrap()
            .get("OTHER")
            .is_none()
    );
    let err = lambda
        .update_function_configuration()
        .function_name("fn4")
        .environment(env(&[("KEY", "3")]))
        .revision_id(read.revision_id().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, UpdateErr::PreconditionFailedException(_)),
        "{err:?}"
    );
    assert_eq!(sandbox.function_env("fn4").unwrap()["OTHER"], "edit");
}

#[tokio::test]
async fn versions_and_weighted_aliases() {
    let sandbox = Sandbox::start(0, SandboxConfig::default()).await.unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn5").await;
    let v1 = lambda
        .publish_version()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    lambda
        .update_function_configuration()
        .function_name("fn5")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap();
    let v2 = lambda
        .publish_version()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), Some("2"));
    let old = lambda
        .get_function_configuration()
        .function_name("fn5")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(old.environment().unwrap().variables().unwrap()["KEY"], "1");

    let alias = lambda
        .create_alias()
        .function_name("fn5")
        .name("live")
        .function_version("1")
        .routing_config(
            AliasRoutingConfiguration::builder()
                .additional_version_weights("2", 0.1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some("1"));
    assert_eq!(
        alias
            .routing_config()
            .unwrap()
            .additional_version_weights()
            .unwrap()["2"],
        0.1
    );
    let updated = lambda
        .update_alias()
        .function_name("fn5")
        .name("live")
        .function_version("2")
        .routing_config(AliasRoutingConfiguration::builder().build())
        .revision_id(alias.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(updated.function_version(), Some("2"));
    let stale = lambda
        .update_alias()
        .function_name("fn5")
        .name("live")
        .function_version("1")
        .revision_id(alias.revision_id().unwrap())
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(stale.is_precondition_failed_exception(), "{stale:?}");
    let got = lambda
        .get_alias()
        .function_name("fn5")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(got.function_version(), Some("2"));
    let list = lambda
        .list_aliases()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    assert_eq!(list.aliases().len(), 1);
}

#[tokio::test]
async fn admin_endpoints_over_http() {
    let sandbox = Sandbox::start(0, SandboxConfig::default()).await.unwrap();
    let lambda = client(&sandbox, false).await;
    create(&lambda, "fn6").await;
    let http = reqwest::Client::new();
    let state: Value = http
        .get(format!("{}/_sandbox/state", sandbox.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["functions"][0]["name"], "fn6");
    assert_eq!(state["functions"][0]["environment"]["KEY"], "1");

    let r = http
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .json(&json!({ "throttle_next": 1, "foreign_edit": { "function": "fn6", "set": { "XX": "y" } } }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let err = lambda
        .get_function_configuration()
        .function_name("fn6")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_too_many_requests_exception(), "{err:?}");
    lambda
        .get_function_configuration()
        .function_name("fn6")
        .send()
        .await
        .unwrap();
    assert_eq!(sandbox.function_env("fn6").unwrap()["XX"], "y");

    http.post(format!("{}/_sandbox/faults", sandbox.url()))
        .json(&json!({ "fail_next": 5 }))
        .send()
        .await
        .unwrap();
    http.post(format!("{}/_sandbox/reset", sandbox.url()))
        .send()
        .await
        .unwrap();
    lambda
        .get_function_configuration()
        .function_name("fn6")
        .send()
        .await
        .unwrap();

    let bad = http
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .json(&json!({ "throttle": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
}

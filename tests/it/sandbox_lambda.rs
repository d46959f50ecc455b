//! The sandbox's Lambda API, judged by the official Rust SDK configured the
//! way a user configures it: typed errors, revision preconditions, update
//! status, the 4 KB limit, versions, aliases, fault injection and the admin
//! endpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_lambda::config::{Credentials, Region};
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::operation::create_alias::CreateAliasError;
use aws_sdk_lambda::operation::get_alias::GetAliasError;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationError;
use aws_sdk_lambda::operation::publish_version::PublishVersionError;
use aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationError as UpdateErr;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Environment, FunctionCode, LastUpdateStatus,
    LastUpdateStatusReasonCode, State, ThrottleReason,
};
use rollgate::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

/// sha256("zip"), base64: the CodeSha256 of the package `create` uploads.
const ZIP_SHA256: &str = "SnD+mqZDbgLC3qNA+9HjUuTvLYzmylKtJdS5VHH8i/I=";

async fn client_in(
    sandbox: &Sandbox,
    region: &'static str,
    retries: bool,
) -> aws_sdk_lambda::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(sandbox.url())
        .region(Region::new(region))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"));
    if !retries {
        loader = loader.retry_config(RetryConfig::disabled());
    }
    aws_sdk_lambda::Client::new(&loader.load().await)
}

/// A client without retries, so every injected fault reaches the test.
async fn client(sandbox: &Sandbox) -> aws_sdk_lambda::Client {
    client_in(sandbox, "us-east-1", false).await
}

async fn start() -> Sandbox {
    Sandbox::start(0, SandboxConfig::default()).await.unwrap()
}

fn env(pairs: &[(&str, &str)]) -> Environment {
    let vars: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Environment::builder().set_variables(Some(vars)).build()
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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

async fn update_env(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    pairs: &[(&str, &str)],
    revision: Option<&str>,
) -> Result<
    aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationOutput,
    UpdateErr,
> {
    lambda
        .update_function_configuration()
        .function_name(name)
        .environment(env(pairs))
        .set_revision_id(revision.map(str::to_string))
        .send()
        .await
        .map_err(|e| e.into_service_error())
}

async fn read(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
) -> aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput {
    lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap()
}

fn env_of(
    out: &aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
) -> BTreeMap<String, String> {
    out.environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_get_update_and_read_back() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    let created = lambda
        .create_function()
        .function_name("fn1")
        .runtime(aws_sdk_lambda::types::Runtime::Python312)
        .role("arn:aws:iam::123456789012:role/r")
        .handler("h.handler")
        .description("first")
        .memory_size(256)
        .timeout(30)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"zip".to_vec()))
                .build(),
        )
        .environment(env(&[("KEY", "1"), ("OTHER", "o")]))
        .send()
        .await
        .unwrap();
    assert_eq!(created.version(), Some("$LATEST"));
    assert_eq!(created.state(), Some(&State::Active));
    assert_eq!(
        created.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(created.code_sha256(), Some(ZIP_SHA256));
    assert_eq!(created.code_size(), 3);
    assert_eq!(created.memory_size(), Some(256));
    assert_eq!(created.timeout(), Some(30));
    assert_eq!(created.handler(), Some("h.handler"));
    assert!(
        created.request_id().is_some(),
        "every answer has a request id"
    );
    let modified = created.last_modified().unwrap();
    chrono::DateTime::parse_from_str(modified, "%Y-%m-%dT%H:%M:%S%.3f%z")
        .unwrap_or_else(|e| panic!("LastModified {modified:?}: {e}"));
    assert!(modified.ends_with("+0000"), "{modified}");

    let got = read(&lambda, "fn1").await;
    assert_eq!(got.function_name(), Some("fn1"));
    assert_eq!(
        got.function_arn(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:fn1")
    );
    assert_eq!(got.description(), Some("first"));
    assert_eq!(env_of(&got), vars(&[("KEY", "1"), ("OTHER", "o")]));
    let rev = got.revision_id().unwrap().to_string();
    assert_eq!(created.revision_id(), Some(rev.as_str()));

    // The environment in an update replaces the whole environment, as in AWS.
    let updated = update_env(&lambda, "fn1", &[("KEY", "2"), ("NEW", "n")], Some(&rev))
        .await
        .unwrap();
    assert_ne!(updated.revision_id().unwrap(), rev);
    let got = read(&lambda, "fn1").await;
    assert_eq!(env_of(&got), vars(&[("KEY", "2"), ("NEW", "n")]));
    assert_eq!(got.revision_id(), updated.revision_id());
    assert_eq!(got.description(), Some("first"), "fields not sent are kept");
    assert_eq!(
        sandbox.function_env("fn1").unwrap(),
        vars(&[("KEY", "2"), ("NEW", "n")])
    );

    // Other fields, and an update without Environment keeps the variables.
    let updated = lambda
        .update_function_configuration()
        .function_name("fn1")
        .description("second")
        .memory_size(512)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.description(), Some("second"));
    assert_eq!(updated.memory_size(), Some(512));
    assert_eq!(sandbox.function_env("fn1").unwrap().len(), 2);

    // By ARN, through GetFunction.
    let by_arn = lambda
        .get_function()
        .function_name("arn:aws:lambda:us-east-1:123456789012:function:fn1")
        .send()
        .await
        .unwrap();
    let config = by_arn.configuration().unwrap();
    assert_eq!(
        config.environment().unwrap().variables().unwrap()["NEW"],
        "n"
    );
    assert_eq!(config.code_sha256(), Some(ZIP_SHA256));

    let missing = lambda
        .get_function_configuration()
        .function_name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            missing,
            GetFunctionConfigurationError::ResourceNotFoundException(_)
        ),
        "{missing:?}"
    );
    assert_eq!(
        missing.meta().message(),
        Some("Function not found: arn:aws:lambda:us-east-1:123456789012:function:nope")
    );
    let err = update_env(&lambda, "nope", &[("A1", "1")], None)
        .await
        .unwrap_err();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let dup = lambda
        .create_function()
        .function_name("fn1")
        .role("r")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"z".to_vec()))
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(dup.is_resource_conflict_exception(), "{dup:?}");
}

#[tokio::test]
async fn the_arn_names_the_region_the_request_was_signed_for() {
    let sandbox = start().await;
    let lambda = client_in(&sandbox, "eu-west-1", false).await;
    create(&lambda, "fn-eu").await;
    assert_eq!(
        read(&lambda, "fn-eu").await.function_arn(),
        Some("arn:aws:lambda:eu-west-1:123456789012:function:fn-eu")
    );
}

#[tokio::test]
async fn a_stale_revision_is_a_typed_precondition_failure() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn1").await;
    let rev = read(&lambda, "fn1")
        .await
        .revision_id()
        .unwrap()
        .to_string();
    update_env(&lambda, "fn1", &[("KEY", "2")], Some(&rev))
        .await
        .unwrap();
    let err = update_env(&lambda, "fn1", &[("KEY", "x")], Some(&rev))
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateErr::PreconditionFailedException(_)),
        "{err:?}"
    );
    assert!(
        err.meta()
            .message()
            .unwrap()
            .starts_with("The Revision Id provided does not match the latest Revision Id"),
        "{err:?}"
    );
    assert!(err.request_id().is_some());
    assert_eq!(sandbox.function_env("fn1").unwrap()["KEY"], "2");
}

#[tokio::test]
async fn updates_stay_in_progress_for_the_delay_and_conflict_meanwhile() {
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            update_delay: Duration::from_millis(300),
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let lambda = client(&sandbox).await;
    create(&lambda, "fn2").await;
    let out = update_env(&lambda, "fn2", &[("KEY", "2")], None)
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let during = read(&lambda, "fn2").await;
    assert_eq!(
        during.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    assert_eq!(env_of(&during)["KEY"], "2", "the new values show at once");
    let err = update_env(&lambda, "fn2", &[("KEY", "3")], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateErr::ResourceConflictException(_)),
        "{err:?}"
    );
    assert_eq!(
        err.meta().message(),
        Some(
            "The operation cannot be performed at this time. An update is in progress for resource: arn:aws:lambda:us-east-1:123456789012:function:fn2"
        )
    );
    let publish = lambda
        .publish_version()
        .function_name("fn2")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(publish.is_resource_conflict_exception(), "{publish:?}");

    // Polled, not timed: the status turns Successful once the delay is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = read(&lambda, "fn2").await;
        if got.last_update_status() == Some(&LastUpdateStatus::Successful) {
            assert_eq!(env_of(&got)["KEY"], "2");
            break;
        }
        assert!(Instant::now() < deadline, "still InProgress after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The delay can change at run time; zero means Successful at once.
    sandbox.set_update_delay(Duration::ZERO);
    let out = update_env(&lambda, "fn2", &[("KEY", "3")], None)
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
}

#[tokio::test]
async fn environment_limit_and_key_rules() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn3").await;
    // {"BIG":"…"} is 10 bytes of JSON around the value: one byte over.
    let over = "v".repeat(4096 - 10 + 1);
    let err = update_env(&lambda, "fn3", &[("BIG", &over)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateErr::InvalidParameterValueException(_)),
        "{err:?}"
    );
    let message = err.meta().message().unwrap();
    assert!(
        message.starts_with(
            "Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: {\"BIG\":\"vvv"
        ),
        "{message}"
    );
    // Exactly at the limit is fine.
    let fits = "v".repeat(4096 - 10);
    update_env(&lambda, "fn3", &[("BIG", &fits)], None)
        .await
        .unwrap();
    for bad in ["AWS_REGION", "1ABC", "A", "A-B"] {
        let err = update_env(&lambda, "fn3", &[(bad, "x")], None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UpdateErr::InvalidParameterValueException(_)),
            "{bad}: {err:?}"
        );
    }
    // Creating with too big an environment is refused the same way.
    let err = lambda
        .create_function()
        .function_name("fn3-big")
        .role("r")
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(b"z".to_vec()))
                .build(),
        )
        .environment(env(&[("BIG", &over)]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert_eq!(sandbox.function_env("fn3-big"), None);
    assert_eq!(
        sandbox.function_env("fn3").unwrap()["BIG"],
        fits,
        "refused updates changed nothing"
    );
}

#[tokio::test]
async fn a_throttle_is_a_typed_too_many_requests_error() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn4").await;
    sandbox.faults().throttle_next(2);
    for _ in 0..2 {
        let err = update_env(&lambda, "fn4", &[("KEY", "2")], None)
            .await
            .unwrap_err();
        let UpdateErr::TooManyRequestsException(e) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(e.reason(), Some(&ThrottleReason::CallerRateLimitExceeded));
        assert_eq!(e.retry_after_seconds(), Some("1"));
        assert!(err.request_id().is_some());
    }
    update_env(&lambda, "fn4", &[("KEY", "2")], None)
        .await
        .expect("only the next N calls are throttled");
}

#[tokio::test]
async fn a_server_error_is_a_typed_service_exception() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn4").await;
    sandbox.faults().fail_next(1);
    let err = update_env(&lambda, "fn4", &[("KEY", "2")], None)
        .await
        .unwrap_err();
    assert!(matches!(err, UpdateErr::ServiceException(_)), "{err:?}");
    assert_eq!(sandbox.function_env("fn4").unwrap()["KEY"], "1");
    update_env(&lambda, "fn4", &[("KEY", "2")], None)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sdk_default_retries_pass_through_one_throttle_and_one_server_error() {
    let sandbox = start().await;
    let lambda = client_in(&sandbox, "us-east-1", true).await;
    create(&lambda, "fn4").await;
    sandbox.faults().throttle_next(1);
    read(&lambda, "fn4").await;
    sandbox.faults().fail_next(1);
    update_env(&lambda, "fn4", &[("KEY", "2")], None)
        .await
        .unwrap();
    assert_eq!(sandbox.function_env("fn4").unwrap()["KEY"], "2");
}

#[tokio::test]
async fn slow_answers_are_delayed_until_switched_off() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn4").await;
    let latency = Duration::from_millis(200);
    sandbox.faults().set_latency(latency);
    let t = Instant::now();
    read(&lambda, "fn4").await;
    // A lower bound only: the sandbox sleeps at least that long.
    assert!(t.elapsed() >= latency, "{:?}", t.elapsed());
    sandbox.faults().reset();
    read(&lambda, "fn4").await;
}

#[tokio::test]
async fn a_foreign_edit_after_a_read_makes_the_next_write_fail_its_precondition() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn4").await;
    sandbox
        .faults()
        .foreign_edit_after_next_get("fn4", vars(&[("OTHER", "edit")]));
    let read1 = read(&lambda, "fn4").await;
    assert!(!env_of(&read1).contains_key("OTHER"), "the read came first");
    let err = update_env(&lambda, "fn4", &[("KEY", "3")], read1.revision_id())
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpdateErr::PreconditionFailedException(_)),
        "{err:?}"
    );
    assert_eq!(
        sandbox.function_env("fn4").unwrap(),
        vars(&[("KEY", "1"), ("OTHER", "edit")])
    );

    // Only once: the read-modify-write that follows succeeds.
    let read2 = read(&lambda, "fn4").await;
    assert_ne!(read2.revision_id(), read1.revision_id());
    let mut next = env_of(&read2);
    next.insert("KEY".into(), "3".into());
    let pairs: Vec<(&str, &str)> = next.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    update_env(&lambda, "fn4", &pairs, read2.revision_id())
        .await
        .unwrap();

    // A foreign edit may delete variables too.
    sandbox.faults().foreign_change_after_next_get(
        "fn4",
        vars(&[("ADDED", "a")]),
        BTreeSet::from(["OTHER".to_string()]),
    );
    read(&lambda, "fn4").await;
    assert_eq!(
        sandbox.function_env("fn4").unwrap(),
        vars(&[("ADDED", "a"), ("KEY", "3")])
    );
}

/// Lambda reports an environment it cannot decrypt as `Environment.Error`
/// with no `Variables`; it is not an empty environment.
#[tokio::test]
async fn a_kms_failure_shows_environment_error_instead_of_variables() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fk").await;
    lambda
        .publish_version()
        .function_name("fk")
        .send()
        .await
        .unwrap();
    sandbox.faults().kms_error("fk");

    let check = |env: Option<&aws_sdk_lambda::types::EnvironmentResponse>| {
        let env = env.expect("the Environment key is there");
        assert_eq!(env.variables(), None, "{env:?}");
        let e = env.error().expect("Environment.Error");
        assert_eq!(e.error_code(), Some("KMSAccessDeniedException"));
        assert!(
            e.message().unwrap().starts_with(
                "Lambda was unable to decrypt the environment variables because KMS access was denied."
            ),
            "{e:?}"
        );
    };
    check(read(&lambda, "fk").await.environment());
    let got = lambda
        .get_function()
        .function_name("fk")
        .send()
        .await
        .unwrap();
    check(got.configuration().unwrap().environment());
    let v1 = lambda
        .get_function_configuration()
        .function_name("fk")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    check(v1.environment());
    let listed = lambda.list_functions().send().await.unwrap();
    check(listed.functions()[0].environment());

    // Writing an environment needs the key too: a 502 with the KMS code
    // (not in UpdateFunctionConfiguration's model, so the SDK cannot type it).
    let err = lambda
        .update_function_configuration()
        .function_name("fk")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 502);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("KMSAccessDeniedException"), "{err:?}");
    assert!(err.message().unwrap().contains("KMS access was denied"));
    // Other changes go through, and answer with the error too.
    let out = lambda
        .update_function_configuration()
        .function_name("fk")
        .description("still deployable")
        .send()
        .await
        .unwrap();
    check(out.environment());
    assert_eq!(sandbox.function_env("fk").unwrap(), vars(&[("KEY", "1")]));

    // Access back: the stored variables show again.
    sandbox.faults().kms_ok("fk");
    assert_eq!(env_of(&read(&lambda, "fk").await), vars(&[("KEY", "1")]));

    // Another code and message.
    sandbox
        .faults()
        .kms_error_with("fk", "KMSDisabledException", "key disabled");
    let env = read(&lambda, "fk").await.environment().cloned().unwrap();
    let e = env.error().unwrap();
    assert_eq!(
        (e.error_code(), e.message()),
        (Some("KMSDisabledException"), Some("key disabled"))
    );
    sandbox.faults().reset();
    assert_eq!(env_of(&read(&lambda, "fk").await), vars(&[("KEY", "1")]));
}

/// A read may come back without any `Environment` though the function has
/// variables; that too is not an empty environment.
#[tokio::test]
async fn a_hidden_environment_leaves_the_key_out_until_shown() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fh").await;
    sandbox.faults().hide_environment("fh");
    assert!(read(&lambda, "fh").await.environment().is_none());
    let got = lambda
        .get_function()
        .function_name("fh")
        .send()
        .await
        .unwrap();
    assert!(got.configuration().unwrap().environment().is_none());
    let listed = lambda.list_functions().send().await.unwrap();
    assert!(listed.functions()[0].environment().is_none());
    assert_eq!(sandbox.function_env("fh").unwrap(), vars(&[("KEY", "1")]));
    sandbox.faults().show_environment("fh");
    assert_eq!(env_of(&read(&lambda, "fh").await), vars(&[("KEY", "1")]));
}

/// A client whose every attempt gives up after `timeout`, without retries.
async fn impatient_client(sandbox: &Sandbox, timeout: Duration) -> aws_sdk_lambda::Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(sandbox.url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(timeout)
                .build(),
        )
        .load()
        .await;
    aws_sdk_lambda::Client::new(&config)
}

/// A hung call never answers in time: the client must time out by itself,
/// and the call it gave up on does not happen.
#[tokio::test]
async fn a_hung_call_times_out_and_the_next_one_is_served() {
    let sandbox = start().await;
    create(&client(&sandbox).await, "fg").await;
    let lambda = impatient_client(&sandbox, Duration::from_millis(300)).await;
    sandbox.faults().hang_next(1, Duration::from_secs(600));
    let err = lambda
        .update_function_configuration()
        .function_name("fg")
        .environment(env(&[("KEY", "2")]))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, aws_sdk_lambda::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert_eq!(sandbox.function_env("fg").unwrap()["KEY"], "1");
    update_env(&lambda, "fg", &[("KEY", "3")], None)
        .await
        .expect("only the next N calls hang");
    assert_eq!(sandbox.function_env("fg").unwrap()["KEY"], "3");
}

/// Credential and clock errors: 403s whose codes the SDK exposes, so a caller
/// can tell "refresh your credentials / fix your clock" from a denial.
#[tokio::test]
async fn expired_tokens_and_skewed_clocks_are_403s_with_their_codes() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "ft").await;
    let get = || async {
        lambda
            .get_function_configuration()
            .function_name("ft")
            .send()
            .await
    };

    sandbox.faults().expired_token_next(1);
    let err = get().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("ExpiredTokenException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some("The security token included in the request is expired")
    );
    get().await.expect("only the next N calls");

    sandbox.faults().clock_skew_next(1);
    let err = get().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
    // "Signature expired: T-10m is now earlier than T-5m (T - 5 min.)", T now.
    let message = err.message().unwrap();
    let times: Vec<i64> = message
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|w| chrono::NaiveDateTime::parse_from_str(w, "%Y%m%dT%H%M%SZ").ok())
        .map(|t| t.and_utc().timestamp())
        .collect();
    assert!(message.starts_with("Signature expired: "), "{message}");
    assert!(message.ends_with(" - 5 min.)"), "{message}");
    assert_eq!(times.len(), 3, "{message}");
    assert_eq!((times[2] - times[1], times[2] - times[0]), (300, 600));
    assert!(
        (times[2] - chrono::Utc::now().timestamp()).abs() < 60,
        "{message}"
    );
    get().await.expect("only the next N calls");
}

/// Polls until the function's last update is over; returns that read.
async fn after_update(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
) -> aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = read(lambda, name).await;
        if got.last_update_status() != Some(&LastUpdateStatus::InProgress) {
            return got;
        }
        assert!(Instant::now() < deadline, "still InProgress after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An accepted update can still end `Failed`, with or without taking effect;
/// only a read after the update is over tells which.
#[tokio::test]
async fn an_update_can_end_failed_with_or_without_taking_effect() {
    let sandbox = Sandbox::start(
        0,
        SandboxConfig {
            update_delay: Duration::from_millis(200),
            ..SandboxConfig::default()
        },
    )
    .await
    .unwrap();
    let lambda = client(&sandbox).await;
    create(&lambda, "fu").await;

    // Not applied (the default): Lambda aborts the update.
    sandbox.faults().fail_next_update("fu", "boom", false);
    let out = update_env(&lambda, "fu", &[("KEY", "2")], None)
        .await
        .expect("accepted as usual");
    assert_eq!(
        out.last_update_status(),
        Some(&LastUpdateStatus::InProgress)
    );
    let done = after_update(&lambda, "fu").await;
    assert_eq!(done.last_update_status(), Some(&LastUpdateStatus::Failed));
    assert_eq!(done.last_update_status_reason(), Some("boom"));
    assert_eq!(
        done.last_update_status_reason_code(),
        Some(&LastUpdateStatusReasonCode::InternalError)
    );
    assert_eq!(env_of(&done), vars(&[("KEY", "1")]), "the old variables");
    assert_ne!(done.revision_id(), out.revision_id());
    assert_eq!(sandbox.function_env("fu").unwrap(), vars(&[("KEY", "1")]));

    // Applied: the new variables are in place despite the failure.
    sandbox.faults().fail_next_update_with(
        "fu",
        "Lambda was unable to configure access to your environment variables because the KMS key is invalid for CreateGrant.",
        "KMSKeyAccessDenied",
        true,
    );
    update_env(&lambda, "fu", &[("KEY", "3")], None)
        .await
        .unwrap();
    let done = after_update(&lambda, "fu").await;
    assert_eq!(done.last_update_status(), Some(&LastUpdateStatus::Failed));
    assert_eq!(
        done.last_update_status_reason_code(),
        Some(&LastUpdateStatusReasonCode::KmsKeyAccessDenied)
    );
    assert_eq!(env_of(&done), vars(&[("KEY", "3")]));

    // Only the next update fails; the one after clears the status.
    update_env(&lambda, "fu", &[("KEY", "4")], None)
        .await
        .unwrap();
    let done = after_update(&lambda, "fu").await;
    assert_eq!(
        done.last_update_status(),
        Some(&LastUpdateStatus::Successful)
    );
    assert_eq!(done.last_update_status_reason(), None);
    assert_eq!(done.last_update_status_reason_code(), None);
    assert_eq!(env_of(&done), vars(&[("KEY", "4")]));

    // Without an update delay it is over in the answer itself.
    sandbox.set_update_delay(Duration::ZERO);
    sandbox.faults().fail_next_update("fu", "", false);
    let out = update_env(&lambda, "fu", &[("KEY", "5")], None)
        .await
        .unwrap();
    assert_eq!(out.last_update_status(), Some(&LastUpdateStatus::Failed));
    assert!(
        out.last_update_status_reason()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(sandbox.function_env("fu").unwrap(), vars(&[("KEY", "4")]));
}

#[tokio::test]
async fn versions_and_weighted_aliases() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn5").await;
    let v1 = lambda
        .publish_version()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(
        v1.function_arn(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:fn5:1")
    );
    let again = lambda
        .publish_version()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    assert_eq!(again.version(), Some("1"), "nothing changed: same version");

    update_env(&lambda, "fn5", &[("KEY", "2")], None)
        .await
        .unwrap();
    let stale_code = lambda
        .publish_version()
        .function_name("fn5")
        .code_sha256("not-the-code")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            stale_code,
            PublishVersionError::InvalidParameterValueException(_)
        ),
        "{stale_code:?}"
    );
    let v2 = lambda
        .publish_version()
        .function_name("fn5")
        .code_sha256(ZIP_SHA256)
        .description("two")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), Some("2"));
    assert_eq!(v2.description(), Some("two"));

    // Versions are snapshots; $LATEST moves on.
    update_env(&lambda, "fn5", &[("KEY", "latest")], None)
        .await
        .unwrap();
    let old = lambda
        .get_function_configuration()
        .function_name("fn5")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(env_of(&old)["KEY"], "1");
    assert_eq!(old.version(), Some("1"));
    let by_name = lambda
        .get_function_configuration()
        .function_name("fn5:2")
        .send()
        .await
        .unwrap();
    assert_eq!(env_of(&by_name)["KEY"], "2");
    let missing = lambda
        .get_function_configuration()
        .function_name("fn5")
        .qualifier("9")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found_exception(), "{missing:?}");
    let not_latest = lambda
        .update_function_configuration()
        .function_name("fn5:1")
        .description("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        not_latest.is_invalid_parameter_value_exception(),
        "{not_latest:?}"
    );

    let alias = lambda
        .create_alias()
        .function_name("fn5")
        .name("live")
        .function_version("1")
        .description("canary")
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
        alias.alias_arn(),
        Some("arn:aws:lambda:us-east-1:123456789012:function:fn5:live")
    );
    assert_eq!(
        alias
            .routing_config()
            .unwrap()
            .additional_version_weights()
            .unwrap()["2"],
        0.1
    );
    // A qualifier may name an alias: its primary version answers.
    let via_alias = lambda
        .get_function_configuration()
        .function_name("fn5")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(env_of(&via_alias)["KEY"], "1");

    // Lambda's routing rules.
    for (version, weights) in [
        ("1", vec![("1", 0.5)]),
        ("1", vec![("2", 0.1), ("$LATEST", 0.1)]),
        ("$LATEST", vec![("1", 0.5)]),
        ("1", vec![("2", 1.5)]),
    ] {
        let mut routing = AliasRoutingConfiguration::builder();
        for (v, w) in weights {
            routing = routing.additional_version_weights(v, w);
        }
        let err = lambda
            .create_alias()
            .function_name("fn5")
            .name("bad")
            .function_version(version)
            .routing_config(routing.build())
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(
            matches!(err, CreateAliasError::InvalidParameterValueException(_)),
            "{version}: {err:?}"
        );
    }
    let err = lambda
        .create_alias()
        .function_name("fn5")
        .name("bad")
        .function_version("7")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = lambda
        .create_alias()
        .function_name("fn5")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_conflict_exception(), "{err:?}");

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
    assert!(updated.routing_config().is_none(), "{updated:?}");
    assert_ne!(updated.revision_id(), alias.revision_id());
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
    assert_eq!(got.description(), Some("canary"));
    assert_eq!(got.revision_id(), updated.revision_id());
    let unknown = lambda
        .get_alias()
        .function_name("fn5")
        .name("nope")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(unknown, GetAliasError::ResourceNotFoundException(_)),
        "{unknown:?}"
    );

    lambda
        .create_alias()
        .function_name("fn5")
        .name("old")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let list = lambda
        .list_aliases()
        .function_name("fn5")
        .send()
        .await
        .unwrap();
    let names: Vec<_> = list.aliases().iter().filter_map(|a| a.name()).collect();
    assert_eq!(names, ["live", "old"]);
    let only_v1 = lambda
        .list_aliases()
        .function_name("fn5")
        .function_version("1")
        .send()
        .await
        .unwrap();
    assert_eq!(only_v1.aliases().len(), 1);
    assert_eq!(only_v1.aliases()[0].name(), Some("old"));
}

#[tokio::test]
async fn admin_endpoints_over_http() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fn6").await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/_sandbox/{path}", sandbox.url());
    let state = || async {
        http.get(url("state"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = state().await;
    let f = &before["functions"][0];
    assert_eq!(f["name"], "fn6");
    assert_eq!(f["environment"]["KEY"], "1");
    assert_eq!(f["last_update_status"], "Successful");
    assert_eq!(
        f["revision_id"].as_str(),
        read(&lambda, "fn6").await.revision_id()
    );

    let r = http
        .post(url("faults"))
        .json(&json!({
            "throttle_next": 1,
            "foreign_edit": { "function": "fn6", "set": { "XX": "y" }, "unset": ["KEY"] },
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let shown = state().await;
    assert_eq!(shown["faults"]["throttle_next"], 1);
    assert_eq!(shown["faults"]["foreign_edits"]["fn6"]["set"]["XX"], "y");
    let err = lambda
        .get_function_configuration()
        .function_name("fn6")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_too_many_requests_exception(), "{err:?}");
    let read1 = read(&lambda, "fn6").await;
    assert_eq!(env_of(&read1)["KEY"], "1");
    assert_eq!(sandbox.function_env("fn6").unwrap(), vars(&[("XX", "y")]));
    let after = state().await;
    assert_ne!(after["functions"][0]["revision_id"], f["revision_id"]);
    assert_eq!(after["faults"]["foreign_edits"], json!({}));

    // Update delay over HTTP.
    http.post(url("faults"))
        .json(&json!({ "update_delay_ms": 60_000 }))
        .send()
        .await
        .unwrap();
    update_env(&lambda, "fn6", &[("XX", "z")], None)
        .await
        .unwrap();
    assert_eq!(
        state().await["functions"][0]["last_update_status"],
        "InProgress"
    );

    // Reset switches every fault off.
    http.post(url("faults"))
        .json(&json!({ "fail_next": 5, "latency_ms": 10 }))
        .send()
        .await
        .unwrap();
    assert_eq!(state().await["faults"]["fail_next"], 5);
    let r = http.post(url("reset")).send().await.unwrap();
    assert!(r.status().is_success());
    let reset = state().await;
    assert_eq!(reset["faults"]["fail_next"], 0);
    assert_eq!(reset["faults"]["latency_ms"], 0);
    read(&lambda, "fn6").await;

    // Bad admin requests and unknown routes answer JSON errors.
    let bad = http
        .post(url("faults"))
        .json(&json!({ "throttle": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert!(bad.json::<Value>().await.unwrap()["error"].is_string());
    let unknown = http
        .get(format!("{}/2015-03-31/nothing-here", sandbox.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    assert_eq!(
        unknown.headers()["x-amzn-errortype"],
        "UnknownOperationException"
    );
    assert!(unknown.json::<Value>().await.unwrap()["message"].is_string());
    let wrong_method = http
        .delete(format!(
            "{}/2015-03-31/functions/fn6/configuration",
            sandbox.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert!(wrong_method.json::<Value>().await.unwrap()["message"].is_string());
}

/// The new faults over `POST /_sandbox/faults`: set, shown in the state,
/// cleared one by one or by reset; bad bodies are 400s that change nothing.
#[tokio::test]
async fn function_faults_over_http() {
    let sandbox = start().await;
    let lambda = client(&sandbox).await;
    create(&lambda, "fa").await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/_sandbox/{path}", sandbox.url());
    let post = |body: Value| {
        let http = http.clone();
        let url = url("faults");
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let faults = || async {
        http.get(url("state"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["faults"]
            .clone()
    };

    let r = post(json!({ "kms_error": { "function": "fa" } })).await;
    assert!(r.status().is_success());
    let shown = faults().await;
    assert_eq!(
        shown["kms_errors"]["fa"]["code"],
        "KMSAccessDeniedException"
    );
    let env = read(&lambda, "fa").await.environment().cloned().unwrap();
    assert_eq!(
        env.error().unwrap().error_code(),
        Some("KMSAccessDeniedException")
    );
    post(json!({ "kms_error": { "function": "fa", "code": "KMSNotFoundException", "message": "gone" } }))
        .await;
    let env = read(&lambda, "fa").await.environment().cloned().unwrap();
    assert_eq!(
        env.error().unwrap().error_code(),
        Some("KMSNotFoundException")
    );
    assert_eq!(env.error().unwrap().message(), Some("gone"));
    post(json!({ "kms_ok": "fa" })).await;
    assert_eq!(env_of(&read(&lambda, "fa").await), vars(&[("KEY", "1")]));

    post(json!({ "hide_environment": "fa" })).await;
    assert_eq!(faults().await["hidden_environments"], json!(["fa"]));
    assert!(read(&lambda, "fa").await.environment().is_none());
    post(json!({ "show_environment": "fa" })).await;
    assert!(read(&lambda, "fa").await.environment().is_some());

    post(json!({ "hide_environment": "fa", "kms_error": { "function": "fa" } })).await;
    assert!(
        read(&lambda, "fa").await.environment().is_none(),
        "hidden wins over a KMS error"
    );
    post(json!({ "show_environment": "fa", "kms_ok": "fa" })).await;

    // An update that ends Failed; `applied` defaults to false.
    post(json!({ "fail_next_update": { "function": "fa", "reason": "no grant", "reason_code": "KMSKeyAccessDenied" } }))
        .await;
    assert_eq!(
        faults().await["failing_updates"]["fa"],
        json!({ "reason": "no grant", "reason_code": "KMSKeyAccessDenied", "applied": false })
    );
    let out = update_env(&lambda, "fa", &[("KEY", "2")], None)
        .await
        .unwrap();
    assert_eq!(out.last_update_status(), Some(&LastUpdateStatus::Failed));
    assert_eq!(out.last_update_status_reason(), Some("no grant"));
    assert_eq!(env_of(&read(&lambda, "fa").await), vars(&[("KEY", "1")]));
    let state = http
        .get(url("state"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let f = &state["functions"][0];
    assert_eq!(f["last_update_status"], "Failed");
    assert_eq!(f["last_update_status_reason_code"], "KMSKeyAccessDenied");
    assert_eq!(state["faults"]["failing_updates"], json!({}));
    post(json!({ "fail_next_update": { "function": "fa", "applied": true } })).await;
    let out = update_env(&lambda, "fa", &[("KEY", "2")], None)
        .await
        .unwrap();
    assert_eq!(
        out.last_update_status_reason_code(),
        Some(&LastUpdateStatusReasonCode::InternalError)
    );
    assert_eq!(env_of(&read(&lambda, "fa").await), vars(&[("KEY", "2")]));
    update_env(&lambda, "fa", &[("KEY", "1")], None)
        .await
        .unwrap();

    post(json!({ "hide_environment": "fa", "kms_error": { "function": "fa" }, "fail_next_update": { "function": "fa" } }))
        .await;
    http.post(url("reset")).send().await.unwrap();
    let reset = faults().await;
    assert_eq!(reset["failing_updates"], json!({}));
    assert_eq!(reset["kms_errors"], json!({}));
    assert_eq!(reset["hidden_environments"], json!([]));
    assert_eq!(env_of(&read(&lambda, "fa").await), vars(&[("KEY", "1")]));

    for bad in [
        json!({ "kms_error": { "function": "fa", "code": "KMS Access" } }),
        json!({ "kms_error": { "function": "" } }),
        json!({ "kms_error": { "fn": "fa" } }),
        json!({ "kms_error": { "function": "fa" }, "kms_ok": "fa" }),
        json!({ "hide_environment": "fa", "show_environment": "fa" }),
        json!({ "hide_environment": 3 }),
        json!({ "throttle_next": 2, "kms_ok": "" }),
        json!({ "fail_next_update": { "function": "fa", "reason_code": "KmsKeyAccessDenied" } }),
        json!({ "fail_next_update": { "function": "fa", "applied": "yes" } }),
        json!({ "fail_next_update": "fa" }),
    ] {
        let r = post(bad.clone()).await;
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    assert_eq!(faults().await, reset, "refused requests changed nothing");
}

/// Counted call faults over `POST /_sandbox/faults`.
#[tokio::test]
async fn call_faults_over_http() {
    let sandbox = start().await;
    create(&client(&sandbox).await, "fc").await;
    let lambda = impatient_client(&sandbox, Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/_sandbox/{path}", sandbox.url());
    let post = |body: Value| {
        let http = http.clone();
        let url = url("faults");
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let faults = || async {
        http.get(url("state"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["faults"]
            .clone()
    };

    // hang_ms defaults to ten minutes.
    post(json!({ "hang_next": 2 })).await;
    let shown = faults().await;
    assert_eq!(
        (shown["hang_next"].clone(), shown["hang_ms"].clone()),
        (json!(2), json!(600_000))
    );
    post(json!({ "hang_next": 1, "hang_ms": 5_000 })).await;
    assert_eq!(faults().await["hang_ms"], 5_000);
    let err = lambda
        .get_function_configuration()
        .function_name("fc")
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, aws_sdk_lambda::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert_eq!(faults().await["hang_next"], 0);
    read(&lambda, "fc").await;

    post(json!({ "expired_token_next": 1, "clock_skew_next": 1 })).await;
    let shown = faults().await;
    assert_eq!(
        (
            shown["expired_token_next"].clone(),
            shown["clock_skew_next"].clone()
        ),
        (json!(1), json!(1))
    );
    for code in ["ExpiredTokenException", "InvalidSignatureException"] {
        let err = lambda
            .get_function_configuration()
            .function_name("fc")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(err.code(), Some(code), "expired tokens first: {err:?}");
    }
    read(&lambda, "fc").await;

    post(json!({ "hang_next": 3, "expired_token_next": 3, "clock_skew_next": 3 })).await;
    http.post(url("reset")).send().await.unwrap();
    let reset = faults().await;
    assert_eq!(reset["hang_next"], 0);
    assert_eq!(reset["expired_token_next"], 0);
    assert_eq!(reset["clock_skew_next"], 0);
    read(&lambda, "fc").await;

    for bad in [
        json!({ "hang_next": -1 }),
        json!({ "hang_ms": "long" }),
        json!({ "expired_token_next": true }),
        json!({ "clock_skew": 1 }),
    ] {
        let r = post(bad.clone()).await;
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
}

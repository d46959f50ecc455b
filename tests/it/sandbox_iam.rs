//! The sandbox's STS and IAM (awsQuery on `POST /`, routed by `Version`)
//! and its permission faults, judged by the official SDKs and by boto3:
//! GetCallerIdentity, GetRole, SimulatePrincipalPolicy, and a denied
//! action's AccessDenied in every service's own shape.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::PolicyEvaluationDecisionType;
use rollgate::sandbox::{Sandbox, SandboxConfig};

const ACCOUNT: &str = "123456789012";
const CALLER: &str = "arn:aws:sts::123456789012:assumed-role/rollgate-operator/rollgate";
const ROLE: &str = "arn:aws:iam::123456789012:role/rollgate-operator";

async fn start() -> (Sandbox, aws_config::SdkConfig) {
    let config = SandboxConfig {
        metric_delay: std::time::Duration::ZERO,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(0, config).await.unwrap();
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    (sandbox, aws)
}

#[tokio::test]
async fn sts_names_the_caller_and_iam_its_role() {
    let (sandbox, aws) = start().await;
    let sts = aws_sdk_sts::Client::new(&aws);
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some(CALLER));
    assert_eq!(me.account(), Some(ACCOUNT));
    let user_id = me.user_id().unwrap();
    assert!(
        user_id.starts_with("AROA") && user_id.ends_with(":rollgate"),
        "{user_id}"
    );

    // The assumed role's name is the ARN's second-to-last part; IAM gives
    // the role's own ARN (with its path) for it.
    let iam = aws_sdk_iam::Client::new(&aws);
    let role = iam
        .get_role()
        .role_name("rollgate-operator")
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.arn(), ROLE);
    assert_eq!(role.path(), "/");
    assert_eq!(role.role_name(), "rollgate-operator");
    assert_eq!(
        user_id.split(':').next(),
        Some(role.role_id()),
        "the caller's UserId starts with its role's id"
    );
    let trust = role.assume_role_policy_document().unwrap();
    let trust: String = url::form_urlencoded::parse(format!("x={trust}").as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned();
    let trust: serde_json::Value = serde_json::from_str(&trust).unwrap();
    assert_eq!(trust["Statement"][0]["Action"], "sts:AssumeRole");
    assert_eq!(role.max_session_duration(), Some(3600));

    let bad = iam
        .get_role()
        .role_name("no/slashes")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("ValidationError"), "{bad:?}");

    // Another caller: a user in another account.
    sandbox.set_caller_arn("arn:aws:iam::210987654321:user/ci");
    let me = sts.get_caller_identity().send().await.unwrap();
    assert_eq!(me.arn(), Some("arn:aws:iam::210987654321:user/ci"));
    assert_eq!(me.account(), Some("210987654321"));
    assert!(me.user_id().unwrap().starts_with("AIDA"));
}

async fn simulate(
    iam: &aws_sdk_iam::Client,
    actions: &[&str],
    resources: &[&str],
) -> Vec<(String, PolicyEvaluationDecisionType, String)> {
    let mut req = iam.simulate_principal_policy().policy_source_arn(ROLE);
    for a in actions {
        req = req.action_names(*a);
    }
    for r in resources {
        req = req.resource_arns(*r);
    }
    let out = req.send().await.unwrap();
    assert!(!out.is_truncated());
    out.evaluation_results()
        .iter()
        .map(|r| {
            assert!(r.matched_statements().is_empty());
            assert!(r.missing_context_values().is_empty());
            (
                r.eval_action_name().to_string(),
                r.eval_decision().clone(),
                r.eval_resource_name().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn simulate_principal_policy_allows_all_but_denied_actions() {
    let (sandbox, aws) = start().await;
    let iam = aws_sdk_iam::Client::new(&aws);
    let function = "arn:aws:lambda:us-east-1:123456789012:function:dixon";
    let actions = [
        "lambda:GetFunctionConfiguration",
        "lambda:UpdateFunctionConfiguration",
        "cloudwatch:GetMetricData",
    ];
    let all = simulate(&iam, &actions, &[]).await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|(_, d, r)| *d == PolicyEvaluationDecisionType::Allowed && r == "*"),
        "{all:?}"
    );

    sandbox.faults().deny("lambda:UpdateFunctionConfiguration");
    sandbox.faults().deny("cloudwatch:getmetricdata");
    let some = simulate(
        &iam,
        &actions,
        &[
            function,
            "arn:aws:lambda:us-east-1:123456789012:function:other",
        ],
    )
    .await;
    let decisions: Vec<_> = some
        .iter()
        .map(|(a, d, r)| (a.as_str(), d.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        decisions,
        [
            ("lambda:GetFunctionConfiguration", "allowed", function),
            (
                "lambda:UpdateFunctionConfiguration",
                "implicitDeny",
                function
            ),
            ("cloudwatch:GetMetricData", "implicitDeny", function),
        ],
        "one result per action, whatever the resources; matched without regard to case"
    );

    // Per resource too.
    let out = iam
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .action_names("lambda:UpdateFunctionConfiguration")
        .resource_arns(function)
        .send()
        .await
        .unwrap();
    let per = out.evaluation_results()[0].resource_specific_results();
    assert_eq!(per.len(), 1);
    assert_eq!(per[0].eval_resource_name(), function);
    assert_eq!(
        per[0].eval_resource_decision(),
        &PolicyEvaluationDecisionType::ImplicitDeny
    );

    sandbox.faults().allow("lambda:UpdateFunctionConfiguration");
    assert_eq!(
        simulate(&iam, &actions[1..2], &[]).await[0].1,
        PolicyEvaluationDecisionType::Allowed
    );
    sandbox.faults().reset();
    assert_eq!(
        simulate(&iam, &actions[2..], &[]).await[0].1,
        PolicyEvaluationDecisionType::Allowed
    );

    // Pages of MaxItems.
    let out = iam
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
        .max_items(2)
        .send()
        .await
        .unwrap();
    assert!(out.is_truncated());
    assert_eq!(out.evaluation_results().len(), 2);
    let rest = iam
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
        .marker(out.marker().unwrap())
        .send()
        .await
        .unwrap();
    assert!(!rest.is_truncated());
    assert_eq!(
        rest.evaluation_results()[0].eval_action_name(),
        "cloudwatch:GetMetricData"
    );

    // The caller's own (assumed-role) ARN is not a principal IAM simulates.
    let err = iam
        .simulate_principal_policy()
        .policy_source_arn(CALLER)
        .action_names("lambda:GetFunctionConfiguration")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_input_exception(), "{err:?}");
    assert_eq!(err.code(), Some("InvalidInput"));
}

#[tokio::test]
async fn a_denied_simulation_and_role_read_are_access_denied() {
    let (sandbox, aws) = start().await;
    let iam = aws_sdk_iam::Client::new(&aws);
    sandbox.faults().deny("iam:SimulatePrincipalPolicy");
    sandbox.faults().deny("iam:GetRole");
    let err = iam
        .simulate_principal_policy()
        .policy_source_arn(ROLE)
        .action_names("lambda:GetFunctionConfiguration")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            format!("User: {CALLER} is not authorized to perform: iam:SimulatePrincipalPolicy on resource: {ROLE} because no identity-based policy allows the iam:SimulatePrincipalPolicy action")
                .as_str()
        )
    );
    let err = iam
        .get_role()
        .role_name("rollgate-operator")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    // GetCallerIdentity needs no permission: as in AWS, a deny does not stop it.
    sandbox.faults().deny("sts:GetCallerIdentity");
    let me = aws_sdk_sts::Client::new(&aws)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(me.arn(), Some(CALLER));
}

#[tokio::test]
async fn denied_lambda_calls_are_access_denied_exceptions() {
    let (sandbox, aws) = start().await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let name = rollgate::demo::DEMO_FUNCTION;
    let lambda = aws_sdk_lambda::Client::new(&aws);
    sandbox.faults().deny("lambda:GetFunctionConfiguration");
    // A denied call counts no throttle (AWS authorizes before it rate-limits).
    sandbox.faults().throttle_next(1);
    let err = lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap_err();
    let raw = err.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 403);
    assert!(raw.headers().get("x-amzn-requestid").is_some());
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert_eq!(
        err.message(),
        Some(
            format!(
                "User: {CALLER} is not authorized to perform: lambda:GetFunctionConfiguration on resource: arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name} because no identity-based policy allows the lambda:GetFunctionConfiguration action"
            )
            .as_str()
        )
    );
    // The throttle is still pending (the SDK's retry of the next allowed
    // call absorbs it); the denial is shown in the state.
    let state: serde_json::Value = reqwest::get(format!("{}/_sandbox/state", sandbox.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["faults"]["throttle_next"], 1);
    assert_eq!(
        state["faults"]["denied"],
        serde_json::json!(["lambda:GetFunctionConfiguration"])
    );
    lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .unwrap();

    // A qualified read names the version in the resource.
    let err = lambda
        .get_function_configuration()
        .function_name(name)
        .qualifier("1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        err.message()
            .unwrap()
            .contains(&format!("function:{name}:1 because")),
        "{err:?}"
    );
    sandbox.faults().allow("lambda:GetFunctionConfiguration");
    lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .unwrap();

    sandbox.faults().deny("lambda:UpdateFunctionConfiguration");
    let err = lambda
        .update_function_configuration()
        .function_name(name)
        .description("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(
        sandbox.function_env(name).unwrap()["LOG_LEVEL"],
        "INFO",
        "a denied update changes nothing"
    );
}

#[tokio::test]
async fn denied_cloudwatch_and_appconfig_calls_carry_their_codes() {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
    let (sandbox, aws) = start().await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws);
    let query = MetricDataQuery::builder()
        .id("inv")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/Lambda")
                        .metric_name("Invocations")
                        .build(),
                )
                .period(60)
                .stat("Sum")
                .build(),
        )
        .build();
    let now = chrono::Utc::now().timestamp();
    let get = || {
        cw.get_metric_data()
            .start_time(DateTime::from_secs(now - 600))
            .end_time(DateTime::from_secs(now))
            .metric_data_queries(query.clone())
            .send()
    };
    get().await.unwrap();
    sandbox.faults().deny("cloudwatch:GetMetricData");
    let err = get().await.unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(
        err.message().unwrap().ends_with(
            "is not authorized to perform: cloudwatch:GetMetricData because no identity-based policy allows the cloudwatch:GetMetricData action"
        ),
        "{err:?}"
    );
    sandbox.faults().deny("cloudwatch:DescribeAlarms");
    let err = cw.describe_alarms().send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));

    let ac = aws_sdk_appconfig::Client::new(&aws);
    let app = ac.create_application().name("a").send().await.unwrap();
    let profile = ac
        .create_configuration_profile()
        .application_id(app.id().unwrap())
        .name("flags")
        .location_uri("hosted")
        .r#type("AWS.AppConfig.FeatureFlags")
        .send()
        .await
        .unwrap();
    sandbox.faults().deny("appconfig:GetConfigurationProfile");
    sandbox.faults().appconfig_throttle_next(1);
    let err = ac
        .get_configuration_profile()
        .application_id(app.id().unwrap())
        .configuration_profile_id(profile.id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);
    assert_eq!(err.code(), Some("AccessDeniedException"), "{err:?}");
    assert!(
        err.message().unwrap().contains(&format!(
            "appconfig:GetConfigurationProfile on resource: arn:aws:appconfig:us-east-1:{ACCOUNT}:application/{}/configurationprofile/{}",
            app.id().unwrap(),
            profile.id().unwrap()
        )),
        "{err:?}"
    );
}

/// `deny` and `allow` over `POST /_sandbox/faults`, shown in the state,
/// refused when malformed, cleared by a reset.
#[tokio::test]
async fn deny_and_allow_over_the_admin_endpoint() {
    let (sandbox, aws) = start().await;
    let http = reqwest::Client::new();
    let post = |path: &'static str, body: &'static str| {
        http.post(format!("{}{path}", sandbox.url()))
            .body(body)
            .send()
    };
    let denied = || async {
        let state: serde_json::Value = http
            .get(format!("{}/_sandbox/state", sandbox.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state["caller_arn"], CALLER);
        state["faults"]["denied"].clone()
    };
    let r = post(
        "/_sandbox/faults",
        r#"{"deny": ["lambda:UpdateAlias", "iam:GetRole", "cloudwatch:PutMetricAlarm"]}"#,
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    assert_eq!(
        denied().await,
        serde_json::json!([
            "cloudwatch:PutMetricAlarm",
            "iam:GetRole",
            "lambda:UpdateAlias"
        ])
    );
    let iam = aws_sdk_iam::Client::new(&aws);
    let err = iam.get_role().role_name("r").send().await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));

    for bad in [
        r#"{"deny": ["lambda:*"]}"#,
        r#"{"deny": ["GetRole"]}"#,
        r#"{"deny": ["iam:GetRole"], "allow": ["IAM:getrole"]}"#,
        r#"{"deny": ["iam:GetRole"], "allow_all": true}"#,
        r#"{"deny": "iam:GetRole"}"#,
    ] {
        let r = post("/_sandbox/faults", bad).await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    post("/_sandbox/faults", r#"{"allow": ["iam:GetRole"]}"#)
        .await
        .unwrap();
    iam.get_role().role_name("r").send().await.unwrap();
    assert_eq!(
        denied().await,
        serde_json::json!(["cloudwatch:PutMetricAlarm", "lambda:UpdateAlias"])
    );
    post("/_sandbox/faults", r#"{"allow_all": true}"#)
        .await
        .unwrap();
    assert_eq!(denied().await, serde_json::json!([]));
    post("/_sandbox/faults", r#"{"deny": ["iam:GetRole"]}"#)
        .await
        .unwrap();
    post("/_sandbox/reset", "").await.unwrap();
    assert_eq!(denied().await, serde_json::json!([]));
}

const BOTO3_SCRIPT: &str = r#"import json, sys, urllib.request
import botocore.session
from botocore.exceptions import ClientError

endpoint = sys.argv[1]
session = botocore.session.get_session()
def client(name):
    return session.create_client(name, endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test")
def code(f):
    try:
        f()
        return None
    except ClientError as e:
        return [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
sts, iam, cw, lam = client("sts"), client("iam"), client("cloudwatch"), client("lambda")
me = sts.get_caller_identity()
role = iam.get_role(RoleName=me["Arn"].split("/")[1])["Role"]
sim = lambda: iam.simulate_principal_policy(PolicySourceArn=role["Arn"],
    ActionNames=["lambda:GetFunctionConfiguration", "cloudwatch:GetMetricData"],
    ResourceArns=["arn:aws:lambda:us-east-1:123456789012:function:f"])["EvaluationResults"]
before = sim()
urllib.request.urlopen(urllib.request.Request(endpoint + "/_sandbox/faults",
    data=json.dumps({"deny": ["cloudwatch:GetMetricData", "lambda:GetFunctionConfiguration"]}).encode(),
    method="POST")).read()
after = sim()
import datetime
now = datetime.datetime.now(datetime.timezone.utc)
print(json.dumps({
    "me": [me["Arn"], me["Account"], me["UserId"].split(":")[1]],
    "role": [role["Arn"], role["Path"], role["RoleId"][:4], role["CreateDate"].isoformat()],
    "before": [[r["EvalActionName"], r["EvalDecision"], r["EvalResourceName"]] for r in before],
    "after": [r["EvalDecision"] for r in after],
    "cloudwatch": code(lambda: cw.get_metric_data(StartTime=now - datetime.timedelta(minutes=5), EndTime=now,
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": {"Namespace": "N", "MetricName": "M"},
            "Period": 60, "Stat": "Sum"}}])),
    "lambda": code(lambda: lam.get_function_configuration(FunctionName="f")),
    "assumed": code(lambda: iam.simulate_principal_policy(PolicySourceArn=me["Arn"], ActionNames=["s3:GetObject"])),
}))
"#;

/// boto3 (botocore's own models and parsers) reads the same answers.
#[tokio::test]
async fn boto3_reads_identity_role_simulation_and_denials() {
    let (sandbox, _aws) = start().await;
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
    assert_eq!(out["me"], json!([CALLER, ACCOUNT, "rollgate"]));
    assert_eq!(
        out["role"],
        json!([ROLE, "/", "AROA", "2026-01-01T00:00:00+00:00"])
    );
    let function = "arn:aws:lambda:us-east-1:123456789012:function:f";
    assert_eq!(
        out["before"],
        json!([
            ["lambda:GetFunctionConfiguration", "allowed", function],
            ["cloudwatch:GetMetricData", "allowed", function],
        ])
    );
    assert_eq!(out["after"], json!(["implicitDeny", "implicitDeny"]));
    assert_eq!(out["cloudwatch"], json!(["AccessDenied", 403]));
    assert_eq!(out["lambda"], json!(["AccessDeniedException", 403]));
    assert_eq!(out["assumed"], json!(["InvalidInput", 400]));
}

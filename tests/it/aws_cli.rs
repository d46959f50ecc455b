//! An independent client judges the sandbox too: the AWS CLI (botocore,
//! `pip install awscli`, installed by .ci/run) puts and reads metrics (a
//! gzipped batch of 400 too, in awsJson1_0 and awsQuery), pages through
//! metric and composite alarms, round-trips a metric-math alarm with tags
//! in every protocol, reads and updates a function, and reads the caller
//! (STS) and its role (IAM).

use std::process::Command;

use rollgate::sandbox::{Sandbox, SandboxConfig};

/// A sandbox whose metrics are readable at once (real CloudWatch's delay,
/// the sandbox's default, is tested by itself).
async fn start() -> Sandbox {
    let config = SandboxConfig {
        metric_delay: std::time::Duration::ZERO,
        ..SandboxConfig::default()
    };
    Sandbox::start(0, config).await.unwrap()
}
use serde_json::Value;

async fn aws(endpoint: String, args: Vec<String>) -> (bool, String, String) {
    aws_with(endpoint, args, None).await
}

/// Runs the CLI; `data_path` (AWS_DATA_PATH) can hold service models that
/// override botocore's own.
async fn aws_with(
    endpoint: String,
    args: Vec<String>,
    data_path: Option<std::path::PathBuf>,
) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("aws");
        match &data_path {
            Some(p) => cmd.env("AWS_DATA_PATH", p),
            None => cmd.env_remove("AWS_DATA_PATH"),
        };
        let out = cmd
            .arg("--endpoint-url")
            .arg(&endpoint)
            .args(&args)
            .args(["--output", "json"])
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .output()
            .expect("the AWS CLI must be installed: pip install awscli (.ci/run does)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_puts_and_reads_metrics() {
    let sandbox = start().await;
    for v in ["40", "60"] {
        let (ok, _, err) = aws(
            sandbox.url(),
            args(&format!("cloudwatch put-metric-data --namespace DixonSmartRepair --metric-name TokensPerRequest --dimensions FunctionName=f --value {v}")),
        )
        .await;
        assert!(ok, "{err}");
    }
    let now = chrono::Utc::now();
    let mut q = args("cloudwatch get-metric-data --metric-data-queries");
    q.push(r#"[{"Id":"t","MetricStat":{"Metric":{"Namespace":"DixonSmartRepair","MetricName":"TokensPerRequest","Dimensions":[{"Name":"FunctionName","Value":"f"}]},"Period":600,"Stat":"Average"}}]"#.into());
    q.extend([
        "--start-time".into(),
        (now - chrono::Duration::minutes(5)).to_rfc3339(),
    ]);
    q.extend([
        "--end-time".into(),
        (now + chrono::Duration::minutes(1)).to_rfc3339(),
    ]);
    let (ok, out, err) = aws(sandbox.url(), q).await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["MetricDataResults"][0]["Values"][0], 50.0, "{out}");

    let (ok, _, err) = aws(
        sandbox.url(),
        args("cloudwatch put-metric-alarm --alarm-name errs --namespace AWS/Lambda --metric-name Errors --statistic Sum --period 60 --evaluation-periods 1 --threshold 5 --comparison-operator GreaterThanThreshold"),
    )
    .await;
    assert!(ok, "{err}");
    let (ok, _, err) = aws(
        sandbox.url(),
        args("cloudwatch set-alarm-state --alarm-name errs --state-value ALARM --state-reason cli"),
    )
    .await;
    assert!(ok, "{err}");
    let (_, out, _) = aws(
        sandbox.url(),
        args("cloudwatch describe-alarms --alarm-names errs"),
    )
    .await;
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["MetricAlarms"][0]["StateValue"], "ALARM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_reads_and_updates_a_function() {
    let sandbox = start().await;
    let aws_config = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws_config)
        .await
        .unwrap();
    let (ok, out, err) = aws(
        sandbox.url(),
        args("lambda get-function-configuration --function-name dixon-smart-repair-handler"),
    )
    .await;
    assert!(ok, "{err}");
    let cfg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        cfg["Environment"]["Variables"]["TABLE_NAME"],
        "dixon-sessions"
    );
    let (ok, _, err) = aws(
        sandbox.url(),
        args("lambda update-function-configuration --function-name dixon-smart-repair-handler --revision-id stale --environment Variables={A1=b}"),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("PreconditionFailedException"), "{err}");
}

/// The CLI (awsJson1_0) sees composite alarms when it asks for them, and
/// follows DescribeAlarms' NextToken by itself across both types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_lists_composite_alarms_and_pages_through_alarms() {
    let sandbox = start().await;
    // 55 metric alarms through the SDK (quicker than 55 CLI runs).
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    for i in 0..55 {
        cw.put_metric_alarm()
            .alarm_name(format!("m{i:02}"))
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(5.0)
            .comparison_operator(
                aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold,
            )
            .send()
            .await
            .unwrap();
    }
    let (ok, _, err) = aws(
        sandbox.url(),
        args("cloudwatch put-composite-alarm --alarm-name both --alarm-rule ALARM(m00)AND(ALARM(m01)) --alarm-description guard"),
    )
    .await;
    assert!(ok, "{err}");

    let (ok, out, err) = aws(
        sandbox.url(),
        args("cloudwatch describe-alarms --alarm-types CompositeAlarm"),
    )
    .await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["CompositeAlarms"].as_array().unwrap().len(), 1, "{out}");
    let c = &out["CompositeAlarms"][0];
    assert_eq!(c["AlarmName"], "both");
    assert_eq!(c["AlarmRule"], "ALARM(m00)AND(ALARM(m01))");
    assert_eq!(c["StateValue"], "INSUFFICIENT_DATA");
    assert_eq!(out["MetricAlarms"], serde_json::json!([]));

    let (ok, out, err) = aws(sandbox.url(), args("cloudwatch describe-alarms")).await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        out["MetricAlarms"].as_array().unwrap().len(),
        55,
        "two pages"
    );
    assert_eq!(out["CompositeAlarms"], serde_json::json!([]));

    let (ok, out, err) = aws(
        sandbox.url(),
        args("cloudwatch describe-alarms --alarm-types MetricAlarm CompositeAlarm"),
    )
    .await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["MetricAlarms"].as_array().unwrap().len(), 55);
    assert_eq!(out["CompositeAlarms"][0]["AlarmName"], "both");

    let (ok, _, err) = aws(
        sandbox.url(),
        args("cloudwatch describe-alarms --max-records 101"),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("ValidationError"), "{err}");
}

/// A copy of botocore's CloudWatch model that lists only `protocol`, in a
/// directory for AWS_DATA_PATH: the CLI then speaks that protocol.
fn model_speaking(protocol: &str, dir: &std::path::Path) {
    let script = r#"
import json, os, sys
import botocore.session
protocol, out = sys.argv[1], sys.argv[2]
model = botocore.session.get_session().get_component("data_loader").load_service_model("cloudwatch", "service-2")
model["metadata"]["protocol"] = protocol
model["metadata"]["protocols"] = [protocol]
path = os.path.join(out, "cloudwatch", model["metadata"]["apiVersion"])
os.makedirs(path)
with open(os.path.join(path, "service-2.json"), "w") as f:
    json.dump(model, f)
"#;
    let out = Command::new("python3")
        .args(["-c", script, protocol])
        .arg(dir)
        .env_remove("AWS_DATA_PATH")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 400 data from a file (over 10 KB: the CLI gzips them), read back in
/// 2-minute buckets from an unaligned StartTime to a partial last bucket.
async fn cli_puts_400_data_and_reads_period_buckets(data_path: Option<std::path::PathBuf>) {
    let sandbox = start().await;
    let now = chrono::Utc::now().timestamp();
    let base = now - now % 60 - 600;
    let iso = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let data: Vec<Value> = (0..400)
        .map(|i: i64| {
            serde_json::json!({
                "MetricName": "Latency",
                "Dimensions": [{"Name": "FunctionName", "Value": "cli"}],
                "Timestamp": iso(base + (i % 5) * 60 + (i / 5) % 60),
                "Value": i as f64,
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.json");
    std::fs::write(&file, serde_json::to_vec(&data).unwrap()).unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > 10_240);
    let mut put = args("cloudwatch put-metric-data --namespace CLI --metric-data");
    put.push(format!("file://{}", file.display()));
    let (ok, _, err) = aws_with(sandbox.url(), put, data_path.clone()).await;
    assert!(ok, "{err}");

    let mut q = args("cloudwatch get-metric-data --metric-data-queries");
    q.push(r#"[{"Id":"s","MetricStat":{"Metric":{"Namespace":"CLI","MetricName":"Latency","Dimensions":[{"Name":"FunctionName","Value":"cli"}]},"Period":120,"Stat":"Sum"}}]"#.into());
    q.extend(["--start-time".into(), iso(base + 30)]);
    q.extend(["--end-time".into(), iso(base + 270)]);
    let (ok, out, err) = aws_with(sandbox.url(), q, data_path).await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    let r = &out["MetricDataResults"][0];
    assert_eq!(
        r["Values"],
        serde_json::json!([16120.0, 32000.0, 31680.0]),
        "{out}"
    );
    let stamps: Vec<i64> = r["Timestamps"]
        .as_array()
        .unwrap()
        .iter()
        // CLI v1 shows timestamps as the wire has them: epoch seconds in
        // JSON, ISO 8601 in XML.
        .map(|t| match t.as_str() {
            Some(iso) => chrono::DateTime::parse_from_rfc3339(iso)
                .unwrap()
                .timestamp(),
            None => t.as_f64().unwrap() as i64,
        })
        .collect();
    assert_eq!(stamps, [base + 240, base + 120, base], "{out}");
    assert_eq!(r["StatusCode"], "Complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_puts_a_gzipped_batch_and_reads_period_buckets() {
    cli_puts_400_data_and_reads_period_buckets(None).await;
}

/// The same through a CLI made to speak awsQuery (its model lists only query).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_speaks_aws_query_too() {
    let models = tempfile::tempdir().unwrap();
    model_speaking("query", models.path());
    cli_puts_400_data_and_reads_period_buckets(Some(models.path().to_path_buf())).await;
}

/// A metric-math alarm with tags through the CLI in each protocol it can
/// speak (its default, rpcv2Cbor; awsJson1_0; awsQuery's XML): put,
/// described by prefix, tags listed, deleted.
async fn cli_alarm_round_trip(data_path: Option<std::path::PathBuf>) {
    let sandbox = start().await;
    let metrics = r#"[{"Id":"rate","Expression":"100*errors/invocations","Label":"error rate","ReturnData":true},
        {"Id":"errors","MetricStat":{"Metric":{"Namespace":"AWS/Lambda","MetricName":"Errors","Dimensions":[{"Name":"FunctionName","Value":"f"}]},"Period":60,"Stat":"Sum"},"ReturnData":false},
        {"Id":"invocations","MetricStat":{"Metric":{"Namespace":"AWS/Lambda","MetricName":"Invocations","Dimensions":[{"Name":"FunctionName","Value":"f"}]},"Period":60,"Stat":"Sum"},"ReturnData":false}]"#;
    let mut put = args(
        "cloudwatch put-metric-alarm --alarm-name backstop-f --threshold 5 --comparison-operator GreaterThanThreshold --evaluation-periods 3 --datapoints-to-alarm 2 --treat-missing-data notBreaching --alarm-actions arn:aws:sns:us-east-1:123456789012:pager --tags Key=owner,Value=dixon --metrics",
    );
    put.push(metrics.into());
    let (ok, _, err) = aws_with(sandbox.url(), put, data_path.clone()).await;
    assert!(ok, "{err}");
    let (ok, out, err) = aws_with(
        sandbox.url(),
        args("cloudwatch describe-alarms --alarm-name-prefix backstop-"),
        data_path.clone(),
    )
    .await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    let a = &out["MetricAlarms"][0];
    assert_eq!(a["AlarmName"], "backstop-f", "{out}");
    assert_eq!(a["Threshold"], 5.0);
    assert_eq!(a["DatapointsToAlarm"], 2);
    assert_eq!(a["TreatMissingData"], "notBreaching");
    assert_eq!(a["ActionsEnabled"], true);
    assert_eq!(
        a["AlarmActions"],
        serde_json::json!(["arn:aws:sns:us-east-1:123456789012:pager"])
    );
    assert_eq!(a["Metrics"][0]["Expression"], "100*errors/invocations");
    assert_eq!(a["Metrics"][1]["ReturnData"], false);
    assert_eq!(a["Metrics"][2]["MetricStat"]["Period"], 60);
    assert_eq!(
        a["Metrics"][2]["MetricStat"]["Metric"]["Dimensions"][0]["Value"],
        "f"
    );
    let arn = a["AlarmArn"].as_str().unwrap().to_string();
    let mut list = args("cloudwatch list-tags-for-resource --resource-arn");
    list.push(arn);
    let (ok, out, err) = aws_with(sandbox.url(), list, data_path.clone()).await;
    assert!(ok, "{err}");
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        out["Tags"],
        serde_json::json!([{"Key": "owner", "Value": "dixon"}])
    );
    let (ok, _, err) = aws_with(
        sandbox.url(),
        args("cloudwatch delete-alarms --alarm-names backstop-f unknown"),
        data_path.clone(),
    )
    .await;
    assert!(ok, "{err}");
    let (ok, out, _) = aws_with(sandbox.url(), args("cloudwatch describe-alarms"), data_path).await;
    assert!(ok);
    let out: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(out["MetricAlarms"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_round_trips_a_metric_math_alarm_in_every_protocol() {
    cli_alarm_round_trip(None).await;
    for protocol in ["json", "query"] {
        let models = tempfile::tempdir().unwrap();
        model_speaking(protocol, models.path());
        cli_alarm_round_trip(Some(models.path().to_path_buf())).await;
    }
}

/// `aws sts get-caller-identity` and `aws iam get-role` (awsQuery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_reads_the_caller_and_its_role() {
    let sandbox = start().await;
    let (ok, out, err) = aws(sandbox.url(), args("sts get-caller-identity")).await;
    assert!(ok, "{err}");
    let me: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        me["Arn"],
        "arn:aws:sts::123456789012:assumed-role/rollgate-operator/rollgate"
    );
    assert_eq!(me["Account"], "123456789012");
    let (ok, out, err) = aws(
        sandbox.url(),
        args("iam get-role --role-name rollgate-operator"),
    )
    .await;
    assert!(ok, "{err}");
    let role: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        role["Role"]["Arn"],
        "arn:aws:iam::123456789012:role/rollgate-operator"
    );
    // The CLI decodes the trust policy into JSON.
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Action"],
        "sts:AssumeRole"
    );
    sandbox.faults().deny("iam:GetRole");
    let (ok, _, err) = aws(
        sandbox.url(),
        args("iam get-role --role-name rollgate-operator"),
    )
    .await;
    assert!(!ok);
    assert!(err.contains("(AccessDenied)"), "{err}");
}

//! An independent client judges the sandbox too: the AWS CLI (botocore,
//! `pip install awscli`, installed by .ci/run) puts and reads metrics, pages
//! through metric and composite alarms, and reads and updates a function.

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
    tokio::task::spawn_blocking(move || {
        let out = Command::new("aws")
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

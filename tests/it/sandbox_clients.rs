//! Independent clients judge the sandbox's CloudWatch too: the current boto3
//! (installed by .ci/run) in its default protocol (awsJson1_0) and, from a
//! copy of its service model that lists only `query`, in awsQuery; both
//! gzip a PutMetricData of 400 data and read back period buckets and
//! alarms. A raw form-encoded request checks the awsQuery XML itself.

use std::process::Command;

use rollgate::sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};

async fn start() -> Sandbox {
    let config = SandboxConfig {
        metric_delay: std::time::Duration::ZERO,
        ..SandboxConfig::default()
    };
    Sandbox::start(0, config).await.unwrap()
}

/// Puts 400 data with boto3 (gzip), reads them back in 2-minute buckets
/// from an unaligned start to a partial last bucket, both scan orders, a
/// refused Period, and the alarm operations; prints what it saw as JSON.
const BOTO3_SCRIPT: &str = r#"import datetime, json, os, sys, tempfile

import botocore.session
from botocore.exceptions import ClientError

endpoint, protocol = sys.argv[1], sys.argv[2]

if protocol != "default":
    # botocore speaks the first protocol of the model's list it supports
    # (json for CloudWatch); a copy of the model that lists only `protocol`,
    # found first on AWS_DATA_PATH, makes it speak that one.
    model = botocore.session.get_session().get_component("data_loader").load_service_model("cloudwatch", "service-2")
    meta = model["metadata"]
    meta["protocol"] = protocol
    meta["protocols"] = [protocol]
    data = tempfile.mkdtemp()
    os.makedirs(os.path.join(data, "cloudwatch", meta["apiVersion"]))
    with open(os.path.join(data, "cloudwatch", meta["apiVersion"], "service-2.json"), "w") as f:
        json.dump(model, f)
    os.environ["AWS_DATA_PATH"] = data

session = botocore.session.get_session()
cw = session.create_client(
    "cloudwatch",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
seen = []
def header(request, name):
    v = request.headers.get(name)
    return v.decode() if isinstance(v, bytes) else v

def record(request, **kwargs):
    seen.append({
        "content_type": header(request, "Content-Type"),
        "content_encoding": header(request, "Content-Encoding"),
        "target": header(request, "X-Amz-Target"),
        "bytes": len(request.body or b""),
    })
cw.meta.events.register("before-send.cloudwatch", record)

now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
base = now - datetime.timedelta(minutes=10)
fn = "boto3-" + protocol
dims = [{"Name": "FunctionName", "Value": fn}]
data = []
for i in range(400):
    minute, second = i % 5, (i // 5) % 60
    data.append({
        "MetricName": "Latency",
        "Dimensions": dims,
        "Timestamp": base + datetime.timedelta(minutes=minute, seconds=second),
        "Value": float(i),
        "Unit": "Milliseconds",
    })
cw.put_metric_data(Namespace="Boto3", MetricData=data)
put = seen[-1]

def query(stat, period=120):
    return {
        "Id": stat.lower(),
        "MetricStat": {
            "Metric": {"Namespace": "Boto3", "MetricName": "Latency", "Dimensions": dims},
            "Period": period,
            "Stat": stat,
        },
    }

start = base + datetime.timedelta(seconds=30)
end = base + datetime.timedelta(minutes=4, seconds=30)
out = cw.get_metric_data(
    MetricDataQueries=[query("Sum"), query("SampleCount"), query("Maximum")],
    StartTime=start,
    EndTime=end,
)
asc = cw.get_metric_data(
    MetricDataQueries=[query("Sum")], StartTime=start, EndTime=end, ScanBy="TimestampAscending"
)
try:
    cw.get_metric_data(MetricDataQueries=[query("Sum", 45)], StartTime=start, EndTime=end)
    bad_period = None
except ClientError as e:
    bad_period = e.response["Error"]

cw.put_metric_alarm(
    AlarmName=fn + "-errors", Namespace="AWS/Lambda", MetricName="Errors",
    Dimensions=dims, Statistic="Sum", Period=60, EvaluationPeriods=1,
    Threshold=5.0, ComparisonOperator="GreaterThanThreshold",
)
cw.put_composite_alarm(AlarmName=fn + "-any", AlarmRule="ALARM(%s-errors)" % fn, AlarmActions=[])
cw.set_alarm_state(AlarmName=fn + "-errors", StateValue="ALARM", StateReason="boto3")
alarms = cw.describe_alarms(AlarmTypes=["MetricAlarm", "CompositeAlarm"], AlarmNamePrefix=fn)
try:
    cw.set_alarm_state(AlarmName="nope", StateValue="OK", StateReason="x")
    missing = None
except ClientError as e:
    missing = e.response["Error"]

def series(result):
    return [[t.isoformat(), v] for t, v in zip(result["Timestamps"], result["Values"])]

print(json.dumps({
    "put": put,
    "requests": seen,
    "results": {r["Id"]: {"points": series(r), "status": r["StatusCode"], "label": r.get("Label")} for r in out["MetricDataResults"]},
    "ascending": series(asc["MetricDataResults"][0]),
    "bad_period": bad_period,
    "metric_alarms": [[a["AlarmName"], a["StateValue"], a["StateReason"], a["Period"], a["Threshold"], a["Dimensions"]] for a in alarms["MetricAlarms"]],
    "composite_alarms": [[a["AlarmName"], a["AlarmRule"], a["StateValue"]] for a in alarms["CompositeAlarms"]],
    "missing": missing,
    "base": base.isoformat(),
}, indent=1))
"#;

async fn boto3(endpoint: String, protocol: &'static str) -> Value {
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", BOTO3_SCRIPT, &endpoint, protocol])
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
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What both protocols must read back (boto3's timestamps are ISO 8601).
fn check_boto3_results(out: &Value, function: &str) {
    let base = chrono::DateTime::parse_from_rfc3339(out["base"].as_str().unwrap()).unwrap();
    let at = |minutes: i64| {
        (base + chrono::Duration::minutes(minutes))
            .format("%Y-%m-%dT%H:%M:%S+00:00")
            .to_string()
    };
    // Datum i is at minute i % 5, value i: StartTime base+30s is rounded to
    // base, EndTime base+4m30s ends a partial bucket holding minute 4.
    let series = |id: &str, values: [f64; 3]| {
        assert_eq!(out["results"][id]["status"], "Complete", "{out}");
        assert_eq!(
            out["results"][id]["points"],
            json!([[at(4), values[0]], [at(2), values[1]], [at(0), values[2]]]),
            "{id}: {out}"
        );
    };
    series("sum", [16120.0, 32000.0, 31680.0]);
    series("samplecount", [80.0, 160.0, 160.0]);
    series("maximum", [399.0, 398.0, 396.0]);
    assert_eq!(
        out["ascending"],
        json!([[at(0), 31680.0], [at(2), 32000.0], [at(4), 16120.0]])
    );
    assert_eq!(out["bad_period"]["Code"], "ValidationError", "{out}");
    assert_eq!(
        out["bad_period"]["Message"],
        "The parameter MetricDataQueries.member.1.MetricStat.Period must be a multiple of 60 or 1, 5, 10, 20, 30."
    );
    assert_eq!(
        out["metric_alarms"],
        json!([[
            format!("{function}-errors"),
            "ALARM",
            "boto3",
            60,
            5.0,
            [{"Name": "FunctionName", "Value": function}]
        ]])
    );
    assert_eq!(
        out["composite_alarms"],
        json!([[
            format!("{function}-any"),
            format!("ALARM({function}-errors)"),
            "INSUFFICIENT_DATA"
        ]])
    );
    assert_eq!(out["missing"]["Code"], "ResourceNotFound", "{out}");
}

/// boto3 as installed speaks awsJson1_0 to CloudWatch and gzips the 400 data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_puts_400_data_gzipped_and_reads_period_buckets() {
    let sandbox = start().await;
    let out = boto3(sandbox.url(), "default").await;
    assert_eq!(out["put"]["content_encoding"], "gzip", "{out}");
    for r in out["requests"].as_array().unwrap() {
        assert_eq!(r["content_type"], "application/x-amz-json-1.0", "{r}");
        assert!(
            r["target"]
                .as_str()
                .unwrap()
                .starts_with("GraniteServiceVersion20100801."),
            "{r}"
        );
    }
    check_boto3_results(&out, "boto3-default");
}

/// boto3 made to speak awsQuery (form bodies, XML answers) does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_speaks_aws_query_to_the_sandbox() {
    let sandbox = start().await;
    let out = boto3(sandbox.url(), "query").await;
    assert_eq!(out["put"]["content_encoding"], "gzip", "{out}");
    for r in out["requests"].as_array().unwrap() {
        assert_eq!(
            r["content_type"], "application/x-www-form-urlencoded; charset=utf-8",
            "{r}"
        );
        assert_eq!(r["target"], Value::Null, "{r}");
    }
    check_boto3_results(&out, "boto3-query");
}

const XMLNS: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";

/// One awsQuery call, unsigned (the sandbox checks no signature).
async fn form(sandbox: &Sandbox, params: &[(&str, String)]) -> (u16, String, String) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let r = reqwest::Client::new()
        .post(format!("{}/", sandbox.url()))
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, r.text().await.unwrap())
}

/// The awsQuery wire format itself: form in, AWS's XML out, errors as
/// `<ErrorResponse>` with the awsQuery code.
#[tokio::test]
async fn aws_query_requests_get_aws_xml() {
    let sandbox = start().await;
    let now = chrono::Utc::now().timestamp();
    let m = now - now % 60 - 300;
    let iso = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let s = |v: &str| v.to_string();
    let (status, content_type, body) = form(
        &sandbox,
        &[
            ("Action", s("PutMetricData")),
            ("Version", s("2010-08-01")),
            ("Namespace", s("AWS/Lambda")),
            ("MetricData.member.1.MetricName", s("Invocations")),
            (
                "MetricData.member.1.Dimensions.member.1.Name",
                s("FunctionName"),
            ),
            ("MetricData.member.1.Dimensions.member.1.Value", s("f")),
            ("MetricData.member.1.Timestamp", iso(m + 10)),
            ("MetricData.member.1.Value", s("1")),
            ("MetricData.member.2.MetricName", s("Invocations")),
            (
                "MetricData.member.2.Dimensions.member.1.Name",
                s("FunctionName"),
            ),
            ("MetricData.member.2.Dimensions.member.1.Value", s("f")),
            ("MetricData.member.2.Timestamp", iso(m + 50)),
            ("MetricData.member.2.Values.member.1", s("1")),
            ("MetricData.member.2.Values.member.2", s("0.5")),
            ("MetricData.member.2.Counts.member.1", s("1")),
            ("MetricData.member.2.Counts.member.2", s("2")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/xml");
    assert!(
        body.starts_with(&format!(
            "<PutMetricDataResponse xmlns=\"{XMLNS}\"><ResponseMetadata><RequestId>"
        )) && body.ends_with("</RequestId></ResponseMetadata></PutMetricDataResponse>"),
        "{body}"
    );

    let get = |period: &str| {
        vec![
            ("Action", s("GetMetricData")),
            ("Version", s("2010-08-01")),
            ("StartTime", iso(m)),
            ("EndTime", iso(m + 60)),
            ("MetricDataQueries.member.1.Id", s("q")),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Namespace",
                s("AWS/Lambda"),
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.MetricName",
                s("Invocations"),
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name",
                s("FunctionName"),
            ),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Value",
                s("f"),
            ),
            ("MetricDataQueries.member.1.MetricStat.Period", s(period)),
            ("MetricDataQueries.member.1.MetricStat.Stat", s("Sum")),
        ]
    };
    let (status, _, body) = form(&sandbox, &get("60")).await;
    assert_eq!(status, 200, "{body}");
    let expected = format!(
        "<GetMetricDataResponse xmlns=\"{XMLNS}\"><GetMetricDataResult><MetricDataResults><member><Id>q</Id><Label>q</Label><Timestamps><member>{}</member></Timestamps><Values><member>3.0</member></Values><StatusCode>Complete</StatusCode></member></MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>",
        iso(m)
    );
    assert!(body.starts_with(&expected), "{body}\n{expected}");

    let (status, _, body) = form(&sandbox, &get("45")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.starts_with(&format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>The parameter MetricDataQueries.member.1.MetricStat.Period must be a multiple of 60 or 1, 5, 10, 20, 30.</Message></Error><RequestId>"
        )) && body.ends_with("</RequestId></ErrorResponse>"),
        "{body}"
    );

    // Alarms: put, set, describe (the Dimensions' Value stays text).
    for params in [
        vec![
            ("Action", s("PutMetricAlarm")),
            ("AlarmName", s("errs")),
            ("Namespace", s("AWS/Lambda")),
            ("MetricName", s("Errors")),
            ("Dimensions.member.1.Name", s("FunctionName")),
            ("Dimensions.member.1.Value", s("42")),
            ("Statistic", s("Sum")),
            ("Period", s("60")),
            ("EvaluationPeriods", s("1")),
            ("Threshold", s("5")),
            ("ComparisonOperator", s("GreaterThanThreshold")),
        ],
        vec![
            ("Action", s("PutCompositeAlarm")),
            ("AlarmName", s("any")),
            ("AlarmRule", s("ALARM(errs)")),
            ("ActionsEnabled", s("false")),
            ("AlarmActions", s("")),
        ],
        vec![
            ("Action", s("SetAlarmState")),
            ("AlarmName", s("errs")),
            ("StateValue", s("ALARM")),
            ("StateReason", s("raw & <query>")),
        ],
    ] {
        let (status, _, body) = form(&sandbox, &params).await;
        assert_eq!(status, 200, "{params:?}: {body}");
    }
    let (status, _, body) = form(
        &sandbox,
        &[
            ("Action", s("DescribeAlarms")),
            ("AlarmTypes.member.1", s("MetricAlarm")),
            ("AlarmTypes.member.2", s("CompositeAlarm")),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for part in [
        format!("<DescribeAlarmsResponse xmlns=\"{XMLNS}\"><DescribeAlarmsResult><MetricAlarms><member>"),
        "<Period>60</Period>".into(),
        "<EvaluationPeriods>1</EvaluationPeriods>".into(),
        "<Threshold>5.0</Threshold>".into(),
        "<Dimensions><member><Name>FunctionName</Name><Value>42</Value></member></Dimensions>".into(),
        "<StateValue>ALARM</StateValue><StateReason>raw &amp; &lt;query&gt;</StateReason>".into(),
        "<CompositeAlarms><member><AlarmRule>ALARM(errs)</AlarmRule><ActionsEnabled>false</ActionsEnabled><AlarmActions/>".into(),
    ] {
        assert!(body.contains(&part), "{part} not in {body}");
    }

    let (status, _, body) = form(
        &sandbox,
        &[
            ("Action", s("SetAlarmState")),
            ("AlarmName", s("nope")),
            ("StateValue", s("OK")),
            ("StateReason", s("x")),
        ],
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.contains("<Error><Type>Sender</Type><Code>ResourceNotFound</Code>"),
        "{body}"
    );
    let (status, _, body) = form(&sandbox, &[("Action", s("ListMetrics"))]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidAction</Code>"), "{body}");
}

/// `bytes` gzipped by the system's gzip (an encoder independent of the
/// sandbox's decoder).
fn gzip(bytes: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Every protocol takes a gzip-encoded PutMetricData of 400 data (what
/// current SDKs send past 10 KB); the SDK reads each batch back.
#[tokio::test]
async fn every_protocol_takes_gzipped_bodies() {
    use ciborium::Value as Cbor;
    let sandbox = start().await;
    let now = chrono::Utc::now().timestamp();
    let m = now - now % 60 - 300;
    let t = |i: i64| m + i % 60;
    let http = reqwest::Client::new();
    let send = |path: &str, headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut req = http
            .post(format!("{}{path}", sandbox.url()))
            .header("content-encoding", "gzip")
            .body(gzip(body));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };

    // rpcv2Cbor.
    let text = |s: &str| Cbor::Text(s.to_string());
    let data = (0..400)
        .map(|i| {
            Cbor::Map(vec![
                (text("MetricName"), text("M")),
                (
                    text("Dimensions"),
                    Cbor::Array(vec![Cbor::Map(vec![
                        (text("Name"), text("FunctionName")),
                        (text("Value"), text("f")),
                    ])]),
                ),
                (
                    text("Timestamp"),
                    Cbor::Tag(1, Box::new(Cbor::Float(t(i) as f64))),
                ),
                (text("Value"), Cbor::Float(i as f64)),
            ])
        })
        .collect();
    let doc = Cbor::Map(vec![
        (text("Namespace"), text("Cbor")),
        (text("MetricData"), Cbor::Array(data)),
    ]);
    let mut body = Vec::new();
    ciborium::into_writer(&doc, &mut body).unwrap();
    assert!(body.len() > 10_240);
    let r = send(
        "/service/GraniteServiceVersion20100801/operation/PutMetricData",
        vec![
            ("smithy-protocol", "rpc-v2-cbor".into()),
            ("content-type", "application/cbor".into()),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // awsJson1_0.
    let data: Vec<Value> = (0..400)
        .map(|i| {
            json!({
                "MetricName": "M",
                "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
                "Timestamp": t(i),
                "Value": i,
            })
        })
        .collect();
    let body = serde_json::to_vec(&json!({"Namespace": "Json", "MetricData": data})).unwrap();
    let r = send(
        "/",
        vec![
            (
                "x-amz-target",
                "GraniteServiceVersion20100801.PutMetricData".into(),
            ),
            ("content-type", "application/x-amz-json-1.0".into()),
        ],
        body,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    // awsQuery.
    let mut params = vec![
        ("Action".to_string(), "PutMetricData".to_string()),
        ("Version".into(), "2010-08-01".into()),
        ("Namespace".into(), "Query".into()),
    ];
    for i in 0..400 {
        let p = format!("MetricData.member.{}", i + 1);
        params.push((format!("{p}.MetricName"), "M".into()));
        params.push((
            format!("{p}.Dimensions.member.1.Name"),
            "FunctionName".into(),
        ));
        params.push((format!("{p}.Dimensions.member.1.Value"), "f".into()));
        params.push((
            format!("{p}.Timestamp"),
            chrono::DateTime::from_timestamp(t(i), 0)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ));
        params.push((format!("{p}.Value"), i.to_string()));
    }
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let r = send(
        "/",
        vec![(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )],
        body.into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);

    let cw =
        aws_sdk_cloudwatch::Client::new(&rollgate::demo::sandbox_aws_config(&sandbox.url()).await);
    for namespace in ["Cbor", "Json", "Query"] {
        let out = cw
            .get_metric_data()
            .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(m))
            .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(m + 60))
            .metric_data_queries(
                aws_sdk_cloudwatch::types::MetricDataQuery::builder()
                    .id("q")
                    .metric_stat(
                        aws_sdk_cloudwatch::types::MetricStat::builder()
                            .metric(
                                aws_sdk_cloudwatch::types::Metric::builder()
                                    .namespace(namespace)
                                    .metric_name("M")
                                    .dimensions(
                                        aws_sdk_cloudwatch::types::Dimension::builder()
                                            .name("FunctionName")
                                            .value("f")
                                            .build(),
                                    )
                                    .build(),
                            )
                            .period(60)
                            .stat("Sum")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let r = &out.metric_data_results()[0];
        assert_eq!(r.values(), [79_800.0], "{namespace}: {r:?}");
        assert_eq!(r.timestamps()[0].secs(), m, "{namespace}");
    }
}

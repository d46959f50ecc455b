//! The sandbox's CloudWatch, judged by the official SDK (rpcv2Cbor): the
//! operations, and CloudWatch's documented behaviour (metric delay, storage
//! by the minute or second, Period rules and rounding, partial buckets,
//! coarser periods for old data, no datapoint for a zero count).

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat,
    ScanBy, StateValue, Statistic, StatusCode,
};
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

async fn client(sandbox: &Sandbox) -> Client {
    Client::new(&rollgate::demo::sandbox_aws_config(&sandbox.url()).await)
}

fn dim() -> Dimension {
    Dimension::builder().name("FunctionName").value("f").build()
}

fn query(id: &str, name: &str, stat: &str) -> MetricDataQuery {
    query_returning(id, name, stat, true)
}

fn query_returning(id: &str, name: &str, stat: &str, return_data: bool) -> MetricDataQuery {
    MetricDataQuery::builder()
        .return_data(return_data)
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/Lambda")
                        .metric_name(name)
                        .dimensions(dim())
                        .build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .build()
}

#[tokio::test]
async fn put_and_get_metric_data_with_statistics_and_math() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let now = chrono::Utc::now().timestamp();
    let minute_start = now - now % 60 - 60;
    let at = DateTime::from_secs(minute_start + 5);
    let durations: Vec<f64> = (1..=100).map(f64::from).collect();
    cw.put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Duration")
                .dimensions(dim())
                .timestamp(at)
                .set_values(Some(durations))
                .set_counts(Some(vec![1.0; 100]))
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Invocations")
                .dimensions(dim())
                .timestamp(at)
                .value(200.0)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Errors")
                .dimensions(dim())
                .timestamp(at)
                .value(3.0)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let out = cw
        .get_metric_data()
        .start_time(DateTime::from_secs(minute_start))
        .end_time(DateTime::from_secs(minute_start + 60))
        .metric_data_queries(query("avg", "Duration", "Average"))
        .metric_data_queries(query("p99", "Duration", "p99"))
        .metric_data_queries(query("n", "Duration", "SampleCount"))
        .metric_data_queries(query("max", "Duration", "Maximum"))
        .metric_data_queries(query_returning("inv", "Invocations", "Sum", false))
        .metric_data_queries(query_returning("err", "Errors", "Sum", false))
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("rate")
                .expression("100 * err / inv")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let value = |id: &str| {
        let r = out
            .metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .unwrap();
        assert_eq!(r.timestamps().len(), 1, "{r:?}");
        assert_eq!(r.timestamps()[0].secs(), minute_start);
        r.values()[0]
    };
    assert_eq!(value("avg"), 50.5);
    assert_eq!(value("p99"), 99.0);
    assert_eq!(value("n"), 100.0);
    assert_eq!(value("max"), 100.0);
    assert_eq!(value("rate"), 1.5);
    assert!(
        out.metric_data_results()
            .iter()
            .all(|r| r.id() != Some("inv")),
        "ReturnData=false is hidden"
    );
}

#[tokio::test]
async fn at_most_500_queries_and_pagination() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let now = chrono::Utc::now().timestamp();
    let base = now - now % 60 - 600;
    for i in 0..5 {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("Invocations")
                    .dimensions(dim())
                    .timestamp(DateTime::from_secs(base + i * 60 + 1))
                    .value(10.0)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let too_many = (0..501)
        .map(|i| query(&format!("q{i}"), "Invocations", "Sum"))
        .collect();
    let err = cw
        .get_metric_data()
        .start_time(DateTime::from_secs(base))
        .end_time(DateTime::from_secs(base + 600))
        .set_metric_data_queries(Some(too_many))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("500"), "{err:?}");

    let mut token = None;
    let mut points = 0;
    let mut calls = 0;
    loop {
        let out = cw
            .get_metric_data()
            .start_time(DateTime::from_secs(base))
            .end_time(DateTime::from_secs(base + 600))
            .metric_data_queries(query("q", "Invocations", "Sum"))
            .max_datapoints(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        calls += 1;
        points += out
            .metric_data_results()
            .iter()
            .map(|r| r.values().len())
            .sum::<usize>();
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!((points, calls), (5, 3));
}

#[tokio::test]
async fn alarms_put_describe_and_set_state() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    cw.put_metric_alarm()
        .alarm_name("dixon-errors")
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .dimensions(dim())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let d = cw
        .describe_alarms()
        .alarm_names("dixon-errors")
        .send()
        .await
        .unwrap();
    let alarm = &d.metric_alarms()[0];
    assert_eq!(alarm.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(alarm.threshold(), Some(5.0));
    assert_eq!(alarm.period(), Some(60));
    cw.set_alarm_state()
        .alarm_name("dixon-errors")
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let in_alarm = cw
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(in_alarm.metric_alarms().len(), 1);
    assert_eq!(in_alarm.metric_alarms()[0].state_reason(), Some("test"));
    let missing = cw
        .set_alarm_state()
        .alarm_name("nope")
        .state_value(StateValue::Ok)
        .state_reason("x")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(missing.is_resource_not_found(), "{missing:?}");
}

/// The simulator's metrics follow the function's flags, and a bad flag shows.
#[tokio::test]
async fn simulated_traffic_follows_the_flags() {
    let sandbox = start().await;
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let cw = Client::new(&aws);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sandbox/traffic", sandbox.url()))
        .json(&serde_json::json!({ "bad_flags": ["USE_OPTIMIZED_PROMPTS"] }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let window = |q: &str, name: &str, ns: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(q)
            .return_data(true)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace(ns)
                            .metric_name(name)
                            .dimensions(
                                Dimension::builder()
                                    .name("FunctionName")
                                    .value("dixon-smart-repair-handler")
                                    .build(),
                            )
                            .build(),
                    )
                    .period(3600)
                    .stat(stat)
                    .build(),
            )
            .build()
    };
    let read = |start: i64| {
        let cw = cw.clone();
        async move {
            let out = cw
                .get_metric_data()
                .start_time(DateTime::from_secs(start))
                .end_time(DateTime::from_secs(start + 3600))
                .metric_data_queries(window("inv", "Invocations", "AWS/Lambda", "Sum"))
                .metric_data_queries(window("err", "Errors", "AWS/Lambda", "Sum"))
                .metric_data_queries(window("dur", "Duration", "AWS/Lambda", "Average"))
                .metric_data_queries(window(
                    "tok",
                    "TokensPerRequest",
                    "DixonSmartRepair",
                    "Average",
                ))
                .send()
                .await
                .unwrap();
            let v = |id: &str| {
                out.metric_data_results()
                    .iter()
                    .find(|r| r.id() == Some(id))
                    .unwrap()
                    .values()[0]
            };
            (100.0 * v("err") / v("inv"), v("dur"), v("tok"))
        }
    };
    let hour = chrono::Utc::now().timestamp() - 7200;
    for i in 0..30 {
        sandbox.emit_traffic_at(chrono::DateTime::from_timestamp(hour + i * 10, 0).unwrap());
    }
    let (base_err, base_dur, base_tok) = read(hour).await;
    assert!(base_err < 3.0, "{base_err}");

    // Prompts on (and marked bad): tokens fall, errors and time rise.
    let lambda = aws_sdk_lambda::Client::new(&aws);
    let mut env = sandbox.function_env("dixon-smart-repair-handler").unwrap();
    env.insert("USE_OPTIMIZED_PROMPTS".into(), "true".into());
    lambda
        .update_function_configuration()
        .function_name("dixon-smart-repair-handler")
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .set_variables(Some(env.into_iter().collect()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let later = hour + 3600;
    for i in 0..30 {
        sandbox.emit_traffic_at(chrono::DateTime::from_timestamp(later + i * 10, 0).unwrap());
    }
    let (err, dur, tok) = read(later).await;
    assert!(err > base_err + 5.0, "{err} vs {base_err}");
    assert!(dur > base_dur, "{dur} vs {base_dur}");
    assert!(tok < base_tok * 0.2, "{tok} vs {base_tok}");
}

/// CloudWatch errors carry their awsQuery code in `x-amzn-query-error`, as
/// AWS's do; the SDK reads the code from there and types the error by it.
#[tokio::test]
async fn errors_carry_their_query_compatible_codes() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let err = cw
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Duration")
                .set_values(Some(vec![1.0, 2.0]))
                .set_counts(Some(vec![1.0]))
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    assert_eq!(err.code(), Some("InvalidParameterValue"));
}

async fn put_alarm(cw: &Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .dimensions(dim())
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
}

/// Names of the alarms on one DescribeAlarms page, metric then composite.
fn page_names(
    out: &aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput,
) -> Vec<String> {
    out.metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .chain(out.composite_alarms().iter().filter_map(|a| a.alarm_name()))
        .map(str::to_string)
        .collect()
}

/// DescribeAlarms pages as CloudWatch's do: 50 by default, at most 100 a
/// page, at most 100 names a request, NextToken to follow.
#[tokio::test]
async fn describe_alarms_comes_in_pages() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let names: Vec<String> = (0..120).map(|i| format!("page-{i:03}")).collect();
    for name in &names {
        put_alarm(&cw, name).await;
    }
    put_alarm(&cw, "other").await;

    // 120 by prefix, default MaxRecords: 50 + 50 + 20 following NextToken.
    let mut token = None;
    let mut pages = Vec::new();
    loop {
        let out = cw
            .describe_alarms()
            .alarm_name_prefix("page-")
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages.push(page_names(&out));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 20]);
    assert_eq!(pages.concat(), names, "each once, in name order");

    // The SDK's paginator follows the tokens too.
    let pages: Vec<_> = cw
        .describe_alarms()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let all: Vec<String> = pages.iter().flat_map(page_names).collect();
    assert_eq!((pages.len(), all.len()), (3, 121));

    // At most 100 names in one request, as AWS: 120 is a ValidationError.
    let err = cw
        .describe_alarms()
        .set_alarm_names(Some(names.clone()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
    assert!(
        err.message()
            .unwrap()
            .ends_with("Member must have length less than or equal to 100"),
        "{err:?}"
    );
    // 100 named: two pages of 50.
    let first = cw
        .describe_alarms()
        .set_alarm_names(Some(names[..100].to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(first.metric_alarms().len(), 50);
    let second = cw
        .describe_alarms()
        .set_alarm_names(Some(names[..100].to_vec()))
        .set_next_token(first.next_token().map(str::to_string))
        .send()
        .await
        .unwrap();
    assert_eq!(second.metric_alarms().len(), 50);
    assert_eq!(second.next_token(), None);

    // MaxRecords 1..=100; a token that is not one is InvalidNextToken.
    let out = cw.describe_alarms().max_records(100).send().await.unwrap();
    assert_eq!(out.metric_alarms().len(), 100);
    for bad in [0, 101] {
        let err = cw
            .describe_alarms()
            .max_records(bad)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(err.code(), Some("ValidationError"), "{bad}: {err:?}");
        assert!(err.message().unwrap().contains("'maxRecords'"), "{err:?}");
    }
    let err = cw
        .describe_alarms()
        .next_token("not-a-token")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_next_token(), "{err:?}");
    let err = cw
        .describe_alarms()
        .alarm_names("page-000")
        .alarm_name_prefix("page-")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterCombination"), "{err:?}");
}

/// Composite alarms show only when asked for, page together with metric
/// alarms, and take SetAlarmState like them.
#[tokio::test]
async fn composite_alarms_only_when_asked_for() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    for name in ["m1", "m2", "m3"] {
        put_alarm(&cw, name).await;
    }
    for name in ["c1", "c2"] {
        cw.put_composite_alarm()
            .alarm_name(name)
            .alarm_rule("ALARM(m1) OR ALARM(m2)")
            .alarm_description("either")
            .send()
            .await
            .unwrap();
    }

    let default = cw.describe_alarms().send().await.unwrap();
    assert_eq!(page_names(&default), ["m1", "m2", "m3"]);
    assert!(default.composite_alarms().is_empty());

    let only = cw
        .describe_alarms()
        .alarm_types(AlarmType::CompositeAlarm)
        .send()
        .await
        .unwrap();
    assert!(only.metric_alarms().is_empty());
    assert_eq!(page_names(&only), ["c1", "c2"]);
    let c1 = &only.composite_alarms()[0];
    assert_eq!(c1.alarm_rule(), Some("ALARM(m1) OR ALARM(m2)"));
    assert_eq!(c1.alarm_description(), Some("either"));
    assert_eq!(c1.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(c1.actions_enabled(), Some(true));
    assert!(c1.alarm_arn().unwrap().ends_with(":alarm:c1"));

    // Both types, two a page: metric alarms first, across the pages.
    let mut token = None;
    let mut pages = Vec::new();
    loop {
        let out = cw
            .describe_alarms()
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .max_records(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        pages.push(page_names(&out));
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, [vec!["m1", "m2"], vec!["m3", "c1"], vec!["c2"]]);

    cw.set_alarm_state()
        .alarm_name("c2")
        .state_value(StateValue::Alarm)
        .state_reason("test")
        .send()
        .await
        .unwrap();
    let in_alarm = cw
        .describe_alarms()
        .alarm_types(AlarmType::CompositeAlarm)
        .state_value(StateValue::Alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(page_names(&in_alarm), ["c2"]);
    assert_eq!(in_alarm.composite_alarms()[0].state_reason(), Some("test"));

    // One namespace of names; a composite alarm needs its rule.
    let err = cw
        .put_composite_alarm()
        .alarm_name("m1")
        .alarm_rule("ALARM(m2)")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
    let err = cw
        .put_composite_alarm()
        .alarm_name("c3")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("MissingParameter"), "{err:?}");
    let err = cw
        .describe_alarms()
        .alarm_types(AlarmType::from("Alarm"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
}

/// Puts one datum of `name` (dimension FunctionName=f) at `at` epoch seconds.
async fn put_at(cw: &Client, name: &str, at: i64, value: f64, resolution: Option<i32>) {
    cw.put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(dim())
                .timestamp(DateTime::from_secs(at))
                .value(value)
                .set_storage_resolution(resolution)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// One query of `name` (FunctionName=f) with that period and statistic.
fn query_period(id: &str, name: &str, stat: &str, period: i32) -> MetricDataQuery {
    function_query(id, "f", name, stat, period)
}

/// One query of `function`'s AWS/Lambda metric `name`.
fn function_query(
    id: &str,
    function: &str,
    name: &str,
    stat: &str,
    period: i32,
) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/Lambda")
                        .metric_name(name)
                        .dimensions(
                            Dimension::builder()
                                .name("FunctionName")
                                .value(function)
                                .build(),
                        )
                        .build(),
                )
                .period(period)
                .stat(stat)
                .build(),
        )
        .build()
}

/// (timestamp, value) pairs of one query over [start, end), as returned.
async fn points(
    cw: &Client,
    q: MetricDataQuery,
    start: i64,
    end: i64,
    scan_by: Option<ScanBy>,
) -> Vec<(i64, f64)> {
    let out = cw
        .get_metric_data()
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .metric_data_queries(q)
        .set_scan_by(scan_by)
        .send()
        .await
        .unwrap();
    let r = &out.metric_data_results()[0];
    assert_eq!(r.status_code(), Some(&StatusCode::Complete), "{r:?}");
    r.timestamps()
        .iter()
        .map(|t| t.secs())
        .zip(r.values().iter().copied())
        .collect()
}

/// The start of the minute `minutes` minutes before the current one.
fn minute_ago(minutes: i64) -> i64 {
    let now = chrono::Utc::now().timestamp();
    now - now % 60 - minutes * 60
}

/// A datum is invisible to GetMetricData until the metric delay has passed
/// since it was put, however old its timestamp; then it shows.
#[tokio::test]
async fn a_datum_shows_only_after_the_metric_delay() {
    let delay = std::time::Duration::from_secs(2);
    let config = SandboxConfig {
        metric_delay: delay,
        ..SandboxConfig::default()
    };
    assert_eq!(
        SandboxConfig::default().metric_delay,
        std::time::Duration::from_secs(60),
        "realistic by default"
    );
    let sandbox = Sandbox::start(0, config).await.unwrap();
    let cw = client(&sandbox).await;
    let m = minute_ago(5);
    let before = std::time::Instant::now();
    put_at(&cw, "Invocations", m + 10, 7.0, None).await;
    let put_done = std::time::Instant::now();
    let read = || points(&cw, query("q", "Invocations", "Sum"), m, m + 60, None);
    let early = read().await;
    if before.elapsed() < delay {
        assert_eq!(early, [], "invisible during the delay");
    }
    tokio::time::sleep(
        (put_done + delay + std::time::Duration::from_millis(100)) - std::time::Instant::now(),
    )
    .await;
    assert_eq!(read().await, [(m, 7.0)], "visible after it");

    // Changing the delay applies to every read from then on, in process
    // or over HTTP (a setting: a reset keeps it).
    sandbox.set_metric_delay(std::time::Duration::from_secs(3600));
    assert_eq!(read().await, []);
    sandbox.set_metric_delay(std::time::Duration::ZERO);
    assert_eq!(read().await, [(m, 7.0)]);
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}/_sandbox/{path}", sandbox.url());
    let r = http
        .post(admin("faults"))
        .json(&serde_json::json!({ "metric_delay_ms": 3_600_000 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    http.post(admin("reset")).send().await.unwrap();
    assert_eq!(read().await, []);
    let state: serde_json::Value = http
        .get(admin("state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["metric_delay_ms"], 3_600_000);
}

/// Period is 1, 5, 10, 20, 30 or a multiple of 60; anything else refuses
/// the whole call, naming the query.
#[tokio::test]
async fn periods_must_be_ones_cloudwatch_allows() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let m = minute_ago(10);
    for period in [1, 5, 10, 20, 30, 60, 120, 300, 3600] {
        cw.get_metric_data()
            .start_time(DateTime::from_secs(m))
            .end_time(DateTime::from_secs(m + 600))
            .metric_data_queries(query_period("q", "Invocations", "Sum", period))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{period}: {e:?}"));
    }
    for period in [0, 2, 15, 45, 90, 61, 3599] {
        let err = cw
            .get_metric_data()
            .start_time(DateTime::from_secs(m))
            .end_time(DateTime::from_secs(m + 600))
            .metric_data_queries(query_period("ok", "Invocations", "Sum", 60))
            .metric_data_queries(query_period("bad", "Invocations", "Sum", period))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert_eq!(err.code(), Some("ValidationError"), "{period}: {err:?}");
        assert_eq!(
            err.message(),
            Some(
                "The parameter MetricDataQueries.member.2.MetricStat.Period must be a multiple of 60 or 1, 5, 10, 20, 30."
            ),
            "{period}"
        );
    }
}

/// StartTime is rounded down (to the minute here), buckets of Period run
/// from there, the last one ends at EndTime and may be partial; each
/// datapoint is stamped at its bucket's start, newest first unless ScanBy
/// asks for ascending. Standard-resolution data count from their minute.
#[tokio::test]
async fn buckets_start_at_the_rounded_start_and_the_last_is_partial() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let m0 = minute_ago(10);
    for (i, v) in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0].into_iter().enumerate() {
        put_at(&cw, "Invocations", m0 + i as i64 * 60 + 40, v, None).await;
    }
    // StartTime m0+25s → m0; EndTime m0+4m30s: [m0, +2m) [+2m, +4m) [+4m, +4m30s).
    let q = || query_period("q", "Invocations", "Sum", 120);
    let (start, end) = (m0 + 25, m0 + 270);
    assert_eq!(
        points(&cw, q(), start, end, None).await,
        [(m0 + 240, 16.0), (m0 + 120, 12.0), (m0, 3.0)],
        "newest first; the datum at +4m40s is stored at +4m, inside the partial bucket"
    );
    assert_eq!(
        points(&cw, q(), start, end, Some(ScanBy::TimestampDescending)).await,
        [(m0 + 240, 16.0), (m0 + 120, 12.0), (m0, 3.0)]
    );
    assert_eq!(
        points(&cw, q(), start, end, Some(ScanBy::TimestampAscending)).await,
        [(m0, 3.0), (m0 + 120, 12.0), (m0 + 240, 16.0)]
    );
    // Periods under a minute round StartTime to a multiple of the period:
    // m0+25s → m0+20s with 10 s; the minute's datum (at m0+1m) in its bucket.
    assert_eq!(
        points(
            &cw,
            query_period("q", "Invocations", "Sum", 10),
            m0 + 25,
            m0 + 125,
            Some(ScanBy::TimestampAscending)
        )
        .await,
        [(m0 + 60, 2.0), (m0 + 120, 4.0)]
    );
}

/// High-resolution data (StorageResolution 1) keep their second; standard
/// ones are stored at their minute; percentiles still see every raw value.
#[tokio::test]
async fn high_resolution_data_keep_their_second() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let m0 = minute_ago(5);
    for (offset, v) in [(5, 1.0), (15, 2.0), (25, 3.0), (27, 4.0)] {
        put_at(&cw, "HighRes", m0 + offset, v, Some(1)).await;
    }
    put_at(&cw, "Standard", m0 + 35, 10.0, Some(60)).await;
    put_at(&cw, "Standard", m0 + 45, 20.0, None).await;
    let asc = Some(ScanBy::TimestampAscending);
    assert_eq!(
        points(
            &cw,
            query_period("q", "HighRes", "Sum", 10),
            m0,
            m0 + 60,
            asc.clone()
        )
        .await,
        [(m0, 1.0), (m0 + 10, 2.0), (m0 + 20, 7.0)]
    );
    assert_eq!(
        points(
            &cw,
            query_period("q", "HighRes", "Sum", 1),
            m0,
            m0 + 60,
            asc.clone()
        )
        .await,
        [
            (m0 + 5, 1.0),
            (m0 + 15, 2.0),
            (m0 + 25, 3.0),
            (m0 + 27, 4.0)
        ]
    );
    assert_eq!(
        points(
            &cw,
            query_period("q", "Standard", "Sum", 10),
            m0,
            m0 + 60,
            asc.clone()
        )
        .await,
        [(m0, 30.0)],
        "stored at the minute"
    );

    // Two data in one minute: the percentile is over all their raw values.
    for (offset, range) in [(10, 1..=50), (50, 51..=100)] {
        cw.put_metric_data()
            .namespace("AWS/Lambda")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("Duration")
                    .dimensions(dim())
                    .timestamp(DateTime::from_secs(m0 + offset))
                    .set_values(Some(range.map(f64::from).collect()))
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    assert_eq!(
        points(
            &cw,
            query_period("q", "Duration", "p90", 60),
            m0,
            m0 + 60,
            None
        )
        .await,
        [(m0, 90.0)]
    );

    let err = cw
        .put_metric_data()
        .namespace("AWS/Lambda")
        .metric_data(
            MetricDatum::builder()
                .metric_name("HighRes")
                .value(1.0)
                .storage_resolution(30)
                .build(),
        )
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidParameterValue"), "{err:?}");
}

/// Older data are kept at coarser periods only: a StartTime more than 3 h
/// ago needs a multiple of 60 s, more than 15 days 300 s, more than 63 days
/// 3,600 s, else the query comes back Complete and empty; StartTime is
/// rounded down to 5 minutes past 15 days and to the hour past 63. (The old
/// data are the simulator's, as Lambda published them then: PutMetricData
/// takes no timestamps that old.)
#[tokio::test]
async fn old_data_need_coarser_periods() {
    let sandbox = start().await;
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let cw = Client::new(&aws);
    let q = |period| {
        function_query(
            "q",
            "dixon-smart-repair-handler",
            "Invocations",
            "Sum",
            period,
        )
    };
    let emit = |at: i64| sandbox.emit_traffic_at(chrono::DateTime::from_timestamp(at, 0).unwrap());
    let day = 86_400;
    // 4 hours ago: 60 s and up.
    let m = minute_ago(240);
    emit(m + 5);
    assert_eq!(points(&cw, q(30), m, m + 60, None).await, []);
    assert_eq!(points(&cw, q(60), m, m + 60, None).await, [(m, 200.0)]);

    // 20 days ago: 300 s and up, StartTime rounded down to 5 minutes.
    let now = chrono::Utc::now().timestamp();
    let t = now - now % 300 - 20 * day;
    emit(t + 90);
    assert_eq!(points(&cw, q(60), t + 120, t + 600, None).await, []);
    assert_eq!(points(&cw, q(120), t + 120, t + 600, None).await, []);
    assert_eq!(
        points(&cw, q(300), t + 120, t + 600, None).await,
        [(t, 200.0)]
    );

    // 70 days ago: 3,600 s and up, StartTime rounded down to the hour.
    let h = now - now % 3600 - 70 * day;
    emit(h + 1800);
    assert_eq!(points(&cw, q(300), h + 1500, h + 3600, None).await, []);
    assert_eq!(
        points(&cw, q(3600), h + 1500, h + 3600, None).await,
        [(h, 200.0)]
    );
}

/// Like Lambda, the simulator publishes no datapoint for a count of zero:
/// nothing for a function without invocations, no Errors datum for a minute
/// without errors, never a Throttles datum (it never throttles).
#[tokio::test]
async fn zero_counts_are_no_datapoints() {
    let sandbox = start().await;
    let aws = rollgate::demo::sandbox_aws_config(&sandbox.url()).await;
    rollgate::demo::create_demo_function(&aws).await.unwrap();
    let cw = Client::new(&aws);
    let read = |name: &'static str, start: i64| {
        let cw = cw.clone();
        async move {
            let q = MetricDataQuery::builder()
                .id("q")
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace("AWS/Lambda")
                                .metric_name(name)
                                .dimensions(
                                    Dimension::builder()
                                        .name("FunctionName")
                                        .value("dixon-smart-repair-handler")
                                        .build(),
                                )
                                .build(),
                        )
                        .period(60)
                        .stat("Sum")
                        .build(),
                )
                .build();
            points(&cw, q, start, start + 1800, None).await
        }
    };
    let at = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).unwrap();
    let idle = minute_ago(60);
    sandbox.set_traffic(rollgate::sandbox::traffic::TrafficSettings {
        invocations_per_tick: 0,
        ..Default::default()
    });
    for i in 0..10 {
        sandbox.emit_traffic_at(at(idle + i * 60));
    }
    for name in ["Invocations", "Errors", "Throttles", "Duration"] {
        assert_eq!(read(name, idle).await, [], "{name}");
    }
    let (calls, _) = sandbox.get_metric_data_stats();
    assert_eq!(calls, 4);

    // One invocation a minute at a 1 % error rate: most minutes have none.
    let busy = minute_ago(30);
    sandbox.set_traffic(rollgate::sandbox::traffic::TrafficSettings {
        invocations_per_tick: 1,
        ..Default::default()
    });
    for i in 0..20 {
        sandbox.emit_traffic_at(at(busy + i * 60));
    }
    let invocations = read("Invocations", busy).await;
    assert_eq!(invocations.len(), 20);
    assert!(invocations.iter().all(|(_, v)| *v == 1.0));
    let errors = read("Errors", busy).await;
    assert!(errors.len() < 20, "{errors:?}");
    assert!(errors.iter().all(|(_, v)| *v > 0.0), "{errors:?}");
    assert_eq!(read("Throttles", busy).await, []);
}

fn lambda_metric(name: &str) -> MetricStat {
    MetricStat::builder()
        .metric(
            Metric::builder()
                .namespace("AWS/Lambda")
                .metric_name(name)
                .dimensions(dim())
                .build(),
        )
        .period(60)
        .stat("Sum")
        .build()
}

/// rollgate's backstop: an error-rate alarm (metric math) paging an SNS topic.
fn error_rate_alarm(
    cw: &Client,
    name: &str,
) -> aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder {
    cw.put_metric_alarm()
        .alarm_name(name)
        .alarm_description("rollgate backstop: error rate of f")
        .actions_enabled(true)
        .alarm_actions("arn:aws:sns:us-east-1:123456789012:pager")
        .ok_actions("arn:aws:sns:us-east-1:123456789012:pager")
        .metrics(
            MetricDataQuery::builder()
                .id("rate")
                .expression("100*errors/invocations")
                .label("error rate (%)")
                .return_data(true)
                .build(),
        )
        .metrics(
            MetricDataQuery::builder()
                .id("errors")
                .metric_stat(lambda_metric("Errors"))
                .return_data(false)
                .build(),
        )
        .metrics(
            MetricDataQuery::builder()
                .id("invocations")
                .metric_stat(lambda_metric("Invocations"))
                .return_data(false)
                .build(),
        )
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .treat_missing_data("notBreaching")
}

#[tokio::test]
async fn metric_math_alarms_with_tags_are_described_listed_and_deleted() {
    use aws_sdk_cloudwatch::types::Tag;
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    error_rate_alarm(&cw, "rollgate-backstop-f")
        .tags(tag("rollgate:rollout", "r-1"))
        .tags(tag("owner", "dixon"))
        .send()
        .await
        .unwrap();
    put_alarm(&cw, "other").await;

    let d = cw
        .describe_alarms()
        .alarm_name_prefix("rollgate-backstop-")
        .send()
        .await
        .unwrap();
    assert_eq!(d.metric_alarms().len(), 1, "{d:?}");
    let a = &d.metric_alarms()[0];
    let arn = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:rollgate-backstop-f";
    assert_eq!(a.alarm_name(), Some("rollgate-backstop-f"));
    assert_eq!(a.alarm_arn(), Some(arn));
    assert_eq!(
        a.alarm_description(),
        Some("rollgate backstop: error rate of f")
    );
    assert_eq!(a.actions_enabled(), Some(true));
    assert_eq!(
        a.alarm_actions(),
        ["arn:aws:sns:us-east-1:123456789012:pager"]
    );
    assert_eq!(a.ok_actions(), ["arn:aws:sns:us-east-1:123456789012:pager"]);
    assert!(a.insufficient_data_actions().is_empty());
    assert_eq!(a.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(a.threshold(), Some(5.0));
    assert_eq!(
        a.comparison_operator(),
        Some(&ComparisonOperator::GreaterThanThreshold)
    );
    assert_eq!(a.evaluation_periods(), Some(3));
    assert_eq!(a.datapoints_to_alarm(), Some(2));
    assert_eq!(a.treat_missing_data(), Some("notBreaching"));
    assert_eq!(
        a.metric_name(),
        None,
        "a metric-math alarm has no metric of its own"
    );
    assert!(a.state_transitioned_timestamp().is_some());
    let metrics = a.metrics();
    assert_eq!(metrics.len(), 3);
    assert_eq!(metrics[0].id(), Some("rate"));
    assert_eq!(metrics[0].expression(), Some("100*errors/invocations"));
    assert_eq!(metrics[0].label(), Some("error rate (%)"));
    assert_eq!(metrics[0].return_data(), Some(true));
    assert_eq!(metrics[1].return_data(), Some(false));
    let stat = metrics[2].metric_stat().unwrap();
    assert_eq!(stat.period(), Some(60));
    assert_eq!(stat.stat(), Some("Sum"));
    assert_eq!(stat.metric().unwrap().metric_name(), Some("Invocations"));
    assert_eq!(stat.metric().unwrap().dimensions(), [dim()]);

    let tags =
        |out: aws_sdk_cloudwatch::operation::list_tags_for_resource::ListTagsForResourceOutput| {
            out.tags()
                .iter()
                .map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string()))
                .collect::<Vec<_>>()
        };
    let listed = cw
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(listed),
        [
            ("owner".to_string(), "dixon".to_string()),
            ("rollgate:rollout".to_string(), "r-1".to_string())
        ]
    );
    // An update keeps the state and ignores Tags, as AWS does; TagResource
    // and UntagResource change them.
    cw.set_alarm_state()
        .alarm_name("rollgate-backstop-f")
        .state_value(StateValue::Ok)
        .state_reason("quiet")
        .send()
        .await
        .unwrap();
    error_rate_alarm(&cw, "rollgate-backstop-f")
        .threshold(2.0)
        .tags(tag("ignored", "yes"))
        .send()
        .await
        .unwrap();
    cw.tag_resource()
        .resource_arn(arn)
        .tags(tag("owner", "platform"))
        .send()
        .await
        .unwrap();
    cw.untag_resource()
        .resource_arn(arn)
        .tag_keys("rollgate:rollout")
        .send()
        .await
        .unwrap();
    let view = sandbox
        .alarms()
        .into_iter()
        .find(|a| a.name == "rollgate-backstop-f")
        .unwrap();
    assert_eq!(view.arn, arn);
    assert_eq!(view.state, "OK");
    assert_eq!(view.threshold, Some(2.0));
    assert_eq!(
        view.tags.into_iter().collect::<Vec<_>>(),
        [("owner".to_string(), "platform".to_string())]
    );
    assert_eq!(
        view.alarm_actions,
        ["arn:aws:sns:us-east-1:123456789012:pager"]
    );
    assert_eq!(view.definition["Metrics"][0]["Id"], "rate");

    // DeleteAlarms ignores names of no alarm and deletes the others.
    cw.delete_alarms()
        .alarm_names("rollgate-backstop-f")
        .alarm_names("never-was")
        .send()
        .await
        .unwrap();
    let d = cw.describe_alarms().send().await.unwrap();
    assert_eq!(page_names(&d), ["other"]);
    let gone = cw
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(gone.is_resource_not_found_exception(), "{gone:?}");
    let names: Vec<String> = (0..101).map(|i| format!("a{i}")).collect();
    let err = cw
        .delete_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationError"));
}

#[tokio::test]
async fn put_metric_alarm_is_validated_as_cloudwatch_does() {
    let sandbox = start().await;
    let cw = client(&sandbox).await;
    let single = || {
        cw.put_metric_alarm()
            .alarm_name("a")
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .dimensions(dim())
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(5.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
    };
    let code_of = |r: Result<_, aws_sdk_cloudwatch::error::SdkError<_, _>>| {
        let e: aws_sdk_cloudwatch::operation::put_metric_alarm::PutMetricAlarmError = r
            .map(|_: aws_sdk_cloudwatch::operation::put_metric_alarm::PutMetricAlarmOutput| ())
            .unwrap_err()
            .into_service_error();
        (
            e.code().unwrap_or_default().to_string(),
            e.message().unwrap_or_default().to_string(),
        )
    };
    let cases = [
        (
            single().alarm_name("x".repeat(256)).send().await,
            "ValidationError",
            "at 'alarmName' failed to satisfy constraint",
        ),
        (
            single()
                .comparison_operator(ComparisonOperator::from("Bigger"))
                .send()
                .await,
            "ValidationError",
            "Member must satisfy enum value set",
        ),
        (
            single().evaluation_periods(0).send().await,
            "ValidationError",
            "at 'evaluationPeriods'",
        ),
        (
            single().datapoints_to_alarm(2).send().await,
            "ValidationError",
            "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
        ),
        (
            single().period(45).send().await,
            "ValidationError",
            "must be 10, 20, 30 or a multiple of 60",
        ),
        (
            single().extended_statistic("p99").send().await,
            "InvalidParameterCombination",
            "Statistic and ExtendedStatistic",
        ),
        (
            error_rate_alarm(&cw, "m")
                .metric_name("Errors")
                .send()
                .await,
            "ValidationError",
            "MetricName should not be set if list of Metrics is set.",
        ),
        (
            error_rate_alarm(&cw, "m")
                .metrics(
                    MetricDataQuery::builder()
                        .id("again")
                        .expression("errors")
                        .return_data(true)
                        .build(),
                )
                .send()
                .await,
            "ValidationError",
            "Exactly one element of the metrics list should return data.",
        ),
        (
            cw.put_metric_alarm()
                .alarm_name("none")
                .evaluation_periods(1)
                .threshold(1.0)
                .comparison_operator(ComparisonOperator::GreaterThanThreshold)
                .send()
                .await,
            "ValidationError",
            "MetricName must not be null",
        ),
    ];
    for (result, code, message) in cases {
        let (c, m) = code_of(result);
        assert_eq!(c, code, "{m}");
        assert!(m.contains(message), "{m:?} should contain {message:?}");
    }
    single().period(10).send().await.unwrap();
    assert!(
        sandbox.alarms().iter().all(|a| a.name == "a"),
        "nothing refused was stored"
    );
}

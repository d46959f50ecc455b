//! CloudWatch, for exactly the operations rollgate uses: PutMetricData,
//! GetMetricData (Sum, Average, SampleCount, Minimum, Maximum, pNN; simple
//! metric math; at most 500 queries; pagination by data points),
//! PutMetricAlarm, PutCompositeAlarm, DescribeAlarms (`AlarmTypes`,
//! `AlarmNames`, `AlarmNamePrefix`, `StateValue`, `MaxRecords`/`NextToken`
//! pages), SetAlarmState, DeleteAlarms and the alarms' tags (see
//! `alarms.rs`, and `validate.rs` for PutMetricAlarm's checks).
//!
//! Three protocols, as CloudWatch accepts them, all answering from the same
//! code: `rpcv2Cbor`, the current SDKs' (`POST
//! /service/GraniteServiceVersion20100801/operation/<Op>`, CBOR bodies,
//! `smithy-protocol: rpc-v2-cbor`); `awsJson1_0` (`POST /` with
//! `X-Amz-Target: GraniteServiceVersion20100801.<Op>`, what botocore and
//! the AWS CLI speak); and `awsQuery` (`POST /`, a form-encoded body with
//! `Action=<Op>`, XML answers and `<ErrorResponse>` errors). Any of them may
//! come gzip-encoded (`Content-Encoding: gzip`), as current SDKs send
//! PutMetricData bodies of 10 KB and more.
//!
//! What CloudWatch does, as AWS documents it, is modelled:
//!
//! - The metric delay: a datum is visible to GetMetricData only
//!   `metric_delay` (`SandboxConfig`, default 60 s) after it was put, by the
//!   sandbox's clock, whatever its timestamp.
//! - Storage resolution: standard data (`StorageResolution` absent or 60)
//!   are stored at their minute (the timestamp truncated), high-resolution
//!   data (1) at their second; raw values are kept, so percentiles see
//!   every value. Other resolutions are refused.
//! - `Period` is 1, 5, 10, 20, 30 or a multiple of 60, else the call is a
//!   `ValidationError` naming the query. A StartTime more than 3 hours ago
//!   needs a multiple of 60, more than 15 days of 300, more than 63 days of
//!   3,600, else that query comes back `Complete` and empty.
//! - StartTime is rounded down: to the minute up to 15 days ago, to 5
//!   minutes up to 63 days, to the hour beyond (to a multiple of the period
//!   for periods under a minute). Buckets of `Period` run from there; the
//!   last ends at EndTime and may be partial. A datapoint is stamped at its
//!   bucket's start, newest first (`ScanBy` `TimestampDescending`, the
//!   default, or `TimestampAscending`). A bucket without data has no
//!   datapoint.
//!
//! The traffic simulator (`traffic.rs`) publishes no datum for a count of
//! zero, as Lambda does.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ciborium::Value as Cbor;
use serde_json::Value as Json;

use super::{Shared, query};

mod alarms;
mod math;
mod validate;

pub use alarms::AlarmView;
use alarms::{Alarm, AlarmType};

pub(super) const MAX_QUERIES: usize = 500;
const DEFAULT_MAX_DATAPOINTS: usize = 100_800;

/// A metric's identity: namespace, name, sorted dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct MetricKey {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// How finely CloudWatch keeps a metric's timestamps (`StorageResolution`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    /// 60 (or absent): one-minute granularity.
    Standard,
    /// 1: one-second granularity.
    High,
}

impl Resolution {
    fn seconds(self) -> f64 {
        match self {
            Resolution::Standard => 60.0,
            Resolution::High => 1.0,
        }
    }
}

/// One datum as put: raw values with counts, or pre-aggregated statistics.
#[derive(Debug, Clone)]
pub(super) struct Datum {
    /// Epoch seconds, truncated to the metric's resolution when stored.
    pub at: f64,
    /// Epoch seconds of the sandbox's clock when it was put (the metric
    /// delay counts from here).
    pub put_at: f64,
    /// (value, count) pairs; empty when only statistics were given.
    pub values: Vec<(f64, f64)>,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Datum {
    pub(super) fn from_values(at: f64, values: Vec<(f64, f64)>) -> Datum {
        let count = values.iter().map(|(_, c)| c).sum();
        let sum = values.iter().map(|(v, c)| v * c).sum();
        let min = values.iter().map(|(v, _)| *v).fold(f64::INFINITY, f64::min);
        let max = values
            .iter()
            .map(|(v, _)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        Datum {
            at,
            put_at: 0.0,
            values,
            count,
            sum,
            min,
            max,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct CloudWatch {
    pub metrics: BTreeMap<MetricKey, Vec<Datum>>,
    alarms: BTreeMap<String, Alarm>,
    /// A datum is invisible to GetMetricData until this long after it was put.
    pub metric_delay: std::time::Duration,
    /// The next N GetMetricData calls answer every query with
    /// `StatusCode = InternalError` and no values (CloudWatch does that
    /// to a query it could not serve while the call itself succeeds).
    pub query_errors_next: u64,
    /// GetMetricData calls and queries served (for benchmarks and tests).
    pub get_metric_data_calls: u64,
    pub get_metric_data_queries: u64,
}

impl CloudWatch {
    /// Stores a datum as CloudWatch does: its timestamp truncated to the
    /// resolution (the minute, or the second for high resolution), stamped
    /// with the time it was put. Raw values are kept, so percentiles still
    /// see every value of the minute.
    pub(super) fn put(&mut self, key: MetricKey, mut datum: Datum, resolution: Resolution) {
        let g = resolution.seconds();
        datum.at = (datum.at / g).floor() * g;
        datum.put_at = now_secs();
        self.metrics.entry(key).or_default().push(datum);
    }

    /// When the alarm `name` (metric or composite) went into ALARM, if it is
    /// in ALARM now (AppConfig's monitors roll deployments back on it).
    pub(super) fn in_alarm_since(&self, name: &str) -> Option<f64> {
        self.alarms
            .get(name)
            .filter(|a| a.state == "ALARM")
            .map(|a| a.transitioned)
    }

    /// Every alarm, by name (`Sandbox::alarms`).
    pub(super) fn alarm_views(&self) -> Vec<AlarmView> {
        self.alarms.values().map(Alarm::view).collect()
    }

    pub(super) fn admin_view(&self) -> Json {
        serde_json::json!({
            "metrics": self.metrics.iter().map(|(k, v)| serde_json::json!({
                "namespace": k.namespace, "name": k.name, "dimensions": k.dimensions, "data": v.len(),
            })).collect::<Vec<_>>(),
            "alarms": self.alarms.values().map(|a| serde_json::json!({
                "name": a.name, "type": a.kind.name(), "state": a.state, "reason": a.reason,
                "tags": a.tags, "alarm_actions": a.view().alarm_actions,
            })).collect::<Vec<_>>(),
            "get_metric_data_calls": self.get_metric_data_calls,
            "get_metric_data_queries": self.get_metric_data_queries,
        })
    }
}

/// `POST /` (awsJson1_0 and awsQuery) is routed with IAM's and STS's in
/// `sandbox::dispatch_root`. Both take gzip-encoded bodies (`Content-Encoding: gzip`), as
/// current SDKs send PutMetricData bodies of 10 KB and more.
pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/service/GraniteServiceVersion20100801/operation/{op}",
            post(dispatch),
        )
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
}

/// A CloudWatch error, rendered per protocol.
#[derive(Debug)]
pub(super) struct CwError {
    status: StatusCode,
    code: String,
    message: String,
}

type Reply = Result<Cbor, CwError>;

fn error(status: StatusCode, code: &str, message: &str) -> Reply {
    Err(CwError {
        status,
        code: code.to_string(),
        message: message.to_string(),
    })
}

/// The same document for both protocols; clients read `__type` and `message`.
fn error_body(e: &CwError) -> Cbor {
    Cbor::Map(vec![
        (
            text("__type"),
            text(&format!("com.amazonaws.cloudwatch#{}", e.code)),
        ),
        (text("message"), text(&e.message)),
    ])
}

/// CloudWatch is `awsQueryCompatible`: besides `__type` (the shape name), an
/// error names its old awsQuery code and fault in `x-amzn-query-error`
/// (`InvalidParameterValue;Sender`). The SDK and botocore take the error
/// code from that header, so typed errors (`is_invalid_parameter_value_exception()`)
/// match only with it. `None` for protocol errors no model names.
fn query_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidParameterValueException" => "InvalidParameterValue;Sender",
        "MissingRequiredParameterException" => "MissingParameter;Sender",
        "InvalidParameterCombinationException" => "InvalidParameterCombination;Sender",
        "InvalidNextToken" => "InvalidNextToken;Sender",
        "ResourceNotFound" => "ResourceNotFound;Sender",
        "LimitExceededFault" => "LimitExceeded;Sender",
        "ValidationError" => "ValidationError;Sender",
        "InternalServiceFault" => "InternalServiceError;Receiver",
        // CloudWatch's AccessDenied is a 403 whose code the SDK and the CLI
        // report as `AccessDenied` (the awsQuery code), whatever the protocol.
        "AccessDeniedException" => "AccessDenied;Sender",
        "ResourceNotFoundException" => "ResourceNotFoundException;Sender",
        _ => return None,
    })
}

/// Adds the query-compatible error header to an error answer (either protocol).
fn with_query_error(mut resp: Response, code: &str) -> Response {
    if let Some(q) = query_error(code) {
        resp.headers_mut()
            .insert("x-amzn-query-error", HeaderValue::from_static(q));
    }
    resp
}

fn cbor_response(status: StatusCode, body: &Cbor) -> Response {
    let mut bytes = Vec::new();
    if ciborium::into_writer(body, &mut bytes).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        status,
        [
            ("content-type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
        ],
        bytes,
    )
        .into_response()
}

fn invalid(message: &str) -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "InvalidParameterValueException",
        message,
    )
}

/// CBOR → JSON, with timestamps (tag 1) as epoch seconds.
fn to_json(v: Cbor) -> Json {
    match v {
        // Integers stay integers (awsJson1_0 answers `"Period": 60`, not 60.0).
        Cbor::Integer(i) => {
            let i = i128::from(i);
            i64::try_from(i).map_or_else(|_| Json::from(i as f64), Json::from)
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        Cbor::Text(s) => Json::String(s),
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Null => Json::Null,
        Cbor::Tag(_, inner) => to_json(*inner),
        Cbor::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Cbor::Map(pairs) => Json::Object(
            pairs
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        _ => Json::Null,
    }
}

fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

fn timestamp(secs: f64) -> Cbor {
    Cbor::Tag(1, Box::new(Cbor::Float(secs)))
}

async fn dispatch(State(shared): State<Shared>, Path(op): Path<String>, body: Bytes) -> Response {
    let input: Json = if body.is_empty() {
        Json::Object(Default::default())
    } else {
        match ciborium::from_reader::<Cbor, _>(body.as_ref()) {
            Ok(v) => to_json(v),
            Err(e) => {
                let e = CwError {
                    status: StatusCode::BAD_REQUEST,
                    code: "SerializationException".into(),
                    message: format!("invalid CBOR: {e}"),
                };
                return with_query_error(cbor_response(e.status, &error_body(&e)), &e.code);
            }
        }
    };
    match run(&shared, &op, &input) {
        Ok(out) => cbor_response(StatusCode::OK, &out),
        Err(e) => with_query_error(cbor_response(e.status, &error_body(&e)), &e.code),
    }
}

/// CloudWatch's awsQuery forms: their numbers, timestamps, booleans and
/// lists, and its XML namespace.
pub(super) const QUERY_SCHEMA: query::Schema = query::Schema {
    xmlns: "http://monitoring.amazonaws.com/doc/2010-08-01/",
    numbers: &[
        "Value",
        "Values",
        "Counts",
        "Period",
        "MaxDatapoints",
        "MaxRecords",
        "Threshold",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "SampleCount",
        "Sum",
        "Minimum",
        "Maximum",
        "StorageResolution",
    ],
    timestamps: &["Timestamp", "StartTime", "EndTime"],
    booleans: &["ReturnData", "ActionsEnabled", "StrictEntityValidation"],
    lists: &[
        "MetricData",
        "Dimensions",
        "Values",
        "Counts",
        "MetricDataQueries",
        "AlarmNames",
        "AlarmTypes",
        "AlarmActions",
        "OKActions",
        "InsufficientDataActions",
        "Metrics",
        "Tags",
        "TagKeys",
    ],
    text_members: &["Dimensions", "Tags"],
};

/// `POST /` for CloudWatch (see `sandbox::dispatch_root`): awsJson1_0 when
/// the request names its operation in `X-Amz-Target`, awsQuery when it is a
/// form with `Action=`.
pub(super) fn dispatch_root(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    if !headers.contains_key("x-amz-target")
        && let Some((op, input)) = query::parse(body, &QUERY_SCHEMA)
    {
        return dispatch_query(shared, &op, input);
    }
    dispatch_json(shared, headers, body)
}

/// The awsQuery protocol: a form (`Action=<Op>&Version=2010-08-01&...`),
/// answered in XML; errors as `<ErrorResponse>` with the awsQuery code.
fn dispatch_query(shared: &Shared, op: &str, input: Result<Json, String>) -> Response {
    let reply = match input {
        Ok(input) => run(shared, op, &input),
        Err(message) => Err(CwError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidParameterValueException".into(),
            message,
        }),
    };
    let reply = reply.map_err(|e| {
        let (code, kind) = match query_error(&e.code).and_then(|q| q.split_once(';')) {
            Some((code, kind)) => (code.to_string(), kind),
            None if e.code == "UnknownOperationException" => ("InvalidAction".into(), "Sender"),
            None => (e.code.clone(), "Sender"),
        };
        query::Fault {
            status: e.status,
            kind: if kind == "Receiver" {
                "Receiver"
            } else {
                "Sender"
            },
            code,
            message: e.message,
        }
    });
    query::answer(QUERY_SCHEMA.xmlns, op, reply)
}

/// The awsJson1_0 protocol (what the AWS CLI v1 speaks): `POST /` with
/// `X-Amz-Target: GraniteServiceVersion20100801.<Op>` and a JSON body.
fn dispatch_json(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let op = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("GraniteServiceVersion20100801."))
        .unwrap_or_default()
        .to_string();
    let reply = match serde_json::from_slice::<Json>(if body.is_empty() { b"{}" } else { body }) {
        Ok(input) => run(shared, &op, &input),
        Err(e) => Err(CwError {
            status: StatusCode::BAD_REQUEST,
            code: "SerializationException".into(),
            message: format!("invalid JSON: {e}"),
        }),
    };
    let json = |status: StatusCode, doc: Cbor| {
        (
            status,
            [("content-type", "application/x-amz-json-1.0")],
            to_json(doc).to_string(),
        )
            .into_response()
    };
    match reply {
        Ok(out) => json(StatusCode::OK, out),
        Err(e) => with_query_error(json(e.status, error_body(&e)), &e.code),
    }
}

fn run(shared: &Shared, op: &str, input: &Json) -> Reply {
    let mut world = shared.lock();
    if KNOWN_OPERATIONS.contains(&op) {
        let action = format!("cloudwatch:{op}");
        if let Some(message) = world.denial(&action, resource(op, input).as_deref()) {
            return error(StatusCode::FORBIDDEN, "AccessDeniedException", &message);
        }
    }
    let cw = &mut world.cloudwatch;
    match op {
        "PutMetricData" => put_metric_data(cw, input),
        "GetMetricData" => get_metric_data(cw, input),
        "PutMetricAlarm" => alarms::put_alarm(cw, input, AlarmType::Metric),
        "PutCompositeAlarm" => alarms::put_alarm(cw, input, AlarmType::Composite),
        "DescribeAlarms" => alarms::describe_alarms(cw, input),
        "SetAlarmState" => alarms::set_alarm_state(cw, input),
        "DeleteAlarms" => alarms::delete_alarms(cw, input),
        "ListTagsForResource" => alarms::list_tags(cw, input),
        "TagResource" => alarms::tag_resource(cw, input),
        "UntagResource" => alarms::untag_resource(cw, input),
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the sandbox does not implement CloudWatch {other}"),
        ),
    }
}

const KNOWN_OPERATIONS: &[&str] = &[
    "PutMetricData",
    "GetMetricData",
    "PutMetricAlarm",
    "PutCompositeAlarm",
    "DescribeAlarms",
    "SetAlarmState",
    "DeleteAlarms",
    "ListTagsForResource",
    "TagResource",
    "UntagResource",
];

/// The ARN an operation acts on, for AccessDenied's message: the alarm of
/// the alarm operations, none for metric data and DescribeAlarms.
fn resource(op: &str, input: &Json) -> Option<String> {
    match op {
        "PutMetricAlarm" | "PutCompositeAlarm" | "SetAlarmState" => {
            str_of(input, "AlarmName").map(alarms::alarm_arn)
        }
        "DeleteAlarms" => input
            .get("AlarmNames")
            .and_then(|n| n.get(0))
            .and_then(Json::as_str)
            .map(alarms::alarm_arn),
        "ListTagsForResource" | "TagResource" | "UntagResource" => {
            str_of(input, "ResourceARN").map(str::to_string)
        }
        _ => None,
    }
}

fn str_of<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Json::as_str)
}

fn dimensions(v: &Json) -> BTreeMap<String, String> {
    v.get("Dimensions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                str_of(d, "Name")?.to_string(),
                str_of(d, "Value")?.to_string(),
            ))
        })
        .collect()
}

fn now_secs() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64 / 1000.0
}

fn put_metric_data(cw: &mut CloudWatch, input: &Json) -> Reply {
    let Some(namespace) = str_of(input, "Namespace") else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameterException",
            "Namespace is required",
        );
    };
    let Some(data) = input.get("MetricData").and_then(Json::as_array) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameterException",
            "MetricData is required",
        );
    };
    let mut parsed = Vec::new();
    for (n, d) in data.iter().enumerate() {
        let Some(name) = str_of(d, "MetricName") else {
            return invalid("MetricName is required");
        };
        let resolution = match d.get("StorageResolution") {
            None | Some(Json::Null) => Resolution::Standard,
            Some(r) if r.as_f64() == Some(60.0) => Resolution::Standard,
            Some(r) if r.as_f64() == Some(1.0) => Resolution::High,
            Some(r) => {
                return invalid(&format!(
                    "The value {r} for parameter MetricData.member.{}.StorageResolution is invalid. Valid values are 1 and 60.",
                    n + 1
                ));
            }
        };
        let at = d
            .get("Timestamp")
            .and_then(Json::as_f64)
            .unwrap_or_else(now_secs);
        let datum = if let Some(v) = d.get("Value").and_then(Json::as_f64) {
            Datum::from_values(at, vec![(v, 1.0)])
        } else if let Some(values) = d.get("Values").and_then(Json::as_array) {
            let counts: Vec<f64> = d
                .get("Counts")
                .and_then(Json::as_array)
                .map(|c| c.iter().filter_map(Json::as_f64).collect())
                .unwrap_or_else(|| vec![1.0; values.len()]);
            if counts.len() != values.len() {
                return invalid("The Values and Counts arrays must have the same length");
            }
            let pairs = values.iter().filter_map(Json::as_f64).zip(counts).collect();
            Datum::from_values(at, pairs)
        } else if let Some(s) = d.get("StatisticValues") {
            let f = |k| s.get(k).and_then(Json::as_f64).unwrap_or(0.0);
            Datum {
                at,
                put_at: 0.0,
                values: Vec::new(),
                count: f("SampleCount"),
                sum: f("Sum"),
                min: f("Minimum"),
                max: f("Maximum"),
            }
        } else {
            return invalid("Each MetricDatum needs Value, Values or StatisticValues");
        };
        let key = MetricKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
            dimensions: dimensions(d),
        };
        parsed.push((key, datum, resolution));
    }
    for (k, d, r) in parsed {
        cw.put(k, d, r);
    }
    Ok(Cbor::Map(vec![]))
}

/// A statistic over the data in one period.
pub(super) fn statistic(stat: &str, data: &[&Datum]) -> Option<f64> {
    let count: f64 = data.iter().map(|d| d.count).sum();
    if count <= 0.0 {
        return None;
    }
    match stat {
        "SampleCount" => Some(count),
        "Sum" => Some(data.iter().map(|d| d.sum).sum()),
        "Average" => Some(data.iter().map(|d| d.sum).sum::<f64>() / count),
        "Minimum" => data.iter().map(|d| d.min).reduce(f64::min),
        "Maximum" => data.iter().map(|d| d.max).reduce(f64::max),
        p if p.starts_with('p') => {
            let q: f64 = p[1..].parse().ok()?;
            if !(0.0..=100.0).contains(&q) {
                return None;
            }
            let mut values: Vec<(f64, f64)> =
                data.iter().flat_map(|d| d.values.iter().copied()).collect();
            if values.is_empty() {
                return None;
            }
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: f64 = values.iter().map(|(_, c)| c).sum();
            let rank = (q / 100.0 * total).max(f64::MIN_POSITIVE);
            let mut seen = 0.0;
            for (v, c) in &values {
                seen += c;
                if seen >= rank {
                    return Some(*v);
                }
            }
            values.last().map(|(v, _)| *v)
        }
        _ => None,
    }
}

fn valid_stat(stat: &str) -> bool {
    matches!(
        stat,
        "SampleCount" | "Sum" | "Average" | "Minimum" | "Maximum"
    ) || stat
        .strip_prefix('p')
        .and_then(|q| q.parse::<f64>().ok())
        .is_some_and(|q| (0.0..=100.0).contains(&q))
}

/// One query's series: (period start, value), oldest first.
type Series = Vec<(f64, f64)>;

/// GetMetricData's `Period`: 1, 5, 10, 20, 30 or a multiple of 60 seconds.
fn valid_period(p: f64) -> bool {
    p >= 1.0 && p.fract() == 0.0 && ([1.0, 5.0, 10.0, 20.0, 30.0].contains(&p) || p % 60.0 == 0.0)
}

const HOUR: f64 = 3600.0;
const DAY: f64 = 86_400.0;

/// What CloudWatch keeps of data as old as a query's StartTime.
struct Window {
    start: f64,
    /// Periods must be a multiple of this or nothing comes back: 1 s up to
    /// 3 hours ago, 60 s up to 15 days, 300 s up to 63 days, 3,600 s beyond.
    coarsest_period: f64,
    /// StartTime is rounded down to this (for periods of a minute or more):
    /// the minute up to 15 days ago, 5 minutes up to 63 days, the hour beyond.
    rounding: f64,
}

impl Window {
    fn new(start: f64, now: f64) -> Window {
        let age = now - start;
        let (coarsest_period, rounding) = if age > 63.0 * DAY {
            (3600.0, 3600.0)
        } else if age > 15.0 * DAY {
            (300.0, 300.0)
        } else if age > 3.0 * HOUR {
            (60.0, 60.0)
        } else {
            (1.0, 60.0)
        };
        Window {
            start,
            coarsest_period,
            rounding,
        }
    }

    /// Where the first bucket of `period` starts: StartTime rounded down
    /// (to a multiple of the period itself when it is under a minute).
    fn rounded_start(&self, period: f64) -> f64 {
        let unit = if period < 60.0 { period } else { self.rounding };
        (self.start / unit).floor() * unit
    }
}

fn get_metric_data(cw: &mut CloudWatch, input: &Json) -> Reply {
    let queries = input
        .get("MetricDataQueries")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if queries.is_empty() {
        return invalid("MetricDataQueries must contain at least 1 item");
    }
    if queries.len() > MAX_QUERIES {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            &format!(
                "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
            ),
        );
    }
    let (Some(start), Some(end)) = (
        input.get("StartTime").and_then(Json::as_f64),
        input.get("EndTime").and_then(Json::as_f64),
    ) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameterException",
            "StartTime and EndTime are required",
        );
    };
    if end <= start {
        return invalid("The parameter StartTime must be less than the parameter EndTime.");
    }
    let ascending = match str_of(input, "ScanBy") {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(other) => {
            return validation(&format!(
                "Value '{other}' at 'scanBy' failed to satisfy constraint: Member must satisfy enum value set: [TimestampDescending, TimestampAscending]"
            ));
        }
    };
    // Every metric query's period first: one bad period refuses the call.
    let mut periods = BTreeMap::new();
    for (n, q) in queries.iter().enumerate() {
        let Some(ms) = q.get("MetricStat") else {
            continue;
        };
        let period = ms.get("Period").and_then(Json::as_f64).unwrap_or(60.0);
        if !valid_period(period) {
            return error(
                StatusCode::BAD_REQUEST,
                "ValidationError",
                &format!(
                    "The parameter MetricDataQueries.member.{}.MetricStat.Period must be a multiple of 60 or 1, 5, 10, 20, 30.",
                    n + 1
                ),
            );
        }
        periods.insert(n, period);
    }
    cw.get_metric_data_calls += 1;
    let query_error = cw.query_errors_next > 0;
    cw.query_errors_next = cw.query_errors_next.saturating_sub(1);
    cw.get_metric_data_queries += queries.len() as u64;

    let now = now_secs();
    let visible_until = now - cw.metric_delay.as_secs_f64();
    let window = Window::new(start, now);
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    // Metric queries first, then expressions (which refer to them by id).
    for (n, q) in queries.iter().enumerate() {
        let Some(ms) = q.get("MetricStat") else {
            continue;
        };
        let id = str_of(q, "Id").unwrap_or_default().to_string();
        let metric = &ms["Metric"];
        let stat = str_of(ms, "Stat").unwrap_or_default();
        if !valid_stat(stat) {
            return invalid(&format!("Invalid statistic {stat:?} in query {id}"));
        }
        let period = periods[&n];
        if period % window.coarsest_period != 0.0 {
            // Data that old is kept only at coarser periods: nothing comes back.
            series.insert(id, Vec::new());
            continue;
        }
        let first = window.rounded_start(period);
        let key = MetricKey {
            namespace: str_of(metric, "Namespace").unwrap_or_default().to_string(),
            name: str_of(metric, "MetricName").unwrap_or_default().to_string(),
            dimensions: dimensions(metric),
        };
        let data = cw.metrics.get(&key).map(Vec::as_slice).unwrap_or_default();
        let mut buckets: BTreeMap<i64, Vec<&Datum>> = BTreeMap::new();
        for d in data
            .iter()
            .filter(|d| d.put_at <= visible_until && d.at >= first && d.at < end)
        {
            let bucket = ((d.at - first) / period).floor() as i64;
            buckets.entry(bucket).or_default().push(d);
        }
        let s: Series = buckets
            .iter()
            .filter_map(|(b, ds)| statistic(stat, ds).map(|v| (first + *b as f64 * period, v)))
            .collect();
        series.insert(id, s);
    }
    for q in queries.iter().filter(|q| q.get("Expression").is_some()) {
        let id = str_of(q, "Id").unwrap_or_default().to_string();
        let expr = str_of(q, "Expression").unwrap_or_default();
        match math::evaluate(expr, &series) {
            Ok(s) => {
                series.insert(id, s);
            }
            Err(e) => return invalid(&format!("Error in expression {id}: {e}")),
        }
    }

    // Pagination by data points, in query order, newest first within a series
    // (CloudWatch's default TimestampDescending) unless ScanBy says ascending.
    let max = input
        .get("MaxDatapoints")
        .and_then(Json::as_f64)
        .map_or(DEFAULT_MAX_DATAPOINTS, |m| m.max(1.0) as usize);
    let skip: usize = str_of(input, "NextToken")
        .and_then(|t| t.strip_prefix("dp-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut position = 0;
    let mut emitted = 0;
    let mut results = Vec::new();
    let mut more = false;
    for q in &queries {
        if q.get("ReturnData").and_then(Json::as_bool) == Some(false) {
            continue;
        }
        let id = str_of(q, "Id").unwrap_or_default();
        let mut points: Series = series.get(id).cloned().unwrap_or_default();
        if !ascending {
            points.reverse();
        }
        let mut timestamps = Vec::new();
        let mut values = Vec::new();
        for (t, v) in points {
            if position >= skip {
                if emitted >= max {
                    more = true;
                    break;
                }
                timestamps.push(timestamp(t));
                values.push(Cbor::Float(v));
                emitted += 1;
            }
            position += 1;
        }
        let status = if query_error {
            timestamps.clear();
            values.clear();
            "InternalError"
        } else if more {
            "PartialData"
        } else {
            "Complete"
        };
        results.push(Cbor::Map(vec![
            (text("Id"), text(id)),
            (text("Label"), text(str_of(q, "Label").unwrap_or(id))),
            (text("Timestamps"), Cbor::Array(timestamps)),
            (text("Values"), Cbor::Array(values)),
            (text("StatusCode"), text(status)),
        ]));
        if more {
            break;
        }
    }
    let mut out = vec![
        (text("MetricDataResults"), Cbor::Array(results)),
        (text("Messages"), Cbor::Array(vec![])),
    ];
    if more {
        out.push((text("NextToken"), text(&format!("dp-{}", skip + emitted))));
    }
    Ok(Cbor::Map(out))
}

/// `{field}` must be `min..=max` characters long: AWS's validation message.
fn check_length(input: &Json, field: &str, min: usize, max: usize) -> Result<(), CwError> {
    let Some(v) = str_of(input, field) else {
        return Ok(());
    };
    let n = v.chars().count();
    if (min..=max).contains(&n) {
        return Ok(());
    }
    let (bound, limit) = if n < min {
        ("greater", min)
    } else {
        ("less", max)
    };
    let mut camel = field.to_string();
    camel[..1].make_ascii_lowercase();
    validation(&format!(
        "Value '{v}' at '{camel}' failed to satisfy constraint: Member must have length {bound} than or equal to {limit}"
    ))
}

/// A smithy constraint violation, as AWS words them.
fn validation<T>(detail: &str) -> Result<T, CwError> {
    Err(CwError {
        status: StatusCode::BAD_REQUEST,
        code: "ValidationError".into(),
        message: format!("1 validation error detected: {detail}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_over_raw_values() {
        let d = Datum::from_values(0.0, (1..=100).map(|v| (f64::from(v), 1.0)).collect());
        let data = [&d];
        assert_eq!(statistic("SampleCount", &data), Some(100.0));
        assert_eq!(statistic("Sum", &data), Some(5050.0));
        assert_eq!(statistic("Average", &data), Some(50.5));
        assert_eq!(statistic("Minimum", &data), Some(1.0));
        assert_eq!(statistic("Maximum", &data), Some(100.0));
        assert_eq!(statistic("p50", &data), Some(50.0));
        assert_eq!(statistic("p99", &data), Some(99.0));
        assert_eq!(statistic("p99.9", &data), Some(100.0));
        assert_eq!(statistic("Average", &[]), None);
    }
}

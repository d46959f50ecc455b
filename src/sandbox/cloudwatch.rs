//! CloudWatch, for exactly the operations rollgate uses: PutMetricData,
//! GetMetricData (Sum, Average, SampleCount, Minimum, Maximum, pNN; simple
//! metric math; at most 500 queries; pagination by data points),
//! PutMetricAlarm, PutCompositeAlarm, DescribeAlarms (`AlarmTypes`,
//! `AlarmNames`, `AlarmNamePrefix`, `StateValue`, `MaxRecords`/`NextToken`
//! pages), and SetAlarmState.
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

use super::Shared;

mod query;

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

/// Metric alarms sort before composite ones in DescribeAlarms' pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum AlarmType {
    Metric,
    Composite,
}

impl AlarmType {
    fn name(self) -> &'static str {
        match self {
            AlarmType::Metric => "MetricAlarm",
            AlarmType::Composite => "CompositeAlarm",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Alarm {
    name: String,
    kind: AlarmType,
    state: String,
    reason: String,
    /// Epoch seconds of the last SetAlarmState (or creation).
    updated: f64,
    /// Epoch seconds of the last change of `state`.
    transitioned: f64,
    /// Epoch seconds of the last Put*Alarm.
    configured: f64,
    definition: BTreeMap<String, Json>,
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

    pub(super) fn admin_view(&self) -> Json {
        serde_json::json!({
            "metrics": self.metrics.iter().map(|(k, v)| serde_json::json!({
                "namespace": k.namespace, "name": k.name, "dimensions": k.dimensions, "data": v.len(),
            })).collect::<Vec<_>>(),
            "alarms": self.alarms.values().map(|a| serde_json::json!({
                "name": a.name, "type": a.kind.name(), "state": a.state, "reason": a.reason,
            })).collect::<Vec<_>>(),
            "get_metric_data_calls": self.get_metric_data_calls,
            "get_metric_data_queries": self.get_metric_data_queries,
        })
    }
}

/// Both routes take gzip-encoded bodies (`Content-Encoding: gzip`), as
/// current SDKs send PutMetricData bodies of 10 KB and more.
pub(super) fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/service/GraniteServiceVersion20100801/operation/{op}",
            post(dispatch),
        )
        .route("/", post(dispatch_root))
        .layer(tower_http::decompression::RequestDecompressionLayer::new())
}

/// A CloudWatch error, rendered per protocol.
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

/// `POST /`: awsJson1_0 when the request names its operation in
/// `X-Amz-Target`, awsQuery when it is a form with `Action=`.
async fn dispatch_root(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !headers.contains_key("x-amz-target")
        && let Some((op, input)) = query::parse(&body)
    {
        return dispatch_query(&shared, &op, input);
    }
    dispatch_json(&shared, &headers, &body)
}

/// The awsQuery protocol: a form (`Action=<Op>&Version=2010-08-01&...`),
/// answered in XML; errors as `<ErrorResponse>` with the awsQuery code.
fn dispatch_query(shared: &Shared, op: &str, input: Result<Json, String>) -> Response {
    let request_id = super::new_id();
    let reply = match input {
        Ok(input) => run(shared, op, &input),
        Err(message) => Err(CwError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidParameterValueException".into(),
            message,
        }),
    };
    let (status, body) = match reply {
        Ok(out) => (StatusCode::OK, query::response(op, &out, &request_id)),
        Err(e) => {
            let (code, kind) = match query_error(&e.code).and_then(|q| q.split_once(';')) {
                Some((code, kind)) => (code.to_string(), kind),
                None if e.code == "UnknownOperationException" => ("InvalidAction".into(), "Sender"),
                None => (e.code.clone(), "Sender"),
            };
            (e.status, query::error(kind, &code, &e.message, &request_id))
        }
    };
    let mut resp = (status, [("content-type", "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
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
    let cw = &mut world.cloudwatch;
    match op {
        "PutMetricData" => put_metric_data(cw, input),
        "GetMetricData" => get_metric_data(cw, input),
        "PutMetricAlarm" => put_alarm(cw, input, AlarmType::Metric),
        "PutCompositeAlarm" => put_alarm(cw, input, AlarmType::Composite),
        "DescribeAlarms" => describe_alarms(cw, input),
        "SetAlarmState" => set_alarm_state(cw, input),
        other => error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("the sandbox does not implement CloudWatch {other}"),
        ),
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

/// PutMetricAlarm and PutCompositeAlarm: create, or overwrite the whole
/// definition keeping the state, as CloudWatch does. Metric and composite
/// alarms share one namespace of names.
fn put_alarm(cw: &mut CloudWatch, input: &Json, kind: AlarmType) -> Reply {
    let Some(name) = str_of(input, "AlarmName") else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameterException",
            "The parameter AlarmName is required.",
        );
    };
    check_length(input, "AlarmName", 1, 255)?;
    check_length(input, "AlarmDescription", 0, 1024)?;
    if kind == AlarmType::Composite {
        if str_of(input, "AlarmRule").is_none() {
            return error(
                StatusCode::BAD_REQUEST,
                "MissingRequiredParameterException",
                "The parameter AlarmRule is required.",
            );
        }
        check_length(input, "AlarmRule", 1, 10240)?;
    }
    let existing = cw.alarms.get(name);
    if let Some(other) = existing.filter(|a| a.kind != kind) {
        return invalid(&format!(
            "An alarm named {name} already exists as a {}.",
            other.kind.name()
        ));
    }
    let definition = input
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let now = now_secs();
    let alarm = Alarm {
        name: name.to_string(),
        kind,
        state: existing.map_or("INSUFFICIENT_DATA".into(), |a| a.state.clone()),
        reason: existing.map_or("Unchecked: Initial alarm creation".into(), |a| {
            a.reason.clone()
        }),
        updated: existing.map_or(now, |a| a.updated),
        transitioned: existing.map_or(now, |a| a.transitioned),
        configured: now,
        definition,
    };
    cw.alarms.insert(name.to_string(), alarm);
    Ok(Cbor::Map(vec![]))
}

fn json_to_cbor(v: &Json) -> Cbor {
    match v {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => n.as_i64().map_or_else(
            || Cbor::Float(n.as_f64().unwrap_or(0.0)),
            |i| Cbor::Integer(i.into()),
        ),
        Json::String(s) => text(s),
        Json::Array(a) => Cbor::Array(a.iter().map(json_to_cbor).collect()),
        Json::Object(o) => Cbor::Map(o.iter().map(|(k, v)| (text(k), json_to_cbor(v))).collect()),
    }
}

/// DescribeAlarms' default and largest page.
const DEFAULT_MAX_RECORDS: i64 = 50;
const MAX_RECORDS: i64 = 100;
/// At most this many names in one DescribeAlarms.
const MAX_ALARM_NAMES: usize = 100;

/// A NextToken: the (type, name) of the last alarm on the page, hex-encoded
/// so callers treat it as opaque. Pages stay right when alarms are added.
fn alarm_token(kind: AlarmType, name: &str) -> String {
    let tag = match kind {
        AlarmType::Metric => 'M',
        AlarmType::Composite => 'C',
    };
    format!("{tag}{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_alarm_token(token: &str) -> Option<(AlarmType, String)> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<_>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut chars = text.chars();
    let kind = match chars.next()? {
        'M' => AlarmType::Metric,
        'C' => AlarmType::Composite,
        _ => return None,
    };
    Some((kind, chars.as_str().to_string()))
}

/// DescribeAlarms as CloudWatch answers it: only metric alarms unless
/// `AlarmTypes` asks for composite ones; `AlarmNames` (at most 100) or
/// `AlarmNamePrefix`; `StateValue`; pages of `MaxRecords` (1 to 100, default
/// 50) across both types, metric alarms first, each type in name order.
fn describe_alarms(cw: &CloudWatch, input: &Json) -> Reply {
    let types: Vec<AlarmType> = match input.get("AlarmTypes") {
        None | Some(Json::Null) => vec![AlarmType::Metric],
        Some(Json::Array(a)) if a.is_empty() => vec![AlarmType::Metric],
        Some(Json::Array(a)) => {
            let mut types = Vec::new();
            for (i, t) in a.iter().enumerate() {
                types.push(match t.as_str() {
                    Some("MetricAlarm") => AlarmType::Metric,
                    Some("CompositeAlarm") => AlarmType::Composite,
                    _ => {
                        return validation(&format!(
                            "Value '{}' at 'alarmTypes.{}.member' failed to satisfy constraint: Member must satisfy enum value set: [CompositeAlarm, MetricAlarm]",
                            t.as_str().map_or_else(|| t.to_string(), str::to_string),
                            i + 1
                        ));
                    }
                });
            }
            types
        }
        Some(_) => return invalid("AlarmTypes must be a list"),
    };
    let names: Option<Vec<&str>> = input
        .get("AlarmNames")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect());
    if let Some(names) = &names
        && names.len() > MAX_ALARM_NAMES
    {
        return validation(&format!(
            "Value '[{}]' at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_ALARM_NAMES}",
            names.join(", ")
        ));
    }
    let prefix = str_of(input, "AlarmNamePrefix");
    if names.is_some() && prefix.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterCombinationException",
            "AlarmNamePrefix and AlarmNames cannot be specified together.",
        );
    }
    check_length(input, "AlarmNamePrefix", 1, 255)?;
    let max = match input.get("MaxRecords") {
        None | Some(Json::Null) => DEFAULT_MAX_RECORDS,
        Some(v) => {
            let n = v.as_f64().unwrap_or(f64::NAN);
            if n.fract() != 0.0 || !n.is_finite() {
                return invalid("MaxRecords must be an integer");
            }
            let n = n as i64;
            if n < 1 {
                return validation(&format!(
                    "Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value greater than or equal to 1"
                ));
            }
            if n > MAX_RECORDS {
                return validation(&format!(
                    "Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value less than or equal to {MAX_RECORDS}"
                ));
            }
            n
        }
    };
    let after = match str_of(input, "NextToken") {
        None => None,
        Some(t) => match parse_alarm_token(t) {
            Some(key) => Some(key),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "InvalidNextToken",
                    "The NextToken is not valid.",
                );
            }
        },
    };
    let state = str_of(input, "StateValue");
    let mut matching: Vec<&Alarm> = cw
        .alarms
        .values()
        .filter(|a| types.contains(&a.kind))
        .filter(|a| names.as_ref().is_none_or(|n| n.contains(&a.name.as_str())))
        .filter(|a| prefix.is_none_or(|p| a.name.starts_with(p)))
        .filter(|a| state.is_none_or(|s| s == a.state))
        .collect();
    matching.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    let mut rest = matching
        .into_iter()
        .filter(|a| {
            after
                .as_ref()
                .is_none_or(|(kind, name)| (a.kind, &a.name) > (*kind, name))
        })
        .peekable();
    let mut page = Vec::new();
    while page.len() < max as usize
        && let Some(a) = rest.next()
    {
        page.push(a);
    }
    let mut metric = Vec::new();
    let mut composite = Vec::new();
    for a in &page {
        match a.kind {
            AlarmType::Metric => metric.push(metric_alarm(a)),
            AlarmType::Composite => composite.push(composite_alarm(a)),
        }
    }
    let mut out = vec![
        (text("MetricAlarms"), Cbor::Array(metric)),
        (text("CompositeAlarms"), Cbor::Array(composite)),
    ];
    if rest.peek().is_some()
        && let Some(last) = page.last()
    {
        out.push((text("NextToken"), text(&alarm_token(last.kind, &last.name))));
    }
    Ok(Cbor::Map(out))
}

fn alarm_arn(name: &str) -> String {
    format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")
}

/// What both kinds of alarm report about their state.
fn alarm_state_fields(a: &Alarm) -> Vec<(Cbor, Cbor)> {
    vec![
        (text("AlarmName"), text(&a.name)),
        (text("AlarmArn"), text(&alarm_arn(&a.name))),
        (text("StateValue"), text(&a.state)),
        (text("StateReason"), text(&a.reason)),
        (text("StateUpdatedTimestamp"), timestamp(a.updated)),
        (
            text("AlarmConfigurationUpdatedTimestamp"),
            timestamp(a.configured),
        ),
    ]
}

fn metric_alarm(a: &Alarm) -> Cbor {
    let mut fields: Vec<(Cbor, Cbor)> = Vec::new();
    for key in [
        "MetricName",
        "Namespace",
        "Statistic",
        "ExtendedStatistic",
        "Period",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "Dimensions",
        "AlarmDescription",
    ] {
        if let Some(v) = a.definition.get(key) {
            let v = match key {
                // Integers in the model: send them as CBOR integers.
                "Period" | "EvaluationPeriods" | "DatapointsToAlarm" => v
                    .as_f64()
                    .map_or(Cbor::Null, |f| Cbor::Integer((f as i64).into())),
                "Threshold" => v.as_f64().map_or(Cbor::Null, Cbor::Float),
                _ => json_to_cbor(v),
            };
            fields.push((text(key), v));
        }
    }
    fields.extend(alarm_state_fields(a));
    Cbor::Map(fields)
}

fn composite_alarm(a: &Alarm) -> Cbor {
    let d = &a.definition;
    let actions = |key: &str| {
        d.get(key)
            .filter(|v| v.is_array())
            .map_or(Cbor::Array(vec![]), json_to_cbor)
    };
    let mut fields = vec![
        (
            text("AlarmRule"),
            text(
                d.get("AlarmRule")
                    .and_then(Json::as_str)
                    .unwrap_or_default(),
            ),
        ),
        (
            text("ActionsEnabled"),
            Cbor::Bool(
                d.get("ActionsEnabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(true),
            ),
        ),
        (text("AlarmActions"), actions("AlarmActions")),
        (text("OKActions"), actions("OKActions")),
        (
            text("InsufficientDataActions"),
            actions("InsufficientDataActions"),
        ),
        (
            text("StateTransitionedTimestamp"),
            timestamp(a.transitioned),
        ),
    ];
    if let Some(desc) = d.get("AlarmDescription").and_then(Json::as_str) {
        fields.push((text("AlarmDescription"), text(desc)));
    }
    fields.extend(alarm_state_fields(a));
    Cbor::Map(fields)
}

fn set_alarm_state(cw: &mut CloudWatch, input: &Json) -> Reply {
    let (Some(name), Some(state)) = (str_of(input, "AlarmName"), str_of(input, "StateValue"))
    else {
        return invalid("AlarmName and StateValue are required");
    };
    if !matches!(state, "OK" | "ALARM" | "INSUFFICIENT_DATA") {
        return invalid(&format!("Invalid StateValue {state:?}"));
    }
    let Some(alarm) = cw.alarms.get_mut(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("Alarm {name} not found"),
        );
    };
    let now = now_secs();
    if alarm.state != state {
        alarm.transitioned = now;
    }
    alarm.state = state.to_string();
    alarm.reason = str_of(input, "StateReason").unwrap_or_default().to_string();
    alarm.updated = now;
    Ok(Cbor::Map(vec![]))
}

/// Simple metric math: `+ - * /`, parentheses, numbers and query ids,
/// evaluated per timestamp present in every referenced series.
mod math {
    use super::Series;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        Num(f64),
        Id(String),
        Op(char),
    }

    fn lex(s: &str) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if "+-*/()".contains(c) {
                out.push(Tok::Op(c));
                i += 1;
            } else if c.is_ascii_digit() || c == '.' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let n: String = chars[start..i].iter().collect();
                out.push(Tok::Num(n.parse().map_err(|_| format!("bad number {n}"))?));
            } else if c.is_ascii_alphabetic() || c == '_' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Id(chars[start..i].iter().collect()));
            } else {
                return Err(format!("unexpected character {c:?}"));
            }
        }
        Ok(out)
    }

    /// A value per timestamp, or a scalar.
    #[derive(Debug, Clone)]
    enum Val {
        Scalar(f64),
        Series(BTreeMap<i64, f64>),
    }

    fn key(t: f64) -> i64 {
        (t * 1000.0).round() as i64
    }

    fn combine(a: Val, b: Val, op: char) -> Val {
        let f = |x: f64, y: f64| match op {
            '+' => x + y,
            '-' => x - y,
            '*' => x * y,
            _ => x / y,
        };
        match (a, b) {
            (Val::Scalar(x), Val::Scalar(y)) => Val::Scalar(f(x, y)),
            (Val::Series(s), Val::Scalar(y)) => {
                Val::Series(s.into_iter().map(|(t, x)| (t, f(x, y))).collect())
            }
            (Val::Scalar(x), Val::Series(s)) => {
                Val::Series(s.into_iter().map(|(t, y)| (t, f(x, y))).collect())
            }
            (Val::Series(a), Val::Series(b)) => Val::Series(
                a.into_iter()
                    .filter_map(|(t, x)| b.get(&t).map(|y| (t, f(x, *y))))
                    .collect(),
            ),
        }
    }

    struct Parser<'a> {
        toks: Vec<Tok>,
        pos: usize,
        series: &'a BTreeMap<String, Series>,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos)
        }

        fn expr(&mut self) -> Result<Val, String> {
            let mut v = self.term()?;
            while let Some(Tok::Op(op @ ('+' | '-'))) = self.peek().cloned() {
                self.pos += 1;
                v = combine(v, self.term()?, op);
            }
            Ok(v)
        }

        fn term(&mut self) -> Result<Val, String> {
            let mut v = self.atom()?;
            while let Some(Tok::Op(op @ ('*' | '/'))) = self.peek().cloned() {
                self.pos += 1;
                v = combine(v, self.atom()?, op);
            }
            Ok(v)
        }

        fn atom(&mut self) -> Result<Val, String> {
            let tok = self.peek().cloned().ok_or("unexpected end of expression")?;
            self.pos += 1;
            match tok {
                Tok::Num(n) => Ok(Val::Scalar(n)),
                Tok::Id(id) => self
                    .series
                    .get(&id)
                    .map(|s| Val::Series(s.iter().map(|(t, v)| (key(*t), *v)).collect()))
                    .ok_or_else(|| format!("unknown metric id {id}")),
                Tok::Op('(') => {
                    let v = self.expr()?;
                    match self.peek() {
                        Some(Tok::Op(')')) => {
                            self.pos += 1;
                            Ok(v)
                        }
                        _ => Err("missing )".into()),
                    }
                }
                Tok::Op('-') => Ok(combine(Val::Scalar(0.0), self.atom()?, '-')),
                Tok::Op(c) => Err(format!("unexpected {c}")),
            }
        }
    }

    pub(super) fn evaluate(
        expr: &str,
        series: &BTreeMap<String, Series>,
    ) -> Result<Series, String> {
        let mut p = Parser {
            toks: lex(expr)?,
            pos: 0,
            series,
        };
        let v = p.expr()?;
        if p.pos != p.toks.len() {
            return Err("unexpected trailing input".into());
        }
        match v {
            Val::Scalar(_) => Err("an expression must refer to at least one metric".into()),
            Val::Series(s) => Ok(s
                .into_iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(t, v)| (t as f64 / 1000.0, v))
                .collect()),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn error_rate_expression() {
            let series: BTreeMap<String, Series> = [
                ("errors".to_string(), vec![(0.0, 3.0), (60.0, 0.0)]),
                (
                    "inv".to_string(),
                    vec![(0.0, 200.0), (60.0, 100.0), (120.0, 50.0)],
                ),
            ]
            .into();
            let out = evaluate("100 * errors / inv", &series).unwrap();
            assert_eq!(out, vec![(0.0, 1.5), (60.0, 0.0)]);
            assert_eq!(
                evaluate("(inv - errors) / 2", &series).unwrap()[0],
                (0.0, 98.5)
            );
            assert!(evaluate("inv / nope", &series).is_err());
            assert!(evaluate("1 + 2", &series).is_err());
            assert!(evaluate("inv +", &series).is_err());
        }
    }
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

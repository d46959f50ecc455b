//! The awsQuery protocol, shared by CloudWatch, IAM and STS: `POST /`, a
//! form-encoded body (`Action=PutMetricData&Version=2010-08-01&MetricData.member.1.MetricName=...`),
//! XML answers. The form becomes the JSON document a service's operations
//! take (`X.member.N` → arrays, dotted names → nested objects, numbers,
//! timestamps and booleans typed by field name, per service: a [`Schema`]),
//! and the reply is rendered as XML from the same values.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ciborium::Value as Cbor;
use serde_json::Value as Json;

/// How one service's forms are typed, and its XML namespace.
pub(super) struct Schema {
    pub xmlns: &'static str,
    /// Fields whose values are numbers (scalars, or the members of a list).
    pub numbers: &'static [&'static str],
    pub timestamps: &'static [&'static str],
    pub booleans: &'static [&'static str],
    /// Lists an empty value (`AlarmActions=`) stands for, as botocore sends them.
    pub lists: &'static [&'static str],
    /// Lists whose members' fields are all text (a dimension's or a tag's `Value`).
    pub text_members: &'static [&'static str],
}

/// A form decoded into a tree before typing.
#[derive(Debug)]
enum Node {
    Leaf(String),
    Map(BTreeMap<String, Node>),
    List(BTreeMap<usize, Node>),
}

impl Node {
    fn insert(&mut self, path: &[&str], value: String) -> Result<(), String> {
        let Some((first, rest)) = path.split_first() else {
            *self = Node::Leaf(value);
            return Ok(());
        };
        if *first == "member"
            && let Some((index, rest)) = rest.split_first()
            && let Ok(i) = index.parse::<usize>()
        {
            if !matches!(self, Node::List(_)) {
                *self = Node::List(BTreeMap::new());
            }
            let Node::List(items) = self else {
                unreachable!()
            };
            return items
                .entry(i)
                .or_insert_with(|| Node::Map(BTreeMap::new()))
                .insert(rest, value);
        }
        if !matches!(self, Node::Map(_)) {
            *self = Node::Map(BTreeMap::new());
        }
        let Node::Map(fields) = self else {
            unreachable!()
        };
        fields
            .entry(first.to_string())
            .or_insert_with(|| Node::Map(BTreeMap::new()))
            .insert(rest, value)
    }

    /// JSON, each leaf typed by the name of the field it belongs to and
    /// the field holding that (a dimension's or tag's `Value` is text).
    fn into_json(self, schema: &Schema, field: &str, parent: &str) -> Result<Json, String> {
        match self {
            Node::Map(fields) => fields
                .into_iter()
                .map(|(k, v)| Ok((k.clone(), v.into_json(schema, &k, field)?)))
                .collect::<Result<serde_json::Map<_, _>, String>>()
                .map(Json::Object),
            Node::List(items) => items
                .into_values()
                .map(|v| v.into_json(schema, field, parent))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            Node::Leaf(s) if schema.text_members.contains(&parent) => Ok(Json::String(s)),
            Node::Leaf(s) => typed(schema, field, s),
        }
    }
}

fn typed(schema: &Schema, field: &str, s: String) -> Result<Json, String> {
    if s.is_empty() && schema.lists.contains(&field) {
        return Ok(Json::Array(Vec::new()));
    }
    if schema.numbers.contains(&field) {
        return s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .ok_or_else(|| format!("Invalid value {s:?} for {field}: a number is expected"));
    }
    if schema.timestamps.contains(&field) {
        let secs = chrono::DateTime::parse_from_rfc3339(&s)
            .map(|t| t.timestamp_millis() as f64 / 1000.0)
            .or_else(|_| s.parse::<f64>())
            .map_err(|_| format!("Invalid timestamp {s:?} for {field}"))?;
        return Ok(serde_json::json!(secs));
    }
    if schema.booleans.contains(&field) {
        return match s.as_str() {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(format!("Invalid value {s:?} for {field}: true or false")),
        };
    }
    Ok(Json::String(s))
}

/// A query request's `Action` and `Version` (`None` for a body that is no
/// form with an `Action`), before its parameters are typed.
pub(super) fn action_and_version(body: &[u8]) -> Option<(String, Option<String>)> {
    let mut action = None;
    let mut version = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "Action" => action = Some(v.into_owned()),
            "Version" => version = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((action?, version))
}

/// A query request: its `Action` and the rest as the operation's JSON input,
/// typed by `schema`. `None` when the body is no form with an `Action`.
pub(super) fn parse(body: &[u8], schema: &Schema) -> Option<(String, Result<Json, String>)> {
    let mut action = None;
    let mut root = Node::Map(BTreeMap::new());
    let mut failure = None;
    for (k, v) in url::form_urlencoded::parse(body) {
        match k.as_ref() {
            "Action" => action = Some(v.into_owned()),
            "Version" => {}
            key => {
                let path: Vec<&str> = key.split('.').collect();
                if let Err(e) = root.insert(&path, v.into_owned()) {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    let action = action?;
    let input = match failure {
        Some(e) => Err(e),
        None => root.into_json(schema, "", ""),
    };
    Some((action, input))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// ISO 8601 in UTC, as CloudWatch writes timestamps in XML.
fn iso(secs: f64) -> String {
    let ms = (secs * 1000.0).round() as i64;
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    if ms % 1000 == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

fn number(v: f64) -> String {
    // `{:?}` keeps a decimal point (1.0), as AWS's doubles read.
    format!("{v:?}")
}

/// The content of an element holding `v`.
fn content(out: &mut String, v: &Cbor) {
    match v {
        Cbor::Map(fields) => {
            for (k, v) in fields {
                if let Cbor::Text(k) = k
                    && !matches!(v, Cbor::Null)
                {
                    element(out, k, v);
                }
            }
        }
        Cbor::Array(items) => {
            for item in items {
                element(out, "member", item);
            }
        }
        Cbor::Text(s) => out.push_str(&escape(s)),
        Cbor::Float(f) => out.push_str(&number(*f)),
        Cbor::Integer(i) => out.push_str(&i128::from(*i).to_string()),
        Cbor::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Cbor::Tag(1, inner) => match inner.as_ref() {
            Cbor::Float(f) => out.push_str(&iso(*f)),
            Cbor::Integer(i) => out.push_str(&iso(i128::from(*i) as f64)),
            other => content(out, other),
        },
        Cbor::Tag(_, inner) => content(out, inner),
        _ => {}
    }
}

fn element(out: &mut String, name: &str, v: &Cbor) {
    let mut inner = String::new();
    content(&mut inner, v);
    if inner.is_empty() {
        out.push_str(&format!("<{name}/>"));
    } else {
        out.push_str(&format!("<{name}>{inner}</{name}>"));
    }
}

/// `<OpResponse><OpResult>…</OpResult><ResponseMetadata>…</ResponseMetadata></OpResponse>`;
/// operations without output (an empty reply) have no `OpResult`.
pub(super) fn response(xmlns: &str, op: &str, reply: &Cbor, request_id: &str) -> String {
    let mut out = format!("<{op}Response xmlns=\"{xmlns}\">");
    if !matches!(reply, Cbor::Map(fields) if fields.is_empty()) {
        element(&mut out, &format!("{op}Result"), reply);
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
    ));
    out
}

/// `<ErrorResponse><Error><Type>…</Type><Code>…</Code><Message>…</Message></Error><RequestId>…</RequestId></ErrorResponse>`.
pub(super) fn error(
    xmlns: &str,
    kind: &str,
    code: &str,
    message: &str,
    request_id: &str,
) -> String {
    format!(
        "<ErrorResponse xmlns=\"{xmlns}\"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(kind),
        escape(code),
        escape(message)
    )
}

/// A text value of a reply.
pub(super) fn text(s: &str) -> Cbor {
    Cbor::Text(s.to_string())
}

/// A reply's structure: its members in order.
pub(super) fn members(fields: Vec<(&str, Cbor)>) -> Cbor {
    Cbor::Map(fields.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// An awsQuery error: its HTTP status, `Sender` or `Receiver`, code and message.
pub(super) struct Fault {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: String,
    pub message: String,
}

impl Fault {
    /// A client's fault (`Sender`).
    pub fn sender(status: StatusCode, code: &str, message: impl Into<String>) -> Fault {
        Fault {
            status,
            kind: "Sender",
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A smithy constraint violation, as AWS words them (`ValidationError`).
    pub fn validation(detail: &str) -> Fault {
        Fault::sender(
            StatusCode::BAD_REQUEST,
            "ValidationError",
            format!("1 validation error detected: {detail}"),
        )
    }
}

/// An operation's answer in `xmlns`: `<OpResponse>` or `<ErrorResponse>`.
pub(super) fn answer(xmlns: &str, op: &str, reply: Result<Cbor, Fault>) -> Response {
    let request_id = super::new_id();
    match reply {
        Ok(out) => xml_response(
            StatusCode::OK,
            response(xmlns, op, &out, &request_id),
            &request_id,
        ),
        Err(f) => xml_response(
            f.status,
            error(xmlns, f.kind, &f.code, &f.message, &request_id),
            &request_id,
        ),
    }
}

/// An XML answer (`text/xml`), naming its request in `x-amzn-RequestId`
/// too, as AWS's do.
pub(super) fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut resp = (status, [("content-type", "text/xml")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::cloudwatch::QUERY_SCHEMA;

    const XMLNS: &str = QUERY_SCHEMA.xmlns;

    #[test]
    fn forms_become_json() {
        let body = b"Action=PutMetricData&Version=2010-08-01&Namespace=NS\
            &MetricData.member.1.MetricName=Latency\
            &MetricData.member.1.Dimensions.member.1.Name=FunctionName\
            &MetricData.member.1.Dimensions.member.1.Value=f\
            &MetricData.member.1.Values.member.2=3.5\
            &MetricData.member.1.Values.member.1=2\
            &MetricData.member.1.Timestamp=2026-01-01T00%3A00%3A30Z\
            &MetricData.member.2.MetricName=Count&MetricData.member.2.Value=1\
            &MetricData.member.2.Dimensions=";
        let (action, input) = parse(body, &QUERY_SCHEMA).unwrap();
        assert_eq!(action, "PutMetricData");
        assert_eq!(
            input.unwrap(),
            serde_json::json!({
                "Namespace": "NS",
                "MetricData": [
                    {
                        "MetricName": "Latency",
                        "Dimensions": [{"Name": "FunctionName", "Value": "f"}],
                        "Values": [2.0, 3.5],
                        "Timestamp": 1767225630.0,
                    },
                    {"MetricName": "Count", "Value": 1.0, "Dimensions": []},
                ],
            })
        );
        assert!(parse(b"{}", &QUERY_SCHEMA).is_none());
        assert!(
            parse(b"Action=GetMetricData&MaxDatapoints=lots", &QUERY_SCHEMA)
                .unwrap()
                .1
                .is_err()
        );
    }

    #[test]
    fn replies_become_xml() {
        let reply = Cbor::Map(vec![
            (
                Cbor::Text("MetricDataResults".into()),
                Cbor::Array(vec![Cbor::Map(vec![
                    (Cbor::Text("Id".into()), Cbor::Text("a<b".into())),
                    (
                        Cbor::Text("Timestamps".into()),
                        Cbor::Array(vec![Cbor::Tag(1, Box::new(Cbor::Float(1767225600.0)))]),
                    ),
                    (
                        Cbor::Text("Values".into()),
                        Cbor::Array(vec![Cbor::Float(1.0)]),
                    ),
                ])]),
            ),
            (Cbor::Text("Messages".into()), Cbor::Array(vec![])),
        ]);
        assert_eq!(
            response(XMLNS, "GetMetricData", &reply, "rid"),
            format!(
                "<GetMetricDataResponse xmlns=\"{XMLNS}\"><GetMetricDataResult><MetricDataResults><member><Id>a&lt;b</Id><Timestamps><member>2026-01-01T00:00:00Z</member></Timestamps><Values><member>1.0</member></Values></member></MetricDataResults><Messages/></GetMetricDataResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></GetMetricDataResponse>"
            )
        );
        assert_eq!(
            response(XMLNS, "SetAlarmState", &Cbor::Map(vec![]), "rid"),
            format!(
                "<SetAlarmStateResponse xmlns=\"{XMLNS}\"><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></SetAlarmStateResponse>"
            )
        );
    }
}

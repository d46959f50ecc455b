//! CloudWatch's alarms: PutMetricAlarm (checked as CloudWatch checks it,
//! see `validate`), PutCompositeAlarm, DescribeAlarms, SetAlarmState,
//! DeleteAlarms, and the alarms' tags (PutMetricAlarm's `Tags` on creation,
//! ListTagsForResource, TagResource, UntagResource).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use ciborium::Value as Cbor;
use serde_json::Value as Json;

use super::{
    CloudWatch, CwError, Reply, check_length, error, invalid, now_secs, str_of, text, timestamp,
    validate, validation,
};

/// Metric alarms sort before composite ones in DescribeAlarms' pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum AlarmType {
    Metric,
    Composite,
}

impl AlarmType {
    pub(super) fn name(self) -> &'static str {
        match self {
            AlarmType::Metric => "MetricAlarm",
            AlarmType::Composite => "CompositeAlarm",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Alarm {
    pub name: String,
    pub kind: AlarmType,
    pub state: String,
    pub reason: String,
    /// Epoch seconds of the last SetAlarmState (or creation).
    updated: f64,
    /// Epoch seconds of the last change of `state`.
    pub transitioned: f64,
    /// Epoch seconds of the last Put*Alarm.
    configured: f64,
    /// The request that put it, normalised (see `validate::normalized`),
    /// without its tags.
    pub definition: BTreeMap<String, Json>,
    /// Key → value; set when the alarm is created, then by TagResource and
    /// UntagResource.
    pub tags: BTreeMap<String, String>,
}

/// What a test sees of an alarm (`Sandbox::alarms`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmView {
    pub name: String,
    pub arn: String,
    /// `MetricAlarm` or `CompositeAlarm`.
    pub kind: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub state_reason: String,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub actions_enabled: bool,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub threshold: Option<f64>,
    pub comparison_operator: Option<String>,
    pub evaluation_periods: Option<i64>,
    pub datapoints_to_alarm: Option<i64>,
    pub treat_missing_data: Option<String>,
    /// The whole definition as put (PutMetricAlarm's JSON members, `Tags`
    /// left out), e.g. `definition["Metrics"]`.
    pub definition: Json,
}

fn strings(d: &BTreeMap<String, Json>, key: &str) -> Vec<String> {
    d.get(key)
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Alarm {
    pub(super) fn view(&self) -> AlarmView {
        let d = &self.definition;
        let s = |k: &str| d.get(k).and_then(Json::as_str).map(str::to_string);
        AlarmView {
            name: self.name.clone(),
            arn: alarm_arn(&self.name),
            kind: self.kind.name().to_string(),
            state: self.state.clone(),
            state_reason: self.reason.clone(),
            description: s("AlarmDescription"),
            tags: self.tags.clone(),
            actions_enabled: self.actions_enabled(),
            alarm_actions: strings(d, "AlarmActions"),
            ok_actions: strings(d, "OKActions"),
            insufficient_data_actions: strings(d, "InsufficientDataActions"),
            threshold: d.get("Threshold").and_then(Json::as_f64),
            comparison_operator: s("ComparisonOperator"),
            evaluation_periods: d.get("EvaluationPeriods").and_then(Json::as_i64),
            datapoints_to_alarm: d.get("DatapointsToAlarm").and_then(Json::as_i64),
            treat_missing_data: s("TreatMissingData"),
            definition: Json::Object(d.clone().into_iter().collect()),
        }
    }

    pub(super) fn actions_enabled(&self) -> bool {
        self.definition
            .get("ActionsEnabled")
            .and_then(Json::as_bool)
            .unwrap_or(true)
    }

    /// Moves to `state` (`reason` says why), as of `now`: the state's
    /// timestamps follow, as DescribeAlarms reports them.
    pub(super) fn set_state(&mut self, state: &str, reason: &str, now: f64) {
        if self.state != state {
            self.transitioned = now;
        }
        self.state = state.to_string();
        self.reason = reason.to_string();
        self.updated = now;
    }
}

/// PutMetricAlarm and PutCompositeAlarm: create, or overwrite the whole
/// definition keeping the state, as CloudWatch does. Metric and composite
/// alarms share one namespace of names. `Tags` count only when the alarm
/// is created ("any tags you specify in this parameter are ignored" on an
/// update, says the API reference: TagResource changes them).
pub(super) fn put_alarm(cw: &mut CloudWatch, input: &Json, kind: AlarmType) -> Reply {
    let Some(name) = str_of(input, "AlarmName") else {
        return error(
            StatusCode::BAD_REQUEST,
            "MissingRequiredParameterException",
            "The parameter AlarmName is required.",
        );
    };
    check_length(input, "AlarmName", 1, 255)?;
    check_length(input, "AlarmDescription", 0, 1024)?;
    let definition = match kind {
        AlarmType::Metric => validate::metric_alarm(input)?,
        AlarmType::Composite => {
            if str_of(input, "AlarmRule").is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "MissingRequiredParameterException",
                    "The parameter AlarmRule is required.",
                );
            }
            check_length(input, "AlarmRule", 1, 10240)?;
            validate::normalized(input)
        }
    };
    let tags = validate::tags(input)?;
    let existing = cw.alarms.get(name);
    if let Some(other) = existing.filter(|a| a.kind != kind) {
        return invalid(&format!(
            "An alarm named {name} already exists as a {}.",
            other.kind.name()
        ));
    }
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
        tags: existing.map_or_else(|| tags.into_iter().collect(), |a| a.tags.clone()),
    };
    cw.alarms.insert(name.to_string(), alarm);
    Ok(Cbor::Map(vec![]))
}

pub(super) fn json_to_cbor(v: &Json) -> Cbor {
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
pub(super) fn describe_alarms(cw: &CloudWatch, input: &Json) -> Reply {
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

pub(super) fn alarm_arn(name: &str) -> String {
    format!(
        "arn:aws:cloudwatch:us-east-1:{}:alarm:{name}",
        crate::sandbox::ACCOUNT
    )
}

/// The alarm an ARN names (`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`).
fn alarm_of_arn(arn: &str) -> Option<&str> {
    let rest = arn.strip_prefix("arn:aws:cloudwatch:")?;
    let mut parts = rest.splitn(4, ':');
    let (_region, _account, kind, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (kind == "alarm" && !name.is_empty()).then_some(name)
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
            text("StateTransitionedTimestamp"),
            timestamp(a.transitioned),
        ),
        (
            text("AlarmConfigurationUpdatedTimestamp"),
            timestamp(a.configured),
        ),
    ]
}

/// Both kinds' actions, empty lists when none were given (as AWS answers).
fn action_fields(a: &Alarm) -> Vec<(Cbor, Cbor)> {
    let d = &a.definition;
    let actions = |key: &str| {
        d.get(key)
            .filter(|v| v.is_array())
            .map_or(Cbor::Array(vec![]), json_to_cbor)
    };
    vec![
        (text("ActionsEnabled"), Cbor::Bool(a.actions_enabled())),
        (text("AlarmActions"), actions("AlarmActions")),
        (text("OKActions"), actions("OKActions")),
        (
            text("InsufficientDataActions"),
            actions("InsufficientDataActions"),
        ),
    ]
}

fn metric_alarm(a: &Alarm) -> Cbor {
    let mut fields = action_fields(a);
    for key in [
        "AlarmDescription",
        "MetricName",
        "Namespace",
        "Statistic",
        "ExtendedStatistic",
        "Dimensions",
        "Period",
        "Unit",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "EvaluateLowSampleCountPercentile",
        "Metrics",
        "ThresholdMetricId",
    ] {
        if let Some(v) = a.definition.get(key).filter(|v| !v.is_null()) {
            fields.push((text(key), json_to_cbor(v)));
        }
    }
    fields.extend(alarm_state_fields(a));
    Cbor::Map(fields)
}

fn composite_alarm(a: &Alarm) -> Cbor {
    let d = &a.definition;
    let mut fields = vec![(
        text("AlarmRule"),
        text(
            d.get("AlarmRule")
                .and_then(Json::as_str)
                .unwrap_or_default(),
        ),
    )];
    fields.extend(action_fields(a));
    if let Some(desc) = d.get("AlarmDescription").and_then(Json::as_str) {
        fields.push((text("AlarmDescription"), text(desc)));
    }
    fields.extend(alarm_state_fields(a));
    Cbor::Map(fields)
}

pub(super) fn set_alarm_state(cw: &mut CloudWatch, input: &Json) -> Reply {
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
    let reason = str_of(input, "StateReason").unwrap_or_default();
    alarm.set_state(state, reason, now_secs());
    Ok(Cbor::Map(vec![]))
}

/// DeleteAlarms: at most 100 names; the alarms named are deleted, names of
/// no alarm are ignored ("If you specify any incorrect alarm names, the
/// alarms you specify with correct names are still deleted", says the API
/// reference), and the call succeeds.
pub(super) fn delete_alarms(cw: &mut CloudWatch, input: &Json) -> Reply {
    let Some(names) = input.get("AlarmNames").and_then(Json::as_array) else {
        return validation(
            "Value null at 'alarmNames' failed to satisfy constraint: Member must not be null",
        );
    };
    let names: Vec<&str> = names.iter().filter_map(Json::as_str).collect();
    if names.len() > MAX_ALARM_NAMES {
        return validation(&format!(
            "Value '[{}]' at 'alarmNames' failed to satisfy constraint: Member must have length less than or equal to {MAX_ALARM_NAMES}",
            names.join(", ")
        ));
    }
    for name in names {
        cw.alarms.remove(name);
    }
    Ok(Cbor::Map(vec![]))
}

/// The alarm `ResourceARN` names, or CloudWatch's errors: not an alarm ARN
/// → `InvalidParameterValue`, no such alarm → `ResourceNotFoundException`.
fn tagged<'a>(cw: &'a mut CloudWatch, input: &Json) -> Result<&'a mut Alarm, CwError> {
    let Some(arn) = str_of(input, "ResourceARN") else {
        return validation(
            "Value null at 'resourceARN' failed to satisfy constraint: Member must not be null",
        );
    };
    let Some(name) = alarm_of_arn(arn) else {
        return Err(CwError {
            status: StatusCode::BAD_REQUEST,
            code: "InvalidParameterValueException".into(),
            message: format!("The ARN {arn} is not the ARN of a CloudWatch alarm."),
        });
    };
    match cw.alarms.get_mut(name) {
        Some(a) => Ok(a),
        None => Err(CwError {
            status: StatusCode::NOT_FOUND,
            code: "ResourceNotFoundException".into(),
            message: format!("Alarm {name} does not exist."),
        }),
    }
}

pub(super) fn list_tags(cw: &mut CloudWatch, input: &Json) -> Reply {
    let alarm = tagged(cw, input)?;
    let tags = alarm
        .tags
        .iter()
        .map(|(k, v)| Cbor::Map(vec![(text("Key"), text(k)), (text("Value"), text(v))]))
        .collect();
    Ok(Cbor::Map(vec![(text("Tags"), Cbor::Array(tags))]))
}

pub(super) fn tag_resource(cw: &mut CloudWatch, input: &Json) -> Reply {
    let tags = validate::tags(input)?;
    let alarm = tagged(cw, input)?;
    let mut merged = alarm.tags.clone();
    merged.extend(tags);
    if merged.len() > validate::MAX_TAGS {
        return invalid(&format!(
            "An alarm can have at most {} tags.",
            validate::MAX_TAGS
        ));
    }
    alarm.tags = merged;
    Ok(Cbor::Map(vec![]))
}

pub(super) fn untag_resource(cw: &mut CloudWatch, input: &Json) -> Reply {
    let keys: Vec<String> = input
        .get("TagKeys")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let alarm = tagged(cw, input)?;
    for k in keys {
        alarm.tags.remove(&k);
    }
    Ok(Cbor::Map(vec![]))
}

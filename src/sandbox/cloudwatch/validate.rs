//! PutMetricAlarm's checks, in the order and with the codes CloudWatch
//! uses: smithy constraints (`ValidationError`, "1 validation error
//! detected: ..."), the metric-or-metrics rules CloudWatch words itself
//! (`ValidationError` too: "Exactly one element of the metrics list should
//! return data."), `InvalidParameterValue` for values the model allows but
//! CloudWatch does not (an unknown `ExtendedStatistic`), and
//! `InvalidParameterCombination` for `Statistic` with `ExtendedStatistic`.
//!
//! The definition kept is the request's, normalised so every protocol
//! renders it as the model types it: `Period`, `EvaluationPeriods`,
//! `DatapointsToAlarm` integers, `Threshold` a double, wherever they are.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use serde_json::Value as Json;

use super::{CwError, math, str_of, validation};

pub(super) const COMPARISON_OPERATORS: &[&str] = &[
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
    "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold",
    "GreaterThanUpperThreshold",
];
const STATISTICS: &[&str] = &["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
const TREAT_MISSING_DATA: &[&str] = &["breaching", "notBreaching", "ignore", "missing"];
/// The single-metric fields a `Metrics` alarm must leave out.
const SINGLE_METRIC_FIELDS: &[&str] = &[
    "MetricName",
    "Namespace",
    "Dimensions",
    "Period",
    "Statistic",
    "ExtendedStatistic",
    "Unit",
];
/// At most this many actions per state, and tags per alarm.
const MAX_ACTIONS: usize = 5;
pub(super) const MAX_TAGS: usize = 50;

type Checked<T> = Result<T, CwError>;

fn combination(message: &str) -> CwError {
    CwError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidParameterCombinationException".into(),
        message: message.to_string(),
    }
}

/// CloudWatch's own wording, without smithy's "1 validation error" prefix.
fn plain_validation(message: &str) -> CwError {
    CwError {
        status: StatusCode::BAD_REQUEST,
        code: "ValidationError".into(),
        message: message.to_string(),
    }
}

/// `field` in smithy's messages: the member name, first letter lowercase.
fn camel(field: &str) -> String {
    let mut c = field.to_string();
    if let Some(first) = c.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    c
}

fn not_null(field: &str) -> CwError {
    constraint(&format!(
        "Value null at '{}' failed to satisfy constraint: Member must not be null",
        camel(field)
    ))
}

/// A smithy constraint violation, as AWS words them.
fn constraint(detail: &str) -> CwError {
    plain_validation(&format!("1 validation error detected: {detail}"))
}

fn fail<T>(e: CwError) -> Checked<T> {
    Err(e)
}

fn enum_member(input: &Json, field: &str, allowed: &[&str]) -> Checked<()> {
    match str_of(input, field) {
        Some(v) if !allowed.contains(&v) => validation(&format!(
            "Value '{v}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            camel(field),
            allowed.join(", ")
        )),
        _ => Ok(()),
    }
}

/// An integer member of at least `min`, when present.
fn integer(input: &Json, field: &str, min: i64) -> Checked<Option<i64>> {
    let Some(v) = input.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let n = v.as_f64().unwrap_or(f64::NAN);
    if !n.is_finite() || n.fract() != 0.0 {
        return fail(error_value(field, &v.to_string()));
    }
    let n = n as i64;
    if n < min {
        return validation(&format!(
            "Value '{n}' at '{}' failed to satisfy constraint: Member must have value greater than or equal to {min}",
            camel(field)
        ));
    }
    Ok(Some(n))
}

fn error_value(field: &str, value: &str) -> CwError {
    CwError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidParameterValueException".into(),
        message: format!("The value {value} for parameter {field} is not valid."),
    }
}

/// An alarm's period: 10, 20, 30 or a multiple of 60 seconds.
fn alarm_period(field: &str, p: i64) -> Checked<()> {
    if [10, 20, 30].contains(&p) || p % 60 == 0 {
        Ok(())
    } else {
        fail(plain_validation(&format!(
            "The parameter {field} must be 10, 20, 30 or a multiple of 60."
        )))
    }
}

/// `pNN` or `pNN.NN`, 0 to 100: the percentiles an alarm can use.
fn valid_extended_statistic(s: &str) -> bool {
    s.strip_prefix('p')
        .filter(|q| {
            let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
            (1..=3).contains(&whole.len())
                && frac.len() <= 2
                && whole
                    .bytes()
                    .chain(frac.bytes())
                    .all(|b| b.is_ascii_digit())
        })
        .and_then(|q| q.parse::<f64>().ok())
        .is_some_and(|q| (0.0..=100.0).contains(&q))
}

fn check_actions(input: &Json) -> Checked<()> {
    for field in ["AlarmActions", "OKActions", "InsufficientDataActions"] {
        let Some(actions) = input.get(field).and_then(Json::as_array) else {
            continue;
        };
        if actions.len() > MAX_ACTIONS {
            return validation(&format!(
                "Value '[{}]' at '{}' failed to satisfy constraint: Member must have length less than or equal to {MAX_ACTIONS}",
                actions
                    .iter()
                    .map(|a| a.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
                camel(field)
            ));
        }
        if let Some(bad) = actions
            .iter()
            .find(|a| !a.as_str().is_some_and(|a| a.starts_with("arn:")))
        {
            return fail(error_value(field, &bad.to_string()));
        }
    }
    Ok(())
}

/// `Tags` as (key, value) pairs, checked: at most 50, keys 1–128
/// characters, values at most 256.
pub(super) fn tags(input: &Json) -> Checked<Vec<(String, String)>> {
    let Some(list) = input.get("Tags").and_then(Json::as_array) else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_TAGS {
        return validation(&format!(
            "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to {MAX_TAGS}"
        ));
    }
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let Some(key) = str_of(t, "Key") else {
            return fail(not_null(&format!("Tags.{}.member.key", i + 1)));
        };
        let value = str_of(t, "Value").unwrap_or_default();
        if !(1..=128).contains(&key.chars().count()) {
            return validation(&format!(
                "Value '{key}' at 'tags.{}.member.key' failed to satisfy constraint: Member must have length between 1 and 128",
                i + 1
            ));
        }
        if value.chars().count() > 256 {
            return validation(&format!(
                "Value '{value}' at 'tags.{}.member.value' failed to satisfy constraint: Member must have length less than or equal to 256",
                i + 1
            ));
        }
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

/// A metric-math alarm's `Metrics`: ids, one of MetricStat or Expression
/// each, periods, expressions that name only the list's ids, and exactly
/// one result returned (`ReturnData` defaults to true).
fn check_metrics(metrics: &[Json]) -> Checked<()> {
    let ids: Vec<&str> = metrics.iter().filter_map(|m| str_of(m, "Id")).collect();
    for (i, m) in metrics.iter().enumerate() {
        let n = i + 1;
        let Some(id) = str_of(m, "Id") else {
            return fail(not_null(&format!("Metrics.{n}.member.id")));
        };
        let id_ok = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && id.len() <= 255;
        if !id_ok {
            return fail(plain_validation(&format!(
                "Invalid metrics list: the Id '{id}' must start with a lowercase letter and contain only letters, numbers and underscores."
            )));
        }
        if ids.iter().filter(|other| **other == id).count() > 1 {
            return fail(plain_validation(&format!(
                "Invalid metrics list: the Id '{id}' is used more than once."
            )));
        }
        match (m.get("MetricStat"), str_of(m, "Expression")) {
            (Some(_), Some(_)) | (None, None) => {
                return fail(plain_validation(&format!(
                    "Invalid metrics list: exactly one of MetricStat and Expression must be set in the metric with Id '{id}'."
                )));
            }
            (Some(stat), None) => {
                let metric = stat.get("Metric").unwrap_or(&Json::Null);
                if str_of(metric, "MetricName").is_none() {
                    return fail(not_null(&format!(
                        "Metrics.{n}.member.metricStat.metric.metricName"
                    )));
                }
                if str_of(stat, "Stat").is_none() {
                    return fail(not_null(&format!("Metrics.{n}.member.metricStat.stat")));
                }
                match integer(stat, "Period", 1)? {
                    Some(p) => alarm_period(&format!("Metrics.member.{n}.MetricStat.Period"), p)?,
                    None => {
                        return fail(not_null(&format!("Metrics.{n}.member.metricStat.period")));
                    }
                }
            }
            (None, Some(expr)) => {
                let refs = math::ids(expr)
                    .map_err(|e| plain_validation(&format!("Error in expression '{id}': {e}")))?;
                if let Some(unknown) = refs.iter().find(|r| !ids.contains(&r.as_str())) {
                    return fail(plain_validation(&format!(
                        "Error in expression '{id}': Unrecognized metric id '{unknown}'"
                    )));
                }
            }
        }
    }
    let returned = metrics
        .iter()
        .filter(|m| m.get("ReturnData").and_then(Json::as_bool) != Some(false))
        .count();
    if returned != 1 {
        return fail(plain_validation(
            "Exactly one element of the metrics list should return data.",
        ));
    }
    Ok(())
}

/// Checks a PutMetricAlarm (beyond its name and description, checked with
/// the composite's) and gives the definition to keep, without `Tags`.
pub(super) fn metric_alarm(input: &Json) -> Checked<BTreeMap<String, Json>> {
    if str_of(input, "ComparisonOperator").is_none() {
        return fail(not_null("ComparisonOperator"));
    }
    enum_member(input, "ComparisonOperator", COMPARISON_OPERATORS)?;
    let Some(evaluation_periods) = integer(input, "EvaluationPeriods", 1)? else {
        return fail(not_null("EvaluationPeriods"));
    };
    if let Some(m) = integer(input, "DatapointsToAlarm", 1)?
        && m > evaluation_periods
    {
        return fail(plain_validation(
            "DatapointsToAlarm must be less than or equal to EvaluationPeriods",
        ));
    }
    enum_member(input, "Statistic", STATISTICS)?;
    enum_member(input, "TreatMissingData", TREAT_MISSING_DATA)?;
    check_actions(input)?;
    let metrics = input
        .get("Metrics")
        .and_then(Json::as_array)
        .filter(|m| !m.is_empty());
    match metrics {
        Some(metrics) => {
            let set = |f: &str| match input.get(f) {
                None | Some(Json::Null) => false,
                Some(Json::Array(a)) => !a.is_empty(),
                Some(_) => true,
            };
            if let Some(f) = SINGLE_METRIC_FIELDS.iter().find(|f| set(f)) {
                return fail(plain_validation(&format!(
                    "{f} should not be set if list of Metrics is set."
                )));
            }
            check_metrics(metrics)?;
        }
        None => {
            for f in ["MetricName", "Namespace"] {
                if str_of(input, f).is_none() {
                    return fail(plain_validation(&format!("{f} must not be null")));
                }
            }
            match (
                str_of(input, "Statistic"),
                str_of(input, "ExtendedStatistic"),
            ) {
                (Some(_), Some(_)) => {
                    return fail(combination(
                        "Statistic and ExtendedStatistic cannot both be set; specify exactly one.",
                    ));
                }
                (None, None) => {
                    return fail(plain_validation(
                        "Exactly one of Statistic or ExtendedStatistic must be set.",
                    ));
                }
                (None, Some(p)) if !valid_extended_statistic(p) => {
                    return fail(error_value("ExtendedStatistic", p));
                }
                _ => {}
            }
            match integer(input, "Period", 1)? {
                Some(p) => alarm_period("Period", p)?,
                None => return fail(not_null("Period")),
            }
        }
    }
    let threshold = input.get("Threshold").filter(|t| !t.is_null());
    let threshold_metric = str_of(input, "ThresholdMetricId");
    match (threshold, threshold_metric) {
        (Some(_), Some(_)) => {
            return fail(plain_validation(
                "Threshold and ThresholdMetricId cannot both be set",
            ));
        }
        (None, None) => return fail(plain_validation("Threshold must not be null")),
        (Some(t), None) if t.as_f64().is_none() => {
            return fail(error_value("Threshold", &t.to_string()));
        }
        _ => {}
    }
    Ok(normalized(input))
}

/// The request as kept: `Tags` apart (they are the alarm's, not its
/// definition's), numbers typed by the member they are.
pub(super) fn normalized(input: &Json) -> BTreeMap<String, Json> {
    input
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != "Tags")
        .map(|(k, v)| {
            let v = typed(&k, v);
            (k, v)
        })
        .collect()
}

fn typed(key: &str, v: Json) -> Json {
    match v {
        Json::Object(o) => Json::Object(
            o.into_iter()
                .map(|(k, v)| (k.clone(), typed(&k, v)))
                .collect(),
        ),
        Json::Array(a) => Json::Array(a.into_iter().map(|v| typed(key, v)).collect()),
        Json::Number(n) => match key {
            "Period" | "EvaluationPeriods" | "DatapointsToAlarm" => {
                n.as_f64().map_or(Json::Null, |f| Json::from(f as i64))
            }
            "Threshold" => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::Null, Json::Number),
            _ => Json::Number(n),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Json {
        json!({
            "AlarmName": "a", "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 3, "Threshold": 5, "MetricName": "Errors",
            "Namespace": "AWS/Lambda", "Statistic": "Sum", "Period": 60,
        })
    }

    fn with(mut v: Json, key: &str, value: Json) -> Json {
        v[key] = value;
        v
    }

    fn code(r: Checked<BTreeMap<String, Json>>) -> String {
        r.err().map(|e| e.code).unwrap_or_default()
    }

    #[test]
    fn single_metric_alarms() {
        let d = metric_alarm(&base()).unwrap();
        assert_eq!(d["Threshold"], json!(5.0));
        assert!(d["Threshold"].is_f64());
        assert!(d["Period"].is_i64());
        for (key, value, expected) in [
            ("ComparisonOperator", json!("Bigger"), "ValidationError"),
            ("EvaluationPeriods", json!(0), "ValidationError"),
            ("DatapointsToAlarm", json!(4), "ValidationError"),
            ("Period", json!(45), "ValidationError"),
            ("Period", json!(0), "ValidationError"),
            (
                "ExtendedStatistic",
                json!("p99"),
                "InvalidParameterCombinationException",
            ),
            ("TreatMissingData", json!("zero"), "ValidationError"),
            ("Statistic", json!("Median"), "ValidationError"),
        ] {
            assert_eq!(
                code(metric_alarm(&with(base(), key, value.clone()))),
                expected,
                "{key}={value}"
            );
        }
        for p in [10, 20, 30, 120] {
            assert!(
                metric_alarm(&with(base(), "Period", json!(p))).is_ok(),
                "{p}"
            );
        }
        let mut ext = with(base(), "ExtendedStatistic", json!("p99.9"));
        ext.as_object_mut().unwrap().remove("Statistic");
        assert!(metric_alarm(&ext).is_ok());
        ext["ExtendedStatistic"] = json!("median");
        assert_eq!(code(metric_alarm(&ext)), "InvalidParameterValueException");
    }

    #[test]
    fn metric_math_alarms() {
        let stat = |name: &str| json!({"Metric": {"Namespace": "AWS/Lambda", "MetricName": name}, "Period": 60, "Stat": "Sum"});
        let math = json!({
            "AlarmName": "rate", "ComparisonOperator": "GreaterThanThreshold",
            "EvaluationPeriods": 2, "DatapointsToAlarm": 2, "Threshold": 5.0,
            "Metrics": [
                {"Id": "e", "Expression": "100*errors/invocations", "Label": "error rate"},
                {"Id": "errors", "MetricStat": stat("Errors"), "ReturnData": false},
                {"Id": "invocations", "MetricStat": stat("Invocations"), "ReturnData": false},
            ],
        });
        assert!(metric_alarm(&math).is_ok());
        let mut both = math.clone();
        both["MetricName"] = json!("Errors");
        let e = metric_alarm(&both).err().unwrap();
        assert_eq!(
            e.message,
            "MetricName should not be set if list of Metrics is set."
        );
        let mut two = math.clone();
        two["Metrics"][1]["ReturnData"] = json!(true);
        let e = metric_alarm(&two).err().unwrap();
        assert_eq!(
            e.message,
            "Exactly one element of the metrics list should return data."
        );
        let mut none = math.clone();
        none["Metrics"][0]["ReturnData"] = json!(false);
        assert_eq!(code(metric_alarm(&none)), "ValidationError");
        let mut unknown = math.clone();
        unknown["Metrics"][0]["Expression"] = json!("100*errors/calls");
        assert_eq!(code(metric_alarm(&unknown)), "ValidationError");
        let mut period = math;
        period["Metrics"][1]["MetricStat"]["Period"] = json!(90);
        assert_eq!(code(metric_alarm(&period)), "ValidationError");
    }
}

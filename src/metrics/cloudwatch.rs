//! Fetching batches from CloudWatch with GetMetricData (following NextToken),
//! and alarm states with DescribeAlarms.

use std::collections::{HashMap, HashSet};

use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, StateValue, StatusCode,
};

use super::periods::Span;
use super::queries::{Batch, Series};

/// What a batch read: every span of its range for every series, with the
/// value CloudWatch returned, or `None` where it had no datapoint.
pub type Fetched = HashMap<(Series, Span), Option<f64>>;

#[derive(Clone)]
pub struct CloudWatch {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatch {
    /// A client whose every call has an attempt and an operation timeout
    /// (`timeouts`), so a hung CloudWatch never stalls a tick for long.
    pub fn new(
        config: &aws_config::SdkConfig,
        timeouts: aws_config::timeout::TimeoutConfig,
    ) -> Self {
        let conf = aws_sdk_cloudwatch::config::Builder::from(config)
            .timeout_config(timeouts)
            .build();
        CloudWatch {
            client: aws_sdk_cloudwatch::Client::from_conf(conf),
        }
    }

    /// One value per series and period of the batch's range (CloudWatch
    /// answers with a datapoint per period that has data, stamped at the
    /// period's start). Returns the values and the number of calls made.
    pub async fn fetch(&self, batch: &Batch) -> Result<(Fetched, usize), String> {
        let range = batch.range;
        let period = i32::try_from(range.period.max(1))
            .map_err(|_| format!("a period of {}s is too long", range.period))?;
        let queries: Vec<MetricDataQuery> = batch
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let dimensions: Vec<Dimension> = s
                    .dimensions
                    .iter()
                    .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                    .collect();
                MetricDataQuery::builder()
                    .id(format!("q{i}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace(&s.namespace)
                                    .metric_name(&s.name)
                                    .set_dimensions(Some(dimensions))
                                    .build(),
                            )
                            .period(period)
                            .stat(&s.stat)
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut values: Fetched = batch
            .series
            .iter()
            .flat_map(|s| range.spans().map(move |span| ((s.clone(), span), None)))
            .collect();
        let mut token = None;
        let mut calls = 0;
        // Series CloudWatch answered, and those it could not (a status
        // other than Complete or PartialData): unknown, never "no data".
        let mut answered = vec![false; batch.series.len()];
        let mut failed = vec![false; batch.series.len()];
        loop {
            let out = self
                .client
                .get_metric_data()
                .start_time(AwsTime::from_secs(range.start))
                .end_time(AwsTime::from_secs(range.end))
                .set_metric_data_queries(Some(queries.clone()))
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "GetMetricData: {}",
                        aws_sdk_cloudwatch::error::DisplayErrorContext(e)
                    )
                })?;
            calls += 1;
            for r in out.metric_data_results() {
                let index = r
                    .id()
                    .and_then(|id| id.strip_prefix('q'))
                    .and_then(|n| n.parse::<usize>().ok());
                let Some((i, series)) = index.and_then(|i| Some((i, batch.series.get(i)?))) else {
                    continue;
                };
                answered[i] = true;
                if !matches!(
                    r.status_code(),
                    Some(StatusCode::Complete | StatusCode::PartialData)
                ) {
                    failed[i] = true;
                }
                for (at, v) in r.timestamps().iter().zip(r.values()) {
                    // A datapoint belongs to the period it starts; one off
                    // the grid (never from CloudWatch) is dropped.
                    let start = at.secs();
                    let offset = start - range.start;
                    if offset < 0 || start >= range.end || offset % range.period.max(1) != 0 {
                        continue;
                    }
                    let span = Span {
                        start,
                        end: (start + range.period).min(range.end),
                    };
                    values.insert((series.clone(), span), Some(*v));
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                let unknown: Vec<&Series> = batch
                    .series
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| failed[*i] || !answered[*i])
                    .map(|(_, s)| s)
                    .collect();
                values.retain(|(s, _), _| !unknown.contains(&s));
                return Ok((values, calls));
            }
        }
    }

    /// The state (`OK`, `ALARM`, `INSUFFICIENT_DATA`) of each of the given
    /// alarms that exists, metric or composite (preflight).
    pub async fn alarm_states(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeMap<String, String>, crate::backend::AwsError> {
        use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
        let mut states = std::collections::BTreeMap::new();
        for chunk in names.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| crate::backend::AwsError {
                        code: e.code().map(str::to_string),
                        status: e.raw_response().map(|r| r.status().as_u16()),
                        message: e.message().map(str::to_string).unwrap_or_else(|| {
                            aws_sdk_cloudwatch::error::DisplayErrorContext(&e).to_string()
                        }),
                    })?;
                let metric = out
                    .metric_alarms()
                    .iter()
                    .filter_map(|a| Some((a.alarm_name()?, a.state_value()?.as_str())));
                let composite = out
                    .composite_alarms()
                    .iter()
                    .filter_map(|a| Some((a.alarm_name()?, a.state_value()?.as_str())));
                states.extend(
                    metric
                        .chain(composite)
                        .map(|(n, s)| (n.to_string(), s.to_string())),
                );
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_string()),
                    _ => break,
                }
            }
        }
        Ok(states)
    }

    /// The SDK client, for the calls only one caller makes (the backstop's alarms).
    pub fn client(&self) -> &aws_sdk_cloudwatch::Client {
        &self.client
    }

    /// Names of the given alarms that are in ALARM: metric and composite
    /// alarms (DescribeAlarms returns only metric alarms unless asked),
    /// at most 100 names a call, following NextToken through its pages
    /// (50 records each by default).
    pub async fn alarms_firing(&self, names: &[String]) -> Result<HashSet<String>, String> {
        let mut firing = HashSet::new();
        for chunk in names.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .alarm_types(AlarmType::MetricAlarm)
                    .alarm_types(AlarmType::CompositeAlarm)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "DescribeAlarms: {}",
                            aws_sdk_cloudwatch::error::DisplayErrorContext(e)
                        )
                    })?;
                let metric = out
                    .metric_alarms()
                    .iter()
                    .filter(|a| a.state_value() == Some(&StateValue::Alarm))
                    .filter_map(|a| a.alarm_name());
                let composite = out
                    .composite_alarms()
                    .iter()
                    .filter(|a| a.state_value() == Some(&StateValue::Alarm))
                    .filter_map(|a| a.alarm_name());
                firing.extend(metric.chain(composite).map(str::to_string));
                match out.next_token() {
                    Some(next) if !next.is_empty() => token = Some(next.to_string()),
                    _ => break,
                }
            }
        }
        Ok(firing)
    }
}

//! Fetching batches from CloudWatch with GetMetricData (following NextToken),
//! and alarm states with DescribeAlarms.

use std::collections::{HashMap, HashSet};

use aws_sdk_cloudwatch::primitives::DateTime as AwsTime;
use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, StateValue,
};
use chrono::{DateTime, Utc};

use super::queries::{Batch, Series};

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

    /// One value per series over `[end - window, end)`; series without data
    /// are absent. Returns the values and the number of calls made.
    pub async fn fetch(
        &self,
        batch: &Batch,
        end: DateTime<Utc>,
    ) -> Result<(HashMap<Series, f64>, usize), String> {
        let window = batch.window_secs.max(1) as i64;
        let start = end.timestamp() - window;
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
                            .period(window as i32)
                            .stat(&s.stat)
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let mut values = HashMap::new();
        let mut token = None;
        let mut calls = 0;
        loop {
            let out = self
                .client
                .get_metric_data()
                .start_time(AwsTime::from_secs(start))
                .end_time(AwsTime::from_secs(end.timestamp()))
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
                // Newest first: the first value is the window's.
                if let (Some(i), Some(v)) = (index, r.values().first())
                    && let Some(series) = batch.series.get(i)
                {
                    values.entry(series.clone()).or_insert(*v);
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok((values, calls));
            }
        }
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

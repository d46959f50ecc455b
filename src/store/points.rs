//! The `metric_points` table: the watcher's evaluations over time, for the
//! dashboard's charts and sparklines. Written in batches once a minute,
//! bounded per series by thinning out older points.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, parse_time, timestamp};
use crate::domain::{MetricPoint, PointKind, RolloutId};
use crate::metrics::eval::Verdict;

/// Rows per INSERT statement (10 parameters each; well under both
/// databases' parameter limits).
const ROWS_PER_INSERT: usize = 200;

/// A sparkline: (time, value), oldest first.
pub type Sparkline = Vec<(DateTime<Utc>, Option<f64>)>;

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Breach => "breach",
        Verdict::InsufficientData => "insufficient_data",
    }
}

fn parse_verdict(s: &str) -> Verdict {
    match s {
        "pass" => Verdict::Pass,
        "breach" => Verdict::Breach,
        _ => Verdict::InsufficientData,
    }
}

impl Store {
    /// Keeps a tick's evaluations (a point already kept is left as it is).
    pub async fn insert_points(
        &self,
        points: &[(RolloutId, MetricPoint)],
    ) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        for chunk in points.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 10;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 7,
                        b + 8,
                        b + 9,
                        b + 10
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO metric_points (rollout_id, kind, name, at, label, value, samples, verdict, threshold, reference) \
                 VALUES {} ON CONFLICT (rollout_id, kind, name, at) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, p) in chunk {
                q = q
                    .bind(id.0)
                    .bind(p.kind.as_str())
                    .bind(p.name.clone())
                    .bind(timestamp(p.at))
                    .bind(p.label.clone())
                    .bind(p.value)
                    .bind(p.samples.min(i64::MAX as u64) as i64)
                    .bind(verdict_str(p.verdict))
                    .bind(p.threshold)
                    .bind(p.reference);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A rollout's points since `since`, oldest first.
    pub async fn points(
        &self,
        id: RolloutId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, at, label, value, samples, verdict, threshold, reference \
             FROM metric_points WHERE rollout_id = $1 AND at >= $2 ORDER BY at",
        )
        .bind(id.0)
        .bind(since.map_or_else(String::new, timestamp))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(MetricPoint {
                    kind: PointKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("point kind {kind:?}")))?,
                    name: r.try_get("name")?,
                    label: r.try_get("label")?,
                    at: parse_time(&r.try_get::<String, _>("at")?)?,
                    value: r.try_get("value")?,
                    samples: r.try_get::<i64, _>("samples")?.max(0) as u64,
                    verdict: parse_verdict(&r.try_get::<String, _>("verdict")?),
                    threshold: r.try_get("threshold")?,
                    reference: r.try_get("reference")?,
                })
            })
            .collect()
    }

    /// One metric of several rollouts since `since` (for sparklines):
    /// rollout → (time, value), oldest first.
    pub async fn sparklines(
        &self,
        ids: &[RolloutId],
        label: &str,
        since: DateTime<Utc>,
    ) -> Result<HashMap<RolloutId, Sparkline>, StoreError> {
        let mut out: HashMap<RolloutId, Sparkline> = HashMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT rollout_id, at, value FROM metric_points \
                 WHERE label = $1 AND at >= $2 AND kind = 'guardrail' AND rollout_id IN ({}) ORDER BY at",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(label.to_string())
                .bind(timestamp(since));
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                let id = RolloutId(r.try_get("rollout_id")?);
                let at = parse_time(&r.try_get::<String, _>("at")?)?;
                out.entry(id).or_default().push((at, r.try_get("value")?));
            }
        }
        Ok(out)
    }

    /// Bounds a rollout's history: a series with more than `cap` points
    /// keeps its newest `cap / 2` as they are and every second one of the
    /// older ones — so long bakes are downsampled, recent data is not.
    pub async fn thin_points(&self, id: RolloutId, cap: usize) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, name, at FROM metric_points WHERE rollout_id = $1 ORDER BY kind, name, at",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut series: HashMap<(String, String), Vec<String>> = HashMap::new();
        for r in &rows {
            series
                .entry((r.try_get("kind")?, r.try_get("name")?))
                .or_default()
                .push(r.try_get("at")?);
        }
        let doomed: Vec<(String, String, String)> = series
            .into_iter()
            .filter(|(_, ats)| ats.len() > cap)
            .flat_map(|((kind, name), ats)| {
                let older = ats.len() - cap / 2;
                ats.into_iter()
                    .take(older)
                    .skip(1)
                    .step_by(2)
                    .map(move |at| (kind.clone(), name.clone(), at))
                    .collect::<Vec<_>>()
            })
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        for (kind, name, at) in &doomed {
            sqlx::query(
                "DELETE FROM metric_points WHERE rollout_id = $1 AND kind = $2 AND name = $3 AND at = $4",
            )
            .bind(id.0)
            .bind(kind)
            .bind(name)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(doomed.len())
    }
}

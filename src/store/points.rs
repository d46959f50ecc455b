//! The `metric_ticks` table: the watcher's evaluations over time, for the
//! dashboard's charts and sparklines. One row per rollout per kept
//! evaluation (all its guardrails and gates as JSON), written in one batch
//! per tick, bounded per rollout by thinning out older rows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, from_json, parse_time, timestamp, to_json};
use crate::domain::{MetricPoint, PointKind, RolloutId};
use crate::metrics::eval::Verdict;

/// Rows per INSERT statement (4 parameters each).
const ROWS_PER_INSERT: usize = 250;

/// A sparkline: (time, value), oldest first.
pub type Sparkline = Vec<(DateTime<Utc>, Option<f64>)>;

/// A point as stored inside a tick's JSON (its time is the row's).
#[derive(Serialize, Deserialize)]
struct Stored {
    kind: PointKind,
    name: String,
    label: String,
    value: Option<f64>,
    samples: u64,
    verdict: Verdict,
    threshold: Option<f64>,
    reference: Option<f64>,
}

impl Store {
    /// Keeps a tick's evaluations (a tick already kept is left as it is).
    pub async fn insert_points(
        &self,
        points: &[(RolloutId, MetricPoint)],
    ) -> Result<(), StoreError> {
        if points.is_empty() {
            return Ok(());
        }
        // One row per rollout and time.
        let mut ticks: BTreeMap<(i64, DateTime<Utc>), Vec<&MetricPoint>> = BTreeMap::new();
        for (id, p) in points {
            ticks.entry((id.0, p.at)).or_default().push(p);
        }
        let rows: Vec<(i64, String, Option<f64>, String)> = ticks
            .into_iter()
            .map(|((id, at), ps)| {
                let error_rate = ps
                    .iter()
                    .find(|p| p.kind == PointKind::Guardrail && p.label == "error_rate")
                    .or_else(|| ps.iter().find(|p| p.label == "error_rate"))
                    .and_then(|p| p.value);
                let stored: Vec<Stored> = ps
                    .into_iter()
                    .map(|p| Stored {
                        kind: p.kind,
                        name: p.name.clone(),
                        label: p.label.clone(),
                        value: p.value,
                        samples: p.samples,
                        verdict: p.verdict,
                        threshold: p.threshold,
                        reference: p.reference,
                    })
                    .collect();
                (id, timestamp(at), error_rate, to_json(&stored))
            })
            .collect();
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(${}, ${}, ${}, ${})",
                        i * 4 + 1,
                        i * 4 + 2,
                        i * 4 + 3,
                        i * 4 + 4
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO metric_ticks (rollout_id, at, error_rate, points) VALUES {} \
                 ON CONFLICT (rollout_id, at) DO NOTHING",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, at, error_rate, json) in chunk {
                q = q
                    .bind(*id)
                    .bind(at.clone())
                    .bind(*error_rate)
                    .bind(json.clone());
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
            "SELECT at, points FROM metric_ticks WHERE rollout_id = $1 AND at >= $2 ORDER BY at",
        )
        .bind(id.0)
        .bind(since.map_or_else(String::new, timestamp))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let at = parse_time(&r.try_get::<String, _>("at")?)?;
            let stored: Vec<Stored> = from_json(&r.try_get::<String, _>("points")?)?;
            out.extend(stored.into_iter().map(|p| MetricPoint {
                kind: p.kind,
                name: p.name,
                label: p.label,
                at,
                value: p.value,
                samples: p.samples,
                verdict: p.verdict,
                threshold: p.threshold,
                reference: p.reference,
            }));
        }
        Ok(out)
    }

    /// The error rate of several rollouts since `since` (for sparklines):
    /// rollout → (time, value), oldest first.
    pub async fn error_rate_sparklines(
        &self,
        ids: &[RolloutId],
        since: DateTime<Utc>,
    ) -> Result<HashMap<RolloutId, Sparkline>, StoreError> {
        let mut out: HashMap<RolloutId, Sparkline> = HashMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT rollout_id, at, error_rate FROM metric_ticks \
                 WHERE at >= $1 AND rollout_id IN ({}) ORDER BY rollout_id, at",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(timestamp(since));
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                let id = RolloutId(r.try_get("rollout_id")?);
                let at = parse_time(&r.try_get::<String, _>("at")?)?;
                out.entry(id)
                    .or_default()
                    .push((at, r.try_get("error_rate")?));
            }
        }
        Ok(out)
    }

    /// Bounds a rollout's history: with more than `cap` rows it keeps its
    /// newest `cap / 2` as they are and every second one of the older ones
    /// — so long bakes are downsampled, recent data is not.
    pub async fn thin_points(&self, id: RolloutId, cap: usize) -> Result<usize, StoreError> {
        let ats: Vec<String> =
            sqlx::query("SELECT at FROM metric_ticks WHERE rollout_id = $1 ORDER BY at")
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("at"))
                .collect::<Result<_, _>>()?;
        if ats.len() <= cap {
            return Ok(0);
        }
        let older = ats.len() - cap / 2;
        let doomed: Vec<&String> = ats.iter().take(older).skip(1).step_by(2).collect();
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        for at in &doomed {
            sqlx::query("DELETE FROM metric_ticks WHERE rollout_id = $1 AND at = $2")
                .bind(id.0)
                .bind(at.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(doomed.len())
    }
}

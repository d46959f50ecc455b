//! The `metric_ticks` table: the watcher's evaluations over time, for the
//! dashboard's charts and sparklines. One row per rollout per kept
//! evaluation (all its guardrails and gates as JSON), written in one batch
//! per tick, bounded per rollout by thinning out older rows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Store, StoreError, from_json, parse_time, timestamp, to_json};
use crate::domain::{MetricPoint, PointKind, RolloutId};
use crate::metrics::eval::Verdict;

/// Rows per INSERT statement (4 parameters each).
const ROWS_PER_INSERT: usize = 250;

/// A sparkline: (time, value), oldest first.
pub type Sparkline = Vec<(DateTime<Utc>, Option<f64>)>;

/// Adds a value to a sparkline of one value a minute, the minute's worst
/// (highest; a minute with no value stays a gap): a sparkline needs no
/// more, however short the watcher's tick. Values come oldest first.
pub fn fold_into_minutes(line: &mut Sparkline, at: DateTime<Utc>, value: Option<f64>) {
    let minute = at
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(at);
    match line.last_mut() {
        Some((m, v)) if *m == minute => {
            *v = match (*v, value) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        }
        _ => line.push((minute, value)),
    }
}

/// A point as stored inside a tick's JSON (its time is the row's).
#[derive(Serialize, Deserialize)]
struct Stored {
    kind: PointKind,
    name: String,
    label: String,
    /// Absent in rows kept before the window was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_secs: Option<u64>,
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
                        window_secs: p.window_secs,
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
        Self::check_fence(&mut tx).await?;
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
        self.points_of_rows(id, since, |n| (0..n).collect()).await
    }

    /// The points of some of a rollout's rows since `since`, oldest first:
    /// `pick(n)` gives the indices (ascending) of the rows to keep of `n`.
    /// Only those rows' JSON is decoded, the costly part of reading them.
    pub async fn points_of_rows(
        &self,
        id: RolloutId,
        since: Option<DateTime<Utc>>,
        pick: impl FnOnce(usize) -> Vec<usize>,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        let since = since.map_or_else(String::new, timestamp);
        // The times alone come from the primary key's index; only the
        // picked rows' JSON is read (and decoded).
        let ats: Vec<String> = sqlx::query(
            "SELECT at FROM metric_ticks WHERE rollout_id = $1 AND at >= $2 ORDER BY at",
        )
        .bind(id.0)
        .bind(&since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("at"))
        .collect::<Result<_, _>>()?;
        let picked: Vec<&String> = pick(ats.len())
            .into_iter()
            .filter_map(|i| ats.get(i))
            .collect();
        let rows = if picked.len() == ats.len() {
            sqlx::query(
                "SELECT at, points FROM metric_ticks WHERE rollout_id = $1 AND at >= $2 ORDER BY at",
            )
            .bind(id.0)
            .bind(&since)
            .fetch_all(&self.pool)
            .await?
        } else {
            let mut rows = Vec::with_capacity(picked.len());
            for chunk in picked.chunks(500) {
                let placeholders: Vec<String> =
                    (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
                let sql = format!(
                    "SELECT at, points FROM metric_ticks WHERE rollout_id = $1 AND at IN ({}) \
                     ORDER BY at",
                    placeholders.join(", ")
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0);
                for at in chunk {
                    q = q.bind(at.as_str());
                }
                rows.extend(q.fetch_all(&self.pool).await?);
            }
            rows
        };
        let mut out = Vec::new();
        for r in &rows {
            let at = parse_time(&r.try_get::<String, _>("at")?)?;
            let stored: Vec<Stored> = from_json(&r.try_get::<String, _>("points")?)?;
            out.extend(stored.into_iter().map(|p| MetricPoint {
                kind: p.kind,
                name: p.name,
                label: p.label,
                at,
                window_secs: p.window_secs,
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
            // Read in the primary key's order (no sort); rows are folded
            // to one a minute here, which costs less than a GROUP BY on an
            // expression (a temporary B-tree) at one row a minute.
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
                fold_into_minutes(out.entry(id).or_default(), at, r.try_get("error_rate")?);
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
        Self::check_fence(&mut tx).await?;
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn sparklines_fold_to_each_minutes_worst_value() {
        let at = |m, s| Utc.with_ymd_and_hms(2026, 11, 25, 10, m, s).unwrap();
        // (minute, second, value) in → (minute, value) out.
        type Case<'a> = (&'a [(u32, u32, Option<f64>)], &'a [(u32, Option<f64>)]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[(1, 5, Some(0.1))], &[(1, Some(0.1))]),
            // The worst of a minute, wherever it falls in it.
            (
                &[(1, 0, Some(0.1)), (1, 30, Some(0.4)), (1, 59, Some(0.2))],
                &[(1, Some(0.4))],
            ),
            // A missing value neither hides nor invents one.
            (
                &[(1, 0, None), (1, 10, Some(0.3)), (1, 20, None)],
                &[(1, Some(0.3))],
            ),
            (&[(2, 0, None), (2, 30, None)], &[(2, None)]),
            // Minutes stay apart, gaps included.
            (
                &[(1, 50, Some(0.1)), (2, 0, None), (4, 1, Some(0.2))],
                &[(1, Some(0.1)), (2, None), (4, Some(0.2))],
            ),
        ];
        for (input, want) in cases {
            let mut line = Sparkline::new();
            for (m, s, v) in *input {
                fold_into_minutes(&mut line, at(*m, *s), *v);
            }
            let want: Sparkline = want.iter().map(|(m, v)| (at(*m, 0), *v)).collect();
            assert_eq!(line, want, "{input:?}");
        }
    }
}

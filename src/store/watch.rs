//! The `watch_memory` table: the watcher's memory of each rollout, one JSON
//! record per rollout.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError, from_json, timestamp, to_json};
use crate::domain::{RolloutId, WatchMemory};

impl Store {
    /// Every stored memory, by rollout (rollouts without one are absent).
    pub async fn watch_memories(&self) -> Result<HashMap<RolloutId, WatchMemory>, StoreError> {
        let rows = sqlx::query("SELECT rollout_id, memory FROM watch_memory")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    RolloutId(r.try_get("rollout_id")?),
                    from_json(&r.try_get::<String, _>("memory")?)?,
                ))
            })
            .collect()
    }

    /// The memories of these rollouts (those without one are absent).
    pub async fn watch_memories_of(
        &self,
        ids: &[RolloutId],
    ) -> Result<HashMap<RolloutId, WatchMemory>, StoreError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(500) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT rollout_id, memory FROM watch_memory WHERE rollout_id IN ({})",
                placeholders.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.0);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(
                    RolloutId(r.try_get("rollout_id")?),
                    from_json(&r.try_get::<String, _>("memory")?)?,
                );
            }
        }
        Ok(out)
    }

    pub async fn watch_memory(&self, id: RolloutId) -> Result<WatchMemory, StoreError> {
        let row = sqlx::query("SELECT memory FROM watch_memory WHERE rollout_id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => from_json(&r.try_get::<String, _>("memory")?),
            None => Ok(WatchMemory::default()),
        }
    }

    /// Stores the watcher's memory of several rollouts: one transaction,
    /// 250 rows a statement.
    pub async fn put_watch_memories(
        &self,
        memories: &[(RolloutId, WatchMemory)],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if memories.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        Self::check_fence(&mut tx).await?;
        let at = timestamp(at);
        for chunk in memories.chunks(250) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${}, ${})", i * 3 + 1, i * 3 + 2, i * 3 + 3))
                .collect();
            let sql = format!(
                "INSERT INTO watch_memory (rollout_id, memory, updated_at) VALUES {} \
                 ON CONFLICT (rollout_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at",
                values.join(", ")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, memory) in chunk {
                q = q.bind(id.0).bind(to_json(memory)).bind(at.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores the watcher's memory of a rollout (one upsert).
    pub async fn put_watch_memory(
        &self,
        id: RolloutId,
        memory: &WatchMemory,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        Self::check_fence(&mut tx).await?;
        sqlx::query(
            "INSERT INTO watch_memory (rollout_id, memory, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (rollout_id) DO UPDATE SET memory = excluded.memory, updated_at = excluded.updated_at",
        )
        .bind(id.0)
        .bind(to_json(memory))
        .bind(timestamp(at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

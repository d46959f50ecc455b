//! The leader lease and fencing. One row says which process leads (runs
//! the watcher and the reconciler), until when, and under which epoch.
//! A process takes the lease when it is free or expired (bumping the
//! epoch) and renews its own. Work done as leader runs inside `fenced`:
//! every write transaction it opens first checks, in that transaction,
//! that the lease is still this process's at that epoch, and fails with
//! `StoreError::Fenced` otherwise. On PostgreSQL the check locks the lease
//! row, so a takeover waits for a fenced transaction in flight, and a
//! fenced transaction after a takeover sees it.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Store, StoreError};

/// Who leads, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holding process's name ("" when released).
    pub holder: String,
    pub epoch: i64,
    pub expires_at: DateTime<Utc>,
}

impl Lease {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        !self.holder.is_empty() && self.expires_at > now
    }
}

/// The lease a piece of work runs under: its writes happen only while the
/// lease is still `holder`'s at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
}

tokio::task_local! {
    static FENCE: Fence;
}

/// Runs `work` fenced by `fence`: each write transaction it opens (in
/// this task) checks the lease first.
pub async fn fenced<F: std::future::Future>(fence: Fence, work: F) -> F::Output {
    FENCE.scope(fence, work).await
}

/// The fence of the running task, if it runs fenced.
pub fn current_fence() -> Option<Fence> {
    FENCE.try_with(Fence::clone).ok()
}

impl Store {
    /// Takes the lease for `me` until `now + ttl` when it is free, expired
    /// or already `me`'s (or always, with `force`: a process that knows it
    /// is the only one); returns the epoch now held, or `None` when another
    /// process holds a live lease. A takeover bumps the epoch; a renewal
    /// keeps it.
    pub async fn claim_lease(
        &self,
        me: &str,
        now: DateTime<Utc>,
        ttl: std::time::Duration,
        force: bool,
    ) -> Result<Option<i64>, StoreError> {
        let now_ms = now.timestamp_millis();
        let until = now_ms.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        let taken = sqlx::query(
            "UPDATE leader_lease SET \
               epoch = CASE WHEN holder = $1 THEN epoch ELSE epoch + 1 END, \
               holder = $1, expires_at = $2, renewed_at = $3 \
             WHERE id = 1 AND (holder = $1 OR expires_at < $3 OR $4 = 1)",
        )
        .bind(me)
        .bind(until)
        .bind(now_ms)
        .bind(i64::from(force))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let epoch = if taken == 1 {
            let row = sqlx::query("SELECT epoch FROM leader_lease WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
            Some(row.try_get::<i64, _>("epoch")?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(epoch)
    }

    /// Gives the lease up (a clean shutdown): another process takes over
    /// at once instead of waiting for it to expire.
    pub async fn release_lease(&self, me: &str, epoch: i64) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "UPDATE leader_lease SET holder = '', expires_at = 0 WHERE id = 1 AND holder = $1 AND epoch = $2",
        )
        .bind(me)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The lease as stored.
    pub async fn lease(&self) -> Result<Lease, StoreError> {
        let row = sqlx::query("SELECT holder, epoch, expires_at FROM leader_lease WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Lease {
            holder: row.try_get("holder")?,
            epoch: row.try_get("epoch")?,
            expires_at: DateTime::from_timestamp_millis(row.try_get("expires_at")?)
                .unwrap_or_default(),
        })
    }

    /// Inside a write transaction: when the task runs fenced, the lease
    /// must still be its own at its epoch (and is locked until commit).
    pub(crate) async fn check_fence(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ) -> Result<(), StoreError> {
        let Some(fence) = current_fence() else {
            return Ok(());
        };
        let held = sqlx::query(
            "UPDATE leader_lease SET epoch = epoch WHERE id = 1 AND holder = $1 AND epoch = $2",
        )
        .bind(&fence.holder)
        .bind(fence.epoch)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if held == 1 {
            Ok(())
        } else {
            Err(StoreError::Fenced { epoch: fence.epoch })
        }
    }
}

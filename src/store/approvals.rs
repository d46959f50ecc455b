//! The `approvals` table: two-person requests to enter a protected phase,
//! and their decisions, each written with its audit entry.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, audit, opt_time, parse_time, timestamp};
use crate::audit::NewAuditEntry;
use crate::domain::RolloutId;

/// A request to advance into a protected phase, and what became of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ApprovalRow {
    pub id: i64,
    pub rollout_id: i64,
    /// The phase index the rollout was at when asked.
    pub from_phase: i64,
    /// The protected phase it asks to enter.
    pub to_phase: String,
    /// The rollout's generation when asked: the request applies to that
    /// position only.
    pub generation: i64,
    /// Promote past failing bake time or gates (with the reason).
    pub force: bool,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub reason: Option<String>,
    /// pending | approved | denied
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
}

const COLUMNS: &str = "id, rollout_id, from_phase, to_phase_name, generation, force, requested_by, \
    requested_at, reason, state, decided_by, decided_at, decision_reason";

fn approval_row(row: &AnyRow) -> Result<ApprovalRow, StoreError> {
    Ok(ApprovalRow {
        id: row.try_get("id")?,
        rollout_id: row.try_get("rollout_id")?,
        from_phase: row.try_get("from_phase")?,
        to_phase: row.try_get("to_phase_name")?,
        generation: row.try_get("generation")?,
        force: row.try_get::<i64, _>("force")? != 0,
        requested_by: row.try_get("requested_by")?,
        requested_at: parse_time(&row.try_get::<String, _>("requested_at")?)?,
        reason: row.try_get("reason")?,
        state: row.try_get("state")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: opt_time(row, "decided_at")?,
        decision_reason: row.try_get("decision_reason")?,
    })
}

impl Store {
    /// Records a pending request (its id from the database) with its audit
    /// entry; refuses while another request of the rollout is pending.
    pub async fn insert_approval(
        &self,
        request: &ApprovalRow,
        entry: NewAuditEntry,
    ) -> Result<ApprovalRow, StoreError> {
        let mut w = self.begin_write().await?;
        let pending: Option<i64> =
            sqlx::query("SELECT id FROM approvals WHERE rollout_id = $1 AND state = 'pending'")
                .bind(request.rollout_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .map(|r| r.try_get("id"))
                .transpose()?;
        if let Some(id) = pending {
            return Err(StoreError::ApprovalPending { id });
        }
        let id: i64 = sqlx::query(
            "UPDATE id_counters SET last_id = last_id + 1 WHERE name = 'approvals' RETURNING last_id",
        )
        .fetch_one(&mut *w.tx)
        .await?
        .try_get("last_id")?;
        let stored = ApprovalRow {
            id,
            ..request.clone()
        };
        sqlx::query(
            "INSERT INTO approvals (id, rollout_id, from_phase, to_phase_name, generation, force, \
             requested_by, requested_at, reason, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')",
        )
        .bind(stored.id)
        .bind(stored.rollout_id)
        .bind(stored.from_phase)
        .bind(&stored.to_phase)
        .bind(stored.generation)
        .bind(i64::from(stored.force))
        .bind(&stored.requested_by)
        .bind(timestamp(stored.requested_at))
        .bind(&stored.reason)
        .execute(&mut *w.tx)
        .await?;
        let mut entry = entry;
        entry.rollout_id = Some(RolloutId(stored.rollout_id));
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await?;
        Ok(stored)
    }

    /// Decides a pending request (`approved` or `denied`) with its audit
    /// entry; `false` when it is no longer pending (nothing written).
    pub async fn decide_approval(
        &self,
        id: i64,
        state: &str,
        decided_by: &str,
        at: DateTime<Utc>,
        reason: Option<&str>,
        entry: NewAuditEntry,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE approvals SET state = $1, decided_by = $2, decided_at = $3, decision_reason = $4 \
             WHERE id = $5 AND state = 'pending'",
        )
        .bind(state)
        .bind(decided_by)
        .bind(timestamp(at))
        .bind(reason)
        .bind(id)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await?;
        Ok(true)
    }

    pub async fn approval(&self, id: i64) -> Result<Option<ApprovalRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM approvals WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(approval_row).transpose()
    }

    /// A rollout's requests, newest first.
    pub async fn approvals_of(&self, rollout: RolloutId) -> Result<Vec<ApprovalRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM approvals WHERE rollout_id = $1 ORDER BY id DESC");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(rollout.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(approval_row).collect()
    }
}

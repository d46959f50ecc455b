//! The `audit_log` and `audit_head` tables: appends inside write
//! transactions, filtered reads, verification against a consistent head.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, WriteTx, timestamp, to_json};
use crate::audit::{
    AuditRecord, GENESIS_HASH, NewAuditEntry, Verifier, VerifyReport, compute_hash,
};
use crate::domain::{Action, RolloutId};

const COLUMNS: &str = "seq, at, actor, action, rollout_id, phase, flags_before, flags_after, \
                       reason, outcome, detail, prev_hash, hash";

/// The actions that mark a rollout's charts.
pub const MARKER_ACTIONS: &[Action] = &[
    Action::Start,
    Action::Advance,
    Action::Pause,
    Action::Resume,
    Action::Rollback,
    Action::Abandon,
    Action::GuardrailBreach,
    Action::DriftDetected,
    Action::CodeChanged,
];

/// Filters for listing the audit log; `after` is the cursor (a seq).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub rollout_id: Option<RolloutId>,
    pub actor: Option<String>,
    pub action: Option<Action>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<i64>,
    /// Only entries up to this seq (a consistent snapshot's head).
    pub up_to: Option<i64>,
    /// Only entries before this seq (paging newest first).
    pub before: Option<i64>,
    /// Newest first.
    pub descending: bool,
    pub limit: Option<i64>,
}

enum Param {
    I64(i64),
    Text(String),
}

/// Appends `entries` after the head, inside a write transaction (which
/// holds the head's lock, so no other process can append meanwhile).
pub(super) async fn append(
    w: &mut WriteTx<'_>,
    entries: Vec<NewAuditEntry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *w.tx)
        .await?;
    let (mut seq, mut prev_hash): (i64, String) = match head {
        Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
        None => (0, GENESIS_HASH.to_string()),
    };
    for e in entries {
        seq += 1;
        let mut record = AuditRecord {
            seq,
            at: timestamp(Utc::now()),
            actor: e.actor,
            action: e.action.as_str().to_string(),
            rollout_id: e.rollout_id.map(|id| id.0),
            phase: e.phase,
            flags_before: e.flags_before.as_ref().map(to_json),
            flags_after: e.flags_after.as_ref().map(to_json),
            reason: e.reason,
            outcome: e.outcome.as_str().to_string(),
            detail: e.detail.as_ref().map(to_json),
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        record.hash = compute_hash(&record);
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        )))
        .bind(record.seq)
        .bind(&record.at)
        .bind(&record.actor)
        .bind(&record.action)
        .bind(record.rollout_id)
        .bind(record.phase.clone())
        .bind(record.flags_before.clone())
        .bind(record.flags_after.clone())
        .bind(record.reason.clone())
        .bind(&record.outcome)
        .bind(record.detail.clone())
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&mut *w.tx)
        .await?;
        prev_hash = record.hash;
    }
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(seq)
    .bind(&prev_hash)
    .execute(&mut *w.tx)
    .await?;
    Ok(())
}

impl Store {
    /// Appends entries that belong to no rollout change (an observation, a
    /// superseded write), in a transaction of their own.
    pub async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        append(&mut w, entries).await?;
        w.commit().await
    }

    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut add = |sql: &str, p: Param| {
            params.push(p);
            conditions.push(format!("{sql} ${}", params.len()));
        };
        if let Some(id) = filter.rollout_id {
            add("rollout_id =", Param::I64(id.0));
        }
        if let Some(actor) = &filter.actor {
            add("actor =", Param::Text(actor.clone()));
        }
        if let Some(action) = filter.action {
            add("action =", Param::Text(action.as_str().to_string()));
        }
        // A time range becomes a range of seq (one lookup each in the `at`
        // index: entries are appended in time order under the head's lock),
        // so the page is read along the primary key like every other filter;
        // the times stay as conditions, kept off the index (`at || ''`), so
        // nothing outside the range is ever shown.
        if let Some(since) = filter.since {
            add("(at || '') >=", Param::Text(timestamp(since)));
        }
        if let Some(until) = filter.until {
            add("(at || '') <", Param::Text(timestamp(until)));
        }
        let (from_seq, to_seq) = self.seq_range(filter.since, filter.until).await?;
        if let Some(from) = from_seq {
            add("seq >=", Param::I64(from));
        }
        if let Some(to) = to_seq {
            add("seq <=", Param::I64(to));
        }
        if let Some(after) = filter.after {
            add("seq >", Param::I64(after));
        }
        if let Some(up_to) = filter.up_to {
            add("seq <=", Param::I64(up_to));
        }
        if let Some(before) = filter.before {
            add("seq <", Param::I64(before));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = filter.limit.unwrap_or(i64::MAX).max(0);
        // Only fixed column names are formatted in; values are bound.
        let order = if filter.descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_log {where_clause} ORDER BY seq {order} LIMIT {limit}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in params {
            query = match p {
                Param::I64(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(record_from_row).collect()
    }

    /// The entries of a rollout that mark its charts (phase changes,
    /// breaches, rollbacks), newest first: (time, action, phase). Only the
    /// few columns a marker needs.
    pub async fn marker_entries(
        &self,
        id: RolloutId,
        limit: i64,
    ) -> Result<Vec<(String, String, Option<String>)>, StoreError> {
        let actions: Vec<String> = MARKER_ACTIONS
            .iter()
            .map(|a| format!("'{}'", a.as_str()))
            .collect();
        // Only fixed action names are formatted in; values are bound.
        let sql = format!(
            "SELECT at, action, phase FROM audit_log WHERE rollout_id = $1 AND action IN ({}) \
             ORDER BY seq DESC LIMIT {}",
            actions.join(", "),
            limit.max(0)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("at")?, r.try_get("action")?, r.try_get("phase")?)))
            .collect()
    }

    /// The seq range of entries appended in [since, until): the first seq
    /// at or after `since` and the last before `until` (`i64::MIN`/`0` when
    /// none, which selects nothing).
    async fn seq_range(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<(Option<i64>, Option<i64>), StoreError> {
        let from = match since {
            None => None,
            Some(t) => Some(
                sqlx::query("SELECT seq AS s FROM audit_log WHERE at >= $1 ORDER BY at LIMIT 1")
                    .bind(timestamp(t))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(|r| r.try_get::<i64, _>("s"))
                    .transpose()?
                    .unwrap_or(i64::MAX),
            ),
        };
        let to = match until {
            None => None,
            Some(t) => Some(
                sqlx::query(
                    "SELECT seq AS s FROM audit_log WHERE at < $1 ORDER BY at DESC LIMIT 1",
                )
                .bind(timestamp(t))
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<i64, _>("s"))
                .transpose()?
                .unwrap_or(0),
            ),
        };
        Ok((from, to))
    }

    /// The newest entry's (seq, hash) as recorded.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()?)
    }

    /// Checks the whole hash chain, page by page, against the head read
    /// first: entries appended while it runs (by this or another process)
    /// lie beyond that head and are not part of the snapshot it verifies.
    pub async fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        let head = self.audit_head().await?;
        let up_to = head.as_ref().map_or(0, |(seq, _)| *seq);
        let mut verifier = Verifier::default();
        let mut after = 0;
        loop {
            let page = self
                .list_audit(&AuditFilter {
                    after: Some(after),
                    up_to: Some(up_to),
                    limit: Some(1000),
                    ..AuditFilter::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            page.iter().for_each(|r| verifier.check(r));
        }
        Ok(verifier.finish(head))
    }
}

fn record_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        rollout_id: row.try_get("rollout_id")?,
        phase: row.try_get("phase")?,
        flags_before: row.try_get("flags_before")?,
        flags_after: row.try_get("flags_after")?,
        reason: row.try_get("reason")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

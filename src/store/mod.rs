//! Persistence with sqlx: a SQLite file by default, PostgreSQL when the URL
//! says so. One set of portable SQL and migrations serves both.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::audit::{AuditRecord, GENESIS_HASH, Verifier, VerifyReport, compute_hash};
use crate::rollout::{PendingWrite, Rollout, State};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the rollout was changed by someone else (it is no longer at version {expected}); reload it and retry"
    )]
    VersionConflict { expected: i64 },
    #[error("function {function} already has an active rollout")]
    FunctionBusy { function: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// An audit entry to append; the store assigns seq, time and hashes.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: String,
    pub rollout_id: Option<i64>,
    pub phase: Option<String>,
    pub flags_before: Option<crate::plan::Flags>,
    pub flags_after: Option<crate::plan::Flags>,
    pub reason: Option<String>,
    pub outcome: String,
    pub detail: Option<serde_json::Value>,
}

/// Filters for listing the audit log; `after` is the cursor (a seq).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub rollout_id: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Serializes this process's write transactions: SQLite allows one writer,
    /// and the audit chain needs appends in order. Across processes the
    /// primary keys and version checks catch races.
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A plain path means a SQLite file; otherwise the URL picks the database.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") || url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite://{url}?mode=rwc")
    }
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{e}: {s}")))
}

enum Param {
    I64(i64),
    Text(String),
}

impl Store {
    /// Connects and migrates. `url` is a sqlite:// or postgres:// URL, or a file path.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite") { 4 } else { 8 })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Stores a new rollout (assigning its id) with its audit entries, in one
    /// transaction. Refuses when the function already has an active rollout.
    pub async fn insert_rollout(
        &self,
        rollout: &Rollout,
        audit: Vec<NewAuditEntry>,
    ) -> Result<Rollout, StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM rollouts")
            .fetch_one(&mut *tx)
            .await?
            .try_get("next")?;
        let mut stored = rollout.clone();
        stored.id = id;
        let result = sqlx::query(
            "INSERT INTO rollouts (id, plan_name, plan_hash, plan_text, target_function, active_target, \
             state, phase_index, phase_name, desired_flags, observed_flags, observed_at, generation, \
             applied_generation, pending_write, last_error, version, created_at, updated_at, bake_started_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        )
        .bind(id)
        .bind(&stored.plan_name)
        .bind(&stored.plan_hash)
        .bind(&stored.plan_text)
        .bind(&stored.target_function)
        .bind(stored.holds_function().then(|| stored.target_function.clone()))
        .bind(stored.state.as_str())
        .bind(stored.phase_index as i64)
        .bind(&stored.phase_name)
        .bind(to_json(&stored.desired_flags))
        .bind(stored.observed_flags.as_ref().map(to_json))
        .bind(stored.observed_at.map(timestamp))
        .bind(stored.generation)
        .bind(stored.applied_generation)
        .bind(stored.pending_write.as_ref().map(to_json))
        .bind(stored.last_error.clone())
        .bind(stored.version)
        .bind(timestamp(stored.created_at))
        .bind(timestamp(stored.updated_at))
        .bind(stored.bake_started_at.map(timestamp))
        .execute(&mut *tx)
        .await;
        if let Err(e) = result {
            return Err(if is_unique_violation(&e) {
                StoreError::FunctionBusy {
                    function: stored.target_function.clone(),
                }
            } else {
                e.into()
            });
        }
        append_audit_tx(&mut tx, with_rollout_id(audit, id)).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Saves a changed rollout if it is still at `expected_version` (it is
    /// stored at `expected_version + 1`), appending its audit entries in the
    /// same transaction: no change without its entry, no entry without its change.
    pub async fn save_rollout(
        &self,
        rollout: &Rollout,
        expected_version: i64,
        audit: Vec<NewAuditEntry>,
    ) -> Result<Rollout, StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut stored = rollout.clone();
        stored.version = expected_version + 1;
        stored.updated_at = Utc::now();
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query(
            "UPDATE rollouts SET active_target = $1, state = $2, phase_index = $3, phase_name = $4, \
             desired_flags = $5, observed_flags = $6, observed_at = $7, generation = $8, \
             applied_generation = $9, pending_write = $10, last_error = $11, version = $12, updated_at = $13, \
             bake_started_at = $16, readiness = $17, phase_stats = $18 \
             WHERE id = $14 AND version = $15",
        )
        .bind(stored.holds_function().then(|| stored.target_function.clone()))
        .bind(stored.state.as_str())
        .bind(stored.phase_index as i64)
        .bind(&stored.phase_name)
        .bind(to_json(&stored.desired_flags))
        .bind(stored.observed_flags.as_ref().map(to_json))
        .bind(stored.observed_at.map(timestamp))
        .bind(stored.generation)
        .bind(stored.applied_generation)
        .bind(stored.pending_write.as_ref().map(to_json))
        .bind(stored.last_error.clone())
        .bind(stored.version)
        .bind(timestamp(stored.updated_at))
        .bind(stored.id)
        .bind(expected_version)
        .bind(stored.bake_started_at.map(timestamp))
        .bind(stored.readiness.as_ref().map(to_json))
        .bind(stored.phase_stats.as_ref().map(to_json))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::FunctionBusy {
                    function: stored.target_function.clone(),
                }
            } else {
                e.into()
            }
        })?;
        if result.rows_affected() == 0 {
            return Err(StoreError::VersionConflict {
                expected: expected_version,
            });
        }
        append_audit_tx(&mut tx, with_rollout_id(audit, stored.id)).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn get_rollout(&self, id: i64) -> Result<Option<Rollout>, StoreError> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// Every rollout, newest first.
    pub async fn list_rollouts(&self) -> Result<Vec<Rollout>, StoreError> {
        let rows = sqlx::query("SELECT * FROM rollouts ORDER BY id DESC")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    pub async fn active_rollout_for(&self, function: &str) -> Result<Option<Rollout>, StoreError> {
        let row = sqlx::query("SELECT * FROM rollouts WHERE active_target = $1")
            .bind(function)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// Ids of rollouts with a recorded write not yet confirmed.
    pub async fn rollouts_with_pending_writes(&self) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM rollouts WHERE applied_generation < generation ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>("id").map_err(Into::into))
            .collect()
    }

    /// Records a rollout's baseline metrics with their audit entry. Not a
    /// command: the version is left alone so operators' `expected_version`
    /// stays valid.
    pub async fn set_baseline(
        &self,
        id: i64,
        baseline: &serde_json::Value,
        at: DateTime<Utc>,
        audit: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE rollouts SET baseline = $1, baseline_at = $2 WHERE id = $3")
            .bind(to_json(baseline))
            .bind(timestamp(at))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        append_audit_tx(&mut tx, with_rollout_id(vec![audit], id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the watcher's view of a rollout (gate results, a restarted
    /// bake clock) without bumping its version, with optional audit entries.
    pub async fn set_watch_state(
        &self,
        id: i64,
        readiness: Option<&serde_json::Value>,
        bake_started_at: Option<DateTime<Utc>>,
        audit: Vec<NewAuditEntry>,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE rollouts SET readiness = COALESCE($1, readiness), bake_started_at = COALESCE($2, bake_started_at) WHERE id = $3",
        )
        .bind(readiness.map(to_json))
        .bind(bake_started_at.map(timestamp))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append_audit_tx(&mut tx, with_rollout_id(audit, id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the watcher's breach counts for a rollout (no version bump).
    pub async fn set_streaks(
        &self,
        id: i64,
        streaks: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query("UPDATE rollouts SET streaks = $1 WHERE id = $2")
            .bind(to_json(streaks))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Appends entries that belong to no rollout change (e.g. a refused command).
    pub async fn append_audit(&self, entries: Vec<NewAuditEntry>) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        append_audit_tx(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut add = |sql: &str, p: Param| {
            params.push(p);
            conditions.push(format!("{sql} ${}", params.len()));
        };
        if let Some(id) = filter.rollout_id {
            add("rollout_id =", Param::I64(id));
        }
        if let Some(actor) = &filter.actor {
            add("actor =", Param::Text(actor.clone()));
        }
        if let Some(action) = &filter.action {
            add("action =", Param::Text(action.clone()));
        }
        if let Some(since) = filter.since {
            add("at >=", Param::Text(timestamp(since)));
        }
        if let Some(until) = filter.until {
            add("at <", Param::Text(timestamp(until)));
        }
        if let Some(after) = filter.after {
            add("seq >", Param::I64(after));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let limit = filter.limit.unwrap_or(i64::MAX).max(0);
        let sql = format!("SELECT * FROM audit_log {where_clause} ORDER BY seq LIMIT {limit}");
        // Only fixed column names are formatted in; values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in params {
            query = match p {
                Param::I64(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    /// Checks the whole hash chain, page by page.
    pub async fn verify_audit(&self) -> Result<VerifyReport, StoreError> {
        let mut verifier = Verifier::default();
        let mut after = 0;
        loop {
            let page = self
                .list_audit(&AuditFilter {
                    after: Some(after),
                    limit: Some(1000),
                    ..AuditFilter::default()
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            page.iter().for_each(|r| verifier.check(r));
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()?;
        Ok(verifier.finish(head))
    }

    /// Raw access for tests and operators' tooling (e.g. simulating tampering).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

fn with_rollout_id(mut entries: Vec<NewAuditEntry>, id: i64) -> Vec<NewAuditEntry> {
    for e in &mut entries {
        e.rollout_id.get_or_insert(id);
    }
    entries
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn append_audit_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    entries: Vec<NewAuditEntry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut **tx)
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
            action: e.action,
            rollout_id: e.rollout_id,
            phase: e.phase,
            flags_before: e.flags_before.as_ref().map(to_json),
            flags_after: e.flags_after.as_ref().map(to_json),
            reason: e.reason,
            outcome: e.outcome,
            detail: e.detail.as_ref().map(to_json),
            prev_hash: prev_hash.clone(),
            hash: String::new(),
        };
        record.hash = compute_hash(&record);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, actor, action, rollout_id, phase, flags_before, flags_after, \
             reason, outcome, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
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
        .execute(&mut **tx)
        .await?;
        prev_hash = record.hash;
    }
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(seq)
    .bind(&prev_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A nullable JSON column, parsed.
fn opt_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(from_json)
        .transpose()
}

/// A nullable timestamp column, parsed.
fn opt_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_time)
        .transpose()
}

fn rollout_from_row(row: &AnyRow) -> Result<Rollout, StoreError> {
    let state: String = row.try_get("state")?;
    Ok(Rollout {
        id: row.try_get("id")?,
        plan_name: row.try_get("plan_name")?,
        plan_hash: row.try_get("plan_hash")?,
        plan_text: row.try_get("plan_text")?,
        target_function: row.try_get("target_function")?,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        phase_index: row.try_get::<i64, _>("phase_index")? as usize,
        phase_name: row.try_get("phase_name")?,
        desired_flags: from_json(&row.try_get::<String, _>("desired_flags")?)?,
        observed_flags: opt_json(row, "observed_flags")?,
        observed_at: opt_time(row, "observed_at")?,
        generation: row.try_get("generation")?,
        applied_generation: row.try_get("applied_generation")?,
        pending_write: opt_json::<PendingWrite>(row, "pending_write")?,
        last_error: row.try_get("last_error")?,
        version: row.try_get("version")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        updated_at: parse_time(&row.try_get::<String, _>("updated_at")?)?,
        baseline: opt_json(row, "baseline")?,
        baseline_at: opt_time(row, "baseline_at")?,
        bake_started_at: opt_time(row, "bake_started_at")?,
        readiness: opt_json(row, "readiness")?,
        phase_stats: opt_json(row, "phase_stats")?,
        streaks: opt_json(row, "streaks")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
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

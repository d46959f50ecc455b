//! The `rollouts` table and its id counter. Commands save a whole rollout
//! under its version; the watcher's records (`Patch`) change one field
//! without bumping the version, but only while the rollout is still at the
//! version the watcher looked at.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{
    Store, StoreError, audit, from_json, is_unique_violation, opt_json, opt_time, parse_time,
    timestamp, to_json,
};
use crate::audit::NewAuditEntry;
use crate::domain::{Baseline, Readiness, RolloutId};
use crate::plan::RollbackTarget;
use crate::rollout::{PendingWrite, PhaseFlags, Rollout, State, phase_flags};

const COLUMNS: &str = "id, plan_name, plan_hash, plan_text, target_function, function_arn, \
    function_name, phases, rollback_to, region, webhooks, active_target, state, phase_index, \
    phase_name, desired_flags, observed_flags, observed_at, generation, applied_generation, \
    pending_write, last_error, version, created_at, updated_at, baseline, baseline_at, \
    bake_started_at, readiness, phase_stats, function_error, live_since, alias, routing, appconfig, delivery";

/// How many columns `COLUMNS` lists.
const COLUMN_COUNT: usize = 36;

/// Which rollouts to list, and which page of them.
#[derive(Debug, Clone, Default)]
pub struct RolloutFilter {
    pub state: Option<State>,
    pub plan: Option<String>,
    /// The function as a plan names it, its name, or its ARN.
    pub function: Option<String>,
    /// Rollouts that hold their function (in progress) first, then newest first.
    pub holding_first: bool,
    /// Only rollouts with a smaller id (a cursor for newest-first pages).
    pub before: Option<RolloutId>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// One rollout of a plan, for the plan page: which version it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanUse {
    pub id: RolloutId,
    pub plan_hash: String,
    pub state: State,
    pub created_at: DateTime<Utc>,
}

/// One watcher record on a rollout (no version bump; applied only while the
/// rollout is still at the version the watcher read).
#[derive(Debug, Clone, Copy)]
pub enum Patch<'a> {
    Baseline(&'a Baseline, DateTime<Utc>),
    Readiness(&'a Readiness),
    BakeRestarted(DateTime<Utc>),
    FunctionError(Option<&'a str>),
    /// The owned flags as the watcher read them.
    Observed(&'a crate::plan::Flags, DateTime<Utc>),
}

impl Store {
    /// Stores a new rollout (its id from the database) with its audit
    /// entries, in one transaction. Refuses when the function is held.
    pub async fn insert_rollout(
        &self,
        rollout: &Rollout,
        audit: Vec<NewAuditEntry>,
    ) -> Result<Rollout, StoreError> {
        let mut w = self.begin_write().await?;
        let id: i64 = sqlx::query(
            "UPDATE id_counters SET last_id = last_id + 1 WHERE name = 'rollouts' RETURNING last_id",
        )
        .fetch_one(&mut *w.tx)
        .await?
        .try_get("last_id")?;
        let mut stored = rollout.clone();
        stored.id = RolloutId(id);
        let values = column_values(&stored);
        let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO rollouts ({COLUMNS}) VALUES ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, v) in values {
            query = v.bind(query);
        }
        if let Err(e) = query.execute(&mut *w.tx).await {
            return Err(busy_or(e, &stored));
        }
        audit::append(&mut w, with_rollout_id(audit, stored.id)).await?;
        w.commit().await?;
        Ok(stored)
    }

    /// Saves `next`, a change of `before`, if the rollout is still at
    /// `before.version` (it is stored at the next version), appending its
    /// audit entries in the same transaction: no change without its entry,
    /// no entry without its change. Only the columns the change touches are
    /// written, so a watcher record made meanwhile (which does not bump the
    /// version: a baseline, readiness, the flags it read) is never
    /// overwritten with the stale values `before` held.
    pub async fn save_rollout(
        &self,
        next: &Rollout,
        before: &Rollout,
        audit: Vec<NewAuditEntry>,
    ) -> Result<Rollout, StoreError> {
        let expected_version = before.version;
        let mut stored = next.clone();
        stored.version = expected_version + 1;
        stored.updated_at = Utc::now();
        let old = column_values(before);
        let changed: Vec<(&str, Val)> = column_values(&stored)
            .into_iter()
            .zip(old)
            .filter(|((name, new), (_, was))| *name != "id" && new != was)
            .map(|(new, _)| new)
            .collect();
        let sets: Vec<String> = changed
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{name} = ${}", i + 3))
            .collect();
        let sql = format!(
            "UPDATE rollouts SET {} WHERE id = $1 AND version = $2",
            sets.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stored.id.0)
            .bind(expected_version);
        for (_, v) in changed {
            query = v.bind(query);
        }
        let mut w = self.begin_write().await?;
        let result = query
            .execute(&mut *w.tx)
            .await
            .map_err(|e| busy_or(e, &stored))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::VersionConflict {
                expected: expected_version,
            });
        }
        audit::append(&mut w, with_rollout_id(audit, stored.id)).await?;
        w.commit().await?;
        Ok(stored)
    }

    /// Applies a watcher record (with its audit entries) if the rollout is
    /// still at `version`; returns false, changing nothing, if it is not.
    pub async fn patch_rollout(
        &self,
        id: RolloutId,
        version: i64,
        patch: Patch<'_>,
        audit: Vec<NewAuditEntry>,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let query = match patch {
            Patch::Baseline(b, at) => {
                sqlx::query("UPDATE rollouts SET baseline = $3, baseline_at = $4 WHERE id = $1 AND version = $2")
                    .bind(id.0)
                    .bind(version)
                    .bind(to_json(b))
                    .bind(timestamp(at))
            }
            Patch::Readiness(r) => {
                sqlx::query("UPDATE rollouts SET readiness = $3 WHERE id = $1 AND version = $2")
                    .bind(id.0)
                    .bind(version)
                    .bind(to_json(r))
            }
            Patch::BakeRestarted(at) => sqlx::query(
                "UPDATE rollouts SET bake_started_at = $3, readiness = NULL WHERE id = $1 AND version = $2",
            )
            .bind(id.0)
            .bind(version)
            .bind(timestamp(at)),
            Patch::Observed(flags, at) => sqlx::query(
                "UPDATE rollouts SET observed_flags = $3, observed_at = $4 WHERE id = $1 AND version = $2",
            )
            .bind(id.0)
            .bind(version)
            .bind(to_json(flags))
            .bind(timestamp(at)),
            Patch::FunctionError(e) => {
                sqlx::query("UPDATE rollouts SET function_error = $3 WHERE id = $1 AND version = $2")
                    .bind(id.0)
                    .bind(version)
                    .bind(e.map(str::to_string))
            }
        };
        if query.execute(&mut *w.tx).await?.rows_affected() == 0 {
            return Ok(false);
        }
        audit::append(&mut w, with_rollout_id(audit, id)).await?;
        w.commit().await?;
        Ok(true)
    }

    pub async fn get_rollout(&self, id: RolloutId) -> Result<Option<Rollout>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// Rollouts matching `filter`, newest first (holding ones first when asked).
    pub async fn list_rollouts(&self, filter: &RolloutFilter) -> Result<Vec<Rollout>, StoreError> {
        // Served by the index rollouts_holding_first (the same expression).
        let order = if filter.holding_first {
            "(active_target IS NULL), id DESC"
        } else {
            "id DESC"
        };
        // Only fixed text is formatted in; values are bound.
        let sql = format!(
            "SELECT {COLUMNS} FROM rollouts \
             WHERE ($1 IS NULL OR state = $1) AND ($2 IS NULL OR plan_name = $2) \
             AND ($3 IS NULL OR target_function = $3 OR function_name = $3 OR function_arn = $3) \
             AND id < $4 \
             ORDER BY {order} LIMIT {} OFFSET {}",
            filter.limit.unwrap_or(i64::MAX).max(0),
            filter.offset.unwrap_or(0).max(0)
        );
        // Decoded as the rows arrive, so a long list never holds every raw
        // row as well as every rollout.
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.state.map(|s| s.as_str().to_string()))
            .bind(filter.plan.clone())
            .bind(filter.function.clone())
            .bind(filter.before.map_or(i64::MAX, |id| id.0))
            .fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            out.push(rollout_from_row(&row)?);
        }
        Ok(out)
    }

    /// Every rollout of plan `name`: which version (hash) each ran.
    pub async fn plan_uses(&self, name: &str) -> Result<Vec<PlanUse>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, plan_hash, state, created_at FROM rollouts WHERE plan_name = $1 ORDER BY id DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                Ok(PlanUse {
                    id: RolloutId(r.try_get("id")?),
                    plan_hash: r.try_get("plan_hash")?,
                    state: State::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
                    created_at: parse_time(&r.try_get::<String, _>("created_at")?)?,
                })
            })
            .collect()
    }

    /// Rollouts the watcher judges: every one whose flags may be live and
    /// changing (active, paused, failed) or that still has a write to land.
    pub async fn list_watched(&self) -> Result<Vec<Rollout>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts \
             WHERE state IN ('active', 'paused', 'failed') OR applied_generation < generation ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// The rollout holding the function with identity `function_arn`.
    pub async fn active_rollout_for(
        &self,
        function_arn: &str,
    ) -> Result<Option<Rollout>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts WHERE active_target = $1"
        )))
        .bind(function_arn)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// The rollout holding a function a plan names `function` (as it is
    /// spelled there, or by its ARN): a check before Lambda is asked.
    pub async fn active_rollout_named(
        &self,
        function: &str,
    ) -> Result<Option<Rollout>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts \
             WHERE active_target IS NOT NULL AND (target_function = $1 OR function_arn = $1)"
        )))
        .bind(function)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rollout_from_row).transpose()
    }

    /// Rollouts stored before their phase flags, region and webhooks were
    /// kept with them.
    pub async fn rollouts_missing_plan_facts(&self) -> Result<Vec<Rollout>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts WHERE phases IS NULL"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// Keeps a rollout's phase flags, rollback target, region and webhooks
    /// with it (no version bump: nothing about the rollout changed).
    pub async fn keep_plan_facts(&self, r: &Rollout) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "UPDATE rollouts SET phases = $2, rollback_to = $3, region = $4, webhooks = $5 \
             WHERE id = $1 AND phases IS NULL",
        )
        .bind(r.id.0)
        .bind(to_json(&r.phases))
        .bind(to_json(&r.rollback_to))
        .bind(r.region.clone())
        .bind(to_json(&r.webhooks))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rollouts holding a function under a name rather than a resolved ARN
    /// (stored before identities were resolved).
    pub async fn held_without_arn(&self) -> Result<Vec<Rollout>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rollouts \
             WHERE active_target IS NOT NULL AND function_arn NOT LIKE 'arn:%'"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    /// Records the identity Lambda resolved a held function to.
    pub async fn set_identity(
        &self,
        id: RolloutId,
        function_arn: &str,
        function_name: &str,
    ) -> Result<(), StoreError> {
        let _guard = self.write_lock.lock().await;
        sqlx::query(
            "UPDATE rollouts SET function_arn = $2, function_name = $3, active_target = $2 \
             WHERE id = $1 AND active_target IS NOT NULL",
        )
        .bind(id.0)
        .bind(function_arn)
        .bind(function_name)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::FunctionBusy {
                    function: function_arn.to_string(),
                }
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    /// Ids of rollouts with a recorded write not yet confirmed.
    pub async fn rollouts_with_pending_writes(&self) -> Result<Vec<RolloutId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM rollouts WHERE applied_generation < generation ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(RolloutId(r.try_get::<i64, _>("id")?)))
            .collect()
    }
}

/// A column's value, comparable (to write only what changed) and bindable.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    I64(i64),
    Text(String),
    OptText(Option<String>),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

impl Val {
    fn bind(self, q: AnyQuery<'_>) -> AnyQuery<'_> {
        match self {
            Val::I64(v) => q.bind(v),
            Val::Text(v) => q.bind(v),
            Val::OptText(v) => q.bind(v),
        }
    }
}

/// Every column of `COLUMNS`, in order, with its value for `r`.
fn column_values(r: &Rollout) -> Vec<(&'static str, Val)> {
    use Val::*;
    let values = vec![
        ("id", I64(r.id.0)),
        ("plan_name", Text(r.plan_name.clone())),
        ("plan_hash", Text(r.plan_hash.clone())),
        ("plan_text", Text(r.plan_text.clone())),
        ("target_function", Text(r.target_function.clone())),
        ("function_arn", Text(r.function_arn.clone())),
        ("function_name", Text(r.function_name.clone())),
        ("phases", Text(to_json(&r.phases))),
        ("rollback_to", Text(to_json(&r.rollback_to))),
        ("region", OptText(r.region.clone())),
        ("webhooks", Text(to_json(&r.webhooks))),
        (
            "active_target",
            OptText(r.holds_function().then(|| r.function_arn.clone())),
        ),
        ("state", Text(r.state.as_str().to_string())),
        ("phase_index", I64(r.phase_index as i64)),
        ("phase_name", Text(r.phase_name.clone())),
        ("desired_flags", Text(to_json(&r.desired_flags))),
        (
            "observed_flags",
            OptText(r.observed_flags.as_ref().map(to_json)),
        ),
        ("observed_at", OptText(r.observed_at.map(timestamp))),
        ("generation", I64(r.generation)),
        ("applied_generation", I64(r.applied_generation)),
        (
            "pending_write",
            OptText(r.pending_write.as_ref().map(to_json)),
        ),
        ("last_error", OptText(r.last_error.clone())),
        ("version", I64(r.version)),
        ("created_at", Text(timestamp(r.created_at))),
        ("updated_at", Text(timestamp(r.updated_at))),
        ("baseline", OptText(r.baseline.as_ref().map(to_json))),
        ("baseline_at", OptText(r.baseline_at.map(timestamp))),
        ("bake_started_at", OptText(r.bake_started_at.map(timestamp))),
        ("readiness", OptText(r.readiness.as_ref().map(to_json))),
        ("phase_stats", Text(to_json(&r.phase_stats))),
        ("function_error", OptText(r.function_error.clone())),
        ("live_since", OptText(r.live_since.map(timestamp))),
        ("alias", OptText(r.alias.clone())),
        ("routing", OptText(r.routing.as_ref().map(to_json))),
        ("appconfig", OptText(r.appconfig.as_ref().map(to_json))),
        ("delivery", OptText(r.delivery.as_ref().map(to_json))),
    ];
    debug_assert_eq!(values.len(), COLUMN_COUNT);
    values
}

fn busy_or(e: sqlx::Error, r: &Rollout) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::FunctionBusy {
            function: r.target_function.clone(),
        }
    } else {
        e.into()
    }
}

fn with_rollout_id(mut entries: Vec<NewAuditEntry>, id: RolloutId) -> Vec<NewAuditEntry> {
    for e in &mut entries {
        e.rollout_id.get_or_insert(id);
    }
    entries
}

fn rollout_from_row(row: &AnyRow) -> Result<Rollout, StoreError> {
    let state: String = row.try_get("state")?;
    let id = RolloutId(row.try_get("id")?);
    let plan_name: String = row.try_get("plan_name")?;
    let plan_text: String = row.try_get("plan_text")?;
    let target_function: String = row.try_get("target_function")?;
    let desired_flags = from_json(&row.try_get::<String, _>("desired_flags")?)?;
    // Rows from before these were kept (their `phases` is NULL) derive them
    // from the plan snapshot, parsed once (and store them at start-up). A
    // snapshot that no longer parses yields no phases: such a rollout can
    // only be abandoned, never "rolled back" to made-up flags. Kept rows
    // never parse: a NULL region there means the plan names none.
    let kept_phases: Option<Vec<PhaseFlags>> = opt_json(row, "phases")?;
    let derived = match kept_phases {
        Some(_) => None,
        None => crate::plan::Plan::parse(&plan_name, &plan_text).ok(),
    };
    let phases: Vec<PhaseFlags> = match kept_phases {
        Some(p) => p,
        None => derived.as_ref().map(phase_flags).unwrap_or_default(),
    };
    let rollback_to: RollbackTarget = match opt_json(row, "rollback_to")? {
        Some(r) => r,
        None => derived
            .as_ref()
            .map_or(RollbackTarget::Baseline, |p| p.rollback),
    };
    let webhooks: Vec<String> = match opt_json(row, "webhooks")? {
        Some(w) => w,
        None => derived
            .as_ref()
            .map(|p| p.webhooks.clone())
            .unwrap_or_default(),
    };
    let region: Option<String> = match row.try_get::<Option<String>, _>("region")? {
        Some(r) => Some(r),
        None => derived.as_ref().and_then(|p| p.target.region.clone()),
    };
    let function_arn: Option<String> = row.try_get("function_arn")?;
    let function_name: Option<String> = row.try_get("function_name")?;
    Ok(Rollout {
        id,
        plan_hash: row.try_get("plan_hash")?,
        function_arn: function_arn.unwrap_or_else(|| target_function.clone()),
        function_name: function_name.unwrap_or_else(|| target_function.clone()),
        target_function,
        plan_name,
        plan_text,
        phases,
        rollback_to,
        region,
        webhooks,
        state: State::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state:?}")))?,
        phase_index: row.try_get::<i64, _>("phase_index")?.max(0) as usize,
        phase_name: row.try_get("phase_name")?,
        desired_flags,
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
        phase_stats: opt_json(row, "phase_stats")?.unwrap_or_default(),
        function_error: row.try_get("function_error")?,
        live_since: opt_time(row, "live_since")?,
        alias: row.try_get("alias")?,
        routing: opt_json(row, "routing")?,
        appconfig: opt_json(row, "appconfig")?,
        delivery: opt_json(row, "delivery")?,
    })
}

//! JSON shapes the API returns and accepts; the CLI's client uses the same
//! types, so the two cannot drift apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditRecord;
use crate::domain::{Baseline, PhaseStats, Readiness, RolloutId};
use crate::plan::RollbackTarget;
use crate::rollout::readiness::{self, Freshness};
use crate::rollout::{PendingWrite, Rollout, State};

/// A rollout as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutView {
    pub id: RolloutId,
    pub plan: String,
    /// sha256 of the plan snapshot the rollout runs.
    pub plan_hash: String,
    /// The function as the plan names it.
    pub target_function: String,
    /// The function's unqualified ARN as Lambda resolved it (its identity).
    pub function_arn: String,
    pub state: State,
    /// 0 = baseline, 1.. = the plan's phases.
    pub phase_index: usize,
    pub phase_name: String,
    /// Every phase name, baseline first.
    pub phases: Vec<String>,
    /// The phase an `advance` would move to (null at the last phase).
    pub next_phase: Option<String>,
    /// Where a rollback returns the flags to.
    #[schema(value_type = String)]
    pub rollback_to: RollbackTarget,
    /// What the owned flags should be now.
    pub desired_flags: BTreeMap<String, String>,
    /// The owned flags as last read back from the function.
    pub observed_flags: Option<BTreeMap<String, String>>,
    pub observed_at: Option<DateTime<Utc>>,
    /// True while a recorded flag write is not yet confirmed.
    pub write_pending: bool,
    pub pending_write: Option<PendingWrite>,
    pub last_error: Option<String>,
    /// Why the function's environment cannot be read whole right now.
    pub function_error: Option<String>,
    /// What an operator should look at (empty when all is well).
    pub attention: Vec<String>,
    /// Optimistic-concurrency version: pass it as `expected_version` or `If-Match`.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Baseline metrics (label → value, samples), recorded by the watcher.
    pub baseline: Option<Baseline>,
    pub baseline_at: Option<DateTime<Utc>>,
    /// When the current phase's bake time started.
    pub bake_started_at: Option<DateTime<Utc>>,
    /// When the flags now on the function took effect (their write was
    /// confirmed): the watcher reads no data from before.
    pub live_since: Option<DateTime<Utc>>,
    /// Why the current phase may not be promoted yet (empty = ready).
    pub blockers: Vec<String>,
    /// The plan's release windows now: "open until …" or "closed: the
    /// next window opens …" (absent when the plan has no `[schedule]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_window: Option<String>,
    /// True when the phase may be promoted (manual phases: ready for approval).
    pub ready: bool,
    /// The watcher's latest evaluation of the current phase.
    pub readiness: Option<Readiness>,
    /// Metrics of finished phases by name.
    pub phase_stats: PhaseStats,
    /// `lambda-alias`: the alias callers invoke.
    pub alias: Option<String>,
    /// `lambda-alias`: where the alias points, as last confirmed.
    pub routing: Option<crate::rollout::AliasRouting>,
    /// A canary step: the percentage of the alias's invocations the
    /// phase's flags serve (the stable version serves the rest).
    pub traffic: Option<u32>,
    /// `appconfig`: the feature-flag profile the flags live in.
    pub appconfig: Option<crate::plan::AppConfigTarget>,
    /// `appconfig`: the newest write's deployment as last seen (state,
    /// percentage, when it completed, when the flags count as live).
    pub delivery: Option<crate::backend::Delivery>,
}

impl RolloutView {
    /// The view of `r` (with its parsed plan snapshot) at `now`: its
    /// blockers depend on the time.
    pub fn new(
        r: &Rollout,
        plan: Result<std::sync::Arc<crate::plan::Plan>, String>,
        freshness: Freshness,
        now: DateTime<Utc>,
    ) -> Self {
        let phases: Vec<String> = r.phases.iter().map(|p| p.name.clone()).collect();
        let release_window = plan
            .as_ref()
            .ok()
            .filter(|_| !r.state.is_terminal())
            .and_then(|p| p.schedule.describe(now));
        let blockers = match (&plan, r.state.is_terminal()) {
            (_, true) => Vec::new(),
            (Ok(plan), false) => readiness::promotion_blockers(
                plan,
                r.phase_index,
                r.bake_started_at,
                now,
                r.readiness.as_ref(),
                freshness,
            ),
            (Err(_), false) => vec!["the plan snapshot no longer parses".to_string()],
        };
        // An AppConfig step under way: its bake starts once it is live.
        let mut blockers = blockers;
        if let Some(d) = r
            .delivery
            .as_ref()
            .filter(|d| r.write_pending() && d.generation == r.generation && d.is_running())
        {
            blockers.insert(
                0,
                format!(
                    "its flags are not live yet ({}); the bake starts one extension poll after the deployment completes",
                    d.describe()
                ),
            );
        }
        let next_phase = (!r.state.is_terminal())
            .then(|| phases.get(r.phase_index + 1).cloned())
            .flatten();
        RolloutView {
            id: r.id,
            plan: r.plan_name.clone(),
            plan_hash: r.plan_hash.clone(),
            target_function: r.target_function.clone(),
            function_arn: r.function_arn.clone(),
            state: r.state,
            phase_index: r.phase_index,
            phase_name: r.phase_name.clone(),
            phases,
            next_phase,
            rollback_to: r.rollback_to,
            desired_flags: r.desired_flags.clone(),
            observed_flags: r.observed_flags.clone(),
            observed_at: r.observed_at,
            write_pending: r.write_pending(),
            pending_write: r.pending_write.clone(),
            last_error: r.last_error.clone(),
            function_error: r.function_error.clone(),
            attention: attention(r, plan.err()),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            baseline: r.baseline.clone(),
            baseline_at: r.baseline_at,
            bake_started_at: r.bake_started_at,
            live_since: r.live_since,
            ready: !r.state.is_terminal() && blockers.is_empty(),
            release_window,
            blockers,
            readiness: r.readiness.clone(),
            phase_stats: r.phase_stats.clone(),
            alias: r.alias.clone(),
            routing: r.routing.clone(),
            traffic: r.traffic_at(r.phase_index),
            appconfig: r.appconfig.clone(),
            delivery: r.delivery.clone(),
        }
    }
}

/// What needs an operator: a plan that no longer parses, an environment
/// that cannot be read, a failed rollout, a write AWS keeps refusing.
fn attention(r: &Rollout, plan_error: Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(e) = plan_error {
        out.push(format!(
            "{e}; guardrails cannot be judged: roll it back or abandon it"
        ));
    }
    if let Some(e) = &r.function_error {
        out.push(format!("the function cannot be read: {e}"));
    }
    if r.state == State::Failed {
        out.push(format!(
            "the rollout failed: {}",
            r.last_error
                .as_deref()
                .unwrap_or("a flag write was refused")
        ));
    } else if r.write_pending()
        && let Some(e) = &r.last_error
    {
        out.push(format!("a flag write is pending: {e}"));
    }
    out
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RolloutList {
    /// Newest first.
    pub rollouts: Vec<RolloutView>,
    /// With `limit`: pass as `cursor` to get the next (older) page; null on
    /// the last page.
    pub next_cursor: Option<i64>,
}

/// Query of `GET /api/v1/rollouts`.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RolloutQuery {
    /// pending, active, paused, completed, rolled_back, failed or abandoned.
    pub state: Option<String>,
    /// Only rollouts of this plan.
    pub plan: Option<String>,
    /// At most this many (1 to 1000); every matching rollout without it.
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page: rollouts older than it.
    pub cursor: Option<i64>,
}

/// Body of `POST /api/v1/rollouts`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// Plan name (file stem in the plans directory).
    pub plan: String,
    pub reason: Option<String>,
    /// Who asks; defaults to "api".
    pub actor: Option<String>,
    /// Start although a preflight check fails. Needs a reason; the start's
    /// audit entry records the failures forced past.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// What a start answers: the rollout, and the preflight it ran.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StartResponse {
    #[serde(flatten)]
    pub rollout: RolloutView,
    pub preflight: crate::preflight::Report,
}

/// Body of `POST /api/v1/rollouts/{id}/{advance|pause|resume|rollback|abandon}`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    /// Why; required for rollback and abandon, recorded in the audit log.
    pub reason: Option<String>,
    /// Refuse with 409 unless the rollout is at this version (or use If-Match).
    pub expected_version: Option<i64>,
    pub actor: Option<String>,
    /// Rollback only: override the plan's rollback target.
    #[schema(value_type = Option<String>)]
    pub to: Option<RollbackTarget>,
    /// Advance only: promote although the bake time has not elapsed or a
    /// gate does not hold. Needs a reason; the audit log records both.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// Query of `GET /api/v1/audit` and `/audit/export`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries of this rollout.
    pub rollout: Option<i64>,
    pub actor: Option<String>,
    /// An audit action (start, advance, flags_write, …).
    pub action: Option<String>,
    /// RFC 3339 time: entries at or after it.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339 time: entries before it.
    pub until: Option<DateTime<Utc>>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Page size, 1..=1000 (default 100); for an export, the most entries.
    pub limit: Option<i64>,
    /// Export format: jsonl (default) or csv.
    pub format: Option<String>,
}

/// One audit entry as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub rollout_id: Option<i64>,
    pub phase: Option<String>,
    pub flags_before: Option<BTreeMap<String, String>>,
    pub flags_after: Option<BTreeMap<String, String>>,
    pub reason: Option<String>,
    pub outcome: String,
    #[schema(value_type = Option<Object>)]
    pub detail: Option<serde_json::Value>,
    pub prev_hash: String,
    pub hash: String,
}

fn parse<T: serde::de::DeserializeOwned>(s: &Option<String>) -> Option<T> {
    s.as_deref().and_then(|t| serde_json::from_str(t).ok())
}

impl From<&AuditRecord> for AuditEntryView {
    fn from(r: &AuditRecord) -> Self {
        AuditEntryView {
            seq: r.seq,
            at: r.at.clone(),
            actor: r.actor.clone(),
            action: r.action.clone(),
            rollout_id: r.rollout_id,
            phase: r.phase.clone(),
            flags_before: parse(&r.flags_before),
            flags_after: parse(&r.flags_after),
            reason: r.reason.clone(),
            outcome: r.outcome.clone(),
            detail: parse(&r.detail),
            prev_hash: r.prev_hash.clone(),
            hash: r.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<i64>,
}

/// A plan in the list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanSummary {
    pub name: String,
    pub valid: bool,
    pub description: Option<String>,
    pub target_function: Option<String>,
    pub phases: Vec<String>,
    pub hash: String,
    /// `file:line:col: message` for an invalid plan.
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanList {
    pub plans: Vec<PlanSummary>,
}

/// Result of validating plan text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationResult {
    pub valid: bool,
    pub errors: Vec<PlanErrorView>,
    /// The parsed plan when valid.
    #[schema(value_type = Option<Object>)]
    pub plan: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PlanErrorView {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

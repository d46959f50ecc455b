//! What the API and the dashboard read: parsed plan snapshots (once per
//! distinct plan), pages of rollouts, chart points, plan usage, and the
//! audit chain's verification (kept, so a page view never walks the whole
//! log).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Service, ServiceError};
use crate::audit::VerifyReport;
use crate::domain::{MetricPoint, RolloutId, WatchMemory};
use crate::plan::Plan;
use crate::rollout::Rollout;
use crate::store::{PlanUse, Sparkline};

/// How long the list of valid plan names is reused.
const PLAN_NAMES_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// The audit chain's last verification.
#[derive(Debug, Clone)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub report: VerifyReport,
}

impl Service {
    /// A rollout's plan snapshot, parsed once per distinct snapshot.
    pub fn plan_of(&self, r: &Rollout) -> Result<Arc<Plan>, String> {
        let mut cache = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(r.plan_hash.clone())
            .or_insert_with(|| r.plan().map(Arc::new))
            .clone()
    }

    /// The watcher's memory of these rollouts (those that have one).
    pub async fn watch_memories_of(
        &self,
        ids: &[RolloutId],
    ) -> Result<HashMap<RolloutId, WatchMemory>, ServiceError> {
        Ok(self.store.watch_memories_of(ids).await?)
    }

    /// A rollout's chart points since `since`, oldest first.
    pub async fn points(
        &self,
        id: RolloutId,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<MetricPoint>, ServiceError> {
        Ok(self.store.points(id, since).await?)
    }

    /// The error rate of several rollouts since `since`, for sparklines.
    pub async fn error_rate_sparklines(
        &self,
        ids: &[RolloutId],
        since: DateTime<Utc>,
    ) -> Result<HashMap<RolloutId, Sparkline>, ServiceError> {
        Ok(self.store.error_rate_sparklines(ids, since).await?)
    }

    /// A rollout's chart markers, newest first: (time, action, phase).
    pub async fn marker_entries(
        &self,
        id: RolloutId,
        limit: i64,
    ) -> Result<Vec<(String, String, Option<String>)>, ServiceError> {
        Ok(self.store.marker_entries(id, limit).await?)
    }

    /// The names of the valid plans in the plans directory (read at most
    /// every few seconds: the overview asks on every view). The files are
    /// read and parsed on a blocking thread, once, while other views wait.
    pub async fn valid_plan_names(&self) -> Vec<String> {
        let mut cache = self.plan_names.lock().await;
        if let Some((at, names)) = cache.as_ref()
            && at.elapsed() < PLAN_NAMES_FOR
        {
            return names.clone();
        }
        let dir = self.plans_dir().to_path_buf();
        let names = tokio::task::spawn_blocking(move || {
            crate::plan::load_dir(&dir)
                .map(|files| {
                    files
                        .into_iter()
                        .filter(|f| Plan::parse(&f.name, &f.text).is_ok())
                        .map(|f| f.name)
                        .collect::<Vec<String>>()
                })
                .unwrap_or_default()
        })
        .await
        .unwrap_or_default();
        *cache = Some((std::time::Instant::now(), names.clone()));
        names
    }

    /// Every rollout of plan `name` and the plan version it ran.
    pub async fn plan_uses(&self, name: &str) -> Result<Vec<PlanUse>, ServiceError> {
        Ok(self.store.plan_uses(name).await?)
    }

    /// The audit chain's last verification, if one has run.
    pub fn verification(&self) -> Option<Verification> {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies the whole chain now and keeps the result.
    pub async fn verify_and_keep(&self) -> Result<Verification, ServiceError> {
        let report = self.store.verify_audit().await?;
        let v = Verification {
            at: Utc::now(),
            report,
        };
        *self.verified.lock().unwrap_or_else(|p| p.into_inner()) = Some(v.clone());
        Ok(v)
    }
}

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

    /// A rollout's chart points, oldest first, of at most as many ticks as
    /// a chart draws (see `render::chart_indices`).
    pub async fn chart_points(
        &self,
        id: RolloutId,
        pick: impl FnOnce(usize) -> Vec<usize>,
    ) -> Result<Vec<MetricPoint>, ServiceError> {
        Ok(self.store.points_of_rows(id, None, pick).await?)
    }

    /// The error rate of several rollouts since `since`, for sparklines.
    pub async fn error_rate_sparklines(
        &self,
        ids: &[RolloutId],
        since: DateTime<Utc>,
    ) -> Result<HashMap<RolloutId, Sparkline>, ServiceError> {
        let now = std::time::Instant::now();
        let (mut found, missing) = self.sparks().lookup(ids, since, now);
        if !missing.is_empty() {
            let read = self.store.error_rate_sparklines(&missing, since).await?;
            self.sparks().store(&missing, &read, since, now);
            found.extend(read);
        }
        Ok(found)
    }

    /// A rollout's chart markers, newest first: (time, action, phase).
    pub async fn marker_entries(
        &self,
        id: RolloutId,
        limit: i64,
    ) -> Result<Vec<(String, String, Option<String>)>, ServiceError> {
        Ok(self.store.marker_entries(id, limit).await?)
    }

    /// The names of the valid plans in the plans directory, read at most
    /// every few seconds (the overview asks on every view). The files are
    /// read and parsed on a blocking thread by one caller while the others
    /// keep the names read before, so no view waits for a refresh but the
    /// very first.
    pub async fn valid_plan_names(&self) -> Arc<Vec<String>> {
        let now = std::time::Instant::now();
        {
            let mut cache = self.plan_names();
            match cache.read_at {
                Some(at) if now.duration_since(at) < PLAN_NAMES_FOR => {
                    return cache.names.clone();
                }
                Some(_) if cache.refreshing => return cache.names.clone(),
                _ => cache.refreshing = true,
            }
        }
        // Cleared however this call ends (a client that goes away drops it).
        struct Refreshing<'a>(&'a Service);
        impl Drop for Refreshing<'_> {
            fn drop(&mut self) {
                self.0.plan_names().refreshing = false;
            }
        }
        let _refreshing = Refreshing(self);
        let dir = self.plans_dir().to_path_buf();
        let names = Arc::new(
            tokio::task::spawn_blocking(move || {
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
            .unwrap_or_default(),
        );
        let mut cache = self.plan_names();
        cache.read_at = Some(std::time::Instant::now());
        cache.names = names.clone();
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

//! Preflight for a plan: the AWS checks (`preflight::gather`) plus what only
//! the service knows: whether another rollout holds the function.

use chrono::{DateTime, Utc};

use super::{Service, ServiceError};
use crate::plan::{BackendKind, Plan};
use crate::preflight::{Report, findings};

impl Service {
    /// Runs every preflight check of plan `plan_name` (writes nothing).
    pub async fn preflight(&self, plan_name: &str) -> Result<Report, ServiceError> {
        let (plan, _) = self.load_plan(plan_name)?;
        self.preflight_plan(&plan, Utc::now()).await
    }

    pub(super) async fn preflight_plan(
        &self,
        plan: &Plan,
        now: DateTime<Utc>,
    ) -> Result<Report, ServiceError> {
        let run = self.preflighter.run(plan, now).await;
        let mut checks = run.checks;
        let function = &plan.target.function;
        let mut holder = self.store.active_rollout_named(function).await?;
        // An appconfig rollout holds its profile, not the function: only
        // its spelling is compared here (the start resolves the profile).
        if holder.is_none()
            && plan.target.backend != BackendKind::AppConfig
            && let Some(arn) = &run.function_arn
        {
            holder = self.store.active_rollout_for(arn).await?;
        }
        let check = findings::holder_check(
            function,
            holder
                .as_ref()
                .map(|h| (h.id.0, h.plan_name.as_str(), h.phase_name.as_str())),
        );
        // Next to the function's own checks.
        let at = checks
            .iter()
            .rposition(|c| c.id.starts_with("function."))
            .map_or(0, |i| i + 1);
        checks.insert(at, check);
        Ok(Report::new(&plan.name, now, checks))
    }
}

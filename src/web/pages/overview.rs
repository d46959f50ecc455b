//! `/`: every rollout at a glance, holding ones first.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use serde::Deserialize;

use super::render::{self, Ts};
use super::{Chrome, PageError, html};
use crate::rollout::health::health;
use crate::rollout::readiness;
use crate::rollout::{Rollout, State as RolloutState};
use crate::store::RolloutFilter;
use crate::web::AppState;

/// Rollouts per page.
const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct OverviewQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    function: String,
    page: Option<i64>,
    /// Set by a redirect after an action elsewhere.
    done: Option<String>,
}

/// One rollout's line.
pub struct Row {
    pub id: i64,
    pub plan: String,
    pub function: String,
    pub state: &'static str,
    pub state_css: &'static str,
    pub phase: String,
    pub health: &'static str,
    pub health_css: &'static str,
    /// "ready for approval", "bake 2h10m left", a blocker, or "".
    pub readiness: String,
    /// Every blocker (the cell shows the first, these on hover).
    pub blockers: String,
    pub more_blockers: usize,
    pub ready: bool,
    pub sparkline: String,
    pub updated: Ts,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub chrome: Chrome,
    pub rows: Vec<Row>,
    pub state: String,
    pub function: String,
    pub states: Vec<&'static str>,
    pub plans: std::sync::Arc<Vec<String>>,
    pub prev: Option<String>,
    pub next: Option<String>,
    /// This page's own URL (live refresh fetches it again).
    pub self_url: String,
    pub flash: Option<String>,
}

/// The badge modifier of a state.
pub fn state_css(s: RolloutState) -> &'static str {
    match s {
        RolloutState::Active => "ok",
        RolloutState::RolledBack => "rolled-back",
        RolloutState::Failed => "attention",
        RolloutState::Pending | RolloutState::Paused => "drift",
        RolloutState::Completed | RolloutState::Abandoned => "neutral",
    }
}

fn query_string(state: &str, function: &str, page: i64) -> String {
    let mut parts = Vec::new();
    if !state.is_empty() {
        parts.push(format!("state={}", urlencode(state)));
    }
    if !function.is_empty() {
        parts.push(format!("function={}", urlencode(function)));
    }
    if page > 0 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() {
        "/".into()
    } else {
        format!("/?{}", parts.join("&"))
    }
}

/// Percent-encoding for a query value (links the page builds itself).
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn page(
    State(app): State<AppState>,
    q: Result<Query<OverviewQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return PageError::bad_request(e.body_text()).page(&app),
    };
    match build(&app, q).await {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

async fn build(app: &AppState, q: OverviewQuery) -> Result<OverviewPage, PageError> {
    let state = match q.state.as_str() {
        "" => None,
        s => Some(
            RolloutState::parse(s)
                .ok_or_else(|| PageError::bad_request(format!("unknown state {s:?}")))?,
        ),
    };
    crate::domain::text::check("function", &q.function, 256)
        .map_err(|e| PageError::bad_request(e.0))?;
    let page = q.page.unwrap_or(0).max(0);
    let service = &app.service;
    let rollouts = service
        .rollouts(&RolloutFilter {
            state,
            function: (!q.function.is_empty()).then(|| q.function.clone()),
            holding_first: true,
            limit: Some(PAGE_SIZE + 1),
            offset: Some(page * PAGE_SIZE),
            ..RolloutFilter::default()
        })
        .await?;
    let more = rollouts.len() as i64 > PAGE_SIZE;
    let rollouts: Vec<Rollout> = rollouts.into_iter().take(PAGE_SIZE as usize).collect();
    let now = Utc::now();
    let ids: Vec<_> = rollouts.iter().map(|r| r.id).collect();
    let memories = service.watch_memories_of(&ids).await?;
    let mut sparks = service
        .error_rate_sparklines(&ids, now - TimeDelta::hours(1))
        .await?;
    let rows = rollouts
        .iter()
        .map(|r| {
            let plan = service.plan_of(r);
            let h = health(r, memories.get(&r.id), plan.is_ok());
            let blockers = match &plan {
                Ok(p) if !r.state.is_terminal() => readiness::promotion_blockers(
                    p,
                    r.phase_index,
                    r.bake_started_at,
                    now,
                    r.readiness.as_ref(),
                    service.freshness(),
                ),
                _ => Vec::new(),
            };
            let ready = !r.state.is_terminal() && r.phase_index > 0 && blockers.is_empty();
            let readiness = if r.state.is_terminal() {
                String::new()
            } else if ready {
                "ready for approval".to_string()
            } else {
                blockers.first().cloned().unwrap_or_default()
            };
            let more_blockers = blockers.len().saturating_sub(1);
            let all_blockers = blockers.join("; ");
            let values: Vec<Option<f64>> = sparks
                .remove(&r.id)
                .unwrap_or_default()
                .into_iter()
                .map(|(_, v)| v)
                .collect();
            Row {
                id: r.id.0,
                plan: r.plan_name.clone(),
                function: r.target_function.clone(),
                state: r.state.as_str(),
                state_css: state_css(r.state),
                phase: format!(
                    "{} ({}/{})",
                    r.phase_name,
                    r.phase_index,
                    r.phase_count().saturating_sub(1)
                ),
                health: h.label(),
                health_css: h.css(),
                readiness,
                blockers: all_blockers,
                more_blockers,
                ready,
                sparkline: render::sparkline(&values, "error rate"),
                updated: Ts::of(r.updated_at),
            }
        })
        .collect();
    let plans = service.valid_plan_names().await;
    Ok(OverviewPage {
        chrome: Chrome::new(app, "overview"),
        rows,
        states: RolloutState::ALL.iter().map(|s| s.as_str()).collect(),
        plans,
        prev: (page > 0).then(|| query_string(&q.state, &q.function, page - 1)),
        next: more.then(|| query_string(&q.state, &q.function, page + 1)),
        self_url: query_string(&q.state, &q.function, page),
        flash: q.done.map(|d| format!("{d} recorded")),
        state: q.state,
        function: q.function,
    })
}

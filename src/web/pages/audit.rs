//! `/audit`: the audit log, newest first, filtered by rollout, actor,
//! action and time; cursor pages served by indexes; export of the current
//! filter; the chain's verification at the top (kept from the last run, so
//! a page view never walks a million entries).

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use super::overview::urlencode;
use super::render::Ts;
use super::rollout::{AuditRow, audit_row};
use super::{Chrome, PageError, html};
use crate::domain::{Action, RolloutId};
use crate::store::AuditFilter;
use crate::web::AppState;

const PAGE_SIZE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct AuditPageQuery {
    #[serde(default)]
    rollout: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DDTHH:MM` (UTC) or RFC 3339.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    before: Option<i64>,
}

pub struct VerifyView {
    pub ok: bool,
    pub at: Ts,
    pub entries: u64,
    pub problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub audit: Vec<AuditRow>,
    pub rollout: String,
    pub actor: String,
    pub action: String,
    pub since: String,
    pub until: String,
    pub actions: Vec<&'static str>,
    pub older: Option<String>,
    pub newest: Option<String>,
    pub export_csv: String,
    pub export_jsonl: String,
    pub verification: Option<VerifyView>,
}

/// A time from the filter form (`datetime-local` gives no zone: UTC).
fn parse_when(field: &str, s: &str) -> Result<Option<DateTime<Utc>>, PageError> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.to_utc()));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(PageError::bad_request(format!(
        "{field} {s:?} is not a time: use YYYY-MM-DDTHH:MM (UTC) or RFC 3339"
    )))
}

fn filter_query(q: &AuditPageQuery) -> String {
    [
        ("rollout", &q.rollout),
        ("actor", &q.actor),
        ("action", &q.action),
        ("since", &q.since),
        ("until", &q.until),
    ]
    .iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| format!("{k}={}", urlencode(v)))
    .collect::<Vec<_>>()
    .join("&")
}

pub async fn page(
    State(app): State<AppState>,
    q: Result<Query<AuditPageQuery>, axum::extract::rejection::QueryRejection>,
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

async fn build(app: &AppState, q: AuditPageQuery) -> Result<AuditPage, PageError> {
    let rollout = match q.rollout.trim() {
        "" => None,
        s => Some(s.parse::<RolloutId>().map_err(PageError::bad_request)?),
    };
    crate::domain::text::check("actor", &q.actor, 256).map_err(|e| PageError::bad_request(e.0))?;
    let action = match q.action.as_str() {
        "" => None,
        a => Some(
            Action::parse(a)
                .ok_or_else(|| PageError::bad_request(format!("unknown action {a:?}")))?,
        ),
    };
    let filter = AuditFilter {
        rollout_id: rollout,
        actor: (!q.actor.is_empty()).then(|| q.actor.clone()),
        action,
        since: parse_when("since", &q.since)?,
        until: parse_when("until", &q.until)?,
        before: q.before,
        descending: true,
        limit: Some(PAGE_SIZE + 1),
        ..AuditFilter::default()
    };
    let records = app.service.audit(&filter).await?;
    let more = records.len() as i64 > PAGE_SIZE;
    let shown: Vec<_> = records.iter().take(PAGE_SIZE as usize).collect();
    let base = filter_query(&q);
    let with = |extra: String| {
        let joined = [base.clone(), extra]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        if joined.is_empty() {
            "/audit".to_string()
        } else {
            format!("/audit?{joined}")
        }
    };
    let older = more
        .then(|| shown.last().map(|e| with(format!("before={}", e.seq))))
        .flatten();
    let export = |format: &str| {
        let mut parts = vec![format!("format={format}")];
        if let Some(r) = rollout {
            parts.push(format!("rollout={r}"));
        }
        for (k, v) in [("actor", &q.actor), ("action", &q.action)] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        if let Some(t) = filter.since {
            parts.push(format!("since={}", urlencode(&t.to_rfc3339())));
        }
        if let Some(t) = filter.until {
            parts.push(format!("until={}", urlencode(&t.to_rfc3339())));
        }
        format!("/api/v1/audit/export?{}", parts.join("&"))
    };
    Ok(AuditPage {
        chrome: Chrome::new(app, "audit"),
        audit: shown.into_iter().map(audit_row).collect(),
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
        newest: q.before.is_some().then(|| with(String::new())),
        older,
        export_csv: export("csv"),
        export_jsonl: export("jsonl"),
        verification: app.service.verification().map(|v| VerifyView {
            ok: v.report.ok,
            at: Ts::of(v.at),
            entries: v.report.entries,
            problems: v
                .report
                .problems
                .iter()
                .map(|p| p.problem.clone())
                .collect(),
        }),
        rollout: q.rollout,
        actor: q.actor,
        action: q.action,
        since: q.since,
        until: q.until,
    })
}

/// Verifies the whole chain now (it may take a while on a long log).
pub async fn verify_now(State(app): State<AppState>) -> Response {
    match app.service.verify_and_keep().await {
        Ok(_) => Redirect::to("/audit").into_response(),
        Err(e) => PageError::from(e).page(&app),
    }
}

//! `/rollouts/{id}`: one rollout — its phases, readiness, flags, charts
//! and audit trail — and the demo's "make this phase bad" control.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::overview::state_css;
use super::render::{self, ChartData, FlagChange, Ts};
use super::{Chrome, PageError, html};
use crate::audit::AuditRecord;
use crate::domain::RolloutId;
use crate::plan::{Bound, Plan};
use crate::rollout::health::health;
use crate::rollout::readiness;
use crate::rollout::{Rollout, State as RolloutState};
use crate::store::AuditFilter;
use crate::web::AppState;

/// Audit entries shown on the page (the audit page has the rest).
const AUDIT_SHOWN: i64 = 50;
/// Entries read for chart markers.
const MARKERS_READ: i64 = 200;

/// A phase on the timeline.
pub struct TimelinePhase {
    pub name: String,
    /// done | current | next
    pub status: &'static str,
    pub bake: String,
    pub changes: Vec<FlagChange>,
}

/// An action the page offers.
pub struct ActionLink {
    pub label: String,
    pub href: String,
    /// primary | danger | subtle
    pub css: &'static str,
}

pub struct GateRow {
    pub name: String,
    pub verdict: String,
    pub css: &'static str,
    pub observed: String,
    pub required: String,
    pub samples: String,
    pub explanation: String,
}

pub struct FlagRow {
    pub flag: String,
    pub desired: String,
    pub actual: String,
    pub drift: bool,
}

pub struct BaselineRow {
    pub label: String,
    pub value: String,
    pub samples: u64,
}

pub struct ChartView {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// JSON for the page's script (safe inside a script element).
    pub json: String,
    /// The text alternative: time, then each series' value.
    pub headers: Vec<String>,
    pub rows: Vec<(Ts, Vec<String>)>,
}

pub struct AuditRow {
    pub seq: i64,
    pub at: Ts,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub phase: String,
    pub changes: Vec<FlagChange>,
    pub reason: String,
    pub evidence: String,
}

pub struct Decided {
    pub at: Ts,
    pub action: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "rollout.html")]
pub struct RolloutPage {
    pub chrome: Chrome,
    /// Two-person requests to enter a protected phase, newest first.
    pub approvals: Vec<ApprovalLine>,
    pub id: i64,
    pub plan: String,
    pub plan_hash: String,
    pub function: String,
    pub function_arn: String,
    pub state: &'static str,
    pub state_css: &'static str,
    pub health: &'static str,
    pub health_css: &'static str,
    pub version: i64,
    pub phase: String,
    pub terminal: bool,
    pub timeline: Vec<TimelinePhase>,
    pub actions: Vec<ActionLink>,
    pub rollback_href: Option<String>,
    pub ready: bool,
    pub blockers: Vec<String>,
    /// The plan's release windows now ("open until …", "closed: …").
    pub release_window: Option<String>,
    pub bake: String,
    pub gates: Vec<GateRow>,
    pub baseline: Vec<BaselineRow>,
    pub flags: Vec<FlagRow>,
    pub observed_at: Option<Ts>,
    pub attention: Vec<String>,
    pub write_pending: Option<String>,
    pub decided: Option<Decided>,
    pub charts: Vec<ChartView>,
    pub audit: Vec<AuditRow>,
    pub audit_href: String,
    /// Demo only: the flags "make this phase bad" turns bad.
    pub demo_flags: Vec<String>,
    /// `lambda-alias`: how the alias splits traffic now, in words;
    /// `appconfig`: where its deployment stands.
    pub traffic: Option<String>,
    /// The label of `traffic`: "Traffic", or "AppConfig" for that backend.
    pub traffic_label: &'static str,
    pub flash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    done: Option<String>,
    pending: Option<String>,
    /// Demo only: `bad` or `good`, after the demo control was used.
    traffic: Option<String>,
}

pub async fn page(
    State(app): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let id: RolloutId = match id.parse() {
        Ok(id) => id,
        Err(e) => return PageError::bad_request(e).page(&app),
    };
    match build(&app, id, q).await {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

/// The bound a gate or guardrail sets, in words.
pub fn bound_words(bound: Bound, reference: &str) -> String {
    use crate::web::pages::render::num;
    match bound {
        Bound::Max(v) => format!("at most {}", num(v)),
        Bound::Min(v) => format!("at least {}", num(v)),
        Bound::MaxDelta(d) => format!("at most {reference} + {}", num(d)),
        Bound::MinDelta(d) => format!("at least {reference} − {}", num(d)),
        Bound::MaxRatio(k) => format!("at most {reference} × {}", num(k)),
        Bound::MinRatio(k) => format!("at least {reference} × {}", num(k)),
    }
}

fn timeline(r: &Rollout, plan: Option<&Plan>) -> Vec<TimelinePhase> {
    r.phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let previous = i
                .checked_sub(1)
                .and_then(|j| r.phases.get(j))
                .map(|p| p.flags.clone())
                .unwrap_or_default();
            let status = match i.cmp(&r.phase_index) {
                std::cmp::Ordering::Less => "done",
                std::cmp::Ordering::Equal => "current",
                std::cmp::Ordering::Greater => "next",
            };
            let bake = plan
                .and_then(|plan| i.checked_sub(1).and_then(|j| plan.phases.get(j)))
                .map(|ph| {
                    format!(
                        "bake {}, {} approval",
                        render::duration(
                            chrono::TimeDelta::from_std(ph.bake).unwrap_or(chrono::TimeDelta::MAX)
                        ),
                        match ph.approval {
                            crate::plan::Approval::Manual => "manual",
                            crate::plan::Approval::Auto => "auto",
                        }
                    )
                })
                .unwrap_or_default();
            TimelinePhase {
                name: p.name.clone(),
                status,
                bake,
                changes: if i == 0 {
                    p.flags
                        .iter()
                        .map(|(k, v)| FlagChange {
                            flag: k.clone(),
                            from: String::new(),
                            to: v.clone(),
                        })
                        .collect()
                } else {
                    render::flag_changes(&previous, &p.flags)
                },
            }
        })
        .collect()
}

fn actions(r: &Rollout) -> Vec<ActionLink> {
    let href = |a: &str| format!("/rollouts/{}/{a}", r.id);
    let mut out = Vec::new();
    if r.state.is_terminal() {
        if r.write_pending() {
            out.push(ActionLink {
                label: "Abandon".into(),
                href: href("abandon"),
                css: "subtle",
            });
        }
        return out;
    }
    match r.state {
        RolloutState::Active => {
            let label = match r.phases.get(r.phase_index + 1) {
                Some(next) => format!("Advance to {}", next.name),
                None => "Complete".into(),
            };
            out.push(ActionLink {
                label,
                href: href("advance"),
                css: "primary",
            });
            out.push(ActionLink {
                label: "Pause".into(),
                href: href("pause"),
                css: "subtle",
            });
        }
        RolloutState::Paused => out.push(ActionLink {
            label: "Resume".into(),
            href: href("resume"),
            css: "primary",
        }),
        _ => {}
    }
    out.push(ActionLink {
        label: "Abandon".into(),
        href: href("abandon"),
        css: "subtle",
    });
    out
}

fn gate_rows(r: &Rollout, plan: Option<&Plan>) -> Vec<GateRow> {
    let Some(readiness) = r.readiness.as_ref().filter(|x| x.phase == r.phase_name) else {
        return Vec::new();
    };
    let phase = plan.and_then(|p| r.phase_index.checked_sub(1).and_then(|i| p.phases.get(i)));
    readiness
        .gates
        .iter()
        .map(|g| {
            let e = &g.evaluation;
            let required = phase
                .and_then(|p| p.gates.iter().find(|x| x.name == g.name))
                .map(|gate| {
                    let reference = match gate.condition.reference {
                        crate::plan::Reference::Baseline => "baseline",
                        crate::plan::Reference::PreviousPhase => "previous phase",
                        crate::plan::Reference::Stable => "stable version",
                    };
                    let words = bound_words(gate.condition.bound, reference);
                    match e.threshold {
                        Some(t) => format!("{words} = {}", render::num(t)),
                        None => words,
                    }
                })
                .unwrap_or_default();
            let (verdict, css) = match g.verdict {
                crate::metrics::eval::Verdict::Pass => ("holds", "ok"),
                crate::metrics::eval::Verdict::Breach => ("does not hold", "breaching"),
                crate::metrics::eval::Verdict::InsufficientData => ("not enough data", "neutral"),
            };
            GateRow {
                name: g.name.clone(),
                verdict: verdict.into(),
                css,
                observed: render::opt_num(e.observed),
                required,
                samples: format!("{} of {} needed", e.samples, e.min_samples),
                explanation: g.explanation.clone(),
            }
        })
        .collect()
}

fn flag_rows(r: &Rollout) -> Vec<FlagRow> {
    let empty = BTreeMap::new();
    let actual = r.observed_flags.as_ref().unwrap_or(&empty);
    r.desired_flags
        .iter()
        .map(|(k, v)| {
            let seen = actual.get(k).cloned();
            FlagRow {
                flag: k.clone(),
                desired: v.clone(),
                drift: r.observed_flags.is_some() && seen.as_deref() != Some(v.as_str()),
                actual: seen.unwrap_or_else(|| {
                    if r.observed_flags.is_some() {
                        "unset".into()
                    } else {
                        "not read yet".into()
                    }
                }),
            }
        })
        .collect()
}

/// The sentence a watcher decision left in the audit log.
fn evidence(e: &AuditRecord) -> String {
    let Some(detail) = e
        .detail
        .as_deref()
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
    else {
        return String::new();
    };
    let evaluation = detail
        .pointer("/evidence/evaluation/explanation")
        .or_else(|| detail.pointer("/evaluation/explanation"));
    if let Some(s) = evaluation.and_then(|v| v.as_str()) {
        return s.to_string();
    }
    if let Some(gates) = detail.pointer("/evidence/gates").and_then(|g| g.as_array()) {
        return gates
            .iter()
            .filter_map(|g| g["explanation"].as_str())
            .collect::<Vec<_>>()
            .join("; ");
    }
    detail
        .get("error")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

pub fn audit_row(e: &AuditRecord) -> AuditRow {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .and_then(|t| serde_json::from_str::<crate::plan::Flags>(t).ok())
    };
    let changes = match (parse(&e.flags_before), parse(&e.flags_after)) {
        (Some(b), Some(a)) => render::flag_changes(&b, &a),
        _ => Vec::new(),
    };
    AuditRow {
        seq: e.seq,
        at: Ts::parse(&e.at),
        actor: e.actor.clone(),
        action: e.action.replace('_', " "),
        outcome: e.outcome.replace('_', " "),
        phase: e.phase.clone().unwrap_or_default(),
        changes,
        reason: e.reason.clone().unwrap_or_default(),
        evidence: evidence(e),
    }
}

fn chart_views(charts: Vec<ChartData>) -> Vec<ChartView> {
    charts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let last = |kind: &str| {
                c.series
                    .iter()
                    .find(|s| s.kind == kind)
                    .and_then(|s| s.values.iter().rev().find_map(|v| *v))
            };
            let unit = if c.unit.is_empty() {
                String::new()
            } else {
                format!(" {}", c.unit)
            };
            let caption = format!(
                "{}: now {}{unit}; threshold {}; baseline {}; {} points, {} markers",
                c.title,
                render::opt_num(last("observed")),
                render::opt_num(last("threshold")),
                render::opt_num(last("baseline")),
                c.x.len(),
                c.markers.len()
            );
            let headers = c.series.iter().map(|s| s.label.clone()).collect();
            let rows =
                c.x.iter()
                    .enumerate()
                    .rev()
                    .take(30)
                    .map(|(j, t)| {
                        (
                            Ts::of(chrono::DateTime::from_timestamp(*t, 0).unwrap_or_default()),
                            c.series
                                .iter()
                                .map(|s| render::opt_num(s.values.get(j).copied().flatten()))
                                .collect(),
                        )
                    })
                    .collect();
            ChartView {
                id: format!("chart-{i}"),
                title: c.title.clone(),
                caption,
                json: render::script_json(&c),
                headers,
                rows,
            }
        })
        .collect()
}

/// The guardrails and gates that compare with the stable version.
fn stable_conditions(plan: &Plan) -> std::collections::BTreeSet<String> {
    let guardrails = plan
        .guardrails
        .iter()
        .chain(plan.phases.iter().flat_map(|p| &p.guardrails))
        .filter(|g| matches!(&g.kind, crate::plan::GuardrailKind::Metric(c) if c.reference == crate::plan::Reference::Stable))
        .map(|g| g.name.clone());
    let gates = plan
        .phases
        .iter()
        .flat_map(|p| &p.gates)
        .filter(|g| g.condition.reference == crate::plan::Reference::Stable)
        .map(|g| g.name.clone());
    guardrails.chain(gates).collect()
}

/// "10 % to version 2 (canary), 90 % to version 1 (stable) on alias live";
/// for an AppConfig rollout, where its deployment stands.
fn traffic_words(r: &Rollout) -> Option<String> {
    if let Some(a) = &r.appconfig {
        let at = format!(
            "flags in AppConfig profile {} of {}/{}",
            a.profile, a.application, a.environment
        );
        return Some(match &r.delivery {
            Some(d) => format!("{at}: {}", d.describe()),
            None => format!("{at}: not deployed by this rollout yet"),
        });
    }
    let alias = r.alias.as_deref()?;
    let Some(routing) = &r.routing else {
        return Some(format!("alias {alias}: not written yet"));
    };
    let mut words = format!("{} on alias {alias}", routing.split_words());
    if let Some(Some(outside)) = r
        .readiness
        .as_ref()
        .and_then(|x| x.observed.get("outside_alias_invocations"))
        && *outside > 0.0
    {
        words.push_str(&format!(
            "; {outside:.0} invocations in the last 5 minutes reached the function outside the alias"
        ));
    }
    Some(words)
}

async fn build(app: &AppState, id: RolloutId, q: PageQuery) -> Result<RolloutPage, PageError> {
    let service = &app.service;
    let r = service.rollout(id).await?;
    let plan = service.plan_of(&r);
    let plan_ref = plan.as_deref().ok();
    let memory = service.watch_memory(id).await?;
    let now = Utc::now();
    let h = health(&r, Some(&memory), plan.is_ok());
    let blockers = match plan_ref {
        Some(p) if !r.state.is_terminal() => readiness::promotion_blockers(
            p,
            r.phase_index,
            r.bake_started_at,
            now,
            r.readiness.as_ref(),
            service.freshness(),
        ),
        _ => Vec::new(),
    };
    let bake = match (plan_ref, r.bake_started_at) {
        (Some(p), Some(start)) if !r.state.is_terminal() => r
            .phase_index
            .checked_sub(1)
            .and_then(|i| p.phases.get(i))
            .and_then(|ph| readiness::bake_end(start, ph.bake))
            .map(|end| {
                if end > now {
                    format!("bake time left: {}", render::duration(end - now))
                } else {
                    "bake time over".to_string()
                }
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let entries = service
        .audit(&AuditFilter {
            rollout_id: Some(id),
            descending: true,
            limit: Some(AUDIT_SHOWN),
            ..AuditFilter::default()
        })
        .await?;
    let decided = entries
        .iter()
        .find(|e| {
            e.actor == crate::domain::Principal::Watcher.actor()
                && !matches!(e.action.as_str(), "flags_write" | "baseline_recorded")
        })
        .map(|e| Decided {
            at: Ts::parse(&e.at),
            action: e.action.replace('_', " "),
            reason: e.reason.clone().unwrap_or_default(),
        });
    let mut marks = service.marker_entries(id, MARKERS_READ).await?;
    marks.reverse();
    // Ticks are sampled before their JSON is decoded; a tick holds every
    // metric, so each chart keeps the same times as if sampled after.
    let points = service.chart_points(id, render::chart_indices).await?;
    let stable_names = plan_ref.map(stable_conditions).unwrap_or_default();
    let charts = render::charts_against_stable(
        &points,
        r.baseline.as_ref(),
        &render::markers(&marks),
        &stable_names,
    );
    let demo_flags = match (&app.demo, plan_ref) {
        (Some(_), Some(p)) if !r.state.is_terminal() => r
            .phase_index
            .checked_sub(1)
            .and_then(|i| p.phases.get(i))
            .map(|ph| ph.set.keys().cloned().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let view = crate::web::views::RolloutView::new(&r, plan.clone(), service.freshness(), now);
    let flash = match (q.done, q.pending, q.traffic.as_deref()) {
        (_, _, Some("bad")) => Some(
            "The simulated function now fails more and runs slower while this phase's flags are on; the watcher will see it within a minute.".to_string(),
        ),
        (_, _, Some("good")) => Some("The simulated function behaves well again.".to_string()),
        (Some(d), Some(_), _) => Some(format!(
            "{d} recorded; its flag write is not confirmed yet — rollgate keeps retrying it"
        )),
        (Some(d), None, _) => Some(format!("{d} recorded")),
        _ => None,
    };
    let chrome = Chrome::new(app, "overview");
    let approvals = service
        .approvals(id)
        .await?
        .into_iter()
        .take(5)
        .map(|a| approval_line(a, &chrome.actor))
        .collect();
    Ok(RolloutPage {
        approvals,
        chrome,
        id: id.0,
        plan: r.plan_name.clone(),
        plan_hash: r.plan_hash.chars().take(12).collect(),
        function: r.target_function.clone(),
        function_arn: r.function_arn.clone(),
        state: r.state.as_str(),
        state_css: state_css(r.state),
        health: h.label(),
        health_css: h.css(),
        version: r.version,
        phase: r.phase_name.clone(),
        terminal: r.state.is_terminal(),
        timeline: timeline(&r, plan_ref),
        actions: actions(&r),
        rollback_href: (!r.state.is_terminal()).then(|| format!("/rollouts/{id}/rollback")),
        ready: view.ready && r.phase_index > 0,
        blockers,
        release_window: plan_ref
            .filter(|_| !r.state.is_terminal())
            .and_then(|p| p.schedule.describe(now)),
        bake,
        gates: gate_rows(&r, plan_ref),
        baseline: r
            .baseline
            .as_ref()
            .map(|b| {
                b.0.iter()
                    .map(|(label, m)| BaselineRow {
                        label: label.clone(),
                        value: render::opt_num(m.value),
                        samples: m.samples,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        flags: flag_rows(&r),
        observed_at: r.observed_at.map(Ts::of),
        attention: view.attention,
        write_pending: r.write_pending().then(|| {
            r.last_error
                .clone()
                .unwrap_or_else(|| "being written".into())
        }),
        decided,
        charts: chart_views(charts),
        audit: entries
            .iter()
            .take(AUDIT_SHOWN as usize)
            .map(audit_row)
            .collect(),
        audit_href: format!("/audit?rollout={id}"),
        demo_flags,
        traffic: traffic_words(&r),
        traffic_label: if r.appconfig.is_some() {
            "AppConfig"
        } else {
            "Traffic"
        },
        flash,
    })
}

#[derive(Debug, Deserialize)]
pub struct DemoForm {
    rollout: i64,
    #[serde(default)]
    flags: String,
}

/// Demo only: make the simulated function misbehave while these flags are
/// on (`flags` comma-separated), to watch the automatic rollback.
pub async fn demo_bad(
    State(app): State<AppState>,
    axum::Form(f): axum::Form<DemoForm>,
) -> Response {
    let flags: Vec<String> = f
        .flags
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    demo_traffic(&app, f.rollout, flags, "bad").await
}

/// Demo only: every flag good again.
pub async fn demo_good(
    State(app): State<AppState>,
    axum::Form(f): axum::Form<DemoForm>,
) -> Response {
    demo_traffic(&app, f.rollout, Vec::new(), "good").await
}

async fn demo_traffic(app: &AppState, rollout: i64, bad: Vec<String>, done: &str) -> Response {
    let Some(demo) = &app.demo else {
        return PageError::not_found("demo controls exist only under `rollgate demo`").page(app);
    };
    if let Err(e) = demo.set_bad_flags(&bad).await {
        return PageError::Internal(e).page(app);
    }
    Redirect::to(&format!("/rollouts/{rollout}?traffic={done}")).into_response()
}

/// One two-person request as the rollout page shows it.
pub struct ApprovalLine {
    pub id: i64,
    pub to_phase: String,
    pub requested_by: String,
    pub requested_at: Ts,
    pub reason: String,
    pub force: bool,
    /// pending | approved | denied
    pub state: String,
    pub decided_by: String,
    pub decision_reason: String,
    /// The viewer asked for it: they may deny (withdraw) it, not approve it.
    pub mine: bool,
}

fn approval_line(a: crate::store::ApprovalRow, viewer: &str) -> ApprovalLine {
    ApprovalLine {
        mine: !viewer.is_empty() && a.requested_by == viewer,
        id: a.id,
        to_phase: a.to_phase,
        requested_by: a.requested_by,
        requested_at: Ts::of(a.requested_at),
        reason: a.reason.unwrap_or_default(),
        force: a.force,
        state: a.state,
        decided_by: a.decided_by.unwrap_or_default(),
        decision_reason: a.decision_reason.unwrap_or_default(),
    }
}

//! `/plans` and `/plans/{name}`: every plan file, and one plan in words —
//! phases, flags, guardrails and gates — with its validation errors and the
//! rollouts that ran each version of it.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;

use super::render::{self, FlagChange, Ts};
use super::rollout::bound_words;
use super::{Chrome, PageError, html};
use crate::plan::{self, Approval, GuardrailAction, GuardrailKind, Plan, Reference};
use crate::web::AppState;

pub struct PlanRow {
    pub name: String,
    pub valid: bool,
    pub function: String,
    pub phases: String,
    pub errors: Vec<String>,
    pub rollouts: usize,
}

#[derive(Template)]
#[template(path = "plans.html")]
pub struct PlansPage {
    pub chrome: Chrome,
    pub plans: Vec<PlanRow>,
}

pub struct PhaseWords {
    pub name: String,
    pub changes: Vec<FlagChange>,
    pub bake: String,
    pub approval: &'static str,
    pub guardrails: Vec<String>,
    pub gates: Vec<String>,
}

pub struct VersionRow {
    pub hash: String,
    pub current: bool,
    pub rollouts: Vec<(i64, &'static str, Ts)>,
}

#[derive(Template)]
#[template(path = "plan.html")]
pub struct PlanPage {
    pub chrome: Chrome,
    pub name: String,
    pub hash: String,
    pub description: String,
    pub valid: bool,
    pub errors: Vec<String>,
    pub function: String,
    pub region: String,
    pub rollback: &'static str,
    pub lookback: String,
    pub flags: Vec<(String, String)>,
    pub guardrails: Vec<String>,
    pub phases: Vec<PhaseWords>,
    pub drift: &'static str,
    pub insufficient_data: String,
    pub webhooks: usize,
    pub versions: Vec<VersionRow>,
    /// The preflight, when the Check button asked for it.
    pub preflight: Option<crate::preflight::Report>,
    /// Why the preflight could not run at all.
    pub preflight_error: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PlanQuery {
    preflight: Option<String>,
}

fn secs(d: std::time::Duration) -> String {
    render::duration(chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX))
}

fn reference_word(r: Reference) -> &'static str {
    match r {
        Reference::Baseline => "baseline",
        Reference::PreviousPhase => "previous phase",
        Reference::Stable => "stable version",
    }
}

/// A guardrail in words: "error_rate at most baseline + 2 over 5m (≥ 100
/// samples), 3 in a row → rollback".
pub fn guardrail_words(g: &crate::plan::Guardrail) -> String {
    let action = match g.action {
        GuardrailAction::Rollback => "roll back",
        GuardrailAction::Pause => "pause",
        GuardrailAction::Observe => "record only",
    };
    match &g.kind {
        GuardrailKind::Alarm { alarm } => {
            format!(
                "{}: when CloudWatch alarm {alarm} is in ALARM → {action}",
                g.name
            )
        }
        GuardrailKind::Metric(c) => format!(
            "{}: {} {} over {} (at least {} samples); {} breach{} in a row → {action}",
            g.name,
            crate::watcher::decide::metric_label(&c.metric),
            bound_words(c.bound, reference_word(c.reference)),
            secs(g.window),
            g.min_samples,
            g.consecutive,
            if g.consecutive == 1 { "" } else { "es" }
        ),
    }
}

fn gate_words(g: &crate::plan::Gate) -> String {
    format!(
        "{}: {} {} over {} (at least {} samples)",
        g.name,
        crate::watcher::decide::metric_label(&g.condition.metric),
        bound_words(g.condition.bound, reference_word(g.condition.reference)),
        secs(g.window),
        g.min_samples
    )
}

pub async fn list(State(app): State<AppState>) -> Response {
    let result = async {
        let dir = app.service.plans_dir();
        let files = plan::load_dir(dir).map_err(|e| {
            PageError::Internal(format!(
                "cannot read plans directory {}: {e}",
                dir.display()
            ))
        })?;
        let mut plans = Vec::new();
        for f in files {
            let uses = app.service.plan_uses(&f.name).await?.len();
            plans.push(match Plan::parse(&f.name, &f.text) {
                Ok(p) => PlanRow {
                    valid: true,
                    function: p.target.function.clone(),
                    phases: (0..p.phase_count())
                        .map(|i| p.phase_name(i).to_string())
                        .collect::<Vec<_>>()
                        .join(" → "),
                    errors: Vec::new(),
                    rollouts: uses,
                    name: f.name,
                },
                Err(errors) => PlanRow {
                    valid: false,
                    function: String::new(),
                    phases: String::new(),
                    errors: errors
                        .iter()
                        .map(|e| format!("{}:{e}", f.path.display()))
                        .collect(),
                    rollouts: uses,
                    name: f.name,
                },
            });
        }
        Ok::<_, PageError>(PlansPage {
            chrome: Chrome::new(&app, "plans"),
            plans,
        })
    }
    .await;
    match result {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

pub async fn show(
    State(app): State<AppState>,
    Path(name): Path<String>,
    q: Result<axum::extract::Query<PlanQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let check = q.ok().and_then(|q| q.0.preflight).is_some();
    let result = async {
        if !crate::service::valid_plan_name(&name) {
            return Err(PageError::not_found(format!("no plan named {name:?}")));
        }
        let path = app.service.plans_dir().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .map_err(|_| PageError::not_found(format!("no plan named {name:?}")))?;
        let hash = plan::plan_hash(&text);
        let uses = app.service.plan_uses(&name).await?;
        let mut versions: Vec<VersionRow> = Vec::new();
        for u in &uses {
            let row = (u.id.0, u.state.as_str(), Ts::of(u.created_at));
            match versions.iter_mut().find(|v| v.hash == u.plan_hash) {
                Some(v) => v.rollouts.push(row),
                None => versions.push(VersionRow {
                    current: u.plan_hash == hash,
                    hash: u.plan_hash.clone(),
                    rollouts: vec![row],
                }),
            }
        }
        let mut page = PlanPage {
            chrome: Chrome::new(&app, "plans"),
            name: name.clone(),
            hash: hash.chars().take(12).collect(),
            description: String::new(),
            valid: false,
            errors: Vec::new(),
            function: String::new(),
            region: String::new(),
            rollback: "",
            lookback: String::new(),
            flags: Vec::new(),
            guardrails: Vec::new(),
            phases: Vec::new(),
            drift: "",
            insufficient_data: String::new(),
            webhooks: 0,
            versions,
            preflight: None,
            preflight_error: None,
        };
        match Plan::parse(&name, &text) {
            Err(errors) => {
                page.errors = errors
                    .iter()
                    .map(|e| format!("{}:{e}", path.display()))
                    .collect();
            }
            Ok(p) => {
                page.valid = true;
                page.description = p.description.clone().unwrap_or_default();
                page.function = p.target.function.clone();
                page.region = p
                    .target
                    .region
                    .clone()
                    .unwrap_or_else(|| "the default region".into());
                page.rollback = match p.rollback {
                    plan::RollbackTarget::Baseline => {
                        "every owned flag back to its baseline; the rollout ends"
                    }
                    plan::RollbackTarget::Previous => {
                        "the previous phase's flags; the rollout pauses there"
                    }
                };
                page.lookback = secs(p.baseline.lookback);
                page.flags = p
                    .flags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                page.guardrails = p.guardrails.iter().map(guardrail_words).collect();
                page.drift = match p.drift {
                    plan::DriftPolicy::Revert => "write the desired flags back",
                    plan::DriftPolicy::Pause => "pause the rollout",
                };
                page.insufficient_data = match p.insufficient_data.policy {
                    plan::NoDataPolicy::Ignore => "decides nothing".into(),
                    plan::NoDataPolicy::Breach => {
                        format!(
                            "counts as a breach after {}",
                            secs(p.insufficient_data.after)
                        )
                    }
                };
                page.webhooks = p.webhooks.len();
                let mut previous = p.flags.clone();
                page.phases = p
                    .phases
                    .iter()
                    .map(|ph| {
                        let changes = render::flag_changes(&previous, &ph.flags);
                        previous = ph.flags.clone();
                        PhaseWords {
                            name: ph.name.clone(),
                            changes,
                            bake: secs(ph.bake),
                            approval: match ph.approval {
                                Approval::Manual => "an operator promotes it",
                                Approval::Auto => "rollgate promotes it once ready",
                            },
                            guardrails: ph.guardrails.iter().map(guardrail_words).collect(),
                            gates: ph.gates.iter().map(gate_words).collect(),
                        }
                    })
                    .collect();
                if check && !page.chrome.may_operate {
                    // It calls AWS with rollgate's credentials and shares
                    // the account's throttle budget with the watcher.
                    page.preflight_error = Some(format!(
                        "running the preflight needs the operator role; you are {}",
                        page.chrome.role
                    ));
                } else if check {
                    match app.service.preflight(&name).await {
                        Ok(report) => page.preflight = Some(report),
                        Err(e) => page.preflight_error = Some(e.to_string()),
                    }
                }
            }
        }
        Ok(page)
    }
    .await;
    match result {
        Ok(p) => html(&p),
        Err(e) => e.page(&app),
    }
}

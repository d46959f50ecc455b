//! Human renderings of what the API returns.

use std::fmt::Write as _;

use crate::web::views::{AuditEntryView, RolloutView};

fn flags_line(flags: &std::collections::BTreeMap<String, String>) -> String {
    flags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Several lines describing one rollout.
pub fn rollout(r: &RolloutView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rollout #{}  plan {}  function {}",
        r.id, r.plan, r.target_function
    );
    let phases: Vec<String> = r
        .phases
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if i == r.phase_index {
                format!("[{p}]")
            } else {
                p.clone()
            }
        })
        .collect();
    let _ = writeln!(
        out,
        "  state   {}  phase {} ({}/{})  version {}",
        r.state.as_str(),
        r.phase_name,
        r.phase_index,
        r.phases.len().saturating_sub(1),
        r.version
    );
    let _ = writeln!(out, "  phases  {}", phases.join(" → "));
    if let (Some(alias), Some(routing)) = (&r.alias, &r.routing) {
        let _ = writeln!(out, "  alias   {alias}: {}", routing.split_words());
    }
    if let Some(a) = &r.appconfig {
        let _ = writeln!(
            out,
            "  flags   AppConfig profile {} in {}/{} (extension polls every {} s)",
            a.profile,
            a.application,
            a.environment,
            a.poll_interval.as_secs()
        );
    }
    if let Some(d) = &r.delivery {
        let _ = writeln!(out, "  deploy  {}", d.describe());
    }
    let _ = writeln!(out, "  desired {}", flags_line(&r.desired_flags));
    if let Some(observed) = &r.observed_flags {
        let _ = writeln!(out, "  on AWS  {}", flags_line(observed));
    }
    if r.write_pending {
        let deploying = r.delivery.as_ref().is_some_and(|d| d.is_running());
        let _ = writeln!(
            out,
            "  write   {}",
            if deploying {
                "pending: the AppConfig deployment is under way (confirmed when COMPLETE)"
            } else {
                "pending (rollgate keeps retrying)"
            }
        );
    }
    if let Some(e) = &r.last_error {
        let _ = writeln!(out, "  error   {e}");
    }
    for a in &r.attention {
        let _ = writeln!(out, "  ATTENTION {a}");
    }
    if let Some(w) = &r.release_window {
        let _ = writeln!(out, "  window  {w}");
    }
    if !r.state.is_terminal() {
        if r.ready {
            if let Some(next) = &r.next_phase {
                let _ = writeln!(out, "  next    advance → {next} (ready)");
            }
        } else {
            for b in &r.blockers {
                let _ = writeln!(out, "  waiting {b}");
            }
            if let Some(next) = &r.next_phase {
                let _ = writeln!(out, "  next    advance → {next}");
            }
        }
    }
    out
}

/// One line per rollout.
pub fn rollout_row(r: &RolloutView) -> String {
    format!(
        "#{:<4} {:<12} {:<10} {:<24} {:<28} v{}{}",
        r.id,
        r.state.as_str(),
        r.phase_name,
        r.plan,
        r.target_function,
        r.version,
        if r.attention.is_empty() {
            ""
        } else {
            "  (needs attention)"
        }
    )
}

/// One line per audit entry.
pub fn audit_entry(e: &AuditEntryView) -> String {
    let mut line = format!(
        "{:>5} {} {:<18} {:<12} {:<16}",
        e.seq, e.at, e.actor, e.action, e.outcome
    );
    if let Some(id) = e.rollout_id {
        let _ = write!(line, " rollout #{id}");
    }
    if let Some(p) = &e.phase {
        let _ = write!(line, " phase {p}");
    }
    if let (Some(before), Some(after)) = (&e.flags_before, &e.flags_after) {
        let changed: Vec<String> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, v)| {
                format!(
                    "{k}: {}→{v}",
                    before.get(k).map_or("(unset)", String::as_str)
                )
            })
            .collect();
        if !changed.is_empty() {
            let _ = write!(line, " [{}]", changed.join(", "));
        }
    }
    if let Some(r) = &e.reason {
        let _ = write!(line, " — {r}");
    }
    line
}

/// A preflight report: one line per check, the worst outcome last.
pub fn preflight(r: &crate::preflight::Report) -> String {
    let mut out = String::new();
    for c in &r.checks {
        out.push_str(&format!(
            "{:<4}  {:<28} {}\n      {}\n",
            c.status.as_str().to_uppercase(),
            c.id,
            c.title,
            c.detail
        ));
    }
    let (fails, warns) = (r.failures().len(), r.warnings().len());
    out.push_str(&format!(
        "preflight of plan {}: {} ({} checks, {fails} failed, {warns} warnings)\n",
        r.plan,
        r.status.as_str(),
        r.checks.len()
    ));
    out
}

//! Raw plan → validated `Plan`, collecting every problem with its location.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::PlanError;
use super::model::*;
use super::raw::*;

/// Environment keys Lambda reserves: a plan may not own them.
const RESERVED_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
];

const BUILTIN_METRICS: &str =
    "error_rate, duration_avg, duration_pNN (e.g. duration_p99), throttles, invocations";

/// Converts a byte offset into a 1-based (line, column in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Parses a duration such as "90s", "5m", "48h", "7d" or "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let help = "expected a duration like \"90s\", \"5m\", \"48h\", \"7d\" or \"1h30m\"";
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("empty duration: {help}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("invalid duration {s:?}: {help}")),
        };
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: {help}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration {s:?} is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("invalid duration {s:?}: a unit is missing; {help}"));
    }
    if total == 0 {
        return Err(format!("duration {s:?} must be greater than zero"));
    }
    Ok(Duration::from_secs(total))
}

fn valid_env_key(k: &str) -> bool {
    let mut chars = k.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_phase_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn valid_stat(s: &str) -> bool {
    matches!(s, "Average" | "Sum" | "SampleCount" | "Minimum" | "Maximum")
        || s.strip_prefix('p')
            .is_some_and(|p| parse_percentile(p).is_some())
}

/// "99" or "99.9" → Some(99.9) when strictly between 0 and 100.
fn parse_percentile(p: &str) -> Option<f64> {
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let v: f64 = p.parse().ok()?;
    (v > 0.0 && v < 100.0).then_some(v)
}

struct Checker<'t> {
    text: &'t str,
    errors: Vec<PlanError>,
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.text, span.start);
        self.errors.push(PlanError {
            line,
            col,
            message: message.into(),
        });
    }

    fn duration(&mut self, v: &Spanned<String>) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err(v.span(), m);
                None
            }
        }
    }

    fn flag_value(&mut self, key: &str, v: &Spanned<toml::Value>) -> Option<String> {
        match v.get_ref() {
            toml::Value::String(s) => Some(s.clone()),
            toml::Value::Boolean(b) => Some(b.to_string()),
            toml::Value::Integer(i) => Some(i.to_string()),
            other => {
                self.err(
                    v.span(),
                    format!(
                        "flag {key}: value must be a string, boolean or integer, not {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        v: Option<&Spanned<String>>,
        field: &str,
        options: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(v) = v else { return default };
        match options.iter().find(|(name, _)| name == v.get_ref()) {
            Some((_, t)) => *t,
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
                self.err(
                    v.span(),
                    format!(
                        "{field} must be one of {}, not {:?}",
                        names.join(", "),
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn metric(
        &mut self,
        v: &Spanned<String>,
        metrics: &BTreeMap<String, CustomMetric>,
    ) -> Option<MetricRef> {
        let name = v.get_ref().as_str();
        let builtin = match name {
            "error_rate" => Some(MetricRef::ErrorRate),
            "duration_avg" => Some(MetricRef::DurationAvg),
            "throttles" => Some(MetricRef::Throttles),
            "invocations" => Some(MetricRef::Invocations),
            _ => name
                .strip_prefix("duration_p")
                .and_then(parse_percentile)
                .map(MetricRef::DurationPercentile),
        };
        if builtin.is_some() {
            return builtin;
        }
        if metrics.contains_key(name) {
            return Some(MetricRef::Custom(name.to_string()));
        }
        if name.starts_with("duration_p") {
            self.err(
                v.span(),
                format!("metric {name:?}: the percentile must be between 0 and 100 exclusive (e.g. duration_p99)"),
            );
        } else {
            let custom: Vec<&str> = metrics.keys().map(String::as_str).collect();
            self.err(
                v.span(),
                format!(
                    "unknown metric {name:?}: use one of {BUILTIN_METRICS}{}",
                    if custom.is_empty() {
                        ", or declare it under [metrics.NAME]".to_string()
                    } else {
                        format!(", or a declared metric ({})", custom.join(", "))
                    }
                ),
            );
        }
        None
    }

    /// Exactly one bound, in range; with its reference.
    fn condition(
        &mut self,
        what: &str,
        span: Range<usize>,
        metric: Option<MetricRef>,
        bounds: BoundFields<'_>,
        compare_to: Option<&Spanned<String>>,
        previous_allowed: bool,
    ) -> Option<Condition> {
        let set: Vec<(&str, &Spanned<f64>)> = bounds
            .iter()
            .filter_map(|(n, v)| v.map(|v| (*n, v)))
            .collect();
        let (name, value) = match set.as_slice() {
            [one] => *one,
            [] => {
                self.err(
                    span,
                    format!("{what} needs a bound: one of max, min, max_delta, min_delta, max_ratio, min_ratio"),
                );
                return None;
            }
            [_, second, ..] => {
                let names: Vec<&str> = set.iter().map(|(n, _)| *n).collect();
                self.err(
                    second.1.span(),
                    format!(
                        "{what} has more than one bound ({}); give exactly one",
                        names.join(", ")
                    ),
                );
                return None;
            }
        };
        let v = *value.get_ref();
        let mut ok = true;
        if !v.is_finite() {
            self.err(
                value.span(),
                format!("{what}: {name} must be a finite number"),
            );
            ok = false;
        } else if name.ends_with("_ratio") && v <= 0.0 {
            self.err(
                value.span(),
                format!("{what}: {name} must be greater than 0, not {v}"),
            );
            ok = false;
        } else if name.ends_with("_delta") && v < 0.0 {
            self.err(
                value.span(),
                format!("{what}: {name} must not be negative ({v}); use max_delta or min_delta for the direction"),
            );
            ok = false;
        } else if metric == Some(MetricRef::ErrorRate) && !(0.0..=100.0).contains(&v) {
            self.err(
                value.span(),
                format!("{what}: error_rate is a percentage, so {name} must be between 0 and 100, not {v}"),
            );
            ok = false;
        } else if matches!(name, "max" | "min") && v < 0.0 {
            self.err(
                value.span(),
                format!("{what}: {name} must not be negative, not {v}"),
            );
            ok = false;
        }
        let reference = match compare_to {
            None => Reference::Baseline,
            Some(c) if matches!(name, "max" | "min") => {
                self.err(
                    c.span(),
                    format!(
                        "{what}: compare_to only applies to delta and ratio bounds, not {name}"
                    ),
                );
                ok = false;
                Reference::Baseline
            }
            Some(c) => {
                let r = self.choice(
                    Some(c),
                    "compare_to",
                    &[
                        ("baseline", Reference::Baseline),
                        ("previous_phase", Reference::PreviousPhase),
                    ],
                    Reference::Baseline,
                );
                if r == Reference::PreviousPhase && !previous_allowed {
                    self.err(
                        c.span(),
                        format!("{what}: compare_to = \"previous_phase\" is only possible in a phase after the first"),
                    );
                    ok = false;
                }
                r
            }
        };
        let bound = match name {
            "max" => Bound::Max(v),
            "min" => Bound::Min(v),
            "max_delta" => Bound::MaxDelta(v),
            "min_delta" => Bound::MinDelta(v),
            "max_ratio" => Bound::MaxRatio(v),
            _ => Bound::MinRatio(v),
        };
        Some(Condition {
            metric: metric?,
            bound,
            reference,
        })
        .filter(|_| ok)
    }

    fn count(&mut self, v: Option<&Spanned<i64>>, what: &str, max: i64, default: i64) -> i64 {
        match v {
            None => default,
            Some(n) if (1..=max).contains(n.get_ref()) => *n.get_ref(),
            Some(n) => {
                self.err(
                    n.span(),
                    format!("{what} must be between 1 and {max}, not {}", n.get_ref()),
                );
                default
            }
        }
    }

    fn guardrails(
        &mut self,
        raw: &[Spanned<RawGuardrail>],
        metrics: &BTreeMap<String, CustomMetric>,
        taken: &mut BTreeSet<String>,
        previous_allowed: bool,
    ) -> Vec<Guardrail> {
        let mut out = Vec::new();
        for g in raw {
            let span = g.span();
            let g = g.get_ref();
            let name = g.name.get_ref().clone();
            let what = format!("guardrail {name:?}");
            if name.trim().is_empty() {
                self.err(g.name.span(), "guardrail name must not be empty");
            } else if !taken.insert(name.clone()) {
                self.err(g.name.span(), format!("duplicate guardrail name {name:?}"));
            }
            let window = g
                .window
                .as_ref()
                .map_or(Some(Duration::from_secs(300)), |w| self.duration(w));
            let min_samples = self.count(g.min_samples.as_ref(), "min_samples", i64::MAX, 100);
            let consecutive = self.count(g.consecutive.as_ref(), "consecutive", 100, 3);
            let action = self.choice(
                g.action.as_ref(),
                "action",
                &[
                    ("rollback", GuardrailAction::Rollback),
                    ("pause", GuardrailAction::Pause),
                    ("observe", GuardrailAction::Observe),
                ],
                GuardrailAction::Rollback,
            );
            let kind = match (&g.metric, &g.alarm) {
                (Some(_), Some(alarm)) => {
                    self.err(
                        alarm.span(),
                        format!("{what} has both metric and alarm; give one"),
                    );
                    None
                }
                (None, Some(alarm)) => {
                    let extra: Vec<&str> = g
                        .bound_fields()
                        .iter()
                        .filter(|(_, v)| v.is_some())
                        .map(|(n, _)| *n)
                        .chain(g.compare_to.as_ref().map(|_| "compare_to"))
                        .collect();
                    if !extra.is_empty() {
                        self.err(
                            span.clone(),
                            format!("{what} watches an alarm; remove {}", extra.join(", ")),
                        );
                    }
                    if alarm.get_ref().trim().is_empty() {
                        self.err(alarm.span(), "alarm name must not be empty");
                    }
                    Some(GuardrailKind::Alarm {
                        alarm: alarm.get_ref().clone(),
                    })
                }
                (Some(metric), None) => {
                    let m = self.metric(metric, metrics);
                    self.condition(
                        &what,
                        span.clone(),
                        m,
                        g.bound_fields(),
                        g.compare_to.as_ref(),
                        previous_allowed,
                    )
                    .map(GuardrailKind::Metric)
                }
                (None, None) => {
                    self.err(span.clone(), format!("{what} needs a metric or an alarm"));
                    None
                }
            };
            if let (Some(kind), Some(window)) = (kind, window) {
                out.push(Guardrail {
                    name,
                    kind,
                    action,
                    window,
                    min_samples: min_samples as u64,
                    consecutive: consecutive as u32,
                });
            }
        }
        out
    }
}

/// Parses and validates plan text.
pub fn parse(name: &str, text: &str) -> Result<Plan, Vec<PlanError>> {
    let raw: RawPlan = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        vec![PlanError {
            line,
            col,
            message: e.message().trim().to_string(),
        }]
    })?;
    let mut c = Checker {
        text,
        errors: Vec::new(),
    };

    // Target.
    let target = raw.target.get_ref();
    let backend = c.choice(
        target.backend.as_ref(),
        "target.backend",
        &[("lambda-env", BackendKind::LambdaEnv)],
        BackendKind::LambdaEnv,
    );
    if target.function.get_ref().trim().is_empty() {
        c.err(
            target.function.span(),
            "target.function must name a Lambda function",
        );
    }

    // Owned flags.
    let mut flags = Flags::new();
    // Every key listed, even one whose value is invalid (already reported).
    let owned: BTreeSet<&str> = raw
        .flags
        .get_ref()
        .keys()
        .map(|k| k.get_ref().as_str())
        .collect();
    if raw.flags.get_ref().is_empty() {
        c.err(
            raw.flags.span(),
            "[flags] must list at least one flag the plan owns",
        );
    }
    for (key, value) in raw.flags.get_ref() {
        let k = key.get_ref();
        if !valid_env_key(k) {
            c.err(
                key.span(),
                format!("flag name {k:?} is not a valid Lambda environment variable name (letters, digits and '_', starting with a letter, at least 2 characters)"),
            );
        } else if RESERVED_KEYS.contains(&k.as_str()) {
            c.err(key.span(), format!("flag name {k:?} is reserved by Lambda"));
        }
        if let Some(v) = c.flag_value(k, value) {
            flags.insert(k.clone(), v);
        }
    }

    let rollback = c.choice(
        raw.rollback.as_ref().and_then(|r| r.to.as_ref()),
        "rollback.to",
        &[
            ("baseline", RollbackTarget::Baseline),
            ("previous", RollbackTarget::Previous),
        ],
        RollbackTarget::Baseline,
    );
    let lookback = raw
        .baseline
        .as_ref()
        .and_then(|b| b.lookback.as_ref())
        .map_or(Some(Duration::from_secs(7 * 86_400)), |l| c.duration(l))
        .unwrap_or_default();
    let defaults = raw.defaults.as_ref();
    let default_bake_given = defaults.and_then(|d| d.bake.as_ref()).is_some();
    let default_bake = defaults
        .and_then(|d| d.bake.as_ref())
        .and_then(|b| c.duration(b));
    let default_approval = c.choice(
        defaults.and_then(|d| d.approval.as_ref()),
        "approval",
        &[("manual", Approval::Manual), ("auto", Approval::Auto)],
        Approval::Manual,
    );

    // Custom metrics.
    let mut metrics = BTreeMap::new();
    for (key, m) in &raw.metrics {
        let mm = m.get_ref();
        if mm.namespace.get_ref().trim().is_empty() {
            c.err(mm.namespace.span(), "metric namespace must not be empty");
        }
        if mm.metric_name.get_ref().trim().is_empty() {
            c.err(mm.metric_name.span(), "metric_name must not be empty");
        }
        if !valid_stat(mm.stat.get_ref()) {
            c.err(
                mm.stat.span(),
                format!(
                    "stat {:?} is not a CloudWatch statistic: use Average, Sum, SampleCount, Minimum, Maximum or pNN (e.g. p99, p99.9)",
                    mm.stat.get_ref()
                ),
            );
        }
        metrics.insert(
            key.get_ref().clone(),
            CustomMetric {
                namespace: mm.namespace.get_ref().clone(),
                metric_name: mm.metric_name.get_ref().clone(),
                dimensions: mm.dimensions.clone(),
                stat: mm.stat.get_ref().clone(),
            },
        );
    }

    let drift = c.choice(
        raw.drift.as_ref().and_then(|d| d.policy.as_ref()),
        "drift.policy",
        &[
            ("revert", DriftPolicy::Revert),
            ("pause", DriftPolicy::Pause),
        ],
        DriftPolicy::Revert,
    );
    let mut webhooks = Vec::new();
    for url in raw.notify.iter().flat_map(|n| &n.webhooks) {
        let u = url.get_ref();
        if u.starts_with("http://") || u.starts_with("https://") {
            webhooks.push(u.clone());
        } else {
            c.err(
                url.span(),
                format!("webhook {u:?} must be an http:// or https:// URL"),
            );
        }
    }

    let mut plan_guardrail_names = BTreeSet::new();
    let guardrails = c.guardrails(&raw.guardrails, &metrics, &mut plan_guardrail_names, false);

    // Phases.
    if raw.phases.is_empty() {
        let (line, col) = (1, 1);
        c.errors.push(PlanError {
            line,
            col,
            message: "the plan needs at least one [[phases]] entry".into(),
        });
    }
    let mut phases = Vec::new();
    let mut phase_names = BTreeSet::new();
    let mut current = flags.clone();
    for (index, p) in raw.phases.iter().enumerate() {
        let span = p.span();
        let p = p.get_ref();
        let pname = p.name.get_ref().clone();
        if !valid_phase_name(&pname) {
            c.err(
                p.name.span(),
                format!("phase name {pname:?} must be lower-case letters, digits, '-' or '_', starting with a letter or digit"),
            );
        } else if pname == "baseline" {
            c.err(
                p.name.span(),
                "phase name \"baseline\" is reserved for the phase before the first",
            );
        } else if !phase_names.insert(pname.clone()) {
            c.err(p.name.span(), format!("duplicate phase name {pname:?}"));
        }
        let mut set = Flags::new();
        match &p.set {
            None => c.err(
                span.clone(),
                format!("phase {pname:?} sets no flags: add set = {{ FLAG = \"value\" }}"),
            ),
            Some(s) if s.get_ref().is_empty() => {
                c.err(s.span(), format!("phase {pname:?} sets no flags"));
            }
            Some(s) => {
                for (key, value) in s.get_ref() {
                    let k = key.get_ref();
                    if !owned.contains(k.as_str()) {
                        let owned: Vec<&str> = owned.iter().copied().collect();
                        c.err(
                            key.span(),
                            format!(
                                "phase {pname:?} sets {k}, which the plan does not own (owned flags: {})",
                                owned.join(", ")
                            ),
                        );
                    } else if let Some(v) = c.flag_value(k, value) {
                        set.insert(k.clone(), v);
                    }
                }
                let next: Flags = current
                    .iter()
                    .map(|(k, v)| (k.clone(), set.get(k).unwrap_or(v).clone()))
                    .collect();
                if !set.is_empty() && next == current {
                    c.err(
                        s.span(),
                        format!("phase {pname:?} changes nothing: every flag it sets already has that value in the previous phase"),
                    );
                }
                current = next;
            }
        }
        let bake = match (&p.bake, default_bake) {
            (Some(b), _) => c.duration(b),
            (None, Some(d)) => Some(d),
            // An invalid default was already reported; don't pile on.
            (None, None) if default_bake_given => None,
            (None, None) => {
                c.err(
                    span.clone(),
                    format!("phase {pname:?} needs a bake time: set bake here or in [defaults]"),
                );
                None
            }
        };
        let approval = c.choice(
            p.approval.as_ref(),
            "approval",
            &[("manual", Approval::Manual), ("auto", Approval::Auto)],
            default_approval,
        );
        let mut names = plan_guardrail_names.clone();
        let phase_guardrails = c.guardrails(&p.guardrails, &metrics, &mut names, index > 0);
        let mut gate_names = BTreeSet::new();
        let mut gates = Vec::new();
        for g in &p.gates {
            let gspan = g.span();
            let g = g.get_ref();
            let gname = g.name.get_ref().clone();
            let what = format!("gate {gname:?}");
            if gname.trim().is_empty() {
                c.err(g.name.span(), "gate name must not be empty");
            } else if !gate_names.insert(gname.clone()) {
                c.err(
                    g.name.span(),
                    format!("duplicate gate name {gname:?} in phase {pname:?}"),
                );
            }
            let metric = c.metric(&g.metric, &metrics);
            let condition = c.condition(
                &what,
                gspan,
                metric,
                g.bound_fields(),
                g.compare_to.as_ref(),
                index > 0,
            );
            let window = g
                .window
                .as_ref()
                .map_or(Some(Duration::from_secs(3600)), |w| c.duration(w));
            let min_samples = c.count(g.min_samples.as_ref(), "min_samples", i64::MAX, 100);
            if let (Some(condition), Some(window)) = (condition, window) {
                gates.push(Gate {
                    name: gname,
                    condition,
                    window,
                    min_samples: min_samples as u64,
                });
            }
        }
        phases.push(Phase {
            name: pname,
            set,
            flags: current.clone(),
            bake: bake.unwrap_or_default(),
            approval,
            guardrails: phase_guardrails,
            gates,
        });
    }

    if !c.errors.is_empty() {
        c.errors.sort_by_key(|e| (e.line, e.col));
        return Err(c.errors);
    }
    Ok(Plan {
        name: name.to_string(),
        description: raw.description,
        target: Target {
            backend,
            function: target.function.get_ref().clone(),
            region: target.region.clone(),
        },
        flags,
        phases,
        rollback,
        baseline: BaselineSpec { lookback },
        metrics,
        guardrails,
        drift,
        webhooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("48h"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        for bad in [
            "",
            "0s",
            "5",
            "h",
            "5x",
            "-5m",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(text, text.rfind('=').unwrap()), (2, 4));
    }

    #[test]
    fn stats_and_keys() {
        assert!(valid_stat("p99") && valid_stat("p99.9") && valid_stat("Average"));
        assert!(!valid_stat("p100") && !valid_stat("avg") && !valid_stat("p"));
        assert!(
            valid_env_key("USE_X")
                && !valid_env_key("1X")
                && !valid_env_key("X")
                && !valid_env_key("A-B")
        );
    }
}

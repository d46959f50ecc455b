//! Raw plan → validated `Plan`, collecting every problem with its location.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::PlanError;
use super::appconfig_flags;
use super::model::*;
use super::raw::*;
use super::schedule::{Schedule, parse_freeze, parse_window, parse_zone};

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

const DEFAULT_LOOKBACK: Duration = Duration::from_secs(7 * 86_400);
const DEFAULT_GUARDRAIL_WINDOW: Duration = Duration::from_secs(300);
const DEFAULT_GATE_WINDOW: Duration = Duration::from_secs(3600);
/// Lambda's metrics are usually in CloudWatch a minute after the period
/// ends; two leave room for stragglers.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(120);
const DEFAULT_MIN_SAMPLES: i64 = 100;
const DEFAULT_CONSECUTIVE: i64 = 3;

/// Converts a byte offset into a 1-based (line, column in characters).
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The longest duration a plan may give: every duration meets a timestamp
/// (a bake's end, a window's start), and none longer can be judged.
pub const MAX_DURATION: Duration = Duration::from_secs(455 * 86_400);

/// Parses a plan duration such as "90s", "5m", "48h", "7d" or "1h30m", at
/// most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_any_duration(s)?;
    if d > MAX_DURATION {
        return Err(format!(
            "duration {:?} is too long: at most 455d (CloudWatch keeps data for 455 days, so no bake, window or look-back can be longer)",
            s.trim()
        ));
    }
    Ok(d)
}

/// A duration written as in plans, with no upper limit (a token's life).
pub fn parse_any_duration(s: &str) -> Result<Duration, String> {
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
        if digits.is_empty() {
            return Err(format!("invalid duration {s:?}: {help}"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("duration {s:?} is too long"))?;
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

/// A built-in metric by its name in the file.
fn builtin_metric(name: &str) -> Option<MetricRef> {
    match name {
        "error_rate" => Some(MetricRef::ErrorRate),
        "duration_avg" => Some(MetricRef::DurationAvg),
        "throttles" => Some(MetricRef::Throttles),
        "invocations" => Some(MetricRef::Invocations),
        _ => name
            .strip_prefix("duration_p")
            .and_then(parse_percentile)
            .map(MetricRef::DurationPercentile),
    }
}

/// A TOML or serde error as a `PlanError`, in words an operator knows.
fn toml_error(text: &str, e: &toml::de::Error) -> PlanError {
    let span = e.span();
    let (line, col) = span.clone().map_or((1, 1), |s| line_col(text, s.start));
    let mut message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if message == "duplicate key"
        && let Some(key) = span.and_then(|s| text.get(s)).map(str::trim)
        && !key.is_empty()
    {
        message = format!("duplicate key `{key}`");
    }
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
    ] {
        message = message.replace(rust, toml);
    }
    PlanError { line, col, message }
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

    /// A problem with no place of its own in the file (something missing at the top level).
    fn err_at_start(&mut self, message: impl Into<String>) {
        self.err(0..0, message);
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

    /// An optional window or look-back: whole minutes, CloudWatch's
    /// smallest period for Lambda's metrics.
    fn minutes_or(
        &mut self,
        v: Option<&Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Option<Duration> {
        let d = self.duration_or(v, default)?;
        if d.as_secs() % 60 != 0 {
            if let Some(v) = v {
                self.err(
                    v.span(),
                    format!(
                        "{what} {:?} is not a whole number of minutes: CloudWatch judges Lambda's metrics in 1-minute periods (write e.g. \"1m\" or \"5m\")",
                        v.get_ref().trim()
                    ),
                );
            }
            return None;
        }
        Some(d)
    }

    /// An optional duration: its default when absent, None when invalid (reported).
    fn duration_or(&mut self, v: Option<&Spanned<String>>, default: Duration) -> Option<Duration> {
        v.map_or(Some(default), |v| self.duration(v))
    }

    /// A required string field: reported at `within` when missing, at itself when blank.
    fn required<'a>(
        &mut self,
        v: Option<&'a Spanned<String>>,
        within: &Range<usize>,
        missing: impl FnOnce() -> String,
        blank: impl FnOnce() -> String,
    ) -> Option<&'a str> {
        match v {
            None => {
                self.err(within.clone(), missing());
                None
            }
            Some(s) if s.get_ref().trim().is_empty() => {
                self.err(s.span(), blank());
                None
            }
            Some(s) => Some(s.get_ref()),
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

    /// A flag value, checked as the backend will use it: an AppConfig
    /// flag's own key sets its `enabled`, so only "true" or "false".
    fn owned_value(
        &mut self,
        backend: BackendKind,
        key: &str,
        v: &Spanned<toml::Value>,
    ) -> Option<String> {
        let value = self.flag_value(key, v)?;
        if backend == BackendKind::AppConfig
            && let Err(why) = appconfig_flags::check_value(key, &value)
        {
            self.err(v.span(), why);
            return None;
        }
        Some(value)
    }

    /// `[target]`'s AppConfig fields: required for `appconfig`, refused
    /// for the other backends.
    fn appconfig_target(
        &mut self,
        t: &RawTarget,
        span: &Range<usize>,
        backend: BackendKind,
    ) -> Option<AppConfigTarget> {
        let fields = [
            ("application", &t.application),
            ("environment", &t.environment),
            ("profile", &t.profile),
            ("strategy", &t.strategy),
            ("rollback_strategy", &t.rollback_strategy),
            ("poll_interval", &t.poll_interval),
        ];
        if backend != BackendKind::AppConfig {
            for (name, v) in fields {
                if let Some(v) = v {
                    self.err(
                        v.span(),
                        format!("{name} applies to backend = \"appconfig\" only"),
                    );
                }
            }
            return None;
        }
        let mut named = |field: &str, v: &Option<Spanned<String>>, what: &str| {
            self.required(
                v.as_ref(),
                span,
                || format!("backend = \"appconfig\" needs {field} = \"...\" ({what})"),
                || format!("target.{field} must not be empty"),
            )
            .map(str::to_string)
        };
        let application = named(
            "application",
            &t.application,
            "the AppConfig application, by name or id",
        );
        let environment = named(
            "environment",
            &t.environment,
            "the AppConfig environment, by name or id",
        );
        let profile = named(
            "profile",
            &t.profile,
            "a hosted configuration profile of type AWS.AppConfig.FeatureFlags, by name or id",
        );
        let strategy = named(
            "strategy",
            &t.strategy,
            "the deployment strategy phases are deployed with, e.g. \"AppConfig.Linear20PercentEvery6Minutes\"",
        );
        let rollback_strategy = match &t.rollback_strategy {
            Some(v) if v.get_ref().trim().is_empty() => {
                self.err(v.span(), "target.rollback_strategy must not be empty");
                None
            }
            Some(v) => Some(v.get_ref().clone()),
            None => Some(APPCONFIG_ALL_AT_ONCE.to_string()),
        };
        let poll_interval = self.duration_or(t.poll_interval.as_ref(), DEFAULT_APPCONFIG_POLL);
        Some(AppConfigTarget {
            application: application?,
            environment: environment?,
            profile: profile?,
            strategy: strategy?,
            rollback_strategy: rollback_strategy?,
            poll_interval: poll_interval?,
        })
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
        if let Some(builtin) = builtin_metric(name) {
            return Some(builtin);
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

    /// Exactly one bound, in range; with its reference and judge.
    #[allow(clippy::too_many_arguments)]
    fn condition(
        &mut self,
        what: &str,
        span: Range<usize>,
        metric: Option<MetricRef>,
        bounds: BoundFields<'_>,
        compare_to: Option<&Spanned<String>>,
        judge: Option<&Spanned<String>>,
        allowed: Allowed,
        metrics: &BTreeMap<String, CustomMetric>,
    ) -> Option<Condition> {
        let mut set: Vec<(&str, &Spanned<f64>)> = bounds
            .iter()
            .filter_map(|(n, v)| v.map(|v| (*n, v)))
            .collect();
        // In file order, so that "more than one" points at the second one written.
        set.sort_by_key(|(_, v)| v.span().start);
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
        let ratio = name.ends_with("_ratio");
        let mut ok = true;
        let problem = if !v.is_finite() {
            Some(format!("{what}: {name} must be a finite number"))
        } else if ratio && v <= 0.0 {
            Some(format!("{what}: {name} must be greater than 0, not {v}"))
        } else if name.ends_with("_delta") && v < 0.0 {
            Some(format!(
                "{what}: {name} must not be negative ({v}); use max_delta or min_delta for the direction"
            ))
        } else if !ratio && metric == Some(MetricRef::ErrorRate) && !(0.0..=100.0).contains(&v) {
            Some(format!(
                "{what}: error_rate is a percentage, so {name} must be between 0 and 100, not {v}"
            ))
        } else if matches!(name, "max" | "min") && v < 0.0 {
            Some(format!("{what}: {name} must not be negative, not {v}"))
        } else {
            None
        };
        if let Some(problem) = problem {
            self.err(value.span(), problem);
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
                        ("stable", Reference::Stable),
                    ],
                    Reference::Baseline,
                );
                if r == Reference::PreviousPhase && !allowed.previous {
                    self.err(
                        c.span(),
                        format!("{what}: compare_to = \"previous_phase\" is only possible in a phase after the first"),
                    );
                    ok = false;
                }
                if r == Reference::Stable && !allowed.stable {
                    self.err(
                        c.span(),
                        format!("{what}: compare_to = \"stable\" needs canary steps: backend = \"lambda-alias\" and, in a phase, traffic = [...]"),
                    );
                    ok = false;
                }
                r
            }
        };
        // In a canary step every condition is judged on the canary
        // version's invocations: a custom metric read for the whole
        // function would dilute a bad canary in the stable traffic.
        if let (true, Some(MetricRef::Custom(m))) = (allowed.stable, &metric)
            && metrics
                .get(m)
                .is_some_and(|m| m.version_dimension.is_none())
        {
            self.err(
                span.clone(),
                format!("{what}: metric {m:?} applies in canary steps but cannot be told apart by version; give [metrics.{m}] a version_dimension (the dimension the handler sets to AWS_LAMBDA_FUNCTION_VERSION)"),
            );
            ok = false;
        }
        let judge = self.choice(
            judge,
            "judge",
            &[
                ("threshold", Judge::Threshold),
                ("sequential", Judge::Sequential),
            ],
            Judge::Threshold,
        );
        if judge == Judge::Sequential {
            let problem = if !matches!(name, "max_delta" | "max_ratio") {
                Some(format!(
                    "{what}: judge = \"sequential\" tests whether the metric got worse than its reference allows, so it needs max_delta or max_ratio, not {name}"
                ))
            } else if matches!(metric, Some(MetricRef::Invocations | MetricRef::Throttles)) {
                Some(format!(
                    "{what}: judge = \"sequential\" works on error_rate, durations and custom metrics, not invocation or throttle counts"
                ))
            } else {
                None
            };
            if let Some(problem) = problem {
                self.err(span.clone(), problem);
                ok = false;
            }
        }
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
            judge,
        })
        .filter(|_| ok)
    }

    /// A count of at least 1 (and at most `max`, if given), or its default.
    fn count(
        &mut self,
        v: Option<&Spanned<i64>>,
        what: &str,
        max: Option<i64>,
        default: i64,
    ) -> i64 {
        let Some(n) = v else { return default };
        let value = *n.get_ref();
        match max {
            _ if value < 1 => {}
            Some(max) if value > max => {}
            _ => return value,
        }
        let message = match max {
            Some(max) => format!("{what} must be between 1 and {max}, not {value}"),
            None => format!("{what} must be at least 1, not {value}"),
        };
        self.err(n.span(), message);
        default
    }

    /// A name unique within `taken`; `what` is "guardrail", "gate" etc.
    fn unique_name(
        &mut self,
        name: Option<&Spanned<String>>,
        within: &Range<usize>,
        what: &str,
        taken: &mut BTreeSet<String>,
        duplicate: impl FnOnce(&str) -> String,
    ) -> Option<String> {
        let n = self.required(
            name,
            within,
            || format!("{what} needs a name = \"...\""),
            || format!("{what} name must not be empty"),
        )?;
        if !taken.insert(n.to_string()) {
            let message = duplicate(n);
            self.err(name.map_or(within.clone(), Spanned::span), message);
        }
        Some(n.to_string())
    }

    fn guardrails(
        &mut self,
        raw: &[Spanned<RawGuardrail>],
        metrics: &BTreeMap<String, CustomMetric>,
        taken: &mut BTreeSet<String>,
        allowed: Allowed,
    ) -> Vec<Guardrail> {
        let mut out = Vec::new();
        for (i, g) in raw.iter().enumerate() {
            let span = g.span();
            let g = g.get_ref();
            let name = self.unique_name(g.name.as_ref(), &span, "guardrail", taken, |n| {
                format!("duplicate guardrail name {n:?}")
            });
            let what = match &name {
                Some(n) => format!("guardrail {n:?}"),
                None => format!("guardrail #{}", i + 1),
            };
            let window = self.minutes_or(g.window.as_ref(), "window", DEFAULT_GUARDRAIL_WINDOW);
            let min_samples = self.count(
                g.min_samples.as_ref(),
                "min_samples",
                None,
                DEFAULT_MIN_SAMPLES,
            );
            let consecutive = self.count(
                g.consecutive.as_ref(),
                "consecutive",
                Some(100),
                DEFAULT_CONSECUTIVE,
            );
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
                        .chain(g.judge.as_ref().map(|_| "judge"))
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
                        g.judge.as_ref(),
                        allowed,
                        metrics,
                    )
                    .map(GuardrailKind::Metric)
                }
                (None, None) => {
                    self.err(span.clone(), format!("{what} needs a metric or an alarm"));
                    None
                }
            };
            if let (Some(name), Some(kind), Some(window)) = (name, kind, window) {
                out.push(Guardrail {
                    name,
                    kind,
                    action,
                    window,
                    min_samples: min_samples.unsigned_abs(),
                    consecutive: u32::try_from(consecutive).unwrap_or(3),
                });
            }
        }
        out
    }

    fn gates(
        &mut self,
        raw: &[Spanned<RawGate>],
        phase: &str,
        metrics: &BTreeMap<String, CustomMetric>,
        allowed: Allowed,
    ) -> Vec<Gate> {
        let mut taken = BTreeSet::new();
        let mut out = Vec::new();
        for (i, g) in raw.iter().enumerate() {
            let span = g.span();
            let g = g.get_ref();
            let name = self.unique_name(g.name.as_ref(), &span, "gate", &mut taken, |n| {
                format!("duplicate gate name {n:?} in phase {phase}")
            });
            let what = match &name {
                Some(n) => format!("gate {n:?}"),
                None => format!("gate #{} of phase {phase}", i + 1),
            };
            let metric = match &g.metric {
                Some(m) => self.metric(m, metrics),
                None => {
                    self.err(
                        span.clone(),
                        format!("{what} needs a metric, e.g. metric = \"duration_avg\""),
                    );
                    None
                }
            };
            let condition = self.condition(
                &what,
                span.clone(),
                metric,
                g.bound_fields(),
                g.compare_to.as_ref(),
                g.judge.as_ref(),
                allowed,
                metrics,
            );
            let window = self.minutes_or(g.window.as_ref(), "window", DEFAULT_GATE_WINDOW);
            let min_samples = self.count(
                g.min_samples.as_ref(),
                "min_samples",
                None,
                DEFAULT_MIN_SAMPLES,
            );
            if let (Some(name), Some(condition), Some(window)) = (name, condition, window) {
                out.push(Gate {
                    name,
                    condition,
                    window,
                    min_samples: min_samples.unsigned_abs(),
                });
            }
        }
        out
    }

    /// A phase's canary steps: percentages, each above the last, below 100.
    fn traffic(
        &mut self,
        raw: Option<&Spanned<Vec<Spanned<i64>>>>,
        canary: bool,
        label: &str,
    ) -> Vec<u32> {
        let Some(raw) = raw else { return Vec::new() };
        if !canary {
            self.err(
                raw.span(),
                format!("phase {label}: traffic needs backend = \"lambda-alias\" (canary steps run on a weighted alias)"),
            );
            return Vec::new();
        }
        if raw.get_ref().is_empty() {
            self.err(
                raw.span(),
                format!("phase {label}: traffic lists no steps; leave it out to move all traffic at once"),
            );
        }
        let mut out: Vec<u32> = Vec::new();
        for w in raw.get_ref() {
            let v = *w.get_ref();
            match u32::try_from(v) {
                Ok(v @ 1..=99) if out.last().is_none_or(|last| v > *last) => out.push(v),
                Ok(1..=99) => self.err(
                    w.span(),
                    format!("phase {label}: traffic steps must rise ({v} does not follow {})", out.last().copied().unwrap_or(0)),
                ),
                _ => self.err(
                    w.span(),
                    format!("phase {label}: a traffic step is a percentage from 1 to 99, not {v} (all traffic follows the last step by itself)"),
                ),
            }
        }
        out
    }

    fn judge_spec(&mut self, raw: Option<&RawJudge>) -> JudgeSpec {
        let mut spec = JudgeSpec::default();
        let Some(raw) = raw else { return spec };
        if let Some(a) = &raw.alpha {
            let v = *a.get_ref();
            if (0.0001..=0.2).contains(&v) {
                spec.alpha = v;
            } else {
                self.err(
                    a.span(),
                    format!(
                        "judge.alpha is a false-alarm probability between 0.0001 and 0.2, not {v}"
                    ),
                );
            }
        }
        spec.max_wait = raw.max_wait.as_ref().and_then(|w| self.duration(w));
        spec.on_inconclusive = self.choice(
            raw.on_inconclusive.as_ref(),
            "judge.on_inconclusive",
            &[
                ("pause", InconclusivePolicy::Pause),
                ("rollback", InconclusivePolicy::Rollback),
                ("promote", InconclusivePolicy::Promote),
            ],
            InconclusivePolicy::Pause,
        );
        spec
    }

    fn schedule(&mut self, raw: Option<&RawSchedule>) -> Schedule {
        let mut schedule = Schedule::default();
        let Some(raw) = raw else { return schedule };
        if let Some(list) = &raw.promote {
            if list.get_ref().is_empty() {
                self.err(
                    list.span(),
                    "schedule.promote lists no windows; leave it out to allow promotion at any time",
                );
            }
            for w in list.get_ref() {
                match parse_window(w.get_ref()) {
                    Ok(window) => schedule.promote.push(window),
                    Err(e) => self.err(w.span(), format!("schedule.promote: {e}")),
                }
            }
        }
        let zone = match &raw.timezone {
            Some(z) => parse_zone(z.get_ref().trim()).unwrap_or_else(|e| {
                self.err(z.span(), format!("schedule.timezone: {e}"));
                chrono_tz::Tz::UTC
            }),
            None => schedule
                .promote
                .first()
                .map_or(chrono_tz::Tz::UTC, |w| w.zone()),
        };
        for f in &raw.freeze {
            match parse_freeze(f.get_ref(), zone) {
                Ok(freeze) => schedule.freeze.push(freeze),
                Err(e) => self.err(f.span(), format!("schedule.freeze: {e}")),
            }
        }
        schedule
    }

    fn backstop(&mut self, raw: Option<&RawBackstop>) -> Option<Backstop> {
        let raw = raw?;
        let topic = raw.sns_topic.as_ref().and_then(|t| {
            let arn = t.get_ref();
            match sns_topic_problem(arn) {
                None => Some(arn.clone()),
                Some(why) => {
                    self.err(
                        t.span(),
                        format!("backstop.sns_topic {arn:?} is not an SNS topic ARN: {why}; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\""),
                    );
                    None
                }
            }
        });
        match &raw.alarms {
            Some(alarms) if *alarms.get_ref() => {
                if raw.sns_topic.is_none() {
                    self.err(
                        alarms.span(),
                        "backstop.alarms = true needs sns_topic = \"arn:aws:sns:REGION:ACCOUNT:NAME\": the SNS topic the alarms notify (e.g. the on-call pager's)",
                    );
                }
                topic.map(|sns_topic| Backstop { sns_topic })
            }
            // Without alarms the topic is kept in the file but unused.
            _ => None,
        }
    }

    fn custom_metrics(
        &mut self,
        raw: &BTreeMap<Spanned<String>, Spanned<RawMetric>>,
    ) -> BTreeMap<String, CustomMetric> {
        let mut metrics = BTreeMap::new();
        for (key, m) in raw {
            let name = key.get_ref();
            if builtin_metric(name).is_some() || name.starts_with("duration_p") {
                self.err(
                    key.span(),
                    format!(
                        "metric name {name:?} is taken by a built-in metric; choose another name"
                    ),
                );
            }
            let span = m.span();
            let m = m.get_ref();
            let namespace = self.required(
                m.namespace.as_ref(),
                &span,
                || format!("metric {name:?} needs namespace = \"...\" (its CloudWatch namespace)"),
                || "metric namespace must not be empty".into(),
            );
            let metric_name = self.required(
                m.metric_name.as_ref(),
                &span,
                || format!("metric {name:?} needs metric_name = \"...\" (its CloudWatch name)"),
                || "metric_name must not be empty".into(),
            );
            let stat = match &m.stat {
                None => {
                    self.err(
                        span.clone(),
                        format!("metric {name:?} needs stat = \"...\": Average, Sum, SampleCount, Minimum, Maximum or pNN"),
                    );
                    None
                }
                Some(s) if !valid_stat(s.get_ref()) => {
                    self.err(
                        s.span(),
                        format!(
                            "stat {:?} is not a CloudWatch statistic: use Average, Sum, SampleCount, Minimum, Maximum or pNN (e.g. p99, p99.9)",
                            s.get_ref()
                        ),
                    );
                    None
                }
                Some(s) => Some(s.get_ref().as_str()),
            };
            let version_dimension = match &m.version_dimension {
                Some(d) if d.get_ref().trim().is_empty() => {
                    self.err(d.span(), "version_dimension must name a dimension");
                    None
                }
                Some(d) if m.dimensions.contains_key(d.get_ref()) => {
                    self.err(
                        d.span(),
                        format!("version_dimension {:?} is also in dimensions; rollgate sets it to each version's number", d.get_ref()),
                    );
                    None
                }
                Some(d) => Some(d.get_ref().as_str()),
                None => None,
            };
            // Declared even when invalid, so guardrails that use it are not
            // also reported as using an unknown metric.
            metrics.insert(
                name.clone(),
                CustomMetric {
                    namespace: namespace.unwrap_or_default().to_string(),
                    metric_name: metric_name.unwrap_or_default().to_string(),
                    dimensions: m.dimensions.clone(),
                    stat: stat.unwrap_or_default().to_string(),
                    version_dimension: version_dimension.map(str::to_string),
                },
            );
        }
        metrics
    }
}

/// Which references a condition may use where it is written.
#[derive(Debug, Clone, Copy)]
struct Allowed {
    /// In a phase after the first.
    previous: bool,
    /// Where canary steps exist (plan-wide on a `lambda-alias` plan, or in
    /// a phase with `traffic`).
    stable: bool,
}

const DEFAULT_STEP_BAKE: Duration = Duration::from_secs(600);

/// What is wrong with an SNS topic ARN
/// (`arn:PARTITION:sns:REGION:ACCOUNT:NAME`), if anything.
fn sns_topic_problem(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [prefix, partition, service, region, account, name] = parts.as_slice() else {
        return Some(format!(
            "it has {} parts separated by ':', not 6",
            parts.len()
        ));
    };
    let region_ok = {
        let pieces: Vec<&str> = region.split('-').collect();
        pieces.len() >= 3
            && pieces[0].len() == 2
            && pieces[..pieces.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && pieces[pieces.len() - 1].chars().all(|c| c.is_ascii_digit())
            && !pieces[pieces.len() - 1].is_empty()
    };
    let topic = name.strip_suffix(".fifo").unwrap_or(name);
    if *prefix != "arn" {
        Some("it does not start with \"arn:\"".into())
    } else if !partition
        .strip_prefix("aws")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
    {
        Some(format!(
            "the partition {partition:?} is not aws, aws-cn, aws-us-gov or another aws-…"
        ))
    } else if *service != "sns" {
        Some(format!("the service is {service:?}, not \"sns\""))
    } else if !region_ok {
        Some(format!(
            "the region {region:?} is not an AWS region such as \"us-east-1\""
        ))
    } else if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        Some(format!("the account {account:?} is not 12 digits"))
    } else if topic.is_empty()
        || name.len() > 256
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some(format!(
            "the topic name {name:?} is not 1 to 256 letters, digits, '-' or '_'"
        ))
    } else {
        None
    }
}

/// An alias name Lambda accepts that is not a version: letters, digits,
/// '-' and '_', not all digits, at most 128 characters.
fn valid_alias(a: &str) -> bool {
    !a.is_empty()
        && a.len() <= 128
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        && !a.chars().all(|c| c.is_ascii_digit())
}

/// Parses and validates plan text.
pub fn parse(name: &str, text: &str) -> Result<Plan, Vec<PlanError>> {
    let raw: RawPlan = toml::from_str(text).map_err(|e| vec![toml_error(text, &e)])?;
    let mut c = Checker {
        text,
        errors: Vec::new(),
    };

    // Target.
    let mut target = Target {
        backend: BackendKind::LambdaEnv,
        function: String::new(),
        alias: None,
        region: None,
        appconfig: None,
    };
    match &raw.target {
        None => c.err_at_start(
            "the plan needs a [target] table with function = \"...\" (the Lambda function's name or ARN)",
        ),
        Some(t) => {
            let span = t.span();
            let t = t.get_ref();
            target.backend = c.choice(
                t.backend.as_ref(),
                "target.backend",
                &[
                    ("lambda-env", BackendKind::LambdaEnv),
                    ("lambda-alias", BackendKind::LambdaAlias),
                    ("appconfig", BackendKind::AppConfig),
                ],
                BackendKind::LambdaEnv,
            );
            target.appconfig = c.appconfig_target(t, &span, target.backend);
            match (&t.alias, target.backend) {
                (None, BackendKind::LambdaAlias) => c.err(
                    span.clone(),
                    "backend = \"lambda-alias\" needs alias = \"...\": the alias callers invoke (e.g. \"live\")",
                ),
                (Some(a), BackendKind::LambdaEnv | BackendKind::AppConfig) => c.err(
                    a.span(),
                    "alias applies to backend = \"lambda-alias\"; lambda-env writes the function's own environment, appconfig a feature-flag profile",
                ),
                (Some(a), _) if a.get_ref() == "$LATEST" => c.err(
                    a.span(),
                    "alias must not be \"$LATEST\": an unqualified function has no weights and no frozen environment; name the alias callers invoke",
                ),
                (Some(a), _) if !valid_alias(a.get_ref()) => c.err(
                    a.span(),
                    format!("alias {:?} is not a Lambda alias name (letters, digits, '-' and '_', not all digits, at most 128)", a.get_ref()),
                ),
                (Some(a), _) => target.alias = Some(a.get_ref().clone()),
                (None, _) => {}
            }
            target.function = c
                .required(
                    t.function.as_ref(),
                    &span,
                    || "[target] needs function = \"...\" (the Lambda function's name or ARN)".into(),
                    || "target.function must name a Lambda function".into(),
                )
                .unwrap_or_default()
                .to_string();
            if let Some(region) = &t.region {
                if region.get_ref().trim().is_empty() {
                    c.err(
                        region.span(),
                        "target.region must not be empty; leave it out to use the AWS configuration's region",
                    );
                }
                target.region = Some(region.get_ref().clone());
            }
        }
    }

    // Owned flags.
    let mut flags = Flags::new();
    let empty = RawFlags::new();
    let raw_flags = match &raw.flags {
        None => {
            c.err_at_start("the plan needs a [flags] table listing the flags it owns");
            &empty
        }
        Some(f) => {
            if f.get_ref().is_empty() {
                c.err(
                    f.span(),
                    "[flags] must list at least one flag the plan owns",
                );
            }
            f.get_ref()
        }
    };
    // Every key listed, even one whose value is invalid (already reported).
    let owned: BTreeSet<&str> = raw_flags.keys().map(|k| k.get_ref().as_str()).collect();
    for (key, value) in raw_flags {
        let k = key.get_ref();
        if target.backend == BackendKind::AppConfig {
            if let Err(why) = appconfig_flags::check_key(k) {
                c.err(key.span(), why);
            }
        } else if !valid_env_key(k) {
            c.err(
                key.span(),
                format!("flag name {k:?} is not a valid Lambda environment variable name (letters, digits and '_', starting with a letter, at least 2 characters)"),
            );
        } else if RESERVED_KEYS.contains(&k.as_str()) {
            c.err(key.span(), format!("flag name {k:?} is reserved by Lambda"));
        }
        if let Some(v) = c.owned_value(target.backend, k, value) {
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
    let lookback = c
        .minutes_or(
            raw.baseline.as_ref().and_then(|b| b.lookback.as_ref()),
            "lookback",
            DEFAULT_LOOKBACK,
        )
        .unwrap_or(DEFAULT_LOOKBACK);
    let settle = c
        .duration_or(
            raw.cloudwatch.as_ref().and_then(|w| w.settle.as_ref()),
            DEFAULT_SETTLE,
        )
        .unwrap_or(DEFAULT_SETTLE);
    let defaults = raw.defaults.as_ref();
    let default_bake_given = defaults.and_then(|d| d.bake.as_ref()).is_some();
    let default_bake = defaults
        .and_then(|d| d.bake.as_ref())
        .and_then(|b| c.duration(b));
    let default_step_bake = c
        .duration_or(
            defaults.and_then(|d| d.step_bake.as_ref()),
            DEFAULT_STEP_BAKE,
        )
        .unwrap_or(DEFAULT_STEP_BAKE);
    let judge = c.judge_spec(raw.judge.as_ref());
    let schedule = c.schedule(raw.schedule.as_ref());
    let backstop = c.backstop(raw.backstop.as_ref());
    let canary = target.backend == BackendKind::LambdaAlias;
    let default_approval = c.choice(
        defaults.and_then(|d| d.approval.as_ref()),
        "approval",
        &[("manual", Approval::Manual), ("auto", Approval::Auto)],
        Approval::Manual,
    );

    let metrics = c.custom_metrics(&raw.metrics);

    let drift = c.choice(
        raw.drift.as_ref().and_then(|d| d.policy.as_ref()),
        "drift.policy",
        &[
            ("revert", DriftPolicy::Revert),
            ("pause", DriftPolicy::Pause),
        ],
        DriftPolicy::Revert,
    );
    let no_data = raw.insufficient_data.as_ref();
    let insufficient_data = InsufficientData {
        policy: c.choice(
            no_data.and_then(|d| d.policy.as_ref()),
            "insufficient_data.policy",
            &[
                ("ignore", NoDataPolicy::Ignore),
                ("breach", NoDataPolicy::Breach),
            ],
            NoDataPolicy::Ignore,
        ),
        after: c
            .duration_or(
                no_data.and_then(|d| d.after.as_ref()),
                Duration::from_secs(600),
            )
            .unwrap_or(Duration::from_secs(600)),
    };
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
    // Plan-wide conditions meet canary steps only if some phase has them.
    let any_steps = canary
        && raw
            .phases
            .iter()
            .flatten()
            .any(|p| p.get_ref().traffic.is_some());
    let guardrails = c.guardrails(
        &raw.guardrails,
        &metrics,
        &mut plan_guardrail_names,
        Allowed {
            previous: false,
            stable: any_steps,
        },
    );

    // Phases.
    let raw_phases = raw.phases.as_deref().unwrap_or_default();
    if raw_phases.is_empty() {
        c.err_at_start("the plan needs at least one [[phases]] entry");
    }
    let mut phases: Vec<Phase> = Vec::new();
    // The rollout index of the last position with all traffic.
    let mut last_full = 0;
    let mut phase_names = BTreeSet::new();
    let mut current = flags.clone();
    for (index, p) in raw_phases.iter().enumerate() {
        let span = p.span();
        let p = p.get_ref();
        let pname = match &p.name {
            None => {
                c.err(
                    span.clone(),
                    format!("phase #{} needs a name = \"...\"", index + 1),
                );
                None
            }
            Some(n) => {
                let pname = n.get_ref();
                if !valid_phase_name(pname) {
                    c.err(
                        n.span(),
                        format!("phase name {pname:?} must be lower-case letters, digits, '-' or '_', starting with a letter or digit"),
                    );
                } else if pname == "baseline" {
                    c.err(
                        n.span(),
                        "phase name \"baseline\" is reserved for the phase before the first",
                    );
                } else if !phase_names.insert(pname.clone()) {
                    c.err(n.span(), format!("duplicate phase name {pname:?}"));
                }
                Some(pname.clone())
            }
        };
        // How messages name this phase.
        let label = pname
            .as_ref()
            .map_or_else(|| format!("#{}", index + 1), |n| format!("{n:?}"));
        let mut set = Flags::new();
        match &p.set {
            None => c.err(
                span.clone(),
                format!("phase {label} sets no flags: add set = {{ FLAG = \"value\" }}"),
            ),
            Some(s) if s.get_ref().is_empty() => {
                c.err(s.span(), format!("phase {label} sets no flags"));
            }
            Some(s) => {
                for (key, value) in s.get_ref() {
                    let k = key.get_ref();
                    if owned.is_empty() {
                        // Already reported: the plan owns no flags.
                    } else if !owned.contains(k.as_str()) {
                        let owned: Vec<&str> = owned.iter().copied().collect();
                        c.err(
                            key.span(),
                            format!(
                                "phase {label} sets {k}, which the plan does not own (owned flags: {})",
                                owned.join(", ")
                            ),
                        );
                    } else if let Some(v) = c.owned_value(target.backend, k, value) {
                        set.insert(k.clone(), v);
                    }
                }
                let mut next = current.clone();
                next.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                if !set.is_empty() && next == current {
                    c.err(
                        s.span(),
                        format!("phase {label} changes nothing: every flag it sets already has that value in the previous phase"),
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
                    format!("phase {label} needs a bake time: set bake here or in [defaults]"),
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
        let protected = p.protected.as_ref().is_some_and(|v| *v.get_ref());
        // The phase before promotes itself when "auto": that would enter a
        // protected phase with nobody's approval.
        if let (Some(v), Some(before)) = (p.protected.as_ref(), phases.last())
            && protected
            && before.approval == Approval::Auto
        {
            c.err(
                v.span(),
                format!(
                    "phase {label} is protected, but phase {} before it has approval = \"auto\" and would enter it unapproved; make {} manual",
                    before.name, before.name
                ),
            );
        }
        let traffic = c.traffic(p.traffic.as_ref(), canary, &label);
        let step_bake = c
            .duration_or(p.step_bake.as_ref(), default_step_bake)
            .unwrap_or(default_step_bake);
        if let (Some(b), true) = (&p.step_bake, traffic.is_empty()) {
            c.err(
                b.span(),
                format!(
                    "phase {label} has no canary steps (traffic = [...]) for step_bake to apply to"
                ),
            );
        }
        let allowed = Allowed {
            previous: index > 0,
            stable: !traffic.is_empty(),
        };
        let mut names = plan_guardrail_names.clone();
        let phase_guardrails = c.guardrails(&p.guardrails, &metrics, &mut names, allowed);
        let gates = c.gates(&p.gates, &label, &metrics, allowed);
        let name = pname.unwrap_or_default();
        for (i, weight) in traffic.iter().enumerate() {
            phases.push(Phase {
                name: format!("{name}@{weight}%"),
                stage: name.clone(),
                traffic: Some(*weight),
                stable: last_full,
                set: set.clone(),
                flags: current.clone(),
                bake: step_bake,
                // Steps promote themselves once they pass; entering the
                // phase (its first step) is what needs the approval.
                approval: Approval::Auto,
                protected: protected && i == 0,
                guardrails: phase_guardrails.clone(),
                gates: gates.clone(),
            });
        }
        phases.push(Phase {
            name: name.clone(),
            stage: name,
            traffic: None,
            stable: last_full,
            set,
            flags: current.clone(),
            bake: bake.unwrap_or_default(),
            approval,
            protected: protected && traffic.is_empty(),
            // With all traffic on the new flags there is no stable version
            // to compare with: those conditions were settled by the steps.
            guardrails: phase_guardrails
                .into_iter()
                .filter(|g| !matches!(&g.kind, GuardrailKind::Metric(c) if c.reference == Reference::Stable))
                .collect(),
            gates: gates
                .into_iter()
                .filter(|g| g.condition.reference != Reference::Stable)
                .collect(),
        });
        last_full = phases.len();
    }

    if !c.errors.is_empty() {
        c.errors.sort_by_key(|e| (e.line, e.col));
        return Err(c.errors);
    }
    Ok(Plan {
        name: name.to_string(),
        description: raw.description,
        target,
        flags,
        phases,
        rollback,
        baseline: BaselineSpec { lookback },
        metrics,
        guardrails,
        drift,
        insufficient_data,
        settle,
        webhooks,
        judge,
        schedule,
        backstop,
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
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(129_600)));
        assert_eq!(parse_duration("0h5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
        for bad in [
            "", "0s", "0h0m", "5", "h", "5x", "-5m", "1.5h", "5 m", "5M", "1h30", "m5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn duration_errors_name_the_accepted_forms() {
        for bad in ["", "5", "soon", "1.5h"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(
                e.contains("\"90s\", \"5m\", \"48h\", \"7d\" or \"1h30m\""),
                "{e}"
            );
        }
        assert_eq!(
            parse_duration("0s").unwrap_err(),
            "duration \"0s\" must be greater than zero"
        );
    }

    #[test]
    fn huge_durations_are_rejected_not_wrapped() {
        for bad in [
            "99999999999999999999d",
            "213503982334602d",
            "18446744073709551615s1s",
        ] {
            assert!(
                parse_duration(bad).unwrap_err().contains("too long"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn durations_no_clock_can_hold_are_refused() {
        assert_eq!(parse_duration("455d"), Ok(MAX_DURATION));
        for bad in ["456d", "100000000d", "39312001s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.contains("too long: at most 455d"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_col(text, text.rfind('=').unwrap()), (2, 4));
        // Past the end, or inside a character: clamped, never a panic.
        assert_eq!(line_col(text, 1000), (3, 1));
        assert_eq!(line_col(text, 8), (2, 2));
    }

    #[test]
    fn stats_keys_and_metrics() {
        assert!(valid_stat("p99") && valid_stat("p99.9") && valid_stat("Average"));
        assert!(!valid_stat("p100") && !valid_stat("avg") && !valid_stat("p") && !valid_stat("p0"));
        assert!(
            valid_env_key("USE_X")
                && !valid_env_key("1X")
                && !valid_env_key("X")
                && !valid_env_key("A-B")
                && !valid_env_key("ÜBER")
        );
        assert!(valid_phase_name("prompts") && valid_phase_name("2-tools_b"));
        assert!(!valid_phase_name("Prompts") && !valid_phase_name("-x") && !valid_phase_name(""));
        assert_eq!(
            builtin_metric("duration_p99.9"),
            Some(MetricRef::DurationPercentile(99.9))
        );
        assert_eq!(builtin_metric("duration_p100"), None);
        assert_eq!(builtin_metric("tokens"), None);
    }
}

//! The plan file as written: serde structs mirroring the TOML, with spans
//! where validation needs to point at a value. The JSON Schema is generated
//! from these structs, so the doc comments are the schema's descriptions.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

/// A staged rollout plan for feature flags in an AWS Lambda function.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    /// What this plan ships, for operators.
    pub description: Option<String>,
    /// The function whose flags this plan writes.
    #[schemars(with = "RawTarget")]
    pub target: S<RawTarget>,
    /// Every flag the plan owns, with its baseline value. Only these keys are ever written.
    #[schemars(with = "BTreeMap<String, FlagValue>")]
    pub flags: S<BTreeMap<S<String>, S<toml::Value>>>,
    pub rollback: Option<RawRollback>,
    pub baseline: Option<RawBaseline>,
    pub defaults: Option<RawDefaults>,
    pub drift: Option<RawDrift>,
    pub notify: Option<RawNotify>,
    /// Custom CloudWatch metrics, by the name guardrails and gates use for them.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawMetric>")]
    pub metrics: BTreeMap<S<String>, S<RawMetric>>,
    /// Rollback triggers that apply to every phase.
    #[serde(default)]
    #[schemars(with = "Vec<RawGuardrail>")]
    pub guardrails: Vec<S<RawGuardrail>>,
    /// Phases in order; each builds on the previous one's flags.
    #[serde(default)]
    #[schemars(with = "Vec<RawPhase>")]
    pub phases: Vec<S<RawPhase>>,
}

/// A flag value: a string, a boolean ("true"/"false") or an integer.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FlagValue {
    String(String),
    Bool(bool),
    Integer(i64),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Where flags are written. Only "lambda-env" today (the default).
    #[schemars(with = "Option<String>")]
    pub backend: Option<S<String>>,
    /// Lambda function name or ARN.
    #[schemars(with = "String")]
    pub function: S<String>,
    /// AWS region; by default the usual AWS configuration chain decides.
    pub region: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRollback {
    /// "baseline" (all flags to baseline; the rollout ends) or "previous"
    /// (the previous phase's flags; the rollout pauses there). Default "baseline".
    #[schemars(with = "Option<String>")]
    pub to: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBaseline {
    /// Metrics window before the start used as the baseline, e.g. "7d". Default "7d".
    #[schemars(with = "Option<String>")]
    pub lookback: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    /// Default bake time of every phase, e.g. "48h".
    #[schemars(with = "Option<String>")]
    pub bake: Option<S<String>>,
    /// Default approval mode: "manual" (default) or "auto".
    #[schemars(with = "Option<String>")]
    pub approval: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrift {
    /// When the function's owned flags differ from what the rollout wants:
    /// "revert" (write them back; default) or "pause" (freeze and alert).
    #[schemars(with = "Option<String>")]
    pub policy: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    /// URLs that receive a JSON POST (Slack-compatible `text`) on breaches,
    /// rollbacks, drift and phases ready for approval.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub webhooks: Vec<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    /// CloudWatch namespace, e.g. "DixonSmartRepair".
    #[schemars(with = "String")]
    pub namespace: S<String>,
    /// CloudWatch metric name, e.g. "TokensPerRequest".
    #[schemars(with = "String")]
    pub metric_name: S<String>,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// Average, Sum, SampleCount, Minimum, Maximum, or a percentile pNN / pNN.N.
    #[schemars(with = "String")]
    pub stat: S<String>,
}

/// A rollback trigger: a metric condition, or a CloudWatch alarm.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrail {
    #[schemars(with = "String")]
    pub name: S<String>,
    /// error_rate | duration_avg | duration_pNN | throttles | invocations | a custom metric's name.
    #[schemars(with = "Option<String>")]
    pub metric: Option<S<String>>,
    /// A CloudWatch alarm name: the guardrail is breached while it is in ALARM.
    #[schemars(with = "Option<String>")]
    pub alarm: Option<S<String>>,
    /// Bound: the value must stay at or below this.
    #[schemars(with = "Option<f64>")]
    pub max: Option<S<f64>>,
    /// Bound: the value must stay at or above this.
    #[schemars(with = "Option<f64>")]
    pub min: Option<S<f64>>,
    /// Bound: at most this far above the reference (metric units; percentage points for error_rate).
    #[schemars(with = "Option<f64>")]
    pub max_delta: Option<S<f64>>,
    /// Bound: at most this far below the reference.
    #[schemars(with = "Option<f64>")]
    pub min_delta: Option<S<f64>>,
    /// Bound: at most reference × this.
    #[schemars(with = "Option<f64>")]
    pub max_ratio: Option<S<f64>>,
    /// Bound: at least reference × this.
    #[schemars(with = "Option<f64>")]
    pub min_ratio: Option<S<f64>>,
    /// For delta/ratio bounds: "baseline" (default) or "previous_phase".
    #[schemars(with = "Option<String>")]
    pub compare_to: Option<S<String>>,
    /// Evaluation window, default "5m".
    #[schemars(with = "Option<String>")]
    pub window: Option<S<String>>,
    /// Fewest samples (invocations) in the window before deciding; default 100.
    #[schemars(with = "Option<i64>")]
    pub min_samples: Option<S<i64>>,
    /// Consecutive breaching evaluations before acting; default 3.
    #[schemars(with = "Option<i64>")]
    pub consecutive: Option<S<i64>>,
    /// "rollback" (default), "pause" or "observe".
    #[schemars(with = "Option<String>")]
    pub action: Option<S<String>>,
}

/// A promotion criterion: must hold before the phase may be promoted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGate {
    #[schemars(with = "String")]
    pub name: S<String>,
    #[schemars(with = "String")]
    pub metric: S<String>,
    /// Bound: the value must stay at or below this.
    #[schemars(with = "Option<f64>")]
    pub max: Option<S<f64>>,
    /// Bound: the value must stay at or above this.
    #[schemars(with = "Option<f64>")]
    pub min: Option<S<f64>>,
    /// Bound: at most this far above the reference (metric units; percentage points for error_rate).
    #[schemars(with = "Option<f64>")]
    pub max_delta: Option<S<f64>>,
    /// Bound: at most this far below the reference.
    #[schemars(with = "Option<f64>")]
    pub min_delta: Option<S<f64>>,
    /// Bound: at most reference × this.
    #[schemars(with = "Option<f64>")]
    pub max_ratio: Option<S<f64>>,
    /// Bound: at least reference × this.
    #[schemars(with = "Option<f64>")]
    pub min_ratio: Option<S<f64>>,
    /// For delta/ratio bounds: "baseline" (default) or "previous_phase".
    #[schemars(with = "Option<String>")]
    pub compare_to: Option<S<String>>,
    /// Evaluation window, default "1h".
    #[schemars(with = "Option<String>")]
    pub window: Option<S<String>>,
    /// Fewest samples in the window; default 100.
    #[schemars(with = "Option<i64>")]
    pub min_samples: Option<S<i64>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPhase {
    /// Lower-case name: letters, digits, '-' and '_'. "baseline" is reserved.
    #[schemars(with = "String")]
    pub name: S<String>,
    /// Flags this phase sets, on top of the previous phase's.
    #[schemars(with = "Option<BTreeMap<String, FlagValue>>")]
    pub set: Option<S<BTreeMap<S<String>, S<toml::Value>>>>,
    /// How long the phase must run before promotion, e.g. "48h".
    #[schemars(with = "Option<String>")]
    pub bake: Option<S<String>>,
    /// "manual" or "auto".
    #[schemars(with = "Option<String>")]
    pub approval: Option<S<String>>,
    /// Extra guardrails for this phase only.
    #[serde(default)]
    #[schemars(with = "Vec<RawGuardrail>")]
    pub guardrails: Vec<S<RawGuardrail>>,
    /// Promotion criteria.
    #[serde(default)]
    #[schemars(with = "Vec<RawGate>")]
    pub gates: Vec<S<RawGate>>,
}

/// The six bound fields by name, for guardrails and gates alike.
pub type BoundFields<'a> = [(&'static str, Option<&'a S<f64>>); 6];

macro_rules! bound_fields {
    ($t:ty) => {
        impl $t {
            pub fn bound_fields(&self) -> BoundFields<'_> {
                [
                    ("max", self.max.as_ref()),
                    ("min", self.min.as_ref()),
                    ("max_delta", self.max_delta.as_ref()),
                    ("min_delta", self.min_delta.as_ref()),
                    ("max_ratio", self.max_ratio.as_ref()),
                    ("min_ratio", self.min_ratio.as_ref()),
                ]
            }
        }
    };
}
bound_fields!(RawGuardrail);
bound_fields!(RawGate);

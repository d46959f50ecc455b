//! The validated plan model. A `Plan` value is valid by construction: it is
//! only produced by `Plan::parse`, which checks every rule in `validate`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::schedule::Schedule;

/// A flag's name → value. Lambda environment values are strings, so flags are too.
pub type Flags = BTreeMap<String, String>;

/// A staged rollout plan, parsed and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The plan's name: its file stem (`dixon-smart-repair`).
    pub name: String,
    pub description: Option<String>,
    pub target: Target,
    /// Every flag the plan owns, with its baseline value. Only these keys are
    /// ever written to the target.
    pub flags: Flags,
    /// Phases in order. Index 0 of a rollout is the implicit baseline phase;
    /// `phases[i]` is rollout phase `i + 1`.
    pub phases: Vec<Phase>,
    pub rollback: RollbackTarget,
    pub baseline: BaselineSpec,
    /// Custom CloudWatch metrics, by the name guardrails and gates use for them.
    pub metrics: BTreeMap<String, CustomMetric>,
    /// Guardrails that apply to every phase.
    pub guardrails: Vec<Guardrail>,
    pub drift: DriftPolicy,
    pub insufficient_data: InsufficientData,
    /// How long after a CloudWatch period ends before it is judged.
    pub settle: Duration,
    /// Webhook URLs notified of breaches, rollbacks, drift and readiness.
    pub webhooks: Vec<String>,
    /// How `judge = "sequential"` conditions decide, and how long a canary
    /// step may stay inconclusive.
    pub judge: JudgeSpec,
    /// When phases may be promoted (`[schedule]`); unrestricted by default.
    pub schedule: Schedule,
    /// CloudWatch alarms that page while rollgate is down (`[backstop]`
    /// with `alarms = true`).
    pub backstop: Option<Backstop>,
}

/// The plan's `[backstop]`: at the start, CloudWatch alarms mirroring the
/// guardrails are created with this topic as their action, and deleted
/// when the rollout ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backstop {
    /// The SNS topic ARN the alarms notify.
    pub sns_topic: String,
}

/// The plan's `[judge]` table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct JudgeSpec {
    /// False-alarm level of each sequential test (0.01 = 1 %).
    pub alpha: f64,
    /// How long a position's sequential gates may stay inconclusive (from
    /// when its flags took effect) before `on_inconclusive` decides.
    #[serde(with = "opt_duration_secs")]
    pub max_wait: Option<Duration>,
    pub on_inconclusive: InconclusivePolicy,
}

impl Default for JudgeSpec {
    fn default() -> Self {
        JudgeSpec {
            alpha: 0.01,
            max_wait: None,
            on_inconclusive: InconclusivePolicy::Pause,
        }
    }
}

/// What happens to a position whose sequential gates are still
/// inconclusive at `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InconclusivePolicy {
    /// Freeze the rollout and tell the operators.
    Pause,
    /// Roll back as a breached guardrail would.
    Rollback,
    /// Count the inconclusive gates as passed ("no evidence of harm").
    Promote,
}

/// How a condition turns data into a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Judge {
    /// The window's value against the bound, as it stands.
    #[default]
    Threshold,
    /// An anytime-valid sequential test over every period since the
    /// position went live (`domain::judge`).
    Sequential,
}

/// What a guardrail does while its window has too few samples or no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InsufficientData {
    pub policy: NoDataPolicy,
    /// How long data may be missing before `Breach` applies.
    #[serde(with = "duration_secs")]
    pub after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoDataPolicy {
    Ignore,
    Breach,
}

/// What the watcher does when the function's owned flags drift from the
/// rollout's desired flags (someone ran the AWS CLI, a stack redeploy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftPolicy {
    Revert,
    Pause,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub backend: BackendKind,
    /// Lambda function name or ARN.
    pub function: String,
    /// `lambda-alias`: the alias callers invoke (never `$LATEST`).
    pub alias: Option<String>,
    /// Optional AWS region override; otherwise the usual aws-config chain decides.
    pub region: Option<String>,
    /// `appconfig`: where the flags live (`function` is then only the
    /// function whose metrics are watched).
    pub appconfig: Option<AppConfigTarget>,
}

/// An AppConfig feature-flag profile in one environment, each named by
/// name or id (rollgate resolves names to ids).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AppConfigTarget {
    pub application: String,
    pub environment: String,
    /// A hosted configuration profile of type `AWS.AppConfig.FeatureFlags`.
    pub profile: String,
    /// The deployment strategy that steps phases forward.
    pub strategy: String,
    /// The one rollbacks and drift reverts use (default `AppConfig.AllAtOnce`).
    pub rollback_strategy: String,
    /// How often the function's AppConfig Lambda extension polls: a new
    /// configuration reaches every execution environment at most this long
    /// after its deployment completes (the extension's default is 45 s).
    #[serde(with = "duration_secs")]
    #[schema(value_type = u64)]
    pub poll_interval: Duration,
}

/// The AppConfig Lambda extension's default poll interval.
pub const DEFAULT_APPCONFIG_POLL: Duration = Duration::from_secs(45);
/// AWS's predefined strategy that deploys to every client at once.
pub const APPCONFIG_ALL_AT_ONCE: &str = "AppConfig.AllAtOnce";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// Flags in the function's (`$LATEST`) environment.
    LambdaEnv,
    /// Flags in published versions behind a weighted alias: canary steps.
    LambdaAlias,
    /// AWS AppConfig feature flags, which the function reads through the
    /// AppConfig Lambda extension: no recycling of execution environments.
    #[serde(rename = "appconfig")]
    AppConfig,
}

/// One position of a rollout. A phase with `traffic = [10, 50]` is three
/// positions: `NAME@10%` and `NAME@50%` (canary steps: the phase's flags
/// serve that share of the alias's invocations, the stable flags the rest)
/// and `NAME` (all traffic). Other phases are one position each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    /// The phase as written in the file (`prompts` for `prompts@10%`).
    pub stage: String,
    /// Canary steps: the percentage of invocations the new flags serve.
    pub traffic: Option<u32>,
    /// The rollout index of the position whose flags serve the rest of the
    /// traffic during a canary step, and that a `previous` rollback returns
    /// to (the last full position before this phase).
    pub stable: usize,
    /// Only the flags this phase itself sets (as written in the file).
    pub set: Flags,
    /// The complete desired values of every owned flag in this phase:
    /// baseline, overlaid with every earlier phase's `set`, then this one's.
    pub flags: Flags,
    #[serde(with = "duration_secs")]
    pub bake: Duration,
    pub approval: Approval,
    /// Two-person rule: entering this phase needs an approval from an
    /// operator other than the one who asked.
    pub protected: bool,
    /// Extra guardrails for this phase only (on top of the plan's).
    pub guardrails: Vec<Guardrail>,
    /// Success criteria that must hold before this phase may be promoted.
    pub gates: Vec<Gate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Manual,
    Auto,
}

/// Where a rollback returns the flags to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackTarget {
    /// Every owned flag back to its baseline value; the rollout ends.
    Baseline,
    /// The flags of the phase before the current one; the rollout pauses there.
    Previous,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineSpec {
    /// How far back before the start the baseline metrics are read.
    #[serde(with = "duration_secs")]
    pub lookback: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomMetric {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    /// CloudWatch statistic: Average, Sum, SampleCount, Minimum, Maximum or pNN(.N).
    pub stat: String,
    /// The dimension the handler adds with its version number
    /// (`AWS_LAMBDA_FUNCTION_VERSION`), so canary and stable can be told
    /// apart; without it the metric cannot be compared with the stable version.
    pub version_dimension: Option<String>,
}

/// What a guardrail or gate measures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum MetricRef {
    /// Errors / Invocations, in percent.
    ErrorRate,
    DurationAvg,
    /// Duration percentile, e.g. 99.0 for p99.
    DurationPercentile(f64),
    Throttles,
    Invocations,
    /// A custom metric declared in the plan's `[metrics]` table.
    Custom(String),
}

/// A bound a metric value must respect. `Delta` bounds are in the metric's own
/// unit (percentage points for error rate); `Ratio` bounds multiply the reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Max(f64),
    Min(f64),
    MaxDelta(f64),
    MinDelta(f64),
    MaxRatio(f64),
    MinRatio(f64),
}

/// What relative bounds compare against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    Baseline,
    PreviousPhase,
    /// The stable version over the same minutes (canary steps only).
    Stable,
}

/// A condition on a metric: "`metric` stays within `bound` (relative to `reference`)".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Condition {
    pub metric: MetricRef,
    pub bound: Bound,
    pub reference: Reference,
    pub judge: Judge,
}

/// What a breached guardrail does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailAction {
    Rollback,
    Pause,
    Observe,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum GuardrailKind {
    /// Breached when the condition does not hold.
    Metric(Condition),
    /// Breached when the CloudWatch alarm is in `ALARM`.
    Alarm { alarm: String },
}

/// A rollback trigger.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guardrail {
    pub name: String,
    pub kind: GuardrailKind,
    pub action: GuardrailAction,
    #[serde(with = "duration_secs")]
    pub window: Duration,
    pub min_samples: u64,
    pub consecutive: u32,
}

/// A promotion criterion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub name: String,
    pub condition: Condition,
    #[serde(with = "duration_secs")]
    pub window: Duration,
    pub min_samples: u64,
}

impl Plan {
    /// Number of rollout phases including the implicit baseline (index 0).
    pub fn phase_count(&self) -> usize {
        self.phases.len() + 1
    }

    /// Name of rollout phase `index` (0 = "baseline").
    pub fn phase_name(&self, index: usize) -> &str {
        match index {
            0 => "baseline",
            i => self.phases.get(i - 1).map_or("?", |p| p.name.as_str()),
        }
    }

    /// Desired values of every owned flag in rollout phase `index`.
    pub fn flags_at(&self, index: usize) -> &Flags {
        match index {
            0 => &self.flags,
            i => self.phases.get(i - 1).map_or(&self.flags, |p| &p.flags),
        }
    }
}

impl Plan {
    /// Whether rollout position `index` is a canary step.
    pub fn is_canary_step(&self, index: usize) -> bool {
        index > 0
            && self
                .phases
                .get(index - 1)
                .is_some_and(|p| p.traffic.is_some())
    }
}

mod opt_duration_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

/// Durations serialize as whole seconds in JSON.
mod duration_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

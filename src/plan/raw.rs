//! The plan file as written: serde structs mirroring the TOML, with spans
//! where validation needs to point at a value. The JSON Schema is generated
//! from these structs, so the doc comments are the schema's descriptions.
//!
//! Fields the format requires are still `Option` here, so that a missing one
//! is reported by validation (with every other problem) rather than stopping
//! deserialization; `#[schemars(with = ...)]` keeps them required in the schema.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

/// A flag table as written: flag name → value, both located.
pub type RawFlags = BTreeMap<S<String>, S<toml::Value>>;

/// A staged rollout plan for feature flags in an AWS Lambda function.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a plan")]
#[schemars(title = "rollgate rollout plan")]
pub struct RawPlan {
    /// What this plan ships, for operators.
    pub description: Option<String>,
    /// The function whose flags this plan writes.
    #[schemars(with = "RawTarget")]
    pub target: Option<S<RawTarget>>,
    /// Every flag the plan owns, with its baseline value. Only these keys are ever written.
    #[schemars(with = "OwnedFlags")]
    pub flags: Option<S<RawFlags>>,
    /// What a rollback restores.
    pub rollback: Option<RawRollback>,
    /// The reference metrics, read before the rollout starts.
    pub baseline: Option<RawBaseline>,
    /// Defaults for every phase.
    pub defaults: Option<RawDefaults>,
    /// What happens when the function's owned flags are changed behind rollgate's back.
    pub drift: Option<RawDrift>,
    /// What a guardrail does when its window has too few samples or no data.
    pub insufficient_data: Option<RawInsufficientData>,
    /// How CloudWatch's data is read: when a period counts as complete.
    pub cloudwatch: Option<RawCloudWatch>,
    /// Who is told about breaches, rollbacks, drift and phases ready for approval.
    pub notify: Option<RawNotify>,
    /// How `judge = "sequential"` guardrails and gates decide.
    pub judge: Option<RawJudge>,
    /// When phases may be promoted: weekly release windows and freezes. Default: at any time.
    pub schedule: Option<RawSchedule>,
    /// CloudWatch alarms that mirror the guardrails and page through SNS even while rollgate is down.
    pub backstop: Option<RawBackstop>,
    /// Custom CloudWatch metrics, by the name guardrails and gates use for them.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, RawMetric>")]
    pub metrics: BTreeMap<S<String>, S<RawMetric>>,
    /// Rollback triggers that apply to every phase.
    #[serde(default)]
    #[schemars(with = "Vec<RawGuardrail>")]
    pub guardrails: Vec<S<RawGuardrail>>,
    /// Phases in order, after the implicit "baseline" phase; each builds on the previous one's flags.
    #[schemars(with = "Vec<RawPhase>", length(min = 1))]
    pub phases: Option<Vec<S<RawPhase>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [target] table")]
#[schemars(rename = "Target")]
pub struct RawTarget {
    /// Where flags are written: "lambda-env" (the default: the function's
    /// environment) or "lambda-alias" (published versions behind `alias`,
    /// which allows canary steps).
    #[schemars(with = "Option<BackendName>")]
    pub backend: Option<S<String>>,
    /// Lambda function name or ARN.
    #[schemars(with = "String", length(min = 1))]
    pub function: Option<S<String>>,
    /// "lambda-alias": the alias callers invoke, e.g. "live" (required there; never "$LATEST").
    #[schemars(with = "Option<String>")]
    pub alias: Option<S<String>>,
    /// AWS region; by default the usual AWS configuration chain decides.
    #[schemars(with = "Option<String>")]
    pub region: Option<S<String>>,
    /// "appconfig": the AppConfig application (name or id).
    #[schemars(with = "Option<String>")]
    pub application: Option<S<String>>,
    /// "appconfig": the AppConfig environment (name or id).
    #[schemars(with = "Option<String>")]
    pub environment: Option<S<String>>,
    /// "appconfig": the hosted configuration profile of type AWS.AppConfig.FeatureFlags (name or id).
    #[schemars(with = "Option<String>")]
    pub profile: Option<S<String>>,
    /// "appconfig": the deployment strategy phases are deployed with (name or id).
    #[schemars(with = "Option<String>")]
    pub strategy: Option<S<String>>,
    /// "appconfig": the deployment strategy of rollbacks and drift reverts (default "AppConfig.AllAtOnce").
    #[schemars(with = "Option<String>")]
    pub rollback_strategy: Option<S<String>>,
    /// "appconfig": the AppConfig Lambda extension's poll interval in the function (default "45s").
    #[schemars(with = "Option<String>")]
    pub poll_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [rollback] table")]
#[schemars(rename = "Rollback")]
pub struct RawRollback {
    /// Where a rollback returns the flags to. Default "baseline".
    #[schemars(with = "Option<RollbackName>")]
    pub to: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [baseline] table")]
#[schemars(rename = "Baseline")]
pub struct RawBaseline {
    /// Metrics window before the start used as the baseline, e.g. "7d". Default "7d".
    #[schemars(with = "Option<DurationText>")]
    pub lookback: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [defaults] table")]
#[schemars(rename = "Defaults")]
pub struct RawDefaults {
    /// Bake time of every phase that gives none, e.g. "48h". Every phase needs
    /// a bake time, from here or its own.
    #[schemars(with = "Option<DurationText>")]
    pub bake: Option<S<String>>,
    /// Approval mode of every phase that gives none. Default "manual".
    #[schemars(with = "Option<ApprovalName>")]
    pub approval: Option<S<String>>,
    /// Bake time of each canary step (`traffic`) of every phase that gives none. Default "10m".
    #[schemars(with = "Option<DurationText>")]
    pub step_bake: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [judge] table")]
#[schemars(rename = "Judge")]
pub struct RawJudge {
    /// False-alarm level of each sequential test, between 0.0001 and 0.2. Default 0.01.
    #[schemars(with = "Option<f64>")]
    pub alpha: Option<S<f64>>,
    /// How long a position's sequential gates may stay inconclusive after its
    /// flags took effect before `on_inconclusive` decides. Default: no limit.
    #[schemars(with = "Option<DurationText>")]
    pub max_wait: Option<S<String>>,
    /// "pause" (default), "rollback" or "promote" (count them as passed).
    #[schemars(with = "Option<InconclusiveName>")]
    pub on_inconclusive: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [schedule] table")]
#[schemars(rename = "Schedule")]
pub struct RawSchedule {
    /// Weekly windows in which a phase may be promoted: days, times and a
    /// time zone, e.g. "Mon-Thu 09:00-16:00 Europe/London" (by the zone's
    /// wall clock). Default: at any time.
    #[schemars(with = "Option<Vec<WindowText>>", length(min = 1))]
    pub promote: Option<S<Vec<S<String>>>>,
    /// Days on which nothing is promoted: "2026-12-20..2027-01-04" (both
    /// days included) or "2026-12-25", optionally followed by a time zone.
    #[serde(default)]
    #[schemars(with = "Vec<FreezeText>")]
    pub freeze: Vec<S<String>>,
    /// The time zone of freezes that name none. Default: the first promote
    /// window's, else "UTC".
    #[schemars(with = "Option<ZoneName>")]
    pub timezone: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [backstop] table")]
#[schemars(rename = "Backstop")]
pub struct RawBackstop {
    /// At the start, create CloudWatch alarms mirroring the guardrails
    /// (deleted when the rollout ends), so a breach pages even while
    /// rollgate is down. Default false.
    #[schemars(with = "Option<bool>")]
    pub alarms: Option<S<bool>>,
    /// The SNS topic the alarms notify, e.g.
    /// "arn:aws:sns:us-east-1:123456789012:oncall" (required with alarms = true).
    #[schemars(with = "Option<SnsTopicArn>")]
    pub sns_topic: Option<S<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum InconclusiveName {
    /// Freeze the rollout and notify.
    Pause,
    /// Roll back.
    Rollback,
    /// Count as passed.
    Promote,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum JudgeName {
    /// The window's value against the bound (default).
    Threshold,
    /// An anytime-valid sequential test over every period since the position went live.
    Sequential,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [drift] table")]
#[schemars(rename = "Drift")]
pub struct RawDrift {
    /// When the function's owned flags differ from what the rollout wants:
    /// "revert" (write them back; default) or "pause" (freeze and alert).
    #[schemars(with = "Option<DriftName>")]
    pub policy: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "an [insufficient_data] table")]
#[schemars(rename = "InsufficientData")]
pub struct RawInsufficientData {
    /// "ignore" (default: no decision, but a gate never passes on it) or
    /// "breach" (a guardrail without data for `after` counts as breached, as
    /// AWS AppConfig treats INSUFFICIENT_DATA).
    #[schemars(with = "Option<NoDataName>")]
    pub policy: Option<S<String>>,
    /// How long a guardrail may lack data before "breach" applies. Default "10m".
    #[schemars(with = "Option<DurationText>")]
    pub after: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [cloudwatch] table")]
#[schemars(rename = "CloudWatch")]
pub struct RawCloudWatch {
    /// How long after a one-minute period ends before it is judged: data
    /// reaches CloudWatch late, and a period still filling looks better or
    /// worse than it is. Default "2m".
    #[schemars(with = "Option<DurationText>")]
    pub settle: Option<S<String>>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum NoDataName {
    /// No decision while data is missing.
    Ignore,
    /// Missing data for longer than `after` is a breach.
    Breach,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [notify] table")]
#[schemars(rename = "Notify")]
pub struct RawNotify {
    /// URLs that receive a JSON POST (Slack-compatible `text`) on breaches,
    /// rollbacks, drift and phases ready for approval.
    #[serde(default)]
    #[schemars(with = "Vec<WebhookUrl>")]
    pub webhooks: Vec<S<String>>,
}

/// A custom CloudWatch metric, referred to by its name in guardrails and gates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [metrics.NAME] table")]
#[schemars(rename = "CustomMetric")]
pub struct RawMetric {
    /// CloudWatch namespace, e.g. "DixonSmartRepair".
    #[schemars(with = "String", length(min = 1))]
    pub namespace: Option<S<String>>,
    /// CloudWatch metric name, e.g. "TokensPerRequest".
    #[schemars(with = "String", length(min = 1))]
    pub metric_name: Option<S<String>>,
    /// CloudWatch dimensions, name → value.
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    /// The statistic read from CloudWatch.
    #[schemars(with = "StatName")]
    pub stat: Option<S<String>>,
    /// The dimension the handler adds with its version number
    /// (AWS_LAMBDA_FUNCTION_VERSION), e.g. "FunctionVersion"; needed to
    /// compare this metric between canary and stable versions.
    #[schemars(with = "Option<String>")]
    pub version_dimension: Option<S<String>>,
}

/// A rollback trigger: a metric condition with exactly one bound, or a
/// CloudWatch alarm (then no metric, bound or compare_to).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [[guardrails]] table")]
#[schemars(rename = "Guardrail")]
pub struct RawGuardrail {
    /// Unique among the plan's and the phase's guardrails.
    #[schemars(with = "String", length(min = 1))]
    pub name: Option<S<String>>,
    /// What is measured (instead of `alarm`).
    #[schemars(with = "Option<MetricName>")]
    pub metric: Option<S<String>>,
    /// A CloudWatch alarm name: the guardrail is breached while it is in ALARM (instead of `metric`).
    #[schemars(with = "Option<String>")]
    pub alarm: Option<S<String>>,
    /// Bound: the value must stay at or below this.
    #[schemars(with = "Option<f64>")]
    pub max: Option<S<f64>>,
    /// Bound: the value must stay at or above this.
    #[schemars(with = "Option<f64>")]
    pub min: Option<S<f64>>,
    /// Bound: at most reference + this (metric units; percentage points for error_rate).
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub max_delta: Option<S<f64>>,
    /// Bound: at least reference − this.
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub min_delta: Option<S<f64>>,
    /// Bound: at most reference × this (> 0).
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0))]
    pub max_ratio: Option<S<f64>>,
    /// Bound: at least reference × this (> 0).
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0))]
    pub min_ratio: Option<S<f64>>,
    /// The reference of a delta or ratio bound. Default "baseline".
    #[schemars(with = "Option<CompareTo>")]
    pub compare_to: Option<S<String>>,
    /// "threshold" (default) or "sequential" (a statistical test; delta and ratio upper bounds).
    #[schemars(with = "Option<JudgeName>")]
    pub judge: Option<S<String>>,
    /// Evaluation window. Default "5m".
    #[schemars(with = "Option<DurationText>")]
    pub window: Option<S<String>>,
    /// Fewest samples (invocations) in the window before deciding. Default 100.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub min_samples: Option<S<i64>>,
    /// Breaching evaluations in a row before acting. Default 3.
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub consecutive: Option<S<i64>>,
    /// What a breach does. Default "rollback".
    #[schemars(with = "Option<ActionName>")]
    pub action: Option<S<String>>,
}

/// A promotion criterion: must hold before the phase may be promoted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [[phases.gates]] table")]
#[schemars(rename = "Gate")]
pub struct RawGate {
    /// Unique within the phase.
    #[schemars(with = "String", length(min = 1))]
    pub name: Option<S<String>>,
    /// What is measured.
    #[schemars(with = "MetricName")]
    pub metric: Option<S<String>>,
    /// Bound: the value must stay at or below this.
    #[schemars(with = "Option<f64>")]
    pub max: Option<S<f64>>,
    /// Bound: the value must stay at or above this.
    #[schemars(with = "Option<f64>")]
    pub min: Option<S<f64>>,
    /// Bound: at most reference + this (metric units; percentage points for error_rate).
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub max_delta: Option<S<f64>>,
    /// Bound: at least reference − this.
    #[schemars(with = "Option<f64>", range(min = 0.0))]
    pub min_delta: Option<S<f64>>,
    /// Bound: at most reference × this (> 0).
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0))]
    pub max_ratio: Option<S<f64>>,
    /// Bound: at least reference × this (> 0).
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0))]
    pub min_ratio: Option<S<f64>>,
    /// The reference of a delta or ratio bound. Default "baseline".
    #[schemars(with = "Option<CompareTo>")]
    pub compare_to: Option<S<String>>,
    /// "threshold" (default) or "sequential" (a statistical test; delta and ratio upper bounds).
    #[schemars(with = "Option<JudgeName>")]
    pub judge: Option<S<String>>,
    /// Evaluation window. Default "1h".
    #[schemars(with = "Option<DurationText>")]
    pub window: Option<S<String>>,
    /// Fewest samples (invocations) in the window. Default 100.
    #[schemars(with = "Option<u64>", range(min = 1))]
    pub min_samples: Option<S<i64>>,
}

/// One step of the rollout: flags to set, bake time, approval, guardrails and gates.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, expecting = "a [[phases]] table")]
#[schemars(rename = "Phase")]
pub struct RawPhase {
    /// Unique; lower-case letters, digits, '-' and '_'. "baseline" is reserved.
    #[schemars(with = "PhaseName")]
    pub name: Option<S<String>>,
    /// Flags this phase sets (owned flags only), on top of the previous phase's.
    #[schemars(with = "SetFlags")]
    pub set: Option<S<RawFlags>>,
    /// How long the phase must run before promotion, e.g. "48h". Default: defaults.bake.
    #[schemars(with = "Option<DurationText>")]
    pub bake: Option<S<String>>,
    /// Default: defaults.approval.
    #[schemars(with = "Option<ApprovalName>")]
    pub approval: Option<S<String>>,
    /// "lambda-alias" only: canary steps, in percent of the alias's
    /// invocations, each higher than the last and below 100, e.g. [10, 50];
    /// all traffic follows. Default: all traffic at once.
    #[schemars(with = "Option<Vec<u32>>")]
    pub traffic: Option<S<Vec<S<i64>>>>,
    /// Bake time of each canary step. Default: defaults.step_bake, else "10m".
    #[schemars(with = "Option<DurationText>")]
    pub step_bake: Option<S<String>>,
    /// Two-person rule: advancing into this phase needs a second
    /// operator's approval. Default false.
    #[schemars(with = "Option<bool>")]
    pub protected: Option<S<bool>>,
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

// Schema-only types: what the strings above may contain, for editors. The
// parser checks the same rules (with better messages) in `parse.rs`.

/// A flag value: a string, a boolean ("true"/"false") or an integer (decimal).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FlagValue {
    String(String),
    Bool(bool),
    Integer(i64),
}

/// A flag table: Lambda environment variable name → value.
struct FlagTable<const MIN: usize>;

impl<const MIN: usize> JsonSchema for FlagTable<MIN> {
    fn schema_name() -> Cow<'static, str> {
        if MIN == 0 { "SetFlags" } else { "OwnedFlags" }.into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let value = generator.subschema_for::<FlagValue>();
        json_schema!({
            "type": "object",
            "minProperties": 1,
            "propertyNames": { "pattern": "^[A-Za-z][A-Za-z0-9_]+$" },
            "additionalProperties": value,
        })
    }
}

type OwnedFlags = FlagTable<1>;
type SetFlags = FlagTable<0>;

/// A duration: a number and a unit (s, m, h, d), possibly combined: "90s", "5m", "48h", "7d", "1h30m".
struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+[smhd])+$",
            "description": "A number and a unit (s, m, h, d), possibly combined; greater than zero.",
            "examples": ["90s", "5m", "48h", "7d", "1h30m"],
        })
    }
}

struct PhaseName;

impl JsonSchema for PhaseName {
    fn schema_name() -> Cow<'static, str> {
        "PhaseName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]*$",
            "not": { "const": "baseline" },
            "description": "Lower-case letters, digits, '-' and '_'; \"baseline\" is reserved.",
        })
    }
}

struct MetricName;

impl JsonSchema for MetricName {
    fn schema_name() -> Cow<'static, str> {
        "MetricName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "error_rate (Errors / Invocations, percent), duration_avg, duration_pNN or duration_pNN.N (e.g. duration_p99), throttles, invocations, or the name of a [metrics.NAME] table.",
            "examples": ["error_rate", "duration_avg", "duration_p99", "throttles", "invocations"],
        })
    }
}

struct StatName;

impl JsonSchema for StatName {
    fn schema_name() -> Cow<'static, str> {
        "Statistic".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^(Average|Sum|SampleCount|Minimum|Maximum|p[0-9]+(\\.[0-9]+)?)$",
            "description": "CloudWatch statistic: Average, Sum, SampleCount, Minimum, Maximum, or a percentile pNN / pNN.N strictly between 0 and 100.",
        })
    }
}

struct WebhookUrl;

impl JsonSchema for WebhookUrl {
    fn schema_name() -> Cow<'static, str> {
        "WebhookUrl".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": "^https?://" })
    }
}

/// A promote window: days, `HH:MM-HH:MM` and an IANA time zone.
struct WindowText;

impl JsonSchema for WindowText {
    fn schema_name() -> Cow<'static, str> {
        "PromoteWindow".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\s*[A-Za-z]{3}(-[A-Za-z]{3})?(,[A-Za-z]{3}(-[A-Za-z]{3})?)*\\s+[0-9]{2}:[0-9]{2}-[0-9]{2}:[0-9]{2}\\s+\\S+\\s*$",
            "description": "Days (Mon, Mon-Thu, Fri-Mon, Mon,Wed,Fri; three letters), then HH:MM-HH:MM (24 h, the end after the start on the same day, 24:00 allowed as the end), then an IANA time zone. Inside when the zone's local time is on a listed day and start <= time < end.",
            "examples": ["Mon-Thu 09:00-16:00 Europe/London", "Mon,Wed,Fri 10:00-12:00 America/New_York", "Sat-Sun 00:00-24:00 UTC"],
        })
    }
}

/// A freeze: a day or a range of days, optionally a time zone.
struct FreezeText;

impl JsonSchema for FreezeText {
    fn schema_name() -> Cow<'static, str> {
        "Freeze".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^\\s*[0-9]{4}-[0-9]{2}-[0-9]{2}(\\.\\.[0-9]{4}-[0-9]{2}-[0-9]{2})?(\\s+\\S+)?\\s*$",
            "description": "YYYY-MM-DD..YYYY-MM-DD (both days included) or one YYYY-MM-DD, optionally followed by an IANA time zone (default: schedule.timezone). Frozen from local midnight of the first day to local midnight after the last.",
            "examples": ["2026-12-20..2027-01-04", "2026-12-25", "2026-11-26 America/New_York"],
        })
    }
}

struct ZoneName;

impl JsonSchema for ZoneName {
    fn schema_name() -> Cow<'static, str> {
        "TimeZone".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "description": "An IANA time zone name.",
            "examples": ["Europe/London", "America/New_York", "UTC"],
        })
    }
}

struct SnsTopicArn;

impl JsonSchema for SnsTopicArn {
    fn schema_name() -> Cow<'static, str> {
        "SnsTopicArn".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^arn:aws[-a-z]*:sns:[a-z]{2}(-[a-z]+)+-[0-9]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$",
            "description": "arn:aws:sns:REGION:ACCOUNT:NAME (the account is 12 digits).",
            "examples": ["arn:aws:sns:us-east-1:123456789012:oncall"],
        })
    }
}

#[derive(JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[allow(dead_code)]
enum BackendName {
    /// Merge the flags into the function's environment variables.
    LambdaEnv,
    /// Publish versions with the flags and shift a weighted alias to them.
    LambdaAlias,
    /// AWS AppConfig feature flags, deployed with a deployment strategy.
    #[serde(rename = "appconfig")]
    AppConfig,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum RollbackName {
    /// Every owned flag back to its baseline value; the rollout ends.
    Baseline,
    /// The flags of the phase before the current one; the rollout pauses there.
    Previous,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ApprovalName {
    /// An operator promotes the phase once it is ready.
    Manual,
    /// The phase promotes itself once its bake time is over and its gates hold.
    Auto,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DriftName {
    /// Write the desired flags back.
    Revert,
    /// Pause the rollout and alert.
    Pause,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum CompareTo {
    /// The metrics of the baseline window before the rollout started.
    Baseline,
    /// The metrics of the previous phase (not allowed in the first phase or plan-wide).
    PreviousPhase,
    /// The stable version over the same minutes ("lambda-alias" canary steps).
    Stable,
}

#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum ActionName {
    /// Roll the flags back (see [rollback]).
    Rollback,
    /// Pause the rollout where it is.
    Pause,
    /// Only record the breach.
    Observe,
}

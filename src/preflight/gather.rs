//! Preflight's reads: one GetFunctionConfiguration, the baseline and the
//! last hour of every metric in as few GetMetricData calls as batching
//! allows, one DescribeAlarms, the backend's own checks, and the caller's
//! identity and IAM's policy simulator for the writes. Every read is also
//! a permission check: a denied one is reported as such.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_iam::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use super::Check;
use super::findings::{self, Access, Read, Simulation};
use crate::backend::{
    AppConfigBackend, ApplyError, AwsError, Env, LambdaAliasBackend, LambdaEnvBackend,
};
use crate::domain::MetricValue;
use crate::metrics::cloudwatch::CloudWatch;
use crate::metrics::periods::{self, Range, Span};
use crate::metrics::queries::{self, Series};
use crate::plan::{BackendKind, GuardrailKind, Plan};
use crate::watcher::decide::{metric_label, plan_metrics};

/// What the checks need to reach AWS.
#[derive(Clone)]
pub struct Preflighter {
    aws: aws_config::SdkConfig,
    lambda: LambdaEnvBackend,
    appconfig: AppConfigBackend,
    timeouts: aws_config::timeout::TimeoutConfig,
}

/// What a run found besides its checks: the function's identity, for the
/// service's check of rollouts holding it.
pub struct Run {
    pub checks: Vec<Check>,
    pub function_arn: Option<String>,
}

impl Preflighter {
    pub fn new(
        aws: &aws_config::SdkConfig,
        lambda: LambdaEnvBackend,
        appconfig: AppConfigBackend,
        timeouts: aws_config::timeout::TimeoutConfig,
    ) -> Self {
        Preflighter {
            aws: aws.clone(),
            lambda,
            appconfig,
            timeouts,
        }
    }

    fn config_in(&self, region: Option<&str>) -> aws_config::SdkConfig {
        match region {
            Some(r) => self
                .aws
                .to_builder()
                .region(aws_config::Region::new(r.to_string()))
                .build(),
            None => self.aws.clone(),
        }
    }

    /// Every check of `plan` that reads AWS, at `now`.
    pub async fn run(&self, plan: &Plan, now: DateTime<Utc>) -> Run {
        let region = plan.target.region.as_deref();
        let config = self.config_in(region);
        let lambda = self.lambda.in_region(region);
        let function = plan.target.function.as_str();
        let mut checks = Vec::new();
        let mut reads: Vec<(String, Access)> = Vec::new();

        let facts = read_of(lambda.inspect(function).await);
        reads.push(("lambda:GetFunctionConfiguration".into(), access(&facts)));
        checks.extend(findings::function_checks(
            function,
            &facts,
            plan.target.backend,
        ));
        let function_arn = facts.ok().map(|f| f.arn.clone());
        let function_name = facts.ok().map_or(function.to_string(), |f| f.name.clone());
        if plan.target.backend != BackendKind::AppConfig
            && let Some(f) = facts.ok()
        {
            match &f.env {
                Env::Vars(v) => checks.push(findings::fit_check(plan, v)),
                Env::Absent => checks.push(findings::fit_check(plan, &BTreeMap::new())),
                Env::Error { .. } => {}
            }
        }
        checks.extend(findings::schedule_check(plan, now));
        if let Some(c) = self.backend_check(plan, &lambda, &mut reads).await {
            checks.push(c);
        }

        let cloudwatch = CloudWatch::new(&config, self.timeouts.clone());
        let (baseline, last_hour) = metric_reads(&cloudwatch, plan, &function_name, now).await;
        reads.push(("cloudwatch:GetMetricData".into(), access(&baseline)));
        checks.extend(findings::baseline_checks(plan, &baseline));
        checks.extend(findings::published_checks(plan, &last_hour, &baseline));

        let alarms = alarm_names(plan);
        if !alarms.is_empty() {
            let found = read_of(cloudwatch.alarm_states(&alarms).await);
            reads.push(("cloudwatch:DescribeAlarms".into(), access(&found)));
            checks.extend(findings::alarm_checks(plan, &found));
        }
        checks.push(findings::read_permissions_check(&reads));

        let needed = findings::needed_writes(plan, function_arn.as_deref().unwrap_or("*"));
        let simulation = simulate(&config, &needed).await;
        checks.push(findings::write_permissions_check(&needed, &simulation));
        Run {
            checks,
            function_arn,
        }
    }

    /// The alias (lambda-alias) or the AppConfig profile (appconfig) can
    /// carry the rollout.
    async fn backend_check(
        &self,
        plan: &Plan,
        lambda: &LambdaEnvBackend,
        reads: &mut Vec<(String, Access)>,
    ) -> Option<Check> {
        let function = plan.target.function.as_str();
        if let Some(alias) = &plan.target.alias {
            let c = Check::named(
                "alias",
                format!("alias {alias} exists and points at a published version"),
            );
            let result = LambdaAliasBackend::new(lambda.clone())
                .check(function, alias, &plan.flags)
                .await;
            reads.push(("lambda:GetAlias".into(), apply_access(&result)));
            return Some(match result {
                Ok((state, _)) if !state.weights.is_empty() => c.fail(format!(
                    "it already splits its traffic ({}): another deployment may be under way",
                    crate::backend::lambda_alias::describe(&state.routing())
                )),
                Ok((state, _)) => c.pass(format!("it points at version {}", state.version)),
                Err(e) => c.fail(e.to_string()),
            });
        }
        if let Some(target) = &plan.target.appconfig {
            let c = Check::named(
                "appconfig",
                format!(
                    "AppConfig profile {} in environment {} of application {} takes every phase's flags",
                    target.profile, target.environment, target.application
                ),
            );
            let phases: Vec<&crate::plan::Flags> = std::iter::once(&plan.flags)
                .chain(plan.phases.iter().map(|p| &p.flags))
                .collect();
            let result = self
                .appconfig
                .in_region(plan.target.region.as_deref())
                .check(target, &phases)
                .await;
            reads.push((
                "appconfig:GetConfigurationProfile".into(),
                apply_access(&result),
            ));
            return Some(match result {
                Ok(_) => c.pass(format!(
                    "a feature-flag profile that defines {} and accepts each of the {} phases' values",
                    plan.flags.keys().cloned().collect::<Vec<_>>().join(", "),
                    phases.len()
                )),
                Err(e) => c.fail(e.to_string()),
            });
        }
        None
    }
}

fn read_of<T>(r: Result<T, AwsError>) -> Read<T> {
    match r {
        Ok(t) => Read::Ok(t),
        Err(e) if e.is_denied() => Read::Denied(e.to_string()),
        Err(e) if e.is_not_found() => Read::NotFound(e.to_string()),
        Err(e) => Read::Failed(e.to_string()),
    }
}

fn access<T>(r: &Read<T>) -> Access {
    match r {
        Read::Ok(_) | Read::NotFound(_) => Access::Allowed,
        Read::Denied(m) => Access::Denied(m.clone()),
        Read::Failed(m) => Access::Unknown(m.clone()),
    }
}

/// Whether a backend check's error says the caller lacks a permission.
fn apply_access<T>(r: &Result<T, ApplyError>) -> Access {
    match r {
        Ok(_) => Access::Allowed,
        Err(e) => {
            let text = e.to_string();
            if mentions_denial(&text) {
                Access::Denied(text)
            } else if matches!(e, ApplyError::Rejected(_)) {
                // Refused on its merits (no such alias, wrong profile type):
                // the read itself was allowed.
                Access::Allowed
            } else {
                Access::Unknown(text)
            }
        }
    }
}

/// The watcher's CloudWatch errors are text; a denial names its code.
fn mentions_denial(text: &str) -> bool {
    text.contains("AccessDenied") || text.contains("not authorized to perform")
}

fn alarm_names(plan: &Plan) -> Vec<String> {
    let mut names: Vec<String> = plan
        .guardrails
        .iter()
        .chain(plan.phases.iter().flat_map(|p| &p.guardrails))
        .filter_map(|g| match &g.kind {
            GuardrailKind::Alarm { alarm } => Some(alarm.clone()),
            GuardrailKind::Metric(_) => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

type Values = Read<BTreeMap<String, MetricValue>>;

/// Every metric over the baseline's look-back window ending now, and the
/// custom metrics over the last complete hour.
async fn metric_reads(
    cloudwatch: &CloudWatch,
    plan: &Plan,
    function_name: &str,
    now: DateTime<Utc>,
) -> (Values, Values) {
    let settle = plan.settle.as_secs() as i64;
    let span = periods::baseline_span(
        plan.baseline.lookback.as_secs() as i64,
        now.timestamp(),
        now.timestamp(),
        settle,
    );
    let metrics = plan_metrics(plan);
    let baseline = read_values(cloudwatch, plan, function_name, &metrics, span).await;
    let end = periods::floor_to(periods::complete_until(now.timestamp(), settle), 60);
    let hour = Span {
        start: end - 3_600,
        end,
    };
    let customs: Vec<_> = metrics
        .into_iter()
        .filter(|m| matches!(m, crate::plan::MetricRef::Custom(_)))
        .collect();
    let last_hour = if customs.is_empty() {
        Read::Ok(BTreeMap::new())
    } else {
        read_values(cloudwatch, plan, function_name, &customs, hour).await
    };
    (baseline, last_hour)
}

async fn read_values(
    cloudwatch: &CloudWatch,
    plan: &Plan,
    function_name: &str,
    metrics: &[crate::plan::MetricRef],
    span: Span,
) -> Values {
    let range = Range::single(span);
    let needs = metrics.iter().flat_map(|m| {
        queries::series_for(m, function_name, &plan.metrics)
            .into_iter()
            .map(move |s| (range, s))
    });
    let mut values: HashMap<Series, f64> = HashMap::new();
    for batch in queries::batches(needs) {
        match cloudwatch.fetch(&batch).await {
            Ok((v, _)) => values.extend(v.into_iter().filter_map(|((s, _), v)| Some((s, v?)))),
            Err(e) if mentions_denial(&e) => return Read::Denied(e),
            Err(e) => return Read::Failed(e),
        }
    }
    Read::Ok(
        metrics
            .iter()
            .map(|m| {
                let o = queries::observe(m, function_name, &plan.metrics, &values);
                (
                    metric_label(m),
                    MetricValue {
                        value: o.value,
                        samples: o.samples,
                    },
                )
            })
            .collect(),
    )
}

/// `op: code: message` of a failed SDK call.
fn aws_error<E>(op: &str, e: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{op}: {c}: {m}"),
        (Some(c), None) => format!("{op}: {c}"),
        _ => format!("{op}: {}", aws_sdk_iam::error::DisplayErrorContext(e)),
    }
}

/// Who rollgate runs as (STS), and what IAM's policy simulator says about
/// each write for that principal, one call per resource.
async fn simulate(config: &aws_config::SdkConfig, needed: &[(String, String)]) -> Simulation {
    let sts = aws_sdk_sts::Client::new(config);
    let caller = match sts.get_caller_identity().send().await {
        Ok(out) => out.arn().unwrap_or_default().to_string(),
        Err(e) => return Simulation::Unavailable(aws_error("sts:GetCallerIdentity", &e)),
    };
    let Some(mut principal) = findings::simulation_principal(&caller) else {
        return Simulation::Unavailable(format!(
            "the caller {caller} is not an IAM user or role the policy simulator can evaluate"
        ));
    };
    let iam = aws_sdk_iam::Client::new(config);
    // A role's ARN carries its path, which the session ARN leaves out.
    if let Some(role) = principal.rsplit_once(":role/").map(|(_, r)| r.to_string())
        && let Ok(out) = iam.get_role().role_name(&role).send().await
        && let Some(arn) = out.role().map(|r| r.arn())
    {
        principal = arn.to_string();
    }
    let mut by_resource: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (action, resource) in needed {
        by_resource.entry(resource).or_default().push(action);
    }
    let mut decisions = Vec::new();
    for (resource, actions) in by_resource {
        let out = iam
            .simulate_principal_policy()
            .policy_source_arn(&principal)
            .set_action_names(Some(actions.iter().map(|a| a.to_string()).collect()))
            .resource_arns(resource)
            .send()
            .await;
        match out {
            Ok(out) => decisions.extend(out.evaluation_results().iter().map(|r| {
                (
                    r.eval_action_name().to_string(),
                    r.eval_decision().as_str().to_string(),
                )
            })),
            Err(e) => {
                return Simulation::Unavailable(aws_error("iam:SimulatePrincipalPolicy", &e));
            }
        }
    }
    Simulation::Done {
        principal,
        decisions,
    }
}

//! Plan files: the seed plan, every shipped plan, a table of malformed plans
//! with the exact `line:col: message` each must produce, the fixtures in
//! `bad_plans/`, the JSON Schema, and parsing that never panics.

use std::path::PathBuf;
use std::time::Duration;

use rollgate::plan::{
    Approval, Backstop, Bound, GuardrailAction, GuardrailKind, MetricRef, Plan, Reference,
    RollbackTarget,
};
use serde_json::Value;

const SEED: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_seed_plan_is_the_deployment_guide() {
    let plan = Plan::parse("dixon-smart-repair", SEED).unwrap();
    assert_eq!(plan.name, "dixon-smart-repair");
    assert_eq!(plan.target.function, "dixon-smart-repair-handler");
    assert_eq!(plan.target.region, None);
    assert_eq!(plan.rollback, RollbackTarget::Baseline);
    assert_eq!(plan.baseline.lookback, Duration::from_secs(7 * 86_400));
    assert_eq!(plan.phase_count(), 4);
    let names: Vec<&str> = (0..plan.phase_count())
        .map(|i| plan.phase_name(i))
        .collect();
    assert_eq!(names, ["baseline", "prompts", "tools", "full"]);

    // Phases are cumulative.
    let on = |i: usize| -> Vec<&str> {
        plan.flags_at(i)
            .iter()
            .filter(|(_, v)| *v == "true")
            .map(|(k, _)| k.as_str())
            .collect()
    };
    assert_eq!(plan.flags_at(0).len(), 3);
    assert!(plan.flags_at(0).values().all(|v| v == "false"));
    assert!(on(0).is_empty());
    assert_eq!(on(1), ["USE_OPTIMIZED_PROMPTS"]);
    assert_eq!(on(2), ["USE_OPTIMIZED_PROMPTS", "USE_REFACTORED_TOOLS"]);
    assert_eq!(
        on(3),
        [
            "USE_FULL_OPTIMIZATION",
            "USE_OPTIMIZED_PROMPTS",
            "USE_REFACTORED_TOOLS"
        ]
    );
    for (i, p) in plan.phases.iter().enumerate() {
        assert_eq!(p.set.len(), 1, "each phase sets one flag");
        assert_eq!(p.flags.len(), 3, "each phase has every owned flag");
        assert_eq!(&p.flags, plan.flags_at(i + 1));
        assert_eq!(p.bake, Duration::from_secs(48 * 3600));
        assert_eq!(p.approval, Approval::Manual);
        assert!(p.guardrails.is_empty());
    }

    // Guardrails: error rate + 2 points, p99 + 25 %.
    assert_eq!(plan.guardrails.len(), 2);
    let g = &plan.guardrails[0];
    assert_eq!(
        (
            g.name.as_str(),
            g.action,
            g.window,
            g.min_samples,
            g.consecutive
        ),
        (
            "error-rate",
            GuardrailAction::Rollback,
            Duration::from_secs(300),
            100,
            3
        )
    );
    let GuardrailKind::Metric(c) = &g.kind else {
        panic!("{g:?}")
    };
    assert_eq!(
        (&c.metric, c.bound, c.reference),
        (
            &MetricRef::ErrorRate,
            Bound::MaxDelta(2.0),
            Reference::Baseline
        )
    );
    let GuardrailKind::Metric(c) = &plan.guardrails[1].kind else {
        panic!()
    };
    assert_eq!(
        (&c.metric, c.bound),
        (&MetricRef::DurationPercentile(99.0), Bound::MaxRatio(1.25))
    );

    // Custom metric.
    let tokens = &plan.metrics["tokens_per_request"];
    assert_eq!(
        (
            tokens.namespace.as_str(),
            tokens.metric_name.as_str(),
            tokens.stat.as_str()
        ),
        ("DixonSmartRepair", "TokensPerRequest", "Average")
    );
    assert_eq!(
        tokens.dimensions["FunctionName"],
        "dixon-smart-repair-handler"
    );

    // Gates.
    let gates = |i: usize| -> Vec<(&str, &MetricRef, Bound, Reference)> {
        plan.phases[i]
            .gates
            .iter()
            .map(|g| {
                assert_eq!(g.window, Duration::from_secs(3600));
                assert_eq!(g.min_samples, 100);
                let c = &g.condition;
                (g.name.as_str(), &c.metric, c.bound, c.reference)
            })
            .collect()
    };
    let tokens = MetricRef::Custom("tokens_per_request".into());
    let common = [
        (
            "faster",
            &MetricRef::DurationAvg,
            Bound::MaxRatio(0.85),
            Reference::Baseline,
        ),
        (
            "fewer-tokens",
            &tokens,
            Bound::MaxRatio(0.20),
            Reference::Baseline,
        ),
        (
            "error-rate",
            &MetricRef::ErrorRate,
            Bound::MaxDelta(2.0),
            Reference::Baseline,
        ),
    ];
    assert_eq!(gates(0), common);
    assert_eq!(gates(1)[..3], common);
    assert_eq!(
        gates(1)[3..],
        [
            (
                "no-slower-than-prompts",
                &MetricRef::DurationAvg,
                Bound::MaxRatio(1.05),
                Reference::PreviousPhase
            ),
            (
                "no-more-tokens-than-prompts",
                &tokens,
                Bound::MaxRatio(1.05),
                Reference::PreviousPhase
            ),
        ]
    );
    assert!(gates(2).is_empty());
}

const CANARY: &str = include_str!("../../rollout-plans/dixon-smart-repair-canary.toml");

/// A phase with `traffic = [10, 50]` is three positions: two canary steps
/// that promote themselves and compare with the stable version, then all
/// traffic, where the stable comparisons no longer apply.
#[test]
fn the_canary_plan_runs_each_phase_at_10_then_50_then_100_percent() {
    use rollgate::plan::{BackendKind, InconclusivePolicy, Judge};
    let plan = Plan::parse("dixon-smart-repair-canary", CANARY).unwrap();
    assert_eq!(plan.target.backend, BackendKind::LambdaAlias);
    assert_eq!(plan.target.alias.as_deref(), Some("live"));
    let names: Vec<&str> = (0..plan.phase_count())
        .map(|i| plan.phase_name(i))
        .collect();
    assert_eq!(
        names,
        [
            "baseline",
            "prompts@10%",
            "prompts@50%",
            "prompts",
            "tools@10%",
            "tools@50%",
            "tools",
            "full@10%",
            "full@50%",
            "full"
        ]
    );
    let traffic: Vec<Option<u32>> = plan.phases.iter().map(|p| p.traffic).collect();
    assert_eq!(
        traffic,
        [
            Some(10),
            Some(50),
            None,
            Some(10),
            Some(50),
            None,
            Some(10),
            Some(50),
            None
        ]
    );
    let stable: Vec<usize> = plan.phases.iter().map(|p| p.stable).collect();
    assert_eq!(stable, [0, 0, 0, 3, 3, 3, 6, 6, 6]);
    let prompts10 = &plan.phases[0];
    assert_eq!(prompts10.stage, "prompts");
    assert_eq!(prompts10.bake, Duration::from_secs(30 * 60), "step_bake");
    assert_eq!(
        prompts10.approval,
        Approval::Auto,
        "steps promote themselves"
    );
    assert_eq!(
        plan.phases[2].approval,
        Approval::Manual,
        "the phase keeps its approval"
    );
    assert_eq!(plan.phases[2].bake, Duration::from_secs(48 * 3600));
    assert_eq!(prompts10.flags, plan.phases[2].flags);
    // Canary-vs-stable gates in the steps, none at 100 %.
    assert!(
        prompts10
            .gates
            .iter()
            .all(|g| g.condition.reference == Reference::Stable)
    );
    assert!(
        prompts10
            .gates
            .iter()
            .all(|g| g.condition.judge == Judge::Sequential)
    );
    assert_eq!(prompts10.gates.len(), 3);
    assert!(plan.phases[2].gates.is_empty());
    let tools = &plan.phases[5];
    assert_eq!(
        tools
            .gates
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["faster-than-baseline", "fewer-tokens-than-baseline"]
    );
    assert_eq!(plan.judge.max_wait, Some(Duration::from_secs(6 * 3600)));
    assert_eq!(plan.judge.on_inconclusive, InconclusivePolicy::Pause);
    assert_eq!(plan.judge.alpha, 0.01);
    assert_eq!(
        plan.metrics["tokens_per_request"]
            .version_dimension
            .as_deref(),
        Some("FunctionVersion")
    );
    assert!(plan.is_canary_step(1) && !plan.is_canary_step(3) && !plan.is_canary_step(0));
}

#[test]
fn canary_fields_are_checked() {
    let alias = |body: &str| {
        format!(
            "[target]\nbackend = \"lambda-alias\"\nfunction = \"f\"\nalias = \"live\"\n[flags]\nUSE_X = \"false\"\n[defaults]\nbake = \"1h\"\n[[phases]]\nname = \"on\"\nset = {{ USE_X = \"true\" }}\n{body}"
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alias backend without an alias",
            MINIMAL.replace(
                "function = \"f\"",
                "backend = \"lambda-alias\"\nfunction = \"f\"",
            ),
            "1:1: backend = \"lambda-alias\" needs alias = \"...\": the alias callers invoke (e.g. \"live\")",
        ),
        (
            "alias $LATEST",
            alias("").replace("alias = \"live\"", "alias = \"$LATEST\""),
            "4:9: alias must not be \"$LATEST\": an unqualified function has no weights and no frozen environment; name the alias callers invoke",
        ),
        (
            "alias that is a version",
            alias("").replace("alias = \"live\"", "alias = \"7\""),
            "4:9: alias \"7\" is not a Lambda alias name (letters, digits, '-' and '_', not all digits, at most 128)",
        ),
        (
            "alias on lambda-env",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nalias = \"live\""),
            "3:9: alias applies to backend = \"lambda-alias\"; lambda-env writes the function's own environment, appconfig a feature-flag profile",
        ),
        (
            "traffic on lambda-env",
            format!("{MINIMAL}traffic = [10]\n"),
            "10:11: phase \"on\": traffic needs backend = \"lambda-alias\" (canary steps run on a weighted alias)",
        ),
        (
            "traffic not rising",
            alias("traffic = [50, 10]\n"),
            "12:16: phase \"on\": traffic steps must rise (10 does not follow 50)",
        ),
        (
            "traffic of 100",
            alias("traffic = [10, 100]\n"),
            "12:16: phase \"on\": a traffic step is a percentage from 1 to 99, not 100 (all traffic follows the last step by itself)",
        ),
        (
            "step_bake without steps",
            alias("step_bake = \"5m\"\n"),
            "12:13: phase \"on\" has no canary steps (traffic = [...]) for step_bake to apply to",
        ),
        (
            "stable outside canary steps",
            alias(
                "[[phases.gates]]\nname = \"g\"\nmetric = \"error_rate\"\nmax_delta = 1.0\ncompare_to = \"stable\"\n",
            ),
            "16:14: gate \"g\": compare_to = \"stable\" needs canary steps: backend = \"lambda-alias\" and, in a phase, traffic = [...]",
        ),
        (
            "sequential with an absolute bound",
            alias(
                "traffic = [10]\n[[phases.gates]]\nname = \"g\"\nmetric = \"error_rate\"\nmax = 1.0\njudge = \"sequential\"\n",
            ),
            "13:1: gate \"g\": judge = \"sequential\" tests whether the metric got worse than its reference allows, so it needs max_delta or max_ratio, not max",
        ),
        (
            "sequential on invocations",
            alias(
                "traffic = [10]\n[[phases.gates]]\nname = \"g\"\nmetric = \"invocations\"\nmax_ratio = 2.0\njudge = \"sequential\"\n",
            ),
            "13:1: gate \"g\": judge = \"sequential\" works on error_rate, durations and custom metrics, not invocation or throttle counts",
        ),
        (
            "unknown judge",
            alias(
                "traffic = [10]\n[[phases.gates]]\nname = \"g\"\nmetric = \"error_rate\"\nmax_delta = 2.0\njudge = \"bayes\"\n",
            ),
            "17:9: judge must be one of \"threshold\", \"sequential\", not \"bayes\"",
        ),
        (
            "custom metric without a version dimension in canary steps",
            alias(
                "traffic = [10]\n[[phases.gates]]\nname = \"g\"\nmetric = \"tokens\"\nmax_ratio = 1.0\n[metrics.tokens]\nnamespace = \"N\"\nmetric_name = \"T\"\nstat = \"Average\"\n",
            ),
            "13:1: gate \"g\": metric \"tokens\" applies in canary steps but cannot be told apart by version; give [metrics.tokens] a version_dimension (the dimension the handler sets to AWS_LAMBDA_FUNCTION_VERSION)",
        ),
        (
            "plan-wide stable without canary steps",
            alias("").replace(
                "[[phases]]",
                "[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax_delta = 1.0\ncompare_to = \"stable\"\n[[phases]]",
            ),
            "13:14: guardrail \"e\": compare_to = \"stable\" needs canary steps: backend = \"lambda-alias\" and, in a phase, traffic = [...]",
        ),
        (
            "judge alpha out of range",
            format!("{}[judge]\nalpha = 0.5\n", alias("")),
            "13:9: judge.alpha is a false-alarm probability between 0.0001 and 0.2, not 0.5",
        ),
        (
            "judge policy",
            format!("{}[judge]\non_inconclusive = \"shrug\"\n", alias("")),
            "13:19: judge.on_inconclusive must be one of \"pause\", \"rollback\", \"promote\", not \"shrug\"",
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, want) in &cases {
        let got: Vec<String> = match Plan::parse("bad", text) {
            Ok(_) => vec!["(parsed without error)".into()],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        if got.as_slice() != [want.to_string()] {
            failures.push(format!(
                "{what}:\n  want {want:?}\n  got  {got:?}\n---\n{text}---"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And what is allowed: a canary plan-wide guardrail vs stable.
    let ok = alias("traffic = [5, 25, 75]\nstep_bake = \"2m\"\n");
    let ok = ok.replace(
        "[[phases]]",
        "[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax_delta = 1.0\ncompare_to = \"stable\"\njudge = \"sequential\"\n[[phases]]",
    );
    let plan = Plan::parse("ok", &ok).unwrap_or_else(|e| panic!("{e:?}\n{ok}"));
    assert_eq!(plan.phase_count(), 5);
    assert_eq!(plan.phases[0].bake, Duration::from_secs(120));
}

#[test]
fn every_shipped_plan_validates() {
    let files = rollgate::plan::load_dir(&manifest_dir().join("rollout-plans")).unwrap();
    assert!(files.iter().any(|f| f.name == "dixon-smart-repair"));
    for f in files {
        let plan = rollgate::plan::validate_file(&f.path).unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(plan.name, f.name);
        assert_eq!(Plan::parse(&f.name, &f.text), Ok(plan));
    }
}

#[test]
fn load_dir_lists_toml_files_by_name_without_parsing_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.toml"), "not a plan").unwrap();
    std::fs::write(dir.path().join("a.toml"), SEED).unwrap();
    std::fs::write(dir.path().join("notes.md"), "# notes").unwrap();
    std::fs::create_dir(dir.path().join("c.toml")).unwrap();
    let files = rollgate::plan::load_dir(dir.path()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(files[0].path, dir.path().join("a.toml"));
    assert_eq!(files[0].text, SEED);
    assert_eq!(files[1].text, "not a plan");

    assert!(rollgate::plan::load_dir(&dir.path().join("missing")).is_err());
}

#[test]
fn validate_file_prefixes_every_message_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, MINIMAL.replace("bake = \"1h\"", "bake = \"soon\"")).unwrap();
    let errors = rollgate::plan::validate_file(&path).unwrap_err();
    assert_eq!(
        errors,
        [format!(
            "{}:6:8: invalid duration \"soon\": expected a duration like \"90s\", \"5m\", \"48h\", \"7d\" or \"1h30m\"",
            path.display()
        )]
    );

    let missing = dir.path().join("missing.toml");
    let errors = rollgate::plan::validate_file(&missing).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with(&format!("{}: cannot read: ", missing.display())),
        "{errors:?}"
    );
}

#[test]
fn plan_hash_is_the_hex_sha256_of_the_text() {
    assert_eq!(
        rollgate::plan::plan_hash(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    let h = rollgate::plan::plan_hash(SEED);
    assert_eq!(h.len(), 64);
    assert!(
        h.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_ne!(h, rollgate::plan::plan_hash(&format!("{SEED}\n")));
}

const MINIMAL: &str = r#"[target]
function = "f"
[flags]
USE_X = "false"
[defaults]
bake = "1h"
[[phases]]
name = "on"
set = { USE_X = "true" }
"#;

#[test]
fn the_minimal_plan_is_valid_and_uses_defaults() {
    let plan = Plan::parse("min", MINIMAL).unwrap();
    assert_eq!(plan.phases[0].approval, Approval::Manual);
    assert_eq!(plan.phases[0].bake, Duration::from_secs(3600));
    assert_eq!(plan.rollback, RollbackTarget::Baseline);
    assert_eq!(plan.baseline.lookback, Duration::from_secs(7 * 86_400));
    assert_eq!(plan.phase_name(0), "baseline");
    assert_eq!(plan.phase_name(1), "on");
    assert!(plan.guardrails.is_empty() && plan.metrics.is_empty());
    assert!(plan.webhooks.is_empty());
    assert_eq!(
        plan.settle,
        Duration::from_secs(120),
        "the default settle delay"
    );
    let slow = Plan::parse("min", &format!("{MINIMAL}[cloudwatch]\nsettle = \"5m\"\n")).unwrap();
    assert_eq!(slow.settle, Duration::from_secs(300));
}

#[test]
fn flag_values_may_be_booleans_or_integers() {
    let text = MINIMAL
        .replace("USE_X = \"false\"", "USE_X = false\nLEVEL = 1")
        .replace(
            "set = { USE_X = \"true\" }",
            "set = { USE_X = true, LEVEL = -2 }",
        );
    let plan = Plan::parse("p", &text).unwrap();
    assert_eq!(plan.flags["USE_X"], "false");
    assert_eq!(plan.flags["LEVEL"], "1");
    assert_eq!(plan.phases[0].flags["LEVEL"], "-2");
    assert_eq!(plan.phases[0].flags["USE_X"], "true");
}

#[test]
fn phases_override_defaults_and_may_compare_to_the_previous_phase() {
    let text = format!(
        r#"{MINIMAL}[[phases.guardrails]]
name = "alarm"
alarm = "my-alarm"
action = "pause"
[[phases]]
name = "two"
set = {{ USE_X = "2" }}
bake = "90s"
approval = "auto"
[[phases.guardrails]]
name = "slower"
metric = "duration_p99.9"
max_ratio = 1.1
compare_to = "previous_phase"
window = "1h30m"
min_samples = 5
consecutive = 100
action = "observe"
[[phases.gates]]
name = "errors"
metric = "error_rate"
max_ratio = 150
window = "2h"
min_samples = 1
"#
    );
    let plan = Plan::parse("p", &text).unwrap();
    let [one, two] = &plan.phases[..] else {
        panic!()
    };
    assert_eq!(
        one.guardrails[0].kind,
        GuardrailKind::Alarm {
            alarm: "my-alarm".into()
        }
    );
    assert_eq!(one.guardrails[0].action, GuardrailAction::Pause);
    assert_eq!(
        (two.bake, two.approval),
        (Duration::from_secs(90), Approval::Auto)
    );
    let g = &two.guardrails[0];
    assert_eq!(
        (g.window, g.min_samples, g.consecutive, g.action),
        (Duration::from_secs(5400), 5, 100, GuardrailAction::Observe)
    );
    let GuardrailKind::Metric(c) = &g.kind else {
        panic!()
    };
    assert_eq!(c.metric, MetricRef::DurationPercentile(99.9));
    assert_eq!(c.reference, Reference::PreviousPhase);
    // A ratio on the error rate is not a percentage: 150 × the baseline is fine.
    assert_eq!(two.gates[0].condition.bound, Bound::MaxRatio(150.0));
    assert_eq!(two.gates[0].window, Duration::from_secs(7200));
}

/// Each malformed plan, with the one error it must report: exactly, or as a
/// prefix when the expectation ends with "...".
#[test]
fn malformed_plans_are_reported_with_line_and_column() {
    let guardrail = |body: &str| format!("{MINIMAL}[[guardrails]]\nname = \"e\"\n{body}");
    let gate = |body: &str| format!("{MINIMAL}[[phases.gates]]\nname = \"g\"\n{body}");
    let metric = |body: &str| format!("{MINIMAL}[metrics.tokens]\n{body}");
    let cases: Vec<(&str, String, &str)> = vec![
        // TOML and types.
        (
            "toml syntax",
            MINIMAL.replace("function = \"f\"", "function = \"f"),
            "2:14: invalid basic string, expected `\"`",
        ),
        (
            "duplicate key",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\nUSE_X = \"true\""),
            "5:1: duplicate key `USE_X`",
        ),
        (
            "unknown top-level field",
            format!("{MINIMAL}colour = \"red\"\n"),
            "10:1: unknown field `colour`, expected one of ...",
        ),
        (
            "unknown target field",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nfunktion = 1"),
            "3:1: unknown field `funktion`, expected one of `backend`, `function`, `alias`, `region`, `application`, `environment`, `profile`, `strategy`, `rollback_strategy`, `poll_interval`",
        ),
        (
            "unknown guardrail field",
            guardrail("metric = \"error_rate\"\nmax = 5\nthreshold = 1\n"),
            "14:1: unknown field `threshold`, expected one of ...",
        ),
        (
            "wrong type: string",
            MINIMAL.replace("function = \"f\"", "function = 3"),
            "2:12: invalid type: integer `3`, expected a string",
        ),
        (
            "wrong type: number",
            guardrail("metric = \"error_rate\"\nmax = \"5\"\n"),
            "13:7: invalid type: string \"5\", expected a number",
        ),
        (
            "wrong type: integer",
            guardrail("metric = \"error_rate\"\nmax = 5\nmin_samples = 1.5\n"),
            "14:15: invalid type: floating point `1.5`, expected an integer",
        ),
        (
            "wrong type: table",
            "target = \"f\"\n".to_string(),
            "1:10: invalid type: string \"f\", expected a [target] table",
        ),
        (
            "wrong type: set",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = 5"),
            "9:7: invalid type: integer `5`, expected a table",
        ),
        // Missing or empty required fields.
        (
            "missing target",
            MINIMAL.replace("[target]\nfunction = \"f\"\n", ""),
            "1:1: the plan needs a [target] table with function = \"...\" (the Lambda function's name or ARN)",
        ),
        (
            "missing function",
            MINIMAL.replace("function = \"f\"\n", ""),
            "1:1: [target] needs function = \"...\" (the Lambda function's name or ARN)",
        ),
        (
            "empty function",
            MINIMAL.replace("function = \"f\"", "function = \" \""),
            "2:12: target.function must name a Lambda function",
        ),
        (
            "empty region",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nregion = \"\""),
            "3:10: target.region must not be empty; leave it out to use the AWS configuration's region",
        ),
        (
            "missing flags",
            MINIMAL
                .replace("[flags]\nUSE_X = \"false\"\n", "")
                .replace("set = { USE_X = \"true\" }", "set = { A = \"b\" }"),
            "1:1: the plan needs a [flags] table listing the flags it owns",
        ),
        (
            "no flags",
            MINIMAL
                .replace("USE_X = \"false\"\n", "")
                .replace("set = { USE_X = \"true\" }", "set = { A = \"b\" }"),
            "3:1: [flags] must list at least one flag the plan owns",
        ),
        (
            "no phases",
            MINIMAL.split("[[phases]]").next().unwrap().to_string(),
            "1:1: the plan needs at least one [[phases]] entry",
        ),
        (
            "phase without a name",
            MINIMAL.replace("name = \"on\"\n", ""),
            "7:1: phase #1 needs a name = \"...\"",
        ),
        (
            "gate without a name",
            format!("{MINIMAL}[[phases.gates]]\nmetric = \"duration_avg\"\nmax_ratio = 0.9\n"),
            "10:1: gate needs a name = \"...\"",
        ),
        (
            "gate without a metric",
            gate("max_ratio = 0.9\n"),
            "10:1: gate \"g\" needs a metric, e.g. metric = \"duration_avg\"",
        ),
        (
            "guardrail without a name",
            format!("{MINIMAL}[[guardrails]]\nmetric = \"error_rate\"\nmax = 5\n"),
            "10:1: guardrail needs a name = \"...\"",
        ),
        (
            "guardrail with neither metric nor alarm",
            guardrail("max = 5\n"),
            "10:1: guardrail \"e\" needs a metric or an alarm",
        ),
        (
            "metric without metric_name",
            metric("namespace = \"N\"\nstat = \"Average\"\n"),
            "10:1: metric \"tokens\" needs metric_name = \"...\" (its CloudWatch name)",
        ),
        (
            "metric with empty namespace",
            metric("namespace = \"\"\nmetric_name = \"T\"\nstat = \"Average\"\n"),
            "11:13: metric namespace must not be empty",
        ),
        // Flags.
        (
            "invalid flag name",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\n\"9LIVES\" = \"x\""),
            "5:1: flag name \"9LIVES\" is not a valid Lambda environment variable name (letters, digits and '_', starting with a letter, at least 2 characters)",
        ),
        (
            "one-letter flag name",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\nX = \"x\""),
            "5:1: flag name \"X\" is not a valid Lambda environment variable name ...",
        ),
        (
            "reserved flag name",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\nAWS_REGION = \"x\""),
            "5:1: flag name \"AWS_REGION\" is reserved by Lambda",
        ),
        (
            "reserved flag name with underscore",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\n_HANDLER = \"x\""),
            "5:1: flag name \"_HANDLER\" is not a valid Lambda environment variable name ...",
        ),
        (
            "float flag value",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = 1.5"),
            "4:9: flag USE_X: value must be a string, boolean or integer, not float",
        ),
        (
            "array flag value in a phase",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = { USE_X = [\"true\"] }"),
            "9:17: flag USE_X: value must be a string, boolean or integer, not array",
        ),
        // Phases.
        (
            "unowned flag",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = { USE_Y = \"true\" }"),
            "9:9: phase \"on\" sets USE_Y, which the plan does not own (owned flags: USE_X)",
        ),
        (
            "empty phase",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = {}"),
            "9:7: phase \"on\" sets no flags",
        ),
        (
            "phase without set",
            MINIMAL.replace("set = { USE_X = \"true\" }\n", ""),
            "7:1: phase \"on\" sets no flags: add set = { FLAG = \"value\" }",
        ),
        (
            "phase changes nothing",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = { USE_X = false }"),
            "9:7: phase \"on\" changes nothing: every flag it sets already has that value in the previous phase",
        ),
        (
            "second phase changes nothing",
            format!("{MINIMAL}[[phases]]\nname = \"again\"\nset = {{ USE_X = \"true\" }}\n"),
            "12:7: phase \"again\" changes nothing: ...",
        ),
        (
            "duplicate phase",
            format!("{MINIMAL}[[phases]]\nname = \"on\"\nset = {{ USE_X = \"maybe\" }}\n"),
            "11:8: duplicate phase name \"on\"",
        ),
        (
            "reserved phase name",
            MINIMAL.replace("name = \"on\"", "name = \"baseline\""),
            "8:8: phase name \"baseline\" is reserved for the phase before the first",
        ),
        (
            "bad phase name",
            MINIMAL.replace("name = \"on\"", "name = \"Turn On\""),
            "8:8: phase name \"Turn On\" must be lower-case letters, digits, '-' or '_', starting with a letter or digit",
        ),
        (
            "no bake anywhere",
            MINIMAL.replace("[defaults]\nbake = \"1h\"\n", ""),
            "5:1: phase \"on\" needs a bake time: set bake here or in [defaults]",
        ),
        // Durations.
        (
            "bad duration",
            MINIMAL.replace("bake = \"1h\"", "bake = \"two days\""),
            "6:8: invalid duration \"two days\": expected a duration like \"90s\", \"5m\", \"48h\", \"7d\" or \"1h30m\"",
        ),
        (
            "duration without unit",
            format!("{MINIMAL}[baseline]\nlookback = \"7\"\n"),
            "11:12: invalid duration \"7\": a unit is missing; expected a duration like ...",
        ),
        (
            "zero duration",
            MINIMAL.replace("bake = \"1h\"", "bake = \"0s\""),
            "6:8: duration \"0s\" must be greater than zero",
        ),
        (
            "zero window",
            guardrail("metric = \"error_rate\"\nmax = 5\nwindow = \"0m\"\n"),
            "14:10: duration \"0m\" must be greater than zero",
        ),
        (
            "a window CloudWatch has no period for",
            guardrail("metric = \"error_rate\"\nmax = 5\nwindow = \"90s\"\n"),
            "14:10: window \"90s\" is not a whole number of minutes: CloudWatch judges Lambda's metrics in 1-minute periods (write e.g. \"1m\" or \"5m\")",
        ),
        (
            "a gate window of seconds",
            gate("metric = \"duration_avg\"\nmax_ratio = 0.9\nwindow = \"30s\"\n"),
            "14:10: window \"30s\" is not a whole number of minutes: CloudWatch judges Lambda's metrics in 1-minute periods (write e.g. \"1m\" or \"5m\")",
        ),
        (
            "a bad settle delay",
            format!("{MINIMAL}[cloudwatch]\nsettle = \"soon\"\n"),
            "11:10: invalid duration \"soon\": expected a duration like ...",
        ),
        (
            "a bake no clock can hold",
            MINIMAL.replace("bake = \"1h\"", "bake = \"100000000d\""),
            "6:8: duration \"100000000d\" is too long: at most 455d (CloudWatch keeps data for 455 days, so no bake, window or look-back can be longer)",
        ),
        // Choices.
        (
            "bad rollback target",
            format!("{MINIMAL}[rollback]\nto = \"yesterday\"\n"),
            "11:6: rollback.to must be one of \"baseline\", \"previous\", not \"yesterday\"",
        ),
        (
            "bad approval",
            MINIMAL.replace("bake = \"1h\"", "bake = \"1h\"\napproval = \"sometimes\""),
            "7:12: approval must be one of \"manual\", \"auto\", not \"sometimes\"",
        ),
        (
            "bad backend",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nbackend = \"s3\""),
            "3:11: target.backend must be one of \"lambda-env\", \"lambda-alias\", \"appconfig\", not \"s3\"",
        ),
        (
            "bad action",
            guardrail("metric = \"error_rate\"\nmax = 5\naction = \"panic\"\n"),
            "14:10: action must be one of \"rollback\", \"pause\", \"observe\", not \"panic\"",
        ),
        (
            "bad compare_to",
            guardrail("metric = \"error_rate\"\nmax_delta = 5\ncompare_to = \"yesterday\"\n"),
            "14:14: compare_to must be one of \"baseline\", \"previous_phase\", \"stable\", not \"yesterday\"",
        ),
        (
            "bad drift policy",
            format!("{MINIMAL}[drift]\npolicy = \"ignore\"\n"),
            "11:10: drift.policy must be one of \"revert\", \"pause\", not \"ignore\"",
        ),
        (
            "bad webhook",
            format!("{MINIMAL}[notify]\nwebhooks = [\"ftp://x\"]\n"),
            "11:13: webhook \"ftp://x\" must be an http:// or https:// URL",
        ),
        // Bounds.
        (
            "guardrail without bound",
            guardrail("metric = \"error_rate\"\n"),
            "10:1: guardrail \"e\" needs a bound: one of max, min, max_delta, min_delta, max_ratio, min_ratio",
        ),
        (
            "guardrail with two bounds",
            guardrail("metric = \"error_rate\"\nmax = 5\nmax_delta = 2\n"),
            "14:13: guardrail \"e\" has more than one bound (max, max_delta); give exactly one",
        ),
        (
            "gate with two bounds",
            gate("metric = \"duration_avg\"\nmin_ratio = 0.5\nmax_ratio = 0.9\n"),
            "14:13: gate \"g\" has more than one bound (min_ratio, max_ratio); give exactly one",
        ),
        (
            "error rate over 100",
            guardrail("metric = \"error_rate\"\nmax = 150\n"),
            "13:7: guardrail \"e\": error_rate is a percentage, so max must be between 0 and 100, not 150",
        ),
        (
            "error rate delta over 100",
            gate("metric = \"error_rate\"\nmax_delta = 101\n"),
            "13:13: gate \"g\": error_rate is a percentage, so max_delta must be between 0 and 100, not 101",
        ),
        (
            "negative ratio",
            guardrail("metric = \"duration_p99\"\nmax_ratio = -1\n"),
            "13:13: guardrail \"e\": max_ratio must be greater than 0, not -1",
        ),
        (
            "zero ratio",
            gate("metric = \"duration_avg\"\nmin_ratio = 0.0\n"),
            "13:13: gate \"g\": min_ratio must be greater than 0, not 0",
        ),
        (
            "infinite ratio",
            gate("metric = \"duration_avg\"\nmax_ratio = inf\n"),
            "13:13: gate \"g\": max_ratio must be a finite number",
        ),
        (
            "nan bound",
            guardrail("metric = \"throttles\"\nmax = nan\n"),
            "13:7: guardrail \"e\": max must be a finite number",
        ),
        (
            "negative delta",
            guardrail("metric = \"duration_avg\"\nmin_delta = -5\n"),
            "13:13: guardrail \"e\": min_delta must not be negative (-5); use max_delta or min_delta for the direction",
        ),
        (
            "negative absolute bound",
            guardrail("metric = \"invocations\"\nmin = -1\n"),
            "13:7: guardrail \"e\": min must not be negative, not -1",
        ),
        (
            "consecutive out of range",
            guardrail("metric = \"error_rate\"\nmax = 5\nconsecutive = 101\n"),
            "14:15: consecutive must be between 1 and 100, not 101",
        ),
        (
            "min_samples zero",
            guardrail("metric = \"error_rate\"\nmax = 5\nmin_samples = 0\n"),
            "14:15: min_samples must be at least 1, not 0",
        ),
        (
            "gate min_samples negative",
            gate("metric = \"error_rate\"\nmax = 5\nmin_samples = -3\n"),
            "14:15: min_samples must be at least 1, not -3",
        ),
        (
            "compare_to on absolute bound",
            guardrail("metric = \"error_rate\"\nmax = 5\ncompare_to = \"baseline\"\n"),
            "14:14: guardrail \"e\": compare_to only applies to delta and ratio bounds, not max",
        ),
        (
            "previous_phase in the first phase",
            gate("metric = \"duration_avg\"\nmax_ratio = 1.0\ncompare_to = \"previous_phase\"\n"),
            "14:14: gate \"g\": compare_to = \"previous_phase\" is only possible in a phase after the first",
        ),
        (
            "previous_phase in a plan-wide guardrail",
            guardrail(
                "metric = \"duration_avg\"\nmax_ratio = 1.0\ncompare_to = \"previous_phase\"\n",
            ),
            "14:14: guardrail \"e\": compare_to = \"previous_phase\" is only possible in a phase after the first",
        ),
        // Metrics.
        (
            "unknown metric",
            guardrail("metric = \"happiness\"\nmax = 1\n"),
            "12:10: unknown metric \"happiness\": use one of error_rate, duration_avg, duration_pNN (e.g. duration_p99), throttles, invocations, or declare it under [metrics.NAME]",
        ),
        (
            "unknown metric when some are declared",
            format!(
                "{MINIMAL}[metrics.tokens]\nnamespace = \"N\"\nmetric_name = \"T\"\nstat = \"p99\"\n[[guardrails]]\nname = \"e\"\nmetric = \"token\"\nmax = 1\n"
            ),
            "16:10: unknown metric \"token\": use one of error_rate, duration_avg, duration_pNN (e.g. duration_p99), throttles, invocations, or a declared metric (tokens)",
        ),
        (
            "bad percentile",
            guardrail("metric = \"duration_p100\"\nmax = 1\n"),
            "12:10: metric \"duration_p100\": the percentile must be between 0 and 100 exclusive (e.g. duration_p99)",
        ),
        (
            "bad custom stat",
            metric("namespace = \"N\"\nmetric_name = \"T\"\nstat = \"avg\"\n"),
            "13:8: stat \"avg\" is not a CloudWatch statistic: use Average, Sum, SampleCount, Minimum, Maximum or pNN (e.g. p99, p99.9)",
        ),
        (
            "custom stat percentile out of range",
            metric("namespace = \"N\"\nmetric_name = \"T\"\nstat = \"p0\"\n"),
            "13:8: stat \"p0\" is not a CloudWatch statistic: ...",
        ),
        (
            "custom metric shadows a built-in",
            format!(
                "{MINIMAL}[metrics.duration_p50]\nnamespace = \"N\"\nmetric_name = \"T\"\nstat = \"p50\"\n"
            ),
            "10:10: metric name \"duration_p50\" is taken by a built-in metric; choose another name",
        ),
        // Alarms.
        (
            "alarm with a bound",
            guardrail("alarm = \"high-errors\"\nmax = 1\n"),
            "10:1: guardrail \"e\" watches an alarm; remove max",
        ),
        (
            "alarm and metric",
            guardrail("metric = \"error_rate\"\nalarm = \"high-errors\"\nmax = 1\n"),
            "13:9: guardrail \"e\" has both metric and alarm; give one",
        ),
        (
            "empty alarm",
            guardrail("alarm = \"\"\n"),
            "12:9: alarm name must not be empty",
        ),
        // Names.
        (
            "duplicate guardrail",
            format!(
                "{}[[guardrails]]\nname = \"e\"\nmetric = \"throttles\"\nmax = 5\n",
                guardrail("metric = \"error_rate\"\nmax = 5\n")
            ),
            "15:8: duplicate guardrail name \"e\"",
        ),
        (
            "phase guardrail named like a plan guardrail",
            format!(
                "{}[[phases]]\nname = \"two\"\nset = {{ USE_X = \"2\" }}\n[[phases.guardrails]]\nname = \"e\"\nmetric = \"throttles\"\nmax = 5\n",
                guardrail("metric = \"error_rate\"\nmax = 5\n")
            ),
            "18:8: duplicate guardrail name \"e\"",
        ),
        (
            "duplicate gate",
            format!(
                "{}[[phases.gates]]\nname = \"g\"\nmetric = \"duration_avg\"\nmax_ratio = 0.8\n",
                gate("metric = \"duration_avg\"\nmax_ratio = 0.9\n")
            ),
            "15:8: duplicate gate name \"g\" in phase \"on\"",
        ),
        (
            "empty gate name",
            format!(
                "{MINIMAL}[[phases.gates]]\nname = \"\"\nmetric = \"duration_avg\"\nmax_ratio = 0.9\n"
            ),
            "11:8: gate name must not be empty",
        ),
    ];
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for (what, text, want) in &cases {
        let got: Vec<String> = match Plan::parse("bad", text) {
            Ok(_) => vec!["(parsed without error)".into()],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        let ok = match (got.as_slice(), want.strip_suffix("...")) {
            ([one], None) => one == want,
            ([one], Some(prefix)) => one.starts_with(prefix),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{what}:\n  want {want:?}\n  got  {got:?}\n---\n{text}---"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn all_problems_are_reported_not_only_the_first() {
    let text = MINIMAL
        .replace("bake = \"1h\"", "bake = \"soon\"")
        .replace("set = { USE_X = \"true\" }", "set = { USE_Y = \"true\" }");
    let errors = Plan::parse("bad", &text).unwrap_err();
    let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(at, [(6, 8), (9, 9)], "{errors:?}");
}

#[test]
fn an_invalid_value_does_not_cause_more_errors() {
    // The baseline value is invalid; the phase still changes the flag, and
    // a metric with a bad stat is still declared for the guardrail using it.
    let text = format!(
        "{}[metrics.tokens]\nnamespace = \"N\"\nmetric_name = \"T\"\nstat = \"mean\"\n[[guardrails]]\nname = \"t\"\nmetric = \"tokens\"\nmax = 5\n",
        MINIMAL.replace("USE_X = \"false\"", "USE_X = 0.5")
    );
    let errors = Plan::parse("bad", &text).unwrap_err();
    let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.col)).collect();
    assert_eq!(at, [(4, 9), (13, 8)], "{errors:?}");
}

/// The files in `bad_plans/`: `validate_file` reports exactly the lines of
/// the `.expected` file next to each (with the path prefix removed).
#[test]
fn bad_plan_fixtures_report_every_problem() {
    let dir = manifest_dir().join("tests/it/bad_plans");
    let files = rollgate::plan::load_dir(&dir).unwrap();
    assert!(files.len() >= 2);
    for f in files {
        let expected = std::fs::read_to_string(f.path.with_extension("expected"))
            .unwrap_or_else(|e| panic!("{}: {e}", f.path.display()));
        let errors = rollgate::plan::validate_file(&f.path).unwrap_err();
        let prefix = format!("{}:", f.path.display());
        let got: Vec<&str> = errors
            .iter()
            .map(|e| e.strip_prefix(&prefix).expect("path prefix"))
            .collect();
        let want: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(got, want, "{}", f.path.display());
    }
}

// --- JSON Schema -----------------------------------------------------------

#[test]
fn the_schema_describes_the_format() {
    let schema = rollgate::plan::json_schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let properties = schema["properties"].as_object().unwrap();
    for field in [
        "description",
        "target",
        "flags",
        "rollback",
        "baseline",
        "defaults",
        "drift",
        "insufficient_data",
        "cloudwatch",
        "notify",
        "judge",
        "schedule",
        "backstop",
        "metrics",
        "guardrails",
        "phases",
    ] {
        let p = properties
            .get(field)
            .unwrap_or_else(|| panic!("{field} missing"));
        assert!(
            p["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{field} has no description"
        );
    }
    assert_eq!(
        properties.len(),
        16,
        "a field of the format is not listed above"
    );
    assert_eq!(
        schema["required"],
        serde_json::json!(["target", "flags", "phases"])
    );
    assert_eq!(schema["additionalProperties"], false);
    // Every property of every table is described (doc comments on the raw structs).
    for (name, def) in schema["$defs"].as_object().unwrap() {
        for (field, p) in def["properties"].as_object().into_iter().flatten() {
            assert!(
                p["description"].is_string(),
                "{name}.{field} has no description"
            );
        }
    }
}

#[test]
fn the_shipped_plans_validate_against_the_schema() {
    let schema = rollgate::plan::json_schema();
    for f in rollgate::plan::load_dir(&manifest_dir().join("rollout-plans")).unwrap() {
        let errors = schema_errors(&schema, &toml_to_json(&f.text));
        assert!(errors.is_empty(), "{}: {errors:#?}", f.name);
    }
    assert_eq!(
        schema_errors(&schema, &toml_to_json(MINIMAL)),
        Vec::<String>::new()
    );
}

#[test]
fn the_schema_rejects_what_the_parser_rejects() {
    let schema = rollgate::plan::json_schema();
    let cases = [
        (
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nfunktion = 1"),
            "/target: unknown property funktion",
        ),
        (
            MINIMAL.replace("function = \"f\"\n", ""),
            "/target: missing function",
        ),
        (
            MINIMAL.split("[[phases]]").next().unwrap().to_string(),
            ": missing phases",
        ),
        (
            MINIMAL.replace("bake = \"1h\"", "bake = \"1h\"\napproval = \"sometimes\""),
            "/defaults/approval",
        ),
        (
            MINIMAL.replace("USE_X = \"false\"", "USE_X = 1.5"),
            "/flags/USE_X",
        ),
        (
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = {}"),
            "/phases/0/set: fewer than 1 properties",
        ),
        (
            format!(
                "{MINIMAL}[[phases.gates]]\nname = \"g\"\nmetric = \"duration_avg\"\nmax_ratio = 0\n"
            ),
            "/phases/0/gates/0/max_ratio: not > 0",
        ),
        (
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\nconsecutive = 0\n"
            ),
            "/guardrails/0/consecutive: below 1",
        ),
        (
            format!("{MINIMAL}[rollback]\nto = \"yesterday\"\n"),
            "/rollback/to",
        ),
        (
            format!("{MINIMAL}[metrics.t]\nnamespace = \"N\"\nstat = \"p99\"\n"),
            "/metrics/t: missing metric_name",
        ),
    ];
    for (text, want) in cases {
        let errors = schema_errors(&schema, &toml_to_json(&text));
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "want {want:?}, got {errors:#?}\n---\n{text}"
        );
    }
}

fn toml_to_json(text: &str) -> Value {
    serde_json::to_value(toml::from_str::<toml::Table>(text).unwrap()).unwrap()
}

/// A small JSON Schema checker for the keywords the plan schema uses (no
/// `pattern`: patterns are the parser's job and tested above).
fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, value, "", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let mut err = |m: String| errors.push(format!("{at}: {m}"));
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        check(root, &root["$defs"][name], v, at, errors);
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => panic!("bad type {types}"),
        };
        let matches = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "null" => v.is_null(),
            _ => panic!("unknown type {t}"),
        };
        if !types.iter().any(|t| matches(t)) {
            err(format!("{v} is not of type {types:?}"));
            return;
        }
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        err(format!("{v} is not {c}"));
    }
    if let Some(n) = schema.get("minimum").and_then(Value::as_f64)
        && v.as_f64().is_some_and(|x| x < n)
    {
        err(format!("below {n}"));
    }
    if let Some(n) = schema.get("maximum").and_then(Value::as_f64)
        && v.as_f64().is_some_and(|x| x > n)
    {
        err(format!("above {n}"));
    }
    if let Some(n) = schema.get("exclusiveMinimum").and_then(Value::as_f64)
        && v.as_f64().is_some_and(|x| x <= n)
    {
        err(format!("not > {n}"));
    }
    if let Some(n) = schema.get("minLength").and_then(Value::as_u64)
        && v.as_str().is_some_and(|s| (s.chars().count() as u64) < n)
    {
        err(format!("shorter than {n}"));
    }
    if let Some(n) = schema.get("minItems").and_then(Value::as_u64)
        && v.as_array().is_some_and(|a| (a.len() as u64) < n)
    {
        err(format!("fewer than {n} items"));
    }
    if let Some(n) = schema.get("minProperties").and_then(Value::as_u64)
        && v.as_object().is_some_and(|o| (o.len() as u64) < n)
    {
        err(format!("fewer than {n} properties"));
    }
    if let Some(obj) = v.as_object() {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    err(format!("missing {r}"));
                }
            }
        }
        for (k, item) in obj {
            let sub = format!("{at}/{k}");
            match schema.get("properties").and_then(|p| p.get(k)) {
                Some(p) => check(root, p, item, &sub, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: unknown property {k}")),
                    Some(extra @ Value::Object(_)) => check(root, extra, item, &sub, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), v.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{at}/{i}"), errors);
        }
    }
    let passes = |s: &Value| {
        let mut e = Vec::new();
        check(root, s, v, at, &mut e);
        e.is_empty()
    };
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array) {
        // When no branch matches, report the branch that came closest.
        let closest = any
            .iter()
            .map(|s| {
                let mut e = Vec::new();
                check(root, s, v, at, &mut e);
                e
            })
            .min_by_key(Vec::len);
        if let Some(e) = closest.filter(|e| !e.is_empty()) {
            errors.extend(e);
        }
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|s| passes(s)).count();
        if n != 1 {
            errors.push(format!("{at}: {v} matches {n} of oneOf"));
        }
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        errors.push(format!("{at}: {v} matches `not`"));
    }
}

// --- Robustness --------------------------------------------------------------

mod never_panics {
    use proptest::prelude::*;
    use rollgate::plan::Plan;

    fn check_locations(text: &str) -> Result<(), TestCaseError> {
        if let Err(errors) = Plan::parse("p", text) {
            prop_assert!(!errors.is_empty());
            for e in errors {
                prop_assert!(e.line >= 1 && e.col >= 1, "{e}");
                prop_assert!(e.line <= text.lines().count().max(1) + 1, "{e}");
                prop_assert!(!e.message.is_empty());
            }
        }
        Ok(())
    }

    fn at_boundary(s: &str, at: usize) -> usize {
        let mut at = at.min(s.len());
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        at
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn on_arbitrary_text(text in "\\PC{0,400}") {
            check_locations(&text)?;
        }

        #[test]
        fn on_toml_like_text(text in "([a-z_]{1,8} = (\"[a-z0-9 ]{0,6}\"|[0-9.-]{1,5}|true|\\{ ?[A-Z_]{1,5} = \"x\" ?\\})\n|\\[\\[?[a-z.]{1,12}\\]\\]?\n){0,20}") {
            check_locations(&text)?;
        }

        #[test]
        fn on_insertions_into_the_seed(at in 0usize..8000, insert in "[\\[\\]{}=\"a-z0-9 \\n.,_#é-]{0,12}") {
            let seed = super::SEED;
            let at = at_boundary(seed, at);
            check_locations(&format!("{}{}{}", &seed[..at], insert, &seed[at..]))?;
        }

        #[test]
        fn on_deletions_from_the_seed(from in 0usize..8000, len in 0usize..200) {
            let seed = super::SEED;
            let from = at_boundary(seed, from);
            let to = at_boundary(seed, from + len);
            check_locations(&format!("{}{}", &seed[..from], &seed[to..]))?;
        }

        #[test]
        fn on_replaced_values_in_the_seed(line in 0usize..200, value in "(\"[^\"\\\\\n]{0,10}\"|-?[0-9]{1,20}(\\.[0-9]{1,3})?|true|nan|inf|-inf|\\[\\]|\\{\\})") {
            let seed = super::SEED;
            let lines: Vec<&str> = seed.lines().collect();
            let i = line % lines.len();
            let replaced = match lines[i].split_once(" = ") {
                Some((key, _)) => format!("{key} = {value}"),
                None => lines[i].to_string(),
            };
            let mut text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            text[i] = replaced;
            check_locations(&text.join("\n"))?;
        }
    }
}

/// An `appconfig` plan: `[target]` names the profile, owned keys are
/// AppConfig flag keys or `FLAG.ATTRIBUTE`.
fn appconfig_plan(flags: &str, set: &str) -> String {
    format!(
        "[target]\nbackend = \"appconfig\"\napplication = \"app\"\nenvironment = \"prod\"\nprofile = \"flags\"\nstrategy = \"AppConfig.Linear50PercentEvery30Seconds\"\nfunction = \"f\"\n[flags]\n{flags}\n[defaults]\nbake = \"1h\"\n[[phases]]\nname = \"on\"\nset = {{ {set} }}\n"
    )
}

#[test]
fn the_appconfig_plan_keeps_the_seeds_phases_in_a_feature_flag_profile() {
    let plan = rollgate::plan::validate_file(
        &manifest_dir().join("rollout-plans/dixon-smart-repair-appconfig.toml"),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(plan.target.backend, rollgate::plan::BackendKind::AppConfig);
    let a = plan.target.appconfig.as_ref().expect("an AppConfig target");
    assert_eq!(
        (
            a.application.as_str(),
            a.environment.as_str(),
            a.profile.as_str()
        ),
        ("dixon-smart-repair", "production", "feature-flags")
    );
    assert_eq!(a.strategy, "AppConfig.Linear20PercentEvery6Minutes");
    assert_eq!(a.rollback_strategy, "AppConfig.AllAtOnce");
    assert_eq!(a.poll_interval, Duration::from_secs(45));
    assert_eq!(plan.target.function, "dixon-smart-repair-handler");
    let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prompts", "tools", "full"]);
    let on = |i: usize| {
        plan.phases[i]
            .flags
            .iter()
            .filter(|(_, v)| *v == "true")
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(on(0), ["use_optimized_prompts"]);
    assert_eq!(on(1), ["use_optimized_prompts", "use_refactored_tools"]);
    assert_eq!(
        on(2),
        [
            "use_full_optimization",
            "use_optimized_prompts",
            "use_refactored_tools"
        ]
    );
    // The same guardrails and gates as the seed's lambda-env plan.
    let seed = rollgate::plan::validate_file(
        &manifest_dir().join("rollout-plans/dixon-smart-repair.toml"),
    )
    .unwrap();
    assert_eq!(plan.guardrails, seed.guardrails);
    for (a, b) in plan.phases.iter().zip(&seed.phases) {
        assert_eq!((a.bake, &a.gates), (b.bake, &b.gates));
    }
}

#[test]
fn appconfig_keys_values_and_target_fields_are_checked() {
    let ok = appconfig_plan(
        "use_x = \"false\"\n\"use_x.variant\" = \"v1\"",
        "use_x = \"true\", \"use_x.variant\" = \"v2\"",
    );
    let plan = Plan::parse("ok", &ok).unwrap_or_else(|e| panic!("{e:?}\n{ok}"));
    assert_eq!(plan.phases[0].flags["use_x.variant"], "v2");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "an environment-variable name",
            appconfig_plan("USE_X = \"false\"", "USE_X = \"true\""),
            "9:1: flag key \"USE_X\" is not an AppConfig flag key (AppConfig flag keys and attribute names match ^[a-z][a-zA-Z0-9_-]{0,63}$)",
        ),
        (
            "a key too long",
            appconfig_plan(
                &format!("{} = \"false\"", "a".repeat(65)),
                &format!("{} = \"true\"", "a".repeat(65)),
            ),
            "9:1: flag key \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\" is not an AppConfig flag key (AppConfig flag keys and attribute names match ^[a-z][a-zA-Z0-9_-]{0,63}$)",
        ),
        (
            "a bad attribute name",
            appconfig_plan(
                "use_x = \"false\"\n\"use_x.Variant\" = \"v1\"",
                "use_x = \"true\"",
            ),
            "10:1: \"use_x.Variant\": \"Variant\" is not an AppConfig attribute name (AppConfig flag keys and attribute names match ^[a-z][a-zA-Z0-9_-]{0,63}$; one '.' separates flag and attribute)",
        ),
        (
            "enabled must be true or false",
            appconfig_plan("use_x = \"off\"", "use_x = \"true\""),
            "9:9: flag use_x: \"off\" is not \"true\" or \"false\" (an AppConfig flag key sets the flag's enabled; set an attribute as \"use_x.ATTRIBUTE\")",
        ),
        (
            "a phase sets enabled to something else",
            appconfig_plan("use_x = \"false\"", "use_x = \"yes\""),
            "14:17: flag use_x: \"yes\" is not \"true\" or \"false\" (an AppConfig flag key sets the flag's enabled; set an attribute as \"use_x.ATTRIBUTE\")",
        ),
        (
            "no profile",
            appconfig_plan("use_x = \"false\"", "use_x = \"true\"")
                .replace("profile = \"flags\"\n", ""),
            "1:1: backend = \"appconfig\" needs profile = \"...\" (a hosted configuration profile of type AWS.AppConfig.FeatureFlags, by name or id)",
        ),
        (
            "no strategy",
            appconfig_plan("use_x = \"false\"", "use_x = \"true\"").replace(
                "strategy = \"AppConfig.Linear50PercentEvery30Seconds\"\n",
                "",
            ),
            "1:1: backend = \"appconfig\" needs strategy = \"...\" (the deployment strategy phases are deployed with, e.g. \"AppConfig.Linear20PercentEvery6Minutes\")",
        ),
        (
            "a bad poll interval",
            appconfig_plan("use_x = \"false\"", "use_x = \"true\"").replace(
                "function = \"f\"",
                "function = \"f\"\npoll_interval = \"soon\"",
            ),
            "8:17: invalid duration \"soon\": expected a duration like \"90s\", \"5m\", \"48h\", \"7d\" or \"1h30m\"",
        ),
        (
            "AppConfig fields on lambda-env",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nprofile = \"flags\""),
            "3:11: profile applies to backend = \"appconfig\" only",
        ),
        (
            "an alias on appconfig",
            appconfig_plan("use_x = \"false\"", "use_x = \"true\"")
                .replace("function = \"f\"", "function = \"f\"\nalias = \"live\""),
            "8:9: alias applies to backend = \"lambda-alias\"; lambda-env writes the function's own environment, appconfig a feature-flag profile",
        ),
        (
            "canary steps on appconfig",
            format!(
                "{}traffic = [10]\n",
                appconfig_plan("use_x = \"false\"", "use_x = \"true\"")
            ),
            "15:11: phase \"on\": traffic needs backend = \"lambda-alias\" (canary steps run on a weighted alias)",
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, want) in &cases {
        let got: Vec<String> = match Plan::parse("bad", text) {
            Ok(_) => vec!["(parsed without error)".into()],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        if got.as_slice() != [want.to_string()] {
            failures.push(format!("{what}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- [schedule] and [backstop] ---------------------------------------------

#[test]
fn schedule_and_backstop_tables_parse() {
    let text = format!(
        r#"{MINIMAL}[schedule]
promote = ["Mon-Thu 09:00-16:00 Europe/London", "fri 09:00-12:00 Europe/London"]
freeze = ["2026-12-20..2027-01-04", "2026-11-26 America/New_York"]
[backstop]
alarms = true
sns_topic = "arn:aws:sns:us-east-1:123456789012:oncall"
"#
    );
    let plan = Plan::parse("p", &text).unwrap_or_else(|e| panic!("{e:?}"));
    let s = &plan.schedule;
    let promote: Vec<&str> = s.promote.iter().map(|w| w.text()).collect();
    assert_eq!(
        promote,
        [
            "Mon-Thu 09:00-16:00 Europe/London",
            "fri 09:00-12:00 Europe/London"
        ]
    );
    // A freeze without a zone is in the first window's.
    assert_eq!(s.freeze[0].zone(), chrono_tz::Tz::Europe__London);
    assert_eq!(s.freeze[1].zone(), chrono_tz::Tz::America__New_York);
    assert_eq!(
        plan.backstop,
        Some(Backstop {
            sns_topic: "arn:aws:sns:us-east-1:123456789012:oncall".into()
        })
    );
    let at = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    assert_eq!(
        s.blocker(at("2026-12-18T13:00:00Z")).unwrap(),
        "outside the release windows (Mon-Thu 09:00-16:00 Europe/London; fri 09:00-12:00 Europe/London): the next opens Tue 2027-01-05 09:00 Europe/London (2027-01-05T09:00:00Z)"
    );
    // Shown as written in the plan's JSON (GET /api/v1/plans/NAME).
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(
        json["schedule"]["freeze"],
        serde_json::json!(["2026-12-20..2027-01-04", "2026-11-26 America/New_York"])
    );
    assert_eq!(
        json["backstop"]["sns_topic"],
        "arn:aws:sns:us-east-1:123456789012:oncall"
    );

    // schedule.timezone places freezes that name no zone; no windows needed.
    let text =
        format!("{MINIMAL}[schedule]\ntimezone = \"Asia/Tokyo\"\nfreeze = [\"2026-12-31\"]\n");
    let plan = Plan::parse("p", &text).unwrap();
    assert!(plan.schedule.promote.is_empty());
    assert_eq!(plan.schedule.freeze[0].begins(), at("2026-12-30T15:00:00Z"));
    // Without windows or a timezone, freezes are in UTC.
    let text = format!("{MINIMAL}[schedule]\nfreeze = [\"2026-12-31\"]\n");
    let plan = Plan::parse("p", &text).unwrap();
    assert_eq!(plan.schedule.freeze[0].zone(), chrono_tz::Tz::UTC);

    // Absent, empty or alarms = false: unrestricted, no backstop.
    let plan = Plan::parse("p", MINIMAL).unwrap();
    assert!(plan.schedule.is_unrestricted() && plan.backstop.is_none());
    let plan = Plan::parse("p", &format!("{MINIMAL}[schedule]\n[backstop]\n")).unwrap();
    assert!(plan.schedule.is_unrestricted() && plan.backstop.is_none());
    let plan = Plan::parse(
        "p",
        &format!(
            "{MINIMAL}[backstop]\nalarms = false\nsns_topic = \"arn:aws:sns:us-east-1:123456789012:oncall\"\n"
        ),
    )
    .unwrap();
    assert_eq!(plan.backstop, None);
    // Other partitions and FIFO-named topics have the same shape.
    for arn in [
        "arn:aws-cn:sns:cn-north-1:123456789012:oncall",
        "arn:aws-us-gov:sns:us-gov-west-1:123456789012:on_call-2",
        "arn:aws:sns:eu-central-2:123456789012:pager.fifo",
    ] {
        let text = format!("{MINIMAL}[backstop]\nalarms = true\nsns_topic = \"{arn}\"\n");
        let plan = Plan::parse("p", &text).unwrap_or_else(|e| panic!("{arn}: {e:?}"));
        assert_eq!(plan.backstop.unwrap().sns_topic, arn);
    }
}

#[test]
fn the_seed_plan_has_no_schedule_and_no_backstop() {
    // Its [schedule] and [backstop] are commented examples.
    let plan = Plan::parse("dixon-smart-repair", SEED).unwrap();
    assert!(plan.schedule.is_unrestricted());
    assert_eq!(plan.backstop, None);
    assert!(SEED.contains("# [schedule]") && SEED.contains("# [backstop]"));
    // Uncommented, the examples are valid.
    let uncommented: String = SEED
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if [
                    "[schedule]",
                    "[backstop]",
                    "promote = ",
                    "freeze = ",
                    "alarms = ",
                    "sns_topic = ",
                ]
                .iter()
                .any(|p| rest.starts_with(p)) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let plan = Plan::parse("dixon-smart-repair", &uncommented).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!plan.schedule.promote.is_empty() && !plan.schedule.freeze.is_empty());
    assert!(plan.backstop.is_some());
}

#[test]
fn schedule_and_backstop_problems_are_reported_with_line_and_column() {
    let schedule = |body: &str| format!("{MINIMAL}[schedule]\n{body}\n");
    let backstop = |body: &str| format!("{MINIMAL}[backstop]\n{body}\n");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "times not HH:MM",
            schedule("promote = [\"Mon-Thu 9-16 Europe/London\"]"),
            "11:12: schedule.promote: \"Mon-Thu 9-16 Europe/London\": times are HH:MM-HH:MM, e.g. \"Mon-Thu 09:00-16:00 Europe/London\"",
        ),
        (
            "the second window is wrong",
            schedule("promote = [\"Mon 09:00-16:00 UTC\", \"Funday 09:00-16:00 UTC\"]"),
            "11:35: schedule.promote: \"Funday 09:00-16:00 UTC\": unknown day \"Funday\": days are Mon, Tue, Wed, Thu, Fri, Sat, Sun, alone (\"Mon\"), as a range (\"Mon-Thu\") or in a list (\"Mon,Wed,Fri\")",
        ),
        (
            "unknown zone",
            schedule(
                "promote = [\"Mon-Fri 09:00-17:00 Europe/Paris\", \"Sat 10:00-12:00 Europe/Pariss\"]",
            ),
            "11:48: schedule.promote: \"Sat 10:00-12:00 Europe/Pariss\": unknown time zone \"Europe/Pariss\": use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\"",
        ),
        (
            "no zone",
            schedule("promote = [\"Mon-Thu 09:00-16:00\"]"),
            "11:12: schedule.promote: \"Mon-Thu 09:00-16:00\": a time zone is required after the times (an IANA name such as \"Europe/London\", or \"UTC\"), e.g. \"Mon-Thu 09:00-16:00 Europe/London\"",
        ),
        (
            "overnight",
            schedule("promote = [\"Fri 22:00-02:00 UTC\"]"),
            "11:12: schedule.promote: \"Fri 22:00-02:00 UTC\": 22:00-02:00 runs past midnight, and a window ends on the day it starts: write two windows, e.g. \"Mon 22:00-24:00 UTC\" and \"Tue 00:00-02:00 UTC\"",
        ),
        (
            "an empty entry",
            schedule("promote = [\"\"]"),
            "11:12: schedule.promote: an empty window: write days, times and a time zone, e.g. \"Mon-Thu 09:00-16:00 Europe/London\"",
        ),
        (
            "an empty list",
            schedule("promote = []"),
            "11:11: schedule.promote lists no windows; leave it out to allow promotion at any time",
        ),
        (
            "a freeze that ends before it begins",
            schedule("freeze = [\"2027-01-04..2026-12-20\"]"),
            "11:11: schedule.freeze: \"2027-01-04..2026-12-20\": the freeze ends (2026-12-20) before it begins (2027-01-04): write the first day, then the last",
        ),
        (
            "a freeze that is not a date",
            schedule("freeze = [\"Christmas\"]"),
            "11:11: schedule.freeze: \"Christmas\": \"Christmas\" is not a day: days are YYYY-MM-DD, and a range is FIRST..LAST (both included), e.g. \"2026-12-20..2027-01-04\"",
        ),
        (
            "an empty freeze",
            schedule("freeze = [\" \"]"),
            "11:11: schedule.freeze: an empty freeze: write a day or a range of days, e.g. \"2026-12-20..2027-01-04\"",
        ),
        (
            "a freeze in an unknown zone",
            schedule("freeze = [\"2026-12-25 Europe/Londn\"]"),
            "11:11: schedule.freeze: \"2026-12-25 Europe/Londn\": unknown time zone \"Europe/Londn\": use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\"",
        ),
        (
            "an unknown default zone",
            schedule("timezone = \"london\""),
            "11:12: schedule.timezone: unknown time zone \"london\": use an IANA zone name such as \"Europe/London\", \"America/New_York\" or \"UTC\"",
        ),
        (
            "a window that is not a string",
            schedule("promote = \"Mon 09:00-16:00 UTC\""),
            "11:11: invalid type: string \"Mon 09:00-16:00 UTC\", expected an array",
        ),
        (
            "an unknown schedule field",
            schedule("windows = [\"Mon 09:00-16:00 UTC\"]"),
            "11:1: unknown field `windows`, expected one of `promote`, `freeze`, `timezone`",
        ),
        (
            "alarms without a topic",
            backstop("alarms = true"),
            "11:10: backstop.alarms = true needs sns_topic = \"arn:aws:sns:REGION:ACCOUNT:NAME\": the SNS topic the alarms notify (e.g. the on-call pager's)",
        ),
        (
            "a short account",
            backstop("alarms = true\nsns_topic = \"arn:aws:sns:us-east-1:12345:oncall\""),
            "12:13: backstop.sns_topic \"arn:aws:sns:us-east-1:12345:oncall\" is not an SNS topic ARN: the account \"12345\" is not 12 digits; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "an SQS queue",
            backstop("alarms = true\nsns_topic = \"arn:aws:sqs:us-east-1:123456789012:oncall\""),
            "12:13: backstop.sns_topic \"arn:aws:sqs:us-east-1:123456789012:oncall\" is not an SNS topic ARN: the service is \"sqs\", not \"sns\"; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "a topic name, not an ARN",
            backstop("alarms = true\nsns_topic = \"oncall\""),
            "12:13: backstop.sns_topic \"oncall\" is not an SNS topic ARN: it has 1 parts separated by ':', not 6; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "no region",
            backstop("alarms = true\nsns_topic = \"arn:aws:sns::123456789012:oncall\""),
            "12:13: backstop.sns_topic \"arn:aws:sns::123456789012:oncall\" is not an SNS topic ARN: the region \"\" is not an AWS region such as \"us-east-1\"; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "a bad partition",
            backstop("alarms = true\nsns_topic = \"arn:gcp:sns:us-east-1:123456789012:oncall\""),
            "12:13: backstop.sns_topic \"arn:gcp:sns:us-east-1:123456789012:oncall\" is not an SNS topic ARN: the partition \"gcp\" is not aws, aws-cn, aws-us-gov or another aws-…; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "a bad topic name",
            backstop("alarms = true\nsns_topic = \"arn:aws:sns:us-east-1:123456789012:on call\""),
            "12:13: backstop.sns_topic \"arn:aws:sns:us-east-1:123456789012:on call\" is not an SNS topic ARN: the topic name \"on call\" is not 1 to 256 letters, digits, '-' or '_'; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "a bad topic even with alarms off",
            backstop("alarms = false\nsns_topic = \"arn:aws:sns:us-east-1:123456789012:\""),
            "12:13: backstop.sns_topic \"arn:aws:sns:us-east-1:123456789012:\" is not an SNS topic ARN: the topic name \"\" is not 1 to 256 letters, digits, '-' or '_'; write arn:aws:sns:REGION:ACCOUNT:NAME, e.g. \"arn:aws:sns:us-east-1:123456789012:oncall\"",
        ),
        (
            "alarms not a boolean",
            backstop("alarms = \"yes\""),
            "11:10: invalid type: string \"yes\", expected a boolean",
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, want) in &cases {
        let got: Vec<String> = match Plan::parse("bad", text) {
            Ok(_) => vec!["(parsed without error)".into()],
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        if got.as_slice() != [want.to_string()] {
            failures.push(format!("{what}:\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_schema_has_the_schedule_and_the_backstop() {
    let schema = rollgate::plan::json_schema();
    let defs = &schema["$defs"];
    let schedule = &defs["Schedule"]["properties"];
    for field in ["promote", "freeze", "timezone"] {
        assert!(schedule[field]["description"].is_string(), "{field}");
    }
    let backstop = &defs["Backstop"]["properties"];
    for field in ["alarms", "sns_topic"] {
        assert!(backstop[field]["description"].is_string(), "{field}");
    }
    assert_eq!(
        defs["PromoteWindow"]["examples"][0],
        "Mon-Thu 09:00-16:00 Europe/London"
    );
    assert!(defs["Freeze"]["pattern"].is_string());
    assert!(defs["SnsTopicArn"]["pattern"].is_string());
    let ok = format!(
        "{MINIMAL}[schedule]\npromote = [\"Mon-Thu 09:00-16:00 Europe/London\"]\nfreeze = [\"2026-12-20..2027-01-04\"]\ntimezone = \"Europe/London\"\n[backstop]\nalarms = true\nsns_topic = \"arn:aws:sns:us-east-1:123456789012:oncall\"\n"
    );
    assert_eq!(
        schema_errors(&schema, &toml_to_json(&ok)),
        Vec::<String>::new()
    );
    for (text, want) in [
        (
            format!("{MINIMAL}[schedule]\npromote = []\n"),
            "/schedule/promote: fewer than 1 items",
        ),
        (
            format!("{MINIMAL}[schedule]\nwindows = []\n"),
            "/schedule: unknown property windows",
        ),
        (
            format!("{MINIMAL}[backstop]\nalarms = \"yes\"\n"),
            "/backstop/alarms",
        ),
        (
            format!("{MINIMAL}[backstop]\nalarm = true\n"),
            "/backstop: unknown property alarm",
        ),
    ] {
        let errors = schema_errors(&schema, &toml_to_json(&text));
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "want {want:?}, got {errors:#?}\n---\n{text}"
        );
    }
}

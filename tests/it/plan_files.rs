//! Plan files: the seed plan, every shipped plan, and a table of malformed
//! plans with the exact `line:col: message` each must produce.

use rollgate::plan::{Approval, Bound, MetricRef, Plan, Reference, RollbackTarget};

const SEED: &str = include_str!("../../rollout-plans/dixon-smart-repair.toml");

#[test]
fn the_seed_plan_is_the_deployment_guide() {
    let plan = Plan::parse("dixon-smart-repair", SEED).unwrap();
    assert_eq!(plan.target.function, "dixon-smart-repair-handler");
    assert_eq!(plan.rollback, RollbackTarget::Baseline);
    assert_eq!(plan.baseline.lookback.as_secs(), 7 * 86_400);
    let names: Vec<&str> = plan.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["prompts", "tools", "full"]);
    let flags = |i: usize| -> Vec<&str> { plan.flags_at(i).values().map(String::as_str).collect() };
    // BTreeMap order: USE_FULL_OPTIMIZATION, USE_OPTIMIZED_PROMPTS, USE_REFACTORED_TOOLS.
    assert_eq!(flags(0), ["false", "false", "false"]);
    assert_eq!(flags(1), ["false", "true", "false"]);
    assert_eq!(flags(2), ["false", "true", "true"]);
    assert_eq!(flags(3), ["true", "true", "true"]);
    for p in &plan.phases {
        assert_eq!(p.bake.as_secs(), 48 * 3600);
        assert_eq!(p.approval, Approval::Manual);
    }
    assert_eq!(plan.guardrails.len(), 2);
    let prompts = &plan.phases[0];
    assert_eq!(prompts.gates.len(), 3);
    assert_eq!(
        prompts.gates[1].condition.metric,
        MetricRef::Custom("tokens_per_request".into())
    );
    assert_eq!(prompts.gates[1].condition.bound, Bound::MaxRatio(0.20));
    let tools = &plan.phases[1];
    assert!(
        tools
            .gates
            .iter()
            .any(|g| g.condition.reference == Reference::PreviousPhase)
    );
    assert!(plan.phases[2].gates.is_empty());
}

#[test]
fn every_shipped_plan_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rollout-plans");
    let files = rollgate::plan::load_dir(&dir).unwrap();
    assert!(!files.is_empty());
    for f in files {
        rollgate::plan::validate_file(&f.path).unwrap_or_else(|e| panic!("{e:?}"));
    }
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
    assert_eq!(plan.rollback, RollbackTarget::Baseline);
    assert_eq!(plan.phase_name(0), "baseline");
    assert_eq!(plan.phase_name(1), "on");
}

#[test]
fn flag_values_may_be_booleans_or_integers() {
    let text = MINIMAL
        .replace("USE_X = \"false\"", "USE_X = false\nLEVEL = 1")
        .replace(
            "set = { USE_X = \"true\" }",
            "set = { USE_X = true, LEVEL = 2 }",
        );
    let plan = Plan::parse("p", &text).unwrap();
    assert_eq!(plan.flags["USE_X"], "false");
    assert_eq!(plan.phases[0].flags["LEVEL"], "2");
    assert_eq!(plan.phases[0].flags["USE_X"], "true");
}

/// Each malformed plan, with the first error it must report.
#[test]
fn malformed_plans_are_reported_with_line_and_column() {
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "toml syntax",
            MINIMAL.replace("function = \"f\"", "function = \"f"),
            "2:",
        ),
        (
            "unknown top-level field",
            format!("{MINIMAL}colour = \"red\"\n"),
            "10:1: unknown field `colour`",
        ),
        (
            "unknown target field",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nfunktion = 1"),
            "3:1: unknown field `funktion`",
        ),
        (
            "wrong type",
            MINIMAL.replace("function = \"f\"", "function = 3"),
            "2:12: invalid type: integer `3`, expected a string",
        ),
        (
            "missing function",
            MINIMAL.replace("function = \"f\"\n", ""),
            "1:1: missing field `function`",
        ),
        (
            "empty function",
            MINIMAL.replace("function = \"f\"", "function = \" \""),
            "2:12: target.function must name a Lambda function",
        ),
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
            "7:1: phase \"on\" sets no flags",
        ),
        (
            "phase changes nothing",
            MINIMAL.replace("set = { USE_X = \"true\" }", "set = { USE_X = \"false\" }"),
            "9:7: phase \"on\" changes nothing",
        ),
        (
            "duplicate phase",
            format!("{MINIMAL}[[phases]]\nname = \"on\"\nset = {{ USE_X = \"maybe\" }}\n"),
            "11:8: duplicate phase name \"on\"",
        ),
        (
            "reserved phase name",
            MINIMAL.replace("name = \"on\"", "name = \"baseline\""),
            "8:8: phase name \"baseline\" is reserved",
        ),
        (
            "bad phase name",
            MINIMAL.replace("name = \"on\"", "name = \"Turn On\""),
            "8:8: phase name \"Turn On\" must be lower-case",
        ),
        (
            "bad duration",
            MINIMAL.replace("bake = \"1h\"", "bake = \"two days\""),
            "6:8: invalid duration \"two days\"",
        ),
        (
            "zero duration",
            MINIMAL.replace("bake = \"1h\"", "bake = \"0s\""),
            "6:8: duration \"0s\" must be greater than zero",
        ),
        (
            "no bake anywhere",
            MINIMAL.replace("[defaults]\nbake = \"1h\"\n", ""),
            "5:1: phase \"on\" needs a bake time",
        ),
        (
            "no phases",
            MINIMAL.split("[[phases]]").next().unwrap().to_string(),
            "1:1: the plan needs at least one [[phases]] entry",
        ),
        (
            "no flags",
            MINIMAL
                .replace("USE_X = \"false\"\n", "")
                .replace("set = { USE_X = \"true\" }", "set = { A = \"b\" }"),
            "3:1: [flags] must list at least one flag",
        ),
        (
            "invalid flag name",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\n\"9LIVES\" = \"x\""),
            "5:1: flag name \"9LIVES\" is not a valid Lambda environment variable name",
        ),
        (
            "reserved flag name",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = \"false\"\nAWS_REGION = \"x\""),
            "5:1: flag name \"AWS_REGION\" is reserved by Lambda",
        ),
        (
            "float flag value",
            MINIMAL.replace("USE_X = \"false\"", "USE_X = 1.5"),
            "4:9: flag USE_X: value must be a string, boolean or integer, not float",
        ),
        (
            "bad rollback target",
            format!("{MINIMAL}[rollback]\nto = \"yesterday\"\n"),
            "11:6: rollback.to must be one of \"baseline\", \"previous\", not \"yesterday\"",
        ),
        (
            "bad approval",
            MINIMAL.replace("bake = \"1h\"", "bake = \"1h\"\napproval = \"sometimes\""),
            "7:12: approval must be one of \"manual\", \"auto\"",
        ),
        (
            "bad backend",
            MINIMAL.replace("function = \"f\"", "function = \"f\"\nbackend = \"s3\""),
            "3:11: target.backend must be one of \"lambda-env\"",
        ),
        (
            "guardrail without bound",
            format!("{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\n"),
            "10:1: guardrail \"e\" needs a bound",
        ),
        (
            "guardrail with two bounds",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\nmax_delta = 2\n"
            ),
            "14:13: guardrail \"e\" has more than one bound (max, max_delta)",
        ),
        (
            "error rate over 100",
            format!("{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 150\n"),
            "13:7: guardrail \"e\": error_rate is a percentage, so max must be between 0 and 100, not 150",
        ),
        (
            "negative ratio",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"p\"\nmetric = \"duration_p99\"\nmax_ratio = -1\n"
            ),
            "13:13: guardrail \"p\": max_ratio must be greater than 0, not -1",
        ),
        (
            "unknown metric",
            format!("{MINIMAL}[[guardrails]]\nname = \"m\"\nmetric = \"happiness\"\nmax = 1\n"),
            "12:10: unknown metric \"happiness\"",
        ),
        (
            "bad percentile",
            format!("{MINIMAL}[[guardrails]]\nname = \"m\"\nmetric = \"duration_p100\"\nmax = 1\n"),
            "12:10: metric \"duration_p100\": the percentile must be between 0 and 100",
        ),
        (
            "consecutive out of range",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\nconsecutive = 0\n"
            ),
            "14:15: consecutive must be between 1 and 100, not 0",
        ),
        (
            "min_samples zero",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\nmin_samples = 0\n"
            ),
            "14:15: min_samples must be between 1",
        ),
        (
            "duplicate guardrail",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\n[[guardrails]]\nname = \"e\"\nmetric = \"throttles\"\nmax = 5\n"
            ),
            "15:8: duplicate guardrail name \"e\"",
        ),
        (
            "alarm with a bound",
            format!("{MINIMAL}[[guardrails]]\nname = \"a\"\nalarm = \"high-errors\"\nmax = 1\n"),
            "10:1: guardrail \"a\" watches an alarm; remove max",
        ),
        (
            "compare_to on absolute bound",
            format!(
                "{MINIMAL}[[guardrails]]\nname = \"e\"\nmetric = \"error_rate\"\nmax = 5\ncompare_to = \"baseline\"\n"
            ),
            "14:14: guardrail \"e\": compare_to only applies to delta and ratio bounds",
        ),
        (
            "previous_phase in first phase",
            format!(
                "{MINIMAL}[[phases.gates]]\nname = \"g\"\nmetric = \"duration_avg\"\nmax_ratio = 1.0\ncompare_to = \"previous_phase\"\n"
            ),
            "14:14: gate \"g\": compare_to = \"previous_phase\" is only possible in a phase after the first",
        ),
        (
            "bad custom stat",
            format!(
                "{MINIMAL}[metrics.tokens]\nnamespace = \"N\"\nmetric_name = \"T\"\nstat = \"avg\"\n"
            ),
            "13:8: stat \"avg\" is not a CloudWatch statistic",
        ),
        (
            "duplicate gate",
            format!(
                "{MINIMAL}[[phases.gates]]\nname = \"g\"\nmetric = \"duration_avg\"\nmax_ratio = 0.9\n[[phases.gates]]\nname = \"g\"\nmetric = \"duration_avg\"\nmax_ratio = 0.8\n"
            ),
            "15:8: duplicate gate name \"g\" in phase \"on\"",
        ),
        (
            "bad drift policy",
            format!("{MINIMAL}[drift]\npolicy = \"ignore\"\n"),
            "11:10: drift.policy must be one of \"revert\", \"pause\"",
        ),
        (
            "bad webhook",
            format!("{MINIMAL}[notify]\nwebhooks = [\"ftp://x\"]\n"),
            "11:13: webhook \"ftp://x\" must be an http:// or https:// URL",
        ),
    ];
    assert!(cases.len() >= 15);
    for (what, text, want) in cases {
        let errors = Plan::parse("bad", &text).expect_err(what);
        let first = errors[0].to_string();
        assert!(
            first.starts_with(want),
            "{what}: expected {want:?}, got {errors:?}\n---\n{text}"
        );
    }
}

#[test]
fn all_problems_are_reported_not_only_the_first() {
    let text = MINIMAL
        .replace("bake = \"1h\"", "bake = \"soon\"")
        .replace("set = { USE_X = \"true\" }", "set = { USE_Y = \"true\" }");
    let errors = Plan::parse("bad", &text).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!((errors[0].line, errors[1].line), (6, 9));
}

#[test]
fn the_schema_describes_the_format() {
    let schema = rollgate::plan::json_schema();
    assert!(
        schema["$schema"].as_str().unwrap().contains("2020-12"),
        "{schema}"
    );
    for field in [
        "target",
        "flags",
        "phases",
        "guardrails",
        "rollback",
        "baseline",
        "defaults",
        "metrics",
    ] {
        assert!(schema["properties"].get(field).is_some(), "{field} missing");
    }
    assert!(
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "target")
    );
}

mod never_panics {
    use proptest::prelude::*;
    use rollgate::plan::Plan;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = Plan::parse("p", &text);
        }

        #[test]
        fn on_mutations_of_the_seed(cut in 0usize..4000, insert in "[\\[\\]{}=\"a-z0-9 \\n.,_-]{0,12}") {
            let seed = super::SEED;
            let mut at = cut.min(seed.len());
            while !seed.is_char_boundary(at) { at -= 1; }
            let text = format!("{}{}{}", &seed[..at], insert, &seed[at..]);
            if let Err(errors) = Plan::parse("p", &text) {
                for e in errors {
                    prop_assert!(e.line >= 1 && e.col >= 1);
                    prop_assert!(e.line <= text.lines().count().max(1) + 1);
                }
            }
        }
    }
}

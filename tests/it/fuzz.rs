//! Time-boxed fuzzing: for `ROLLGATE_FUZZ_SECONDS` (default 20) each,
//! mutations of every shipped plan go through the plan parser and
//! validator, and mutations of a valid audit chain through its
//! verification and exports. Inputs are random (new ones every run);
//! proptest shrinks a failing one, which is saved under
//! `tests/fuzz-regressions/` and replayed by `saved_inputs_stay_fixed` on
//! every run from then on. The fixed-size property tests in
//! `plan_files::never_panics` and `audit::tests` cover the same ground in
//! less time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use rollgate::audit::{AuditRecord, GENESIS_HASH, Verifier, compute_hash, to_csv, to_jsonl};
use rollgate::plan::Plan;

fn budget() -> Duration {
    let secs = std::env::var("ROLLGATE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions")
}

/// Runs `check` on inputs from `strategy` until the budget is spent; a
/// failure is shrunk, saved with `save`, and fails the test.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), TestCaseError>,
    save: impl Fn(&S::Value) -> String,
) where
    S::Value: std::fmt::Debug,
{
    let deadline = Instant::now() + budget();
    let cases = std::cell::Cell::new(0u64);
    while Instant::now() < deadline {
        // A runner per batch: one counts its cases and stops at `cases`;
        // each new one is seeded afresh from the OS.
        let mut runner = TestRunner::new(Config {
            cases: 256,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy, |v| {
            cases.set(cases.get() + 1);
            check(&v)
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, input)) => {
                let text = save(&input);
                let digest = rollgate::domain::auth::secret_hash(&text);
                let path = regressions_dir().join(format!("{name}-{}.txt", &digest[..16]));
                std::fs::write(&path, &text).unwrap();
                panic!(
                    "{name}: {why}\ninput saved as {} (commit it: it becomes a regression test)",
                    path.display()
                );
            }
            Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
        }
    }
    let cases = cases.get();
    assert!(cases > 0, "{name}: no input was tried");
    println!("{name}: {cases} inputs in {:?}, none failed", budget());
}

// --- Plans ---------------------------------------------------------------

fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_dir(crate::common::repo_plans_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml").then(|| std::fs::read_to_string(p).unwrap())
        })
        .collect();
    texts.sort();
    assert!(!texts.is_empty());
    texts
}

/// One edit to a text: where (a fraction of its length), what, and how much.
#[derive(Debug, Clone)]
enum Edit {
    Insert(f64, String),
    Delete(f64, usize),
    Replace(f64, usize, String),
    /// Repeat a span (duplicate tables, keys, phases).
    Repeat(f64, usize),
    /// Swap two lines.
    Swap(f64, f64),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    let bits = "[\\[\\]{}=\"'a-zA-Z0-9 \\n.,_#é\\\\+-]{0,16}";
    prop_oneof![
        (at.clone(), bits).prop_map(|(a, t)| Edit::Insert(a, t)),
        (at.clone(), 0usize..80).prop_map(|(a, n)| Edit::Delete(a, n)),
        (at.clone(), 0usize..12, bits).prop_map(|(a, n, t)| Edit::Replace(a, n, t)),
        (at.clone(), 1usize..300).prop_map(|(a, n)| Edit::Repeat(a, n)),
        (at.clone(), at).prop_map(|(a, b)| Edit::Swap(a, b)),
    ]
}

fn boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    let pos = |s: &str, f: f64| boundary(s, (f * s.len() as f64) as usize);
    for e in edits {
        s = match e {
            Edit::Insert(a, t) => {
                let i = pos(&s, *a);
                format!("{}{t}{}", &s[..i], &s[i..])
            }
            Edit::Delete(a, n) | Edit::Replace(a, n, _) => {
                let i = pos(&s, *a);
                let j = boundary(&s, i + n);
                let with = match e {
                    Edit::Replace(_, _, t) => t.as_str(),
                    _ => "",
                };
                format!("{}{with}{}", &s[..i], &s[j..])
            }
            Edit::Repeat(a, n) => {
                let i = pos(&s, *a);
                let j = boundary(&s, i + n);
                format!("{}{}", &s[..j], &s[i..])
            }
            Edit::Swap(a, b) => {
                let mut lines: Vec<&str> = s.split('\n').collect();
                let (i, j) = (
                    (a * lines.len() as f64) as usize % lines.len(),
                    (b * lines.len() as f64) as usize % lines.len(),
                );
                lines.swap(i, j);
                lines.join("\n")
            }
        };
    }
    s
}

/// What the plan parser promises for any text: no panic, and either a
/// plan or errors that each point at a real place with a message.
fn plan_holds_up(text: &str) -> Result<(), TestCaseError> {
    let parsed = std::panic::catch_unwind(|| Plan::parse("fuzzed", text));
    // (A panic prints its message too, which names where it happened.)
    let Ok(result) = parsed else {
        return Err(TestCaseError::fail("the parser panicked"));
    };
    if let Err(errors) = result {
        prop_assert!(!errors.is_empty(), "refused without saying why");
        for e in errors {
            prop_assert!(e.line >= 1 && e.col >= 1, "{e}");
            prop_assert!(e.line <= text.lines().count().max(1) + 1, "{e}");
            prop_assert!(!e.message.trim().is_empty(), "{e:?}");
        }
    }
    Ok(())
}

#[test]
fn plan_parser_under_mutation() {
    let corpus = corpus();
    let n = corpus.len();
    fuzz(
        "plan",
        (0..n, proptest::collection::vec(edit(), 1..8)),
        |(i, edits)| plan_holds_up(&apply(&corpus[*i], edits)),
        |(i, edits)| apply(&corpus[*i], edits),
    );
}

// --- Audit log -------------------------------------------------------------

fn chain(texts: &[String]) -> Vec<AuditRecord> {
    let mut prev = GENESIS_HASH.to_string();
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut r = AuditRecord {
                seq: i as i64 + 1,
                at: format!("2026-01-01T00:00:{:02}Z", i % 60),
                actor: format!("user:{t}"),
                action: "advance".into(),
                rollout_id: Some(1),
                phase: Some(t.clone()),
                flags_before: Some(r#"{"A":"false"}"#.into()),
                flags_after: Some(r#"{"A":"true"}"#.into()),
                reason: Some(format!("{t}\r\n,\"{t}")),
                outcome: "accepted".into(),
                detail: Some(serde_json::json!({ "note": t }).to_string()),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            r.hash = compute_hash(&r);
            prev = r.hash.clone();
            r
        })
        .collect()
}

/// A change to a stored chain, as a tamperer (or a bad disk) makes it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Tamper {
    Field(usize, u8, String),
    Delete(usize),
    Swap(usize, usize),
    Duplicate(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        (0usize..64, 0u8..6, "(?s).{0,12}").prop_map(|(i, f, t)| Tamper::Field(i, f, t)),
        (0usize..64).prop_map(Tamper::Delete),
        (0usize..64, 0usize..64).prop_map(|(a, b)| Tamper::Swap(a, b)),
        (0usize..64).prop_map(Tamper::Duplicate),
    ]
}

fn tampered(chain: &[AuditRecord], t: &Tamper) -> Vec<AuditRecord> {
    let mut c = chain.to_vec();
    let n = c.len();
    match t {
        Tamper::Field(i, f, text) => {
            let r = &mut c[i % n];
            match f {
                0 => r.actor = text.clone(),
                1 => r.reason = Some(text.clone()),
                2 => r.phase = Some(text.clone()),
                3 => r.detail = Some(text.clone()),
                4 => r.at = text.clone(),
                _ => r.hash = text.clone(),
            }
        }
        Tamper::Delete(i) => {
            c.remove(i % n);
        }
        Tamper::Swap(a, b) => c.swap(a % n, b % n),
        Tamper::Duplicate(i) => {
            let r = c[i % n].clone();
            c.insert(i % n, r);
        }
    }
    c
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct AuditCase {
    texts: Vec<String>,
    tamper: Tamper,
}

/// Verification never panics and notices every real change; the exports
/// of any chain parse back, one record per entry.
fn audit_holds_up(case: &AuditCase) -> Result<(), TestCaseError> {
    let original = chain(&case.texts);
    let head = original.last().map(|r| (r.seq, r.hash.clone()));
    let changed = tampered(&original, &case.tamper);
    let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut v = Verifier::default();
        for r in &changed {
            v.check(r);
        }
        v.finish(head.clone())
    }))
    .map_err(|_| TestCaseError::fail("verification panicked"))?;
    prop_assert_eq!(
        report.ok,
        changed == original,
        "verify said ok={} for {:?}",
        report.ok,
        case.tamper
    );
    let csv = to_csv(&changed, true).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let rows = csv::Reader::from_reader(csv.as_bytes()).records().count();
    prop_assert_eq!(rows, changed.len());
    #[derive(serde::Serialize)]
    struct Line<'a> {
        actor: &'a str,
        reason: &'a Option<String>,
    }
    let lines: Vec<Line> = changed
        .iter()
        .map(|r| Line {
            actor: &r.actor,
            reason: &r.reason,
        })
        .collect();
    let jsonl = to_jsonl(&lines);
    for (l, r) in jsonl.lines().zip(&changed) {
        let v: serde_json::Value =
            serde_json::from_str(l).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v["actor"].as_str(), Some(r.actor.as_str()));
    }
    prop_assert_eq!(jsonl.lines().count(), changed.len());
    Ok(())
}

fn audit_case() -> impl Strategy<Value = AuditCase> {
    (proptest::collection::vec("(?s).{0,24}", 1..12), tamper())
        .prop_map(|(texts, tamper)| AuditCase { texts, tamper })
}

#[test]
fn audit_verification_and_exports_under_tampering() {
    fuzz("audit", audit_case(), audit_holds_up, |case| {
        serde_json::to_string(case).unwrap()
    });
}

/// Every input a fuzz run ever saved still passes.
#[test]
fn saved_inputs_stay_fixed() {
    let mut replayed = 0;
    for entry in std::fs::read_dir(regressions_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.starts_with("plan-") {
            plan_holds_up(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            replayed += 1;
        } else if name.starts_with("audit-") {
            let case: AuditCase = serde_json::from_str(&text).unwrap();
            audit_holds_up(&case).unwrap_or_else(|e| panic!("{name}: {e}"));
            replayed += 1;
        }
    }
    println!("{replayed} saved inputs replayed");
}

//! The append-only, hash-chained audit log: the hash of each entry covers its
//! stored columns and the previous entry's hash, so editing or deleting any
//! entry breaks the chain at that entry. Pure code; the store does the I/O.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::{Action, Outcome, Principal, RolloutId};
use crate::plan::Flags;

/// An audit entry to append; the store assigns seq, time and hashes. The
/// actor always comes from a principal.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor: String,
    pub action: Action,
    pub outcome: Outcome,
    pub rollout_id: Option<RolloutId>,
    pub phase: Option<String>,
    pub flags_before: Option<Flags>,
    pub flags_after: Option<Flags>,
    pub reason: Option<String>,
    pub detail: Option<serde_json::Value>,
}

impl NewAuditEntry {
    pub fn new(who: &Principal, action: Action, outcome: Outcome) -> Self {
        NewAuditEntry {
            actor: who.actor().to_string(),
            action,
            outcome,
            rollout_id: None,
            phase: None,
            flags_before: None,
            flags_after: None,
            reason: None,
            detail: None,
        }
    }

    pub fn rollout(mut self, id: RolloutId, phase: &str) -> Self {
        self.rollout_id = Some(id);
        self.phase = Some(phase.to_string());
        self
    }

    pub fn flags(mut self, before: Option<Flags>, after: Option<Flags>) -> Self {
        self.flags_before = before;
        self.flags_after = after;
        self
    }

    pub fn reason(mut self, reason: Option<String>) -> Self {
        self.reason = reason;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// The hash that precedes the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit entry exactly as stored. JSON documents (flags, detail) are kept
/// as their stored text so the hash covers the bytes on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub rollout_id: Option<i64>,
    pub phase: Option<String>,
    pub flags_before: Option<String>,
    pub flags_after: Option<String>,
    pub reason: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

/// SHA-256 over every column but `hash`, in a fixed order, as a JSON array
/// (unambiguous: no field can bleed into the next).
pub fn compute_hash(r: &AuditRecord) -> String {
    let canonical = serde_json::json!([
        r.seq,
        r.at,
        r.actor,
        r.action,
        r.rollout_id,
        r.phase,
        r.flags_before,
        r.flags_after,
        r.reason,
        r.outcome,
        r.detail,
        r.prev_hash,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditProblem {
    /// The entry at which the chain breaks.
    pub seq: i64,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct VerifyReport {
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    pub problems: Vec<AuditProblem>,
}

/// Walks entries in `seq` order and checks the chain. Call `check` for every
/// entry, then `finish` with the recorded head.
#[derive(Debug)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    entries: u64,
    problems: Vec<AuditProblem>,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            entries: 0,
            problems: Vec::new(),
        }
    }
}

impl Verifier {
    pub fn check(&mut self, r: &AuditRecord) {
        self.entries += 1;
        if r.seq != self.expected_seq {
            let missing = if r.seq == self.expected_seq + 1 {
                format!("entry {} is missing (deleted)", self.expected_seq)
            } else {
                format!(
                    "entries {}..={} are missing (deleted)",
                    self.expected_seq,
                    r.seq - 1
                )
            };
            self.problems.push(AuditProblem {
                seq: self.expected_seq,
                problem: missing,
            });
        }
        if r.prev_hash != self.prev_hash {
            self.problems.push(AuditProblem {
                seq: r.seq,
                problem: format!(
                    "entry {} does not link to the entry before it (prev_hash mismatch)",
                    r.seq
                ),
            });
        }
        if compute_hash(r) != r.hash {
            self.problems.push(AuditProblem {
                seq: r.seq,
                problem: format!(
                    "entry {} was modified: its content does not match its hash",
                    r.seq
                ),
            });
        }
        self.expected_seq = r.seq + 1;
        self.prev_hash = r.hash.clone();
    }

    /// `head` is the (seq, hash) rollgate recorded for its newest entry.
    pub fn finish(mut self, head: Option<(i64, String)>) -> VerifyReport {
        let last_seq = self.expected_seq - 1;
        match head {
            Some((seq, _)) if seq > last_seq => self.problems.push(AuditProblem {
                seq: last_seq + 1,
                problem: format!(
                    "entries {}..={seq} are missing from the end of the log (deleted)",
                    last_seq + 1
                ),
            }),
            Some((seq, hash)) if seq == last_seq && hash != self.prev_hash => {
                self.problems.push(AuditProblem {
                    seq,
                    problem: format!("entry {seq} does not match the recorded head of the log"),
                })
            }
            None if last_seq > 0 => self.problems.push(AuditProblem {
                seq: last_seq,
                problem: "the recorded head of the log is missing".into(),
            }),
            _ => {}
        }
        VerifyReport {
            ok: self.problems.is_empty(),
            entries: self.entries,
            problems: self.problems,
        }
    }
}

/// One JSON document per line.
pub fn to_jsonl<T: Serialize>(entries: &[T]) -> String {
    entries
        .iter()
        .filter_map(|e| serde_json::to_string(e).ok())
        .map(|line| line + "\n")
        .collect()
}

/// The CSV header row of an export.
pub const CSV_COLUMNS: [&str; 13] = [
    "seq",
    "at",
    "actor",
    "action",
    "rollout_id",
    "phase",
    "flags_before",
    "flags_after",
    "reason",
    "outcome",
    "detail",
    "prev_hash",
    "hash",
];

/// CSV rows (with the header row first when `header`); flags and detail
/// columns hold their JSON text. An export streams page after page of these.
pub fn to_csv(records: &[AuditRecord], header: bool) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if header {
        w.write_record(CSV_COLUMNS)?;
    }
    for r in records {
        let opt = |o: &Option<String>| o.clone().unwrap_or_default();
        w.write_record([
            r.seq.to_string(),
            r.at.clone(),
            r.actor.clone(),
            r.action.clone(),
            r.rollout_id.map(|i| i.to_string()).unwrap_or_default(),
            opt(&r.phase),
            opt(&r.flags_before),
            opt(&r.flags_after),
            opt(&r.reason),
            r.outcome.clone(),
            opt(&r.detail),
            r.prev_hash.clone(),
            r.hash.clone(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut r = AuditRecord {
                    seq,
                    at: format!("2026-01-01T00:00:0{seq}Z"),
                    actor: "alice".into(),
                    action: "advance".into(),
                    rollout_id: Some(1),
                    phase: Some("prompts".into()),
                    flags_before: Some(r#"{"A":"false"}"#.into()),
                    flags_after: Some(r#"{"A":"true"}"#.into()),
                    reason: Some("go".into()),
                    outcome: "accepted".into(),
                    detail: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                r.hash = compute_hash(&r);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn verify(records: &[AuditRecord], head: Option<(i64, String)>) -> VerifyReport {
        let mut v = Verifier::default();
        records.iter().for_each(|r| v.check(r));
        v.finish(head)
    }

    fn head(records: &[AuditRecord]) -> Option<(i64, String)> {
        records.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn intact_chain_verifies() {
        let c = chain(5);
        let report = verify(&c, head(&c));
        assert!(report.ok, "{report:?}");
        assert_eq!(report.entries, 5);
    }

    #[test]
    fn an_edit_is_named() {
        let mut c = chain(5);
        let h = head(&c);
        c[2].reason = Some("edited".into());
        let report = verify(&c, h);
        assert!(!report.ok);
        assert_eq!(report.problems[0].seq, 3);
        assert!(report.problems[0].problem.contains("modified"));
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut c = chain(5);
        let h = head(&c);
        c.remove(1);
        let report = verify(&c, h);
        assert!(!report.ok);
        assert_eq!(report.problems[0].seq, 2);
        assert!(report.problems[0].problem.contains("entry 2 is missing"));
    }

    #[test]
    fn a_deleted_tail_is_detected_by_the_head() {
        let mut c = chain(5);
        let h = head(&c);
        c.pop();
        let report = verify(&c, h);
        assert!(!report.ok);
        assert!(report.problems[0].problem.contains("5..=5"));
    }

    proptest::proptest! {
        /// Any text an entry can hold (quotes, commas, CR/LF, any Unicode)
        /// comes back field for field from the CSV export, and every JSON
        /// Lines record stays one line that parses back to the same text.
        #[test]
        fn exports_round_trip_any_text(
            texts in proptest::collection::vec(".*", 1..6),
            reason in proptest::option::of("(?s).*"),
        ) {
            let records: Vec<AuditRecord> = chain(texts.len() as i64)
                .into_iter()
                .zip(&texts)
                .map(|(mut r, t)| {
                    r.actor = t.clone();
                    r.phase = Some(format!("{t}\r\n,\"{t}"));
                    r.reason = reason.clone();
                    r.detail = Some(serde_json::json!({ "note": t }).to_string());
                    r
                })
                .collect();
            let csv_text = to_csv(&records, true).unwrap();
            let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
            let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
            proptest::prop_assert_eq!(rows.len(), records.len());
            for (row, r) in rows.iter().zip(&records) {
                proptest::prop_assert_eq!(row.len(), CSV_COLUMNS.len());
                proptest::prop_assert_eq!(&row[2], r.actor.as_str());
                proptest::prop_assert_eq!(&row[5], r.phase.as_deref().unwrap());
                proptest::prop_assert_eq!(&row[8], r.reason.as_deref().unwrap_or(""));
                proptest::prop_assert_eq!(&row[10], r.detail.as_deref().unwrap());
            }
            #[derive(Serialize)]
            struct Line<'a> { actor: &'a str, reason: &'a Option<String> }
            let lines: Vec<Line> = records.iter().map(|r| Line { actor: &r.actor, reason: &r.reason }).collect();
            let jsonl = to_jsonl(&lines);
            let parsed: Vec<serde_json::Value> = jsonl
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            proptest::prop_assert_eq!(parsed.len(), records.len());
            for (v, r) in parsed.iter().zip(&records) {
                proptest::prop_assert_eq!(v["actor"].as_str(), Some(r.actor.as_str()));
            }
        }
    }
}

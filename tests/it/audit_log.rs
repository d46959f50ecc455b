//! The audit log: tamper detection, filters, cursor pagination, export.

use serde_json::Value;

use crate::common::{Db, spawn_app};
use crate::on_both_databases;

async fn tampering_is_detected_and_named(db: Db) {
    let app = spawn_app(db).await;
    let rid = app.start_seed().await["id"].as_i64().unwrap();
    for _ in 0..2 {
        app.command(rid, "advance", "go").await;
    }
    let (_, before) = app.get("/api/v1/audit/verify").await;
    assert_eq!(before["ok"], true, "{before}");
    let pool = app.raw_db().await;

    // Edit one entry's reason, as someone with database access might.
    sqlx::query("UPDATE audit_log SET reason = 'nothing to see here' WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    let (status, report) = app.get("/api/v1/audit/verify").await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    assert_eq!(report["problems"][0]["seq"], 3, "{report}");
    assert!(
        report["problems"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("modified")
    );

    // Deleting an entry is named too.
    sqlx::query("DELETE FROM audit_log WHERE seq = 5")
        .execute(&pool)
        .await
        .unwrap();
    let (_, report) = app.get("/api/v1/audit/verify").await;
    let problems: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["problem"].as_str().unwrap())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("entry 5 is missing")),
        "{problems:?}"
    );
}
on_both_databases!(tampering_is_detected_and_named);

#[tokio::test]
async fn filters_cursor_and_export() {
    let app = spawn_app(Db::Sqlite).await;
    let first = app.start_seed().await["id"].as_i64().unwrap();
    app.command(first, "advance", "go").await;
    app.post(
        &format!("/api/v1/rollouts/{first}/pause"),
        serde_json::json!({ "reason": "coffee", "actor": "alice" }),
    )
    .await;
    app.command(first, "rollback", "stop").await;
    let second = app.start_seed().await["id"].as_i64().unwrap();
    assert_ne!(first, second);

    let all = app.audit("?limit=1000").await;
    assert_eq!(all.len(), 9, "{all:?}");
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());

    assert_eq!(app.audit(&format!("?rollout={second}")).await.len(), 2);
    let alice = app.audit("?actor=alice").await;
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0]["action"], "pause");
    assert_eq!(alice[0]["reason"], "coffee");
    assert_eq!(app.audit("?action=advance").await.len(), 1);
    let writes = app
        .audit(&format!("?action=flags_write&rollout={first}"))
        .await;
    assert_eq!(writes.len(), 3);

    // Time filters.
    let t = all[4]["at"].as_str().unwrap().to_string();
    let since = app.audit(&format!("?since={}", urlenc(&t))).await;
    assert_eq!(since.first().unwrap()["seq"], 5);
    let until = app.audit(&format!("?until={}", urlenc(&t))).await;
    assert_eq!(until.last().unwrap()["seq"], 4);

    // Cursor pagination walks everything exactly once.
    let mut cursor: Option<i64> = None;
    let mut walked = Vec::new();
    loop {
        let q = match cursor {
            Some(c) => format!("/api/v1/audit?limit=3&cursor={c}"),
            None => "/api/v1/audit?limit=3".to_string(),
        };
        let (_, page) = app.get(&q).await;
        walked.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_i64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(walked, seqs);

    // JSON Lines export: one parseable entry per line.
    let jsonl = app
        .http
        .get(format!(
            "{}/api/v1/audit/export?format=jsonl&rollout={first}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(jsonl.headers()["content-type"], "application/x-ndjson");
    let text = jsonl.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["action"], "start");

    // CSV export: header plus one row per entry, JSON columns quoted.
    let csv = app
        .http
        .get(format!("{}/api/v1/audit/export?format=csv", app.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "seq");
    assert_eq!(&headers[6], "flags_before");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 9);
    let advance = rows.iter().find(|r| &r[3] == "advance").unwrap();
    let after: Value = serde_json::from_str(&advance[7]).unwrap();
    assert_eq!(after["USE_OPTIMIZED_PROMPTS"], "true");
}

fn urlenc(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

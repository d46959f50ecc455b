//! The server's lifecycle: a graceful stop and `/readyz` telling a loop
//! that stopped ticking from one that works.

use std::time::Duration;

use serde_json::Value;
use sqlx::Connection;

use crate::common::{Db, Options, spawn_app_with};

/// A watcher and reconciler blocked on the database (a lock held by
/// someone else) stop finishing passes: `/readyz` says so with a 503, and
/// recovers once they tick again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_loops_that_stopped_ticking() {
    let app = spawn_app_with(
        Db::Postgres,
        Options {
            watch_interval: Some(Duration::from_millis(500)),
            reconcile_interval: Duration::from_millis(500),
            ..Options::default()
        },
    )
    .await;
    let ready = |app: &crate::common::TestApp| {
        let app_url = app.url.clone();
        async move {
            let r = reqwest::get(format!("{app_url}/readyz")).await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let mut body = Value::Null;
    for _ in 0..100 {
        let (status, b) = ready(&app).await;
        body = b;
        if status == 200 && body["watcher"]["loop"]["passes"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body["ready"], true, "{body}");
    assert!(body["reconciler"]["passes"].as_u64() >= Some(1), "{body}");

    let mut locker = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE rollouts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let mut stale = Value::Null;
    for _ in 0..200 {
        let (status, b) = ready(&app).await;
        if status == 503 {
            stale = b;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stale["ready"], false, "never reported stale");
    assert_eq!(stale["database"], "ok", "the database itself answers");
    let problems = stale["problems"].to_string();
    assert!(
        problems.contains("watcher") && problems.contains("reconciler"),
        "{stale}"
    );
    assert_eq!(stale["watcher"]["loop"]["stale"], true);

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    let mut back = 0;
    for _ in 0..100 {
        let (status, _) = ready(&app).await;
        if status == 200 {
            back = status;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(back, 200, "ready again once the loops tick");
}

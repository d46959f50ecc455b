//! Bad input gets a clear 400 and changes nothing; no request can panic
//! the server; plan views never show webhook credentials; the audit export
//! streams.

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use crate::common::{Db, FUNCTION, TestApp, spawn_app, spawn_app_with_plans};
use crate::on_both_databases;

async fn counts(app: &TestApp) -> (usize, u64) {
    let (_, list) = app.get("/api/v1/rollouts").await;
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    (
        list["rollouts"].as_array().unwrap().len(),
        verify["entries"].as_u64().unwrap(),
    )
}

/// PostgreSQL refuses NUL in text: it must be a 400 before the database.
async fn text_with_nul_is_a_400_and_changes_nothing(db: Db) {
    let app = spawn_app(db).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let before = counts(&app).await;
    let rollout = format!("/api/v1/rollouts/{id}");
    for (path, body) in [
        (
            "/api/v1/rollouts".to_string(),
            json!({ "plan": "dixon-smart-repair", "actor": "eve\u{0}" }),
        ),
        (
            "/api/v1/rollouts".to_string(),
            json!({ "plan": "dixon\u{0}", "reason": "x" }),
        ),
        (
            "/api/v1/rollouts".to_string(),
            json!({ "plan": "dixon-smart-repair", "reason": "nul\u{0}here" }),
        ),
        (
            format!("{rollout}/advance"),
            json!({ "reason": "go\u{0}", "force": true }),
        ),
        (format!("{rollout}/pause"), json!({ "actor": "\u{0}" })),
        (
            format!("{rollout}/rollback"),
            json!({ "reason": "a\u{0}b" }),
        ),
        (format!("{rollout}/abandon"), json!({ "reason": "\u{0}" })),
    ] {
        let (status, body) = app.post(&path, body).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("control character"),
            "{body}"
        );
    }
    for query in [
        "/api/v1/audit?actor=%00",
        "/api/v1/audit/export?actor=x%00y",
        "/api/v1/rollouts?plan=%00",
    ] {
        let (status, body) = app.get(query).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    assert_eq!(counts(&app).await, before, "nothing was recorded");
    let r = app.rollout(id).await;
    assert_eq!(
        (r["state"].as_str(), r["version"].as_i64()),
        (Some("active"), Some(2))
    );
}
on_both_databases!(text_with_nul_is_a_400_and_changes_nothing);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_filters_are_a_400_naming_what_is_accepted() {
    let app = spawn_app(Db::Sqlite).await;
    app.start_seed().await;
    let (status, body) = app.get("/api/v1/rollouts?state=bogus").await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("unknown state \"bogus\"") && message.contains("rolled_back"),
        "{message}"
    );
    let (status, body) = app.get("/api/v1/rollouts?state=active").await;
    assert_eq!(status, 200);
    assert_eq!(body["rollouts"].as_array().unwrap().len(), 1);
    let (status, body) = app.get("/api/v1/rollouts?state=paused").await;
    assert_eq!(
        (status, body["rollouts"].as_array().unwrap().len()),
        (200, 0)
    );
    let (status, body) = app.get("/api/v1/audit?action=launch").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flags_write")
    );
    let (status, body) = app.get("/api/v1/rollouts?color=red").await;
    assert_eq!(status, 400, "unknown parameters are refused: {body}");
}

/// The layer every route runs under turns a panic into a logged 500 with
/// the usual error body; the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let routes = Router::new()
        .route(
            "/boom",
            get(|| async {
                let v: Vec<u8> = Vec::new();
                #[allow(clippy::indexing_slicing)]
                let _ = v[3];
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "fine" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, rollgate::web::layers(routes))
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();
    let boom = http.get(format!("{url}/boom")).send().await.unwrap();
    assert_eq!(boom.status(), 500);
    let body: Value = boom.json().await.unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        !body.to_string().contains("index out of bounds"),
        "causes stay in the log: {body}"
    );
    for _ in 0..3 {
        let ok = http.get(format!("{url}/ok")).send().await.unwrap();
        assert_eq!(ok.text().await.unwrap(), "fine");
    }
}

/// A bake no clock can hold is refused where it is written; the API's
/// validation says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bake_no_clock_can_hold_is_refused_at_its_line_and_column() {
    let app = spawn_app(Db::Sqlite).await;
    let text = format!(
        "[target]\nfunction = \"{FUNCTION}\"\n[flags]\nFLAG_X = \"off\"\n[[phases]]\nname = \"on\"\nset = {{ FLAG_X = \"on\" }}\nbake = \"100000000d\"\n"
    );
    let resp = app
        .http
        .post(format!("{}/api/v1/plans/validate", app.url))
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["line"], 8, "{body}");
    assert_eq!(body["errors"][0]["col"], 8, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too long: at most 455d"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_views_never_show_webhook_urls() {
    let plans = tempfile::tempdir().unwrap();
    let secret = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX";
    std::fs::write(
        plans.path().join("hooked.toml"),
        format!(
            "[target]\nfunction = \"{FUNCTION}\"\n[flags]\nFLAG_X = \"off\"\n[defaults]\nbake = \"1h\"\n[notify]\nwebhooks = [\"{secret}\"]\n[[phases]]\nname = \"on\"\nset = {{ FLAG_X = \"on\" }}\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with_plans(plans.path()).await;
    let (status, body) = app.get("/api/v1/plans/hooked").await;
    assert_eq!(status, 200);
    let shown = body.to_string();
    assert!(!shown.contains("XXXXSECRETXXXX"), "{shown}");
    assert!(!shown.contains("/services/"), "{shown}");
    assert_eq!(body["plan"]["webhooks"][0], "https://hooks.slack.com/…");
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("https://hooks.slack.com/…")
    );
    let (_, list) = app.get("/api/v1/plans").await;
    assert!(!list.to_string().contains("SECRET"));
}

/// Many more entries than one page: every one, in order, streamed (no
/// Content-Length: the server never holds the whole log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_export_streams_every_entry_in_order() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let service = &app.state().service;
    let r = service
        .rollout(rollgate::domain::RolloutId(id))
        .await
        .unwrap();
    for i in 0..1200 {
        service
            .record_breach(
                &rollgate::domain::Principal::Watcher,
                &r,
                &format!("observation {i}"),
                json!({ "i": i }),
            )
            .await
            .unwrap();
    }
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    let total = verify["entries"].as_u64().unwrap() as usize;
    assert!(total > 1200);

    let resp = app
        .http
        .get(format!("{}/api/v1/audit/export", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    let text = resp.text().await.unwrap();
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=total as i64).collect::<Vec<_>>());

    let csv = app
        .http
        .get(format!(
            "{}/api/v1/audit/export?format=csv&action=guardrail_breach&limit=700",
            app.url
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(reader.headers().unwrap().get(0), Some("seq"));
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 700, "the limit holds across pages");
    assert_eq!(&rows[0][8], "observation 0");
    assert_eq!(&rows[699][8], "observation 699");
    assert_eq!(csv.matches("seq,at,actor").count(), 1, "one header");
}

/// Issue 9 (hardening, first part): every answer — pages, API, probes,
/// static files, errors — carries the security headers; a body over the
/// limit is refused before any handler reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app(Db::Sqlite).await;
    let big = "x".repeat(rollgate::web::hardening::MAX_BODY_BYTES + 1);
    let requests = [
        app.http.get(format!("{}/", app.url)),
        app.http.get(format!("{}/audit", app.url)),
        app.http.get(format!("{}/api/v1/rollouts", app.url)),
        app.http.get(format!("{}/healthz", app.url)),
        app.http.get(format!("{}/static/app.css", app.url)),
        app.http.get(format!("{}/no/such/page", app.url)),
        app.http
            .post(format!("{}/api/v1/plans/validate", app.url))
            .header("content-type", "application/json")
            .body(format!("{{\"text\": \"{big}\"}}")),
    ];
    let mut statuses = Vec::new();
    for request in requests {
        let resp = request.send().await.unwrap();
        statuses.push(resp.status().as_u16());
        let h = resp.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 404, 413]);
    let (_, list) = app.get("/api/v1/plans").await;
    assert!(
        list.to_string().contains("dixon-smart-repair"),
        "nothing changed"
    );
}

/// `rollgate serve` refuses a non-loopback address while nobody signs in,
/// unless the operator says, with a flag named for it, that the network is
/// trusted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_non_loopback_address_without_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::common::free_port();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
    let command_on = |port: u16, database: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rollgate"));
        cmd.args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--watch-interval",
            "0",
        ])
        .args(extra)
        .env("ROLLGATE_PLANS", crate::common::repo_plans_dir())
        .env("DATABASE_URL", database)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    };
    let command = |extra: &[&str]| command_on(port, &database, extra);
    let mut refused = command(&[]);
    let out = tokio::task::spawn_blocking(move || refused.output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0")
            && stderr.contains("--insecure-listen-without-auth"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("r.db").exists(),
        "refused before touching anything"
    );

    let child = command(&["--insecure-listen-without-auth"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // With sign-in on, a non-loopback address needs no force (on a port
    // and database of its own).
    let signed_port = crate::common::free_port();
    let signed_db = format!("sqlite://{}?mode=rwc", dir.path().join("s.db").display());
    let signed = command_on(signed_port, &signed_db, &["--auth", "local"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server =
        crate::common::ServeProcess::started(signed, format!("http://127.0.0.1:{signed_port}"))
            .await;
    let r = reqwest::get(format!("{}/api/v1/rollouts", server.url))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "sign-in is on");
    drop(server);

    // Forced, it serves (`started` fails the test if it never answers).
    let server =
        crate::common::ServeProcess::started(child, format!("http://127.0.0.1:{port}")).await;
    assert!(
        reqwest::get(format!("{}/healthz", server.url))
            .await
            .is_ok()
    );
}

/// With sign-in off (loopback only), a request addressed to a DNS name is
/// refused: a page at evil.example whose name is made to resolve to
/// 127.0.0.1 (DNS rebinding) cannot drive rollgate from the operator's own
/// browser. API tokens cannot be made either: nothing would check them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sign_in_off_only_requests_addressed_to_this_machine_are_answered() {
    let app = spawn_app(Db::Sqlite).await;
    let port = app.url.rsplit(':').next().unwrap().to_string();
    for (host, want) in [
        (format!("evil.example:{port}"), 403),
        ("evil.example".to_string(), 403),
        (format!("127.0.0.1.evil.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        (format!("[::1]:{port}"), 200),
    ] {
        for path in ["/api/v1/rollouts", "/"] {
            let r = app
                .http
                .get(format!("{}{path}", app.url))
                .header("host", &host)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), want, "Host: {host} {path}");
        }
    }
    let (status, body) = app
        .post("/api/v1/tokens", json!({ "name": "ci", "role": "viewer" }))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-in is off"),
        "{body}"
    );
    let (_, list) = app.get("/api/v1/tokens").await;
    assert_eq!(list["tokens"], json!([]), "nothing was made");

    // Behind a proxy that keeps the public name in Host: --allowed-host.
    let proxied = crate::common::spawn_app_with(
        Db::Sqlite,
        crate::common::Options {
            auth: rollgate::web::auth::AuthConfig {
                allowed_hosts: vec!["rollgate.example.com".into()],
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await;
    for (host, want) in [("rollgate.example.com", 200), ("evil.example", 403)] {
        let r = proxied
            .http
            .get(format!("{}/api/v1/rollouts", proxied.url))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "Host: {host}");
    }
}

/// A handler that does not answer within the time limit gets a 503 with
/// the usual error body and the security headers, on a real HTTP server
/// (the production limit is 60 s; the same middleware with a short one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_does_not_answer_in_time_gets_a_503() {
    use std::time::Duration;
    let slow = Router::new()
        .route(
            "/api/v1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        )
        .route("/api/v1/fast", get(|| async { "in time" }))
        .layer(axum::middleware::from_fn(|req, next| {
            rollgate::web::hardening::secure_within(Duration::from_millis(200), req, next)
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, slow).await });
    let http = reqwest::Client::new();
    let fast = http.get(format!("{url}/api/v1/fast")).send().await.unwrap();
    assert_eq!(fast.status(), 200);
    let started = std::time::Instant::now();
    let late = http.get(format!("{url}/api/v1/slow")).send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cut off, not waited out"
    );
    assert_eq!(late.status(), 503);
    assert_eq!(late.headers()["x-content-type-options"], "nosniff");
    let body: Value = late.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 0.2s"),
        "{body}"
    );
}

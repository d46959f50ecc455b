//! The dashboard's pages as a browser gets them from the real server:
//! each page state (empty, active, breaching, rolled back, drift, needs
//! attention) asserted on its content, the confirmations and their forms
//! (which work without JavaScript), charts drawn from stored points, plans,
//! the audit page and the static files.

use std::time::Duration;

use serde_json::json;

use crate::common::{Db, FUNCTION, TestApp, spawn_app, spawn_app_with_plans};
use crate::watcher::{Sim, bad, plan_with_guardrail, start_guarded, tick, traffic_before_now};

/// GET a page: its status and HTML.
async fn page(app: &TestApp, path: &str) -> (u16, String) {
    let r = app
        .http
        .get(format!("{}{path}", app.url))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// The form token a browser gets with its first page (sign-in off: the
/// double-submit cookie, which every form also carries as `csrf`).
pub async fn form_token(app: &TestApp) -> String {
    let r = app
        .http
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap();
    let set = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("rollgate_csrf="))
        .expect("a first page sets the form-token cookie");
    let value = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("rollgate_csrf=");
    value.to_string()
}

/// POST a form as a browser would (with its form token) without following
/// the redirect: status, Location, body.
async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = form_token(app).await;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("csrf", &token)
        .extend_pairs(fields)
        .finish();
    let r = client
        .post(format!("{}{path}", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("rollgate_csrf={token}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, r.text().await.unwrap())
}

/// The text of the overview row of rollout `id`.
fn row(html: &str, id: i64) -> String {
    let start = html
        .find(&format!("href=\"/rollouts/{id}\""))
        .unwrap_or_else(|| panic!("no row for #{id}"));
    let end = html[start..]
        .find("</tr>")
        .map_or(html.len(), |e| start + e);
    html[start..end].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_overview_says_so_and_offers_the_plans() {
    let app = spawn_app(Db::Sqlite).await;
    let (status, html) = page(&app, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("No rollouts"), "{html}");
    assert!(html.contains("Start one from a plan above"));
    assert!(html.contains("<option value=\"dixon-smart-repair\">"));
    assert!(html.contains("hx-trigger=\"every 5s\""), "live refresh");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external reference"
    );
}

async fn the_seed_plan_walks_through_its_pages(db: Db) {
    let app = spawn_app(db).await;
    // The start's confirmation says exactly what will be written.
    let (status, html) = page(&app, "/start?plan=dixon-smart-repair").await;
    assert_eq!(status, 200);
    assert!(html.contains("Start plan dixon-smart-repair"), "{html}");
    assert!(html.contains(FUNCTION));
    let (status, location, _) = form(
        &app,
        "/start",
        &[
            ("plan", "dixon-smart-repair"),
            ("reason", "week 2"),
            ("actor", "ana"),
            // No week of history in this sandbox: past the preflight.
            ("force", "on"),
        ],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, "/rollouts/1?done=start"));

    let (_, html) = page(&app, "/").await;
    let r = row(&html, 1);
    assert!(r.contains("active") && r.contains("baseline (0/3)"), "{r}");
    assert!(r.contains("badge ok\">ok"), "{r}");

    let (_, html) = page(&app, "/rollouts/1?done=start").await;
    assert!(html.contains("start recorded"), "the flash");
    assert!(html.contains("Advance to prompts…"));
    assert!(
        html.contains("id=\"rollback\""),
        "rollback is one step away"
    );
    assert!(html.contains("an operator starts the first phase"));

    // The advance's confirmation: the change, then the checks it must pass.
    let (_, html) = page(&app, "/rollouts/1/advance").await;
    assert!(html.contains("Advance rollout #1 to prompts"), "{html}");
    assert!(
        html.contains("<span class=\"flag mono\">USE_OPTIMIZED_PROMPTS</span> <span class=\"from\">false</span> <span class=\"to\">true</span> on <span class=\"mono\">dixon-smart-repair-handler</span>"),
        "{html}"
    );
    let (status, location, _) = form(
        &app,
        "/rollouts/1/advance",
        &[("reason", "baseline looks good"), ("expected_version", "2")],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/rollouts/1?done=advance")
    );
    let (_, html) = page(&app, "/rollouts/1/advance").await;
    assert!(
        html.contains("This phase is not ready to advance"),
        "{html}"
    );
    assert!(html.contains("bake time runs until"));
    assert!(html.contains("name=\"force\""));
    // Without force: refused, shown on the page, nothing changed.
    let (status, _, html) = form(
        &app,
        "/rollouts/1/advance",
        &[("reason", "too early"), ("expected_version", "4")],
    )
    .await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("not ready to advance"), "{html}");
    assert!(
        !html.contains("Someone else acted first"),
        "nobody else did: {html}"
    );
    app.assert_env(["true", "false", "false"]).await;

    // Someone else pauses first: the second pause gets a friendly message.
    let (status, _, _) = form(&app, "/rollouts/1/pause", &[("expected_version", "4")]).await;
    assert_eq!(status, 303);
    let (status, _, html) = form(&app, "/rollouts/1/pause", &[("expected_version", "4")]).await;
    assert_eq!(status, 409);
    assert!(html.contains("Someone else acted first"), "{html}");
    assert!(
        html.contains("It is now paused in phase prompts (version 5)"),
        "{html}"
    );
    assert!(
        html.contains("<form method=\"post\""),
        "still a page to act from"
    );

    // A stale page's rollback still works: rollback always wins.
    let (status, location, _) = form(
        &app,
        "/rollouts/1/rollback",
        &[
            ("reason", "abort"),
            ("expected_version", "2"),
            ("to", "baseline"),
        ],
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/rollouts/1?done=rollback")
    );
    app.assert_env(["false", "false", "false"]).await;
    let (_, html) = page(&app, "/").await;
    let r = row(&html, 1);
    assert!(
        r.contains("rolled_back") && r.contains("rolled back"),
        "{r}"
    );
    let (_, html) = page(&app, "/rollouts/1").await;
    assert!(!html.contains("id=\"rollback\""), "nothing to roll back");
    assert!(html.contains("by <span class=\"mono\">ana</span>") || html.contains("ana"));
    // The audit page lists it, filtered, newest first.
    let (_, html) = page(&app, "/audit?action=rollback").await;
    assert!(
        html.contains("<strong>rollback</strong>") && html.contains("abort"),
        "{html}"
    );
    assert!(!html.contains("<strong>advance</strong>"));
    let (status, html) = page(&app, "/audit?action=nonsense").await;
    assert_eq!(status, 400, "{html}");
}
crate::on_both_databases!(the_seed_plan_walks_through_its_pages);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaching_then_rolled_back_with_charts_and_evidence() {
    let app = spawn_app(Db::Sqlite).await;
    traffic_before_now(&app, 60);
    let id = app.start_seed().await["id"].as_i64().unwrap();
    tick(&app).await;
    assert_eq!(app.command(id, "advance", "to prompts").await.0, 200);
    bad(&app, &["USE_OPTIMIZED_PROMPTS"], 200);
    let mut sim = Sim::now();
    sim.until_streak(&app, id, "error-rate", 1).await; // one breach of three
    let (_, html) = page(&app, "/").await;
    assert!(
        row(&html, id).contains("badge breaching\">breaching"),
        "{}",
        row(&html, id)
    );
    let (_, html) = page(&app, &format!("/rollouts/{id}")).await;
    assert!(html.contains("badge breaching\">breaching"), "{html}");
    // Charts come from what the watcher stored: the error rate with its
    // threshold and baseline.
    assert!(html.contains("<figure class=\"chart\""), "{html}");
    let json_start = html.find("class=\"chart-data\">").unwrap() + "class=\"chart-data\">".len();
    let chart: serde_json::Value = serde_json::from_str(
        &html[json_start..json_start + html[json_start..].find("</script>").unwrap()],
    )
    .unwrap();
    assert!(
        html.contains("\"title\":\"duration_p99\"") && html.contains("\"title\":\"error_rate\""),
        "a chart per metric"
    );
    let kinds: Vec<&str> = chart["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"observed") && kinds.contains(&"threshold") && kinds.contains(&"baseline"),
        "{chart}"
    );
    assert!(
        html.contains("as a table"),
        "charts have a text alternative"
    );

    let (report, _) = sim.until_decision(&app, 15 * 60).await;
    assert_eq!(report.decisions[0].action, "rollback", "{report:?}");
    let (_, html) = page(&app, &format!("/rollouts/{id}")).await;
    assert!(html.contains(">rolled_back<"), "{html}");
    assert!(html.contains("Latest watcher decision"));
    assert!(html.contains("error_rate"), "the evidence sentence");
    assert!(
        html.contains("\"kind\":\"rollback\""),
        "a rollback marker on the charts"
    );
    let (_, html) = page(&app, "/").await;
    assert!(row(&html, id).contains("badge rolled-back\">rolled back"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_and_needs_attention_are_shown_plainly() {
    let plans = plan_with_guardrail("[drift]\npolicy = \"pause\"\n");
    let app = spawn_app_with_plans(plans.path()).await;
    let id = start_guarded(&app).await;
    let mut env = app.function_env().await;
    env.insert("USE_OPTIMIZED_PROMPTS".into(), "false".into());
    app.set_env(env).await;
    tick(&app).await;
    let (_, html) = page(&app, &format!("/rollouts/{id}")).await;
    assert!(html.contains("badge drift\">drift</span>"), "{html}");
    assert!(html.contains("diff-bad"), "the actual value is marked");
    let (_, html) = page(&app, "/").await;
    assert!(row(&html, id).contains("badge drift\">drift"));

    app.sandbox.faults().kms_error(FUNCTION);
    tick(&app).await;
    let (_, html) = page(&app, &format!("/rollouts/{id}")).await;
    assert!(html.contains("needs attention"), "{html}");
    assert!(
        html.contains("KMSAccessDeniedException"),
        "the cause is shown"
    );
    let (_, html) = page(&app, "/").await;
    assert!(row(&html, id).contains("needs attention"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_are_shown_in_words_with_their_errors_and_rollouts() {
    let plans = plan_with_guardrail(
        "[[guardrails]]\nname = \"errors\"\nmetric = \"error_rate\"\nmax_delta = 2.0\n",
    );
    std::fs::write(plans.path().join("broken.toml"), "[target]\nfunction = 3\n").unwrap();
    let app = spawn_app_with_plans(plans.path()).await;
    start_guarded(&app).await;
    let (_, html) = page(&app, "/plans").await;
    assert!(
        html.contains("invalid") && html.contains("broken.toml:2:12"),
        "{html}"
    );
    let (status, html) = page(&app, "/plans/guarded").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("errors: error_rate at most baseline + 2 over 5m00s (at least 100 samples); 3 breaches in a row → roll back"),
        "{html}"
    );
    assert!(html.contains("an operator promotes it"));
    assert!(html.contains("the file as it is now") && html.contains("href=\"/rollouts/1\""));
    let (status, _) = page(&app, "/plans/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_page_shows_the_chain_check_and_pages_by_cursor() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    for i in 0..60 {
        let (status, _) = app
            .post(
                &format!(
                    "/api/v1/rollouts/{id}/{}",
                    if i % 2 == 0 { "pause" } else { "resume" }
                ),
                json!({ "reason": format!("step {i}") }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _, _) = form(&app, "/audit/verify", &[]).await;
    assert_eq!(status, 303);
    let (_, html) = page(&app, "/audit").await;
    assert!(html.contains("Chain intact: 62 entries verified"), "{html}");
    assert_eq!(
        html.matches("<li class=\"entry\">").count(),
        50,
        "a page of 50"
    );
    assert!(html.contains("step 59"), "newest first");
    let older = html.split("href=\"/audit?before=").nth(1).unwrap();
    let cursor: String = older.chars().take_while(char::is_ascii_digit).collect();
    let (_, html) = page(&app, &format!("/audit?before={cursor}")).await;
    assert_eq!(html.matches("<li class=\"entry\">").count(), 12);
    assert!(html.contains("<strong>start</strong>"));
    assert!(html.contains("/api/v1/audit/export?format=csv"));
    let (_, html) = page(&app, "/audit?actor=api&since=2020-01-01T00:00").await;
    assert!(html.contains("step 59") && html.matches("<li class=\"entry\">").count() == 50);
    let (_, html) = page(&app, "/audit?actor=nobody").await;
    assert!(html.contains("No entries."), "{html}");
    let (status, _) = page(&app, "/audit?since=yesterday").await;
    assert_eq!(status, 400);
}

/// Another site cannot post into an operator's browser: a cross-site form
/// post, or a cross-site script's "simple" API request, is refused and
/// changes nothing; so is a form without its form token (CSRF), even with
/// sign-in off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_posted_from_another_site_are_refused() {
    let app = spawn_app(Db::Sqlite).await;
    let id = app.start_seed().await["id"].as_i64().unwrap();
    let token = form_token(&app).await;
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let r = app
            .http
            .post(format!("{}/rollouts/{id}/pause", app.url))
            .header(name, value)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("rollgate_csrf={token}"))
            .body(format!("reason=x&csrf={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{name}");
        let r = app
            .http
            .post(format!("{}/api/v1/rollouts/{id}/pause", app.url))
            .header(name, value)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "API, {name}");
    }
    for (cookie, field) in [("", ""), (token.as_str(), ""), ("", token.as_str())] {
        let r = app
            .http
            .post(format!("{}/rollouts/{id}/pause", app.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("rollgate_csrf={cookie}"))
            .body(format!("reason=x&csrf={field}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "cookie {cookie:?}, field {field:?}");
    }
    assert_eq!(app.rollout(id).await["state"], "active");
    // The same post from its own page, with its token, is fine.
    let r = app
        .http
        .post(format!("{}/rollouts/{id}/pause", app.url))
        .header("sec-fetch-site", "same-origin")
        .header("origin", app.url.clone())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", format!("rollgate_csrf={token}"))
        .body(format!("reason=x&csrf={token}"))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success() || r.status().is_redirection(),
        "{}",
        r.status()
    );
    assert_eq!(app.rollout(id).await["state"], "paused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_served_from_the_binary_with_cache_headers() {
    let app = spawn_app(Db::Sqlite).await;
    for (path, kind) in [
        ("/static/app.css", "text/css"),
        ("/static/app.js", "text/javascript"),
        ("/static/vendor/htmx.min.js", "text/javascript"),
        ("/static/vendor/uPlot.iife.min.js", "text/javascript"),
        ("/static/vendor/htmx.LICENSE", "text/plain"),
    ] {
        let r = app
            .http
            .get(format!("{}{path}", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            r.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age")
        );
        let etag = r.headers()["etag"].clone();
        let again = app
            .http
            .get(format!("{}{path}", app.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let (status, html) = page(&app, "/static/../Cargo.toml").await;
    assert_ne!(status, 200, "{html}");
    let (status, html) = page(&app, "/no-such-page").await;
    assert_eq!(status, 404);
    assert!(html.contains("there is no page at /no-such-page"));
    let (status, body) = app.get("/api/v1/nothing").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let _ = Duration::ZERO;
}

/// Sparklines read one value a minute, the minute's worst, whatever the
/// watcher's tick: six 10 s ticks of a minute become one point, a minute
/// with no error rate stays a gap, and rollouts do not mix.
async fn sparklines_keep_each_minutes_worst_error_rate(db: Db) {
    use chrono::{TimeZone, Utc};
    use rollgate::domain::{MetricPoint, PointKind, RolloutId};
    use rollgate::metrics::eval::Verdict;
    use rollgate::store::Store;

    let app = spawn_app(db).await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let point = |minute: u32, second: u32, value: Option<f64>| MetricPoint {
        kind: PointKind::Guardrail,
        name: "errors".into(),
        label: "error_rate".into(),
        at: Utc
            .with_ymd_and_hms(2026, 11, 25, 10, minute, second)
            .unwrap(),
        window_secs: Some(300),
        value,
        samples: 100,
        verdict: Verdict::Pass,
        threshold: Some(0.05),
        reference: None,
    };
    let mut points = Vec::new();
    for s in [0, 10, 20, 30, 40, 50] {
        // Minute 1 peaks at 0.04 on its fourth tick; minute 2 has no value.
        let v = if s == 30 { 0.04 } else { 0.01 };
        points.push((RolloutId(1), point(1, s, Some(v))));
        points.push((RolloutId(1), point(2, s, None)));
        points.push((RolloutId(2), point(1, s, Some(0.5))));
    }
    points.push((RolloutId(1), point(3, 5, Some(0.02))));
    // Before `since`: not shown.
    points.push((RolloutId(1), point(0, 30, Some(0.9))));
    store.insert_points(&points).await.unwrap();

    let since = Utc.with_ymd_and_hms(2026, 11, 25, 10, 1, 0).unwrap();
    let sparks = store
        .error_rate_sparklines(&[RolloutId(1), RolloutId(2)], since)
        .await
        .unwrap();
    let minute = |m| Utc.with_ymd_and_hms(2026, 11, 25, 10, m, 0).unwrap();
    assert_eq!(
        sparks[&RolloutId(1)],
        vec![
            (minute(1), Some(0.04)),
            (minute(2), None),
            (minute(3), Some(0.02))
        ]
    );
    assert_eq!(sparks[&RolloutId(2)], vec![(minute(1), Some(0.5))]);
}
crate::on_both_databases!(sparklines_keep_each_minutes_worst_error_rate);

/// A long history is sampled before it is decoded: of 300 ticks the rollout
/// page reads the 240 a chart draws (the newest 60 as they are, an even
/// sample of the older ones), each with all its metrics; a short one is
/// read whole.
async fn long_chart_histories_read_only_the_ticks_drawn(db: Db) {
    use chrono::{TimeDelta, TimeZone, Utc};
    use rollgate::domain::{MetricPoint, PointKind, RolloutId};
    use rollgate::metrics::eval::Verdict;
    use rollgate::store::Store;
    use rollgate::web::pages::render::chart_indices;

    let app = spawn_app(db).await;
    let store = Store::connect(&app.database_url).await.unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 0, 0, 0).unwrap();
    let point = |i: i64, label: &str| MetricPoint {
        kind: PointKind::Guardrail,
        name: label.into(),
        label: label.into(),
        at: t0 + TimeDelta::minutes(i),
        window_secs: Some(300),
        value: Some(i as f64),
        samples: 100,
        verdict: Verdict::Pass,
        threshold: None,
        reference: None,
    };
    let mut points = Vec::new();
    for i in 0..300 {
        points.push((RolloutId(1), point(i, "error_rate")));
        points.push((RolloutId(1), point(i, "duration_p99")));
    }
    for i in 0..10 {
        points.push((RolloutId(2), point(i, "error_rate")));
    }
    store.insert_points(&points).await.unwrap();

    let read = store
        .points_of_rows(RolloutId(1), None, chart_indices)
        .await
        .unwrap();
    let minutes: Vec<i64> = read
        .iter()
        .filter(|p| p.label == "error_rate")
        .map(|p| (p.at - t0).num_minutes())
        .collect();
    let want: Vec<i64> = chart_indices(300).into_iter().map(|i| i as i64).collect();
    assert_eq!(minutes, want);
    assert_eq!((minutes.len(), minutes[0]), (240, 0));
    assert_eq!(
        minutes[180..],
        (240..300).collect::<Vec<i64>>()[..],
        "the newest 60 as they are"
    );
    assert_eq!(read.len(), 480, "every metric of each tick read");
    assert!(
        read.iter()
            .all(|p| p.value == Some((p.at - t0).num_minutes() as f64))
    );
    assert!(
        read.iter().all(|p| p.window_secs == Some(300)),
        "each value is kept with the period it covers"
    );

    let short = store
        .points_of_rows(RolloutId(2), None, chart_indices)
        .await
        .unwrap();
    assert_eq!(short.len(), 10);
}
crate::on_both_databases!(long_chart_histories_read_only_the_ticks_drawn);

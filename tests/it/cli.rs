//! The CLI as an operator uses it, against a running server.

use std::process::{Command, Output};

use serde_json::Value;

use crate::common::{Db, spawn_app};

async fn rollgate(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(&args)
            .env("ROLLGATE_ACTOR", "carol")
            .output()
            .expect("run rollgate")
    })
    .await
    .unwrap()
}

fn args(s: &str, server: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.push("--server".into());
    v.push(server.into());
    v
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_walks_the_seed_plan_with_the_cli() {
    let app = spawn_app(Db::Sqlite).await;
    let url = app.url.clone();

    let out = rollgate(args(
        "rollout start --plan dixon-smart-repair --reason kickoff --force",
        &url,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("rollout #1"), "{text}");
    assert!(text.contains("[baseline]"), "{text}");

    let out = rollgate(args(
        "rollout advance 1 --reason looks-good --output json",
        &url,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["phase_name"], "prompts");
    app.assert_env(["true", "false", "false"]).await;

    let out = rollgate(args("rollout status", &url)).await;
    assert!(stdout(&out).contains("prompts"), "{}", stdout(&out));
    let out = rollgate(args("rollout status 1 --output json", &url)).await;
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["state"], "active");

    // Refusals exit non-zero with the server's message.
    let out = rollgate(args("rollout resume 1", &url)).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("only a paused rollout can be resumed"),
        "{}",
        stderr(&out)
    );
    let out = rollgate(args("rollout rollback 1", &url)).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("reason"), "{}", stderr(&out));

    let out = rollgate(args("rollout rollback 1 --reason errors-up", &url)).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("rolled_back"));
    app.assert_env(["false", "false", "false"]).await;

    let out = rollgate(args("audit list --rollout 1", &url)).await;
    let text = stdout(&out);
    assert!(
        text.contains("carol (cli)") || text.contains("carol"),
        "{text}"
    );
    assert!(text.contains("errors-up"), "{text}");
    assert_eq!(text.lines().count(), 6, "{text}");

    let out = rollgate(args("audit verify", &url)).await;
    assert!(out.status.success());
    assert!(stdout(&out).contains("intact"));

    let out = rollgate(args("audit export --format csv", &url)).await;
    assert!(stdout(&out).starts_with("seq,at,actor,action"));

    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
        .execute(&app.raw_db().await)
        .await
        .unwrap();
    let out = rollgate(args("audit verify", &url)).await;
    assert!(!out.status.success(), "tampering must fail verify");
    assert!(stdout(&out).contains("entry 2"), "{}", stdout(&out));
}

#[tokio::test]
async fn cli_says_when_the_server_is_down() {
    let out = rollgate(args("rollout status", "http://127.0.0.1:9")).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach rollgate"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn plan_validate_and_schema() {
    let seed = crate::common::repo_plans_dir().join("dixon-smart-repair.toml");
    let out = rollgate(vec![
        "plan".into(),
        "validate".into(),
        seed.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[target]\nfunction = \"f\"\nnope = 1\n").unwrap();
    let out = rollgate(vec![
        "plan".into(),
        "validate".into(),
        seed.display().to_string(),
        bad.display().to_string(),
    ])
    .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:1:", bad.display())), "{err}");

    let out = rollgate(vec!["plan".into(), "schema".into()]).await;
    assert!(out.status.success());
    let schema: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(schema["properties"].get("phases").is_some(), "{schema}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_abandons_a_stuck_rollout_with_the_cli() {
    let app = spawn_app(Db::Sqlite).await;
    let url = app.url.clone();
    let id = app.start_seed().await["id"].as_i64().unwrap();
    app.sandbox.faults().throttle_next(100_000);
    let out = rollgate(args(
        &format!("rollout advance {id} --force --reason outage"),
        &url,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not confirmed yet"),
        "{}",
        stderr(&out)
    );

    let out = rollgate(args(&format!("rollout abandon {id}"), &url)).await;
    assert!(!out.status.success(), "a reason is required");
    assert!(
        stderr(&out).contains("needs a \"reason\""),
        "{}",
        stderr(&out)
    );

    let out = rollgate(args(
        &format!("rollout abandon {id} --reason give-up"),
        &url,
    ))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("state   abandoned"),
        "{}",
        stdout(&out)
    );
    let out = rollgate(args("audit list --action abandon --output json", &url)).await;
    let entries: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(entries[0]["actor"], "carol");
    assert_eq!(entries[0]["reason"], "give-up");

    let out = rollgate(args("rollout status x1", &url)).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid rollout id"),
        "{}",
        stderr(&out)
    );
    let out = rollgate(args("audit list --since yesterday", &url)).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--since"), "{}", stderr(&out));
}

/// Issue 9, first admin: `rollgate user add NAME --role ROLE` reads the
/// password from stdin (never a flag), stores only its argon2id hash, and
/// audits who added whom; bad input changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_add_stores_an_argon2id_hash_and_audits_it() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("users.db").display()
    );
    let add = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(["user", "add"])
            .args(args)
            .args(["--database", &database])
            .env("USER", "deployer")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let password = "correct horse battery staple";
    let ok = add(&["ada", "--role", "admin"], &format!("{password}\n"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("user ada added with role admin"));
    for (args, stdin, says) in [
        (
            vec!["ada", "--role", "viewer"],
            format!("{password}\n"),
            "already exists",
        ),
        (
            vec!["bob", "--role", "root"],
            format!("{password}\n"),
            "unknown role",
        ),
        (
            vec!["bob", "--role", "viewer"],
            "short\n".to_string(),
            "at least 12",
        ),
        (
            vec!["Bob", "--role", "viewer"],
            format!("{password}\n"),
            "invalid user name",
        ),
        (
            vec!["bob", "--role", "viewer", "--password", password],
            String::new(),
            "--password",
        ),
    ] {
        let out = add(&args, &stdin);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(password) || args.contains(&"--password"),
            "{stderr}"
        );
    }
    let store = rollgate::store::Store::connect(&database).await.unwrap();
    let (role, hash) = store.user("ada").await.unwrap().unwrap();
    assert_eq!(role, rollgate::domain::user::Role::Admin);
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(rollgate::domain::user::verify_password(password, &hash));
    assert!(
        store.user("bob").await.unwrap().is_none(),
        "nothing else was added"
    );
    let rows: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT actor, action, detail FROM audit_log ORDER BY seq")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, action, detail) = &rows[0];
    assert_eq!(
        (actor.as_str(), action.as_str()),
        ("cli:deployer", "user_added")
    );
    let detail = detail.clone().unwrap();
    assert!(
        detail.contains("\"user\":\"ada\"") && detail.contains("\"role\":\"admin\""),
        "{detail}"
    );
    assert!(
        !detail.contains(password) && !detail.contains("argon2"),
        "{detail}"
    );
    store.close().await;
}

/// Sign-in on: the first admin token is made on the database with
/// `rollgate token create` (shown once), the CLI acts with `ROLLGATE_TOKEN`
/// and the audit log names the token; no token, a viewer's token, a
/// claimed actor and a revoked token are refused with what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_acts_with_an_api_token_made_on_the_database() {
    use rollgate::web::auth::{AuthConfig, AuthMode};
    let app = crate::common::spawn_app_with(
        Db::Sqlite,
        crate::common::Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                ..AuthConfig::default()
            },
            ..crate::common::Options::default()
        },
    )
    .await;
    let db = app.database_url.clone();
    let run = |args: Vec<String>, env: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_rollgate"))
                .args(&args)
                .env_remove("ROLLGATE_ACTOR")
                .env_remove("ROLLGATE_TOKEN")
                .env("USER", "deployer")
                .envs(env)
                .output()
                .expect("run rollgate")
        })
    };
    let create = |name: &str, role: &str| {
        let words = format!("token create {name} --role {role} --database {db}");
        run(
            words.split_whitespace().map(str::to_string).collect(),
            vec![],
        )
    };
    let made = create("ci", "operator").await.unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let ci = stdout(&made).trim().to_string();
    assert!(ci.starts_with("rgt_") && ci.len() == 68, "{ci}");
    assert!(stderr(&made).contains("shown once"));
    let viewer = stdout(&create("dash", "viewer").await.unwrap())
        .trim()
        .to_string();
    let again = create("ci", "viewer").await.unwrap();
    assert!(!again.status.success() && stderr(&again).contains("already exists"));
    let bad = create("CI", "operator").await.unwrap();
    assert!(!bad.status.success() && stderr(&bad).contains("invalid token name"));

    let start = args(
        "rollout start --plan dixon-smart-repair --reason ci --force",
        &app.url,
    );
    let none = run(start.clone(), vec![]).await.unwrap();
    assert!(!none.status.success());
    assert!(stderr(&none).contains("HTTP 401"), "{}", stderr(&none));
    let read_only = run(start.clone(), vec![("ROLLGATE_TOKEN", viewer.clone())])
        .await
        .unwrap();
    assert!(stderr(&read_only).contains("HTTP 403") && stderr(&read_only).contains("operator"));
    let claimed = run(
        start.clone(),
        vec![
            ("ROLLGATE_TOKEN", ci.clone()),
            ("ROLLGATE_ACTOR", "carol".into()),
        ],
    )
    .await
    .unwrap();
    assert!(
        stderr(&claimed).contains("token:ci"),
        "{}",
        stderr(&claimed)
    );
    let ok = run(start, vec![("ROLLGATE_TOKEN", ci.clone())])
        .await
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let status = run(
        args("rollout status --output json", &app.url),
        vec![("ROLLGATE_TOKEN", viewer.clone())],
    )
    .await
    .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
    let audit = run(
        args("audit list --action start --output json", &app.url),
        vec![("ROLLGATE_TOKEN", viewer.clone())],
    )
    .await
    .unwrap();
    assert!(
        stdout(&audit).contains("\"actor\":\"token:ci\""),
        "{}",
        stdout(&audit)
    );

    let list = run(
        vec![
            "token".into(),
            "list".into(),
            "--database".into(),
            db.clone(),
        ],
        vec![],
    )
    .await
    .unwrap();
    let listed = stdout(&list);
    assert!(
        listed.contains("ci\toperator\tactive") && listed.contains("dash\tviewer\tactive"),
        "{listed}"
    );
    assert!(!listed.contains(&ci[4..]), "no secrets listed");
    let revoke = run(
        vec![
            "token".into(),
            "revoke".into(),
            "ci".into(),
            "--database".into(),
            db.clone(),
        ],
        vec![],
    )
    .await
    .unwrap();
    assert!(revoke.status.success(), "{}", stderr(&revoke));
    let after = run(
        args("rollout status", &app.url),
        vec![("ROLLGATE_TOKEN", ci.clone())],
    )
    .await
    .unwrap();
    assert!(stderr(&after).contains("revoked"), "{}", stderr(&after));
    let entries = {
        let mut app = app;
        app.token = Some(viewer);
        let e = app.audit("?action=token_revoked").await;
        app.stop().await;
        e
    };
    assert_eq!(entries[0]["actor"], "cli:deployer");
}

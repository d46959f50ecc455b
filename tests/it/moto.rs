//! The same Lambda flag-write behaviour checked against moto, an emulator we
//! did not write, so our sandbox is not the only judge. moto ignores
//! RevisionId and has no update delay; everything else must hold.

use crate::common::{Aws, Db, FLAGS, Options, UNRELATED, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_plan_flag_writes_on_moto_keep_every_other_variable() {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            aws: Aws::Moto,
            ..Options::default()
        },
    )
    .await;
    let started = app.start_seed().await;
    let id = started["id"].as_i64().unwrap();
    app.assert_env(["false", "false", "false"]).await;
    for flags in [
        ["true", "false", "false"],
        ["true", "true", "false"],
        ["true", "true", "true"],
    ] {
        let (status, body) = app.command(id, "advance", "moto").await;
        assert_eq!(status, 200, "{body}");
        app.assert_env(flags).await;
    }
    let (status, body) = app.command(id, "rollback", "moto rollback").await;
    assert_eq!(status, 200, "{body}");
    app.assert_env(["false", "false", "false"]).await;
    let (_, verify) = app.get("/api/v1/audit/verify").await;
    assert_eq!(verify["ok"], true);
    let _ = (FLAGS, UNRELATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_on_moto_adds_missing_flags_and_is_idempotent() {
    use rollgate::backend::LambdaEnvBackend;
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            aws: Aws::Moto,
            ..Options::default()
        },
    )
    .await;
    let backend = LambdaEnvBackend::new(&app.aws, crate::common::fast_retry());
    let desired: std::collections::BTreeMap<String, String> =
        [("NEW_FLAG".to_string(), "on".to_string())].into();
    let first = backend
        .apply(
            crate::common::FUNCTION,
            &desired,
            false,
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(first.wrote);
    assert_eq!(first.before.get("NEW_FLAG"), None);
    assert_eq!(first.after, desired);
    let second = backend
        .apply(
            crate::common::FUNCTION,
            &desired,
            false,
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(!second.wrote, "already in place: nothing is written twice");
    let env = app.function_env().await;
    assert_eq!(env["NEW_FLAG"], "on");
    for (k, v) in UNRELATED {
        assert_eq!(env[k], v);
    }
    let missing = backend
        .apply("no-such-function", &desired, false, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, rollgate::backend::ApplyError::Rejected(_)),
        "{missing:?}"
    );
}

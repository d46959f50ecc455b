//! The API against its own published OpenAPI document, judged by an
//! independent fuzzer: schemathesis (PyPI; `.ci/run` installs it) sends
//! generated and edge-case requests to a live server with sign-in on. No
//! answer may be a 500, every status and body must be the documented one,
//! and every operation sent without its credential must be refused.
//! Time-boxed; the seed is printed so a failure can be replayed.

use std::process::Command;

use rollgate::domain::user::Role;
use rollgate::web::auth::{AuthConfig, AuthMode};

use crate::common::{Db, Options, spawn_app_with};

/// Runs schemathesis against `url` with `args`; its output on failure.
fn schemathesis(url: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new("schemathesis")
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(args)
        .args(["--no-color", "-w", "1", "--request-timeout", "10"])
        .output()
        .map_err(|e| {
            format!(
                "schemathesis is missing ({e}): python3 -m pip install schemathesis (.ci/run does)"
            )
        })?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_holds_to_its_openapi_document_under_fuzzing() {
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    // A name no fuzzer guesses, so it does not revoke its own credential.
    let admin = app
        .make_token("schemathesis-admin-7f3a9c2e", Role::Admin)
        .await;
    let auth = format!("Authorization: Bearer {admin}");
    let seed = std::env::var("ROLLGATE_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let url = app.url.clone();
    let run_seed = seed.clone();
    let checks = tokio::task::spawn_blocking(move || {
        schemathesis(
            &url,
            &[
                "-H",
                &auth,
                "-c",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-time",
                "60",
                "--seed",
                &run_seed,
            ],
        )
    })
    .await
    .unwrap();
    if let Err(report) = checks {
        panic!("schemathesis found problems (seed {seed}):\n{report}");
    }
    // Whatever it did (it may even have revoked its own token: the token
    // list names it), the audit chain is whole.
    let report = app.state().service.verify_audit().await.unwrap();
    assert!(report.ok, "{report:?}");
}

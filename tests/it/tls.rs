//! rollgate's own HTTPS (rustls): a certificate from a private CA, HSTS and
//! Secure cookies on every answer, plain HTTP refused on the port, and the
//! CLI verifying the server against that CA (`--ca-cert`) or refusing it.

use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rollgate::app::TlsFiles;
use rollgate::domain::user::Role;
use rollgate::web::auth::{AuthConfig, AuthMode};

use crate::common::{Db, Options, spawn_app_with};

/// A CA, and a certificate it signed for 127.0.0.1 and localhost, as PEM
/// files in `dir`: (CA file, server files).
fn certificates(dir: &std::path::Path) -> (std::path::PathBuf, TlsFiles) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, leaf_key.serialize_pem()).unwrap();
    (ca_file, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollgate_serves_https_and_the_cli_verifies_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, files) = certificates(dir.path());
    let app = spawn_app_with(
        Db::Sqlite,
        Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                ..AuthConfig::default()
            },
            tls: Some(files),
            ..Options::default()
        },
    )
    .await;
    assert!(app.url.starts_with("https://127.0.0.1:"), "{}", app.url);
    let https = reqwest::Client::builder()
        .tls_certs_only(vec![
            reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
        ])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = https
        .get(format!("{}/login", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(
        login.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Over HTTPS the cookies carry the __Host- prefix (no subdomain can
    // plant them); a sign-in with them works end to end.
    assert!(cookie.starts_with("__Host-rollgate_csrf="), "{cookie}");
    let form_token = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    app.add_user("ada", Role::Admin, "correct horse battery staple")
        .await;
    let signed = https
        .post(format!("{}/login", app.url))
        .header("cookie", format!("__Host-rollgate_csrf={form_token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf={form_token}&name=ada&password=correct+horse+battery+staple&next=%2F"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let session = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        session.starts_with("__Host-rollgate_session=") && session.contains("; Secure"),
        "{session}"
    );
    let session = session.split(';').next().unwrap().to_string();
    let me = https
        .get(format!("{}/api/v1/me", app.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.headers()["cache-control"], "no-store");
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["actor"], "user:ada");
    let denied = https
        .get(format!("{}/api/v1/rollouts", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert!(denied.headers().contains_key("strict-transport-security"));
    // Plain HTTP on the HTTPS port gets no answer from the API.
    let plain = app.url.replacen("https://", "http://", 1);
    let r = reqwest::get(format!("{plain}/healthz")).await;
    assert!(
        r.map_or(true, |r| !r.status().is_success()),
        "no plain HTTP"
    );

    let token = app.make_token("ci", Role::Viewer).await;
    let cli = |extra: Vec<String>| {
        let url = app.url.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_rollgate"))
                .args(["rollout", "status", "--server", &url])
                .args(extra)
                .env("ROLLGATE_TOKEN", token)
                .env_remove("ROLLGATE_CA_CERT")
                .output()
                .unwrap()
        })
    };
    let trusted = cli(vec!["--ca-cert".into(), ca.display().to_string()])
        .await
        .unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = cli(vec![]).await.unwrap();
    assert!(!untrusted.status.success());
    let says = String::from_utf8_lossy(&untrusted.stderr);
    assert!(says.to_lowercase().contains("certificate"), "{says}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_certificate_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.pem"), "not a certificate").unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_rollgate"))
                .args(["serve", "--listen", "127.0.0.1:0", "--watch-interval", "0"])
                .arg("--tls-cert")
                .arg(dir.join("bad.pem"))
                .arg("--tls-key")
                .arg(dir.join("missing.key"))
                .env("ROLLGATE_PLANS", crate::common::repo_plans_dir())
                .env(
                    "DATABASE_URL",
                    format!("sqlite://{}?mode=rwc", dir.join("r.db").display()),
                )
                .env("AWS_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let says = String::from_utf8_lossy(&out.stderr);
    assert!(says.contains("cannot use the TLS certificate"), "{says}");
    assert!(!dir.path().join("r.db").exists(), "nothing touched");
}

//! The dashboard in a real browser: `tests/browser/dashboard.py` drives
//! headless Chromium (Debian's `chromium`, through Playwright for Python)
//! against a real `rollgate demo` process — server, watcher and AWS sandbox
//! with simulated traffic — and writes screenshots to `target/screenshots/`.
//! `.ci/run` installs Chromium and Playwright.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A `rollgate demo` process, killed on drop.
struct Demo {
    child: Child,
    log: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Demo {
    /// Whether the demo is still running (a test that fails because it
    /// went away says so).
    fn status(&mut self) -> String {
        match self.child.try_wait() {
            Ok(None) => "still running".to_string(),
            Ok(Some(status)) => format!("EXITED: {status}"),
            Err(e) => format!("unknown ({e})"),
        }
    }

    /// The last lines the demo wrote to stderr.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails, saying what to install, when the browser or Playwright is missing.
fn require_browser_tools() {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} (Debian's chromium: apt-get install -y chromium)"
        ));
    }
    let playwright = Command::new("python3")
        .args(["-c", "import playwright"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(playwright, Ok(s) if s.success()) {
        missing.push(
            "Playwright for Python (python3 -m pip install playwright; no `playwright install`: \
             it drives the system chromium)"
                .to_string(),
        );
    }
    assert!(
        missing.is_empty(),
        "the browser tests need: {}. `.ci/run` installs both.",
        missing.join("; ")
    );
}

/// Where `cargo` puts its output: `CARGO_TARGET_DIR` or `./target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Starts `rollgate demo` on a free port; returns it with the dashboard and
/// sandbox URLs it printed.
async fn start_demo(dir: &Path) -> (Demo, String, String) {
    let log = dir.join("demo.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["demo", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--watch-interval", "1"])
        .arg("--database")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.join("demo.db").display()
        ))
        .arg("--plans")
        .arg(common::repo_plans_dir())
        // The demo's working copy of the plans goes to the temporary
        // directory too, and goes with it.
        .env("TMPDIR", dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn rollgate demo");
    let stdout = child.stdout.take().unwrap();
    // Owned (and killed on drop) before anything can fail.
    let demo = Demo { child, log };

    // "  dashboard      http://127.0.0.1:P/   <- open this"
    // "  AWS sandbox    http://127.0.0.1:Q (Lambda, ...)"
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut urls = (None, None);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["dashboard", url, ..] => urls.0 = Some(url.trim_end_matches('/').to_string()),
                ["AWS", "sandbox", url, ..] => urls.1 = Some(url.to_string()),
                _ => {}
            }
            if let (Some(d), Some(s)) = &urls {
                let _ = tx.send((d.clone(), s.clone()));
                urls = (None, None);
            }
            // Keeps reading until the demo exits: it never blocks on stdout.
        }
    });
    let printed = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)));
    let (url, sandbox) = match printed.await.unwrap() {
        Ok(urls) => urls,
        Err(_) => panic!(
            "rollgate demo printed no dashboard and sandbox URLs; its log:\n{}",
            demo.log_tail()
        ),
    };

    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await
            && r.status().is_success()
        {
            return (demo, url, sandbox);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "rollgate demo did not answer /healthz; its log:\n{}",
        demo.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_scenarios_in_headless_chromium() {
    require_browser_tools();
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, url, sandbox) = start_demo(dir.path()).await;
    let shots = target_dir().join("screenshots");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");

    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args(["--url", &url, "--sandbox", &sandbox, "--screenshots"])
            .arg(&shots)
            .env("PYTHONUNBUFFERED", "1")
            .output()
            .expect("run python3 tests/browser/dashboard.py")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Shown with --no-capture, and by nextest on failure.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "tests/browser/dashboard.py failed ({}):\n{stdout}\n{stderr}\n--- rollgate demo ({}), its log (last lines):\n{}",
        out.status,
        demo.status(),
        demo.log_tail()
    );
}

/// Sign-in in a real browser against a server with `--auth local`: sent to
/// sign in, a wrong password refused, back where it started, acting as
/// itself, signed out; a viewer cannot act (`tests/browser/sign_in.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_in_headless_chromium() {
    use rollgate::domain::user::Role;
    use rollgate::web::auth::{AuthConfig, AuthMode};
    require_browser_tools();
    let mut app = common::spawn_app_with(
        common::Db::Sqlite,
        common::Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                ..AuthConfig::default()
            },
            ..common::Options::default()
        },
    )
    .await;
    let password = "correct horse battery staple";
    app.add_user("otto", Role::Operator, password).await;
    app.add_user("vera", Role::Viewer, password).await;
    run_browser_script("sign_in.py", &["--url", &app.url, "--password", password]).await;
    let admin = app.make_token("check", Role::Viewer).await;
    app.token = Some(admin);
    assert_eq!(app.audit("?action=start").await[0]["actor"], "user:otto");
}

/// Sign-in through the identity provider in a real browser, the provider
/// being another site (localhost) than rollgate (127.0.0.1): there and
/// back, signed in where it started, acting as `oidc:otto`
/// (`tests/browser/oidc_sign_in.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_sign_in_in_headless_chromium() {
    use rollgate::domain::user::Role;
    require_browser_tools();
    let port = common::free_port();
    let idp = crate::oidc::start_idp_on(
        "localhost",
        &format!("http://127.0.0.1:{port}/login/oidc/callback"),
    );
    let mut app = crate::oidc::spawn_app_on(common::Db::Sqlite, &idp, port).await;
    run_browser_script("oidc_sign_in.py", &["--url", &app.url]).await;
    let check = app.make_token("check", Role::Viewer).await;
    app.token = Some(check);
    assert_eq!(app.audit("?action=start").await[0]["actor"], "oidc:otto");
}

/// Runs `tests/browser/SCRIPT` with `args` (Playwright for Python driving
/// headless Chromium), prints what it said, and fails the test if it did.
async fn run_browser_script(script: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&path)
            .args(&args)
            .env("PYTHONUNBUFFERED", "1")
            .output()
            .unwrap_or_else(|e| panic!("run python3 {}: {e}", path.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "tests/browser/{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

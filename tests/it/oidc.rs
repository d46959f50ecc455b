//! Sign-in through a real OpenID Connect provider (node-oidc-provider from
//! the npm registry, installed by `.ci/run` into tests/oidc and started
//! here): the authorization-code flow with PKCE end to end, roles from the
//! groups claim, the audit actor `oidc:NAME`, and the refusals: a replayed
//! state, a callback in another browser, a wrong or extra audience, a wrong
//! nonce, a user with no mapped group.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rollgate::domain::oidc::OidcSettings;
use rollgate::domain::user::Role;
use rollgate::oidc::OidcProvider;
use rollgate::web::auth::{AuthConfig, AuthMode};
use serde_json::{Value, json};

use crate::common::{Db, Options, TestApp, free_port, spawn_app_with};
use crate::on_both_databases;

/// The provider process, killed on drop.
pub struct Idp {
    child: Child,
    pub issuer: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the provider with rollgate's client registered for `redirect`.
fn start_idp(redirect: &str) -> Idp {
    start_idp_on("127.0.0.1", redirect)
}

/// [`start_idp`] with the issuer named by `host` (e.g. "localhost": another
/// site than rollgate on 127.0.0.1, for a browser).
pub fn start_idp_on(host: &str, redirect: &str) -> Idp {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "the test OIDC provider is not installed: run `npm ci --prefix tests/oidc` (.ci/run does)"
    );
    let mut child = Command::new("node")
        .arg("provider.mjs")
        .env("ISSUER_HOST", host)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(
            std::fs::File::create(
                std::env::temp_dir().join(format!("oidc-provider-{}.log", std::process::id())),
            )
            .unwrap(),
        )
        .spawn()
        .expect("node runs the test OIDC provider");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
    let port = next_line();
    let port = port
        .strip_prefix("PORT ")
        .expect("the provider says its port");
    writeln!(stdin, "CLIENT {redirect}").unwrap();
    assert_eq!(next_line(), "READY");
    // The provider logs to stdout: keep reading it, or it dies of EPIPE.
    std::thread::spawn(move || {
        for _ in lines.by_ref() {}
        drop(stdin);
    });
    Idp {
        child,
        issuer: format!("http://{host}:{port}"),
    }
}

struct Setup {
    app: TestApp,
    idp: Idp,
    callback: String,
}

async fn spawn(db: Db) -> Setup {
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/login/oidc/callback");
    let idp = start_idp(&callback);
    let app = spawn_app_on(db, &idp, port).await;
    Setup { app, idp, callback }
}

/// rollgate on `port` with `idp` as its identity provider (groups eng,
/// rollgate-ops and rollgate-admins give viewer, operator and admin).
pub async fn spawn_app_on(db: Db, idp: &Idp, port: u16) -> TestApp {
    let callback = format!("http://127.0.0.1:{port}/login/oidc/callback");
    let provider = OidcProvider::new(OidcSettings {
        issuer: idp.issuer.clone(),
        client_id: "rollgate".into(),
        client_secret: Some("rollgate-test-secret".into()),
        redirect_url: callback,
        audiences: vec!["rollgate-api".into()],
        scopes: vec!["profile".into(), "email".into()],
        roles_claim: "groups".into(),
        roles: vec![
            ("eng".into(), Role::Viewer),
            ("rollgate-ops".into(), Role::Operator),
            ("rollgate-admins".into(), Role::Admin),
        ],
        name_claim: "preferred_username".into(),
    })
    .unwrap();
    spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                oidc: Some(Arc::new(provider)),
                ..AuthConfig::default()
            },
            listen: Some(format!("127.0.0.1:{port}").parse().unwrap()),
            ..Options::default()
        },
    )
    .await
}

/// A browser without JavaScript: cookies by host (paths ignored, which
/// only sends more than a browser would), redirects followed by hand.
#[derive(Default, Clone)]
struct Browser {
    cookies: BTreeMap<String, BTreeMap<String, String>>,
}

struct Answer {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    fn host(url: &str) -> String {
        url::Url::parse(url).unwrap()[..url::Position::BeforePath].to_string()
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &str) -> Answer {
        let jar = self.cookies.entry(Self::host(url)).or_default();
        let header: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = if header.is_empty() {
            req
        } else {
            req.header("cookie", header.join("; "))
        };
        let resp = req.send().await.unwrap();
        for set in resp.headers().get_all("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        let location = resp.headers().get("location").map(|l| {
            url::Url::parse(url)
                .unwrap()
                .join(l.to_str().unwrap())
                .unwrap()
                .to_string()
        });
        Answer {
            status: resp.status().as_u16(),
            location,
            body: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let req = http().get(url);
        self.send(req, url).await
    }

    fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.cookies.get(&Self::host(url))?.get(name).cloned()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The value of `attr="…"` in the first tag that has `marker` in it.
fn attr_after<'a>(html: &'a str, marker: &str, attr: &str) -> Option<&'a str> {
    let at = html.find(marker)?;
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\""))? + attr.len() + 2;
    let end = rest[start..].find('"')?;
    Some(&rest[start..start + end])
}

/// Begins a sign-in at rollgate, signs in at the provider as `login`
/// (its development login and consent forms), and stops at the redirect
/// back to rollgate: gives that callback URL, not yet visited.
async fn through_the_provider(b: &mut Browser, s: &Setup, login: &str) -> String {
    let start = format!("{}/login/oidc?next=/audit", s.app.url);
    let mut answer = b.get(&start).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    for _ in 0..20 {
        if let Some(loc) = answer.location.clone() {
            if loc.starts_with(&s.callback) {
                return loc;
            }
            assert!(
                loc.starts_with(&s.idp.issuer),
                "a redirect elsewhere: {loc}"
            );
            answer = b.get(&loc).await;
            continue;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        let action = attr_after(&answer.body, "<form", "action").expect("a form");
        let prompt = attr_after(&answer.body, "name=\"prompt\"", "value").expect("a prompt");
        let mut form = vec![("prompt", prompt.to_string())];
        if prompt == "login" {
            form.push(("login", login.to_string()));
            form.push(("password", "any password will do".to_string()));
        }
        let url = url::Url::parse(&s.idp.issuer)
            .unwrap()
            .join(action)
            .unwrap()
            .to_string();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        let req = http()
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        answer = b.send(req, &url).await;
    }
    panic!("the provider never sent the browser back");
}

/// Signs in as `login` and visits the callback.
async fn sign_in(b: &mut Browser, s: &Setup, login: &str) -> Answer {
    let callback = through_the_provider(b, s, login).await;
    b.get(&callback).await
}

async fn me(b: &Browser, s: &Setup) -> (u16, Value) {
    let mut b = b.clone();
    let url = format!("{}/api/v1/me", s.app.url);
    let a = b.get(&url).await;
    (
        a.status,
        serde_json::from_str(&a.body).unwrap_or(Value::Null),
    )
}

async fn tamper(s: &Setup, what: &str) {
    let r = http()
        .get(format!("{}/__test/tamper?{what}", s.idp.issuer))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

/// The session's form token, from a dashboard page.
async fn form_token(b: &mut Browser, s: &Setup) -> String {
    let page = b.get(&format!("{}/", s.app.url)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    attr_after(&page.body, "name=\"csrf\"", "value")
        .expect("a form token")
        .to_string()
}

async fn oidc_sign_in_end_to_end(db: Db) {
    let mut s = spawn(db).await;
    let session_cookie = "rollgate_session";

    // The sign-in page offers the provider.
    let mut b = Browser::default();
    let login = b.get(&format!("{}/login", s.app.url)).await;
    assert!(login.body.contains("/login/oidc?next="), "{}", login.body);

    // ada is in rollgate-admins: admin. The authorization request used
    // PKCE (S256), a state and a nonce.
    let callback = through_the_provider(&mut b, &s, "ada").await;
    let done = b.get(&callback).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("http-equiv=\"refresh\"") && done.body.contains("url=/audit"),
        "continues to where the user was going: {}",
        done.body
    );
    assert!(b.cookie(&s.app.url, session_cookie).is_some());
    assert_eq!(
        b.cookie(&s.app.url, "rollgate_oidc"),
        None,
        "the browser binding is used up"
    );
    let (status, who) = me(&b, &s).await;
    assert_eq!(status, 200);
    assert_eq!(
        (who["actor"].as_str(), who["role"].as_str()),
        (Some("oidc:ada"), Some("admin"))
    );

    // The same callback again (a replayed state): refused, no session.
    let mut replay = b.clone();
    replay
        .cookies
        .entry(Browser::host(&s.app.url))
        .or_default()
        .clear();
    let again = replay.get(&callback).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(
        again.body.contains("unknown or was used already"),
        "{}",
        again.body
    );
    assert_eq!(replay.cookie(&s.app.url, session_cookie), None);

    // A callback link planted in another browser signs nobody in, even
    // one with a sign-in of its own under way.
    let mut attacker = Browser::default();
    let planted = through_the_provider(&mut attacker, &s, "mia").await;
    let mut victim = Browser::default();
    let own = victim.get(&format!("{}/login/oidc", s.app.url)).await;
    assert_eq!(own.status, 303);
    assert!(victim.cookie(&s.app.url, "rollgate_oidc").is_some());
    let refused = victim.get(&planted).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("another browser"), "{}", refused.body);
    assert_eq!(victim.cookie(&s.app.url, session_cookie), None);

    // The provider's error answers: believed only for this browser's own
    // sign-in, and shown by code only (no text of a link's choosing).
    let mut c = Browser::default();
    let spoof = c
        .get(&format!(
            "{}?error=access_denied&error_description=Call+IT+at+555&state=made-up",
            s.callback
        ))
        .await;
    assert_eq!(spoof.status, 400, "{}", spoof.body);
    assert!(!spoof.body.contains("Call IT"), "{}", spoof.body);
    let begun = c.get(&format!("{}/login/oidc", s.app.url)).await;
    let state = url::Url::parse(begun.location.as_deref().unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let denied = c
        .get(&format!(
            "{}?error=access_denied&error_description=Call+IT+at+555&state={state}",
            s.callback
        ))
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body.contains("refused the sign-in: access_denied"),
        "{}",
        denied.body
    );
    assert!(!denied.body.contains("Call IT"), "{}", denied.body);

    // ID tokens for someone else, or for us and an audience not trusted:
    // refused. One also naming a trusted audience is fine.
    for (aud, accepted) in [
        ("another-app", false),
        ("rollgate,another-app", false),
        ("rollgate,rollgate-api", true),
    ] {
        let mut c = Browser::default();
        let callback = through_the_provider(&mut c, &s, "otto").await;
        tamper(&s, &format!("aud={aud}")).await;
        let a = c.get(&callback).await;
        if accepted {
            assert_eq!(a.status, 200, "aud {aud}: {}", a.body);
            assert!(c.cookie(&s.app.url, session_cookie).is_some());
        } else {
            assert_eq!(a.status, 403, "aud {aud}: {}", a.body);
            assert!(a.body.contains("ID token was not accepted"), "{}", a.body);
            assert_eq!(c.cookie(&s.app.url, session_cookie), None, "aud {aud}");
        }
    }
    // A nonce that is not the one this sign-in sent: refused.
    let mut c = Browser::default();
    let callback = through_the_provider(&mut c, &s, "otto").await;
    tamper(&s, "nonce=not-the-one-we-sent").await;
    let a = c.get(&callback).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("ID token was not accepted"), "{}", a.body);
    assert_eq!(c.cookie(&s.app.url, session_cookie), None);

    // A name is bound to the provider's account (sub) that first used it:
    // otto renamed at the provider stays oidc:otto; another account that
    // now calls itself otto is refused.
    let mut c = Browser::default();
    let callback = through_the_provider(&mut c, &s, "otto").await;
    tamper(&s, "name=olga").await;
    assert_eq!(c.get(&callback).await.status, 200);
    assert_eq!(me(&c, &s).await.1["actor"], "oidc:otto");
    let mut c = Browser::default();
    let callback = through_the_provider(&mut c, &s, "vic").await;
    tamper(&s, "name=otto").await;
    let a = c.get(&callback).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("already belongs to another"), "{}", a.body);
    assert_eq!(c.cookie(&s.app.url, session_cookie), None);

    // mia's groups map to no role: not let in.
    let mut c = Browser::default();
    let a = sign_in(&mut c, &s, "mia").await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("none of the groups"), "{}", a.body);
    assert_eq!(c.cookie(&s.app.url, session_cookie), None);

    // otto (rollgate-ops) is an operator: starts a rollout, and the audit
    // log names him as signed in through the provider. vera (eng) only
    // reads.
    let mut otto = Browser::default();
    assert_eq!(sign_in(&mut otto, &s, "otto").await.status, 200);
    let csrf = form_token(&mut otto, &s).await;
    let url = format!("{}/api/v1/rollouts", s.app.url);
    let req = http()
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "plan": "dixon-smart-repair", "reason": "via the identity provider", "force": true }));
    let started = otto.send(req, &url).await;
    assert_eq!(started.status, 201, "{}", started.body);
    let id = serde_json::from_str::<Value>(&started.body).unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut vera = Browser::default();
    assert_eq!(sign_in(&mut vera, &s, "vera").await.status, 200);
    let (_, who) = me(&vera, &s).await;
    assert_eq!(who["role"], "viewer");
    let csrf = form_token(&mut vera, &s).await;
    let url = format!("{}/api/v1/rollouts/{id}/pause", s.app.url);
    let req = http()
        .post(&url)
        .header("x-csrf-token", &csrf)
        .json(&json!({ "reason": "viewers may not" }));
    assert_eq!(vera.send(req, &url).await.status, 403);

    // otto is dropped from rollgate-ops at the provider: an admin ends his
    // sessions at once instead of waiting for them to expire.
    let admin = s.app.make_token("admin", Role::Admin).await;
    let r = http()
        .delete(format!("{}/api/v1/sessions/oidc:otto", s.app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ended: Value = r.json().await.unwrap();
    assert!(ended["ended"].as_u64().unwrap() >= 1, "{ended}");
    assert_eq!(me(&otto, &s).await.0, 401, "otto is signed out");
    assert_eq!(me(&vera, &s).await.0, 200, "nobody else is");
    let auditor = s.app.make_token("auditor", Role::Viewer).await;
    s.app.token = Some(auditor);
    let entries = s.app.audit(&format!("?rollout={id}")).await;
    let start = entries
        .iter()
        .find(|e| e["action"] == "start")
        .expect("a start entry");
    assert_eq!(start["actor"], "oidc:otto");
    let ended = s.app.audit("?action=sessions_ended").await;
    assert_eq!(
        (
            ended[0]["actor"].as_str(),
            ended[0]["detail"]["user"].as_str()
        ),
        (Some("token:admin"), Some("oidc:otto"))
    );
}
on_both_databases!(oidc_sign_in_end_to_end);

/// `rollgate serve` takes the identity provider from its flags (the client
/// secret from the environment, never a flag): the sign-in page offers it
/// and sends the browser to the provider with PKCE (S256), a state and a
/// nonce. Bad settings stop it before it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_the_identity_provider_from_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/login/oidc/callback");
    let idp = start_idp(&callback);
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("o.db").display());
    let command = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--watch-interval", "0", "--auth", "local"])
            .args([
                "--oidc-client-id",
                "rollgate",
                "--oidc-redirect-url",
                &callback,
            ])
            .args(extra)
            .env("ROLLGATE_PLANS", crate::common::repo_plans_dir())
            .env("DATABASE_URL", &database)
            .env("ROLLGATE_OIDC_CLIENT_SECRET", "rollgate-test-secret")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null());
        cmd
    };
    for (extra, says) in [
        (
            vec!["--oidc-issuer", "http://id.example.com"],
            "must be https://",
        ),
        (
            vec!["--oidc-issuer", &idp.issuer, "--oidc-role", "admins=root"],
            "unknown role",
        ),
        (vec!["--oidc-issuer", &idp.issuer], "--oidc-role"),
    ] {
        let out = command(&extra).output().unwrap();
        assert!(!out.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(!stderr.contains("rollgate-test-secret"), "{stderr}");
    }
    let child = command(&[
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-role",
        "rollgate-admins=admin,eng=viewer",
        "--oidc-scope",
        "profile",
    ])
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let server =
        crate::common::ServeProcess::started(child, format!("http://127.0.0.1:{port}")).await;
    let mut b = Browser::default();
    let login = b.get(&format!("{}/login", server.url)).await;
    assert!(login.body.contains("Sign in with your identity provider"));
    let begun = b
        .get(&format!("{}/login/oidc?next=/audit", server.url))
        .await;
    assert_eq!(begun.status, 303, "{}", begun.body);
    let to = url::Url::parse(begun.location.as_deref().unwrap()).unwrap();
    assert!(
        to.as_str().starts_with(&format!("{}/auth", idp.issuer)),
        "{to}"
    );
    let q: BTreeMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "rollgate");
    assert_eq!(q["redirect_uri"], callback);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].split(' ').any(|s| s == "openid") && q["scope"].contains("profile"));
    assert!(q["state"].len() >= 16 && q["nonce"].len() >= 16 && q["code_challenge"].len() >= 43);
    assert!(b.cookie(&server.url, "rollgate_oidc").is_some());
}

//! Sign-in against the real server (`--auth local`): who may reach every
//! route and page with every role and credential state, sessions (new id at
//! sign-in, idle expiry, sign-out), login throttling, form tokens (CSRF),
//! API tokens (shown once, hashed, expiring, revocable, last use), and the
//! audit actor of users, tokens and the watcher.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeDelta;
use rollgate::domain::auth::{SessionLimits, Throttle};
use rollgate::domain::user::Role;
use rollgate::web::auth::{AuthConfig, AuthMode, CSRF_COOKIE, SESSION_COOKIE};
use serde_json::{Value, json};

use crate::common::{Db, Options, TestApp, spawn_app_with};
use crate::on_both_databases;

const PASSWORD: &str = "correct horse battery staple";

async fn spawn_signed(db: Db, limits: SessionLimits, throttle: Throttle) -> TestApp {
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                limits,
                throttle,
                secure_cookies: false,
                proxy: None,
                oidc: None,
                allowed_hosts: vec![],
            },
            ..Options::default()
        },
    )
    .await;
    for (name, role) in [
        ("vera", Role::Viewer),
        ("otto", Role::Operator),
        ("ada", Role::Admin),
    ] {
        app.add_user(name, role, PASSWORD).await;
    }
    app
}

async fn spawn_local(db: Db) -> TestApp {
    spawn_signed(db, SessionLimits::default(), Throttle::default()).await
}

/// A browser without JavaScript: keeps cookies, never follows redirects,
/// and sends the form token the last page carried with each form.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    form_token: String,
}

struct Answer {
    status: u16,
    location: String,
    set_cookies: Vec<String>,
    body: String,
}

impl Browser {
    fn new(app: &TestApp) -> Browser {
        Browser {
            base: app.url.clone(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            form_token: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = pair.split_once('=').unwrap();
            if v.is_empty() {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        let body = resp.text().await.unwrap();
        if let Some(token) = form_token_in(&body) {
            self.form_token = token;
        } else if self.form_token.is_empty()
            && let Some(c) = self.cookies.get(CSRF_COOKIE)
        {
            self.form_token = c.clone();
        }
        Answer {
            status,
            location,
            set_cookies,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    /// Posts a form with this browser's form token.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let token = self.form_token.clone();
        let mut all = vec![("csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    async fn sign_in(&mut self, name: &str, password: &str) -> Answer {
        self.get("/login").await;
        self.post(
            "/login",
            &[("name", name), ("password", password), ("next", "/plans")],
        )
        .await
    }

    fn session(&self) -> Option<&String> {
        self.cookies.get(SESSION_COOKIE)
    }
}

/// The `csrf` hidden field of a page.
fn form_token_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_string())
}

async fn signed_in(app: &TestApp, name: &str) -> Browser {
    let mut b = Browser::new(app);
    let a = b.sign_in(name, PASSWORD).await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (303, "/plans"),
        "{}",
        a.body
    );
    b.get("/").await;
    b
}

/// An API token made by the admin `ada`, through the API.
async fn token(app: &TestApp, admin: &str, name: &str, role: &str, extra: Value) -> String {
    let mut body = json!({ "name": name, "role": role });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = app
        .http
        .post(format!("{}/api/v1/tokens", app.url))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["secret"].as_str().unwrap().to_string()
}

/// The first admin token, made the way an admin without one does: on the
/// database (as `rollgate token create` does).
async fn bootstrap_admin_token(app: &TestApp) -> String {
    app.make_token("bootstrap", Role::Admin).await
}

/// How a request is sent in the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cred {
    None,
    ExpiredSession,
    RevokedToken,
    ExpiredToken,
    Session(Role),
    Token(Role),
}

/// One route: method, path, a body (JSON for the API, form fields for
/// pages), the least role, and the status an allowed caller gets.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Value,
    need: Option<Role>,
    ok: u16,
}

fn routes() -> Vec<Route> {
    let r = |method, path, body: Value, need, ok| Route {
        method,
        path,
        body,
        need,
        ok,
    };
    use Role::*;
    vec![
        // Public.
        r("GET", "/healthz", Value::Null, None, 200),
        r("GET", "/readyz", Value::Null, None, 200),
        r("GET", "/metrics", Value::Null, None, 200),
        r("GET", "/api/v1/openapi.json", Value::Null, None, 200),
        r("GET", "/login", Value::Null, None, 200),
        r("GET", "/static/app.css", Value::Null, None, 200),
        // The API.
        r("GET", "/api/v1/me", Value::Null, Some(Viewer), 200),
        r("GET", "/api/v1/plans", Value::Null, Some(Viewer), 200),
        r(
            "GET",
            "/api/v1/plans/dixon-smart-repair",
            Value::Null,
            Some(Viewer),
            200,
        ),
        r(
            "POST",
            "/api/v1/plans/validate",
            json!("not toml ["),
            Some(Viewer),
            422,
        ),
        r(
            "POST",
            "/api/v1/plans/no-such-plan/preflight",
            json!({}),
            Some(Operator),
            404,
        ),
        r("GET", "/api/v1/rollouts", Value::Null, Some(Viewer), 200),
        r(
            "GET",
            "/api/v1/rollouts/999",
            Value::Null,
            Some(Viewer),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts",
            json!({ "plan": "no-such-plan" }),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/advance",
            json!({}),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/pause",
            json!({}),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/resume",
            json!({}),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/rollback",
            json!({ "reason": "t" }),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/abandon",
            json!({ "reason": "t" }),
            Some(Operator),
            404,
        ),
        r(
            "GET",
            "/api/v1/rollouts/999/approvals",
            Value::Null,
            Some(Viewer),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/approvals",
            json!({}),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/approvals/1/approve",
            json!({}),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/api/v1/rollouts/999/approvals/1/deny",
            json!({}),
            Some(Operator),
            404,
        ),
        r("GET", "/api/v1/audit", Value::Null, Some(Viewer), 200),
        r(
            "GET",
            "/api/v1/audit/verify",
            Value::Null,
            Some(Viewer),
            200,
        ),
        r(
            "GET",
            "/api/v1/audit/export",
            Value::Null,
            Some(Viewer),
            200,
        ),
        r("GET", "/api/v1/tokens", Value::Null, Some(Admin), 200),
        r(
            "POST",
            "/api/v1/tokens",
            json!({ "name": "x", "role": "root" }),
            Some(Admin),
            400,
        ),
        r(
            "DELETE",
            "/api/v1/tokens/no-such-token",
            Value::Null,
            Some(Admin),
            404,
        ),
        r("GET", "/api/v1/users", Value::Null, Some(Admin), 200),
        r(
            "POST",
            "/api/v1/users",
            json!({ "name": "x", "role": "root", "password": "long enough password" }),
            Some(Admin),
            400,
        ),
        r(
            "PUT",
            "/api/v1/users/no-such-user",
            json!({ "role": "viewer" }),
            Some(Admin),
            404,
        ),
        r(
            "DELETE",
            "/api/v1/users/no-such-user",
            Value::Null,
            Some(Admin),
            404,
        ),
        r(
            "DELETE",
            "/api/v1/sessions/token:ci",
            Value::Null,
            Some(Admin),
            400,
        ),
        // The pages.
        r("GET", "/", Value::Null, Some(Viewer), 200),
        r("GET", "/plans", Value::Null, Some(Viewer), 200),
        r(
            "GET",
            "/plans/dixon-smart-repair",
            Value::Null,
            Some(Viewer),
            200,
        ),
        r("GET", "/audit", Value::Null, Some(Viewer), 200),
        r("GET", "/rollouts/999", Value::Null, Some(Viewer), 404),
        r("GET", "/rollouts/999/pause", Value::Null, Some(Viewer), 404),
        r(
            "GET",
            "/start?plan=dixon-smart-repair",
            Value::Null,
            Some(Viewer),
            200,
        ),
        r("GET", "/admin/tokens", Value::Null, Some(Admin), 200),
        r("GET", "/admin/users", Value::Null, Some(Admin), 200),
        r(
            "POST",
            "/admin/users",
            json!([
                ["name", "x"],
                ["role", "root"],
                ["password", "long enough password"]
            ]),
            Some(Admin),
            400,
        ),
        r(
            "POST",
            "/admin/users/no-such-user/role",
            json!([["role", "viewer"]]),
            Some(Admin),
            404,
        ),
        r(
            "POST",
            "/admin/users/no-such-user/remove",
            json!([]),
            Some(Admin),
            404,
        ),
        r(
            "POST",
            "/admin/users/no-such-user/sign-out",
            json!([]),
            Some(Admin),
            200,
        ),
        r("GET", "/login/oidc", Value::Null, None, 404),
        r("GET", "/login/oidc/callback", Value::Null, None, 404),
        r("POST", "/audit/verify", json!([]), Some(Viewer), 303),
        r(
            "POST",
            "/rollouts/999/pause",
            json!([]),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/start",
            json!([["plan", "no-such-plan"], ["reason", "t"]]),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/demo/bad",
            json!([["rollout", "1"], ["flags", "X"]]),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/demo/good",
            json!([["rollout", "1"]]),
            Some(Operator),
            404,
        ),
        r(
            "POST",
            "/admin/tokens",
            json!([["name", "x"], ["role", "root"]]),
            Some(Admin),
            400,
        ),
        r(
            "POST",
            "/admin/tokens/no-such-token/revoke",
            json!([]),
            Some(Admin),
            404,
        ),
    ]
}

/// What `cred` should get from `route`.
fn expected(route: &Route, cred: Cred) -> u16 {
    let api = route.path.starts_with("/api/");
    let Some(need) = route.need else {
        return route.ok;
    };
    let role = match cred {
        Cred::Session(r) | Cred::Token(r) => r,
        Cred::None | Cred::ExpiredSession | Cred::RevokedToken | Cred::ExpiredToken => {
            return match (api, route.method) {
                (true, _) => 401,
                // A page view sends the browser to sign in; a form post is refused.
                (false, "GET") => 303,
                (false, _) => 401,
            };
        }
    };
    if role >= need { route.ok } else { 403 }
}

/// Every route and page × every role and credential state.
async fn every_route_and_role_gets_the_right_answer(db: Db) {
    let app = spawn_local(db).await;
    let admin = bootstrap_admin_token(&app).await;
    let mut tokens = BTreeMap::new();
    for role in Role::ALL {
        tokens.insert(
            role,
            token(
                &app,
                &admin,
                &format!("t-{}", role.as_str()),
                role.as_str(),
                json!({}),
            )
            .await,
        );
    }
    let revoked = token(&app, &admin, "revoked", "admin", json!({})).await;
    let r = app
        .http
        .delete(format!("{}/api/v1/tokens/revoked", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let expired = token(
        &app,
        &admin,
        "expired",
        "admin",
        json!({ "expires_in": "1s" }),
    )
    .await;
    // A session last used longer ago than the idle limit (30 minutes).
    let stale = signed_in(&app, "ada").await;
    sqlx::query("UPDATE sessions SET last_seen_at = $1")
        .bind(rollgate::store::timestamp(
            chrono::Utc::now() - TimeDelta::minutes(31),
        ))
        .execute(&app.raw_db().await)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sessions = BTreeMap::new();
    for (role, name) in [
        (Role::Viewer, "vera"),
        (Role::Operator, "otto"),
        (Role::Admin, "ada"),
    ] {
        sessions.insert(role, signed_in(&app, name).await);
    }

    // Every path the API documents is in the matrix.
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let listed: Vec<_> = routes().iter().map(|r| (r.method, r.path)).collect();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            let covered = listed.iter().any(|(m, p)| {
                *m == method
                    && p.split('?').next().unwrap().split('/').count() == path.split('/').count()
                    && path
                        .split('/')
                        .zip(p.split('/'))
                        .all(|(a, b)| a == b || a.starts_with('{'))
            });
            assert!(covered, "{method} {path} is missing from the matrix");
        }
    }

    let mut creds = vec![
        Cred::None,
        Cred::ExpiredSession,
        Cred::RevokedToken,
        Cred::ExpiredToken,
    ];
    for role in Role::ALL {
        creds.push(Cred::Session(role));
        creds.push(Cred::Token(role));
    }
    let mut failures = Vec::new();
    for cred in creds {
        for route in routes() {
            let want = expected(&route, cred);
            let got = send(
                &app, &route, cred, &tokens, &revoked, &expired, &stale, &sessions,
            )
            .await;
            if got != want {
                failures.push(format!(
                    "{cred:?} {} {}: got {got}, want {want}",
                    route.method, route.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
on_both_databases!(every_route_and_role_gets_the_right_answer);

#[allow(clippy::too_many_arguments)]
async fn send(
    app: &TestApp,
    route: &Route,
    cred: Cred,
    tokens: &BTreeMap<Role, String>,
    revoked: &str,
    expired: &str,
    stale: &Browser,
    sessions: &BTreeMap<Role, Browser>,
) -> u16 {
    let browser = match cred {
        Cred::Session(role) => Some(&sessions[&role]),
        Cred::ExpiredSession => Some(stale),
        _ => None,
    };
    let bearer = match cred {
        Cred::Token(role) => Some(tokens[&role].as_str()),
        Cred::RevokedToken => Some(revoked),
        Cred::ExpiredToken => Some(expired),
        _ => None,
    };
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{}{}", app.url, route.path);
    let method = reqwest::Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut req = http.request(method, url);
    if let Some(b) = browser {
        req = req
            .header("cookie", b.cookie_header())
            .header("x-csrf-token", b.form_token.clone());
    }
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    match &route.body {
        Value::Null => {}
        Value::String(text) => req = req.body(text.clone()),
        Value::Array(fields) => {
            let token = browser.map(|b| b.form_token.clone()).unwrap_or_default();
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("csrf", &token);
            for f in fields {
                form.append_pair(f[0].as_str().unwrap(), f[1].as_str().unwrap());
            }
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form.finish());
        }
        body => req = req.json(body),
    }
    req.send().await.unwrap().status().as_u16()
}

/// A session id planted before sign-in is worth nothing: sign-in always
/// makes a new one; signing out ends it on the server, not only in the
/// browser.
async fn sign_in_gets_a_new_session_and_sign_out_ends_it(db: Db) {
    let app = spawn_local(db).await;
    let mut b = signed_in(&app, "otto").await;
    let first = b.session().unwrap().clone();
    let cookie = b.sign_in("otto", PASSWORD).await;
    let set = cookie
        .set_cookies
        .iter()
        .find(|c| c.starts_with(SESSION_COOKIE))
        .unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let second = b.session().unwrap().clone();
    assert_ne!(first, second, "a new session id at sign-in");
    // The session from before that sign-in no longer works.
    let mut old = Browser::new(&app);
    old.cookies.insert(SESSION_COOKIE.into(), first);
    assert_eq!(old.get("/api/v1/me").await.status, 401);
    // An attacker's planted id is replaced, not adopted.
    let mut victim = Browser::new(&app);
    victim.cookies.insert(SESSION_COOKIE.into(), "f".repeat(64));
    victim.sign_in("vera", PASSWORD).await;
    assert_ne!(victim.session().unwrap(), &"f".repeat(64));
    let me: Value = serde_json::from_str(&victim.get("/api/v1/me").await.body).unwrap();
    assert_eq!(
        (me["actor"].as_str(), me["role"].as_str()),
        (Some("user:vera"), Some("viewer"))
    );
    // Sign out: the cookie is cleared and the id is dead on the server.
    b.get("/").await;
    let out = b.post("/logout", &[]).await;
    assert_eq!((out.status, out.location.as_str()), (303, "/login"));
    assert!(b.session().is_none());
    let mut replay = Browser::new(&app);
    replay.cookies.insert(SESSION_COOKIE.into(), second);
    assert_eq!(
        replay.get("/").await.status,
        303,
        "the old id sends to sign-in"
    );
    // Database rows hold hashes only.
    let pool = app.raw_db().await;
    use sqlx::Row;
    let rows = sqlx::query("SELECT id_hash FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mine = victim.session().unwrap();
    assert!(rows.iter().all(|r| r.get::<String, _>("id_hash") != *mine));
    assert!(!rows.is_empty());
    // Signing out of a session that expired meanwhile (the page's form
    // token is the dead session's): the cookie is cleared, no 403.
    victim.get("/").await;
    sqlx::query("UPDATE sessions SET last_seen_at = $1")
        .bind(rollgate::store::timestamp(
            chrono::Utc::now() - TimeDelta::minutes(31),
        ))
        .execute(&app.raw_db().await)
        .await
        .unwrap();
    let out = victim.post("/logout", &[]).await;
    assert_eq!((out.status, out.location.as_str()), (303, "/login"));
    assert!(victim.session().is_none());
}
on_both_databases!(sign_in_gets_a_new_session_and_sign_out_ends_it);

/// Wrong passwords are throttled per account (even with the right password
/// afterwards) and per address; one answer for unknown users and wrong
/// passwords.
async fn sign_in_is_throttled_per_account_and_per_address(db: Db) {
    let app = spawn_signed(
        db,
        SessionLimits::default(),
        Throttle {
            per_account_and_address: 3,
            per_account: 10,
            per_address: 6,
            window: TimeDelta::minutes(15),
        },
    )
    .await;
    let mut b = Browser::new(&app);
    let wrong = b.sign_in("otto", "not the password at all").await;
    let unknown = b.sign_in("nobody", "not the password at all").await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    assert!(wrong.body.contains("wrong user name or password"));
    assert!(unknown.body.contains("wrong user name or password"));
    for _ in 0..2 {
        assert_eq!(b.sign_in("otto", "still wrong, sadly").await.status, 401);
    }
    let held = b.sign_in("otto", PASSWORD).await;
    assert_eq!(
        held.status, 429,
        "the right password is not even checked now"
    );
    assert!(
        held.body.contains("too many failed sign-ins"),
        "{}",
        held.body
    );
    assert!(b.session().is_none());
    // Another account from the same address: fine until the address's
    // limit (6 failures: 3 otto + 1 nobody so far).
    assert_eq!(b.sign_in("vera", PASSWORD).await.status, 303);
    for _ in 0..2 {
        assert_eq!(b.sign_in("ada", "nope nope nope nope").await.status, 401);
    }
    assert_eq!(
        b.sign_in("ada", PASSWORD).await.status,
        429,
        "the address is held"
    );
    // Nothing about the passwords reached the database.
    let pool = app.raw_db().await;
    use sqlx::Row;
    let keys: Vec<String> = sqlx::query("SELECT throttle_key FROM login_failures")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("throttle_key"))
        .collect();
    // Typed names (a password typed there?) are kept only as keyed
    // hashes; addresses as they are.
    let hashed = |k: &str| k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(
        keys.iter().all(|k| match k.split_once(':') {
            Some(("pair" | "name", h)) => hashed(h),
            Some(("addr", a)) => a == "127.0.0.1",
            _ => false,
        }),
        "{keys:?}"
    );
}
on_both_databases!(sign_in_is_throttled_per_account_and_per_address);

/// Guesses from one address hold the name there only (the real user signs
/// in from elsewhere) until the name's all-address limit; a name of nobody
/// is throttled exactly like a real one, so the answer never tells which
/// names exist; concurrent guesses all count.
async fn throttling_holds_the_guesser_not_the_user_and_hides_which_names_exist(db: Db) {
    use rollgate::service::SignInError;
    let throttle = Throttle {
        per_account_and_address: 2,
        per_account: 4,
        per_address: 100,
        window: TimeDelta::minutes(15),
    };
    let app = spawn_signed(db, SessionLimits::default(), throttle).await;
    let service = app.app.as_ref().unwrap().state.service.clone();
    let limits = SessionLimits::default();
    let now = chrono::Utc::now();
    let attacker: std::net::IpAddr = "192.0.2.66".parse().unwrap();
    let office: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let sign_in = |name: &'static str, password: &'static str, from| {
        let service = service.clone();
        async move {
            service
                .sign_in_password(name, password, from, limits, throttle, now)
                .await
        }
    };
    let kinds = |name: &'static str| {
        let sign_in = &sign_in;
        async move {
            let mut seen = Vec::new();
            for _ in 0..3 {
                seen.push(match sign_in(name, "guess guess guess", attacker).await {
                    Err(SignInError::Wrong) => "wrong",
                    Err(SignInError::Throttled { .. }) => "held",
                    other => panic!("{other:?}"),
                });
            }
            seen
        }
    };
    // A real name and a name of nobody: the same answers, in the same order.
    assert_eq!(kinds("otto").await, ["wrong", "wrong", "held"]);
    assert_eq!(kinds("nobody").await, ["wrong", "wrong", "held"]);
    // Held from the attacker's address, even with the right password...
    assert!(matches!(
        sign_in("otto", PASSWORD, attacker).await,
        Err(SignInError::Throttled { .. })
    ));
    // ...but not from the office.
    assert!(sign_in("otto", PASSWORD, office).await.is_ok());
    // Success forgave the name's failures (the attacker's 2 no longer
    // count, or the third guess below would be held). Guesses spread over
    // addresses meet the name's own limit (4) though no address is held.
    for i in 0..4 {
        let from: std::net::IpAddr = format!("203.0.113.{i}").parse().unwrap();
        assert!(matches!(
            sign_in("otto", "spread guess", from).await,
            Err(SignInError::Wrong)
        ));
    }
    assert!(matches!(
        sign_in("otto", PASSWORD, office).await,
        Err(SignInError::Throttled { .. })
    ));
    // Ten concurrent guesses at a fresh name from one address: at most the
    // limit (2) get their password checked.
    let guesses = (0..10).map(|_| sign_in("vera", "racing guess", attacker));
    let results = futures_util::future::join_all(guesses).await;
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(SignInError::Wrong)))
        .count();
    assert!(checked <= 2, "{checked} concurrent guesses were checked");
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(SignInError::Wrong | SignInError::Throttled { .. })))
    );
}
on_both_databases!(throttling_holds_the_guesser_not_the_user_and_hides_which_names_exist);

/// Admins manage users through the API: added with a password (hashed,
/// never shown), given another role (effective on the next request),
/// removed (sessions end at once); every change audited with who made it;
/// no change may leave rollgate without an admin; bad input changes nothing.
async fn admins_manage_users_through_the_api(db: Db) {
    let app = spawn_local(db).await;
    let admin = bootstrap_admin_token(&app).await;
    let call = |method: &str, path: &str, body: Value| {
        let req = app
            .http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", app.url),
            )
            .bearer_auth(&admin);
        let req = if body.is_null() { req } else { req.json(&body) };
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let secret = "a long enough password for mo";
    let (s, made) = call(
        "POST",
        "/api/v1/users",
        json!({ "name": "mo", "role": "viewer", "password": secret }),
    )
    .await;
    assert_eq!(s, 201, "{made}");
    assert_eq!(
        (made["name"].as_str(), made["role"].as_str()),
        (Some("mo"), Some("viewer"))
    );
    for (body, want) in [
        (
            json!({ "name": "mo", "role": "viewer", "password": secret }),
            409,
        ),
        (
            json!({ "name": "Mo!", "role": "viewer", "password": secret }),
            400,
        ),
        (
            json!({ "name": "pat", "role": "viewer", "password": "short" }),
            400,
        ),
        (
            json!({ "name": "pat", "role": "root", "password": secret }),
            400,
        ),
        (json!({ "name": "pat", "role": "viewer" }), 400),
    ] {
        assert_eq!(
            call("POST", "/api/v1/users", body.clone()).await.0,
            want,
            "{body}"
        );
    }
    let (_, list) = call("GET", "/api/v1/users", Value::Null).await;
    let names: Vec<&str> = list["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ada", "mo", "otto", "vera"], "pat was never added");
    assert!(!list.to_string().contains("argon2"), "no hashes listed");

    // mo signs in, is promoted (at once, same session), then removed (the
    // session ends with the user).
    let mut mo = Browser::new(&app);
    assert_eq!(mo.sign_in("mo", secret).await.status, 303);
    let me = |b: &Browser| {
        let http = b.http.clone();
        let url = format!("{}/api/v1/me", b.base);
        let cookies: Vec<String> = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        async move {
            let r = http
                .get(url)
                .header("cookie", cookies.join("; "))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(me(&mo).await.1["role"], "viewer");
    assert_eq!(
        call("PUT", "/api/v1/users/mo", json!({ "role": "operator" }))
            .await
            .0,
        204
    );
    assert_eq!(me(&mo).await.1["role"], "operator");
    assert_eq!(
        call("PUT", "/api/v1/users/mo", json!({ "role": "boss" }))
            .await
            .0,
        400
    );
    assert_eq!(call("DELETE", "/api/v1/users/mo", Value::Null).await.0, 204);
    assert_eq!(me(&mo).await.0, 401, "removed: the session is gone");
    assert_eq!(call("DELETE", "/api/v1/users/mo", Value::Null).await.0, 404);

    // The only admin can be neither demoted nor removed.
    let (s, body) = call("PUT", "/api/v1/users/ada", json!({ "role": "operator" })).await;
    assert_eq!(s, 409, "{body}");
    assert!(body.to_string().contains("no admin"), "{body}");
    assert_eq!(
        call("DELETE", "/api/v1/users/ada", Value::Null).await.0,
        409
    );
    assert_eq!(
        call("PUT", "/api/v1/users/otto", json!({ "role": "admin" }))
            .await
            .0,
        204
    );
    assert_eq!(
        call("PUT", "/api/v1/users/ada", json!({ "role": "operator" }))
            .await
            .0,
        204
    );

    let (_, audit) = call("GET", "/api/v1/audit?limit=100", Value::Null).await;
    let entries = audit["entries"].as_array().unwrap().clone();
    let by_action = |a: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == a)
            .cloned()
            .collect()
    };
    let added = by_action("user_added");
    assert!(
        added
            .iter()
            .any(|e| e["detail"]["user"] == "mo" && e["actor"] == "token:bootstrap"),
        "{added:?}"
    );
    assert_eq!(
        by_action("user_role_changed").len(),
        3,
        "the refused change is not recorded"
    );
    assert_eq!(by_action("user_removed")[0]["detail"]["user"], "mo");
    assert!(
        !serde_json::to_string(&entries).unwrap().contains(secret),
        "no password in the audit log"
    );
}
on_both_databases!(admins_manage_users_through_the_api);

/// The same through the dashboard's Users page (admins only): add, set a
/// role, remove; the last admin stays; the password never shows.
async fn admins_manage_users_on_the_dashboard(db: Db) {
    let app = spawn_local(db).await;
    let mut ada = signed_in(&app, "ada").await;
    let page = ada.get("/admin/users").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("otto") && page.body.contains("Add a user"));
    let secret = "a long enough password for kim";
    let added = ada
        .post(
            "/admin/users",
            &[("name", "kim"), ("role", "operator"), ("password", secret)],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(
        added.body.contains("kim added as operator"),
        "{}",
        added.body
    );
    assert!(!added.body.contains(secret));
    let short = ada
        .post(
            "/admin/users",
            &[("name", "lee"), ("role", "viewer"), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, 400);
    assert!(short.body.contains("too short"), "{}", short.body);
    let set = ada
        .post("/admin/users/kim/role", &[("role", "viewer")])
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert!(set.body.contains("kim is now viewer"));
    let mut kim = Browser::new(&app);
    assert_eq!(kim.sign_in("kim", secret).await.status, 303);
    kim.get("/").await;
    assert_eq!(
        kim.get("/admin/users").await.status,
        403,
        "viewers do not manage users"
    );
    let out = ada.post("/admin/users/kim/sign-out", &[]).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(
        out.body
            .contains("kim is signed out everywhere; sessions ended: 1."),
        "{}",
        out.body
    );
    assert_eq!(kim.get("/").await.status, 303, "kim must sign in again");
    assert_eq!(kim.sign_in("kim", secret).await.status, 303);
    kim.get("/").await;
    let gone = ada.post("/admin/users/kim/remove", &[]).await;
    assert_eq!((gone.status, gone.location.as_str()), (303, "/admin/users"));
    assert_eq!(kim.get("/").await.status, 303, "kim's session ended");
    let last = ada.post("/admin/users/ada/remove", &[]).await;
    assert_eq!(last.status, 409, "{}", last.body);
    assert!(last.body.contains("no admin"), "{}", last.body);
}
on_both_databases!(admins_manage_users_on_the_dashboard);

/// A form post without its form token (or with another session's) is
/// refused and changes nothing; the same form with it works.
async fn forms_without_their_token_are_refused(db: Db) {
    let mut app = spawn_local(db).await;
    let admin = bootstrap_admin_token(&app).await;
    app.token = Some(admin.clone());
    let started = app
        .http
        .post(format!("{}/api/v1/rollouts", app.url))
        .bearer_auth(&admin)
        .json(&json!({ "plan": "dixon-smart-repair", "reason": "csrf test", "force": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 201);
    let id = started.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let mut otto = signed_in(&app, "otto").await;
    let other = signed_in(&app, "ada").await;
    let path = format!("/rollouts/{id}/pause");
    let none = otto.post_raw(&path, &[("reason", "x")]).await;
    assert_eq!(none.status, 403, "{}", none.body);
    assert!(none.body.contains("form token"));
    let foreign = otto
        .post_raw(&path, &[("csrf", &other.form_token), ("reason", "x")])
        .await;
    assert_eq!(foreign.status, 403);
    // A signed-in browser's API change needs the token in a header.
    let api = app
        .http
        .post(format!("{}/api/v1/rollouts/{id}/pause", app.url))
        .header("cookie", otto.cookie_header())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    assert_eq!(app.rollout(id).await["state"], "active", "nothing changed");
    // The sign-in form itself needs its token.
    let mut fresh = Browser::new(&app);
    let login = fresh
        .post_raw("/login", &[("name", "otto"), ("password", PASSWORD)])
        .await;
    assert_eq!(login.status, 403);
    assert!(fresh.session().is_none());
    // With the page's token, the pause goes through, as otto.
    otto.get(&path).await;
    let ok = otto.post(&path, &[("reason", "with token")]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let r = app.rollout(id).await;
    assert_eq!(r["state"], "paused");
    let entries = app.audit(&format!("?rollout={id}&action=pause")).await;
    assert_eq!(entries[0]["actor"], "user:otto");
}
on_both_databases!(forms_without_their_token_are_refused);

/// The audit log names the real actor: a user (how they signed in), a
/// token by name, the watcher; a claimed name is refused, never recorded.
async fn the_audit_log_names_the_real_actor(db: Db) {
    let mut app = spawn_local(db).await;
    let admin = bootstrap_admin_token(&app).await;
    app.token = Some(admin.clone());
    let ci = token(&app, &admin, "ci-deploy", "operator", json!({})).await;
    let api = |path: &str, body: Value, bearer: &str| {
        app.http
            .post(format!("{}{path}", app.url))
            .bearer_auth(bearer)
            .json(&body)
            .send()
    };
    let r = api(
        "/api/v1/rollouts",
        json!({ "plan": "dixon-smart-repair", "actor": "mallory", "reason": "test", "force": true }),
        &ci,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400, "a claimed name is refused");
    let r = api(
        "/api/v1/rollouts",
        json!({ "plan": "dixon-smart-repair", "reason": "ci", "force": true }),
        &ci,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let mut otto = signed_in(&app, "otto").await;
    let path = format!("/rollouts/{id}/advance");
    otto.get(&path).await;
    // The form's actor field is not where the actor comes from.
    let a = otto
        .post(
            &path,
            &[("reason", "go"), ("force", "on"), ("actor", "mallory")],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let r = api(&format!("/api/v1/rollouts/{id}/pause"), json!({}), &ci)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The watcher acts on a breach: its own name.
    app.state()
        .service
        .command(
            &rollgate::domain::Principal::Watcher,
            rollgate::domain::RolloutId(id),
            rollgate::rollout::Command::Rollback { to: None },
            rollgate::service::Ask {
                reason: Some("guardrail".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actors: Vec<(String, String)> = app
        .audit(&format!("?rollout={id}"))
        .await
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let of = |action: &str| {
        actors
            .iter()
            .find(|(a, _)| a == action)
            .map(|(_, who)| who.as_str())
            .unwrap_or_else(|| panic!("no {action} in {actors:?}"))
    };
    assert_eq!(of("start"), "token:ci-deploy");
    assert_eq!(of("advance"), "user:otto");
    assert_eq!(of("pause"), "token:ci-deploy");
    assert_eq!(of("rollback"), "rollgate/watcher");
    assert!(
        !actors.iter().any(|(_, who)| who.contains("mallory")),
        "{actors:?}"
    );
    // Token creation is audited, without the secret.
    let made = app.audit("?action=token_created").await;
    assert!(made.iter().any(|e| e["detail"]["token"] == "ci-deploy"));
    let log = serde_json::to_string(&app.audit("").await).unwrap();
    assert!(
        !log.contains(&ci) && !log.contains(&admin),
        "no token in the audit log"
    );
}
on_both_databases!(the_audit_log_names_the_real_actor);

/// Tokens: the secret is in the creating answer only; the list shows role,
/// expiry and last use; revoking stops it at once; an expired one stops by
/// itself; only hashes are stored; a viewer token reads but cannot act.
async fn api_tokens_are_shown_once_hashed_and_revocable(db: Db) {
    let app = spawn_local(db).await;
    let admin = bootstrap_admin_token(&app).await;
    let viewer = token(
        &app,
        &admin,
        "dash",
        "viewer",
        json!({ "expires_in": "30d" }),
    )
    .await;
    assert!(viewer.starts_with("rgt_"));
    let me = app
        .http
        .get(format!("{}/api/v1/me", app.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(me["actor"], "token:dash");
    let act = app
        .http
        .post(format!("{}/api/v1/rollouts", app.url))
        .bearer_auth(&viewer)
        .json(&json!({ "plan": "dixon-smart-repair", "reason": "test", "force": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(act.status(), 403);
    let list: Value = app
        .http
        .get(format!("{}/api/v1/tokens", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let dash = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "dash")
        .unwrap();
    assert_eq!(dash["role"], "viewer");
    assert!(
        dash["expires_at"].is_string() && dash["last_used_at"].is_string(),
        "{dash}"
    );
    assert!(
        !list.to_string().contains(&viewer[4..]),
        "no secret in the list"
    );
    let duplicate = app
        .http
        .post(format!("{}/api/v1/tokens", app.url))
        .bearer_auth(&admin)
        .json(&json!({ "name": "dash", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    // An expiry too far out is a typo: refused, nothing made.
    for (field, value) in [
        ("expires_in", "4000d"),
        ("expires_at", "9999-12-31T00:00:00Z"),
    ] {
        let far = app
            .http
            .post(format!("{}/api/v1/tokens", app.url))
            .bearer_auth(&admin)
            .json(&json!({ "name": "forever", "role": "viewer", field: value }))
            .send()
            .await
            .unwrap();
        assert_eq!(far.status(), 400, "{field}");
        let why = far.json::<Value>().await.unwrap();
        assert!(why.to_string().contains("within 10 years"), "{why}");
    }
    // The answer that carries a secret is never cached.
    let fresh = app
        .http
        .post(format!("{}/api/v1/tokens", app.url))
        .bearer_auth(&admin)
        .json(&json!({ "name": "cached", "role": "viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 201);
    assert_eq!(fresh.headers()["cache-control"], "no-store");
    let public = app
        .http
        .get(format!("{}/static/app.css", app.url))
        .send()
        .await
        .unwrap();
    assert_ne!(
        public
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "public assets may be cached"
    );
    let pool = app.raw_db().await;
    use sqlx::Row;
    let hashes: Vec<String> = sqlx::query("SELECT token_hash FROM api_tokens")
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("token_hash"))
        .collect();
    assert!(
        hashes
            .iter()
            .all(|h| *h != viewer && !h.contains(&viewer[4..]))
    );
    // Revoked: refused at once.
    let gone = app
        .http
        .delete(format!("{}/api/v1/tokens/dash", app.url))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
    let after = app
        .http
        .get(format!("{}/api/v1/rollouts", app.url))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert!(after.text().await.unwrap().contains("revoked"));
    // The admin page lists it as revoked, and its form makes a token shown once.
    let mut ada = signed_in(&app, "ada").await;
    let page = ada.get("/admin/tokens").await;
    assert!(page.body.contains("dash") && page.body.contains("revoked"));
    let made = ada
        .post(
            "/admin/tokens",
            &[
                ("name", "from-page"),
                ("role", "operator"),
                ("expires_in", "1h"),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert!(made.body.contains("shown this once"));
    let again = ada.get("/admin/tokens").await;
    assert!(again.body.contains("from-page") && !again.body.contains("rgt_"));
}
on_both_databases!(api_tokens_are_shown_once_hashed_and_revocable);

async fn spawn_behind_proxy(db: Db, proxy: std::net::IpAddr) -> TestApp {
    let app = spawn_app_with(
        db,
        Options {
            auth: AuthConfig {
                mode: AuthMode::Local,
                proxy: Some(rollgate::web::auth::ProxyTrust {
                    header: axum::http::HeaderName::from_static("x-forwarded-user"),
                    from: vec![proxy],
                }),
                ..AuthConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    app.add_user("otto", Role::Operator, PASSWORD).await;
    app.add_user("vera", Role::Viewer, PASSWORD).await;
    app
}

/// An authenticating proxy's identity header is believed from the proxy's
/// address only, for rollgate's own users with their own roles; the audit
/// actor says the proxy vouched (`proxy:NAME`); changes still need the
/// form token, as a browser is behind it.
async fn a_trusted_proxy_names_the_user(db: Db) {
    let app = spawn_behind_proxy(db, "127.0.0.1".parse().unwrap()).await;
    let as_user = |user: &str, path: &str| {
        app.http
            .post(format!("{}{path}", app.url))
            .header("x-forwarded-user", user)
    };
    let me: Value = app
        .http
        .get(format!("{}/api/v1/me", app.url))
        .header("x-forwarded-user", "otto")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["actor"].as_str(), me["role"].as_str()),
        (Some("proxy:otto"), Some("operator"))
    );
    let start = json!({ "plan": "dixon-smart-repair", "reason": "via proxy", "force": true });
    // A browser behind the proxy: no form token, no change.
    let r = as_user("otto", "/api/v1/rollouts")
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // With the browser's double-submit token it goes through.
    let token = "a".repeat(64);
    let r = as_user("otto", "/api/v1/rollouts")
        .header("cookie", format!("{CSRF_COOKIE}={token}"))
        .header("x-csrf-token", &token)
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = as_user("vera", "/api/v1/rollouts/1/pause")
        .header("cookie", format!("{CSRF_COOKIE}={token}"))
        .header("x-csrf-token", &token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "vera is a viewer here");
    let unknown = as_user("mallory", "/api/v1/rollouts")
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("not a rollgate user")
    );
    let bad = as_user("Robert'); DROP", "/api/v1/rollouts")
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    let mut app = app;
    app.token = Some(bootstrap_admin_token(&app).await);
    assert_eq!(app.audit("?action=start").await[0]["actor"], "proxy:otto");
}
on_both_databases!(a_trusted_proxy_names_the_user);

/// From any other address the header means nothing.
async fn an_identity_header_from_elsewhere_is_ignored(db: Db) {
    let app = spawn_behind_proxy(db, "192.0.2.10".parse().unwrap()).await;
    let r = app
        .http
        .get(format!("{}/api/v1/rollouts", app.url))
        .header("x-forwarded-user", "otto")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
on_both_databases!(an_identity_header_from_elsewhere_is_ignored);

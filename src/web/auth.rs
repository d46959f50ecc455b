//! Who is calling, and may they: one middleware in front of every route
//! finds the caller (an API token in `Authorization: Bearer`, or a session
//! cookie), checks the role the route needs (`domain::auth::required_access`)
//! and the form token of every cookie-borne change (CSRF), and hands the
//! handlers a `Caller`. The audit actor comes from it, never from a name in
//! the request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::AppState;
use super::error::ApiError;
use crate::domain::Principal;
use crate::domain::auth::{self, Access, SessionLimits, Throttle};
use crate::domain::text::InputError;
use crate::domain::user::Role;
use crate::service::TokenCheck;

/// The session cookie: the session id, HttpOnly, SameSite=Strict.
pub const SESSION_COOKIE: &str = "rollgate_session";
/// The form token of a browser that is not signed in (the sign-in form,
/// and every form while sign-in is off): double-submit, compared with the
/// form's `csrf` field.
pub const CSRF_COOKIE: &str = "rollgate_csrf";
/// The form field that carries the form token.
pub const CSRF_FIELD: &str = "csrf";
/// The header a browser script sends the session's form token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether anyone must sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Nobody signs in (loopback or a trusted network only); names are
    /// claimed.
    #[default]
    None,
    /// Users sign in with passwords; automation uses API tokens.
    Local,
}

/// How sign-in is set up.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub limits: SessionLimits,
    pub throttle: Throttle,
    /// Cookies only over HTTPS (`Secure`): on whenever browsers reach
    /// rollgate through TLS.
    pub secure_cookies: bool,
    /// Trust a user name in a header set by an authenticating reverse
    /// proxy, from these addresses only. Off by default.
    pub proxy: Option<ProxyTrust>,
    /// Sign-in through the company's identity provider (OIDC), besides
    /// local users. Off unless configured.
    pub oidc: Option<Arc<crate::oidc::OidcProvider>>,
    /// With sign-in off, DNS names requests may be addressed to besides
    /// localhost and IP addresses (e.g. behind a proxy that keeps `Host`).
    pub allowed_hosts: Vec<String>,
}

impl AuthConfig {
    /// A cookie's name: with `__Host-` in front over HTTPS, which browsers
    /// accept only with Secure, Path=/ and no Domain, so no sibling
    /// subdomain can plant a session or form-token cookie.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_string()
        }
    }
}

/// An authenticating reverse proxy rollgate believes.
#[derive(Debug, Clone)]
pub struct ProxyTrust {
    /// The header that names the user (e.g. `x-forwarded-user`).
    pub header: axum::http::HeaderName,
    /// The proxy's own addresses: the header from anyone else is ignored.
    pub from: Vec<IpAddr>,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq)]
pub enum Identity {
    /// Sign-in is off: whoever calls may claim a name.
    Open,
    /// Sign-in is on and no credential came with the request.
    Anonymous,
    /// A signed-in browser.
    Session { user: String, via: String },
    /// A user named by a trusted authenticating proxy.
    Proxy { user: String },
    /// An API token.
    Token { name: String },
}

/// The caller of a request, as the middleware found it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// What they may do (`Admin` while sign-in is off: everything).
    pub role: Role,
    /// The token the caller's forms must carry: the session's, or the
    /// browser's double-submit cookie.
    pub form_token: String,
    /// `form_token` is new: the answer sets it as the CSRF cookie.
    new_form_cookie: bool,
}

impl Caller {
    /// The principal acting for this caller. A signed-in caller is who they
    /// signed in as; a claimed name is refused unless it is that very
    /// actor. Only while sign-in is off does a claimed name count.
    pub fn principal(&self, claimed: Option<&str>) -> Result<Principal, InputError> {
        let claimed = claimed.map(str::trim).filter(|c| !c.is_empty());
        let signed_in = match &self.identity {
            Identity::Open => return Principal::operator(claimed),
            Identity::Anonymous => {
                return Err(InputError("sign in first".into()));
            }
            Identity::Session { user, via } if via == "oidc" => Principal::oidc_user(user),
            Identity::Session { user, .. } => Principal::user(user),
            Identity::Proxy { user } => Principal::proxy_user(user),
            Identity::Token { name } => Principal::token(name),
        };
        match claimed {
            Some(name) if name != signed_in.actor() => Err(InputError(format!(
                "\"actor\" is who you signed in as ({}); leave it out",
                signed_in.actor()
            ))),
            _ => Ok(signed_in),
        }
    }

    /// The name shown in the page header, when signed in.
    pub fn shown_name(&self) -> Option<String> {
        match &self.identity {
            Identity::Session { .. } | Identity::Token { .. } | Identity::Proxy { .. } => {
                self.principal(None).ok().map(|p| p.actor().to_string())
            }
            Identity::Open | Identity::Anonymous => None,
        }
    }

    pub fn signed_in(&self) -> bool {
        matches!(
            self.identity,
            Identity::Session { .. } | Identity::Token { .. } | Identity::Proxy { .. }
        )
    }

    pub fn may(&self, role: Role) -> bool {
        self.role >= role && self.identity != Identity::Anonymous
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("a route runs without the sign-in layer".into()))
    }
}

tokio::task_local! {
    /// The caller of the request being handled, for the page chrome
    /// (signed-in name, form token); set by `authenticate`.
    static CURRENT: Caller;
}

/// The caller of the request this task is handling (an open caller outside
/// one, e.g. in a unit test of a template).
pub fn current() -> Caller {
    CURRENT.try_with(Clone::clone).unwrap_or_else(|_| Caller {
        identity: Identity::Open,
        role: Role::Admin,
        form_token: String::new(),
        new_form_cookie: false,
    })
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, whole site; `Secure`
/// when configured; `max_age` seconds (0 clears it).
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    set_cookie_same_site(name, value, max_age, secure, "Strict")
}

/// [`set_cookie`] with another SameSite policy.
pub fn set_cookie_same_site(
    name: &str,
    value: &str,
    max_age: i64,
    secure: bool,
    same_site: &str,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a Host header names this machine without DNS: an IP address or
/// localhost (with any port).
pub fn names_this_machine(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[') {
        return v6
            .split(']')
            .next()
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = without_port(host)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<Ipv4Addr>().is_ok()
}

/// Whether a Host header (with or without a port) is `name`.
fn host_is(host: &str, name: &str) -> bool {
    without_port(host)
        .trim_end_matches('.')
        .eq_ignore_ascii_case(name.trim_end_matches('.'))
}

/// A Host header's name without its `:PORT` (an IPv4 address or a DNS
/// name; bracketed IPv6 is handled by the callers).
fn without_port(host: &str) -> &str {
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(name, _)| name)
}

/// The host a request is addressed to: its `Host` header, or (HTTP/2)
/// the `:authority` that lands in the URI.
pub fn request_host(req: &Request) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// The client's address, for throttling (the socket's peer; an IPv4
/// address on a dual-stack socket as plain IPv4).
pub fn client_address(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| {
            a.ip().to_canonical()
        })
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// An answer for a caller who must sign in: 401 for the API (with what was
/// wrong with the credential), the sign-in page for a page view.
fn sign_in_first(api: bool, method: &Method, path_and_query: &str, why: &str) -> Response {
    if api {
        let mut resp = ApiError::Unauthorized(why.to_string()).into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return resp;
    }
    if is_safe(method) {
        let next =
            url::form_urlencoded::byte_serialize(path_and_query.as_bytes()).collect::<String>();
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        format!("{why}: sign in at /login, then try again"),
    )
        .into_response()
}

/// What the request's credential says, or the answer refusing it.
async fn identify(
    app: &AppState,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<(Identity, Role, Option<String>), String> {
    let now = Utc::now();
    if let Some(proxy) = &app.auth.proxy
        && let Some(value) = headers.get(&proxy.header)
    {
        if proxy.from.contains(&peer) {
            let user = value
                .to_str()
                .map(str::trim)
                .map_err(|_| format!("the proxy's {} header is not text", proxy.header))?;
            crate::domain::user::check_name(user)
                .map_err(|e| format!("the proxy's {} header: {e}", proxy.header))?;
            return match app.service.store().user(user).await {
                Ok(Some((role, _))) => Ok((
                    Identity::Proxy {
                        user: user.to_string(),
                    },
                    role,
                    None,
                )),
                Ok(None) => Err(format!(
                    "the proxy vouches for {user:?}, who is not a rollgate user (rollgate user add)"
                )),
                Err(e) => {
                    tracing::error!(error = %e, "looking up a proxy user failed");
                    Err("the user could not be checked (see the server log)".into())
                }
            };
        }
        tracing::warn!(%peer, header = %proxy.header, "ignored an identity header from an address that is not a trusted proxy");
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or("the Authorization header must be \"Bearer TOKEN\"")?;
        return match app.service.check_token(token, now).await {
            Ok(TokenCheck::Valid(t)) => Ok((Identity::Token { name: t.name }, t.role, None)),
            Ok(TokenCheck::Expired) => Err("this API token has expired".into()),
            Ok(TokenCheck::Revoked) => Err("this API token was revoked".into()),
            Ok(TokenCheck::Unknown) => Err("this API token is not known".into()),
            Err(e) => {
                tracing::error!(error = %e, "checking an API token failed");
                Err("the token could not be checked (see the server log)".into())
            }
        };
    }
    if let Some(id) = cookie(headers, &app.auth.cookie_name(SESSION_COOKIE)) {
        match app.service.session(&id, app.auth.limits, now).await {
            Ok(Some(s)) => {
                return Ok((
                    Identity::Session {
                        user: s.user_name,
                        via: s.via,
                    },
                    s.role,
                    Some(s.csrf_token),
                ));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "checking a session failed");
                return Err("the session could not be checked (see the server log)".into());
            }
        }
    }
    Ok((Identity::Anonymous, Role::Viewer, None))
}

/// The sign-in layer (see the module comment).
pub async fn authenticate(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_string());
    let api = path.starts_with("/api/");
    let access = auth::required_access(method.as_str(), &path);
    let had_session_cookie = cookie(req.headers(), &app.auth.cookie_name(SESSION_COOKIE)).is_some();
    let peer = client_address(&req);

    let (identity, role, session_token) = match app.auth.mode {
        AuthMode::None => {
            let allowed = request_host(&req).is_none_or(|h| {
                names_this_machine(h) || app.auth.allowed_hosts.iter().any(|a| host_is(h, a))
            });
            if !allowed {
                // DNS rebinding: a page at evil.example whose name now
                // resolves to this machine could otherwise drive an open
                // rollgate from the operator's own browser (whatever the
                // peer address: loopback, or the machine's LAN address).
                let message = "with sign-in off, rollgate answers only requests addressed to localhost, an IP address or a name given with --allowed-host (a DNS-rebinding guard)";
                if api {
                    return ApiError::Forbidden(message.into()).into_response();
                }
                return (StatusCode::FORBIDDEN, message).into_response();
            }
            (Identity::Open, Role::Admin, None)
        }
        AuthMode::Local => match identify(&app, req.headers(), peer).await {
            Ok(found) => found,
            Err(why) if access != Access::Public => {
                return sign_in_first(api, &method, &path_and_query, &why);
            }
            Err(_) => (Identity::Anonymous, Role::Viewer, None),
        },
    };
    if let Access::Role(need) = access {
        if identity == Identity::Anonymous {
            let why = if had_session_cookie {
                "your session has expired"
            } else {
                "sign in first (or send an API token as \"Authorization: Bearer TOKEN\")"
            };
            return sign_in_first(api, &method, &path_and_query, why);
        }
        if role < need {
            return ApiError::Forbidden(format!(
                "this needs the {} role; you are {}",
                need.as_str(),
                role.as_str()
            ))
            .into_response();
        }
    }

    let (form_token, new_form_cookie) = match session_token {
        Some(t) => (t, false),
        None => match cookie(req.headers(), &app.auth.cookie_name(CSRF_COOKIE)) {
            Some(t) => (t, false),
            None => (auth::new_secret(), true),
        },
    };
    let caller = Caller {
        identity,
        role,
        form_token,
        new_form_cookie,
    };

    // Forms and cookie-signed-in API calls carry the form token; a token
    // in a header cannot be sent by another site, so it needs none.
    let mut req = req;
    if !is_safe(&method) && !matches!(caller.identity, Identity::Token { .. }) {
        if api {
            if matches!(
                caller.identity,
                Identity::Session { .. } | Identity::Proxy { .. }
            ) {
                let sent = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if !auth::secrets_equal(sent, &caller.form_token) {
                    return ApiError::Forbidden(format!(
                        "a signed-in browser's change must carry its form token in {CSRF_HEADER}"
                    ))
                    .into_response();
                }
            }
        } else if path == "/logout" && caller.identity == Identity::Anonymous {
            // Nothing to sign out of (the session expired): let the form
            // through to clear the cookie rather than answer 403.
        } else {
            match checked_form(req, &caller.form_token).await {
                Ok(r) => req = r,
                Err(resp) => return resp,
            }
        }
    }

    let secure = app.auth.secure_cookies;
    // API clients are not browsers: no cookie for them.
    let set_form_cookie = caller.new_form_cookie && !api;
    let form_token = caller.form_token.clone();
    req.extensions_mut().insert(caller.clone());
    let mut resp = CURRENT.scope(caller, next.run(req)).await;
    if access != Access::Public && app.auth.mode != AuthMode::None {
        // What a signed-in user saw (a token's secret, the audit log) must
        // not stay in a shared browser's or proxy's cache.
        resp.headers_mut()
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    if set_form_cookie {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(
                &app.auth.cookie_name(CSRF_COOKIE),
                &form_token,
                12 * 3600,
                secure,
            ),
        );
    }
    resp
}

/// Reads a form post's body, checks its `csrf` field against `expected`,
/// and gives the request back with the body intact.
async fn checked_form(req: Request, expected: &str) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, super::hardening::MAX_BODY_BYTES)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response())?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !auth::secrets_equal(&sent, expected) {
        return Err((
            StatusCode::FORBIDDEN,
            "this form has no valid form token (it is older than your sign-in, or comes from another page): reload the page and send it again",
        )
            .into_response());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(identity: Identity) -> Caller {
        Caller {
            identity,
            role: Role::Operator,
            form_token: String::new(),
            new_form_cookie: false,
        }
    }

    #[test]
    fn allowed_hosts_match_with_or_without_a_port() {
        assert!(host_is("rollgate.example.com:8080", "rollgate.example.com"));
        assert!(host_is("Rollgate.Example.com", "rollgate.example.com"));
        assert!(host_is("rollgate.example.com.", "rollgate.example.com"));
        assert!(!host_is(
            "rollgate.example.com.evil",
            "rollgate.example.com"
        ));
        assert!(!host_is(
            "evil-rollgate.example.com",
            "rollgate.example.com"
        ));
    }

    #[test]
    fn only_hosts_that_need_no_dns_name_this_machine() {
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:3000",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:8080",
            "[::1]",
            "10.1.2.3:80",
        ] {
            assert!(names_this_machine(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[evil]:80",
            "",
        ] {
            assert!(!names_this_machine(bad), "{bad}");
        }
    }

    #[test]
    fn the_actor_is_who_signed_in_never_a_claimed_name() {
        let ada = caller(Identity::Session {
            user: "ada".into(),
            via: "password".into(),
        });
        assert_eq!(ada.principal(None).unwrap().actor(), "user:ada");
        assert_eq!(ada.principal(Some("user:ada")).unwrap().actor(), "user:ada");
        assert!(
            ada.principal(Some("bob"))
                .unwrap_err()
                .0
                .contains("user:ada")
        );
        let ci = caller(Identity::Token { name: "ci".into() });
        assert_eq!(ci.principal(Some(" ")).unwrap().actor(), "token:ci");
        assert!(ci.principal(Some("rollgate/watcher")).is_err());
        let sso = caller(Identity::Session {
            user: "ada@example.com".into(),
            via: "oidc".into(),
        });
        assert_eq!(sso.principal(None).unwrap().actor(), "oidc:ada@example.com");
        // Sign-in off: claims count, but never a signed-in form.
        let open = caller(Identity::Open);
        assert_eq!(open.principal(Some("bob")).unwrap().actor(), "bob");
        assert!(open.principal(Some("user:ada")).is_err());
        assert!(caller(Identity::Anonymous).principal(None).is_err());
    }

    #[test]
    fn cookies_are_read_and_set_strictly() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; rollgate_session=abc ; b="),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("rollgate_csrf=xyz"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(cookie(&h, "rollgate"), None);
        let set = set_cookie(SESSION_COOKIE, "abc", 60, true);
        let set = set.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(
            !set_cookie("x", "y", 0, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}

//! Sign-in decisions as pure code: which role a route needs, when a session
//! has expired, when login attempts are throttled, and how secrets (session
//! ids, API tokens, CSRF tokens) are made and stored (only their SHA-256).

use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};
use std::net::IpAddr;

use super::user::Role;

/// Who may reach a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, static files, sign-in, the OpenAPI document.
    Public,
    /// Signed in with at least this role.
    Role(Role),
}

/// The role `method path` needs. One table for the API and the pages, so a
/// new route is viewer-readable or refused until it is listed here: reads
/// are for viewers, commands for operators, tokens and users for admins.
pub fn required_access(method: &str, path: &str) -> Access {
    let read = matches!(method, "GET" | "HEAD");
    if matches!(
        path,
        "/healthz"
            | "/readyz"
            | "/metrics"
            | "/login"
            | "/login/oidc"
            | "/login/oidc/callback"
            | "/api/v1/openapi.json"
    ) || path.starts_with("/static/")
    {
        return Access::Public;
    }
    // Signing out needs no role: an expired session may always sign out.
    if path == "/logout" {
        return Access::Public;
    }
    if path.starts_with("/api/v1/tokens")
        || path.starts_with("/api/v1/users")
        || path.starts_with("/api/v1/sessions")
        || path.starts_with("/admin")
    {
        return Access::Role(Role::Admin);
    }
    if read {
        return Access::Role(Role::Viewer);
    }
    // Posts that change nothing: validating a plan text, re-verifying the
    // audit chain.
    if matches!(path, "/api/v1/plans/validate" | "/audit/verify") {
        return Access::Role(Role::Viewer);
    }
    Access::Role(Role::Operator)
}

/// How long a session lives: `idle` after its last use, `absolute` after
/// sign-in at most, whatever the use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    pub idle: TimeDelta,
    pub absolute: TimeDelta,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            idle: TimeDelta::minutes(30),
            absolute: TimeDelta::hours(12),
        }
    }
}

impl SessionLimits {
    /// Whether a session created at `created` and last used at `last_seen`
    /// is still good at `now`.
    pub fn alive(
        &self,
        created: DateTime<Utc>,
        last_seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> bool {
        now < created + self.absolute && now < last_seen + self.idle
    }

    /// Whether a use at `now` should be written as the session's last use:
    /// at most once a minute, but often enough (a quarter of the idle
    /// limit) that a session in use never looks idle.
    pub fn needs_touch(&self, last_seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now - last_seen >= TOUCH_EVERY.min(self.idle / 4)
    }
}

/// A session's or token's last use is written at most this often (not on
/// every request).
pub const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// Login throttling: within `window`, at most `per_account_and_address`
/// failures for one user name from one client address, `per_account` for
/// one name from anywhere, and `per_address` for one address; past a limit,
/// attempts are refused without checking the password until the oldest
/// failure leaves the window. The pair limit is the tight one, so someone
/// guessing from one place cannot lock the real user out of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub per_account_and_address: usize,
    pub per_account: usize,
    pub per_address: usize,
    pub window: TimeDelta,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            per_account_and_address: 5,
            per_account: 50,
            per_address: 20,
            window: TimeDelta::minutes(15),
        }
    }
}

/// The rows a sign-in attempt counts under. The name is keyed-hashed with
/// the server's secret: every typed name gets its own bucket, whether
/// anyone has it or not (so throttling tells nobody which names exist), and
/// no typed name (a password in the wrong field?) is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKeys {
    pub account_and_address: String,
    pub account: String,
    pub address: String,
}

impl ThrottleKeys {
    pub fn new(secret: &str, name: &str, address: IpAddr) -> ThrottleKeys {
        use hmac::{KeyInit, Mac};
        let keyed = |text: &str| {
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(text.as_bytes());
            hex::encode(&mac.finalize().into_bytes()[..16])
        };
        let address = address_bucket(address);
        ThrottleKeys {
            account_and_address: format!("pair:{}", keyed(&format!("{name}\n{address}"))),
            account: format!("name:{}", keyed(name)),
            address: format!("addr:{address}"),
        }
    }

    pub fn all(&self) -> [&str; 3] {
        [&self.account_and_address, &self.account, &self.address]
    }
}

/// An address's bucket: the address itself for IPv4, its /64 for IPv6 (one
/// client is routinely handed a whole /64).
fn address_bucket(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!(
                    "{}/64",
                    std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
                )
            }
        },
    }
}

/// Failures within the window under each of an attempt's keys, oldest
/// first, the attempt itself included.
#[derive(Debug, Clone, Default)]
pub struct Failures {
    pub account_and_address: Vec<DateTime<Utc>>,
    pub account: Vec<DateTime<Utc>>,
    pub address: Vec<DateTime<Utc>>,
}

impl Throttle {
    /// When an attempt may next be made, given the failures counted so
    /// far with this attempt among them; `None` when this one may go on.
    pub fn held_until(&self, failures: &Failures, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let until = |failures: &[DateTime<Utc>], limit: usize| {
            let recent: Vec<_> = failures
                .iter()
                .filter(|t| **t > now - self.window)
                .collect();
            (recent.len() > limit).then(|| *recent[recent.len() - 1 - limit] + self.window)
        };
        [
            until(&failures.account_and_address, self.per_account_and_address),
            until(&failures.account, self.per_account),
            until(&failures.address, self.per_address),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// A new random secret: 32 bytes from the OS, hex (64 characters).
pub fn new_secret() -> String {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The prefix of every API token, so a leaked one is recognisable (secret
/// scanners) and never mistaken for a session id.
pub const TOKEN_PREFIX: &str = "rgt_";

/// A new API token as shown once to its creator.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", new_secret())
}

/// What is stored of a secret: its SHA-256, hex. The secrets are 256-bit
/// random, so a plain hash is enough (no password stretching needed), and a
/// database dump gives nobody a usable session or token.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// An API token's name: as a user name (it appears in the audit log as
/// `token:NAME`).
pub fn check_token_name(name: &str) -> Result<(), String> {
    super::user::check_name(name).map_err(|e| e.replace("user name", "token name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn reads_are_for_viewers_commands_for_operators_tokens_for_admins() {
        use Access::*;
        let cases = [
            ("GET", "/healthz", Public),
            ("GET", "/metrics", Public),
            ("GET", "/static/app.css", Public),
            ("GET", "/login", Public),
            ("POST", "/login", Public),
            ("POST", "/logout", Public),
            ("GET", "/login/oidc", Public),
            ("GET", "/login/oidc/callback", Public),
            ("GET", "/api/v1/openapi.json", Public),
            ("GET", "/", Role(super::Role::Viewer)),
            ("GET", "/rollouts/3/advance", Role(super::Role::Viewer)),
            ("GET", "/api/v1/audit/export", Role(super::Role::Viewer)),
            ("POST", "/api/v1/plans/validate", Role(super::Role::Viewer)),
            ("POST", "/audit/verify", Role(super::Role::Viewer)),
            // It calls AWS with rollgate's credentials.
            (
                "POST",
                "/api/v1/plans/x/preflight",
                Role(super::Role::Operator),
            ),
            ("POST", "/api/v1/rollouts", Role(super::Role::Operator)),
            ("POST", "/rollouts/3/rollback", Role(super::Role::Operator)),
            ("POST", "/start", Role(super::Role::Operator)),
            ("POST", "/demo/bad", Role(super::Role::Operator)),
            ("DELETE", "/api/v1/rollouts/3", Role(super::Role::Operator)),
            ("GET", "/api/v1/tokens", Role(super::Role::Admin)),
            ("POST", "/api/v1/tokens", Role(super::Role::Admin)),
            ("DELETE", "/api/v1/tokens/ci", Role(super::Role::Admin)),
            ("GET", "/api/v1/users", Role(super::Role::Admin)),
            ("POST", "/api/v1/users", Role(super::Role::Admin)),
            ("PUT", "/api/v1/users/otto", Role(super::Role::Admin)),
            ("DELETE", "/api/v1/users/otto", Role(super::Role::Admin)),
            (
                "DELETE",
                "/api/v1/sessions/oidc:otto",
                Role(super::Role::Admin),
            ),
            ("GET", "/admin/tokens", Role(super::Role::Admin)),
        ];
        for (method, path, want) in cases {
            assert_eq!(required_access(method, path), want, "{method} {path}");
        }
        assert!(super::Role::Admin > super::Role::Operator);
        assert!(super::Role::Operator > super::Role::Viewer);
    }

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let limits = SessionLimits {
            idle: TimeDelta::minutes(30),
            absolute: TimeDelta::hours(2),
        };
        assert!(limits.alive(t(0), t(0), t(29 * 60)));
        assert!(!limits.alive(t(0), t(0), t(30 * 60)), "idle");
        // Used every 20 minutes: alive until the absolute limit, then not.
        assert!(limits.alive(t(0), t(100 * 60), t(119 * 60)));
        assert!(!limits.alive(t(0), t(115 * 60), t(120 * 60)), "absolute");
        assert!(!limits.needs_touch(t(0), t(59)));
        assert!(limits.needs_touch(t(0), t(60)));
        let short = SessionLimits {
            idle: TimeDelta::seconds(8),
            absolute: TimeDelta::hours(1),
        };
        assert!(
            short.needs_touch(t(0), t(2)),
            "a quarter of a short idle limit"
        );
        assert!(!short.needs_touch(t(0), t(1)));
    }

    #[test]
    fn throttling_holds_an_account_and_an_address() {
        let th = Throttle {
            per_account_and_address: 3,
            per_account: 4,
            per_address: 5,
            window: TimeDelta::minutes(10),
        };
        let now = t(1000);
        let pair = |times: &[DateTime<Utc>]| Failures {
            account_and_address: times.to_vec(),
            account: times.to_vec(),
            address: times.to_vec(),
        };
        // The attempt itself is among the failures: the fourth from one
        // place is held.
        assert_eq!(th.held_until(&pair(&[t(900), t(950), now]), now), None);
        let four = [t(900), t(950), t(990), now];
        assert_eq!(th.held_until(&pair(&four), now), Some(t(900 + 600)));
        // Failures older than the window no longer count.
        assert_eq!(
            th.held_until(&pair(&[t(0), t(950), t(990), now]), now),
            None
        );
        // The name from everywhere, the address for every name.
        let five = [t(800), t(850), t(900), t(950), now];
        let spread = Failures {
            account: five.to_vec(),
            ..Failures::default()
        };
        assert_eq!(th.held_until(&spread, now), Some(t(800 + 600)));
        let six = [t(700), t(800), t(850), t(900), t(950), now];
        let busy = Failures {
            address: six.to_vec(),
            ..Failures::default()
        };
        assert_eq!(th.held_until(&busy, now), Some(t(700 + 600)));
        // Several held: the later release wins.
        let both = Failures {
            account_and_address: four.to_vec(),
            address: six.to_vec(),
            ..Failures::default()
        };
        assert_eq!(th.held_until(&both, now), Some(t(1500)));
    }

    #[test]
    fn throttle_keys_hide_the_name_and_group_ipv6_by_64() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let keys = ThrottleKeys::new("secret", "ada", v4);
        assert_eq!(keys.address, "addr:192.0.2.7");
        assert!(keys.account.starts_with("name:") && !keys.account.contains("ada"));
        assert!(keys.account_and_address.starts_with("pair:"));
        // Same inputs, same buckets; another name, another secret or
        // another address, other buckets.
        assert_eq!(keys, ThrottleKeys::new("secret", "ada", v4));
        assert_ne!(keys.account, ThrottleKeys::new("secret", "adb", v4).account);
        assert_ne!(keys.account, ThrottleKeys::new("other", "ada", v4).account);
        let elsewhere = ThrottleKeys::new("secret", "ada", "192.0.2.8".parse().unwrap());
        assert_eq!(keys.account, elsewhere.account);
        assert_ne!(keys.account_and_address, elsewhere.account_and_address);
        let a = ThrottleKeys::new("s", "ada", "2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ThrottleKeys::new("s", "ada", "2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a.address, "addr:2001:db8:1:2::/64");
        assert_eq!(a, b);
        let mapped = ThrottleKeys::new("s", "ada", "::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped.address, "addr:192.0.2.7");
    }

    #[test]
    fn secrets_are_random_and_stored_hashed() {
        let a = new_secret();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_secret());
        let token = new_token();
        assert!(token.starts_with(TOKEN_PREFIX));
        let h = secret_hash(&token);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&token[TOKEN_PREFIX.len()..]));
        assert_eq!(h, secret_hash(&token));
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, &new_secret()));
        assert!(!secrets_equal("ab", "abc"));
        assert!(check_token_name("ci-deploy").is_ok());
        assert!(check_token_name("CI").unwrap_err().contains("token name"));
    }
}

//! Who gets in: password sign-in (throttled per account and per address),
//! sessions, and API tokens. Token changes are audited like every other
//! change; the secrets themselves are returned once and never stored.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Service, ServiceError};
use crate::audit::NewAuditEntry;
use crate::domain::auth::{self, Failures, SessionLimits, Throttle, ThrottleKeys};
use crate::domain::user::{self, Role};
use crate::domain::{Action, Outcome, Principal};
use crate::store::{SessionRow, StoreError, TokenRow};

/// Why a sign-in did not succeed. Wrong name and wrong password are one
/// answer, so the form tells nobody which names exist.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("wrong user name or password")]
    Wrong,
    #[error("too many failed sign-ins; try again after {}", until.format("%H:%M:%S UTC"))]
    Throttled { until: DateTime<Utc> },
    /// The callback's state is unknown, used already, too old, or was
    /// begun in another browser.
    #[error("{0}")]
    OidcState(String),
    #[error(transparent)]
    Oidc(#[from] crate::oidc::OidcError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// An OIDC sign-in begun: where to send the browser, and the value of the
/// cookie that ties the callback to this browser.
#[derive(Debug, Clone)]
pub struct OidcBegun {
    pub url: String,
    pub browser_secret: String,
}

/// At most this many OIDC sign-ins may be under way at once.
const MAX_PENDING_OIDC: i64 = 10_000;

/// How long a browser has to come back from the identity provider.
pub const OIDC_LOGIN_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// A new session: the cookie value (shown to the browser only) and its
/// form token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub csrf_token: String,
}

/// What a presented API token turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCheck {
    Valid(TokenRow),
    Expired,
    Revoked,
    Unknown,
}

/// A PHC hash of no password, verified when the user does not exist, so an
/// unknown name takes as long to refuse as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| user::hash_password("no such user, no such password").unwrap_or_default())
}

/// The furthest a token's expiry may be set (a larger one is a typo, and
/// dates past year 9999 cannot be stored).
const MAX_TOKEN_LIFE: chrono::TimeDelta = chrono::TimeDelta::days(3653);

/// Makes an API token on `store`: the service's, or the database of
/// `rollgate token create` (which makes the first admin token). The secret
/// is returned once and never stored (only its hash is); audited without it.
pub async fn create_token(
    store: &crate::store::Store,
    who: &Principal,
    name: &str,
    role: Role,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(TokenRow, String), ServiceError> {
    auth::check_token_name(name).map_err(ServiceError::BadInput)?;
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ServiceError::BadInput(
            "the expiry must be in the future".into(),
        ));
    }
    if expires_at.is_some_and(|t| t > now + MAX_TOKEN_LIFE) {
        return Err(ServiceError::BadInput(
            "a token expires within 10 years (leave the expiry out for one that lasts until revoked)"
                .into(),
        ));
    }
    let secret = auth::new_token();
    let row = TokenRow {
        name: name.to_string(),
        role,
        created_by: who.actor().to_string(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    let entry = NewAuditEntry::new(who, Action::TokenCreated, Outcome::Applied).detail(json!({
        "token": name,
        "role": role.as_str(),
        "expires_at": expires_at.map(|t| t.to_rfc3339()),
    }));
    store
        .add_token(&row, &auth::secret_hash(&secret), entry)
        .await?;
    Ok((row, secret))
}

/// The name of the server secret that keys throttle buckets.
const THROTTLE_KEY: &str = "throttle_key";

impl Service {
    /// Checks a password sign-in and, when it is right, opens a session.
    /// The attempt is counted first (by typed name from this address, by
    /// name, by address); over a limit it is refused without checking the
    /// password. A name of nobody is throttled exactly like a real one.
    pub async fn sign_in_password(
        &self,
        name: &str,
        password: &str,
        address: IpAddr,
        limits: SessionLimits,
        throttle: Throttle,
        now: DateTime<Utc>,
    ) -> Result<NewSession, SignInError> {
        let store = &self.store;
        let secret = self
            .throttle_key
            .get_or_try_init(|| store.server_secret(THROTTLE_KEY, auth::new_secret))
            .await
            .map_err(ServiceError::from)?;
        let keys = ThrottleKeys::new(secret, name, address);
        let attempt = auth::new_secret();
        let since = now - throttle.window;
        store
            .record_login_attempt(&attempt, &keys.all(), now, since)
            .await
            .map_err(ServiceError::from)?;
        let mut by_key = store
            .login_failures(&keys.all(), since)
            .await
            .map_err(ServiceError::from)?;
        let mut take = |key: &str| by_key.remove(key).unwrap_or_default();
        let failures = Failures {
            account_and_address: take(&keys.account_and_address),
            account: take(&keys.account),
            address: take(&keys.address),
        };
        let stored = if user::check_name(name).is_ok() {
            store.user(name).await.map_err(ServiceError::from)?
        } else {
            None
        };
        // Only a real user's name is logged: someone who typed their
        // password into the name field must not find it in a log.
        let shown = if stored.is_some() { name } else { "(unknown)" };
        if let Some(until) = throttle.held_until(&failures, now) {
            // Refused unchecked: this attempt tested nothing, so it does
            // not push the release time further out.
            store
                .forget_login_attempt(&attempt)
                .await
                .map_err(ServiceError::from)?;
            tracing::warn!(user = shown, %address, "sign-in throttled");
            return Err(SignInError::Throttled { until });
        }
        let hash = stored
            .as_ref()
            .map_or_else(|| decoy_hash().to_string(), |(_, h)| h.clone());
        let candidate = password.to_string();
        // argon2 takes tens of milliseconds of CPU: off the async threads.
        let matches = tokio::task::spawn_blocking(move || user::verify_password(&candidate, &hash))
            .await
            .unwrap_or(false);
        if !(matches && stored.is_some()) {
            tracing::warn!(user = shown, %address, "sign-in failed");
            return Err(SignInError::Wrong);
        }
        // Right: the attempt was no failure, and the name's earlier ones
        // are forgiven (the address's stay: it may be guessing others).
        store
            .forget_login_attempt(&attempt)
            .await
            .map_err(ServiceError::from)?;
        store
            .clear_login_failures(&[&keys.account_and_address, &keys.account])
            .await
            .map_err(ServiceError::from)?;
        let session = self
            .open_session(name, "password", None, limits, now)
            .await?;
        tracing::info!(user = name, %address, "signed in");
        Ok(session)
    }

    /// Starts a sign-in through the identity provider; `next` is where to
    /// go afterwards (a local path, already checked).
    pub async fn begin_oidc(
        &self,
        provider: &crate::oidc::OidcProvider,
        next: &str,
        now: DateTime<Utc>,
    ) -> Result<OidcBegun, SignInError> {
        if self
            .store
            .oidc_logins_pending()
            .await
            .map_err(ServiceError::from)?
            >= MAX_PENDING_OIDC
        {
            // Each visit to /login/oidc keeps a row for ten minutes: a
            // loop on it must not grow the table without end.
            return Err(ServiceError::Unavailable(
                "too many sign-ins are under way; try again in a few minutes".into(),
            )
            .into());
        }
        let begun = provider.begin().await?;
        let browser_secret = auth::new_secret();
        let row = crate::store::OidcLoginRow {
            state: begun.state,
            browser_hash: auth::secret_hash(&browser_secret),
            nonce: begun.nonce,
            pkce_verifier: begun.pkce_verifier,
            next_path: next.to_string(),
            created_at: now,
        };
        self.store
            .add_oidc_login(&row, now - OIDC_LOGIN_TTL)
            .await
            .map_err(ServiceError::from)?;
        Ok(OidcBegun {
            url: begun.url,
            browser_secret,
        })
    }

    /// The provider sent the browser back with an error instead of a code:
    /// believed (and the sign-in used up) only for a state this browser
    /// began, so nobody can put words on rollgate's page with a link; only
    /// the error's code is shown, never its free text.
    pub async fn abandon_oidc(
        &self,
        state: &str,
        error: &str,
        browser_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> SignInError {
        if let Err(e) = self.take_own_oidc_login(state, browser_secret, now).await {
            return e;
        }
        let code = if !error.is_empty()
            && error.len() <= 64
            && error.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            error
        } else {
            "an unknown error"
        };
        SignInError::Oidc(crate::oidc::OidcError::Refused(code.to_string()))
    }

    /// Takes (uses up) the pending sign-in with this state, if it is
    /// recent and was begun in this browser.
    async fn take_own_oidc_login(
        &self,
        state: &str,
        browser_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<crate::store::OidcLoginRow, SignInError> {
        let again = "sign in again";
        // Taken (deleted) first: a replayed or raced callback finds nothing.
        let login = self
            .store
            .take_oidc_login(state)
            .await
            .map_err(ServiceError::from)?
            .ok_or_else(|| {
                SignInError::OidcState(format!(
                    "this sign-in link is unknown or was used already: {again}"
                ))
            })?;
        if login.created_at < now - OIDC_LOGIN_TTL {
            return Err(SignInError::OidcState(format!(
                "this sign-in took longer than {} minutes: {again}",
                OIDC_LOGIN_TTL.num_minutes()
            )));
        }
        let same_browser = browser_secret
            .is_some_and(|s| auth::secrets_equal(&auth::secret_hash(s), &login.browser_hash));
        if !same_browser {
            tracing::warn!("an OIDC callback came to a browser that did not begin it");
            return Err(SignInError::OidcState(format!(
                "this sign-in was begun in another browser: {again}"
            )));
        }
        Ok(login)
    }

    /// Finishes a sign-in through the identity provider: the state must be
    /// one this server began, unused, recent, and begun in this browser
    /// (`browser_secret`, from its cookie); then the code is exchanged and
    /// the ID token checked. Gives the new session and where to go next.
    pub async fn finish_oidc(
        &self,
        provider: &crate::oidc::OidcProvider,
        state: &str,
        code: &str,
        browser_secret: Option<&str>,
        limits: SessionLimits,
        now: DateTime<Utc>,
    ) -> Result<(NewSession, String), SignInError> {
        let login = self.take_own_oidc_login(state, browser_secret, now).await?;
        let who = provider
            .finish(code, &login.nonce, &login.pkce_verifier)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "OIDC sign-in refused"))?;
        let issuer = &provider.settings().issuer;
        let name = match self
            .store
            .bind_oidc_identity(issuer, &who.subject, &who.name, now)
            .await
        {
            Ok(name) => name,
            Err(StoreError::OidcNameTaken(taken)) => {
                tracing::warn!(name = %taken, "an identity-provider account asked for a name another account has");
                return Err(SignInError::Oidc(crate::oidc::OidcError::Refused(
                    StoreError::OidcNameTaken(taken).to_string(),
                )));
            }
            Err(e) => return Err(ServiceError::from(e).into()),
        };
        if name != who.name {
            tracing::info!(bound = %name, now = %who.name, "an identity-provider account signs in under the name it first had");
        }
        let session = self
            .open_session(&name, "oidc", Some(who.role), limits, now)
            .await?;
        tracing::info!(user = %name, role = who.role.as_str(), "signed in through the identity provider");
        Ok((session, login.next_path))
    }

    /// A new session for `name` (a fresh id and form token; only the id's
    /// hash is stored). `role` for identity-provider users only.
    async fn open_session(
        &self,
        name: &str,
        via: &str,
        role: Option<Role>,
        limits: SessionLimits,
        now: DateTime<Utc>,
    ) -> Result<NewSession, ServiceError> {
        let session = NewSession {
            id: auth::new_secret(),
            csrf_token: auth::new_secret(),
        };
        self.store
            .create_session(
                &auth::secret_hash(&session.id),
                name,
                via,
                role,
                &session.csrf_token,
                now,
                limits,
            )
            .await?;
        Ok(session)
    }

    /// The live session with this cookie value, its last use recorded (at
    /// most once a minute); `None` when unknown or expired (an expired one
    /// is deleted).
    pub async fn session(
        &self,
        id: &str,
        limits: SessionLimits,
        now: DateTime<Utc>,
    ) -> Result<Option<SessionRow>, ServiceError> {
        let id_hash = auth::secret_hash(id);
        let Some(session) = self.store.session(&id_hash).await? else {
            return Ok(None);
        };
        if !limits.alive(session.created_at, session.last_seen_at, now) {
            self.store.delete_session(&id_hash).await?;
            return Ok(None);
        }
        if limits.needs_touch(session.last_seen_at, now) {
            self.store.touch_session(&id_hash, now).await?;
        }
        Ok(Some(session))
    }

    /// Ends a session (signing out); unknown ids are fine.
    pub async fn sign_out(&self, id: &str) -> Result<(), ServiceError> {
        Ok(self.store.delete_session(&auth::secret_hash(id)).await?)
    }

    /// What a presented token is; a valid one's last use is recorded (at
    /// most once a minute).
    pub async fn check_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<TokenCheck, ServiceError> {
        if !token.starts_with(auth::TOKEN_PREFIX) {
            return Ok(TokenCheck::Unknown);
        }
        let Some(row) = self.store.token_by_hash(&auth::secret_hash(token)).await? else {
            return Ok(TokenCheck::Unknown);
        };
        if row.revoked_at.is_some() {
            return Ok(TokenCheck::Revoked);
        }
        if row.expires_at.is_some_and(|t| t <= now) {
            return Ok(TokenCheck::Expired);
        }
        if row
            .last_used_at
            .is_none_or(|t| now - t >= auth::TOUCH_EVERY)
        {
            self.store.touch_token(&row.name, now).await?;
        }
        Ok(TokenCheck::Valid(row))
    }

    /// Makes an API token; returns it with its secret, which is shown once
    /// and never stored (only its hash is). Audited without the secret.
    pub async fn create_token(
        &self,
        who: &Principal,
        name: &str,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(TokenRow, String), ServiceError> {
        create_token(&self.store, who, name, role, expires_at, now).await
    }

    /// Revokes a token at once: its next request is refused. Audited.
    pub async fn revoke_token(
        &self,
        who: &Principal,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<(), ServiceError> {
        let entry = NewAuditEntry::new(who, Action::TokenRevoked, Outcome::Applied)
            .detail(json!({ "token": name }));
        if self.store.revoke_token(name, now, entry).await? {
            return Ok(());
        }
        let known = self.store.tokens().await?.iter().any(|t| t.name == name);
        Err(if known {
            ServiceError::BadInput(format!("token {name:?} is already revoked"))
        } else {
            ServiceError::NotFound(format!("no token named {name:?}"))
        })
    }

    /// Every token (never their secrets).
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, ServiceError> {
        Ok(self.store.tokens().await?)
    }
}

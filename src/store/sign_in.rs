//! Sessions, API tokens and failed logins. Secrets are looked up by their
//! SHA-256 only; the secrets themselves never reach the database.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Store, StoreError, audit, is_unique_violation, opt_time, parse_time, timestamp};
use crate::audit::NewAuditEntry;
use crate::domain::auth::SessionLimits;
use crate::domain::user::Role;

/// A stored session, with its user's current role (a role changed or a
/// user removed takes effect on the next request).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub user_name: String,
    pub role: Role,
    pub via: String,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// An OIDC sign-in under way (see `oidc_logins`).
#[derive(Debug, Clone, PartialEq)]
pub struct OidcLoginRow {
    pub state: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next_path: String,
    pub created_at: DateTime<Utc>,
}

/// A stored API token (its hash is not part of it).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

fn role_of(row: &AnyRow) -> Result<Role, StoreError> {
    let role: String = row.try_get("role")?;
    Role::parse(&role).map_err(StoreError::Corrupt)
}

fn token_row(row: &AnyRow) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        name: row.try_get("name")?,
        role: role_of(row)?,
        created_by: row.try_get("created_by")?,
        created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
        expires_at: opt_time(row, "expires_at")?,
        revoked_at: opt_time(row, "revoked_at")?,
        last_used_at: opt_time(row, "last_used_at")?,
    })
}

const TOKEN_COLUMNS: &str =
    "name, role, created_by, created_at, expires_at, revoked_at, last_used_at";

impl Store {
    /// Stores a new session, and drops every session that can no longer be
    /// used under `limits`. `role` is given for identity-provider sessions
    /// only (a local user's role is read from `users` at each request).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_name: &str,
        via: &str,
        role: Option<Role>,
        csrf_token: &str,
        now: DateTime<Utc>,
        limits: SessionLimits,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
            .bind(timestamp(now - limits.idle))
            .bind(timestamp(now - limits.absolute))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_name, via, role, csrf_token, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id_hash)
        .bind(user_name)
        .bind(via)
        .bind(role.map(|r| r.as_str()))
        .bind(csrf_token)
        .bind(timestamp(now))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session with this id hash, if its user still exists (a local
    /// user; an identity provider's sessions carry their own role).
    pub async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT s.user_name, s.via, s.csrf_token, s.created_at, s.last_seen_at, \
                    COALESCE(s.role, u.role) AS role \
             FROM sessions s LEFT JOIN users u ON u.name = s.user_name AND s.role IS NULL \
             WHERE s.id_hash = $1 AND (s.role IS NOT NULL OR u.name IS NOT NULL)",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SessionRow {
                user_name: row.try_get("user_name")?,
                role: role_of(&row)?,
                via: row.try_get("via")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at: parse_time(&row.try_get::<String, _>("created_at")?)?,
                last_seen_at: parse_time(&row.try_get::<String, _>("last_seen_at")?)?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(timestamp(at))
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an API token and its audit entry in one transaction; refuses a
    /// name already taken (`TokenExists`).
    pub async fn add_token(
        &self,
        token: &TokenRow,
        token_hash: &str,
        entry: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (name, token_hash, role, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&token.name)
        .bind(token_hash)
        .bind(token.role.as_str())
        .bind(&token.created_by)
        .bind(timestamp(token.created_at))
        .bind(token.expires_at.map(timestamp))
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::TokenExists(token.name.clone())
            } else {
                e.into()
            }
        })?;
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await
    }

    /// The token called `name`, revoked or not.
    pub async fn token_by_name(&self, name: &str) -> Result<Option<TokenRow>, StoreError> {
        // Only the constant column list is spliced in.
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE name = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| token_row(&r)).transpose()
    }

    /// The token whose secret has this hash, revoked or not.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// Every token, by name.
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY name");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_row).collect()
    }

    /// Revokes a token with its audit entry; `false` when there is no such
    /// token or it was revoked already (nothing is written then).
    pub async fn revoke_token(
        &self,
        name: &str,
        at: DateTime<Utc>,
        entry: NewAuditEntry,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(timestamp(at))
        .bind(name)
        .execute(&mut *w.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await?;
        Ok(true)
    }

    pub async fn touch_token(&self, name: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE name = $2")
            .bind(timestamp(at))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The failed logins since `since` under each of `keys`, oldest
    /// first, by key (a key with none is absent).
    pub async fn login_failures(
        &self,
        keys: &[&str],
        since: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<String, Vec<DateTime<Utc>>>, StoreError> {
        if keys.is_empty() {
            return Ok(Default::default());
        }
        // One query for all the keys; only placeholders are spliced in.
        let list: Vec<String> = (0..keys.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT throttle_key, at FROM login_failures \
             WHERE at > $1 AND throttle_key IN ({}) ORDER BY at",
            list.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(timestamp(since));
        for key in keys {
            query = query.bind(*key);
        }
        let mut by_key: std::collections::HashMap<String, Vec<DateTime<Utc>>> =
            std::collections::HashMap::new();
        for r in query.fetch_all(&self.pool).await? {
            let at = parse_time(&r.try_get::<String, _>("at")?)?;
            by_key
                .entry(r.try_get("throttle_key")?)
                .or_default()
                .push(at);
        }
        Ok(by_key)
    }

    /// Records a sign-in attempt under each key before its password is
    /// checked, so concurrent guesses all count against the limits; forgets
    /// rows from before `forget_before`. An attempt that turns out right
    /// (or is refused unchecked) takes its rows back with
    /// [`Store::forget_login_attempt`].
    pub async fn record_login_attempt(
        &self,
        attempt: &str,
        keys: &[&str],
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM login_failures WHERE at < $1")
            .bind(timestamp(forget_before))
            .execute(&mut *tx)
            .await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO login_failures (throttle_key, at, attempt) VALUES ($1, $2, $3)",
            )
            .bind(*key)
            .bind(timestamp(at))
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes back an attempt's rows.
    pub async fn forget_login_attempt(&self, attempt: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE attempt = $1")
            .bind(attempt)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Forgets the failures under these keys (an account's, after it
    /// signed in).
    pub async fn clear_login_failures(&self, keys: &[&str]) -> Result<(), StoreError> {
        for key in keys {
            sqlx::query("DELETE FROM login_failures WHERE throttle_key = $1")
                .bind(*key)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// The server's secret called `name`, made with `make` the first time
    /// anyone asks (several processes racing agree on the first one stored).
    pub async fn server_secret(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(make())
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    /// Keeps an OIDC sign-in under way, and forgets those begun before
    /// `forget_before` (never finished).
    pub async fn add_oidc_login(
        &self,
        login: &OidcLoginRow,
        forget_before: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(timestamp(forget_before))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state, browser_hash, nonce, pkce_verifier, next_path, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&login.state)
        .bind(&login.browser_hash)
        .bind(&login.nonce)
        .bind(&login.pkce_verifier)
        .bind(&login.next_path)
        .bind(timestamp(login.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the OIDC sign-in with this state: it is gone afterwards, so a
    /// state can be used once, by one process, however many race for it.
    pub async fn take_oidc_login(&self, state: &str) -> Result<Option<OidcLoginRow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oidc_logins WHERE state = $1 \
             RETURNING state, browser_hash, nonce, pkce_verifier, next_path, created_at",
        )
        .bind(state)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OidcLoginRow {
                state: r.try_get("state")?,
                browser_hash: r.try_get("browser_hash")?,
                nonce: r.try_get("nonce")?,
                pkce_verifier: r.try_get("pkce_verifier")?,
                next_path: r.try_get("next_path")?,
                created_at: parse_time(&r.try_get::<String, _>("created_at")?)?,
            })
        })
        .transpose()
    }

    /// The name the provider's `subject` signs in as: the one it was first
    /// seen with (`name` now, if it is new). Refused (`OidcNameTaken`) when
    /// `name` is already another subject's.
    pub async fn bind_oidc_identity(
        &self,
        issuer: &str,
        subject: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError> {
        if let Some(name) = self.oidc_name(issuer, subject).await? {
            return Ok(name);
        }
        let inserted = sqlx::query(
            "INSERT INTO oidc_identities (issuer, subject, name, first_seen) VALUES ($1, $2, $3, $4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(name)
        .bind(timestamp(now))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(name.to_string()),
            Err(e) if is_unique_violation(&e) => match self.oidc_name(issuer, subject).await? {
                // The same subject's first sign-in, racing this one.
                Some(name) => Ok(name),
                None => Err(StoreError::OidcNameTaken(name.to_string())),
            },
            Err(e) => Err(e.into()),
        }
    }

    async fn oidc_name(&self, issuer: &str, subject: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT name FROM oidc_identities WHERE issuer = $1 AND subject = $2")
                .bind(issuer)
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get::<String, _>("name")).transpose()?)
    }

    /// How many OIDC sign-ins are under way (begun, not yet taken).
    pub async fn oidc_logins_pending(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM oidc_logins")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Ends every session of `user_name` signed in `via` ("password" or
    /// "oidc"), with its audit entry; how many there were.
    pub async fn end_sessions(
        &self,
        user_name: &str,
        via: &str,
        entry: impl FnOnce(u64) -> NewAuditEntry,
    ) -> Result<u64, StoreError> {
        let mut w = self.begin_write().await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE user_name = $1 AND via = $2")
            .bind(user_name)
            .bind(via)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        audit::append(&mut w, vec![entry(ended)]).await?;
        w.commit().await?;
        Ok(ended)
    }
}

//! The `users` table: who may sign in, with a role and a password hash.

use chrono::{DateTime, Utc};

use super::{Store, StoreError, audit, is_unique_violation, timestamp};
use crate::audit::NewAuditEntry;
use crate::domain::user::Role;

impl Store {
    /// Adds a user and its audit entry in one transaction; refuses a name
    /// already taken (`UserExists`).
    pub async fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        at: DateTime<Utc>,
        entry: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(timestamp(at))
        .execute(&mut *w.tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::UserExists(name.to_string())
            } else {
                e.into()
            }
        })?;
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await
    }

    /// A user's role and password hash.
    pub async fn user(&self, name: &str) -> Result<Option<(Role, String)>, StoreError> {
        use sqlx::Row;
        let Some(row) = sqlx::query("SELECT role, password_hash FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let role: String = row.try_get("role")?;
        let role = Role::parse(&role).map_err(StoreError::Corrupt)?;
        Ok(Some((role, row.try_get("password_hash")?)))
    }

    /// Every user, by name (no password hashes).
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        use sqlx::Row;
        let rows = sqlx::query("SELECT name, role, created_at FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get("role")?;
                Ok(UserRow {
                    name: r.try_get("name")?,
                    role: Role::parse(&role).map_err(StoreError::Corrupt)?,
                    created_at: super::parse_time(&r.try_get::<String, _>("created_at")?)?,
                })
            })
            .collect()
    }

    /// Changes a user's role (`None`: removes the user and ends their
    /// sessions), with its audit entry, in one transaction. Refused
    /// (`LastAdmin`) when no admin would be left.
    pub async fn change_user(
        &self,
        name: &str,
        role: Option<Role>,
        entry: NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut w = self.begin_write().await?;
        let changed = match role {
            Some(role) => sqlx::query("UPDATE users SET role = $1 WHERE name = $2")
                .bind(role.as_str())
                .bind(name)
                .execute(&mut *w.tx)
                .await?
                .rows_affected(),
            None => {
                sqlx::query("DELETE FROM sessions WHERE user_name = $1 AND role IS NULL")
                    .bind(name)
                    .execute(&mut *w.tx)
                    .await?;
                sqlx::query("DELETE FROM users WHERE name = $1")
                    .bind(name)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected()
            }
        };
        if changed == 0 {
            return Err(StoreError::NoSuchUser(name.to_string()));
        }
        use sqlx::Row;
        let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get("n")?;
        if admins == 0 {
            // Dropped without commit: nothing changed.
            return Err(StoreError::LastAdmin);
        }
        audit::append(&mut w, vec![entry]).await?;
        w.commit().await
    }
}

/// A user as listed (never the password hash).
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

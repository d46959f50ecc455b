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
}

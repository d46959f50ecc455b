//! Users, managed by admins through the API (the first admin comes from
//! `rollgate user add` on the database). Every change is audited with who
//! made it; a password is hashed before anything is stored and never
//! leaves this module; no change may leave rollgate without an admin.

use chrono::Utc;
use serde_json::json;

use super::{Service, ServiceError};
use crate::audit::NewAuditEntry;
use crate::domain::user::{self, Role};
use crate::domain::{Action, Outcome, Principal};
use crate::store::{Store, UserRow};

/// Adds a user to `store` (the service's, or the database of `rollgate
/// user add`, which makes the first admin): name and password checked, the
/// password hashed with argon2id off the async threads, the user stored
/// with its audit entry (never the password).
pub async fn add_user(
    store: &Store,
    who: &Principal,
    name: &str,
    role: Role,
    password: String,
) -> Result<UserRow, ServiceError> {
    user::check_name(name).map_err(ServiceError::BadInput)?;
    user::check_password(&password).map_err(ServiceError::BadInput)?;
    let hash = tokio::task::spawn_blocking(move || user::hash_password(&password))
        .await
        .map_err(|e| ServiceError::Unavailable(e.to_string()))?
        .map_err(ServiceError::Unavailable)?;
    let now = Utc::now();
    let entry = NewAuditEntry::new(who, Action::UserAdded, Outcome::Applied)
        .detail(json!({ "user": name, "role": role.as_str() }));
    store.add_user(name, role, &hash, now, entry).await?;
    Ok(UserRow {
        name: name.to_string(),
        role,
        created_at: now,
    })
}

impl Service {
    pub async fn users(&self) -> Result<Vec<UserRow>, ServiceError> {
        Ok(self.store.users().await?)
    }

    /// Adds a user who signs in with `password` (see [`add_user`]).
    pub async fn add_user(
        &self,
        who: &Principal,
        name: &str,
        role: Role,
        password: String,
    ) -> Result<UserRow, ServiceError> {
        add_user(&self.store, who, name, role, password).await
    }

    /// Gives a user another role; takes effect on their next request.
    pub async fn set_user_role(
        &self,
        who: &Principal,
        name: &str,
        role: Role,
    ) -> Result<(), ServiceError> {
        let before = self.store.user(name).await?.map(|(r, _)| r);
        let entry = NewAuditEntry::new(who, Action::UserRoleChanged, Outcome::Applied).detail(
            json!({ "user": name, "role": role.as_str(), "was": before.map(Role::as_str) }),
        );
        Ok(self.store.change_user(name, Some(role), entry).await?)
    }

    /// Removes a user; their sessions end at once. Their API tokens stay
    /// (revoke them separately: a token may serve a team's automation).
    pub async fn remove_user(&self, who: &Principal, name: &str) -> Result<(), ServiceError> {
        let entry = NewAuditEntry::new(who, Action::UserRemoved, Outcome::Applied)
            .detail(json!({ "user": name }));
        Ok(self.store.change_user(name, None, entry).await?)
    }

    /// Signs `actor` (`user:NAME` or `oidc:NAME`) out everywhere: every
    /// session ends at once (for an identity-provider user removed from
    /// its groups, the only way before their sessions expire). Their API
    /// tokens are not touched. Gives how many sessions ended.
    pub async fn end_sessions(&self, who: &Principal, actor: &str) -> Result<u64, ServiceError> {
        let (via, name) = if let Some(n) = actor.strip_prefix("user:") {
            ("password", n)
        } else if let Some(n) = actor.strip_prefix("oidc:") {
            ("oidc", n)
        } else {
            return Err(ServiceError::BadInput(format!(
                "{actor:?}: name a signed-in person as user:NAME or oidc:NAME (tokens are revoked instead)"
            )));
        };
        if name.is_empty() {
            return Err(ServiceError::BadInput("the name is empty".into()));
        }
        Ok(self
            .store
            .end_sessions(name, via, |ended| {
                NewAuditEntry::new(who, Action::SessionsEnded, Outcome::Applied)
                    .detail(json!({ "user": actor, "sessions": ended }))
            })
            .await?)
    }
}

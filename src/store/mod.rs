//! Persistence with sqlx: a SQLite file by default, PostgreSQL when the URL
//! says so. One set of portable SQL and migrations serves both. One module
//! per table; the store depends on the domain types, never on the service.

mod approvals;
mod audit;
pub mod lease;
mod points;
mod rollouts;
mod sign_in;
mod users;
mod watch;

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

pub use approvals::ApprovalRow;
pub use audit::{AuditFilter, MARKER_ACTIONS};
pub use points::Sparkline;
pub use rollouts::{Patch, PlanUse, RolloutFilter};
pub use sign_in::{OidcLoginRow, SessionRow, TokenRow};
pub use users::UserRow;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the rollout was changed by someone else (it is no longer at version {expected}); reload it and retry"
    )]
    VersionConflict { expected: i64 },
    #[error("function {function} already has an active rollout")]
    FunctionBusy { function: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error(
        "this process no longer leads (its lease of epoch {epoch} was taken over): nothing was written"
    )]
    Fenced { epoch: i64 },
    #[error("a user named {0:?} already exists")]
    UserExists(String),
    #[error("there is no user named {0:?}")]
    NoSuchUser(String),
    #[error(
        "the identity provider's name {0:?} already belongs to another of its accounts in rollgate; ask an admin"
    )]
    OidcNameTaken(String),
    #[error(
        "that would leave no admin who signs in with a password (the only way back in is then `rollgate user add` on the database); make another admin first"
    )]
    LastAdmin,
    #[error("a token named {0:?} already exists (revoked tokens keep their names)")]
    TokenExists(String),
    #[error(
        "request #{id} to approve an advance of this rollout is still pending; approve or deny it first"
    )]
    ApprovalPending { id: i64 },
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// Serializes this process's write transactions before they reach the
    /// database (SQLite allows one writer). Across processes, every write
    /// transaction first locks the audit head row (see `begin_write`).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction: holds this process's write lock and the database's
/// lock on the audit head, so audit appends from any number of processes
/// are serialized and the chain never forks.
pub(crate) struct WriteTx<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl WriteTx<'_> {
    async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// A plain path means a SQLite file; otherwise the URL picks the database.
pub fn normalize_url(url: &str) -> String {
    if url.contains("://") || url.starts_with("sqlite:") {
        url.to_string()
    } else {
        format!("sqlite://{url}?mode=rwc")
    }
}

/// The file of a SQLite database URL (`None`: PostgreSQL, or in memory).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let url = normalize_url(url);
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.into())
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{e}: {s}")))
}

/// A nullable JSON column, parsed.
fn opt_json<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<Option<T>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(from_json)
        .transpose()
}

/// A nullable timestamp column, parsed.
fn opt_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_time)
        .transpose()
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl Store {
    /// Connects and migrates. `url` is a sqlite:// or postgres:// URL, or a file path.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url);
        let pool = AnyPoolOptions::new()
            .max_connections(if url.starts_with("sqlite") { 4 } else { 8 })
            .connect(&url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Store {
            pool,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Raw access for tests and operators' tooling (e.g. simulating tampering).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a write transaction whose first statement locks the audit
    /// head row: on PostgreSQL a row lock every other writer waits for, on
    /// SQLite the database's write lock taken up front (no lock upgrade
    /// that could fail as busy halfway through).
    async fn begin_write(&self) -> Result<WriteTx<'_>, StoreError> {
        let guard = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Self::check_fence(&mut tx).await?;
        Ok(WriteTx { _guard: guard, tx })
    }
}

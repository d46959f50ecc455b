//! Several rollgate processes on one PostgreSQL database: any serves the
//! API and the dashboard; exactly one, the leader, runs the watcher and the
//! reconciler. Leadership is a lease row with an epoch (`store::lease`),
//! renewed every `ttl / 5`; a process that could not renew for two thirds
//! of the lease stops acting as leader before anyone else may take over,
//! and every write its loops make is fenced by its epoch anyway, so a
//! former leader that wakes up late (paused, partitioned) writes nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::lease::{Fence, Lease};
use crate::store::{Store, StoreError};

/// Default lease: another process takes over about 15 s after the leader died.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);

/// This process's view of the lease.
pub struct Leadership {
    /// This process's name in the lease: host, listening address, pid and
    /// a random part.
    pub me: String,
    pub ttl: Duration,
    /// This process is the only server on its database (SQLite, locked):
    /// it takes the lease whoever held it (a previous run that was killed).
    sole: bool,
    state: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// The epoch this process holds, and when (its clock) it last renewed.
    epoch: Option<(i64, Instant)>,
    /// The lease as last read.
    seen: Option<Lease>,
    /// The last renewal error.
    error: Option<String>,
}

/// What `/readyz` shows.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderStatus {
    /// This process leads: it runs the watcher and the reconciler.
    pub leader: bool,
    pub this_process: String,
    /// Who leads, as last read (empty: nobody).
    pub holder: String,
    pub epoch: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Leadership {
    /// `listen`: the address this process serves on. With the host name,
    /// the pid and a random part it names the process in the lease: no two
    /// processes share a name, even on cloned hosts with one host name.
    pub fn new(ttl: Duration, listen: std::net::SocketAddr, sole: bool) -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Leadership {
            me: format!("{host}/{listen}/{}-{nonce:08x}", std::process::id()),
            ttl,
            sole,
            state: Mutex::default(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes or renews the lease; returns whether this process leads.
    pub async fn renew(&self, store: &Store) -> Result<bool, StoreError> {
        let started = Instant::now();
        let claimed = store
            .claim_lease(&self.me, Utc::now(), self.ttl, self.sole)
            .await;
        let seen = store.lease().await.ok();
        let mut held = self.held();
        held.seen = seen;
        match claimed {
            Ok(Some(epoch)) => {
                if held.epoch.map(|(e, _)| e) != Some(epoch) {
                    tracing::info!(epoch, me = %self.me, "this process leads now");
                }
                held.epoch = Some((epoch, started));
                held.error = None;
                Ok(true)
            }
            Ok(None) => {
                if held.epoch.is_some() {
                    tracing::warn!(me = %self.me, "this process lost the lease");
                }
                held.epoch = None;
                held.error = None;
                Ok(false)
            }
            Err(e) => {
                held.error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// The fence to run leader work under, if this process leads: it
    /// renewed within two thirds of the lease (by its own clock), so no
    /// other process can have taken over yet.
    pub fn fence(&self) -> Option<Fence> {
        let held = self.held();
        let (epoch, at) = held.epoch?;
        (at.elapsed() < self.ttl * 2 / 3).then(|| Fence {
            holder: self.me.clone(),
            epoch,
        })
    }

    /// Gives the lease up on a clean shutdown.
    pub async fn release(&self, store: &Store) {
        let epoch = self.held().epoch.take();
        if let Some((epoch, _)) = epoch
            && let Err(e) = store.release_lease(&self.me, epoch).await
        {
            tracing::warn!(error = %e, "could not release the leader lease");
        }
    }

    pub fn status(&self) -> LeaderStatus {
        let leader = self.fence().is_some();
        let held = self.held();
        let seen = held.seen.clone();
        LeaderStatus {
            leader,
            this_process: self.me.clone(),
            holder: seen.as_ref().map(|l| l.holder.clone()).unwrap_or_default(),
            epoch: seen.as_ref().map_or(0, |l| l.epoch),
            expires_at: seen.map(|l| l.expires_at),
            error: held.error.clone(),
        }
    }
}

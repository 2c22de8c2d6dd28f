//! Replicas sharing a store announce themselves in it every few seconds
//! (`astra_replicas`, on the database clock). Two things follow:
//!
//! * the cap on calls to Astra (`astra.max_calls_per_sec`) is for the whole
//!   deployment: each replica takes one share per live replica, and the
//!   shares move within a heartbeat of a replica starting or stopping. The
//!   scheduler, which makes most of the calls, starts its first pass only
//!   once every replica that started with this one has had time to be seen;
//! * a SQLite store refuses to start when a replica on another host used the
//!   same file within the live window: SQLite's locks do not hold across
//!   hosts (a shared network volume). Replicas with a file each cannot be
//!   seen from here; the manifests keep SQLite to one replica.

use std::sync::Arc;
use std::time::Duration;

use super::error::UserTokenError;
use super::pacer::Pacer;
use super::store::{Replica, UserStore};
use crate::core::jittered;
use crate::observability::Metrics;

/// How often a replica announces itself: also how long the others may run
/// on their old shares after it starts (the cap is briefly exceeded then).
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// A replica silent for longer is no longer counted (three heartbeats).
pub const LIVE_SECS: i64 = 6;

/// Why this replica may not join the store.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "replica {holder} on host {host} used this SQLite store {seen_secs_ago} s ago; SQLite serves replicas on one host only"
    )]
    OtherHost {
        holder: String,
        host: String,
        seen_secs_ago: i64,
    },
    #[error(transparent)]
    Store(#[from] UserTokenError),
}

/// This replica's place among those sharing the store.
pub struct Membership {
    store: Arc<dyn UserStore>,
    /// Names this replica in leases and heartbeats.
    holder: String,
    /// The host this replica runs on.
    host: String,
    pacer: Arc<Pacer>,
    metrics: Metrics,
}

impl Membership {
    /// Not yet announced: see [`Membership::join`].
    pub(super) fn new(store: Arc<dyn UserStore>, pacer: Arc<Pacer>, metrics: Metrics) -> Self {
        let host = host_name();
        Self {
            store,
            holder: format!("{host}-{:08x}", fastrand::u32(..)),
            host,
            pacer,
            metrics,
        }
    }

    /// This replica's name in leases.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The first heartbeat, at start-up.
    pub async fn join(&self) -> Result<(), JoinError> {
        let live = self.heartbeat().await?;
        if self.store.single_host()
            && let Some(other) = live.iter().find(|r| r.host != self.host)
        {
            return Err(JoinError::OtherHost {
                holder: other.holder.clone(),
                host: other.host.clone(),
                seen_secs_ago: other.seen_secs_ago,
            });
        }
        Ok(())
    }

    /// Announces this replica every [`HEARTBEAT`] until the task is aborted.
    pub async fn run_heartbeat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(jittered(HEARTBEAT)).await;
            if let Err(e) = self.heartbeat().await {
                // The shares stay as they were until the store answers again.
                tracing::warn!(error = %e, "astra replica heartbeat failed");
            }
        }
    }

    /// Forgets this replica at shutdown, so the others take over its share.
    pub async fn leave(&self) {
        if let Err(e) = self.store.leave(&self.holder).await {
            tracing::warn!(error = %e, "astra replica could not sign off; its share lapses in {LIVE_SECS} s");
        }
    }

    async fn heartbeat(&self) -> Result<Vec<Replica>, UserTokenError> {
        let live = self
            .store
            .heartbeat(&self.holder, &self.host, LIVE_SECS)
            .await?;
        // This replica counts even if its own row was not read back.
        let count = live.len().max(1);
        self.pacer.set_share(count);
        self.metrics.astra().set_replicas(count);
        Ok(live)
    }
}

/// This host's name as a store label: `HOSTNAME` (the pod name on
/// Kubernetes) with anything outside the label alphabet dropped.
fn host_name() -> String {
    let raw = std::env::var("HOSTNAME").unwrap_or_default();
    let name: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        .take(100)
        .collect();
    if name.is_empty() {
        "replica".into()
    } else {
        name
    }
}

//! Keeps every user's refresh token young. Each replica ticks on a jittered
//! interval and claims due users in batches (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL), so replicas share the work and no user is claimed twice.
//! Astra calls go through the same share of the global cap as on-demand
//! refreshes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::error::UserTokenError;
use super::pacer::Pacer;
use super::refresh::{Refresher, Trigger};
use super::replicas::HEARTBEAT;
use super::settings::Policy;
use super::store::UserStore;
use crate::core::jittered;

/// How many claimed users one replica refreshes at once (the pacer still caps calls).
const CONCURRENCY: usize = 16;

/// The scheduled refreshes of one replica.
pub struct Scheduler {
    store: Arc<dyn UserStore>,
    refresher: Arc<Refresher>,
    pacer: Arc<Pacer>,
    /// This replica's name in the leases it claims.
    holder: String,
    interval: Duration,
    batch: u32,
    lease_secs: i64,
}

impl Scheduler {
    pub(super) fn new(
        store: Arc<dyn UserStore>,
        refresher: Arc<Refresher>,
        pacer: Arc<Pacer>,
        holder: String,
        policy: &Policy,
    ) -> Self {
        Self {
            store,
            refresher,
            pacer,
            holder,
            interval: policy.scheduler_interval,
            batch: policy.scheduler_batch,
            lease_secs: policy.lease_secs,
        }
    }

    /// Runs until the task is aborted at shutdown.
    pub async fn run(self: Arc<Self>) {
        // Replicas started together must see each other before they take
        // their shares of the Astra cap (see `replicas`).
        tokio::time::sleep(2 * HEARTBEAT).await;
        loop {
            tokio::time::sleep(jittered(self.interval)).await;
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "astra scheduler pass stopped early; next tick retries");
            }
        }
    }

    /// Claims and refreshes due users until none are left; returns how many
    /// refreshes were attempted.
    pub async fn pass(&self) -> Result<usize, UserTokenError> {
        let mut attempted = 0;
        loop {
            // Every lease of a batch starts at the claim, but its calls wait
            // their turn at this replica's share of the cap: claim no more
            // than fit in half a lease, or the last ones would be refreshed
            // after their lease ran out, by someone else as well.
            let half_lease = Duration::from_secs(self.lease_secs.unsigned_abs() / 2);
            let batch = self.batch.min(self.pacer.calls_within(half_lease));
            let claimed = self
                .store
                .claim_due(&self.holder, batch, self.lease_secs)
                .await?;
            let count = claimed.len();
            attempted += count;
            futures::stream::iter(claimed)
                .for_each_concurrent(CONCURRENCY, |(lease, row)| async move {
                    // Outcomes are recorded on the row and in metrics.
                    let _ = self
                        .refresher
                        .refresh_claimed(Trigger::Scheduled, lease, row)
                        .await;
                })
                .await;
            if count < batch as usize {
                break;
            }
        }
        if let Err(e) = self.store.purge_expired_states().await {
            tracing::warn!(error = %e, "expired authorization states could not be purged");
        }
        Ok(attempted)
    }
}

//! [`Refresher`]: one refresh of one user, across replicas, told in one place.
//!
//! 1. **Single-flight** per user *and* generation: every caller of this
//!    replica that wants the user past generation `g` shares one refresh,
//!    run as a task of its own so a caller going away never cancels it. A
//!    caller past another generation gets a flight of its own, so nobody
//!    ever joins a refresh that ends where they started.
//! 2. **Lease**: a conditional `UPDATE … RETURNING` on the database clock
//!    takes the row's lease only if the stored generation is still `g`; if
//!    another replica moved it on, its row is the answer; if another holder
//!    is refreshing, wait for it.
//! 3. **Astra**: the current refresh token, then once the previous one
//!    (still valid at Astra until it expires) if Astra refused the current.
//! 4. **Commit**, only while the lease's epoch is still ours. A result that
//!    was fenced out is discarded and counted; the winner's tokens stand.
//!
//! A refusal marks the user `reauthorization_required` (and tells the
//! webhook); transient failures (5xx, 429, timeouts) and a refusal of our
//! own client credentials leave the status alone and schedule a retry.
//! A crash after Astra answered and before the commit loses nothing: the
//! stored refresh token is still valid, and the next holder of the lease
//! (once it expires) refreshes again.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::astra_client::{AstraError, AstraTokens};
use super::cache::{UserTokenCache, forget};
use super::error::UserTokenError;
use super::pacer::PacedAstra;
use super::persist::until_stored;
use super::sealer::Sealer;
use super::store::{
    CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, UserRow, UserStatus, UserStore,
};
use super::user_ref::UserRef;
use super::webhook::Webhook;
use crate::core::{FlightError, SingleFlight, jittered, unix_secs};
use crate::observability::Metrics;

/// How long a failed refresh waits before the scheduler tries that user again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// How soon a caller waiting on another holder's lease looks again; the
/// wait doubles up to [`LONGEST_POLL`] (a refresh takes one Astra call).
const POLL: Duration = Duration::from_millis(50);
const LONGEST_POLL: Duration = Duration::from_millis(400);

crate::core::named_enum! {
    /// What asked for a refresh, for metrics and logs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Trigger {
        /// A token request found the access token due.
        OnDemand = "on_demand",
        /// A caller's Astra call failed with an expired token.
        StaleGeneration = "stale_generation",
        /// The scheduler, keeping the refresh token young.
        Scheduled = "scheduled",
    }
}

/// Points where a test can stop a refresh as a crash would.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Astra has answered with new tokens; nothing is written yet.
    AfterAstraBeforeCommit,
}

/// Returns true to stop the refresh at that point, leaving the lease held
/// and nothing written, as a killed process would.
#[cfg(feature = "test-hooks")]
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> bool + Send + Sync>;

type Outcome = Result<Arc<UserRow>, Arc<UserTokenError>>;

/// Everything a refresh touches, and the refreshes in flight on this replica.
pub struct Refresher {
    store: Arc<dyn UserStore>,
    sealer: Arc<Sealer>,
    astra: Arc<PacedAstra>,
    metrics: Metrics,
    webhook: Option<Webhook>,
    /// Evicted after every write here; other replicas hear of it through the change feed.
    cache: Option<Arc<UserTokenCache>>,
    /// Names this replica in leases, so an operator can see who holds one.
    holder: String,
    lease_secs: i64,
    /// How long a caller waits for a refresh before `astra-refresh-busy`.
    wait_timeout: Duration,
    in_flight: SingleFlight<(UserRef, i64), Outcome>,
    #[cfg(feature = "test-hooks")]
    fault: std::sync::OnceLock<FaultHook>,
}

impl Refresher {
    /// Takes the parts a refresh needs; see the fields.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        store: Arc<dyn UserStore>,
        sealer: Arc<Sealer>,
        astra: Arc<PacedAstra>,
        metrics: Metrics,
        webhook: Option<Webhook>,
        cache: Option<Arc<UserTokenCache>>,
        holder: String,
        policy: &super::settings::Policy,
    ) -> Self {
        Self {
            store,
            sealer,
            astra,
            metrics,
            webhook,
            cache,
            holder,
            lease_secs: policy.lease_secs,
            wait_timeout: policy.wait_timeout,
            in_flight: SingleFlight::new(),
            #[cfg(feature = "test-hooks")]
            fault: std::sync::OnceLock::new(),
        }
    }

    /// Installs a [`FaultHook`] (once; later calls are refused).
    #[cfg(feature = "test-hooks")]
    pub fn set_fault_hook(&self, hook: FaultHook) -> Result<(), FaultHook> {
        self.fault.set(hook)
    }

    /// `user` moved past `generation`, by this call or anyone else's.
    pub async fn refresh(
        self: &Arc<Self>,
        user: &UserRef,
        trigger: Trigger,
        generation: i64,
    ) -> Result<Arc<UserRow>, UserTokenError> {
        let this = Arc::clone(self);
        let owned = user.clone();
        let work = async move {
            this.under_lease(&owned, trigger, generation)
                .await
                .map(Arc::new)
                .map_err(Arc::new)
        };
        let key = (user.clone(), generation);
        match self.in_flight.run(key, self.wait_timeout, work).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err((*e).clone()),
            Err(FlightError::TimedOut) => Err(UserTokenError::RefreshBusy {
                retry_after: Duration::from_secs(1),
            }),
            Err(FlightError::Crashed) => Err(UserTokenError::Crashed),
        }
    }

    /// Takes the lease unless someone else already moved `user` past
    /// `generation`, waiting for another holder's lease if there is one.
    async fn under_lease(
        &self,
        user: &UserRef,
        trigger: Trigger,
        generation: i64,
    ) -> Result<UserRow, UserTokenError> {
        loop {
            let outcome = self
                .store
                .try_lease(user, &self.holder, self.lease_secs, Some(generation))
                .await?;
            match outcome {
                LeaseOutcome::Acquired { lease, row } => {
                    return self.refresh_claimed(trigger, lease, row).await;
                }
                LeaseOutcome::GenerationMoved { row } => return settled(row),
                LeaseOutcome::NotFound => return Err(UserTokenError::UnknownUser),
                LeaseOutcome::Busy { row } => {
                    if row.status == UserStatus::ReauthorizationRequired {
                        return Err(UserTokenError::ReauthorizationRequired);
                    }
                    if let Some(row) = self.await_holder(user, generation).await? {
                        return settled(row);
                    }
                }
            }
        }
    }

    /// Watches `user`'s row while another holder refreshes it: the row once
    /// it moved past `generation`, or `None` once the lease has lapsed
    /// (worth trying to take). A read per look, never a write: every replica
    /// meeting the same expired token waits here at once, and each look
    /// costs the pool a connection. The caller's own timeout bounds this.
    async fn await_holder(
        &self,
        user: &UserRef,
        generation: i64,
    ) -> Result<Option<UserRow>, UserTokenError> {
        let mut wait = POLL;
        loop {
            tokio::time::sleep(jittered(wait)).await;
            wait = (wait * 2).min(LONGEST_POLL);
            let Some(row) = self.store.get(user).await? else {
                return Err(UserTokenError::UnknownUser);
            };
            if row.generation != generation || row.status != UserStatus::Active {
                return Ok(Some(row));
            }
            if row.lease_expires_at.is_none_or(|end| end <= unix_secs()) {
                return Ok(None);
            }
        }
    }

    /// Refreshes the user `row` under `lease` already taken (the scheduler
    /// claims its leases in batches).
    pub async fn refresh_claimed(
        &self,
        trigger: Trigger,
        lease: Lease,
        row: UserRow,
    ) -> Result<UserRow, UserTokenError> {
        let user = &row.user_ref;
        let current = self.sealer.refresh_token(user, &row.refresh_token)?;
        let mut answer = self.astra.refresh(&current).await;
        if matches!(answer, Err(AstraError::GrantRefused { .. }))
            && let Some(previous) = self.previous_refresh_token(&row)?
        {
            tracing::warn!(
                user_ref = %user,
                "astra refused the current refresh token; trying the previous one"
            );
            answer = self.astra.refresh(&previous).await;
        }
        match answer {
            Ok(tokens) => self.commit(trigger, lease, &row, &tokens).await,
            Err(e) => Err(self.record_failure(trigger, &lease, &row, &e).await),
        }
    }

    /// The refresh token `row` held before its last refresh, while Astra still honours it.
    fn previous_refresh_token(
        &self,
        row: &UserRow,
    ) -> Result<Option<SecretString>, UserTokenError> {
        let Some(previous) = row.previous_refresh.as_ref() else {
            return Ok(None);
        };
        if previous.expires_at <= unix_secs() {
            return Ok(None);
        }
        Ok(Some(
            self.sealer.refresh_token(&row.user_ref, &previous.token)?,
        ))
    }

    /// Writes Astra's answer if the lease is still ours.
    async fn commit(
        &self,
        trigger: Trigger,
        lease: Lease,
        row: &UserRow,
        tokens: &AstraTokens,
    ) -> Result<UserRow, UserTokenError> {
        #[cfg(feature = "test-hooks")]
        if self
            .fault
            .get()
            .is_some_and(|hook| hook(FaultPoint::AfterAstraBeforeCommit))
        {
            return Err(UserTokenError::Crashed);
        }
        let user = &row.user_ref;
        let sealed = self.sealer.seal(user, tokens, unix_secs())?;
        let outcome = self.write(&lease, &sealed).await?;
        let request_id = tokens.request_id.as_deref();
        match outcome {
            CommitOutcome::Committed(row) => {
                forget(self.cache.as_ref(), user);
                self.metrics.astra().refresh(trigger.as_str(), "ok");
                tracing::info!(
                    user_ref = %user,
                    trigger = trigger.as_str(),
                    generation = row.generation,
                    astra_request_id = request_id,
                    "astra tokens refreshed"
                );
                Ok(row)
            }
            CommitOutcome::FencedOut => {
                self.metrics.astra().fenced_out();
                self.metrics.astra().refresh(trigger.as_str(), "fenced_out");
                tracing::warn!(
                    user_ref = %user,
                    trigger = trigger.as_str(),
                    astra_request_id = request_id,
                    "refresh result discarded: another holder took the lease over"
                );
                let current = self.store.get(user).await?;
                settled(current.ok_or(UserTokenError::UnknownUser)?)
            }
        }
    }

    /// Astra has rotated the tokens, so the stored access token is dead: the
    /// answer must land. A store that cannot be reached is tried again until
    /// one lease length past the lease's end. The write stays fenced by the
    /// lease's epoch, so a late one never overwrites a newer holder's; past
    /// that, the next holder refreshes at once with the stored refresh token,
    /// which Astra honours until it expires, and the rotated one is dropped.
    async fn write(
        &self,
        lease: &Lease,
        sealed: &NewTokens,
    ) -> Result<CommitOutcome, UserTokenError> {
        let give_up_at = lease.expires_at + self.lease_secs;
        let commit = || self.store.commit_refresh(lease, sealed.clone());
        until_stored(&lease.user_ref, give_up_at, &self.metrics, commit)
            .await
            .map_err(|e| {
                tracing::error!(user_ref = %lease.user_ref, error = %e, "refresh result lost; the next refresh uses the stored refresh token");
                e.into()
            })
    }

    /// Records why the refresh failed and ends the lease; returns the error for callers.
    async fn record_failure(
        &self,
        trigger: Trigger,
        lease: &Lease,
        row: &UserRow,
        e: &AstraError,
    ) -> UserTokenError {
        let user = &row.user_ref;
        self.metrics.astra().refresh(trigger.as_str(), e.code());
        let request_id = e.request_id();
        let (release, error) = match e {
            AstraError::GrantRefused { .. } => (
                LeaseRelease::ReauthorizationRequired {
                    error_code: e.code(),
                    astra_request_id: request_id,
                },
                UserTokenError::ReauthorizationRequired,
            ),
            _ => {
                // Never earlier than already planned: callers were promised
                // the current token until then.
                let retry_at =
                    (unix_secs() + secs(jittered(RETRY_AFTER_FAILURE))).max(row.next_refresh_at);
                (
                    LeaseRelease::Failed {
                        error_code: e.code(),
                        retry_at,
                        astra_request_id: request_id,
                    },
                    UserTokenError::from_astra(e),
                )
            }
        };
        tracing::warn!(
            user_ref = %user,
            trigger = trigger.as_str(),
            astra_request_id = request_id,
            error = %e,
            "astra refresh failed"
        );
        match self.store.release_lease(lease, release).await {
            Ok(true) => {
                forget(self.cache.as_ref(), user);
                if matches!(error, UserTokenError::ReauthorizationRequired)
                    && let Some(webhook) = &self.webhook
                {
                    webhook.reauthorization_required(user, request_id);
                }
            }
            Ok(false) => self.metrics.astra().fenced_out(),
            Err(store) => return store.into(),
        }
        error
    }
}

/// A stored row, as a caller may use it: only an active one.
pub fn settled(row: UserRow) -> Result<UserRow, UserTokenError> {
    match row.status {
        UserStatus::Active => Ok(row),
        UserStatus::ReauthorizationRequired => Err(UserTokenError::ReauthorizationRequired),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

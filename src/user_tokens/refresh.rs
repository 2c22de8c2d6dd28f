//! One refresh of one user, across replicas: take the row's lease (a
//! conditional `UPDATE … RETURNING` on the database clock), call Astra,
//! and commit only while the lease's epoch is still ours. A result that was
//! fenced out is discarded and counted; the winner's tokens stand.
//!
//! If Astra refuses the current refresh token, the previous one (still valid
//! at Astra until it expires) is tried once before the user is marked
//! `reauthorization_required`. Transient failures (5xx, 429, timeouts) and a
//! refusal of our own client credentials leave the user's status alone.
//!
//! A crash after Astra answered and before the commit loses nothing: the
//! stored refresh token is still valid, and the next holder of the lease
//! (once it expires) refreshes again.

use std::sync::Arc;
use std::time::Duration;

use super::astra_client::{AstraError, AstraTokens};
use super::crypto::Field;
use super::error::UserTokenError;
use super::service::{FaultPoint, Trigger, UserTokens, now};
use super::store::{CommitOutcome, Lease, LeaseOutcome, LeaseRelease, UserRow, UserStatus};
use super::user_ref::UserRef;
use crate::core::jittered;

/// How long a failed refresh waits before the scheduler tries that user again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

/// How often a caller waiting on another holder's lease looks again.
const POLL: Duration = Duration::from_millis(100);

impl UserTokens {
    /// Refreshes `user` unless someone else already moved it past `generation`,
    /// waiting for another holder's lease if there is one.
    pub(super) async fn refresh_under_lease(
        self: &Arc<Self>,
        user: &UserRef,
        trigger: Trigger,
        generation: i64,
    ) -> Result<UserRow, UserTokenError> {
        loop {
            let outcome = self
                .store
                .try_lease(user, &self.holder, self.policy.lease_secs, Some(generation))
                .await?;
            match outcome {
                LeaseOutcome::Acquired { lease, row } => {
                    return self.refresh_with_lease(trigger, lease, row).await;
                }
                LeaseOutcome::GenerationMoved { row } => return settled(row),
                LeaseOutcome::NotFound => return Err(UserTokenError::UnknownUser),
                LeaseOutcome::Busy { row } => {
                    if row.status == UserStatus::ReauthorizationRequired {
                        return Err(UserTokenError::ReauthorizationRequired);
                    }
                    // The caller's own timeout bounds this wait.
                    tokio::time::sleep(jittered(POLL)).await;
                }
            }
        }
    }

    /// Refreshes the user `row` under `lease` (also the scheduler's entry point).
    pub(super) async fn refresh_with_lease(
        &self,
        trigger: Trigger,
        lease: Lease,
        row: UserRow,
    ) -> Result<UserRow, UserTokenError> {
        let user = &row.user_ref;
        let refresh_token = self
            .cipher
            .open(user, Field::RefreshToken, &row.refresh_token)?;
        let mut answer = self.call_astra(&refresh_token).await;
        if matches!(answer, Err(AstraError::GrantRefused { .. })) {
            let previous = row
                .previous_refresh
                .as_ref()
                .filter(|p| p.expires_at > now());
            if let Some(previous) = previous {
                tracing::warn!(
                    user_ref = %user,
                    "astra refused the current refresh token; trying the previous one"
                );
                let token = self
                    .cipher
                    .open(user, Field::RefreshToken, &previous.token)?;
                answer = self.call_astra(&token).await;
            }
        }
        match answer {
            Ok(tokens) => self.commit(trigger, lease, &row, &tokens).await,
            Err(e) => Err(self.record_failure(trigger, &lease, &row, &e).await),
        }
    }

    async fn call_astra(
        &self,
        refresh_token: &secrecy::SecretString,
    ) -> Result<AstraTokens, AstraError> {
        self.pacer.wait().await;
        let started = tokio::time::Instant::now();
        let answer = self.astra.refresh(refresh_token).await;
        self.metrics.astra_call(started.elapsed());
        answer
    }

    async fn commit(
        &self,
        trigger: Trigger,
        lease: Lease,
        row: &UserRow,
        tokens: &AstraTokens,
    ) -> Result<UserRow, UserTokenError> {
        if self
            .fault
            .as_ref()
            .is_some_and(|hook| hook(FaultPoint::AfterAstraBeforeCommit))
        {
            return Err(UserTokenError::Crashed);
        }
        let user = &row.user_ref;
        let sealed = self.seal(user, tokens, now())?;
        match self.store.commit_refresh(&lease, sealed).await? {
            CommitOutcome::Committed(row) => {
                self.forget_cached(user);
                self.metrics.astra_refresh(trigger.as_str(), "ok");
                tracing::info!(
                    user_ref = %user,
                    trigger = trigger.as_str(),
                    generation = row.generation,
                    astra_request_id = tokens.request_id.as_deref(),
                    "astra tokens refreshed"
                );
                Ok(row)
            }
            CommitOutcome::FencedOut => {
                self.metrics.astra_fenced_out();
                self.metrics.astra_refresh(trigger.as_str(), "fenced_out");
                tracing::warn!(
                    user_ref = %user,
                    trigger = trigger.as_str(),
                    astra_request_id = tokens.request_id.as_deref(),
                    "refresh result discarded: another holder took the lease over"
                );
                let current = self
                    .store
                    .get(user)
                    .await?
                    .ok_or(UserTokenError::UnknownUser)?;
                settled(current)
            }
        }
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
        self.metrics.astra_refresh(trigger.as_str(), e.code());
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
                    (now() + secs(jittered(RETRY_AFTER_FAILURE))).max(row.next_refresh_at);
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
                self.forget_cached(user);
                if matches!(error, UserTokenError::ReauthorizationRequired)
                    && let Some(webhook) = &self.webhook
                {
                    webhook.reauthorization_required(user, request_id);
                }
            }
            Ok(false) => self.metrics.astra_fenced_out(),
            Err(store) => return store.into(),
        }
        error
    }
}

/// A stored row, as a caller may use it: only an active one.
pub(super) fn settled(row: UserRow) -> Result<UserRow, UserTokenError> {
    match row.status {
        UserStatus::Active => Ok(row),
        UserStatus::ReauthorizationRequired => Err(UserTokenError::ReauthorizationRequired),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

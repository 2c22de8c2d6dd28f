//! What the store keeps and answers: a user's row, the tokens written to it,
//! and the outcomes of leases and commits.

use std::fmt;
use std::str::FromStr;

use super::super::crypto::Sealed;
use super::super::user_ref::UserRef;

crate::core::named_enum! {
    /// Whether a user's stored tokens can still be used and refreshed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum UserStatus {
        Active = "active",
        /// Astra refused the refresh token; the user must authorize again.
        ReauthorizationRequired = "reauthorization_required",
    }
}

/// An unknown status string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown user status; expected `active` or `reauthorization_required`")]
pub struct UnknownStatus;

impl FromStr for UserStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(UserStatus::Active),
            "reauthorization_required" => Ok(UserStatus::ReauthorizationRequired),
            _ => Err(UnknownStatus),
        }
    }
}

/// The refresh token that was current before the last refresh. Astra keeps
/// it valid until it expires, so it is a fallback if the newest one is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousRefresh {
    pub token: Sealed,
    pub expires_at: i64,
}

/// One user's stored state. Times are unix seconds.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_ref: UserRef,
    pub status: UserStatus,
    pub generation: i64,
    pub access_token: Sealed,
    pub access_expires_at: i64,
    pub refresh_token: Sealed,
    pub refresh_issued_at: i64,
    pub refresh_expires_at: i64,
    pub previous_refresh: Option<PreviousRefresh>,
    /// When the scheduler should refresh next (also the retry time after a failure).
    pub next_refresh_at: i64,
    pub last_refresh_at: Option<i64>,
    pub last_astra_request_id: Option<String>,
    /// A short machine-readable code such as `astra_timeout`; never a token.
    pub last_error: Option<String>,
    pub lease_epoch: i64,
    pub lease_holder: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl fmt::Debug for UserRow {
    // Written out so that ciphertexts never reach a log line, not even as bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("user_ref", &self.user_ref)
            .field("status", &self.status)
            .field("generation", &self.generation)
            .field("access_key_id", &self.access_token.key_id)
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_key_id", &self.refresh_token.key_id)
            .field("refresh_issued_at", &self.refresh_issued_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field(
                "previous_refresh_key_id",
                &self.previous_refresh.as_ref().map(|p| &p.token.key_id),
            )
            .field(
                "previous_refresh_expires_at",
                &self.previous_refresh.as_ref().map(|p| p.expires_at),
            )
            .field("next_refresh_at", &self.next_refresh_at)
            .field("last_refresh_at", &self.last_refresh_at)
            .field("last_astra_request_id", &self.last_astra_request_id)
            .field("last_error", &self.last_error)
            .field("lease_epoch", &self.lease_epoch)
            .field("lease_holder", &self.lease_holder)
            .field("lease_expires_at", &self.lease_expires_at)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Tokens to store after a code exchange, a refresh-token import, or a refresh.
#[derive(Debug, Clone)]
pub struct NewTokens {
    pub access_token: Sealed,
    pub access_expires_at: i64,
    pub refresh_token: Sealed,
    pub refresh_issued_at: i64,
    pub refresh_expires_at: i64,
    pub next_refresh_at: i64,
    pub astra_request_id: Option<String>,
}

/// Tokens returned by a refresh; the same shape as [`NewTokens`].
pub type RefreshedTokens = NewTokens;

/// The right to refresh one user, until `expires_at` (database clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub user_ref: UserRef,
    pub epoch: i64,
    pub holder: String,
    pub expires_at: i64,
}

/// The result of [`UserStore::try_lease`].
#[derive(Debug, Clone)]
pub enum LeaseOutcome {
    Acquired {
        lease: Lease,
        row: UserRow,
    },
    /// Another holder's lease has not expired; `row` is the current state to poll on.
    Busy {
        row: UserRow,
    },
    /// The row's generation is not the one the caller conditioned on: someone
    /// already changed the tokens, so the caller should re-read rather than refresh.
    GenerationMoved {
        row: UserRow,
    },
    NotFound,
}

/// The result of [`UserStore::commit_refresh`].
// Returned once per refresh and matched at once, never collected, so boxing
// the row would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    Committed(UserRow),
    /// The lease was superseded (taken over, released, or a new authorization
    /// arrived); nothing was written.
    FencedOut,
}

/// How a lease ends without new tokens.
#[derive(Debug, Clone, Copy)]
pub enum LeaseRelease<'a> {
    /// Nothing to record (e.g. the holder found the tokens already fresh).
    Unused,
    /// A retryable failure: status stays, the scheduler retries at `retry_at`.
    Failed {
        error_code: &'a str,
        retry_at: i64,
        astra_request_id: Option<&'a str>,
    },
    /// Astra refused the refresh token: the user must authorize again.
    ReauthorizationRequired {
        error_code: &'a str,
        astra_request_id: Option<&'a str>,
    },
}

/// A pending authorization, looked up by the hash of its `state` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub user_ref: UserRef,
    pub user_intent_id: Option<String>,
    /// The sealed PKCE `code_verifier`, when the authorization sent a challenge.
    pub code_verifier: Option<Sealed>,
}

/// The tokens of an authorization whose callback has run, waiting for the
/// customer's backend to confirm them for the user who started it.
#[derive(Debug, Clone)]
pub struct UnconfirmedAuthorization {
    /// The user the authorization was started for.
    pub user_ref: UserRef,
    pub tokens: NewTokens,
}

//! [`UserTokenError`]: why a per-user token operation failed, in words safe
//! for logs and answers (never a token, code, state or secret).

use std::time::Duration;

use super::astra_client::AstraError;
use super::crypto::CryptoError;
use super::store::StoreError;

/// Why a per-user token operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UserTokenError {
    #[error("user_ref must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -")]
    InvalidUserRef,
    #[error("the request is malformed: {0}")]
    BadRequest(&'static str),
    #[error("no such user is stored")]
    UnknownUser,
    #[error("the user must authorize with Astra again")]
    ReauthorizationRequired,
    #[error("the authorization state is unknown, already used or expired")]
    StateInvalid,
    #[error("Astra did not authorize: the person declined or Astra refused the request ({0})")]
    AuthorizationDenied(&'static str),
    #[error("the confirmation handle is unknown, already used or expired")]
    ConfirmationInvalid,
    #[error(
        "this authorization was started for another user_ref; its result was erased and the user's stored authorization is unchanged"
    )]
    AuthorizationMismatch,
    #[error("Astra refused the authorization code or refresh token")]
    GrantRefused,
    #[error("Astra rejected this service's client credentials (astra.client_id / client_secret)")]
    AstraClientRejected,
    #[error("Astra is unavailable ({code})")]
    AstraUnavailable {
        code: &'static str,
        retry_after: Duration,
    },
    #[error("another holder is refreshing this user's tokens")]
    RefreshBusy { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored token could not be decrypted ({0})")]
    Unreadable(#[from] CryptoError),
    #[error("the refresh ended without a result (it panicked or was stopped)")]
    Crashed,
}

impl UserTokenError {
    /// Worth trying again shortly: Astra or the store is down or busy.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            UserTokenError::AstraUnavailable { .. }
                | UserTokenError::RefreshBusy { .. }
                | UserTokenError::Store(StoreError::Unavailable { .. })
        )
    }

    /// An Astra failure outside a refresh (code exchange, import).
    pub fn from_astra(e: &AstraError) -> Self {
        match e {
            AstraError::GrantRefused { .. } => UserTokenError::GrantRefused,
            AstraError::ClientRejected { .. } => UserTokenError::AstraClientRejected,
            AstraError::RateLimited { retry_after, .. } => UserTokenError::AstraUnavailable {
                code: e.code(),
                retry_after: retry_after.unwrap_or(Duration::from_secs(5)),
            },
            _ => UserTokenError::AstraUnavailable {
                code: e.code(),
                retry_after: Duration::from_secs(5),
            },
        }
    }
}

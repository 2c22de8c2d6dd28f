//! Per-user Astra tokens: identity, encryption at rest, and shared storage.
//!
//! An Astra end user's authorization yields an access token (2 h; only one
//! valid per user at a time, a refresh invalidates the previous one) and a
//! refresh token (10 days, rotated on every refresh, old ones usable until
//! they expire). This module is the foundation the routes, the refresh
//! coordinator and the scheduler build on:
//!
//! * [`user_ref`]: the validated user identifier ([`UserRef`]);
//! * [`crypto`]: AES-256-GCM sealing bound to user and field, with a
//!   rotating keyring ([`TokenCipher`]), so the database never holds a
//!   usable token;
//! * [`store`]: the [`UserStore`] trait with SQLite and PostgreSQL backends,
//!   including fenced refresh leases, because a refresh that two replicas
//!   run at once leaves one of them holding a dead token.

pub mod crypto;
pub mod store;
pub mod user_ref;

pub use crypto::{CryptoError, Field, KeyringError, Sealed, TokenCipher};
pub use store::{
    CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, StoreError, StoreOptions, UserRow, UserStatus, UserStore,
    connect,
};
pub use user_ref::{UserRef, UserRefError};

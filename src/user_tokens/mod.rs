//! Per-user Astra authorizations: authorization code, rotating refresh
//! tokens, encrypted storage, one refresh at a time across replicas.
//!
//! An Astra end user's authorization yields an access token (2 h; only one
//! valid per user at a time, a refresh invalidates the previous one) and a
//! refresh token (10 days, rotated on every refresh, old ones usable until
//! they expire).
//!
//! * [`user_ref`]: the validated user identifier ([`UserRef`]);
//! * [`crypto`]: AES-256-GCM sealing bound to user and field, with a
//!   rotating keyring ([`TokenCipher`]), so the database never holds a
//!   usable token;
//! * [`store`]: the [`UserStore`] trait with SQLite and PostgreSQL backends,
//!   including fenced refresh leases;
//! * [`astra_client`]: Astra's token endpoint and authorize URL;
//! * [`service`]: [`UserTokens`], what the routes call: token hand-out,
//!   summaries, deletion; it assembles the parts below from `[astra]`
//!   (checked once in `settings`);
//! * [`authorization`]: [`Authorizations`], starting and completing a
//!   user's authorization (state, callback, code exchange, import);
//! * [`refresh`]: [`Refresher`], one refresh of one user across replicas:
//!   single-flight, lease, Astra, fenced commit;
//! * [`cache`]: the bounded in-process token cache, kept coherent by the
//!   store's change feed (PostgreSQL) and served during a store outage;
//! * [`scheduler`]: refreshes refresh tokens well inside their 10 days;
//! * [`replicas`]: [`replicas::Membership`], the heartbeat that splits the
//!   cap on Astra calls (`pacer`) between live replicas, and keeps SQLite
//!   to one host;
//! * `persist`: what Astra issued is written until the store takes it;
//! * [`webhook`]: tells the customer when a user must authorize again.

pub mod astra_client;
pub mod authorization;
pub mod cache;
pub mod crypto;
mod error;
mod pacer;
mod persist;
pub mod refresh;
pub mod replicas;
pub mod scheduler;
mod sealer;
pub mod secret;
pub mod service;
mod settings;
pub mod store;
pub mod user_ref;
pub mod webhook;

pub use authorization::{Authorizations, AwaitingConfirmation, Grant, StartedAuthorization};
pub use crypto::{CryptoError, Field, KeyringError, Sealed, TokenCipher};
pub use error::UserTokenError;
#[cfg(feature = "test-hooks")]
pub use refresh::{FaultHook, FaultPoint};
pub use refresh::{Refresher, Trigger};
pub use service::{HandedToken, UserSummary, UserTokens};
pub use store::{
    ChangeSink, CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, Replica, StoreError, StoreOptions, UnconfirmedAuthorization,
    UserRow, UserStatus, UserStore, connect,
};
pub use user_ref::{UserRef, UserRefError};

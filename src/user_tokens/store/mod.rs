//! Durable, shared storage of per-user Astra tokens (SQLite or PostgreSQL).
//!
//! Astra allows one live access token per user and rotates the refresh token
//! on every refresh, so two replicas refreshing the same user at once would
//! invalidate each other's access token and leave a stored token that no
//! longer works. The store therefore does more than keep rows: it hands out
//! short **leases** so exactly one holder refreshes a user at a time, and it
//! **fences** every write made under a lease by the lease's epoch.
//!
//! * `lease_epoch` goes up by one whenever a lease is granted, committed,
//!   released, or invalidated by a new authorization. A [`Lease`] carries the
//!   epoch it was granted at; [`UserStore::commit_refresh`] and
//!   [`UserStore::release_lease`] apply only while the row still has that
//!   epoch. A holder that stalled past its lease (GC pause, network partition)
//!   and lost it to another replica gets [`CommitOutcome::FencedOut`] instead
//!   of overwriting newer tokens.
//! * Lease expiry is judged by the **database clock** (`unixepoch()` /
//!   `now()`), so replicas with skewed clocks still agree on who holds what.
//!   Token expiry times (`*_expires_at`, `next_refresh_at`) are supplied by
//!   the caller, from Astra's `expires_in`.
//! * `generation` goes up by one on every token change; callers that read a
//!   row, decided it needs refreshing, and then ask for a lease can pass the
//!   generation they saw so they do not refresh twice.
//!
//! Rows hold only [`Sealed`] ciphertexts (see [`super::crypto`]). Errors are
//! [`StoreError`]s whose messages name what failed but never carry token
//! bytes, bound values, the authorization state, or the database URL.
//!
//! Both backends share the same SQL text (`sql.rs`); each backend file adds
//! its connection setup, its migrations, and the batch claim that the two
//! databases must do differently.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::crypto::Sealed;
use super::user_ref::UserRef;

mod error;
// Declared before the backends: they expand its macro.
#[macro_use]
mod decode;
#[macro_use]
mod sql;
pub mod postgres;
pub mod sqlite;

mod rows;

pub use error::StoreError;
pub use rows::{
    CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, UnconfirmedAuthorization, UnknownStatus, UserRow, UserStatus,
};

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long an operation waits for a free pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for another writer's lock.
    pub busy_timeout: Duration,
    /// PostgreSQL only: the server cancels a statement running longer.
    pub statement_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
        }
    }
}

/// A replica that announced itself through [`UserStore::heartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub holder: String,
    pub host: String,
    /// Seconds since its last heartbeat, on the database clock.
    pub seen_secs_ago: i64,
}

/// Where a store's change feed reports (see [`UserStore::change_feed`]).
pub trait ChangeSink: Send + Sync {
    /// Listening (again): changes made before now may have gone unheard.
    fn connected(&self);
    /// The feed is down: changes may go unheard until [`ChangeSink::connected`].
    fn lost(&self);
    /// The row of `user_ref` changed what a token request hands out, or was deleted.
    fn changed(&self, user_ref: &str);
}

/// Storage of per-user tokens, leases and pending authorizations.
///
/// All times are unix seconds. "now" in lease and state conditions is the
/// database's clock.
#[async_trait]
pub trait UserStore: Send + Sync + fmt::Debug {
    async fn get(&self, user: &UserRef) -> Result<Option<UserRow>, StoreError>;

    /// Stores tokens from a new authorization (code exchange or refresh-token
    /// import), replacing everything stored for `user`: status becomes active,
    /// the generation goes up by one (1 for a new user), any previous refresh
    /// token is dropped (it belongs to the old authorization), and any lease is
    /// invalidated so an in-flight refresh of the old tokens is fenced out.
    async fn store_authorization(
        &self,
        user: &UserRef,
        tokens: NewTokens,
    ) -> Result<UserRow, StoreError>;

    /// Takes the refresh lease for `user` if nobody holds a live one (and, with
    /// `only_if_generation`, only if the row is still at that generation).
    /// Status is not checked: a lease on a user that needs reauthorization is
    /// granted, and the caller decides from `row.status` what to do with it.
    async fn try_lease(
        &self,
        user: &UserRef,
        holder: &str,
        ttl_secs: i64,
        only_if_generation: Option<i64>,
    ) -> Result<LeaseOutcome, StoreError>;

    /// Writes refreshed tokens if `lease` is still current, in one statement:
    /// the old refresh token moves to the previous slot (ciphertext as is),
    /// generation +1, status active, error cleared, lease ended. A lease that
    /// expired but was not taken over still commits: the refresh did happen at
    /// Astra, and its tokens are the only valid ones.
    async fn commit_refresh(
        &self,
        lease: &Lease,
        tokens: RefreshedTokens,
    ) -> Result<CommitOutcome, StoreError>;

    /// Ends `lease` without new tokens. Returns false if the lease was
    /// already superseded (nothing written).
    async fn release_lease(
        &self,
        lease: &Lease,
        outcome: LeaseRelease<'_>,
    ) -> Result<bool, StoreError>;

    /// Leases up to `limit` active users whose `next_refresh_at` has passed
    /// (database clock) and that nobody holds, for the scheduler. Concurrent
    /// claimers (threads or replicas) never receive the same user. A claimed
    /// user's `next_refresh_at` moves to the lease's end: claimed users leave
    /// the front of the due index (later claims do not scan past them), and a
    /// user whose holder died is due again when its lease runs out.
    async fn claim_due(
        &self,
        holder: &str,
        limit: u32,
        ttl_secs: i64,
    ) -> Result<Vec<(Lease, UserRow)>, StoreError>;

    /// Users ordered by `user_ref`, starting after `after` (keyset pagination).
    async fn list(
        &self,
        status: Option<UserStatus>,
        after: Option<&UserRef>,
        limit: u32,
    ) -> Result<Vec<UserRow>, StoreError>;

    /// Erases `user`'s tokens, pending authorizations and unconfirmed
    /// tokens. True if a user row existed.
    async fn delete(&self, user: &UserRef) -> Result<bool, StoreError>;

    /// Number of users per status, including statuses with none.
    async fn count_by_status(&self) -> Result<Vec<(UserStatus, u64)>, StoreError>;

    /// Active users whose current refresh token expires before `ts`.
    async fn count_refresh_expiring_before(&self, ts: i64) -> Result<u64, StoreError>;

    /// Users with any token (access, refresh, previous refresh) sealed under
    /// `key_id`; a key can be retired once this is zero.
    async fn count_rows_using_key(&self, key_id: &str) -> Result<u64, StoreError>;

    /// Records a pending authorization. `state_hash` is the SHA-256 hex of the
    /// `state` parameter: the raw state is a bearer secret until it is used.
    async fn put_state(
        &self,
        state_hash: &str,
        user: &UserRef,
        user_intent_id: Option<&str>,
        code_verifier: Option<&Sealed>,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Consumes a pending authorization: returns it at most once, and never
    /// once it has expired (database clock).
    async fn take_state(
        &self,
        state_hash: &str,
    ) -> Result<Option<PendingAuthorization>, StoreError>;

    /// Keeps the tokens of a completed callback for `user` (sealed for that
    /// user) until they are confirmed or `expires_at` passes. `handle_hash` is
    /// the SHA-256 hex of the one-time handle given to the browser.
    async fn put_unconfirmed(
        &self,
        handle_hash: &str,
        user: &UserRef,
        tokens: NewTokens,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Consumes unconfirmed tokens: returns them at most once, and never once
    /// they have expired (database clock). Whoever asks, they are gone after.
    async fn take_unconfirmed(
        &self,
        handle_hash: &str,
    ) -> Result<Option<UnconfirmedAuthorization>, StoreError>;

    /// Deletes expired pending authorizations and expired unconfirmed
    /// tokens; returns how many.
    async fn purge_expired_states(&self) -> Result<u64, StoreError>;

    /// Readiness: one round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Records that `holder` on `host` is alive now (database clock), forgets
    /// replicas silent for an hour, and returns every replica seen within
    /// the last `live_secs`, this one included.
    async fn heartbeat(
        &self,
        holder: &str,
        host: &str,
        live_secs: i64,
    ) -> Result<Vec<Replica>, StoreError>;

    /// Forgets `holder` at shutdown, so the others take over its share at once.
    async fn leave(&self, holder: &str) -> Result<(), StoreError>;

    /// A task that follows other writers' changes into `sink` until it is
    /// dropped, or `None` when the store has no change feed (SQLite: a single
    /// host's processes share the file and no cache is kept).
    fn change_feed(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>>;

    /// Whether every replica must run on one host (SQLite's file locks do not
    /// work across hosts).
    fn single_host(&self) -> bool;
}

/// Opens the store named by `url` and brings its schema up to date.
///
/// `sqlite:PATH` (the file is created if missing) or `postgres://…` /
/// `postgresql://…`. The URL may carry a password, so no error repeats it.
pub async fn connect(url: &str, options: &StoreOptions) -> Result<Arc<dyn UserStore>, StoreError> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme);
    match scheme {
        Some("sqlite") => Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?)),
        Some("postgres" | "postgresql") => {
            Ok(Arc::new(postgres::PgStore::connect(url, options).await?))
        }
        _ => Err(StoreError::UnsupportedUrl),
    }
}

/// Error codes and request ids are stored and shown to operators; keeping
/// them to a short, plain alphabet stops a token or a response body from
/// landing in those columns by mistake.
/// Whether `value` may be stored as a label (error code, request id, holder,
/// user intent id): 1 to 128 of `A-Z a-z 0-9 . _ : -`. Callers that take
/// such a value from a request check it here first, so a bad one is the
/// caller's `400`, not the store's refusal.
pub fn is_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn check_label(value: &str, what: &'static str) -> Result<(), StoreError> {
    if is_label(value) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(what))
    }
}

fn check_lease_args(holder: &str, ttl_secs: i64) -> Result<(), StoreError> {
    check_label(
        holder,
        "lease holder must be 1-128 characters of A-Z a-z 0-9 . _ : -",
    )?;
    if !(1..=86_400).contains(&ttl_secs) {
        return Err(StoreError::InvalidInput(
            "lease ttl must be 1 to 86400 seconds",
        ));
    }
    Ok(())
}

/// The label a failed refresh records.
fn check_failure(error_code: &str) -> Result<(), StoreError> {
    check_label(
        error_code,
        "error code must be 1-128 characters of A-Z a-z 0-9 . _ : -",
    )
}

/// Astra's request id, or nothing when it is not a label: it is metadata,
/// and must never stop the tokens or the lease's end it travels with from
/// being written.
fn request_id(id: Option<&str>) -> Option<&str> {
    id.filter(|id| is_label(id))
}

/// A state's or a handle's SHA-256 hex.
fn check_state_hash(state_hash: &str) -> Result<(), StoreError> {
    let ok = state_hash.len() == 64
        && state_hash
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(
            "state_hash must be the lowercase SHA-256 hex of the state",
        ))
    }
}

/// How long start-up waits for the database's first connection: a request's
/// budget (`astra.store_timeout_ms`) is too short for a cluster that is busy
/// starting or failing over.
const STARTUP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle this long is pinged before use: it may have
/// outlived a database restart. One used more recently passed sqlx's ping on
/// release moments ago, and pinging it again would add a round trip to every
/// statement (a third of a busy pool's time).
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pool both backends open from [`StoreOptions`]. It keeps all its
/// connections open ([`warm`] opens them first), so that no request waits
/// for one to be opened.
fn pool_options<DB: sqlx::Database>(options: &StoreOptions) -> sqlx::pool::PoolOptions<DB> {
    let connections = options.max_connections.max(1);
    sqlx::pool::PoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .acquire_timeout(options.acquire_timeout)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE_FOR {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

fn check_limit(limit: u32) -> i64 {
    i64::from(limit.min(10_000))
}

/// How long [`warm`] waits before trying a connection again.
const WARM_RETRY: Duration = Duration::from_millis(100);

/// Opens every connection of `pool` before the first request needs one,
/// within the start-up budget. Replicas that started together and were
/// asked for tokens at once opened their pools under that load, and on a
/// busy machine some requests waited longer than their budget
/// (`astra.store_timeout_ms`) for a connection: `503 store-unavailable` with
/// the database up. Not fatal when it falls short (the migration has just
/// proven the database reachable): the rest open on demand, as before.
async fn warm<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, connections: u32) {
    let deadline = tokio::time::Instant::now() + STARTUP_CONNECT_TIMEOUT;
    // All held at once: a connection released early would be handed out
    // again instead of a new one being opened.
    let opened = futures::future::join_all((0..connections).map(|_| async move {
        loop {
            match pool.acquire().await {
                Ok(connection) => return Some(connection),
                // A refused connection fails at once: pause, don't spin.
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(WARM_RETRY).await;
                }
                Err(_) => return None,
            }
        }
    }))
    .await;
    let open = opened.iter().flatten().count();
    if open < opened.len() {
        tracing::warn!(
            open,
            wanted = opened.len(),
            "the user token store's pool could not open all its connections at start-up; \
             the rest open on first use"
        );
    }
}

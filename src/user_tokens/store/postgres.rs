//! The PostgreSQL backend, for several replicas sharing one database.
//!
//! **Migrations under an advisory lock.** Replicas of a new release start
//! together and all try to migrate. sqlx's migrator already takes
//! `pg_advisory_lock` (keyed by the database name) around its run, but it
//! takes it on whatever connection it is given and returns early without
//! unlocking when a migration fails; on a pooled connection that lock would
//! outlive the failure and block every other replica. So [`PgStore::connect`]
//! migrates in a dedicated session (a one-connection pool) under its own
//! advisory lock ([`MIGRATION_LOCK_KEY`]) and closes that session afterwards,
//! which releases every session lock whatever happened. The first replica
//! migrates; the others wait, then find nothing to do.
//!
//! **Batch claims** use `FOR UPDATE SKIP LOCKED`, so concurrent schedulers
//! split the due users between them instead of queueing on the same rows.
//!
//! **Change feed.** A trigger (migration 0002) notifies channel
//! [`CHANGES_CHANNEL`] at commit whenever a row changes what a token request
//! hands out; [`PgStore::follow_changes`] listens on a dedicated session so
//! each replica's token cache drops what another replica replaced.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::{
    ChangeSink, CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, Replica, StoreError, StoreOptions, UnconfirmedAuthorization,
    UserRow, UserStatus, UserStore,
};
use crate::user_tokens::crypto::Sealed;
use crate::user_tokens::user_ref::UserRef;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that serializes schema migrations across replicas
/// (the bytes of "atv_user" as a big-endian i64; any fixed value would do, it
/// only has to differ from keys other applications on the database use).
pub const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"atv_user");

/// The channel the change-feed trigger notifies, with the `user_ref` as payload.
pub const CHANGES_CHANNEL: &str = "atv_astra_users";

/// How long the change feed waits before listening again after losing its session.
const RELISTEN_AFTER: Duration = Duration::from_millis(500);

/// The PostgreSQL implementation of [`UserStore`].
pub struct PgStore {
    pool: PgPool,
    connect: PgConnectOptions,
    acquire_timeout: Duration,
}

impl PgStore {
    const SINGLE_HOST: bool = false;

    /// Connects to `url` (`postgres://…`) and migrates the schema (see the module docs).
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        migrate(&connect, options).await?;
        // Only the pool's statements are bounded: a migration may take longer.
        let bounded = connect.clone().options([(
            "statement_timeout",
            options.statement_timeout.as_millis().to_string(),
        )]);
        // Lazy, then warmed within the start-up budget: the migration above
        // proved the database reachable, and a connection opened under load
        // must not fail the start-up within one request's budget.
        let pool = super::pool_options(options).connect_lazy_with(bounded);
        super::warm(&pool, options.max_connections.max(1)).await;
        Ok(Self {
            pool,
            connect,
            acquire_timeout: options.acquire_timeout,
        })
    }

    /// Listens on [`CHANGES_CHANNEL`] in a session of its own (so it never
    /// takes a pooled connection), reporting each loss and each fresh start
    /// to `sink`, and listening again after a loss until dropped.
    fn follow_changes(&self, sink: Arc<dyn ChangeSink>) -> Option<BoxFuture<'static, ()>> {
        let session = PgPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.connect.clone());
        Some(
            async move {
                loop {
                    match listen(&session).await {
                        Ok(mut listener) => {
                            sink.connected();
                            while let Ok(Some(note)) = listener.try_recv().await {
                                sink.changed(note.payload());
                            }
                            sink.lost();
                            tracing::warn!(
                                "the user token store's change feed was lost; listening again"
                            );
                        }
                        Err(e) => tracing::debug!(error = %e, "change feed not listening yet"),
                    }
                    tokio::time::sleep(crate::core::jittered(RELISTEN_AFTER)).await;
                }
            }
            .boxed(),
        )
    }
}

async fn listen(session: &PgPool) -> Result<PgListener, StoreError> {
    let mut listener = PgListener::connect_with(session).await?;
    // A lost session ends the loop above, which listens afresh and tells the sink.
    listener.eager_reconnect(false);
    listener.listen(CHANGES_CHANNEL).await?;
    Ok(listener)
}

/// Claims due users (see [`user_store_impl!`]). The outer lease condition
/// repeats the inner one on purpose: a row leased by `try_lease` after this
/// statement's snapshot is re-checked against its newest version when the
/// UPDATE reaches it.
const CLAIM_DUE: &str = "UPDATE astra_users SET lease_epoch = lease_epoch + 1, lease_holder = $1, \
     lease_expires_at = CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT) + $2, \
     next_refresh_at = CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT) + $2 \
     WHERE user_ref IN ( \
       SELECT user_ref FROM astra_users \
       WHERE status = 'active' \
       AND next_refresh_at <= CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT) \
       AND (lease_expires_at IS NULL \
            OR lease_expires_at <= CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT)) \
       ORDER BY next_refresh_at LIMIT $3 \
       FOR UPDATE SKIP LOCKED) \
     AND (lease_expires_at IS NULL \
          OR lease_expires_at <= CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT)) \
     RETURNING *";

async fn migrate(connect: &PgConnectOptions, options: &StoreOptions) -> Result<(), StoreError> {
    // A pool of exactly one connection: the lock and the migrations share a
    // session, and `Migrator::run(&pool)` keeps the caller's future `Send`
    // (on a bare `&mut PgConnection` it trips sqlx's "implementation of
    // `Acquire` is not general enough").
    let session = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(options.acquire_timeout.max(super::STARTUP_CONNECT_TIMEOUT))
        .connect_with(connect.clone())
        .await?;
    let migrated = async {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&session)
            .await?;
        MIGRATOR.run(&session).await?;
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK_KEY)
            .execute(&session)
            .await?;
        Ok::<(), StoreError>(())
    }
    .await;
    // Closing ends the session, and with it any lock still held after a failure.
    session.close().await;
    migrated
}

user_store_impl!(
    PgStore,
    sqlx::Postgres,
    now = "CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT)",
    claim_due = ("BEGIN", CLAIM_DUE)
);

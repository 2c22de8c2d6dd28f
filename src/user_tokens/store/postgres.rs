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

use std::fmt;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, StoreError, StoreOptions, UserRow, UserStatus, UserStore,
};
use crate::user_tokens::crypto::Sealed;
use crate::user_tokens::user_ref::UserRef;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that serializes schema migrations across replicas
/// (the bytes of "atv_user" as a big-endian i64; any fixed value would do, it
/// only has to differ from keys other applications on the database use).
pub const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"atv_user");

/// The PostgreSQL implementation of [`UserStore`].
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) and migrates the schema (see the module docs).
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = PgConnectOptions::from_str(url)?;
        migrate(&connect, options).await?;
        let pool = super::pool_options(options).connect_with(connect).await?;
        Ok(Self { pool })
    }
}

/// Claims due users (see [`user_store_impl!`]). The outer lease condition
/// repeats the inner one on purpose: a row leased by `try_lease` after this
/// statement's snapshot is re-checked against its newest version when the
/// UPDATE reaches it.
const CLAIM_DUE: &str = "UPDATE astra_users SET lease_epoch = lease_epoch + 1, lease_holder = $1, \
     lease_expires_at = CAST(floor(EXTRACT(EPOCH FROM now())) AS BIGINT) + $2 \
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
        .acquire_timeout(options.acquire_timeout)
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

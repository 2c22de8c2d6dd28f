//! The SQLite backend: one file, for a single instance or several processes
//! on one host.
//!
//! WAL lets readers proceed while a refresh writes; `busy_timeout` makes a
//! writer wait for another writer's lock instead of failing at once; foreign
//! keys are on so future schema constraints hold. SQLite allows one writer at
//! a time, which is what makes the single-statement lease `UPDATE`s exclusive.
//!
//! Use a file path: `sqlite::memory:` would give every pooled connection its
//! own empty database. Migrations are not locked across processes (sqlx has
//! no lock for SQLite), so processes sharing a file should not be started
//! for the first time at the same instant; use PostgreSQL for replicas.

use std::fmt;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{
    ChangeSink, CommitOutcome, Lease, LeaseOutcome, LeaseRelease, NewTokens, PendingAuthorization,
    PreviousRefresh, RefreshedTokens, Replica, StoreError, StoreOptions, UnconfirmedAuthorization,
    UserRow, UserStatus, UserStore,
};
use crate::user_tokens::crypto::Sealed;
use crate::user_tokens::user_ref::UserRef;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The SQLite implementation of [`UserStore`].
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    const SINGLE_HOST: bool = true;

    /// Only processes on one host write the file, and they keep no cache.
    fn follow_changes(
        &self,
        _sink: std::sync::Arc<dyn ChangeSink>,
    ) -> Option<futures::future::BoxFuture<'static, ()>> {
        None
    }

    /// Opens (creating if missing) the database at `url` (`sqlite:PATH`) and migrates it.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable under WAL except for the last commits on power loss;
            // a lost refresh is recovered through the previous refresh token.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true);
        create_private(connect.get_filename())?;
        // Opened and migrated in a session of its own with the start-up
        // budget, then pooled lazily: as for PostgreSQL, a request's budget
        // is too short for a first open under load.
        let session = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout.max(super::STARTUP_CONNECT_TIMEOUT))
            .connect_with(connect.clone())
            .await?;
        let migrated = run_migrations(&session).await;
        session.close().await;
        migrated?;
        let pool = super::pool_options(options).connect_lazy_with(connect);
        super::warm(&pool, options.max_connections.max(1)).await;
        Ok(Self { pool })
    }
}

/// Creates the database file readable by its owner only, unless it exists:
/// SQLite would create it with the process's umask (often world-readable),
/// and gives its `-wal` and `-shm` files the same mode as the database.
fn create_private(path: &std::path::Path) -> Result<(), StoreError> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable {
            reason: format!("the database file cannot be created ({})", e.kind()),
        }),
    }
}

/// Claims due users (see [`user_store_impl!`]).
const CLAIM_DUE: &str = "UPDATE astra_users SET lease_epoch = lease_epoch + 1, lease_holder = $1, \
     lease_expires_at = unixepoch() + $2, next_refresh_at = unixepoch() + $2 \
     WHERE user_ref IN ( \
       SELECT user_ref FROM astra_users \
       WHERE status = 'active' AND next_refresh_at <= unixepoch() \
       AND (lease_expires_at IS NULL OR lease_expires_at <= unixepoch()) \
       ORDER BY next_refresh_at LIMIT $3) \
     RETURNING *";

/// Boxed at a concrete lifetime: awaiting `Migrator::run` directly makes the
/// caller's future fail the `Send` check that `tokio::spawn` needs
/// ("implementation of `Acquire` is not general enough").
fn run_migrations(
    pool: &SqlitePool,
) -> futures::future::BoxFuture<'_, Result<(), sqlx::migrate::MigrateError>> {
    Box::pin(MIGRATOR.run(pool))
}

// `BEGIN IMMEDIATE` takes the write lock before the due users are selected,
// so a second process claiming from the same file waits (up to
// `busy_timeout`) and then sees this batch already leased.
user_store_impl!(
    SqliteStore,
    sqlx::Sqlite,
    now = "unixepoch()",
    claim_due = ("BEGIN IMMEDIATE", CLAIM_DUE)
);

//! The per-user token store, specified by behaviour. Every test runs twice,
//! against SQLite (a temp file) and against a real PostgreSQL, through the
//! same `UserStore` trait the service uses; raw SQL is used only to look
//! at or tamper with what is actually stored.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use astrada_token_vendor::user_tokens::{
    ChangeSink, CommitOutcome, CryptoError, Field, Lease, LeaseOutcome, LeaseRelease, NewTokens,
    Sealed, StoreError, StoreOptions, TokenCipher, UserRef, UserRow, UserStatus, UserStore,
    connect,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sqlx::AssertSqlSafe;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// A store under test, plus raw access to the database behind it.
struct Backend {
    url: String,
    store: Arc<dyn UserStore>,
    raw: Raw,
    _dir: Option<TempDir>,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `$body` with `$pool` bound to whichever pool `$raw` holds: the two
/// pool types share no trait that `sqlx::query` could be generic over here.
macro_rules! with_pool {
    ($raw:expr, |$pool:ident| $body:expr) => {
        match $raw {
            Raw::Sqlite($pool) => $body,
            Raw::Pg($pool) => $body,
        }
    };
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("atv-sqlite-{:016x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite:{}", dir.join("users.db").display());
        Self::open(url, Some(TempDir(dir))).await
    }

    async fn postgres() -> Self {
        let url = test_support::postgres::fresh_database().await;
        Self::open(url, None).await
    }

    /// The store at `url` (created and migrated by `connect`), and raw access.
    async fn open(url: String, dir: Option<TempDir>) -> Self {
        let store = connect(&url, &StoreOptions::default()).await.unwrap();
        let raw = if url.starts_with("sqlite:") {
            Raw::Sqlite(sqlx::SqlitePool::connect(&url).await.unwrap())
        } else {
            Raw::Pg(sqlx::PgPool::connect(&url).await.unwrap())
        };
        Self {
            url,
            store,
            raw,
            _dir: dir,
        }
    }

    /// Another replica: its own pool on the same database.
    async fn replica(&self) -> Arc<dyn UserStore> {
        connect(&self.url, &StoreOptions::default()).await.unwrap()
    }

    /// Sets a bytes column of one user's row.
    async fn set_bytes(&self, user: &str, column: &str, value: Vec<u8>) {
        let sql = format!("UPDATE astra_users SET {column} = $1 WHERE user_ref = $2");
        with_pool!(&self.raw, |pool| {
            let query = sqlx::query(AssertSqlSafe(sql)).bind(value).bind(user);
            query.execute(pool).await.unwrap();
        });
    }

    /// Every non-null cell of `table`, as the bytes the database hands out
    /// (byte columns as stored, everything else as its text form).
    async fn dump(&self, table: &str) -> Vec<Vec<u8>> {
        // Converting every column to bytes in SQL keeps the decoding trivial.
        let columns = self.columns(table).await;
        let select = columns
            .iter()
            .map(|(c, bytes)| match (&self.raw, bytes) {
                (_, true) => c.clone(),
                (Raw::Sqlite(_), false) => format!("CAST({c} AS BLOB)"),
                (Raw::Pg(_), false) => format!("convert_to(CAST({c} AS TEXT), 'UTF8')"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {select} FROM {table}");
        with_pool!(&self.raw, |pool| {
            use sqlx::Row;
            let rows = sqlx::query(AssertSqlSafe(sql)).fetch_all(pool).await;
            let rows = rows.unwrap();
            let cells = rows.iter().flat_map(|row| {
                (0..columns.len()).filter_map(move |i| row.get::<Option<Vec<u8>>, _>(i))
            });
            cells.collect()
        })
    }

    /// `table`'s columns, and whether each holds bytes.
    async fn columns(&self, table: &str) -> Vec<(String, bool)> {
        match &self.raw {
            Raw::Sqlite(pool) => sqlx::query_as::<_, (String, String)>(AssertSqlSafe(format!(
                "SELECT name, type FROM pragma_table_info('{table}')"
            )))
            .fetch_all(pool)
            .await
            .unwrap(),
            Raw::Pg(pool) => sqlx::query_as::<_, (String, String)>(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_name = $1",
            )
            .bind(table)
            .fetch_all(pool)
            .await
            .unwrap(),
        }
        .into_iter()
        .map(|(c, t)| {
            let bytes = matches!(t.to_ascii_lowercase().as_str(), "blob" | "bytea");
            (c, bytes)
        })
        .collect()
    }

    async fn count(&self, sql: &'static str) -> i64 {
        let (n,) = with_pool!(&self.raw, |pool| {
            sqlx::query_as::<_, (i64,)>(sql)
                .fetch_one(pool)
                .await
                .unwrap()
        });
        n
    }
}

test_support::on_sqlite_and_postgres!(
    Backend:
    a_stored_authorization_round_trips_and_bumps_the_generation,
    only_one_of_many_concurrent_lease_claims_wins,
    a_lease_left_by_a_dead_holder_is_taken_over_after_it_expires,
    a_fenced_out_commit_is_refused,
    a_refresh_keeps_the_previous_refresh_token,
    a_lease_conditioned_on_an_old_generation_is_not_taken,
    a_new_authorization_fences_out_an_in_flight_refresh,
    a_failed_refresh_is_recorded_for_backoff_and_ends_the_lease,
    a_refused_refresh_token_marks_the_user_for_reauthorization,
    claim_due_returns_each_due_user_once_across_concurrent_claimers,
    an_authorization_state_is_single_use_and_expires,
    unconfirmed_tokens_are_taken_once_expire_and_go_with_the_user,
    the_raw_tables_hold_no_token_plaintext,
    a_swapped_or_tampered_ciphertext_is_refused,
    rows_using_a_key_are_counted_for_rotation,
    pagination_by_status_walks_every_user_once,
    delete_erases_the_user,
    labels_that_could_carry_a_token_are_refused,
    a_database_refusal_names_the_sqlstate_but_no_value,
    ping_answers,
    heartbeats_list_the_live_replicas_until_one_leaves,
    only_a_postgres_store_has_a_change_feed,
);

// ---- fixtures ----

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn key(byte: u8) -> SecretString {
    SecretString::from(STANDARD.encode([byte; 32]))
}

fn cipher() -> TokenCipher {
    TokenCipher::new(vec![("k1".into(), key(1))], "k1").unwrap()
}

fn user(s: &str) -> UserRef {
    s.parse().unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// Tokens as a code exchange or refresh would produce them, sealed for `u`.
fn tokens(c: &TokenCipher, u: &UserRef, access: &str, refresh: &str) -> NewTokens {
    let t = now();
    NewTokens {
        access_token: c.seal(u, Field::AccessToken, &secret(access)).unwrap(),
        access_expires_at: t + 2 * HOUR,
        refresh_token: c.seal(u, Field::RefreshToken, &secret(refresh)).unwrap(),
        refresh_issued_at: t,
        refresh_expires_at: t + 10 * DAY,
        next_refresh_at: t + 7 * DAY,
        astra_request_id: Some("req-1".into()),
    }
}

fn open(c: &TokenCipher, u: &UserRef, field: Field, sealed: &Sealed) -> String {
    c.open(u, field, sealed).unwrap().expose_secret().to_owned()
}

/// Stores a new authorization of `u` with tokens `access` and `refresh`.
async fn store(b: &Backend, c: &TokenCipher, u: &UserRef, access: &str, refresh: &str) -> UserRow {
    let t = tokens(c, u, access, refresh);
    b.store.store_authorization(u, t).await.unwrap()
}

/// Stores a new authorization of user `name`, with tokens named after it.
async fn authorize(b: &Backend, c: &TokenCipher, name: &str) -> UserRow {
    let (access, refresh) = (format!("{name}-access-0"), format!("{name}-refresh-0"));
    store(b, c, &user(name), &access, &refresh).await
}

async fn lease(b: &Backend, u: &UserRef, holder: &str, ttl: i64) -> Lease {
    match b.store.try_lease(u, holder, ttl, None).await.unwrap() {
        LeaseOutcome::Acquired { lease, .. } => lease,
        other => panic!("expected a lease, got {other:?}"),
    }
}

/// Commits refreshed tokens (`access`, `refresh`) under lease `l`.
async fn refresh(
    b: &Backend,
    c: &TokenCipher,
    l: &Lease,
    access: &str,
    refresh: &str,
) -> CommitOutcome {
    let t = tokens(c, &l.user_ref, access, refresh);
    b.store.commit_refresh(l, t).await.unwrap()
}

/// Ends `l` as Astra refusing the refresh token; true if the lease was current.
async fn require_reauthorization(b: &Backend, l: &Lease) -> bool {
    let outcome = LeaseRelease::ReauthorizationRequired {
        error_code: "invalid_grant",
        astra_request_id: None,
    };
    b.store.release_lease(l, outcome).await.unwrap()
}

/// The plaintext of `row`'s access token, opened as `u`'s.
fn access_of(c: &TokenCipher, u: &UserRef, row: &UserRow) -> String {
    open(c, u, Field::AccessToken, &row.access_token)
}

/// The plaintext of `row`'s current refresh token, opened as `u`'s.
fn refresh_of(c: &TokenCipher, u: &UserRef, row: &UserRow) -> String {
    open(c, u, Field::RefreshToken, &row.refresh_token)
}

/// Records the pending authorization `state_hash(n)` for `u`, alive for `ttl` seconds.
async fn put_state(b: &Backend, n: u8, u: &UserRef, ttl: i64) {
    let hash = state_hash(n);
    b.store
        .put_state(&hash, u, None, None, now() + ttl)
        .await
        .unwrap();
}

/// Asserts that committing new tokens under `l` is refused as fenced out.
async fn assert_fenced_out(b: &Backend, c: &TokenCipher, l: &Lease, why: &str) {
    let outcome = refresh(b, c, l, "late-access", "late-refresh").await;
    assert!(matches!(outcome, CommitOutcome::FencedOut), "{why}");
}

fn committed(outcome: CommitOutcome) -> UserRow {
    match outcome {
        CommitOutcome::Committed(row) => row,
        CommitOutcome::FencedOut => panic!("the commit was fenced out"),
    }
}

fn state_hash(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

// ---- the specification ----

async fn a_stored_authorization_round_trips_and_bumps_the_generation(b: Backend) {
    let c = cipher();
    let u = user("alice@example.com");
    let before = now();
    let first = store(&b, &c, &u, "access-1", "refresh-1").await;
    assert_eq!(first.generation, 1);
    assert_eq!(first.status, UserStatus::Active);
    assert!(first.created_at >= before - 1 && first.updated_at >= first.created_at);

    let read = b.store.get(&u).await.unwrap().expect("the user is stored");
    assert_eq!(read, first);
    assert_eq!(access_of(&c, &u, &read), "access-1");
    assert_eq!(refresh_of(&c, &u, &read), "refresh-1");
    assert_eq!(read.last_astra_request_id.as_deref(), Some("req-1"));
    assert!(read.previous_refresh.is_none() && read.lease_holder.is_none());

    let second = store(&b, &c, &u, "access-2", "refresh-2").await;
    assert_eq!(second.generation, 2);
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(access_of(&c, &u, &second), "access-2");
    assert!(
        second.previous_refresh.is_none(),
        "a new authorization replaces everything"
    );
    assert!(b.store.get(&user("nobody")).await.unwrap().is_none());
}

async fn only_one_of_many_concurrent_lease_claims_wins(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "contended").await.user_ref;
    let claims = (0..50).map(|i| {
        let store = b.store.clone();
        let u = u.clone();
        tokio::spawn(async move {
            store
                .try_lease(&u, &format!("holder-{i}"), 60, None)
                .await
                .unwrap()
        })
    });
    let outcomes = futures::future::join_all(claims).await;
    let mut acquired = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            LeaseOutcome::Acquired { .. } => acquired += 1,
            LeaseOutcome::Busy { row } => assert!(row.lease_holder.is_some()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acquired, 1);
}

async fn a_lease_left_by_a_dead_holder_is_taken_over_after_it_expires(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "orphaned").await.user_ref;
    let dead = lease(&b, &u, "dead-replica", 1).await;
    match b
        .store
        .try_lease(&u, "live-replica", 60, None)
        .await
        .unwrap()
    {
        LeaseOutcome::Busy { row } => {
            assert_eq!(row.lease_holder.as_deref(), Some("dead-replica"));
            assert_eq!(row.lease_expires_at, Some(dead.expires_at));
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let taken = lease(&b, &u, "live-replica", 60).await;
    assert!(taken.epoch > dead.epoch);
    assert_eq!(taken.holder, "live-replica");
}

async fn a_fenced_out_commit_is_refused(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "fenced").await.user_ref;
    let slow = lease(&b, &u, "slow", 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let fast = lease(&b, &u, "fast", 60).await;
    let before = b.store.get(&u).await.unwrap().unwrap();

    assert_fenced_out(&b, &c, &slow, "the lease was taken over").await;
    assert_eq!(
        b.store.get(&u).await.unwrap().unwrap(),
        before,
        "nothing was written"
    );
    assert!(
        !b.store
            .release_lease(&slow, LeaseRelease::Unused)
            .await
            .unwrap(),
        "a superseded lease cannot be released either"
    );

    let row = committed(refresh(&b, &c, &fast, "fast-access", "fast-refresh").await);
    assert_eq!(access_of(&c, &u, &row), "fast-access");
}

async fn a_refresh_keeps_the_previous_refresh_token(b: Backend) {
    let c = cipher();
    let authorized = authorize(&b, &c, "rotating").await;
    let u = authorized.user_ref.clone();
    let l = lease(&b, &u, "replica-a", 60).await;
    let row = committed(refresh(&b, &c, &l, "access-1", "refresh-1").await);
    assert_eq!(row.generation, 2);
    assert_eq!(row.status, UserStatus::Active);
    assert!(row.last_refresh_at.is_some());
    assert!(row.lease_holder.is_none() && row.lease_expires_at.is_none());
    assert_eq!(access_of(&c, &u, &row), "access-1");
    assert_eq!(refresh_of(&c, &u, &row), "refresh-1");
    let previous = row
        .previous_refresh
        .as_ref()
        .expect("the old refresh token is kept");
    assert_eq!(
        previous.token, authorized.refresh_token,
        "moved as ciphertext"
    );
    assert_eq!(previous.expires_at, authorized.refresh_expires_at);
    assert_eq!(
        open(&c, &u, Field::RefreshToken, &previous.token),
        "rotating-refresh-0"
    );

    assert_fenced_out(&b, &c, &l, "a committed lease is spent").await;

    let l2 = lease(&b, &u, "replica-b", 60).await;
    let row = committed(refresh(&b, &c, &l2, "access-2", "refresh-2").await);
    assert_eq!(row.generation, 3);
    let previous = row.previous_refresh.expect("the old refresh token is kept");
    assert_eq!(
        open(&c, &u, Field::RefreshToken, &previous.token),
        "refresh-1"
    );
}

async fn a_lease_conditioned_on_an_old_generation_is_not_taken(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "generational").await.user_ref;
    let l = lease(&b, &u, "first", 60).await;
    committed(refresh(&b, &c, &l, "a", "r").await);
    match b.store.try_lease(&u, "second", 60, Some(1)).await.unwrap() {
        LeaseOutcome::GenerationMoved { row } => {
            assert_eq!(row.generation, 2);
            assert!(row.lease_holder.is_none(), "no lease was taken");
        }
        other => panic!("expected GenerationMoved, got {other:?}"),
    }
    assert!(matches!(
        b.store.try_lease(&u, "second", 60, Some(2)).await.unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
    assert!(matches!(
        b.store
            .try_lease(&user("unknown"), "second", 60, None)
            .await
            .unwrap(),
        LeaseOutcome::NotFound
    ));
}

async fn a_new_authorization_fences_out_an_in_flight_refresh(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "reauthorized").await.user_ref;
    let in_flight = lease(&b, &u, "refresher", 60).await;
    let fresh = store(&b, &c, &u, "new-access", "new-refresh").await;
    assert!(fresh.lease_holder.is_none() && fresh.lease_epoch > in_flight.epoch);
    assert_fenced_out(&b, &c, &in_flight, "a new authorization came").await;
    let row = b.store.get(&u).await.unwrap().unwrap();
    assert_eq!(access_of(&c, &u, &row), "new-access");
}

async fn a_failed_refresh_is_recorded_for_backoff_and_ends_the_lease(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "flaky").await.user_ref;
    let l = lease(&b, &u, "refresher", 60).await;
    let retry_at = now() + 300;
    let released = b
        .store
        .release_lease(
            &l,
            LeaseRelease::Failed {
                error_code: "astra_timeout",
                retry_at,
                astra_request_id: Some("req-9"),
            },
        )
        .await
        .unwrap();
    assert!(released);
    let row = b.store.get(&u).await.unwrap().unwrap();
    assert_eq!(row.status, UserStatus::Active);
    assert_eq!(row.generation, 1);
    assert_eq!(row.last_error.as_deref(), Some("astra_timeout"));
    assert_eq!(row.last_astra_request_id.as_deref(), Some("req-9"));
    assert_eq!(row.next_refresh_at, retry_at);
    assert!(row.lease_holder.is_none() && row.lease_expires_at.is_none());
    assert_fenced_out(&b, &c, &l, "a released lease is spent").await;

    let l2 = lease(&b, &u, "refresher", 60).await;
    let row = committed(refresh(&b, &c, &l2, "a", "r").await);
    assert!(
        row.last_error.is_none(),
        "a successful refresh clears the error"
    );
}

async fn a_refused_refresh_token_marks_the_user_for_reauthorization(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "revoked").await.user_ref;
    let l = lease(&b, &u, "refresher", 60).await;
    assert!(require_reauthorization(&b, &l).await);
    let row = b.store.get(&u).await.unwrap().unwrap();
    assert_eq!(row.status, UserStatus::ReauthorizationRequired);
    assert_eq!(row.generation, 1);
    assert_eq!(row.last_error.as_deref(), Some("invalid_grant"));
    assert_eq!(row.last_astra_request_id.as_deref(), Some("req-1"), "kept");

    let back = store(&b, &c, &u, "a", "r").await;
    assert_eq!(back.status, UserStatus::Active);
    assert!(back.last_error.is_none());
}

async fn claim_due_returns_each_due_user_once_across_concurrent_claimers(b: Backend) {
    let c = cipher();
    let t = now();
    for i in 0..200 {
        let u = user(&format!("due-{i:03}"));
        let mut tk = tokens(&c, &u, "a", "r");
        tk.next_refresh_at = t - 10 - i;
        b.store.store_authorization(&u, tk).await.unwrap();
    }
    for i in 0..20 {
        let u = user(&format!("later-{i:02}"));
        let mut tk = tokens(&c, &u, "a", "r");
        tk.next_refresh_at = t + HOUR;
        b.store.store_authorization(&u, tk).await.unwrap();
    }
    // Due, but already being refreshed by someone else, or needing the user.
    let busy = user("due-but-leased");
    let mut tk = tokens(&c, &busy, "a", "r");
    tk.next_refresh_at = t - 10;
    b.store.store_authorization(&busy, tk).await.unwrap();
    lease(&b, &busy, "someone-else", 600).await;
    let revoked = user("due-but-revoked");
    let mut tk = tokens(&c, &revoked, "a", "r");
    tk.next_refresh_at = t - 10;
    b.store.store_authorization(&revoked, tk).await.unwrap();
    let l = lease(&b, &revoked, "x", 60).await;
    require_reauthorization(&b, &l).await;

    let replica = b.replica().await;
    let claimer = |store: Arc<dyn UserStore>, holder: &'static str| async move {
        let mut mine = Vec::new();
        loop {
            let batch = store.claim_due(holder, 17, 600).await.unwrap();
            if batch.is_empty() {
                return mine;
            }
            for (lease, row) in batch {
                assert_eq!(lease.user_ref, row.user_ref);
                assert_eq!(lease.epoch, row.lease_epoch);
                assert_eq!(row.lease_holder.as_deref(), Some(holder));
                assert!(
                    row.next_refresh_at >= now() + 600 - 1,
                    "a claimed user is next due when its lease ends"
                );
                mine.push(row.user_ref);
            }
        }
    };
    let (a, z) = tokio::join!(
        tokio::spawn(claimer(b.store.clone(), "scheduler-a")),
        tokio::spawn(claimer(replica, "scheduler-b")),
    );
    let (a, z) = (a.unwrap(), z.unwrap());
    let a_set: HashSet<_> = a.iter().cloned().collect();
    let z_set: HashSet<_> = z.iter().cloned().collect();
    assert_eq!(a_set.len(), a.len(), "no user twice to one claimer");
    assert_eq!(z_set.len(), z.len(), "no user twice to one claimer");
    assert!(a_set.is_disjoint(&z_set), "no user to both claimers");
    let all: HashSet<_> = a_set.union(&z_set).map(|u| u.to_string()).collect();
    let expected: HashSet<_> = (0..200).map(|i| format!("due-{i:03}")).collect();
    assert_eq!(all, expected);

    for i in 0..20 {
        let row = b
            .store
            .get(&user(&format!("later-{i:02}")))
            .await
            .unwrap()
            .unwrap();
        assert!(row.lease_holder.is_none(), "not-due users are untouched");
    }
    let row = b.store.get(&busy).await.unwrap().unwrap();
    assert_eq!(row.lease_holder.as_deref(), Some("someone-else"));
}

async fn an_authorization_state_is_single_use_and_expires(b: Backend) {
    let u = user("consenting");
    let live = state_hash(1);
    b.store
        .put_state(&live, &u, Some("intent-7"), None, now() + 600)
        .await
        .unwrap();
    let pending = b
        .store
        .take_state(&live)
        .await
        .unwrap()
        .expect("a live state");
    assert_eq!(pending.user_ref, u);
    assert_eq!(pending.user_intent_id.as_deref(), Some("intent-7"));
    assert!(
        b.store.take_state(&live).await.unwrap().is_none(),
        "single use"
    );

    let expired = state_hash(2);
    b.store
        .put_state(&expired, &u, None, None, now() - 1)
        .await
        .unwrap();
    assert!(b.store.take_state(&expired).await.unwrap().is_none());
    put_state(&b, 3, &u, 600).await;
    assert_eq!(b.store.purge_expired_states().await.unwrap(), 1);
    assert!(b.store.take_state(&state_hash(3)).await.unwrap().is_some());

    assert!(matches!(
        b.store
            .put_state("raw-state-value", &u, None, None, now() + 600)
            .await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        b.store.take_state(&state_hash(0xab).to_uppercase()).await,
        Err(StoreError::InvalidInput(_))
    ));
}

async fn unconfirmed_tokens_are_taken_once_expire_and_go_with_the_user(b: Backend) {
    let c = cipher();
    let u = user("unconfirmed");
    let mut t = tokens(&c, &u, "pending-access", "pending-refresh");
    // A request id the store cannot keep is dropped, never a refusal.
    t.astra_request_id = Some("req/1+2".into());
    let put = |n: u8, t: NewTokens, ttl: i64| {
        let (store, u) = (&b.store, &u);
        async move {
            store
                .put_unconfirmed(&state_hash(n), u, t, now() + ttl)
                .await
        }
    };
    put(0x11, t.clone(), 600).await.unwrap();
    assert_eq!(
        b.store.count_rows_using_key("k1").await.unwrap(),
        1,
        "a key sealing unconfirmed tokens is still in use"
    );
    let taken = b
        .store
        .take_unconfirmed(&state_hash(0x11))
        .await
        .unwrap()
        .expect("live unconfirmed tokens");
    assert_eq!(taken.user_ref, u);
    assert_eq!(
        open(&c, &u, Field::AccessToken, &taken.tokens.access_token),
        "pending-access"
    );
    assert_eq!(taken.tokens.astra_request_id, None);
    assert!(
        b.store.get(&u).await.unwrap().is_none(),
        "nothing is active"
    );
    let again = b.store.take_unconfirmed(&state_hash(0x11)).await.unwrap();
    assert!(again.is_none(), "single use");

    put(0x12, t.clone(), -1).await.unwrap();
    put(0x13, t.clone(), 600).await.unwrap();
    assert!(
        b.store
            .take_unconfirmed(&state_hash(0x12))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(b.store.purge_expired_states().await.unwrap(), 1);
    b.store.delete(&u).await.unwrap();
    assert!(
        b.store
            .take_unconfirmed(&state_hash(0x13))
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        b.store
            .put_unconfirmed("raw-handle", &u, t, now() + 600)
            .await,
        Err(StoreError::InvalidInput(_))
    ));
}

async fn the_raw_tables_hold_no_token_plaintext(b: Backend) {
    let c = cipher();
    let u = user("plain");
    store(&b, &c, &u, "PLAINTEXT-ACCESS-0", "PLAINTEXT-REFRESH-0").await;
    let l = lease(&b, &u, "r", 60).await;
    committed(refresh(&b, &c, &l, "PLAINTEXT-ACCESS-1", "PLAINTEXT-REFRESH-1").await);
    let cells = b.dump("astra_users").await;
    assert!(cells.len() >= 15, "the dump sees the columns");
    assert!(
        cells.iter().filter(|c| c.len() > 28).count() >= 3,
        "the dump sees the three ciphertexts"
    );
    assert!(
        cells.iter().any(|cell| cell == b"plain"),
        "the dump sees values"
    );
    for cell in &cells {
        assert!(
            !cell.windows(9).any(|w| w == b"PLAINTEXT"),
            "a column holds a token in clear"
        );
    }
}

async fn a_swapped_or_tampered_ciphertext_is_refused(b: Backend) {
    let c = cipher();
    let alice = authorize(&b, &c, "alice").await;
    let bob = authorize(&b, &c, "bob").await;

    b.set_bytes("alice", "access_token", bob.access_token.blob.clone())
        .await;
    let swapped = b.store.get(&alice.user_ref).await.unwrap().unwrap();
    assert!(matches!(
        c.open(&alice.user_ref, Field::AccessToken, &swapped.access_token),
        Err(CryptoError::Rejected)
    ));

    let mut flipped = bob.refresh_token.blob.clone();
    flipped[20] ^= 0x01;
    b.set_bytes("bob", "refresh_token", flipped).await;
    let tampered = b.store.get(&bob.user_ref).await.unwrap().unwrap();
    assert!(matches!(
        c.open(&bob.user_ref, Field::RefreshToken, &tampered.refresh_token),
        Err(CryptoError::Rejected)
    ));

    b.set_bytes("bob", "access_token", bob.refresh_token.blob.clone())
        .await;
    let moved = b.store.get(&bob.user_ref).await.unwrap().unwrap();
    assert!(
        matches!(
            c.open(&bob.user_ref, Field::AccessToken, &moved.access_token),
            Err(CryptoError::Rejected)
        ),
        "a refresh token does not open as an access token"
    );
}

async fn rows_using_a_key_are_counted_for_rotation(b: Backend) {
    let old = cipher();
    let rotated =
        TokenCipher::new(vec![("k1".into(), key(1)), ("k2".into(), key(2))], "k2").unwrap();
    let u1 = authorize(&b, &old, "u1").await.user_ref;
    authorize(&b, &old, "u2").await;
    assert_eq!(b.store.count_rows_using_key("k1").await.unwrap(), 2);
    assert_eq!(b.store.count_rows_using_key("k2").await.unwrap(), 0);

    // A refresh re-seals the new tokens; the previous refresh token keeps k1.
    let l = lease(&b, &u1, "r", 60).await;
    let row = committed(refresh(&b, &rotated, &l, "a", "r").await);
    assert_eq!(row.access_token.key_id, "k2");
    assert_eq!(row.previous_refresh.as_ref().unwrap().token.key_id, "k1");
    assert_eq!(b.store.count_rows_using_key("k1").await.unwrap(), 2);
    assert_eq!(b.store.count_rows_using_key("k2").await.unwrap(), 1);

    let l = lease(&b, &u1, "r", 60).await;
    committed(refresh(&b, &rotated, &l, "a", "r").await);
    assert_eq!(b.store.count_rows_using_key("k1").await.unwrap(), 1);
    assert_eq!(b.store.count_rows_using_key("k2").await.unwrap(), 1);
}

async fn pagination_by_status_walks_every_user_once(b: Backend) {
    let c = cipher();
    for i in 0..30 {
        let row = authorize(&b, &c, &format!("user-{i:02}")).await;
        if i % 3 == 0 {
            let l = lease(&b, &row.user_ref, "r", 60).await;
            require_reauthorization(&b, &l).await;
        }
    }
    let walk = |status: Option<UserStatus>| {
        let store = b.store.clone();
        async move {
            let mut seen = Vec::new();
            let mut after: Option<UserRef> = None;
            loop {
                let page = store.list(status, after.as_ref(), 7).await.unwrap();
                if page.is_empty() {
                    return seen;
                }
                assert!(page.len() <= 7);
                after = page.last().map(|r| r.user_ref.clone());
                for row in page {
                    if let Some(s) = status {
                        assert_eq!(row.status, s);
                    }
                    seen.push(row.user_ref.to_string());
                }
            }
        }
    };
    let all = walk(None).await;
    let expected: Vec<String> = (0..30).map(|i| format!("user-{i:02}")).collect();
    assert_eq!(all, expected, "every user once, in order");
    assert_eq!(walk(Some(UserStatus::Active)).await.len(), 20);
    assert_eq!(
        walk(Some(UserStatus::ReauthorizationRequired)).await.len(),
        10
    );
    assert_eq!(
        b.store.count_by_status().await.unwrap(),
        vec![
            (UserStatus::Active, 20),
            (UserStatus::ReauthorizationRequired, 10)
        ]
    );
    let t = now();
    assert_eq!(
        b.store
            .count_refresh_expiring_before(t + 11 * DAY)
            .await
            .unwrap(),
        20
    );
    assert_eq!(
        b.store
            .count_refresh_expiring_before(t + DAY)
            .await
            .unwrap(),
        0
    );
}

async fn delete_erases_the_user(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "leaving").await.user_ref;
    let other = authorize(&b, &c, "staying").await.user_ref;
    put_state(&b, 5, &u, 600).await;
    put_state(&b, 6, &other, 600).await;
    let in_flight = lease(&b, &u, "r", 60).await;

    assert!(b.store.delete(&u).await.unwrap());
    assert!(b.store.get(&u).await.unwrap().is_none());
    assert!(b.store.take_state(&state_hash(5)).await.unwrap().is_none());
    assert_eq!(
        b.count("SELECT COUNT(*) FROM astra_users WHERE user_ref = 'leaving'")
            .await,
        0
    );
    assert_fenced_out(&b, &c, &in_flight, "the user was deleted").await;
    assert!(
        b.store.get(&u).await.unwrap().is_none(),
        "a late commit does not resurrect"
    );
    assert!(!b.store.delete(&u).await.unwrap());

    assert!(b.store.get(&other).await.unwrap().is_some());
    assert!(b.store.take_state(&state_hash(6)).await.unwrap().is_some());
}

async fn labels_that_could_carry_a_token_are_refused(b: Backend) {
    let c = cipher();
    let u = authorize(&b, &c, "labelled").await.user_ref;
    let l = lease(&b, &u, "r", 60).await;
    let outcome = b
        .store
        .release_lease(
            &l,
            LeaseRelease::Failed {
                error_code: "Bearer eyJhbGciOi.secret",
                retry_at: now(),
                astra_request_id: None,
            },
        )
        .await;
    match outcome {
        Err(e @ StoreError::InvalidInput(_)) => {
            assert!(!e.to_string().contains("eyJ"), "{e}");
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert!(matches!(
        b.store.try_lease(&u, "holder with spaces", 60, None).await,
        Err(StoreError::InvalidInput(_))
    ));
    assert!(matches!(
        b.store.try_lease(&u, "h", 0, None).await,
        Err(StoreError::InvalidInput(_))
    ));
    let row = b.store.get(&u).await.unwrap().unwrap();
    let debug = format!("{row:?}");
    assert!(
        debug.contains("labelled") && debug.contains("k1"),
        "{debug}"
    );
    assert!(!debug.contains("blob"), "{debug}");
}

async fn a_database_refusal_names_the_sqlstate_but_no_value(b: Backend) {
    let u = user("duplicated");
    let hash = state_hash(0x5e);
    b.store
        .put_state(&hash, &u, None, None, now() + 600)
        .await
        .unwrap();
    let err = b
        .store
        .put_state(&hash, &u, None, None, now() + 600)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("SQLSTATE"), "{message}");
    assert!(
        !message.contains(&hash) && !message.contains("duplicated"),
        "{message}"
    );
}

async fn ping_answers(b: Backend) {
    b.store.ping().await.unwrap();
}

// ---- PostgreSQL only ----

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_run_once_when_replicas_start_together() {
    let url = test_support::postgres::fresh_database().await;
    let starts = (0..3).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { connect(&url, &StoreOptions::default()).await })
    });
    for started in futures::future::join_all(starts).await {
        started.unwrap().unwrap().ping().await.unwrap();
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let (applied,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    let migrations = std::fs::read_dir("migrations/postgres").unwrap().count();
    assert_eq!(applied as usize, migrations, "each migration applied once");
    let (locks,): (i64,) =
        // This database's only: tests running alongside migrate databases
        // of their own in the same cluster.
        sqlx::query_as(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(locks, 0, "no replica keeps a migration lock");
}

/// Replicas started together and asked for tokens at once used to open
/// their pools under that load, and some requests waited past their budget
/// for a connection: `503 store-unavailable` with the database up.
#[tokio::test]
async fn a_replica_opens_its_whole_pool_before_it_serves_a_request() {
    let url = test_support::postgres::fresh_database().await;
    let options = StoreOptions {
        max_connections: 5,
        ..StoreOptions::default()
    };
    let _store = connect(&url, &options).await.unwrap();
    let observer = sqlx::PgPool::connect(&url).await.unwrap();
    let (sessions,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&observer)
    .await
    .unwrap();
    assert!(sessions >= 5, "{sessions} sessions open");
}

#[tokio::test]
async fn a_store_url_with_an_unknown_scheme_is_refused_without_echoing_it() {
    let err = connect("mysql://root:hunter2@db/x", &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl));
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn an_unreachable_postgres_is_reported_as_unavailable_without_the_password() {
    let port = test_support::free_port();
    let url = format!("postgres://u:hunter2@127.0.0.1:{port}/db");
    let options = StoreOptions {
        acquire_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let err = connect(&url, &options).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

// ---- replicas and the change feed ----

async fn heartbeats_list_the_live_replicas_until_one_leaves(b: Backend) {
    let other = b.replica().await;
    b.store.heartbeat("a-0001", "host-a", 15).await.unwrap();
    let seen = other.heartbeat("b-0002", "host-b", 15).await.unwrap();
    let holders: Vec<_> = seen
        .iter()
        .map(|r| (r.holder.as_str(), r.host.as_str()))
        .collect();
    assert_eq!(holders, [("a-0001", "host-a"), ("b-0002", "host-b")]);
    assert!(seen.iter().all(|r| (0..=1).contains(&r.seen_secs_ago)));

    b.store.leave("a-0001").await.unwrap();
    let seen = other.heartbeat("b-0002", "host-b", 15).await.unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let err = b.store.heartbeat("a 0001", "host-a", 15).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
}

/// Collects what a change feed reports.
#[derive(Default)]
struct Heard {
    connected: std::sync::atomic::AtomicUsize,
    changed: std::sync::Mutex<Vec<String>>,
}

impl ChangeSink for Heard {
    fn connected(&self) {
        self.connected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn lost(&self) {}
    fn changed(&self, user_ref: &str) {
        self.changed.lock().unwrap().push(user_ref.to_owned());
    }
}

async fn only_a_postgres_store_has_a_change_feed(b: Backend) {
    let feed = b.store.change_feed(Arc::new(Heard::default()));
    assert_eq!(feed.is_some(), b.url.starts_with("postgres"));
    assert_eq!(b.store.single_host(), b.url.starts_with("sqlite"));
}

#[tokio::test]
async fn the_change_feed_reports_token_changes_but_not_lease_bookkeeping() {
    let b = Backend::postgres().await;
    let c = cipher();
    let heard = Arc::new(Heard::default());
    let feed = tokio::spawn(b.store.change_feed(heard.clone()).unwrap());
    test_support::eventually("the feed listens", Duration::from_secs(5), || async {
        heard.connected.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;

    let u = user("una");
    authorize(&b, &c, "una").await; // a new row: nobody can have it cached
    let l = lease(&b, &u, "holder-1", 30).await;
    b.store
        .release_lease(&l, LeaseRelease::Unused)
        .await
        .unwrap();
    let l = lease(&b, &u, "holder-1", 30).await;
    committed(refresh(&b, &c, &l, "una-access-1", "una-refresh-1").await);
    b.store.delete(&u).await.unwrap();
    // Notifications arrive in commit order: once the marker's is heard,
    // anything the lease bookkeeping had sent would have come before.
    authorize(&b, &c, "marker").await;
    authorize(&b, &c, "marker").await;
    test_support::eventually("the marker is heard", Duration::from_secs(5), || async {
        heard.changed.lock().unwrap().last().map(String::as_str) == Some("marker")
    })
    .await;
    assert_eq!(*heard.changed.lock().unwrap(), ["una", "una", "marker"]);
    feed.abort();
}

#[tokio::test]
async fn a_new_sqlite_store_and_its_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let b = Backend::sqlite().await;
    authorize(&b, &cipher(), "perm").await;
    let db = b.url.trim_start_matches("sqlite:").to_owned();
    for file in [db.clone(), format!("{db}-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

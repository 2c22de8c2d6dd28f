//! [`UserTokens`]: what the `/astra/…` routes call. It hands out each user's
//! current access token, refreshing it through [`super::refresh`] when it is
//! due or reported dead, and shows and erases users. It also assembles one
//! replica's parts from `[astra]`.
//!
//! The database is the source of truth for a user's token. On PostgreSQL a
//! bounded in-process cache ([`super::cache`]) answers repeated token
//! requests; the store's change feed evicts a user as soon as any replica
//! replaces its token, so a replaced token stops being handed out within the
//! feed's delay (milliseconds). The same cache rides out a store outage with
//! tokens that are still valid. Stale-generation refreshes always read the
//! database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};

use super::astra_client::AstraClient;
use super::authorization::{Authorizations, Flow};
use super::cache::{CachedToken, UserTokenCache, forget};
use super::error::UserTokenError;
use super::pacer::{PacedAstra, Pacer};
use super::refresh::{Refresher, Trigger, settled};
use super::replicas::Membership;
use super::scheduler::Scheduler;
use super::sealer::Sealer;
use super::settings::{AstraConfig, Policy};
use super::store::{self, StoreError, UserRow, UserStatus, UserStore};
use super::user_ref::UserRef;
use crate::config::{AstraSettings, ConfigError, invalid};
use crate::core::{FlightError, SingleFlight, unix_secs};
use crate::observability::Metrics;

/// The store's gauges count every row: with a million users and a scrape
/// every few seconds on each replica, reading them each time would be the
/// database's largest load.
const STORE_GAUGES_EVERY: Duration = Duration::from_secs(30);

/// A token handed to a caller (`Debug` shows no token).
#[derive(Debug)]
pub struct HandedToken {
    pub access_token: SecretString,
    /// Until the access token expires or is next planned to be replaced,
    /// whichever is sooner: a caller that honours it never holds a dead token.
    pub expires_in: u64,
    pub generation: i64,
}

/// What an operator may see of a user: never a token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserSummary {
    pub user_ref: String,
    pub status: &'static str,
    pub generation: i64,
    pub access_expires_in: u64,
    pub refresh_expires_at: i64,
    pub next_refresh_at: i64,
    pub last_refresh_at: Option<i64>,
    pub last_astra_request_id: Option<String>,
    pub last_error: Option<String>,
}

impl UserSummary {
    fn of(row: &UserRow, now: i64) -> Self {
        Self {
            user_ref: row.user_ref.as_str().to_owned(),
            status: row.status.as_str(),
            generation: row.generation,
            access_expires_in: u64::try_from(row.access_expires_at - now).unwrap_or(0),
            refresh_expires_at: row.refresh_expires_at,
            next_refresh_at: row.next_refresh_at,
            last_refresh_at: row.last_refresh_at,
            last_astra_request_id: row.last_astra_request_id.clone(),
            last_error: row.last_error.clone(),
        }
    }
}

/// The per-user token service of one replica.
pub struct UserTokens {
    store: Arc<dyn UserStore>,
    sealer: Arc<Sealer>,
    refresher: Arc<Refresher>,
    authorizations: Arc<Authorizations>,
    membership: Arc<Membership>,
    scheduler: Arc<Scheduler>,
    policy: Policy,
    metrics: Metrics,
    /// Store reads of a user's row in flight, shared by concurrent requests.
    reads: SingleFlight<UserRef, Result<Option<Arc<UserRow>>, StoreError>>,
    /// PostgreSQL with `astra.cache_capacity` > 0 only.
    cache: Option<Arc<UserTokenCache>>,
    /// The task following the store's change feed into `cache`, until spawned.
    change_feed: Mutex<Option<BoxFuture<'static, ()>>>,
    /// When the store's gauges were last read (see [`STORE_GAUGES_EVERY`]).
    gauges_read_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl UserTokens {
    /// Checks `[astra]`, opens the store (running its migrations), joins the
    /// replicas sharing it and builds the service; `None` when
    /// `astra.enabled` is false.
    pub async fn from_settings(
        s: &AstraSettings,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Self>>, ConfigError> {
        let Some(config) = AstraConfig::from_settings(s)? else {
            return Ok(None);
        };
        let Ok(client) = AstraClient::new(config.client.clone()) else {
            return invalid(
                "astra.api_url",
                "no HTTP client can be built for it".into(),
                "use a base URL such as https://api.astra.finance",
            );
        };
        let store =
            match store::connect(config.store_url.expose_secret(), &config.store_options).await {
                Ok(store) => store,
                Err(e) => {
                    return invalid(
                        "astra.store_url",
                        format!("the store cannot be opened: {e}"),
                        "use sqlite:PATH in a writable directory, or a reachable postgres:// URL",
                    );
                }
            };
        let this = Arc::new(Self::assemble(config, client, store, metrics));
        if let Err(e) = this.membership.join().await {
            return invalid(
                "astra.store_url",
                e.to_string(),
                "use a postgres:// store for replicas on several hosts, or stop the other replica",
            );
        }
        Ok(Some(this))
    }

    /// Wires the parts of one replica together around `store`.
    fn assemble(
        config: AstraConfig,
        client: AstraClient,
        store: Arc<dyn UserStore>,
        metrics: &Metrics,
    ) -> Self {
        let (cache, change_feed) = token_cache(config.cache_capacity, &store);
        let policy = config.policy;
        let pacer = Arc::new(Pacer::new(config.max_calls_per_sec));
        let membership = Arc::new(Membership::new(
            Arc::clone(&store),
            Arc::clone(&pacer),
            metrics.clone(),
        ));
        let sealer = Arc::new(Sealer::new(config.cipher, policy.refresh_token_max_age));
        let astra = Arc::new(PacedAstra {
            client,
            pacer: Arc::clone(&pacer),
            metrics: metrics.clone(),
        });
        let refresher = Arc::new(Refresher::new(
            Arc::clone(&store),
            Arc::clone(&sealer),
            Arc::clone(&astra),
            metrics.clone(),
            config.webhook,
            cache.clone(),
            membership.holder().to_owned(),
            &policy,
        ));
        let scheduler = Arc::new(Scheduler::new(
            Arc::clone(&store),
            Arc::clone(&refresher),
            pacer,
            membership.holder().to_owned(),
            &policy,
        ));
        let authorizations = Arc::new(Authorizations::new(
            Arc::clone(&store),
            astra,
            Arc::clone(&sealer),
            cache.clone(),
            Flow {
                state_ttl: policy.state_ttl,
                completion_url: config.completion_url,
                pkce: config.pkce,
            },
            metrics.clone(),
        ));
        Self {
            store,
            sealer,
            refresher,
            authorizations,
            membership,
            scheduler,
            policy,
            metrics: metrics.clone(),
            reads: SingleFlight::new(),
            cache,
            change_feed: Mutex::new(change_feed),
            gauges_read_at: tokio::sync::Mutex::new(None),
        }
    }

    /// The scheduler, the heartbeat and the change feed, as tasks to abort at shutdown.
    pub fn spawn_background(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(Arc::clone(&self.scheduler).run()),
            tokio::spawn(Arc::clone(&self.membership).run_heartbeat()),
        ];
        let feed = self
            .change_feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        tasks.extend(feed.map(tokio::spawn));
        tasks
    }

    /// Starting and completing authorizations.
    pub fn authorizations(&self) -> &Arc<Authorizations> {
        &self.authorizations
    }

    /// Scheduled refreshes (the background task runs them; tests call a pass).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// This replica among those sharing the store (signs off at shutdown).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The refresh story, for test fault hooks.
    #[cfg(feature = "test-hooks")]
    pub fn refresher(&self) -> &Refresher {
        &self.refresher
    }

    /// The store, for readiness and metrics.
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// `GET /astra/users/{user_ref}/token`: the current access token,
    /// refreshed first when it is due; from the cache when it holds a fresh
    /// one, or a still-valid one while the store is unreachable.
    pub async fn token(self: &Arc<Self>, user: &UserRef) -> Result<HandedToken, UserTokenError> {
        let now = unix_secs();
        let Some(cache) = &self.cache else {
            return self
                .token_from_store(user, now)
                .await
                .map(|(token, _)| token);
        };
        if let Some(hit) = cache.fresh(user, now) {
            self.metrics.astra().cache_hit();
            return Ok(handed(
                &hit.access_token,
                hit.generation,
                hit.planned_replacement,
                now,
            ));
        }
        self.metrics.astra().cache_miss();
        let ticket = cache.ticket(user);
        match self.token_from_store(user, now).await {
            Ok((token, row)) => {
                let entry = CachedToken::new(
                    token.access_token.clone(),
                    row.generation,
                    row.access_expires_at,
                    self.planned_replacement(&row),
                    now,
                );
                cache.fill(ticket, user, entry);
                Ok(token)
            }
            Err(e) if e.is_transient() => {
                let Some(valid) = cache.still_valid(user, now) else {
                    return Err(e);
                };
                self.metrics.astra().cache_fallback();
                Ok(handed(
                    &valid.access_token,
                    valid.generation,
                    valid.access_expires_at,
                    now,
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// The token as the store has it, refreshed first when due. A due token
    /// whose refresh fails for a passing reason is still served while Astra
    /// accepts it.
    async fn token_from_store(
        self: &Arc<Self>,
        user: &UserRef,
        now: i64,
    ) -> Result<(HandedToken, Arc<UserRow>), UserTokenError> {
        let row = self.current(user).await?;
        if !self.is_due(&row, now) {
            return Ok((self.hand_out(&row, now)?, Arc::new(row)));
        }
        match self
            .refresher
            .refresh(user, Trigger::OnDemand, row.generation)
            .await
        {
            Ok(fresh) => Ok((self.hand_out(&fresh, unix_secs())?, fresh)),
            Err(e) if e.is_transient() && now < row.access_expires_at => {
                tracing::warn!(user_ref = %user, error = %e, "on-demand refresh failed; serving the current token while it lasts");
                let token = self.hand_out_until(&row, row.access_expires_at, now)?;
                Ok((token, Arc::new(row)))
            }
            Err(e) => Err(e),
        }
    }

    /// `POST /astra/users/{user_ref}/token/refresh`: refreshes only if the
    /// stored generation is still `stale`, else returns the current token.
    /// Always reads the database, never a cache.
    pub async fn refresh_stale(
        self: &Arc<Self>,
        user: &UserRef,
        stale: i64,
    ) -> Result<HandedToken, UserTokenError> {
        let row = self.current(user).await?;
        if row.generation != stale {
            return self.hand_out(&row, unix_secs());
        }
        let fresh = self
            .refresher
            .refresh(user, Trigger::StaleGeneration, stale)
            .await?;
        self.hand_out(&fresh, unix_secs())
    }

    /// The stored row of an authorized user, within `astra.store_timeout_ms`.
    async fn current(&self, user: &UserRef) -> Result<UserRow, UserTokenError> {
        // Concurrent requests for one user share one read: a stampede on a
        // cold or due user costs the pool one connection, not hundreds.
        let store = Arc::clone(&self.store);
        let owned = user.clone();
        let read = async move { store.get(&owned).await.map(|row| row.map(Arc::new)) };
        let row = match self
            .reads
            .run(user.clone(), self.policy.store_timeout, read)
            .await
        {
            Ok(read) => read?.ok_or(UserTokenError::UnknownUser)?,
            Err(FlightError::TimedOut | FlightError::Crashed) => {
                return Err(StoreError::Unavailable {
                    reason: "no answer within astra.store_timeout_ms".into(),
                }
                .into());
            }
        };
        settled(Arc::unwrap_or_clone(row))
    }

    /// When this row's access token is next replaced by a planned refresh.
    fn planned_replacement(&self, row: &UserRow) -> i64 {
        (row.access_expires_at - self.policy.access_margin).min(row.next_refresh_at)
    }

    fn is_due(&self, row: &UserRow, now: i64) -> bool {
        now >= self.planned_replacement(row)
    }

    /// `row`'s access token (an active row's), for use until its next
    /// planned replacement.
    fn hand_out(&self, row: &UserRow, now: i64) -> Result<HandedToken, UserTokenError> {
        self.hand_out_until(row, self.planned_replacement(row), now)
    }

    /// `row`'s access token, for use until `until`.
    fn hand_out_until(
        &self,
        row: &UserRow,
        until: i64,
        now: i64,
    ) -> Result<HandedToken, UserTokenError> {
        let access_token = self.sealer.access_token(row)?;
        Ok(handed(&access_token, row.generation, until, now))
    }

    /// `GET /astra/users/{user_ref}`.
    pub async fn summary(&self, user: &UserRef) -> Result<UserSummary, UserTokenError> {
        let row = self
            .store
            .get(user)
            .await?
            .ok_or(UserTokenError::UnknownUser)?;
        Ok(UserSummary::of(&row, unix_secs()))
    }

    /// `GET /astra/users`: one page of summaries, in `user_ref` order.
    pub async fn list(
        &self,
        status: Option<UserStatus>,
        after: Option<&UserRef>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, UserTokenError> {
        let now = unix_secs();
        Ok(self
            .store
            .list(status, after, limit)
            .await?
            .iter()
            .map(|row| UserSummary::of(row, now))
            .collect())
    }

    /// Sets the gauges read from the store (users by status, refresh tokens
    /// close to expiry, rows per key); called just before each scrape, and
    /// reads the store at most every [`STORE_GAUGES_EVERY`]. A store outage
    /// leaves the last values and says so.
    pub async fn update_metrics(&self, metrics: &Metrics) {
        // A scrape already reading them, or a recent read: keep the values.
        let Ok(mut read_at) = self.gauges_read_at.try_lock() else {
            return;
        };
        if read_at.is_some_and(|at| at.elapsed() < STORE_GAUGES_EVERY) {
            return;
        }
        *read_at = Some(tokio::time::Instant::now());
        let counts = async {
            let by_status = self.store.count_by_status().await?;
            let expiring = self
                .store
                .count_refresh_expiring_before(unix_secs() + 48 * 3600)
                .await?;
            let mut keys = Vec::new();
            for key_id in self.sealer.key_ids() {
                keys.push((key_id, self.store.count_rows_using_key(key_id).await?));
            }
            Ok::<_, StoreError>((by_status, expiring, keys))
        };
        match counts.await {
            Ok((by_status, expiring, keys)) => {
                for (status, count) in by_status {
                    metrics.astra().set_users(status.as_str(), count);
                }
                metrics.astra().set_expiring(expiring);
                for (key_id, count) in keys {
                    metrics.astra().set_key_rows(key_id, count);
                }
            }
            Err(e) => tracing::warn!(error = %e, "astra user gauges not updated"),
        }
    }

    /// `DELETE /astra/users/{user_ref}`: erases the stored tokens.
    pub async fn delete(&self, user: &UserRef) -> Result<(), UserTokenError> {
        let deleted = self.store.delete(user).await?;
        forget(self.cache.as_ref(), user);
        if deleted {
            tracing::info!(user_ref = %user, "astra user deleted");
            Ok(())
        } else {
            Err(UserTokenError::UnknownUser)
        }
    }
}

/// The token cache and the change feed that keeps it coherent; none for a
/// capacity of 0 or a store without a feed (SQLite), since a cache is only
/// coherent across replicas with one.
fn token_cache(
    capacity: usize,
    store: &Arc<dyn UserStore>,
) -> (Option<Arc<UserTokenCache>>, Option<BoxFuture<'static, ()>>) {
    if capacity == 0 {
        return (None, None);
    }
    let cache = Arc::new(UserTokenCache::new(capacity));
    match store.change_feed(Arc::clone(&cache) as _) {
        Some(feed) => (Some(cache), Some(feed)),
        None => (None, None),
    }
}

/// `access_token` for a caller who may use it until `until` (unix seconds).
fn handed(access_token: &SecretString, generation: i64, until: i64, now: i64) -> HandedToken {
    HandedToken {
        access_token: access_token.clone(),
        expires_in: u64::try_from(until - now).unwrap_or(0),
        generation,
    }
}

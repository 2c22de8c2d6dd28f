//! [`UserTokens`]: what the `/astra/…` routes call. It starts and completes
//! authorizations, hands out each user's current access token, and refreshes
//! it through [`super::refresh`] when it is due or reported dead.
//!
//! The database is the source of truth for a user's token. On PostgreSQL a
//! bounded in-process cache ([`super::cache`]) answers repeated token
//! requests; the store's change feed evicts a user as soon as any replica
//! replaces its token, so a replaced token stops being handed out within the
//! feed's delay (milliseconds). The same cache rides out a store outage with
//! tokens that are still valid. Stale-generation refreshes always read the
//! database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::astra_client::{AstraClient, AstraClientConfig, AstraError, AstraTokens};
use super::cache::{CachedToken, UserTokenCache};
use super::crypto::{Field, TokenCipher};
use super::error::UserTokenError;
use super::pacer::Pacer;
use super::refresh::settled;
use super::replicas::host_name;
use super::store::{self, NewTokens, StoreError, StoreOptions, UserRow, UserStatus, UserStore};
use super::user_ref::UserRef;
use super::webhook::Webhook;
use crate::config::{AstraSettings, ConfigError, https_url, invalid, required};
use crate::core::unix_now;
use crate::observability::Metrics;

/// The store's gauges count every row: with a million users and a scrape
/// every few seconds on each replica, reading them each time would be the
/// database's largest load.
const STORE_GAUGES_EVERY: Duration = Duration::from_secs(30);

/// Astra's refresh tokens live 10 days; the scheduler must act well before.
const REFRESH_TOKEN_LIFETIME_SECS: u64 = 10 * 24 * 3600;

crate::core::named_enum! {
    /// What asked for a refresh, for metrics and logs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Trigger {
        /// A token request found the access token due.
        OnDemand = "on_demand",
        /// A caller's Astra call failed with an expired token.
        StaleGeneration = "stale_generation",
        /// The scheduler, keeping the refresh token young.
        Scheduled = "scheduled",
    }
}

/// Points where a test can stop a refresh as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Astra has answered with new tokens; nothing is written yet.
    AfterAstraBeforeCommit,
}

/// Test-only: returns true to stop the refresh at that point, leaving the
/// lease held and nothing written, as a killed process would.
pub type FaultHook = Arc<dyn Fn(FaultPoint) -> bool + Send + Sync>;

/// What a customer's backend hands over to authorize a user.
pub enum Grant {
    /// An authorization code from Astra's redirect.
    Code(SecretString),
    /// A refresh token obtained before adopting this service.
    RefreshToken(SecretString),
}

impl Grant {
    fn secret(&self) -> &SecretString {
        match self {
            Grant::Code(s) | Grant::RefreshToken(s) => s,
        }
    }

    /// Whether the grant carries no text at all.
    pub fn is_empty(&self) -> bool {
        self.secret().expose_secret().trim().is_empty()
    }
}

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

/// A started authorization, for the browser to follow.
pub struct StartedAuthorization {
    pub authorize_url: Url,
    pub state: String,
    pub expires_in: u64,
}

/// Timing rules from `[astra]`, in seconds.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    pub refresh_token_max_age: i64,
    pub access_margin: i64,
    pub lease_secs: i64,
    pub wait_timeout: Duration,
    pub state_ttl: i64,
    pub scheduler_interval: Duration,
    pub scheduler_batch: u32,
    /// Longest a token request waits on the store before answering 503.
    pub store_timeout: Duration,
}

type SharedRefresh = Shared<BoxFuture<'static, Result<Arc<UserRow>, Arc<UserTokenError>>>>;

/// The per-user token service of one replica.
pub struct UserTokens {
    pub(super) store: Arc<dyn UserStore>,
    pub(super) cipher: TokenCipher,
    pub(super) astra: AstraClient,
    pub(super) policy: Policy,
    /// Names this replica in leases, so an operator can see who holds one.
    pub(super) holder: String,
    /// The host this replica runs on (see [`super::replicas`]).
    pub(super) host: String,
    pub(super) pacer: Pacer,
    pub(super) metrics: Metrics,
    pub(super) webhook: Option<Webhook>,
    pub(super) fault: Option<FaultHook>,
    completion_url: Option<Url>,
    inflight: Mutex<HashMap<String, SharedRefresh>>,
    /// PostgreSQL with `astra.cache_capacity` > 0 only.
    cache: Option<Arc<UserTokenCache>>,
    /// The task following the store's change feed into `cache`, until spawned.
    change_feed: Mutex<Option<BoxFuture<'static, ()>>>,
    /// When the store's gauges were last read (see [`STORE_GAUGES_EVERY`]).
    gauges_read_at: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl UserTokens {
    /// Checks `[astra]`, opens the store (running its migrations) and builds
    /// the service; `None` when `astra.enabled` is false.
    pub async fn from_settings(
        s: &AstraSettings,
        metrics: &Metrics,
    ) -> Result<Option<Arc<Self>>, ConfigError> {
        if !s.enabled {
            return Ok(None);
        }
        required(
            "astra.client_id",
            &s.client_id,
            "your Astra OAuth client id",
        )?;
        if s.client_secret.expose_secret().trim().is_empty() {
            return invalid(
                "astra.client_secret",
                "is empty".into(),
                "set ATV_ASTRA__CLIENT_SECRET to your Astra OAuth client secret",
            );
        }
        let api_base = https_url(
            "astra.api_url",
            &s.api_url,
            "would send client secrets and tokens in clear text",
            "use https://api.astra.finance (or the sandbox)",
        )?;
        let authorize_base = https_url(
            "astra.authorize_url",
            &s.authorize_url,
            "would send users to an unprotected login page",
            "use https://app.astra.finance (or the sandbox)",
        )?;
        required(
            "astra.redirect_uri",
            &s.redirect_uri,
            "the redirect URI registered with Astra, normally https://YOUR-HOST/astra/callback",
        )?;
        let redirect_uri = https_url(
            "astra.redirect_uri",
            &s.redirect_uri,
            "would carry authorization codes in clear text",
            "use e.g. https://tokens.example.com/astra/callback",
        )?;
        let completion_url = if s.completion_url.trim().is_empty() {
            None
        } else {
            Some(https_url(
                "astra.completion_url",
                &s.completion_url,
                "would be an unprotected page",
                "use e.g. https://app.example.com/astra/done",
            )?)
        };
        if s.timeout_ms == 0 || s.connect_timeout_ms == 0 || s.connect_timeout_ms > s.timeout_ms {
            return invalid(
                "astra.connect_timeout_ms",
                format!(
                    "{} ms must be between 1 and astra.timeout_ms ({} ms)",
                    s.connect_timeout_ms, s.timeout_ms
                ),
                "use e.g. connect_timeout_ms = 1000, timeout_ms = 5000",
            );
        }
        let max_age = s.refresh_token_max_age_secs;
        // The scheduler needs room for retries before day 10: at most 9 days.
        if max_age == 0 || max_age > REFRESH_TOKEN_LIFETIME_SECS - 24 * 3600 {
            return invalid(
                "astra.refresh_token_max_age_secs",
                format!(
                    "{max_age} s leaves no room to refresh before Astra's 10-day refresh tokens expire"
                ),
                "use at most 777600 (9 days); the default is 604800 (7 days)",
            );
        }
        if s.access_refresh_margin_secs >= 3600 {
            return invalid(
                "astra.access_refresh_margin_secs",
                format!(
                    "{} s would refresh Astra's 2-hour access tokens almost constantly",
                    s.access_refresh_margin_secs
                ),
                "use e.g. 300",
            );
        }
        if s.lease_secs * 1000 <= s.timeout_ms {
            return invalid(
                "astra.lease_secs",
                format!(
                    "{} s does not outlast one Astra call (astra.timeout_ms = {})",
                    s.lease_secs, s.timeout_ms
                ),
                "use a lease longer than the timeout, e.g. 30",
            );
        }
        if s.store_timeout_ms == 0 || s.store_timeout_ms > 30_000 {
            return invalid(
                "astra.store_timeout_ms",
                format!("{} ms is not between 1 and 30000", s.store_timeout_ms),
                "use e.g. 1000, so callers get a quick 503 while the database is down",
            );
        }
        if s.max_calls_per_sec == 0 || s.scheduler_batch == 0 || s.scheduler_interval_secs == 0 {
            return invalid(
                "astra.max_calls_per_sec",
                "max_calls_per_sec, scheduler_batch and scheduler_interval_secs must be at least 1"
                    .into(),
                "use e.g. max_calls_per_sec = 20, scheduler_batch = 100, scheduler_interval_secs = 60",
            );
        }
        let cipher = cipher_from_settings(s)?;
        let astra = AstraClient::new(AstraClientConfig {
            api_base,
            authorize_base,
            client_id: s.client_id.clone(),
            client_secret: s.client_secret.clone(),
            redirect_uri,
            connect_timeout: Duration::from_millis(s.connect_timeout_ms),
            timeout: Duration::from_millis(s.timeout_ms),
            max_response_bytes: s.max_response_bytes,
        });
        let Ok(astra) = astra else {
            return invalid(
                "astra.api_url",
                "no HTTP client can be built for it".into(),
                "use a base URL such as https://api.astra.finance",
            );
        };
        let store_url = store_url(s)?;
        let store_timeout = Duration::from_millis(s.store_timeout_ms);
        let store = store::connect(
            store_url.expose_secret(),
            &StoreOptions {
                max_connections: s.store_max_connections.max(1),
                acquire_timeout: store_timeout,
                statement_timeout: store_timeout,
                ..StoreOptions::default()
            },
        )
        .await;
        let store = match store {
            Ok(store) => store,
            Err(e) => {
                return invalid(
                    "astra.store_url",
                    format!("the store cannot be opened: {e}"),
                    "use sqlite:PATH in a writable directory, or a reachable postgres:// URL",
                );
            }
        };
        let webhook = Webhook::from_settings(s)?;
        let (cache, change_feed) = match s.cache_capacity {
            0 => (None, None),
            capacity => {
                let cache = Arc::new(UserTokenCache::new(capacity));
                match store.change_feed(Arc::clone(&cache) as _) {
                    Some(feed) => (Some(cache), Some(feed)),
                    None => (None, None),
                }
            }
        };
        let host = host_name();
        let this = Arc::new(Self {
            store,
            cipher,
            astra,
            policy: Policy {
                refresh_token_max_age: i64::try_from(max_age).unwrap_or(i64::MAX),
                access_margin: i64::try_from(s.access_refresh_margin_secs).unwrap_or(0),
                lease_secs: i64::try_from(s.lease_secs).unwrap_or(30),
                wait_timeout: Duration::from_millis(s.wait_timeout_ms.max(1)),
                state_ttl: i64::try_from(s.state_ttl_secs.max(1)).unwrap_or(600),
                scheduler_interval: Duration::from_secs(s.scheduler_interval_secs),
                scheduler_batch: s.scheduler_batch,
                store_timeout,
            },
            holder: format!("{host}-{:08x}", fastrand::u32(..)),
            host,
            pacer: Pacer::new(s.max_calls_per_sec),
            metrics: metrics.clone(),
            webhook,
            fault: None,
            completion_url,
            inflight: Mutex::new(HashMap::new()),
            cache,
            change_feed: Mutex::new(change_feed),
            gauges_read_at: tokio::sync::Mutex::new(None),
        });
        if let Err(e) = this.join().await {
            return invalid(
                "astra.store_url",
                e.to_string(),
                "use a postgres:// store for replicas on several hosts, or stop the other replica",
            );
        }
        Ok(Some(this))
    }

    /// The scheduler, the heartbeat and the change feed, as tasks to abort at shutdown.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(Arc::clone(self).run_scheduler()),
            tokio::spawn(Arc::clone(self).run_heartbeat()),
        ];
        let feed = self
            .change_feed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        tasks.extend(feed.map(tokio::spawn));
        tasks
    }

    /// Test-only: installs a [`FaultHook`]; call before sharing the service.
    pub fn set_fault_hook(self: &mut Arc<Self>, hook: FaultHook) {
        if let Some(this) = Arc::get_mut(self) {
            this.fault = Some(hook);
        }
    }

    /// Where the browser goes after the callback, if configured.
    pub fn completion_url(&self) -> Option<&Url> {
        self.completion_url.as_ref()
    }

    /// The store, for readiness and metrics.
    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    /// `POST /astra/users/{user_ref}/authorization`: a single-use `state`,
    /// stored hashed, and the Astra URL the user must visit.
    pub async fn start_authorization(
        &self,
        user: &UserRef,
        user_intent_id: Option<&str>,
    ) -> Result<StartedAuthorization, UserTokenError> {
        if user_intent_id.is_some_and(|id| !store::is_label(id)) {
            return Err(UserTokenError::BadRequest(
                "user_intent_id must be 1 to 128 characters of A-Z a-z 0-9 . _ : -",
            ));
        }
        let state = random_state()?;
        let expires_at = now() + self.policy.state_ttl;
        self.store
            .put_state(&state_hash(&state), user, user_intent_id, expires_at)
            .await?;
        Ok(StartedAuthorization {
            authorize_url: self.astra.authorize_url(&state, user_intent_id),
            state,
            expires_in: u64::try_from(self.policy.state_ttl).unwrap_or(0),
        })
    }

    /// `GET /astra/callback`: consumes the state, exchanges the code.
    pub async fn complete_callback(
        &self,
        code: &SecretString,
        state: &str,
    ) -> Result<UserRow, UserTokenError> {
        let pending = self
            .store
            .take_state(&state_hash(state))
            .await?
            .ok_or(UserTokenError::StateInvalid)?;
        self.authorize(&pending.user_ref, &Grant::Code(code.clone()))
            .await
    }

    /// Turns `grant` into a new authorization of `user`: an authorization
    /// code is exchanged; an imported refresh token is proven by refreshing
    /// once (`PUT /astra/users/{user_ref}/refresh-token`).
    pub async fn authorize(
        &self,
        user: &UserRef,
        grant: &Grant,
    ) -> Result<UserRow, UserTokenError> {
        match grant {
            Grant::Code(code) => {
                let call = self.astra.exchange_code(code);
                self.authorize_with(user, call, "authorization code exchange failed")
                    .await
            }
            Grant::RefreshToken(token) => {
                let call = self.astra.refresh(token);
                self.authorize_with(user, call, "refresh token import failed")
                    .await
            }
        }
    }

    /// Makes one paced, timed call to Astra for `user` and stores the tokens
    /// it returns as a new authorization; a failure is logged as `failed`.
    async fn authorize_with(
        &self,
        user: &UserRef,
        call: impl Future<Output = Result<AstraTokens, AstraError>>,
        failed: &str,
    ) -> Result<UserRow, UserTokenError> {
        self.pacer.wait().await;
        let started = tokio::time::Instant::now();
        let answer = call.await;
        self.metrics.astra_call(started.elapsed());
        let tokens = answer.map_err(|e| {
            tracing::warn!(user_ref = %user, astra_request_id = e.request_id(), error = %e, "{failed}");
            UserTokenError::from_astra(&e)
        })?;
        self.store_new_authorization(user, &tokens).await
    }

    async fn store_new_authorization(
        &self,
        user: &UserRef,
        tokens: &AstraTokens,
    ) -> Result<UserRow, UserTokenError> {
        let sealed = self.seal(user, tokens, now())?;
        let row = self.store.store_authorization(user, sealed).await?;
        self.forget_cached(user);
        tracing::info!(
            user_ref = %user,
            generation = row.generation,
            astra_request_id = tokens.request_id.as_deref(),
            "astra user authorized"
        );
        Ok(row)
    }

    /// Seals Astra's answer as the row's new tokens, issued at `now`.
    pub(super) fn seal(
        &self,
        user: &UserRef,
        tokens: &AstraTokens,
        now: i64,
    ) -> Result<NewTokens, UserTokenError> {
        let access_secs = i64::try_from(tokens.expires_in.as_secs()).unwrap_or(i64::MAX / 4);
        Ok(NewTokens {
            access_token: self
                .cipher
                .seal(user, Field::AccessToken, &tokens.access_token)?,
            access_expires_at: now + access_secs,
            refresh_token: self
                .cipher
                .seal(user, Field::RefreshToken, &tokens.refresh_token)?,
            refresh_issued_at: now,
            refresh_expires_at: now + i64::try_from(REFRESH_TOKEN_LIFETIME_SECS).unwrap_or(0),
            next_refresh_at: now + self.policy.refresh_token_max_age,
            astra_request_id: tokens.request_id.clone(),
        })
    }

    /// `GET /astra/users/{user_ref}/token`: the current access token,
    /// refreshed first when it is due; from the cache when it holds a fresh
    /// one, or a still-valid one while the store is unreachable.
    pub async fn token(self: &Arc<Self>, user: &UserRef) -> Result<HandedToken, UserTokenError> {
        let now = now();
        let Some(cache) = &self.cache else {
            return self
                .token_from_store(user, now)
                .await
                .map(|(token, _)| token);
        };
        if let Some(hit) = cache.fresh(user, now) {
            self.metrics.astra_cache_hit();
            return Ok(handed(
                &hit.access_token,
                hit.generation,
                hit.planned_replacement,
                now,
            ));
        }
        self.metrics.astra_cache_miss();
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
                self.metrics.astra_cache_fallback();
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
        match self.refresh(user, Trigger::OnDemand, row.generation).await {
            Ok(fresh) => Ok((self.hand_out(&fresh, self::now())?, fresh)),
            Err(e) if e.is_transient() && now < row.access_expires_at => {
                tracing::warn!(user_ref = %user, error = %e, "on-demand refresh failed; serving the current token while it lasts");
                let token = self.hand_out_until(&row, row.access_expires_at, now)?;
                Ok((token, Arc::new(row)))
            }
            Err(e) => Err(e),
        }
    }

    /// Drops `user` from this replica's cache after a write here; other
    /// replicas hear of it through the change feed.
    pub(super) fn forget_cached(&self, user: &UserRef) {
        if let Some(cache) = &self.cache {
            cache.evict(user.as_str());
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
            return self.hand_out(&row, now());
        }
        let fresh = self.refresh(user, Trigger::StaleGeneration, stale).await?;
        self.hand_out(&fresh, now())
    }

    /// The stored row of an authorized user, within `astra.store_timeout_ms`.
    async fn current(&self, user: &UserRef) -> Result<UserRow, UserTokenError> {
        let read = tokio::time::timeout(self.policy.store_timeout, self.store.get(user)).await;
        let row = read
            .unwrap_or_else(|_| {
                Err(StoreError::Unavailable {
                    reason: "no answer within astra.store_timeout_ms".into(),
                })
            })?
            .ok_or(UserTokenError::UnknownUser)?;
        settled(row)
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
        let access_token =
            self.cipher
                .open(&row.user_ref, Field::AccessToken, &row.access_token)?;
        Ok(handed(&access_token, row.generation, until, now))
    }

    /// A refresh of `user` past `generation`. Joining one that this
    /// replica started from an older generation may end at `generation`
    /// itself; then once more, from there.
    pub(super) async fn refresh(
        self: &Arc<Self>,
        user: &UserRef,
        trigger: Trigger,
        generation: i64,
    ) -> Result<Arc<UserRow>, UserTokenError> {
        let row = self.join_refresh(user, trigger, generation).await?;
        if row.generation == generation {
            return self.join_refresh(user, trigger, generation).await;
        }
        Ok(row)
    }

    /// One refresh of `user` from `generation`, shared by every caller of
    /// this replica that asks meanwhile, and run as its own task so that a
    /// caller going away never cancels it.
    async fn join_refresh(
        self: &Arc<Self>,
        user: &UserRef,
        trigger: Trigger,
        generation: i64,
    ) -> Result<Arc<UserRow>, UserTokenError> {
        let shared = {
            let mut inflight = self
                .inflight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match inflight.get(user.as_str()) {
                Some(shared) => shared.clone(),
                None => {
                    let this = Arc::clone(self);
                    let key = user.as_str().to_owned();
                    let user = user.clone();
                    let task = tokio::spawn(async move {
                        let result = this
                            .refresh_under_lease(&user, trigger, generation)
                            .await
                            .map(Arc::new)
                            .map_err(Arc::new);
                        this.inflight
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(user.as_str());
                        result
                    });
                    let shared = async move {
                        task.await
                            .unwrap_or_else(|_| Err(Arc::new(UserTokenError::Crashed)))
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key, shared.clone());
                    shared
                }
            }
        };
        match tokio::time::timeout(self.policy.wait_timeout, shared).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err((*e).clone()),
            Err(_) => Err(UserTokenError::RefreshBusy {
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// `GET /astra/users/{user_ref}`.
    pub async fn summary(&self, user: &UserRef) -> Result<UserSummary, UserTokenError> {
        let row = self
            .store
            .get(user)
            .await?
            .ok_or(UserTokenError::UnknownUser)?;
        Ok(UserSummary::of(&row, now()))
    }

    /// `GET /astra/users`: one page of summaries, in `user_ref` order.
    pub async fn list(
        &self,
        status: Option<UserStatus>,
        after: Option<&UserRef>,
        limit: u32,
    ) -> Result<Vec<UserSummary>, UserTokenError> {
        let now = now();
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
                .count_refresh_expiring_before(now() + 48 * 3600)
                .await?;
            let mut keys = Vec::new();
            for key_id in self.cipher.key_ids() {
                keys.push((key_id, self.store.count_rows_using_key(key_id).await?));
            }
            Ok::<_, super::StoreError>((by_status, expiring, keys))
        };
        match counts.await {
            Ok((by_status, expiring, keys)) => {
                for (status, count) in by_status {
                    metrics.set_astra_users(status.as_str(), count);
                }
                metrics.set_astra_expiring(expiring);
                for (key_id, count) in keys {
                    metrics.set_astra_key_rows(key_id, count);
                }
            }
            Err(e) => tracing::warn!(error = %e, "astra user gauges not updated"),
        }
    }

    /// `DELETE /astra/users/{user_ref}`: erases the stored tokens.
    pub async fn delete(&self, user: &UserRef) -> Result<(), UserTokenError> {
        let deleted = self.store.delete(user).await?;
        self.forget_cached(user);
        if deleted {
            tracing::info!(user_ref = %user, "astra user deleted");
            Ok(())
        } else {
            Err(UserTokenError::UnknownUser)
        }
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

/// Wall-clock unix seconds, the unit every stored time uses.
pub(super) fn now() -> i64 {
    i64::try_from(unix_now().as_secs()).unwrap_or(i64::MAX)
}

/// 256 random bits, URL-safe: the `state` is a bearer secret until used.
fn random_state() -> Result<String, UserTokenError> {
    let mut bytes = [0u8; 32];
    super::crypto::fill_random(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Only the hash of a `state` is stored, so a database reader cannot
/// complete someone else's pending authorization.
fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

/// `astra.store_url`, or the text of `astra.store_url_file`: the URL may
/// carry a password, so it is held as a secret and never echoed.
fn store_url(s: &AstraSettings) -> Result<SecretString, ConfigError> {
    if s.store_url_file.as_os_str().is_empty() {
        return Ok(s.store_url.clone());
    }
    match std::fs::read_to_string(&s.store_url_file) {
        Ok(text) if !text.trim().is_empty() => Ok(SecretString::from(text.trim().to_owned())),
        Ok(_) => invalid(
            "astra.store_url_file",
            format!("{} is empty", s.store_url_file.display()),
            "put the postgres:// URL in the Secret the file is mounted from",
        ),
        Err(e) => invalid(
            "astra.store_url_file",
            format!("cannot read {}: {}", s.store_url_file.display(), e.kind()),
            "mount the Secret holding the store URL at that path, or set it to \"\"",
        ),
    }
}

fn cipher_from_settings(s: &AstraSettings) -> Result<TokenCipher, ConfigError> {
    const KEY: &str = "astra.encryption_keys";
    const FIX: &str = "set ATV_ASTRA__ENCRYPTION_KEYS to ID:BASE64 pairs separated by commas, each a 32-byte key (openssl rand -base64 32), and astra.active_key_id to one of the ids";
    let listed = s.encryption_keys.expose_secret();
    let mut keys = Vec::new();
    for (index, entry) in listed
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .enumerate()
    {
        let Some((id, key)) = entry.trim().split_once(':') else {
            // Never echo the entry: it is key material.
            return invalid(KEY, format!("entry {} is not ID:BASE64", index + 1), FIX);
        };
        keys.push((
            id.trim().to_owned(),
            SecretString::from(key.trim().to_owned()),
        ));
    }
    if keys.is_empty() {
        return invalid(KEY, "is empty".into(), FIX);
    }
    match TokenCipher::new(keys, s.active_key_id.trim()) {
        Ok(cipher) => Ok(cipher),
        Err(e) => invalid(KEY, e.to_string(), FIX),
    }
}

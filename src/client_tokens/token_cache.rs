//! One cached access token per credential set.
//!
//! - **Hot path**: a lock-free load of the current token; no request waits on
//!   the upstream while a usable token exists.
//! - **Single-flight**: at most one exchange per set is in flight; every
//!   caller that needs a token joins it and shares its result or error.
//! - **Refresh-ahead**: a background loop refreshes before expiry, so in
//!   steady state the hot path is the only path.
//! - **Backoff**: failures are retried with exponential backoff and jitter;
//!   callers arriving during a backoff window get an immediate answer instead
//!   of starting a stampede, and a still-valid token keeps being served.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument;

use super::cache_policy::CachePolicy;
use super::credentials::CredentialStore;
use super::oauth_client::{ExchangeError, ExchangeRequest, OAuthClient};
use crate::core::{
    AccessToken, CredentialSet, Flight, FlightError, PerSet, SingleFlight, jittered,
};
use crate::observability::{Metrics, telemetry};

/// Something that turns a credential set into a fresh token; the seam between
/// caching policy and the HTTP exchange, so each can be tested alone.
#[async_trait]
pub trait Exchanger: Send + Sync + 'static {
    /// Performs one exchange for `set`.
    async fn exchange(&self, set: CredentialSet) -> Result<AccessToken, ExchangeError>;
}

/// The production exchanger: current credentials from the store, sent by the
/// OAuth client. An `invalid_client` answer asks the store to re-read the
/// secret, since the likeliest cause is a rotation we have not seen yet.
pub struct UpstreamExchanger {
    pub client: OAuthClient,
    pub credentials: Arc<CredentialStore>,
    pub requests: PerSet<ExchangeRequest>,
}

#[async_trait]
impl Exchanger for UpstreamExchanger {
    async fn exchange(&self, set: CredentialSet) -> Result<AccessToken, ExchangeError> {
        let credentials = self
            .credentials
            .get(set)
            .ok_or(ExchangeError::CredentialsUnavailable)?;
        let result = self
            .client
            .exchange(&credentials, self.requests.get(set))
            .await;
        if matches!(result, Err(ExchangeError::InvalidClient)) && self.credentials.request_reload()
        {
            tracing::warn!(%set, "invalid_client from the token endpoint; re-reading credentials");
        }
        result
    }
}

/// Longest pause between retries of a failing upstream while no usable token
/// is cached: a recovered token endpoint is noticed within about a second.
/// One request per second per set and replica is no load for the upstream.
pub const OUTAGE_RETRY_MAX: Duration = Duration::from_secs(1);

/// Why a caller got no token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no {set} token is available: {cause}")]
pub struct TokenUnavailable {
    pub set: CredentialSet,
    pub cause: ExchangeError,
    /// When a retry has a chance, for the `Retry-After` header.
    pub retry_after: Duration,
}

type Exchange = Result<Arc<AccessToken>, ExchangeError>;

/// Who wants an exchange: a caller needs a usable token, the refresh loop a
/// fresher one than the usable token it may already have.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Starter {
    Caller,
    RefreshLoop,
}

/// Why no exchange was joined or started.
enum Declined {
    /// A caller's token was stored by a flight that ended after it looked.
    Fresh(Arc<AccessToken>),
    BackingOff(TokenUnavailable),
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
    last_error: Option<ExchangeError>,
}

/// The cache for one credential set.
pub struct TokenCache {
    set: CredentialSet,
    current: ArcSwapOption<AccessToken>,
    /// One key: the set this cache serves.
    inflight: SingleFlight<(), Exchange>,
    backoff: Mutex<Backoff>,
    policy: CachePolicy,
    exchanger: Arc<dyn Exchanger>,
    metrics: Metrics,
    ever_succeeded: AtomicBool,
}

impl TokenCache {
    /// A cold cache. Exchanges run on the current Tokio runtime, not on the
    /// caller's, so a caller that goes away never cancels a shared exchange.
    pub fn new(
        set: CredentialSet,
        policy: CachePolicy,
        exchanger: Arc<dyn Exchanger>,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            set,
            current: ArcSwapOption::empty(),
            inflight: SingleFlight::new(),
            backoff: Mutex::new(Backoff::default()),
            policy,
            exchanger,
            metrics,
            ever_succeeded: AtomicBool::new(false),
        })
    }

    /// Which set this cache serves.
    pub fn set(&self) -> CredentialSet {
        self.set
    }

    /// A token with at least the minimum remaining life, fetching one (or
    /// joining the fetch in flight) only when none is cached.
    pub async fn get(self: &Arc<Self>) -> Result<Arc<AccessToken>, TokenUnavailable> {
        let span = self.lookup_span();
        let hit = self.usable(Instant::now());
        span.record("cache.hit", hit.is_some());
        self.metrics.tokens().cache_lookup(self.set, hit.is_some());
        match hit {
            Some(token) => Ok(token),
            None => self.fetch().instrument(span).await,
        }
    }

    /// The lookup's span when spans are exported, or when the log filter
    /// asks for `debug` lines; otherwise none, since a span costs a cached
    /// hand-out more than the lookup itself.
    fn lookup_span(&self) -> tracing::Span {
        if telemetry::exporting() {
            tracing::info_span!("token_cache.get", set = %self.set, cache.hit = tracing::field::Empty)
        } else {
            tracing::debug_span!("token_cache.get", set = %self.set, cache.hit = tracing::field::Empty)
        }
    }

    async fn fetch(self: &Arc<Self>) -> Result<Arc<AccessToken>, TokenUnavailable> {
        let exchange = match self.join_or_start(Starter::Caller) {
            Ok(exchange) => exchange,
            Err(Declined::Fresh(token)) => return Ok(token),
            Err(Declined::BackingOff(unavailable)) => return Err(unavailable),
        };
        match exchange.wait(self.policy.wait_timeout).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(cause)) => Err(self.unavailable(cause)),
            Err(FlightError::TimedOut) => Err(TokenUnavailable {
                set: self.set,
                cause: ExchangeError::Timeout,
                retry_after: Duration::from_secs(1),
            }),
            Err(FlightError::Crashed) => Err(self.unavailable(ExchangeError::Unreachable)),
        }
    }

    /// The cached token if it may still be handed out.
    pub fn usable(&self, now: Instant) -> Option<Arc<AccessToken>> {
        let token = self.current.load_full()?;
        (token.remaining(now) >= self.policy.min_remaining_for(token.lifetime)).then_some(token)
    }

    /// Forgets `rejected` after the upstream refused it (401), so the next
    /// [`TokenCache::get`] exchanges a new one. Only the token the caller
    /// used is dropped: when many calls fail on it together, the first
    /// drops it, the rest find it gone (or already replaced) and all of
    /// them join one exchange through the cache's single-flight.
    pub fn reject(&self, rejected: &Arc<AccessToken>) {
        let previous = self.current.compare_and_swap(rejected, None);
        if previous
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, rejected))
        {
            tracing::info!(set = %self.set, "token refused upstream; a new one will be exchanged");
        }
    }

    /// Whether an exchange has ever succeeded. Readiness uses this rather than
    /// the token's current validity: once a replica has proven its
    /// configuration works, an Astrada outage should produce fast 503s with
    /// `Retry-After`, not a Service with no endpoints at all.
    pub fn has_succeeded(&self) -> bool {
        self.ever_succeeded.load(Ordering::Relaxed)
    }

    /// Seconds until the cached token expires (zero when there is none), for metrics.
    pub fn seconds_until_expiry(&self) -> f64 {
        self.current
            .load()
            .as_ref()
            .map_or(0.0, |t| t.remaining(Instant::now()).as_secs_f64())
    }

    /// Keeps the token fresh: sleeps until refresh-ahead time (or the end of a
    /// backoff window), refreshes, repeats. A credential change ends a backoff
    /// wait at once, so a rotation that fixes `invalid_client` takes effect now.
    pub async fn run_refresh_loop(self: Arc<Self>, mut credentials_changed: watch::Receiver<u64>) {
        loop {
            let wake_at = self.next_refresh_at();
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at) => {
                    let span = tracing::info_span!("token_cache.refresh_ahead", set = %self.set);
                    if let Ok(exchange) = span.in_scope(|| self.join_or_start(Starter::RefreshLoop)) {
                        self.metrics.tokens().refresh_ahead(self.set);
                        // Outcome is logged and recorded by the exchange itself.
                        let _ = exchange.finish().instrument(span).await;
                    }
                }
                changed = credentials_changed.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.lock_backoff().next_attempt = None;
                }
            }
        }
    }

    fn next_refresh_at(&self) -> Instant {
        let now = Instant::now();
        let due = self.current.load().as_ref().map_or(now, |t| {
            t.expires_at
                .checked_sub(self.policy.refresh_ahead_for(t.lifetime))
                .unwrap_or(now)
        });
        match self.lock_backoff().next_attempt {
            Some(retry) if retry > due => retry,
            _ => due,
        }
    }

    fn join_or_start(self: &Arc<Self>, starter: Starter) -> Result<Flight<Exchange>, Declined> {
        let flight = self.inflight.join_or_start((), || {
            // A caller found no usable token before it got here; the flight
            // that was in flight then may have stored one since. Looked at
            // under the single-flight lock, so no finished flight is missed.
            if starter == Starter::Caller
                && let Some(token) = self.usable(Instant::now())
            {
                return Err(Declined::Fresh(token));
            }
            let backoff = self.lock_backoff();
            if let (Some(retry), Some(cause)) = (backoff.next_attempt, &backoff.last_error)
                && retry > Instant::now()
            {
                return Err(Declined::BackingOff(TokenUnavailable {
                    set: self.set,
                    cause: cause.clone(),
                    retry_after: retry - Instant::now(),
                }));
            }
            let this = Arc::clone(self);
            // The span's parent is whoever started the exchange: a request or the refresh loop.
            let span = tracing::info_span!("token.exchange", set = %self.set, outcome = tracing::field::Empty);
            Ok(async move { this.exchange_and_store().await }.instrument(span))
        })?;
        if flight.joined {
            self.metrics.tokens().coalesced(self.set);
        }
        Ok(flight)
    }

    async fn exchange_and_store(self: Arc<Self>) -> Result<Arc<AccessToken>, ExchangeError> {
        let started = Instant::now();
        let result = self.exchanger.exchange(self.set).await.map(Arc::new);
        let outcome = result.as_ref().map_or_else(|e| e.kind(), |_| "ok");
        self.metrics
            .tokens()
            .exchange(self.set, outcome, started.elapsed());
        tracing::Span::current().record("outcome", outcome);
        match &result {
            Ok(token) => {
                self.current.store(Some(Arc::clone(token)));
                self.ever_succeeded.store(true, Ordering::Relaxed);
                *self.lock_backoff() = Backoff::default();
                tracing::info!(set = %self.set, expires_in_secs = token.lifetime.as_secs(), "token refreshed");
            }
            Err(e) => {
                let mut backoff = self.lock_backoff();
                backoff.failures = backoff.failures.saturating_add(1);
                let exp = backoff.failures.saturating_sub(1).min(16);
                let delay =
                    (self.policy.backoff_initial * 2u32.pow(exp)).min(self.policy.backoff_max);
                let delay = self.outage_capped(e, jittered(delay));
                // Spaced from the attempt's start: an attempt that waited out
                // a slow endpoint's timeout has already kept the upstream
                // unbothered for longer than a short backoff would.
                let next_attempt = started + delay;
                let retry_in = next_attempt.saturating_duration_since(Instant::now());
                backoff.next_attempt = Some(next_attempt);
                backoff.last_error = Some(e.clone());
                let still_valid = self.usable(Instant::now()).is_some();
                tracing::warn!(
                    set = %self.set,
                    error = %e,
                    failures = backoff.failures,
                    retry_in_ms = retry_in.as_millis() as u64,
                    serving_cached_token = still_valid,
                    "token exchange failed"
                );
            }
        }
        result
    }

    /// A long backoff protects the upstream while a cached token still
    /// serves callers; once callers are being refused, it would keep them
    /// refused long after the upstream is back. So for failures that fix
    /// themselves (outage, timeout, 5xx, garbage) the next attempt is never
    /// later than the moment the cached token stops being usable, and at most
    /// [`OUTAGE_RETRY_MAX`] apart after that. Credential rejections keep the
    /// full backoff: a rotation ends it anyway (see `run_refresh_loop`).
    fn outage_capped(&self, error: &ExchangeError, delay: Duration) -> Duration {
        if matches!(
            error,
            ExchangeError::InvalidClient
                | ExchangeError::Rejected { .. }
                | ExchangeError::CredentialsUnavailable
        ) {
            return delay;
        }
        let now = Instant::now();
        let usable_for = self.current.load().as_ref().map_or(Duration::ZERO, |t| {
            t.remaining(now)
                .saturating_sub(self.policy.min_remaining_for(t.lifetime))
        });
        if usable_for.is_zero() {
            delay.min(jittered(OUTAGE_RETRY_MAX))
        } else {
            delay.min(usable_for)
        }
    }

    fn unavailable(&self, cause: ExchangeError) -> TokenUnavailable {
        let retry_after = self
            .lock_backoff()
            .next_attempt
            .map_or(Duration::from_secs(1), |t| {
                t.saturating_duration_since(Instant::now())
            });
        TokenUnavailable {
            set: self.set,
            cause,
            retry_after,
        }
    }

    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.backoff.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;

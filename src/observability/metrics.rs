//! Prometheus metrics, served on the internal listener at `/metrics`.
//!
//! Handles are cheap clones of shared atomics; the hot path touches only
//! pre-resolved counters, never a label lookup.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::proxy::ProxyMetrics;
use crate::core::{CredentialSet, PerSet};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SetLabels {
    set: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExchangeLabels {
    set: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    set: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    listener: &'static str,
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    permission: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key_id: String,
}

/// The per-user Astra token metrics.
struct AstraMetrics {
    refreshes: Family<RefreshLabels, Counter>,
    fenced_out: Counter,
    commit_retries: Counter,
    latency: Histogram,
    users: Family<StatusLabels, Gauge>,
    expiring: Gauge,
    key_rows: Family<KeyLabels, Gauge>,
    replicas: Gauge,
    cache_hit: Counter,
    cache_miss: Counter,
    cache_fallback: Counter,
}

impl AstraMetrics {
    fn register(registry: &mut Registry) -> Self {
        // Resolved once: a token request only increments a handle.
        let cache = Family::<OutcomeLabels, Counter>::default();
        let m = Self {
            refreshes: Family::default(),
            fenced_out: Counter::default(),
            commit_retries: Counter::default(),
            latency: latency_histogram(),
            users: Family::default(),
            expiring: Gauge::default(),
            key_rows: Family::default(),
            replicas: Gauge::default(),
            cache_hit: series(&cache, "hit"),
            cache_miss: series(&cache, "miss"),
            cache_fallback: series(&cache, "fallback"),
        };
        registry.register(
            "astra_refreshes",
            "Astra token refreshes, by trigger (on_demand, stale_generation, scheduled) and outcome",
            m.refreshes.clone(),
        );
        registry.register(
            "astra_fenced_out",
            "Refresh results discarded because another holder's lease superseded ours",
            m.fenced_out.clone(),
        );
        registry.register(
            "astra_commit_retries",
            "Refresh results written again because the store did not answer after Astra did",
            m.commit_retries.clone(),
        );
        registry.register_with_unit(
            "astra_request_duration",
            "Time taken by one call to Astra's token endpoint",
            Unit::Seconds,
            m.latency.clone(),
        );
        registry.register(
            "astra_users",
            "Stored Astra users, by status (read at scrape time)",
            m.users.clone(),
        );
        registry.register(
            "astra_users_refresh_expiring_48h",
            "Active users whose refresh token expires within 48 hours",
            m.expiring.clone(),
        );
        registry.register(
            "astra_rows_using_key",
            "Users with a token sealed under each known encryption key; retire a key at 0",
            m.key_rows.clone(),
        );
        registry.register(
            "astra_replicas_live",
            "Replicas sharing the store that sent a heartbeat in the last 6 s; each takes an equal share of astra.max_calls_per_sec",
            m.replicas.clone(),
        );
        registry.register(
            "astra_token_cache",
            "Astra token requests by cache outcome: hit, miss (read from the store), fallback (store unreachable, a still-valid cached token served)",
            cache,
        );
        m
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// The counter of `outcome` in `family` (a shared handle to the series).
fn series(family: &Family<OutcomeLabels, Counter>, outcome: &'static str) -> Counter {
    // A function of its own: the family's read guard must be gone before the
    // next series is created under its write lock.
    family.get_or_create(&OutcomeLabels { outcome }).clone()
}

struct Inner {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
    exchanges: Family<ExchangeLabels, Counter>,
    exchange_duration: Family<SetLabels, Histogram>,
    hits: PerSet<Counter>,
    misses: PerSet<Counter>,
    coalesced: PerSet<Counter>,
    refresh_ahead: PerSet<Counter>,
    expiry: PerSet<Gauge<f64, AtomicU64>>,
    credential_reloads: Family<OutcomeLabels, Counter>,
    astra: AstraMetrics,
    issued: PerSet<Counter>,
    refusals: Family<RefusalLabels, Counter>,
    proxy: ProxyMetrics,
}

/// All metrics of one service instance (tests get their own, never a global).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s: cached answers sit at the bottom, exchanges in the middle.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `atv_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atv");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by listener, route and status",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            request_duration.clone(),
        );
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "token_exchanges",
            "Token exchanges with the token endpoint, by credential set and outcome",
            exchanges.clone(),
        );
        let exchange_duration = Family::<SetLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "token_exchange_duration",
            "Time taken by one token exchange",
            Unit::Seconds,
            exchange_duration.clone(),
        );
        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "token_cache_lookups",
            "Token cache lookups, by set and hit/miss",
            lookups.clone(),
        );
        let coalesced = Family::<SetLabels, Counter>::default();
        registry.register(
            "token_coalesced_waiters",
            "Callers that joined an exchange already in flight instead of starting one",
            coalesced.clone(),
        );
        let refresh_ahead = Family::<SetLabels, Counter>::default();
        registry.register(
            "token_refresh_ahead_runs",
            "Background refreshes started before expiry",
            refresh_ahead.clone(),
        );
        let expiry = Family::<SetLabels, Gauge<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "token_expiry",
            "Time until the cached token expires (0 when none is cached)",
            Unit::Seconds,
            expiry.clone(),
        );
        let credential_reloads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "credential_reloads",
            "Credential source reads, by outcome (changed, unchanged, error)",
            credential_reloads.clone(),
        );

        let issued = Family::<SetLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Tokens handed to callers, by credential set",
            issued.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "internal_auth_refusals",
            "Refused requests on the internal listener, by the permission the route needs and \
             the reason (unauthenticated, not_local, permission, user_ref_scope)",
            refusals.clone(),
        );
        let astra = AstraMetrics::register(&mut registry);
        let proxy = ProxyMetrics::register(&mut registry);
        let per_set = |f: &dyn Fn(&'static str) -> Counter| PerSet::from_fn(|set| f(set.as_str()));
        let inner = Inner {
            hits: per_set(&|set| lookups.get_or_create_owned(&LookupLabels { set, result: "hit" })),
            misses: per_set(&|set| {
                lookups.get_or_create_owned(&LookupLabels {
                    set,
                    result: "miss",
                })
            }),
            coalesced: per_set(&|set| coalesced.get_or_create_owned(&SetLabels { set })),
            refresh_ahead: per_set(&|set| refresh_ahead.get_or_create_owned(&SetLabels { set })),
            issued: per_set(&|set| issued.get_or_create_owned(&SetLabels { set })),
            expiry: PerSet::from_fn(|set| {
                expiry.get_or_create_owned(&SetLabels { set: set.as_str() })
            }),
            registry,
            requests,
            request_duration,
            exchanges,
            exchange_duration,
            credential_reloads,
            astra,
            refusals,
            proxy,
        };
        Self(Arc::new(inner))
    }

    /// The API proxy's metrics.
    pub fn proxy(&self) -> &ProxyMetrics {
        &self.0.proxy
    }

    /// One answered HTTP request.
    pub fn request(
        &self,
        listener: &'static str,
        route: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        self.0
            .requests
            .get_or_create(&RequestLabels {
                listener,
                route,
                status,
            })
            .inc();
        self.0
            .request_duration
            .get_or_create(&RouteLabels { listener, route })
            .observe(elapsed.as_secs_f64());
    }

    /// The request metrics of one listener's `routes` (a closed set), each
    /// series resolved once instead of looked up on every request.
    pub fn request_metrics(
        &self,
        listener: &'static str,
        routes: impl IntoIterator<Item = &'static str>,
    ) -> RequestMetrics {
        RequestMetrics {
            metrics: self.clone(),
            listener,
            routes: routes
                .into_iter()
                .map(|route| RouteHandles {
                    route,
                    duration: OnceLock::new(),
                    counts: std::array::from_fn(|_| OnceLock::new()),
                })
                .collect(),
        }
    }

    /// A cache lookup that found a usable token (`hit`) or did not.
    pub fn cache_lookup(&self, set: CredentialSet, hit: bool) {
        let counters = if hit { &self.0.hits } else { &self.0.misses };
        counters.get(set).inc();
    }

    /// A caller that joined an exchange already in flight.
    pub fn coalesced(&self, set: CredentialSet) {
        self.0.coalesced.get(set).inc();
    }

    /// A token handed to a caller.
    pub fn token_issued(&self, set: CredentialSet) {
        self.0.issued.get(set).inc();
    }

    /// A background refresh started by the refresh-ahead loop.
    pub fn refresh_ahead(&self, set: CredentialSet) {
        self.0.refresh_ahead.get(set).inc();
    }

    /// One finished token exchange; `outcome` is `ok` or the error's kind.
    pub fn exchange(&self, set: CredentialSet, outcome: &'static str, elapsed: Duration) {
        self.0
            .exchanges
            .get_or_create(&ExchangeLabels {
                set: set.as_str(),
                outcome,
            })
            .inc();
        self.0
            .exchange_duration
            .get_or_create(&SetLabels { set: set.as_str() })
            .observe(elapsed.as_secs_f64());
    }

    /// One read of the credential source: `changed`, `unchanged` or `error`.
    pub fn credential_reload(&self, outcome: &'static str) {
        self.0
            .credential_reloads
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A request on the internal listener refused for want of `permission`
    /// (a closed set of names, as is `reason`).
    pub fn internal_refusal(&self, permission: &'static str, reason: &'static str) {
        self.0
            .refusals
            .get_or_create(&RefusalLabels { permission, reason })
            .inc();
    }

    /// Sets the time-to-expiry gauge; called just before each scrape.
    pub fn set_expiry(&self, set: CredentialSet, seconds: f64) {
        self.0.expiry.get(set).set(seconds);
    }

    /// One Astra refresh attempt and how it ended.
    pub fn astra_refresh(&self, trigger: &'static str, outcome: &'static str) {
        self.0
            .astra
            .refreshes
            .get_or_create(&RefreshLabels { trigger, outcome })
            .inc();
    }

    /// A refresh result discarded by fencing.
    pub fn astra_fenced_out(&self) {
        self.0.astra.fenced_out.inc();
    }

    /// A refresh result written again after the store failed to take it.
    pub fn astra_commit_retry(&self) {
        self.0.astra.commit_retries.inc();
    }

    /// One call to Astra's token endpoint.
    pub fn astra_call(&self, elapsed: Duration) {
        self.0.astra.latency.observe(elapsed.as_secs_f64());
    }

    /// Stored users in `status`; set just before each scrape.
    pub fn set_astra_users(&self, status: &'static str, count: u64) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.0
            .astra
            .users
            .get_or_create(&StatusLabels { status })
            .set(count);
    }

    /// Users within 48 h of refresh-token expiry; set just before each scrape.
    pub fn set_astra_expiring(&self, count: u64) {
        self.0
            .astra
            .expiring
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Live replicas seen by the last heartbeat.
    pub fn set_astra_replicas(&self, live: usize) {
        self.0
            .astra
            .replicas
            .set(i64::try_from(live).unwrap_or(i64::MAX));
    }

    /// A token request answered from the cache.
    pub fn astra_cache_hit(&self) {
        self.0.astra.cache_hit.inc();
    }

    /// A token request that read the store.
    pub fn astra_cache_miss(&self) {
        self.0.astra.cache_miss.inc();
    }

    /// A token request answered from the cache because the store failed.
    pub fn astra_cache_fallback(&self) {
        self.0.astra.cache_fallback.inc();
    }

    /// Users with a token under `key_id`; set just before each scrape.
    pub fn set_astra_key_rows(&self, key_id: &str, count: u64) {
        self.0
            .astra
            .key_rows
            .get_or_create(&KeyLabels {
                key_id: key_id.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}

/// Statuses whose request counters are resolved once per route; any other
/// status is still counted, through a label lookup.
const STATUSES: [u16; 14] = [
    200, 204, 400, 401, 403, 404, 405, 413, 429, 431, 500, 502, 503, 504,
];

/// One listener's request counters and latency histograms, resolved on
/// first use (so `/metrics` lists only series that were seen) and then
/// reached without hashing labels.
pub struct RequestMetrics {
    metrics: Metrics,
    listener: &'static str,
    routes: Vec<RouteHandles>,
}

struct RouteHandles {
    route: &'static str,
    duration: OnceLock<Histogram>,
    counts: [OnceLock<Counter>; STATUSES.len()],
}

impl RequestMetrics {
    /// One answered HTTP request (same series as [`Metrics::request`]).
    pub fn record(&self, route: &'static str, status: u16, elapsed: Duration) {
        let Some(handles) = self.routes.iter().find(|h| h.route == route) else {
            return self.metrics.request(self.listener, route, status, elapsed);
        };
        let inner = &self.metrics.0;
        let labels = || RequestLabels {
            listener: self.listener,
            route,
            status,
        };
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => handles.counts[i]
                .get_or_init(|| inner.requests.get_or_create_owned(&labels()))
                .inc(),
            None => inner.requests.get_or_create(&labels()).inc(),
        };
        handles
            .duration
            .get_or_init(|| {
                inner.request_duration.get_or_create_owned(&RouteLabels {
                    listener: self.listener,
                    route,
                })
            })
            .observe(elapsed.as_secs_f64());
    }
}

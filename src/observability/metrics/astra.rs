//! The per-user Astra token metrics: refreshes and their fencing, calls to
//! Astra, the token cache's outcomes, and the store's counts read at scrape
//! time.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::{OutcomeLabels, gauge_value, latency_histogram, series};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    trigger: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key_id: String,
}

pub struct AstraMetrics {
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
    pub(super) fn register(registry: &mut Registry) -> Self {
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
        m.register_store_counts(registry);
        registry.register(
            "astra_token_cache",
            "Astra token requests by cache outcome: hit, miss (read from the store), fallback (store unreachable, a still-valid cached token served)",
            cache,
        );
        m
    }

    fn register_store_counts(&self, registry: &mut Registry) {
        registry.register(
            "astra_users",
            "Stored Astra users, by status (read at scrape time)",
            self.users.clone(),
        );
        registry.register(
            "astra_users_refresh_expiring_48h",
            "Active users whose refresh token expires within 48 hours",
            self.expiring.clone(),
        );
        registry.register(
            "astra_rows_using_key",
            "Users with a token sealed under each known encryption key; retire a key at 0",
            self.key_rows.clone(),
        );
        registry.register(
            "astra_replicas_live",
            "Replicas sharing the store that sent a heartbeat in the last 6 s; each takes an equal share of astra.max_calls_per_sec",
            self.replicas.clone(),
        );
    }

    /// One refresh attempt and how it ended.
    pub fn refresh(&self, trigger: &'static str, outcome: &'static str) {
        self.refreshes
            .get_or_create(&RefreshLabels { trigger, outcome })
            .inc();
    }

    /// A refresh result discarded by fencing.
    pub fn fenced_out(&self) {
        self.fenced_out.inc();
    }

    /// A refresh result written again after the store failed to take it.
    pub fn commit_retry(&self) {
        self.commit_retries.inc();
    }

    /// One call to Astra's token endpoint.
    pub fn call(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Stored users in `status`; set just before each scrape.
    pub fn set_users(&self, status: &'static str, count: u64) {
        self.users
            .get_or_create(&StatusLabels { status })
            .set(gauge_value(count));
    }

    /// Users within 48 h of refresh-token expiry; set just before each scrape.
    pub fn set_expiring(&self, count: u64) {
        self.expiring.set(gauge_value(count));
    }

    /// Live replicas seen by the last heartbeat.
    pub fn set_replicas(&self, live: usize) {
        self.replicas.set(gauge_value(live));
    }

    /// A token request answered from the cache.
    pub fn cache_hit(&self) {
        self.cache_hit.inc();
    }

    /// A token request that read the store.
    pub fn cache_miss(&self) {
        self.cache_miss.inc();
    }

    /// A token request answered from the cache because the store failed.
    pub fn cache_fallback(&self) {
        self.cache_fallback.inc();
    }

    /// Users with a token under `key_id`; set just before each scrape.
    pub fn set_key_rows(&self, key_id: &str, count: u64) {
        self.key_rows
            .get_or_create(&KeyLabels {
                key_id: key_id.to_owned(),
            })
            .set(gauge_value(count));
    }
}

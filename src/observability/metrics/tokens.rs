//! The Astrada token cache's metrics, per credential set: lookups, exchanges
//! with the token endpoint, coalesced callers, refreshes ahead of expiry,
//! tokens handed out and time left on the cached token.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::TypedMetric;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::latency_histogram;
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

/// The per-set series are resolved once: the hot path increments a handle.
pub struct TokenMetrics {
    exchanges: Family<ExchangeLabels, Counter>,
    exchange_duration: Family<SetLabels, Histogram>,
    hits: PerSet<Counter>,
    misses: PerSet<Counter>,
    coalesced: PerSet<Counter>,
    refresh_ahead: PerSet<Counter>,
    issued: PerSet<Counter>,
    expiry: PerSet<Gauge<f64, AtomicU64>>,
}

/// Registers a family labelled by set and resolves its series for each set.
fn per_set<M>(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>) -> PerSet<M>
where
    M: EncodeMetric + TypedMetric + Default + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<SetLabels, M>::default();
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family.clone()),
        None => registry.register(name, help, family.clone()),
    }
    PerSet::from_fn(|set| family.get_or_create_owned(&SetLabels { set: set.as_str() }))
}

impl TokenMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let exchanges = Family::default();
        registry.register(
            "token_exchanges",
            "Token exchanges with the token endpoint, by credential set and outcome",
            exchanges.clone(),
        );
        let exchange_duration =
            Family::new_with_constructor(latency_histogram as fn() -> Histogram);
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
        let lookup = |result| {
            PerSet::from_fn(|set| {
                lookups.get_or_create_owned(&LookupLabels {
                    set: set.as_str(),
                    result,
                })
            })
        };
        Self {
            hits: lookup("hit"),
            misses: lookup("miss"),
            coalesced: per_set(
                registry,
                "token_coalesced_waiters",
                "Callers that joined an exchange already in flight instead of starting one",
                None,
            ),
            refresh_ahead: per_set(
                registry,
                "token_refresh_ahead_runs",
                "Background refreshes started before expiry",
                None,
            ),
            expiry: per_set(
                registry,
                "token_expiry",
                "Time until the cached token expires (0 when none is cached)",
                Some(Unit::Seconds),
            ),
            issued: per_set(
                registry,
                "tokens_issued",
                "Tokens handed to callers, by credential set",
                None,
            ),
            exchanges,
            exchange_duration,
        }
    }

    /// A cache lookup that found a usable token (`hit`) or did not.
    pub fn cache_lookup(&self, set: CredentialSet, hit: bool) {
        let counters = if hit { &self.hits } else { &self.misses };
        counters.get(set).inc();
    }

    /// A caller that joined an exchange already in flight.
    pub fn coalesced(&self, set: CredentialSet) {
        self.coalesced.get(set).inc();
    }

    /// A token handed to a caller.
    pub fn issued(&self, set: CredentialSet) {
        self.issued.get(set).inc();
    }

    /// A background refresh started by the refresh-ahead loop.
    pub fn refresh_ahead(&self, set: CredentialSet) {
        self.refresh_ahead.get(set).inc();
    }

    /// One finished token exchange; `outcome` is `ok` or the error's kind.
    pub fn exchange(&self, set: CredentialSet, outcome: &'static str, elapsed: Duration) {
        self.exchanges
            .get_or_create(&ExchangeLabels {
                set: set.as_str(),
                outcome,
            })
            .inc();
        self.exchange_duration
            .get_or_create(&SetLabels { set: set.as_str() })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the time-to-expiry gauge; called just before each scrape.
    pub fn set_expiry(&self, set: CredentialSet, seconds: f64) {
        self.expiry.get(set).set(seconds);
    }
}

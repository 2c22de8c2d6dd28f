//! Prometheus metrics, served on the internal listener at `/metrics`.
//!
//! Handles are cheap clones of shared atomics; the hot path touches only
//! pre-resolved counters, never a label lookup. Each group registers its
//! own series: [`HttpMetrics`] (requests), [`TokenMetrics`] (the Astrada
//! token cache), [`AstraMetrics`] (per-user Astra tokens), [`ProxyMetrics`]
//! (the API proxy); the credential reads and the internal listener's
//! refusals are counted here.

mod astra;
mod families;
mod http;
mod proxy;
mod tokens;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub use astra::AstraMetrics;
use families::OutcomeLabels;
pub use http::{HttpMetrics, RequestMetrics};
pub use proxy::{ProxyMetrics, status_class};
pub use tokens::TokenMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    permission: &'static str,
    reason: &'static str,
}

struct Inner {
    registry: Registry,
    http: HttpMetrics,
    tokens: TokenMetrics,
    astra: AstraMetrics,
    proxy: ProxyMetrics,
    credential_reloads: Family<OutcomeLabels, Counter>,
    refusals: Family<RefusalLabels, Counter>,
}

/// All metrics of one service instance (tests get their own, never a global).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `atv_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("atv");
        let http = HttpMetrics::register(&mut registry);
        let tokens = TokenMetrics::register(&mut registry);
        let credential_reloads = Family::default();
        registry.register(
            "credential_reloads",
            "Credential source reads, by outcome (changed, unchanged, error)",
            credential_reloads.clone(),
        );
        let refusals = Family::default();
        registry.register(
            "internal_auth_refusals",
            "Refused requests on the internal listener, by the permission the route needs and \
             the reason (unauthenticated, not_local, permission, user_ref_scope)",
            refusals.clone(),
        );
        let astra = AstraMetrics::register(&mut registry);
        let proxy = ProxyMetrics::register(&mut registry);
        Self(Arc::new(Inner {
            registry,
            http,
            tokens,
            astra,
            proxy,
            credential_reloads,
            refusals,
        }))
    }

    /// The Astrada token cache's metrics.
    pub fn tokens(&self) -> &TokenMetrics {
        &self.0.tokens
    }

    /// The per-user Astra token metrics.
    pub fn astra(&self) -> &AstraMetrics {
        &self.0.astra
    }

    /// The API proxy's metrics.
    pub fn proxy(&self) -> &ProxyMetrics {
        &self.0.proxy
    }

    /// The request metrics of one listener's `routes` (a closed set), each
    /// series resolved once instead of looked up on every request.
    pub fn request_metrics(
        &self,
        listener: &'static str,
        routes: impl IntoIterator<Item = &'static str>,
    ) -> RequestMetrics {
        self.0.http.for_listener(listener, routes)
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

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}

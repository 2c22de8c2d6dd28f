//! The API proxy's metrics: calls by upstream, method and status class,
//! replays after a 401, and the upstream's latency.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    upstream: &'static str,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: &'static str,
}

/// The proxy's series. Labels come from closed sets (two upstreams, the
/// methods a grant may name, five status classes and the proxy's own
/// failures), so callers cannot grow them.
#[derive(Clone)]
pub struct ProxyMetrics {
    calls: Family<CallLabels, Counter>,
    replays: Family<UpstreamLabels, Counter>,
    latency: Family<UpstreamLabels, Histogram>,
}

fn upstream_histogram() -> Histogram {
    // 1 ms … ~33 s: an API call, not a cache lookup.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl ProxyMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            calls: Family::default(),
            replays: Family::default(),
            latency: Family::new_with_constructor(upstream_histogram as fn() -> Histogram),
        };
        registry.register(
            "proxy_calls",
            "Proxied calls by upstream, method and status class (2xx … 5xx, or the proxy's own \
             failure: timeout, unreachable)",
            m.calls.clone(),
        );
        // At zero from the start, so that a replay ratio is 0, not absent.
        for upstream in ["astra", "astrada"] {
            m.replays.get_or_create_owned(&UpstreamLabels { upstream });
        }
        registry.register(
            "proxy_replays",
            "Proxied calls replayed with a new token after the upstream answered 401",
            m.replays.clone(),
        );
        registry.register_with_unit(
            "proxy_upstream_duration",
            "Time from sending a proxied call to the upstream's response headers",
            Unit::Seconds,
            m.latency.clone(),
        );
        m
    }

    /// One proxied call and how it ended: an upstream status, or `failure`.
    pub fn call(&self, upstream: &'static str, method: &'static str, status: &'static str) {
        self.calls
            .get_or_create(&CallLabels {
                upstream,
                method,
                status,
            })
            .inc();
    }

    /// One replay after a 401.
    pub fn replay(&self, upstream: &'static str) {
        self.replays
            .get_or_create(&UpstreamLabels { upstream })
            .inc();
    }

    /// The time one upstream exchange took until its response headers.
    pub fn upstream_latency(&self, upstream: &'static str, elapsed: Duration) {
        self.latency
            .get_or_create(&UpstreamLabels { upstream })
            .observe(elapsed.as_secs_f64());
    }
}

/// The status class label of `status` (`2xx` …), a closed set.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

//! HTTP request counters and latency histograms, by listener, route and
//! status. [`RequestMetrics`] is what the request path holds: one
//! listener's series resolved once, reached without hashing labels.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::latency_histogram;

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

/// The two HTTP families; clones share their series.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by listener, route and status",
            m.requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            Unit::Seconds,
            m.request_duration.clone(),
        );
        m
    }

    /// One answered HTTP request, through a label lookup.
    fn request(&self, listener: &'static str, route: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                listener,
                route,
                status,
            })
            .inc();
        self.request_duration
            .get_or_create(&RouteLabels { listener, route })
            .observe(elapsed.as_secs_f64());
    }

    /// The request metrics of one listener's `routes` (a closed set), each
    /// series resolved once instead of looked up on every request.
    pub(super) fn for_listener(
        &self,
        listener: &'static str,
        routes: impl IntoIterator<Item = &'static str>,
    ) -> RequestMetrics {
        RequestMetrics {
            http: self.clone(),
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
    http: HttpMetrics,
    listener: &'static str,
    routes: Vec<RouteHandles>,
}

struct RouteHandles {
    route: &'static str,
    duration: OnceLock<Histogram>,
    counts: [OnceLock<Counter>; STATUSES.len()],
}

impl RequestMetrics {
    /// One answered HTTP request (same series as [`HttpMetrics::request`]).
    pub fn record(&self, route: &'static str, status: u16, elapsed: Duration) {
        let Some(handles) = self.routes.iter().find(|h| h.route == route) else {
            return self.http.request(self.listener, route, status, elapsed);
        };
        let labels = || RequestLabels {
            listener: self.listener,
            route,
            status,
        };
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => handles.counts[i]
                .get_or_init(|| self.http.requests.get_or_create_owned(&labels()))
                .inc(),
            None => self.http.requests.get_or_create(&labels()).inc(),
        };
        handles
            .duration
            .get_or_init(|| {
                self.http
                    .request_duration
                    .get_or_create_owned(&RouteLabels {
                        listener: self.listener,
                        route,
                    })
            })
            .observe(elapsed.as_secs_f64());
    }
}

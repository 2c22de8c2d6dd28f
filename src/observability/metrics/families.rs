//! What several metric groups share: the latency buckets and counters
//! labelled by outcome.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

pub fn latency_histogram() -> Histogram {
    // 100 µs … ~3.3 s: cached answers sit at the bottom, exchanges in the middle.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The counter of `outcome` in `family` (a shared handle to the series).
pub fn series(family: &Family<OutcomeLabels, Counter>, outcome: &'static str) -> Counter {
    // A function of its own: the family's read guard must be gone before the
    // next series is created under its write lock.
    family.get_or_create(&OutcomeLabels { outcome }).clone()
}

/// A count as a gauge's value; counts past `i64::MAX` stay at the top.
pub fn gauge_value(count: impl TryInto<i64>) -> i64 {
    count.try_into().unwrap_or(i64::MAX)
}

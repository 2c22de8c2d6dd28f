//! What the service tells its operators: Prometheus [`metrics`], and logs and
//! traces ([`telemetry`]).

pub mod metrics;
pub mod request_scope;
pub mod telemetry;

pub use metrics::{Metrics, ProxyMetrics, RequestMetrics};
pub use request_scope::RequestScope;

//! What the service tells its operators: Prometheus [`metrics`], and logs and
//! traces ([`telemetry`]).

pub mod metrics;
pub mod proxy;
pub mod request_scope;
pub mod telemetry;

pub use metrics::{Metrics, RequestMetrics};
pub use proxy::ProxyMetrics;
pub use request_scope::RequestScope;

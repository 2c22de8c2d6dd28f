//! Counts and times every request by listener, route pattern and status.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::{Listener, route_label};
use crate::observability::Metrics;

/// Records one request once its response is ready.
pub async fn record(
    metrics: Metrics,
    listener: Listener,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let response = next.call(req).await?;
    let route = route_label(response.request().match_pattern().as_deref());
    metrics.request(
        listener.as_str(),
        route,
        response.status().as_u16(),
        started.elapsed(),
    );
    Ok(response)
}

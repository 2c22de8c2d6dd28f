//! Counts and times every request by listener, route pattern and status.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::RouteLabel;
use crate::observability::RequestMetrics;

/// Records one request once its response is ready.
pub async fn record(
    metrics: Arc<RequestMetrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let response = next.call(req).await?;
    let route = RouteLabel::of(response.request());
    metrics.record(route, response.status().as_u16(), started.elapsed());
    Ok(response)
}

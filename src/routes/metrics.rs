//! `GET /metrics` (internal listener): Prometheus text exposition.

use actix_web::{HttpResponse, web};

use crate::startup::AppState;

/// Refreshes the expiry gauges, then encodes every metric.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    for cache in [&state.api, &state.sdk] {
        state
            .metrics
            .set_expiry(cache.set(), cache.seconds_until_expiry());
    }
    match state.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

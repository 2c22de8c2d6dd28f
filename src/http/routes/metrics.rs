//! `GET /metrics` (internal listener): Prometheus text exposition.

use std::sync::Arc;

use actix_web::{HttpResponse, web};

use crate::client_tokens::ClientTokens;
use crate::observability::Metrics;
use crate::user_tokens::UserTokens;

/// The registry, and the caches whose expiry gauges are read at scrape time.
pub struct MetricsRoute {
    pub metrics: Metrics,
    pub client_tokens: Arc<ClientTokens>,
    pub user_tokens: Option<Arc<UserTokens>>,
}

/// Refreshes the expiry gauges, then encodes every metric.
pub async fn metrics(route: web::Data<MetricsRoute>) -> HttpResponse {
    for (set, cache) in route.client_tokens.caches.iter() {
        route
            .metrics
            .tokens()
            .set_expiry(set, cache.seconds_until_expiry());
    }
    if let Some(users) = &route.user_tokens {
        users.update_metrics(&route.metrics).await;
    }
    match route.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

//! Kubernetes probes. Liveness says only that the process answers; readiness
//! says whether this replica can hand out tokens right now.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};

use crate::problem::ApiError;
use crate::startup::AppState;

/// `GET /healthz`: 200 while the process runs, whatever the upstreams do, so
/// that an outage never turns into a restart loop.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once credentials are loaded and both sets have obtained
/// a token; 503 while starting and while draining after SIGTERM. A later
/// Astrada outage does not flip it (see `TokenCache::has_succeeded`).
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.shutting_down.load(Ordering::Relaxed) {
        return Err(ApiError::NotReady {
            reason: "This replica is shutting down.",
        });
    }
    if !state.credentials.is_loaded() {
        return Err(ApiError::NotReady {
            reason: "Client credentials are not loaded yet.",
        });
    }
    if !(state.api.has_succeeded() && state.sdk.has_succeeded()) {
        return Err(ApiError::NotReady {
            reason: "Waiting for the first token of both credential sets.",
        });
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

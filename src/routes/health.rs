//! Kubernetes probes. Liveness says only that the process answers; readiness
//! says whether this replica can hand out tokens right now.

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use tokio::time::Instant;

use crate::problem::ApiError;
use crate::startup::AppState;

/// `GET /healthz`: 200 while the process runs, whatever the upstreams do, so
/// that an outage never turns into a restart loop.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once both credential sets hold a usable token; 503 while
/// starting, while no token can be had, and while draining after SIGTERM.
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
    let now = Instant::now();
    if state.api.usable(now).is_none() || state.sdk.usable(now).is_none() {
        return Err(ApiError::NotReady {
            reason: "Waiting for a valid token for both credential sets.",
        });
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

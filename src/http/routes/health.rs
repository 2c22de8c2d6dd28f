//! Kubernetes probes. Liveness says only that the process answers; readiness
//! says whether this replica can hand out tokens right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::{HttpResponse, web};

use crate::client_tokens::ClientTokens;
use crate::http::problem::{HttpError, Problem};

/// What readiness depends on.
pub struct Readiness {
    pub shutting_down: Arc<AtomicBool>,
    pub client_tokens: Arc<ClientTokens>,
}

/// `GET /healthz`: 200 while the process runs, whatever the upstreams do, so
/// that an outage never turns into a restart loop.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 once credentials are loaded and both sets have obtained
/// a token; 503 while starting and while draining after SIGTERM. A later
/// Astrada outage does not flip it (see `TokenCache::has_succeeded`).
pub async fn readyz(readiness: web::Data<Readiness>) -> Result<HttpResponse, Problem> {
    if readiness.shutting_down.load(Ordering::Relaxed) {
        return Err(HttpError::NotReady {
            reason: "This replica is shutting down.",
        }
        .into());
    }
    readiness
        .client_tokens
        .is_ready()
        .map_err(|reason| HttpError::NotReady { reason })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

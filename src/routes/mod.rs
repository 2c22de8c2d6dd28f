//! HTTP routes of both listeners. The public listener carries only the SDK
//! token and health probes; the API token and metrics exist only on the
//! internal listener, so no proxy misconfiguration can expose them.

mod health;
mod metrics;
mod token;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpResponse, web};

use crate::problem::ApiError;
use crate::startup::AppState;

/// Path of the browser-facing SDK token route.
pub const SDK_TOKEN_PATH: &str = "/astrada-sdk-token";
/// Path of the internal API token route.
pub const API_TOKEN_PATH: &str = "/astrada-api-token";

/// Every path the public listener serves (checked against `openapi.yaml` by the tests).
pub const PUBLIC_PATHS: &[&str] = &[SDK_TOKEN_PATH, "/healthz", "/readyz"];
/// Every path the internal listener serves (checked against `openapi.yaml` by the tests).
pub const INTERNAL_PATHS: &[&str] = &[API_TOKEN_PATH, "/metrics", "/healthz", "/readyz"];

/// Which listener a request arrived on, for metrics and logs.
#[derive(Clone, Copy)]
pub enum Listener {
    Public,
    Internal,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Internal => "internal",
        }
    }
}

/// Routes of the public listener.
pub fn public(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only(SDK_TOKEN_PATH).route(web::get().to(token::sdk_token)));
    health(cfg);
}

/// Routes of the internal listener.
pub fn internal(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only(API_TOKEN_PATH).route(web::get().to(token::api_token)))
        .service(get_only("/metrics").route(web::get().to(metrics::metrics)));
    health(cfg);
}

fn health(cfg: &mut web::ServiceConfig) {
    cfg.service(get_only("/healthz").route(web::get().to(health::healthz)))
        .service(get_only("/readyz").route(web::get().to(health::readyz)));
}

fn get_only(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(|| async {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow: "GET" })
    }))
}

/// Answer for any path no route matches.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

/// Headers on every response: tokens must never be stored by a browser or
/// proxy, and nothing here is meant to be sniffed, framed or referred.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CACHE_CONTROL, "no-store"))
        .add((header::PRAGMA, "no-cache"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
}

/// Counts and times every request by listener, route pattern and status.
pub async fn record_metrics(
    listener: Listener,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.metrics.clone());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = route_label(response.request().match_pattern().as_deref());
        metrics.request(
            listener.as_str(),
            route,
            response.status().as_u16(),
            started.elapsed(),
        );
    }
    Ok(response)
}

// Route labels are a closed set so that scanners cannot blow up cardinality.
fn route_label(pattern: Option<&str>) -> &'static str {
    match pattern {
        Some(SDK_TOKEN_PATH) => SDK_TOKEN_PATH,
        Some(API_TOKEN_PATH) => API_TOKEN_PATH,
        Some("/healthz") => "/healthz",
        Some("/readyz") => "/readyz",
        Some("/metrics") => "/metrics",
        _ => "unmatched",
    }
}

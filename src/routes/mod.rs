//! HTTP routes of both listeners. The public listener carries only the SDK
//! token and health probes; the API token and metrics exist only on the
//! internal listener, so no proxy misconfiguration can expose them.

mod health;
mod metrics;
mod token;

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, Next, from_fn};
use actix_web::{HttpResponse, ResponseError, web};

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

/// Routes of the public listener. The SDK token also answers `OPTIONS`, so
/// that browsers on allowed origins can preflight their `Authorization` header.
pub fn public(cfg: &mut web::ServiceConfig) {
    cfg.service(
        only(SDK_TOKEN_PATH, "GET, OPTIONS")
            .wrap(from_fn(crate::cors::cors))
            .route(web::get().to(token::sdk_token))
            .route(web::method(Method::OPTIONS).to(options)),
    );
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
    only(path, "GET")
}

fn only(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow })
    }))
}

/// A plain `OPTIONS` (not a CORS preflight, which the CORS middleware answers).
async fn options() -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header((header::ALLOW, "GET, OPTIONS"))
        .finish()
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

/// Refuses oversized requests before any handler runs: every route is a GET,
/// so a body is never needed, and headers only need to carry one session token.
pub async fn request_limits(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limits = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.limits);
    if let Some(limits) = limits {
        let declared_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let error = if declared_body.is_some_and(|len| len > limits.max_body_bytes) {
            Some(ApiError::PayloadTooLarge {
                limit: limits.max_body_bytes,
            })
        } else if head_size(&req) > limits.max_header_bytes {
            Some(ApiError::HeadersTooLarge {
                limit: limits.max_header_bytes,
            })
        } else {
            None
        };
        if let Some(error) = error {
            let response = error.error_response();
            return Ok(req.into_response(response).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Bytes of the request line and headers as they arrived (near enough).
fn head_size(req: &ServiceRequest) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + line
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

// Route labels are the closed set of routed paths, so that scanners cannot
// blow up cardinality.
fn route_label(pattern: Option<&str>) -> &'static str {
    PUBLIC_PATHS
        .iter()
        .chain(INTERNAL_PATHS)
        .find(|path| Some(**path) == pattern)
        .copied()
        .unwrap_or("unmatched")
}

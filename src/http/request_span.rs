//! The per-request span: opened as a child of an incoming `traceparent`,
//! carrying a request id that is echoed in `x-request-id`, so every log line
//! and trace of one request can be found together.
//!
//! On the public listener an incoming request id and `traceparent` are kept
//! only from `server.trusted_proxies`: from the internet they would let
//! anyone plant ids in our logs and attach spans to someone else's trace.
//! This layer also resolves the client address ([`ClientAddr`](super::client_addr::ClientAddr)) once.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use opentelemetry::propagation::Extractor;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use std::sync::Arc;

use actix_web::HttpMessage;

use super::client_addr::TrustedProxies;
use super::problem::ProblemSlug;
use super::{Listener, UNMATCHED};
use crate::observability::telemetry::{self, REQUEST_SPAN};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// This request's id, for handlers that pass it on (the proxy, upstream).
#[derive(Clone)]
pub struct RequestId(pub String);

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// The caller's `x-request-id` when it comes from a trusted hop and is a
/// sane token (so a proxy's id follows the request through), otherwise a
/// fresh random one.
fn request_id(headers: &HeaderMap, trusted: bool) -> String {
    headers
        .get(&REQUEST_ID)
        .filter(|_| trusted)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| format!("{:032x}", fastrand::u128(..)), str::to_owned)
}

/// Opens the request span (child of an incoming `traceparent`), runs the
/// request inside it, and echoes the request id in `x-request-id`. Only the
/// method, route and status are recorded: never headers or query strings,
/// which is where session tokens travel.
pub async fn trace_request(
    trusted_proxies: Arc<TrustedProxies>,
    listener: Listener,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let peer = req.peer_addr().map(|a| a.ip());
    let client = trusted_proxies.client_addr(peer, req.headers());
    req.extensions_mut().insert(client);
    let trusted = ids_trusted(&trusted_proxies, listener, peer);
    let id = request_id(req.headers(), trusted);
    req.extensions_mut().insert(RequestId(id.clone()));
    let exporting = telemetry::exporting();
    // Without export the span only carries the request id into log lines;
    // the trace attributes would be formatted on every request for nobody.
    let span = if exporting {
        let method = req.method();
        let route = route_of(req.request());
        let span = tracing::info_span!(
            REQUEST_SPAN,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            request_id = %id,
        );
        if trusted {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&HeaderExtractor(req.headers()))
            });
            let _ = span.set_parent(parent);
        }
        span
    } else {
        tracing::info_span!(REQUEST_SPAN, request_id = %id)
    };

    let mut response = next.call(req).instrument(span.clone()).await?;

    let status = response.status();
    if exporting {
        span.record("http.response.status_code", status.as_u16());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if status.is_server_error() {
        let route = route_of(response.request());
        let problem = response
            .response()
            .extensions()
            .get::<ProblemSlug>()
            .map_or("-", |p| p.0);
        span.in_scope(
            || tracing::warn!(status = status.as_u16(), %route, problem, "request failed"),
        );
    } else if status.is_client_error() {
        let route = route_of(response.request());
        span.in_scope(|| tracing::info!(status = status.as_u16(), %route, "request refused"));
    }
    Ok(response)
}

/// The matched route pattern, for spans and log lines (only formatted when
/// one is written, not on every request).
fn route_of(req: &actix_web::HttpRequest) -> String {
    req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())
}

/// Whether incoming request ids and trace context are believed: always on
/// the internal listener (cluster callers), on the public one only from a
/// trusted proxy.
fn ids_trusted(
    proxies: &TrustedProxies,
    listener: Listener,
    peer: Option<std::net::IpAddr>,
) -> bool {
    listener == Listener::Internal || peer.is_some_and(|ip| proxies.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_request_id_is_kept_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("gw-1234.abc"));
        assert_eq!(request_id(&headers, true), "gw-1234.abc");
        headers.insert(REQUEST_ID, HeaderValue::from_static("bad id with spaces"));
        assert_eq!(request_id(&headers, true).len(), 32);
        assert_eq!(request_id(&HeaderMap::new(), true).len(), 32);
    }

    #[test]
    fn public_ids_are_kept_only_from_trusted_proxies() {
        let proxies = TrustedProxies::new(vec!["10.1.0.0/24".parse().expect("net")]);
        let ingress = Some("10.1.0.5".parse().expect("ip"));
        let internet = Some("203.0.113.9".parse().expect("ip"));
        assert!(ids_trusted(&proxies, Listener::Public, ingress));
        assert!(!ids_trusted(&proxies, Listener::Public, internet));
        assert!(!ids_trusted(&proxies, Listener::Public, None));
        assert!(ids_trusted(&proxies, Listener::Internal, internet));

        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("planted-by-anyone"));
        assert_ne!(request_id(&headers, false), "planted-by-anyone");
        assert_eq!(request_id(&headers, false).len(), 32);
    }
}

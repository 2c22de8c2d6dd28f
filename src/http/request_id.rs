//! The request id, echoed in `x-request-id` and carried by every log line
//! written while the request is handled ([`RequestScope`]), and the
//! per-request span: a child of an incoming `traceparent` when spans are
//! exported, so every log line and trace of one request can be found
//! together.
//!
//! On the public listener an incoming request id and `traceparent` are kept
//! only from `server.trusted_proxies`: from the internet they would let
//! anyone plant ids in our logs and attach spans to someone else's trace.
//!
//! [`RequestScope`]: crate::observability::RequestScope

use std::cell::RefCell;
use std::net::IpAddr;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::web::BytesMut;
use opentelemetry::propagation::Extractor;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::client_addr::TrustedProxies;
use super::{Listener, UNMATCHED};
use crate::observability::telemetry::{self, REQUEST_SPAN};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Length of a fresh id: 128 random bits in hex.
const FRESH_LEN: usize = 32;
/// Fresh ids are cut from one buffer per thread, this many at a time, so
/// that a request allocates nothing for its id.
const IDS_PER_BUFFER: usize = 128;

thread_local! {
    static FRESH_IDS: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

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
pub fn request_id(headers: &HeaderMap, trusted: bool) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|id| trusted && sane(id.as_bytes()))
        .cloned()
        .unwrap_or_else(fresh_id)
}

fn sane(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

fn fresh_id() -> HeaderValue {
    let mut hex = [0u8; FRESH_LEN];
    // Cannot fail: the output is exactly twice the input's length.
    let _ = hex::encode_to_slice(fastrand::u128(..).to_be_bytes(), &mut hex);
    let bytes = FRESH_IDS.with_borrow_mut(|buffer| {
        if buffer.capacity() < FRESH_LEN {
            buffer.reserve(FRESH_LEN * IDS_PER_BUFFER);
        }
        buffer.extend_from_slice(&hex);
        buffer.split().freeze()
    });
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Whether incoming request ids and trace context are believed: always on
/// the internal listener (cluster callers), on the public one only from a
/// trusted proxy.
pub fn ids_trusted(proxies: &TrustedProxies, listener: Listener, peer: Option<IpAddr>) -> bool {
    listener == Listener::Internal || peer.is_some_and(|ip| proxies.contains(ip))
}

/// The request's span, if anyone would see it: with the trace attributes
/// (a child of a trusted `traceparent`) when spans are exported, else only
/// while the log filter asks for request-level (`debug`) lines. Never
/// headers or query strings, which is where session tokens travel.
pub fn request_span(
    req: &ServiceRequest,
    id: &HeaderValue,
    trusted: bool,
) -> Option<tracing::Span> {
    if !telemetry::exporting() {
        // The id is read only if the span is made: tracing evaluates a
        // span's fields after its level check.
        let span = tracing::debug_span!(REQUEST_SPAN, request_id = id.to_str().unwrap_or_default());
        return (!span.is_disabled()).then_some(span);
    }
    let id = id.to_str().unwrap_or_default();
    let method = req.method();
    let route = route_of(req.request());
    let span = tracing::info_span!(
        REQUEST_SPAN,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
        request_id = id,
    );
    if trusted {
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
    }
    Some(span)
}

/// The matched route pattern, for spans and log lines (only formatted when
/// one is written, not on every request).
pub fn route_of(req: &actix_web::HttpRequest) -> String {
    req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned())
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
    fn fresh_ids_are_distinct_hex_and_outlive_their_buffer() {
        let ids: Vec<HeaderValue> = (0..3 * IDS_PER_BUFFER).map(|_| fresh_id()).collect();
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            assert_eq!(id.len(), FRESH_LEN);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
            assert!(seen.insert(id.as_bytes().to_vec()), "{id:?} twice");
        }
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

//! Logs, traces and the per-request span.
//!
//! - Logs: JSON lines (or readable text in dev mode); every line written while
//!   a request is handled carries its `request_id`.
//! - Traces: OpenTelemetry over OTLP/HTTP, configured only by the standard
//!   `OTEL_*` variables and off unless an endpoint is set. W3C `traceparent`
//!   is honoured. Spans never carry secrets, tokens or request headers.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

/// Name reported to tracing backends unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "astrada-token-vendor";

const REQUEST_SPAN: &str = "http.request";

/// Whether spans leave the process; when they do not, the request span is
/// kept to what log lines need.
static EXPORTING: AtomicBool = AtomicBool::new(false);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Flushes buffered spans when dropped; keep it alive for the life of `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("trace export did not shut down cleanly: {e}");
        }
    }
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP trace exporter could not be built: {0}")]
    Exporter(String),
}

/// Installs the global subscriber (a second call keeps the first one).
/// `RUST_LOG`, when set, wins over `log.filter`.
pub fn init(log: &LogSettings) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match log.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().compact().boxed(),
    }
    // The log formatter renders every span it sees, eagerly, on every
    // request; it only needs the request span (for `request_id`). The inner
    // spans are for traces, and cost nothing there when export is off.
    .with_filter(filter_fn(|meta| {
        !meta.is_span() || meta.name() == REQUEST_SPAN
    }));
    let provider = otlp_provider()?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(SERVICE_NAME)));
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard(provider))
}

/// Whether the standard variables ask for trace export.
pub fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
        && std::env::var("OTEL_SDK_DISABLED").map_or(true, |v| v != "true")
}

fn otlp_provider() -> Result<Option<SdkTracerProvider>, TelemetryError> {
    if !otlp_configured() {
        return Ok(None);
    }
    // Endpoint, protocol (http/protobuf or http/json), headers and timeout all
    // come from the OTEL_EXPORTER_OTLP_* variables.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(SERVICE_NAME);
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource.build())
            .build(),
    ))
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

/// The caller's `x-request-id` when it is a sane token (so a proxy's id
/// follows the request through), otherwise a fresh random one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
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
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = request_id(req.headers());
    let exporting = EXPORTING.load(Ordering::Relaxed);
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    // Without export the span only carries the request id into log lines;
    // the trace attributes would be formatted on every request for nobody.
    let span = if exporting {
        let method = req.method();
        let span = tracing::info_span!(
            REQUEST_SPAN,
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            request_id = %id,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&HeaderExtractor(req.headers()))
        });
        let _ = span.set_parent(parent);
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
        span.in_scope(|| tracing::warn!(status = status.as_u16(), %route, "request failed"));
    } else if status.is_client_error() {
        span.in_scope(|| tracing::info!(status = status.as_u16(), %route, "request refused"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incoming_request_id_is_kept_only_when_sane() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("gw-1234.abc"));
        assert_eq!(request_id(&headers), "gw-1234.abc");
        headers.insert(REQUEST_ID, HeaderValue::from_static("bad id with spaces"));
        assert_eq!(request_id(&headers).len(), 32);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }
}

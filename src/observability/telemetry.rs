//! Logs and traces: where they go and what they look like. The request id
//! and the per-request span come from `http::front`.
//!
//! - Logs: JSON lines (or readable text in dev mode); every line written while
//!   a request is handled carries its `request_id`, read from the
//!   [`RequestScope`](super::request_scope) when the line is written.
//! - Traces: OpenTelemetry over OTLP/HTTP, configured only by the standard
//!   `OTEL_*` variables and off unless an endpoint is set. Spans never carry
//!   secrets, tokens or request headers.

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::level_filters::LevelFilter;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use super::request_scope;
use crate::config::{LogFormat, LogSettings};

/// Name reported to tracing backends unless `OTEL_SERVICE_NAME` says otherwise.
pub const SERVICE_NAME: &str = "astrada-token-vendor";

/// Name of the per-request span, and of the `span` object of a JSON line
/// that carries the request id.
pub const REQUEST_SPAN: &str = "http.request";

/// Whether spans leave the process; when they do not, requests get no span
/// unless the log filter asks for request-level (`debug`) lines.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process (set once by [`init`]).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

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
            .with_current_span(false)
            .with_span_list(false)
            .map_event_format(JsonWithRequestId)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .compact()
            .fmt_fields(FieldsWithRequestId(DefaultFields::new()))
            .with_ansi(use_ansi(log.format, std::io::stdout().is_terminal()))
            .boxed(),
    }
    .with_filter(EventsOnly(filter.max_level_hint()));
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

/// The log formatter's filter: events only. It would render every span it
/// sees, eagerly, on every request; the request id comes from the
/// [`RequestScope`](request_scope::RequestScope) instead, and spans are for
/// traces, where they cost nothing while export is off. It carries the log
/// filter's level hint: without one, tracing assumes any level may be on
/// and asks the subscriber about every `debug` span and line at run time
/// (about 400 instructions each on a cached request).
struct EventsOnly(Option<LevelFilter>);

impl<S> Filter<S> for EventsOnly {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !meta.is_span()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.0
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        if meta.is_span() {
            tracing::subscriber::Interest::never()
        } else {
            tracing::subscriber::Interest::always()
        }
    }
}

/// The JSON line of an event, with the request id of the request in hand
/// as the `span` object the formatter wrote when a span carried it (log
/// queries select on `span.request_id`).
struct JsonWithRequestId<F>(F);

impl<S, N, F> FormatEvent<S, N> for JsonWithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_scope::current_id() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let object = line.trim_end().strip_suffix('}').ok_or(fmt::Error)?;
        writeln!(
            writer,
            r#"{object},"span":{{"request_id":"{id}","name":"{REQUEST_SPAN}"}}}}"#
        )
    }
}

/// Readable lines' fields, with ` request_id=…` after an event's own while
/// a request is in hand (the formatter sees events only, [`EventsOnly`]).
struct FieldsWithRequestId(DefaultFields);

impl<'w> FormatFields<'w> for FieldsWithRequestId {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        self.0.format_fields(writer.by_ref(), fields)?;
        match request_scope::current_id() {
            Some(id) => write!(writer, " request_id={id}"),
            None => Ok(()),
        }
    }
}

/// Colour (ANSI escapes) only for `pretty` on a terminal: never into files,
/// pipes or log shippers.
fn use_ansi(format: LogFormat, stdout_is_terminal: bool) -> bool {
    format == LogFormat::Pretty && stdout_is_terminal
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_for_pretty_logs_on_a_terminal() {
        assert!(use_ansi(LogFormat::Pretty, true));
        assert!(
            !use_ansi(LogFormat::Pretty, false),
            "no ANSI into files or pipes"
        );
        assert!(!use_ansi(LogFormat::Json, true));
        assert!(!use_ansi(LogFormat::Json, false));
    }
}

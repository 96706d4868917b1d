//! Logging and tracing.
//!
//! Logs: JSON lines when stdout is not a terminal (log files, collectors), human format
//! otherwise; `RUST_LOG` sets levels. Every span the runtime opens for a command, an event or
//! an HTTP request has a `trace_id` field, so each log line inside it carries the trace id.
//!
//! Traces: spans always get OpenTelemetry ids (so ids propagate and appear in logs even when
//! nothing is exported); they are exported over OTLP/HTTP (protobuf) only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The W3C `traceparent`/`tracestate` pair travels in
//! Kafka headers, so one order's spans across all services form one trace.
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use rdkafka::message::{Headers, Message, OwnedHeaders};
use std::{io::IsTerminal, sync::OnceLock};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

pub fn init(service: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn"));
    let exporting = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok_and(|v| !v.is_empty());
    let mut builder = SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service.to_string()).build());
    let mut export_error = None;
    if exporting {
        // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT itself and posts to `<endpoint>/v1/traces`.
        match opentelemetry_otlp::SpanExporter::builder().with_http().build() {
            Ok(exporter) => builder = builder.with_batch_exporter(exporter),
            Err(error) => export_error = Some(error.to_string()),
        }
    }
    let provider = builder.build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_string()));
    let _ = PROVIDER.set(provider);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    // Logs go to stderr: stdout carries what a command prints (the replay reports).
    let result = if std::io::stderr().is_terminal() {
        registry.with(fmt::layer().with_writer(std::io::stderr)).try_init()
    } else {
        registry.with(fmt::layer().json().with_current_span(true).with_writer(std::io::stderr)).try_init()
    };
    if result.is_ok() {
        tracing::debug!(service, exporting, "logging initialised");
    }
    if let Some(error) = export_error {
        // Observability must never stop the service: log and run without export.
        tracing::error!(%error, "OTLP exporter could not be built; spans are not exported");
    }
}

/// Flushes spans still buffered for export (on shutdown).
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::debug!(%error, "tracer shutdown");
    }
}

struct KafkaHeaders<'a, M>(&'a M);

impl<M: Message> Extractor for KafkaHeaders<'_, M> {
    fn get(&self, key: &str) -> Option<&str> {
        let headers = self.0.headers()?;
        headers.iter().find(|h| h.key == key).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.headers().map(|headers| headers.iter().map(|h| h.key).collect()).unwrap_or_default()
    }
}

struct HttpHeaders<'a>(&'a axum::http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct Pairs(Vec<(String, String)>);

impl Injector for Pairs {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

/// Makes `span` continue the trace whose context `parent` holds, if it holds one (a record
/// without `traceparent`, e.g. produced by kcat, leaves `span` the root of a new trace), and
/// records the trace id on the span for the logs.
fn adopt(span: &tracing::Span, parent: Context) {
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span.record("trace_id", trace_id(span).as_str());
}

/// Continues the trace carried in a Kafka record's headers.
pub fn continue_from_record<M: Message>(span: &tracing::Span, message: &M) {
    adopt(span, TraceContextPropagator::new().extract(&KafkaHeaders(message)));
}

/// Continues the trace carried in an HTTP request's headers.
pub fn continue_from_http(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    adopt(span, TraceContextPropagator::new().extract(&HttpHeaders(headers)));
}

/// Records the trace id on a span that got its parent from the span hierarchy.
pub fn record_trace_id(span: &tracing::Span) {
    span.record("trace_id", trace_id(span).as_str());
}

/// The span's trace id as 32 hex digits (all zeros when tracing is off for it).
pub fn trace_id(span: &tracing::Span) -> String {
    span.context().span().span_context().trace_id().to_string()
}

/// `traceparent` (and `tracestate` when set) naming `span` as the parent of whatever a record
/// with these headers causes.
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    let mut pairs = Pairs(Vec::new());
    TraceContextPropagator::new().inject_context(&span.context(), &mut pairs);
    pairs.0.retain(|(_, value)| !value.is_empty());
    pairs.0
}

/// Adds `span`'s trace context to record headers.
pub fn with_trace(headers: OwnedHeaders, span: &tracing::Span) -> OwnedHeaders {
    trace_headers(span).iter().fold(headers, |h, (key, value)| h.insert(rdkafka::message::Header { key, value: Some(value.as_bytes()) }))
}

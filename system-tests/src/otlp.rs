//! An OTLP/HTTP trace receiver inside the test: services started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` = [`Collector::endpoint`] post their spans here (protobuf),
//! and tests look at them.
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value},
};
use prost::Message;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// One received span, ids in lowercase hex (parent empty for a root).
#[derive(Debug, Clone)]
pub struct CollectedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub attributes: HashMap<String, String>,
}

pub struct Collector {
    pub endpoint: String,
    spans: Arc<Mutex<Vec<CollectedSpan>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

fn attributes(list: &[KeyValue]) -> HashMap<String, String> {
    list.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

impl Collector {
    /// Listens on a free port, served from a thread of its own so it outlives any one test's
    /// tokio runtime (stacks are shared between tests).
    pub fn start() -> Collector {
        let spans: Arc<Mutex<Vec<CollectedSpan>>> = Arc::default();
        let sink = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                        return axum::http::StatusCode::BAD_REQUEST;
                    };
                    let mut received = Vec::new();
                    for resource_spans in &request.resource_spans {
                        let resource = resource_spans.resource.as_ref().map(|r| attributes(&r.attributes)).unwrap_or_default();
                        let service = resource.get("service.name").cloned().unwrap_or_default();
                        for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                            received.push(CollectedSpan {
                                service: service.clone(),
                                name: span.name.clone(),
                                trace_id: hex(&span.trace_id),
                                span_id: hex(&span.span_id),
                                parent_span_id: hex(&span.parent_span_id),
                                attributes: attributes(&span.attributes),
                            });
                        }
                    }
                    sink.lock().unwrap_or_else(|p| p.into_inner()).extend(received);
                    axum::http::StatusCode::OK
                }
            }),
        );
        let app = app.layer(axum::extract::DefaultBodyLimit::disable());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("collector port");
        let endpoint = format!("http://{}", listener.local_addr().expect("collector address"));
        listener.set_nonblocking(true).expect("non-blocking listener");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("collector runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("collector listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        Collector { endpoint, spans }
    }

    pub fn spans(&self) -> Vec<CollectedSpan> {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

//! HTTP middleware every service route runs through.
use std::time::Instant;

/// Axum middleware: counts requests by route and status, times them, and opens the request's
/// span (continuing a `traceparent` the caller sent), inside which handlers produce commands.
pub async fn track_http(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(|path| path.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    // Probes and scrapes would drown the traces; they are only counted.
    let response = if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        next.run(request).await
    } else {
        let span = tracing::info_span!("http.request", otel.name = %format!("{method} {route}"), otel.kind = "server", http.method = %method, http.route = %route, trace_id = tracing::field::Empty);
        crate::observe::telemetry::continue_from_http(&span, request.headers());
        next.run(request).instrument(span).await
    };
    crate::observe::metrics::http_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

//! Prometheus metrics through the `metrics` facade, rendered on `GET /metrics` (no listener of
//! the exporter's own). Every name starts with `orderflow_`; the README lists them.
//!
//! Consumer lag is measured by one background task per consuming loop: every second it asks the
//! broker for the high watermark of each assigned partition and subtracts the loop's position.
//! Asking the broker (not librdkafka's cached watermarks) keeps lag growing while a loop is
//! paused or stuck, which is exactly when it matters.
use crate::admin::LoopKind;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use rdkafka::{
    Offset,
    consumer::{Consumer, ConsumerContext, StreamConsumer},
};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

pub const COMMANDS_TOTAL: &str = "orderflow_commands_total";
pub const EVENTS_APPENDED_TOTAL: &str = "orderflow_events_appended_total";
pub const DECISION_SECONDS: &str = "orderflow_decision_duration_seconds";
pub const BATCH_SECONDS: &str = "orderflow_batch_duration_seconds";
pub const CONSUMER_LAG: &str = "orderflow_consumer_lag";
pub const CHECKPOINT_AGE: &str = "orderflow_projection_checkpoint_age_seconds";
pub const HTTP_REQUESTS_TOTAL: &str = "orderflow_http_requests_total";
pub const HTTP_SECONDS: &str = "orderflow_http_request_duration_seconds";

const LAG_INTERVAL: Duration = Duration::from_secs(1);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);

/// Outcome label of `orderflow_commands_total`.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Accepted,
    Rejected,
    DeadLettered,
    Forwarded,
    Duplicate,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::DeadLettered => "dead_lettered",
            Outcome::Forwarded => "forwarded",
            Outcome::Duplicate => "duplicate",
        }
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder (once per process); `service` becomes a label of every metric.
pub fn install(service: &str) {
    if HANDLE.get().is_some() {
        return;
    }
    // Explicit buckets make histograms real Prometheus histograms (aggregatable), not summaries.
    let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
    let builder = PrometheusBuilder::new().add_global_label("service", service);
    let builder = match builder.set_buckets(&buckets) {
        Ok(builder) => builder,
        Err(error) => {
            tracing::error!(%error, "metric buckets rejected; metrics disabled");
            return;
        }
    };
    match builder.install_recorder() {
        Ok(handle) => {
            let _ = HANDLE.set(handle);
        }
        Err(error) => tracing::error!(%error, "metrics recorder not installed"),
    }
}

/// The Prometheus text exposition of every metric (empty if the recorder is not installed).
pub fn render() -> String {
    HANDLE.get().map(|handle| handle.render()).unwrap_or_default()
}

/// Housekeeping the exporter leaves to its owner (draining histogram buffers); run periodically.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get() {
        handle.run_upkeep();
    }
}

pub fn command_handled(stream: &'static str, command_type: &'static str, outcome: Outcome) {
    counter!(COMMANDS_TOTAL, "stream" => stream, "type" => command_type, "outcome" => outcome.as_str()).increment(1);
}

pub fn event_appended(stream: &'static str, event_type: &'static str) {
    counter!(EVENTS_APPENDED_TOTAL, "stream" => stream, "type" => event_type).increment(1);
}

pub fn decision_took(stream: &'static str, elapsed: Duration) {
    histogram!(DECISION_SECONDS, "stream" => stream).record(elapsed.as_secs_f64());
}

pub fn batch_took(kind: LoopKind, loop_name: &str, elapsed: Duration) {
    histogram!(BATCH_SECONDS, "kind" => kind.as_str(), "loop" => loop_name.to_string()).record(elapsed.as_secs_f64());
}

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let (method, route) = (method.to_string(), route.to_string());
    counter!(HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// Last lag measurement of one loop, for `/ready`.
#[derive(Debug, Clone)]
pub struct LoopLag {
    pub kind: LoopKind,
    pub partitions: HashMap<(String, i32), i64>,
    pub measured_at: Instant,
}

fn lags() -> &'static Mutex<HashMap<String, LoopLag>> {
    static LAGS: OnceLock<Mutex<HashMap<String, LoopLag>>> = OnceLock::new();
    LAGS.get_or_init(Mutex::default)
}

/// The latest lag of every running loop, by loop name.
pub fn lag_snapshot() -> HashMap<String, LoopLag> {
    lags().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Measures a loop's lag while it lives; dropping it stops the measuring task.
pub struct LagReporter {
    task: tokio::task::JoinHandle<()>,
    loop_name: String,
}

impl Drop for LagReporter {
    fn drop(&mut self) {
        self.task.abort();
        lags().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.loop_name);
    }
}

/// Where a loop stands, for partitions it has not consumed from yet: projections know their
/// checkpoints, group members fall back to the group's committed offsets.
pub type Seed = HashMap<(String, i32), i64>;

impl LagReporter {
    /// Starts measuring `consumer`'s lag. `last_commit_ms` (projections) is when the loop last
    /// stored a checkpoint; the checkpoint age is the time since then while lag is non-zero.
    pub fn spawn<C: ConsumerContext + 'static>(
        kind: LoopKind,
        loop_name: String,
        consumer: Arc<StreamConsumer<C>>,
        seed: Seed,
        last_commit_ms: Option<Arc<AtomicI64>>,
    ) -> Self {
        let name = loop_name.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(LAG_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let (consumer, seed) = (consumer.clone(), seed.clone());
                let measured = tokio::task::spawn_blocking(move || measure(&*consumer, &seed)).await;
                let partitions = match measured {
                    Ok(Ok(partitions)) => partitions,
                    Ok(Err(error)) => {
                        tracing::debug!(loop_name = %name, %error, "lag not measured");
                        continue;
                    }
                    Err(_) => continue,
                };
                for ((topic, partition), lag) in &partitions {
                    gauge!(CONSUMER_LAG, "kind" => kind.as_str(), "loop" => name.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(*lag as f64);
                }
                if let Some(last_commit_ms) = &last_commit_ms {
                    let behind = partitions.values().any(|lag| *lag > 0);
                    let age_ms = if behind { (crate::command_processor::now_millis() - last_commit_ms.load(Ordering::Relaxed)).max(0) } else { 0 };
                    gauge!(CHECKPOINT_AGE, "projection" => name.clone()).set(age_ms as f64 / 1000.0);
                }
                lags().lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), LoopLag { kind, partitions, measured_at: Instant::now() });
            }
        });
        LagReporter { task, loop_name }
    }
}

/// High watermark − position for every partition assigned to `consumer`. Blocking (broker calls).
fn measure<C: ConsumerContext, K: Consumer<C>>(consumer: &K, seed: &Seed) -> Result<HashMap<(String, i32), i64>, rdkafka::error::KafkaError> {
    let assignment = consumer.assignment()?;
    let positions = consumer.position()?;
    let position_of = |topic: &str, partition: i32| match positions.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    };
    let mut committed = None;
    let mut lags = HashMap::new();
    for element in assignment.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)?;
        let position = match position_of(topic, partition).or_else(|| seed.get(&(topic.to_string(), partition)).copied()) {
            Some(position) => position,
            None => {
                if committed.is_none() {
                    committed = Some(consumer.committed(WATERMARK_TIMEOUT)?);
                }
                match committed.as_ref().and_then(|c| c.find_partition(topic, partition)).map(|p| p.offset()) {
                    Some(Offset::Offset(offset)) => offset,
                    // Nothing committed: the group starts at the earliest record.
                    _ => low,
                }
            }
        };
        lags.insert((topic.to_string(), partition), (high - position).max(0));
    }
    Ok(lags)
}

/// Axum middleware: counts requests by route and status, times them, and opens the request's
/// span (continuing a `traceparent` the caller sent), inside which handlers produce commands.
pub async fn track_http(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use tracing::Instrument;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    // Probes and scrapes would drown the traces; they are only counted.
    let response = if matches!(route.as_str(), "/health" | "/ready" | "/metrics") {
        next.run(request).await
    } else {
        let span = tracing::info_span!("http.request", otel.name = %format!("{method} {route}"), otel.kind = "server", http.method = %method, http.route = %route, trace_id = tracing::field::Empty);
        crate::telemetry::continue_from_http(&span, request.headers());
        next.run(request).instrument(span).await
    };
    http_request(&method, &route, response.status().as_u16(), started.elapsed());
    response
}

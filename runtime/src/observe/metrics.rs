//! Prometheus metrics through the `metrics` facade, rendered on `GET /metrics` (no listener of
//! the exporter's own). Every name starts with `orderflow_`; the README lists them.
use crate::shared::LoopKind;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::{sync::OnceLock, time::Duration};

pub const COMMANDS_TOTAL: &str = "orderflow_commands_total";
pub const EVENTS_APPENDED_TOTAL: &str = "orderflow_events_appended_total";
pub const DECISION_SECONDS: &str = "orderflow_decision_duration_seconds";
pub const BATCH_SECONDS: &str = "orderflow_batch_duration_seconds";
pub const LOOP_RESTARTS_TOTAL: &str = "orderflow_loop_restarts_total";
pub const PROJECTION_REBUILDS_TOTAL: &str = "orderflow_projection_rebuilds_total";
pub const EVENTS_UNDECODABLE_TOTAL: &str = "orderflow_events_undecodable_total";
pub const RECORDS_NOT_OWNED_TOTAL: &str = "orderflow_records_not_owned_total";
pub const RECORDS_AHEAD_OF_FETCH_TOTAL: &str = "orderflow_records_ahead_of_fetch_total";
pub const DEADLINES_FIRED_TOTAL: &str = "orderflow_deadlines_fired_total";
pub const WRITER_AGGREGATES: &str = "orderflow_writer_aggregates";
pub const HTTP_REQUESTS_TOTAL: &str = "orderflow_http_requests_total";
pub const HTTP_SECONDS: &str = "orderflow_http_request_duration_seconds";

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

/// A supervised loop's run ended (`cause`: `error`, `panic` or `ended`) and it restarts.
pub fn loop_restarted(kind: LoopKind, loop_name: &str, cause: &'static str) {
    counter!(LOOP_RESTARTS_TOTAL, "kind" => kind.as_str(), "loop" => loop_name.to_string(), "cause" => cause).increment(1);
}

/// A live projection rebuilt its tables from the log by itself (`reason`: `log_replaced`).
pub fn projection_rebuilt(projection: &str, reason: &'static str) {
    counter!(PROJECTION_REBUILDS_TOTAL, "projection" => projection.to_string(), "reason" => reason).increment(1);
}

/// A reader (`loop`) met an event record it can never decode (`kind`: see `CodecError::kind`).
pub fn event_undecodable(topic: &str, loop_name: &str, kind: &'static str) {
    counter!(EVENTS_UNDECODABLE_TOTAL, "topic" => topic.to_string(), "loop" => loop_name.to_string(), "kind" => kind).increment(1);
}

/// A batch held records of a partition the loop's member no longer owns; they were left to
/// the partition's new owner.
pub fn records_not_owned(kind: LoopKind, loop_name: &str, records: usize) {
    counter!(RECORDS_NOT_OWNED_TOTAL, "kind" => kind.as_str(), "loop" => loop_name.to_string()).increment(records as u64);
}

/// A loop handled records this process appended as soon as they were acknowledged, ahead of
/// their fetch (see `kafka::loopback`).
pub fn records_ahead_of_fetch(kind: LoopKind, loop_name: &str, records: usize) {
    counter!(RECORDS_AHEAD_OF_FETCH_TOTAL, "kind" => kind.as_str(), "loop" => loop_name.to_string()).increment(records as u64);
}

/// How many aggregates the writer of `stream`'s `partition` holds in memory and on disk only.
pub fn writer_aggregates(stream: &'static str, partition: i32, in_memory: usize, on_disk: usize) {
    gauge!(WRITER_AGGREGATES, "stream" => stream, "partition" => partition.to_string(), "where" => "memory").set(in_memory as f64);
    gauge!(WRITER_AGGREGATES, "stream" => stream, "partition" => partition.to_string(), "where" => "disk").set(on_disk as f64);
}

/// A deadline loop put a timeout command on its stream (a refire after a restart counts again;
/// the command processor decides it once).
pub fn deadline_fired(loop_name: &'static str) {
    counter!(DEADLINES_FIRED_TOTAL, "loop" => loop_name).increment(1);
}

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let (method, route) = (method.to_string(), route.to_string());
    counter!(HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    histogram!(HTTP_SECONDS, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

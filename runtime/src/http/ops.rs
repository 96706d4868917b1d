//! Operational endpoints the runtime adds to every service: `/health` (alive), `/ready`
//! (broker and registry reachable, every supervised loop running, every projection caught up
//! to within `READY_MAX_LAG`; and every loop's lag), `/metrics` (Prometheus) and the operator pause
//! (`/admin/pause`, `/admin/resume`).
use super::AppState;
use crate::{
    engine::{
        pause,
        supervise::{LoopState, LoopStatus, Loops},
    },
    shared::LoopKind,
};
use axum::{
    Json, Router,
    extract::{Query, State},
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A lag measured longer ago than this says nothing about now (the loop or broker is stuck).
const LAG_MAX_AGE: Duration = Duration::from_secs(10);

/// What `/ready` checks.
pub struct Readiness {
    pub service: &'static str,
    pub registry_url: String,
    pub projections: Vec<&'static str>,
    /// `READY_MAX_LAG`: the most records a projection may be behind and still serve.
    pub max_lag: i64,
    /// Every supervised loop of the service: command processors, policies and reactors,
    /// projections.
    loops: Loops,
    http: reqwest::Client,
}

impl Readiness {
    pub fn new(service: &'static str, registry_url: &str, projections: Vec<&'static str>, loops: Loops) -> Self {
        let max_lag = crate::shared::number_from_env("READY_MAX_LAG", 1000);
        let http = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().unwrap_or_default();
        Readiness { service, registry_url: registry_url.trim_end_matches('/').to_string(), projections, max_lag, loops, http }
    }

    async fn registry_problem(&self) -> Option<String> {
        match self.http.get(format!("{}/subjects", self.registry_url)).send().await {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("answered {}", response.status())),
            Err(error) => Some(error.to_string()),
        }
    }

    fn projection_problems(&self) -> HashMap<&'static str, Value> {
        let lags = crate::observe::lag::lag_snapshot();
        let mut problems = HashMap::new();
        for name in &self.projections {
            match lags.get(*name) {
                None => {
                    problems.insert(*name, json!({ "reason": "lag not measured yet" }));
                }
                Some(lag) if lag.measured_at.elapsed() > LAG_MAX_AGE => {
                    problems.insert(*name, json!({ "reason": "lag not measured recently", "seconds_ago": lag.measured_at.elapsed().as_secs() }));
                }
                Some(lag) => {
                    let total: i64 = lag.partitions.values().sum();
                    if total > self.max_lag {
                        problems.insert(*name, json!({ "reason": "behind", "lag": total, "max_lag": self.max_lag }));
                    }
                }
            }
        }
        problems
    }
}

/// The loops that are not running (not started yet, or waiting to restart after a failure), by
/// label, with why and since when.
fn loop_problems(loops: &BTreeMap<String, LoopStatus>) -> BTreeMap<String, Value> {
    loops
        .iter()
        .filter_map(|(label, status)| {
            let seconds = status.since.elapsed().as_secs();
            let problem = match &status.state {
                LoopState::Running => return None,
                LoopState::NotStarted => json!({ "kind": status.kind.as_str(), "state": "not started" }),
                LoopState::Restarting { cause, reason } => json!({
                    "kind": status.kind.as_str(),
                    "state": "restarting",
                    "cause": cause.as_str(),
                    "reason": reason,
                    "restarts": status.restarts,
                    "seconds": seconds,
                }),
            };
            Some((label.clone(), problem))
        })
        .collect()
}

/// `/health`, `/ready`, `/metrics`, `/admin/pause`, `/admin/resume`.
pub fn routes(readiness: Readiness) -> Router<AppState> {
    let service = readiness.service;
    let readiness = Arc::new(readiness);
    Router::new()
        .route(
            "/health",
            get(move || async move { ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(json!({ "status": "ok", "service": service }))) }),
        )
        .route("/ready", get(move |state: State<AppState>| ready(state, readiness.clone())))
        .route("/metrics", get(|| async { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::observe::metrics::render()) }))
        .route("/admin/pause", post(|query: Query<PauseQuery>| set_pause(query, true)))
        .route("/admin/resume", post(|query: Query<PauseQuery>| set_pause(query, false)))
}

async fn ready(State(state): State<AppState>, readiness: Arc<Readiness>) -> impl IntoResponse {
    let started = Instant::now();
    let (broker, registry) = tokio::join!(state.commands.broker_problem(PROBE_TIMEOUT), readiness.registry_problem());
    let projections = readiness.projection_problems();
    let loops = loop_problems(&readiness.loops.snapshot());
    let rebuilding = crate::observe::rebuilds::in_progress();
    let ready = broker.is_none() && registry.is_none() && projections.is_empty() && loops.is_empty() && rebuilding.is_empty();
    let mut not_ready = serde_json::Map::new();
    if let Some(problem) = broker {
        not_ready.insert("broker".into(), json!(problem));
    }
    if let Some(problem) = registry {
        not_ready.insert("registry".into(), json!(problem));
    }
    if !projections.is_empty() {
        not_ready.insert("projections".into(), json!(projections));
    }
    if !loops.is_empty() {
        not_ready.insert("loops".into(), json!(loops));
    }
    if !rebuilding.is_empty() {
        // Partition → milliseconds so far: their commands wait until the writer has rebuilt it.
        not_ready.insert("rebuilding".into(), json!(rebuilding));
    }
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "service": readiness.service,
        "not_ready": not_ready,
        "lag": lag_by_loop(crate::observe::lag::lag_snapshot()),
        "checked_in_ms": started.elapsed().as_millis() as u64,
    });
    // Read by the web console, which order-svc serves from another port (origin).
    (status, [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], Json(body))
}

/// Records each loop is behind, over all its partitions, as last measured.
fn lag_by_loop(lags: HashMap<String, crate::observe::lag::LoopLag>) -> BTreeMap<String, i64> {
    lags.into_iter().map(|(name, lag)| (name, lag.partitions.values().sum())).collect()
}

#[derive(serde::Deserialize)]
struct PauseQuery {
    /// `command`, `policy` or `projection`; all kinds when absent.
    kind: Option<String>,
}

async fn set_pause(Query(query): Query<PauseQuery>, paused: bool) -> impl IntoResponse {
    let kinds: Vec<LoopKind> = match query.kind.as_deref() {
        None | Some("") | Some("all") => LoopKind::ALL.to_vec(),
        Some(text) => match LoopKind::parse(text) {
            Some(kind) => vec![kind],
            None => return (StatusCode::BAD_REQUEST, Json(json!({ "error": format!("unknown loop kind {text:?}"), "status": 400 }))),
        },
    };
    for kind in kinds {
        pause::set_paused(kind, paused);
    }
    tracing::warn!(paused, "operator changed the pause of consuming loops");
    let state: serde_json::Map<String, Value> = LoopKind::ALL.iter().map(|k| (k.as_str().to_string(), json!(pause::is_paused(*k)))).collect();
    (StatusCode::OK, Json(json!({ "paused": state })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::supervise::Cause;

    fn status(kind: LoopKind, state: LoopState, restarts: u64) -> LoopStatus {
        LoopStatus { kind, state, since: Instant::now(), restarts }
    }

    #[test]
    fn every_loop_that_is_not_running_is_named_with_why() {
        let loops = BTreeMap::from([
            ("order.commands command processor".to_string(), status(LoopKind::Command, LoopState::Running, 0)),
            (
                "stock.events reactor order-from-stock".to_string(),
                status(LoopKind::Policy, LoopState::Restarting { cause: Cause::Panic, reason: "panicked: boom".into() }, 2),
            ),
            ("projection orders".to_string(), status(LoopKind::Projection, LoopState::NotStarted, 0)),
        ]);
        let problems = loop_problems(&loops);
        assert_eq!(problems.keys().collect::<Vec<_>>(), ["projection orders", "stock.events reactor order-from-stock"]);
        let policy = &problems["stock.events reactor order-from-stock"];
        assert_eq!(
            (policy["kind"].as_str(), policy["state"].as_str(), policy["cause"].as_str(), policy["reason"].as_str(), policy["restarts"].as_u64()),
            (Some("policy"), Some("restarting"), Some("panic"), Some("panicked: boom"), Some(2))
        );
        assert_eq!(problems["projection orders"]["state"], "not started");
    }

    #[test]
    fn a_loops_lag_is_the_sum_over_its_partitions() {
        let lag = |partitions: &[(&str, i32, i64)]| crate::observe::lag::LoopLag {
            partitions: partitions.iter().map(|(topic, partition, lag)| ((topic.to_string(), *partition), *lag)).collect(),
            measured_at: Instant::now(),
        };
        let lags = HashMap::from([
            ("projection orders".to_string(), lag(&[("order.events", 0, 3), ("order.events", 1, 4), ("stock.events", 0, 0)])),
            ("order.commands command processor".to_string(), lag(&[])),
        ]);
        assert_eq!(lag_by_loop(lags), BTreeMap::from([("order.commands command processor".to_string(), 0), ("projection orders".to_string(), 7)]));
    }

    #[test]
    fn running_loops_are_no_problem() {
        let loops = BTreeMap::from([("projection orders".to_string(), status(LoopKind::Projection, LoopState::Running, 3))]);
        assert!(loop_problems(&loops).is_empty());
    }
}

//! The stuck-saga report, `GET /sagas/stuck?older_than=30s` (and `scripts/stuck` over it):
//! every order that has not reached an end (DELIVERED, CANCELLED) and has not moved for longer
//! than `older_than`, with the service and step it waits on, since when, the deadline of that
//! wait, and how far behind the loops are that must act for it to move on; plus the events that
//! readers parked on an event log's dead-letter topic because they could not decode them.
//!
//! * [`waits`]: which service, step and consuming loops an order in a status waits on (pure).
//! * [`parked_events`]: the `parked_events` projection over the five `<stream>.events.dlq`.
//! * [`get_stuck`]: the route; lags are asked from the group coordinator when the report is made.
use crate::{
    deadlines::{DeadlineConfig, awaited, waiting_on},
    order::OrderStatus,
};
use axum::{
    Extension, Json,
    extract::{Query, State, rejection::QueryRejection},
};
use contracts::{EVENT_SCHEMAS, dead_letter_topic, order::SagaStep};
use runtime::{
    Projection, RawRecord, SqlWrite,
    http::{ApiError, ApiRoutes, ReadDb},
    params,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::{collections::HashMap, time::Duration};
use utoipa::{IntoParams, ToSchema};

pub const PARKED_PROJECTION: &str = "parked_events";
/// At most this many orders in one report, the ones stuck longest first.
pub const MAX_STUCK_ORDERS: i64 = 500;
const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(30);

/// A consuming loop (its consumer group) and the topic it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loop {
    pub group: &'static str,
    pub topic: &'static str,
}

/// What an order in some status waits for: who must act, and the loops on that path in order
/// (the service reacting to the order's event, its command processor, order-svc reacting back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub service: &'static str,
    pub step: String,
    pub saga_step: Option<SagaStep>,
    pub loops: Vec<Loop>,
}

/// The service that acts in `step`, and the loops on the order's path through it: that
/// service's policy on `order.events`, its command processor, and order-svc's policy on that
/// service's events.
fn step_path(step: SagaStep) -> (&'static str, Vec<Loop>) {
    let (service, policy, commands_group, commands, reply, events) = match step {
        SagaStep::Stock => (
            "inventory-svc",
            "inventory-svc.inventory-from-orders",
            "inventory-svc.commands",
            "stock.commands",
            "order-svc.order-from-stock",
            "stock.events",
        ),
        SagaStep::Payment => (
            "payment-svc",
            "payment-svc.payment-from-orders",
            "payment-svc.commands",
            "account.commands",
            "order-svc.order-from-accounts",
            "account.events",
        ),
        SagaStep::Shipment => (
            "shipping-svc",
            "shipping-svc.shipping-from-orders",
            "shipping-svc.commands",
            "shipment.commands",
            "order-svc.order-from-shipments",
            "shipment.events",
        ),
    };
    let loops =
        vec![Loop { group: policy, topic: "order.events" }, Loop { group: commands_group, topic: commands }, Loop { group: reply, topic: events }];
    (service, loops)
}

/// Who an order in `status` waits on; `cancelling` when a cancellation was requested and
/// shipping has not answered yet. `None` at the ends of the saga.
pub fn waits(status: OrderStatus, cancelling: bool) -> Option<Wait> {
    if cancelling {
        // The Shipment aggregate answers a cancellation request, along the shipping path.
        let (service, loops) = step_path(SagaStep::Shipment);
        return Some(Wait {
            service,
            step: "answer the cancellation request (cancel the shipment or refuse: dispatched)".into(),
            saga_step: None,
            loops,
        });
    }
    if let Some(step) = waiting_on(status) {
        let (service, loops) = step_path(step);
        return Some(Wait { service, step: format!("waits for {}", awaited(step)), saga_step: Some(step), loops });
    }
    match status {
        // No service's reply: people and carriers, with no deadline.
        OrderStatus::Confirmed => Some(Wait { service: "warehouse", step: "dispatch (DispatchShipment)".into(), saga_step: None, loops: vec![] }),
        OrderStatus::Shipped => Some(Wait { service: "carrier", step: "delivery (ConfirmDelivery)".into(), saga_step: None, loops: vec![] }),
        _ => None,
    }
}

// ------------------------------------------------------------------------------ parked events

const PARK: &str = "INSERT INTO parked_events \
    (topic, partition_id, offset_id, source_topic, source_partition, source_offset, aggregate_id, kind, reason, reader, parked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
    ON CONFLICT (topic, partition_id, offset_id) DO NOTHING";

/// The `parked_events` projection: every record of the event logs' dead-letter topics.
pub fn parked_events() -> Projection {
    EVENT_SCHEMAS.iter().fold(Projection::new(PARKED_PROJECTION, &["parked_events"]), |projection, (events_topic, _)| {
        projection.from_raw(dead_letter_topic(events_topic), park)
    })
}

/// A dead letter of an event log: the original record's bytes, the reasons in `dlq.*` headers.
pub fn park(record: &RawRecord<'_>) -> Vec<SqlWrite> {
    let header = |name: &str| record.headers.get(name).cloned().unwrap_or_default();
    let source_topic = record.headers.get("dlq.source.topic").cloned().unwrap_or_else(|| record.topic.trim_end_matches(".dlq").to_string());
    let number = |name: &str| record.headers.get(name).and_then(|v| v.parse::<i64>().ok());
    let aggregate_id = record.key.map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    vec![SqlWrite::new(
        PARK,
        params![
            record.topic,
            i64::from(record.partition),
            record.offset,
            source_topic,
            number("dlq.source.partition").unwrap_or(i64::from(record.partition)),
            number("dlq.source.offset"),
            aggregate_id,
            header("dlq.error.kind"),
            header("dlq.error.reason"),
            header("dlq.reader"),
            record.timestamp_ms.unwrap_or(0),
        ],
    )]
}

// ------------------------------------------------------------------------------------- route

/// What the report needs besides the read model: where to ask for lags, and the deadlines.
#[derive(Clone)]
pub struct StuckReport {
    pub brokers: String,
    pub deadlines: DeadlineConfig,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StuckParams {
    /// Orders that have not moved for longer than this: `30s`, `5m`, `1h`, `1500ms`, or plain
    /// milliseconds (default 30s).
    pub older_than: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StuckSagas {
    pub older_than_ms: i64,
    /// When the report was made (epoch milliseconds).
    pub now: i64,
    /// Stuck longest first; at most 500.
    pub orders: Vec<StuckOrder>,
    /// Event records readers could not decode, parked on `<stream>.events.dlq`.
    pub parked_events: Vec<ParkedEvent>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StuckOrder {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    /// The service that must act next (`warehouse` and `carrier` are people, not services).
    pub waiting_on: String,
    pub step: String,
    /// Since when the order is in this status (epoch milliseconds).
    pub since: i64,
    pub age_ms: i64,
    /// When the wait runs out and the order is cancelled with TIMEOUT (none for waits without
    /// a deadline).
    pub deadline: Option<i64>,
    /// The loops that must run for the order to move on, with their lag.
    pub loops: Vec<LoopLag>,
    /// Dead-lettered events of this order's aggregate (`order.events.dlq`,
    /// `shipment.events.dlq`: both keyed by order id).
    pub parked_events: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoopLag {
    pub group: String,
    pub topic: String,
    /// Records of `topic` the group has not committed; `null` when the broker could not tell.
    pub lag: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ParkedEvent {
    pub topic: String,
    pub partition: i64,
    pub offset: Option<i64>,
    pub aggregate_id: String,
    pub kind: String,
    pub reason: String,
    pub reader: String,
    pub parked_at: i64,
}

/// Parses `older_than`: a number with `ms`, `s`, `m` or `h`, or plain milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" => number,
        "s" => number.checked_mul(1_000)?,
        "m" => number.checked_mul(60_000)?,
        "h" => number.checked_mul(3_600_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

/// Sagas that have not moved for a while, and why.
#[utoipa::path(
    get, path = "/sagas/stuck", tag = "sagas", params(StuckParams),
    responses(
        (status = 200, description = "Orders stuck longer than older_than, and parked events", body = StuckSagas),
        (status = 400, description = "older_than is not a duration", body = ApiError),
    )
)]
pub async fn get_stuck(
    State(ReadDb(pool)): State<ReadDb>,
    Extension(report): Extension<StuckReport>,
    params: Result<Query<StuckParams>, QueryRejection>,
) -> Result<Json<StuckSagas>, ApiError> {
    let Query(params) = params?;
    let older_than = match params.older_than.as_deref().filter(|t| !t.is_empty()) {
        None => DEFAULT_OLDER_THAN,
        Some(text) => {
            parse_duration(text).ok_or_else(|| ApiError::bad_request(format!("older_than: {text:?} is not a duration like 30s, 5m, 1500ms")))?
        }
    };
    let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let now = now_millis();
    let rows = sqlx::query(
        "SELECT o.order_id, o.customer_id, o.status, o.updated_at, o.cancellation_request, \
         (SELECT COUNT(*) FROM parked_events p WHERE p.aggregate_id = o.order_id AND p.source_topic IN ('order.events', 'shipment.events')) AS parked \
         FROM orders o WHERE o.status NOT IN ('DELIVERED', 'CANCELLED') AND o.updated_at <= $1 ORDER BY o.updated_at, o.order_id LIMIT $2",
    )
    .bind(now.saturating_sub(older_than_ms))
    .bind(MAX_STUCK_ORDERS)
    .fetch_all(&pool)
    .await?;
    let mut orders = Vec::with_capacity(rows.len());
    for row in &rows {
        let status: String = row.try_get("status")?;
        let cancelling = row.try_get::<Option<String>, _>("cancellation_request")?.as_deref() == Some("REQUESTED");
        let Some(wait) = OrderStatus::named(&status).and_then(|s| waits(s, cancelling)) else { continue };
        let since: i64 = row.try_get("updated_at")?;
        let deadline = wait.saga_step.map(|step| since.saturating_add(i64::try_from(report.deadlines.limit(step).as_millis()).unwrap_or(i64::MAX)));
        orders.push((
            StuckOrder {
                order_id: row.try_get("order_id")?,
                customer_id: row.try_get("customer_id")?,
                status,
                waiting_on: wait.service.to_string(),
                step: wait.step.clone(),
                since,
                age_ms: now - since,
                deadline,
                loops: vec![],
                parked_events: row.try_get("parked")?,
            },
            wait.loops,
        ));
    }
    // One question to the broker per loop, however many orders wait on it.
    let mut wanted: Vec<Loop> = orders.iter().flat_map(|(_, loops)| loops.iter().copied()).collect();
    wanted.sort_by_key(|l| (l.group, l.topic));
    wanted.dedup();
    let brokers = report.brokers.clone();
    let lags: HashMap<(&'static str, &'static str), Option<i64>> = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .map(|l| {
                let lag = runtime::kafka::group_lag(&brokers, l.group, l.topic)
                    .inspect_err(|error| tracing::warn!(group = l.group, topic = l.topic, %error, "no lag for the stuck-saga report"))
                    .ok();
                ((l.group, l.topic), lag)
            })
            .collect()
    })
    .await
    .map_err(|error| ApiError { status: axum::http::StatusCode::INTERNAL_SERVER_ERROR, message: format!("lag task: {error}") })?;
    let orders = orders
        .into_iter()
        .map(|(mut order, loops)| {
            order.loops = loops
                .iter()
                .map(|l| LoopLag { group: l.group.to_string(), topic: l.topic.to_string(), lag: lags.get(&(l.group, l.topic)).copied().flatten() })
                .collect();
            order
        })
        .collect();
    let parked = sqlx::query(
        "SELECT source_topic, source_partition, source_offset, aggregate_id, kind, reason, reader, parked_at FROM parked_events \
         ORDER BY parked_at, topic, partition_id, offset_id LIMIT $1",
    )
    .bind(MAX_STUCK_ORDERS)
    .fetch_all(&pool)
    .await?
    .iter()
    .map(|row| {
        Ok(ParkedEvent {
            topic: row.try_get("source_topic")?,
            partition: row.try_get("source_partition")?,
            offset: row.try_get("source_offset")?,
            aggregate_id: row.try_get("aggregate_id")?,
            kind: row.try_get("kind")?,
            reason: row.try_get("reason")?,
            reader: row.try_get("reader")?,
            parked_at: row.try_get("parked_at")?,
        })
    })
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Json(StuckSagas { older_than_ms, now, orders, parked_events: parked }))
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `GET /sagas/stuck`; the service adds what it needs besides the read model, a
/// [`StuckReport`], as an `Extension` layer (see [`StuckReport::layer`]).
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(get_stuck))
}

impl StuckReport {
    pub fn layer(self) -> Extension<StuckReport> {
        Extension(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        for bad in ["", "s", "-1s", "3 days", "1.5s", "99999999999999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_waiting_status_names_who_acts_and_the_ends_wait_on_nobody() {
        let pending = waits(OrderStatus::Pending, false).expect("pending waits");
        assert_eq!((pending.service, pending.saga_step), ("inventory-svc", Some(SagaStep::Stock)));
        assert_eq!(
            pending.loops.iter().map(|l| l.group).collect::<Vec<_>>(),
            ["inventory-svc.inventory-from-orders", "inventory-svc.commands", "order-svc.order-from-stock"]
        );
        assert_eq!(waits(OrderStatus::StockReserved, false).map(|w| w.service), Some("payment-svc"));
        assert_eq!(waits(OrderStatus::Paid, false).map(|w| w.service), Some("shipping-svc"));
        assert_eq!(waits(OrderStatus::Confirmed, false).map(|w| (w.service, w.saga_step)), Some(("warehouse", None)));
        assert_eq!(waits(OrderStatus::Confirmed, true).map(|w| w.service), Some("shipping-svc"));
        assert_eq!(waits(OrderStatus::Delivered, false), None);
        assert_eq!(waits(OrderStatus::Cancelled, false), None);
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::named(status.as_str()), Some(status));
        }
    }

    #[test]
    fn a_dead_letter_is_parked_with_its_source_and_reasons() {
        let headers = [
            ("dlq.source.topic", "order.events"),
            ("dlq.source.partition", "0"),
            ("dlq.source.offset", "41"),
            ("dlq.error.kind", "unknown_event_type"),
            ("dlq.error.reason", "event type OrderGiftWrapped is unknown"),
            ("dlq.reader", "payment-svc.payment-from-orders"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let record = RawRecord {
            topic: "order.events.dlq",
            partition: 0,
            offset: 3,
            key: Some(b"o-1"),
            payload: b"\0\0\0\0\x01",
            headers,
            timestamp_ms: Some(7),
        };
        let writes = park(&record);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].params.len(), 11);
    }
}

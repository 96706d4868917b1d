//! The order view: one row per order in `orders` (migration `migrations/0001_orders.sql`),
//! projected from `order.events`, and the query routes that read it.
//!
//! Timestamps (`created_at`, `updated_at`) are epoch milliseconds taken from the events'
//! `occurred_at`, both in the table and in the JSON answers.
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use contracts::account::{Account, AccountEvent};
use contracts::notification::{Notification, NotificationEvent};
use contracts::order::{Order, OrderEvent, OrderLine};
use contracts::shipment::{Shipment, ShipmentEvent};
use contracts::stock::{Stock, StockEvent};
use contracts::{EventEnvelope, EventType, Stream};
use runtime::CodecError;
use runtime::http::{ApiError, ApiRoutes, ProjectionProgress, ReadDb};
use runtime::{Projection, SqlWrite, params};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};

use crate::order::OrderStatus;

const INSERT_PLACED_ORDER: &str = "INSERT INTO orders \
    (order_id, customer_id, status, cancellation_reason, cancellation_detail, currency, total_cents, \
     lines_json, carrier, tracking_number, created_at, updated_at, version) \
    VALUES ($1, $2, $3, NULL, NULL, $4, $5, $6, NULL, NULL, $7, $8, $9) \
    ON CONFLICT (order_id) DO UPDATE SET \
    customer_id = excluded.customer_id, status = excluded.status, \
    cancellation_reason = NULL, cancellation_detail = NULL, \
    currency = excluded.currency, total_cents = excluded.total_cents, lines_json = excluded.lines_json, \
    carrier = NULL, tracking_number = NULL, \
    created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version";

const TOUCH_ORDER: &str = "UPDATE orders SET updated_at = $1, version = $2 WHERE order_id = $3";

const SET_STATUS: &str = "UPDATE orders SET status = $1, updated_at = $2, version = $3 WHERE order_id = $4";

const SET_CONFIRMED: &str = "UPDATE orders SET status = $1, carrier = $2, tracking_number = $3, \
    updated_at = $4, version = $5 WHERE order_id = $6";

const SET_CANCELLED: &str = "UPDATE orders SET status = $1, cancellation_reason = $2, cancellation_detail = $3, \
    updated_at = $4, version = $5 WHERE order_id = $6";

/// Projects one `order.events` event onto the `orders` table.
pub fn project_order(event: &EventEnvelope<OrderEvent>) -> Vec<SqlWrite> {
    let order_id = &event.aggregate_id;
    let at = event.occurred_at;
    let version = event.version;
    let status_write = |status: OrderStatus| SqlWrite::new(SET_STATUS, params![status.as_str(), at, version, order_id]);
    let write = match &event.payload {
        OrderEvent::OrderPlaced { customer_id, lines, currency, total_cents, .. } => SqlWrite::new(
            INSERT_PLACED_ORDER,
            params![order_id, customer_id, OrderStatus::Pending.as_str(), currency, *total_cents, lines_json(lines), at, at, version],
        ),
        OrderEvent::OrderLineReserved { .. } => SqlWrite::new(TOUCH_ORDER, params![at, version, order_id]),
        OrderEvent::OrderStockReserved { .. } => status_write(OrderStatus::StockReserved),
        OrderEvent::OrderPaid { .. } => status_write(OrderStatus::Paid),
        OrderEvent::OrderConfirmed { carrier, tracking_number, .. } => {
            SqlWrite::new(SET_CONFIRMED, params![OrderStatus::Confirmed.as_str(), carrier, tracking_number, at, version, order_id])
        }
        OrderEvent::OrderShipped { .. } => status_write(OrderStatus::Shipped),
        OrderEvent::OrderDelivered { .. } => status_write(OrderStatus::Delivered),
        OrderEvent::OrderCancelled { reason, detail, .. } => {
            let reason: &'static str = reason.into();
            SqlWrite::new(SET_CANCELLED, params![OrderStatus::Cancelled.as_str(), reason, detail, at, version, order_id])
        }
    };
    vec![write]
}

fn lines_json(lines: &[OrderLine]) -> String {
    // Built by hand rather than with serde_json::to_string so that there is no error path.
    serde_json::Value::Array(
        lines
            .iter()
            .map(|line| {
                serde_json::json!({
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price_cents": line.unit_price_cents,
                })
            })
            .collect(),
    )
    .to_string()
}

// ---- The joined parts of the view: other services' events about an order. ----

const UPSERT_PAYMENT: &str = "INSERT INTO order_payments (order_id, status, amount_cents, updated_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, amount_cents = excluded.amount_cents, updated_at = excluded.updated_at";

const UPSERT_SHIPMENT: &str = "INSERT INTO order_shipments (order_id, status, carrier, tracking_number, updated_at) VALUES ($1, $2, $3, $4, $5) \
    ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, \
    carrier = COALESCE(excluded.carrier, order_shipments.carrier), \
    tracking_number = COALESCE(excluded.tracking_number, order_shipments.tracking_number), updated_at = excluded.updated_at";

const RECORD_NOTIFICATION: &str = "INSERT INTO order_notifications (order_id, kind, sent_at) VALUES ($1, $2, $3) \
    ON CONFLICT (order_id, kind) DO NOTHING";

const RECORD_TIMELINE: &str = "INSERT INTO order_timeline \
    (event_id, order_id, topic, service, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (event_id) DO NOTHING";

/// One timeline entry: an event of `S` that concerns `order_id`.
fn timeline<S: Stream>(order_id: &str, service: &str, event: &EventEnvelope<S::Event>) -> SqlWrite {
    SqlWrite::new(
        RECORD_TIMELINE,
        params![
            &event.event_id,
            order_id,
            S::EVENTS_TOPIC,
            service,
            event.payload.event_type(),
            &event.aggregate_id,
            event.version,
            event.occurred_at,
            &event.correlation_id,
            &event.causation_id,
            &event.command_id
        ],
    )
}

/// `order.events` onto the order row and the timeline.
pub fn project_order_view(event: &EventEnvelope<OrderEvent>) -> Vec<SqlWrite> {
    let mut writes = project_order(event);
    writes.push(timeline::<Order>(&event.aggregate_id, "order-svc", event));
    writes
}

/// `account.events`: the payment of each order.
pub fn project_payment(event: &EventEnvelope<AccountEvent>) -> Vec<SqlWrite> {
    let (order_id, status, amount_cents) = match &event.payload {
        AccountEvent::FundsDeposited { .. } => return vec![],
        AccountEvent::PaymentCaptured { order_id, amount_cents, .. } => (order_id, "CAPTURED", *amount_cents),
        AccountEvent::PaymentDeclined { order_id, amount_cents, .. } => (order_id, "DECLINED", *amount_cents),
        AccountEvent::PaymentRefunded { order_id, amount_cents, .. } => (order_id, "REFUNDED", *amount_cents),
    };
    vec![
        SqlWrite::new(UPSERT_PAYMENT, params![order_id, status, amount_cents, event.occurred_at]),
        timeline::<Account>(order_id, "payment-svc", event),
    ]
}

/// `shipment.events` (aggregate id = order id): the shipment of each order.
pub fn project_shipment(event: &EventEnvelope<ShipmentEvent>) -> Vec<SqlWrite> {
    let order_id = &event.aggregate_id;
    let (status, carrier, tracking_number) = match &event.payload {
        ShipmentEvent::ShipmentScheduled { carrier, tracking_number, .. } => ("SCHEDULED", Some(carrier), Some(tracking_number)),
        ShipmentEvent::ShipmentRejected { .. } => ("REJECTED", None, None),
        ShipmentEvent::ShipmentCancelled { .. } => ("CANCELLED", None, None),
        ShipmentEvent::ShipmentDispatched { .. } => ("DISPATCHED", None, None),
        ShipmentEvent::ShipmentDelivered { .. } => ("DELIVERED", None, None),
    };
    vec![
        SqlWrite::new(UPSERT_SHIPMENT, params![order_id, status, carrier, tracking_number, event.occurred_at]),
        timeline::<Shipment>(order_id, "shipping-svc", event),
    ]
}

/// `notification.events`: which notifications each order caused.
pub fn project_notification(event: &EventEnvelope<NotificationEvent>) -> Vec<SqlWrite> {
    match &event.payload {
        NotificationEvent::PreferencesSet { .. } => vec![],
        NotificationEvent::NotificationSent { order_id, kind, .. } => {
            let kind: &'static str = kind.into();
            vec![
                SqlWrite::new(RECORD_NOTIFICATION, params![order_id, kind, event.occurred_at]),
                timeline::<Notification>(order_id, "notify-svc", event),
            ]
        }
    }
}

/// `stock.events`: only the timeline (the order's own events already carry its reservations).
pub fn project_stock(event: &EventEnvelope<StockEvent>) -> Vec<SqlWrite> {
    match &event.payload {
        StockEvent::StockRestocked { .. } => vec![],
        StockEvent::StockReserved { order_id, .. }
        | StockEvent::StockReservationRejected { order_id, .. }
        | StockEvent::StockReleased { order_id, .. }
        | StockEvent::StockShipped { order_id, .. } => vec![timeline::<Stock>(order_id, "inventory-svc", event)],
    }
}

/// The `orders` projection: the order view joined with every other stream.
pub fn projection(registry_url: &str) -> Result<Projection, CodecError> {
    Projection::new(PROJECTION, &["orders", "order_payments", "order_shipments", "order_notifications", "order_timeline"])
        .from::<Order>(registry_url, project_order_view)?
        .from::<Account>(registry_url, project_payment)?
        .from::<Shipment>(registry_url, project_shipment)?
        .from::<Notification>(registry_url, project_notification)?
        .from::<Stock>(registry_url, project_stock)
}

pub const PROJECTION: &str = "orders";

// ---- Queries ----

/// `GET /orders/{id}[?wait_for=..&timeout_ms=..]`, `GET /orders?customer_id=&status=&limit=&cursor=`
/// and `GET /orders/{id}/timeline`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new()
        .routes(utoipa_axum::routes!(get_order))
        .routes(utoipa_axum::routes!(get_timeline))
        .routes(utoipa_axum::routes!(list_orders))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub cancellation_reason: Option<String>,
    pub cancellation_detail: Option<String>,
    pub currency: String,
    pub total_cents: i64,
    pub lines: Vec<OrderLine>,
    /// From payment-svc's events; absent until a payment is attempted.
    pub payment: Option<PaymentView>,
    /// From shipping-svc's events (or the order's confirmation); absent before scheduling.
    pub shipment: Option<ShipmentView>,
    /// Kinds of the notifications sent about this order, e.g. `ORDER_CONFIRMED`.
    pub notifications: Vec<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentView {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// `SCHEDULED`, `REJECTED`, `CANCELLED`, `DISPATCHED` or `DELIVERED`; `SCHEDULED` when only
    /// the order's confirmation is known so far.
    pub status: String,
}

pub const DEFAULT_WAIT_MS: u64 = 5000;
pub const MAX_WAIT_MS: u64 = 60_000;

const SELECT_VIEW: &str = "SELECT o.order_id, o.customer_id, o.status, o.cancellation_reason, o.cancellation_detail, \
    o.currency, o.total_cents, o.lines_json, o.carrier, o.tracking_number, o.created_at, o.updated_at, o.version, \
    p.status AS payment_status, p.amount_cents AS payment_amount_cents, \
    s.status AS shipment_status, s.carrier AS shipment_carrier, s.tracking_number AS shipment_tracking_number \
    FROM orders o LEFT JOIN order_payments p ON p.order_id = o.order_id LEFT JOIN order_shipments s ON s.order_id = o.order_id";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetOrderParams {
    /// Comma-separated statuses to wait for, e.g. `CONFIRMED,CANCELLED`.
    pub wait_for: Option<String>,
    /// How long to wait for them: at most 60000, default 5000.
    #[param(maximum = 60000)]
    pub timeout_ms: Option<u64>,
}

/// Header set on a `wait_for` answer when the view did not reach a wanted status in time.
pub const WAIT_TIMED_OUT_HEADER: &str = "x-wait-timed-out";

/// The order view. With `wait_for`, blocks until the view reaches one of those statuses or
/// `timeout_ms` passes; on timeout it answers 200 with the view as it is and `x-wait-timed-out: true`.
#[utoipa::path(get, path = "/orders/{id}", tag = "queries",
    params(("id" = String, Path, description = "The order"), GetOrderParams),
    responses(
        (status = 200, description = "The order view", body = OrderView,
            headers(("x-wait-timed-out" = String, description = "`true` when `wait_for` timed out"))),
        (status = 400, description = "Unknown status in `wait_for`, or `timeout_ms` too long", body = ApiError),
        (status = 404, description = "No such order (yet, when the wait timed out)", body = ApiError)))]
pub async fn get_order(
    State(ReadDb(pool)): State<ReadDb>,
    State(progress): State<ProjectionProgress>,
    Path(order_id): Path<String>,
    params: Result<Query<GetOrderParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let Some(wanted) = params.wait_for.as_deref().map(parse_statuses).transpose()? else {
        return match load_order(&pool, &order_id).await? {
            Some(view) => Ok(Json(view).into_response()),
            None => Err(ApiError::not_found("order", &order_id)),
        };
    };
    let timeout_ms = params.timeout_ms.unwrap_or(DEFAULT_WAIT_MS);
    if timeout_ms > MAX_WAIT_MS {
        return Err(ApiError::bad_request(format!("timeout_ms must be at most {MAX_WAIT_MS}")));
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    // Re-read the row only when the projection has committed a batch: no polling.
    let mut changes = progress.0.get(PROJECTION).cloned();
    loop {
        if let Some(changes) = changes.as_mut() {
            changes.borrow_and_update();
        }
        let view = load_order(&pool, &order_id).await?;
        if let Some(view) = &view
            && wanted.contains(&view.status)
        {
            return Ok(Json(view).into_response());
        }
        let committed = match changes.as_mut() {
            Some(changes) => matches!(tokio::time::timeout_at(deadline, changes.changed()).await, Ok(Ok(()))),
            None => {
                tokio::time::sleep_until(deadline).await;
                false
            }
        };
        if !committed {
            return match view {
                Some(view) => Ok(([(WAIT_TIMED_OUT_HEADER, "true")], Json(view)).into_response()),
                None => Err(ApiError::not_found("order", &order_id)),
            };
        }
    }
}

fn parse_statuses(list: &str) -> Result<Vec<String>, ApiError> {
    let statuses: Vec<String> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    if statuses.is_empty() {
        return Err(ApiError::bad_request("wait_for needs at least one status"));
    }
    for status in &statuses {
        if !ORDER_STATUSES.contains(&status.as_str()) {
            return Err(ApiError::bad_request(format!("unknown status {status:?}; one of {}", ORDER_STATUSES.join(", "))));
        }
    }
    Ok(statuses)
}

const ORDER_STATUSES: [&str; 7] = ["PENDING", "STOCK_RESERVED", "PAID", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];

pub async fn load_order(pool: &AnyPool, order_id: &str) -> Result<Option<OrderView>, sqlx::Error> {
    let query = format!("{SELECT_VIEW} WHERE o.order_id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(query)).bind(order_id).fetch_optional(pool).await? else { return Ok(None) };
    let mut view = order_view(&row)?;
    view.notifications =
        sqlx::query_scalar("SELECT kind FROM order_notifications WHERE order_id = $1 ORDER BY sent_at, kind").bind(order_id).fetch_all(pool).await?;
    Ok(Some(view))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOrdersParams {
    pub customer_id: Option<String>,
    /// One order status, e.g. `CONFIRMED`.
    pub status: Option<String>,
    /// Orders per page: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Orders oldest first, filtered by customer and/or status, one keyset page at a time
/// (`created_at, order_id` after the cursor), so pages stay stable while orders are added.
#[utoipa::path(get, path = "/orders", tag = "queries",
    params(ListOrdersParams),
    responses(
        (status = 200, description = "One page of orders, oldest first", body = OrderPage),
        (status = 400, description = "Unknown status, `limit` out of range or invalid cursor", body = ApiError)))]
pub async fn list_orders(
    State(ReadDb(pool)): State<ReadDb>,
    params: Result<Query<ListOrdersParams>, QueryRejection>,
) -> Result<Json<OrderPage>, ApiError> {
    let Query(params) = params?;
    let present = |value: Option<String>| value.filter(|v| !v.is_empty());
    let (customer_id, status) = (present(params.customer_id), present(params.status));
    if let Some(status) = &status {
        parse_statuses(status)?;
    }
    let limit = runtime::http::limit(params.limit)?;
    let after = present(params.cursor).map(|cursor| decode_cursor(&cursor)).transpose()?;
    // Absent filters compare a NULL parameter: `$1 IS NULL OR ...` keeps one portable query.
    let query = format!(
        "{SELECT_VIEW} WHERE ($1 IS NULL OR o.customer_id = $1) AND ($2 IS NULL OR o.status = $2) \
         AND ($3 IS NULL OR o.created_at > $3 OR (o.created_at = $3 AND o.order_id > $4)) \
         ORDER BY o.created_at, o.order_id LIMIT $5"
    );
    let (after_created, after_id) = after.map_or((None, None), |(created, id)| (Some(created), Some(id)));
    let rows = sqlx::query(sqlx::AssertSqlSafe(query))
        .bind(customer_id)
        .bind(status)
        .bind(after_created)
        .bind(after_id)
        .bind(limit + 1)
        .fetch_all(&pool)
        .await?;
    let more = rows.len() as i64 > limit;
    let mut orders = rows.iter().take(limit as usize).map(order_view).collect::<Result<Vec<_>, _>>()?;
    for order in &mut orders {
        order.notifications = sqlx::query_scalar("SELECT kind FROM order_notifications WHERE order_id = $1 ORDER BY sent_at, kind")
            .bind(&order.order_id)
            .fetch_all(&pool)
            .await?;
    }
    let next_cursor = more.then(|| orders.last().map(|last| encode_cursor(last.created_at, &last.order_id))).flatten();
    Ok(Json(OrderPage { orders, next_cursor }))
}

/// Opaque to clients: hex of `created_at:order_id`.
fn encode_cursor(created_at: i64, order_id: &str) -> String {
    format!("{created_at}:{order_id}").bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(cursor: &str) -> Result<(i64, String), ApiError> {
    let invalid = || ApiError::bad_request("invalid cursor");
    if !cursor.len().is_multiple_of(2) || !cursor.is_ascii() {
        return Err(invalid());
    }
    let bytes =
        (0..cursor.len()).step_by(2).map(|i| u8::from_str_radix(&cursor[i..i + 2], 16)).collect::<Result<Vec<u8>, _>>().map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (created_at, order_id) = text.split_once(':').ok_or_else(invalid)?;
    Ok((created_at.parse().map_err(|_| invalid())?, order_id.to_string()))
}

fn order_view(row: &AnyRow) -> Result<OrderView, sqlx::Error> {
    let lines_json: String = row.try_get("lines_json")?;
    let lines = serde_json::from_str(&lines_json).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    let confirmed_carrier: Option<String> = row.try_get("carrier")?;
    let confirmed_tracking: Option<String> = row.try_get("tracking_number")?;
    let shipment_status: Option<String> = row.try_get("shipment_status")?;
    let shipment = match shipment_status {
        Some(status) => Some(ShipmentView {
            carrier: row.try_get::<Option<String>, _>("shipment_carrier")?.or(confirmed_carrier),
            tracking_number: row.try_get::<Option<String>, _>("shipment_tracking_number")?.or(confirmed_tracking),
            status,
        }),
        // The order's confirmation was projected before shipping-svc's event.
        None => confirmed_carrier.zip(confirmed_tracking).map(|(carrier, tracking_number)| ShipmentView {
            carrier: Some(carrier),
            tracking_number: Some(tracking_number),
            status: "SCHEDULED".into(),
        }),
    };
    let payment_status: Option<String> = row.try_get("payment_status")?;
    let payment = match payment_status {
        Some(status) => Some(PaymentView { status, amount_cents: row.try_get("payment_amount_cents")? }),
        None => None,
    };
    Ok(OrderView {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        cancellation_reason: row.try_get("cancellation_reason")?,
        cancellation_detail: row.try_get("cancellation_detail")?,
        currency: row.try_get("currency")?,
        total_cents: row.try_get("total_cents")?,
        lines,
        payment,
        shipment,
        notifications: vec![],
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub event_id: String,
    pub service: String,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: String,
    pub version: i64,
    /// Epoch milliseconds.
    pub occurred_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub command_id: String,
}

type TimelineRow = (String, String, String, String, String, i64, i64, String, String, String);

/// Every event about the order from every topic, in causal order: by time, then topic and
/// version, and an event never before the event that caused it (clocks of equal milliseconds
/// would otherwise order a reaction before its cause).
#[utoipa::path(get, path = "/orders/{id}/timeline", tag = "queries",
    params(("id" = String, Path, description = "The order")),
    responses(
        (status = 200, description = "The order's events from every topic, in causal order", body = Vec<TimelineEntry>),
        (status = 404, description = "No event about this order yet", body = ApiError)))]
pub async fn get_timeline(State(ReadDb(pool)): State<ReadDb>, Path(order_id): Path<String>) -> Result<Json<Vec<TimelineEntry>>, ApiError> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id \
         FROM order_timeline WHERE order_id = $1 ORDER BY occurred_at, topic, aggregate_id, version",
    )
    .bind(&order_id)
    .fetch_all(&pool)
    .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found("order", &order_id));
    }
    let entries =
        rows.into_iter()
            .map(|(event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id)| {
                TimelineEntry { event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id }
            })
            .collect();
    Ok(Json(causal_order(entries)))
}

/// Keeps the given order but moves each event after its cause when the cause is listed too.
fn causal_order(mut pending: Vec<TimelineEntry>) -> Vec<TimelineEntry> {
    let listed: std::collections::HashSet<String> = pending.iter().map(|e| e.event_id.clone()).collect();
    let mut emitted = std::collections::HashSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|e| !listed.contains(&e.causation_id) || emitted.contains(&e.causation_id) || e.causation_id == e.event_id)
            // A cycle cannot happen with real events; take the earliest rather than loop forever.
            .unwrap_or(0);
        let entry = pending.remove(ready);
        emitted.insert(entry.event_id.clone());
        ordered.push(entry);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::order::{Address, CancellationReason};
    use runtime::testing::{apply, envelope, read_model_db};

    fn lines() -> Vec<OrderLine> {
        vec![OrderLine { sku: "SKU-A".into(), quantity: 2, unit_price_cents: 1500 }]
    }

    fn placed() -> OrderEvent {
        OrderEvent::OrderPlaced {
            customer_id: "c1".into(),
            lines: lines(),
            currency: "EUR".into(),
            shipping_address: Address {
                name: "Ada".into(),
                street: "1 Way".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
            total_cents: 3000,
        }
    }

    fn happy_path() -> Vec<OrderEvent> {
        vec![
            placed(),
            OrderEvent::OrderLineReserved { sku: "SKU-A".into(), quantity: 2 },
            OrderEvent::OrderStockReserved { customer_id: "c1".into(), total_cents: 3000, currency: "EUR".into() },
            OrderEvent::OrderPaid {
                customer_id: "c1".into(),
                amount_cents: 3000,
                currency: "EUR".into(),
                shipping_address: match placed() {
                    OrderEvent::OrderPlaced { shipping_address, .. } => shipping_address,
                    _ => unreachable!(),
                },
                lines: lines(),
            },
            OrderEvent::OrderConfirmed { customer_id: "c1".into(), carrier: "DHL".into(), tracking_number: "T1".into() },
            OrderEvent::OrderShipped { customer_id: "c1".into() },
            OrderEvent::OrderDelivered { customer_id: "c1".into() },
        ]
    }

    #[test]
    fn order_placed_upserts_the_whole_row() {
        let writes = project_order(&envelope("o1", 1, placed()));
        assert_eq!(writes.len(), 1);
        assert!(writes[0].sql.starts_with("INSERT INTO orders"));
        assert!(writes[0].sql.contains("ON CONFLICT (order_id) DO UPDATE"));
        assert_eq!(
            writes[0].params,
            params![
                "o1",
                "c1",
                "PENDING",
                "EUR",
                3000_i64,
                r#"[{"quantity":2,"sku":"SKU-A","unit_price_cents":1500}]"#,
                1_700_000_000_001_i64,
                1_700_000_000_001_i64,
                1_i64
            ]
        );
    }

    #[test]
    fn status_events_update_status_time_and_version() {
        let writes = project_order(&envelope("o1", 4, OrderEvent::OrderShipped { customer_id: "c1".into() }));
        assert_eq!(writes, [SqlWrite::new(SET_STATUS, params!["SHIPPED", 1_700_000_000_004_i64, 4_i64, "o1"])]);
    }

    #[test]
    fn cancellation_records_reason_name_and_detail() {
        let cancelled = OrderEvent::OrderCancelled {
            customer_id: "c1".into(),
            reason: CancellationReason::OutOfStock,
            detail: "sku SKU-A: requested 2, available 1".into(),
            lines: lines(),
        };
        let writes = project_order(&envelope("o1", 2, cancelled));
        assert_eq!(writes[0].sql, SET_CANCELLED);
        assert_eq!(writes[0].params[..3], params!["CANCELLED", "OUT_OF_STOCK", "sku SKU-A: requested 2, available 1"]);
    }

    #[test]
    fn every_write_binds_as_many_values_as_it_has_placeholders() {
        let mut events = happy_path();
        events.push(OrderEvent::OrderCancelled {
            customer_id: "c1".into(),
            reason: CancellationReason::CustomerRequest,
            detail: String::new(),
            lines: lines(),
        });
        for (index, event) in events.into_iter().enumerate() {
            for write in project_order(&envelope("o1", index as i64 + 1, event)) {
                let highest_placeholder = (1..=20).rev().find(|n| write.sql.contains(&format!("${n}"))).unwrap_or(0);
                assert_eq!(highest_placeholder, write.params.len(), "{}", write.sql);
            }
        }
    }

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

    #[tokio::test]
    async fn the_projected_happy_path_reads_back_through_the_routes() {
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        for (index, event) in happy_path().into_iter().enumerate() {
            apply(&pool, &project_order(&envelope("o1", index as i64 + 1, event))).await;
        }
        let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
        assert_eq!(
            order,
            OrderView {
                order_id: "o1".into(),
                customer_id: "c1".into(),
                status: "DELIVERED".into(),
                cancellation_reason: None,
                cancellation_detail: None,
                currency: "EUR".into(),
                total_cents: 3000,
                lines: lines(),
                payment: None,
                shipment: Some(ShipmentView { carrier: Some("DHL".into()), tracking_number: Some("T1".into()), status: "SCHEDULED".into() }),
                notifications: vec![],
                created_at: 1_700_000_000_001,
                updated_at: 1_700_000_000_007,
                version: 7,
            }
        );

        let query = |customer_id: Option<&str>, limit: Option<i64>| {
            Ok(Query(ListOrdersParams { customer_id: customer_id.map(Into::into), limit, ..Default::default() }))
        };
        let Json(listed) = list_orders(State(ReadDb(pool.clone())), query(Some("c1"), None)).await.unwrap();
        assert_eq!(listed.orders, [order]);
        assert_eq!(listed.next_cursor, None);
        let Json(none) = list_orders(State(ReadDb(pool.clone())), query(Some("c2"), None)).await.unwrap();
        assert_eq!(none.orders, []);
        for (customer_id, limit) in [(Some("c1"), Some(0)), (Some("c1"), Some(1001))] {
            let error = list_orders(State(ReadDb(pool.clone())), query(customer_id, limit)).await.unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[tokio::test]
    async fn a_cancelled_order_shows_why_and_an_unknown_one_is_not_found() {
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        apply(&pool, &project_order(&envelope("o1", 1, placed()))).await;
        let cancelled = OrderEvent::OrderCancelled {
            customer_id: "c1".into(),
            reason: CancellationReason::PaymentDeclined,
            detail: "INSUFFICIENT_FUNDS".into(),
            lines: lines(),
        };
        apply(&pool, &project_order(&envelope("o1", 2, cancelled))).await;
        let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
        assert_eq!(order.status, "CANCELLED");
        assert_eq!(order.cancellation_reason.as_deref(), Some("PAYMENT_DECLINED"));
        assert_eq!(order.cancellation_detail.as_deref(), Some("INSUFFICIENT_FUNDS"));
        assert_eq!(order.shipment, None);

        let error = get_order(State(ReadDb(pool)), State(ProjectionProgress::default()), Path("nope".into()), Ok(Query(GetOrderParams::default())))
            .await
            .unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn other_streams_join_in_whatever_order_they_arrive_and_pages_follow_the_cursor() {
        use contracts::account::AccountEvent;
        use contracts::notification::{Channel, NotificationEvent, NotificationKind};
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        // The payment arrives before the order it belongs to.
        let captured = AccountEvent::PaymentCaptured { order_id: "o1".into(), amount_cents: 3000, currency: "EUR".into() };
        apply(&pool, &project_payment(&envelope("c1", 2, captured))).await;
        apply(&pool, &project_order_view(&envelope("o1", 1, placed()))).await;
        let scheduled = ShipmentEvent::ShipmentScheduled {
            customer_id: "c1".into(),
            carrier: "DHL".into(),
            tracking_number: "T1".into(),
            destination_country: "DE".into(),
            lines: vec![],
        };
        apply(&pool, &project_shipment(&envelope("o1", 1, scheduled))).await;
        apply(&pool, &project_shipment(&envelope("o1", 2, ShipmentEvent::ShipmentDispatched { customer_id: "c1".into(), lines: vec![] }))).await;
        let sent = NotificationEvent::NotificationSent {
            order_id: "o1".into(),
            kind: NotificationKind::OrderConfirmed,
            channel: Channel::Email,
            recipient: "a@b".into(),
            message: "hi".into(),
        };
        apply(&pool, &project_notification(&envelope("c1", 3, sent))).await;
        let order = load_order(&pool, "o1").await.unwrap().expect("order o1");
        assert_eq!(order.payment, Some(PaymentView { status: "CAPTURED".into(), amount_cents: 3000 }));
        assert_eq!(
            order.shipment,
            Some(ShipmentView { carrier: Some("DHL".into()), tracking_number: Some("T1".into()), status: "DISPATCHED".into() })
        );
        assert_eq!(order.notifications, ["ORDER_CONFIRMED"]);
        let Json(timeline) = get_timeline(State(ReadDb(pool.clone())), Path("o1".into())).await.unwrap();
        // The test kit names events `<aggregate>-e<version>`, so the order's and the shipment's
        // first events share the id `o1-e1` and one entry is kept; real event ids are unique.
        assert_eq!(timeline.len(), 4);

        for n in 2..=3 {
            apply(&pool, &project_order_view(&envelope(&format!("o{n}"), 1, placed()))).await;
        }
        let page = |cursor: Option<String>| Ok(Query(ListOrdersParams { customer_id: Some("c1".into()), limit: Some(2), cursor, status: None }));
        let Json(first) = list_orders(State(ReadDb(pool.clone())), page(None)).await.unwrap();
        assert_eq!(first.orders.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["o1", "o2"]);
        let Json(second) = list_orders(State(ReadDb(pool.clone())), page(first.next_cursor)).await.unwrap();
        assert_eq!(second.orders.iter().map(|o| o.order_id.as_str()).collect::<Vec<_>>(), ["o3"]);
        assert_eq!(second.next_cursor, None);
        let error = list_orders(State(ReadDb(pool.clone())), page(Some("zz".into()))).await.unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
        let by_status = Ok(Query(ListOrdersParams { status: Some("NOPE".into()), ..Default::default() }));
        assert_eq!(list_orders(State(ReadDb(pool)), by_status).await.unwrap_err().status, axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_reaction_never_precedes_its_cause_even_in_the_same_millisecond() {
        let entry = |id: &str, topic: &str, cause: &str| TimelineEntry {
            event_id: id.into(),
            service: String::new(),
            topic: topic.into(),
            event_type: String::new(),
            aggregate_id: String::new(),
            version: 1,
            occurred_at: 1,
            correlation_id: String::new(),
            causation_id: cause.into(),
            command_id: String::new(),
        };
        // Sorted by topic, the payment (account.events) would come before the order event causing it.
        let ordered = causal_order(vec![entry("paid", "account.events", "reserved"), entry("reserved", "order.events", "cmd")]);
        assert_eq!(ordered.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["reserved", "paid"]);
    }
}

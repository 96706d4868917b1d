//! The order view's query routes: `GET /orders/{id}[?wait_for=..&timeout_ms=..]`,
//! `GET /orders?customer_id=&status=&limit=&cursor=` and `GET /orders/{id}/timeline`, with their
//! OpenAPI annotations, and the SQL reads behind them (also those of the event streams).
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use contracts::{Stream, order::Order};
use runtime::{
    KeyProgress,
    http::{ApiError, ProjectionProgress, ReadDb},
};
use serde::Deserialize;
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::IntoParams;

use super::PROJECTION;
use super::view::{CancellationRequestView, OrderPage, OrderView, PaymentView, ShipmentView, TimelineEntry, TrackingView};

pub const DEFAULT_WAIT_MS: u64 = 5000;
pub const MAX_WAIT_MS: u64 = 60_000;

const SELECT_VIEW: &str = "SELECT o.order_id, o.customer_id, o.status, o.cancellation_reason, o.cancellation_detail, \
    o.cancellation_request, o.cancellation_request_reason, o.cancellation_request_detail, o.cancellation_refusal, \
    o.currency, o.total_cents, o.lines_json, o.carrier, o.tracking_number, o.created_at, o.updated_at, o.version, \
    p.status AS payment_status, p.amount_cents AS payment_amount_cents, \
    s.status AS shipment_status, s.carrier AS shipment_carrier, s.tracking_number AS shipment_tracking_number, \
    s.tracking_status, s.tracking_location, s.tracking_at \
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
    // Re-read the row only when the projection has committed one of the order's own events:
    // no polling. The status comes from those alone (`project_order_view`).
    let mut changes = progress.0.get(PROJECTION).cloned().map(|commits| KeyProgress::new(commits, Order::EVENTS_TOPIC, &order_id));
    loop {
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

fn tracking_view(row: &AnyRow) -> Result<Option<TrackingView>, sqlx::Error> {
    let Some(status) = row.try_get::<Option<String>, _>("tracking_status")? else { return Ok(None) };
    Ok(Some(TrackingView {
        status,
        location: row.try_get::<Option<String>, _>("tracking_location")?.unwrap_or_default(),
        at: row.try_get::<Option<i64>, _>("tracking_at")?.unwrap_or_default(),
    }))
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
            tracking: tracking_view(row)?,
        }),
        // The order's confirmation was projected before shipping-svc's event.
        None => confirmed_carrier.zip(confirmed_tracking).map(|(carrier, tracking_number)| ShipmentView {
            carrier: Some(carrier),
            tracking_number: Some(tracking_number),
            status: "SCHEDULED".into(),
            tracking: None,
        }),
    };
    let payment_status: Option<String> = row.try_get("payment_status")?;
    let payment = match payment_status {
        Some(status) => Some(PaymentView { status, amount_cents: row.try_get("payment_amount_cents")? }),
        None => None,
    };
    let cancellation_request = match row.try_get::<Option<String>, _>("cancellation_request")? {
        Some(status) => Some(CancellationRequestView {
            status,
            reason: row.try_get("cancellation_request_reason")?,
            detail: row.try_get("cancellation_request_detail")?,
            refusal: row.try_get("cancellation_refusal")?,
        }),
        None => None,
    };
    Ok(OrderView {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        cancellation_reason: row.try_get("cancellation_reason")?,
        cancellation_detail: row.try_get("cancellation_detail")?,
        cancellation_request,
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
    let entries = load_timeline(&pool, &order_id).await?;
    if entries.is_empty() {
        return Err(ApiError::not_found("order", &order_id));
    }
    Ok(Json(entries))
}

/// The order's timeline in the order `GET /orders/{id}/timeline` answers with (empty when
/// nothing about the order is projected yet).
pub async fn load_timeline(pool: &AnyPool, order_id: &str) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    let rows: Vec<TimelineRow> = sqlx::query_as(
        "SELECT event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id \
         FROM order_timeline WHERE order_id = $1 ORDER BY occurred_at, topic, aggregate_id, version",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await?;
    let entries =
        rows.into_iter()
            .map(|(event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id)| {
                TimelineEntry { event_id, service, topic, event_type, aggregate_id, version, occurred_at, correlation_id, causation_id, command_id }
            })
            .collect();
    Ok(causal_order(entries))
}

/// Every order of the customer, oldest first, with its notifications (two queries, whatever
/// the number of orders).
pub async fn load_customer_orders(pool: &AnyPool, customer_id: &str) -> Result<Vec<OrderView>, sqlx::Error> {
    let query = format!("{SELECT_VIEW} WHERE o.customer_id = $1 ORDER BY o.created_at, o.order_id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(query)).bind(customer_id).fetch_all(pool).await?;
    let kinds = sqlx::query_as(
        "SELECT n.order_id, n.kind FROM order_notifications n JOIN orders o ON o.order_id = n.order_id \
         WHERE o.customer_id = $1 ORDER BY n.order_id, n.sent_at, n.kind",
    )
    .bind(customer_id)
    .fetch_all(pool)
    .await?;
    views_with_notifications(&rows, kinds)
}

/// The `limit` most recent orders, newest first.
pub async fn load_recent_orders(pool: &AnyPool, limit: i64) -> Result<Vec<OrderView>, sqlx::Error> {
    let query = format!("{SELECT_VIEW} ORDER BY o.created_at DESC, o.order_id DESC LIMIT $1");
    let rows = sqlx::query(sqlx::AssertSqlSafe(query)).bind(limit).fetch_all(pool).await?;
    let kinds = sqlx::query_as(
        "SELECT n.order_id, n.kind FROM order_notifications n \
         JOIN (SELECT order_id FROM orders ORDER BY created_at DESC, order_id DESC LIMIT $1) recent ON recent.order_id = n.order_id \
         ORDER BY n.order_id, n.sent_at, n.kind",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    views_with_notifications(&rows, kinds)
}

/// The views of `rows`, each with its notification kinds out of `(order_id, kind)` pairs.
fn views_with_notifications(rows: &[AnyRow], kinds: Vec<(String, String)>) -> Result<Vec<OrderView>, sqlx::Error> {
    let mut orders = rows.iter().map(order_view).collect::<Result<Vec<_>, _>>()?;
    let mut by_order: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (order_id, kind) in kinds {
        by_order.entry(order_id).or_default().push(kind);
    }
    for order in &mut orders {
        order.notifications = by_order.remove(&order.order_id).unwrap_or_default();
    }
    Ok(orders)
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

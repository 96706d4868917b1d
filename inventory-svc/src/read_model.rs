//! The stock view: `stock` (one row per sku) and `reservations` (one row per order and sku),
//! migration `migrations/0001_stock.sql`, projected from `stock.events`; and its query routes.
//!
//! `updated_at` is epoch milliseconds taken from the events' `occurred_at`. A SKU's
//! `available` quantity is `on_hand - reserved`, in every answer and in `GET /stock?below=N`.
//! A SKU is low from its `StockLow` to its `StockReplenished` (`migrations/0002_low_stock.sql`).
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
};
use contracts::EventEnvelope;
use contracts::stock::StockEvent;
use runtime::http::{ApiError, ApiRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::{IntoParams, ToSchema};

use crate::stock::ReservationStatus;

/// Every stock event changes the counters by some amount, so a single upsert that adds
/// deltas serves them all; the first event of a sku creates its row from the deltas.
const ADD_TO_STOCK: &str = "INSERT INTO stock \
    (sku, on_hand, reserved, restocked_total, shipped_total, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (sku) DO UPDATE SET \
    on_hand = stock.on_hand + excluded.on_hand, \
    reserved = stock.reserved + excluded.reserved, \
    restocked_total = stock.restocked_total + excluded.restocked_total, \
    shipped_total = stock.shipped_total + excluded.shipped_total, \
    updated_at = excluded.updated_at";

// A threshold may be set before the SKU's first stock.
const SET_THRESHOLD: &str = "INSERT INTO stock \
    (sku, on_hand, reserved, restocked_total, shipped_total, updated_at, low_stock_threshold) VALUES ($1, 0, 0, 0, 0, $2, $3) \
    ON CONFLICT (sku) DO UPDATE SET low_stock_threshold = excluded.low_stock_threshold, updated_at = excluded.updated_at";

const MARK_LOW: &str = "UPDATE stock SET low_since = $1, updated_at = $1 WHERE sku = $2";

const CLEAR_LOW: &str = "UPDATE stock SET low_since = NULL, updated_at = $1 WHERE sku = $2";

const UPSERT_RESERVATION: &str = "INSERT INTO reservations (order_id, sku, quantity, status) \
    VALUES ($1, $2, $3, $4) \
    ON CONFLICT (order_id, sku) DO UPDATE SET quantity = excluded.quantity, status = excluded.status";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StockDelta {
    on_hand: i64,
    reserved: i64,
    restocked: i64,
    shipped: i64,
}

/// Projects one `stock.events` event onto `stock` and `reservations`.
pub fn project_stock(event: &EventEnvelope<StockEvent>) -> Vec<SqlWrite> {
    let sku = &event.aggregate_id;
    let at = event.occurred_at;
    let add = |delta: StockDelta| SqlWrite::new(ADD_TO_STOCK, params![sku, delta.on_hand, delta.reserved, delta.restocked, delta.shipped, at]);
    let reservation = |order_id: &String, quantity: i32, status: ReservationStatus| {
        SqlWrite::new(UPSERT_RESERVATION, params![order_id, sku, quantity, status.as_str()])
    };
    match &event.payload {
        StockEvent::StockRestocked { quantity } => {
            let quantity = i64::from(*quantity);
            vec![add(StockDelta { on_hand: quantity, restocked: quantity, ..StockDelta::default() })]
        }
        StockEvent::StockReserved { order_id, quantity } => vec![
            add(StockDelta { reserved: i64::from(*quantity), ..StockDelta::default() }),
            reservation(order_id, *quantity, ReservationStatus::Reserved),
        ],
        // Changes no counter, but makes the sku known: it was asked for.
        StockEvent::StockReservationRejected { order_id, requested, .. } => {
            vec![add(StockDelta::default()), reservation(order_id, *requested, ReservationStatus::Rejected)]
        }
        StockEvent::StockReleased { order_id, quantity } => vec![
            add(StockDelta { reserved: -i64::from(*quantity), ..StockDelta::default() }),
            reservation(order_id, *quantity, ReservationStatus::Released),
        ],
        StockEvent::StockShipped { order_id, quantity } => {
            let shipped = i64::from(*quantity);
            vec![
                add(StockDelta { on_hand: -shipped, reserved: -shipped, shipped, restocked: 0 }),
                reservation(order_id, *quantity, ReservationStatus::Shipped),
            ]
        }
        StockEvent::LowStockThresholdSet { threshold } => vec![SqlWrite::new(SET_THRESHOLD, params![sku, at, *threshold])],
        StockEvent::StockLow { .. } => vec![SqlWrite::new(MARK_LOW, params![at, sku])],
        StockEvent::StockReplenished { .. } => vec![SqlWrite::new(CLEAR_LOW, params![at, sku])],
    }
}

/// `GET /stock/{sku}`, `GET /stock?below=N&low=true&limit=` and `GET /reservations/{order_id}`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new()
        .routes(utoipa_axum::routes!(get_stock))
        .routes(utoipa_axum::routes!(list_stock_below))
        .routes(utoipa_axum::routes!(get_reservation))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StockView {
    pub sku: String,
    pub on_hand: i64,
    /// Units reserved for orders and not shipped or released yet.
    pub reserved: i64,
    /// `on_hand - reserved`.
    pub available: i64,
    /// The SKU's own low-stock threshold; `null` while inventory-svc's `LOW_STOCK_THRESHOLD`
    /// applies.
    pub low_stock_threshold: Option<i64>,
    /// A `StockLow` stands: available stock fell below the threshold and was not replenished.
    pub low: bool,
    /// When that `StockLow` happened (epoch milliseconds), while `low`.
    pub low_since: Option<i64>,
}

const STOCK_COLUMNS: &str = "sku, on_hand, reserved, low_stock_threshold, low_since";

fn stock_view(row: &AnyRow) -> Result<StockView, sqlx::Error> {
    let on_hand: i64 = row.try_get("on_hand")?;
    let reserved: i64 = row.try_get("reserved")?;
    let low_since: Option<i64> = row.try_get("low_since")?;
    Ok(StockView {
        sku: row.try_get("sku")?,
        on_hand,
        reserved,
        available: on_hand - reserved,
        low_stock_threshold: row.try_get("low_stock_threshold")?,
        low: low_since.is_some(),
        low_since,
    })
}

/// One SKU's stock. A SKU that was only ever asked for (a rejected reservation) has zeros.
#[utoipa::path(get, path = "/stock/{sku}", tag = "queries",
    params(("sku" = String, Path, description = "The SKU")),
    responses(
        (status = 200, description = "The SKU's stock", body = StockView),
        (status = 404, description = "No event about this SKU yet", body = ApiError)))]
pub async fn get_stock(State(ReadDb(pool)): State<ReadDb>, Path(sku): Path<String>) -> Result<Json<StockView>, ApiError> {
    let query = format!("SELECT {STOCK_COLUMNS} FROM stock WHERE sku = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(query)).bind(sku.clone()).fetch_optional(&pool).await? else {
        return Err(ApiError::not_found("sku", &sku));
    };
    Ok(Json(stock_view(&row)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StockBelowParams {
    /// Lists the SKUs whose available quantity (`on_hand - reserved`) is below this.
    #[param(minimum = 0)]
    pub below: Option<i64>,
    /// `true`: the SKUs with a standing low-stock alert; `false`: those without. At least one
    /// of `below` and `low` is required; with both, a SKU must match both.
    pub low: Option<bool>,
    /// At most this many SKUs: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The SKUs whose available quantity is below `below`, or that are (not) low, ordered by sku
/// (the first `limit`).
#[utoipa::path(get, path = "/stock", tag = "queries",
    params(StockBelowParams),
    responses(
        (status = 200, description = "The matching SKUs, by sku", body = Vec<StockView>),
        (status = 400, description = "neither `below` nor `low` given, `below` negative or not an integer, `low` not true or false, or `limit` out of range", body = ApiError)))]
pub async fn list_stock_below(
    State(ReadDb(pool)): State<ReadDb>,
    params: Result<Query<StockBelowParams>, QueryRejection>,
) -> Result<Json<Vec<StockView>>, ApiError> {
    let Query(params) = params?;
    if params.below.is_some_and(|below| below < 0) {
        return Err(ApiError::bad_request("below must be a non-negative integer"));
    }
    if params.below.is_none() && params.low.is_none() {
        return Err(ApiError::bad_request("give below=N, low=true or low=false"));
    }
    let limit = runtime::http::limit(params.limit)?;
    // Unset filters match every row, so one statement serves each combination.
    let query = format!(
        "SELECT {STOCK_COLUMNS} FROM stock WHERE ($1 IS NULL OR on_hand - reserved < $1) \
         AND ($2 IS NULL OR (low_since IS NOT NULL) = $2) ORDER BY sku LIMIT $3"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(query)).bind(params.below).bind(params.low).bind(limit).fetch_all(&pool).await?;
    Ok(Json(rows.iter().map(stock_view).collect::<Result<_, _>>()?))
}

/// An order's reservation: one line per SKU of the order that inventory has handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    pub order_id: String,
    /// The lines' status when they all have the same one, else `MIXED` (e.g. one line
    /// `REJECTED` and the others `RELEASED`).
    #[schema(example = "RESERVED")]
    pub status: String,
    /// By sku.
    pub lines: Vec<ReservationLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReservationLine {
    pub sku: String,
    /// The reserved quantity, or the requested one for a rejection.
    pub quantity: i64,
    /// `RESERVED`, `REJECTED`, `RELEASED` or `SHIPPED`.
    #[schema(example = "RESERVED")]
    pub status: String,
}

/// `status` of a reservation whose lines differ.
pub const MIXED: &str = "MIXED";

/// The order's reservation, from the `reservations` rows of its SKUs.
#[utoipa::path(get, path = "/reservations/{order_id}", tag = "queries",
    params(("order_id" = String, Path, description = "The order")),
    responses(
        (status = 200, description = "The order's reservation lines, by sku", body = ReservationView),
        (status = 404, description = "No reservation event about this order yet", body = ApiError)))]
pub async fn get_reservation(State(ReadDb(pool)): State<ReadDb>, Path(order_id): Path<String>) -> Result<Json<ReservationView>, ApiError> {
    let lines: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT sku, quantity, status FROM reservations WHERE order_id = $1 ORDER BY sku").bind(&order_id).fetch_all(&pool).await?;
    let Some((_, _, first_status)) = lines.first() else {
        return Err(ApiError::not_found("reservation for order", &order_id));
    };
    let status = if lines.iter().all(|(_, _, status)| status == first_status) { first_status.clone() } else { MIXED.into() };
    let lines = lines.into_iter().map(|(sku, quantity, status)| ReservationLine { sku, quantity, status }).collect();
    Ok(Json(ReservationView { order_id, status, lines }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::testing::envelope;

    #[test]
    fn a_restock_adds_to_on_hand_and_the_restocked_total_only() {
        let writes = project_stock(&envelope("SKU-A", 1, StockEvent::StockRestocked { quantity: 10 }));
        assert_eq!(writes, [SqlWrite::new(ADD_TO_STOCK, params!["SKU-A", 10_i64, 0_i64, 10_i64, 0_i64, 1_700_000_000_001_i64])]);
    }

    #[test]
    fn a_shipment_leaves_on_hand_and_reserved_and_records_the_reservation() {
        let writes = project_stock(&envelope("SKU-A", 3, StockEvent::StockShipped { order_id: "o1".into(), quantity: 4 }));
        assert_eq!(
            writes,
            [
                SqlWrite::new(ADD_TO_STOCK, params!["SKU-A", -4_i64, -4_i64, 0_i64, 4_i64, 1_700_000_000_003_i64]),
                SqlWrite::new(UPSERT_RESERVATION, params!["o1", "SKU-A", 4, "SHIPPED"]),
            ]
        );
    }

    #[test]
    fn thresholds_and_alerts_write_their_columns() {
        let at = |version: i64| 1_700_000_000_000 + version;
        let writes = project_stock(&envelope("SKU-A", 1, StockEvent::LowStockThresholdSet { threshold: 5 }));
        assert_eq!(writes, [SqlWrite::new(SET_THRESHOLD, params!["SKU-A", at(1), 5_i64])]);
        let writes = project_stock(&envelope("SKU-A", 4, StockEvent::StockLow { sku: "SKU-A".into(), available: 4, threshold: 5 }));
        assert_eq!(writes, [SqlWrite::new(MARK_LOW, params![at(4), "SKU-A"])]);
        let writes = project_stock(&envelope("SKU-A", 6, StockEvent::StockReplenished { sku: "SKU-A".into(), available: 9, threshold: 5 }));
        assert_eq!(writes, [SqlWrite::new(CLEAR_LOW, params![at(6), "SKU-A"])]);
    }

    #[test]
    fn reservation_events_write_their_status() {
        let cases = [
            (StockEvent::StockReserved { order_id: "o1".into(), quantity: 2 }, 2, "RESERVED"),
            (StockEvent::StockReservationRejected { order_id: "o1".into(), requested: 9, available: 1 }, 9, "REJECTED"),
            (StockEvent::StockReleased { order_id: "o1".into(), quantity: 2 }, 2, "RELEASED"),
        ];
        for (payload, quantity, status) in cases {
            let writes = project_stock(&envelope("SKU-A", 2, payload));
            assert_eq!(writes.len(), 2);
            assert_eq!(writes[1], SqlWrite::new(UPSERT_RESERVATION, params!["o1", "SKU-A", quantity, status]));
        }
    }
}

//! The order view: one row per order in `orders` (migration `migrations/0001_orders.sql`),
//! projected from `order.events`, and the query routes that read it.
//!
//! Timestamps (`created_at`, `updated_at`) are epoch milliseconds taken from the events'
//! `occurred_at`, both in the table and in the JSON answers.
use axum::{
    Json, Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    routing::get,
};
use contracts::EventEnvelope;
use contracts::order::{OrderEvent, OrderLine};
use runtime::http::{ApiError, QueryRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

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

const SET_STATUS: &str =
    "UPDATE orders SET status = $1, updated_at = $2, version = $3 WHERE order_id = $4";

const SET_CONFIRMED: &str = "UPDATE orders SET status = $1, carrier = $2, tracking_number = $3, \
    updated_at = $4, version = $5 WHERE order_id = $6";

const SET_CANCELLED: &str = "UPDATE orders SET status = $1, cancellation_reason = $2, cancellation_detail = $3, \
    updated_at = $4, version = $5 WHERE order_id = $6";

/// Projects one `order.events` event onto the `orders` table.
pub fn project_order(event: &EventEnvelope<OrderEvent>) -> Vec<SqlWrite> {
    let order_id = &event.aggregate_id;
    let at = event.occurred_at;
    let version = event.version;
    let status_write = |status: OrderStatus| {
        SqlWrite::new(SET_STATUS, params![status.as_str(), at, version, order_id])
    };
    let write = match &event.payload {
        OrderEvent::OrderPlaced {
            customer_id,
            lines,
            currency,
            total_cents,
            ..
        } => SqlWrite::new(
            INSERT_PLACED_ORDER,
            params![
                order_id,
                customer_id,
                OrderStatus::Pending.as_str(),
                currency,
                *total_cents,
                lines_json(lines),
                at,
                at,
                version
            ],
        ),
        OrderEvent::OrderLineReserved { .. } => {
            SqlWrite::new(TOUCH_ORDER, params![at, version, order_id])
        }
        OrderEvent::OrderStockReserved { .. } => status_write(OrderStatus::StockReserved),
        OrderEvent::OrderPaid { .. } => status_write(OrderStatus::Paid),
        OrderEvent::OrderConfirmed {
            carrier,
            tracking_number,
            ..
        } => SqlWrite::new(
            SET_CONFIRMED,
            params![
                OrderStatus::Confirmed.as_str(),
                carrier,
                tracking_number,
                at,
                version,
                order_id
            ],
        ),
        OrderEvent::OrderShipped { .. } => status_write(OrderStatus::Shipped),
        OrderEvent::OrderDelivered { .. } => status_write(OrderStatus::Delivered),
        OrderEvent::OrderCancelled { reason, detail, .. } => {
            let reason: &'static str = reason.into();
            SqlWrite::new(
                SET_CANCELLED,
                params![
                    OrderStatus::Cancelled.as_str(),
                    reason,
                    detail,
                    at,
                    version,
                    order_id
                ],
            )
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

/// `GET /orders/{id}` and `GET /orders?customer_id=..[&limit=..]`.
pub fn routes() -> QueryRoutes {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/orders", get(list_orders))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub cancellation_reason: Option<String>,
    pub cancellation_detail: Option<String>,
    pub currency: String,
    pub total_cents: i64,
    pub lines: Vec<OrderLine>,
    /// Present once the order is confirmed.
    pub shipment: Option<ShipmentView>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentView {
    pub carrier: String,
    pub tracking_number: String,
}

pub const DEFAULT_LIST_LIMIT: i64 = 100;
pub const MAX_LIST_LIMIT: i64 = 1000;

pub async fn get_order(
    State(ReadDb(pool)): State<ReadDb>,
    Path(order_id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    // `concat!` takes only literals, so each query spells out the column list `order_view` reads.
    const QUERY: &str = "SELECT order_id, customer_id, status, cancellation_reason, cancellation_detail, \
        currency, total_cents, lines_json, carrier, tracking_number, created_at, updated_at, version FROM orders \
        WHERE order_id = $1";
    let row = sqlx::query(QUERY)
        .bind(order_id.clone())
        .fetch_optional(&pool)
        .await?;
    match row {
        Some(row) => Ok(Json(order_view(&row)?)),
        None => Err(ApiError::not_found("order", &order_id)),
    }
}

#[derive(Debug, Deserialize)]
pub struct ListOrdersParams {
    pub customer_id: Option<String>,
    pub limit: Option<i64>,
}

/// The customer's orders, oldest first.
pub async fn list_orders(
    State(ReadDb(pool)): State<ReadDb>,
    params: Result<Query<ListOrdersParams>, QueryRejection>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    const QUERY: &str = "SELECT order_id, customer_id, status, cancellation_reason, cancellation_detail, \
        currency, total_cents, lines_json, carrier, tracking_number, created_at, updated_at, version FROM orders \
        WHERE customer_id = $1 ORDER BY created_at, order_id LIMIT $2";
    let Query(params) = params.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let customer_id = params
        .customer_id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::bad_request("query parameter customer_id is required"))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIST_LIMIT}"
        )));
    }
    let rows = sqlx::query(QUERY)
        .bind(customer_id)
        .bind(limit)
        .fetch_all(&pool)
        .await?;
    let orders = rows.iter().map(order_view).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(orders))
}

fn order_view(row: &AnyRow) -> Result<OrderView, sqlx::Error> {
    let lines_json: String = row.try_get("lines_json")?;
    let lines =
        serde_json::from_str(&lines_json).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    let carrier: Option<String> = row.try_get("carrier")?;
    let tracking_number: Option<String> = row.try_get("tracking_number")?;
    Ok(OrderView {
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        status: row.try_get("status")?,
        cancellation_reason: row.try_get("cancellation_reason")?,
        cancellation_detail: row.try_get("cancellation_detail")?,
        currency: row.try_get("currency")?,
        total_cents: row.try_get("total_cents")?,
        lines,
        shipment: carrier
            .zip(tracking_number)
            .map(|(carrier, tracking_number)| ShipmentView {
                carrier,
                tracking_number,
            }),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::order::{Address, CancellationReason};
    use runtime::testing::{apply, envelope, read_model_db};

    fn lines() -> Vec<OrderLine> {
        vec![OrderLine {
            sku: "SKU-A".into(),
            quantity: 2,
            unit_price_cents: 1500,
        }]
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
            OrderEvent::OrderLineReserved {
                sku: "SKU-A".into(),
                quantity: 2,
            },
            OrderEvent::OrderStockReserved {
                customer_id: "c1".into(),
                total_cents: 3000,
                currency: "EUR".into(),
            },
            OrderEvent::OrderPaid {
                customer_id: "c1".into(),
                amount_cents: 3000,
                currency: "EUR".into(),
                shipping_address: match placed() {
                    OrderEvent::OrderPlaced {
                        shipping_address, ..
                    } => shipping_address,
                    _ => unreachable!(),
                },
                lines: lines(),
            },
            OrderEvent::OrderConfirmed {
                customer_id: "c1".into(),
                carrier: "DHL".into(),
                tracking_number: "T1".into(),
            },
            OrderEvent::OrderShipped {
                customer_id: "c1".into(),
            },
            OrderEvent::OrderDelivered {
                customer_id: "c1".into(),
            },
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
        let writes = project_order(&envelope(
            "o1",
            4,
            OrderEvent::OrderShipped {
                customer_id: "c1".into(),
            },
        ));
        assert_eq!(
            writes,
            [SqlWrite::new(
                SET_STATUS,
                params!["SHIPPED", 1_700_000_000_004_i64, 4_i64, "o1"]
            )]
        );
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
        assert_eq!(
            writes[0].params[..3],
            params![
                "CANCELLED",
                "OUT_OF_STOCK",
                "sku SKU-A: requested 2, available 1"
            ]
        );
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
                let highest_placeholder = (1..=20)
                    .rev()
                    .find(|n| write.sql.contains(&format!("${n}")))
                    .unwrap_or(0);
                assert_eq!(highest_placeholder, write.params.len(), "{}", write.sql);
            }
        }
    }

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

    #[tokio::test]
    async fn the_projected_happy_path_reads_back_through_the_routes() {
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        for (index, event) in happy_path().into_iter().enumerate() {
            apply(
                &pool,
                &project_order(&envelope("o1", index as i64 + 1, event)),
            )
            .await;
        }
        let Json(order) = get_order(State(ReadDb(pool.clone())), Path("o1".into()))
            .await
            .unwrap();
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
                shipment: Some(ShipmentView {
                    carrier: "DHL".into(),
                    tracking_number: "T1".into()
                }),
                created_at: 1_700_000_000_001,
                updated_at: 1_700_000_000_007,
                version: 7,
            }
        );

        let query = |customer_id: Option<&str>, limit: Option<i64>| {
            Ok(Query(ListOrdersParams {
                customer_id: customer_id.map(Into::into),
                limit,
            }))
        };
        let Json(listed) = list_orders(State(ReadDb(pool.clone())), query(Some("c1"), None))
            .await
            .unwrap();
        assert_eq!(listed, [order]);
        let Json(none) = list_orders(State(ReadDb(pool.clone())), query(Some("c2"), None))
            .await
            .unwrap();
        assert_eq!(none, []);
        for (customer_id, limit) in [
            (None, None),
            (Some(""), None),
            (Some("c1"), Some(0)),
            (Some("c1"), Some(1001)),
        ] {
            let error = list_orders(State(ReadDb(pool.clone())), query(customer_id, limit))
                .await
                .unwrap_err();
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
        let Json(order) = get_order(State(ReadDb(pool.clone())), Path("o1".into()))
            .await
            .unwrap();
        assert_eq!(order.status, "CANCELLED");
        assert_eq!(
            order.cancellation_reason.as_deref(),
            Some("PAYMENT_DECLINED")
        );
        assert_eq!(
            order.cancellation_detail.as_deref(),
            Some("INSUFFICIENT_FUNDS")
        );
        assert_eq!(order.shipment, None);

        let error = get_order(State(ReadDb(pool)), Path("nope".into()))
            .await
            .unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
    }
}

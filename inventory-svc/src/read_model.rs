//! The stock view: `stock` (one row per sku) and `reservations` (one row per order and sku),
//! migration `migrations/0001_stock.sql`, projected from `stock.events`; and its query route.
//!
//! `updated_at` is epoch milliseconds taken from the events' `occurred_at`.
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use contracts::EventEnvelope;
use contracts::stock::StockEvent;
use runtime::http::{ApiError, QueryRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use sqlx::Row;

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
    let reservation = |order_id: &String, quantity: i32, status: ReservationStatus| {
        SqlWrite::new(
            UPSERT_RESERVATION,
            params![order_id, sku, quantity, status.as_str()],
        )
    };
    let (delta, reservation_write) = match &event.payload {
        StockEvent::StockRestocked { quantity } => {
            let quantity = i64::from(*quantity);
            (
                StockDelta {
                    on_hand: quantity,
                    restocked: quantity,
                    ..StockDelta::default()
                },
                None,
            )
        }
        StockEvent::StockReserved { order_id, quantity } => (
            StockDelta {
                reserved: i64::from(*quantity),
                ..StockDelta::default()
            },
            Some(reservation(
                order_id,
                *quantity,
                ReservationStatus::Reserved,
            )),
        ),
        // Changes no counter, but makes the sku known: it was asked for.
        StockEvent::StockReservationRejected {
            order_id,
            requested,
            ..
        } => (
            StockDelta::default(),
            Some(reservation(
                order_id,
                *requested,
                ReservationStatus::Rejected,
            )),
        ),
        StockEvent::StockReleased { order_id, quantity } => (
            StockDelta {
                reserved: -i64::from(*quantity),
                ..StockDelta::default()
            },
            Some(reservation(
                order_id,
                *quantity,
                ReservationStatus::Released,
            )),
        ),
        StockEvent::StockShipped { order_id, quantity } => {
            let shipped = i64::from(*quantity);
            (
                StockDelta {
                    on_hand: -shipped,
                    reserved: -shipped,
                    shipped,
                    restocked: 0,
                },
                Some(reservation(order_id, *quantity, ReservationStatus::Shipped)),
            )
        }
    };
    let stock_write = SqlWrite::new(
        ADD_TO_STOCK,
        params![
            sku,
            delta.on_hand,
            delta.reserved,
            delta.restocked,
            delta.shipped,
            event.occurred_at
        ],
    );
    std::iter::once(stock_write)
        .chain(reservation_write)
        .collect()
}

/// `GET /stock/{sku}`.
pub fn routes() -> QueryRoutes {
    Router::new().route("/stock/{sku}", get(get_stock))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockView {
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

pub async fn get_stock(
    State(ReadDb(pool)): State<ReadDb>,
    Path(sku): Path<String>,
) -> Result<Json<StockView>, ApiError> {
    const QUERY: &str = "SELECT sku, on_hand, reserved FROM stock WHERE sku = $1";
    let Some(row) = sqlx::query(QUERY)
        .bind(sku.clone())
        .fetch_optional(&pool)
        .await?
    else {
        return Err(ApiError::not_found("sku", &sku));
    };
    let on_hand: i64 = row.try_get("on_hand")?;
    let reserved: i64 = row.try_get("reserved")?;
    Ok(Json(StockView {
        sku: row.try_get("sku")?,
        on_hand,
        reserved,
        available: on_hand - reserved,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::testing::{apply, envelope, read_model_db};

    #[test]
    fn a_restock_adds_to_on_hand_and_the_restocked_total_only() {
        let writes = project_stock(&envelope(
            "SKU-A",
            1,
            StockEvent::StockRestocked { quantity: 10 },
        ));
        assert_eq!(
            writes,
            [SqlWrite::new(
                ADD_TO_STOCK,
                params!["SKU-A", 10_i64, 0_i64, 10_i64, 0_i64, 1_700_000_000_001_i64]
            )]
        );
    }

    #[test]
    fn a_shipment_leaves_on_hand_and_reserved_and_records_the_reservation() {
        let writes = project_stock(&envelope(
            "SKU-A",
            3,
            StockEvent::StockShipped {
                order_id: "o1".into(),
                quantity: 4,
            },
        ));
        assert_eq!(
            writes,
            [
                SqlWrite::new(
                    ADD_TO_STOCK,
                    params!["SKU-A", -4_i64, -4_i64, 0_i64, 4_i64, 1_700_000_000_003_i64]
                ),
                SqlWrite::new(UPSERT_RESERVATION, params!["o1", "SKU-A", 4, "SHIPPED"]),
            ]
        );
    }

    #[test]
    fn reservation_events_write_their_status() {
        let cases = [
            (
                StockEvent::StockReserved {
                    order_id: "o1".into(),
                    quantity: 2,
                },
                2,
                "RESERVED",
            ),
            (
                StockEvent::StockReservationRejected {
                    order_id: "o1".into(),
                    requested: 9,
                    available: 1,
                },
                9,
                "REJECTED",
            ),
            (
                StockEvent::StockReleased {
                    order_id: "o1".into(),
                    quantity: 2,
                },
                2,
                "RELEASED",
            ),
        ];
        for (payload, quantity, status) in cases {
            let writes = project_stock(&envelope("SKU-A", 2, payload));
            assert_eq!(writes.len(), 2);
            assert_eq!(
                writes[1],
                SqlWrite::new(UPSERT_RESERVATION, params!["o1", "SKU-A", quantity, status])
            );
        }
    }

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

    #[tokio::test]
    async fn projected_history_reads_back_through_the_route() {
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        let history = [
            StockEvent::StockRestocked { quantity: 10 },
            StockEvent::StockReserved {
                order_id: "o1".into(),
                quantity: 3,
            },
            StockEvent::StockReserved {
                order_id: "o2".into(),
                quantity: 4,
            },
            StockEvent::StockReservationRejected {
                order_id: "o3".into(),
                requested: 9,
                available: 3,
            },
            StockEvent::StockReleased {
                order_id: "o2".into(),
                quantity: 4,
            },
            StockEvent::StockShipped {
                order_id: "o1".into(),
                quantity: 3,
            },
        ];
        for (index, event) in history.into_iter().enumerate() {
            apply(
                &pool,
                &project_stock(&envelope("SKU-A", index as i64 + 1, event)),
            )
            .await;
        }
        let Json(stock) = get_stock(State(ReadDb(pool.clone())), Path("SKU-A".into()))
            .await
            .unwrap();
        assert_eq!(
            stock,
            StockView {
                sku: "SKU-A".into(),
                on_hand: 7,
                reserved: 0,
                available: 7
            }
        );

        let totals: (i64, i64, i64) = sqlx::query_as(
            "SELECT restocked_total, shipped_total, updated_at FROM stock WHERE sku = 'SKU-A'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(totals, (10, 3, 1_700_000_000_006));
        let reservations: Vec<(String, i64, String)> =
            sqlx::query_as("SELECT order_id, quantity, status FROM reservations WHERE sku = 'SKU-A' ORDER BY order_id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            reservations,
            [
                ("o1".into(), 3, "SHIPPED".into()),
                ("o2".into(), 4, "RELEASED".into()),
                ("o3".into(), 9, "REJECTED".into())
            ]
        );
    }

    #[tokio::test]
    async fn a_sku_never_seen_is_not_found_but_one_only_asked_for_is_empty() {
        let (pool, _db) = read_model_db(&MIGRATOR).await;
        let rejected = StockEvent::StockReservationRejected {
            order_id: "o1".into(),
            requested: 1,
            available: 0,
        };
        apply(&pool, &project_stock(&envelope("SKU-ASKED", 1, rejected))).await;

        let Json(stock) = get_stock(State(ReadDb(pool.clone())), Path("SKU-ASKED".into()))
            .await
            .unwrap();
        assert_eq!(
            stock,
            StockView {
                sku: "SKU-ASKED".into(),
                on_hand: 0,
                reserved: 0,
                available: 0
            }
        );
        let error = get_stock(State(ReadDb(pool)), Path("SKU-NEVER".into()))
            .await
            .unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
    }
}

//! Events → SQL writes for the order view, one pure function per source stream (no database,
//! no I/O): the runner applies what they return in one transaction per batch.
//!
//! | stream | function | tables |
//! |---|---|---|
//! | `order.events` | [`project_order_view`] ([`project_order`] + timeline) | `orders`, `order_timeline` |
//! | `account.events` (payment-svc) | [`project_payment`] | `order_payments`, `order_timeline` |
//! | `shipment.events` (shipping-svc) | [`project_shipment`] | `order_shipments`, `order_timeline` |
//! | `notification.events` (notify-svc) | [`project_notification`] | `order_notifications`, `order_timeline` |
//! | `stock.events` (inventory-svc) | [`project_stock`] | `order_timeline` |
use contracts::account::{Account, AccountEvent};
use contracts::notification::{Notification, NotificationEvent};
use contracts::order::{Order, OrderEvent, OrderLine};
use contracts::shipment::{Shipment, ShipmentEvent};
use contracts::stock::{Stock, StockEvent};
use contracts::{EventEnvelope, EventType, Stream};
use runtime::{SqlWrite, params};

use crate::order::OrderStatus;

const INSERT_PLACED_ORDER: &str = "INSERT INTO orders \
    (order_id, customer_id, status, cancellation_reason, cancellation_detail, currency, total_cents, \
     lines_json, carrier, tracking_number, created_at, updated_at, version) \
    VALUES ($1, $2, $3, NULL, NULL, $4, $5, $6, NULL, NULL, $7, $8, $9) \
    ON CONFLICT (order_id) DO UPDATE SET \
    customer_id = excluded.customer_id, status = excluded.status, \
    cancellation_reason = NULL, cancellation_detail = NULL, \
    cancellation_request = NULL, cancellation_request_reason = NULL, cancellation_request_detail = NULL, cancellation_refusal = NULL, \
    currency = excluded.currency, total_cents = excluded.total_cents, lines_json = excluded.lines_json, \
    carrier = NULL, tracking_number = NULL, \
    created_at = excluded.created_at, updated_at = excluded.updated_at, version = excluded.version";

const TOUCH_ORDER: &str = "UPDATE orders SET updated_at = $1, version = $2 WHERE order_id = $3";

const SET_STATUS: &str = "UPDATE orders SET status = $1, updated_at = $2, version = $3 WHERE order_id = $4";

const SET_CONFIRMED: &str = "UPDATE orders SET status = $1, carrier = $2, tracking_number = $3, \
    updated_at = $4, version = $5 WHERE order_id = $6";

// A pending request that ends in the order's cancellation was accepted.
const SET_CANCELLED: &str = "UPDATE orders SET status = $1, cancellation_reason = $2, cancellation_detail = $3, \
    cancellation_request = CASE WHEN cancellation_request = 'REQUESTED' THEN 'ACCEPTED' ELSE cancellation_request END, \
    updated_at = $4, version = $5 WHERE order_id = $6";

const SET_CANCELLATION_REQUESTED: &str = "UPDATE orders SET cancellation_request = 'REQUESTED', \
    cancellation_request_reason = $1, cancellation_request_detail = $2, updated_at = $3, version = $4 WHERE order_id = $5";

const SET_CANCELLATION_REFUSED: &str = "UPDATE orders SET cancellation_request = 'REFUSED', cancellation_refusal = $1, \
    updated_at = $2, version = $3 WHERE order_id = $4";

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
        OrderEvent::OrderCancellationRequested { reason, detail, .. } => {
            let reason: &'static str = reason.into();
            SqlWrite::new(SET_CANCELLATION_REQUESTED, params![reason, detail, at, version, order_id])
        }
        OrderEvent::OrderCancellationRefused { reason, .. } => SqlWrite::new(SET_CANCELLATION_REFUSED, params![reason, at, version, order_id]),
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

// Reports may arrive out of the carrier's order: the view keeps the latest by `at`.
const RECORD_TRACKING: &str = "UPDATE order_shipments SET tracking_status = $1, tracking_location = $2, tracking_at = $3 \
    WHERE order_id = $4 AND (tracking_at IS NULL OR tracking_at <= $3)";

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
        // The shipment stays as it was; the order view shows the refusal from the order's event.
        ShipmentEvent::ShipmentCancellationRefused { .. } => return vec![timeline::<Shipment>(order_id, "shipping-svc", event)],
        ShipmentEvent::ShipmentTrackingUpdated { status, location, at, .. } => {
            let status: &'static str = status.into();
            return vec![
                SqlWrite::new(RECORD_TRACKING, params![status, location, *at, order_id]),
                timeline::<Shipment>(order_id, "shipping-svc", event),
            ];
        }
    };
    vec![
        SqlWrite::new(UPSERT_SHIPMENT, params![order_id, status, carrier, tracking_number, event.occurred_at]),
        timeline::<Shipment>(order_id, "shipping-svc", event),
    ]
}

/// `notification.events`: which notifications each order caused.
pub fn project_notification(event: &EventEnvelope<NotificationEvent>) -> Vec<SqlWrite> {
    match &event.payload {
        NotificationEvent::PreferencesSet { .. } | NotificationEvent::OptOutSet { .. } => vec![],
        // Operations alerts belong to no order.
        NotificationEvent::NotificationSent { kind, .. }
        | NotificationEvent::NotificationDeliveryFailed { kind, .. }
        | NotificationEvent::NotificationDelivered { kind, .. }
        | NotificationEvent::NotificationParked { kind, .. }
            if !kind.is_about_an_order() =>
        {
            vec![]
        }
        NotificationEvent::NotificationSent { order_id, kind, .. } => {
            let kind: &'static str = kind.into();
            vec![
                SqlWrite::new(RECORD_NOTIFICATION, params![order_id, kind, event.occurred_at]),
                timeline::<Notification>(order_id, "notify-svc", event),
            ]
        }
        // How a notification's delivery went is part of the order's story, not of its row.
        NotificationEvent::NotificationDeliveryFailed { order_id, .. }
        | NotificationEvent::NotificationDelivered { order_id, .. }
        | NotificationEvent::NotificationParked { order_id, .. } => vec![timeline::<Notification>(order_id, "notify-svc", event)],
    }
}

/// `stock.events`: only the timeline (the order's own events already carry its reservations).
pub fn project_stock(event: &EventEnvelope<StockEvent>) -> Vec<SqlWrite> {
    match &event.payload {
        StockEvent::StockRestocked { .. }
        | StockEvent::LowStockThresholdSet { .. }
        | StockEvent::StockLow { .. }
        | StockEvent::StockReplenished { .. } => vec![],
        StockEvent::StockReserved { order_id, .. }
        | StockEvent::StockReservationRejected { order_id, .. }
        | StockEvent::StockReleased { order_id, .. }
        | StockEvent::StockShipped { order_id, .. } => vec![timeline::<Stock>(order_id, "inventory-svc", event)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{happy_path, lines, placed};
    use contracts::order::CancellationReason;
    use runtime::testing::envelope;

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
    fn a_cancellation_request_and_its_refusal_leave_the_status_alone() {
        let requested = OrderEvent::OrderCancellationRequested {
            customer_id: "c1".into(),
            reason: CancellationReason::CustomerRequest,
            detail: "changed my mind".into(),
        };
        assert_eq!(
            project_order(&envelope("o1", 6, requested)),
            [SqlWrite::new(SET_CANCELLATION_REQUESTED, params!["CUSTOMER_REQUEST", "changed my mind", 1_700_000_000_006_i64, 6_i64, "o1"])]
        );
        let refused = OrderEvent::OrderCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() };
        assert_eq!(
            project_order(&envelope("o1", 8, refused)),
            [SqlWrite::new(SET_CANCELLATION_REFUSED, params!["shipment already dispatched", 1_700_000_000_008_i64, 8_i64, "o1"])]
        );
        for sql in [SET_CANCELLATION_REQUESTED, SET_CANCELLATION_REFUSED] {
            assert!(!sql.contains("status ="), "{sql}");
        }
    }

    #[test]
    fn a_refused_shipment_cancellation_is_only_on_the_timeline() {
        let refused = ShipmentEvent::ShipmentCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() };
        let writes = project_shipment(&envelope("o1", 3, refused));
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].sql, RECORD_TIMELINE);
    }

    #[test]
    fn every_write_binds_as_many_values_as_it_has_placeholders() {
        let mut events = happy_path();
        events.push(OrderEvent::OrderCancellationRequested {
            customer_id: "c1".into(),
            reason: CancellationReason::CustomerRequest,
            detail: String::new(),
        });
        events.push(OrderEvent::OrderCancellationRefused { customer_id: "c1".into(), reason: "too late".into() });
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
}

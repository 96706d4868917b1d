//! Choreography into the Notification aggregate: customers hear about confirmed, cancelled and
//! shipped orders, about refunds, that a cancellation came too late, and when the carrier is
//! out to deliver or could not; operations hear about low stock. The aggregate makes each
//! (order, kind) go out once. The policies pass the facts (the fields of each kind); the
//! aggregate renders the text from the template of the kind and the customer's channel.
use contracts::EventEnvelope;
use contracts::account::{Account, AccountEvent};
use contracts::notification::{Notification, NotificationCommand, NotificationKind};
use contracts::order::{Order, OrderEvent};
use contracts::shipment::{Shipment, ShipmentEvent, TrackingStatus};
use contracts::stock::{Stock, StockEvent};
use contracts::validate::id;
use runtime::Policy;
use std::collections::BTreeMap;

/// Consumes `order.events` (key `order_id`) and commands notifications (key `customer_id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NotifyFromOrders;

impl Policy for NotifyFromOrders {
    type Source = Order;
    type Target = Notification;
    const NAME: &'static str = "notify-from-orders";

    fn react(&self, event: &EventEnvelope<OrderEvent>) -> Vec<NotificationCommand> {
        let order_id = &event.aggregate_id;
        let notify = |customer_id: &String, kind, fields| {
            vec![NotificationCommand::SendNotification { customer_id: customer_id.clone(), order_id: order_id.clone(), kind, fields }]
        };
        match &event.payload {
            OrderEvent::OrderConfirmed { customer_id, carrier, tracking_number } => notify(
                customer_id,
                NotificationKind::OrderConfirmed,
                fields([("carrier", carrier.clone()), ("tracking_number", tracking_number.clone())]),
            ),
            OrderEvent::OrderCancelled { customer_id, reason, detail, .. } => {
                let code: &'static str = reason.into();
                notify(customer_id, NotificationKind::OrderCancelled, fields([("reason", code.to_string()), ("detail", detail.clone())]))
            }
            OrderEvent::OrderShipped { customer_id } => notify(customer_id, NotificationKind::OrderShipped, BTreeMap::new()),
            OrderEvent::OrderCancellationRefused { customer_id, reason } => {
                notify(customer_id, NotificationKind::OrderCancellationRefused, fields([("reason", reason.clone())]))
            }
            OrderEvent::OrderPlaced { .. }
            | OrderEvent::OrderLineReserved { .. }
            | OrderEvent::OrderStockReserved { .. }
            | OrderEvent::OrderPaid { .. }
            | OrderEvent::OrderDelivered { .. }
            // The customer hears the outcome: cancelled, or too late.
            | OrderEvent::OrderCancellationRequested { .. } => vec![],
        }
    }
}

/// Consumes `account.events`; the account's aggregate id is the customer id.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotifyFromAccounts;

impl Policy for NotifyFromAccounts {
    type Source = Account;
    type Target = Notification;
    const NAME: &'static str = "notify-from-accounts";

    fn react(&self, event: &EventEnvelope<AccountEvent>) -> Vec<NotificationCommand> {
        match &event.payload {
            AccountEvent::PaymentRefunded { order_id, amount_cents, currency } => vec![NotificationCommand::SendNotification {
                customer_id: event.aggregate_id.clone(),
                order_id: order_id.clone(),
                kind: NotificationKind::RefundIssued,
                fields: fields([("amount", format_amount(*amount_cents, currency))]),
            }],
            AccountEvent::FundsDeposited { .. } | AccountEvent::PaymentCaptured { .. } | AccountEvent::PaymentDeclined { .. } => {
                vec![]
            }
        }
    }
}

/// Consumes `shipment.events` (key `order_id`): the carrier's reports that the customer acts on.
/// "In transit" is left out: it is most reports and asks nothing of anyone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotifyFromShipments;

impl Policy for NotifyFromShipments {
    type Source = Shipment;
    type Target = Notification;
    const NAME: &'static str = "notify-from-shipments";

    fn react(&self, event: &EventEnvelope<ShipmentEvent>) -> Vec<NotificationCommand> {
        let order_id = &event.aggregate_id;
        let ShipmentEvent::ShipmentTrackingUpdated { customer_id, status, location, .. } = &event.payload else { return vec![] };
        let kind = match status {
            TrackingStatus::InTransit => return vec![],
            TrackingStatus::OutForDelivery => NotificationKind::ShipmentOutForDelivery,
            TrackingStatus::DeliveryFailed => NotificationKind::ShipmentDeliveryFailed,
        };
        vec![NotificationCommand::SendNotification {
            customer_id: customer_id.clone(),
            order_id: order_id.clone(),
            kind,
            fields: fields([("location", location.clone())]),
        }]
    }
}

/// The environment variable of [`NotifyFromStock::ops_id`].
pub const OPS_ID_ENV: &str = "NOTIFY_OPS_ID";

/// Consumes `stock.events` (key `sku`) and alerts operations: the Notification aggregate
/// `ops_id`, whose channel and recipient are its preferences like a customer's.
#[derive(Debug, Clone)]
pub struct NotifyFromStock {
    pub ops_id: String,
}

impl Default for NotifyFromStock {
    fn default() -> Self {
        NotifyFromStock { ops_id: "ops".into() }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{OPS_ID_ENV}={value:?}: {reason}")]
pub struct OpsIdError {
    value: String,
    reason: String,
}

impl NotifyFromStock {
    /// `NOTIFY_OPS_ID`; unset or blank: `ops`.
    pub fn from_env() -> Result<Self, OpsIdError> {
        Self::from_setting(std::env::var(OPS_ID_ENV).ok())
    }

    pub fn from_setting(value: Option<String>) -> Result<Self, OpsIdError> {
        let Some(value) = value.filter(|value| !value.trim().is_empty()) else { return Ok(NotifyFromStock::default()) };
        id(OPS_ID_ENV, &value).map_err(|invalid| OpsIdError { value: value.clone(), reason: invalid.message })?;
        Ok(NotifyFromStock { ops_id: value })
    }
}

impl Policy for NotifyFromStock {
    type Source = Stock;
    type Target = Notification;
    const NAME: &'static str = "notify-from-stock";

    fn react(&self, event: &EventEnvelope<StockEvent>) -> Vec<NotificationCommand> {
        match &event.payload {
            // The event's id names the crossing, so a redelivered event alerts once.
            StockEvent::StockLow { sku, available, threshold } => {
                vec![NotificationCommand::SendNotification {
                    customer_id: self.ops_id.clone(),
                    order_id: event.event_id.clone(),
                    kind: NotificationKind::StockLow,
                    fields: fields([("sku", sku.clone()), ("available", available.to_string()), ("threshold", threshold.to_string())]),
                }]
            }
            StockEvent::StockRestocked { .. }
            | StockEvent::StockReserved { .. }
            | StockEvent::StockReservationRejected { .. }
            | StockEvent::StockReleased { .. }
            | StockEvent::StockShipped { .. }
            | StockEvent::LowStockThresholdSet { .. }
            | StockEvent::StockReplenished { .. } => vec![],
        }
    }
}

/// A command's fields from (name, value) pairs.
fn fields<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
}

/// `1234, "EUR"` → `12.34 EUR`.
pub fn format_amount(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let magnitude = cents.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", magnitude / 100, magnitude % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::account::DeclineReason;
    use contracts::order::{Address, CancellationReason, OrderLine};
    use runtime::testing::envelope;

    fn send<const N: usize>(customer_id: &str, order_id: &str, kind: NotificationKind, pairs: [(&str, &str); N]) -> NotificationCommand {
        let fields = pairs.into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        NotificationCommand::SendNotification { customer_id: customer_id.into(), order_id: order_id.into(), kind, fields }
    }

    fn address() -> Address {
        Address { name: "Ada".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() }
    }

    fn lines() -> Vec<OrderLine> {
        vec![OrderLine { sku: "sku-1".into(), quantity: 5, unit_price_cents: 100 }]
    }

    #[test]
    fn confirmed_order_notifies_with_carrier_and_tracking() {
        let event =
            envelope("o-1", 5, OrderEvent::OrderConfirmed { customer_id: "c-1".into(), carrier: "DHL".into(), tracking_number: "DHLABC".into() });
        assert_eq!(
            NotifyFromOrders.react(&event),
            vec![send("c-1", "o-1", NotificationKind::OrderConfirmed, [("carrier", "DHL"), ("tracking_number", "DHLABC")])]
        );
    }

    #[test]
    fn cancelled_order_notifies_with_the_reason() {
        let event = envelope(
            "o-1",
            5,
            OrderEvent::OrderCancelled {
                customer_id: "c-1".into(),
                reason: CancellationReason::OutOfStock,
                detail: "sku sku-1: requested 5, available 2".into(),
                lines: lines(),
            },
        );
        assert_eq!(
            NotifyFromOrders.react(&event),
            vec![send(
                "c-1",
                "o-1",
                NotificationKind::OrderCancelled,
                [("reason", "OUT_OF_STOCK"), ("detail", "sku sku-1: requested 5, available 2")]
            )]
        );
    }

    #[test]
    fn every_cancellation_reason_is_passed_as_its_code_and_an_empty_detail_as_empty() {
        for (reason, code) in [
            (CancellationReason::OutOfStock, "OUT_OF_STOCK"),
            (CancellationReason::PaymentDeclined, "PAYMENT_DECLINED"),
            (CancellationReason::ShippingUnavailable, "SHIPPING_UNAVAILABLE"),
            (CancellationReason::CustomerRequest, "CUSTOMER_REQUEST"),
            (CancellationReason::Timeout, "TIMEOUT"),
        ] {
            let event = envelope("o-1", 5, OrderEvent::OrderCancelled { customer_id: "c-1".into(), reason, detail: String::new(), lines: lines() });
            assert_eq!(
                NotifyFromOrders.react(&event),
                vec![send("c-1", "o-1", NotificationKind::OrderCancelled, [("reason", code), ("detail", "")])],
                "{reason:?}"
            );
        }
    }

    #[test]
    fn every_command_carries_exactly_its_kinds_fields() {
        use contracts::validate::Validate;
        let commands = [
            NotifyFromOrders.react(&envelope("o-1", 5, OrderEvent::OrderShipped { customer_id: "c-1".into() })),
            NotifyFromAccounts.react(&envelope(
                "c-7",
                5,
                AccountEvent::PaymentRefunded { order_id: "o-1".into(), amount_cents: 1, currency: "EUR".into() },
            )),
            NotifyFromStock::default().react(&envelope("SKU-A", 7, StockEvent::StockLow { sku: "SKU-A".into(), available: 3, threshold: 5 })),
        ];
        for command in commands.into_iter().flatten() {
            assert_eq!(command.validate(), Ok(()), "{command:?}");
        }
    }

    #[test]
    fn shipped_order_notifies() {
        let event = envelope("o-1", 5, OrderEvent::OrderShipped { customer_id: "c-1".into() });
        assert_eq!(NotifyFromOrders.react(&event), vec![send("c-1", "o-1", NotificationKind::OrderShipped, [])]);
    }

    #[test]
    fn a_refused_cancellation_tells_the_customer_it_is_too_late() {
        let event =
            envelope("o-1", 8, OrderEvent::OrderCancellationRefused { customer_id: "c-1".into(), reason: "shipment already dispatched".into() });
        assert_eq!(
            NotifyFromOrders.react(&event),
            vec![send("c-1", "o-1", NotificationKind::OrderCancellationRefused, [("reason", "shipment already dispatched")])]
        );
    }

    #[test]
    fn other_order_events_are_silent() {
        let others = [
            OrderEvent::OrderPlaced {
                customer_id: "c-1".into(),
                lines: lines(),
                currency: "EUR".into(),
                shipping_address: address(),
                total_cents: 500,
            },
            OrderEvent::OrderLineReserved { sku: "sku-1".into(), quantity: 5 },
            OrderEvent::OrderStockReserved { customer_id: "c-1".into(), total_cents: 500, currency: "EUR".into() },
            OrderEvent::OrderPaid {
                customer_id: "c-1".into(),
                amount_cents: 500,
                currency: "EUR".into(),
                shipping_address: address(),
                lines: lines(),
            },
            OrderEvent::OrderDelivered { customer_id: "c-1".into() },
            OrderEvent::OrderCancellationRequested {
                customer_id: "c-1".into(),
                reason: CancellationReason::CustomerRequest,
                detail: "changed my mind".into(),
            },
        ];
        for payload in others {
            assert_eq!(NotifyFromOrders.react(&envelope("o-1", 5, payload.clone())), vec![], "{payload:?}");
        }
    }

    #[test]
    fn refund_notifies_the_account_owner_with_the_amount() {
        let event = envelope("c-7", 5, AccountEvent::PaymentRefunded { order_id: "o-1".into(), amount_cents: 1_205, currency: "EUR".into() });
        assert_eq!(NotifyFromAccounts.react(&event), vec![send("c-7", "o-1", NotificationKind::RefundIssued, [("amount", "12.05 EUR")])]);
    }

    #[test]
    fn other_account_events_are_silent() {
        let others = [
            AccountEvent::FundsDeposited { amount_cents: 100, currency: "EUR".into() },
            AccountEvent::PaymentCaptured { order_id: "o-1".into(), amount_cents: 100, currency: "EUR".into() },
            AccountEvent::PaymentDeclined { order_id: "o-1".into(), amount_cents: 100, reason: DeclineReason::InsufficientFunds },
        ];
        for payload in others {
            assert_eq!(NotifyFromAccounts.react(&envelope("c-7", 5, payload.clone())), vec![], "{payload:?}");
        }
    }

    #[test]
    fn low_stock_alerts_operations_once_per_crossing() {
        let policy = NotifyFromStock::default();
        let event = envelope("SKU-A", 7, StockEvent::StockLow { sku: "SKU-A".into(), available: 3, threshold: 5 });
        let commands = policy.react(&event);
        assert_eq!(
            commands,
            vec![send("ops", &event.event_id, NotificationKind::StockLow, [("sku", "SKU-A"), ("available", "3"), ("threshold", "5")])]
        );
        // A redelivery names the same crossing; the aggregate sends it once.
        assert_eq!(policy.react(&event), commands);
        let replenished = envelope("SKU-A", 8, StockEvent::StockReplenished { sku: "SKU-A".into(), available: 9, threshold: 5 });
        assert_eq!(policy.react(&replenished), vec![]);
        for payload in [StockEvent::StockRestocked { quantity: 5 }, StockEvent::LowStockThresholdSet { threshold: 5 }] {
            assert_eq!(policy.react(&envelope("SKU-A", 1, payload.clone())), vec![], "{payload:?}");
        }
    }

    #[test]
    fn the_customer_hears_when_the_carrier_is_out_to_deliver_or_could_not() {
        let report = |status, location: &str| {
            envelope("o-1", 5, ShipmentEvent::ShipmentTrackingUpdated { customer_id: "c-1".into(), status, location: location.into(), at: 1 })
        };
        assert_eq!(
            NotifyFromShipments.react(&report(TrackingStatus::OutForDelivery, "Berlin")),
            vec![send("c-1", "o-1", NotificationKind::ShipmentOutForDelivery, [("location", "Berlin")])]
        );
        assert_eq!(
            NotifyFromShipments.react(&report(TrackingStatus::DeliveryFailed, "Berlin")),
            vec![send("c-1", "o-1", NotificationKind::ShipmentDeliveryFailed, [("location", "Berlin")])]
        );
        assert_eq!(NotifyFromShipments.react(&report(TrackingStatus::InTransit, "Hamburg hub")), vec![]);
        assert_eq!(NotifyFromShipments.react(&envelope("o-1", 4, ShipmentEvent::ShipmentDelivered { customer_id: "c-1".into() })), vec![]);
    }

    #[test]
    fn the_ops_recipient_is_configured() {
        assert_eq!(NotifyFromStock::from_setting(None).map(|policy| policy.ops_id).ok(), Some("ops".to_string()));
        assert_eq!(NotifyFromStock::from_setting(Some("warehouse-7".into())).map(|policy| policy.ops_id).ok(), Some("warehouse-7".to_string()));
        let error = NotifyFromStock::from_setting(Some("x".repeat(200))).expect_err("too long");
        assert!(error.to_string().starts_with(OPS_ID_ENV), "{error}");
    }

    #[test]
    fn amounts_are_formatted_with_two_decimals() {
        assert_eq!(format_amount(0, "EUR"), "0.00 EUR");
        assert_eq!(format_amount(5, "USD"), "0.05 USD");
        assert_eq!(format_amount(123_456, "EUR"), "1234.56 EUR");
        assert_eq!(format_amount(-250, "EUR"), "-2.50 EUR");
    }
}

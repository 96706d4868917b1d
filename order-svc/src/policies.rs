//! How the order saga hears back: stock, payment and shipment events become `Record*` commands
//! on the order they concern.
use contracts::EventEnvelope;
use contracts::account::{Account, AccountEvent};
use contracts::order::{Order, OrderCommand};
use contracts::shipment::{Shipment, ShipmentEvent};
use contracts::stock::{Stock, StockEvent};
use runtime::Policy;

/// `stock.events` (key = sku) → reservation outcomes per order line.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFromStock;

impl Policy for OrderFromStock {
    type Source = Stock;
    type Target = Order;
    const NAME: &'static str = "order-from-stock";

    fn react(&self, event: &EventEnvelope<StockEvent>) -> Vec<OrderCommand> {
        let sku = &event.aggregate_id;
        match &event.payload {
            StockEvent::StockReserved { order_id, quantity } => {
                vec![OrderCommand::RecordStockReserved { order_id: order_id.clone(), sku: sku.clone(), quantity: *quantity }]
            }
            StockEvent::StockReservationRejected { order_id, requested, available } => {
                vec![OrderCommand::RecordStockRejected { order_id: order_id.clone(), sku: sku.clone(), requested: *requested, available: *available }]
            }
            StockEvent::StockRestocked { .. }
            | StockEvent::StockReleased { .. }
            | StockEvent::StockShipped { .. }
            | StockEvent::LowStockThresholdSet { .. }
            | StockEvent::StockLow { .. }
            | StockEvent::StockReplenished { .. } => vec![],
        }
    }
}

/// `account.events` (key = customer_id) → payment outcomes per order.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFromAccounts;

impl Policy for OrderFromAccounts {
    type Source = Account;
    type Target = Order;
    const NAME: &'static str = "order-from-accounts";

    fn react(&self, event: &EventEnvelope<AccountEvent>) -> Vec<OrderCommand> {
        match &event.payload {
            AccountEvent::PaymentCaptured { order_id, amount_cents, .. } => {
                vec![OrderCommand::RecordPaymentCaptured { order_id: order_id.clone(), amount_cents: *amount_cents }]
            }
            AccountEvent::PaymentDeclined { order_id, reason, .. } => {
                let reason: &'static str = reason.into();
                vec![OrderCommand::RecordPaymentDeclined { order_id: order_id.clone(), reason: reason.to_string() }]
            }
            AccountEvent::FundsDeposited { .. } | AccountEvent::PaymentRefunded { .. } => vec![],
        }
    }
}

/// `shipment.events` (key = order_id) → shipping progress of the order.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFromShipments;

impl Policy for OrderFromShipments {
    type Source = Shipment;
    type Target = Order;
    const NAME: &'static str = "order-from-shipments";

    fn react(&self, event: &EventEnvelope<ShipmentEvent>) -> Vec<OrderCommand> {
        let order_id = event.aggregate_id.clone();
        match &event.payload {
            ShipmentEvent::ShipmentScheduled { carrier, tracking_number, .. } => {
                vec![OrderCommand::RecordShipmentScheduled { order_id, carrier: carrier.clone(), tracking_number: tracking_number.clone() }]
            }
            ShipmentEvent::ShipmentRejected { reason, .. } => {
                vec![OrderCommand::RecordShipmentRejected { order_id, reason: reason.clone() }]
            }
            ShipmentEvent::ShipmentDispatched { .. } => {
                vec![OrderCommand::RecordShipmentDispatched { order_id }]
            }
            ShipmentEvent::ShipmentDelivered { .. } => {
                vec![OrderCommand::RecordShipmentDelivered { order_id }]
            }
            // Shipping's answer to a cancellation request (the order cancels on the first, carries
            // on after the second).
            ShipmentEvent::ShipmentCancelled { .. } => vec![OrderCommand::RecordShipmentCancelled { order_id }],
            ShipmentEvent::ShipmentCancellationRefused { reason, .. } => {
                vec![OrderCommand::RecordShipmentCancellationRefused { order_id, reason: reason.clone() }]
            }
            // The carrier's reports change nothing the order decides on; its view shows them.
            ShipmentEvent::ShipmentTrackingUpdated { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::account::DeclineReason;
    use contracts::shipment::ShipmentLine;
    use runtime::testing::envelope;

    #[test]
    fn stock_reserved_is_recorded_on_the_order_with_the_sku_from_the_key() {
        let event = envelope("SKU-A", 1, StockEvent::StockReserved { order_id: "o1".into(), quantity: 2 });
        assert_eq!(OrderFromStock.react(&event), [OrderCommand::RecordStockReserved { order_id: "o1".into(), sku: "SKU-A".into(), quantity: 2 }]);
    }

    #[test]
    fn stock_rejection_is_recorded_on_the_order() {
        let event = envelope("SKU-A", 1, StockEvent::StockReservationRejected { order_id: "o1".into(), requested: 5, available: 3 });
        assert_eq!(
            OrderFromStock.react(&event),
            [OrderCommand::RecordStockRejected { order_id: "o1".into(), sku: "SKU-A".into(), requested: 5, available: 3 }]
        );
    }

    #[test]
    fn other_stock_events_concern_no_order() {
        for payload in [
            StockEvent::StockRestocked { quantity: 1 },
            StockEvent::StockReleased { order_id: "o1".into(), quantity: 1 },
            StockEvent::StockShipped { order_id: "o1".into(), quantity: 1 },
            StockEvent::LowStockThresholdSet { threshold: 5 },
            StockEvent::StockLow { sku: "SKU-A".into(), available: 1, threshold: 5 },
            StockEvent::StockReplenished { sku: "SKU-A".into(), available: 9, threshold: 5 },
        ] {
            assert_eq!(OrderFromStock.react(&envelope("SKU-A", 1, payload)), []);
        }
    }

    #[test]
    fn captured_payment_is_recorded_on_the_order() {
        let event = envelope("c1", 1, AccountEvent::PaymentCaptured { order_id: "o1".into(), amount_cents: 5500, currency: "EUR".into() });
        assert_eq!(OrderFromAccounts.react(&event), [OrderCommand::RecordPaymentCaptured { order_id: "o1".into(), amount_cents: 5500 }]);
    }

    #[test]
    fn declined_payment_is_recorded_with_the_reason_name() {
        for (reason, name) in [
            (DeclineReason::AccountNotFound, "ACCOUNT_NOT_FOUND"),
            (DeclineReason::CurrencyMismatch, "CURRENCY_MISMATCH"),
            (DeclineReason::InsufficientFunds, "INSUFFICIENT_FUNDS"),
        ] {
            let event = envelope("c1", 1, AccountEvent::PaymentDeclined { order_id: "o1".into(), amount_cents: 1, reason });
            assert_eq!(OrderFromAccounts.react(&event), [OrderCommand::RecordPaymentDeclined { order_id: "o1".into(), reason: name.into() }]);
        }
    }

    #[test]
    fn deposits_and_refunds_concern_no_order_step() {
        for payload in [
            AccountEvent::FundsDeposited { amount_cents: 1, currency: "EUR".into() },
            AccountEvent::PaymentRefunded { order_id: "o1".into(), amount_cents: 1, currency: "EUR".into() },
        ] {
            assert_eq!(OrderFromAccounts.react(&envelope("c1", 1, payload)), []);
        }
    }

    #[test]
    fn shipment_events_are_recorded_on_the_order_of_their_key() {
        let lines = vec![ShipmentLine { sku: "SKU-A".into(), quantity: 1 }];
        let cases = [
            (
                ShipmentEvent::ShipmentScheduled {
                    customer_id: "c1".into(),
                    carrier: "DHL".into(),
                    tracking_number: "DHL-1".into(),
                    destination_country: "DE".into(),
                    lines: lines.clone(),
                    shipping_address: None,
                },
                vec![OrderCommand::RecordShipmentScheduled { order_id: "o1".into(), carrier: "DHL".into(), tracking_number: "DHL-1".into() }],
            ),
            (
                ShipmentEvent::ShipmentRejected { customer_id: "c1".into(), reason: "not served".into(), destination_country: "AQ".into() },
                vec![OrderCommand::RecordShipmentRejected { order_id: "o1".into(), reason: "not served".into() }],
            ),
            (
                ShipmentEvent::ShipmentDispatched { customer_id: "c1".into(), lines },
                vec![OrderCommand::RecordShipmentDispatched { order_id: "o1".into() }],
            ),
            (ShipmentEvent::ShipmentDelivered { customer_id: "c1".into() }, vec![OrderCommand::RecordShipmentDelivered { order_id: "o1".into() }]),
            (ShipmentEvent::ShipmentCancelled { customer_id: "c1".into() }, vec![OrderCommand::RecordShipmentCancelled { order_id: "o1".into() }]),
            (
                ShipmentEvent::ShipmentCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() },
                vec![OrderCommand::RecordShipmentCancellationRefused { order_id: "o1".into(), reason: "shipment already dispatched".into() }],
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(OrderFromShipments.react(&envelope("o1", 1, payload)), expected);
        }
    }

    #[test]
    fn policy_names_are_distinct() {
        let names = [OrderFromStock::NAME, OrderFromAccounts::NAME, OrderFromShipments::NAME];
        assert_eq!(names, ["order-from-stock", "order-from-accounts", "order-from-shipments"]);
    }
}

//! Choreography into the Shipment aggregate: paid orders are scheduled for shipping, and a paid
//! order's cancellation request asks for its shipment to be cancelled; the aggregate answers
//! (cancelled, or refused once dispatched) and order-svc follows the answer.
use contracts::EventEnvelope;
use contracts::order::{Order, OrderEvent};
use contracts::shipment::{Shipment, ShipmentCommand, ShipmentLine};
use runtime::Policy;

/// Consumes `order.events`; both streams are keyed by `order_id`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShippingFromOrders;

impl Policy for ShippingFromOrders {
    type Source = Order;
    type Target = Shipment;
    const NAME: &'static str = "shipping-from-orders";

    fn react(&self, event: &EventEnvelope<OrderEvent>) -> Vec<ShipmentCommand> {
        let order_id = event.aggregate_id.clone();
        match &event.payload {
            OrderEvent::OrderPaid { customer_id, shipping_address, lines, .. } => vec![ShipmentCommand::ScheduleShipment {
                order_id,
                customer_id: customer_id.clone(),
                destination_country: shipping_address.country.clone(),
                lines: lines.iter().map(|line| ShipmentLine { sku: line.sku.clone(), quantity: line.quantity }).collect(),
                shipping_address: Some(shipping_address.clone()),
            }],
            OrderEvent::OrderCancellationRequested { customer_id, .. } => {
                vec![ShipmentCommand::CancelShipment { order_id, customer_id: Some(customer_id.clone()) }]
            }
            // From payment on an order is only cancelled once its shipment is (or was rejected),
            // and before payment there is none: this cancels nothing, unless an order was
            // cancelled directly while confirmed (before cancellations became requests).
            OrderEvent::OrderCancelled { .. } => vec![ShipmentCommand::CancelShipment { order_id, customer_id: None }],
            OrderEvent::OrderPlaced { .. }
            | OrderEvent::OrderLineReserved { .. }
            | OrderEvent::OrderStockReserved { .. }
            | OrderEvent::OrderConfirmed { .. }
            | OrderEvent::OrderShipped { .. }
            | OrderEvent::OrderDelivered { .. }
            | OrderEvent::OrderCancellationRefused { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::order::{Address, CancellationReason, OrderLine};
    use runtime::testing::envelope;

    fn order_lines() -> Vec<OrderLine> {
        vec![
            OrderLine { sku: "sku-1".into(), quantity: 2, unit_price_cents: 150 },
            OrderLine { sku: "sku-2".into(), quantity: 1, unit_price_cents: 999 },
        ]
    }

    fn address() -> Address {
        Address { name: "Ada".into(), street: "Main 1".into(), city: "Paris".into(), postal_code: "75001".into(), country: "FR".into() }
    }

    #[test]
    fn paid_order_is_scheduled_to_its_address_country() {
        let event = envelope(
            "o-1",
            4,
            OrderEvent::OrderPaid {
                customer_id: "c-1".into(),
                amount_cents: 1_299,
                currency: "EUR".into(),
                shipping_address: address(),
                lines: order_lines(),
            },
        );
        assert_eq!(
            ShippingFromOrders.react(&event),
            vec![ShipmentCommand::ScheduleShipment {
                order_id: "o-1".into(),
                customer_id: "c-1".into(),
                destination_country: "FR".into(),
                lines: vec![ShipmentLine { sku: "sku-1".into(), quantity: 2 }, ShipmentLine { sku: "sku-2".into(), quantity: 1 },],
                shipping_address: Some(address()),
            }]
        );
    }

    #[test]
    fn cancelled_order_cancels_its_shipment_if_one_was_scheduled() {
        let event = envelope(
            "o-1",
            4,
            OrderEvent::OrderCancelled {
                customer_id: "c-1".into(),
                reason: CancellationReason::CustomerRequest,
                detail: String::new(),
                lines: order_lines(),
            },
        );
        assert_eq!(ShippingFromOrders.react(&event), vec![ShipmentCommand::CancelShipment { order_id: "o-1".into(), customer_id: None }]);
    }

    #[test]
    fn a_cancellation_request_asks_for_the_shipment_to_be_cancelled() {
        let event = envelope(
            "o-1",
            6,
            OrderEvent::OrderCancellationRequested {
                customer_id: "c-1".into(),
                reason: CancellationReason::CustomerRequest,
                detail: "changed my mind".into(),
            },
        );
        assert_eq!(
            ShippingFromOrders.react(&event),
            vec![ShipmentCommand::CancelShipment { order_id: "o-1".into(), customer_id: Some("c-1".into()) }]
        );
    }

    #[test]
    fn other_order_events_need_no_shipping_action() {
        let others = [
            OrderEvent::OrderPlaced {
                customer_id: "c-1".into(),
                lines: order_lines(),
                currency: "EUR".into(),
                shipping_address: address(),
                total_cents: 1_299,
            },
            OrderEvent::OrderLineReserved { sku: "sku-1".into(), quantity: 2 },
            OrderEvent::OrderStockReserved { customer_id: "c-1".into(), total_cents: 1_299, currency: "EUR".into() },
            OrderEvent::OrderConfirmed { customer_id: "c-1".into(), carrier: "DPD".into(), tracking_number: "T".into() },
            OrderEvent::OrderShipped { customer_id: "c-1".into() },
            OrderEvent::OrderDelivered { customer_id: "c-1".into() },
            OrderEvent::OrderCancellationRefused { customer_id: "c-1".into(), reason: "shipment already dispatched".into() },
        ];
        for payload in others {
            assert_eq!(ShippingFromOrders.react(&envelope("o-1", 4, payload.clone())), vec![], "{payload:?}");
        }
    }
}

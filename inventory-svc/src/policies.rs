//! What moves stock besides restocking: orders reserve and release it, dispatched shipments
//! take it out of the warehouse.
use contracts::EventEnvelope;
use contracts::order::{Order, OrderEvent};
use contracts::shipment::{Shipment, ShipmentEvent};
use contracts::stock::{Stock, StockCommand};
use runtime::Policy;

/// `order.events` (key = order_id) → one reservation or release per order line.
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryFromOrders;

impl Policy for InventoryFromOrders {
    type Source = Order;
    type Target = Stock;
    const NAME: &'static str = "inventory-from-orders";

    fn react(&self, event: &EventEnvelope<OrderEvent>) -> Vec<StockCommand> {
        let order_id = &event.aggregate_id;
        match &event.payload {
            OrderEvent::OrderPlaced { lines, .. } => lines
                .iter()
                .map(|line| StockCommand::ReserveStock { sku: line.sku.clone(), order_id: order_id.clone(), quantity: line.quantity })
                .collect(),
            // Every line, reserved or not: releasing a line that holds no reservation is a no-op.
            OrderEvent::OrderCancelled { lines, .. } => {
                lines.iter().map(|line| StockCommand::ReleaseStock { sku: line.sku.clone(), order_id: order_id.clone() }).collect()
            }
            OrderEvent::OrderLineReserved { .. }
            | OrderEvent::OrderStockReserved { .. }
            | OrderEvent::OrderPaid { .. }
            | OrderEvent::OrderConfirmed { .. }
            | OrderEvent::OrderShipped { .. }
            | OrderEvent::OrderDelivered { .. }
            // Stock is released only once the cancellation is decided (OrderCancelled), never
            // for a request that shipping may refuse because the goods already left.
            | OrderEvent::OrderCancellationRequested { .. }
            | OrderEvent::OrderCancellationRefused { .. } => vec![],
        }
    }
}

/// `shipment.events` (key = order_id) → dispatched lines leave the warehouse.
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryFromShipments;

impl Policy for InventoryFromShipments {
    type Source = Shipment;
    type Target = Stock;
    const NAME: &'static str = "inventory-from-shipments";

    fn react(&self, event: &EventEnvelope<ShipmentEvent>) -> Vec<StockCommand> {
        match &event.payload {
            ShipmentEvent::ShipmentDispatched { lines, .. } => {
                lines.iter().map(|line| StockCommand::ShipStock { sku: line.sku.clone(), order_id: event.aggregate_id.clone() }).collect()
            }
            ShipmentEvent::ShipmentScheduled { .. }
            | ShipmentEvent::ShipmentRejected { .. }
            | ShipmentEvent::ShipmentCancelled { .. }
            | ShipmentEvent::ShipmentDelivered { .. }
            | ShipmentEvent::ShipmentCancellationRefused { .. }
            | ShipmentEvent::ShipmentTrackingUpdated { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::order::{Address, CancellationReason, OrderLine};
    use contracts::shipment::ShipmentLine;
    use runtime::testing::envelope;

    fn lines() -> Vec<OrderLine> {
        vec![
            OrderLine { sku: "SKU-A".into(), quantity: 2, unit_price_cents: 100 },
            OrderLine { sku: "SKU-B".into(), quantity: 5, unit_price_cents: 200 },
        ]
    }

    fn address() -> Address {
        Address { name: "Ada".into(), street: "1 Way".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() }
    }

    #[test]
    fn a_placed_order_reserves_each_line() {
        let placed = OrderEvent::OrderPlaced {
            customer_id: "c1".into(),
            lines: lines(),
            currency: "EUR".into(),
            shipping_address: address(),
            total_cents: 1200,
        };
        assert_eq!(
            InventoryFromOrders.react(&envelope("o1", 1, placed)),
            [
                StockCommand::ReserveStock { sku: "SKU-A".into(), order_id: "o1".into(), quantity: 2 },
                StockCommand::ReserveStock { sku: "SKU-B".into(), order_id: "o1".into(), quantity: 5 },
            ]
        );
    }

    #[test]
    fn a_cancelled_order_releases_each_line() {
        let cancelled =
            OrderEvent::OrderCancelled { customer_id: "c1".into(), reason: CancellationReason::OutOfStock, detail: String::new(), lines: lines() };
        assert_eq!(
            InventoryFromOrders.react(&envelope("o1", 1, cancelled)),
            [
                StockCommand::ReleaseStock { sku: "SKU-A".into(), order_id: "o1".into() },
                StockCommand::ReleaseStock { sku: "SKU-B".into(), order_id: "o1".into() },
            ]
        );
    }

    #[test]
    fn other_order_events_move_no_stock() {
        for payload in [
            OrderEvent::OrderLineReserved { sku: "SKU-A".into(), quantity: 2 },
            OrderEvent::OrderStockReserved { customer_id: "c1".into(), total_cents: 1, currency: "EUR".into() },
            OrderEvent::OrderPaid { customer_id: "c1".into(), amount_cents: 1, currency: "EUR".into(), shipping_address: address(), lines: lines() },
            OrderEvent::OrderConfirmed { customer_id: "c1".into(), carrier: "DHL".into(), tracking_number: "T".into() },
            OrderEvent::OrderShipped { customer_id: "c1".into() },
            OrderEvent::OrderDelivered { customer_id: "c1".into() },
            OrderEvent::OrderCancellationRequested { customer_id: "c1".into(), reason: CancellationReason::CustomerRequest, detail: String::new() },
            OrderEvent::OrderCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() },
        ] {
            assert_eq!(InventoryFromOrders.react(&envelope("o1", 1, payload)), []);
        }
    }

    #[test]
    fn a_dispatched_shipment_ships_each_line_of_its_order() {
        let dispatched = ShipmentEvent::ShipmentDispatched {
            customer_id: "c1".into(),
            lines: vec![ShipmentLine { sku: "SKU-A".into(), quantity: 2 }, ShipmentLine { sku: "SKU-B".into(), quantity: 5 }],
        };
        assert_eq!(
            InventoryFromShipments.react(&envelope("o1", 1, dispatched)),
            [
                StockCommand::ShipStock { sku: "SKU-A".into(), order_id: "o1".into() },
                StockCommand::ShipStock { sku: "SKU-B".into(), order_id: "o1".into() },
            ]
        );
    }

    #[test]
    fn other_shipment_events_move_no_stock() {
        for payload in [
            ShipmentEvent::ShipmentScheduled {
                customer_id: "c1".into(),
                carrier: "DHL".into(),
                tracking_number: "T".into(),
                destination_country: "DE".into(),
                lines: vec![ShipmentLine { sku: "SKU-A".into(), quantity: 2 }],
                shipping_address: None,
            },
            ShipmentEvent::ShipmentRejected { customer_id: "c1".into(), reason: "not served".into(), destination_country: "AQ".into() },
            ShipmentEvent::ShipmentCancelled { customer_id: "c1".into() },
            ShipmentEvent::ShipmentDelivered { customer_id: "c1".into() },
            ShipmentEvent::ShipmentCancellationRefused { customer_id: "c1".into(), reason: "shipment already dispatched".into() },
        ] {
            assert_eq!(InventoryFromShipments.react(&envelope("o1", 1, payload)), []);
        }
    }

    #[test]
    fn policy_names_are_stable() {
        assert_eq!([InventoryFromOrders::NAME, InventoryFromShipments::NAME], ["inventory-from-orders", "inventory-from-shipments"]);
    }
}

//! Choreography into the Account aggregate: orders whose stock is reserved get charged, and
//! cancelled orders get their payment back (the aggregate ignores orders it never charged).
use contracts::EventEnvelope;
use contracts::account::{Account, AccountCommand};
use contracts::order::{Order, OrderEvent};
use runtime::Policy;

/// Consumes `order.events` (key `order_id`) and commands accounts (key `customer_id`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentFromOrders;

impl Policy for PaymentFromOrders {
    type Source = Order;
    type Target = Account;
    const NAME: &'static str = "payment-from-orders";

    fn react(&self, event: &EventEnvelope<OrderEvent>) -> Vec<AccountCommand> {
        let order_id = event.aggregate_id.clone();
        match &event.payload {
            OrderEvent::OrderStockReserved { customer_id, total_cents, currency } => vec![AccountCommand::CapturePayment {
                customer_id: customer_id.clone(),
                order_id,
                amount_cents: *total_cents,
                currency: currency.clone(),
            }],
            OrderEvent::OrderCancelled { customer_id, .. } => {
                vec![AccountCommand::RefundPayment { customer_id: customer_id.clone(), order_id }]
            }
            OrderEvent::OrderPlaced { .. }
            | OrderEvent::OrderLineReserved { .. }
            | OrderEvent::OrderPaid { .. }
            | OrderEvent::OrderConfirmed { .. }
            | OrderEvent::OrderShipped { .. }
            | OrderEvent::OrderDelivered { .. }
            // A request is refunded only once it becomes OrderCancelled: shipping may refuse it.
            | OrderEvent::OrderCancellationRequested { .. }
            | OrderEvent::OrderCancellationRefused { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::order::{Address, CancellationReason, OrderLine};
    use runtime::testing::envelope;

    fn line() -> OrderLine {
        OrderLine { sku: "sku-1".into(), quantity: 2, unit_price_cents: 150 }
    }

    fn address() -> Address {
        Address { name: "Ada".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() }
    }

    #[test]
    fn stock_reserved_order_is_charged_its_total() {
        let event = envelope("o-1", 2, OrderEvent::OrderStockReserved { customer_id: "c-1".into(), total_cents: 300, currency: "EUR".into() });
        assert_eq!(
            PaymentFromOrders.react(&event),
            vec![AccountCommand::CapturePayment { customer_id: "c-1".into(), order_id: "o-1".into(), amount_cents: 300, currency: "EUR".into() }]
        );
    }

    #[test]
    fn cancelled_order_is_refunded() {
        let event = envelope(
            "o-1",
            2,
            OrderEvent::OrderCancelled {
                customer_id: "c-1".into(),
                reason: CancellationReason::CustomerRequest,
                detail: String::new(),
                lines: vec![line()],
            },
        );
        assert_eq!(PaymentFromOrders.react(&event), vec![AccountCommand::RefundPayment { customer_id: "c-1".into(), order_id: "o-1".into() }]);
    }

    #[test]
    fn other_order_events_need_no_payment_action() {
        let others = [
            OrderEvent::OrderPlaced {
                customer_id: "c-1".into(),
                lines: vec![line()],
                currency: "EUR".into(),
                shipping_address: address(),
                total_cents: 300,
            },
            OrderEvent::OrderLineReserved { sku: "sku-1".into(), quantity: 2 },
            OrderEvent::OrderPaid {
                customer_id: "c-1".into(),
                amount_cents: 300,
                currency: "EUR".into(),
                shipping_address: address(),
                lines: vec![line()],
            },
            OrderEvent::OrderConfirmed { customer_id: "c-1".into(), carrier: "DHL".into(), tracking_number: "T".into() },
            OrderEvent::OrderShipped { customer_id: "c-1".into() },
            OrderEvent::OrderDelivered { customer_id: "c-1".into() },
            OrderEvent::OrderCancellationRequested {
                customer_id: "c-1".into(),
                reason: CancellationReason::CustomerRequest,
                detail: "changed my mind".into(),
            },
            OrderEvent::OrderCancellationRefused { customer_id: "c-1".into(), reason: "shipment already dispatched".into() },
        ];
        for payload in others {
            assert_eq!(PaymentFromOrders.react(&envelope("o-1", 2, payload.clone())), vec![], "{payload:?}");
        }
    }
}

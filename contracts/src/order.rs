//! Order aggregate: topics `order.events` / `order.commands`, key `order_id`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantArray, VariantNames};

crate::stream!(Order, "order", "order_id", OrderEvent, OrderCommand);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Address {
    pub name: String,
    pub street: String,
    pub city: String,
    pub postal_code: String,
    /// ISO-3166 alpha-2 code, e.g. `DE`.
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderLine {
    pub sku: String,
    pub quantity: i32,
    pub unit_price_cents: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr, VariantArray)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationReason {
    OutOfStock,
    PaymentDeclined,
    ShippingUnavailable,
    CustomerRequest,
    /// A step of the saga got no reply within its deadline (order-svc's `deadlines`).
    Timeout,
}

/// A step of the order saga that waits for another service's reply, each with its own
/// deadline: stock for every line, the payment, the scheduling of the shipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum SagaStep {
    Stock,
    Payment,
    Shipment,
}

/// Payload union of `order.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum OrderEvent {
    OrderPlaced { customer_id: String, lines: Vec<OrderLine>, currency: String, shipping_address: Address, total_cents: i64 },
    OrderLineReserved { sku: String, quantity: i32 },
    OrderStockReserved { customer_id: String, total_cents: i64, currency: String },
    OrderPaid { customer_id: String, amount_cents: i64, currency: String, shipping_address: Address, lines: Vec<OrderLine> },
    OrderConfirmed { customer_id: String, carrier: String, tracking_number: String },
    OrderShipped { customer_id: String },
    OrderDelivered { customer_id: String },
    OrderCancelled { customer_id: String, reason: CancellationReason, detail: String, lines: Vec<OrderLine> },
    OrderCancellationRequested { customer_id: String, reason: CancellationReason, detail: String },
    OrderCancellationRefused { customer_id: String, reason: String },
}

/// Commands on `order.commands`. The first two come from users; the `Record*` ones are issued
/// by order-svc's own policies when other services' events concern an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum OrderCommand {
    PlaceOrder {
        order_id: String,
        customer_id: String,
        lines: Vec<OrderLine>,
        currency: String,
        shipping_address: Address,
    },
    CancelOrder {
        order_id: String,
        #[serde(default)]
        reason: Option<String>,
    },
    RecordStockReserved {
        order_id: String,
        sku: String,
        quantity: i32,
    },
    RecordStockRejected {
        order_id: String,
        sku: String,
        requested: i32,
        available: i32,
    },
    RecordPaymentCaptured {
        order_id: String,
        amount_cents: i64,
    },
    RecordPaymentDeclined {
        order_id: String,
        reason: String,
    },
    RecordShipmentScheduled {
        order_id: String,
        carrier: String,
        tracking_number: String,
    },
    RecordShipmentRejected {
        order_id: String,
        reason: String,
    },
    RecordShipmentDispatched {
        order_id: String,
    },
    RecordShipmentDelivered {
        order_id: String,
    },
    /// The order waited in `step` past its deadline (`deadline_ms`, for the cancellation's
    /// detail): issued by order-svc's deadlines, a no-op once the order has left that step.
    TimeOutOrder {
        order_id: String,
        step: SagaStep,
        #[serde(default)]
        deadline_ms: Option<i64>,
    },
    RecordShipmentCancelled {
        order_id: String,
    },
    RecordShipmentCancellationRefused {
        order_id: String,
        reason: String,
    },
}

impl crate::CommandTarget for OrderCommand {
    fn aggregate_id(&self) -> &str {
        use OrderCommand::*;
        match self {
            PlaceOrder { order_id, .. }
            | CancelOrder { order_id, .. }
            | RecordStockReserved { order_id, .. }
            | RecordStockRejected { order_id, .. }
            | RecordPaymentCaptured { order_id, .. }
            | RecordPaymentDeclined { order_id, .. }
            | RecordShipmentScheduled { order_id, .. }
            | RecordShipmentRejected { order_id, .. }
            | RecordShipmentDispatched { order_id }
            | RecordShipmentDelivered { order_id }
            | TimeOutOrder { order_id, .. }
            | RecordShipmentCancelled { order_id }
            | RecordShipmentCancellationRefused { order_id, .. } => order_id,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

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

impl crate::validate::Validate for OrderCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::CommandTarget;
        use crate::validate::{MAX_CANCEL_REASON_CHARS, MAX_REPORTED_REASON_CHARS, id, text, within};
        use OrderCommand::*;
        id("order_id", self.aggregate_id())?;
        match self {
            PlaceOrder { customer_id, lines, currency, shipping_address, .. } => {
                id("customer_id", customer_id)?;
                validate_lines(lines)?;
                crate::validate::currency(currency)?;
                validate_address(shipping_address)
            }
            CancelOrder { reason, .. } => text("reason", reason.as_deref().unwrap_or_default(), MAX_CANCEL_REASON_CHARS),
            RecordStockReserved { sku, quantity, .. } => {
                id("sku", sku)?;
                within("quantity", *quantity, 1..=crate::validate::MAX_LINE_QUANTITY)
            }
            // `available` is what stock had, which an oversold SKU may have below zero.
            RecordStockRejected { sku, requested, .. } => {
                id("sku", sku)?;
                within("requested", *requested, 1..=crate::validate::MAX_LINE_QUANTITY)
            }
            // Zero is a capture too: an order of free items.
            RecordPaymentCaptured { amount_cents, .. } => within("amount_cents", *amount_cents, 0..=crate::validate::MAX_AMOUNT_CENTS),
            RecordPaymentDeclined { reason, .. } | RecordShipmentRejected { reason, .. } | RecordShipmentCancellationRefused { reason, .. } => {
                text("reason", reason, MAX_REPORTED_REASON_CHARS)
            }
            RecordShipmentScheduled { carrier, tracking_number, .. } => {
                id("carrier", carrier)?;
                id("tracking_number", tracking_number)
            }
            TimeOutOrder { deadline_ms, .. } => match deadline_ms {
                Some(deadline_ms) => crate::validate::at_least("deadline_ms", *deadline_ms, 0),
                None => Ok(()),
            },
            RecordShipmentDispatched { .. } | RecordShipmentDelivered { .. } | RecordShipmentCancelled { .. } => Ok(()),
        }
    }
}

/// An order's lines: 1 to `MAX_ORDER_LINES`, one per SKU, each quantity within bounds, no
/// negative price, and a total that stays within `MAX_AMOUNT_CENTS`.
fn validate_lines(lines: &[OrderLine]) -> Result<(), crate::validate::InvalidField> {
    use crate::validate::{MAX_AMOUNT_CENTS, MAX_LINE_QUANTITY, MAX_ORDER_LINES, at_least, count, id, invalid, within};
    count("lines", lines.len(), 1..=MAX_ORDER_LINES)?;
    let mut seen_skus = std::collections::HashSet::new();
    let mut total_cents: i64 = 0;
    for (i, line) in lines.iter().enumerate() {
        id(&format!("lines[{i}].sku"), &line.sku)?;
        within(&format!("lines[{i}].quantity"), line.quantity, 1..=MAX_LINE_QUANTITY)?;
        at_least(&format!("lines[{i}].unit_price_cents"), line.unit_price_cents, 0)?;
        if !seen_skus.insert(line.sku.as_str()) {
            return Err(invalid(&format!("lines[{i}].sku"), format!("sku {} appears in more than one line", line.sku)));
        }
        total_cents = line
            .unit_price_cents
            .checked_mul(i64::from(line.quantity))
            .and_then(|line_total| total_cents.checked_add(line_total))
            .filter(|total| *total <= MAX_AMOUNT_CENTS)
            .ok_or_else(|| invalid("lines", format!("the order total must be at most {MAX_AMOUNT_CENTS} cents")))?;
    }
    Ok(())
}

fn validate_address(address: &Address) -> Result<(), crate::validate::InvalidField> {
    crate::validate::country("shipping_address.country", &address.country)?;
    validate_address_lines(address)
}

/// The lines of an address a person writes on a parcel: name, street, city and postal code
/// (the country is checked where it matters: an order's must be a known code).
pub fn validate_address_lines(address: &Address) -> Result<(), crate::validate::InvalidField> {
    use crate::validate::{MAX_ADDRESS_FIELD_CHARS, required_text};
    for (field, value) in [("name", &address.name), ("street", &address.street), ("city", &address.city), ("postal_code", &address.postal_code)] {
        required_text(&format!("shipping_address.{field}"), value, MAX_ADDRESS_FIELD_CHARS)?;
    }
    Ok(())
}

/// The total of lines that passed [`Validate`](crate::validate::Validate): it fits `i64`.
pub fn order_total_cents(lines: &[OrderLine]) -> i64 {
    lines.iter().map(|line| line.unit_price_cents.saturating_mul(i64::from(line.quantity))).fold(0, i64::saturating_add)
}

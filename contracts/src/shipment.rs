//! Shipment aggregate (one per order): topics `shipment.events` / `shipment.commands`, key `order_id`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Shipment, "shipment", "order_id", ShipmentEvent, ShipmentCommand);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub sku: String,
    pub quantity: i32,
}

/// Payload union of `shipment.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum ShipmentEvent {
    ShipmentScheduled { customer_id: String, carrier: String, tracking_number: String, destination_country: String, lines: Vec<ShipmentLine> },
    ShipmentRejected { customer_id: String, reason: String, destination_country: String },
    ShipmentCancelled { customer_id: String },
    ShipmentDispatched { customer_id: String, lines: Vec<ShipmentLine> },
    ShipmentDelivered { customer_id: String },
    ShipmentCancellationRefused { customer_id: String, reason: String },
}

/// Commands on `shipment.commands`: `DispatchShipment`/`ConfirmDelivery` from users (the warehouse
/// and the carrier), the rest from shipping-svc's policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum ShipmentCommand {
    ScheduleShipment {
        order_id: String,
        customer_id: String,
        destination_country: String,
        lines: Vec<ShipmentLine>,
    },
    /// Before any shipment was scheduled, a cancel with `customer_id` is recorded
    /// (`ShipmentCancelled`) and keeps a later `ScheduleShipment` from scheduling one; without
    /// it, such a cancel changes nothing. After dispatch it is answered with
    /// `ShipmentCancellationRefused`.
    CancelShipment {
        order_id: String,
        #[serde(default)]
        customer_id: Option<String>,
    },
    DispatchShipment {
        order_id: String,
    },
    ConfirmDelivery {
        order_id: String,
    },
}

impl crate::CommandTarget for ShipmentCommand {
    fn aggregate_id(&self) -> &str {
        use ShipmentCommand::*;
        match self {
            ScheduleShipment { order_id, .. } | CancelShipment { order_id, .. } | DispatchShipment { order_id } | ConfirmDelivery { order_id } => {
                order_id
            }
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

impl crate::validate::Validate for ShipmentCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::validate::{MAX_COUNTRY_CHARS, MAX_LINE_QUANTITY, MAX_ORDER_LINES, count, id, text, within};
        use ShipmentCommand::*;
        match self {
            // The country is checked against the served ones by the decider: one not served is
            // a `ShipmentRejected`, an outcome the order hears of, not a malformed command.
            ScheduleShipment { order_id, customer_id, destination_country, lines } => {
                id("order_id", order_id)?;
                id("customer_id", customer_id)?;
                text("destination_country", destination_country, MAX_COUNTRY_CHARS)?;
                count("lines", lines.len(), 1..=MAX_ORDER_LINES)?;
                for (i, line) in lines.iter().enumerate() {
                    id(&format!("lines[{i}].sku"), &line.sku)?;
                    within(&format!("lines[{i}].quantity"), line.quantity, 1..=MAX_LINE_QUANTITY)?;
                }
                Ok(())
            }
            CancelShipment { order_id, customer_id } => {
                id("order_id", order_id)?;
                customer_id.as_deref().map_or(Ok(()), |customer_id| id("customer_id", customer_id))
            }
            DispatchShipment { order_id } | ConfirmDelivery { order_id } => id("order_id", order_id),
        }
    }
}

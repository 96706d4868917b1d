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

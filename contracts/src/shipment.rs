//! Shipment aggregate (one per order): topics `shipment.events` / `shipment.commands`, key `order_id`.
use crate::order::Address;
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Shipment, "shipment", "order_id", ShipmentEvent, ShipmentCommand);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentLine {
    pub sku: String,
    pub quantity: i32,
}

/// Where a dispatched shipment is, as its carrier reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum TrackingStatus {
    InTransit,
    OutForDelivery,
    /// A delivery attempt failed; the carrier tries again (or returns it) and reports so.
    DeliveryFailed,
}

/// Payload union of `shipment.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum ShipmentEvent {
    /// `shipping_address` is absent from shipments scheduled before labels existed.
    ShipmentScheduled {
        customer_id: String,
        carrier: String,
        tracking_number: String,
        destination_country: String,
        lines: Vec<ShipmentLine>,
        #[serde(default)]
        shipping_address: Option<Address>,
    },
    ShipmentRejected {
        customer_id: String,
        reason: String,
        destination_country: String,
    },
    ShipmentCancelled {
        customer_id: String,
    },
    ShipmentDispatched {
        customer_id: String,
        lines: Vec<ShipmentLine>,
    },
    ShipmentDelivered {
        customer_id: String,
    },
    ShipmentCancellationRefused {
        customer_id: String,
        reason: String,
    },
    /// The carrier's report on a dispatched shipment; `at` is when it happened (epoch ms).
    ShipmentTrackingUpdated {
        customer_id: String,
        status: TrackingStatus,
        location: String,
        at: i64,
    },
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
        /// Where the label sends it; optional for a shipment scheduled by hand.
        #[serde(default)]
        shipping_address: Option<Address>,
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
    /// From the carrier, for a dispatched shipment: `at` in epoch milliseconds.
    RecordTrackingUpdate {
        order_id: String,
        status: TrackingStatus,
        location: String,
        at: i64,
    },
}

impl crate::CommandTarget for ShipmentCommand {
    fn aggregate_id(&self) -> &str {
        use ShipmentCommand::*;
        match self {
            ScheduleShipment { order_id, .. }
            | CancelShipment { order_id, .. }
            | DispatchShipment { order_id }
            | ConfirmDelivery { order_id }
            | RecordTrackingUpdate { order_id, .. } => order_id,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

impl crate::validate::Validate for ShipmentCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::validate::{
            MAX_ADDRESS_FIELD_CHARS, MAX_COUNTRY_CHARS, MAX_EPOCH_MS, MAX_LINE_QUANTITY, MAX_ORDER_LINES, count, id, required_text, text, within,
        };
        use ShipmentCommand::*;
        match self {
            // The country is checked against the served ones by the decider: one not served is
            // a `ShipmentRejected`, an outcome the order hears of, not a malformed command.
            ScheduleShipment { order_id, customer_id, destination_country, lines, shipping_address } => {
                id("order_id", order_id)?;
                id("customer_id", customer_id)?;
                text("destination_country", destination_country, MAX_COUNTRY_CHARS)?;
                if let Some(address) = shipping_address {
                    crate::order::validate_address_lines(address)?;
                }
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
            RecordTrackingUpdate { order_id, location, at, .. } => {
                id("order_id", order_id)?;
                required_text("location", location, MAX_ADDRESS_FIELD_CHARS)?;
                within("at", *at, 1..=MAX_EPOCH_MS)
            }
        }
    }
}

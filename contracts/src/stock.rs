//! Stock aggregate (one per SKU): topics `stock.events` / `stock.commands`, key `sku`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Stock, "stock", "sku", StockEvent, StockCommand);

/// Payload union of `stock.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum StockEvent {
    StockRestocked { quantity: i32 },
    StockReserved { order_id: String, quantity: i32 },
    StockReservationRejected { order_id: String, requested: i32, available: i32 },
    StockReleased { order_id: String, quantity: i32 },
    StockShipped { order_id: String, quantity: i32 },
}

/// Commands on `stock.commands`: `RestockItem` from users, the rest from inventory-svc's policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum StockCommand {
    RestockItem { sku: String, quantity: i32 },
    ReserveStock { sku: String, order_id: String, quantity: i32 },
    ReleaseStock { sku: String, order_id: String },
    ShipStock { sku: String, order_id: String },
}

impl crate::CommandTarget for StockCommand {
    fn aggregate_id(&self) -> &str {
        use StockCommand::*;
        match self {
            RestockItem { sku, .. } | ReserveStock { sku, .. } | ReleaseStock { sku, .. } | ShipStock { sku, .. } => sku,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

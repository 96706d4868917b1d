//! Stock aggregate (one per SKU): topics `stock.events` / `stock.commands`, key `sku`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Stock, "stock", "sku", StockEvent, StockCommand);

/// Payload union of `stock.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum StockEvent {
    StockRestocked {
        quantity: i32,
    },
    StockReserved {
        order_id: String,
        quantity: i32,
    },
    StockReservationRejected {
        order_id: String,
        requested: i32,
        available: i32,
    },
    StockReleased {
        order_id: String,
        quantity: i32,
    },
    StockShipped {
        order_id: String,
        quantity: i32,
    },
    /// The SKU's own low-stock threshold; `0` turns its alerts off.
    LowStockThresholdSet {
        threshold: i64,
    },
    /// Available stock fell below the threshold: raised once per crossing.
    StockLow {
        sku: String,
        available: i64,
        threshold: i64,
    },
    /// Available stock is back at or above the threshold after a `StockLow`.
    StockReplenished {
        sku: String,
        available: i64,
        threshold: i64,
    },
}

/// Commands on `stock.commands`: `RestockItem` and `SetLowStockThreshold` from users, the rest
/// from inventory-svc's policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum StockCommand {
    RestockItem { sku: String, quantity: i32 },
    ReserveStock { sku: String, order_id: String, quantity: i32 },
    ReleaseStock { sku: String, order_id: String },
    ShipStock { sku: String, order_id: String },
    SetLowStockThreshold { sku: String, threshold: i64 },
}

impl crate::CommandTarget for StockCommand {
    fn aggregate_id(&self) -> &str {
        use StockCommand::*;
        match self {
            RestockItem { sku, .. }
            | ReserveStock { sku, .. }
            | ReleaseStock { sku, .. }
            | ShipStock { sku, .. }
            | SetLowStockThreshold { sku, .. } => sku,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

impl crate::validate::Validate for StockCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::validate::{MAX_LINE_QUANTITY, MAX_LOW_STOCK_THRESHOLD, MAX_RESTOCK_QUANTITY, id, within};
        use StockCommand::*;
        match self {
            RestockItem { sku, quantity } => {
                id("sku", sku)?;
                within("quantity", *quantity, 1..=MAX_RESTOCK_QUANTITY)
            }
            // A reservation is for one order line.
            ReserveStock { sku, order_id, quantity } => {
                id("sku", sku)?;
                id("order_id", order_id)?;
                within("quantity", *quantity, 1..=MAX_LINE_QUANTITY)
            }
            ReleaseStock { sku, order_id } | ShipStock { sku, order_id } => {
                id("sku", sku)?;
                id("order_id", order_id)
            }
            SetLowStockThreshold { sku, threshold } => {
                id("sku", sku)?;
                within("threshold", *threshold, 0..=MAX_LOW_STOCK_THRESHOLD)
            }
        }
    }
}

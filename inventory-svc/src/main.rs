//! inventory-svc: owns the Stock aggregate (one per SKU). Reserves stock for placed orders,
//! releases it for cancelled ones and ships it when a shipment is dispatched.
use anyhow::Context;
use contracts::stock::Stock;
use inventory_svc::{MIGRATOR, VERSION, policies, read_model, routes, stock::StockDecider};
use runtime::{Projection, Service};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let decider = StockDecider::from_env().context("inventory-svc does not start")?;
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    service
        .aggregate(decider)?
        .policy(policies::InventoryFromOrders)?
        .policy(policies::InventoryFromShipments)?
        .projection(|registry| Projection::new("stock", &["stock", "reservations"]).from::<Stock>(registry, read_model::project_stock))?
        .routes(routes());
    service.run().await?;
    Ok(())
}

//! inventory-svc: owns the Stock aggregate (one per SKU). Reserves stock for placed orders,
//! releases it for cancelled ones and ships it when a shipment is dispatched.
use contracts::stock::Stock;
use inventory_svc::{policies, read_model, stock::StockDecider, write_api};
use runtime::{Projection, Service};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start("inventory-svc", 8002, &MIGRATOR).await?;
    service
        .aggregate(StockDecider)?
        .policy(policies::InventoryFromOrders)?
        .policy(policies::InventoryFromShipments)?
        .projection(|registry| Projection::new("stock", &["stock", "reservations"]).from::<Stock>(registry, read_model::project_stock))?
        .routes(read_model::routes())
        .routes(write_api::routes())
        .routes(runtime::openapi::routes(write_api::openapi()));
    service.run().await?;
    Ok(())
}

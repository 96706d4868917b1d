//! shipping-svc: owns the Shipment aggregate (one per order). Schedules shipments for paid
//! orders to served countries (`SHIPPING_COUNTRIES`), cancels them for cancelled orders, and
//! takes dispatch and delivery confirmations.
use contracts::shipment::Shipment;
use runtime::{Projection, Service};
use shipping_svc::{
    MIGRATOR, VERSION, policies, read_model, routes,
    shipment::{ShipmentDecider, shipping_countries_from_env},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    let shipping_countries = shipping_countries_from_env();
    tracing::info!(?shipping_countries, "serving destination countries");
    service
        .aggregate(ShipmentDecider { shipping_countries })?
        .policy(policies::ShippingFromOrders)?
        .projection(|registry| {
            Projection::new("shipments", &["shipments", "shipment_tracking"]).from::<Shipment>(registry, read_model::project_shipment)
        })?
        .routes(routes());
    service.run().await?;
    Ok(())
}

//! order-svc: owns the Order aggregate. Places and cancels orders, and follows inventory,
//! payment and shipping events to move each order through its saga.
use contracts::order::Order;
use order_svc::{order::OrderDecider, policies, read_model, write_api};
use runtime::{Projection, Service};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start("order-svc", 8001, &MIGRATOR).await?;
    service
        .aggregate(OrderDecider)?
        .policy(policies::OrderFromStock)?
        .policy(policies::OrderFromAccounts)?
        .policy(policies::OrderFromShipments)?
        .projection(|registry| Projection::new("orders").from::<Order>(registry, read_model::project_order))?
        .routes(read_model::routes())
        .routes(write_api::routes());
    service.run().await?;
    Ok(())
}

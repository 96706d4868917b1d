//! order-svc: owns the Order aggregate. Places and cancels orders, and follows inventory,
//! payment and shipping events to move each order through its saga.
use contracts::order::Order;
use order_svc::{
    order::OrderDecider,
    policies, read_model,
    saga_metrics::{SagaMetrics, publish_order_counts},
    write_api,
};
use runtime::Service;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start("order-svc", 8001, &MIGRATOR).await?;
    service
        .aggregate(OrderDecider)?
        .policy(policies::OrderFromStock)?
        .policy(policies::OrderFromAccounts)?
        .policy(policies::OrderFromShipments)?
        .reactor::<Order, _>(SagaMetrics::default())?
        .projection(read_model::projection)?
        .routes(read_model::routes())
        .routes(write_api::routes())
        .routes(runtime::openapi::routes(write_api::openapi()));
    tokio::spawn(publish_order_counts(service.pool.clone(), std::time::Duration::from_secs(2)));
    service.run().await?;
    Ok(())
}

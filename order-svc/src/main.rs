//! order-svc: owns the Order aggregate. Places and cancels orders, and follows inventory,
//! payment and shipping events to move each order through its saga.
use contracts::order::Order;
use order_svc::{
    MIGRATOR, VERSION,
    order::OrderDecider,
    policies, read_model, routes,
    saga_metrics::{SagaMetrics, publish_order_counts},
};
use runtime::Service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    service
        .aggregate(OrderDecider)?
        .policy(policies::OrderFromStock)?
        .policy(policies::OrderFromAccounts)?
        .policy(policies::OrderFromShipments)?
        .reactor::<Order, _>(SagaMetrics::default())?
        .projection(read_model::projection)?
        .routes(routes());
    tokio::spawn(publish_order_counts(service.pool.clone(), std::time::Duration::from_secs(2)));
    service.run().await?;
    Ok(())
}

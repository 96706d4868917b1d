//! order-svc: owns the Order aggregate. Places and cancels orders, follows inventory, payment
//! and shipping events to move each order through its saga, and times out the steps that wait
//! too long.
use anyhow::Context;
use contracts::order::Order;
use order_svc::{
    MIGRATOR, VERSION, console,
    deadlines::{DeadlineConfig, OrderDeadlines},
    order::OrderDecider,
    policies, read_model, routes,
    saga_metrics::{SagaMetrics, publish_order_counts},
    stuck::{self, StuckReport},
};
use runtime::Service;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A deadline set wrong would cancel orders that are doing fine, or let stuck ones wait on:
    // an invalid setting stops the start instead of falling back to a default.
    let deadlines = DeadlineConfig::from_env().context("order-svc does not start")?;
    let console_services = console::services_from_env().context("order-svc does not start")?;
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    tracing::info!(?deadlines, "order saga deadlines");
    let stuck_report = StuckReport { brokers: service.config.kafka_brokers.clone(), deadlines };
    service
        .aggregate(OrderDecider)?
        .deadlines(OrderDeadlines(deadlines))?
        .policy(policies::OrderFromStock)?
        .policy(policies::OrderFromAccounts)?
        .policy(policies::OrderFromShipments)?
        .reactor::<Order, _>(SagaMetrics::default())?
        .projection(read_model::projection)?
        .projection(|_| Ok(stuck::parked_events()))?
        .routes(routes().layer(stuck_report.layer()))
        .routes(console::routes(console_services));
    tokio::spawn(publish_order_counts(service.pool.clone(), std::time::Duration::from_secs(2)));
    service.run().await?;
    Ok(())
}

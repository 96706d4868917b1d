//! payment-svc: owns the Account aggregate (one per customer). Captures payment for orders
//! whose stock is reserved and refunds captured payments of cancelled orders.
use contracts::account::Account;
use payment_svc::{MIGRATOR, VERSION, account::AccountDecider, policies, read_model, routes};
use runtime::{Projection, Service};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start(env!("CARGO_PKG_NAME"), VERSION, &MIGRATOR).await?;
    service
        .aggregate(AccountDecider)?
        .policy(policies::PaymentFromOrders)?
        .projection(|registry| Projection::new("accounts", &["accounts", "payments"]).from::<Account>(registry, read_model::project_account))?
        .routes(routes());
    service.run().await?;
    Ok(())
}

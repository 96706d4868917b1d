//! payment-svc: owns the Account aggregate (one per customer). Captures payment for orders
//! whose stock is reserved and refunds captured payments of cancelled orders.
use contracts::account::Account;
use payment_svc::{account::AccountDecider, policies, read_model, write_api};
use runtime::{Projection, Service};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut service = Service::start("payment-svc", 8003, &MIGRATOR).await?;
    service
        .aggregate(AccountDecider)?
        .policy(policies::PaymentFromOrders)?
        .projection(|registry| Projection::new("accounts", &["accounts", "payments"]).from::<Account>(registry, read_model::project_account))?
        .routes(read_model::routes())
        .routes(write_api::routes())
        .routes(runtime::openapi::routes(write_api::openapi()));
    service.run().await?;
    Ok(())
}

//! payment-svc: the Account aggregate (one per customer), the policy that turns order events
//! into payment commands, and the accounts/payments read model.
pub mod account;
pub mod policies;
pub mod read_model;
pub mod write_api;

/// The read-model tables (`migrations/`), applied when the service starts (and by the
/// read-model tests in `tests/read_model_db.rs`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The crate's version: with its name, the title of the service's OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every read and write route of the service, documented by its handlers.
pub fn routes() -> runtime::http::ApiRoutes {
    read_model::api().merge(write_api::api())
}

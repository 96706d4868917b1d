//! shipping-svc: the Shipment aggregate (one per order), the policy that turns paid and
//! cancelled orders into shipment commands, and the shipments read model.
pub mod label;
pub mod policies;
pub mod read_model;
pub mod shipment;
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

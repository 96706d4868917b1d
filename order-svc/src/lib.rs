//! order-svc: the Order aggregate, the policies that move the order saga along, the deadlines
//! of its waits, and the order view.
pub mod console;
pub mod deadlines;
pub mod order;
pub mod policies;
pub mod read_model;
pub mod saga_metrics;
pub mod stuck;
pub mod write_api;

/// The read-model tables (`migrations/`), applied when the service starts (and by the
/// read-model tests in `tests/read_model_db.rs`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The crate's version: with its name, the title of the service's OpenAPI document.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every read and write route of the service, documented by its handlers.
pub fn routes() -> runtime::http::ApiRoutes {
    read_model::api().merge(write_api::api()).merge(stuck::api())
}

/// One order's events, shared with `tests/read_model_db.rs`.
#[cfg(test)]
#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

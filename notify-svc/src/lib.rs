//! notify-svc: the Notification aggregate (one per customer), the policies that turn order and
//! account events into notifications, their delivery ([`delivery`]: retries, circuit breaker,
//! parking; [`sender`]: file or webhook), the message [`templates`] and the notifications read
//! model.
pub mod delivery;
pub mod notification;
pub mod policies;
pub mod read_model;
pub mod sender;
pub mod templates;
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

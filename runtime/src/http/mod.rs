//! The HTTP side every service shares: the route state (`state`), the one error shape
//! (`error`), the write path that only produces commands (`command_bus`, `write`), list
//! parameters (`params`), `GET /commands/{command_id}` (`commands`), the OpenAPI document built
//! from the handlers (`openapi`), the operational routes (`ops`: health, readiness, metrics,
//! pause), who may call what (`access`: the API token) and the middleware that counts and
//! traces every request.
//!
//! Services use what is re-exported here.
pub mod access;
mod command_bus;
mod commands;
mod error;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub(crate) mod ops;
mod params;
mod state;
mod write;

pub use command_bus::{CommandBus, SendCommandError};
pub use error::{ApiError, JsonBody};
pub use params::{DEFAULT_LIMIT, MAX_LIMIT, limit};
pub use state::{ApiRoutes, AppState, ProjectionProgress, QueryRoutes, ReadDb};
pub use write::{Accepted, CommandErrors, IDEMPOTENCY_KEY_HEADER, IdempotencyKey, IdempotentCommandErrors, InvalidIdempotencyKey, submit};

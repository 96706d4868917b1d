//! `GET /commands/{command_id}`: what became of a command, from the `command_outcomes` read
//! model every aggregate has.
use super::{ApiError, ApiRoutes, ReadDb};
use crate::projection::command_outcomes::{self, CommandOutcome};
use axum::{
    Json,
    extract::{Path, State},
};

/// The shared route, with its OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(get_command))
}

/// What became of a command: `PENDING` (unknown or in flight), `ACCEPTED` with its events, or
/// `REJECTED` with the reason. Works for commands sent over HTTP and with kcat alike.
#[utoipa::path(get, path = "/commands/{command_id}", tag = "runtime",
    params(("command_id" = String, Path, description = "The `command_id` a write route answered with, or the one a kcat command carried")),
    responses(
        (status = 200, description = "The command's outcome so far", body = CommandOutcome),
        (status = 500, description = "Read-model database error", body = ApiError)))]
pub async fn get_command(State(ReadDb(pool)): State<ReadDb>, Path(command_id): Path<String>) -> Result<Json<CommandOutcome>, ApiError> {
    Ok(Json(command_outcomes::find(&pool, command_id).await?))
}

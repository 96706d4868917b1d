//! The write side over HTTP: `PUT /preferences/{customer_id}` only produces a `SetPreferences`
//! on `notification.commands` (the same path a kcat user takes) and answers 202 with the
//! command id to look the outcome up at `GET /commands/{command_id}`.
use axum::{extract::{Path, State}, routing::put};
use contracts::notification::{Channel, Notification, NotificationCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}};
use serde::Deserialize;

pub fn routes() -> QueryRoutes {
    QueryRoutes::new().route("/preferences/{customer_id}", put(set_preferences))
}

#[derive(Deserialize)]
struct PreferencesRequest {
    command_id: Option<String>,
    /// `EMAIL` or `SMS`.
    channel: Channel,
    recipient: String,
}

async fn set_preferences(
    State(bus): State<CommandBus>,
    Path(customer_id): Path<String>,
    JsonBody(request): JsonBody<PreferencesRequest>,
) -> Result<Accepted, ApiError> {
    let command = NotificationCommand::SetPreferences { customer_id: customer_id.clone(), channel: request.channel, recipient: request.recipient };
    submit::<Notification>(&bus, request.command_id, command, "customer_id").await
}

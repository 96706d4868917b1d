//! The write side over HTTP: `PUT /preferences/{customer_id}` only produces a `SetPreferences`
//! on `notification.commands` (the same path a kcat user takes) and answers 202 with the
//! command id to look the outcome up at `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::notification::{Channel, Notification, NotificationCommand, NotificationKind};
use runtime::http::{Accepted, ApiError, ApiRoutes, CommandBus, CommandErrors, JsonBody, submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The write routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(set_preferences))
}

#[derive(Deserialize, ToSchema)]
struct PreferencesRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    channel: Channel,
    /// An e-mail address or a phone number, as the channel needs.
    recipient: String,
    /// Kinds of notification not to send, e.g. `["SHIPMENT_OUT_FOR_DELIVERY"]`; default none.
    #[serde(default)]
    opt_out: Vec<NotificationKind>,
}

/// 202: the command is on `notification.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct NotificationCommandAccepted {
    customer_id: String,
    command_id: String,
}

/// Sets how a customer is notified: produces a `SetPreferences` command.
#[utoipa::path(put, path = "/preferences/{customer_id}", tag = "commands",
    params(("customer_id" = String, Path, description = "The customer")),
    request_body = PreferencesRequest,
    responses((status = 202, description = "Command queued", body = NotificationCommandAccepted), CommandErrors))]
async fn set_preferences(
    State(bus): State<CommandBus>,
    Path(customer_id): Path<String>,
    JsonBody(request): JsonBody<PreferencesRequest>,
) -> Result<Accepted<NotificationCommandAccepted>, ApiError> {
    let command = NotificationCommand::SetPreferences {
        customer_id: customer_id.clone(),
        channel: request.channel,
        recipient: request.recipient,
        opt_out: request.opt_out,
    };
    submit::<Notification, _>(&bus, request.command_id, command, |customer_id, command_id| NotificationCommandAccepted { customer_id, command_id })
        .await
}

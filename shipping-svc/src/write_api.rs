//! The write side over HTTP, for the warehouse and the carrier: `POST /shipments/{order_id}/dispatch`
//! and `POST /shipments/{order_id}/deliver` only produce `DispatchShipment` / `ConfirmDelivery` on
//! `shipment.commands` (the same path a kcat user takes) and answer 202 with the command id to
//! look the outcome up at `GET /commands/{command_id}`. The body is optional. The carrier's
//! `POST /shipments/{order_id}/tracking` produces a `RecordTrackingUpdate` the same way.
use axum::extract::{Path, State};
use contracts::shipment::{Shipment, ShipmentCommand, TrackingStatus};
use runtime::http::{Accepted, ApiError, ApiRoutes, CommandBus, CommandErrors, JsonBody, submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The write routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(dispatch)).routes(utoipa_axum::routes!(deliver)).routes(utoipa_axum::routes!(record_tracking))
}

#[derive(Deserialize, Default, ToSchema)]
struct ShipmentActionRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
}

/// 202: the command is on `shipment.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct ShipmentCommandAccepted {
    order_id: String,
    command_id: String,
}

/// The warehouse handed the order's shipment to the carrier: produces a `DispatchShipment` command.
#[utoipa::path(post, path = "/shipments/{order_id}/dispatch", tag = "commands",
    params(("order_id" = String, Path, description = "The order the shipment is for")),
    request_body(content = Option<ShipmentActionRequest>, description = "Optional"),
    responses((status = 202, description = "Command queued", body = ShipmentCommandAccepted), CommandErrors))]
async fn dispatch(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<ShipmentActionRequest>>,
) -> Result<Accepted<ShipmentCommandAccepted>, ApiError> {
    let command = ShipmentCommand::DispatchShipment { order_id: order_id.clone() };
    send(&bus, request, command).await
}

/// The carrier delivered the order's shipment: produces a `ConfirmDelivery` command.
#[utoipa::path(post, path = "/shipments/{order_id}/deliver", tag = "commands",
    params(("order_id" = String, Path, description = "The order the shipment is for")),
    request_body(content = Option<ShipmentActionRequest>, description = "Optional"),
    responses((status = 202, description = "Command queued", body = ShipmentCommandAccepted), CommandErrors))]
async fn deliver(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<ShipmentActionRequest>>,
) -> Result<Accepted<ShipmentCommandAccepted>, ApiError> {
    let command = ShipmentCommand::ConfirmDelivery { order_id: order_id.clone() };
    send(&bus, request, command).await
}

async fn send(
    bus: &CommandBus,
    request: Option<JsonBody<ShipmentActionRequest>>,
    command: ShipmentCommand,
) -> Result<Accepted<ShipmentCommandAccepted>, ApiError> {
    let request = request.map(|JsonBody(r)| r).unwrap_or_default();
    submit::<Shipment, _>(bus, request.command_id, command, |order_id, command_id| ShipmentCommandAccepted { order_id, command_id }).await
}

#[derive(Deserialize, ToSchema)]
struct TrackingRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    #[schema(value_type = String, example = "IN_TRANSIT")]
    status: TrackingStatus,
    /// Where the carrier saw the shipment, e.g. `Hamburg hub`: 1 to 256 characters.
    location: String,
    /// When, in epoch milliseconds; default: now.
    at: Option<i64>,
}

/// The carrier reports where a dispatched shipment is: produces a `RecordTrackingUpdate` command.
#[utoipa::path(post, path = "/shipments/{order_id}/tracking", tag = "commands",
    params(("order_id" = String, Path, description = "The order the shipment is for")),
    request_body = TrackingRequest,
    responses((status = 202, description = "Command queued", body = ShipmentCommandAccepted), CommandErrors))]
async fn record_tracking(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    JsonBody(request): JsonBody<TrackingRequest>,
) -> Result<Accepted<ShipmentCommandAccepted>, ApiError> {
    let at = request.at.unwrap_or_else(runtime::now_millis);
    let command = ShipmentCommand::RecordTrackingUpdate { order_id, status: request.status, location: request.location, at };
    submit::<Shipment, _>(&bus, request.command_id, command, |order_id, command_id| ShipmentCommandAccepted { order_id, command_id }).await
}

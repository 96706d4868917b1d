//! The write side over HTTP, for the warehouse and the carrier: `POST /shipments/{order_id}/dispatch`
//! and `POST /shipments/{order_id}/deliver` only produce `DispatchShipment` / `ConfirmDelivery` on
//! `shipment.commands` (the same path a kcat user takes) and answer 202 with the command id to
//! look the outcome up at `GET /commands/{command_id}`. The body is optional.
use axum::{extract::{Path, State}, routing::post};
use contracts::shipment::{Shipment, ShipmentCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}};
use serde::Deserialize;

pub fn routes() -> QueryRoutes {
    QueryRoutes::new().route("/shipments/{order_id}/dispatch", post(dispatch)).route("/shipments/{order_id}/deliver", post(deliver))
}

#[derive(Deserialize, Default)]
struct ShipmentActionRequest {
    command_id: Option<String>,
}

async fn dispatch(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<ShipmentActionRequest>>,
) -> Result<Accepted, ApiError> {
    let command = ShipmentCommand::DispatchShipment { order_id: order_id.clone() };
    send(&bus, request, command).await
}

async fn deliver(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<ShipmentActionRequest>>,
) -> Result<Accepted, ApiError> {
    let command = ShipmentCommand::ConfirmDelivery { order_id: order_id.clone() };
    send(&bus, request, command).await
}

async fn send(bus: &CommandBus, request: Option<JsonBody<ShipmentActionRequest>>, command: ShipmentCommand) -> Result<Accepted, ApiError> {
    let request = request.map(|JsonBody(r)| r).unwrap_or_default();
    submit::<Shipment>(bus, request.command_id, command, "order_id").await
}

//! The write side over HTTP: each route only produces a command on `order.commands` (the same
//! path a kcat user takes) and answers 202 with the command id to look the outcome up.
use axum::{extract::{Path, State}, routing::post};
use contracts::order::{Address, Order, OrderCommand, OrderLine};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}};
use serde::Deserialize;

pub fn routes() -> QueryRoutes {
    QueryRoutes::new().route("/orders", post(place_order)).route("/orders/{id}/cancel", post(cancel_order))
}

#[derive(Deserialize)]
struct PlaceOrderRequest {
    order_id: Option<String>,
    command_id: Option<String>,
    customer_id: String,
    lines: Vec<OrderLine>,
    currency: String,
    shipping_address: Address,
}

#[derive(Deserialize, Default)]
struct CancelOrderRequest {
    command_id: Option<String>,
    reason: Option<String>,
}

async fn place_order(State(bus): State<CommandBus>, JsonBody(request): JsonBody<PlaceOrderRequest>) -> Result<Accepted, ApiError> {
    let order_id = request.order_id.filter(|id| !id.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let command = OrderCommand::PlaceOrder {
        order_id: order_id.clone(),
        customer_id: request.customer_id,
        lines: request.lines,
        currency: request.currency,
        shipping_address: request.shipping_address,
    };
    submit::<Order>(&bus, request.command_id, command, "order_id").await
}

async fn cancel_order(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<CancelOrderRequest>>,
) -> Result<Accepted, ApiError> {
    let request = request.map(|JsonBody(r)| r).unwrap_or_default();
    let command = OrderCommand::CancelOrder { order_id: order_id.clone(), reason: request.reason };
    submit::<Order>(&bus, request.command_id, command, "order_id").await
}

//! The write side over HTTP: each route only produces a command on `order.commands` (the same
//! path a kcat user takes) and answers 202 with the command id to look the outcome up.
use axum::extract::{Path, State};
use contracts::order::{Address, Order, OrderCommand, OrderLine};
use runtime::http::{Accepted, ApiError, ApiRoutes, CommandBus, CommandErrors, IdempotencyKey, IdempotentCommandErrors, JsonBody, submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The write routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(place_order)).routes(utoipa_axum::routes!(cancel_order))
}

/// Like the `PlaceOrder` command.
#[derive(Deserialize, ToSchema)]
struct PlaceOrderRequest {
    /// Optional: when absent or empty, derived from the `Idempotency-Key` header if there is
    /// one, else a new UUID.
    order_id: Option<String>,
    /// Optional; an id of your own makes a retried request one command (so does an
    /// `Idempotency-Key` header).
    command_id: Option<String>,
    customer_id: String,
    lines: Vec<OrderLine>,
    /// ISO 4217, e.g. `EUR`.
    currency: String,
    shipping_address: Address,
}

#[derive(Deserialize, Default, ToSchema)]
struct CancelOrderRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    reason: Option<String>,
}

/// 202: the command is on `order.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct OrderCommandAccepted {
    order_id: String,
    command_id: String,
}

fn order_accepted(order_id: String, command_id: String) -> OrderCommandAccepted {
    OrderCommandAccepted { order_id, command_id }
}

/// Places an order: produces a `PlaceOrder` command.
///
/// With an `Idempotency-Key`, a retried request is the same order: the order id and the command
/// id the body leaves out are derived from the key and the customer, so every retry produces the
/// same command, which order-svc handles once (the first request's body counts), and answers
/// the same ids.
#[utoipa::path(post, path = "/orders", tag = "commands",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Optional, 1 to 128 printable ASCII characters: the same key (for the same `customer_id`) on a retry places no second order")),
    request_body = PlaceOrderRequest,
    responses((status = 202, description = "Command queued", body = OrderCommandAccepted), IdempotentCommandErrors))]
async fn place_order(
    State(bus): State<CommandBus>,
    key: Option<IdempotencyKey>,
    JsonBody(request): JsonBody<PlaceOrderRequest>,
) -> Result<Accepted<OrderCommandAccepted>, ApiError> {
    // A key names a request of one customer: another customer's same key is another order.
    let scope = format!("POST /orders customer_id={}", request.customer_id);
    let derived = |what: &str| key.as_ref().map(|key| key.derive(&scope, what));
    let order_id = request.order_id.filter(|id| !id.is_empty()).or_else(|| derived("order_id")).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let command_id = request.command_id.filter(|id| !id.is_empty()).or_else(|| derived("command_id"));
    let command = OrderCommand::PlaceOrder {
        order_id: order_id.clone(),
        customer_id: request.customer_id,
        lines: request.lines,
        currency: request.currency,
        shipping_address: request.shipping_address,
    };
    submit::<Order, _>(&bus, command_id, command, order_accepted).await
}

/// Cancels an order on the customer's behalf: produces a `CancelOrder` command.
#[utoipa::path(post, path = "/orders/{id}/cancel", tag = "commands",
    params(("id" = String, Path, description = "The order")),
    request_body(content = Option<CancelOrderRequest>, description = "Optional"),
    responses((status = 202, description = "Command queued", body = OrderCommandAccepted), CommandErrors))]
async fn cancel_order(
    State(bus): State<CommandBus>,
    Path(order_id): Path<String>,
    request: Option<JsonBody<CancelOrderRequest>>,
) -> Result<Accepted<OrderCommandAccepted>, ApiError> {
    let request = request.map(|JsonBody(r)| r).unwrap_or_default();
    let command = OrderCommand::CancelOrder { order_id: order_id.clone(), reason: request.reason };
    submit::<Order, _>(&bus, request.command_id, command, order_accepted).await
}

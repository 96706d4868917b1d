//! The write side over HTTP: each route only produces a command on `order.commands` (the same
//! path a kcat user takes) and answers 202 with the command id to look the outcome up.
use axum::extract::{Path, State};
use contracts::order::{Address, Order, OrderCommand, OrderLine};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}, openapi::{ApiRoutes, CommandErrors}};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::read_model::OrderLineSchema;

pub fn routes() -> QueryRoutes {
    api().into()
}

/// [`routes`] with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(place_order)).routes(utoipa_axum::routes!(cancel_order))
}

/// The service's OpenAPI document: its queries, its commands and the runtime's shared routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    runtime::openapi::document(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), [crate::read_model::api(), api()])
}

/// Like the `PlaceOrder` command.
#[derive(Deserialize, ToSchema)]
struct PlaceOrderRequest {
    /// Optional: a new UUID when absent or empty.
    order_id: Option<String>,
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    customer_id: String,
    #[schema(value_type = Vec<OrderLineSchema>)]
    lines: Vec<OrderLine>,
    /// ISO 4217, e.g. `EUR`.
    currency: String,
    #[schema(value_type = AddressSchema)]
    shipping_address: Address,
}

// The schema of `contracts::order::Address`: contracts has no OpenAPI derives.
#[derive(ToSchema)]
#[schema(as = Address)]
#[allow(dead_code)]
struct AddressSchema {
    name: String,
    street: String,
    city: String,
    postal_code: String,
    /// ISO-3166 alpha-2 code, e.g. `DE`.
    country: String,
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
#[utoipa::path(post, path = "/orders", tag = "commands",
    request_body = PlaceOrderRequest,
    responses((status = 202, description = "Command queued", body = OrderCommandAccepted), CommandErrors))]
async fn place_order(State(bus): State<CommandBus>, JsonBody(request): JsonBody<PlaceOrderRequest>) -> Result<Accepted<OrderCommandAccepted>, ApiError> {
    let order_id = request.order_id.filter(|id| !id.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let command = OrderCommand::PlaceOrder {
        order_id: order_id.clone(),
        customer_id: request.customer_id,
        lines: request.lines,
        currency: request.currency,
        shipping_address: request.shipping_address,
    };
    submit::<Order, _>(&bus, request.command_id, command, order_accepted).await
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

#[cfg(test)]
mod tests {
    use super::*;

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

    #[tokio::test]
    async fn openapi_json_lists_exactly_the_routes_the_service_serves() {
        let (pool, _db) = runtime::testing::read_model_db(&MIGRATOR).await;
        let service_routes = crate::read_model::routes().merge(routes());
        let expected = [
            "GET /commands/{command_id}",
            "GET /openapi.json",
            "GET /orders",
            "GET /orders/{id}",
            "GET /orders/{id}/timeline",
            "POST /orders",
            "POST /orders/{id}/cancel",
        ];
        let name_and_version = ("order-svc", env!("CARGO_PKG_VERSION"));
        runtime::openapi::testing::assert_documents_exactly(service_routes, openapi(), pool, name_and_version, &expected).await;
    }

    #[test]
    fn the_hand_written_schemas_of_contract_types_have_their_fields() {
        use runtime::openapi::testing::schema_json;
        let names = |object: &serde_json::Value| object.as_object().expect("an object").keys().cloned().collect::<std::collections::BTreeSet<_>>();
        let line = OrderLine { sku: "s".into(), quantity: 1, unit_price_cents: 2 };
        assert_eq!(names(&schema_json::<OrderLineSchema>()["properties"]), names(&serde_json::to_value(line).unwrap()));
        let address = Address { name: "n".into(), street: "s".into(), city: "c".into(), postal_code: "p".into(), country: "DE".into() };
        assert_eq!(names(&schema_json::<AddressSchema>()["properties"]), names(&serde_json::to_value(address).unwrap()));
    }
}

//! The write side over HTTP: `POST /stock/{sku}/restock` and `PUT /stock/{sku}/threshold` only
//! produce a `RestockItem` or a `SetLowStockThreshold` on `stock.commands` (the same path a kcat
//! user takes) and answer 202 with the command id to look the outcome up at
//! `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::stock::{Stock, StockCommand};
use runtime::http::{Accepted, ApiError, ApiRoutes, CommandBus, CommandErrors, JsonBody, submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The write routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(restock)).routes(utoipa_axum::routes!(set_threshold))
}

#[derive(Deserialize, ToSchema)]
struct RestockRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    /// Units added to on-hand stock, 1 to 1,000,000 (anything else is a 400).
    quantity: i32,
}

/// 202: the command is on `stock.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct StockCommandAccepted {
    sku: String,
    command_id: String,
}

/// Restocks a SKU: produces a `RestockItem` command.
#[utoipa::path(post, path = "/stock/{sku}/restock", tag = "commands",
    params(("sku" = String, Path, description = "The SKU")),
    request_body = RestockRequest,
    responses(
(status = 202, description = "Command queued", body = StockCommandAccepted), CommandErrors))]
async fn restock(
    State(bus): State<CommandBus>,
    Path(sku): Path<String>,
    JsonBody(request): JsonBody<RestockRequest>,
) -> Result<Accepted<StockCommandAccepted>, ApiError> {
    let command = StockCommand::RestockItem { sku: sku.clone(), quantity: request.quantity };
    submit::<Stock, _>(&bus, request.command_id, command, |sku, command_id| StockCommandAccepted { sku, command_id }).await
}

#[derive(Deserialize, ToSchema)]
struct ThresholdRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    /// Alert when available stock falls below this, 0 to 1,000,000,000; `0` turns the SKU's
    /// alerts off (anything else is a 400).
    threshold: i64,
}

/// Sets a SKU's low-stock threshold: produces a `SetLowStockThreshold` command.
#[utoipa::path(put, path = "/stock/{sku}/threshold", tag = "commands",
    params(("sku" = String, Path, description = "The SKU")),
    request_body = ThresholdRequest,
    responses(
(status = 202, description = "Command queued", body = StockCommandAccepted), CommandErrors))]
async fn set_threshold(
    State(bus): State<CommandBus>,
    Path(sku): Path<String>,
    JsonBody(request): JsonBody<ThresholdRequest>,
) -> Result<Accepted<StockCommandAccepted>, ApiError> {
    let command = StockCommand::SetLowStockThreshold { sku: sku.clone(), threshold: request.threshold };
    submit::<Stock, _>(&bus, request.command_id, command, |sku, command_id| StockCommandAccepted { sku, command_id }).await
}

//! The write side over HTTP: `POST /stock/{sku}/restock` only produces a `RestockItem` on
//! `stock.commands` (the same path a kcat user takes) and answers 202 with the command id to
//! look the outcome up at `GET /commands/{command_id}`.
use axum::{extract::{Path, State}, routing::post};
use contracts::stock::{Stock, StockCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}};
use serde::Deserialize;

pub fn routes() -> QueryRoutes {
    QueryRoutes::new().route("/stock/{sku}/restock", post(restock))
}

#[derive(Deserialize)]
struct RestockRequest {
    command_id: Option<String>,
    /// Units added to on-hand stock; the decider refuses non-positive quantities.
    quantity: i32,
}

async fn restock(
    State(bus): State<CommandBus>,
    Path(sku): Path<String>,
    JsonBody(request): JsonBody<RestockRequest>,
) -> Result<Accepted, ApiError> {
    let command = StockCommand::RestockItem { sku: sku.clone(), quantity: request.quantity };
    submit::<Stock>(&bus, request.command_id, command, "sku").await
}

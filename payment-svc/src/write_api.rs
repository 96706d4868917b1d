//! The write side over HTTP: `POST /accounts/{customer_id}/deposits` only produces a
//! `DepositFunds` on `account.commands` (the same path a kcat user takes) and answers 202 with
//! the command id to look the outcome up at `GET /commands/{command_id}`.
use axum::{extract::{Path, State}, routing::post};
use contracts::account::{Account, AccountCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}};
use serde::Deserialize;

pub fn routes() -> QueryRoutes {
    QueryRoutes::new().route("/accounts/{customer_id}/deposits", post(deposit))
}

#[derive(Deserialize)]
struct DepositRequest {
    command_id: Option<String>,
    amount_cents: i64,
    currency: String,
}

async fn deposit(
    State(bus): State<CommandBus>,
    Path(customer_id): Path<String>,
    JsonBody(request): JsonBody<DepositRequest>,
) -> Result<Accepted, ApiError> {
    let command = AccountCommand::DepositFunds { customer_id: customer_id.clone(), amount_cents: request.amount_cents, currency: request.currency };
    submit::<Account>(&bus, request.command_id, command, "customer_id").await
}

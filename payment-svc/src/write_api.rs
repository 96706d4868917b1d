//! The write side over HTTP: `POST /accounts/{customer_id}/deposits` only produces a
//! `DepositFunds` on `account.commands` (the same path a kcat user takes) and answers 202 with
//! the command id to look the outcome up at `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::account::{Account, AccountCommand};
use runtime::http::{Accepted, ApiError, ApiRoutes, CommandBus, CommandErrors, JsonBody, submit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The write routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(deposit))
}

#[derive(Deserialize, ToSchema)]
struct DepositRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    amount_cents: i64,
    /// ISO 4217, e.g. `EUR`.
    currency: String,
}

/// 202: the command is on `account.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct AccountCommandAccepted {
    customer_id: String,
    command_id: String,
}

/// Deposits funds on a customer's account (opening it): produces a `DepositFunds` command.
#[utoipa::path(post, path = "/accounts/{customer_id}/deposits", tag = "commands",
    params(("customer_id" = String, Path, description = "The customer")),
    request_body = DepositRequest,
    responses((status = 202, description = "Command queued", body = AccountCommandAccepted), CommandErrors))]
async fn deposit(
    State(bus): State<CommandBus>,
    Path(customer_id): Path<String>,
    JsonBody(request): JsonBody<DepositRequest>,
) -> Result<Accepted<AccountCommandAccepted>, ApiError> {
    let command = AccountCommand::DepositFunds { customer_id: customer_id.clone(), amount_cents: request.amount_cents, currency: request.currency };
    submit::<Account, _>(&bus, request.command_id, command, |customer_id, command_id| AccountCommandAccepted { customer_id, command_id }).await
}

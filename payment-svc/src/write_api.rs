//! The write side over HTTP: `POST /accounts/{customer_id}/deposits` only produces a
//! `DepositFunds` on `account.commands` (the same path a kcat user takes) and answers 202 with
//! the command id to look the outcome up at `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::account::{Account, AccountCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}, openapi::{ApiRoutes, CommandErrors}};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> QueryRoutes {
    api().into()
}

/// [`routes`] with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(deposit))
}

/// The service's OpenAPI document: its queries, its commands and the runtime's shared routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    runtime::openapi::document(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), [crate::read_model::api(), api()])
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

#[cfg(test)]
mod tests {
    use super::*;

    static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

    #[tokio::test]
    async fn openapi_json_lists_exactly_the_routes_the_service_serves() {
        let (pool, _db) = runtime::testing::read_model_db(&MIGRATOR).await;
        let service_routes = crate::read_model::routes().merge(routes());
        let expected = [
            "GET /accounts/{customer_id}",
            "GET /commands/{command_id}",
            "GET /openapi.json",
            "GET /payments/{order_id}",
            "POST /accounts/{customer_id}/deposits",
        ];
        let name_and_version = ("payment-svc", env!("CARGO_PKG_VERSION"));
        runtime::openapi::testing::assert_documents_exactly(service_routes, openapi(), pool, name_and_version, &expected).await;
    }
}

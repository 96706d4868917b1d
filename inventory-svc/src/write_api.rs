//! The write side over HTTP: `POST /stock/{sku}/restock` only produces a `RestockItem` on
//! `stock.commands` (the same path a kcat user takes) and answers 202 with the command id to
//! look the outcome up at `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::stock::{Stock, StockCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}, openapi::{ApiRoutes, CommandErrors}};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> QueryRoutes {
    api().into()
}

/// [`routes`] with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(restock))
}

/// The service's OpenAPI document: its queries, its commands and the runtime's shared routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    runtime::openapi::document(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), [crate::read_model::api(), api()])
}

#[derive(Deserialize, ToSchema)]
struct RestockRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    /// Units added to on-hand stock; the decider refuses non-positive quantities.
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
            "GET /reservations/{order_id}",
            "GET /stock",
            "GET /stock/{sku}",
            "POST /stock/{sku}/restock",
        ];
        let name_and_version = ("inventory-svc", env!("CARGO_PKG_VERSION"));
        runtime::openapi::testing::assert_documents_exactly(service_routes, openapi(), pool, name_and_version, &expected).await;
    }

    #[tokio::test]
    async fn a_route_registered_without_an_annotation_is_found_undocumented() {
        let (pool, _db) = runtime::testing::read_model_db(&MIGRATOR).await;
        let undocumented = routes().route("/stock/{sku}/audit", axum::routing::get(|| async { "audit" }));
        let (documented, served) = runtime::openapi::testing::documented_and_served(undocumented, openapi(), pool).await;
        assert_eq!(served.difference(&documented).collect::<Vec<_>>(), ["GET /stock/{sku}/audit"]);
    }
}

//! The write side over HTTP: `PUT /preferences/{customer_id}` only produces a `SetPreferences`
//! on `notification.commands` (the same path a kcat user takes) and answers 202 with the
//! command id to look the outcome up at `GET /commands/{command_id}`.
use axum::extract::{Path, State};
use contracts::notification::{Channel, Notification, NotificationCommand};
use runtime::{command_bus::CommandBus, http::{Accepted, ApiError, JsonBody, QueryRoutes, submit}, openapi::{ApiRoutes, CommandErrors}};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> QueryRoutes {
    api().into()
}

/// [`routes`] with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(set_preferences))
}

/// The service's OpenAPI document: its queries, its commands and the runtime's shared routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    runtime::openapi::document(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), [crate::read_model::api(), api()])
}

#[derive(Deserialize, ToSchema)]
struct PreferencesRequest {
    /// Optional; an id of your own makes a retried request one command.
    command_id: Option<String>,
    #[schema(value_type = ChannelSchema)]
    channel: Channel,
    /// An e-mail address or a phone number, as the channel needs.
    recipient: String,
}

// The schema of `contracts::notification::Channel`: contracts has no OpenAPI derives.
/// How the customer is notified.
#[derive(ToSchema)]
#[schema(as = Channel)]
#[allow(dead_code)]
enum ChannelSchema {
    #[schema(rename = "EMAIL")]
    Email,
    #[schema(rename = "SMS")]
    Sms,
}

/// 202: the command is on `notification.commands`; its outcome is at `GET /commands/{command_id}`.
#[derive(Serialize, ToSchema)]
struct NotificationCommandAccepted {
    customer_id: String,
    command_id: String,
}

/// Sets how a customer is notified: produces a `SetPreferences` command.
#[utoipa::path(put, path = "/preferences/{customer_id}", tag = "commands",
    params(("customer_id" = String, Path, description = "The customer")),
    request_body = PreferencesRequest,
    responses((status = 202, description = "Command queued", body = NotificationCommandAccepted), CommandErrors))]
async fn set_preferences(
    State(bus): State<CommandBus>,
    Path(customer_id): Path<String>,
    JsonBody(request): JsonBody<PreferencesRequest>,
) -> Result<Accepted<NotificationCommandAccepted>, ApiError> {
    let command = NotificationCommand::SetPreferences { customer_id: customer_id.clone(), channel: request.channel, recipient: request.recipient };
    submit::<Notification, _>(&bus, request.command_id, command, |customer_id, command_id| NotificationCommandAccepted { customer_id, command_id }).await
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
            "GET /notifications",
            "GET /openapi.json",
            "PUT /preferences/{customer_id}",
        ];
        let name_and_version = ("notify-svc", env!("CARGO_PKG_VERSION"));
        runtime::openapi::testing::assert_documents_exactly(service_routes, openapi(), pool, name_and_version, &expected).await;
    }

    #[test]
    fn the_hand_written_channel_schema_has_the_contract_names() {
        let names = [Channel::Email, Channel::Sms].map(|channel| serde_json::to_value(channel).unwrap());
        assert_eq!(runtime::openapi::testing::schema_json::<ChannelSchema>()["enum"], serde_json::json!(names));
    }
}

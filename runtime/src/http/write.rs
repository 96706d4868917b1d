//! What every write route shares: it only produces the command (through the [`CommandBus`])
//! and answers 202 with the ids to follow the outcome by, or one of [`CommandErrors`].
use super::{ApiError, CommandBus};
use axum::{Json, http::StatusCode};

/// What every write route answers: 202 with a body `B` holding the aggregate id (under its
/// name, e.g. `order_id`) and the command id to look the outcome up at `GET /commands/{command_id}`.
pub type Accepted<B> = (StatusCode, Json<B>);

/// Produces the command on its stream's command topic and builds the 202 answer from the
/// aggregate id and the command id: `body(aggregate_id, command_id)`.
pub async fn submit<S: contracts::Stream, B>(
    bus: &CommandBus,
    command_id: Option<String>,
    command: S::Command,
    body: impl FnOnce(String, String) -> B,
) -> Result<Accepted<B>, ApiError> {
    use contracts::CommandTarget;
    let aggregate_id = command.aggregate_id().to_string();
    let command_id = bus.send::<S>(command_id, command).await.map_err(ApiError::unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(body(aggregate_id, command_id))))
}

/// The error answers every write route shares (see [`super::JsonBody`] and [`submit`]); use as `responses((status = 202, ...), CommandErrors)`.
pub struct CommandErrors;

impl utoipa::IntoResponses for CommandErrors {
    fn responses() -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>> {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build();
            ResponseBuilder::new().description(description).content("application/json", content).build().into()
        };
        [
            ("400", "Malformed JSON body"),
            ("415", "The body is not `application/json`"),
            ("422", "JSON of the wrong shape"),
            ("503", "The command could not be handed to Kafka"),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_string(), error(description)))
        .collect()
    }
}

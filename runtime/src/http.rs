//! What query handlers need: the read-model database and a JSON error type.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

/// Handle to the service's read-model database.
#[derive(Clone)]
pub struct ReadDb(pub sqlx::AnyPool);

/// Committed progress of each projection by name: a receiver changes after every batch, so a
/// handler can wait for a read model to move without polling the database.
#[derive(Clone, Default)]
pub struct ProjectionProgress(pub std::sync::Arc<std::collections::HashMap<&'static str, crate::projection_runner::Progress>>);

/// State of every route; handlers extract the part they need (`State<ReadDb>`,
/// `State<ProjectionProgress>`, `State<CommandBus>`).
#[derive(Clone)]
pub struct AppState {
    pub db: ReadDb,
    pub progress: ProjectionProgress,
    pub commands: crate::command_bus::CommandBus,
}

impl axum::extract::FromRef<AppState> for ReadDb {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}
impl axum::extract::FromRef<AppState> for ProjectionProgress {
    fn from_ref(state: &AppState) -> Self {
        state.progress.clone()
    }
}
impl axum::extract::FromRef<AppState> for crate::command_bus::CommandBus {
    fn from_ref(state: &AppState) -> Self {
        state.commands.clone()
    }
}

/// Routes a service contributes; the runtime adds `/health` (and more).
pub type QueryRoutes = axum::Router<AppState>;

/// A JSON error answer: `{"error": "...", "status": 404}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn not_found(what: &str, id: &str) -> Self {
        ApiError { status: StatusCode::NOT_FOUND, message: format!("{what} {id:?} not found") }
    }
    /// The command could not be handed to Kafka (broker down, topic missing).
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "could not produce command");
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, message: format!("command not accepted: {error}") }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "read-model query failed");
        ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: "read-model database error".into() }
    }
}

/// Query strings that do not deserialize (a missing required parameter, a number that is not one)
/// answer 400 with the JSON error shape.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError { status: rejection.status(), message: rejection.body_text() }
    }
}

/// Malformed or mistyped JSON bodies answer with the JSON error shape too (400 for syntax,
/// 415 for a missing content type, 422 for well-formed JSON of the wrong shape).
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        ApiError { status: rejection.status(), message: rejection.body_text() }
    }
}

/// A JSON request body whose rejection is an [`ApiError`], so write routes never answer
/// with axum's plain-text errors.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = <Json<T> as axum::extract::FromRequest<S>>::from_request(request, state).await?;
        Ok(JsonBody(value))
    }
}

/// An optional JSON body: no body (or no JSON content type) is `None`; a malformed one is an error.
impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Option<Self>, ApiError> {
        let body = <Json<T> as axum::extract::OptionalFromRequest<S>>::from_request(request, state).await?;
        Ok(body.map(|Json(value)| JsonBody(value)))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, status: self.status.as_u16() };
        (self.status, Json(body)).into_response()
    }
}

/// The JSON body of every error answer (the `ApiError` schema).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct ErrorBody {
    /// What went wrong, e.g. `sku "x" not found`.
    error: String,
    /// The HTTP status code again.
    status: u16,
}

impl utoipa::PartialSchema for ApiError {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <ErrorBody as utoipa::PartialSchema>::schema()
    }
}
impl utoipa::ToSchema for ApiError {}

/// `limit` of list routes: 100 when absent, at most 1000.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

/// Checks a list route's `limit` parameter (1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`]).
pub fn limit(requested: Option<i64>) -> Result<i64, ApiError> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

/// What every write route answers: 202 with a body `B` holding the aggregate id (under its
/// name, e.g. `order_id`) and the command id to look the outcome up at `GET /commands/{command_id}`.
pub type Accepted<B> = (StatusCode, Json<B>);

/// Produces the command on its stream's command topic and builds the 202 answer from the
/// aggregate id and the command id: `body(aggregate_id, command_id)`.
pub async fn submit<S: contracts::Stream, B>(
    bus: &crate::command_bus::CommandBus,
    command_id: Option<String>,
    command: S::Command,
    body: impl FnOnce(String, String) -> B,
) -> Result<Accepted<B>, ApiError> {
    use contracts::CommandTarget;
    let aggregate_id = command.aggregate_id().to_string();
    let command_id = bus.send::<S>(command_id, command).await.map_err(ApiError::unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(body(aggregate_id, command_id))))
}

//! What query handlers need: the read-model database and a JSON error type.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, Json(body)).into_response()
    }
}

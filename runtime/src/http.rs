//! What query handlers need: the read-model database and a JSON error type.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Handle to the service's read-model database, the state of every query route.
#[derive(Clone)]
pub struct ReadDb(pub sqlx::AnyPool);

/// Query routes a service contributes; the runtime adds `/health`, `/ready` and `/metrics`.
pub type QueryRoutes = axum::Router<ReadDb>;

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

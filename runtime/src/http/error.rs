//! The one shape of every error answer, `{"error": "...", "status": 404}`, and the JSON body
//! extractor whose rejections take that shape too.
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};

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

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
/// with axum's plain-text errors. The body must be a JSON object, as the documents say: serde
/// would also fill a struct from an array, field by field in order (`[null, null]` was a
/// cancellation without a reason), which no document describes.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(JsonObject(value)) = <Json<JsonObject<T>> as axum::extract::FromRequest<S>>::from_request(request, state).await?;
        Ok(JsonBody(value))
    }
}

/// An optional JSON body: no body (or no JSON content type) is `None`; a malformed one is an error.
impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Option<Self>, ApiError> {
        let body = <Json<JsonObject<T>> as axum::extract::OptionalFromRequest<S>>::from_request(request, state).await?;
        Ok(body.map(|Json(JsonObject(value))| JsonBody(value)))
    }
}

/// `T` read from a JSON object only: anything else is "invalid type: sequence, expected a JSON
/// object" (a 422 through [`JsonBody`]).
struct JsonObject<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for JsonObject<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData)).map(JsonObject)
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{FromRequest, OptionalFromRequest, Request};

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct CancelBody {
        command_id: Option<String>,
        reason: Option<String>,
    }

    fn json_request(body: &str) -> Request {
        Request::builder()
            .method("POST")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .expect("a request")
    }

    async fn required(body: &str) -> Result<CancelBody, ApiError> {
        <JsonBody<CancelBody> as FromRequest<()>>::from_request(json_request(body), &()).await.map(|JsonBody(value)| value)
    }

    async fn optional(body: &str) -> Result<Option<CancelBody>, ApiError> {
        <JsonBody<CancelBody> as OptionalFromRequest<()>>::from_request(json_request(body), &()).await.map(|body| body.map(|JsonBody(value)| value))
    }

    #[tokio::test]
    async fn a_body_is_read_from_a_json_object() {
        let expected = CancelBody { command_id: Some("c-1".into()), reason: None };
        assert_eq!(optional(r#"{"command_id":"c-1"}"#).await.ok(), Some(Some(expected)));
        let expected = CancelBody { command_id: Some("c-1".into()), reason: None };
        assert_eq!(required(r#"{"command_id":"c-1"}"#).await.ok(), Some(expected));
    }

    #[tokio::test]
    async fn a_json_array_or_scalar_is_not_a_body_even_where_its_items_would_fill_the_fields() {
        for body in ["[null, null]", r#"["c-1", "changed my mind"]"#, "[]", "null", "7", r#""text""#] {
            for refused in [required(body).await.err(), optional(body).await.err()] {
                let error = refused.unwrap_or_else(|| panic!("{body} was taken as a body"));
                assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", error.message);
                assert!(error.message.contains("expected a JSON object"), "{body}: {}", error.message);
            }
        }
    }
}

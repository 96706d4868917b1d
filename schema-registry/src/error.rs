//! The registry's error type and its mapping onto Confluent's `{"error_code", "message"}` bodies.
//!
//! Clients (schema_registry_converter, the Java serdes) branch on `error_code`, not on the HTTP
//! status alone, so the codes below must match Confluent's exactly.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::reply::json_reply;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    #[error("Version {0} not found.")]
    VersionNotFound(String),
    #[error("Schema not found")]
    SchemaNotFound,
    #[error("Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: {details:?}")]
    Incompatible { subject: String, details: Vec<String> },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    #[error("The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"")]
    InvalidVersion(String),
    #[error(
        "Invalid compatibility level '{0}'. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and FULL_TRANSITIVE"
    )]
    InvalidCompatibilityLevel(String),
    /// The request body is not JSON at all, or not the expected shape.
    #[error("Invalid request body: {0}")]
    BadRequest(String),
    #[error("Error in the backend data store: {0}")]
    Backend(String),
}

impl RegistryError {
    pub fn backend(e: impl std::fmt::Display) -> Self {
        RegistryError::Backend(e.to_string())
    }

    /// HTTP status and Confluent error code.
    pub fn codes(&self) -> (StatusCode, u32) {
        use RegistryError::*;
        match self {
            SubjectNotFound(_) => (StatusCode::NOT_FOUND, 40401),
            VersionNotFound(_) => (StatusCode::NOT_FOUND, 40402),
            SchemaNotFound => (StatusCode::NOT_FOUND, 40403),
            Incompatible { .. } => (StatusCode::CONFLICT, 409),
            InvalidSchema(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42201),
            InvalidVersion(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42202),
            InvalidCompatibilityLevel(_) => (StatusCode::UNPROCESSABLE_ENTITY, 42203),
            BadRequest(_) => (StatusCode::BAD_REQUEST, 400),
            Backend(_) => (StatusCode::INTERNAL_SERVER_ERROR, 50001),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.codes();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        json_reply(status, &json!({ "error_code": code, "message": self.to_string() }))
    }
}

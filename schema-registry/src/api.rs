//! HTTP handlers for the subset of Confluent's REST API that Avro clients use.
//!
//! Bodies are read as raw bytes and parsed here rather than with axum's `Json` extractor, so
//! any content type is accepted (clients send `application/vnd.schemaregistry.v1+json`,
//! `application/vnd.schemaregistry+json` or `application/json`) and every parse failure is
//! answered with a Confluent-style error body. Unknown query parameters are ignored.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::compatibility::Level;
use crate::error::RegistryError;
use crate::reply::{CONTENT_TYPE, json_reply};
use crate::store::{Store, SubjectVersion, parse_schema};

type AppState = State<Arc<Store>>;
type ApiResult = Result<Response, RegistryError>;

pub fn router(store: Arc<Store>) -> Router {
    Router::new()
        .route("/", get(|| async { ok(&json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(list_versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route("/subjects/{subject}/versions/{version}/schema", get(get_version_schema))
        .route("/schemas/ids/{id}", get(get_schema_by_id))
        .route("/config", get(get_global_config).put(put_global_config))
        .route("/config/{subject}", get(get_subject_config).put(put_subject_config))
        .route("/compatibility/subjects/{subject}/versions", post(check_all_versions))
        .route("/compatibility/subjects/{subject}/versions/{version}", post(check_version))
        .fallback(|| async { json_reply(StatusCode::NOT_FOUND, &json!({"error_code": 404, "message": "HTTP 404 Not Found"})) })
        .method_not_allowed_fallback(|| async {
            json_reply(StatusCode::METHOD_NOT_ALLOWED, &json!({"error_code": 405, "message": "HTTP 405 Method Not Allowed"}))
        })
        .with_state(store)
}

fn ok(body: &impl serde::Serialize) -> Response {
    json_reply(StatusCode::OK, body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

/// Invalid JSON is a 400; valid JSON of the wrong shape gets the endpoint's own error.
fn parse_body<T: DeserializeOwned>(body: &[u8], wrong_shape: impl FnOnce(String) -> RegistryError) -> Result<T, RegistryError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(e.to_string()))?;
    serde_json::from_value(value).map_err(|e| wrong_shape(e.to_string()))
}

/// Parses a schema request body into the schema text, refusing what we cannot store.
fn schema_from_body(body: &[u8]) -> Result<String, RegistryError> {
    let request: SchemaRequest = parse_body(body, RegistryError::InvalidSchema)?;
    if let Some(kind) = request.schema_type.filter(|t| t != "AVRO") {
        return Err(RegistryError::InvalidSchema(format!("schemaType {kind} is not supported, only AVRO")));
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema("schema references are not supported".to_string()));
    }
    Ok(request.schema)
}

/// `latest` (or Confluent's alias `-1`) is `None`.
fn parse_version(version: &str) -> Result<Option<u32>, RegistryError> {
    match version {
        "latest" | "-1" => Ok(None),
        _ => match version.parse::<i32>() {
            Ok(v) if v >= 1 => Ok(Some(v.unsigned_abs())),
            _ => Err(RegistryError::InvalidVersion(version.to_string())),
        },
    }
}

fn version_body(sv: &SubjectVersion) -> Value {
    json!({"subject": sv.subject, "version": sv.version, "id": sv.id, "schema": sv.schema})
}

async fn list_subjects(State(store): AppState) -> Response {
    ok(&store.read().subjects())
}

async fn register(State(store): AppState, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = schema_from_body(&body)?;
    let id = store.register(&subject, &schema).await?;
    Ok(ok(&json!({ "id": id })))
}

async fn lookup(State(store): AppState, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = parse_schema(&schema_from_body(&body)?)?;
    let found = store.read().lookup(&subject, &schema)?;
    Ok(ok(&version_body(&found)))
}

async fn delete_subject(State(store): AppState, Path(subject): Path<String>) -> ApiResult {
    Ok(ok(&store.delete_subject(&subject).await?))
}

async fn list_versions(State(store): AppState, Path(subject): Path<String>) -> ApiResult {
    Ok(ok(&store.read().versions(&subject)?))
}

async fn get_version(State(store): AppState, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    let version = parse_version(&version)?;
    Ok(ok(&version_body(&store.read().version(&subject, version)?)))
}

/// The bare schema, as Confluent serves it (the schema JSON itself, not a string).
async fn get_version_schema(State(store): AppState, Path((subject, version)): Path<(String, String)>) -> ApiResult {
    let version = parse_version(&version)?;
    let sv = store.read().version(&subject, version)?;
    let mut response = sv.schema.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

async fn get_schema_by_id(State(store): AppState, Path(id): Path<String>) -> ApiResult {
    let id: u32 = id.parse().map_err(|_| RegistryError::SchemaNotFound)?;
    let state = store.read();
    let schema = state.schema_by_id(id).ok_or(RegistryError::SchemaNotFound)?;
    Ok(ok(&json!({ "schema": schema.text })))
}

async fn get_global_config(State(store): AppState) -> Response {
    ok(&json!({ "compatibilityLevel": store.read().global_level() }))
}

async fn get_subject_config(State(store): AppState, Path(subject): Path<String>) -> Response {
    ok(&json!({ "compatibilityLevel": store.read().level(&subject) }))
}

async fn put_global_config(State(store): AppState, body: Bytes) -> ApiResult {
    put_config(&store, None, &body).await
}

async fn put_subject_config(State(store): AppState, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    put_config(&store, Some(&subject), &body).await
}

async fn put_config(store: &Store, subject: Option<&str>, body: &[u8]) -> ApiResult {
    let request: ConfigRequest = parse_body(body, RegistryError::InvalidCompatibilityLevel)?;
    let level: Level = request.compatibility.parse()?;
    store.set_level(subject, level).await?;
    Ok(ok(&json!({ "compatibility": level })))
}

async fn check_version(State(store): AppState, Path((subject, version)): Path<(String, String)>, body: Bytes) -> ApiResult {
    let version = parse_version(&version)?;
    let schema = parse_schema(&schema_from_body(&body)?)?;
    let state = store.read();
    // "latest" checks like a registration would (all versions for transitive levels); a
    // numbered version checks against that version only.
    let problems = match version {
        Some(_) => state.compatibility_problems(&subject, &schema, version)?,
        None => {
            state.version(&subject, None)?;
            state.compatibility_problems(&subject, &schema, None)?
        }
    };
    Ok(compatibility_reply(problems))
}

async fn check_all_versions(State(store): AppState, Path(subject): Path<String>, body: Bytes) -> ApiResult {
    let schema = parse_schema(&schema_from_body(&body)?)?;
    let problems = store.read().compatibility_problems(&subject, &schema, None)?;
    Ok(compatibility_reply(problems))
}

fn compatibility_reply(problems: Vec<String>) -> Response {
    if problems.is_empty() { ok(&json!({ "is_compatible": true })) } else { ok(&json!({ "is_compatible": false, "messages": problems })) }
}

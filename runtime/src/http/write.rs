//! What every write route shares: it only produces the command (through the [`CommandBus`])
//! and answers 202 with the ids to follow the outcome by, or one of [`CommandErrors`]; and the
//! `Idempotency-Key` header a route may take ([`IdempotencyKey`]).
use super::{ApiError, CommandBus};
use axum::{Json, http::StatusCode};
use contracts::validate::{self, InvalidField};
use uuid::Uuid;

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
    use contracts::{CommandTarget, validate::Validate};
    // What needs no state is checked before producing: a 400 now naming the field, not a 202
    // and a dead letter (the command processor applies the same rule to what kcat sends).
    command.validate().map_err(|invalid| ApiError::bad_request(invalid.to_string()))?;
    let aggregate_id = command.aggregate_id().to_string();
    let command_id = bus.send::<S>(command_id, command).await.map_err(ApiError::unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(body(aggregate_id, command_id))))
}

/// The error answers every write route shares (see [`super::JsonBody`] and [`submit`]); use as `responses((status = 202, ...), CommandErrors)`.
pub struct CommandErrors;

/// [`CommandErrors`] of a route that takes an [`IdempotencyKey`] (a bad key is a 400 too).
pub struct IdempotentCommandErrors;

type Responses = std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::response::Response>>;

fn command_errors(bad_request: &str) -> Responses {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ApiError"))).build();
        ResponseBuilder::new().description(description).content("application/json", content).build().into()
    };
    [
        ("400", bad_request),
        ("413", "The body is larger than 64 KiB"),
        ("415", "The body is not `application/json`"),
        ("422", "JSON of the wrong shape"),
        ("503", "The command could not be handed to Kafka"),
    ]
    .into_iter()
    .map(|(status, description)| (status.to_string(), error(description)))
    .collect()
}

impl utoipa::IntoResponses for CommandErrors {
    fn responses() -> Responses {
        command_errors(
            "Malformed JSON body, or a field that breaks a rule needing no state (the message names it): an id that is not readable text, a quantity or amount out of range, a currency that is not ISO 4217, too many lines, text too long",
        )
    }
}

impl utoipa::IntoResponses for IdempotentCommandErrors {
    fn responses() -> Responses {
        command_errors(
            "Malformed JSON body, a field that breaks a rule needing no state (the message names it: an id that is not readable text, a quantity or amount out of range, a currency that is not ISO 4217, too many lines, text too long), or an `Idempotency-Key` that is empty, longer than 128 characters, not printable ASCII or given twice",
        )
    }
}

/// The request header that makes a retried write one command.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Namespace of the ids derived from idempotency keys.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_775f_6964_656d_706b);

/// The `Idempotency-Key` of a write request: a client's name for one intended change, sent
/// again with every retry of it. A route derives the ids it would otherwise draw at random
/// (aggregate id, command id) from the key with [`IdempotencyKey::derive`], so every retry
/// produces the same command, which the command processor handles once.
///
/// As an extractor (`Option<IdempotencyKey>`): no header is `None`; a header that is not one
/// value of 1 to [`validate::MAX_ID_CHARS`] printable ASCII characters is a 400 with the JSON
/// error body. A structured-field string (`"abc"`, as the IETF draft writes it) is the key
/// between the quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an `Idempotency-Key` header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidIdempotencyKey {
    #[error("{IDEMPOTENCY_KEY_HEADER} must be given once, got {0} values")]
    Repeated(usize),
    #[error("{IDEMPOTENCY_KEY_HEADER} must be printable ASCII")]
    NotPrintable,
    #[error(transparent)]
    Length(#[from] InvalidField),
}

impl IdempotencyKey {
    /// Reads the values of the header (all of them: a key given twice is refused), `None`
    /// when there are none.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<Self>, InvalidIdempotencyKey> {
        let values: Vec<&[u8]> = values.into_iter().collect();
        let value = match values.as_slice() {
            [] => return Ok(None),
            [value] => *value,
            more => return Err(InvalidIdempotencyKey::Repeated(more.len())),
        };
        if !value.iter().all(|byte| (b' '..=b'~').contains(byte)) {
            return Err(InvalidIdempotencyKey::NotPrintable);
        }
        // Printable ASCII is UTF-8.
        let text = std::str::from_utf8(value).map_err(|_| InvalidIdempotencyKey::NotPrintable)?.trim();
        let key = match text.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
            Some(quoted) => quoted,
            None => text,
        };
        validate::id(IDEMPOTENCY_KEY_HEADER, key)?;
        Ok(Some(IdempotencyKey(key.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A UUID (v5) for the id called `what` (e.g. `order_id`) of the request this key names in
    /// `scope`: the same for every retry. The scope keeps clients apart: the same key in
    /// another scope (another route, another customer) names another request.
    pub fn derive(&self, scope: &str, what: &str) -> String {
        // The key is last and has no line break, `what` has none either: the name is unambiguous.
        Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, format!("{scope}\n{what}\n{}", self.0).as_bytes()).to_string()
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Option<Self>, ApiError> {
        let values = parts.headers.get_all(IDEMPOTENCY_KEY_HEADER);
        IdempotencyKey::parse(values.iter().map(|value| value.as_bytes())).map_err(|error| ApiError::bad_request(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> Result<Option<IdempotencyKey>, InvalidIdempotencyKey> {
        IdempotencyKey::parse(values.iter().map(|value| value.as_bytes()))
    }

    #[test]
    fn a_key_is_one_value_of_printable_ascii_quoted_or_not() {
        assert_eq!(parse(&[]), Ok(None));
        assert_eq!(parse(&["retry-1"]), Ok(Some(IdempotencyKey("retry-1".into()))));
        assert_eq!(parse(&["\"retry-1\""]), Ok(Some(IdempotencyKey("retry-1".into()))), "a structured-field string");
        assert_eq!(parse(&[&"k".repeat(validate::MAX_ID_CHARS)]).map(|key| key.map(|k| k.as_str().len())), Ok(Some(validate::MAX_ID_CHARS)));
    }

    #[test]
    fn an_empty_long_unprintable_or_repeated_key_is_refused_with_the_reason() {
        let too_long = "k".repeat(validate::MAX_ID_CHARS + 1);
        for (values, reason) in [
            (vec![""], "Idempotency-Key must be 1 to 128 characters, got 0"),
            (vec!["\"\""], "Idempotency-Key must be 1 to 128 characters, got 0"),
            (vec![too_long.as_str()], "Idempotency-Key must be 1 to 128 characters, got 129"),
            (vec!["tab\tinside"], "Idempotency-Key must be printable ASCII"),
            (vec!["a", "b"], "Idempotency-Key must be given once, got 2 values"),
        ] {
            assert_eq!(parse(&values).map_err(|error| error.to_string()), Err(reason.to_string()), "{values:?}");
        }
        let obs_text = IdempotencyKey::parse([&b"caf\xe9"[..]]);
        assert_eq!(obs_text, Err(InvalidIdempotencyKey::NotPrintable));
    }

    #[test]
    fn derived_ids_are_stable_per_key_scope_and_name_and_differ_otherwise() {
        let key = IdempotencyKey("k-1".into());
        let id = key.derive("POST /orders c-1", "order_id");
        assert_eq!(id, IdempotencyKey("k-1".into()).derive("POST /orders c-1", "order_id"));
        assert!(Uuid::parse_str(&id).is_ok_and(|uuid| uuid.get_version_num() == 5), "{id}");
        assert_ne!(id, key.derive("POST /orders c-2", "order_id"), "another scope");
        assert_ne!(id, key.derive("POST /orders c-1", "command_id"), "another id of the request");
        assert_ne!(id, IdempotencyKey("k-2".into()).derive("POST /orders c-1", "order_id"), "another key");
    }
}

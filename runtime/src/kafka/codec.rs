//! Avro + schema registry (Confluent wire format) for one stream's events.
//!
//! Encoding goes through `schema_registry_converter` with TopicNameStrategy, which registers
//! the `.avsc` from `contracts` on first use. Decoding reads with the *writer's* schema and
//! then maps the payload union branch by record name onto our enum: Avro's generic resolution
//! matches union branches by shape, which cannot tell two field-less records apart.
use apache_avro::{Schema, from_value, reader::datum::GenericDatumReader, schema::Schema as S, types::Value};
use contracts::{EventEnvelope, EventMetadata, Stream, value_subject};
use schema_registry_converter::{
    async_impl::{
        avro::{AvroDecoder, AvroEncoder},
        schema_registry::SrSettings,
    },
    avro_common::AvroSchema,
    error::SRCError,
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use std::{
    collections::HashMap,
    marker::PhantomData,
    sync::{Arc, Mutex},
};

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("schema registry: {0}")]
    Registry(#[from] SRCError),
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error("not in Confluent wire format (magic byte 0 + 4-byte schema id)")]
    NotWireFormat,
    #[error("event type {0} is unknown to this service's schema (newer writer?)")]
    UnknownEventType(String),
    #[error("event record has no payload union")]
    NoPayload,
}

impl CodecError {
    /// Whether reading the same bytes again later can succeed: the registry could not be
    /// reached or failed. Only "no such schema" (404) is an answer about the record itself;
    /// `schema_registry_converter` marks just 502/503 as retriable, and a loop that skipped
    /// an event because the registry answered 500 for a moment would fork its aggregate.
    pub fn is_retryable(&self) -> bool {
        match self {
            CodecError::Registry(error) => error.retriable || !error.error.contains("status 404"),
            CodecError::Avro(_) | CodecError::NotWireFormat | CodecError::UnknownEventType(_) | CodecError::NoPayload => false,
        }
    }

    /// A short, stable name of what went wrong (the `dlq.error.kind` of a dead letter).
    pub fn kind(&self) -> &'static str {
        match self {
            CodecError::Registry(_) => "unknown_schema",
            CodecError::Avro(_) => "malformed_avro",
            CodecError::NotWireFormat => "not_wire_format",
            CodecError::UnknownEventType(_) => "unknown_event_type",
            CodecError::NoPayload => "no_payload",
        }
    }
}

/// What a reader of an event topic got from one record.
// Returned and matched at once, never stored: boxing the rare variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Read<E> {
    Event(EventEnvelope<E>),
    /// The record will never decode (its bytes, its schema or its event type are not ours).
    /// `envelope` is its ids and version when the envelope could be read without the payload:
    /// the event still takes its place in its aggregate's history, so the events after it apply.
    Undecodable {
        error: CodecError,
        envelope: Option<EventMetadata>,
    },
}

/// The envelope fields, read with a writer schema that stops before `payload` (the last field).
#[derive(serde::Deserialize)]
struct EnvelopeOnly {
    event_id: String,
    aggregate_id: String,
    version: i64,
    previous_event_id: Option<String>,
    occurred_at: i64,
    correlation_id: String,
    causation_id: String,
    command_id: String,
    command_offset: i64,
}

impl From<EnvelopeOnly> for EventMetadata {
    fn from(e: EnvelopeOnly) -> Self {
        EventMetadata {
            event_id: e.event_id,
            aggregate_id: e.aggregate_id,
            version: e.version,
            previous_event_id: e.previous_event_id,
            occurred_at: e.occurred_at,
            correlation_id: e.correlation_id,
            causation_id: e.causation_id,
            command_id: e.command_id,
            command_offset: e.command_offset,
        }
    }
}

/// `writer` without its `payload` field, when that is the last field (as in every envelope):
/// Avro reads fields in order, so this schema reads the envelope of a record whose payload
/// does not decode.
fn envelope_schema(writer: &AvroSchema) -> Option<Schema> {
    let mut json: serde_json::Value = serde_json::from_str(&writer.raw).ok()?;
    let fields = json.get_mut("fields")?.as_array_mut()?;
    if fields.last()?.get("name")?.as_str()? != "payload" {
        return None;
    }
    fields.pop();
    Schema::parse(&json).ok()
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(Box::new(e))
    }
}

/// Splits a Confluent-framed record value into schema id and Avro body.
pub fn split_wire_format(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err(CodecError::NotWireFormat),
    }
}

/// Names of the records in the `payload` union of an envelope schema, in branch order.
pub fn payload_branches(schema: &Schema) -> Result<Vec<String>, CodecError> {
    let S::Record(record) = schema else { return Err(CodecError::NoPayload) };
    let field = record.fields.iter().find(|f| f.name == "payload").ok_or(CodecError::NoPayload)?;
    let S::Union(union) = &field.schema else { return Err(CodecError::NoPayload) };
    Ok(union
        .variants()
        .iter()
        .map(|branch| match branch {
            S::Record(r) => r.name.name().to_string(),
            other => format!("{other:?}"),
        })
        .collect())
}

/// Reads an Avro body with the writer schema the registry has under `schema_id`; the schema
/// comes back as the decoder's cached copy (`.parsed`), not a clone per record.
pub async fn read_with_writer_schema(decoder: &AvroDecoder, bytes: &[u8]) -> Result<(u32, Arc<AvroSchema>, Value), CodecError> {
    let (schema_id, mut body) = split_wire_format(bytes)?;
    let writer = decoder.get_schema(schema_id).await?;
    let value = GenericDatumReader::builder(&writer.parsed).build()?.read_value(&mut body)?;
    Ok((schema_id, writer, value))
}

/// The most apache-avro allocates for one string, bytes or array while decoding. A record is
/// at most about 1 MB (the broker's limit), so a longer length prefix is a lie: without this
/// bound a crafted record makes a reader allocate the library's default of 512 MiB.
pub const MAX_AVRO_ALLOCATION_BYTES: usize = 2 * 1024 * 1024;

/// Sets [`MAX_AVRO_ALLOCATION_BYTES`] for the process (the first setting wins; every codec
/// sets it before its first decode).
pub fn limit_avro_allocation() -> usize {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION_BYTES)
}

pub fn registry_settings(url: &str) -> Result<SrSettings, SRCError> {
    SrSettings::new_builder(url.to_string()).no_proxy().build()
}

/// Encodes and decodes the events of stream `S`.
pub struct EventCodec<S: Stream> {
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    strategy: SubjectNameStrategy,
    our_branches: Vec<String>,
    /// writer schema id -> for each writer branch, our branch index.
    branch_maps: Mutex<HashMap<u32, Vec<Option<u32>>>>,
    /// writer schema id -> that schema without its payload (None: not an envelope).
    envelope_schemas: Mutex<HashMap<u32, Option<Arc<Schema>>>>,
    _stream: PhantomData<S>,
}

impl<S: Stream> EventCodec<S> {
    pub fn new(registry_url: &str) -> Result<Self, CodecError> {
        limit_avro_allocation();
        let schema = Schema::parse_str(S::EVENT_SCHEMA)?;
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, S::EVENT_SCHEMA.to_string());
        Ok(EventCodec {
            encoder: AvroEncoder::new(registry_settings(registry_url)?),
            decoder: AvroDecoder::new(registry_settings(registry_url)?),
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(S::EVENTS_TOPIC.to_string(), false, supplied),
            our_branches: payload_branches(&schema)?,
            branch_maps: Mutex::new(HashMap::new()),
            envelope_schemas: Mutex::new(HashMap::new()),
            _stream: PhantomData,
        })
    }

    pub fn subject() -> String {
        value_subject(S::EVENTS_TOPIC)
    }

    /// Confluent-framed Avro bytes; registers the schema on first use.
    pub async fn encode(&self, event: &EventEnvelope<S::Event>) -> Result<Vec<u8>, CodecError> {
        Ok(self.encoder.encode_struct(event, &self.strategy).await?)
    }

    pub async fn decode(&self, bytes: &[u8]) -> Result<EventEnvelope<S::Event>, CodecError> {
        let (schema_id, mut body) = split_wire_format(bytes)?;
        let writer = self.decoder.get_schema(schema_id).await?;
        self.decode_body(schema_id, &writer.parsed, &mut body)
    }

    /// Decodes an Avro body written with `writer_schema` (registered under `schema_id`): no
    /// registry involved, so it can be fed any bytes in a test.
    pub fn decode_body(&self, schema_id: u32, writer_schema: &Schema, body: &mut &[u8]) -> Result<EventEnvelope<S::Event>, CodecError> {
        let mut value = GenericDatumReader::builder(writer_schema).build()?.read_value(body)?;
        let map = self.branch_map(schema_id, writer_schema)?;
        if let Value::Record(fields) = &mut value
            && let Some((_, Value::Union(index, inner))) = fields.iter_mut().find(|(name, _)| name == "payload")
        {
            let _ = inner;
            match map.get(*index as usize).copied().flatten() {
                Some(ours) => *index = ours,
                None => {
                    let writer_branches = payload_branches(writer_schema)?;
                    let name = writer_branches.get(*index as usize).cloned().unwrap_or_else(|| format!("#{index}"));
                    return Err(CodecError::UnknownEventType(name));
                }
            }
        }
        Ok(from_value(&value)?)
    }

    /// Decodes a record for a reader that must not skip what it cannot read by accident: a
    /// retryable failure (registry unreachable or failing) is the `Err`, for the loop to retry
    /// the batch; anything else is [`Read::Undecodable`], with the envelope when it can be read.
    pub async fn read(&self, bytes: &[u8]) -> Result<Read<S::Event>, CodecError> {
        match self.decode(bytes).await {
            Ok(event) => Ok(Read::Event(event)),
            Err(error) if error.is_retryable() => {
                // The decoder caches failures; the retry must ask the registry again.
                self.decoder.remove_errors_from_cache();
                Err(error)
            }
            Err(error) => Ok(Read::Undecodable { envelope: self.read_envelope(bytes).await, error }),
        }
    }

    /// The envelope of a record whose payload does not decode, if its writer schema is known
    /// and its envelope fields are intact.
    pub async fn read_envelope(&self, bytes: &[u8]) -> Option<EventMetadata> {
        let (schema_id, mut body) = split_wire_format(bytes).ok()?;
        let writer = self.decoder.get_schema(schema_id).await.ok()?;
        let schema = {
            let mut schemas = self.envelope_schemas.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            schemas.entry(schema_id).or_insert_with(|| envelope_schema(&writer).map(Arc::new)).clone()?
        };
        let value = GenericDatumReader::builder(&schema).build().ok()?.read_value(&mut body).ok()?;
        from_value::<EnvelopeOnly>(&value).ok().map(EventMetadata::from)
    }

    fn branch_map(&self, schema_id: u32, writer_schema: &Schema) -> Result<Vec<Option<u32>>, CodecError> {
        let mut maps = self.branch_maps.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(map) = maps.get(&schema_id) {
            return Ok(map.clone());
        }
        let map: Vec<Option<u32>> =
            payload_branches(writer_schema)?.iter().map(|name| self.our_branches.iter().position(|ours| ours == name).map(|i| i as u32)).collect();
        maps.insert(schema_id, map.clone());
        Ok(map)
    }
}

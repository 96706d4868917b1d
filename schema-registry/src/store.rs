//! The Kafka-backed store. The schemas topic is the only source of truth: the in-memory
//! [`State`] is rebuilt from it at startup and kept current by a tailing consumer. Writes are
//! produced to the topic and only acknowledged once the tailing consumer has applied them, so an
//! answer always reflects the log (read-your-writes) and a restart rebuilds the same ids.
//!
//! Record layout is Confluent's, so its tooling can read the topic:
//! - key `{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}`,
//!   value `{"subject":"s","version":1,"id":1,"schemaType":"AVRO","schema":"...","deleted":false}`
//! - key `{"keytype":"CONFIG","subject":null|"s","magic":0}`, value `{"compatibilityLevel":"FULL"}`
//! - deleting a subject re-writes each of its SCHEMA records with `"deleted":true` (soft delete,
//!   same key, so compaction keeps only the deleted marker); a null value (tombstone) for a key
//!   removes that version or config entirely. Other key types (NOOP, DELETE_SUBJECT, MODE...) are
//!   ignored.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use apache_avro::Schema;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use runtime::kafka::KafkaProducer;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::compatibility::{self, Level};
use crate::error::RegistryError;

/// How long a write may take from produce to being applied locally before we give up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long startup may take to catch up with the topic.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

// Field order matters: compaction compares key bytes, so keys must serialize exactly like
// Confluent's (keytype, subject, version, magic).
#[derive(Debug, Serialize, Deserialize)]
struct RecordKey {
    keytype: String,
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    magic: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaValue {
    subject: String,
    version: u32,
    id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_type: Option<String>,
    schema: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigValue {
    compatibility_level: String,
}

/// One registered schema, shared by every subject/version that uses its id.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub text: String,
    /// `None` if a record in the topic holds a schema we cannot parse (written by someone else);
    /// it can still be served by id, but never matches or passes a compatibility check.
    parsed: Option<Schema>,
}

#[derive(Debug, Clone, Copy)]
struct VersionEntry {
    id: u32,
    deleted: bool,
}

/// A subject version as returned by the API.
#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

#[derive(Debug, Default)]
pub struct State {
    subjects: BTreeMap<String, BTreeMap<u32, VersionEntry>>,
    schemas: HashMap<u32, StoredSchema>,
    /// identity key (see [`identity`]) -> id, so equal schemas share one id across subjects.
    ids_by_identity: HashMap<String, u32>,
    global_level: Option<Level>,
    subject_levels: HashMap<String, Level>,
}

/// What decides whether two schemas are "the same" for id reuse. The Parsing Canonical Form
/// alone drops defaults, doc and aliases, but defaults decide compatibility, so two schemas that
/// differ only in a default must not collapse into one id. We therefore use the full normalized
/// form apache-avro serializes (canonical key order and whitespace, attributes kept), prefixed by
/// the canonical form for readability when debugging.
pub fn identity(schema: &Schema) -> String {
    let full = serde_json::to_string(schema).unwrap_or_default();
    format!("{}\n{}", schema.canonical_form(), full)
}

pub fn parse_schema(text: &str) -> Result<Schema, RegistryError> {
    Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

impl State {
    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let key: RecordKey = match serde_json::from_slice(key) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "skipping record with unreadable key");
                return;
            }
        };
        match key.keytype.as_str() {
            "SCHEMA" => self.apply_schema(key, value),
            "CONFIG" => self.apply_config(key, value),
            other => tracing::debug!(keytype = other, "ignoring record"),
        }
    }

    fn apply_schema(&mut self, key: RecordKey, value: Option<&[u8]>) {
        let Some(value) = value else {
            if let (Some(subject), Some(version)) = (key.subject, key.version)
                && let Some(versions) = self.subjects.get_mut(&subject)
            {
                versions.remove(&version);
                if versions.is_empty() {
                    self.subjects.remove(&subject);
                }
            }
            return;
        };
        let value: SchemaValue = match serde_json::from_slice(value) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "skipping unreadable schema record");
                return;
            }
        };
        if value.schema_type.as_deref().is_some_and(|t| t != "AVRO") {
            tracing::warn!(subject = value.subject, "skipping non-Avro schema record");
            return;
        }
        self.schemas.entry(value.id).or_insert_with(|| {
            let parsed = Schema::parse_str(&value.schema).ok();
            if let Some(schema) = &parsed {
                self.ids_by_identity.entry(identity(schema)).or_insert(value.id);
            }
            StoredSchema { text: value.schema.clone(), parsed }
        });
        self.subjects.entry(value.subject).or_default().insert(value.version, VersionEntry { id: value.id, deleted: value.deleted });
    }

    fn apply_config(&mut self, key: RecordKey, value: Option<&[u8]>) {
        let level = match value.map(serde_json::from_slice::<ConfigValue>) {
            None => None,
            Some(Ok(v)) => match v.compatibility_level.parse::<Level>() {
                Ok(level) => Some(level),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping config record");
                    return;
                }
            },
            Some(Err(e)) => {
                tracing::warn!(error = %e, "skipping unreadable config record");
                return;
            }
        };
        match (key.subject, level) {
            (None, level) => self.global_level = level,
            (Some(subject), Some(level)) => {
                self.subject_levels.insert(subject, level);
            }
            (Some(subject), None) => {
                self.subject_levels.remove(&subject);
            }
        }
    }

    fn live_versions(&self, subject: &str) -> impl Iterator<Item = (u32, VersionEntry)> + '_ {
        self.subjects.get(subject).into_iter().flatten().filter(|(_, e)| !e.deleted).map(|(v, e)| (*v, *e))
    }

    fn subject_exists(&self, subject: &str) -> bool {
        self.live_versions(subject).next().is_some()
    }

    pub fn subjects(&self) -> Vec<String> {
        self.subjects.keys().filter(|s| self.subject_exists(s)).cloned().collect()
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let versions: Vec<u32> = self.live_versions(subject).map(|(v, _)| v).collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        Ok(versions)
    }

    /// `version == None` means latest.
    pub fn version(&self, subject: &str, version: Option<u32>) -> Result<SubjectVersion, RegistryError> {
        let mut live = self.live_versions(subject).peekable();
        if live.peek().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let found = match version {
            None => live.last(),
            Some(wanted) => live.find(|(v, _)| *v == wanted),
        };
        let (version_no, entry) = found.ok_or_else(|| RegistryError::VersionNotFound(version.map_or("latest".into(), |v| v.to_string())))?;
        self.subject_version(subject, version_no, entry.id)
    }

    fn subject_version(&self, subject: &str, version: u32, id: u32) -> Result<SubjectVersion, RegistryError> {
        let schema = self.schemas.get(&id).ok_or(RegistryError::SchemaNotFound)?;
        Ok(SubjectVersion { subject: subject.to_string(), version, id, schema: schema.text.clone() })
    }

    pub fn schema_by_id(&self, id: u32) -> Option<&StoredSchema> {
        self.schemas.get(&id)
    }

    /// The live version of `subject` holding a schema identical to `schema`, if any.
    pub fn lookup(&self, subject: &str, schema: &Schema) -> Result<SubjectVersion, RegistryError> {
        if !self.subject_exists(subject) {
            return Err(RegistryError::SubjectNotFound(subject.to_string()));
        }
        let id = *self.ids_by_identity.get(&identity(schema)).ok_or(RegistryError::SchemaNotFound)?;
        let (version, _) = self.live_versions(subject).filter(|(_, e)| e.id == id).last().ok_or(RegistryError::SchemaNotFound)?;
        self.subject_version(subject, version, id)
    }

    pub fn global_level(&self) -> Level {
        self.global_level.unwrap_or_default()
    }

    /// Subject level if set, otherwise the global one (Confluent's `defaultToGlobal=true`).
    pub fn level(&self, subject: &str) -> Level {
        self.subject_levels.get(subject).copied().unwrap_or_else(|| self.global_level())
    }

    /// Compatibility problems of `schema` against `subject` under its configured level; with
    /// `version` set, only against that one version (like Confluent's compatibility endpoint).
    pub fn compatibility_problems(&self, subject: &str, schema: &Schema, version: Option<u32>) -> Result<Vec<String>, RegistryError> {
        let level = self.level(subject);
        let previous: Vec<&Schema> = match version {
            Some(v) => {
                let sv = self.version(subject, Some(v))?;
                vec![self.parsed(sv.id)?]
            }
            None => self.live_versions(subject).map(|(_, e)| self.parsed(e.id)).collect::<Result<_, _>>()?,
        };
        Ok(compatibility::check(level, schema, &previous))
    }

    fn parsed(&self, id: u32) -> Result<&Schema, RegistryError> {
        self.schemas.get(&id).and_then(|s| s.parsed.as_ref()).ok_or_else(|| RegistryError::backend(format!("schema {id} in the log is unreadable")))
    }

    fn next_id(&self) -> u32 {
        self.schemas.keys().max().map_or(1, |m| m + 1)
    }

    /// Versions are never reused, not even those of a deleted subject.
    fn next_version(&self, subject: &str) -> u32 {
        self.subjects.get(subject).and_then(|v| v.keys().max()).map_or(1, |m| m + 1)
    }
}

pub struct Store {
    state: RwLock<State>,
    /// Offset of the next record the tailing consumer will apply.
    applied: watch::Receiver<i64>,
    producer: KafkaProducer,
    topic: String,
    /// Serializes writers within this process so `max id + 1` is computed on current state.
    /// (Like Confluent with a single leader; running several writers on one topic is unsupported.)
    write_lock: Mutex<()>,
}

impl Store {
    /// Creates the topic if needed, replays it up to the current end and keeps tailing it.
    pub async fn open(brokers: &str, topic: &str) -> anyhow::Result<Arc<Store>> {
        ensure_topic(brokers, topic).await?;

        let producer =
            KafkaProducer::from_config(ClientConfig::new().set("bootstrap.servers", brokers).set("enable.idempotence", "true").set("acks", "all"))?;

        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // Assigned manually and never committed: the whole topic is replayed on every start.
            .set("group.id", "schema-registry")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // Bounds the latency of every write (which waits for its record to come back) while
            // the tail fetches; a quiet topic is not fetched at all but probed (see `tail`).
            .set("fetch.wait.max.ms", "50")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;

        let end = high_watermark(&consumer, topic).await?;
        tracing::info!(topic, end, "replaying schemas topic");

        let (applied_tx, applied) = watch::channel(0);
        let store = Arc::new(Store { state: RwLock::new(State::default()), applied, producer, topic: topic.to_string(), write_lock: Mutex::new(()) });
        tokio::spawn(tail(Arc::downgrade(&store), Arc::new(consumer), applied_tx));

        store.wait_applied(end, STARTUP_TIMEOUT).await.map_err(|e| anyhow::anyhow!("could not catch up with {topic}: {e}"))?;
        tracing::info!(topic, end, "schemas topic replayed");
        Ok(store)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a way that matters
        // more than refusing all further requests would.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `text` under `subject`, returning its (possibly pre-existing) global id.
    pub async fn register(&self, subject: &str, text: &str) -> Result<u32, RegistryError> {
        let schema = parse_schema(text)?;
        let _writer = self.write_lock.lock().await;
        let record = {
            let state = self.read();
            if let Ok(existing) = state.lookup(subject, &schema) {
                return Ok(existing.id);
            }
            let problems = state.compatibility_problems(subject, &schema, None)?;
            if !problems.is_empty() {
                return Err(RegistryError::Incompatible { subject: subject.to_string(), details: problems });
            }
            let (id, text) = match state.ids_by_identity.get(&identity(&schema)) {
                Some(id) => (*id, state.schemas.get(id).map_or_else(|| text.to_string(), |s| s.text.clone())),
                None => (state.next_id(), text.to_string()),
            };
            SchemaValue {
                subject: subject.to_string(),
                version: state.next_version(subject),
                id,
                schema_type: Some("AVRO".to_string()),
                schema: text,
                deleted: false,
            }
        };
        let id = record.id;
        self.append(&schema_key(subject, record.version), Some(&record)).await?;
        tracing::info!(subject, id, version = record.version, "registered schema");
        Ok(id)
    }

    /// Soft-deletes every live version of `subject`, returning their numbers.
    pub async fn delete_subject(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        let _writer = self.write_lock.lock().await;
        let records: Vec<SchemaValue> = {
            let state = self.read();
            let versions = state.versions(subject)?;
            versions
                .into_iter()
                .map(|version| {
                    let sv = state.version(subject, Some(version))?;
                    Ok(SchemaValue {
                        subject: sv.subject,
                        version,
                        id: sv.id,
                        schema_type: Some("AVRO".to_string()),
                        schema: sv.schema,
                        deleted: true,
                    })
                })
                .collect::<Result<_, RegistryError>>()?
        };
        for record in &records {
            self.append(&schema_key(subject, record.version), Some(record)).await?;
        }
        tracing::info!(subject, "deleted subject");
        Ok(records.iter().map(|r| r.version).collect())
    }

    /// Sets the global (`subject == None`) or a subject's compatibility level.
    pub async fn set_level(&self, subject: Option<&str>, level: Level) -> Result<(), RegistryError> {
        let _writer = self.write_lock.lock().await;
        let key = RecordKey { keytype: "CONFIG".to_string(), subject: subject.map(str::to_string), version: None, magic: 0 };
        let value = ConfigValue { compatibility_level: level.to_string() };
        self.append(&key, Some(&value)).await
    }

    /// Produces one record and waits until the tailing consumer has applied it.
    async fn append(&self, key: &RecordKey, value: Option<&impl Serialize>) -> Result<(), RegistryError> {
        let key = serde_json::to_vec(key).map_err(RegistryError::backend)?;
        let value = value.map(serde_json::to_vec).transpose().map_err(RegistryError::backend)?;
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic).key(&key).partition(0);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        let delivery = self.producer.send(record, WRITE_TIMEOUT).await.map_err(RegistryError::backend)?;
        // The tail may be parked at its quiet pace: it looks now.
        runtime::kafka::wake_parked_loops();
        self.wait_applied(delivery.offset + 1, WRITE_TIMEOUT).await
    }

    async fn wait_applied(&self, offset: i64, timeout: Duration) -> Result<(), RegistryError> {
        let mut applied = self.applied.clone();
        match tokio::time::timeout(timeout, applied.wait_for(|next| *next >= offset)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(RegistryError::backend("schemas topic consumer stopped")),
            Err(_) => Err(RegistryError::backend(format!("timed out waiting for offset {offset} of the schemas topic"))),
        }
    }
}

fn schema_key(subject: &str, version: u32) -> RecordKey {
    RecordKey { keytype: "SCHEMA".to_string(), subject: Some(subject.to_string()), version: Some(version), magic: 1 }
}

/// Applies every record of the topic to the state, forever (until the store is dropped).
///
/// Schemas are written rarely, and a fetch kept open on a quiet topic is steady work for
/// brokers that poll their storage for it (Nisshi). So after a quiet second the tail stops
/// fetching and asks for the topic's end offset instead (the runtime's parking, at the saga's
/// pace, slowing down when nothing comes for long). A write here wakes it, so it waits at most
/// a quick probe for its record to come back; another registry's write, a quiet probe.
async fn tail(store: std::sync::Weak<Store>, consumer: Arc<StreamConsumer>, applied: watch::Sender<i64>) {
    let mut parking = runtime::kafka::Parking::new(runtime::Pace::Saga, "schemas-tail");
    loop {
        let message = match parking.next_record(&consumer).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "error reading the schemas topic, retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(live) = store.upgrade() else { return };
        match message.key() {
            Some(key) => live.write_state().apply(key, message.payload()),
            None => tracing::warn!(offset = message.offset(), "skipping record without key"),
        }
        applied.send_replace(message.offset() + 1);
    }
}

async fn ensure_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let new_topic = NewTopic::new(topic, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) => tracing::info!(topic, "created schemas topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "schemas topic exists")
            }
            Err((_, code)) => anyhow::bail!("could not create topic {topic}: {code}"),
        }
    }
    Ok(())
}

/// The end of partition 0 at startup; retried because a freshly created topic may take a
/// moment to show up in metadata.
async fn high_watermark(consumer: &StreamConsumer, topic: &str) -> anyhow::Result<i64> {
    let deadline = tokio::time::Instant::now() + STARTUP_TIMEOUT;
    loop {
        let watermarks = tokio::task::block_in_place(|| consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)));
        match watermarks {
            Ok((_, high)) => return Ok(high),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "waiting for schemas topic metadata");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#;

    fn schema_record(subject: &str, version: u32, id: u32, schema: &str, deleted: bool) -> (Vec<u8>, Vec<u8>) {
        let key = serde_json::to_vec(&schema_key(subject, version)).unwrap();
        let value = serde_json::to_vec(&SchemaValue {
            subject: subject.into(),
            version,
            id,
            schema_type: Some("AVRO".into()),
            schema: schema.into(),
            deleted,
        })
        .unwrap();
        (key, value)
    }

    #[test]
    fn keys_serialize_like_confluent() {
        let key = serde_json::to_string(&schema_key("s", 1)).unwrap();
        assert_eq!(key, r#"{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}"#);
        let config = RecordKey { keytype: "CONFIG".into(), subject: None, version: None, magic: 0 };
        assert_eq!(serde_json::to_string(&config).unwrap(), r#"{"keytype":"CONFIG","subject":null,"magic":0}"#);
    }

    #[test]
    fn identity_ignores_layout_but_not_defaults() {
        let spaced = r#"{ "fields": [ {"type": "int", "name": "x"} ], "name": "A", "type": "record" }"#;
        let defaulted = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int","default":1}]}"#;
        let a = identity(&parse_schema(A).unwrap());
        assert_eq!(a, identity(&parse_schema(spaced).unwrap()));
        assert_ne!(a, identity(&parse_schema(defaulted).unwrap()));
    }

    #[test]
    fn replay_builds_state_and_tolerates_garbage() {
        let mut state = State::default();
        let (k, v) = schema_record("s", 1, 7, A, false);
        state.apply(&k, Some(&v));
        state.apply(b"not json", Some(b"{}"));
        state.apply(br#"{"keytype":"NOOP","magic":0}"#, None);
        state.apply(br#"{"keytype":"SCHEMA","subject":"s","version":2,"magic":1}"#, Some(b"garbage"));
        state.apply(br#"{"keytype":"CONFIG","subject":null,"magic":0}"#, Some(br#"{"compatibilityLevel":"FULL"}"#));
        assert_eq!(state.subjects(), vec!["s".to_string()]);
        assert_eq!(state.version("s", None).unwrap().id, 7);
        assert_eq!(state.next_id(), 8);
        assert_eq!(state.global_level(), Level::Full);

        let (k, v) = schema_record("s", 1, 7, A, true);
        state.apply(&k, Some(&v));
        assert!(state.subjects().is_empty());
        assert!(state.schema_by_id(7).is_some());
        assert_eq!(state.next_version("s"), 2);
        state.apply(&k, None);
        assert_eq!(state.next_version("s"), 1);
    }
}

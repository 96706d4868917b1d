//! Snapshots on `<stream>.snapshots`: written by a partition's writer, read back by it on
//! assignment and by every reader of the stream that needs the accepted history's tips.
//!
//! The newest snapshot is found from the end of the partition backwards, a few records at a
//! time, so finding it costs the snapshot's size, not the topic's: Nisshi 0.8.1 does not
//! compact, and Apache Kafka compacts only now and then. Superseded snapshots get tombstones
//! (one per part key), so compaction can drop them.
use super::format::{Contents, Covers, FORMAT, SnapshotPart, complete_snapshots, contents, digest};
use crate::kafka::{KafkaProducer, close_in_background, codec::registry_settings, event_log::read_records, large_record_reader};
use apache_avro::from_value;
use contracts::snapshots_topic;
use rdkafka::{consumer::BaseConsumer, error::KafkaError, producer::FutureRecord};
use schema_registry_converter::{
    async_impl::avro::{AvroDecoder, AvroEncoder},
    error::SRCError,
    schema_registry_common::{SchemaType, SubjectNameStrategy, SuppliedSchema},
};
use serde::de::DeserializeOwned;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, Weak},
    time::Duration,
};

/// The Avro schema of one part.
pub const SNAPSHOT_SCHEMA: &str = include_str!("../../../schemas/snapshot.avsc");

/// Records read per step when looking backwards for the newest snapshot.
const SCAN_WINDOW: i64 = 8;
/// How many complete snapshots a reader looks at for one that is old enough for it.
const SNAPSHOTS_LOOKED_AT: usize = 3;
/// How far back a reader looks at most (records); a snapshot is a few hundred at most.
const SCAN_LIMIT: i64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("schema registry: {0}")]
    Registry(#[from] SRCError),
    #[error("avro: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
    #[error("snapshot body: {0}")]
    Body(#[from] serde_json::Error),
}

impl From<apache_avro::Error> for SnapshotError {
    fn from(error: apache_avro::Error) -> Self {
        SnapshotError::Avro(Box::new(error))
    }
}

/// One stream's snapshot topic, through the schema registry.
pub struct SnapshotStore {
    stream: &'static str,
    topic: String,
    brokers: String,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    strategy: SubjectNameStrategy,
    /// Per partition, the newest snapshot last found, while a reader still holds it. A service's
    /// loops that start together (its writer, its deadlines, its subscriptions to the stream)
    /// then read a partition's snapshot once, not once each: at 100,000 orders a snapshot is
    /// 50 MB, and three copies read at once made most of a restarted order-svc's memory.
    recent: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Recent>>>>,
}

/// The newest snapshot of a partition as last found: valid while the snapshot topic's end is
/// still `high` (no snapshot written since) and a reader holds it.
#[derive(Default)]
struct Recent {
    high: i64,
    found: Weak<Found>,
}

/// A complete snapshot, read back.
struct Found {
    pub parts: Vec<SnapshotPart>,
}

impl Found {
    fn covers(&self) -> Covers {
        let first = &self.parts[0];
        Covers {
            offset: first.covers_offset,
            digest: first.covers_digest.clone(),
            rejections_offset: first.rejections_offset,
            last_command_offset: first.last_command_offset,
        }
    }

    fn id(&self) -> &str {
        &self.parts[0].snapshot_id
    }
}

impl SnapshotStore {
    pub fn new(stream: &'static str, brokers: &str, registry_url: &str) -> Result<Self, SRCError> {
        let topic = snapshots_topic(stream);
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, SNAPSHOT_SCHEMA.to_string());
        Ok(SnapshotStore {
            stream,
            strategy: SubjectNameStrategy::TopicNameStrategyWithSchema(topic.clone(), false, supplied),
            topic,
            brokers: brokers.to_string(),
            encoder: AvroEncoder::new(registry_settings(registry_url)?),
            decoder: AvroDecoder::new(registry_settings(registry_url)?),
            recent: Mutex::default(),
        })
    }

    /// Writes a snapshot of `partition` (its parts in order, each acknowledged before the
    /// next is sent, so the parts of one snapshot are never interleaved by retries), then
    /// tombstones for the parts of `superseded`.
    pub async fn write(
        &self,
        producer: &KafkaProducer,
        partition: i32,
        covers: &Covers,
        bodies: Vec<String>,
        taken_at: i64,
        superseded: Option<(String, i32)>,
    ) -> Result<String, SnapshotError> {
        let snapshot_id = uuid::Uuid::new_v4().to_string();
        let parts = bodies.len() as i32;
        for (k, body) in bodies.into_iter().enumerate() {
            let part = SnapshotPart {
                snapshot_id: snapshot_id.clone(),
                stream: self.stream.to_string(),
                partition,
                covers_offset: covers.offset,
                covers_digest: covers.digest.clone(),
                rejections_offset: covers.rejections_offset,
                last_command_offset: covers.last_command_offset,
                taken_at,
                part: k as i32,
                parts,
                format: FORMAT.to_string(),
                body,
            };
            let bytes = self.encoder.encode_struct(&part, &self.strategy).await?;
            let key = part_key(partition, &snapshot_id, k as i32);
            let record = FutureRecord::<str, [u8]>::to(&self.topic).partition(partition).key(&key).payload(&bytes);
            producer.send(record, Duration::from_secs(30)).await?;
        }
        if let Some((old_id, old_parts)) = superseded {
            for k in 0..old_parts {
                let key = part_key(partition, &old_id, k);
                let tombstone = FutureRecord::<str, [u8]>::to(&self.topic).partition(partition).key(&key);
                producer.send(tombstone, Duration::from_secs(30)).await?;
            }
        }
        Ok(snapshot_id)
    }

    /// The newest complete snapshot of `partition` that covers at most `at_most` events (any,
    /// when `None`), among the newest few; `None` when there is none, or snapshots are off.
    /// Readers of one partition take turns, and a reader that comes while the newest snapshot
    /// is still held by another shares it.
    async fn newest(&self, reader: Arc<BaseConsumer>, partition: i32, at_most: Option<i64>) -> Result<Option<Arc<Found>>, SnapshotError> {
        // Snapshots off: neither written nor read (the whole log is, as without them).
        if super::every_events() == 0 {
            return Ok(None);
        }
        let turn = self.recent.lock().unwrap_or_else(PoisonError::into_inner).entry(partition).or_default().clone();
        let mut recent = turn.lock().await;
        let (low, high) = {
            let (reader, topic) = (reader.clone(), self.topic.clone());
            tokio::task::spawn_blocking(move || crate::kafka::watermarks(&*reader, &topic, partition)).await.map_err(|_| KafkaError::Canceled)??
        };
        if recent.high == high
            && let Some(found) = recent.found.upgrade()
            && at_most.is_none_or(|bound| found.parts[0].covers_offset <= bound)
        {
            return Ok(Some(found));
        }
        if high <= low {
            return Ok(None);
        }
        // The parts come through a client of their own, tuned for large records, which lives
        // as long as this search.
        let parts_reader = Arc::new(large_record_reader(&self.brokers)?);
        let found = self.search(&parts_reader, partition, at_most, (low, high)).await;
        close_in_background(parts_reader);
        let found = found?;
        if let Some((found, true)) = &found {
            // Only the partition's newest snapshot is worth sharing: most readers want it.
            *recent = Recent { high, found: Arc::downgrade(found) };
        }
        Ok(found.map(|(found, _)| found))
    }

    /// Reads the snapshot topic backwards from `high` for the newest complete snapshot that
    /// covers at most `at_most` events; `true` with it when it is the newest of all.
    async fn search(
        &self,
        parts_reader: &Arc<BaseConsumer>,
        partition: i32,
        at_most: Option<i64>,
        (low, high): (i64, i64),
    ) -> Result<Option<(Arc<Found>, bool)>, SnapshotError> {
        // Newest first as read; `window` holds the decoded parts in offset order.
        let mut window: Vec<SnapshotPart> = Vec::new();
        let mut until = high;
        let mut looked_at = 0;
        // Where the snapshot of the newest part read so far would begin: the next read goes
        // back that far at once (a snapshot of 100,000 orders is about 100 parts).
        let mut reach = high;
        let floor = low.max(high - SCAN_LIMIT);
        while until > floor && looked_at < SNAPSHOTS_LOOKED_AT {
            let from = (until - SCAN_WINDOW).min(reach).max(floor);
            let (records, _) = read_records(parts_reader.clone(), self.topic.clone(), partition, from, Some(until)).await?;
            let mut older = Vec::with_capacity(records.len());
            for record in records {
                let Some(bytes) = record.value else { continue };
                match self.decode(&bytes).await {
                    Ok(part) if part.format == FORMAT && part.partition == partition => {
                        if reach >= until {
                            reach = record.offset - i64::from(part.part);
                        }
                        older.push(part)
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(topic = %self.topic, partition, offset = record.offset, %error, "unreadable snapshot record skipped")
                    }
                }
            }
            older.append(&mut window);
            window = older;
            until = from;
            let complete = complete_snapshots(&window);
            looked_at = complete.len();
            if let Some((k, range)) =
                complete.into_iter().enumerate().find(|(_, range)| at_most.is_none_or(|bound| window[range.start].covers_offset <= bound))
            {
                return Ok(Some((Arc::new(Found { parts: window.drain(range).collect() }), k == 0)));
            }
        }
        Ok(None)
    }

    /// The newest snapshot of `partition` that covers at most `at_most` events, when it matches
    /// the event log `events_topic` and reads back as `St` (`serde::de::IgnoredAny` for the
    /// tips alone): where it stands, what it holds, and its id and part count. Anything else is
    /// `None`, with a warning when a snapshot was there but not used: the reader then reads the
    /// log from its start, as without snapshots.
    pub async fn usable<St: DeserializeOwned>(
        &self,
        reader: Arc<BaseConsumer>,
        events_topic: &str,
        partition: i32,
        at_most: Option<i64>,
    ) -> Option<(Covers, Contents<St>, (String, i32))> {
        let found = match self.newest(reader.clone(), partition, at_most).await {
            Ok(found) => found?,
            Err(error) => {
                tracing::warn!(topic = events_topic, partition, %error, "snapshots could not be read; reading the log from its start");
                return None;
            }
        };
        let covers = found.covers();
        match matches_log(reader, events_topic, partition, &covers).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    topic = events_topic,
                    partition,
                    snapshot = found.id(),
                    covers = covers.offset,
                    "snapshot does not match the log (replaced or cut?); reading the log from its start"
                );
                return None;
            }
            Err(error) => {
                tracing::warn!(topic = events_topic, partition, %error, "the log could not be checked against the snapshot; reading it from its start");
                return None;
            }
        }
        match contents::<St>(&found.parts) {
            Ok(read) => Some((covers, read, (found.id().to_string(), found.parts.len() as i32))),
            Err(error) => {
                tracing::warn!(
                    topic = events_topic, partition, snapshot = found.id(), %error,
                    "snapshot does not read back (a state's type changed?); reading the log from its start"
                );
                None
            }
        }
    }

    async fn decode(&self, bytes: &[u8]) -> Result<SnapshotPart, SnapshotError> {
        let decoded = self.decoder.decode(Some(bytes)).await?;
        Ok(from_value::<SnapshotPart>(&decoded.value)?)
    }
}

fn part_key(partition: i32, snapshot_id: &str, part: i32) -> String {
    format!("{partition}/{snapshot_id}/{part}")
}

/// Whether the event log still is the one a snapshot was taken from: it reaches the covered
/// offset and the record just before it is the same. A log replaced or cut under the snapshot
/// fails this, and the snapshot is not used.
async fn matches_log(reader: Arc<BaseConsumer>, events_topic: &str, partition: i32, covers: &Covers) -> Result<bool, KafkaError> {
    if covers.offset == 0 {
        return Ok(covers.digest.is_empty());
    }
    let (records, high) = read_records(reader, events_topic.to_string(), partition, covers.offset - 1, Some(covers.offset)).await?;
    if high < covers.offset {
        return Ok(false);
    }
    Ok(records
        .first()
        .is_some_and(|record| record.offset == covers.offset - 1 && record.value.as_deref().map(digest).as_deref() == Some(covers.digest.as_str())))
}

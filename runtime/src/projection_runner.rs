//! Runs a read model: consumes its source topics from the checkpoints stored in its own
//! database (not consumer-group offsets), applies the version rule, and writes each batch of
//! rows together with the new checkpoints and history tips in one transaction. Replaying a
//! range twice changes nothing; a crash mid-batch loses the whole batch, never half of it.
use crate::{
    admin::{LoopKind, wait_while_paused},
    codec::{CodecError, EventCodec},
    consume::LoopError,
    history::HistoryTip,
    kafka,
    metrics::{self as m, LagReporter},
    projection::{Projector, RawProjector, RawRecord, SqlValue, SqlWrite},
    telemetry,
};
use contracts::{EventMetadata, Stream};
use futures::future::BoxFuture;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::{
    collections::HashMap,
    sync::{Arc, atomic::{AtomicI64, Ordering}},
    time::{Duration, Instant},
};
use tokio::sync::watch;
use tracing::{Instrument, field::Empty};

const MAX_BATCH: usize = 2000;
const LINGER: Duration = Duration::from_millis(10);
/// Events older than this get no span: rebuilding a read model from old history would add
/// thousands of spans to traces that ended long ago (and flood the exporter).
const TRACE_MAX_EVENT_AGE_MS: i64 = 5 * 60 * 1000;

type Projected = Result<(EventMetadata, Vec<SqlWrite>), CodecError>;

/// One source stream of a projection, with its type erased so a projection can join streams.
trait Source: Send + Sync {
    fn topic(&self) -> &'static str;
    fn project<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, Projected>;
}

struct StreamSource<S: Stream, P: Projector<S>> {
    codec: Arc<EventCodec<S>>,
    projector: P,
}

impl<S: Stream, P: Projector<S>> Source for StreamSource<S, P> {
    fn topic(&self) -> &'static str {
        S::EVENTS_TOPIC
    }
    fn project<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, Projected> {
        Box::pin(async move {
            let event = self.codec.decode(bytes).await?;
            Ok((event.metadata(), self.projector.project(&event)))
        })
    }
}

/// A non-Avro source topic (JSON or raw bytes) with the projector of its records.
struct RawSource {
    topic: String,
    projector: Box<dyn RawProjector>,
}

/// A named read model fed by one or more streams (and optionally non-Avro topics).
pub struct Projection {
    pub name: &'static str,
    sources: Vec<Box<dyn Source>>,
    raw_sources: Vec<RawSource>,
}

impl Projection {
    pub fn new(name: &'static str) -> Self {
        Projection { name, sources: Vec::new(), raw_sources: Vec::new() }
    }

    /// Adds a source stream; `registry_url` is where its writer schemas are looked up.
    pub fn from<S: Stream>(mut self, registry_url: &str, projector: impl Projector<S>) -> Result<Self, CodecError> {
        self.sources.push(Box::new(StreamSource { codec: Arc::new(EventCodec::<S>::new(registry_url)?), projector }));
        Ok(self)
    }

    /// Adds a topic whose records are not Avro events (e.g. `<stream>.rejections`, `*.dlq`).
    pub fn from_raw(mut self, topic: impl Into<String>, projector: impl RawProjector) -> Self {
        self.raw_sources.push(RawSource { topic: topic.into(), projector: Box::new(projector) });
        self
    }

    pub fn topics(&self) -> Vec<&str> {
        self.sources.iter().map(|s| s.topic()).chain(self.raw_sources.iter().map(|s| s.topic.as_str())).collect()
    }
}


/// Progress a projection has committed: bumped after every batch, so readers can wait for a
/// change without polling the database.
pub type Progress = watch::Receiver<u64>;

pub struct ProjectionRunner {
    projection: Projection,
    pool: AnyPool,
    brokers: String,
    progress: watch::Sender<u64>,
}

impl ProjectionRunner {
    pub fn new(projection: Projection, pool: AnyPool, brokers: &str) -> Self {
        ProjectionRunner { projection, pool, brokers: brokers.to_string(), progress: watch::channel(0).0 }
    }

    pub fn progress(&self) -> Progress {
        self.progress.subscribe()
    }

    pub fn name(&self) -> &'static str {
        self.projection.name
    }

    pub async fn run(&self) -> Result<(), LoopError> {
        let name = self.projection.name;
        let consumer: Arc<StreamConsumer> = Arc::new(rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("projection.{name}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()?);
        let checkpoints = self.load_checkpoints().await?;
        let mut assignment = TopicPartitionList::new();
        let mut seed = m::Seed::new();
        for topic in self.projection.topics() {
            for partition in 0..crate::consume::partition_count(&consumer, topic).await? {
                let next = checkpoints.get(&(topic.to_string(), partition)).copied().unwrap_or(0);
                assignment.add_partition_offset(topic, partition, Offset::Offset(next))?;
                seed.insert((topic.to_string(), partition), next);
            }
        }
        consumer.assign(&assignment)?;
        let last_commit_ms = Arc::new(AtomicI64::new(crate::command_processor::now_millis()));
        let _lag = LagReporter::spawn(LoopKind::Projection, name.to_string(), consumer.clone(), seed, Some(last_commit_ms.clone()));
        tracing::info!(projection = name, topics = ?self.projection.topics(), "projection started");
        let sources: HashMap<&str, &dyn Source> = self.projection.sources.iter().map(|s| (s.topic(), s.as_ref())).collect();
        let raw_sources: HashMap<&str, &dyn RawProjector> = self.projection.raw_sources.iter().map(|s| (s.topic.as_str(), s.projector.as_ref())).collect();
        let mut tips: HashMap<(String, String), HistoryTip> = HashMap::new();
        loop {
            wait_while_paused(LoopKind::Projection).await;
            let batch = crate::consume::next_batch(&consumer, MAX_BATCH, LINGER).await?;
            let started = Instant::now();
            let mut tx = self.pool.begin().await?;
            let mut changed_tips: HashMap<(String, String), HistoryTip> = HashMap::new();
            let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
            for message in &batch {
                next_offsets.insert((message.topic().to_string(), message.partition()), message.offset() + 1);
                if let Some(projector) = raw_sources.get(message.topic()) {
                    // No aggregate history to check: raw projectors write idempotent upserts.
                    for write in projector.project(&RawRecord::of(message)) {
                        execute(&mut tx, &write).await?;
                    }
                    continue;
                }
                let (Some(source), Some(bytes)) = (sources.get(message.topic()), message.payload()) else { continue };
                let (metadata, writes) = match source.project(bytes).await {
                    Ok(projected) => projected,
                    Err(error) => {
                        tracing::error!(projection = name, topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "undecodable event skipped");
                        continue;
                    }
                };
                // One span per event write, in the trace of the command that appended the event.
                let event_type = kafka::header(message, "event_type").unwrap_or_default();
                let now = crate::command_processor::now_millis();
                let recent = message.timestamp().to_millis().is_some_and(|at| now - at < TRACE_MAX_EVENT_AGE_MS);
                let span = if recent {
                    tracing::info_span!(
                        "projection.write",
                        otel.name = %format!("project {name} {event_type}"), otel.kind = "consumer",
                        projection = name, event_type = %event_type, aggregate_id = %metadata.aggregate_id, trace_id = Empty,
                    )
                } else {
                    tracing::Span::none()
                };
                telemetry::continue_from_record(&span, message);
                let key = (message.topic().to_string(), metadata.aggregate_id.clone());
                let known = changed_tips.get(&key).or_else(|| tips.get(&key)).cloned();
                let applied = async {
                    let tip = match known {
                        Some(tip) => tip,
                        None => load_tip(&mut tx, name, &key.0, &key.1).await?,
                    };
                    if !tip.accepts(&metadata) {
                        tracing::debug!("event outside the accepted history skipped");
                        return Ok::<_, sqlx::Error>(None);
                    }
                    for write in &writes {
                        execute(&mut tx, write).await?;
                    }
                    let mut tip = tip;
                    tip.advance(&metadata);
                    Ok(Some(tip))
                }
                .instrument(span)
                .await?;
                if let Some(tip) = applied {
                    changed_tips.insert(key, tip);
                }
            }
            for ((topic, aggregate_id), tip) in &changed_tips {
                sqlx::query(
                    "INSERT INTO projection_tips (projection, topic, aggregate_id, version, event_id) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (projection, topic, aggregate_id) DO UPDATE SET version = excluded.version, event_id = excluded.event_id",
                )
                .bind(name)
                .bind(topic)
                .bind(aggregate_id)
                .bind(tip.version)
                .bind(tip.event_id.clone().unwrap_or_default())
                .execute(&mut *tx)
                .await?;
            }
            for ((topic, partition), next) in &next_offsets {
                sqlx::query(
                    "INSERT INTO projection_checkpoints (projection, topic, partition_id, next_offset) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (projection, topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset",
                )
                .bind(name)
                .bind(topic)
                .bind(i64::from(*partition))
                .bind(*next)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            last_commit_ms.store(crate::command_processor::now_millis(), Ordering::Relaxed);
            m::batch_took(LoopKind::Projection, name, started.elapsed());
            tips.extend(changed_tips);
            self.progress.send_modify(|n| *n += 1);
        }
    }

    async fn load_checkpoints(&self) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
        let rows = sqlx::query("SELECT topic, partition_id, next_offset FROM projection_checkpoints WHERE projection = $1")
            .bind(self.projection.name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok(((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)? as i32), row.try_get::<i64, _>(2)?)))
            .collect()
    }
}

async fn load_tip(tx: &mut Transaction<'_, Any>, projection: &str, topic: &str, aggregate_id: &str) -> Result<HistoryTip, sqlx::Error> {
    let row = sqlx::query("SELECT version, event_id FROM projection_tips WHERE projection = $1 AND topic = $2 AND aggregate_id = $3")
        .bind(projection)
        .bind(topic)
        .bind(aggregate_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match row {
        Some(row) => HistoryTip { version: row.try_get(0)?, event_id: Some(row.try_get(1)?) },
        None => HistoryTip::default(),
    })
}

/// Runs one projected write with its parameters bound the way every projection's are.
pub async fn execute(tx: &mut Transaction<'_, Any>, write: &SqlWrite) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(write.sql);
    for param in &write.params {
        query = match param {
            SqlValue::Text(text) => query.bind(text.clone()),
            SqlValue::Int(int) => query.bind(*int),
            SqlValue::Null => query.bind(None::<String>),
        };
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

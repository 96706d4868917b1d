//! Runs a read model: consumes its source topics from the checkpoints stored in its own
//! database (not consumer-group offsets), applies the version rule, and writes each batch of
//! rows together with the new checkpoints and history tips in one transaction. Replaying a
//! range twice changes nothing; a crash mid-batch loses the whole batch, never half of it.
use crate::{
    codec::{CodecError, EventCodec},
    consume::LoopError,
    history::HistoryTip,
    kafka,
    projection::{Projector, SqlValue, SqlWrite},
};
use contracts::{EventMetadata, Stream};
use futures::future::BoxFuture;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::{collections::HashMap, sync::Arc, time::Duration};
use tokio::sync::watch;

const MAX_BATCH: usize = 2000;
const LINGER: Duration = Duration::from_millis(10);

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

/// A named read model fed by one or more streams.
pub struct Projection {
    pub name: &'static str,
    sources: Vec<Box<dyn Source>>,
}

impl Projection {
    pub fn new(name: &'static str) -> Self {
        Projection { name, sources: Vec::new() }
    }

    /// Adds a source stream; `registry_url` is where its writer schemas are looked up.
    pub fn from<S: Stream>(mut self, registry_url: &str, projector: impl Projector<S>) -> Result<Self, CodecError> {
        self.sources.push(Box::new(StreamSource { codec: Arc::new(EventCodec::<S>::new(registry_url)?), projector }));
        Ok(self)
    }

    pub fn topics(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.topic()).collect()
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
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", format!("projection.{name}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        let checkpoints = self.load_checkpoints().await?;
        let mut assignment = TopicPartitionList::new();
        for topic in self.projection.topics() {
            for partition in 0..kafka::partition_count(&consumer, topic)? {
                let next = checkpoints.get(&(topic.to_string(), partition)).copied().unwrap_or(0);
                assignment.add_partition_offset(topic, partition, Offset::Offset(next))?;
            }
        }
        consumer.assign(&assignment)?;
        tracing::info!(projection = name, topics = ?self.projection.topics(), "projection started");
        let sources: HashMap<&str, &dyn Source> = self.projection.sources.iter().map(|s| (s.topic(), s.as_ref())).collect();
        let mut tips: HashMap<(String, String), HistoryTip> = HashMap::new();
        loop {
            let mut batch = vec![consumer.recv().await?.detach()];
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, consumer.recv()).await {
                    Ok(message) => batch.push(message?.detach()),
                    Err(_) => break,
                }
            }
            let mut tx = self.pool.begin().await?;
            let mut changed_tips: HashMap<(String, String), HistoryTip> = HashMap::new();
            let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
            for message in &batch {
                next_offsets.insert((message.topic().to_string(), message.partition()), message.offset() + 1);
                let (Some(source), Some(bytes)) = (sources.get(message.topic()), message.payload()) else { continue };
                let (metadata, writes) = match source.project(bytes).await {
                    Ok(projected) => projected,
                    Err(error) => {
                        tracing::error!(projection = name, topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "undecodable event skipped");
                        continue;
                    }
                };
                let key = (message.topic().to_string(), metadata.aggregate_id.clone());
                let tip = match changed_tips.get(&key).or_else(|| tips.get(&key)) {
                    Some(tip) => tip.clone(),
                    None => load_tip(&mut tx, name, &key.0, &key.1).await?,
                };
                if !tip.accepts(&metadata) {
                    continue;
                }
                for write in &writes {
                    execute(&mut tx, write).await?;
                }
                let mut tip = tip;
                tip.advance(&metadata);
                changed_tips.insert(key, tip);
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

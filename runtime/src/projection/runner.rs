//! Runs a read model: consumes its source topics from the checkpoints stored in its own
//! database (not consumer-group offsets), applies the version rule, and writes each batch of
//! rows together with the new checkpoints and history tips in one transaction. Replaying a
//! range twice changes nothing; a crash mid-batch loses the whole batch, never half of it.
use super::{
    progress::{Committed, Progress},
    renames::TableRenames,
    store::{Backend, begin_writing},
};
use crate::{
    engine::{LoopError, pause::wait_while_paused_fetching},
    history::HistoryTip,
    kafka::{
        self, CodecError, EventCodec, Pace, Parking, assigned_consumer,
        codec::Read,
        loopback::{Handled, Loopback},
    },
    observe::{
        lag::{LagReporter, Seed},
        metrics as m, telemetry,
    },
    projector::{Projector, RawProjector, RawRecord, SqlValue, SqlWrite},
    shared::{LoopKind, now_millis},
};
use contracts::{EventMetadata, Stream};
use futures::future::BoxFuture;
use rdkafka::{Message, Offset, TopicPartitionList, consumer::Consumer, message::OwnedMessage};
use sqlx::{Any, AnyPool, Row, Transaction};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::watch;
use tracing::{Instrument, field::Empty};

const MAX_BATCH: usize = 2000;
const LINGER: Duration = Duration::from_millis(10);
/// Events older than this get no span: rebuilding a read model from old history would add
/// thousands of spans to traces that ended long ago (and flood the exporter).
const TRACE_MAX_EVENT_AGE_MS: i64 = 5 * 60 * 1000;

/// What a source made of one record: the rows of an event, or an event that never decodes
/// (with its envelope when readable, so its aggregate's later events still apply).
enum Projected {
    Rows(EventMetadata, Vec<SqlWrite>),
    Undecodable { error: CodecError, envelope: Option<EventMetadata> },
}

/// One source stream of a projection, with its type erased so a projection can join streams.
trait Source: Send + Sync {
    fn topic(&self) -> &'static str;
    /// `Err` only when a retry may succeed (the registry could not be reached).
    fn project<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, Result<Projected, CodecError>>;
}

struct StreamSource<S: Stream, P: Projector<S>> {
    codec: Arc<EventCodec<S>>,
    projector: P,
}

impl<S: Stream, P: Projector<S>> Source for StreamSource<S, P> {
    fn topic(&self) -> &'static str {
        S::EVENTS_TOPIC
    }
    fn project<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, Result<Projected, CodecError>> {
        Box::pin(async move {
            Ok(match self.codec.read(bytes).await? {
                Read::Event(event) => Projected::Rows(event.metadata(), self.projector.project(&event)),
                Read::Undecodable { error, envelope } => Projected::Undecodable { error, envelope },
            })
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
    /// Every table the projection writes, and nothing else writes: what a replay rebuilds,
    /// swaps and checksums.
    pub tables: &'static [&'static str],
    sources: Vec<Box<dyn Source>>,
    raw_sources: Vec<RawSource>,
    pace: Pace,
}

impl Projection {
    /// A read model nothing in the saga waits on ([`Pace::Background`]) until [`Self::on_saga_path`].
    pub fn new(name: &'static str, tables: &'static [&'static str]) -> Self {
        Projection { name, tables, sources: Vec::new(), raw_sources: Vec::new(), pace: Pace::Background }
    }

    /// Something waits on this read model as on a step of the saga (e.g. the order view that
    /// `GET /orders/{id}?wait_for=` watches): it follows its topics at [`Pace::Saga`].
    pub fn on_saga_path(mut self) -> Self {
        self.pace = Pace::Saga;
        self
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

/// The live run of a projection: its tables, under its own name, from its stored checkpoints.
pub struct ProjectionRunner {
    projection: Projection,
    pool: AnyPool,
    backend: Backend,
    brokers: String,
    progress: watch::Sender<Committed>,
}

impl ProjectionRunner {
    pub fn new(projection: Projection, pool: AnyPool, backend: Backend, brokers: &str) -> Self {
        ProjectionRunner { projection, pool, backend, brokers: brokers.to_string(), progress: watch::channel(Committed::default()).0 }
    }

    pub fn progress(&self) -> Progress {
        self.progress.subscribe()
    }

    pub fn name(&self) -> &'static str {
        self.projection.name
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// Runs until an error. A replay that swaps in rebuilt tables bumps the projection's
    /// generation; the run notices at its next batch, drops its cached state and resumes from
    /// the rebuilt checkpoints.
    pub async fn run(&self) -> Result<(), LoopError> {
        loop {
            self.run_generation().await?;
            tracing::info!(projection = self.projection.name, "tables were swapped by a replay; resuming from the rebuilt checkpoints");
            self.progress.send_modify(|committed| committed.advance(None));
        }
    }

    /// One generation of the live tables; returns when a replay has swapped them.
    async fn run_generation(&self) -> Result<(), LoopError> {
        let name = self.projection.name;
        let generation = current_generation(&self.pool, name).await?;
        let consumer = Arc::new(assigned_consumer(&self.brokers, &format!("projection.{name}"), self.projection.pace)?);
        let checkpoints = load_checkpoints(&self.pool, name).await?;
        let mut assignment = TopicPartitionList::new();
        let mut seed = Seed::new();
        let mut resumed = Vec::new();
        for topic in self.projection.topics() {
            for partition in 0..crate::engine::partition_count(&consumer, topic).await? {
                let next = checkpoints.get(&(topic.to_string(), partition)).copied().unwrap_or(0);
                assignment.add_partition_offset(topic, partition, Offset::Offset(next))?;
                seed.insert((topic.to_string(), partition), next);
                if next > 0 {
                    resumed.push((topic.to_string(), partition, next));
                }
            }
        }
        let replaced = replaced_partitions(&consumer, resumed).await?;
        if !replaced.is_empty() {
            // A checkpoint past the end of its partition: this database was built from a log
            // that no longer exists (another broker, or topics deleted and created again). Kept,
            // it would serve the old log's rows and skip the new log's records below it.
            tracing::error!(
                projection = name, partitions = ?replaced,
                "the log is shorter than this read model's checkpoints: it was replaced; rebuilding the read model from the current log"
            );
            m::projection_rebuilt(name, "log_replaced");
            let report = super::replay::rebuild(&self.projection, &self.pool, self.backend, &self.brokers)
                .await
                .map_err(|error| LoopError::Rebuild { projection: name, error: Box::new(error) })?;
            tracing::warn!(projection = name, events = report.events, "read model rebuilt from the current log");
            return Ok(());
        }
        consumer.assign(&assignment)?;
        let last_commit_ms = Arc::new(AtomicI64::new(now_millis()));
        let starts = seed.clone();
        // A read model the saga waits on takes the records this process appends (the order
        // view: its own writer's events) as soon as they are acknowledged. The others keep
        // their fuller fetches: one transaction per append would cost more than it saves.
        let (mut loopback, mut handled) = match self.projection.pace {
            Pace::Saga => (Loopback::subscribe(self.projection.topics()), Handled::starting_at(seed.clone())),
            Pace::Background => (Loopback::subscribe([]), Handled::default()),
        };
        let _lag = LagReporter::spawn(
            LoopKind::Projection,
            name.to_string(),
            &self.brokers,
            consumer.clone(),
            seed,
            handled.stands(),
            Some(last_commit_ms.clone()),
        );
        tracing::info!(projection = name, generation, topics = ?self.projection.topics(), "projection started");
        let mut writer = BatchWriter::new(&self.projection, Target::live(&self.projection), false);
        let mut parking = Parking::new(self.projection.pace, name).starting_at(starts);
        loop {
            let mut appended_here = None;
            let mut batch =
                parking.next_batch_or(&consumer, MAX_BATCH, LINGER, &handled, async { appended_here = Some(loopback.recv().await) }).await?;
            match appended_here {
                Some(first) => {
                    batch = handled.take_run(first, &mut loopback, MAX_BATCH, LINGER, |_| true).await;
                    m::records_ahead_of_fetch(LoopKind::Projection, name, batch.len());
                }
                None => handled.drop_handled(&mut batch),
            }
            if batch.is_empty() {
                continue;
            }
            // A pause holds the batch that arrives: nothing received after the pause is handled.
            wait_while_paused_fetching(LoopKind::Projection, &mut parking, &consumer).await?;
            let started = Instant::now();
            let mut tx = begin_writing(&self.pool, self.backend).await?;
            if !still_generation(&mut tx, name, generation).await? {
                tx.rollback().await?;
                return Ok(());
            }
            let pending = writer.write(&mut tx, &batch, &HashMap::new()).await?;
            tx.commit().await?;
            writer.committed(pending);
            handled.handled(&batch);
            last_commit_ms.store(now_millis(), Ordering::Relaxed);
            m::batch_took(LoopKind::Projection, name, started.elapsed());
            let keys =
                batch.iter().filter_map(|record| Some((record.topic().to_string(), String::from_utf8(record.key()?.to_vec()).ok()?))).collect();
            self.progress.send_modify(|committed| committed.advance(Some(keys)));
        }
    }
}

/// The (topic, partition, checkpoint, high watermark) of every partition whose checkpoint lies
/// beyond its high watermark: a log can grow, never shrink, so that log is not the one the
/// checkpoint was taken on.
async fn replaced_partitions(
    consumer: &Arc<rdkafka::consumer::StreamConsumer>,
    resumed: Vec<(String, i32, i64)>,
) -> Result<Vec<(String, i32, i64, i64)>, LoopError> {
    let consumer = consumer.clone();
    tokio::task::spawn_blocking(move || {
        let mut replaced = Vec::new();
        for (topic, partition, next) in resumed {
            let (_, high) = kafka::watermarks(consumer.as_ref(), &topic, partition)?;
            if next > high {
                replaced.push((topic, partition, next, high));
            }
        }
        Ok(replaced)
    })
    .await?
}

/// Where a run of a projection writes: the live tables under the projection's own name, or a
/// replay's shadow tables under a suffixed name (same database, so the swap is one transaction).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The name its checkpoints and history tips are stored under.
    pub key: String,
    /// Table name → name written to (empty for the live tables).
    pub renames: TableRenames,
}

impl Target {
    pub fn live(projection: &Projection) -> Self {
        Target { key: projection.name.to_string(), renames: TableRenames::default() }
    }
}

/// Next offset to apply per (topic, partition): a replay that must stop exactly somewhere
/// (verify stops where the live tables are) skips records at or past it.
pub(crate) type StopOffsets = HashMap<(String, i32), i64>;

/// Turns batches of source records into one transaction's writes: rows (after the version
/// rule), history tips and checkpoints. Keeps the committed tips so each aggregate's tip is
/// read from the database at most once.
pub(crate) struct BatchWriter<'p> {
    name: &'static str,
    target: Target,
    sources: HashMap<&'p str, &'p dyn Source>,
    raw_sources: HashMap<&'p str, &'p dyn RawProjector>,
    tips: HashMap<(String, String), HistoryTip>,
    /// The target started with no tips at all (a fresh rebuild), so a tip missing from
    /// `tips` is known to be the empty one without asking the database.
    tips_complete: bool,
    rewritten_sql: HashMap<&'static str, Arc<str>>,
}

/// What a batch changed, to keep once its transaction has committed.
pub(crate) struct PendingTips(HashMap<(String, String), HistoryTip>);

impl<'p> BatchWriter<'p> {
    pub fn new(projection: &'p Projection, target: Target, tips_complete: bool) -> Self {
        BatchWriter {
            name: projection.name,
            target,
            sources: projection.sources.iter().map(|s| (s.topic(), s.as_ref())).collect(),
            raw_sources: projection.raw_sources.iter().map(|s| (s.topic.as_str(), s.projector.as_ref())).collect(),
            tips: HashMap::new(),
            tips_complete,
            rewritten_sql: HashMap::new(),
        }
    }

    /// Writes `batch` (minus records at or past `stop`) into `tx`, with the checkpoints.
    pub async fn write(&mut self, tx: &mut Transaction<'_, Any>, batch: &[OwnedMessage], stop: &StopOffsets) -> Result<PendingTips, LoopError> {
        let name = self.name;
        let mut changed_tips: HashMap<(String, String), HistoryTip> = HashMap::new();
        let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
        for message in batch {
            // Live runs pass no stops: they skip building a key per record.
            if !stop.is_empty() && stop.get(&(message.topic().to_string(), message.partition())).is_some_and(|stop| message.offset() >= *stop) {
                continue;
            }
            next_offsets.insert((message.topic().to_string(), message.partition()), message.offset() + 1);
            if let Some(projector) = self.raw_sources.get(message.topic()) {
                // No aggregate history to check: raw projectors write idempotent upserts.
                for write in projector.project(&RawRecord::of(message)) {
                    self.execute(tx, &write).await?;
                }
                continue;
            }
            let (Some(source), Some(bytes)) = (self.sources.get(message.topic()).copied(), message.payload()) else { continue };
            // A registry that cannot be reached fails the batch (`?`): nothing of it commits,
            // and the run retries it, so the read model never differs from a rebuild.
            let (metadata, writes) = match source.project(bytes).await? {
                Projected::Rows(metadata, writes) => (metadata, writes),
                Projected::Undecodable { error, envelope } => {
                    m::event_undecodable(message.topic(), name, error.kind());
                    tracing::error!(
                        projection = name, topic = message.topic(), partition = message.partition(), offset = message.offset(), %error,
                        aggregate_id = envelope.as_ref().map(|e| e.aggregate_id.as_str()),
                        "undecodable event: no rows; the aggregate's later events still apply"
                    );
                    // No rows, but the event keeps its place in its aggregate's history.
                    match envelope {
                        Some(metadata) => (metadata, Vec::new()),
                        None => continue,
                    }
                }
            };
            let span = write_span(name, message, &metadata);
            let key = (message.topic().to_string(), metadata.aggregate_id.clone());
            let known = changed_tips.get(&key).or_else(|| self.tips.get(&key)).cloned();
            let applied = async {
                let tip = match known {
                    Some(tip) => tip,
                    None if self.tips_complete => HistoryTip::default(),
                    None => load_tip(tx, &self.target.key, &key.0, &key.1).await?,
                };
                if !tip.accepts(&metadata) {
                    tracing::debug!("event outside the accepted history skipped");
                    return Ok::<_, sqlx::Error>(None);
                }
                for write in &writes {
                    self.execute(tx, write).await?;
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
            .bind(&self.target.key)
            .bind(topic)
            .bind(aggregate_id)
            .bind(tip.version)
            .bind(tip.event_id.clone().unwrap_or_default())
            .execute(&mut **tx)
            .await?;
        }
        for ((topic, partition), next) in &next_offsets {
            sqlx::query(
                "INSERT INTO projection_checkpoints (projection, topic, partition_id, next_offset) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (projection, topic, partition_id) DO UPDATE SET next_offset = excluded.next_offset",
            )
            .bind(&self.target.key)
            .bind(topic)
            .bind(i64::from(*partition))
            .bind(*next)
            .execute(&mut **tx)
            .await?;
        }
        Ok(PendingTips(changed_tips))
    }

    pub fn committed(&mut self, pending: PendingTips) {
        self.tips.extend(pending.0);
    }

    async fn execute(&mut self, tx: &mut Transaction<'_, Any>, write: &SqlWrite) -> Result<(), sqlx::Error> {
        if self.target.renames.is_empty() {
            return execute(tx, write).await;
        }
        let renames = &self.target.renames;
        let sql = self.rewritten_sql.entry(write.sql).or_insert_with(|| renames.rewrite(write.sql).into());
        // Only table names from the projection's own declaration were substituted.
        execute_sql(tx, sqlx::AssertSqlSafe(sql.clone()), &write.params).await
    }
}

/// One span per event write, in the trace of the command that appended the event.
fn write_span(name: &str, message: &OwnedMessage, metadata: &EventMetadata) -> tracing::Span {
    let now = now_millis();
    let recent = message.timestamp().to_millis().is_some_and(|at| now - at < TRACE_MAX_EVENT_AGE_MS);
    if !recent {
        return tracing::Span::none();
    }
    let event_type = kafka::header(message, "event_type").unwrap_or_default();
    let span = tracing::info_span!(
        "projection.write",
        otel.name = %format!("project {name} {event_type}"), otel.kind = "consumer",
        projection = name, event_type = %event_type, aggregate_id = %metadata.aggregate_id, trace_id = Empty,
    );
    telemetry::continue_from_record(&span, message);
    span
}

/// The projection's stored checkpoints: next offset per (topic, partition).
pub(crate) async fn load_checkpoints<'e, E: sqlx::Executor<'e, Database = Any>>(
    executor: E,
    key: &str,
) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let rows = sqlx::query("SELECT topic, partition_id, next_offset FROM projection_checkpoints WHERE projection = $1")
        .bind(key)
        .fetch_all(executor)
        .await?;
    rows.iter().map(|row| Ok(((row.try_get::<String, _>(0)?, row.try_get::<i64, _>(1)? as i32), row.try_get::<i64, _>(2)?))).collect()
}

/// The generation of a projection's live tables (bumped by every swap).
async fn current_generation(pool: &AnyPool, name: &str) -> Result<i64, sqlx::Error> {
    sqlx::query("INSERT INTO projection_generations (projection, generation) VALUES ($1, 0) ON CONFLICT (projection) DO NOTHING")
        .bind(name)
        .execute(pool)
        .await?;
    sqlx::query("SELECT generation FROM projection_generations WHERE projection = $1").bind(name).fetch_one(pool).await?.try_get(0)
}

/// Fences a batch: locks the generation row (so a swap waits for the batch, or the batch for
/// the swap) and says whether the tables are still the ones this run started on.
async fn still_generation(tx: &mut Transaction<'_, Any>, name: &str, generation: i64) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE projection_generations SET generation = generation WHERE projection = $1 AND generation = $2")
        .bind(name)
        .bind(generation)
        .execute(&mut **tx)
        .await?;
    Ok(result.rows_affected() == 1)
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
    execute_sql(tx, write.sql, &write.params).await
}

async fn execute_sql(tx: &mut Transaction<'_, Any>, sql: impl sqlx::SqlSafeStr, params: &[SqlValue]) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(sql);
    for param in params {
        query = match param {
            // PostgreSQL text cannot hold NUL, and one such value from outside (a key typed
            // into kcat) would fail every retry of the batch: it is stored as U+FFFD, on every
            // backend alike, so a read model is the same on SQLite and PostgreSQL.
            SqlValue::Text(text) if text.contains('\0') => query.bind(text.replace('\0', "\u{fffd}")),
            SqlValue::Text(text) => query.bind(text.clone()),
            SqlValue::Int(int) => query.bind(*int),
            SqlValue::Null => query.bind(None::<String>),
        };
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

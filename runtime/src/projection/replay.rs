//! Replay: rebuilds a projection's read model from offset 0 of every topic it reads.
//!
//! * [`rebuild`] writes into shadow tables in the same database while the service keeps
//!   serving (and updating) the live ones, catches up to the end of the log, then swaps the
//!   shadow tables in with one transaction and bumps the projection's generation, so the live
//!   run drops its state and resumes from the rebuilt checkpoints.
//! * [`verify`] takes the live tables and their checkpoints in one snapshot, rebuilds scratch
//!   tables up to exactly those checkpoints, and compares their checksums row by row.
mod checksum;
mod tables;

pub use checksum::{Difference, TableDigest};
#[cfg(feature = "testing")]
pub use checksum::{Shape, shape};

use super::{
    renames::TableRenames,
    runner::{BatchWriter, Projection, StopOffsets, Target, load_checkpoints},
    store::{Backend, begin_writing},
};
use crate::{
    engine::LoopError,
    kafka::{self, backlog_consumer},
};
use rdkafka::{Message, Offset, TopicPartitionList, consumer::Consumer, error::KafkaError};
use sqlx::AnyPool;
use std::{
    collections::HashMap,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

const BATCH: usize = 5000;
const LINGER: Duration = Duration::from_millis(20);
/// A replay wants throughput, not latency: a longer fetch wait gets fuller fetch responses.
const FETCH_WAIT: Duration = Duration::from_millis(500);
/// A replay that gets no record for this long while records are known to be there gives up.
const STALL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Loop(#[from] LoopError),
    #[error("projection {0} declares no tables")]
    NoTables(&'static str),
    #[error("replay of {projection} stalled: no record for {secs} s with {behind} partitions short of their end", secs = STALL.as_secs())]
    Stalled { projection: &'static str, behind: usize },
    #[error("{projection}: table {table} differs from its rebuild at key {key}: {difference} ({count} differing keys in all)")]
    Differs { projection: &'static str, table: &'static str, key: String, difference: Difference, count: usize },
}

/// What a rebuild did.
#[derive(Debug)]
pub struct RebuildReport {
    pub projection: &'static str,
    pub events: u64,
    pub partitions: usize,
    pub duration: Duration,
    pub tables: &'static [&'static str],
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for RebuildReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rebuilt {}: {} events from {} partitions in {:.2} s ({:.0} events/s); swapped in {}",
            self.projection,
            self.events,
            self.partitions,
            self.duration.as_secs_f64(),
            self.events_per_second(),
            self.tables.join(", ")
        )
    }
}

/// One table's comparison in a verify.
#[derive(Debug)]
pub struct TableComparison {
    pub table: &'static str,
    pub live_rows: usize,
    pub rebuilt_rows: usize,
    pub live_checksum: String,
    pub rebuilt_checksum: String,
    /// Up to [`SHOWN_DIFFERENCES`] differing keys, and how many there are.
    pub differences: Vec<(String, Difference)>,
    pub difference_count: usize,
}

pub const SHOWN_DIFFERENCES: usize = 10;

#[derive(Debug)]
pub struct VerifyReport {
    pub projection: &'static str,
    pub events: u64,
    pub duration: Duration,
    pub tables: Vec<TableComparison>,
}

impl VerifyReport {
    /// The first difference, as an error naming table and key.
    pub fn result(&self) -> Result<(), ReplayError> {
        match self.tables.iter().find(|t| t.difference_count > 0) {
            None => Ok(()),
            Some(t) => {
                let (key, difference) = t.differences[0].clone();
                Err(ReplayError::Differs { projection: self.projection, table: t.table, key, difference, count: t.difference_count })
            }
        }
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "verified {}: rebuilt {} events in {:.2} s ({:.0} events/s)",
            self.projection,
            self.events,
            self.duration.as_secs_f64(),
            self.events as f64 / self.duration.as_secs_f64().max(1e-9)
        )?;
        for t in &self.tables {
            let verdict = if t.difference_count == 0 { "same".to_string() } else { format!("DIFFERS ({} keys)", t.difference_count) };
            writeln!(
                f,
                "  {:<24} rows {:>8} live / {:>8} rebuilt  sha256 {} / {}  {verdict}",
                t.table,
                t.live_rows,
                t.rebuilt_rows,
                &t.live_checksum[..16],
                &t.rebuilt_checksum[..16]
            )?;
            for (key, difference) in &t.differences {
                writeln!(f, "    {} {key}: {difference}", t.table)?;
            }
        }
        Ok(())
    }
}

/// Where a replay writes: shadow tables named `<table>__<suffix>` and checkpoints under
/// `<projection>#<suffix>`.
struct Shadow {
    key: String,
    tables: Vec<(&'static str, String)>,
}

impl Shadow {
    /// Creates empty shadow tables, replacing leftovers of an interrupted replay.
    async fn create(projection: &Projection, suffix: &str, pool: &AnyPool, backend: Backend) -> Result<Self, ReplayError> {
        if projection.tables.is_empty() {
            return Err(ReplayError::NoTables(projection.name));
        }
        let shadow = Shadow {
            key: format!("{}#{suffix}", projection.name),
            tables: projection.tables.iter().map(|t| (*t, tables::shadow_name(t, suffix))).collect(),
        };
        for (table, shadow_table) in &shadow.tables {
            tables::create_empty_like(pool, backend, table, shadow_table).await?;
        }
        tables::forget_progress(pool, &shadow.key).await?;
        Ok(shadow)
    }

    fn target(&self) -> Target {
        let mut renames = TableRenames::default();
        for (table, shadow) in &self.tables {
            renames.insert(*table, shadow.clone());
        }
        Target { key: self.key.clone(), renames }
    }

    async fn discard(self, pool: &AnyPool) -> Result<(), ReplayError> {
        for (_, shadow) in &self.tables {
            tables::drop_table(pool, shadow).await?;
        }
        tables::forget_progress(pool, &self.key).await?;
        Ok(())
    }
}

/// Rebuilds `projection` into shadow tables and swaps them in (see the module docs).
pub async fn rebuild(projection: &Projection, pool: &AnyPool, backend: Backend, brokers: &str) -> Result<RebuildReport, ReplayError> {
    let shadow = Shadow::create(projection, "rebuild", pool, backend).await?;
    let started = Instant::now();
    let mut reader = ShadowReader::start(projection, backend, brokers).await?;
    let mut writer = BatchWriter::new(projection, shadow.target(), true);
    // Twice to the end of the log: the second pass takes what the live service appended
    // during the first, so the swap moves the read model back by as little as possible.
    let mut events = 0;
    for _ in 0..2 {
        let ends = reader.ends().await?;
        events += reader.apply_until(&mut writer, pool, &ends, &StopOffsets::new()).await?;
    }
    let duration = started.elapsed();
    tables::swap_in(pool, backend, projection.name, &shadow.key, &shadow.tables).await?;
    Ok(RebuildReport { projection: projection.name, events, partitions: reader.partitions(), duration, tables: projection.tables })
}

/// Rebuilds `projection` into scratch tables up to where the live tables are, and compares
/// (see the module docs). The scratch tables are dropped afterwards.
pub async fn verify(projection: &Projection, pool: &AnyPool, backend: Backend, brokers: &str) -> Result<VerifyReport, ReplayError> {
    // The live tables and their checkpoints, from one snapshot.
    let mut snapshot = pool.begin().await?;
    if backend == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *snapshot).await?;
    }
    let live_checkpoints = load_checkpoints(&mut *snapshot, projection.name).await?;
    let mut live = Vec::new();
    for table in projection.tables {
        let shape = checksum::shape(&mut snapshot, backend, table).await?;
        live.push((TableDigest::read(&mut snapshot, &shape, table).await?, shape));
    }
    snapshot.rollback().await?;

    let shadow = Shadow::create(projection, "verify", pool, backend).await?;
    let started = Instant::now();
    let mut reader = ShadowReader::start(projection, backend, brokers).await?;
    let mut writer = BatchWriter::new(projection, shadow.target(), true);
    let stop: StopOffsets = reader.assigned.keys().map(|p| (p.clone(), live_checkpoints.get(p).copied().unwrap_or(0))).collect();
    let events = reader.apply_until(&mut writer, pool, &stop, &stop).await?;
    let duration = started.elapsed();

    let mut conn = pool.acquire().await?;
    let mut comparisons = Vec::new();
    for ((table, shadow_table), (live, shape)) in shadow.tables.iter().zip(&live) {
        let rebuilt = TableDigest::read(&mut conn, shape, shadow_table).await?;
        let all: Vec<(String, Difference)> = live.differences(&rebuilt).map(|(k, d)| (k.to_string(), d)).collect();
        comparisons.push(TableComparison {
            table,
            live_rows: live.rows.len(),
            rebuilt_rows: rebuilt.rows.len(),
            live_checksum: live.checksum(),
            rebuilt_checksum: rebuilt.checksum(),
            difference_count: all.len(),
            differences: all.into_iter().take(SHOWN_DIFFERENCES).collect(),
        });
    }
    drop(conn);
    shadow.discard(pool).await?;
    Ok(VerifyReport { projection: projection.name, events, duration, tables: comparisons })
}

/// A consumer of every partition of a projection's topics from offset 0.
struct ShadowReader {
    projection: &'static str,
    consumer: Arc<rdkafka::consumer::StreamConsumer>,
    backend: Backend,
    /// Next offset to read per partition.
    assigned: HashMap<(String, i32), i64>,
}

impl ShadowReader {
    async fn start(projection: &Projection, backend: Backend, brokers: &str) -> Result<Self, ReplayError> {
        let consumer = Arc::new(backlog_consumer(brokers, &format!("replay.{}", projection.name), FETCH_WAIT)?);
        let mut assigned = HashMap::new();
        for topic in projection.topics() {
            for partition in 0..crate::engine::partition_count(&consumer, topic).await? {
                assigned.insert((topic.to_string(), partition), 0);
            }
        }
        Ok(ShadowReader { projection: projection.name, consumer, backend, assigned })
    }

    fn partitions(&self) -> usize {
        self.assigned.len()
    }

    /// The current end (high watermark) of every partition.
    async fn ends(&self) -> Result<StopOffsets, ReplayError> {
        let consumer = self.consumer.clone();
        let partitions: Vec<(String, i32)> = self.assigned.keys().cloned().collect();
        let ends = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .map(|(topic, partition)| kafka::watermarks(&*consumer, &topic, partition).map(|(_, high)| ((topic, partition), high)))
                .collect::<Result<StopOffsets, KafkaError>>()
        })
        .await
        .map_err(LoopError::from)??;
        Ok(ends)
    }

    /// Reads until every partition is at or past `until`, writing each batch (without the
    /// records at or past `stop`) in one transaction. Returns how many records it applied.
    ///
    /// Only partitions short of `until` are read, and each is paused once it gets there: a
    /// broker that waits for data per partition (Nisshi splits the fetch wait among them)
    /// would otherwise spend most of every fetch on partitions with nothing left to give.
    async fn apply_until(
        &mut self,
        writer: &mut BatchWriter<'_>,
        pool: &AnyPool,
        until: &StopOffsets,
        stop: &StopOffsets,
    ) -> Result<u64, ReplayError> {
        let short_of_end = |assigned: &HashMap<(String, i32), i64>, partition: &(String, i32)| {
            until.get(partition).is_some_and(|end| assigned.get(partition).is_some_and(|next| next < end))
        };
        let mut reading = TopicPartitionList::new();
        for (partition, next) in &self.assigned {
            if short_of_end(&self.assigned, partition) {
                reading.add_partition_offset(&partition.0, partition.1, Offset::Offset(*next))?;
            }
        }
        self.consumer.assign(&reading)?;
        let mut applied = 0u64;
        loop {
            let behind = self.assigned.keys().filter(|p| short_of_end(&self.assigned, p)).count();
            if behind == 0 {
                return Ok(applied);
            }
            let batch = match tokio::time::timeout(STALL, kafka::consume::next_batch(&self.consumer, BATCH, LINGER)).await {
                Ok(batch) => batch?,
                Err(_) => return Err(ReplayError::Stalled { projection: self.projection, behind }),
            };
            let mut tx = begin_writing(pool, self.backend).await?;
            let pending = writer.write(&mut tx, &batch, stop).await?;
            tx.commit().await?;
            writer.committed(pending);
            let mut done = TopicPartitionList::new();
            for message in &batch {
                let partition = (message.topic().to_string(), message.partition());
                if stop.get(&partition).is_none_or(|stop| message.offset() < *stop) {
                    applied += 1;
                }
                let was_short = short_of_end(&self.assigned, &partition);
                self.assigned.insert(partition.clone(), message.offset() + 1);
                if was_short && !short_of_end(&self.assigned, &partition) {
                    done.add_partition(&partition.0, partition.1);
                }
            }
            if done.count() > 0 {
                self.consumer.pause(&done)?;
            }
        }
    }
}

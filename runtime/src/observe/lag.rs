//! Consumer lag, measured by one background task per consuming loop: every second it takes the
//! high watermark of each assigned partition and subtracts the loop's position.
//!
//! The high watermark is the one librdkafka caches from the broker's fetch responses, not one
//! asked for: two ListOffsets per partition, loop and second kept a broker busy while the
//! system was idle (and timed out under load). librdkafka's fetcher keeps fetching into its
//! local queue while the loop is paused, so the cached watermark still moves then and the lag
//! still grows. Only a partition with no fetch response yet is asked of the broker, through
//! the process's offsets probe (`kafka::offsets_probe`), not behind the loop's fetch. A parked
//! loop (`kafka::parking`) sends no fetches, so its cached watermark stands still: a record that
//! lands meanwhile shows as lag only once the loop's next probe (100 ms or 1 s) resumed it.
//! Positions are local; the group's committed offsets (for partitions the loop has consumed
//! nothing from) are asked once per assignment and then every `COMMITTED_MAX_AGE`. A loop that
//! takes its own process's appends ahead of their fetch (`kafka::loopback`) tells where it
//! stands itself: librdkafka's position lags behind it, or is gone after a seek.
use crate::{
    kafka::{Stands, cached_watermarks, committed_offset, loop_position, offsets_probe},
    shared::{LoopKind, now_millis},
};
use metrics::gauge;
use rdkafka::{
    TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer},
    error::KafkaError,
};
use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

pub const CONSUMER_LAG: &str = "orderflow_consumer_lag";
pub const CHECKPOINT_AGE: &str = "orderflow_projection_checkpoint_age_seconds";

const LAG_INTERVAL: Duration = Duration::from_secs(1);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);
const COMMITTED_MAX_AGE: Duration = Duration::from_secs(30);

/// Last lag measurement of one loop, for `/ready`.
#[derive(Debug, Clone)]
pub struct LoopLag {
    pub partitions: HashMap<(String, i32), i64>,
    pub measured_at: Instant,
}

fn lags() -> &'static Mutex<HashMap<String, LoopLag>> {
    static LAGS: OnceLock<Mutex<HashMap<String, LoopLag>>> = OnceLock::new();
    LAGS.get_or_init(Mutex::default)
}

/// The latest lag of every running loop, by loop name.
pub fn lag_snapshot() -> HashMap<String, LoopLag> {
    lags().lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Measures a loop's lag while it lives; dropping it stops the measuring task.
pub struct LagReporter {
    task: tokio::task::JoinHandle<()>,
    loop_name: String,
}

impl Drop for LagReporter {
    fn drop(&mut self) {
        self.task.abort();
        lags().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.loop_name);
    }
}

/// Where a loop stands, for partitions it has not consumed from yet: projections know their
/// checkpoints, group members fall back to the group's committed offsets.
pub type Seed = HashMap<(String, i32), i64>;

impl LagReporter {
    /// Starts measuring `consumer`'s lag. `last_commit_ms` (projections) is when the loop last
    /// stored a checkpoint; the checkpoint age is the time since then while lag is non-zero.
    pub fn spawn<C: ConsumerContext + 'static>(
        kind: LoopKind,
        loop_name: String,
        brokers: &str,
        consumer: Arc<StreamConsumer<C>>,
        seed: Seed,
        stands: Stands,
        last_commit_ms: Option<Arc<AtomicI64>>,
    ) -> Self {
        let name = loop_name.clone();
        let probe = offsets_probe(brokers)
            .inspect_err(|error| tracing::warn!(loop_name = %name, %error, "no offsets probe; the loop's own consumer asks for end offsets"))
            .ok();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(LAG_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let measurer = Arc::new(Mutex::new(Measurer { seed, stands, committed: None, probe }));
            loop {
                ticker.tick().await;
                let (consumer, measurer) = (consumer.clone(), measurer.clone());
                let measured = tokio::task::spawn_blocking(move || measurer.lock().unwrap_or_else(|p| p.into_inner()).measure(&*consumer)).await;
                let partitions = match measured {
                    Ok(Ok(partitions)) => partitions,
                    Ok(Err(error)) => {
                        tracing::debug!(loop_name = %name, %error, "lag not measured");
                        continue;
                    }
                    Err(_) => continue,
                };
                for ((topic, partition), lag) in &partitions {
                    gauge!(CONSUMER_LAG, "kind" => kind.as_str(), "loop" => name.clone(), "topic" => topic.clone(), "partition" => partition.to_string())
                        .set(*lag as f64);
                }
                if let Some(last_commit_ms) = &last_commit_ms {
                    let behind = partitions.values().any(|lag| *lag > 0);
                    let age_ms = if behind { (now_millis() - last_commit_ms.load(Ordering::Relaxed)).max(0) } else { 0 };
                    gauge!(CHECKPOINT_AGE, "projection" => name.clone()).set(age_ms as f64 / 1000.0);
                }
                lags().lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), LoopLag { partitions, measured_at: Instant::now() });
            }
        });
        LagReporter { task, loop_name }
    }

    /// For a policy's (or the deadlines') group consumer: positions from the group's committed
    /// offsets, no loop feeding it, no checkpoint.
    pub fn for_policy<C: ConsumerContext + 'static>(loop_name: String, brokers: &str, consumer: Arc<StreamConsumer<C>>) -> Self {
        Self::spawn(LoopKind::Policy, loop_name, brokers, consumer, Seed::default(), Stands::default(), None)
    }
}

/// What a loop's lag task keeps between measurements.
struct Measurer {
    seed: Seed,
    /// Where the loop says it stands, ahead of librdkafka's position (empty unless it is fed).
    stands: Stands,
    committed: Option<Committed>,
    /// Asks for the end offsets of partitions the loop has no fetch response for yet.
    probe: Option<Arc<BaseConsumer>>,
}

/// The group's committed offsets, for the assignment they were asked for, and when.
struct Committed {
    assignment: Vec<(String, i32)>,
    offsets: TopicPartitionList,
    asked_at: Instant,
}

impl Committed {
    /// The group's committed offsets from `cache`, asked again when the assignment changed or
    /// the answer is older than `COMMITTED_MAX_AGE`.
    fn fresh<'c, C: ConsumerContext, K: Consumer<C>>(
        cache: &'c mut Option<Committed>,
        consumer: &K,
        assigned: &[(String, i32)],
    ) -> Result<&'c TopicPartitionList, KafkaError> {
        let stale = |c: &Committed| c.assignment != assigned || c.asked_at.elapsed() >= COMMITTED_MAX_AGE;
        let committed = match cache.take() {
            Some(committed) if !stale(&committed) => cache.insert(committed),
            _ => {
                let offsets = consumer.committed(WATERMARK_TIMEOUT)?;
                cache.insert(Committed { assignment: assigned.to_vec(), offsets, asked_at: Instant::now() })
            }
        };
        Ok(&committed.offsets)
    }
}

impl Measurer {
    /// High watermark − position for every partition assigned to `consumer`. Blocking (it may
    /// ask the broker).
    fn measure<C: ConsumerContext, K: Consumer<C>>(&mut self, consumer: &K) -> Result<HashMap<(String, i32), i64>, KafkaError> {
        let assignment = consumer.assignment()?;
        let positions = consumer.position()?;
        let assigned: Vec<(String, i32)> = assignment.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut lags = HashMap::new();
        for (topic, partition) in &assigned {
            let (low, high) = match (cached_watermarks(consumer.client(), topic, *partition), &self.probe) {
                (Some(watermarks), _) => watermarks,
                (None, Some(probe)) => probe.fetch_watermarks(topic, *partition, WATERMARK_TIMEOUT)?,
                (None, None) => consumer.fetch_watermarks(topic, *partition, WATERMARK_TIMEOUT)?,
            };
            let Measurer { seed, stands, committed, .. } = self;
            let position = loop_position(&positions, seed, (topic, *partition), low, || {
                Ok::<_, KafkaError>(committed_offset(Committed::fresh(committed, consumer, &assigned)?, topic, *partition))
            })?;
            let stands = stands.lock().unwrap_or_else(|p| p.into_inner()).get(&(topic.clone(), *partition)).copied();
            let position = stands.map_or(position, |stands| stands.max(position));
            lags.insert((topic.clone(), *partition), (high - position).max(0));
        }
        Ok(lags)
    }
}

//! Consumer lag, measured by one background task per consuming loop: every second it asks the
//! broker for the high watermark of each assigned partition and subtracts the loop's position.
//! Asking the broker (not librdkafka's cached watermarks) keeps lag growing while a loop is
//! paused or stuck, which is exactly when it matters.
use crate::shared::{LoopKind, now_millis};
use metrics::gauge;
use rdkafka::{
    Offset,
    consumer::{Consumer, ConsumerContext, StreamConsumer},
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
        consumer: Arc<StreamConsumer<C>>,
        seed: Seed,
        last_commit_ms: Option<Arc<AtomicI64>>,
    ) -> Self {
        let name = loop_name.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(LAG_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let (consumer, seed) = (consumer.clone(), seed.clone());
                let measured = tokio::task::spawn_blocking(move || measure(&*consumer, &seed)).await;
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
}

/// High watermark − position for every partition assigned to `consumer`. Blocking (broker calls).
fn measure<C: ConsumerContext, K: Consumer<C>>(consumer: &K, seed: &Seed) -> Result<HashMap<(String, i32), i64>, rdkafka::error::KafkaError> {
    let assignment = consumer.assignment()?;
    let positions = consumer.position()?;
    let position_of = |topic: &str, partition: i32| match positions.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    };
    let mut committed = None;
    let mut lags = HashMap::new();
    for element in assignment.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (low, high) = consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)?;
        let position = match position_of(topic, partition).or_else(|| seed.get(&(topic.to_string(), partition)).copied()) {
            Some(position) => position,
            None => {
                if committed.is_none() {
                    committed = Some(consumer.committed(WATERMARK_TIMEOUT)?);
                }
                match committed.as_ref().and_then(|c| c.find_partition(topic, partition)).map(|p| p.offset()) {
                    Some(Offset::Offset(offset)) => offset,
                    // Nothing committed: the group starts at the earliest record.
                    _ => low,
                }
            }
        };
        lags.insert((topic.to_string(), partition), (high - position).max(0));
    }
    Ok(lags)
}

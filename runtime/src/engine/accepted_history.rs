//! The accepted history of a partition up to an offset, for a reader of a stream that starts
//! somewhere in the middle of it (a policy at its committed offset, notify-svc's delivery at
//! its oldest undelivered notification): so the version rule holds from the first event it
//! handles, as if it had read the partition from its start.
use super::LoopError;
use crate::{
    history::{HistoryGuard, HistoryTip},
    kafka::{EventCodec, codec::Read, event_log::read_records},
    snapshot::SnapshotStore,
};
use contracts::Stream;
use rdkafka::consumer::BaseConsumer;
use std::{sync::Arc, time::Instant};

pub struct AcceptedHistory<S: Stream> {
    codec: Arc<EventCodec<S>>,
    snapshots: Arc<SnapshotStore>,
}

impl<S: Stream> AcceptedHistory<S> {
    pub(crate) fn new(codec: Arc<EventCodec<S>>, snapshots: Arc<SnapshotStore>) -> Self {
        AcceptedHistory { codec, snapshots }
    }

    /// The tips of the writer's newest snapshot that covers no more than `offset` (when it
    /// matches the log), then the events after it up to `offset`; `for_reader` names who asks,
    /// in the log line.
    pub async fn before(&self, reader: Arc<BaseConsumer>, partition: i32, offset: i64, for_reader: &str) -> Result<HistoryGuard, LoopError> {
        let started = Instant::now();
        let mut guard = HistoryGuard::default();
        if offset == 0 {
            return Ok(guard);
        }
        let from = match self.snapshots.usable::<serde::de::IgnoredAny>(reader.clone(), S::EVENTS_TOPIC, partition, Some(offset)).await {
            Some((covers, mut tips, _)) => {
                // Oldest aggregate first, so the guard's recency order starts close to the log's:
                // beyond its capacity, the tips let go are those of the oldest aggregates.
                tips.aggregates.sort_unstable_by_key(|entry| entry.first_offset);
                for entry in tips.aggregates {
                    guard.restore(entry.id, HistoryTip { version: entry.version, event_id: entry.event_id });
                }
                covers.offset
            }
            None => 0,
        };
        let (records, _) = read_records(reader, S::EVENTS_TOPIC.to_string(), partition, from, Some(offset)).await?;
        tracing::info!(
            topic = S::EVENTS_TOPIC, partition, group = %for_reader, from_snapshot = from > 0, from, until = offset,
            events = records.len(), took_ms = started.elapsed().as_millis() as u64, "accepted history rebuilt"
        );
        for record in &records {
            let Some(bytes) = &record.value else { continue };
            match self.codec.read(bytes).await? {
                Read::Event(event) => {
                    guard.accept(&event.metadata());
                }
                Read::Undecodable { envelope: Some(metadata), .. } => {
                    guard.accept(&metadata);
                }
                Read::Undecodable { envelope: None, .. } => {}
            }
        }
        super::heap::rebuilt();
        Ok(guard)
    }
}

//! Pieces every consuming loop shares: batches, rebalance tracking, the outbox of pending
//! produces, and offset commits.
use super::producer::{Acknowledgement, KafkaProducer};
use futures::future::join_all;
use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{OwnedHeaders, OwnedMessage},
    producer::FutureRecord,
};
use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Remembers which partitions changed hands since the loop last looked, so the loop drops and
/// rebuilds whatever it keeps per partition instead of trusting state from a past ownership;
/// and which partitions the member owns now, so a batch fetched before a revocation is not
/// handled for partitions that belong to another member already.
///
/// Both protocols come through the same two lists. Eager (`range`, `roundrobin`): Revoke lists
/// the whole assignment and Assign the whole new one, so every partition counts as changed, as
/// it should: librdkafka dropped its fetch position and reads it again from the committed
/// offset. Cooperative (`cooperative-sticky`): Revoke lists only the partitions taken away and
/// Assign only those added, so a partition the member keeps is in neither, is not marked
/// changed, and the loop keeps its state for it (its fetch position is kept too). A lost
/// assignment (session timed out, member fenced) is revoked whole under both.
#[derive(Default)]
pub struct RebalanceTracker {
    changed: Mutex<HashSet<(String, i32)>>,
    owned: Mutex<HashSet<(String, i32)>>,
    group_id: String,
    /// Whether the protocol the group settled on was logged: once per consumer, at its first
    /// assignment, the only place it shows whether the assignor setting took effect.
    protocol_logged: AtomicBool,
    /// A static member's id, held as long as the consumer lives: the context is dropped only
    /// after the consumer has closed (see [`super::group_consumer`]).
    pub(super) static_member: Option<super::clients::StaticMemberLease>,
    /// Told whenever partitions are assigned (a permit waits if nobody listens yet).
    assignment_grew: tokio::sync::Notify,
}

impl RebalanceTracker {
    pub(super) fn for_group(group_id: &str) -> Self {
        RebalanceTracker { group_id: group_id.to_string(), ..Default::default() }
    }

    /// Completes once partitions have been assigned since the last time it completed.
    pub async fn assignment_grew(&self) {
        self.assignment_grew.notified().await
    }

    /// The partitions of `topic` this member owns now.
    pub fn owned_partitions(&self, topic: &str) -> Vec<i32> {
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        owned.iter().filter(|(t, _)| t == topic).map(|(_, partition)| *partition).collect()
    }

    pub fn take_changed(&self) -> HashSet<(String, i32)> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Drops, from a batch split by partition, the partitions this member no longer owns: their
    /// records (and the offsets to commit for them) are the new owner's, which reads them again
    /// from the last committed offset. Returns how many records were dropped.
    pub fn retain_owned(&self, groups: &mut BTreeMap<(String, i32), Vec<OwnedMessage>>) -> usize {
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let mut dropped = 0;
        groups.retain(|key, messages| {
            let keep = owned.contains(key);
            if !keep {
                tracing::info!(topic = %key.0, partition = key.1, records = messages.len(), "records of a revoked partition left to its new owner");
                dropped += messages.len();
            }
            keep
        });
        dropped
    }

    fn assigned(&self, list: &TopicPartitionList) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        for element in list.elements() {
            owned.insert((element.topic().to_string(), element.partition()));
            changed.insert((element.topic().to_string(), element.partition()));
        }
        if list.count() > 0 {
            self.assignment_grew.notify_one();
        }
    }

    fn revoked(&self, list: &TopicPartitionList) {
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        for element in list.elements() {
            owned.remove(&(element.topic().to_string(), element.partition()));
            changed.insert((element.topic().to_string(), element.partition()));
        }
    }

    /// Makes `owned` the consumer's actual assignment after a failed rebalance, whose partitions
    /// the callback does not list: rust-rdkafka then unassigns everything (eager) or what the
    /// failed call named (cooperative). Whatever differs counts as changed.
    fn resynced(&self, assignment: &TopicPartitionList) {
        let actual: HashSet<(String, i32)> = assignment.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        changed.extend(owned.symmetric_difference(&actual).cloned());
        *owned = actual;
    }

    fn all_changed(&self) {
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        self.changed.lock().unwrap_or_else(|p| p.into_inner()).extend(owned.iter().cloned());
    }
}

impl ClientContext for RebalanceTracker {}

// Rebalance callbacks run inside `recv`, on the loop's own task: between two `recv`s (while a
// batch is handled) the member's assignment cannot change under it.
impl ConsumerContext for RebalanceTracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            tracing::info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
            self.revoked(list);
        }
    }
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
                self.assigned(list);
                if !self.protocol_logged.swap(true, Ordering::Relaxed) {
                    let protocol = match consumer.rebalance_protocol() {
                        RebalanceProtocol::Cooperative => "COOPERATIVE",
                        RebalanceProtocol::Eager => "EAGER",
                        RebalanceProtocol::None => "NONE",
                    };
                    tracing::info!(group = %self.group_id, protocol, "consumer group rebalance protocol");
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => match consumer.assignment() {
                Ok(assignment) => {
                    tracing::warn!(group = %self.group_id, %error, "rebalance failed; following the assignment the consumer kept");
                    self.resynced(&assignment);
                }
                Err(assignment_error) => {
                    // Owning nothing would drop, uncommitted, every record still fetched for
                    // partitions the member may well keep; rebuilding them all is the safe side.
                    tracing::warn!(group = %self.group_id, %error, %assignment_error, "rebalance failed and the assignment is unknown");
                    self.all_changed();
                }
            },
        }
    }
}

pub type GroupConsumer = StreamConsumer<RebalanceTracker>;

/// Waits for one message, then takes whatever else arrives within `linger`, up to `max`.
pub async fn next_batch<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    max: usize,
    linger: Duration,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let first = consumer.recv().await?.detach();
    batch_after(consumer, first, max, linger).await
}

/// A batch that starts with `first`: whatever else arrives within `linger`, up to `max`.
pub async fn batch_after<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    first: OwnedMessage,
    max: usize,
    linger: Duration,
) -> Result<Vec<OwnedMessage>, KafkaError> {
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message.detach()),
            Ok(Err(error)) => return Err(error),
            Err(_) => break,
        }
    }
    Ok(batch)
}

/// Splits a batch by (topic, partition), keeping each partition's order.
pub fn by_partition(batch: Vec<OwnedMessage>) -> BTreeMap<(String, i32), Vec<OwnedMessage>> {
    let mut groups: BTreeMap<(String, i32), Vec<OwnedMessage>> = BTreeMap::new();
    for message in batch {
        groups.entry((message.topic().to_string(), message.partition())).or_default().push(message);
    }
    groups
}

/// Records produced while handling a batch; the batch counts as done only when every one of
/// them is acknowledged by the broker.
pub struct Outbox<'p> {
    producer: &'p KafkaProducer,
    pending: Vec<Acknowledgement>,
}

/// A record to produce. `partition: None` lets the murmur2 partitioner place it by key.
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub partition: Option<i32>,
    pub key: &'a str,
    pub payload: &'a [u8],
    pub headers: OwnedHeaders,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("producing to {topic}: {error}")]
    Enqueue { topic: String, error: KafkaError },
    #[error("delivery failed: {0}")]
    Delivery(KafkaError),
    #[error("delivery was cancelled (producer dropped)")]
    Cancelled,
}

/// Where a produced record landed.
#[derive(Debug, Clone, Copy)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
}

impl<'p> Outbox<'p> {
    pub fn new(producer: &'p KafkaProducer) -> Self {
        Outbox { producer, pending: Vec::new() }
    }

    /// Queues a record; returns its place in send order, which indexes what [`Outbox::flush`]
    /// returns.
    pub fn send(&mut self, record: Outgoing<'_>) -> Result<usize, DeliveryError> {
        self.send_record(record.topic, record.partition, Some(record.key.as_bytes()), record.payload, record.headers)
    }

    /// [`Outbox::send`] with the key as bytes, or none: a dead letter keeps its original's key
    /// exactly, whatever bytes (or absence) it was.
    pub fn send_record(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<usize, DeliveryError> {
        let mut future_record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            future_record = future_record.key(key);
        }
        if let Some(partition) = partition {
            future_record = future_record.partition(partition);
        }
        loop {
            match self.producer.send_result(future_record) {
                Ok(delivery) => {
                    self.pending.push(delivery);
                    return Ok(self.pending.len() - 1);
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    // Back-pressure: let librdkafka drain its queue, then retry the same record.
                    future_record = returned;
                    self.producer.wait_for_room();
                }
                Err((error, _)) => return Err(DeliveryError::Enqueue { topic: topic.to_string(), error }),
            }
        }
    }

    /// Waits for every acknowledgement, in send order.
    pub async fn flush(self) -> Result<Vec<Delivered>, DeliveryError> {
        let mut delivered = Vec::with_capacity(self.pending.len());
        for result in join_all(self.pending).await {
            match result {
                Ok(Ok(d)) => delivered.push(Delivered { partition: d.partition, offset: d.offset }),
                Ok(Err((error, _))) => return Err(DeliveryError::Delivery(error)),
                Err(_) => return Err(DeliveryError::Cancelled),
            }
        }
        Ok(delivered)
    }
}

/// Marks everything handled in a batch as done: stores `next offset` per partition, which the
/// consumer commits on its timer, on revocation and on close (see
/// [`crate::kafka::group_consumer`]). Call it only once the batch's work is durable.
pub fn store_batch_offsets(consumer: &GroupConsumer, groups: &BTreeMap<(String, i32), Vec<OwnedMessage>>) -> Result<(), KafkaError> {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), messages) in groups {
        if let Some(last) = messages.last() {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(last.offset() + 1))?;
        }
    }
    if offsets.count() == 0 {
        return Ok(());
    }
    match consumer.store_offsets(&offsets) {
        // Every partition of the batch was revoked meanwhile: its new owner handles the
        // records again, as after a commit that came too late.
        Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => Ok(()),
        result => result,
    }
}

/// Queues the original record, untouched, for the dead-letter topic of its topic, with the
/// reason (and `extra` headers) added to its own headers; on the same partition number, since
/// every dead-letter topic is co-partitioned with its source.
pub fn dead_letter(
    outbox: &mut Outbox<'_>,
    message: &OwnedMessage,
    kind: &str,
    reason: &str,
    extra: &[(&str, &str)],
) -> Result<usize, DeliveryError> {
    let topic = contracts::dead_letter_topic(message.topic());
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    let mut dlq_headers = super::headers_without(message, &[]);
    let reasons = [
        ("dlq.error.kind", kind),
        ("dlq.error.reason", reason),
        ("dlq.source.topic", message.topic()),
        ("dlq.source.partition", &partition),
        ("dlq.source.offset", &offset),
    ];
    for (name, value) in reasons.iter().chain(extra) {
        dlq_headers = dlq_headers.insert(rdkafka::message::Header { key: name, value: Some(value.as_bytes()) });
    }
    outbox.send_record(&topic, Some(message.partition()), message.key(), message.payload().unwrap_or_default(), dlq_headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;

    fn record(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(Some(b"v".to_vec()), Some(b"k".to_vec()), topic.into(), Timestamp::NotAvailable, partition, offset, None)
    }

    fn partitions(topic: &str, numbers: &[i32]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for n in numbers {
            list.add_partition(topic, *n);
        }
        list
    }

    fn keys(topic: &str, numbers: &[i32]) -> HashSet<(String, i32)> {
        numbers.iter().map(|n| (topic.to_string(), *n)).collect()
    }

    fn owned(tracker: &RebalanceTracker) -> HashSet<(String, i32)> {
        tracker.owned.lock().expect("owned").clone()
    }

    #[test]
    fn a_batch_keeps_only_the_partitions_the_member_still_owns() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1]));
        // A batch fetched while the member owned both partitions …
        let batch = vec![record("t", 0, 5), record("t", 1, 7), record("t", 1, 8), record("t", 0, 6)];
        // … and an eager rebalance during the batch's linger that gave partition 1 to another
        // member: the whole assignment revoked, the new one assigned whole.
        tracker.revoked(&partitions("t", &[0, 1]));
        tracker.assigned(&partitions("t", &[0]));
        let mut groups = by_partition(batch);
        assert_eq!(tracker.retain_owned(&mut groups), 2);
        assert_eq!(groups.keys().cloned().collect::<Vec<_>>(), vec![("t".to_string(), 0)]);
        assert_eq!(groups[&("t".to_string(), 0)].iter().map(|m| m.offset()).collect::<Vec<_>>(), vec![5, 6]);
        // Eager reads even the kept partition again from its committed offset: rebuilt too.
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1]));
    }

    #[test]
    fn an_eager_rebalance_marks_every_partition_changed_even_those_kept() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1, 2, 3]));
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1, 2, 3]));
        // A second member joins: everything is revoked, then this member gets half back.
        tracker.revoked(&partitions("t", &[0, 1, 2, 3]));
        tracker.assigned(&partitions("t", &[0, 1]));
        assert_eq!(owned(&tracker), keys("t", &[0, 1]));
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1, 2, 3]));
        // It leaves again: the survivor is handed the whole topic, all of it changed.
        tracker.revoked(&partitions("t", &[0, 1]));
        tracker.assigned(&partitions("t", &[0, 1, 2, 3]));
        assert_eq!(owned(&tracker), keys("t", &[0, 1, 2, 3]));
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1, 2, 3]));
    }

    #[test]
    fn a_cooperative_rebalance_marks_only_the_moved_partitions_changed() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1, 2, 3]));
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1, 2, 3]));
        // A second member joins: the first rebalance revokes only what moves to it, the second
        // assigns this member nothing new.
        tracker.revoked(&partitions("t", &[2, 3]));
        tracker.assigned(&partitions("t", &[]));
        assert_eq!(owned(&tracker), keys("t", &[0, 1]));
        assert_eq!(tracker.take_changed(), keys("t", &[2, 3]), "partitions 0 and 1 keep their state");
        let mut groups = by_partition(vec![record("t", 0, 9), record("t", 3, 4)]);
        assert_eq!(tracker.retain_owned(&mut groups), 1);
        assert_eq!(groups.keys().cloned().collect::<Vec<_>>(), vec![("t".to_string(), 0)]);
        // The other member dies: only its partitions are added.
        tracker.assigned(&partitions("t", &[2, 3]));
        assert_eq!(owned(&tracker), keys("t", &[0, 1, 2, 3]));
        assert_eq!(tracker.take_changed(), keys("t", &[2, 3]));
        // A rebalance that moves nothing for this member changes nothing.
        tracker.assigned(&partitions("t", &[]));
        assert!(tracker.take_changed().is_empty());
    }

    #[test]
    fn a_lost_cooperative_assignment_is_rebuilt_whole() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1]));
        tracker.take_changed();
        // Session timed out: librdkafka revokes everything, then the rejoin assigns it again.
        tracker.revoked(&partitions("t", &[0, 1]));
        assert!(owned(&tracker).is_empty());
        tracker.assigned(&partitions("t", &[0, 1]));
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1]));
    }

    #[test]
    fn a_failed_rebalance_follows_the_assignment_the_consumer_kept() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1, 2]));
        tracker.take_changed();
        tracker.resynced(&partitions("t", &[0, 1]));
        assert_eq!(owned(&tracker), keys("t", &[0, 1]));
        assert_eq!(tracker.take_changed(), keys("t", &[2]));
        tracker.all_changed();
        assert_eq!(tracker.take_changed(), keys("t", &[0, 1]));
    }

    #[test]
    fn an_incremental_revocation_keeps_the_other_partitions() {
        let tracker = RebalanceTracker::default();
        tracker.assigned(&partitions("t", &[0, 1, 2]));
        tracker.take_changed();
        tracker.revoked(&partitions("t", &[2]));
        let mut groups = by_partition(vec![record("t", 0, 1), record("t", 2, 1), record("u", 0, 1)]);
        assert_eq!(tracker.retain_owned(&mut groups), 2, "a revoked partition and a topic never assigned");
        assert_eq!(groups.len(), 1);
        assert_eq!(tracker.take_changed(), keys("t", &[2]));
    }
}

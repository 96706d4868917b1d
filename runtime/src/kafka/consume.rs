//! Pieces every consuming loop shares: batches, rebalance tracking, the outbox of pending
//! produces, and offset commits.
use futures::future::join_all;
use rdkafka::{
    ClientContext, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::KafkaError,
    message::{OwnedHeaders, OwnedMessage},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use std::{
    collections::{BTreeMap, HashSet},
    sync::Mutex,
    time::Duration,
};

/// Remembers which partitions changed hands since the loop last looked, so the loop drops and
/// rebuilds whatever it keeps per partition instead of trusting state from a past ownership.
#[derive(Default)]
pub struct RebalanceTracker {
    changed: Mutex<HashSet<(String, i32)>>,
}

impl RebalanceTracker {
    pub fn take_changed(&self) -> HashSet<(String, i32)> {
        std::mem::take(&mut *self.changed.lock().unwrap_or_else(|p| p.into_inner()))
    }
    fn mark(&self, list: &TopicPartitionList) {
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        for element in list.elements() {
            changed.insert((element.topic().to_string(), element.partition()));
        }
    }
}

impl ClientContext for RebalanceTracker {}

impl ConsumerContext for RebalanceTracker {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            tracing::info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions revoked");
            self.mark(list);
        }
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            tracing::info!(partitions = ?list.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(), "partitions assigned");
            self.mark(list);
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
    producer: &'p FutureProducer,
    pending: Vec<DeliveryFuture>,
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
    pub fn new(producer: &'p FutureProducer) -> Self {
        Outbox { producer, pending: Vec::new() }
    }

    /// Queues a record; returns its place in send order, which indexes what [`Outbox::flush`]
    /// returns.
    pub fn send(&mut self, record: Outgoing<'_>) -> Result<usize, DeliveryError> {
        let mut future_record = FutureRecord::to(record.topic).key(record.key).payload(record.payload).headers(record.headers);
        if let Some(partition) = record.partition {
            future_record = future_record.partition(partition);
        }
        loop {
            match self.producer.send_result(future_record) {
                Ok(delivery) => {
                    self.pending.push(delivery);
                    return Ok(self.pending.len() - 1);
                }
                Err((KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), returned)) => {
                    // Back-pressure: let librdkafka drain its queue, then retry the same record.
                    future_record = returned;
                    self.producer.poll(Duration::from_millis(50));
                }
                Err((error, _)) => return Err(DeliveryError::Enqueue { topic: record.topic.to_string(), error }),
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

/// Commits `next offset` per partition for everything handled in a batch.
pub fn commit_batch(consumer: &GroupConsumer, groups: &BTreeMap<(String, i32), Vec<OwnedMessage>>) -> Result<(), KafkaError> {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), messages) in groups {
        if let Some(last) = messages.last() {
            offsets.add_partition_offset(topic, *partition, Offset::Offset(last.offset() + 1))?;
        }
    }
    consumer.commit(&offsets, CommitMode::Async)
}

use crate::kafka::{CodecError, KafkaSetupError, consume::DeliveryError};
use rdkafka::error::KafkaError;

/// Why a consuming loop (command processor, subscription, projection) stopped; its
/// supervisor restarts it, which rebuilds whatever state it kept from the log.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("event codec: {0}")]
    Codec(#[from] CodecError),
    #[error("{commands} has {commands_partitions} partitions but {events} has {events_partitions}: they must be co-partitioned")]
    NotCoPartitioned { commands: String, commands_partitions: i32, events: String, events_partitions: i32 },
    #[error("partition {partition} of {topic} holds records this writer did not append: another writer owns it now")]
    LostOwnership { topic: String, partition: i32 },
    #[error(transparent)]
    AggregateStore(#[from] super::aggregate_store::StoreError),
    #[error("blocking task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("rebuilding read model {projection} from a replaced log: {error}")]
    Rebuild { projection: &'static str, error: Box<dyn std::error::Error + Send + Sync> },
    #[error("handler {name} failed on {topic}/{partition}@{offset}: {error}")]
    Handler { name: String, topic: String, partition: i32, offset: i64, error: Box<dyn std::error::Error + Send + Sync> },
}

//! The write side over HTTP: a handler turns a request into a command and puts it on the
//! stream's command topic, exactly as kcat would, on the partition that owns the aggregate.
//! It only produces; the command processor decides.
use crate::{kafka, partitioner::partition_for};
use contracts::{CommandEnvelope, CommandTarget, Stream};
use rdkafka::{
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use std::{collections::HashMap, sync::{Arc, Mutex}, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum SendCommandError {
    #[error(transparent)]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Setup(#[from] kafka::KafkaSetupError),
    #[error("encoding the command: {0}")]
    Json(#[from] serde_json::Error),
}

#[derive(Clone)]
pub struct CommandBus {
    producer: FutureProducer,
    partitions: Arc<Mutex<HashMap<&'static str, i32>>>,
}

impl CommandBus {
    pub fn new(brokers: &str) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(CommandBus { producer: kafka::producer(brokers)?, partitions: Arc::default() })
    }

    /// Produces the command (with `command_id`, generated when absent) and returns its id once
    /// the broker has acknowledged it.
    pub async fn send<S: Stream>(&self, command_id: Option<String>, command: S::Command) -> Result<String, SendCommandError> {
        let command_id = command_id.filter(|id| !id.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let aggregate_id = command.aggregate_id().to_string();
        let json = serde_json::to_vec(&CommandEnvelope { command_id: Some(command_id.clone()), command })?;
        let partition = partition_for(&aggregate_id, self.partition_count(S::COMMANDS_TOPIC)?);
        let headers = kafka::headers(&[("command_id", &command_id), ("correlation_id", &command_id)]);
        self.producer
            .send(
                FutureRecord::to(S::COMMANDS_TOPIC).key(&aggregate_id).partition(partition).payload(&json).headers(headers),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .map_err(|(error, _)| error)?;
        Ok(command_id)
    }

    fn partition_count(&self, topic: &'static str) -> Result<i32, kafka::KafkaSetupError> {
        if let Some(count) = self.partitions.lock().unwrap_or_else(|p| p.into_inner()).get(topic) {
            return Ok(*count);
        }
        let count = kafka::partitions_of(self.producer.client(), topic)?;
        self.partitions.lock().unwrap_or_else(|p| p.into_inner()).insert(topic, count);
        Ok(count)
    }
}

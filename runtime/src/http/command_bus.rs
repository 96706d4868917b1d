//! The write side over HTTP: a handler turns a request into a command and puts it on the
//! stream's command topic, exactly as kcat would, on the partition that owns the aggregate.
//! It only produces; the command processor decides.
use crate::kafka::{self, partition_for};
use contracts::{CommandEnvelope, CommandTarget, Stream};
use rdkafka::{
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tracing::Instrument;

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
    ///
    /// The command gets a span, a child of the caller's (the HTTP request's), whose context
    /// goes into the record's `traceparent` header: the command processor continues from it.
    pub async fn send<S: Stream>(&self, command_id: Option<String>, command: S::Command) -> Result<String, SendCommandError> {
        let command_id = command_id.filter(|id| !id.is_empty()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let aggregate_id = command.aggregate_id().to_string();
        let command_type = command.command_type();
        let span = tracing::info_span!(
            "command.send",
            otel.name = %format!("send {command_type}"), otel.kind = "producer", topic = S::COMMANDS_TOPIC,
            command_type, aggregate_id = %aggregate_id, command_id = %command_id, trace_id = tracing::field::Empty,
        );
        crate::observe::telemetry::record_trace_id(&span);
        self.produce::<S>(command_id, aggregate_id, command, &span).instrument(span.clone()).await
    }

    async fn produce<S: Stream>(
        &self,
        command_id: String,
        aggregate_id: String,
        command: S::Command,
        span: &tracing::Span,
    ) -> Result<String, SendCommandError> {
        let json = serde_json::to_vec(&CommandEnvelope { command_id: Some(command_id.clone()), command })?;
        let partition = partition_for(&aggregate_id, self.partition_count(S::COMMANDS_TOPIC).await?);
        let headers = crate::observe::telemetry::with_trace(kafka::headers(&[("command_id", &command_id), ("correlation_id", &command_id)]), span);
        self.producer
            .send(
                FutureRecord::to(S::COMMANDS_TOPIC).key(&aggregate_id).partition(partition).payload(&json).headers(headers),
                Timeout::After(Duration::from_secs(10)),
            )
            .await
            .map_err(|(error, _)| error)?;
        Ok(command_id)
    }

    /// Why the broker cannot be reached right now, or `None` when it answers metadata requests.
    pub async fn broker_problem(&self, timeout: Duration) -> Option<String> {
        let producer = self.producer.clone();
        // librdkafka may wait past `timeout` for a usable broker; the answer must not.
        let fetch = tokio::task::spawn_blocking(move || producer.client().fetch_metadata(None, timeout));
        match tokio::time::timeout(timeout, fetch).await {
            Ok(Ok(Ok(_))) => None,
            Ok(Ok(Err(error))) => Some(error.to_string()),
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!("no metadata answer within {timeout:?}")),
        }
    }

    /// Cached per topic; the first lookup is a blocking metadata call, so it runs off the
    /// async workers (a broker that does not answer must not stall HTTP).
    async fn partition_count(&self, topic: &'static str) -> Result<i32, SendCommandError> {
        if let Some(count) = self.partitions.lock().unwrap_or_else(|p| p.into_inner()).get(topic) {
            return Ok(*count);
        }
        let producer = self.producer.clone();
        let count = tokio::task::spawn_blocking(move || kafka::partitions_of(producer.client(), topic))
            .await
            .map_err(|_| SendCommandError::Kafka(rdkafka::error::KafkaError::Canceled))??;
        self.partitions.lock().unwrap_or_else(|p| p.into_inner()).insert(topic, count);
        Ok(count)
    }
}

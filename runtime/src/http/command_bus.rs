//! The write side over HTTP: a handler turns a request into a command and puts it on the
//! stream's command topic, exactly as kcat would, on the partition that owns the aggregate.
//! It only produces; the command processor decides.
//!
//! Requests do not produce one by one: they queue for a single sender, which hands librdkafka
//! everything queued so far as one group and waits for the group's acknowledgements before
//! the next. librdkafka's broker thread busy-polls while a partition has messages ready and
//! its idempotent producer's five requests in flight (`rd_kafka_toppar_producer_serve` sets
//! the wake-up time before it checks the in-flight limit); with one request per HTTP command
//! and a broker slower than the request rate (Nisshi's sqlite engine under load), that spin
//! took a whole core's third at 3,000 orders/min. One group at a time never reaches that
//! limit, and the groups grow with the load: one command alone at low rates, many per request
//! under load.
use crate::kafka::{self, KafkaProducer, partition_for};
use contracts::{CommandEnvelope, CommandTarget, Stream};
use rdkafka::{error::KafkaError, message::OwnedHeaders, producer::FutureRecord};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// At most this many commands go to librdkafka in one group.
const MAX_GROUP: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum SendCommandError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Setup(#[from] kafka::KafkaSetupError),
    #[error("encoding the command: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the command sender has stopped")]
    SenderStopped,
}

#[derive(Clone)]
pub struct CommandBus {
    producer: KafkaProducer,
    queue: mpsc::UnboundedSender<Outgoing>,
    partitions: Arc<Mutex<HashMap<&'static str, i32>>>,
}

/// A command record waiting for the sender, and where its acknowledgement goes.
struct Outgoing {
    topic: &'static str,
    partition: i32,
    key: String,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    acknowledged: oneshot::Sender<Result<(), KafkaError>>,
}

/// Hands every queued command to librdkafka, waits until the broker acknowledged (or refused)
/// each of them, tells their requests, and starts over; ends when every [`CommandBus`] is gone.
async fn send_in_groups(producer: KafkaProducer, mut queue: mpsc::UnboundedReceiver<Outgoing>) {
    let mut group = Vec::new();
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        let deliveries = group.drain(..).map(|outgoing| {
            let record = FutureRecord::to(outgoing.topic)
                .key(&outgoing.key)
                .partition(outgoing.partition)
                .payload(&outgoing.payload)
                .headers(outgoing.headers.clone());
            let delivery = producer.send_result(record).map_err(|(error, _)| error);
            async move {
                let outcome = match delivery {
                    // librdkafka ends every delivery within `message.timeout.ms`.
                    Ok(delivery) => match delivery.await {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err((error, _))) => Err(error),
                        Err(_) => Err(KafkaError::Canceled),
                    },
                    Err(error) => Err(error),
                };
                // The request may have given up waiting; nobody is left to tell then.
                let _ = outgoing.acknowledged.send(outcome);
            }
        });
        futures::future::join_all(deliveries.collect::<Vec<_>>()).await;
    }
}

impl CommandBus {
    /// Starts the sender (on the current tokio runtime).
    pub fn new(brokers: &str) -> Result<Self, KafkaError> {
        let producer = kafka::producer(brokers)?;
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(send_in_groups(producer.clone(), waiting));
        Ok(CommandBus { producer, queue, partitions: Arc::default() })
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
        // The command id is in the JSON, and a command without a `correlation_id` header starts
        // its own correlation under its command id: the trace context is the only header.
        let headers = crate::observe::telemetry::with_trace(OwnedHeaders::new(), span);
        let (acknowledged, acknowledgement) = oneshot::channel();
        let outgoing = Outgoing { topic: S::COMMANDS_TOPIC, partition, key: aggregate_id, payload: json, headers, acknowledged };
        self.queue.send(outgoing).map_err(|_| SendCommandError::SenderStopped)?;
        acknowledgement.await.map_err(|_| SendCommandError::SenderStopped)??;
        // The service's own command loop may be parked at its quiet pace: it looks now.
        kafka::wake_parked_loops();
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
            .map_err(|_| SendCommandError::Kafka(KafkaError::Canceled))??;
        self.partitions.lock().unwrap_or_else(|p| p.into_inner()).insert(topic, count);
        Ok(count)
    }
}

//! Loops that follow another stream's events (policies, and reactors that perform side effects
//! such as sending a notification). At-least-once: produce what the batch caused, wait for the
//! acknowledgements, then commit the source offsets. Redelivered events are stopped by the
//! version rule; what slips through (a crash before the commit) yields commands with the same
//! derived ids, which the command processor ignores.
use super::{BATCH_LINGER, LoopError, MAX_BATCH, accepted_history::AcceptedHistory, pause::wait_while_paused_fetching};
use crate::snapshot::SnapshotStore;
use crate::{
    history::HistoryGuard,
    kafka::{
        self, EventCodec, Pace, Parking,
        codec::Read,
        consume::{Outbox, Outgoing, by_partition, dead_letter, store_batch_offsets},
        headers, partition_for,
    },
    observe::{lag::LagReporter, metrics as m, telemetry},
    policy::Policy,
    shared::{LoopKind, command_id_for_reaction},
};
use contracts::{CommandEnvelope, CommandTarget, EventEnvelope, EventType, Stream};
use rdkafka::{Message, consumer::Consumer};
use std::{collections::HashMap, future::Future, sync::Arc, time::Instant};
use tracing::{Instrument, field::Empty};

pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// A command a handler wants produced onto one of its service's own command topics.
pub struct CommandOut {
    pub topic: &'static str,
    pub aggregate_id: String,
    pub command_id: String,
    pub json: Vec<u8>,
}

/// Reacts to the events of stream `S`.
pub trait EventHandler<S: Stream>: Send + Sync + 'static {
    fn name(&self) -> &str;
    fn handle(&self, event: &EventEnvelope<S::Event>) -> impl Future<Output = Result<Vec<CommandOut>, HandlerError>> + Send;
}

/// Runs a [`Policy`] as an [`EventHandler`]: each command gets the id
/// `uuid5(event_id / policy / position)`, identical on every redelivery.
pub struct PolicyHandler<P: Policy>(pub P);

impl<P: Policy> EventHandler<P::Source> for PolicyHandler<P> {
    fn name(&self) -> &str {
        P::NAME
    }

    async fn handle(&self, event: &EventEnvelope<<P::Source as Stream>::Event>) -> Result<Vec<CommandOut>, HandlerError> {
        let mut out = Vec::new();
        for (position, command) in self.0.react(event).into_iter().enumerate() {
            let command_id = command_id_for_reaction(&event.event_id, P::NAME, position);
            let aggregate_id = command.aggregate_id().to_string();
            let json = serde_json::to_vec(&CommandEnvelope { command_id: Some(command_id.clone()), command })?;
            out.push(CommandOut { topic: <P::Target as Stream>::COMMANDS_TOPIC, aggregate_id, command_id, json });
        }
        Ok(out)
    }
}

pub struct Subscription<S: Stream, H: EventHandler<S>> {
    handler: H,
    codec: Arc<EventCodec<S>>,
    history: AcceptedHistory<S>,
    brokers: String,
    group_id: String,
    pace: Pace,
}

impl<S: Stream, H: EventHandler<S>> Subscription<S, H> {
    pub fn new(handler: H, codec: Arc<EventCodec<S>>, snapshots: Arc<SnapshotStore>, brokers: &str, service: &str, pace: Pace) -> Self {
        let group_id = format!("{service}.{}", handler.name());
        let history = AcceptedHistory::new(codec.clone(), snapshots);
        Subscription { handler, codec, history, brokers: brokers.to_string(), group_id, pace }
    }

    pub async fn run(&self) -> Result<(), LoopError> {
        let consumer = Arc::new(kafka::group_consumer(&self.brokers, &self.group_id, self.pace).await?);
        let producer = kafka::producer(&self.brokers)?;
        let reader = Arc::new(kafka::reader(&self.brokers)?);
        let _lag = LagReporter::for_policy(self.group_id.clone(), &self.brokers, consumer.clone());
        let mut target_partitions: HashMap<&'static str, i32> = HashMap::new();
        consumer.subscribe(&[S::EVENTS_TOPIC])?;
        tracing::info!(topic = S::EVENTS_TOPIC, group = %self.group_id, "subscription started");
        let mut guards: HashMap<i32, HistoryGuard> = HashMap::new();
        let mut parking = Parking::new(self.pace, &self.group_id);
        loop {
            let batch = parking.next_batch(&consumer, MAX_BATCH, BATCH_LINGER).await?;
            // A pause holds the batch that arrives: nothing received after the pause is handled.
            wait_while_paused_fetching(LoopKind::Policy, &mut parking, &consumer).await?;
            let started = Instant::now();
            for (_, partition) in consumer.context().take_changed() {
                guards.remove(&partition);
            }
            let mut groups = by_partition(batch);
            let not_owned = consumer.context().retain_owned(&mut groups);
            if not_owned > 0 {
                m::records_not_owned(LoopKind::Policy, &self.group_id, not_owned);
            }
            let mut outbox = Outbox::new(&producer);
            for ((_, partition), messages) in &groups {
                if !guards.contains_key(partition) {
                    let first = messages.first().map_or(0, |m| m.offset());
                    guards.insert(*partition, self.history.before(reader.clone(), *partition, first, &self.group_id).await?);
                }
                let Some(guard) = guards.get_mut(partition) else { continue };
                for message in messages {
                    let Some(bytes) = message.payload() else { continue };
                    // A registry that cannot be reached ends the run (`?`) before anything of the
                    // batch is committed: the supervisor retries it after its back-off.
                    let event = match self.codec.read(bytes).await? {
                        Read::Event(event) => event,
                        Read::Undecodable { error, envelope } => {
                            m::event_undecodable(S::EVENTS_TOPIC, &self.group_id, error.kind());
                            tracing::error!(
                                topic = S::EVENTS_TOPIC, partition, offset = message.offset(), %error, handler = self.handler.name(),
                                aggregate_id = envelope.as_ref().map(|e| e.aggregate_id.as_str()), version = envelope.as_ref().map(|e| e.version),
                                "undecodable event dead-lettered; the aggregate's later events still apply"
                            );
                            if let Some(metadata) = &envelope {
                                guard.accept(metadata);
                            }
                            dead_letter(&mut outbox, message, error.kind(), &error.to_string(), &[("dlq.reader", &self.group_id)])?;
                            continue;
                        }
                    };
                    if !guard.accept(&event.metadata()) {
                        tracing::debug!(event_id = %event.event_id, version = event.version, "event outside the accepted history skipped");
                        continue;
                    }
                    // One span per handled event, continuing the trace of the command that
                    // caused it; the commands it produces carry this span as their parent.
                    let event_type = event.payload.event_type();
                    let span = tracing::info_span!(
                        "event",
                        otel.name = %format!("{} {event_type}", self.handler.name()), otel.kind = "consumer",
                        handler = self.handler.name(), event_type, aggregate_id = %event.aggregate_id,
                        event_id = %event.event_id, trace_id = Empty,
                    );
                    telemetry::continue_from_record(&span, message);
                    let commands = self.handler.handle(&event).instrument(span.clone()).await.map_err(|error| LoopError::Handler {
                        name: self.handler.name().to_string(),
                        topic: S::EVENTS_TOPIC.to_string(),
                        partition: *partition,
                        offset: message.offset(),
                        error,
                    })?;
                    for command in commands {
                        let partitions = match target_partitions.get(command.topic) {
                            Some(count) => *count,
                            None => {
                                let count = super::partition_count(&consumer, command.topic).await?;
                                target_partitions.insert(command.topic, count);
                                count
                            }
                        };
                        outbox.send(Outgoing {
                            topic: command.topic,
                            partition: Some(partition_for(&command.aggregate_id, partitions)),
                            key: &command.aggregate_id,
                            payload: &command.json,
                            headers: telemetry::with_trace(
                                headers(&[("correlation_id", &event.correlation_id), ("causation_id", &event.event_id)]),
                                &span,
                            ),
                        })?;
                        span.in_scope(|| tracing::debug!(topic = command.topic, command_id = %command.command_id, "command produced"));
                    }
                }
            }
            outbox.flush().await?;
            store_batch_offsets(&consumer, &groups)?;
            m::batch_took(LoopKind::Policy, &self.group_id, started.elapsed());
        }
    }
}

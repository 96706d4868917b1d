//! The single writer of an aggregate stream.
//!
//! Command and event topics are co-partitioned (same count, murmur2 on the aggregate id), so
//! whoever owns partition p of `<stream>.commands` in the consumer group is the only writer of
//! partition p of `<stream>.events`. On assignment it rebuilds p's aggregates from the event
//! log, then handles commands in batches: decide, append events (explicitly to partition p),
//! wait for every acknowledgement, read the partition back to make sure the log holds exactly
//! what it appended, and commit the command offsets once per batch. No Kafka transactions:
//! a redelivered command is recognised by its id (explicit, or derived from its record
//! position and pinned when forwarded), which every event carries; and a writer that lost its
//! partition notices on read-back and rebuilds from the log.
//!
//! Commands are never skipped by offset: one batch produces to several partitions (events,
//! forwards, dead letters), and a crash during the flush can leave a later command's events
//! durable while an earlier command's forward was lost. Re-handling is always safe: commands
//! already in the log are duplicates by id, the rest are decided again.
use crate::{
    admin::{LoopKind, wait_while_paused},
    codec::EventCodec,
    consume::{LoopError, Outbox, Outgoing, RebalanceTracker, by_partition, commit_batch, next_batch},
    decider::{Decider, Rejection},
    event_log::read_to_end,
    history::HistoryTip,
    kafka::{self, header, headers, headers_without},
    metrics::{self as m, LagReporter, Outcome},
    partitioner::partition_for,
    telemetry,
};
use contracts::{CommandEnvelope, CommandTarget, EventEnvelope, EventType, Stream, dead_letter_topic, rejections_topic};
use rdkafka::{Message, consumer::Consumer, message::OwnedMessage};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

pub const MAX_BATCH: usize = 500;
pub const BATCH_LINGER: Duration = Duration::from_millis(5);

/// Namespace of command ids the runtime derives (from a record position or a source event).
pub const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_775f_636d_645f_6964);


struct Aggregate<St> {
    state: St,
    tip: HistoryTip,
}

/// What the writer of one partition knows, rebuilt from the event log on every assignment.
struct PartitionState<St> {
    aggregates: HashMap<String, Aggregate<St>>,
    handled_commands: HashSet<String>,
    /// Highest command offset whose events are in the log (for the operator: where the
    /// previous writer got to).
    last_command_offset: i64,
    /// Event partition read up to here.
    log_end: i64,
}

impl<St: Default> PartitionState<St> {
    fn empty() -> Self {
        PartitionState { aggregates: HashMap::new(), handled_commands: HashSet::new(), last_command_offset: -1, log_end: 0 }
    }
}

pub struct CommandProcessor<D: Decider> {
    decider: Arc<D>,
    codec: Arc<EventCodec<D::Stream>>,
    brokers: String,
    group_id: String,
}

type Command<D> = <<D as Decider>::Stream as Stream>::Command;
type Event<D> = <<D as Decider>::Stream as Stream>::Event;

impl<D: Decider> CommandProcessor<D> {
    pub fn new(decider: Arc<D>, codec: Arc<EventCodec<D::Stream>>, brokers: &str, service: &str) -> Self {
        CommandProcessor { decider, codec, brokers: brokers.to_string(), group_id: format!("{service}.commands") }
    }

    /// Runs until an error; the caller restarts it (a fresh consumer, so fresh state).
    pub async fn run(&self) -> Result<(), LoopError> {
        let stream_commands = <D::Stream as Stream>::COMMANDS_TOPIC;
        let stream_events = <D::Stream as Stream>::EVENTS_TOPIC;
        let consumer = Arc::new(kafka::group_consumer(&self.brokers, &self.group_id, RebalanceTracker::default())?);
        let producer = kafka::producer(&self.brokers)?;
        let reader = Arc::new(kafka::reader(&self.brokers)?);
        let _lag = LagReporter::spawn(LoopKind::Command, self.group_id.clone(), consumer.clone(), Default::default(), None);
        let partitions = crate::consume::partition_count(&consumer, stream_commands).await?;
        let event_partitions = crate::consume::partition_count(&consumer, stream_events).await?;
        if partitions != event_partitions {
            return Err(LoopError::NotCoPartitioned {
                commands: stream_commands.into(),
                commands_partitions: partitions,
                events: stream_events.into(),
                events_partitions: event_partitions,
            });
        }
        consumer.subscribe(&[stream_commands])?;
        tracing::info!(topic = stream_commands, group = %self.group_id, "command processor started");
        let mut owned: HashMap<i32, PartitionState<D::State>> = HashMap::new();
        loop {
            wait_while_paused(LoopKind::Command).await;
            let batch = next_batch(&consumer, MAX_BATCH, BATCH_LINGER).await?;
            let started = Instant::now();
            for (_, partition) in consumer.context().take_changed() {
                owned.remove(&partition);
            }
            let groups = by_partition(batch);
            let mut outbox = Outbox::new(&producer);
            let mut appended: HashMap<i32, Vec<String>> = HashMap::new();
            for ((_, partition), messages) in &groups {
                if !owned.contains_key(partition) {
                    let state = self.rehydrate(reader.clone(), *partition).await?;
                    owned.insert(*partition, state);
                }
                let Some(state) = owned.get_mut(partition) else { continue };
                for message in messages {
                    let ids = self.handle(state, message, partitions, &mut outbox).await?;
                    appended.entry(*partition).or_default().extend(ids);
                }
            }
            outbox.flush().await?;
            for (partition, event_ids) in appended {
                if let Some(state) = owned.get_mut(&partition)
                    && let Err(error) = self.verify_appended(reader.clone(), partition, state, event_ids).await
                {
                    owned.remove(&partition);
                    return Err(error);
                }
            }
            commit_batch(&consumer, &groups)?;
            m::batch_took(LoopKind::Command, &self.group_id, started.elapsed());
        }
    }

    /// Rebuilds every aggregate of one partition from the event log.
    async fn rehydrate(&self, reader: Arc<rdkafka::consumer::BaseConsumer>, partition: i32) -> Result<PartitionState<D::State>, LoopError> {
        let topic = <D::Stream as Stream>::EVENTS_TOPIC;
        let started = std::time::Instant::now();
        let (records, end) = read_to_end(reader, topic.to_string(), partition, 0).await?;
        let mut state = PartitionState::empty();
        state.log_end = end;
        let mut skipped = 0usize;
        for record in &records {
            let Some(bytes) = &record.value else { continue };
            match self.codec.decode(bytes).await {
                Ok(event) => {
                    if !apply_logged::<D>(&mut state, &event) {
                        skipped += 1;
                    }
                }
                Err(error) => {
                    tracing::error!(topic, partition, offset = record.offset, %error, "undecodable event in the log; its aggregate stops at the event before it");
                    skipped += 1;
                }
            }
        }
        tracing::info!(
            topic, partition, events = records.len(), skipped, aggregates = state.aggregates.len(),
            last_command_offset = state.last_command_offset, elapsed_ms = started.elapsed().as_millis() as u64,
            "rehydrated partition"
        );
        Ok(state)
    }

    /// Handles one command record in its own span, which continues the trace of the record's
    /// `traceparent` (or starts one); returns the ids of the events it appended.
    async fn handle(
        &self,
        state: &mut PartitionState<D::State>,
        message: &OwnedMessage,
        partitions: i32,
        outbox: &mut Outbox<'_>,
    ) -> Result<Vec<String>, LoopError> {
        // The span's name must be known when it starts; the full parse comes later.
        #[derive(serde::Deserialize)]
        struct TypeOnly {
            #[serde(rename = "type")]
            command_type: Option<String>,
        }
        let stream = <D::Stream as Stream>::NAME;
        let command_type = serde_json::from_slice::<TypeOnly>(message.payload().unwrap_or_default()).ok().and_then(|t| t.command_type);
        let span = tracing::info_span!(
            "command",
            otel.name = %format!("{stream} {}", command_type.as_deref().unwrap_or("command")), otel.kind = "consumer", stream,
            command_type = Empty, aggregate_id = Empty, command_id = Empty, trace_id = Empty, outcome = Empty,
            partition = message.partition(), offset = message.offset(),
        );
        telemetry::continue_from_record(&span, message);
        self.handle_in(state, message, partitions, outbox, &span).instrument(span.clone()).await
    }

    async fn handle_in(
        &self,
        state: &mut PartitionState<D::State>,
        message: &OwnedMessage,
        partitions: i32,
        outbox: &mut Outbox<'_>,
        span: &tracing::Span,
    ) -> Result<Vec<String>, LoopError> {
        let stream = <D::Stream as Stream>::NAME;
        let partition = message.partition();
        let offset = message.offset();
        let bytes = message.payload().unwrap_or_default();
        let envelope: CommandEnvelope<Command<D>> = match serde_json::from_slice(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                dead_letter(outbox, message, "unparseable", &format!("not a valid {} command: {error}", <D::Stream as Stream>::NAME))?;
                span.record("outcome", "dead_lettered");
                m::command_handled(stream, "unparseable", Outcome::DeadLettered);
                return Ok(vec![]);
            }
        };
        let command_id = envelope.command_id.clone().unwrap_or_else(|| {
            Uuid::new_v5(&COMMAND_ID_NAMESPACE, format!("{}/{partition}/{offset}", message.topic()).as_bytes()).to_string()
        });
        let command = &envelope.command;
        let command_type = command.command_type();
        let aggregate_id = command.aggregate_id().to_string();
        span.record("command_type", command_type);
        span.record("aggregate_id", aggregate_id.as_str());
        span.record("command_id", command_id.as_str());
        if state.handled_commands.contains(&command_id) {
            tracing::debug!(%command_id, "duplicate command ignored");
            span.record("outcome", "duplicate");
            m::command_handled(stream, command_type, Outcome::Duplicate);
            return Ok(vec![]);
        }
        let owner = partition_for(&aggregate_id, partitions);
        if owner != partition {
            // Sent with another partitioner or without a key: hand it to the partition that
            // owns the aggregate, with the id pinned so a redelivery forwards a duplicate.
            let pinned = CommandEnvelope { command_id: Some(command_id.clone()), command: command.clone() };
            let json = serde_json::to_vec(&pinned).unwrap_or_else(|_| bytes.to_vec());
            let forwarded_from = format!("{partition}/{offset}");
            outbox.send(Outgoing {
                topic: message.topic(),
                partition: Some(owner),
                key: &aggregate_id,
                payload: &json,
                headers: headers_without(message, &["forwarded_from"]).insert(rdkafka::message::Header {
                    key: "forwarded_from",
                    value: Some(forwarded_from.as_bytes()),
                }),
            })?;
            tracing::debug!(%command_id, from = partition, to = owner, "command forwarded to its partition");
            span.record("outcome", "forwarded");
            m::command_handled(stream, command_type, Outcome::Forwarded);
            return Ok(vec![]);
        }
        let aggregate = state.aggregates.entry(aggregate_id.clone()).or_insert_with(|| Aggregate { state: D::State::default(), tip: HistoryTip::default() });
        let decided_at = Instant::now();
        let decision = tracing::info_span!("decide", command_type, aggregate_id = %aggregate_id).in_scope(|| self.decider.decide(&aggregate.state, command));
        m::decision_took(stream, decided_at.elapsed());
        match decision {
            Ok(events) => {
                let correlation_id = header(message, "correlation_id").unwrap_or_else(|| command_id.clone());
                let causation_id = header(message, "causation_id").unwrap_or_else(|| command_id.clone());
                let now = now_millis();
                let mut appended = Vec::with_capacity(events.len());
                for payload in events {
                    let event = EventEnvelope {
                        event_id: Uuid::new_v4().to_string(),
                        aggregate_id: aggregate_id.clone(),
                        version: aggregate.tip.version + 1,
                        previous_event_id: aggregate.tip.event_id.clone(),
                        occurred_at: now,
                        correlation_id: correlation_id.clone(),
                        causation_id: causation_id.clone(),
                        command_id: command_id.clone(),
                        command_offset: offset,
                        payload,
                    };
                    let bytes = self.codec.encode(&event).await?;
                    outbox.send(Outgoing {
                        topic: <D::Stream as Stream>::EVENTS_TOPIC,
                        partition: Some(partition),
                        key: &aggregate_id,
                        payload: &bytes,
                        headers: telemetry::with_trace(
                            headers(&[
                                ("event_type", event.payload.event_type()),
                                ("correlation_id", &correlation_id),
                                ("causation_id", &causation_id),
                                ("command_id", &command_id),
                            ]),
                            span,
                        ),
                    })?;
                    m::event_appended(stream, event.payload.event_type());
                    aggregate.tip.advance(&event.metadata());
                    aggregate.state = D::evolve(std::mem::take(&mut aggregate.state), &event.payload);
                    appended.push(event.event_id);
                }
                state.handled_commands.insert(command_id);
                span.record("outcome", "accepted");
                m::command_handled(stream, command_type, Outcome::Accepted);
                tracing::debug!(events = appended.len(), "command accepted");
                Ok(appended)
            }
            Err(Rejection::Invalid(reason)) => {
                dead_letter(outbox, message, "invalid", &reason)?;
                span.record("outcome", "dead_lettered");
                m::command_handled(stream, command_type, Outcome::DeadLettered);
                Ok(vec![])
            }
            Err(Rejection::Refused(reason)) => {
                let record = serde_json::json!({
                    "command_id": command_id,
                    "command_type": command.command_type(),
                    "aggregate_id": aggregate_id,
                    "reason": reason,
                    "command": serde_json::from_slice::<serde_json::Value>(bytes).unwrap_or_default(),
                    "rejected_at": now_millis(),
                });
                let topic = rejections_topic(<D::Stream as Stream>::NAME);
                let payload = record.to_string();
                outbox.send(Outgoing {
                    topic: &topic,
                    partition: Some(partition),
                    key: &aggregate_id,
                    payload: payload.as_bytes(),
                    headers: telemetry::with_trace(headers(&[("command_id", &command_id), ("reason", &reason)]), span),
                })?;
                span.record("outcome", "rejected");
                m::command_handled(stream, command_type, Outcome::Rejected);
                tracing::info!(%command_id, command_type = command.command_type(), %reason, "command rejected");
                Ok(vec![])
            }
        }
    }

    /// Reads the partition from where this writer last read: it must find exactly the events
    /// it just appended. Anything else means another writer appended too.
    async fn verify_appended(
        &self,
        reader: Arc<rdkafka::consumer::BaseConsumer>,
        partition: i32,
        state: &mut PartitionState<D::State>,
        appended: Vec<String>,
    ) -> Result<(), LoopError> {
        let topic = <D::Stream as Stream>::EVENTS_TOPIC;
        let (records, end) = read_to_end(reader, topic.to_string(), partition, state.log_end).await?;
        let mut expected = appended.iter();
        for record in &records {
            let Some(bytes) = &record.value else { continue };
            let event_id = match self.codec.decode(bytes).await {
                Ok(event) => event.event_id,
                Err(_) => String::new(),
            };
            if expected.next() != Some(&event_id) {
                tracing::warn!(topic, partition, offset = record.offset, "event log diverged from this writer's appends");
                return Err(LoopError::LostOwnership { topic: topic.into(), partition });
            }
        }
        if expected.next().is_some() {
            return Err(LoopError::LostOwnership { topic: topic.into(), partition });
        }
        state.log_end = end;
        Ok(())
    }
}

/// Applies one logged event to a partition's state if it passes the version rule.
fn apply_logged<D: Decider>(state: &mut PartitionState<D::State>, event: &EventEnvelope<Event<D>>) -> bool {
    let aggregate = state
        .aggregates
        .entry(event.aggregate_id.clone())
        .or_insert_with(|| Aggregate { state: D::State::default(), tip: HistoryTip::default() });
    let metadata = event.metadata();
    if !aggregate.tip.accepts(&metadata) {
        return false;
    }
    aggregate.tip.advance(&metadata);
    aggregate.state = D::evolve(std::mem::take(&mut aggregate.state), &event.payload);
    state.handled_commands.insert(event.command_id.clone());
    state.last_command_offset = state.last_command_offset.max(event.command_offset);
    true
}

/// Sends the original record, untouched, to the dead-letter topic with the reason in headers.
fn dead_letter(outbox: &mut Outbox<'_>, message: &OwnedMessage, kind: &str, reason: &str) -> Result<(), LoopError> {
    let topic = dead_letter_topic(message.topic());
    let key = message.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
    let partition = message.partition().to_string();
    let offset = message.offset().to_string();
    let mut dlq_headers = headers_without(message, &[]);
    for (name, value) in [
        ("dlq.error.kind", kind),
        ("dlq.error.reason", reason),
        ("dlq.source.topic", message.topic()),
        ("dlq.source.partition", &partition),
        ("dlq.source.offset", &offset),
    ] {
        dlq_headers = dlq_headers.insert(rdkafka::message::Header { key: name, value: Some(value.as_bytes()) });
    }
    tracing::warn!(source = message.topic(), partition = message.partition(), offset = message.offset(), kind, reason, "command dead-lettered");
    outbox.send(Outgoing {
        topic: &topic,
        partition: Some(message.partition()),
        key: &key,
        payload: message.payload().unwrap_or_default(),
        headers: dlq_headers,
    })?;
    Ok(())
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

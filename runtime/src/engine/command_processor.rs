//! The single writer of an aggregate stream.
//!
//! Command and event topics are co-partitioned (same count, murmur2 on the aggregate id), so
//! whoever owns partition p of `<stream>.commands` in the consumer group is the only writer of
//! partition p of `<stream>.events`. On assignment it rebuilds p's aggregates from the event
//! log, then handles commands in batches: decide, append events (explicitly to partition p),
//! wait for every acknowledgement, check that the acknowledged offsets continue the log right
//! where this writer left it, with no gap (so the log holds exactly what it appended: nobody
//! else wrote in between), and commit the command offsets once per batch. No Kafka
//! transactions: a redelivered command is recognised by its id (explicit, or derived from its
//! record position and pinned when forwarded), which every event carries; and a writer that
//! lost its partition finds a gap at its next append and rebuilds from the log.
//!
//! Commands are never skipped by offset: one batch produces to several partitions (events,
//! forwards, dead letters), and a crash during the flush can leave a later command's events
//! durable while an earlier command's forward was lost. Re-handling is always safe: commands
//! already in the log are duplicates by id, the rest are decided again.
//!
//! What counts as "in the log" is a command's whole decision: every event it appended (each
//! record says which of how many it is, in its `decision_part` header), or its refusal on
//! `<stream>.rejections` (co-partitioned with the commands, read back on assignment too). A
//! redelivered command gets the outcome it first got, refusals included; one whose decision the
//! log holds only the beginning of is decided again against the state before it, and the
//! events that are missing are appended.
//!
//! Commands this process sends itself (its HTTP API, its policies, its forwards) are handled as
//! soon as the broker acknowledges them, when they continue the partition where this writer
//! stands (`kafka::loopback`); the fetch brings them again and they are passed over by offset.
//! The rest come by fetch.
//!
//! Rebuilding starts from the partition's newest snapshot on `<stream>.snapshots` when it
//! matches the log (see `crate::snapshot`), and reads only the log after it. The writer takes a
//! new snapshot every [`crate::snapshot::every_events`] events, in the background: the loop
//! goes on while it is written, and a snapshot lost half-way is simply not used.
use super::{
    BATCH_LINGER, LoopError, MAX_BATCH,
    command_core::{
        Basis, Causation, Classified, Command, Landed, Part, PartitionState, Position, Route, Undecided, Unroutable, apply_logged, classify,
        continues_log, decide, refused_command_id, rejection_record, skip_logged, stamp,
    },
    pause::wait_while_paused_fetching,
};
use crate::kafka::KafkaProducer;
use crate::snapshot::{SnapshotStore, digest};
use crate::{
    decider::{Decider, Rejection},
    kafka::{
        self, EventCodec, Pace, Parking,
        codec::Read,
        consume::{Outbox, Outgoing, by_partition, dead_letter, store_batch_offsets},
        event_log::{DECISION_PART_HEADER, read_to_end},
        header, headers, headers_without,
        loopback::{Handled, Loopback},
    },
    observe::{
        lag::LagReporter,
        metrics::{self as m, Outcome},
        telemetry,
    },
    shared::{LoopKind, now_millis},
};
use contracts::{CommandTarget, EventType, Stream, rejections_topic};
use rdkafka::{Message, consumer::Consumer, message::OwnedMessage};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

pub struct CommandProcessor<D: Decider> {
    decider: Arc<D>,
    codec: Arc<EventCodec<D::Stream>>,
    snapshots: Arc<SnapshotStore>,
    brokers: String,
    group_id: String,
}

/// What one command appended: its events and its refusal (outbox place).
#[derive(Default)]
struct Appended {
    events: Vec<AppendedEvent>,
    refusal: Option<usize>,
}

struct AppendedEvent {
    place: usize,
    /// [`digest`] of the record's value.
    digest: String,
    /// The aggregate, when this is its first event.
    first_of: Option<String>,
}

/// The snapshots of one owned partition that this writer knows of: the newest (id, parts), the
/// one before it, and whether one is being written.
#[derive(Default)]
struct Snapshots {
    newest: Option<(String, i32)>,
    before: Option<(String, i32)>,
    writing: bool,
}

impl<D: Decider> CommandProcessor<D> {
    pub fn new(decider: Arc<D>, codec: Arc<EventCodec<D::Stream>>, snapshots: Arc<SnapshotStore>, brokers: &str, service: &str) -> Self {
        CommandProcessor { decider, codec, snapshots, brokers: brokers.to_string(), group_id: format!("{service}.commands") }
    }

    /// Runs until an error; the caller restarts it (a fresh consumer, so fresh state).
    pub async fn run(&self) -> Result<(), LoopError> {
        let stream_commands = <D::Stream as Stream>::COMMANDS_TOPIC;
        let stream_events = <D::Stream as Stream>::EVENTS_TOPIC;
        let consumer = Arc::new(kafka::group_consumer(&self.brokers, &self.group_id, Pace::Saga).await?);
        let producer = kafka::producer(&self.brokers)?;
        let reader = Arc::new(kafka::reader(&self.brokers)?);
        let mut handled = Handled::default();
        let _lag =
            LagReporter::spawn(LoopKind::Command, self.group_id.clone(), &self.brokers, consumer.clone(), Default::default(), handled.stands(), None);
        let partitions = super::partition_count(&consumer, stream_commands).await?;
        let event_partitions = super::partition_count(&consumer, stream_events).await?;
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
        let mut owned: HashMap<i32, PartitionState<D>> = HashMap::new();
        let mut snapshots: HashMap<i32, Arc<Mutex<Snapshots>>> = HashMap::new();
        let snapshot_every = crate::snapshot::every_events();
        let mut parking = Parking::new(Pace::Saga, &self.group_id);
        // Commands this process sends itself (its HTTP API, its policies, forwards) are handled
        // as soon as they are acknowledged, without waiting for their fetch.
        let mut loopback = Loopback::subscribe([stream_commands]);
        loop {
            let mut appended_here = None;
            let mut fetched = parking
                .next_batch_or(&consumer, MAX_BATCH, BATCH_LINGER, &handled, async {
                    tokio::select! {
                        () = consumer.context().assignment_grew() => {}
                        record = loopback.recv() => appended_here = Some(record),
                    }
                })
                .await?;
            // A pause holds the batch that arrives: nothing received after the pause is handled.
            wait_while_paused_fetching(LoopKind::Command, &mut parking, &consumer).await?;
            let started = Instant::now();
            for partition in consumer.context().take_changed() {
                owned.remove(&partition.1);
                snapshots.remove(&partition.1);
                handled.forget(&partition);
            }
            let batch = match appended_here {
                Some(first) => {
                    let run = handled.take_run(first, &mut loopback, MAX_BATCH, BATCH_LINGER, |partition| owned.contains_key(&partition)).await;
                    m::records_ahead_of_fetch(LoopKind::Command, &self.group_id, run.len());
                    run
                }
                None => {
                    handled.drop_handled(&mut fetched);
                    fetched
                }
            };
            // A partition is rebuilt as soon as it is assigned, not when its first command comes:
            // after a restart or a takeover, the writer has its state by the time commands do.
            if batch.is_empty() {
                for partition in consumer.context().owned_partitions(stream_commands) {
                    if let std::collections::hash_map::Entry::Vacant(vacant) = owned.entry(partition) {
                        let (state, slot) = self.take_over(&producer, reader.clone(), partition, snapshot_every).await?;
                        vacant.insert(state);
                        snapshots.insert(partition, slot);
                    }
                }
                continue;
            }
            let mut groups = by_partition(batch);
            let not_owned = consumer.context().retain_owned(&mut groups);
            if not_owned > 0 {
                m::records_not_owned(LoopKind::Command, &self.group_id, not_owned);
            }
            let mut outbox = Outbox::new(&producer);
            // Per partition, what its commands appended.
            let mut appended: HashMap<i32, Appended> = HashMap::new();
            for ((_, partition), messages) in &groups {
                if !owned.contains_key(partition) {
                    let (state, slot) = self.take_over(&producer, reader.clone(), *partition, snapshot_every).await?;
                    owned.insert(*partition, state);
                    snapshots.insert(*partition, slot);
                }
                let Some(state) = owned.get_mut(partition) else { continue };
                for message in messages {
                    let one = self.handle(state, message, partitions, &mut outbox).await?;
                    let all = appended.entry(*partition).or_default();
                    all.events.extend(one.events);
                    if one.refusal.is_some() {
                        all.refusal = one.refusal;
                    }
                }
            }
            let delivered = outbox.flush().await?;
            for (partition, Appended { events, refusal }) in appended {
                let Some(state) = owned.get_mut(&partition) else { continue };
                if let Some(place) = refusal {
                    state.rejections_end = state.rejections_end.max(delivered[place].offset + 1);
                }
                if events.is_empty() {
                    continue;
                }
                let landed: Vec<Landed> = events
                    .iter()
                    .map(|event| Landed { partition: delivered[event.place].partition, offset: delivered[event.place].offset })
                    .collect();
                match continues_log(partition, state.log_end, &landed) {
                    Some(end) => {
                        state.log_end = end;
                        state.events_since_snapshot += landed.len() as u64;
                        for (event, at) in events.iter().zip(&landed) {
                            if let Some(id) = &event.first_of
                                && let Some(aggregate) = state.aggregates.get_mut(id)?
                            {
                                aggregate.first_offset = Some(at.offset);
                            }
                        }
                        if let Some(last) = events.last() {
                            state.last_event_digest = last.digest.clone();
                        }
                        m::writer_aggregates(<D::Stream as Stream>::NAME, partition, state.aggregates.warm_len(), state.aggregates.cold_len());
                        if state.snapshot_due(snapshot_every)
                            && let Some(slot) = snapshots.get(&partition)
                        {
                            self.snapshot(&producer, partition, state, slot.clone());
                        }
                    }
                    None => {
                        tracing::warn!(
                            topic = stream_events,
                            partition,
                            expected_at = state.log_end,
                            ?landed,
                            "event log diverged from this writer's appends"
                        );
                        owned.remove(&partition);
                        return Err(LoopError::LostOwnership { topic: stream_events.into(), partition });
                    }
                }
            }
            store_batch_offsets(&consumer, &groups)?;
            handled.handled(groups.values().flatten());
            m::batch_took(LoopKind::Command, &self.group_id, started.elapsed());
        }
    }

    /// Starts a snapshot of `state` in the background, unless one is being written: its bodies
    /// are cut now (the state as of this batch), the records go out while the loop goes on.
    fn snapshot(&self, producer: &KafkaProducer, partition: i32, state: &mut PartitionState<D>, slot: Arc<Mutex<Snapshots>>) {
        let superseded = {
            let mut known = slot.lock().unwrap_or_else(|p| p.into_inner());
            if known.writing {
                return;
            }
            known.writing = true;
            known.before.clone()
        };
        let cut_at = Instant::now();
        let bodies = match state.snapshot_bodies() {
            Ok(bodies) => bodies,
            Err(error) => {
                tracing::warn!(partition, %error, "a snapshot of the partition could not be written out; the log stays the only copy");
                slot.lock().unwrap_or_else(|p| p.into_inner()).writing = false;
                return;
            }
        };
        let (covers, aggregates) = (state.covers(), state.aggregates.len());
        state.snapshot_taken();
        let cut_ms = cut_at.elapsed().as_millis() as u64;
        let (store, producer, topic) = (self.snapshots.clone(), producer.clone(), <D::Stream as Stream>::EVENTS_TOPIC);
        tokio::spawn(async move {
            let started = Instant::now();
            let parts = bodies.len() as i32;
            let bytes: usize = bodies.iter().map(String::len).sum();
            let written = store.write(&producer, partition, &covers, bodies, now_millis(), superseded).await;
            let mut known = slot.lock().unwrap_or_else(|p| p.into_inner());
            known.writing = false;
            match written {
                Ok(id) => {
                    known.before = known.newest.replace((id, parts));
                    tracing::info!(
                        topic,
                        partition,
                        covers = covers.offset,
                        aggregates,
                        parts,
                        bytes,
                        cut_ms,
                        write_ms = started.elapsed().as_millis() as u64,
                        "snapshot written"
                    );
                }
                Err(error) => tracing::warn!(topic, partition, covers = covers.offset, %error, "snapshot not written; the next one is tried later"),
            }
        });
    }

    /// Rebuilds `partition` for a writer that has just been given it. A writer that had to read
    /// a long log saves the next one from reading it.
    async fn take_over(
        &self,
        producer: &KafkaProducer,
        reader: Arc<rdkafka::consumer::BaseConsumer>,
        partition: i32,
        snapshot_every: u64,
    ) -> Result<(PartitionState<D>, Arc<Mutex<Snapshots>>), LoopError> {
        let _rebuilding = crate::observe::rebuilds::rebuilding(&self.group_id, <D::Stream as Stream>::EVENTS_TOPIC, partition);
        let (mut state, snapshot) = self.rehydrate(reader, partition).await?;
        let slot = Arc::new(Mutex::new(Snapshots { newest: snapshot, ..Default::default() }));
        m::writer_aggregates(<D::Stream as Stream>::NAME, partition, state.aggregates.warm_len(), state.aggregates.cold_len());
        if state.snapshot_due(snapshot_every) {
            self.snapshot(producer, partition, &mut state, slot.clone());
        }
        super::heap::rebuilt();
        Ok((state, slot))
    }

    /// Rebuilds every aggregate of one partition from its newest snapshot and the event log
    /// after it (or the whole log), and learns which commands of the partition were refused
    /// from its rejections. Returns the state and the snapshot it started from.
    async fn rehydrate(
        &self,
        reader: Arc<rdkafka::consumer::BaseConsumer>,
        partition: i32,
    ) -> Result<(PartitionState<D>, Option<(String, i32)>), LoopError> {
        let topic = <D::Stream as Stream>::EVENTS_TOPIC;
        let started = std::time::Instant::now();
        let (mut state, snapshot) = match self.snapshots.usable::<D::State>(reader.clone(), topic, partition, None).await {
            Some((covers, contents, snapshot)) => (PartitionState::from_snapshot(&covers, contents)?, Some(snapshot)),
            None => (PartitionState::empty(), None),
        };
        let from_snapshot = state.aggregates.len();
        let snapshot_ms = started.elapsed().as_millis() as u64;
        let (records, end) = read_to_end(reader.clone(), topic.to_string(), partition, state.log_end).await?;
        state.log_end = end;
        state.events_since_snapshot = records.len() as u64;
        state.aggregates_in_snapshot = from_snapshot as u64;
        if let Some(last) = records.last() {
            state.last_event_digest = last.value.as_deref().map(digest).unwrap_or_default();
        }
        let mut skipped = 0usize;
        for record in &records {
            let Some(bytes) = &record.value else { continue };
            // A registry that cannot be reached ends the run (`?`): rebuilt without the events
            // it could not read, the aggregates would decide on a past state and fork the log.
            match self.codec.read(bytes).await? {
                Read::Event(event) => {
                    let part = record.decision_part.as_deref().and_then(Part::parse);
                    if record.decision_part.is_some() && part.is_none() {
                        tracing::warn!(topic, partition, offset = record.offset, header = ?record.decision_part, "event with an unreadable decision part; taken as complete");
                    }
                    if !apply_logged::<D>(&mut state, &event, part)? {
                        skipped += 1;
                    } else if event.version == 1 {
                        state.aggregate_mut(&event.aggregate_id)?.first_offset = Some(record.offset);
                    }
                }
                Read::Undecodable { error, envelope } => {
                    m::event_undecodable(topic, &self.group_id, error.kind());
                    match envelope {
                        Some(metadata) => {
                            tracing::error!(
                                topic, partition, offset = record.offset, %error, aggregate_id = %metadata.aggregate_id, version = metadata.version,
                                "undecodable event in the log; its aggregate goes on from the version after it, without its effect"
                            );
                            if skip_logged::<D>(&mut state, &metadata)? && metadata.version == 1 {
                                state.aggregate_mut(&metadata.aggregate_id)?.first_offset = Some(record.offset);
                            }
                        }
                        None => {
                            tracing::error!(topic, partition, offset = record.offset, %error, "unreadable record in the event log (no envelope); not part of any aggregate")
                        }
                    }
                    skipped += 1;
                }
            }
        }
        let rejections = rejections_topic(<D::Stream as Stream>::NAME);
        let (refusals, rejections_end) = read_to_end(reader, rejections.clone(), partition, state.rejections_end).await?;
        state.rejections_end = rejections_end;
        for record in &refusals {
            match record.value.as_deref().and_then(refused_command_id) {
                Some(command_id) => state.remember_refusal(&command_id),
                None => tracing::warn!(topic = %rejections, partition, offset = record.offset, "rejection record without a command id; skipped"),
            }
        }
        for (aggregate_id, partial) in &state.partial {
            tracing::warn!(
                topic,
                partition,
                %aggregate_id,
                command_id = %partial.command_id,
                persisted = partial.persisted.len(),
                of = partial.of,
                "the log holds only part of a decision; its command completes it when redelivered"
            );
        }
        tracing::info!(
            topic,
            partition,
            snapshot = snapshot.as_ref().map(|(id, _)| id.as_str()),
            from_snapshot,
            snapshot_ms,
            events = records.len(),
            skipped,
            refusals = refusals.len(),
            partial_decisions = state.partial.len(),
            aggregates = state.aggregates.len(),
            warm = state.aggregates.warm_len(),
            last_command_offset = state.last_command_offset,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "rehydrated partition"
        );
        Ok((state, snapshot))
    }

    /// Handles one command record in its own span, which continues the trace of the record's
    /// `traceparent` (or starts one); returns the outbox places of the events it appended.
    async fn handle(
        &self,
        state: &mut PartitionState<D>,
        message: &OwnedMessage,
        partitions: i32,
        outbox: &mut Outbox<'_>,
    ) -> Result<Appended, LoopError> {
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
        state: &mut PartitionState<D>,
        message: &OwnedMessage,
        partitions: i32,
        outbox: &mut Outbox<'_>,
        span: &tracing::Span,
    ) -> Result<Appended, LoopError> {
        let stream = <D::Stream as Stream>::NAME;
        let position = Position { topic: message.topic(), partition: message.partition(), offset: message.offset() };
        let bytes = message.payload().unwrap_or_default();
        let Classified { command_id, command, route } = match classify::<D::Stream>(position, bytes, partitions, &state.handled_commands) {
            Ok(classified) => classified,
            Err(Unroutable { kind, reason }) => {
                dead_letter(outbox, message, kind, &reason, &[])?;
                tracing::warn!(source = message.topic(), partition = message.partition(), offset = message.offset(), kind, %reason, "command dead-lettered");
                span.record("outcome", "dead_lettered");
                m::command_handled(stream, kind, Outcome::DeadLettered);
                return Ok(Appended::default());
            }
        };
        let command_type = command.command_type();
        let aggregate_id = command.aggregate_id();
        span.record("command_type", command_type);
        span.record("aggregate_id", aggregate_id);
        span.record("command_id", command_id.as_str());
        match route {
            Route::Duplicate => {
                tracing::debug!(%command_id, "duplicate command ignored");
                span.record("outcome", "duplicate");
                m::command_handled(stream, command_type, Outcome::Duplicate);
                Ok(Appended::default())
            }
            Route::Forward { owner, pinned } => {
                let forwarded_from = format!("{}/{}", position.partition, position.offset);
                outbox.send(Outgoing {
                    topic: message.topic(),
                    partition: Some(owner),
                    key: aggregate_id,
                    payload: &pinned,
                    headers: headers_without(message, &["forwarded_from"])
                        .insert(rdkafka::message::Header { key: "forwarded_from", value: Some(forwarded_from.as_bytes()) }),
                })?;
                tracing::debug!(%command_id, from = position.partition, to = owner, "command forwarded to its partition");
                span.record("outcome", "forwarded");
                m::command_handled(stream, command_type, Outcome::Forwarded);
                Ok(Appended::default())
            }
            Route::Decide => self.decide(state, message, &command_id, &command, outbox, span).await,
        }
    }

    /// Decides a command of this partition's own and puts the outcome in the outbox: its
    /// events, its refusal or (invalid) its dead letter.
    async fn decide(
        &self,
        state: &mut PartitionState<D>,
        message: &OwnedMessage,
        command_id: &str,
        command: &Command<D>,
        outbox: &mut Outbox<'_>,
        span: &tracing::Span,
    ) -> Result<Appended, LoopError> {
        let stream = <D::Stream as Stream>::NAME;
        let (command_type, aggregate_id) = (command.command_type(), command.aggregate_id());
        let decided_at = Instant::now();
        let decision =
            tracing::info_span!("decide", command_type, aggregate_id).in_scope(|| decide(&*self.decider, state, aggregate_id, command_id, command));
        m::decision_took(stream, decided_at.elapsed());
        match decision {
            Ok(decision) => {
                match decision.basis {
                    Basis::Current => {}
                    Basis::Completion { persisted } => {
                        tracing::warn!(%command_id, persisted, of = decision.of, "completing a decision the log held only part of")
                    }
                    Basis::Redecided { persisted } => tracing::warn!(
                        %command_id,
                        persisted,
                        "the log holds part of this command's decision, but deciding it again came out differently; decided anew on the current state"
                    ),
                }
                let causation = Causation {
                    command_id: command_id.to_string(),
                    correlation_id: header(message, "correlation_id").unwrap_or_else(|| command_id.to_string()),
                    causation_id: header(message, "causation_id").unwrap_or_else(|| command_id.to_string()),
                    command_offset: message.offset(),
                    occurred_at: now_millis(),
                };
                let parts: Vec<Option<String>> = (0..decision.events.len()).map(|i| decision.part(i).header()).collect();
                let events = stamp::<D>(state.aggregate_mut(aggregate_id)?, aggregate_id, decision.events, &causation, || Uuid::new_v4().to_string());
                let mut appended = Vec::with_capacity(events.len());
                for (event, part) in events.iter().zip(&parts) {
                    let bytes = self.codec.encode(event).await?;
                    let place = outbox.send(Outgoing {
                        topic: <D::Stream as Stream>::EVENTS_TOPIC,
                        partition: Some(message.partition()),
                        key: aggregate_id,
                        payload: &bytes,
                        // The ids of the command, its correlation and causation are in the
                        // event's Avro envelope; headers repeat only what a reader needs before
                        // decoding it.
                        headers: telemetry::with_trace(
                            match part {
                                Some(part) => headers(&[("event_type", event.payload.event_type()), (DECISION_PART_HEADER, part.as_str())]),
                                None => headers(&[("event_type", event.payload.event_type())]),
                            },
                            span,
                        ),
                    })?;
                    m::event_appended(stream, event.payload.event_type());
                    appended.push(AppendedEvent { place, digest: digest(&bytes), first_of: (event.version == 1).then(|| aggregate_id.to_string()) });
                }
                state.handled_commands.insert(command_id.to_string());
                span.record("outcome", "accepted");
                m::command_handled(stream, command_type, Outcome::Accepted);
                tracing::debug!(events = appended.len(), "command accepted");
                Ok(Appended { events: appended, refusal: None })
            }
            Err(Undecided::Unreadable(error)) => Err(error.into()),
            Err(Undecided::Rejected(Rejection::Invalid(reason))) => {
                dead_letter(outbox, message, "invalid", &reason, &[])?;
                tracing::warn!(source = message.topic(), partition = message.partition(), offset = message.offset(), %reason, "command dead-lettered");
                span.record("outcome", "dead_lettered");
                m::command_handled(stream, command_type, Outcome::DeadLettered);
                Ok(Appended::default())
            }
            Err(Undecided::Rejected(Rejection::Refused(reason))) => {
                let bytes = message.payload().unwrap_or_default();
                let record = rejection_record(command_id, command_type, aggregate_id, &reason, bytes, now_millis());
                let place = outbox.send(Outgoing {
                    topic: &rejections_topic(stream),
                    partition: Some(message.partition()),
                    key: aggregate_id,
                    payload: record.as_bytes(),
                    headers: telemetry::with_trace(headers(&[("command_id", command_id), ("reason", &reason)]), span),
                })?;
                state.remember_refusal(command_id);
                span.record("outcome", "rejected");
                m::command_handled(stream, command_type, Outcome::Rejected);
                tracing::info!(%command_id, command_type, %reason, "command rejected");
                Ok(Appended { events: vec![], refusal: Some(place) })
            }
        }
    }
}

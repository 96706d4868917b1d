//! Deadlines: no aggregate waits forever for another service's reply. A [`Deadlines`] says
//! which step an aggregate's state waits in and how long it may wait there; this loop follows
//! the aggregate's own events, and when a wait outlives its limit it puts the
//! [`Deadlines::timed_out`] command on the stream's own command topic, where the aggregate
//! decides it like any other command (one that left the step meanwhile makes it a no-op).
//!
//! Nothing here lives only in memory:
//! * a wait begins with the event that put the aggregate into its step, so its deadline is that
//!   event's `occurred_at` plus the limit, the same on every member and after every restart;
//! * a consumer group splits the event partitions: only the member that owns partition p fires
//!   p's deadlines, and on (re)assignment it folds p from offset 0 to its end first, so a
//!   deadline that fell due while no member ran fires at once;
//! * a fired deadline's command id is derived from the aggregate and the version of the event
//!   that began the wait, so firing it again (after a restart, or by the former owner during a
//!   rebalance) is a duplicate the command processor ignores.
//!
//! An aggregate that is [finished](Deadlines::finished) (past every wait for good) is not kept
//! at all: the sagas that ended leave the loop's memory. What still comes for one is not taken
//! for a new aggregate's history, since only a first event (version 1) starts a history here:
//! after a rebuild every aggregate that is not finished is known (restored from the snapshot
//! or folded from its first event), so an unknown aggregate's later event is a finished one's.
use super::{BATCH_LINGER, LoopError, MAX_BATCH, pause::wait_while_paused_fetching};
use crate::{
    decider::Decider,
    history::HistoryTip,
    kafka::{
        self, EventCodec, Pace, Parking, Read,
        consume::{GroupConsumer, Outbox, Outgoing, batch_after, by_partition, dead_letter, store_batch_offsets},
        event_log::{RawRecord, read_records, read_to_end},
        headers, partition_for,
    },
    observe::{lag::LagReporter, metrics as m},
    shared::{COMMAND_ID_NAMESPACE, LoopKind, now_millis},
    snapshot::{Entry, SnapshotStore},
};
use contracts::{CommandEnvelope, EventEnvelope, EventMetadata, Stream};
use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
    message::OwnedMessage,
};
use std::{
    collections::{BTreeSet, HashMap, HashSet},
    fmt::Debug,
    sync::Arc,
    time::{Duration, Instant},
};
use uuid::Uuid;

type StreamOf<T> = <<T as Deadlines>::Decider as Decider>::Stream;
type StateOf<T> = <<T as Deadlines>::Decider as Decider>::State;
type EventOf<T> = <StreamOf<T> as Stream>::Event;
type CommandOf<T> = <StreamOf<T> as Stream>::Command;

/// Longest the loop waits for events before it looks at its assignment again: a member that was
/// just given a partition must rebuild its deadlines even when no event comes.
const ASSIGNMENT_CHECK: Duration = Duration::from_secs(1);

/// How long an aggregate may wait in each step, and what it is told when a wait runs out. Pure,
/// like a policy: no clock, no I/O; the runtime keeps the time.
pub trait Deadlines: Send + Sync + 'static {
    /// The aggregate whose waits these are: its events are folded with its `evolve`, and the
    /// timeout commands go to its command topic (a service times out only its own aggregate).
    type Decider: Decider;
    /// What an aggregate can wait for. A wait is one stretch in the same step, however many
    /// events come meanwhile; its clock runs from the event that began it.
    type Step: Copy + Eq + Debug + Send + Sync + 'static;
    /// Stable name: part of the consumer group id and of every derived command id.
    const NAME: &'static str;

    /// The step an aggregate in `state` waits in and how long it may wait there, or `None`.
    fn waiting(&self, state: &StateOf<Self>) -> Option<(Self::Step, Duration)>;

    /// Whether an aggregate in `state` is done with waiting for good: no later event can put it
    /// in a step again. The loop then keeps only its id, neither its state nor its history, so
    /// the sagas that ended leave its memory. By default none is (every state is kept).
    fn finished(&self, _state: &StateOf<Self>) -> bool {
        false
    }

    /// The command telling aggregate `aggregate_id` that its wait in `step`, which may last
    /// `limit`, has run out.
    fn timed_out(&self, aggregate_id: &str, step: Self::Step, limit: Duration) -> CommandOf<Self>;
}

/// The id of the timeout command of the wait that began with version `began_at_version` of
/// `aggregate_id`: the same however often, and by whichever member, the deadline fires.
pub fn command_id_for_deadline(aggregate_id: &str, deadlines: &str, began_at_version: i64) -> String {
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, format!("deadline/{aggregate_id}/{deadlines}/{began_at_version}").as_bytes()).to_string()
}

/// A wait an aggregate is in.
#[derive(Debug, Clone, PartialEq)]
struct Wait<Step> {
    step: Step,
    limit: Duration,
    /// The event that began the wait: its version names the wait (the command id), its ids go
    /// on the command's headers, its offset names it in errors.
    began_at_version: i64,
    began_with_event: String,
    began_at_offset: i64,
    correlation_id: String,
    due_ms: i64,
}

/// An aggregate that may wait: its accepted history, its state, its wait.
struct Live<T: Deadlines> {
    tip: HistoryTip,
    state: StateOf<T>,
    wait: Option<Wait<T::Step>>,
}

impl<T: Deadlines> Default for Live<T> {
    fn default() -> Self {
        Live { tip: HistoryTip::default(), state: Default::default(), wait: None }
    }
}

/// A wait that ran out: the command to produce, and what caused it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Expired<C> {
    pub partition: i32,
    pub aggregate_id: String,
    pub command_id: String,
    pub command: C,
    pub causation_id: String,
    pub correlation_id: String,
    pub began_at_offset: i64,
    pub overdue_ms: i64,
}

/// The waits of the partitions a member owns, derived from their events alone.
pub(crate) struct Schedule<T: Deadlines> {
    deadlines: Arc<T>,
    /// The aggregates that are not finished.
    aggregates: HashMap<(i32, String), Live<T>>,
    /// The waits that have not run out yet, soonest first: (due, partition, aggregate).
    pending: BTreeSet<(i64, i32, String)>,
}

impl<T: Deadlines> Schedule<T> {
    pub fn new(deadlines: Arc<T>) -> Self {
        Schedule { deadlines, aggregates: HashMap::new(), pending: BTreeSet::new() }
    }

    /// Folds in one event, read at `offset` of `partition`. Only an event that extends its
    /// aggregate's accepted history counts (the version rule): duplicates and a fenced-off
    /// writer's events change nothing, and nothing changes a finished aggregate. Returns whether
    /// it counted.
    pub fn apply(&mut self, partition: i32, offset: i64, event: &EventEnvelope<EventOf<T>>) -> bool {
        let metadata = event.metadata();
        let key = (partition, event.aggregate_id.clone());
        let Some(live) = Self::tracked(&mut self.aggregates, &key, &metadata) else { return false };
        if !live.tip.accepts(&metadata) {
            return false;
        }
        live.tip.advance(&metadata);
        live.state = <T::Decider as Decider>::evolve(std::mem::take(&mut live.state), &event.payload);
        let waiting = self.deadlines.waiting(&live.state);
        if live.wait.as_ref().map(|wait| wait.step) != waiting.map(|(step, _)| step) {
            if let Some(ended) = live.wait.take() {
                self.pending.remove(&(ended.due_ms, partition, event.aggregate_id.clone()));
            }
            if let Some((step, limit)) = waiting {
                let due_ms = event.occurred_at.saturating_add(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX));
                live.wait = Some(Wait {
                    step,
                    limit,
                    began_at_version: event.version,
                    began_with_event: event.event_id.clone(),
                    began_at_offset: offset,
                    correlation_id: event.correlation_id.clone(),
                    due_ms,
                });
                self.pending.insert((due_ms, partition, event.aggregate_id.clone()));
            }
        }
        if waiting.is_none() && self.deadlines.finished(&live.state) {
            self.aggregates.remove(&key);
        }
        true
    }

    /// The aggregate an event is for, if it is tracked or the event begins its history.
    fn tracked<'a>(aggregates: &'a mut HashMap<(i32, String), Live<T>>, key: &(i32, String), event: &EventMetadata) -> Option<&'a mut Live<T>> {
        if event.version == 1 { Some(aggregates.entry(key.clone()).or_default()) } else { aggregates.get_mut(key) }
    }

    /// Counts an event that does not decode (its envelope read alone) in its aggregate's
    /// history, without changing its state or its wait, so the aggregate's later events apply.
    pub fn skip(&mut self, partition: i32, metadata: &EventMetadata) {
        if let Some(live) = Self::tracked(&mut self.aggregates, &(partition, metadata.aggregate_id.clone()), metadata)
            && live.tip.accepts(metadata)
        {
            live.tip.advance(metadata);
        }
    }

    /// Takes the waits due at `now_ms`. Each is taken once: the aggregate's next event ends it
    /// or, if the aggregate stays in the step, leaves it fired.
    pub fn take_expired(&mut self, now_ms: i64) -> Vec<Expired<CommandOf<T>>> {
        let mut expired = Vec::new();
        while let Some((due_ms, _, _)) = self.pending.first()
            && *due_ms <= now_ms
        {
            let Some((due_ms, partition, aggregate_id)) = self.pending.pop_first() else { break };
            let Some(live) = self.aggregates.get(&(partition, aggregate_id.clone())) else { continue };
            let Some(wait) = live.wait.as_ref() else { continue };
            expired.push(Expired {
                partition,
                command_id: command_id_for_deadline(&aggregate_id, T::NAME, wait.began_at_version),
                command: self.deadlines.timed_out(&aggregate_id, wait.step, wait.limit),
                causation_id: wait.began_with_event.clone(),
                correlation_id: wait.correlation_id.clone(),
                began_at_offset: wait.began_at_offset,
                overdue_ms: now_ms - due_ms,
                aggregate_id,
            });
        }
        expired
    }

    /// When the soonest wait runs out (epoch milliseconds).
    pub fn next_due(&self) -> Option<i64> {
        self.pending.first().map(|(due_ms, _, _)| *due_ms)
    }

    /// Starts `partition` from its writer's snapshot: an aggregate that waits in no step takes
    /// its state and tip from it; one that waits is left out, to be folded from its first event
    /// (the snapshot does not say which event began the wait, and the wait's id and due time
    /// come from that event). Returns those left out and the offset to read the log from for
    /// them: the earliest of their first events, `None` when one of them has no known first
    /// offset (read from the start then).
    pub fn restore(&mut self, partition: i32, entries: Vec<Entry<StateOf<T>>>) -> (HashSet<String>, Option<i64>) {
        let mut waiting = HashSet::new();
        let mut from: Option<i64> = Some(i64::MAX);
        for entry in entries {
            if self.deadlines.waiting(&entry.state).is_some() {
                from = from.zip(entry.first_offset).map(|(earliest, first)| earliest.min(first));
                waiting.insert(entry.id);
                continue;
            }
            if !self.deadlines.finished(&entry.state) {
                let tip = HistoryTip { version: entry.version, event_id: entry.event_id };
                self.aggregates.insert((partition, entry.id), Live { tip, state: entry.state, wait: None });
            }
        }
        (waiting, from)
    }

    /// Forgets a partition (it changed hands): its next owner rebuilds it from the log.
    pub fn forget(&mut self, partition: i32) {
        self.aggregates.retain(|(p, _), _| *p != partition);
        self.pending.retain(|(_, p, _)| *p != partition);
    }

    /// How many waits of `partition` have not run out.
    pub fn pending_in(&self, partition: i32) -> usize {
        self.pending.iter().filter(|(_, p, _)| *p == partition).count()
    }
}

/// The loop that fires a [`Deadlines`].
pub struct DeadlineWatch<T: Deadlines> {
    deadlines: Arc<T>,
    codec: Arc<EventCodec<StreamOf<T>>>,
    snapshots: Arc<SnapshotStore>,
    brokers: String,
    group_id: String,
}

impl<T: Deadlines> DeadlineWatch<T> {
    pub fn new(deadlines: T, codec: Arc<EventCodec<StreamOf<T>>>, snapshots: Arc<SnapshotStore>, brokers: &str, service: &str) -> Self {
        DeadlineWatch { deadlines: Arc::new(deadlines), codec, snapshots, brokers: brokers.to_string(), group_id: format!("{service}.{}", T::NAME) }
    }

    /// Runs until an error; the caller restarts it, which rebuilds every wait from the log.
    pub async fn run(&self) -> Result<(), LoopError> {
        let events_topic = StreamOf::<T>::EVENTS_TOPIC;
        // The deadlines' own timer fires them on time; the events only begin and end waits, and
        // one noticed late at most fires a timeout the aggregate ignores: a background pace.
        let consumer = Arc::new(kafka::group_consumer(&self.brokers, &self.group_id, Pace::Background).await?);
        let producer = kafka::producer(&self.brokers)?;
        let reader = Arc::new(kafka::reader(&self.brokers)?);
        let _lag = LagReporter::for_policy(self.group_id.clone(), &self.brokers, consumer.clone());
        let command_partitions = super::partition_count(&consumer, StreamOf::<T>::COMMANDS_TOPIC).await?;
        consumer.subscribe(&[events_topic])?;
        tracing::info!(topic = events_topic, group = %self.group_id, "deadlines started");
        let mut schedule = Schedule::new(self.deadlines.clone());
        // Per owned partition, the offset its rebuild read up to: earlier records are folded in.
        let mut owned: HashMap<i32, i64> = HashMap::new();
        let mut parking = Parking::new(Pace::Background, &self.group_id);
        loop {
            self.follow_assignment(&consumer, &reader, &mut schedule, &mut owned).await?;
            let batch = next_events(&consumer, &mut parking, schedule.next_due()).await?;
            // A pause holds what arrives, and no deadline fires meanwhile.
            wait_while_paused_fetching(LoopKind::Policy, &mut parking, &consumer).await?;
            let started = Instant::now();
            // The batch's `recv`s may have served a rebalance.
            self.follow_assignment(&consumer, &reader, &mut schedule, &mut owned).await?;
            let mut groups = by_partition(batch);
            groups.retain(|(_, partition), _| owned.contains_key(partition));
            let mut outbox = Outbox::new(&producer);
            for ((_, partition), messages) in &groups {
                let Some(rebuilt_until) = owned.get(partition).copied() else { continue };
                for message in messages.iter().filter(|message| message.offset() >= rebuilt_until) {
                    self.follow(&mut schedule, *partition, message, &mut outbox).await?;
                }
            }
            let expired = schedule.take_expired(now_millis());
            self.fire(&mut outbox, &expired, command_partitions)?;
            outbox.flush().await?;
            if !groups.is_empty() {
                store_batch_offsets(&consumer, &groups)?;
            }
            if !groups.is_empty() || !expired.is_empty() {
                m::batch_took(LoopKind::Policy, &self.group_id, started.elapsed());
            }
        }
    }

    /// Drops the partitions that changed hands and rebuilds those this member owns now.
    async fn follow_assignment(
        &self,
        consumer: &GroupConsumer,
        reader: &Arc<BaseConsumer>,
        schedule: &mut Schedule<T>,
        owned: &mut HashMap<i32, i64>,
    ) -> Result<(), LoopError> {
        let changed = consumer.context().take_changed();
        if changed.is_empty() {
            return Ok(());
        }
        let events_topic = StreamOf::<T>::EVENTS_TOPIC;
        let assigned: HashSet<i32> =
            consumer.assignment()?.elements().iter().filter(|element| element.topic() == events_topic).map(|element| element.partition()).collect();
        for (_, partition) in changed {
            schedule.forget(partition);
            owned.remove(&partition);
            if assigned.contains(&partition) {
                let rebuilt_until = self.rebuild(reader.clone(), partition, schedule).await?;
                owned.insert(partition, rebuilt_until);
            }
        }
        Ok(())
    }

    /// Folds partition `partition` to its current end, from the writer's newest snapshot that
    /// matches the log (and, for the aggregates waiting then, from their first events), or from
    /// offset 0; returns that end.
    async fn rebuild(&self, reader: Arc<BaseConsumer>, partition: i32, schedule: &mut Schedule<T>) -> Result<i64, LoopError> {
        let started = Instant::now();
        let topic = StreamOf::<T>::EVENTS_TOPIC;
        let mut folded = 0usize;
        let mut from = 0;
        if let Some((covers, contents, _)) = self.snapshots.usable::<StateOf<T>>(reader.clone(), topic, partition, None).await {
            let covers = covers.offset;
            let (waiting, earliest) = schedule.restore(partition, contents.aggregates);
            // The waiting aggregates' histories before the snapshot, and nothing else of it.
            let start = earliest.unwrap_or(0).min(covers);
            let (records, _) = read_records(reader.clone(), topic.to_string(), partition, start, Some(covers)).await?;
            for record in &records {
                folded += self.fold(schedule, partition, record, |aggregate_id| waiting.contains(aggregate_id)).await? as usize;
            }
            tracing::info!(
                topic,
                partition,
                covers,
                waiting = waiting.len(),
                from = start,
                deadlines = T::NAME,
                "deadlines restored from a snapshot"
            );
            from = covers;
        }
        let (records, end) = read_to_end(reader, topic.to_string(), partition, from).await?;
        for record in &records {
            folded += self.fold(schedule, partition, record, |_| true).await? as usize;
        }
        tracing::info!(
            topic,
            partition,
            from,
            events = folded,
            waiting = schedule.pending_in(partition),
            took_ms = started.elapsed().as_millis() as u64,
            deadlines = T::NAME,
            "deadlines rebuilt from the log"
        );
        super::heap::rebuilt();
        Ok(end)
    }

    /// Folds one logged record into the schedule if its aggregate is `wanted`; says whether it
    /// did. An undecodable event was dead-lettered when it was new; here it only keeps its place.
    async fn fold(&self, schedule: &mut Schedule<T>, partition: i32, record: &RawRecord, wanted: impl Fn(&str) -> bool) -> Result<bool, LoopError> {
        let Some(bytes) = &record.value else { return Ok(false) };
        match self.codec.read(bytes).await? {
            Read::Event(event) if wanted(&event.aggregate_id) => Ok(schedule.apply(partition, record.offset, &event)),
            Read::Undecodable { envelope: Some(metadata), .. } if wanted(&metadata.aggregate_id) => {
                schedule.skip(partition, &metadata);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Folds in a new event. One that does not decode is dead-lettered (with this loop as its
    /// reader) and keeps its place in its aggregate's history; a registry that cannot be reached
    /// ends the run before anything of the batch is committed, and the supervisor retries.
    async fn follow(&self, schedule: &mut Schedule<T>, partition: i32, message: &OwnedMessage, outbox: &mut Outbox<'_>) -> Result<(), LoopError> {
        let Some(bytes) = message.payload() else { return Ok(()) };
        match self.codec.read(bytes).await? {
            Read::Event(event) => {
                schedule.apply(partition, message.offset(), &event);
            }
            Read::Undecodable { error, envelope } => {
                let topic = StreamOf::<T>::EVENTS_TOPIC;
                m::event_undecodable(topic, &self.group_id, error.kind());
                tracing::error!(
                    topic, partition, offset = message.offset(), %error, deadlines = T::NAME,
                    aggregate_id = envelope.as_ref().map(|e| e.aggregate_id.as_str()), version = envelope.as_ref().map(|e| e.version),
                    "undecodable event dead-lettered; the aggregate's later events still apply"
                );
                if let Some(metadata) = &envelope {
                    schedule.skip(partition, metadata);
                }
                dead_letter(outbox, message, error.kind(), &error.to_string(), &[("dlq.reader", &self.group_id)])?;
            }
        }
        Ok(())
    }

    /// Queues the timeout commands for the stream's command topic, on the partition that owns
    /// each aggregate; the batch counts as done once the outbox has every acknowledgement.
    fn fire(&self, outbox: &mut Outbox<'_>, expired: &[Expired<CommandOf<T>>], command_partitions: i32) -> Result<(), LoopError> {
        let commands_topic = StreamOf::<T>::COMMANDS_TOPIC;
        for timeout in expired {
            let envelope = CommandEnvelope { command_id: Some(timeout.command_id.clone()), command: timeout.command.clone() };
            let json = serde_json::to_vec(&envelope).map_err(|error| LoopError::Handler {
                name: T::NAME.to_string(),
                topic: StreamOf::<T>::EVENTS_TOPIC.to_string(),
                partition: timeout.partition,
                offset: timeout.began_at_offset,
                error: Box::new(error),
            })?;
            outbox.send(Outgoing {
                topic: commands_topic,
                partition: Some(partition_for(&timeout.aggregate_id, command_partitions)),
                key: &timeout.aggregate_id,
                payload: &json,
                headers: headers(&[("correlation_id", &timeout.correlation_id), ("causation_id", &timeout.causation_id)]),
            })?;
            tracing::info!(
                aggregate_id = %timeout.aggregate_id,
                command_id = %timeout.command_id,
                overdue_ms = timeout.overdue_ms,
                deadlines = T::NAME,
                "deadline passed; timeout command queued"
            );
            m::deadline_fired(T::NAME);
        }
        Ok(())
    }
}

/// The next events of the stream, waiting no longer than until the soonest deadline (or
/// [`ASSIGNMENT_CHECK`]); empty when that came first. Waiting for the first record is
/// cancellation-safe (parked or not), so a wait cut short by the timer loses no record.
async fn next_events(consumer: &Arc<GroupConsumer>, parking: &mut Parking, next_due_ms: Option<i64>) -> Result<Vec<OwnedMessage>, LoopError> {
    let wait = next_due_ms
        .map(|due_ms| Duration::from_millis(u64::try_from(due_ms.saturating_sub(now_millis())).unwrap_or(0)))
        .map_or(ASSIGNMENT_CHECK, |until_due| until_due.min(ASSIGNMENT_CHECK));
    let first = tokio::select! {
        received = parking.next_record(consumer) => received?,
        () = tokio::time::sleep(wait) => return Ok(Vec::new()),
    };
    Ok(batch_after(consumer, first, MAX_BATCH, BATCH_LINGER).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Rejection;
    use contracts::stock::{Stock, StockCommand, StockEvent};

    /// A stock item that waits to be released once reserved, and for nothing otherwise; once
    /// shipped it is gone and waits for nothing ever again.
    struct Shelf;

    #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Held {
        #[default]
        Free,
        Reserved(String),
        Gone,
    }

    impl Decider for Shelf {
        type Stream = Stock;
        type State = Held;
        fn decide(&self, _: &Held, _: &StockCommand) -> Result<Vec<StockEvent>, Rejection> {
            Ok(vec![])
        }
        fn evolve(state: Held, event: &StockEvent) -> Held {
            match event {
                _ if state == Held::Gone => Held::Gone,
                StockEvent::StockReserved { order_id, .. } => Held::Reserved(order_id.clone()),
                StockEvent::StockReleased { .. } => Held::Free,
                StockEvent::StockShipped { .. } => Held::Gone,
                _ => state,
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Release;

    struct ReleaseDeadline(Duration);

    impl Deadlines for ReleaseDeadline {
        type Decider = Shelf;
        type Step = Release;
        const NAME: &'static str = "release";
        fn waiting(&self, state: &Held) -> Option<(Release, Duration)> {
            matches!(state, Held::Reserved(_)).then_some((Release, self.0))
        }
        fn timed_out(&self, sku: &str, _: Release, _: Duration) -> StockCommand {
            StockCommand::ReleaseStock { sku: sku.into(), order_id: "timed-out".into() }
        }
        fn finished(&self, state: &Held) -> bool {
            *state == Held::Gone
        }
    }

    const SECOND: i64 = 1_000;

    fn schedule() -> Schedule<ReleaseDeadline> {
        Schedule::new(Arc::new(ReleaseDeadline(Duration::from_secs(10))))
    }

    /// Version `version` of `sku`'s history, occurring at `at_ms`.
    fn event(sku: &str, version: i64, at_ms: i64, payload: StockEvent) -> EventEnvelope<StockEvent> {
        EventEnvelope {
            event_id: format!("{sku}-e{version}"),
            aggregate_id: sku.into(),
            version,
            previous_event_id: (version > 1).then(|| format!("{sku}-e{}", version - 1)),
            occurred_at: at_ms,
            correlation_id: format!("corr-{sku}"),
            causation_id: "cause".into(),
            command_id: format!("cmd-{version}"),
            command_offset: 0,
            payload,
        }
    }

    fn restocked() -> StockEvent {
        StockEvent::StockRestocked { quantity: 1 }
    }
    fn reserved() -> StockEvent {
        StockEvent::StockReserved { order_id: "o-1".into(), quantity: 1 }
    }
    fn released() -> StockEvent {
        StockEvent::StockReleased { order_id: "o-1".into(), quantity: 1 }
    }
    fn shipped() -> StockEvent {
        StockEvent::StockShipped { order_id: "o-1".into(), quantity: 1 }
    }

    fn holds_state(schedule: &Schedule<ReleaseDeadline>, sku: &str) -> bool {
        schedule.aggregates.contains_key(&(0, sku.to_string()))
    }

    #[test]
    fn a_finished_aggregate_keeps_neither_its_state_nor_its_history() {
        let mut watched = schedule();
        watched.apply(0, 0, &event("sku-1", 1, 0, reserved()));
        assert!(holds_state(&watched, "sku-1"));
        assert!(watched.apply(0, 1, &event("sku-1", 2, SECOND, shipped())));
        assert!(!holds_state(&watched, "sku-1"), "shipped: gone for good, its state is dropped");
        assert_eq!(watched.next_due(), None, "the wait ended with it");
        assert!(!watched.apply(0, 2, &event("sku-1", 3, 2 * SECOND, reserved())), "nothing counts for it any more");
        assert_eq!(watched.next_due(), None, "it never waits again");
        assert!(!holds_state(&watched, "sku-1"));
        assert!(!watched.apply(0, 3, &event("sku-7", 4, 2 * SECOND, reserved())), "an unknown aggregate's later event is a finished one's");
        assert!(watched.aggregates.is_empty(), "nothing is kept for a finished aggregate");
        let entry = |id: &str, state: Held| Entry { id: id.into(), version: 2, event_id: Some(format!("{id}-e2")), first_offset: Some(0), state };
        let mut restored = schedule();
        restored.restore(0, vec![entry("sku-1", Held::Gone), entry("sku-2", Held::Free)]);
        assert!(!holds_state(&restored, "sku-1"), "a finished aggregate of a snapshot leaves no state either");
        assert!(holds_state(&restored, "sku-2"));
        assert!(!restored.apply(0, 9, &event("sku-1", 3, 2 * SECOND, reserved())));
        assert_eq!(restored.next_due(), None);
        assert!(restored.apply(0, 9, &event("sku-2", 3, 2 * SECOND, reserved())), "sku-2's tip came from the snapshot");
        assert_eq!(restored.next_due(), Some(12 * SECOND));
    }

    #[test]
    fn a_wait_runs_out_its_limit_after_the_event_that_began_it_and_fires_once() {
        let mut schedule = schedule();
        schedule.apply(0, 0, &event("sku-1", 1, 0, restocked()));
        assert_eq!(schedule.next_due(), None, "a free item waits for nothing");
        schedule.apply(0, 1, &event("sku-1", 2, 5 * SECOND, reserved()));
        assert_eq!(schedule.next_due(), Some(15 * SECOND));
        assert!(schedule.take_expired(15 * SECOND - 1).is_empty(), "not due yet");
        let expired = schedule.take_expired(16 * SECOND);
        assert_eq!(
            expired,
            vec![Expired {
                partition: 0,
                aggregate_id: "sku-1".into(),
                command_id: command_id_for_deadline("sku-1", "release", 2),
                command: StockCommand::ReleaseStock { sku: "sku-1".into(), order_id: "timed-out".into() },
                causation_id: "sku-1-e2".into(),
                correlation_id: "corr-sku-1".into(),
                began_at_offset: 1,
                overdue_ms: SECOND,
            }]
        );
        assert!(schedule.take_expired(100 * SECOND).is_empty(), "fired once");
        assert_eq!(schedule.next_due(), None);
    }

    #[test]
    fn events_that_keep_the_step_keep_its_clock_and_one_that_leaves_it_ends_the_wait() {
        let mut schedule = schedule();
        schedule.apply(0, 0, &event("sku-1", 1, 0, reserved()));
        schedule.apply(0, 1, &event("sku-1", 2, 8 * SECOND, restocked()));
        assert_eq!(schedule.next_due(), Some(10 * SECOND), "still the wait that began at 0");
        schedule.apply(0, 2, &event("sku-1", 3, 9 * SECOND, released()));
        assert_eq!(schedule.next_due(), None);
        assert!(schedule.take_expired(60 * SECOND).is_empty(), "the reply came in time");
        // A new wait is a new command: another version began it.
        schedule.apply(0, 3, &event("sku-1", 4, 20 * SECOND, reserved()));
        let expired = schedule.take_expired(30 * SECOND);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].command_id, command_id_for_deadline("sku-1", "release", 4));
    }

    #[test]
    fn a_restored_schedule_fires_what_the_whole_log_fires() {
        // sku-1 waits (reserved at offset 1), sku-2 is free, sku-3 waits with no known start.
        let log = [
            (0, event("sku-1", 1, 0, restocked())),
            (1, event("sku-1", 2, SECOND, reserved())),
            (2, event("sku-2", 1, 2 * SECOND, reserved())),
            (3, event("sku-2", 2, 3 * SECOND, released())),
        ];
        let mut whole = schedule();
        for (offset, e) in &log {
            whole.apply(0, *offset, e);
        }
        let entry = |id: &str, version: i64, first_offset: Option<i64>, state: Held| Entry {
            id: id.into(),
            version,
            event_id: Some(format!("{id}-e{version}")),
            first_offset,
            state,
        };
        let mut restored = schedule();
        let (waiting, from) =
            restored.restore(0, vec![entry("sku-1", 2, Some(0), Held::Reserved("o-1".into())), entry("sku-2", 2, Some(2), Held::Free)]);
        assert_eq!((waiting, from), (HashSet::from(["sku-1".to_string()]), Some(0)));
        for (offset, e) in log.iter().filter(|(_, e)| e.aggregate_id == "sku-1") {
            restored.apply(0, *offset, e);
        }
        assert!(!restored.apply(0, 3, &log[3].1), "sku-2's history came from the snapshot");
        assert_eq!(restored.take_expired(60 * SECOND), whole.take_expired(60 * SECOND));
        let (_, from) = schedule().restore(0, vec![entry("sku-3", 1, None, Held::Reserved("o-3".into()))]);
        assert_eq!(from, None, "a waiting aggregate without a first offset: read from the start");
    }

    #[test]
    fn a_rebuild_from_the_log_fires_the_same_command_as_the_first_run() {
        let history = [event("sku-1", 1, 0, restocked()), event("sku-1", 2, SECOND, reserved())];
        let fire = || {
            let mut schedule = schedule();
            for (offset, e) in history.iter().enumerate() {
                schedule.apply(3, offset as i64, e);
            }
            schedule.take_expired(60 * SECOND)
        };
        let (first_run, after_restart) = (fire(), fire());
        assert_eq!(first_run.len(), 1);
        assert_eq!(first_run, after_restart, "same id, so the command processor sees a duplicate");
    }

    #[test]
    fn duplicates_and_a_fenced_writers_events_change_no_wait() {
        let mut schedule = schedule();
        let began = event("sku-1", 1, 0, reserved());
        assert!(schedule.apply(0, 0, &began));
        assert!(!schedule.apply(0, 1, &began), "a duplicate");
        let mut zombie = event("sku-1", 2, SECOND, released());
        zombie.previous_event_id = Some("someone-else".into());
        assert!(!schedule.apply(0, 2, &zombie), "not the accepted history");
        assert_eq!(schedule.next_due(), Some(10 * SECOND));
    }

    #[test]
    fn an_undecodable_event_keeps_its_place_so_the_events_after_it_still_end_the_wait() {
        let mut schedule = schedule();
        schedule.apply(0, 0, &event("sku-1", 1, 0, reserved()));
        schedule.skip(0, &event("sku-1", 2, SECOND, restocked()).metadata());
        assert!(schedule.apply(0, 2, &event("sku-1", 3, 2 * SECOND, released())), "v3 follows the skipped v2");
        assert!(schedule.take_expired(60 * SECOND).is_empty());
    }

    #[test]
    fn the_soonest_wait_comes_first_and_a_forgotten_partition_fires_nothing() {
        let mut schedule = schedule();
        schedule.apply(0, 0, &event("late", 1, 5 * SECOND, reserved()));
        schedule.apply(1, 0, &event("early", 1, 0, reserved()));
        schedule.apply(2, 0, &event("lost", 1, 0, reserved()));
        assert_eq!(schedule.pending_in(2), 1);
        schedule.forget(2);
        assert_eq!(schedule.pending_in(2), 0);
        let fired: Vec<String> = schedule.take_expired(60 * SECOND).into_iter().map(|e| e.aggregate_id).collect();
        assert_eq!(fired, ["early", "late"]);
    }

    #[test]
    fn deadline_command_ids_name_the_wait() {
        assert_eq!(command_id_for_deadline("a", "d", 3), command_id_for_deadline("a", "d", 3));
        assert_ne!(command_id_for_deadline("a", "d", 3), command_id_for_deadline("a", "d", 4));
        assert_ne!(command_id_for_deadline("a", "d", 3), command_id_for_deadline("b", "d", 3));
        assert_ne!(command_id_for_deadline("a", "d", 3), crate::shared::command_id_for_reaction("a", "d", 3));
    }
}

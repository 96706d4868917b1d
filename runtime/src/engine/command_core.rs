//! The command processor's pure core: what the writer of a partition knows, what a command
//! record asks of it ([`classify`]), what a decision appends ([`decide`], [`stamp`]) and the
//! record of a refusal. No Kafka, no clock, no randomness of its own: the shell in
//! `command_processor` passes time and event ids in and does the I/O.
//!
//! A command id names one decision. A command counts as handled once its whole decision is in
//! the log: every event it appended, or its refusal on `<stream>.rejections`. Each event
//! record carries its place in its decision ([`Part`], header `decision_part`), so a decision
//! cut short by a crash (the first of two events persisted, not the second) is known on
//! rehydration; its redelivered command completes it with the events that are missing.
use super::aggregate_store::{AggregateStore, StoreError};
use crate::{
    decider::Decider,
    history::HistoryTip,
    shared::command_id_for_record,
    snapshot::{Contents, Covers, Cutter},
};
use contracts::{CommandEnvelope, CommandTarget, EventEnvelope, EventMetadata, Stream};
use std::collections::{HashMap, HashSet, VecDeque};

pub(crate) type Command<D> = <<D as Decider>::Stream as Stream>::Command;
pub(crate) type Event<D> = <<D as Decider>::Stream as Stream>::Event;

/// One aggregate as its writer knows it: the folded state and the tip of its history.
#[derive(Debug, Default)]
pub(crate) struct Aggregate<St> {
    pub state: St,
    pub tip: HistoryTip,
    /// Offset of its first event in the partition, when known: where a reader that needs the
    /// aggregate's whole history (the deadlines, for a wait that is still running) starts.
    pub first_offset: Option<i64>,
}

/// Where an event stands in the decision that appended it: event `index` (from 1) of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    pub index: u32,
    pub of: u32,
}

impl Part {
    /// Reads the `decision_part` header, `"<index>/<of>"` with `1 <= index <= of`.
    pub fn parse(text: &str) -> Option<Part> {
        let (index, of) = text.split_once('/')?;
        let part = Part { index: index.trim().parse().ok()?, of: of.trim().parse().ok()? };
        (1..=part.of).contains(&part.index).then_some(part)
    }

    pub fn is_last(self) -> bool {
        self.index == self.of
    }

    /// The `decision_part` header's value, for an event of a decision of several events only.
    /// A record without the header counts as a whole decision, and one header fewer is one
    /// storage write fewer per event on a broker that stores each header as a row (Nisshi).
    pub fn header(self) -> Option<String> {
        (self.of > 1).then(|| self.to_string())
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.of)
    }
}

/// A decision whose first events are in the log but not its last: what its command needs to
/// be completed when it is redelivered.
pub(crate) struct PartialDecision<D: Decider> {
    pub command_id: String,
    /// The aggregate's state before the decision's first event: what it was decided against.
    pub before: D::State,
    /// The events of the decision that are in the log, in order.
    pub persisted: Vec<Event<D>>,
    /// How many events the decision had.
    pub of: u32,
}

/// What the writer of one partition knows, rebuilt on every assignment from the partition's
/// newest snapshot (when it matches the log) and the log after it.
pub(crate) struct PartitionState<D: Decider> {
    pub aggregates: AggregateStore<D::State>,
    /// Commands whose decision is complete in the log: accepted (all their events) or refused.
    pub handled_commands: HandledCommands,
    /// Decisions cut short, by aggregate: their commands are not handled yet.
    pub partial: HashMap<String, PartialDecision<D>>,
    /// Highest command offset whose events are in the log (for the operator: where the
    /// previous writer got to).
    pub last_command_offset: i64,
    /// Event partition read up to here.
    pub log_end: i64,
    /// [`crate::snapshot::digest`] of the event record at `log_end - 1` (empty for an empty log).
    pub last_event_digest: String,
    /// `<stream>.rejections` of this partition read or appended up to here.
    pub rejections_end: i64,
    /// Events appended or read since the last snapshot this state was written to or read from.
    pub events_since_snapshot: u64,
    /// Aggregates that last snapshot held.
    pub aggregates_in_snapshot: u64,
}

impl<D: Decider> PartitionState<D> {
    pub fn empty() -> Self {
        PartitionState {
            aggregates: AggregateStore::default(),
            handled_commands: HandledCommands::default(),
            partial: HashMap::new(),
            last_command_offset: -1,
            log_end: 0,
            last_event_digest: String::new(),
            rejections_end: 0,
            events_since_snapshot: 0,
            aggregates_in_snapshot: 0,
        }
    }

    /// An empty state that keeps at most `warm` aggregates in memory.
    #[cfg(test)]
    pub fn empty_keeping_warm(warm: usize) -> Self {
        PartitionState { aggregates: AggregateStore::with_capacity(warm), ..PartitionState::empty() }
    }

    pub fn aggregate_mut(&mut self, aggregate_id: &str) -> Result<&mut Aggregate<D::State>, StoreError> {
        self.aggregates.get_or_default(aggregate_id)
    }

    /// A refusal of `command_id` (decided now, or read back from `<stream>.rejections`): the
    /// command is handled, and a redelivery of it is a duplicate, not a second decision.
    pub fn remember_refusal(&mut self, command_id: &str) {
        self.handled_commands.insert(command_id.to_string());
    }

    /// Whether a snapshot is due: enough events since the last one (never fewer than that one
    /// held aggregates, which bounds what snapshots write to about one state per event), and no
    /// decision cut short (a snapshot holds complete decisions only).
    pub fn snapshot_due(&self, every_events: u64) -> bool {
        every_events > 0 && self.partial.is_empty() && self.events_since_snapshot >= every_events.max(self.aggregates_in_snapshot)
    }

    /// A snapshot of this state is being written (or was read): the count starts again.
    pub fn snapshot_taken(&mut self) {
        self.events_since_snapshot = 0;
        self.aggregates_in_snapshot = self.aggregates.len() as u64;
    }

    /// The bodies of a snapshot of this state (see [`Cutter`]); aggregates that never had an
    /// event are left out.
    pub fn snapshot_bodies(&self) -> Result<Vec<String>, StoreError> {
        let mut cutter = Cutter::default();
        self.aggregates.cut_into(&mut cutter)?;
        for command_id in self.handled_commands.iter() {
            cutter.handled(command_id)?;
        }
        Ok(cutter.finish())
    }

    /// Where the logs stand, for a snapshot of this state.
    pub fn covers(&self) -> Covers {
        Covers {
            offset: self.log_end,
            digest: self.last_event_digest.clone(),
            rejections_offset: self.rejections_end,
            last_command_offset: self.last_command_offset,
        }
    }

    /// The state a snapshot holds, to go on from with the log after `covers`.
    pub fn from_snapshot(covers: &Covers, contents: Contents<D::State>) -> Result<Self, StoreError> {
        let mut state = PartitionState::empty();
        state.aggregates.restore(contents.aggregates)?;
        for command_id in contents.handled {
            state.handled_commands.insert(command_id);
        }
        state.last_command_offset = covers.last_command_offset;
        state.log_end = covers.offset;
        state.last_event_digest = covers.digest.clone();
        state.rejections_end = covers.rejections_offset;
        state.snapshot_taken();
        Ok(state)
    }
}

/// The ids of the commands a partition's writer has handled, the newest
/// `COMMAND_IDS_REMEMBERED` (default 100,000) of them, so that memory and snapshots do not grow
/// with every command ever handled. Redeliveries (an uncommitted batch, a policy's retry, a
/// client sending the same command id again) come soon after the original; a command older
/// than that is decided again, and deciders are idempotent on their own keys (an order placed
/// twice is refused as existing, a reservation made twice is not made again).
pub(crate) struct HandledCommands {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Default for HandledCommands {
    fn default() -> Self {
        let capacity = crate::shared::number_from_env("COMMAND_IDS_REMEMBERED", 100_000);
        HandledCommands::with_capacity(capacity)
    }
}

impl HandledCommands {
    pub fn with_capacity(capacity: usize) -> Self {
        HandledCommands { ids: HashSet::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    pub fn contains(&self, command_id: &str) -> bool {
        self.ids.contains(command_id)
    }

    pub fn insert(&mut self, command_id: String) {
        if self.ids.insert(command_id.clone()) {
            self.order.push_back(command_id);
            while self.order.len() > self.capacity {
                if let Some(oldest) = self.order.pop_front() {
                    self.ids.remove(&oldest);
                }
            }
        }
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }
}

/// Applies one logged event to a partition's state if it passes the version rule (what
/// rehydration does for every record); says whether it did. `part` is the event's place in its
/// decision (`None` for events written before decisions were numbered: complete by themselves).
pub(crate) fn apply_logged<D: Decider>(
    state: &mut PartitionState<D>,
    event: &EventEnvelope<Event<D>>,
    part: Option<Part>,
) -> Result<bool, StoreError> {
    let metadata = event.metadata();
    if !state.aggregate_mut(&event.aggregate_id)?.tip.accepts(&metadata) {
        return Ok(false);
    }
    let open = match state.partial.remove(&event.aggregate_id) {
        Some(open) if open.command_id == event.command_id => Some(open),
        // Another command's event on top of a decision cut short: that history is what the
        // log says now, and the earlier command stays as far as it got.
        Some(superseded) => {
            state.handled_commands.insert(superseded.command_id);
            None
        }
        None => None,
    };
    let aggregate = state.aggregates.get_or_default(&event.aggregate_id)?;
    match part {
        Some(part) if !part.is_last() => {
            let mut open = open.unwrap_or_else(|| PartialDecision {
                command_id: event.command_id.clone(),
                before: aggregate.state.clone(),
                persisted: Vec::new(),
                of: part.of,
            });
            open.persisted.push(event.payload.clone());
            state.partial.insert(event.aggregate_id.clone(), open);
        }
        _ => {
            state.handled_commands.insert(event.command_id.clone());
        }
    }
    aggregate.tip.advance(&metadata);
    aggregate.state = D::evolve(std::mem::take(&mut aggregate.state), &event.payload);
    state.last_command_offset = state.last_command_offset.max(event.command_offset);
    Ok(true)
}

/// Gives a logged event this writer cannot decode its place in its aggregate's history (what
/// rehydration does when only the envelope could be read): the tip moves past it, so the next
/// append extends the log instead of forking it, and the events after it apply. Its effect on
/// the state is unknown and left out; the record is on the event log's dead-letter topic for
/// an operator. Says whether it passed the version rule.
pub(crate) fn skip_logged<D: Decider>(state: &mut PartitionState<D>, metadata: &EventMetadata) -> Result<bool, StoreError> {
    let aggregate = state.aggregate_mut(&metadata.aggregate_id)?;
    if !aggregate.tip.accepts(metadata) {
        return Ok(false);
    }
    aggregate.tip.advance(metadata);
    // A decision cut short cannot be completed across an event whose payload is unknown.
    if let Some(open) = state.partial.remove(&metadata.aggregate_id) {
        state.handled_commands.insert(open.command_id);
    }
    state.handled_commands.insert(metadata.command_id.clone());
    state.last_command_offset = state.last_command_offset.max(metadata.command_offset);
    Ok(true)
}

/// The id of the command a record of `<stream>.rejections` refused (see [`rejection_record`]).
pub(crate) fn refused_command_id(record: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(record).ok()?;
    json.get("command_id").and_then(serde_json::Value::as_str).filter(|id| !id.is_empty()).map(str::to_string)
}

/// Where a command record sits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// A parsed command record and what its writer must do with it.
#[derive(Debug, PartialEq)]
pub(crate) struct Classified<C> {
    /// The record's own id, or one derived from its position.
    pub command_id: String,
    pub command: C,
    pub route: Route,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Route {
    /// Its id is in the log already: nothing to do.
    Duplicate,
    /// Its aggregate lives on partition `owner` (sent with another partitioner or without a
    /// key): hand it there as `pinned`, with the id fixed, so a redelivery forwards a duplicate.
    Forward { owner: i32, pinned: Vec<u8> },
    /// Ours to decide.
    Decide,
}

/// Why a record is not a command its writer can route (its bytes go to the dead-letter topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unroutable {
    /// `unparseable` (not a command of the stream) or `invalid` (it breaks a stateless rule of
    /// its type, [`contracts::validate::Validate`]: the reason names the field).
    pub kind: &'static str,
    pub reason: String,
}

/// Parses a command record and says what its writer must do with it.
pub(crate) fn classify<S: Stream>(
    position: Position<'_>,
    bytes: &[u8],
    partitions: i32,
    handled: &HandledCommands,
) -> Result<Classified<S::Command>, Unroutable> {
    let envelope: CommandEnvelope<S::Command> = serde_json::from_slice(bytes)
        .map_err(|error| Unroutable { kind: "unparseable", reason: format!("not a valid {} command: {error}", S::NAME) })?;
    let command_id = envelope.command_id.unwrap_or_else(|| command_id_for_record(position.topic, position.partition, position.offset));
    let command = envelope.command;
    // What needs no state is checked before anything else, as the HTTP write path checks it: a
    // kcat user gets the same reason as a 400 would give. The aggregate id is among it (it is
    // the Kafka key and a row key in every read model), so routing only ever sees readable ids.
    contracts::validate::Validate::validate(&command).map_err(|invalid| Unroutable { kind: "invalid", reason: invalid.to_string() })?;
    let owner = crate::kafka::partition_for(command.aggregate_id(), partitions);
    let route = if handled.contains(&command_id) {
        Route::Duplicate
    } else if owner != position.partition {
        let pinned = CommandEnvelope { command_id: Some(command_id.clone()), command: command.clone() };
        Route::Forward { owner, pinned: serde_json::to_vec(&pinned).unwrap_or_else(|_| bytes.to_vec()) }
    } else {
        Route::Decide
    };
    Ok(Classified { command_id, command, route })
}

/// What one decision appends: `events` are its parts `first..` of `of` in all.
#[derive(Debug, PartialEq)]
pub(crate) struct Decision<E> {
    pub events: Vec<E>,
    pub first: u32,
    pub of: u32,
    pub basis: Basis,
}

/// What a decision was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Basis {
    /// The aggregate's current state: a new decision.
    Current,
    /// The state before a decision of this command cut short, `persisted` of whose events are
    /// in the log: the same decision again, of which only the missing events are appended.
    Completion { persisted: usize },
    /// A decision cut short that came out differently when made again (the decider or the
    /// command changed since): decided anew against the state with the persisted events applied.
    Redecided { persisted: usize },
}

impl<E> Decision<E> {
    /// The place in the decision of `events[i]`.
    pub fn part(&self, i: usize) -> Part {
        Part { index: self.first + i as u32, of: self.of }
    }
}

/// Decides a command of aggregate `aggregate_id`, which is ours and not handled yet. When the
/// log holds the beginning of this command's decision (a crash cut it short), the decider sees
/// the state before it and, deciding the same (deciders are pure), only the missing events are
/// appended, continuing the history where the persisted ones left it.
pub(crate) fn decide<D: Decider>(
    decider: &D,
    state: &mut PartitionState<D>,
    aggregate_id: &str,
    command_id: &str,
    command: &Command<D>,
) -> Result<Decision<Event<D>>, Undecided> {
    let mut basis = Basis::Current;
    if let Some(partial) = state.partial.remove(aggregate_id) {
        if partial.command_id == command_id {
            let persisted = partial.persisted.len();
            match decider.decide(&partial.before, command) {
                Ok(events) if events.len() == partial.of as usize && events.len() > persisted && events.starts_with(&partial.persisted) => {
                    let of = partial.of;
                    return Ok(Decision {
                        events: events.into_iter().skip(persisted).collect(),
                        first: persisted as u32 + 1,
                        of,
                        basis: Basis::Completion { persisted },
                    });
                }
                _ => basis = Basis::Redecided { persisted },
            }
        } else {
            // Another command of the aggregate came first: the history goes on from the part
            // that is in the log, and the earlier command stays as far as it got.
            state.handled_commands.insert(partial.command_id);
        }
    }
    let events = decider.decide(&state.aggregate_mut(aggregate_id)?.state, command)?;
    Ok(Decision { of: events.len() as u32, events, first: 1, basis })
}

/// Why [`decide`] appended nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Undecided {
    #[error(transparent)]
    Rejected(#[from] crate::decider::Rejection),
    /// The aggregate's state could not be read (its writer's disk failed): nothing is decided,
    /// and the writer starts over from the log.
    #[error(transparent)]
    Unreadable(#[from] StoreError),
}

/// Why the events of one decision exist: the command and the trace they continue.
#[derive(Debug, Clone)]
pub(crate) struct Causation {
    pub command_id: String,
    pub correlation_id: String,
    pub causation_id: String,
    pub command_offset: i64,
    pub occurred_at: i64,
}

/// Envelopes for the events one decision appends, each extending the aggregate's history by
/// one version; the aggregate's state and tip move along with them.
pub(crate) fn stamp<D: Decider>(
    aggregate: &mut Aggregate<D::State>,
    aggregate_id: &str,
    events: Vec<Event<D>>,
    causation: &Causation,
    mut new_event_id: impl FnMut() -> String,
) -> Vec<EventEnvelope<Event<D>>> {
    let mut stamped = Vec::with_capacity(events.len());
    for payload in events {
        let event = EventEnvelope {
            event_id: new_event_id(),
            aggregate_id: aggregate_id.to_string(),
            version: aggregate.tip.version + 1,
            previous_event_id: aggregate.tip.event_id.clone(),
            occurred_at: causation.occurred_at,
            correlation_id: causation.correlation_id.clone(),
            causation_id: causation.causation_id.clone(),
            command_id: causation.command_id.clone(),
            command_offset: causation.command_offset,
            payload,
        };
        aggregate.tip.advance(&event.metadata());
        aggregate.state = D::evolve(std::mem::take(&mut aggregate.state), &event.payload);
        stamped.push(event);
    }
    stamped
}

/// Where this writer's appends to one partition landed, in send order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Landed {
    pub partition: i32,
    pub offset: i64,
}

/// Checks that the appends of one batch to `partition` landed right at `log_end` and one after
/// another, and returns the new end of the log. The broker assigns offsets in order, and this
/// writer is the partition's only legitimate writer, so appends that continue the log without
/// a gap prove the log holds exactly what this writer appended; `None` means another writer
/// appended too (or the log changed under it), which is the end of this writer's ownership.
pub(crate) fn continues_log(partition: i32, log_end: i64, landed: &[Landed]) -> Option<i64> {
    let mut next = log_end;
    for appended in landed {
        if appended.partition != partition || appended.offset != next {
            return None;
        }
        next += 1;
    }
    Some(next)
}

/// The JSON record of a refused command on `<stream>.rejections`: what was refused and why,
/// with the original command when it is JSON.
pub(crate) fn rejection_record(command_id: &str, command_type: &str, aggregate_id: &str, reason: &str, original: &[u8], rejected_at: i64) -> String {
    serde_json::json!({
        "command_id": command_id,
        "command_type": command_type,
        "aggregate_id": aggregate_id,
        "reason": reason,
        "command": serde_json::from_slice::<serde_json::Value>(original).unwrap_or_default(),
        "rejected_at": rejected_at,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::Rejection;
    use contracts::stock::{Stock, StockCommand, StockEvent};

    /// A decider that restocks by the quantity asked and counts its events.
    struct Counter;

    impl Decider for Counter {
        type Stream = Stock;
        type State = u32;
        fn decide(&self, _: &u32, command: &StockCommand) -> Result<Vec<StockEvent>, Rejection> {
            match command {
                StockCommand::RestockItem { quantity, .. } => Ok(vec![StockEvent::StockRestocked { quantity: *quantity }]),
                _ => Err(Rejection::Refused("only restocks".into())),
            }
        }
        fn evolve(state: u32, _: &StockEvent) -> u32 {
            state + 1
        }
    }

    fn at(partition: i32, offset: i64) -> Position<'static> {
        Position { topic: "stock.commands", partition, offset }
    }

    fn owner_of(sku: &str) -> i32 {
        crate::kafka::partition_for(sku, 6)
    }

    #[test]
    fn unparseable_bytes_are_named_as_such() {
        let error = classify::<Stock>(at(0, 1), b"{not json", 6, &HandledCommands::default()).expect_err("not json");
        assert_eq!(error.kind, "unparseable");
        assert!(error.reason.starts_with("not a valid stock command:"), "{error:?}");
    }

    #[test]
    fn an_unreadable_aggregate_id_is_invalid_whatever_the_command() {
        let bytes = br#"{"type":"RestockItem","sku":"sku-\u202e1","quantity":1}"#;
        let error = classify::<Stock>(at(0, 1), bytes, 6, &HandledCommands::default()).expect_err("invalid sku");
        assert_eq!(error.kind, "invalid");
        assert!(error.reason.starts_with("sku must not contain control or invisible characters"), "{error:?}");
    }

    #[test]
    fn a_command_breaking_a_stateless_rule_is_invalid_with_the_field_named() {
        for (bytes, reason) in [
            (&br#"{"type":"RestockItem","sku":"sku-1","quantity":0}"#[..], "quantity must be between 1 and 1000000, got 0"),
            (br#"{"type":"ReserveStock","sku":"sku-1","order_id":"","quantity":1}"#, "order_id must be 1 to 128 characters, got 0"),
        ] {
            let error = classify::<Stock>(at(owner_of("sku-1"), 1), bytes, 6, &HandledCommands::default()).expect_err("invalid");
            assert_eq!(error, Unroutable { kind: "invalid", reason: reason.to_string() });
        }
    }

    #[test]
    fn a_command_without_id_gets_its_records_position_as_id() {
        let partition = owner_of("sku-1");
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3}"#;
        let classified = classify::<Stock>(at(partition, 42), bytes, 6, &HandledCommands::default()).expect("a command");
        assert_eq!(classified.command_id, command_id_for_record("stock.commands", partition, 42));
        assert_eq!(classified.route, Route::Decide);
    }

    #[test]
    fn a_handled_id_is_a_duplicate_even_on_another_partition() {
        let mut handled = HandledCommands::default();
        handled.insert("c-1".to_string());
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3,"command_id":"c-1"}"#;
        let wrong = (owner_of("sku-1") + 1) % 6;
        assert_eq!(classify::<Stock>(at(wrong, 0), bytes, 6, &handled).expect("a command").route, Route::Duplicate);
    }

    #[test]
    fn a_command_on_the_wrong_partition_is_forwarded_with_its_id_pinned() {
        let owner = owner_of("sku-1");
        let wrong = (owner + 1) % 6;
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3}"#;
        let classified = classify::<Stock>(at(wrong, 7), bytes, 6, &HandledCommands::default()).expect("a command");
        let (command_id, Route::Forward { owner: to, pinned }) = (classified.command_id, classified.route) else { panic!("not forwarded") };
        assert_eq!(to, owner);
        assert_eq!(command_id, command_id_for_record("stock.commands", wrong, 7));
        let again: CommandEnvelope<StockCommand> = serde_json::from_slice(&pinned).expect("pinned is a command");
        assert_eq!(again.command_id.as_deref(), Some(command_id.as_str()));
        // The forwarded record, read on the owner's partition, keeps the id of the original.
        let there = classify::<Stock>(at(owner, 0), &pinned, 6, &HandledCommands::default()).expect("a command");
        assert_eq!((there.command_id, there.route), (command_id, Route::Decide));
    }

    #[test]
    fn stamped_events_extend_the_history_one_version_each() {
        let mut aggregate = Aggregate::<u32> { tip: HistoryTip { version: 4, event_id: Some("e4".into()) }, ..Default::default() };
        let causation =
            Causation { command_id: "c".into(), correlation_id: "r".into(), causation_id: "s".into(), command_offset: 9, occurred_at: 1000 };
        let restocked = |quantity| StockEvent::StockRestocked { quantity };
        let mut ids = ["e5", "e6"].into_iter().map(String::from);
        let events = stamp::<Counter>(&mut aggregate, "sku-1", vec![restocked(1), restocked(2)], &causation, || ids.next().unwrap_or_default());
        let chain: Vec<_> = events.iter().map(|e| (e.version, e.previous_event_id.clone(), e.event_id.clone())).collect();
        assert_eq!(chain, [(5, Some("e4".into()), "e5".into()), (6, Some("e5".into()), "e6".into())]);
        assert!(events.iter().all(|e| e.command_id == "c"
            && e.correlation_id == "r"
            && e.causation_id == "s"
            && e.command_offset == 9
            && e.occurred_at == 1000));
        assert_eq!(aggregate.tip, HistoryTip { version: 6, event_id: Some("e6".into()) });
        assert_eq!(aggregate.state, 2);
    }

    #[test]
    fn rehydration_applies_each_event_once_and_remembers_its_command() {
        let mut state = PartitionState::<Counter>::empty();
        let causation = Causation { command_id: "c".into(), correlation_id: "c".into(), causation_id: "c".into(), command_offset: 3, occurred_at: 0 };
        let mut writer = Aggregate::<u32>::default();
        let restocked = StockEvent::StockRestocked { quantity: 1 };
        let events = stamp::<Counter>(&mut writer, "sku-1", vec![restocked], &causation, || "e1".into());
        assert!(apply_logged::<Counter>(&mut state, &events[0], Some(Part { index: 1, of: 1 })).expect("store"));
        assert!(!apply_logged::<Counter>(&mut state, &events[0], Some(Part { index: 1, of: 1 })).expect("store"), "a redelivered event");
        assert!(state.handled_commands.contains("c"));
        assert_eq!(state.last_command_offset, 3);
        assert_eq!(state.aggregates["sku-1"].state, 1);
    }

    /// Reserves stock for an order once (natural key: the order), then closes the reservation
    /// with a second event, like the order decider's line and stock reservations: decided again
    /// against a state that has the first event, it would see nothing left to do.
    struct Reserver;

    #[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Ledger {
        reserved: std::collections::BTreeSet<String>,
        closed: u32,
    }

    impl Decider for Reserver {
        type Stream = Stock;
        type State = Ledger;
        fn decide(&self, state: &Ledger, command: &StockCommand) -> Result<Vec<StockEvent>, Rejection> {
            match command {
                StockCommand::ReserveStock { order_id, .. } if state.reserved.contains(order_id) => Ok(vec![]),
                StockCommand::ReserveStock { order_id, quantity, .. } => Ok(vec![
                    StockEvent::StockReserved { order_id: order_id.clone(), quantity: *quantity },
                    StockEvent::StockRestocked { quantity: 0 },
                ]),
                _ => Err(Rejection::Refused("only reservations".into())),
            }
        }
        fn evolve(mut state: Ledger, event: &StockEvent) -> Ledger {
            match event {
                StockEvent::StockReserved { order_id, .. } => {
                    state.reserved.insert(order_id.clone());
                }
                _ => state.closed += 1,
            }
            state
        }
    }

    fn reserve(order_id: &str, quantity: i32) -> StockCommand {
        StockCommand::ReserveStock { sku: "sku-1".into(), order_id: order_id.into(), quantity }
    }

    fn reservation_command(order_id: &str, quantity: i32, command_id: &str) -> Vec<u8> {
        serde_json::to_vec(&CommandEnvelope { command_id: Some(command_id.into()), command: reserve(order_id, quantity) }).expect("json")
    }

    /// The events a writer appends for `command` on a fresh aggregate, with the parts it numbers them with.
    fn decided_on_fresh_aggregate(command: &StockCommand, command_id: &str) -> Vec<(EventEnvelope<StockEvent>, Part)> {
        let mut writer = PartitionState::<Reserver>::empty();
        let decision = decide(&Reserver, &mut writer, "sku-1", command_id, command).expect("accepted");
        let causation =
            Causation { command_id: command_id.into(), correlation_id: "r".into(), causation_id: "s".into(), command_offset: 7, occurred_at: 0 };
        let mut ids = (1..).map(|n| format!("{command_id}-e{n}"));
        let parts: Vec<Part> = (0..decision.events.len()).map(|i| decision.part(i)).collect();
        let events =
            stamp::<Reserver>(writer.aggregate_mut("sku-1").expect("store"), "sku-1", decision.events, &causation, || ids.next().unwrap_or_default());
        events.into_iter().zip(parts).collect()
    }

    #[test]
    fn decision_parts_are_written_as_index_slash_count_when_there_are_several_and_read_back() {
        let part = Part { index: 2, of: 3 };
        assert_eq!(part.to_string(), "2/3");
        assert_eq!(Part::parse("2/3"), Some(part));
        assert!(Part::parse("3/3").is_some_and(Part::is_last));
        assert_eq!(part.header().as_deref(), Some("2/3"), "an event of a decision of several is numbered");
        assert_eq!(Part { index: 1, of: 1 }.header(), None, "a single event is its whole decision");
        for bad in ["", "1", "0/2", "3/2", "a/b", "1/", "/1", "-1/2"] {
            assert_eq!(Part::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn every_event_of_a_decision_is_numbered_and_the_last_one_closes_it() {
        let events = decided_on_fresh_aggregate(&reserve("o-1", 2), "c-1");
        assert_eq!(events.iter().map(|(_, part)| part.to_string()).collect::<Vec<_>>(), ["1/2", "2/2"]);
        let mut state = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut state, &events[0].0, Some(events[0].1)).expect("store"));
        assert!(!state.handled_commands.contains("c-1"), "half a decision does not handle its command");
        assert!(apply_logged::<Reserver>(&mut state, &events[1].0, Some(events[1].1)).expect("store"));
        assert!(state.handled_commands.contains("c-1"));
        assert!(state.partial.is_empty());
    }

    #[test]
    fn events_written_before_decisions_were_numbered_count_as_complete() {
        let events = decided_on_fresh_aggregate(&reserve("o-1", 2), "c-1");
        let mut state = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut state, &events[0].0, None).expect("store"));
        assert!(state.handled_commands.contains("c-1"));
        assert!(state.partial.is_empty());
    }

    #[test]
    fn a_decision_cut_short_is_completed_by_its_redelivered_command() {
        let events = decided_on_fresh_aggregate(&reserve("o-1", 2), "c-1");
        // The crash: only the first of the two events reached the log.
        let mut state = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut state, &events[0].0, Some(events[0].1)).expect("store"));
        let partition = owner_of("sku-1");
        let redelivered = classify::<Stock>(at(partition, 7), &reservation_command("o-1", 2, "c-1"), 6, &state.handled_commands).expect("a command");
        assert_eq!(redelivered.route, Route::Decide, "not a duplicate: its decision is incomplete");
        // Decided against the partial state, the reservation would look done and the second event never come.
        assert_eq!(Reserver.decide(&state.aggregates["sku-1"].state, &redelivered.command), Ok(vec![]));

        let decision = decide(&Reserver, &mut state, "sku-1", "c-1", &redelivered.command).expect("accepted");
        assert_eq!(
            decision,
            Decision { events: vec![StockEvent::StockRestocked { quantity: 0 }], first: 2, of: 2, basis: Basis::Completion { persisted: 1 } }
        );
        let causation =
            Causation { command_id: "c-1".into(), correlation_id: "r".into(), causation_id: "s".into(), command_offset: 7, occurred_at: 1 };
        let completion =
            stamp::<Reserver>(state.aggregate_mut("sku-1").expect("store"), "sku-1", decision.events, &causation, || "c-1-e2-again".into());
        assert_eq!((completion[0].version, completion[0].previous_event_id.as_deref()), (2, Some("c-1-e1")), "continues the persisted part");
        assert_eq!(state.aggregates["sku-1"].state, Ledger { reserved: ["o-1".to_string()].into(), closed: 1 });

        // The next writer finds the decision complete.
        let mut next = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut next, &events[0].0, Some(events[0].1)).expect("store"));
        assert!(apply_logged::<Reserver>(&mut next, &completion[0], Some(Part { index: 2, of: 2 })).expect("store"));
        assert!(next.handled_commands.contains("c-1") && next.partial.is_empty());
        assert_eq!(next.aggregates["sku-1"].state, state.aggregates["sku-1"].state);
    }

    #[test]
    fn a_decision_cut_short_that_comes_out_differently_is_decided_anew_on_the_current_state() {
        let events = decided_on_fresh_aggregate(&reserve("o-1", 2), "c-1");
        let mut state = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut state, &events[0].0, Some(events[0].1)).expect("store"));
        // The same command id, another command (e.g. a client reusing an id).
        let decision = decide(&Reserver, &mut state, "sku-1", "c-1", &reserve("o-2", 5)).expect("accepted");
        assert_eq!(decision.basis, Basis::Redecided { persisted: 1 });
        assert_eq!((decision.first, decision.of), (1, 2));
        assert_eq!(decision.events[0], StockEvent::StockReserved { order_id: "o-2".into(), quantity: 5 });
        assert!(state.partial.is_empty());
    }

    #[test]
    fn another_commands_event_on_top_of_a_decision_cut_short_leaves_it_as_it_is() {
        let first = decided_on_fresh_aggregate(&reserve("o-1", 2), "c-1");
        let mut state = PartitionState::<Reserver>::empty();
        assert!(apply_logged::<Reserver>(&mut state, &first[0].0, Some(first[0].1)).expect("store"));
        let causation =
            Causation { command_id: "c-2".into(), correlation_id: "r".into(), causation_id: "s".into(), command_offset: 8, occurred_at: 0 };
        let mut writer = Aggregate { state: state.aggregates["sku-1"].state.clone(), tip: state.aggregates["sku-1"].tip.clone(), first_offset: None };
        let on_top = stamp::<Reserver>(&mut writer, "sku-1", vec![StockEvent::StockRestocked { quantity: 4 }], &causation, || "c-2-e1".into());
        assert!(apply_logged::<Reserver>(&mut state, &on_top[0], Some(Part { index: 1, of: 1 })).expect("store"));
        assert!(state.handled_commands.contains("c-1") && state.handled_commands.contains("c-2"));
        assert!(state.partial.is_empty());
    }

    #[test]
    fn a_refused_command_is_a_duplicate_when_it_comes_again() {
        let record = rejection_record("c-9", "ReserveStock", "sku-1", "only reservations", &reservation_command("o-1", 1, "c-9"), 5);
        assert_eq!(refused_command_id(record.as_bytes()).as_deref(), Some("c-9"));
        assert_eq!(refused_command_id(b"not json"), None);
        assert_eq!(refused_command_id(br#"{"command_id":""}"#), None);

        let mut state = PartitionState::<Reserver>::empty();
        let partition = owner_of("sku-1");
        let bytes = reservation_command("o-1", 1, "c-9");
        assert_eq!(classify::<Stock>(at(partition, 3), &bytes, 6, &state.handled_commands).expect("a command").route, Route::Decide);
        state.remember_refusal("c-9");
        assert_eq!(classify::<Stock>(at(partition, 3), &bytes, 6, &state.handled_commands).expect("a command").route, Route::Duplicate);
    }

    #[test]
    fn appends_that_continue_the_log_move_its_end() {
        let at = |offset| Landed { partition: 2, offset };
        assert_eq!(continues_log(2, 10, &[at(10), at(11), at(12)]), Some(13));
        assert_eq!(continues_log(2, 10, &[]), Some(10));
    }

    #[test]
    fn a_gap_or_a_foreign_partition_means_another_writer() {
        let at = |offset| Landed { partition: 2, offset };
        assert_eq!(continues_log(2, 10, &[at(11)]), None, "someone appended at 10 first");
        assert_eq!(continues_log(2, 10, &[at(10), at(12)]), None, "someone appended between");
        assert_eq!(continues_log(2, 10, &[Landed { partition: 3, offset: 10 }]), None);
    }

    #[test]
    fn a_rejection_record_carries_the_original_command() {
        let record = rejection_record("c", "CancelOrder", "o-1", "too late", br#"{"type":"CancelOrder"}"#, 5);
        let json: serde_json::Value = serde_json::from_str(&record).expect("json");
        assert_eq!(json["reason"], "too late");
        assert_eq!(json["command"]["type"], "CancelOrder");
        assert_eq!(json["rejected_at"], 5);
    }

    #[test]
    fn only_the_newest_command_ids_are_remembered() {
        let mut handled = HandledCommands::with_capacity(3);
        for id in ["a", "b", "a", "c", "d"] {
            handled.insert(id.to_string());
        }
        assert!(!handled.contains("a"), "the oldest id goes first");
        assert_eq!(handled.iter().collect::<Vec<_>>(), vec!["b", "c", "d"]);
    }

    #[test]
    fn a_state_read_back_from_its_snapshot_decides_like_the_state_rebuilt_from_the_log() {
        let mut state = PartitionState::<Counter>::empty();
        for (version, command_id) in [(1, "c-1"), (2, "c-2")] {
            let event = EventEnvelope {
                event_id: format!("e{version}"),
                aggregate_id: "sku-1".into(),
                version,
                previous_event_id: (version > 1).then(|| format!("e{}", version - 1)),
                occurred_at: 0,
                correlation_id: String::new(),
                causation_id: String::new(),
                command_id: command_id.into(),
                command_offset: version,
                payload: StockEvent::StockRestocked { quantity: 1 },
            };
            assert!(apply_logged::<Counter>(&mut state, &event, None).expect("store"));
        }
        state.aggregate_mut("looked-at-only").expect("store");
        state.log_end = 2;
        state.last_event_digest = "d".into();
        state.rejections_end = 1;
        state.remember_refusal("refused-1");
        let bodies = state.snapshot_bodies().expect("serialisable");
        let contents = crate::snapshot::read_bodies::<u32>(bodies.iter().map(String::as_str)).expect("readable");
        let read = PartitionState::<Counter>::from_snapshot(&state.covers(), contents).expect("store");
        assert_eq!(read.aggregates.len(), 1, "aggregates without events are not written");
        let aggregate = &read.aggregates["sku-1"];
        assert_eq!((aggregate.state, aggregate.tip.version, aggregate.tip.event_id.as_deref()), (2, 2, Some("e2")));
        for id in ["c-1", "c-2", "refused-1"] {
            assert!(read.handled_commands.contains(id), "{id} forgotten");
        }
        assert_eq!((read.log_end, read.last_event_digest.as_str(), read.rejections_end, read.last_command_offset), (2, "d", 1, 2));
        assert_eq!(read.events_since_snapshot, 0);
    }

    #[test]
    fn a_writer_decides_on_an_aggregate_kept_on_disk_as_on_one_kept_in_memory() {
        let mut writer = PartitionState::<Reserver>::empty_keeping_warm(2);
        let causation =
            |id: &str| Causation { command_id: id.into(), correlation_id: "r".into(), causation_id: "s".into(), command_offset: 1, occurred_at: 0 };
        let mut last_event_of_sku_0 = None;
        for i in 0..20 {
            let (sku, command_id) = (format!("sku-{i}"), format!("c-{i}"));
            let decision = decide(&Reserver, &mut writer, &sku, &command_id, &reserve("o-1", 1)).expect("accepted");
            let mut ids = (1..).map(|n| format!("{command_id}-e{n}"));
            let events = stamp::<Reserver>(writer.aggregate_mut(&sku).expect("store"), &sku, decision.events, &causation(&command_id), || {
                ids.next().unwrap_or_default()
            });
            if i == 0 {
                last_event_of_sku_0 = events.last().map(|event| event.event_id.clone());
            }
        }
        assert_eq!(writer.aggregates.len(), 20);
        let again = decide(&Reserver, &mut writer, "sku-0", "c-0-again", &reserve("o-1", 1)).expect("decided");
        assert!(again.events.is_empty(), "sku-0's state came back from disk: o-1 is reserved already");
        let next = decide(&Reserver, &mut writer, "sku-0", "c-next", &reserve("o-2", 1)).expect("accepted");
        let mut ids = (1..).map(|n| format!("c-next-e{n}"));
        let events = stamp::<Reserver>(writer.aggregate_mut("sku-0").expect("store"), "sku-0", next.events, &causation("c-next"), || {
            ids.next().unwrap_or_default()
        });
        assert_eq!((events[0].version, &events[0].previous_event_id), (3, &last_event_of_sku_0), "its history goes on from the tip kept on disk");
    }

    #[test]
    fn a_snapshot_is_due_after_enough_events_and_never_inside_a_decision() {
        let mut state = PartitionState::<Counter>::empty();
        state.events_since_snapshot = 10;
        assert!(state.snapshot_due(10));
        assert!(!state.snapshot_due(0), "0 turns snapshots off");
        for i in 0..20 {
            state.aggregate_mut(&format!("a-{i}")).expect("store");
        }
        state.snapshot_taken();
        state.events_since_snapshot = 15;
        assert!(!state.snapshot_due(10), "fewer events than the last snapshot held aggregates");
        // A stream of one event per aggregate still gets snapshots.
        for i in 20..40 {
            state.aggregate_mut(&format!("a-{i}")).expect("store");
        }
        state.events_since_snapshot = 20;
        assert!(state.snapshot_due(10));
    }
}

//! The command processor's pure core: what the writer of a partition knows, what a command
//! record asks of it ([`classify`]), the envelopes of the events a decision appends
//! ([`stamp`]) and the record of a refusal. No Kafka, no clock, no randomness of its own: the
//! shell in `command_processor` passes time and event ids in and does the I/O.
use crate::{decider::Decider, history::HistoryTip, shared::command_id_for_record};
use contracts::{CommandEnvelope, CommandTarget, EventEnvelope, Stream};
use std::collections::{HashMap, HashSet};

pub(crate) type Command<D> = <<D as Decider>::Stream as Stream>::Command;
pub(crate) type Event<D> = <<D as Decider>::Stream as Stream>::Event;

/// One aggregate as its writer knows it: the folded state and the tip of its history.
#[derive(Debug, Default)]
pub(crate) struct Aggregate<St> {
    pub state: St,
    pub tip: HistoryTip,
}

/// What the writer of one partition knows, rebuilt from the event log on every assignment.
#[derive(Debug)]
pub(crate) struct PartitionState<St> {
    pub aggregates: HashMap<String, Aggregate<St>>,
    pub handled_commands: HashSet<String>,
    /// Highest command offset whose events are in the log (for the operator: where the
    /// previous writer got to).
    pub last_command_offset: i64,
    /// Event partition read up to here.
    pub log_end: i64,
}

impl<St: Default> PartitionState<St> {
    pub fn empty() -> Self {
        PartitionState { aggregates: HashMap::new(), handled_commands: HashSet::new(), last_command_offset: -1, log_end: 0 }
    }

    pub fn aggregate_mut(&mut self, aggregate_id: &str) -> &mut Aggregate<St> {
        self.aggregates.entry(aggregate_id.to_string()).or_default()
    }
}

/// Applies one logged event to a partition's state if it passes the version rule (what
/// rehydration does for every record); says whether it did.
pub(crate) fn apply_logged<D: Decider>(state: &mut PartitionState<D::State>, event: &EventEnvelope<Event<D>>) -> bool {
    let aggregate = state.aggregate_mut(&event.aggregate_id);
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

/// Parses a command record and says what its writer must do with it; `Err` is the reason it
/// is not a command of stream `S` (its bytes go to the dead-letter topic).
pub(crate) fn classify<S: Stream>(
    position: Position<'_>,
    bytes: &[u8],
    partitions: i32,
    handled: &HashSet<String>,
) -> Result<Classified<S::Command>, String> {
    let envelope: CommandEnvelope<S::Command> = serde_json::from_slice(bytes).map_err(|error| format!("not a valid {} command: {error}", S::NAME))?;
    let command_id = envelope.command_id.unwrap_or_else(|| command_id_for_record(position.topic, position.partition, position.offset));
    let command = envelope.command;
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
        let reason = classify::<Stock>(at(0, 1), b"{not json", 6, &HashSet::new()).expect_err("not json");
        assert!(reason.starts_with("not a valid stock command:"), "{reason}");
    }

    #[test]
    fn a_command_without_id_gets_its_records_position_as_id() {
        let partition = owner_of("sku-1");
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3}"#;
        let classified = classify::<Stock>(at(partition, 42), bytes, 6, &HashSet::new()).expect("a command");
        assert_eq!(classified.command_id, command_id_for_record("stock.commands", partition, 42));
        assert_eq!(classified.route, Route::Decide);
    }

    #[test]
    fn a_handled_id_is_a_duplicate_even_on_another_partition() {
        let handled = HashSet::from(["c-1".to_string()]);
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3,"command_id":"c-1"}"#;
        let wrong = (owner_of("sku-1") + 1) % 6;
        assert_eq!(classify::<Stock>(at(wrong, 0), bytes, 6, &handled).expect("a command").route, Route::Duplicate);
    }

    #[test]
    fn a_command_on_the_wrong_partition_is_forwarded_with_its_id_pinned() {
        let owner = owner_of("sku-1");
        let wrong = (owner + 1) % 6;
        let bytes = br#"{"type":"RestockItem","sku":"sku-1","quantity":3}"#;
        let classified = classify::<Stock>(at(wrong, 7), bytes, 6, &HashSet::new()).expect("a command");
        let (command_id, Route::Forward { owner: to, pinned }) = (classified.command_id, classified.route) else { panic!("not forwarded") };
        assert_eq!(to, owner);
        assert_eq!(command_id, command_id_for_record("stock.commands", wrong, 7));
        let again: CommandEnvelope<StockCommand> = serde_json::from_slice(&pinned).expect("pinned is a command");
        assert_eq!(again.command_id.as_deref(), Some(command_id.as_str()));
        // The forwarded record, read on the owner's partition, keeps the id of the original.
        let there = classify::<Stock>(at(owner, 0), &pinned, 6, &HashSet::new()).expect("a command");
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
        let mut state = PartitionState::<u32>::empty();
        let causation = Causation { command_id: "c".into(), correlation_id: "c".into(), causation_id: "c".into(), command_offset: 3, occurred_at: 0 };
        let mut writer = Aggregate::<u32>::default();
        let restocked = StockEvent::StockRestocked { quantity: 1 };
        let events = stamp::<Counter>(&mut writer, "sku-1", vec![restocked], &causation, || "e1".into());
        assert!(apply_logged::<Counter>(&mut state, &events[0]));
        assert!(!apply_logged::<Counter>(&mut state, &events[0]), "a redelivered event");
        assert!(state.handled_commands.contains("c"));
        assert_eq!(state.last_command_offset, 3);
        assert_eq!(state.aggregates["sku-1"].state, 1);
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
}

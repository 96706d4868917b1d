//! The delivery schedule, pure (the caller passes the time in): which notifications of the
//! owned partitions still wait for delivery, derived from the log alone, and which attempt is
//! due when. The runner feeds it the events, makes the attempts it hands out and records the
//! outcomes it returns, which come back through the log.
//!
//! * `NotificationSent` opens a delivery, `NotificationDeliveryFailed` counts an attempt (the
//!   next is due a back-off after it), `NotificationDelivered` and `NotificationParked` close
//!   it: the log is the checkpoint, so nothing it says was delivered or parked goes out again.
//! * Attempts on a partition start only once its history has been read to the end
//!   ([`Scheduler::go_live`]): an outcome further on in the log is known before anything is sent.
//! * A customer's notifications go out one at a time, in the order they were decided (no
//!   "shipped" before "confirmed"); customers wait for nobody but themselves, so one customer
//!   whose deliveries keep failing holds up only their own, until they are parked.
//! * The circuit breaker holds attempts back while the endpoint looks down: held back is
//!   deferred, not failed (no attempt is counted).
use super::breaker::{Admission, BreakerSettings, CircuitBreaker};
use super::retry::{RetryPolicy, jitter_seed};
use crate::sender::Delivery;
use contracts::EventEnvelope;
use contracts::notification::{NotificationEvent, NotificationKind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One sent notification: its customer (the aggregate) and its (order, kind).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NotificationKey {
    pub customer_id: String,
    pub order_id: String,
    pub kind: NotificationKind,
}

impl NotificationKey {
    fn of(delivery: &Delivery) -> Self {
        NotificationKey { customer_id: delivery.customer_id.clone(), order_id: delivery.order_id.clone(), kind: delivery.kind }
    }
}

/// What an outcome command needs to know about its notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub delivery: Delivery,
    /// Of the `NotificationSent` event, passed on to the outcome commands.
    pub correlation_id: String,
    pub partition: i32,
}

impl Notice {
    pub fn key(&self) -> NotificationKey {
        NotificationKey::of(&self.delivery)
    }
}

/// A sent notification that is neither delivered nor parked.
#[derive(Debug, Clone, PartialEq)]
struct Pending<R> {
    notice: Notice,
    /// The `NotificationSent` record, dead-lettered if the notification is parked.
    record: R,
    attempts: i64,
    /// When the back-off lets the next attempt start (epoch ms).
    due_ms: i64,
    /// Held back by the open breaker until then (epoch ms); released when it closes.
    held_until_ms: i64,
}

impl<R> Pending<R> {
    fn starts_at(&self) -> i64 {
        self.due_ms.max(self.held_until_ms)
    }
    fn is(&self, order_id: &str, kind: NotificationKind) -> bool {
        self.notice.delivery.order_id == order_id && self.notice.delivery.kind == kind
    }
}

/// One customer's waiting notifications, oldest first.
#[derive(Debug)]
struct Queue<R> {
    partition: i32,
    waiting: VecDeque<Pending<R>>,
    /// The (order, kind) of the attempt under way.
    in_flight: Option<(String, NotificationKind)>,
}

/// An attempt to make now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub key: NotificationKey,
    pub delivery: Delivery,
    /// 1-based.
    pub number: i64,
}

/// The attempts due now, and how many due ones the breaker held back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub attempts: Vec<Attempt>,
    pub deferred: usize,
}

/// Why an attempt failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: String,
    pub retryable: bool,
}

/// What the end of an attempt makes the runner record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<R> {
    Delivered {
        notice: Notice,
        attempts: i64,
    },
    /// Another attempt follows at `retry_at_ms`.
    Failed {
        notice: Notice,
        attempt: i64,
        error: String,
        retry_at_ms: i64,
    },
    /// No attempt follows: the record goes to the dead letters.
    Parked {
        notice: Notice,
        record: R,
        attempts: i64,
        reason: String,
    },
}

pub struct Scheduler<R> {
    retry: RetryPolicy,
    breaker: CircuitBreaker,
    max_in_flight: usize,
    queues: BTreeMap<String, Queue<R>>,
    /// Partitions read to the end of their history: their deliveries may start.
    live: BTreeSet<i32>,
    in_flight: usize,
}

impl<R> Scheduler<R> {
    pub fn new(retry: RetryPolicy, breaker: BreakerSettings, max_in_flight: usize) -> Self {
        Scheduler {
            retry,
            breaker: CircuitBreaker::new(breaker),
            max_in_flight: max_in_flight.max(1),
            queues: BTreeMap::new(),
            live: BTreeSet::new(),
            in_flight: 0,
        }
    }

    /// Folds in one event of `partition`'s accepted history, in log order; `record` is the
    /// record it was read from (asked for only when the event opens a delivery).
    pub fn apply(&mut self, partition: i32, event: &EventEnvelope<NotificationEvent>, record: impl FnOnce() -> R) {
        let customer_id = &event.aggregate_id;
        match &event.payload {
            NotificationEvent::NotificationSent { .. } => {
                let Some(delivery) = Delivery::from_event(event) else { return };
                let queue = self.queues.entry(customer_id.clone()).or_insert_with(|| Queue { partition, waiting: VecDeque::new(), in_flight: None });
                if queue.waiting.iter().any(|pending| pending.is(&delivery.order_id, delivery.kind)) {
                    return;
                }
                let notice = Notice { delivery, correlation_id: event.correlation_id.clone(), partition };
                queue.waiting.push_back(Pending { notice, record: record(), attempts: 0, due_ms: event.occurred_at, held_until_ms: 0 });
            }
            NotificationEvent::NotificationDeliveryFailed { order_id, kind, attempt, .. } => {
                let retry = self.retry;
                let Some(pending) = self.pending_mut(customer_id, order_id, *kind) else { return };
                pending.attempts = pending.attempts.max(*attempt);
                let retry_at_ms =
                    event.occurred_at.saturating_add(millis(retry.delay_after(*attempt, jitter_seed(&pending.notice.delivery.event_id))));
                pending.due_ms = pending.due_ms.max(retry_at_ms);
            }
            NotificationEvent::NotificationDelivered { order_id, kind, .. } | NotificationEvent::NotificationParked { order_id, kind, .. } => {
                self.close(customer_id, order_id, *kind);
            }
            NotificationEvent::PreferencesSet { .. } | NotificationEvent::OptOutSet { .. } => {}
        }
    }

    /// `partition`'s history is read to the end: its deliveries may start.
    pub fn go_live(&mut self, partition: i32) {
        self.live.insert(partition);
    }

    /// Forgets `partition` (it changed hands): its next owner rebuilds it from the log. An
    /// attempt under way for it still ends (and counts against `max_in_flight` until then), but
    /// its outcome is not recorded here.
    pub fn forget(&mut self, partition: i32) {
        self.live.remove(&partition);
        self.queues.retain(|_, queue| queue.partition != partition);
    }

    /// Closes as delivered the deliveries of `partition`, not attempted by this loop yet, whose
    /// record `handed_over` says the service's earlier delivery (which recorded no outcomes)
    /// got to: its consumer group's committed offset is how far it delivered, and an upgrade
    /// must not send all of that again. Returns them, to record as delivered at the first attempt.
    pub fn settle_handed_over(&mut self, partition: i32, handed_over: impl Fn(&R) -> bool) -> Vec<Notice> {
        let mut settled = Vec::new();
        for queue in self.queues.values_mut().filter(|queue| queue.partition == partition && queue.in_flight.is_none()) {
            let (old, rest): (VecDeque<_>, VecDeque<_>) =
                std::mem::take(&mut queue.waiting).into_iter().partition(|pending| pending.attempts == 0 && handed_over(&pending.record));
            queue.waiting = rest;
            settled.extend(old.into_iter().map(|pending| pending.notice));
        }
        self.queues.retain(|_, queue| !queue.waiting.is_empty() || queue.in_flight.is_some());
        settled
    }

    /// Takes the attempts due at `now_ms`, soonest first, as many as may be under way at once.
    pub fn start_due(&mut self, now_ms: i64) -> Due {
        let mut due = Due::default();
        if self.in_flight >= self.max_in_flight {
            return due;
        }
        let mut ready: Vec<(i64, String)> = self
            .queues
            .iter()
            .filter(|(_, queue)| queue.in_flight.is_none() && self.live.contains(&queue.partition))
            .filter_map(|(customer_id, queue)| queue.waiting.front().map(|head| (head.starts_at(), customer_id.clone())))
            .filter(|(starts_at, _)| *starts_at <= now_ms)
            .collect();
        ready.sort();
        let mut held_until_ms = None;
        for (_, customer_id) in ready {
            let Some(queue) = self.queues.get_mut(&customer_id) else { continue };
            let Some(head) = queue.waiting.front_mut() else { continue };
            if let Some(until_ms) = held_until_ms {
                head.held_until_ms = until_ms;
                due.deferred += 1;
                continue;
            }
            if self.in_flight >= self.max_in_flight {
                break;
            }
            match self.breaker.admit(now_ms) {
                Admission::Wait { until_ms } => {
                    head.held_until_ms = until_ms;
                    due.deferred += 1;
                    held_until_ms = Some(until_ms);
                }
                Admission::Go | Admission::Probe => {
                    queue.in_flight = Some((head.notice.delivery.order_id.clone(), head.notice.delivery.kind));
                    self.in_flight += 1;
                    due.attempts.push(Attempt { key: head.notice.key(), delivery: head.notice.delivery.clone(), number: head.attempts + 1 });
                }
            }
        }
        due
    }

    /// An attempt handed out by [`Scheduler::start_due`] ended at `now_ms`. Returns what to
    /// record, or `None` when there is nothing to (the notification was closed or its partition
    /// forgotten meanwhile).
    pub fn finish(&mut self, key: &NotificationKey, result: Result<(), Failure>, now_ms: i64) -> Option<Outcome<R>> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let was_open = self.breaker.is_open();
        match &result {
            Ok(()) => self.breaker.record_success(),
            Err(_) => self.breaker.record_failure(&key.customer_id, now_ms),
        }
        if was_open && !self.breaker.is_open() {
            self.release_held();
        }
        let queue = self.queues.get_mut(&key.customer_id)?;
        if queue.in_flight.as_ref().is_none_or(|(order_id, kind)| *order_id != key.order_id || *kind != key.kind) {
            return None;
        }
        queue.in_flight = None;
        let outcome = match queue.waiting.front_mut() {
            Some(head) if head.is(&key.order_id, key.kind) => {
                let attempt = head.attempts + 1;
                match result {
                    Ok(()) => queue.waiting.pop_front().map(|pending| Outcome::Delivered { notice: pending.notice, attempts: attempt }),
                    Err(Failure { error, retryable }) if !retryable || self.retry.exhausted(attempt) => {
                        let reason = if retryable {
                            format!("{attempt} attempts failed, the last with: {error}")
                        } else {
                            format!("retrying cannot help: {error}")
                        };
                        queue.waiting.pop_front().map(|pending| Outcome::Parked {
                            notice: pending.notice,
                            record: pending.record,
                            attempts: attempt,
                            reason,
                        })
                    }
                    Err(Failure { error, .. }) => {
                        let delay = self.retry.delay_after(attempt, jitter_seed(&head.notice.delivery.event_id));
                        let retry_at_ms = now_ms.saturating_add(millis(delay));
                        head.attempts = attempt;
                        head.due_ms = retry_at_ms;
                        Some(Outcome::Failed { notice: head.notice.clone(), attempt, error, retry_at_ms })
                    }
                }
            }
            _ => None,
        };
        if queue.waiting.is_empty() {
            self.queues.remove(&key.customer_id);
        }
        outcome
    }

    /// When the next attempt may start (epoch ms): `None` when nothing waits that could start
    /// (or as many attempts as allowed are under way: the end of one wakes the runner).
    pub fn next_due(&self) -> Option<i64> {
        if self.in_flight >= self.max_in_flight {
            return None;
        }
        self.queues
            .values()
            .filter(|queue| queue.in_flight.is_none() && self.live.contains(&queue.partition))
            .filter_map(|queue| queue.waiting.front().map(Pending::starts_at))
            .min()
    }

    /// Where a rebuild of `partition` must start so it misses no notification still waiting:
    /// the oldest record, by `offset_of`, of those neither delivered nor parked (an attempt
    /// under way included); `None` when none waits.
    pub fn oldest_waiting(&self, partition: i32, offset_of: impl Fn(&R) -> i64) -> Option<i64> {
        self.queues
            .values()
            .filter(|queue| queue.partition == partition)
            .flat_map(|queue| queue.waiting.iter())
            .map(|pending| offset_of(&pending.record))
            .min()
    }

    /// Notifications waiting for delivery (those under way included).
    pub fn pending(&self) -> usize {
        self.queues.values().map(|queue| queue.waiting.len()).sum()
    }

    /// Notifications of `partition` waiting for delivery.
    pub fn pending_in(&self, partition: i32) -> usize {
        self.queues.values().filter(|queue| queue.partition == partition).map(|queue| queue.waiting.len()).sum()
    }

    /// Whether the breaker holds attempts back.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    fn pending_mut(&mut self, customer_id: &str, order_id: &str, kind: NotificationKind) -> Option<&mut Pending<R>> {
        self.queues.get_mut(customer_id)?.waiting.iter_mut().find(|pending| pending.is(order_id, kind))
    }

    /// The log says the delivery is over (delivered or parked, by this member or another).
    fn close(&mut self, customer_id: &str, order_id: &str, kind: NotificationKind) {
        let Some(queue) = self.queues.get_mut(customer_id) else { return };
        queue.waiting.retain(|pending| !pending.is(order_id, kind));
        if queue.waiting.is_empty() && queue.in_flight.is_none() {
            self.queues.remove(customer_id);
        }
    }

    fn release_held(&mut self) {
        for pending in self.queues.values_mut().flat_map(|queue| queue.waiting.iter_mut()) {
            pending.held_until_ms = 0;
        }
    }
}

fn millis(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::notification::Channel;
    use runtime::testing::envelope;
    use std::time::Duration;

    const KIND: NotificationKind = NotificationKind::OrderConfirmed;

    fn retry() -> RetryPolicy {
        RetryPolicy { max_attempts: 3, first_delay: Duration::from_millis(100), max_delay: Duration::from_millis(400) }
    }
    fn breaker() -> BreakerSettings {
        BreakerSettings { recipients_to_open: 2, cooldown: Duration::from_millis(1_000) }
    }
    fn scheduler() -> Scheduler<&'static str> {
        Scheduler::new(retry(), breaker(), 10)
    }
    fn event(customer: &str, version: i64, occurred_at: i64, payload: NotificationEvent) -> EventEnvelope<NotificationEvent> {
        EventEnvelope { occurred_at, ..envelope(customer, version, payload) }
    }
    fn sent(customer: &str, version: i64, order_id: &str, at: i64) -> EventEnvelope<NotificationEvent> {
        let payload = NotificationEvent::NotificationSent {
            order_id: order_id.into(),
            kind: KIND,
            channel: Channel::Email,
            recipient: format!("{customer}@example.com"),
            message: "Your order is confirmed.".into(),
        };
        event(customer, version, at, payload)
    }
    fn key(customer: &str, order_id: &str) -> NotificationKey {
        NotificationKey { customer_id: customer.into(), order_id: order_id.into(), kind: KIND }
    }
    fn orders(due: &Due) -> Vec<(String, String, i64)> {
        due.attempts.iter().map(|a| (a.key.customer_id.clone(), a.key.order_id.clone(), a.number)).collect()
    }
    fn failure(error: &str) -> Result<(), Failure> {
        Err(Failure { error: error.into(), retryable: true })
    }
    fn attempt_of(customer: &str, order_id: &str, number: i64) -> (String, String, i64) {
        (customer.into(), order_id.into(), number)
    }

    #[test]
    fn nothing_starts_before_the_partition_is_read_to_the_end() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "r1");
        assert_eq!(scheduler.start_due(1_000), Due::default());
        assert_eq!(scheduler.next_due(), None);
        scheduler.go_live(0);
        assert_eq!(scheduler.next_due(), Some(10));
        assert_eq!(orders(&scheduler.start_due(1_000)), [attempt_of("c-1", "o-1", 1)]);
    }

    #[test]
    fn what_the_log_says_was_delivered_or_parked_is_not_sent_again() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "r1");
        scheduler.apply(0, &sent("c-1", 2, "o-2", 20), || "r2");
        scheduler.apply(0, &sent("c-1", 3, "o-3", 30), || "r3");
        scheduler.apply(
            0,
            &event("c-1", 4, 40, NotificationEvent::NotificationDelivered { order_id: "o-1".into(), kind: KIND, attempts: 1 }),
            || "x",
        );
        let parked = NotificationEvent::NotificationParked { order_id: "o-2".into(), kind: KIND, attempts: 3, reason: "HTTP 500".into() };
        scheduler.apply(0, &event("c-1", 5, 50, parked), || "x");
        scheduler.go_live(0);
        assert_eq!(scheduler.pending(), 1);
        assert_eq!(orders(&scheduler.start_due(1_000)), [attempt_of("c-1", "o-3", 1)]);
    }

    #[test]
    fn a_failed_attempt_in_the_log_counts_and_its_back_off_holds_after_a_restart() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "r1");
        let failed = NotificationEvent::NotificationDeliveryFailed { order_id: "o-1".into(), kind: KIND, attempt: 2, error: "HTTP 500".into() };
        scheduler.apply(0, &event("c-1", 2, 1_000, failed), || "x");
        scheduler.go_live(0);
        let due_ms = scheduler.next_due().expect("a retry is due");
        // The wait after attempt 2: 200 ms, plus up to as much again.
        assert!((1_200..=1_400).contains(&due_ms), "{due_ms}");
        assert_eq!(scheduler.start_due(due_ms - 1), Due::default());
        assert_eq!(orders(&scheduler.start_due(due_ms)), [attempt_of("c-1", "o-1", 3)]);
    }

    #[test]
    fn one_customer_at_a_time_in_order_and_customers_independent() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-bad", 1, "o-1", 10), || "r1");
        scheduler.apply(0, &sent("c-bad", 2, "o-2", 11), || "r2");
        scheduler.apply(1, &sent("c-good", 1, "o-3", 12), || "r3");
        scheduler.go_live(0);
        scheduler.go_live(1);
        assert_eq!(orders(&scheduler.start_due(100)), [attempt_of("c-bad", "o-1", 1), attempt_of("c-good", "o-3", 1)]);
        assert_eq!(scheduler.start_due(100), Due::default(), "each customer has its attempt under way");

        let failed = scheduler.finish(&key("c-bad", "o-1"), failure("HTTP 500"), 200);
        let Some(Outcome::Failed { attempt: 1, retry_at_ms, .. }) = failed else { panic!("{failed:?}") };
        assert!((300..=400).contains(&retry_at_ms), "{retry_at_ms}");
        let delivered = scheduler.finish(&key("c-good", "o-3"), Ok(()), 210);
        assert!(matches!(delivered, Some(Outcome::Delivered { attempts: 1, .. })), "{delivered:?}");
        assert_eq!(scheduler.start_due(250), Due::default(), "c-bad's o-2 waits behind o-1's back-off");
        assert_eq!(orders(&scheduler.start_due(retry_at_ms)), [attempt_of("c-bad", "o-1", 2)]);
    }

    #[test]
    fn the_last_allowed_failure_parks_with_the_record() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "the NotificationSent record");
        scheduler.go_live(0);
        let mut now = 10;
        for attempt in 1..=2 {
            assert_eq!(orders(&scheduler.start_due(now)), [attempt_of("c-1", "o-1", attempt)]);
            let Some(Outcome::Failed { retry_at_ms, .. }) = scheduler.finish(&key("c-1", "o-1"), failure("HTTP 500"), now) else { panic!() };
            now = retry_at_ms;
        }
        assert_eq!(orders(&scheduler.start_due(now)), [attempt_of("c-1", "o-1", 3)]);
        let parked = scheduler.finish(&key("c-1", "o-1"), failure("HTTP 500"), now);
        let Some(Outcome::Parked { record, attempts, reason, notice }) = parked else { panic!("{parked:?}") };
        assert_eq!((record, attempts), ("the NotificationSent record", 3));
        assert_eq!(reason, "3 attempts failed, the last with: HTTP 500");
        assert_eq!(notice.delivery.order_id, "o-1");
        assert_eq!(scheduler.pending(), 0);
        assert_eq!(scheduler.next_due(), None);
    }

    #[test]
    fn a_lasting_error_parks_at_once() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "r1");
        scheduler.go_live(0);
        scheduler.start_due(10);
        let parked = scheduler.finish(&key("c-1", "o-1"), Err(Failure { error: "HTTP 400".into(), retryable: false }), 20);
        let Some(Outcome::Parked { attempts: 1, reason, .. }) = parked else { panic!("{parked:?}") };
        assert_eq!(reason, "retrying cannot help: HTTP 400");
    }

    #[test]
    fn the_open_breaker_defers_without_counting_an_attempt_and_releases_on_success() {
        let mut scheduler = scheduler();
        for (partition, customer) in [(0, "c-1"), (1, "c-2"), (2, "c-3")] {
            scheduler.apply(partition, &sent(customer, 1, "o-1", 10), || "r");
            scheduler.go_live(partition);
        }
        assert_eq!(scheduler.start_due(10).attempts.len(), 3);
        scheduler.finish(&key("c-1", "o-1"), failure("connection refused"), 20);
        scheduler.finish(&key("c-2", "o-1"), failure("connection refused"), 21);
        assert!(scheduler.breaker_open(), "two different customers failed");
        // c-3's attempt was under way already; it fails too, and changes nothing.
        scheduler.finish(&key("c-3", "o-1"), failure("connection refused"), 22);

        let retries_due = scheduler.next_due().expect("retries are due");
        let held = scheduler.start_due(retries_due.max(500));
        assert_eq!((held.attempts.len(), held.deferred), (0, 3), "held back until the cooldown");
        assert_eq!(scheduler.next_due(), Some(1_021));

        let probe = scheduler.start_due(1_021);
        assert_eq!((orders(&probe), probe.deferred), (vec![attempt_of("c-1", "o-1", 2)], 2), "attempt 2: the deferrals counted none");
        scheduler.finish(&key("c-1", "o-1"), Ok(()), 1_030);
        assert!(!scheduler.breaker_open());
        let released = scheduler.start_due(1_030);
        assert_eq!(orders(&released), [attempt_of("c-2", "o-1", 2), attempt_of("c-3", "o-1", 2)]);
    }

    #[test]
    fn no_more_than_the_allowed_attempts_are_under_way() {
        let mut scheduler: Scheduler<()> = Scheduler::new(retry(), breaker(), 2);
        for (index, customer) in ["c-1", "c-2", "c-3"].into_iter().enumerate() {
            scheduler.apply(0, &sent(customer, 1, "o-1", 10 + index as i64), || ());
        }
        scheduler.go_live(0);
        assert_eq!(orders(&scheduler.start_due(100)), [attempt_of("c-1", "o-1", 1), attempt_of("c-2", "o-1", 1)]);
        assert_eq!(scheduler.next_due(), None, "woken by the end of an attempt");
        scheduler.finish(&key("c-1", "o-1"), Ok(()), 110);
        assert_eq!(orders(&scheduler.start_due(110)), [attempt_of("c-3", "o-1", 1)]);
    }

    #[test]
    fn what_the_earlier_delivery_got_to_is_settled_as_delivered_not_sent() {
        let mut scheduler: Scheduler<i64> = scheduler_of_offsets();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || 5);
        scheduler.apply(0, &sent("c-1", 2, "o-2", 11), || 6);
        scheduler.apply(0, &sent("c-2", 1, "o-3", 12), || 4);
        let failed = NotificationEvent::NotificationDeliveryFailed { order_id: "o-3".into(), kind: KIND, attempt: 1, error: "HTTP 500".into() };
        scheduler.apply(0, &event("c-2", 2, 13, failed), || 8);
        scheduler.apply(1, &sent("c-3", 1, "o-4", 14), || 2);
        let settled = scheduler.settle_handed_over(0, |offset| *offset < 7);
        let settled: Vec<String> = settled.into_iter().map(|notice| notice.delivery.order_id).collect();
        assert_eq!(settled, ["o-1", "o-2"]);
        scheduler.go_live(0);
        scheduler.go_live(1);
        let due = scheduler.start_due(10_000);
        assert_eq!(orders(&due), [attempt_of("c-3", "o-4", 1), attempt_of("c-2", "o-3", 2)], "another partition, or attempted already");
    }

    fn scheduler_of_offsets() -> Scheduler<i64> {
        Scheduler::new(retry(), breaker(), 10)
    }

    #[test]
    fn a_forgotten_partition_records_nothing_for_its_attempt_under_way() {
        let mut scheduler = scheduler();
        scheduler.apply(3, &sent("c-1", 1, "o-1", 10), || "r1");
        scheduler.go_live(3);
        scheduler.start_due(10);
        scheduler.forget(3);
        assert_eq!(scheduler.finish(&key("c-1", "o-1"), Ok(()), 20), None);
        assert_eq!(scheduler.pending(), 0);
    }

    #[test]
    fn a_delivery_closed_by_the_log_while_under_way_records_nothing() {
        let mut scheduler = scheduler();
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || "r1");
        scheduler.apply(0, &sent("c-1", 2, "o-2", 11), || "r2");
        scheduler.go_live(0);
        scheduler.start_due(20);
        // An operator parked it meanwhile (a ParkDelivery of their own).
        let parked = NotificationEvent::NotificationParked { order_id: "o-1".into(), kind: KIND, attempts: 0, reason: "by hand".into() };
        scheduler.apply(0, &event("c-1", 3, 25, parked), || "x");
        assert_eq!(scheduler.start_due(26), Due::default(), "o-2 waits for the attempt under way to end");
        assert_eq!(scheduler.finish(&key("c-1", "o-1"), Ok(()), 30), None);
        assert_eq!(orders(&scheduler.start_due(30)), [attempt_of("c-1", "o-2", 1)]);
    }

    #[test]
    fn a_rebuild_starts_at_the_oldest_notification_still_waiting_on_its_partition() {
        // The records stand for their offsets.
        let mut scheduler: Scheduler<i64> = Scheduler::new(retry(), breaker(), 10);
        assert_eq!(scheduler.oldest_waiting(0, |offset| *offset), None, "nothing sent yet");
        scheduler.apply(0, &sent("c-1", 1, "o-1", 10), || 3);
        scheduler.apply(0, &sent("c-2", 1, "o-2", 11), || 5);
        scheduler.apply(1, &sent("c-3", 1, "o-3", 12), || 1);
        scheduler.go_live(0);
        let due = scheduler.start_due(20);
        assert_eq!(due.attempts.len(), 2);
        assert_eq!(scheduler.oldest_waiting(0, |offset| *offset), Some(3), "an attempt under way still waits");
        assert_eq!(scheduler.oldest_waiting(1, |offset| *offset), Some(1), "partitions apart");
        scheduler.apply(0, &event("c-1", 2, 30, NotificationEvent::NotificationDelivered { order_id: "o-1".into(), kind: KIND, attempts: 1 }), || 7);
        assert_eq!(scheduler.oldest_waiting(0, |offset| *offset), Some(5), "the delivered one no longer holds the start back");
        scheduler.apply(
            0,
            &event("c-2", 2, 31, NotificationEvent::NotificationParked { order_id: "o-2".into(), kind: KIND, attempts: 3, reason: "gone".into() }),
            || 8,
        );
        assert_eq!(scheduler.oldest_waiting(0, |offset| *offset), None, "parked: nothing waits");
    }
}

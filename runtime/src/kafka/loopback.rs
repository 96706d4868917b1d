//! Records this process appended, handed to its own readers as soon as the broker has
//! acknowledged them, ahead of their fetch.
//!
//! Seven of the saga's thirteen hops are a command that a service sends itself (its HTTP API,
//! its policies) and its own writer handles. Each waited for that writer's next fetch, and
//! Nisshi answers a fetch only at its next re-poll (half the time left, never woken by a
//! produce): 50–80 ms per hop, most of an order's second. An acknowledged record's offset is
//! final, so a reader that has handled everything before that offset may handle the record at
//! once, as if fetched; when the fetch brings it again, the reader passes over it by offset
//! ([`Handled`]).
//!
//! Best effort, never a source of truth: a reader that falls behind loses records here (a
//! bounded broadcast), never from the log, and a record it cannot take in order (another
//! process appended in between, the partition is not its own) is left to the fetch.
use rdkafka::{
    Message,
    message::{BorrowedMessage, OwnedMessage},
};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, LazyLock, Mutex, RwLock},
    time::Duration,
};
use tokio::{sync::broadcast, time::Instant};

/// Acknowledged records a reader may fall behind by before it loses some here (its fetch
/// still brings them).
const CAPACITY: usize = 1_024;

type Taps = HashMap<String, broadcast::Sender<Arc<OwnedMessage>>>;

/// Per topic, the readers of this process that take its records ahead of the fetch.
static TAPS: LazyLock<RwLock<Taps>> = LazyLock::new(Default::default);

/// Hands an acknowledged record to this process's readers of its topic, if any. Called from
/// the producers' delivery reports, so it only copies a record somebody here waits for.
pub(crate) fn acknowledged(message: &BorrowedMessage<'_>) {
    publish(message.topic(), || message.detach());
}

fn publish(topic: &str, record: impl FnOnce() -> OwnedMessage) {
    let taps = TAPS.read().unwrap_or_else(|p| p.into_inner());
    let Some(tap) = taps.get(topic) else { return };
    if tap.receiver_count() == 0 {
        return;
    }
    // No receiver left since the check: nobody waits for it.
    let _ = tap.send(Arc::new(record()));
}

/// One reader's feed of the records this process appends to its topics.
pub(crate) struct Loopback {
    receivers: Vec<broadcast::Receiver<Arc<OwnedMessage>>>,
}

impl Loopback {
    pub fn subscribe<'t>(topics: impl IntoIterator<Item = &'t str>) -> Loopback {
        let mut taps = TAPS.write().unwrap_or_else(|p| p.into_inner());
        let receivers =
            topics.into_iter().map(|topic| taps.entry(topic.to_string()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()).collect();
        Loopback { receivers }
    }

    /// The next record appended here since the last call. Cancellation-safe.
    pub async fn recv(&mut self) -> Arc<OwnedMessage> {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.receivers.iter_mut().map(|receiver| Box::pin(next_of(receiver)));
        futures::future::select_all(waits).await.0
    }

    /// A record already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Arc<OwnedMessage>> {
        self.receivers.iter_mut().find_map(|receiver| {
            loop {
                match receiver.try_recv() {
                    Ok(record) => return Some(record),
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                }
            }
        })
    }
}

async fn next_of(receiver: &mut broadcast::Receiver<Arc<OwnedMessage>>) -> Arc<OwnedMessage> {
    loop {
        match receiver.recv().await {
            Ok(record) => return record,
            // Lost here only; the fetch brings them.
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            // The sender lives in a static and is never dropped.
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// Where a reader stands in each partition it has handled records of since it took the
/// partition: the offset after the last one. A record there is the next to handle, whether it
/// comes from the fetch or from this process's own appends; one before it was handled already.
#[derive(Default)]
pub(crate) struct Handled {
    next: HashMap<(String, i32), i64>,
    /// `next`, for the reader's lag reporter (see [`Stands`]).
    shared: Stands,
    /// Appends that arrived ahead of one before them: several producers of this process write
    /// one partition (the HTTP API, the policies), and their acknowledgements need not come in
    /// offset order. Held until the gap closes; a gap another process's record fills closes
    /// with the fetch.
    ahead: HashMap<(String, i32), BTreeMap<i64, Arc<OwnedMessage>>>,
}

/// Appends held for a gap before them, at most (beyond, they are left to the fetch).
const AHEAD_CAP: usize = 256;

/// Where a reader stands, as its lag reporter reads it. librdkafka's position of a reader fed
/// here says little: what the reader took from here moves it only once the fetch brings the
/// copies, and a parked reader that seeks on resuming loses it (librdkafka resets it).
pub(crate) type Stands = Arc<Mutex<HashMap<(String, i32), i64>>>;

impl Handled {
    /// Starts from where an assigned reader begins each partition (its checkpoints).
    pub fn starting_at(next: HashMap<(String, i32), i64>) -> Handled {
        Handled { shared: Arc::new(Mutex::new(next.clone())), next, ahead: HashMap::new() }
    }

    /// Drops from a fetched batch the records handled already (they came here first).
    pub fn drop_handled(&self, batch: &mut Vec<OwnedMessage>) {
        if self.next.is_empty() {
            return;
        }
        batch.retain(|record| self.next.get(&(record.topic().to_string(), record.partition())).is_none_or(|next| record.offset() >= *next));
    }

    /// Records `records` (in offset order per partition) as handled.
    pub fn handled<'r>(&mut self, records: impl IntoIterator<Item = &'r OwnedMessage>) {
        let mut shared = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        for record in records {
            let partition = (record.topic().to_string(), record.partition());
            shared.insert(partition.clone(), record.offset() + 1);
            self.next.insert(partition, record.offset() + 1);
        }
        drop(shared);
        let next = &self.next;
        self.ahead.retain(|partition, held| {
            if let Some(next) = next.get(partition) {
                held.retain(|offset, _| offset >= next);
            }
            !held.is_empty()
        });
    }

    /// Whether `record` was handled already (it came here ahead of its fetch).
    pub fn has(&self, record: &OwnedMessage) -> bool {
        self.next.get(&(record.topic().to_string(), record.partition())).is_some_and(|next| record.offset() < *next)
    }

    /// The offset after the last record handled of `partition`, when the reader knows it.
    pub fn next_of(&self, partition: &(String, i32)) -> Option<i64> {
        self.next.get(partition).copied()
    }

    /// Where the reader stands in each partition it knows.
    pub fn positions(&self) -> HashMap<(String, i32), i64> {
        self.next.clone()
    }

    /// Where the reader stands, kept up to date as it handles records.
    pub fn stands(&self) -> Stands {
        self.shared.clone()
    }

    /// Whether the reader takes records ahead of their fetch at all (it knows where it stands
    /// in some partition).
    pub fn is_fed(&self) -> bool {
        !self.next.is_empty()
    }

    /// Forgets a partition that was taken away or rebuilt: its next record comes by fetch.
    pub fn forget(&mut self, partition: &(String, i32)) {
        self.next.remove(partition);
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).remove(partition);
        self.ahead.remove(partition);
    }

    /// From this process's appends on `loopback`, the run that continues where this reader
    /// stands, starting with `first`: what is waiting and what comes within `linger` (up to
    /// `max` records, partitions `accept`s only), as a fetch would batch them, with appends held
    /// from earlier calls once the gap before them is closed. The rest is left to the fetch.
    pub async fn take_run(
        &mut self,
        first: Arc<OwnedMessage>,
        loopback: &mut Loopback,
        max: usize,
        linger: Duration,
        accept: impl Fn(i32) -> bool,
    ) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + linger;
        let mut expected: HashMap<(String, i32), i64> = HashMap::new();
        let mut run = Vec::new();
        let mut candidate = Some(first);
        while let Some(record) = candidate.take() {
            let partition = (record.topic().to_string(), record.partition());
            let next = expected.get(&partition).or_else(|| self.next.get(&partition)).copied();
            if let Some(next) = next.filter(|next| record.offset() >= *next && accept(record.partition())) {
                let mut at = next;
                if record.offset() == next {
                    run.push(Arc::unwrap_or_clone(record));
                    at += 1;
                } else if self.held() < AHEAD_CAP {
                    self.ahead.entry(partition.clone()).or_default().insert(record.offset(), record);
                }
                // A gap closed here, or by the fetch since the last call, frees what was held.
                while let Some(held) = self.ahead.get_mut(&partition).and_then(|held| held.remove(&at)) {
                    run.push(Arc::unwrap_or_clone(held));
                    at += 1;
                }
                expected.insert(partition, at);
            }
            if run.len() < max {
                candidate = match loopback.try_recv() {
                    Some(waiting) => Some(waiting),
                    None => tokio::time::timeout_at(deadline, loopback.recv()).await.ok(),
                };
            }
        }
        run
    }

    fn held(&self) -> usize {
        self.ahead.values().map(BTreeMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::{Handled, Loopback, publish};
    use rdkafka::{Message, Timestamp, message::OwnedMessage};
    use std::time::Duration;
    fn record(topic: &str, partition: i32, offset: i64) -> OwnedMessage {
        OwnedMessage::new(Some(b"{}".to_vec()), Some(b"k".to_vec()), topic.into(), Timestamp::NotAvailable, partition, offset, None)
    }

    fn appended(record: OwnedMessage) {
        let topic = record.topic().to_owned();
        publish(&topic, || record);
    }

    fn offsets(records: &[OwnedMessage]) -> Vec<(i32, i64)> {
        records.iter().map(|record| (record.partition(), record.offset())).collect()
    }

    #[tokio::test]
    async fn a_reader_takes_its_own_appends_only_where_it_stands_and_passes_over_them_when_fetched() {
        let topic = "loopback.test.commands";
        let mut loopback = Loopback::subscribe([topic]);
        let mut handled = Handled::default();
        appended(record(topic, 0, 0));
        let first = loopback.recv().await;
        assert!(
            handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await.is_empty(),
            "nothing handled yet: where the reader stands is not known"
        );

        handled.handled(&[record(topic, 0, 0), record(topic, 0, 1)]);
        for offset in [2, 3, 5] {
            appended(record(topic, 0, offset));
        }
        appended(record(topic, 1, 7));
        let first = loopback.recv().await;
        let run = handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await;
        assert_eq!(offsets(&run), [(0, 2), (0, 3)], "the run that continues the partition; 5 is after a gap, partition 1 is not known");

        handled.handled(&run);
        let mut fetched = vec![record(topic, 0, 2), record(topic, 0, 3), record(topic, 0, 4), record(topic, 1, 7)];
        handled.drop_handled(&mut fetched);
        assert_eq!(offsets(&fetched), [(0, 4), (1, 7)]);

        handled.forget(&(topic.to_string(), 0));
        appended(record(topic, 0, 5));
        let first = loopback.recv().await;
        assert!(handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await.is_empty(), "a forgotten partition comes by fetch again");
    }

    #[tokio::test]
    async fn a_partition_the_reader_does_not_accept_and_the_cap_leave_records_to_the_fetch() {
        let topic = "loopback.test.accept";
        let mut loopback = Loopback::subscribe([topic]);
        let mut handled = Handled::starting_at([((topic.to_string(), 0), 10), ((topic.to_string(), 1), 10)].into());
        for offset in 10..14 {
            appended(record(topic, 0, offset));
            appended(record(topic, 1, offset));
        }
        let first = loopback.recv().await;
        let run = handled.take_run(first, &mut loopback, 3, Duration::ZERO, |partition| partition == 0).await;
        assert_eq!(offsets(&run), [(0, 10), (0, 11), (0, 12)]);
    }

    #[tokio::test]
    async fn an_append_acknowledged_before_the_one_ahead_of_it_waits_for_it() {
        let topic = "loopback.test.order";
        let mut loopback = Loopback::subscribe([topic]);
        let mut handled = Handled::starting_at([((topic.to_string(), 0), 10)].into());
        appended(record(topic, 0, 11));
        let first = loopback.recv().await;
        assert!(handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await.is_empty(), "11 waits for 10");
        appended(record(topic, 0, 10));
        appended(record(topic, 0, 13));
        let first = loopback.recv().await;
        let run = handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await;
        assert_eq!(offsets(&run), [(0, 10), (0, 11)], "10 closes the gap; 13 waits for 12");
        handled.handled(&run);
        handled.handled(&[record(topic, 0, 12), record(topic, 0, 13)]);
        appended(record(topic, 0, 14));
        let first = loopback.recv().await;
        let run = handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await;
        assert_eq!(offsets(&run), [(0, 14)], "the fetch brought 12 and 13: the held 13 is gone, not taken twice");
        handled.handled(&run);

        appended(record(topic, 0, 16));
        let first = loopback.recv().await;
        assert!(handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await.is_empty(), "16 waits for 15");
        handled.handled(&[record(topic, 0, 15)]);
        appended(record(topic, 0, 17));
        let first = loopback.recv().await;
        let run = handled.take_run(first, &mut loopback, 10, Duration::ZERO, |_| true).await;
        assert_eq!(offsets(&run), [(0, 16), (0, 17)], "the fetch closed the gap: the held 16 goes first");
    }

    #[test]
    fn nobody_listening_costs_no_copy() {
        appended(record("loopback.test.nobody", 0, 0));
        let mut loopback = Loopback::subscribe(["loopback.test.nobody"]);
        assert!(loopback.try_recv().is_none(), "a reader sees only what was appended after it subscribed");
    }

    #[test]
    fn the_lag_reporter_sees_where_the_reader_stands_as_it_handles_and_forgets() {
        let topic = "loopback.test.stands";
        let mut handled = Handled::starting_at([((topic.to_string(), 2), 9)].into());
        let stands = handled.stands();
        handled.handled(&[record(topic, 0, 4), record(topic, 0, 5), record(topic, 1, 2)]);
        let now = || stands.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(now(), [((topic.to_string(), 0), 6), ((topic.to_string(), 1), 3), ((topic.to_string(), 2), 9)].into());
        handled.forget(&(topic.to_string(), 1));
        assert_eq!(now(), [((topic.to_string(), 0), 6), ((topic.to_string(), 2), 9)].into());
    }
}

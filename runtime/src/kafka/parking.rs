//! Idle loops stop fetching and ask for the partitions' end offsets instead.
//!
//! A consumer that is caught up keeps a fetch open at the broker all the time. Apache Kafka
//! parks such a fetch until a record arrives, so it costs nothing. Nisshi 0.8.1 instead polls
//! its storage for every partition of the fetch, at sleeps of half the time left, and never
//! wakes on produce: a fetch with `fetch.wait.max.ms` = 250 ms costs it about ten rounds of a
//! metadata lookup and an offset lookup per topic, whether or not records come. With the
//! system's thirty-odd consumers that was most of a core while nothing happened.
//!
//! So a loop that has seen no record for [`Pace::park_after`] pauses its partitions (no more
//! fetches) and asks the broker for their end offsets every [`Pace::idle_probe`], one
//! ListOffsets request for all of them: one storage lookup per partition. As soon as an end
//! moved, a partition came or went, or the question failed, it resumes them all and fetches
//! as before. A record therefore waits up to about one probe interval for a parked loop: on the
//! saga's path 100 ms.
//!
//! A loop parks only when it is caught up: each partition's position is the high watermark
//! librdkafka cached from the last fetch response. The position is the record after the last one
//! handed to the loop; for a partition that handed over nothing since the assignment, where the
//! loop started (a projection's checkpoint, a group's committed offset, else the log start). A
//! fetch answer can carry a higher watermark without the records (a broker out of time for the
//! read, a result dropped by librdkafka because the partition was paused meanwhile), so the end
//! alone proves nothing. The end is what a probe compares with: whatever landed after that
//! response counts as new and no record is left behind. Pausing keeps librdkafka's position at
//! the last record handed to the loop.
//!
//! The longer a loop stays parked, the less often it asks: after a tenth of the time it has
//! been parked, never more often than [`Pace::idle_probe`] and at least every
//! [`Pace::quiet_probe`] (3 s). A record after a quiet minute waits up to a few seconds; a
//! system nobody uses costs the broker a few lookups a second in all. What wakes a quiet
//! system is a command or a record, and the process that sees it first tells its other parked
//! loops ([`wake_parked_loops`]): they probe at once and count as just parked, so the saga's
//! steps inside one service pay nothing, and each service it crosses pays one slow probe, once.
//!
//! A loop that takes its own process's appends ahead of their fetch ([`Handled`], the command
//! writers) parks under load too: what its fetch brings then is copies of records it has
//! handled, which are no news. It stands where it has handled, and its probes compare the ends
//! with that; a record of another process moves an end past it and resumes the fetch. One of
//! its own records still on the way to it (acknowledged, not yet handed over) moves an end as
//! well, so such a loop resumes only when a second probe finds it standing where it stood at
//! the first: a record it cannot take in order (another process's) stops it from moving on.
//! On resuming, it seeks to where it stands, so the fetch brings no copies.
use super::{
    clients::{cached_watermarks, committed_offset, loop_position},
    loopback::Handled,
};
use crate::kafka::Pace;
use rdkafka::{
    Offset, TopicPartitionList,
    consumer::{Consumer, ConsumerContext, StreamConsumer},
    error::KafkaError,
    message::OwnedMessage,
};
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, LazyLock},
    time::Duration,
};
use tokio::{sync::watch, time::Instant};

/// How long the end-offset question may take; an answer that does not come in time resumes
/// fetching (the safe side).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

type Partition = (String, i32);

/// Each parked partition's end offset.
type Ends = HashMap<Partition, i64>;

/// Gauge: 1 while the loop named by the `loop` label is parked, 0 while it fetches.
pub const CONSUMER_PARKED: &str = "orderflow_consumer_parked";

/// Bumped whenever something in this process says records are coming; every [`Parking`]
/// watches it.
static WAKE: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::channel(0).0);

/// Tells every parked loop of this process to probe now and quickly again: records
/// are coming (a loop found some after a quiet spell, or this process has just sent a
/// command). Cheap; a loop that is fetching ignores it.
pub fn wake_parked_loops() {
    WAKE.send_modify(|generation| *generation = generation.wrapping_add(1));
}

/// One loop's fetching state: fetching while records come, parked while none do.
pub struct Parking {
    pace: Pace,
    parked_gauge: metrics::Gauge,
    last_record: Instant,
    parked: Option<Parked>,
    /// Where the loop started reading partitions it has had no record of yet, when it knows.
    starts: HashMap<Partition, i64>,
    /// Wake-ups from this process ([`wake_parked_loops`]).
    woken: watch::Receiver<u64>,
}

/// What a parked loop paused, and the end offset each partition had then.
struct Parked {
    paused: TopicPartitionList,
    ends: Ends,
    /// When to ask next; kept here so that a caller's own timer cutting the wait short does
    /// not put the question off.
    next_probe: Instant,
    /// Since when the loop has been parked, or was last woken: the probes slow down with it.
    since: Instant,
    /// When the loop parked or last probed: a wake-up probes no sooner than the pace's quick
    /// interval after it.
    probed_at: Instant,
    /// For a loop its process feeds: where it stood when a probe last found an end past it.
    suspect: Option<Ends>,
}

/// How much of the time a loop has been parked it waits for its next probe.
const QUIET_BACKOFF_DIVISOR: u32 = 10;

impl Parked {
    /// A tenth of the time parked, between the pace's quick and quiet probe intervals.
    fn probe_interval(&self, pace: Pace, now: Instant) -> Duration {
        (now.saturating_duration_since(self.since) / QUIET_BACKOFF_DIVISOR).clamp(pace.idle_probe(), pace.quiet_probe())
    }

    /// Probe now, or a quick probe interval after the last probe if that is later, and count as
    /// just parked. Under load a process sends commands all the time and each one wakes its
    /// parked loops: probing at every wake-up cost the broker a ListOffsets per command and
    /// parked loop (order-svc alone sent 54 a second at 1,200 orders/min). A suspicion keeps its
    /// second look, which must come a probe interval after the first to prove the loop stuck.
    fn wake(&mut self, pace: Pace, now: Instant) {
        if self.suspect.is_none() {
            self.next_probe = now.max(self.probed_at + pace.idle_probe());
        }
        self.since = now;
    }

    /// A fed loop stands where it has handled: the records it took from its own process while
    /// parked moved it on.
    fn stand_where(&mut self, handled: &Handled) {
        for (partition, end) in &mut self.ends {
            if let Some(next) = handled.next_of(partition) {
                *end = (*end).max(next);
            }
        }
    }
}

impl Parking {
    /// `loop_name` labels the loop's [`CONSUMER_PARKED`] gauge.
    pub fn new(pace: Pace, loop_name: &str) -> Self {
        let parked_gauge = metrics::gauge!(CONSUMER_PARKED, "loop" => loop_name.to_string());
        parked_gauge.set(0.0);
        Parking { pace, parked_gauge, last_record: Instant::now(), parked: None, starts: HashMap::new(), woken: WAKE.subscribe() }
    }

    /// The offsets a consumer of assigned partitions (no group, no committed offsets) started at.
    pub fn starting_at(mut self, starts: HashMap<Partition, i64>) -> Self {
        self.starts = starts;
        self
    }

    /// Waits for one record, then takes whatever else arrives within `linger`, up to `max`.
    /// Not cancellation-safe once the first record is in: a caller with a timer of its own
    /// selects on [`Self::next_record`] and calls [`super::consume::batch_after`] itself.
    pub async fn next_batch<C: ConsumerContext + 'static>(
        &mut self,
        consumer: &Arc<StreamConsumer<C>>,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<OwnedMessage>, KafkaError> {
        let first = self.next_record(consumer).await?;
        let batch = super::consume::batch_after(consumer, first, max, linger).await?;
        self.last_record = Instant::now();
        Ok(batch)
    }

    /// [`Parking::next_batch`], or an empty batch as soon as `interrupt` completes while no
    /// record has come yet (a record already taken is always handed over in a batch).
    ///
    /// `handled` is where a loop its own process feeds stands ([`Handled`]; empty for the rest):
    /// records it has handled already are copies, and no news.
    pub(crate) async fn next_batch_or<C: ConsumerContext + 'static>(
        &mut self,
        consumer: &Arc<StreamConsumer<C>>,
        max: usize,
        linger: Duration,
        handled: &Handled,
        interrupt: impl Future<Output = ()>,
    ) -> Result<Vec<OwnedMessage>, KafkaError> {
        // `next_fed` is cancellation-safe, so giving it up for `interrupt` loses no record.
        let first = tokio::select! {
            first = self.next_fed(consumer, handled) => first?,
            () = interrupt => return Ok(Vec::new()),
        };
        let batch = super::consume::batch_after(consumer, first, max, linger).await?;
        if batch.iter().any(|record| !handled.has(record)) {
            self.last_record = Instant::now();
        }
        Ok(batch)
    }

    /// The next record, parking and probing while none comes. Cancellation-safe: a wait cut
    /// short loses no record, and a parked loop stays parked until its next call.
    pub async fn next_record<C: ConsumerContext + 'static>(&mut self, consumer: &Arc<StreamConsumer<C>>) -> Result<OwnedMessage, KafkaError> {
        self.next_fed(consumer, &Handled::default()).await
    }

    async fn next_fed<C: ConsumerContext + 'static>(
        &mut self,
        consumer: &Arc<StreamConsumer<C>>,
        handled: &Handled,
    ) -> Result<OwnedMessage, KafkaError> {
        loop {
            let Some(next_probe) = self.parked.as_ref().map(|parked| parked.next_probe) else {
                let quiet_until = self.last_record + self.pace.park_after();
                // Copies keep a fed loop's fetch busy: quiet means no news, whatever comes.
                if handled.is_fed() && Instant::now() >= quiet_until {
                    self.park(consumer, handled).await?;
                    continue;
                }
                match tokio::time::timeout_at(quiet_until, consumer.recv()).await {
                    Ok(received) => return self.received(consumer, handled, received.map(|m| m.detach())),
                    Err(_) => self.park(consumer, handled).await?,
                }
                continue;
            };
            // Rebalances are served inside `recv`, so it keeps running while parked: a
            // partition assigned meanwhile is not paused and its records come in here.
            tokio::select! {
                received = consumer.recv() => return self.received(consumer, handled, received.map(|m| m.detach())),
                () = tokio::time::sleep_until(next_probe) => self.probe(consumer, handled).await?,
                Ok(()) = self.woken.changed() => {
                    if let Some(parked) = &mut self.parked {
                        parked.wake(self.pace, Instant::now());
                    }
                }
            }
        }
    }

    fn received<C: ConsumerContext>(
        &mut self,
        consumer: &StreamConsumer<C>,
        handled: &Handled,
        received: Result<OwnedMessage, KafkaError>,
    ) -> Result<OwnedMessage, KafkaError> {
        let message = received?;
        if handled.has(&message) {
            return Ok(message);
        }
        if let Some(parked) = self.parked.take() {
            // The fetcher is awake (this record came from a partition it did not pause).
            consumer.resume(&with_assignment(consumer, parked.paused)?)?;
            self.parked_gauge.set(0.0);
            tracing::debug!("a record came: fetching resumed");
            self.wake_the_others();
        }
        self.last_record = Instant::now();
        Ok(message)
    }

    /// Fetches again if parked, until the loop next finds itself quiet. For a loop held by an
    /// operator's pause: it neither probes nor takes records while held, so parked, its cached
    /// watermarks would stand still and its lag never show.
    pub fn unpark<C: ConsumerContext>(&mut self, consumer: &StreamConsumer<C>) -> Result<(), KafkaError> {
        if let Some(parked) = self.parked.take() {
            consumer.resume(&with_assignment(consumer, parked.paused)?)?;
            self.parked_gauge.set(0.0);
            self.last_record = Instant::now();
        }
        Ok(())
    }

    /// Pauses every assigned partition if the loop is caught up (see the module's comment),
    /// remembering each one's end. Otherwise it keeps fetching for another quiet period.
    async fn park<C: ConsumerContext + 'static>(&mut self, consumer: &Arc<StreamConsumer<C>>, handled: &Handled) -> Result<(), KafkaError> {
        self.last_record = Instant::now();
        let (client, starts, stands) = (consumer.clone(), self.starts.clone(), handled.positions());
        let (assignment, ends) = match tokio::task::spawn_blocking(move || caught_up_ends(&client, &starts, &stands)).await {
            Ok(Ok(Some(caught_up))) => caught_up,
            Ok(Ok(None)) | Err(_) => return Ok(()),
            Ok(Err(error)) => {
                tracing::debug!(%error, "positions not known; fetching on");
                return Ok(());
            }
        };
        consumer.pause(&assignment)?;
        tracing::debug!(partitions = ends.len(), "no records for a while: fetching paused, end offsets probed");
        self.parked_gauge.set(1.0);
        // Wake-ups from before the loop parked are for a loop that was fetching anyway.
        self.woken.borrow_and_update();
        let now = Instant::now();
        self.parked = Some(Parked { paused: assignment, ends, next_probe: now + self.pace.idle_probe(), since: now, probed_at: now, suspect: None });
        Ok(())
    }

    /// Probes a parked loop's partitions and resumes fetching when an end offset differs from
    /// the one it parked at, the assignment holds a partition it did not park, or the broker did
    /// not answer.
    ///
    /// librdkafka notices a resumed partition only when its broker thread next wakes, which with
    /// nothing else to do is up to a second later: a second ListOffsets request right after the
    /// resume wakes it, so the fetch goes out at once.
    async fn probe<C: ConsumerContext + 'static>(&mut self, consumer: &Arc<StreamConsumer<C>>, handled: &Handled) -> Result<(), KafkaError> {
        let Some(parked) = &mut self.parked else { return Ok(()) };
        parked.probed_at = Instant::now();
        let fed = handled.is_fed();
        if fed {
            parked.stand_where(handled);
        }
        // A loop its process feeds resumes only when it has not moved since a probe found an
        // end past it; until then, a record on its way here may explain the end.
        let may_resume = !fed || parked.suspect.as_ref() == Some(&parked.ends);
        let (client, ends, paused) = (consumer.clone(), parked.ends.clone(), parked.paused.clone());
        let probed = tokio::task::spawn_blocking(move || -> Result<Vec<Partition>, KafkaError> {
            let mut moved_now = match end_offsets(&client, &ends) {
                Ok(now) => {
                    moved(&ends, now.elements().iter().map(|e| ((e.topic().to_string(), e.partition()), e.error().ok().and(offset_of(e.offset())))))
                }
                Err(error) => {
                    tracing::debug!(%error, "end offsets not known; fetching again");
                    ends.keys().cloned().collect()
                }
            };
            moved_now.extend(
                client
                    .assignment()?
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .filter(|partition| !ends.contains_key(partition)),
            );
            if !moved_now.is_empty() && may_resume {
                client.resume(&with_assignment(&*client, paused)?)?;
                if fed {
                    seek_to(&client, &ends);
                }
                let _ = end_offsets(&client, &ends);
            }
            Ok(moved_now)
        })
        .await;
        match probed {
            Ok(Ok(moved_now)) if !moved_now.is_empty() && !may_resume => {
                if let Some(parked) = &mut self.parked {
                    parked.suspect = Some(parked.ends.clone());
                    parked.next_probe = Instant::now() + self.pace.idle_probe();
                }
            }
            Ok(Ok(moved_now)) if !moved_now.is_empty() => {
                tracing::debug!(partitions = ?moved_now, "a parked partition moved: fetching resumed");
                self.parked = None;
                self.parked_gauge.set(0.0);
                self.last_record = Instant::now();
                self.wake_the_others();
            }
            Ok(Err(error)) => return Err(error),
            _ => {
                if let Some(parked) = &mut self.parked {
                    let now = Instant::now();
                    parked.suspect = None;
                    parked.next_probe = now + parked.probe_interval(self.pace, now);
                }
            }
        }
        Ok(())
    }

    /// [`wake_parked_loops`], but for the others: this loop is awake already.
    fn wake_the_others(&mut self) {
        wake_parked_loops();
        self.woken.borrow_and_update();
    }
}

impl Drop for Parking {
    /// A loop that ends (to be restarted with a new consumer) fetches no more either way; its
    /// gauge stops saying parked.
    fn drop(&mut self) {
        self.parked_gauge.set(0.0);
    }
}

/// The assignment and each partition's end as of the last fetch response, when every assigned
/// partition's position is that end; `None` when one is behind, has no known end, or nothing is
/// assigned. Blocking: it may ask the group coordinator for committed offsets.
fn caught_up_ends<C: ConsumerContext>(
    consumer: &StreamConsumer<C>,
    starts: &HashMap<Partition, i64>,
    handled: &HashMap<Partition, i64>,
) -> Result<Option<(TopicPartitionList, Ends)>, KafkaError> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(None);
    }
    let positions = consumer.position()?;
    let mut committed: Option<TopicPartitionList> = None;
    let mut ends = HashMap::new();
    for element in assignment.elements() {
        let partition = (element.topic().to_string(), element.partition());
        let Some((low, end)) = cached_watermarks(consumer.client(), &partition.0, partition.1) else { return Ok(None) };
        let position = loop_position(&positions, starts, (&partition.0, partition.1), low, || {
            let committed = match &committed {
                Some(committed) => committed,
                None => committed.insert(consumer.committed_offsets(assignment.clone(), PROBE_TIMEOUT)?),
            };
            Ok::<_, KafkaError>(committed_offset(committed, &partition.0, partition.1))
        })?;
        // A fed loop may stand past the end its fetch last saw; any other loop is caught up
        // only at that end.
        let stands = match handled.get(&partition) {
            Some(next) if position.max(*next) >= end => position.max(*next),
            None if position == end => end,
            _ => return Ok(None),
        };
        ends.insert(partition, stands);
    }
    Ok(Some((assignment, ends)))
}

/// `paused` and whatever else is assigned now (a partition revoked and given back while parked
/// keeps librdkafka's pause flag).
fn with_assignment<C: ConsumerContext>(consumer: &StreamConsumer<C>, mut paused: TopicPartitionList) -> Result<TopicPartitionList, KafkaError> {
    for element in consumer.assignment()?.elements() {
        if paused.find_partition(element.topic(), element.partition()).is_none() {
            paused.add_partition(element.topic(), element.partition());
        }
    }
    Ok(paused)
}

/// Moves the fetch position of every partition to where the loop stands, so that a fed loop's
/// resumed fetch does not bring again what it handled while parked. Best effort: a copy that
/// still comes is passed over by offset.
fn seek_to<C: ConsumerContext>(consumer: &StreamConsumer<C>, stands: &Ends) {
    for ((topic, partition), next) in stands {
        if let Err(error) = consumer.seek(topic, *partition, Offset::Offset(*next), PROBE_TIMEOUT) {
            tracing::debug!(%error, topic, partition, "seek after parking failed; copies are passed over");
        }
    }
}

/// A ListOffsets "latest" for every partition at once: what a produce moved.
fn end_offsets<C: ConsumerContext>(consumer: &StreamConsumer<C>, ends: &Ends) -> Result<TopicPartitionList, KafkaError> {
    let mut latest = TopicPartitionList::new();
    for (topic, partition) in ends.keys() {
        latest.add_partition_offset(topic, *partition, Offset::End)?;
    }
    consumer.offsets_for_times(latest, PROBE_TIMEOUT)
}

fn offset_of(offset: Offset) -> Option<i64> {
    match offset {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// The partitions whose probed end differs from the one parked at; a partition the answer lacks,
/// or whose end is unknown, counts as moved.
fn moved(parked_at: &Ends, now: impl Iterator<Item = (Partition, Option<i64>)>) -> Vec<Partition> {
    let mut answered = HashSet::new();
    let mut moved = Vec::new();
    for (partition, end) in now {
        if end.is_none() || parked_at.get(&partition) != end.as_ref() {
            moved.push(partition.clone());
        }
        answered.insert(partition);
    }
    moved.extend(parked_at.keys().filter(|partition| !answered.contains(*partition)).cloned());
    moved
}

#[cfg(test)]
mod tests {
    use super::{Parked, moved};
    use crate::kafka::{Pace, loopback::Handled};
    use rdkafka::TopicPartitionList;
    use std::{collections::HashMap, time::Duration};
    use tokio::time::Instant;

    #[test]
    fn a_parked_loop_probes_less_the_longer_it_is_quiet_and_a_wake_up_makes_it_quick_again() {
        let parked_at = Instant::now();
        let mut parked = Parked {
            paused: TopicPartitionList::new(),
            ends: HashMap::new(),
            next_probe: parked_at,
            since: parked_at,
            probed_at: parked_at,
            suspect: None,
        };
        let after = |secs: u64| parked_at + Duration::from_secs(secs);
        assert_eq!(parked.probe_interval(Pace::Saga, parked_at), Pace::Saga.idle_probe(), "quick while just parked");
        assert_eq!(parked.probe_interval(Pace::Saga, after(20)), Duration::from_secs(2), "a tenth of the time parked");
        assert_eq!(parked.probe_interval(Pace::Saga, after(3_600)), Pace::Saga.quiet_probe(), "at least every quiet probe");
        assert_eq!(parked.probe_interval(Pace::Background, after(5)), Pace::Background.idle_probe(), "never quicker than the pace's own");
        parked.wake(Pace::Saga, after(3_600));
        assert_eq!(parked.next_probe, after(3_600), "a wake-up probes at once");
        assert_eq!(parked.probe_interval(Pace::Saga, after(3_600)), Pace::Saga.idle_probe(), "and quickly again");
        parked.probed_at = after(3_600);
        parked.wake(Pace::Saga, after(3_600) + Duration::from_millis(1));
        assert_eq!(parked.next_probe, after(3_600) + Pace::Saga.idle_probe(), "but not sooner than a quick interval after the last probe");
        parked.suspect = Some(HashMap::new());
        parked.next_probe = after(3_601);
        parked.wake(Pace::Saga, after(3_600));
        assert_eq!(parked.next_probe, after(3_601), "a suspicion's second look is not moved forward");
    }

    #[test]
    fn a_fed_parked_loop_stands_where_it_has_handled_and_never_goes_back() {
        let partition = |topic: &str| (topic.to_string(), 0);
        let now = Instant::now();
        let ends: HashMap<(String, i32), i64> = [(partition("order.commands"), 10), (partition("stock.events"), 4)].into();
        let mut parked = Parked { paused: TopicPartitionList::new(), ends, next_probe: now, since: now, probed_at: now, suspect: None };
        let handled = Handled::starting_at([(partition("order.commands"), 13), (partition("stock.events"), 2)].into());
        parked.stand_where(&handled);
        assert_eq!(parked.ends[&partition("order.commands")], 13, "its own appends taken while parked moved it on");
        assert_eq!(parked.ends[&partition("stock.events")], 4, "an older position does not move it back");
        assert!(handled.has(&record("order.commands", 12)) && !handled.has(&record("order.commands", 13)));
    }

    fn record(topic: &str, offset: i64) -> rdkafka::message::OwnedMessage {
        rdkafka::message::OwnedMessage::new(None, None, topic.into(), rdkafka::Timestamp::NotAvailable, 0, offset, None)
    }

    #[test]
    fn a_parked_loop_fetches_again_when_an_end_moved_or_is_not_known() {
        let parked: HashMap<(String, i32), i64> = [(("order.events".to_string(), 0), 10), (("stock.events".to_string(), 0), 4)].into();
        let probe = |list: &[(&str, Option<i64>)]| {
            let mut moved = moved(&parked, list.iter().map(|(topic, end)| ((topic.to_string(), 0), *end)));
            moved.sort();
            moved.into_iter().map(|(topic, _)| topic).collect::<Vec<_>>()
        };
        assert!(probe(&[("order.events", Some(10)), ("stock.events", Some(4))]).is_empty(), "nothing new");
        assert_eq!(probe(&[("order.events", Some(11)), ("stock.events", Some(4))]), ["order.events"], "a produce");
        assert_eq!(probe(&[("order.events", Some(3)), ("stock.events", Some(4))]), ["order.events"], "a replaced log");
        assert_eq!(probe(&[("order.events", None), ("stock.events", Some(5))]), ["order.events", "stock.events"], "unknown, and a produce");
        assert_eq!(probe(&[("order.events", Some(10))]), ["stock.events"], "a partition not answered");
    }
}

//! The delivery loop: follows `notification.events` as a member of a consumer group (only the
//! owner of partition p delivers p's notifications), makes the attempts the [`Scheduler`] hands
//! out, each in a task of its own with a timeout, and records every outcome as a command of the
//! Notification aggregate on `notification.commands`.
//!
//! * On (re)assignment a partition is read to its end before anything of it is sent, so its
//!   delivered and parked notifications are known (the checkpoint is the log). The read starts
//!   at the oldest notification that was still waiting when the loop last committed, not at
//!   offset 0: everything before it was delivered or parked. That offset is the committed
//!   offset of a group of its own ([`REBUILD_FROM_GROUP`]; commit metadata would do, but Nisshi
//!   0.8.1 does not return it). The version rule's history before that point comes from the
//!   writer's snapshots ([`AcceptedHistory`]), so a restart reads what is live, not all history.
//! * A webhook failure is an outcome, never an error of the loop: the loop ends (and its
//!   supervisor starts it again, rebuilding from the log) only when Kafka or the registry fails.
//! * A parked notification's `NotificationSent` record goes to `notification.events.dlq`
//!   (`dlq.error.kind` `undeliverable`, the reason, `dlq.attempts`) before `ParkDelivery` is
//!   produced: a crash in between parks it again (a second dead letter), never loses it.
//! * An event record that never decodes is dead-lettered there too (kind as the codec says),
//!   once: the group's committed offset tells the records it handled already.
//! * It pauses with the reactors (`/admin/pause?kind=policy`): attempts under way finish, their
//!   outcomes are recorded after the resume.
use super::DeliveryConfig;
use super::scheduler::{Failure, Notice, NotificationKey, Outcome, Scheduler};
use crate::notification::MAX_DELIVERY_ERROR_CHARS;
use crate::sender::{Delivery, NotificationSender};
use contracts::notification::{Notification, NotificationCommand};
use contracts::{CommandEnvelope, Stream};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext},
    error::KafkaError,
    message::OwnedMessage,
};
use runtime::kafka::{self, CodecError, DeliveryError, EventCodec, GroupConsumer, KafkaSetupError, Outbox, Outgoing, Pace, Read};
use runtime::{AcceptedHistory, HistoryGuard, LoopError, Service, command_id_for_reaction};
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::task::JoinSet;

/// Name of the loop: its consumer group is `<service>.<NAME>`, and it is part of every command
/// id it derives.
pub const NAME: &str = "notify-delivery";
/// Longest the loop sleeps without looking at its assignment (a partition given to it must be
/// rebuilt even when no event comes) and at its offsets to commit.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Records read per step while rebuilding a partition, so its history is never all in memory.
const REBUILD_CHUNK: i64 = 2_000;
/// The consumer group of the service's delivery before outcomes were recorded (a subscription
/// named `notify-deliver`): its committed offsets say how far it delivered.
const HANDED_OVER_GROUP: &str = "notify-deliver";
/// The group (`<service>.<NAME>.<this>`) whose committed offset of a partition is where the
/// next rebuild of it starts. Nobody joins it: the loop only commits and reads its offsets.
const REBUILD_FROM_GROUP: &str = "rebuild-from";

#[derive(Debug, thiserror::Error)]
pub enum DeliveryLoopError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Setup(#[from] KafkaSetupError),
    #[error(transparent)]
    Produce(#[from] DeliveryError),
    #[error("event codec: {0}")]
    Codec(#[from] CodecError),
    #[error("encoding a command: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("blocking task: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("the accepted history: {0}")]
    History(#[from] LoopError),
}

pub struct DeliveryLoop {
    config: DeliveryConfig,
    sender: Arc<dyn NotificationSender>,
    codec: Arc<EventCodec<Notification>>,
    history: AcceptedHistory<Notification>,
    brokers: String,
    group_id: String,
    handed_over_group_id: String,
    rebuild_from_group_id: String,
}

/// A partition this member owns: its accepted history (the version rule), where its rebuild
/// stopped, how far it was read since (the offset to commit), and what was last committed.
struct Owned {
    guard: HistoryGuard,
    rebuilt_until: i64,
    read_until: i64,
    committed: Checkpoint,
}

/// A partition's commit: the records handled before `until`, and the oldest notification
/// still waiting at `rebuild_from` (at most `until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    until: i64,
    rebuild_from: i64,
}

/// The Kafka clients of one run.
struct Clients {
    consumer: Arc<GroupConsumer>,
    /// A member of the earlier delivery's group that never subscribes: asked for its offsets.
    handed_over: Arc<GroupConsumer>,
    /// Keeps where each partition's next rebuild starts, as its group's committed offsets.
    rebuild_from: Arc<BaseConsumer>,
    reader: Arc<BaseConsumer>,
    producer: kafka::KafkaProducer,
    command_partitions: i32,
}

/// The attempts under way, each a task of its own: a slow receiver holds up nobody else.
type Attempts = JoinSet<Result<(), Failure>>;

impl DeliveryLoop {
    pub fn new(
        config: DeliveryConfig,
        sender: Arc<dyn NotificationSender>,
        codec: Arc<EventCodec<Notification>>,
        history: AcceptedHistory<Notification>,
        brokers: &str,
        service: &str,
    ) -> Self {
        DeliveryLoop {
            config,
            sender,
            codec,
            history,
            brokers: brokers.to_string(),
            group_id: format!("{service}.{NAME}"),
            handed_over_group_id: format!("{service}.{HANDED_OVER_GROUP}"),
            rebuild_from_group_id: format!("{service}.{NAME}.{REBUILD_FROM_GROUP}"),
        }
    }

    /// How `/ready` names the loop.
    pub fn label() -> String {
        format!("{} reactor {NAME}", Notification::EVENTS_TOPIC)
    }

    /// Runs until Kafka or the registry fails; the caller starts it again, which rebuilds every
    /// pending delivery from the log.
    pub async fn run(&self) -> Result<(), DeliveryLoopError> {
        let consumer = Arc::new(kafka::group_consumer(&self.brokers, &self.group_id, Pace::Background).await?);
        let command_partitions = {
            let consumer = consumer.clone();
            tokio::task::spawn_blocking(move || kafka::partition_count(&*consumer, Notification::COMMANDS_TOPIC)).await??
        };
        let clients = Clients {
            consumer,
            handed_over: Arc::new(kafka::group_consumer(&self.brokers, &self.handed_over_group_id, Pace::Background).await?),
            rebuild_from: Arc::new(kafka::offsets_keeper(&self.brokers, &self.rebuild_from_group_id)?),
            reader: Arc::new(kafka::reader(&self.brokers)?),
            producer: kafka::producer(&self.brokers)?,
            command_partitions,
        };
        clients.consumer.subscribe(&[Notification::EVENTS_TOPIC])?;
        tracing::info!(topic = Notification::EVENTS_TOPIC, group = %self.group_id, "notification delivery started");
        let mut scheduler: Scheduler<OwnedMessage> = Scheduler::new(self.config.retry, self.config.breaker, self.config.max_in_flight);
        let mut owned: HashMap<i32, Owned> = HashMap::new();
        let mut attempts = Attempts::new();
        let mut keys_of_attempts: HashMap<tokio::task::Id, NotificationKey> = HashMap::new();
        let mut last_commit = Instant::now();
        let mut parking = kafka::Parking::new(Pace::Background, &self.group_id);
        loop {
            Service::wait_while_reactors_paused().await;
            self.follow_assignment(&clients, &mut scheduler, &mut owned).await?;
            self.start_due(&mut scheduler, &mut attempts, &mut keys_of_attempts);
            let wait = scheduler.next_due().map_or(IDLE_CHECK, |due_ms| until(due_ms).min(IDLE_CHECK));
            tokio::select! {
                received = parking.next_record(&clients.consumer) => {
                    let message = received?;
                    // The `recv` may have served a rebalance.
                    self.follow_assignment(&clients, &mut scheduler, &mut owned).await?;
                    if let Some(partition) = owned.get_mut(&message.partition())
                        && message.offset() >= partition.rebuilt_until
                    {
                        self.fold(&clients, partition, &mut scheduler, &message, true).await?;
                        partition.read_until = message.offset() + 1;
                    }
                }
                Some(ended) = attempts.join_next_with_id() => {
                    let (id, result) = match ended {
                        Ok((id, result)) => (id, result),
                        Err(join_error) => {
                            let error = format!("the attempt failed: {join_error}");
                            (join_error.id(), Err(Failure { error, retryable: true }))
                        }
                    };
                    if let Some(key) = keys_of_attempts.remove(&id)
                        && let Some(outcome) = scheduler.finish(&key, result, now_millis())
                    {
                        self.record(&clients, outcome).await?;
                    }
                }
                () = tokio::time::sleep(wait) => {}
            }
            gauge_state(&scheduler);
            if last_commit.elapsed() >= IDLE_CHECK {
                commit(&clients, &mut owned, &scheduler)?;
                last_commit = Instant::now();
            }
        }
    }

    fn start_due(
        &self,
        scheduler: &mut Scheduler<OwnedMessage>,
        attempts: &mut Attempts,
        keys_of_attempts: &mut HashMap<tokio::task::Id, NotificationKey>,
    ) {
        let due = scheduler.start_due(now_millis());
        if due.deferred > 0 {
            metrics::counter!(ATTEMPTS_TOTAL, "outcome" => "deferred").increment(due.deferred as u64);
        }
        for attempt in due.attempts {
            tracing::debug!(event_id = %attempt.delivery.event_id, customer_id = %attempt.key.customer_id, attempt = attempt.number, "delivering");
            let (sender, timeout) = (self.sender.clone(), self.config.timeout);
            let handle = attempts.spawn(deliver(sender, attempt.delivery, timeout));
            keys_of_attempts.insert(handle.id(), attempt.key);
        }
    }

    /// Drops the partitions that changed hands and rebuilds those this member owns now.
    async fn follow_assignment(
        &self,
        clients: &Clients,
        scheduler: &mut Scheduler<OwnedMessage>,
        owned: &mut HashMap<i32, Owned>,
    ) -> Result<(), DeliveryLoopError> {
        let changed = clients.consumer.context().take_changed();
        if changed.is_empty() {
            return Ok(());
        }
        let topic = Notification::EVENTS_TOPIC;
        let assigned: HashSet<i32> =
            clients.consumer.assignment()?.elements().iter().filter(|element| element.topic() == topic).map(|element| element.partition()).collect();
        for (_, partition) in changed {
            scheduler.forget(partition);
            owned.remove(&partition);
            if assigned.contains(&partition) {
                let rebuilt = self.rebuild(clients, partition, scheduler).await?;
                owned.insert(partition, rebuilt);
                scheduler.go_live(partition);
            }
        }
        Ok(())
    }

    /// Folds `partition` into the schedule, from the oldest notification that waited at the
    /// group's last commit (offset 0 without one) to the current end. Records past the
    /// committed offset were never handled: an undecodable one among them is dead-lettered now.
    /// Notifications the earlier delivery got to are recorded as delivered.
    async fn rebuild(&self, clients: &Clients, partition: i32, scheduler: &mut Scheduler<OwnedMessage>) -> Result<Owned, DeliveryLoopError> {
        let started = Instant::now();
        let topic = Notification::EVENTS_TOPIC;
        let (checkpoint, handed_over_until, (low, high)) = {
            let (consumer, handed_over, rebuild_from, reader) =
                (clients.consumer.clone(), clients.handed_over.clone(), clients.rebuild_from.clone(), clients.reader.clone());
            tokio::task::spawn_blocking(move || -> Result<_, KafkaError> {
                let checkpoint = Checkpoint { until: committed(&*consumer, partition)?, rebuild_from: committed(&*rebuild_from, partition)? };
                Ok((checkpoint, committed(&*handed_over, partition)?, kafka::watermarks(&*reader, topic, partition)?))
            })
            .await??
        };
        let handled_until = checkpoint.until;
        // A start outside what the log holds (records removed, a replaced log) or past what was
        // handled (a commit of the start that landed without its handled offset) is not trusted.
        let start = if (low..=handled_until).contains(&checkpoint.rebuild_from) { checkpoint.rebuild_from } else { low };
        let guard =
            if start > low { self.history.before(clients.reader.clone(), partition, start, &self.group_id).await? } else { HistoryGuard::default() };
        let mut owned = Owned { guard, rebuilt_until: high, read_until: high, committed: checkpoint };
        let mut from = start;
        while from < high {
            let until = (from + REBUILD_CHUNK).min(high);
            let records = {
                let reader = clients.reader.clone();
                tokio::task::spawn_blocking(move || -> Result<Vec<OwnedMessage>, KafkaError> {
                    let mut records = Vec::new();
                    kafka::read_range(&reader, topic, partition, from, until, |message| records.push(message.detach()))?;
                    Ok(records)
                })
                .await??
            };
            for record in &records {
                self.fold(clients, &mut owned, scheduler, record, record.offset() >= handled_until).await?;
            }
            from = until;
        }
        let handed_over = scheduler.settle_handed_over(partition, |record| record.offset() < handed_over_until);
        if !handed_over.is_empty() {
            // Once, at the first start after an upgrade: in one go, then they are in the log.
            let mut outbox = Outbox::new(&clients.producer);
            for notice in &handed_over {
                self.queue_command(&mut outbox, clients, notice, "delivered", 1, delivered(notice, 1))?;
            }
            outbox.flush().await?;
            tracing::info!(topic, partition, notifications = handed_over.len(), "notifications the earlier delivery got to recorded as delivered");
        }
        tracing::info!(
            topic,
            partition,
            from = start,
            records = high - start,
            pending = scheduler.pending_in(partition),
            took_ms = started.elapsed().as_millis() as u64,
            "notification deliveries rebuilt from the log"
        );
        Ok(owned)
    }

    /// One record of an owned partition, in log order. `first_read`: no member of the group
    /// handled it before (an undecodable one is dead-lettered).
    async fn fold(
        &self,
        clients: &Clients,
        owned: &mut Owned,
        scheduler: &mut Scheduler<OwnedMessage>,
        message: &OwnedMessage,
        first_read: bool,
    ) -> Result<(), DeliveryLoopError> {
        let Some(bytes) = message.payload() else { return Ok(()) };
        // A registry that cannot be reached ends the run (`?`): rebuilt without the events it
        // could not read, the schedule would send what the log says was delivered.
        match self.codec.read(bytes).await? {
            Read::Event(event) => {
                if owned.guard.accept(&event.metadata()) {
                    scheduler.apply(message.partition(), &event, || message.clone());
                } else {
                    tracing::debug!(event_id = %event.event_id, version = event.version, "event outside the accepted history skipped");
                }
            }
            Read::Undecodable { error, envelope } => {
                // It keeps its place in its aggregate's history, so the events after it apply.
                if let Some(metadata) = &envelope {
                    owned.guard.accept(metadata);
                }
                if first_read {
                    tracing::error!(
                        topic = message.topic(), partition = message.partition(), offset = message.offset(), %error,
                        aggregate_id = envelope.as_ref().map(|e| e.aggregate_id.as_str()), "undecodable event dead-lettered"
                    );
                    let mut outbox = Outbox::new(&clients.producer);
                    kafka::dead_letter(&mut outbox, message, error.kind(), &error.to_string(), &[("dlq.reader", &self.group_id)])?;
                    outbox.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Puts an outcome on the log: the command that records it (and first, for a parked
    /// notification, its dead letter), waiting for every acknowledgement.
    async fn record(&self, clients: &Clients, outcome: Outcome<OwnedMessage>) -> Result<(), DeliveryLoopError> {
        let (notice, step, number, command) = match outcome {
            Outcome::Delivered { notice, attempts } => {
                tracing::info!(event_id = %notice.delivery.event_id, customer_id = %notice.delivery.customer_id, attempts, "notification delivered");
                metrics::counter!(ATTEMPTS_TOTAL, "outcome" => "delivered").increment(1);
                let command = delivered(&notice, attempts);
                (notice, "delivered", attempts, command)
            }
            Outcome::Failed { notice, attempt, error, retry_at_ms } => {
                tracing::warn!(
                    event_id = %notice.delivery.event_id, customer_id = %notice.delivery.customer_id, attempt, %error,
                    retry_in_ms = retry_at_ms - now_millis(), "notification delivery failed; it is tried again"
                );
                metrics::counter!(ATTEMPTS_TOTAL, "outcome" => "failed").increment(1);
                let command = NotificationCommand::RecordDeliveryFailure {
                    customer_id: notice.delivery.customer_id.clone(),
                    order_id: notice.delivery.order_id.clone(),
                    kind: notice.delivery.kind,
                    attempt,
                    error,
                };
                (notice, "failed", attempt, command)
            }
            Outcome::Parked { notice, record, attempts, reason } => {
                let reason = shorten(&reason);
                tracing::error!(
                    event_id = %notice.delivery.event_id, customer_id = %notice.delivery.customer_id, attempts, %reason,
                    "notification parked: its record goes to the dead letters"
                );
                metrics::counter!(ATTEMPTS_TOTAL, "outcome" => "parked").increment(1);
                let mut outbox = Outbox::new(&clients.producer);
                let attempts_text = attempts.to_string();
                kafka::dead_letter(
                    &mut outbox,
                    &record,
                    "undeliverable",
                    &reason,
                    &[("dlq.reader", &self.group_id), ("dlq.attempts", &attempts_text)],
                )?;
                outbox.flush().await?;
                let command = NotificationCommand::ParkDelivery {
                    customer_id: notice.delivery.customer_id.clone(),
                    order_id: notice.delivery.order_id.clone(),
                    kind: notice.delivery.kind,
                    attempts,
                    reason,
                };
                (notice, "parked", attempts, command)
            }
        };
        let mut outbox = Outbox::new(&clients.producer);
        self.queue_command(&mut outbox, clients, &notice, step, number, command)?;
        outbox.flush().await?;
        Ok(())
    }

    /// Queues the outcome command of `notice`'s delivery (`step`, attempt `number`) on the
    /// partition of `notification.commands` that owns the customer.
    fn queue_command(
        &self,
        outbox: &mut Outbox<'_>,
        clients: &Clients,
        notice: &Notice,
        step: &str,
        number: i64,
        command: NotificationCommand,
    ) -> Result<(), DeliveryLoopError> {
        // Derived from the notification and the step: producing it again (after a crash) is a
        // duplicate the command processor ignores.
        let command_id = command_id_for_reaction(&notice.delivery.event_id, &format!("{NAME}/{step}"), usize::try_from(number).unwrap_or(0));
        let json = serde_json::to_vec(&CommandEnvelope { command_id: Some(command_id.clone()), command })?;
        let customer_id = &notice.delivery.customer_id;
        outbox.send(Outgoing {
            topic: Notification::COMMANDS_TOPIC,
            partition: Some(kafka::partition_for(customer_id, clients.command_partitions)),
            key: customer_id,
            payload: &json,
            headers: kafka::headers(&[
                ("correlation_id", &notice.correlation_id),
                ("causation_id", &notice.delivery.event_id),
                ("command_id", &command_id),
            ]),
        })?;
        Ok(())
    }
}

fn delivered(notice: &Notice, attempts: i64) -> NotificationCommand {
    NotificationCommand::RecordDelivered {
        customer_id: notice.delivery.customer_id.clone(),
        order_id: notice.delivery.order_id.clone(),
        kind: notice.delivery.kind,
        attempts,
    }
}

/// Counts of attempts by what became of them: `delivered`, `failed` (another follows),
/// `parked`, `deferred` (held back by the open circuit breaker, not counted as an attempt).
const ATTEMPTS_TOTAL: &str = "orderflow_notification_attempts_total";
/// Notifications sent but neither delivered nor parked, of the partitions this member owns.
const PENDING: &str = "orderflow_notifications_pending";
/// 1 while the circuit breaker in front of the webhook holds attempts back.
const BREAKER_OPEN: &str = "orderflow_notification_breaker_open";

fn gauge_state(scheduler: &Scheduler<OwnedMessage>) {
    metrics::gauge!(PENDING).set(scheduler.pending() as f64);
    metrics::gauge!(BREAKER_OPEN).set(if scheduler.breaker_open() { 1.0 } else { 0.0 });
}

/// One attempt: the sender's answer within `timeout`.
async fn deliver(sender: Arc<dyn NotificationSender>, delivery: Delivery, timeout: Duration) -> Result<(), Failure> {
    match tokio::time::timeout(timeout, sender.send(&delivery)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure { error: shorten(&error_chain(&error)), retryable: error.is_retryable() }),
        Err(_) => Err(Failure { error: format!("no answer within {} ms", timeout.as_millis()), retryable: true }),
    }
}

/// An error with its causes (`error sending request: connection refused`): reqwest's own text
/// names only the first.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// At most [`MAX_DELIVERY_ERROR_CHARS`] characters, as the outcome commands require.
fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_DELIVERY_ERROR_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(MAX_DELIVERY_ERROR_CHARS - 1).collect();
    short.push('…');
    short
}

/// The offset `consumer`'s group committed for `partition` of `notification.events` (0: none).
fn committed<X: ConsumerContext, C: Consumer<X>>(consumer: &C, partition: i32) -> Result<i64, KafkaError> {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(Notification::EVENTS_TOPIC, partition);
    let committed = consumer.committed_offsets(wanted, kafka::METADATA_TIMEOUT)?;
    Ok(match committed.find_partition(Notification::EVENTS_TOPIC, partition).map(|element| element.offset()) {
        Some(Offset::Offset(offset)) => offset,
        _ => 0,
    })
}

/// Commits how far each owned partition was read, and where its next rebuild starts (at most
/// once per [`IDLE_CHECK`]), so the next member knows which records were handled and which
/// notifications may still wait. Everything before a start is settled whatever was handled, so
/// a crash between the two commits costs at most a longer rebuild (a start past the handled
/// offset is ignored).
fn commit(clients: &Clients, owned: &mut HashMap<i32, Owned>, scheduler: &Scheduler<OwnedMessage>) -> Result<(), KafkaError> {
    let (mut handled, mut starts) = (TopicPartitionList::new(), TopicPartitionList::new());
    let mut committing = Vec::new();
    for (partition, state) in owned.iter() {
        let rebuild_from =
            scheduler.oldest_waiting(*partition, |record| record.offset()).map_or(state.read_until, |oldest| oldest.min(state.read_until));
        let checkpoint = Checkpoint { until: state.read_until, rebuild_from };
        if checkpoint.until != state.committed.until {
            handled.add_partition_offset(Notification::EVENTS_TOPIC, *partition, Offset::Offset(checkpoint.until))?;
        }
        if checkpoint.rebuild_from != state.committed.rebuild_from {
            starts.add_partition_offset(Notification::EVENTS_TOPIC, *partition, Offset::Offset(checkpoint.rebuild_from))?;
        }
        if checkpoint != state.committed {
            committing.push((*partition, checkpoint));
        }
    }
    if handled.count() > 0 {
        clients.consumer.commit(&handled, CommitMode::Async)?;
    }
    if starts.count() > 0 {
        clients.rebuild_from.commit(&starts, CommitMode::Async)?;
    }
    for (partition, checkpoint) in committing {
        if let Some(state) = owned.get_mut(&partition) {
            state.committed = checkpoint;
        }
    }
    Ok(())
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// From now until `due_ms` (epoch ms); zero when it is past.
fn until(due_ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(due_ms.saturating_sub(now_millis())).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_text_names_its_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("error sending request")]
        struct Outer(#[source] std::io::Error);
        assert_eq!(error_chain(&Outer(io)), "error sending request: connection refused");
        #[derive(Debug, thiserror::Error)]
        #[error("webhook request failed: {0}")]
        struct Repeats(#[source] std::io::Error);
        let io = std::io::Error::other("timed out");
        assert_eq!(error_chain(&Repeats(io)), "webhook request failed: timed out");
    }

    #[test]
    fn long_error_texts_are_cut_to_what_the_commands_take() {
        assert_eq!(shorten("HTTP 500"), "HTTP 500");
        let cut = shorten(&"é".repeat(MAX_DELIVERY_ERROR_CHARS + 10));
        assert_eq!(cut.chars().count(), MAX_DELIVERY_ERROR_CHARS);
        assert!(cut.ends_with('…'));
    }
}

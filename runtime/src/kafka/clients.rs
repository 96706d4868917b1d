//! rdkafka clients configured the one way this system needs them, and small helpers for
//! metadata, watermarks, bounded reads and headers.
use super::producer::KafkaProducer;
use crate::shared::number_from_env;
use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    admin::AdminClient,
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Headers, OwnedHeaders},
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::Duration,
};

pub const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How soon a live loop must see a record, which sets how long the broker may hold its fetch
/// when there is nothing new (`fetch.wait.max.ms`). Apache Kafka answers a fetch as soon as a
/// record arrives, so a long wait costs nothing there. Nisshi 0.8.1 instead re-polls its
/// storage for every partition of the fetch at sleeps of half the time left and never wakes on
/// produce: a fetch's wait is the latency it adds to a caught-up loop, its polls are broker
/// work, whether or not records come. Measured on the sqlite engine at 600 orders/min, when
/// every loop fetched all the time: 10 ms settled 104 orders/min, 100 ms 481, 250 ms all 600.
/// Since quiet loops park and a service's own records skip the fetch, only the policies that
/// follow other services fetch all the time, and the saga's 100 ms pays: at 1,000 orders/min
/// p99 0.38–0.57 s (median of three runs 0.47 s) against 0.69–0.95 s at 250 ms, for 30–40 %
/// more broker CPU at that rate; saturation and idle did not move (README, "Throughput").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// A step of the order saga (command processors, policies, the order view that
    /// `wait_for` watches): 100 ms, or `KAFKA_FETCH_WAIT_MS`.
    Saga,
    /// Nothing waits on it (other read models, command outcomes, notify-svc's policies, side
    /// effects such as notification delivery): 1 s, or `KAFKA_BACKGROUND_FETCH_WAIT_MS`. Over
    /// half of the partitions the services read are these; polling them four times less often
    /// is what the idle broker saves.
    Background,
}

impl Pace {
    /// `fetch.wait.max.ms` for a loop of this pace.
    pub fn fetch_wait(self) -> Duration {
        match self {
            Pace::Saga => millis_from_env("KAFKA_FETCH_WAIT_MS", 100),
            Pace::Background => millis_from_env("KAFKA_BACKGROUND_FETCH_WAIT_MS", 1_000),
        }
    }

    /// `fetch.min.bytes`: the bytes a fetch waits for (up to [`Pace::fetch_wait`]) before the
    /// broker answers. On the saga's path any record will do. What nothing waits on asks for
    /// fuller answers (16 KiB, or `KAFKA_BACKGROUND_FETCH_MIN_BYTES`): under load a consumer
    /// otherwise fetches again as soon as one record lands, and on Nisshi every fetch costs
    /// storage lookups per partition besides the records' own reads.
    pub fn fetch_min_bytes(self) -> u32 {
        match self {
            Pace::Saga => 1,
            Pace::Background => number_from_env(BACKGROUND_FETCH_MIN_BYTES_ENV, 16_384_u32).max(1),
        }
    }

    /// Sets this pace's fetch settings on a consumer's configuration.
    fn configure(self, config: &mut ClientConfig) {
        config.set("fetch.wait.max.ms", self.fetch_wait().as_millis().to_string()).set("fetch.min.bytes", self.fetch_min_bytes().to_string());
    }

    /// How long a loop goes without a record before it stops fetching and probes the end
    /// offsets instead (see [`super::parking`]): `KAFKA_PARK_AFTER_MS`, 1 s for either pace;
    /// `0` never parks (every loop fetches all the time, as before parking existed).
    pub fn park_after(self) -> Duration {
        match millis_from_env(PARK_AFTER_ENV, 1_000) {
            Duration::ZERO => Duration::MAX / 4,
            after => after,
        }
    }

    /// How often a loop that has just parked asks for its partitions' end offsets, which bounds
    /// how long a new record waits for it: 100 ms on the saga's path (`KAFKA_IDLE_PROBE_MS`), 1 s
    /// for the rest (`KAFKA_BACKGROUND_IDLE_PROBE_MS`). It asks less often the longer it stays
    /// parked, up to [`Pace::quiet_probe`].
    pub fn idle_probe(self) -> Duration {
        let probe = match self {
            Pace::Saga => millis_from_env(IDLE_PROBE_ENV, 100),
            Pace::Background => millis_from_env(BACKGROUND_IDLE_PROBE_ENV, 1_000),
        };
        probe.max(Duration::from_millis(1))
    }

    /// The longest a loop that stays parked goes without a probe (its probes slow down with the
    /// time it has been parked, see [`super::parking`]): 3 s, or `KAFKA_QUIET_PROBE_MS`, and
    /// never less than [`Pace::idle_probe`]. The default is the longest that kept an order
    /// after a quiet minute within a few seconds (README, "Quiet loops probe less").
    pub fn quiet_probe(self) -> Duration {
        millis_from_env(QUIET_PROBE_ENV, 3_000).max(self.idle_probe())
    }
}

/// Turns parking off with `0` (see [`Pace::park_after`]).
pub const PARK_AFTER_ENV: &str = "KAFKA_PARK_AFTER_MS";
/// The bytes a background loop's fetch waits for (see [`Pace::fetch_min_bytes`]).
pub const BACKGROUND_FETCH_MIN_BYTES_ENV: &str = "KAFKA_BACKGROUND_FETCH_MIN_BYTES";
/// A parked saga loop's probe interval in milliseconds (see [`Pace::idle_probe`]).
pub const IDLE_PROBE_ENV: &str = "KAFKA_IDLE_PROBE_MS";
/// A parked background loop's probe interval in milliseconds (see [`Pace::idle_probe`]).
pub const BACKGROUND_IDLE_PROBE_ENV: &str = "KAFKA_BACKGROUND_IDLE_PROBE_MS";
/// The longest probe interval of a loop that stays parked, in milliseconds (see [`Pace::quiet_probe`]).
pub const QUIET_PROBE_ENV: &str = "KAFKA_QUIET_PROBE_MS";

fn millis_from_env(variable: &str, default_millis: u64) -> Duration {
    Duration::from_millis(number_from_env(variable, default_millis))
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0} does not exist (run `orderctl create-topics`)")]
    MissingTopic(String),
    #[error("creating topic {topic}: {code}")]
    CreateTopic { topic: String, code: RDKafkaErrorCode },
    #[error(
        "{topic} has {now} partitions, but its log was written with {recorded} (recorded in {record_topic}): records are \
         placed by the hash of their key modulo the partition count, so aggregates would be looked for on the wrong \
         partition and rehydrate empty. Changing a stream's partition count is not supported: give {topic} its {recorded} \
         partitions back (the broker it was written on, or topics created again with PARTITIONS={recorded})"
    )]
    PartitionCountChanged { topic: String, recorded: i32, now: i32, record_topic: &'static str },
    #[error("blocking task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

fn base(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id());
    // librdkafka's own debug contexts (e.g. `fetch,topic,cgrp`), logged through the service's log.
    if let Some(contexts) = std::env::var(KAFKA_DEBUG_ENV).ok().filter(|value| !value.trim().is_empty()) {
        config.set("debug", contexts);
    }
    config
}

/// Names librdkafka debug contexts for every client of the process (its `debug` setting); they
/// are logged under the target `librdkafka` (e.g. `RUST_LOG=info,librdkafka=debug`).
pub const KAFKA_DEBUG_ENV: &str = "KAFKA_DEBUG";

fn client_id() -> String {
    std::env::var("SERVICE_NAME").unwrap_or_else(|_| "orderflow".into())
}

/// Idempotent, acks=all producer. Records with a key and no explicit partition use the Java
/// client's murmur2 partitioner, so everything agrees on where a key lives.
pub fn producer(brokers: &str) -> Result<KafkaProducer, KafkaError> {
    KafkaProducer::from_config(
        base(brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "30000"),
    )
}

/// An acks=all producer without idempotence, for records whose duplicates are harmless (the
/// partition-count record): librdkafka retries without sequence numbers the broker may refuse.
pub(crate) fn record_producer(brokers: &str) -> Result<KafkaProducer, KafkaError> {
    KafkaProducer::from_config(base(brokers).set("enable.idempotence", "false").set("acks", "all").set("message.timeout.ms", "30000"))
}

/// A consumer-group member whose offsets are committed only after the work they cover is
/// durable: a loop stores a batch's offsets once its work is done
/// ([`crate::kafka::consume::store_batch_offsets`]), and librdkafka commits what was stored
/// every [`commit_interval`], when partitions are revoked and when the consumer closes; nothing
/// is stored on its own. A static member (see [`SERVICE_INSTANCE_ENV`]) is created only once
/// the previous consumer of this process with the same id has closed. Partitions are spread by
/// the assignor [`ASSIGNMENT_STRATEGY_ENV`] names (cooperative-sticky by default).
pub async fn group_consumer(brokers: &str, group_id: &str, pace: Pace) -> Result<crate::kafka::GroupConsumer, KafkaError> {
    let strategy = assignment_strategy(std::env::var(ASSIGNMENT_STRATEGY_ENV).ok().as_deref())?;
    let mut config = base(brokers);
    let mut context = crate::kafka::RebalanceTracker::for_group(group_id);
    if let Some(instance) = static_member_id(group_id)? {
        match StaticMemberLease::acquire(instance.clone()).await {
            Some(lease) => {
                config.set("group.instance.id", &instance);
                context.static_member = Some(lease);
            }
            // The loop must run again: joining as a dynamic member fences nobody, and the group
            // drops the stuck static member after its session timeout.
            None => tracing::warn!(
                group = group_id,
                instance = %instance,
                waited = ?STATIC_MEMBER_HANDOVER,
                "the previous consumer with this group.instance.id has not closed (librdkafka can block in a close while the \
                 broker is unreachable); joining as a dynamic member instead"
            ),
        }
    }
    config
        .set("group.id", group_id)
        .set("partition.assignment.strategy", strategy)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", commit_interval().as_millis().to_string())
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A third of the session timeout, Kafka's usual ratio: every heartbeat is a write on
        // Nisshi's storage, so once a second per member was needless broker work.
        .set("heartbeat.interval.ms", "3000")
        .set("max.poll.interval.ms", "300000");
    pace.configure(&mut config);
    config.create_with_context(context)
}

/// How often a group member commits the offsets its loop stored: 1 s, or
/// `KAFKA_COMMIT_INTERVAL_MS` (at least 1 ms).
///
/// Committing after every batch cost Nisshi a write transaction per batch (it reads and writes
/// the group and writes the offset): at 1,200 orders/min the services sent 124 commits a second,
/// more than their produce requests. A commit on a timer costs one per member per interval,
/// whatever the load. What it trades: a member that dies unclean (`kill -9`, a lost host) hands
/// its successor up to an interval more records again, which the loops handle idempotently
/// anyway (handled command ids, deterministic command ids, per-aggregate versions), as after
/// any crash between work and commit. A clean close and a revocation commit what was stored.
pub fn commit_interval() -> Duration {
    millis_from_env(COMMIT_INTERVAL_ENV, 1_000).max(Duration::from_millis(1))
}

/// The commit interval of every consumer group member, in milliseconds (see [`commit_interval`]).
pub const COMMIT_INTERVAL_ENV: &str = "KAFKA_COMMIT_INTERVAL_MS";

/// Names the assignor of every consumer group of the process: `cooperative-sticky` (the
/// default), `range` or `roundrobin`.
///
/// With `cooperative-sticky` a rebalance moves only the partitions that change owner: a member
/// that joins or leaves stops nobody else's partitions, and a member keeps the state it rebuilt
/// for the partitions it keeps (its loops see only the moved ones in
/// [`crate::kafka::RebalanceTracker::take_changed`]). `range` and `roundrobin` are eager: every
/// rebalance revokes every partition of every member, and each loop rebuilds all it owns.
///
/// Switching an existing group between eager and cooperative needs the group empty. The group
/// keeps the protocol its members agreed on while any of them is alive (Nisshi keeps the first
/// member's), and refuses a joiner that does not offer it (`INCONSISTENT_GROUP_PROTOCOL`);
/// librdkafka refuses a member that offers both kinds, so Kafka's two-step rolling switch
/// (`range,cooperative-sticky`, then `cooperative-sticky` alone) is not available. So a rolling
/// upgrade from a release that used librdkafka's eager default (`range,roundrobin`) runs with
/// `KAFKA_ASSIGNMENT_STRATEGY=range`; switching to cooperative then takes stopping every
/// instance of the service, waiting out `session.timeout.ms` (10 s: a static member's place is
/// kept that long after it dies or closes), and starting them with the new setting. Committed
/// offsets survive the switch.
pub const ASSIGNMENT_STRATEGY_ENV: &str = "KAFKA_ASSIGNMENT_STRATEGY";

const ASSIGNMENT_STRATEGIES: [&str; 3] = ["cooperative-sticky", "range", "roundrobin"];

/// The `partition.assignment.strategy` that `configured` (the variable's value, if set) asks
/// for; one assignor only, since librdkafka refuses a list that mixes eager and cooperative.
fn assignment_strategy(configured: Option<&str>) -> Result<&'static str, KafkaError> {
    let Some(configured) = configured.map(str::trim).filter(|value| !value.is_empty()) else { return Ok(ASSIGNMENT_STRATEGIES[0]) };
    ASSIGNMENT_STRATEGIES.into_iter().find(|strategy| *strategy == configured).ok_or_else(|| {
        KafkaError::ClientCreation(format!(
            "{ASSIGNMENT_STRATEGY_ENV}={configured:?}: give one of {} (one assignor: librdkafka refuses a list mixing eager and \
             cooperative ones)",
            ASSIGNMENT_STRATEGIES.join(", ")
        ))
    })
}

/// How long a new static member waits for its predecessor in this process to close before it
/// joins as a dynamic member (a close normally takes well under a second).
const STATIC_MEMBER_HANDOVER: Duration = Duration::from_secs(15);

/// One static member id of this process, taken while a consumer with that id is open.
///
/// A loop that restarts (the broker went away, a batch failed) creates a new consumer while
/// the old one may still be closing, e.g. dropped by a task that is being aborted. With the same
/// `group.instance.id` the new one fences the old one, and librdkafka's close of a fenced
/// consumer can block for good inside its revocation (`rd_kafka_assign`), on a tokio worker:
/// seen in the chaos run as notify-svc with both workers stuck there and `/health` unanswered.
/// So the new consumer waits until the old one is gone; the lease lives in the consumer's
/// context, which librdkafka drops last.
pub(crate) struct StaticMemberLease(String);

fn open_static_members() -> &'static std::sync::Mutex<std::collections::HashSet<String>> {
    static OPEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl StaticMemberLease {
    /// The lease, once the previous consumer with `id` has closed; `None` when it has not
    /// within [`STATIC_MEMBER_HANDOVER`].
    async fn acquire(id: String) -> Option<StaticMemberLease> {
        let started = std::time::Instant::now();
        loop {
            if open_static_members().lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone()) {
                return Some(StaticMemberLease(id));
            }
            if started.elapsed() > STATIC_MEMBER_HANDOVER {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for StaticMemberLease {
    fn drop(&mut self) {
        open_static_members().lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

/// Names this process among the live processes of its service (e.g. `0`, `1`); when set,
/// every group member of the process is static (`group.instance.id` = `<group>.<instance>`).
pub const SERVICE_INSTANCE_ENV: &str = "SERVICE_INSTANCE";

/// The static member id of this process in `group_id`, when `SERVICE_INSTANCE` names it.
///
/// A static member that restarts (a crash, kill -9, a deploy) gets its partitions back at once
/// instead of after the session timeout, the broker having kept its place; without it, every
/// group of a killed service stalls for `session.timeout.ms` (10 s) until the broker gives up
/// on the dead member. Two live processes with the same instance fence each other, so it is
/// opt-in: `scripts/up.sh` and the compose file give each process its own.
fn static_member_id(group_id: &str) -> Result<Option<String>, KafkaError> {
    let Some(instance) = std::env::var(SERVICE_INSTANCE_ENV).ok().filter(|value| !value.trim().is_empty()) else { return Ok(None) };
    // Kafka's rule for group.instance.id: at most 249 of these characters.
    let id = format!("{group_id}.{instance}");
    if id.len() > 249 || !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Err(KafkaError::ClientCreation(format!(
            "{SERVICE_INSTANCE_ENV}={instance:?}: give letters, digits, '.', '_' or '-' (group.instance.id {id:?} must be valid)"
        )));
    }
    Ok(Some(id))
}

/// A client that reads and commits a consumer group's offsets without ever joining it: for a
/// loop that keeps a second position per partition as the committed offsets of a group of its
/// own. Never a static member, so its commits are the kind a group without members accepts
/// (generation -1; Kafka and Nisshi both take them). Note that Kafka drops the offsets of a
/// group without members `offsets.retention.minutes` (7 days) after its last commit.
pub fn offsets_keeper(brokers: &str, group_id: &str) -> Result<BaseConsumer, KafkaError> {
    base(brokers).set("group.id", group_id).set("enable.auto.commit", "false").set("enable.auto.offset.store", "false").create()
}

/// A consumer outside any group, for reading partitions by explicit assignment.
pub fn reader(brokers: &str) -> Result<BaseConsumer, KafkaError> {
    // Reads here are bounded by a known end offset, so a long wait costs nothing at the end
    // of the range: the broker answers with what it has once its storage runs dry. It sizes
    // the response by that wait, though: Nisshi 0.8.1 stops assembling a fetch at about
    // half of `fetch.wait.max.ms`, so at 5 ms a writer rebuilt its partition at ~1,000
    // events/s. Large responses: a backlog comes in few round trips.
    reader_waiting(brokers, 250)
}

/// A [`reader`] for records of hundreds of kilobytes (snapshot parts). On Nisshi 0.8.1 those
/// come faster in many small responses than in few large ones: the 85 parts (45 MB) of the
/// snapshots of 100,000 orders read in 0.16–0.26 s at a 5 ms wait against 0.86 s at
/// [`reader`]'s 250 ms, where 20,000 events took 1.01 s at 5 ms and 0.66 s at 250 ms. Apache
/// Kafka answers a fetch with data at once, whatever the wait.
pub fn large_record_reader(brokers: &str) -> Result<BaseConsumer, KafkaError> {
    reader_waiting(brokers, 5)
}

/// The process's client for end offsets (ListOffsets) of `brokers`, shared, created on first
/// use: it never fetches. A loop's own consumer has a fetch in flight most of the time, and
/// Nisshi 0.8.1 serves one connection's requests one at a time, so an end-offset request sent
/// there waited behind the fetch, up to its wait (1 s for loops at the background pace): a
/// restarted service's read models showed no lag, and `/ready` stayed 503, for 1-2.5 s.
pub fn offsets_probe(brokers: &str) -> Result<Arc<BaseConsumer>, KafkaError> {
    static PROBES: OnceLock<Mutex<HashMap<String, Arc<BaseConsumer>>>> = OnceLock::new();
    let mut probes = PROBES.get_or_init(Mutex::default).lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(probe) = probes.get(brokers) {
        return Ok(probe.clone());
    }
    let probe = Arc::new(reader(brokers)?);
    probes.insert(brokers.to_string(), probe.clone());
    Ok(probe)
}

fn reader_waiting(brokers: &str, fetch_wait_ms: u32) -> Result<BaseConsumer, KafkaError> {
    base(brokers)
        .set("group.id", "orderflow-unused-reader-group")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("max.partition.fetch.bytes", "8388608")
        .set("fetch.max.bytes", "16777216")
        .create()
}

/// A consumer of assigned partitions only (projections), offsets never committed: checkpoints
/// live in the read-model database. Fetches at `pace`.
pub fn assigned_consumer(brokers: &str, group: &str, pace: Pace) -> Result<rdkafka::consumer::StreamConsumer, KafkaError> {
    let mut config = assigned_base(brokers, group);
    pace.configure(&mut config);
    config.create()
}

/// An [`assigned_consumer`] for reading a backlog: any record answers a fetch, and a fetch waits
/// at most `fetch_wait` for one.
pub fn backlog_consumer(brokers: &str, group: &str, fetch_wait: Duration) -> Result<rdkafka::consumer::StreamConsumer, KafkaError> {
    assigned_base(brokers, group).set("fetch.wait.max.ms", fetch_wait.as_millis().to_string()).set("fetch.min.bytes", "1").create()
}

fn assigned_base(brokers: &str, group: &str) -> ClientConfig {
    let mut config = base(brokers);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// Drops a client on a thread of its own. Destroying a librdkafka client waits for its threads
/// (about 0.1 s for a consumer or an admin client); a caller on a service's start-up path, or
/// in an async task, need not wait with it.
pub fn close_in_background<T: Send + 'static>(client: T) {
    // If no thread can be started, the closure is dropped here, and the client with it.
    let _ = std::thread::Builder::new().name("kafka-close".into()).spawn(move || drop(client));
}

pub fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    base(brokers).create()
}

/// How many records of `topic` the consumer group `group` has not committed yet (over all
/// partitions; a partition it never committed counts from its low watermark). Asks the group
/// coordinator without joining the group, so the group's members are not disturbed. Blocking.
pub fn group_lag(brokers: &str, group: &str, topic: &str) -> Result<i64, KafkaSetupError> {
    let consumer: BaseConsumer = base(brokers).set("group.id", group).set("enable.auto.commit", "false").create()?;
    let partitions = partition_count(&consumer, topic)?;
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, METADATA_TIMEOUT)?;
    let mut lag = 0;
    for element in committed.elements() {
        let (low, high) = watermarks(&consumer, topic, element.partition())?;
        let next = match element.offset() {
            Offset::Offset(next) => next,
            _ => low,
        };
        lag += (high - next.max(low)).max(0);
    }
    Ok(lag)
}

/// Number of partitions of an existing topic.
pub fn partition_count<X: rdkafka::consumer::ConsumerContext, C: Consumer<X>>(consumer: &C, topic: &str) -> Result<i32, KafkaSetupError> {
    partitions_of(consumer.client(), topic)
}

/// Number of partitions of an existing topic, asked through any client (consumer or producer).
pub fn partitions_of<X: rdkafka::ClientContext>(client: &rdkafka::client::Client<X>, topic: &str) -> Result<i32, KafkaSetupError> {
    let metadata = client.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let count = metadata.topics().iter().find(|t| t.name() == topic && t.error().is_none()).map(|t| t.partitions().len() as i32).unwrap_or(0);
    if count == 0 { Err(KafkaSetupError::MissingTopic(topic.to_string())) } else { Ok(count) }
}

/// Low and high watermark of one partition.
pub fn watermarks<X: rdkafka::consumer::ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    consumer.fetch_watermarks(topic, partition, METADATA_TIMEOUT)
}

/// Reads `topic`/`partition` from `from` up to (not including) `until`, calling `visit` for each
/// record in order. `until` is usually the high watermark taken just before.
pub fn read_range(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    from: i64,
    until: i64,
    mut visit: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), KafkaError> {
    if from >= until {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
    reader.assign(&assignment)?;
    let mut next = from;
    while next < until {
        match reader.poll(Duration::from_secs(5)) {
            Some(Ok(message)) => {
                next = message.offset() + 1;
                if message.offset() < until {
                    visit(&message);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                // Compaction or aborted records can leave holes: the high watermark taken
                // before reading is still the bound, so re-check it instead of waiting forever.
                let (_, high) = watermarks(reader, topic, partition)?;
                if next >= high.min(until) {
                    break;
                }
            }
            Some(Err(error)) => return Err(error),
            None => {
                let (_, high) = watermarks(reader, topic, partition)?;
                if next >= high.min(until) {
                    break;
                }
            }
        }
    }
    reader.unassign()?;
    Ok(())
}

/// The low and high watermark librdkafka last saw in a fetch response for the partition, or
/// `None` before the first one. rust-rdkafka wraps only the variant that asks the broker, so
/// this calls librdkafka's own `rd_kafka_get_watermark_offsets` through the bindings it ships.
pub(crate) fn cached_watermarks<C: rdkafka::ClientContext>(client: &rdkafka::client::Client<C>, topic: &str, partition: i32) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: the client pointer is valid for the borrow of `client`; librdkafka only reads the
    // NUL-terminated topic name and writes the two offsets it is given.
    let error = unsafe { rdkafka::bindings::rd_kafka_get_watermark_offsets(client.native_ptr(), topic.as_ptr(), partition, &mut low, &mut high) };
    // Offsets below 0 are librdkafka's "not known yet" (RD_KAFKA_OFFSET_INVALID).
    (error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0 && high >= 0).then_some((low, high))
}

/// Where a loop stands in `partition`: after the last record librdkafka handed it (its
/// position), else where the loop started the partition itself (`starts`), else the group's
/// committed offset (`committed` is asked only then), else the log's start `low`, where a group
/// with nothing committed begins.
pub(crate) fn loop_position<E>(
    positions: &TopicPartitionList,
    starts: &std::collections::HashMap<(String, i32), i64>,
    (topic, partition): (&str, i32),
    low: i64,
    committed: impl FnOnce() -> Result<Option<i64>, E>,
) -> Result<i64, E> {
    if let Some(Offset::Offset(position)) = positions.find_partition(topic, partition).map(|p| p.offset()) {
        return Ok(position);
    }
    if let Some(start) = starts.get(&(topic.to_string(), partition)) {
        return Ok(*start);
    }
    Ok(committed()?.unwrap_or(low))
}

/// The offset `committed` holds for the partition, if one was committed.
pub(crate) fn committed_offset(committed: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match committed.find_partition(topic, partition).map(|p| p.offset()) {
        Some(Offset::Offset(offset)) => Some(offset),
        _ => None,
    }
}

/// Header value as UTF-8, if present.
pub fn header<M: Message>(message: &M, name: &str) -> Option<String> {
    message
        .headers()
        .and_then(|headers| headers.iter().find(|h| h.key == name).and_then(|h| h.value).map(|v| String::from_utf8_lossy(v).into_owned()))
}

/// Copies every header of `message` except the named ones.
pub fn headers_without<M: Message>(message: &M, skip: &[&str]) -> OwnedHeaders {
    let mut out = OwnedHeaders::new();
    if let Some(headers) = message.headers() {
        for h in headers.iter().filter(|h| !skip.contains(&h.key)) {
            out = out.insert(rdkafka::message::Header { key: h.key, value: h.value });
        }
    }
    out
}

/// Builds headers from name/value pairs.
pub fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(rdkafka::message::Header { key, value: Some(value.as_bytes()) }))
}

#[cfg(test)]
mod tests {
    use super::{StaticMemberLease, assignment_strategy};
    use std::time::Duration;

    #[test]
    fn the_assignor_is_cooperative_sticky_unless_one_eager_assignor_is_named() {
        assert_eq!(assignment_strategy(None).expect("default"), "cooperative-sticky");
        assert_eq!(assignment_strategy(Some(" ")).expect("blank is unset"), "cooperative-sticky");
        assert_eq!(assignment_strategy(Some("range")).expect("range"), "range");
        assert_eq!(assignment_strategy(Some("roundrobin")).expect("roundrobin"), "roundrobin");
        for refused in ["range,cooperative-sticky", "sticky", "Range"] {
            let error = assignment_strategy(Some(refused)).expect_err(refused).to_string();
            assert!(error.contains("KAFKA_ASSIGNMENT_STRATEGY") && error.contains(refused), "{error}");
        }
    }

    #[tokio::test]
    async fn a_static_member_id_is_taken_again_only_once_its_consumer_has_let_it_go() {
        let first = StaticMemberLease::acquire("svc.loop.0".into()).await.expect("free id");
        let second = tokio::spawn(StaticMemberLease::acquire("svc.loop.0".into()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the id was handed out while its first holder still had it");
        let other = StaticMemberLease::acquire("svc.loop.1".into()).await.expect("another id is independent");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second).await.expect("handed over once released").expect("task");
        assert!(second.is_some());
        drop(other);
    }
}

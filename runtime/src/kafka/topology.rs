//! Every topic the system uses, with partition counts: each stream's command, event,
//! dead-letter (of commands and of events) and rejection topics share one count so that they are co-partitioned.
//! Created topics get their replication factor from the cluster's size ([`replication_for`]).
use super::clients::{KafkaSetupError, METADATA_TIMEOUT, admin, close_in_background, read_range, reader, record_producer, watermarks};
use contracts::{COMMAND_TOPICS, EVENT_SCHEMAS, dead_letter_topic, rejections_topic, snapshots_topic};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

pub const DEFAULT_PARTITIONS: i32 = 6;

/// A topic to create: name, partition count and topic-level configs.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub configs: Vec<(&'static str, &'static str)>,
}

impl TopicSpec {
    fn new(name: impl Into<String>, partitions: i32, configs: &[(&'static str, &'static str)]) -> Self {
        TopicSpec { name: name.into(), partitions, configs: configs.to_vec() }
    }
}

/// Topic configs of a log that read models are built from.
const KEEP_FOREVER: &[(&str, &str)] = &[("retention.ms", "-1"), ("retention.bytes", "-1")];

/// Topic configs of a changelog: the newest record of each key is kept, older ones may go.
const COMPACTED: &[(&str, &str)] = &[("cleanup.policy", "compact")];

/// Every topic of every stream.
pub fn all_topics(partitions: i32) -> Vec<TopicSpec> {
    let mut topics = Vec::new();
    for ((events_topic, _), commands_topic) in EVENT_SCHEMAS.iter().zip(COMMAND_TOPICS) {
        let stream = events_topic.trim_end_matches(".events");
        // The event log is the source of truth, and `command_outcomes` is built from the
        // rejections and dead letters too: a rebuild must find every record they ever held, so
        // none of them deletes by age or size (Apache Kafka's default is 7 days). An event that
        // no reader can decode is parked, byte for byte, on the event log's own dead-letter topic.
        topics.push(TopicSpec::new(*events_topic, partitions, KEEP_FOREVER));
        topics.push(TopicSpec::new(dead_letter_topic(events_topic), partitions, KEEP_FOREVER));
        topics.push(TopicSpec::new(commands_topic, partitions, &[]));
        topics.push(TopicSpec::new(dead_letter_topic(commands_topic), partitions, KEEP_FOREVER));
        topics.push(TopicSpec::new(rejections_topic(stream), partitions, KEEP_FOREVER));
        // The writers' snapshots of their partitions: only the newest ones matter, and a
        // snapshot is never needed (the log rebuilds the same state), so compaction may drop
        // superseded ones. Brokers that do not compact (Nisshi 0.8.1) simply keep them all.
        topics.push(TopicSpec::new(snapshots_topic(stream), partitions, COMPACTED));
    }
    topics
}

/// Where the partition count each topic's log was first written with is kept: one record per
/// topic, key the topic's name, value the count in decimal. Written once, read at every start.
pub const PARTITION_RECORD_TOPIC: &str = "_orderflow.partitions";

/// The system's own topics besides the streams' (created by every service at start).
pub fn internal_topics() -> Vec<TopicSpec> {
    vec![TopicSpec::new(PARTITION_RECORD_TOPIC, 1, KEEP_FOREVER)]
}

/// A topic whose partition count is not the one its log was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedCount {
    pub topic: String,
    pub recorded: i32,
    pub now: i32,
}

/// Compares the topics' partition counts now with the recorded ones: the topics whose count
/// changed, and the topics with no record yet (to record).
pub fn compare_counts(recorded: &Counts, now: &Counts) -> (Vec<ChangedCount>, Vec<(String, i32)>) {
    let mut changed = Vec::new();
    let mut unrecorded = Vec::new();
    for (topic, count) in now {
        match recorded.get(topic) {
            Some(recorded) if recorded != count => changed.push(ChangedCount { topic: topic.clone(), recorded: *recorded, now: *count }),
            Some(_) => {}
            None => unrecorded.push((topic.clone(), *count)),
        }
    }
    (changed, unrecorded)
}

/// Refuses to go on when a stream topic's partition count differs from the one its log was
/// written with (someone ran `kafka-topics.sh --alter --partitions`, or the topics were created
/// again with another `PARTITIONS`): keys would move to other partitions and the single-writer
/// rule would silently break. Records the counts of topics seen for the first time. Runs after
/// [`ensure_all`], which creates the topic the counts are recorded on.
pub async fn verify_partition_counts(brokers: &str) -> Result<(), KafkaSetupError> {
    let owned = brokers.to_string();
    let (recorded, now) = tokio::task::spawn_blocking(move || read_counts(&owned)).await??;
    let (changed, unrecorded) = compare_counts(&recorded, &now);
    if let Some(ChangedCount { topic, recorded, now }) = changed.into_iter().next() {
        return Err(KafkaSetupError::PartitionCountChanged { topic, recorded, now, record_topic: PARTITION_RECORD_TOPIC });
    }
    if !unrecorded.is_empty() {
        // Not idempotent: every process that finds a count unrecorded writes it, the first
        // record of a topic wins and a duplicate says the same, so a retry needs no sequence
        // numbers. With them, Nisshi 0.8.1 failed one of two processes starting together (two
        // instances of a service, `scripts/up.sh --instances 2`) with a fatal
        // OutOfOrderSequenceNumber on this topic, and that process exited.
        let producer = record_producer(brokers)?;
        for (topic, count) in unrecorded {
            let count = count.to_string();
            let record = rdkafka::producer::FutureRecord::to(PARTITION_RECORD_TOPIC).partition(0).key(&topic).payload(&count);
            producer.send(record, METADATA_TIMEOUT).await?;
            tracing::info!(topic, partitions = %count, "recorded the partition count of a new log");
        }
    }
    Ok(())
}

/// Partition count per topic name.
type Counts = BTreeMap<String, i32>;

/// (recorded counts, counts now) of every stream topic.
fn read_counts(brokers: &str) -> Result<(Counts, Counts), KafkaSetupError> {
    let reader = reader(brokers)?;
    // One metadata request for all of them: one per topic cost a restart about 0.2 s.
    let metadata = rdkafka::consumer::Consumer::fetch_metadata(&reader, None, METADATA_TIMEOUT)?;
    let counts: BTreeMap<&str, i32> =
        metadata.topics().iter().filter(|topic| topic.error().is_none()).map(|topic| (topic.name(), topic.partitions().len() as i32)).collect();
    let mut now = BTreeMap::new();
    for spec in all_topics(DEFAULT_PARTITIONS) {
        match counts.get(spec.name.as_str()) {
            Some(&count) if count > 0 => now.insert(spec.name.clone(), count),
            _ => return Err(KafkaSetupError::MissingTopic(spec.name)),
        };
    }
    let mut recorded = BTreeMap::new();
    let (low, high) = watermarks(&reader, PARTITION_RECORD_TOPIC, 0)?;
    read_range(&reader, PARTITION_RECORD_TOPIC, 0, low, high, |message| {
        use rdkafka::Message;
        let topic = message.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let count = message.payload().and_then(|p| std::str::from_utf8(p).ok()).and_then(|p| p.trim().parse::<i32>().ok());
        match (topic, count) {
            // The first record of a topic is the count its log was written with.
            (Some(topic), Some(count)) => {
                recorded.entry(topic).or_insert(count);
            }
            _ => tracing::warn!(offset = message.offset(), topic = PARTITION_RECORD_TOPIC, "a record that is not <topic> -> <count> ignored"),
        }
    })?;
    close_in_background(reader);
    Ok((recorded, now))
}

/// Creates every topic of every stream, and the runtime's own, that does not exist yet.
pub async fn ensure_all(brokers: &str, partitions: i32) -> Result<(), KafkaSetupError> {
    let mut topics = all_topics(partitions);
    topics.extend(internal_topics());
    ensure_topics(brokers, &topics).await
}

/// Sets the replication factor of the topics created from here; unset, it follows the
/// cluster's size ([`replication_for`]).
pub const REPLICATION_FACTOR_ENV: &str = "REPLICATION_FACTOR";

/// Replicas per topic when the cluster has that many brokers and nobody asks for another
/// number: Kafka's usual production choice, with which one broker can be down while writes go
/// on and every acknowledged record still has a second copy.
const PREFERRED_REPLICATION_FACTOR: usize = 3;

const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";

/// How the topics created on a cluster are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    pub factor: i32,
    /// The topics' `min.insync.replicas`: how many replicas must have a record before an
    /// `acks=all` write of it (every producer here) succeeds.
    pub min_insync_replicas: i32,
}

/// A replication factor that cannot be used on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    #[error("{REPLICATION_FACTOR_ENV}={0:?}: give a whole number of replicas, at least 1")]
    NotAPositiveInteger(String),
    #[error(
        "{REPLICATION_FACTOR_ENV}={requested}, but the cluster metadata lists {brokers} broker(s): a topic cannot have more \
         replicas than there are brokers (lower {REPLICATION_FACTOR_ENV}, or unset it to use min(3, brokers))"
    )]
    AboveBrokerCount { requested: i32, brokers: usize },
    #[error("the cluster metadata lists no broker, so no replication factor fits")]
    NoBroker,
}

/// The replication of topics created on a cluster whose metadata lists `brokers` brokers;
/// `requested` is the value of [`REPLICATION_FACTOR_ENV`], if set (blank counts as unset).
///
/// The factor is `requested` when given: a whole number from 1 up to `brokers` (the broker
/// refuses more replicas than brokers). Otherwise it is min(3, brokers): 1 on a single broker
/// (Nisshi, `docker-compose.kafka.yml`), 3 on three or more.
///
/// `min.insync.replicas` is the factor − 1, at least 1 and at most 2: with 3 replicas (or
/// more) two must have each acknowledged record and one broker may be down; with 2, a write
/// goes on while one replica is down, trading the second copy for availability. It is set on
/// every topic, also with one replica, so that a broker default above the factor (the 3-broker
/// file's brokers default to 2) cannot refuse every `acks=all` write of a topic created with
/// `REPLICATION_FACTOR=1`.
pub fn replication_for(brokers: usize, requested: Option<&str>) -> Result<Replication, ReplicationError> {
    let requested = requested.map(str::trim).filter(|value| !value.is_empty());
    let factor = match requested {
        Some(text) => {
            let factor =
                text.parse::<i32>().ok().filter(|factor| *factor >= 1).ok_or_else(|| ReplicationError::NotAPositiveInteger(text.to_string()))?;
            if !usize::try_from(factor).is_ok_and(|factor| factor <= brokers) {
                return Err(ReplicationError::AboveBrokerCount { requested: factor, brokers });
            }
            factor
        }
        None if brokers == 0 => return Err(ReplicationError::NoBroker),
        // At most PREFERRED_REPLICATION_FACTOR, so it fits.
        None => i32::try_from(brokers.min(PREFERRED_REPLICATION_FACTOR)).unwrap_or(1),
    };
    Ok(Replication { factor, min_insync_replicas: (factor - 1).clamp(1, 2) })
}

/// The topic configs `spec` is created with: its own, plus `min.insync.replicas` unless it
/// sets that itself.
fn creation_configs<'a>(spec: &'a TopicSpec, min_insync_replicas: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut configs: Vec<(&str, &str)> = spec.configs.clone();
    if !configs.iter().any(|(key, _)| *key == MIN_INSYNC_REPLICAS) {
        configs.push((MIN_INSYNC_REPLICAS, min_insync_replicas));
    }
    configs
}

/// Creates topics that do not exist yet, replicated as [`replication_for`] says for the
/// brokers the cluster's metadata lists now; existing ones are left as they are, so a restart
/// with a broker down (fewer brokers listed) neither fails nor changes anything when every
/// topic is there.
pub async fn ensure_topics(brokers: &str, topics: &[TopicSpec]) -> Result<(), KafkaSetupError> {
    let admin = Arc::new(admin(brokers)?);
    let metadata_client = Arc::clone(&admin);
    let (broker_count, existing) = tokio::task::spawn_blocking(move || cluster_view(&metadata_client)).await??;
    let missing: Vec<&TopicSpec> = topics.iter().filter(|spec| !existing.contains(&spec.name)).collect();
    if missing.is_empty() {
        close_in_background(admin);
        return Ok(());
    }
    let requested = std::env::var(REPLICATION_FACTOR_ENV).ok();
    // KafkaSetupError has no variant of its own for this: the admin request cannot be built.
    let replication = replication_for(broker_count, requested.as_deref()).map_err(|error| KafkaError::AdminOpCreation(error.to_string()))?;
    let min_insync_replicas = replication.min_insync_replicas.to_string();
    let new_topics: Vec<NewTopic> = missing
        .iter()
        .map(|spec| {
            creation_configs(spec, &min_insync_replicas)
                .into_iter()
                .fold(NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(replication.factor)), |topic, (key, value)| {
                    topic.set(key, value)
                })
        })
        .collect();
    let results = admin.create_topics(&new_topics, &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT))).await?;
    let mut created = Vec::new();
    for result in results {
        match result {
            Ok(topic) => created.push(topic),
            // Another process created it since the metadata was read.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
        }
    }
    close_in_background(admin);
    if !created.is_empty() {
        tracing::info!(
            topics = ?created,
            brokers = broker_count,
            replication_factor = replication.factor,
            min_insync_replicas = replication.min_insync_replicas,
            "created missing topics"
        );
    }
    Ok(())
}

/// The number of brokers the cluster's metadata lists and the names of the topics it has.
/// Blocking.
fn cluster_view(admin: &AdminClient<DefaultClientContext>) -> Result<(usize, BTreeSet<String>), KafkaError> {
    let metadata = admin.inner().fetch_metadata(None, METADATA_TIMEOUT)?;
    let topics = metadata
        .topics()
        .iter()
        .filter(|topic| topic.error().map(RDKafkaErrorCode::from) != Some(RDKafkaErrorCode::UnknownTopicOrPartition))
        .map(|topic| topic.name().to_string())
        .collect();
    Ok((metadata.brokers().len(), topics))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_six_co_partitioned_topics() {
        let topics = all_topics(3);
        assert_eq!(topics.len(), 30);
        assert!(topics.iter().all(|t| t.partitions == 3));
        for name in [
            "order.events",
            "order.events.dlq",
            "order.commands",
            "order.commands.dlq",
            "order.rejections",
            "order.snapshots",
            "notification.commands.dlq",
        ] {
            assert!(topics.iter().any(|t| t.name == name), "{name} missing");
        }
    }

    #[test]
    fn a_changed_partition_count_is_found_and_new_topics_are_to_be_recorded() {
        let recorded: BTreeMap<String, i32> = [("order.events".to_string(), 6), ("stock.events".to_string(), 6)].into();
        let now: BTreeMap<String, i32> =
            [("order.events".to_string(), 6), ("stock.events".to_string(), 12), ("order.rejections".to_string(), 6)].into();
        let (changed, unrecorded) = compare_counts(&recorded, &now);
        assert_eq!(changed, vec![ChangedCount { topic: "stock.events".into(), recorded: 6, now: 12 }]);
        assert_eq!(unrecorded, vec![("order.rejections".to_string(), 6)]);
        assert_eq!(compare_counts(&now, &now), (vec![], vec![]));
    }

    #[test]
    fn every_topic_a_read_model_is_built_from_keeps_its_records() {
        let topics = all_topics(1);
        for stream in ["order", "stock", "account", "shipment", "notification"] {
            for name in [format!("{stream}.events"), format!("{stream}.events.dlq"), rejections_topic(stream), format!("{stream}.commands.dlq")] {
                let spec = topics.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"));
                assert!(spec.configs.contains(&("retention.ms", "-1")), "{name} may lose records by age: {:?}", spec.configs);
                assert!(spec.configs.contains(&("retention.bytes", "-1")), "{name} may lose records by size: {:?}", spec.configs);
            }
        }
    }

    #[test]
    fn the_replication_factor_follows_the_broker_count_up_to_three() {
        let chosen: Vec<(usize, i32, i32)> = [1, 2, 3, 5]
            .into_iter()
            .map(|brokers| {
                let replication = replication_for(brokers, None).expect("a factor");
                (brokers, replication.factor, replication.min_insync_replicas)
            })
            .collect();
        assert_eq!(chosen, vec![(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]);
        assert_eq!(replication_for(0, None), Err(ReplicationError::NoBroker));
    }

    #[test]
    fn a_requested_replication_factor_is_used_when_the_cluster_has_the_brokers() {
        assert_eq!(replication_for(3, Some("1")), Ok(Replication { factor: 1, min_insync_replicas: 1 }));
        assert_eq!(replication_for(3, Some(" 2 ")), Ok(Replication { factor: 2, min_insync_replicas: 1 }));
        assert_eq!(replication_for(5, Some("5")), Ok(Replication { factor: 5, min_insync_replicas: 2 }));
        // Blank is unset (`REPLICATION_FACTOR=` in a shell or an .env file).
        assert_eq!(replication_for(3, Some("")), replication_for(3, None));
    }

    #[test]
    fn a_requested_replication_factor_the_cluster_cannot_hold_is_refused() {
        assert_eq!(replication_for(1, Some("3")), Err(ReplicationError::AboveBrokerCount { requested: 3, brokers: 1 }));
        for bad in ["0", "-1", "three", "2.5", "99999999999"] {
            assert_eq!(replication_for(3, Some(bad)), Err(ReplicationError::NotAPositiveInteger(bad.to_string())), "{bad}");
        }
        let message = replication_for(1, Some("3")).expect_err("above the broker count").to_string();
        assert!(message.contains("REPLICATION_FACTOR=3") && message.contains("1 broker"), "{message}");
    }

    #[test]
    fn every_topic_gets_min_insync_replicas_unless_its_spec_sets_it() {
        for spec in all_topics(1).iter().chain(&internal_topics()) {
            let configs = creation_configs(spec, "2");
            assert_eq!(configs.iter().filter(|(key, _)| *key == MIN_INSYNC_REPLICAS).count(), 1, "{}: {configs:?}", spec.name);
            assert!(spec.configs.iter().all(|config| configs.contains(config)), "{} lost its own configs: {configs:?}", spec.name);
        }
        let strict = TopicSpec::new("strict.events", 1, &[(MIN_INSYNC_REPLICAS, "3")]);
        assert_eq!(creation_configs(&strict, "2"), vec![(MIN_INSYNC_REPLICAS, "3")]);
    }
}

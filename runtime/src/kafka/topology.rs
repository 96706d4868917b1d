//! Every topic the system uses, with partition counts: each stream's command, event,
//! dead-letter (of commands and of events) and rejection topics share one count so that they are co-partitioned.
use super::clients::{KafkaSetupError, METADATA_TIMEOUT, admin, partition_count, read_range, reader, record_producer, watermarks};
use contracts::{COMMAND_TOPICS, EVENT_SCHEMAS, dead_letter_topic, rejections_topic};
use rdkafka::{
    admin::{AdminOptions, NewTopic, TopicReplication},
    error::RDKafkaErrorCode,
};
use std::collections::BTreeMap;

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
/// rule would silently break. Records the counts of topics seen for the first time.
pub async fn verify_partition_counts(brokers: &str) -> Result<(), KafkaSetupError> {
    ensure_topics(brokers, &internal_topics()).await?;
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
            producer.send(record, rdkafka::util::Timeout::After(METADATA_TIMEOUT)).await.map_err(|(error, _)| error)?;
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
    let mut now = BTreeMap::new();
    for spec in all_topics(DEFAULT_PARTITIONS) {
        now.insert(spec.name.clone(), partition_count(&reader, &spec.name)?);
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
    Ok((recorded, now))
}

/// Creates every topic of every stream that does not exist yet.
pub async fn ensure_all(brokers: &str, partitions: i32) -> Result<(), KafkaSetupError> {
    ensure_topics(brokers, &all_topics(partitions)).await
}

/// Creates topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(brokers: &str, topics: &[TopicSpec]) -> Result<(), KafkaSetupError> {
    let admin = admin(brokers)?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|spec| spec.configs.iter().fold(NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v)))
        .collect();
    let results = admin.create_topics(&new_topics, &AdminOptions::new().operation_timeout(Some(METADATA_TIMEOUT))).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaSetupError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_has_five_co_partitioned_topics() {
        let topics = all_topics(3);
        assert_eq!(topics.len(), 25);
        assert!(topics.iter().all(|t| t.partitions == 3));
        for name in ["order.events", "order.events.dlq", "order.commands", "order.commands.dlq", "order.rejections", "notification.commands.dlq"] {
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
}

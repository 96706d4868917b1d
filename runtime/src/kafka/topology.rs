//! Every topic the system uses, with partition counts: each stream's command, event,
//! dead-letter and rejection topics share one count so that they are co-partitioned.
use super::clients::{KafkaSetupError, METADATA_TIMEOUT, admin};
use contracts::{COMMAND_TOPICS, EVENT_SCHEMAS, dead_letter_topic, rejections_topic};
use rdkafka::{
    admin::{AdminOptions, NewTopic, TopicReplication},
    error::RDKafkaErrorCode,
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

/// Every topic of every stream.
pub fn all_topics(partitions: i32) -> Vec<TopicSpec> {
    let mut topics = Vec::new();
    for ((events_topic, _), commands_topic) in EVENT_SCHEMAS.iter().zip(COMMAND_TOPICS) {
        let stream = events_topic.trim_end_matches(".events");
        // The event log is the source of truth: never delete it by age or size.
        topics.push(TopicSpec::new(*events_topic, partitions, &[("retention.ms", "-1"), ("retention.bytes", "-1")]));
        topics.push(TopicSpec::new(commands_topic, partitions, &[]));
        topics.push(TopicSpec::new(dead_letter_topic(commands_topic), partitions, &[]));
        topics.push(TopicSpec::new(rejections_topic(stream), partitions, &[]));
    }
    topics
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
    fn every_stream_has_four_co_partitioned_topics() {
        let topics = all_topics(3);
        assert_eq!(topics.len(), 20);
        assert!(topics.iter().all(|t| t.partitions == 3));
        for name in ["order.events", "order.commands", "order.commands.dlq", "order.rejections", "notification.commands.dlq"] {
            assert!(topics.iter().any(|t| t.name == name), "{name} missing");
        }
    }
}

//! The services' producer (`kafka::KafkaProducer`, delivery reports served when librdkafka has
//! one) against the test broker: every record's future resolves with where it landed, in send
//! order, for a burst far larger than one wake-up serves; a record librdkafka cannot deliver
//! fails rather than hanging; and records still in flight when the last handle goes end with
//! an answer too.
use futures::future::join_all;
use rdkafka::producer::FutureRecord;
use runtime::kafka::{self, TopicSpec};
use std::time::Duration;

const BURST: usize = 5_000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: run scripts/test.sh"))
}

async fn fresh_topic(brokers: &str) -> String {
    let topic = format!("producer-check-{}", uuid::Uuid::new_v4());
    kafka::ensure_topics(brokers, &[TopicSpec { name: topic.clone(), partitions: 1, configs: vec![] }]).await.expect("topic");
    topic
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_of_a_burst_is_acknowledged_at_consecutive_offsets() {
    let brokers = env("KAFKA_BROKERS");
    let topic = fresh_topic(&brokers).await;
    let producer = kafka::producer(&brokers).expect("producer");
    let payloads: Vec<String> = (0..BURST).map(|i| format!("record-{i}")).collect();
    let acknowledgements: Vec<_> = payloads
        .iter()
        .map(|payload| {
            producer
                .send_result(FutureRecord::<str, str>::to(&topic).partition(0).key(payload).payload(payload))
                .map_err(|(error, _)| error)
                .expect("queued")
        })
        .collect();
    let answers = tokio::time::timeout(Duration::from_secs(60), join_all(acknowledgements)).await.expect("every acknowledgement within 60 s");
    let offsets: Vec<i64> =
        answers.into_iter().map(|answer| answer.expect("not cancelled").map_err(|(error, _)| error).expect("delivered").offset).collect();
    let first = offsets[0];
    assert_eq!(offsets, (first..first + BURST as i64).collect::<Vec<_>>(), "in send order, without gaps (idempotent producer)");

    // The one-record path, after the burst: the serving thread went back to sleep and wakes.
    let delivery = producer
        .send(FutureRecord::<str, str>::to(&topic).partition(0).key("last").payload("last"), Duration::from_secs(10))
        .await
        .expect("delivered");
    assert_eq!(delivery.offset, first + BURST as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_cannot_be_delivered_fails_and_dropping_the_producer_ends_what_is_in_flight() {
    let brokers = env("KAFKA_BROKERS");
    let topic = fresh_topic(&brokers).await;
    let producer = kafka::producer(&brokers).expect("producer");
    let missing = producer.send(FutureRecord::<str, str>::to(&topic).partition(7).key("k").payload("v"), Duration::from_secs(10));
    let refused = tokio::time::timeout(Duration::from_secs(60), missing).await.expect("an answer, not a hang");
    assert!(refused.is_err(), "partition 7 of a one-partition topic: {refused:?}");

    let in_flight: Vec<_> = (0..100)
        .map(|i| {
            let payload = format!("in-flight-{i}");
            producer
                .send_result(FutureRecord::<str, str>::to(&topic).partition(0).payload(payload.as_str()))
                .map_err(|(error, _)| error)
                .expect("queued")
        })
        .collect();
    drop(producer);
    // Delivered before the close, purged by it, or cancelled: each future ends either way.
    tokio::time::timeout(Duration::from_secs(30), join_all(in_flight)).await.expect("every future ends once the producer is gone");
}

//! The durable default loses no acknowledged record: a Nisshi broker on its sqlite storage (the
//! engine `scripts/up.sh` starts it with) is killed with SIGKILL while records are in flight,
//! started again on the same storage, and every record it acknowledged is read back at the
//! offset its acknowledgement named, exactly once.
use rdkafka::{Message, producer::FutureRecord};
use runtime::kafka::{Acknowledgement, KafkaProducer};
use std::collections::HashMap;
use system_tests::{infra::Broker, test_dir};

const TOPIC: &str = "durability.check";
const BEFORE_KILL: usize = 300;
const IN_FLIGHT: usize = 300;

fn send(producer: &KafkaProducer, payload: &str) -> Acknowledgement {
    let record = FutureRecord::to(TOPIC).partition(0).key(payload).payload(payload);
    producer.send_result(record).unwrap_or_else(|(error, _)| panic!("enqueue {payload}: {error}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_killed_with_records_in_flight_keeps_every_acknowledged_record() {
    let dir = test_dir("durability");
    let mut broker = Broker::start(&dir.join("broker"));
    let brokers = broker.address();
    let topic = runtime::kafka::TopicSpec { name: TOPIC.into(), partitions: 1, configs: vec![] };
    runtime::kafka::ensure_topics(&brokers, &[topic]).await.expect("topic");
    // The services' own producer: idempotent, acks=all.
    let producer = runtime::kafka::producer(&brokers).expect("producer");

    let mut acknowledged: HashMap<String, i64> = HashMap::new();
    for i in 0..BEFORE_KILL {
        let payload = format!("before-{i}");
        let delivery = send(&producer, &payload).await.expect("delivery").unwrap_or_else(|(error, _)| panic!("{payload}: {error}"));
        acknowledged.insert(payload, delivery.offset);
    }
    let in_flight: Vec<(String, Acknowledgement)> = (0..IN_FLIGHT)
        .map(|i| {
            let payload = format!("in-flight-{i}");
            let delivery = send(&producer, &payload);
            (payload, delivery)
        })
        .collect();
    broker.stop();
    broker.start_again();
    // librdkafka retries what was not acknowledged before the kill; whatever it acknowledges now
    // (or acknowledged just before the kill) must be in the log too.
    let mut lost_in_flight = 0;
    for (payload, delivery) in in_flight {
        match delivery.await {
            Ok(Ok(delivery)) => {
                acknowledged.insert(payload, delivery.offset);
            }
            _ => lost_in_flight += 1,
        }
    }

    let reader = runtime::kafka::reader(&brokers).expect("reader");
    let (low, high) = runtime::kafka::watermarks(&reader, TOPIC, 0).expect("watermarks");
    let mut logged: HashMap<String, Vec<i64>> = HashMap::new();
    runtime::kafka::read_range(&reader, TOPIC, 0, low, high, |message| {
        let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        logged.entry(payload).or_default().push(message.offset());
    })
    .expect("read the log back");

    println!(
        "broker kill -9: {} records acknowledged ({BEFORE_KILL} before the kill, {} of {IN_FLIGHT} in flight), {lost_in_flight} in flight not acknowledged, {} records in the log",
        acknowledged.len(),
        acknowledged.len() - BEFORE_KILL,
        high - low
    );
    for (payload, offset) in &acknowledged {
        assert_eq!(logged.get(payload), Some(&vec![*offset]), "{payload} was acknowledged at offset {offset}");
    }
    let duplicated: Vec<_> = logged.iter().filter(|(_, offsets)| offsets.len() > 1).collect();
    assert!(duplicated.is_empty(), "the idempotent producer's retries were written twice: {duplicated:?}");
}

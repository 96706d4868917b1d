//! Records no command producer would write reach every command topic: a value of almost 1 MB,
//! a null value without a key, a tombstone (a key and no value) and a key that is not UTF-8.
//! Each is dead-lettered with its key and value exactly as they came, and every service stays
//! ready and goes on with the next command.
use std::time::{Duration, Instant};
use system_tests::{Stack, commands::*, unique};

const WAIT: Duration = Duration::from_secs(60);
/// Under the producer's and the broker's default limit of 1,000,000 bytes per record, with room
/// for the headers the dead letter adds.
const LARGE: usize = 999_000;

#[tokio::test(flavor = "multi_thread")]
async fn odd_records_on_every_command_topic_are_dead_lettered_byte_for_byte() {
    let stack = Stack::start("hostile-records", &[]);
    let large = vec![b'{'; LARGE];
    let odd_key: &[u8] = &[0xff, 0xfe, b'k', 0x80];
    for (service, topic) in [
        ("order-svc", "order.commands"),
        ("inventory-svc", "stock.commands"),
        ("payment-svc", "account.commands"),
        ("shipping-svc", "shipment.commands"),
        ("notify-svc", "notification.commands"),
    ] {
        let tombstone_key = unique("tombstone");
        let large_key = unique("large");
        let sent = [
            (Some(large_key.as_bytes()), Some(large.as_slice())),
            (None, None),
            (Some(tombstone_key.as_bytes()), None),
            (Some(odd_key), Some(b"{\"type\":".as_slice())),
        ];
        let mut positions = Vec::new();
        for (key, value) in sent {
            positions.push((stack.send_record(topic, key, value).await, key, value));
        }
        let dlq = format!("{topic}.dlq");
        for ((partition, offset), key, value) in positions {
            let dead = dead_letter_of(&stack, &dlq, topic, partition, offset).await;
            assert_eq!(dead.key.as_deref(), key, "{topic}@{offset}: the key must be kept as it was");
            assert_eq!(dead.value.as_deref().unwrap_or_default(), value.unwrap_or_default(), "{topic}@{offset}: the value must be kept");
            assert_eq!(dead.kind.as_deref(), Some("unparseable"), "{topic}@{offset}");
        }
        let (status, ready) = stack.get(service, "/ready").await;
        assert_eq!(status, 200, "{service} after odd records: {ready}");
    }
    let (skus, customers) = stack.stock_and_accounts("after-odd", 1, 5, &[10_000]).await;
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customers[0], &[(&skus[0], 1, 500)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
}

struct DeadLetter {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    kind: Option<String>,
}

/// Polls the dead-letter topic for the record that names `source`@`offset` as its origin.
async fn dead_letter_of(stack: &Stack, dlq: &str, source: &str, partition: i32, offset: i64) -> DeadLetter {
    let deadline = Instant::now() + WAIT;
    loop {
        let (brokers, dlq_topic, source_topic) = (stack.brokers.clone(), dlq.to_string(), source.to_string());
        let found = tokio::task::spawn_blocking(move || {
            use rdkafka::{Message, message::Headers};
            let reader = runtime::kafka::reader(&brokers).expect("reader");
            let (low, high) = runtime::kafka::watermarks(&reader, &dlq_topic, partition).expect("watermarks");
            let mut found = None;
            runtime::kafka::read_range(&reader, &dlq_topic, partition, low, high, |m| {
                let header = |name: &str| {
                    m.headers()
                        .and_then(|hs| hs.iter().find(|h| h.key == name))
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                };
                if header("dlq.source.topic").as_deref() == Some(&source_topic) && header("dlq.source.offset") == Some(offset.to_string()) {
                    found =
                        Some(DeadLetter { key: m.key().map(<[u8]>::to_vec), value: m.payload().map(<[u8]>::to_vec), kind: header("dlq.error.kind") });
                }
            })
            .expect("read");
            found
        })
        .await
        .expect("reader task");
        if let Some(found) = found {
            return found;
        }
        assert!(Instant::now() < deadline, "no dead letter of {source}/{partition}@{offset} on {dlq}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

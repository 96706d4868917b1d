//! Events travel in the Confluent wire format through the real registry and broker, and the
//! JSON console (`orderctl consume`) shows them with their headers.
use contracts::{
    EventEnvelope, Stream,
    order::{Address, Order, OrderEvent, OrderLine},
};
use rdkafka::{Message, producer::FutureRecord};
use runtime::kafka::{self, EventCodec};
use std::time::Duration;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: run scripts/test.sh"))
}

fn order_placed(order_id: &str) -> EventEnvelope<OrderEvent> {
    EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        aggregate_id: order_id.to_string(),
        version: 1,
        previous_event_id: None,
        occurred_at: 1_763_700_000_000,
        correlation_id: "corr-1".into(),
        causation_id: "cause-1".into(),
        command_id: "cmd-1".into(),
        command_offset: 0,
        payload: OrderEvent::OrderPlaced {
            customer_id: "cust-1".into(),
            lines: vec![OrderLine { sku: "sku-1".into(), quantity: 2, unit_price_cents: 500 }],
            currency: "EUR".into(),
            shipping_address: Address {
                name: "Ada".into(),
                street: "Main 1".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            },
            total_cents: 1000,
        },
    }
}

#[tokio::test]
async fn event_round_trips_in_confluent_wire_format_and_console_shows_headers() {
    let brokers = env("KAFKA_BROKERS");
    let registry = env("SCHEMA_REGISTRY_URL");
    kafka::ensure_all(&brokers, kafka::DEFAULT_PARTITIONS).await.expect("topics");
    let codec = EventCodec::<Order>::new(&registry).expect("codec");
    let order_id = format!("wire-{}", uuid::Uuid::new_v4());
    let event = order_placed(&order_id);

    let bytes = codec.encode(&event).await.expect("encode registers the schema");
    let latest: serde_json::Value =
        reqwest::get(format!("{registry}/subjects/order.events-value/versions/latest")).await.expect("registry answers").json().await.expect("json");
    let schema_id = latest["id"].as_u64().expect("id") as u32;
    assert_eq!(bytes[0], 0, "magic byte");
    assert_eq!(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]), schema_id, "schema id after the magic byte");

    let producer = kafka::producer(&brokers).expect("producer");
    let headers = kafka::headers(&[("event_type", "OrderPlaced"), ("test_marker", &order_id)]);
    let (partition, offset) = producer
        .send(FutureRecord::to(Order::EVENTS_TOPIC).key(&order_id).payload(&bytes).headers(headers), Duration::from_secs(10))
        .await
        .map(|d| (d.partition, d.offset))
        .expect("delivered");

    let reader = kafka::reader(&brokers).expect("reader");
    let mut read_back = None;
    kafka::read_range(&reader, Order::EVENTS_TOPIC, partition, offset, offset + 1, |m| read_back = m.payload().map(<[u8]>::to_vec)).expect("read");
    let decoded = codec.decode(&read_back.expect("record read back")).await.expect("decode");
    assert_eq!(decoded, event);

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_orderctl"))
        .args(["consume", Order::EVENTS_TOPIC, "--key", &order_id, "-n", "1"])
        .env("KAFKA_BROKERS", &brokers)
        .env("SCHEMA_REGISTRY_URL", &registry)
        .output()
        .await
        .expect("orderctl runs");
    assert!(output.status.success(), "orderctl failed: {}", String::from_utf8_lossy(&output.stderr));
    let line: serde_json::Value = serde_json::from_slice(output.stdout.split(|b| *b == b'\n').next().unwrap_or_default()).expect("one JSON line");
    assert_eq!(line["key"], order_id.as_str());
    assert_eq!(line["partition"], partition);
    assert_eq!(line["offset"], offset);
    assert_eq!(line["headers"]["test_marker"], order_id.as_str());
    assert_eq!(line["headers"]["event_type"], "OrderPlaced");
    assert_eq!(line["schema_id"], schema_id);
    assert_eq!(line["value"]["aggregate_id"], order_id.as_str());
    assert_eq!(line["value"]["payload"]["OrderPlaced"]["total_cents"], 1000);
}

#[tokio::test]
async fn incompatible_schema_version_is_refused_with_409() {
    let registry = env("SCHEMA_REGISTRY_URL");
    let codec = EventCodec::<Order>::new(&registry).expect("codec");
    codec.encode(&order_placed("compat-probe")).await.expect("current schema registered");
    // A new required field without a default cannot read existing events: not BACKWARD compatible.
    let mut schema: serde_json::Value = serde_json::from_str(Order::EVENT_SCHEMA).expect("avsc is JSON");
    schema["fields"].as_array_mut().expect("fields").push(serde_json::json!({"name": "tenant", "type": "string"}));
    let response = reqwest::Client::new()
        .post(format!("{registry}/subjects/order.events-value/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&serde_json::json!({ "schema": schema.to_string() }))
        .send()
        .await
        .expect("registry answers");
    assert_eq!(response.status().as_u16(), 409);
    let body: serde_json::Value = response.json().await.expect("json error body");
    assert_eq!(body["error_code"], 409);
}

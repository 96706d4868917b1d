//! Event records a reader cannot decode neither wedge nor fork anything:
//! - while the schema registry is unreachable, a reader retries instead of skipping: a read
//!   model rebuilt during a registry outage ends up with every event once the registry is back;
//! - a record that will never decode (not in the wire format, or an event type this version does
//!   not know) is parked byte for byte on `<topic>.dlq` with the reason, counted, and its
//!   aggregate's later events still apply.
//!
//! Its own broker and registry: the registry is stopped and a schema version is added.
use apache_avro::{Schema, types::Value as Avro, writer::datum::GenericDatumWriter};
use contracts::{EventEnvelope, stock::Stock};
use serde_json::{Value, json};
use std::time::Duration;
use system_tests::{
    Record, Stack,
    commands::restock,
    infra::{Broker, Registry},
    test_dir, unique,
};

const WAIT: Duration = Duration::from_secs(60);
const INVENTORY: &str = "inventory-svc";

#[tokio::test(flavor = "multi_thread")]
async fn a_read_model_built_while_the_registry_is_down_waits_for_it_instead_of_skipping() {
    let dir = test_dir("registry-outage");
    let broker = Broker::start(&dir.join("broker"));
    let mut registry = Registry::start(&broker.address(), &dir);
    let stack = Stack::start_on("registry-outage", &broker.address(), &registry.url, &[INVENTORY], &[]);
    let sku = unique("sku");
    stack.send("stock.commands", &sku, &restock(&sku, 5)).await;
    stack.eventually(INVENTORY, &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 5).await;

    // The read model is rebuilt from the log while the registry cannot be reached.
    stack.stop(INVENTORY);
    stack.delete_database(INVENTORY);
    registry.stop();
    stack.start_service(INVENTORY);
    let restarts = |metrics: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with("orderflow_loop_restarts_total") && l.contains("kind=\"projection\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (_, metrics) = stack.get_text(INVENTORY, "/metrics").await;
        if restarts(&metrics) > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no projection retried while the registry was down:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = stack.get(INVENTORY, &format!("/stock/{sku}")).await;
    assert_eq!(status, 404, "the stock view cannot have read the restock without the registry: {body}");

    registry.start_again();
    stack.eventually(INVENTORY, &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 5).await;
    stack.stop(INVENTORY);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_never_decodes_is_dead_lettered_and_its_aggregate_goes_on() {
    let dir = test_dir("undecodable-events");
    let broker = Broker::start(&dir.join("broker"));
    let registry = Registry::start(&broker.address(), &dir);
    // order-svc follows stock.events with a policy: the reader that parks what it cannot read.
    let stack = Stack::start_on("undecodable-events", &broker.address(), &registry.url, &[INVENTORY, "order-svc"], &[]);
    let sku = unique("sku");
    stack.send("stock.commands", &sku, &restock(&sku, 5)).await;
    stack.eventually(INVENTORY, &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 5).await;

    // A newer writer appended an event type this version does not know, right after the tip.
    let history = stack.records("stock.events", &sku).await;
    let last = history.last().expect("the restock is in the log");
    let codec = runtime::kafka::EventCodec::<Stock>::new(&registry.url).expect("codec");
    let tip: EventEnvelope<contracts::stock::StockEvent> = codec.decode(&last.payload).await.expect("our own event decodes");
    let unknown = newer_writers_event(&registry.url, &sku, tip.version + 1, &tip.event_id).await;
    let injected_at = Record { partition: last.partition, offset: 0, headers: Default::default(), payload: unknown.clone() };
    stack.redeliver("stock.events", &sku, &injected_at).await;
    // And someone typed plain text into the event topic.
    stack.send_raw("stock.events", Some(&sku), b"not an event").await;

    // The writer learns of the event when it rebuilds the partition, and goes on after it.
    stack.restart(INVENTORY);
    stack.send("stock.commands", &sku, &restock(&sku, 3)).await;
    stack.eventually(INVENTORY, &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == 8).await;
    let mut ours = Vec::new();
    for record in stack.records("stock.events", &sku).await {
        if let Ok(event) = codec.decode(&record.payload).await {
            ours.push(event);
        }
    }
    let after = ours.last().expect("the second restock");
    assert_eq!(ours.len(), 2, "exactly the two restocks of this version's writer: {ours:?}");
    assert_eq!(after.version, tip.version + 2, "the restock must extend the history after the unknown event, not fork it");

    for (kind, payload) in [("unknown_event_type", unknown.as_slice()), ("not_wire_format", b"not an event".as_slice())] {
        let parked =
            stack.record_appears("stock.events.dlq", &sku, WAIT, |r| r.headers.get("dlq.error.kind").map(String::as_str) == Some(kind)).await;
        assert_eq!(parked.payload, payload, "{kind}: the dead letter must hold the original bytes");
        assert_eq!(parked.headers.get("dlq.source.topic").map(String::as_str), Some("stock.events"));
        assert!(parked.headers.get("dlq.source.offset").is_some_and(|o| o.parse::<i64>().is_ok()), "{:?}", parked.headers);
        assert!(parked.headers.get("dlq.reader").is_some_and(|r| r.starts_with("order-svc.")), "{:?}", parked.headers);
        assert!(parked.headers.get("dlq.error.reason").is_some_and(|r| !r.is_empty()), "{:?}", parked.headers);
    }
    let (_, metrics) = stack.get_text("order-svc", "/metrics").await;
    let counted: Vec<&str> = metrics.lines().filter(|l| l.starts_with("orderflow_events_undecodable_total") && l.contains("stock.events")).collect();
    assert!(counted.iter().any(|l| l.contains("kind=\"unknown_event_type\"")), "{counted:?}");
    assert!(counted.iter().any(|l| l.contains("kind=\"not_wire_format\"")), "{counted:?}");

    // Other aggregates never waited on it.
    let other = unique("sku");
    stack.send("stock.commands", &other, &restock(&other, 2)).await;
    stack.eventually(INVENTORY, &format!("/stock/{other}"), WAIT, |s| s["on_hand"] == 2).await;
    stack.stop(INVENTORY);
    stack.stop("order-svc");
}

/// A `stock.events` record in the Confluent wire format, written with a newer schema version
/// that appends the event type `StockCounted` to the payload union (BACKWARD-compatible, so the
/// registry takes it).
async fn newer_writers_event(registry: &str, sku: &str, version: i64, previous_event_id: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/stock.events.avsc");
    let mut schema: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("stock schema")).expect("schema JSON");
    let fields = schema["fields"].as_array_mut().expect("fields");
    let payload = fields.iter_mut().find(|f| f["name"] == "payload").expect("payload field");
    let branches = payload["type"].as_array_mut().expect("payload union");
    branches.push(json!({"type": "record", "name": "StockCounted", "fields": [{"name": "counted", "type": "int"}]}));
    let branch = branches.len() - 1;
    let response = reqwest::Client::new()
        .post(format!("{registry}/subjects/stock.events-value/versions"))
        .json(&json!({"schema": schema.to_string()}))
        .send()
        .await
        .expect("register the newer schema");
    assert!(response.status().is_success(), "registry refused the newer schema: {}", response.status());
    let id = response.json::<Value>().await.expect("registry answer")["id"].as_u64().expect("schema id") as u32;
    let parsed = Schema::parse(&schema).expect("newer schema parses");
    let uuid = |text: &str| Avro::Uuid(uuid::Uuid::parse_str(text).expect("uuid"));
    let record = Avro::Record(vec![
        ("event_id".into(), uuid(&uuid::Uuid::new_v4().to_string())),
        ("aggregate_id".into(), Avro::String(sku.into())),
        ("version".into(), Avro::Long(version)),
        ("previous_event_id".into(), Avro::Union(1, Box::new(uuid(previous_event_id)))),
        ("occurred_at".into(), Avro::TimestampMillis(now_millis())),
        ("correlation_id".into(), Avro::String(unique("corr"))),
        ("causation_id".into(), Avro::String(unique("cause"))),
        ("command_id".into(), Avro::String(unique("count"))),
        ("command_offset".into(), Avro::Long(-1)),
        ("payload".into(), Avro::Union(branch as u32, Box::new(Avro::Record(vec![("counted".into(), Avro::Int(5))])))),
    ]);
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    let writer = GenericDatumWriter::builder(&parsed).build().expect("a writer of the newer schema");
    bytes.extend(writer.write_value_to_vec(record).expect("encodes with the newer schema"));
    bytes
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

//! Restart cost bounded by live state (issue 13): a stream's writer keeps snapshots of its
//! partitions on `<stream>.snapshots`; a writer taking a partition over starts from the newest
//! one and reads only the log after it, and so does every reader of the stream that needs the
//! accepted history before its first event (a policy). The restored state decides as the log
//! does: an order placed before the snapshot is still there (placing it again is refused) and
//! its command id is still known (sending the same command again is a duplicate). A snapshot
//! that does not match the log, or whose states do not read back, is not used. Orders waiting
//! in a step when the snapshot was taken still time out after a restart (the deadlines fold
//! them from their first event).
//!
//! Its own broker and registry, one partition per topic and a snapshot every 20 events, so that
//! a few orders make snapshots.
use apache_avro::{Schema, types::Value as Avro, writer::datum::GenericDatumWriter};
use rdkafka::Message;
use serde_json::{Value, json};
use std::time::Duration;
use system_tests::{Stack, infra, services, unique};

const WAIT: Duration = Duration::from_secs(60);
const ORDERS: usize = 8;
/// Orders left waiting for their stock, at least.
const WAITING: usize = 22;
/// How long an order may wait for its stock here: long enough for a restart of order-svc.
const STOCK_DEADLINE_MS: &str = "30000";

fn order_body(order_id: &str, command_id: &str, customer: &str, sku: &str) -> Value {
    json!({
        "order_id": order_id,
        "command_id": command_id,
        "customer_id": customer,
        "lines": [{"sku": sku, "quantity": 1, "unit_price_cents": 1_000}],
        "currency": "EUR",
        "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    })
}

async fn place(stack: &Stack, body: &Value) {
    let (status, answer) = stack.post_answered("order-svc", "/orders", body, 5).await;
    assert_eq!(status, 202, "POST /orders: {answer}");
}

async fn outcome(stack: &Stack, command_id: &str) -> Value {
    stack.eventually("order-svc", &format!("/commands/{command_id}"), WAIT, |o| o["status"] != "PENDING" && o["status"].is_string()).await
}

/// End of partition 0 of `topic`.
fn log_end(brokers: &str, topic: &str) -> i64 {
    let reader = runtime::kafka::reader(brokers).expect("reader");
    runtime::kafka::watermarks(&reader, topic, 0).expect("watermarks").1
}

/// The digest of the record before `end` in partition 0 of `topic`: what a snapshot covering
/// `end` must name to match the log.
fn digest_of_last(brokers: &str, topic: &str, end: i64) -> String {
    let reader = runtime::kafka::reader(brokers).expect("reader");
    let mut value = None;
    runtime::kafka::read_range(&reader, topic, 0, end - 1, end, |message| value = message.payload().map(<[u8]>::to_vec)).expect("the last record");
    runtime::testing::digest(&value.expect("the last record has a value"))
}

/// Restarts order-svc after snapshot `snapshot_id` was forged, places `order_id` again under a
/// new command id and expects it refused (the writer still knows the order: it read the log,
/// not the forged snapshot), and the warning `warning` about that snapshot.
async fn restart_and_place_again(stack: &Stack, order_id: &str, command_id: &str, customer: &str, sku: &str, snapshot_id: &str, warning: &str) {
    stack.kill("order-svc");
    stack.start_service("order-svc");
    place(stack, &order_body(order_id, command_id, customer, sku)).await;
    let refused = outcome(stack, command_id).await;
    assert_eq!(refused["status"], "REJECTED", "the forged snapshot {snapshot_id} was used: {refused}");
    stack.logs(WAIT, "order-svc", warning, |f| f["snapshot"] == snapshot_id && f["topic"] == "order.events").await;
}

/// Writes a one-part snapshot `id` of partition 0 of the order stream, covering `end` with
/// `digest`, holding `body` (encoded as a writer would, through the registry's schema).
async fn forge_snapshot(stack: &Stack, id: &str, end: i64, digest: &str, body: &str) {
    let schema_text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/snapshot.avsc")).expect("snapshot schema");
    let schema = Schema::parse_str(&schema_text).expect("schema");
    let registered: Value = reqwest::Client::new()
        .post(format!("{}/subjects/order.snapshots-value/versions", stack.registry))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&json!({"schema": schema_text}))
        .send()
        .await
        .expect("registry answers")
        .json()
        .await
        .expect("registry json");
    let schema_id = registered["id"].as_u64().expect("schema id") as u32;
    let text = |value: &str| Avro::String(value.to_string());
    let forged = Avro::Record(vec![
        ("snapshot_id".into(), text(id)),
        ("stream".into(), text("order")),
        ("partition".into(), Avro::Int(0)),
        ("covers_offset".into(), Avro::Long(end)),
        ("covers_digest".into(), text(digest)),
        ("rejections_offset".into(), Avro::Long(0)),
        ("last_command_offset".into(), Avro::Long(-1)),
        ("taken_at".into(), Avro::Long(0)),
        ("part".into(), Avro::Int(0)),
        ("parts".into(), Avro::Int(1)),
        ("format".into(), text("json/1")),
        ("body".into(), text(body)),
    ]);
    let mut bytes = vec![0u8];
    bytes.extend(schema_id.to_be_bytes());
    let writer = GenericDatumWriter::builder(&schema).build().expect("a writer of the snapshot schema");
    bytes.extend(writer.write_value_to_vec(forged).expect("encodes"));
    stack.send_record("order.snapshots", Some(format!("0/{id}/0").as_bytes()), Some(&bytes)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writers_and_readers_start_from_snapshots_that_match_the_log() {
    let dir = system_tests::test_dir("snapshots-infra");
    let broker = infra::Broker::start(&dir.join("broker"));
    let registry = infra::Registry::start(&broker.address(), &dir);
    let stack = Stack::start_on(
        "snapshots",
        &broker.address(),
        &registry.url,
        &services(),
        // Four aggregates in memory per partition: the others are decided on and snapshotted
        // from the writers' files on disk.
        &[("SNAPSHOT_EVERY_EVENTS", "20"), ("PARTITIONS", "1"), ("ORDER_DEADLINE_STOCK_MS", STOCK_DEADLINE_MS), ("AGGREGATES_IN_MEMORY", "4")],
    );
    let (sku, customer) = stack.stocked(1_000, 1_000_000).await;

    let orders: Vec<String> = (0..ORDERS).map(|_| unique("snap")).collect();
    for order_id in &orders {
        place(&stack, &order_body(order_id, &format!("{order_id}-place"), &customer, &sku)).await;
    }
    for order_id in &orders {
        stack.order_reaches(order_id, "CONFIRMED").await;
    }
    let written = stack.logs(WAIT, "order-svc", "snapshot written", |f| f["topic"] == "order.events").await;
    let covers = written["covers"].as_i64().expect("covers");
    assert!(covers >= 20, "a snapshot of {covers} events: {written}");

    // The writer and a reader of order.events start again; the next order shows both used it.
    stack.kill("order-svc");
    stack.kill("payment-svc");
    stack.start_service("order-svc");
    stack.start_service("payment-svc");

    // Placed before the snapshot: the same command is a duplicate, another one is refused.
    let first = &orders[0];
    place(&stack, &order_body(first, &format!("{first}-place"), &customer, &sku)).await;
    let again = format!("{first}-again");
    place(&stack, &order_body(first, &again, &customer, &sku)).await;
    let refused = outcome(&stack, &again).await;
    assert_eq!(refused["status"], "REJECTED", "{refused}");
    assert!(refused["reason"].as_str().is_some_and(|reason| reason.contains("already exists")), "{refused}");
    let rehydrated = stack.logs(WAIT, "order-svc", "rehydrated partition", |f| f["topic"] == "order.events" && f["snapshot"].is_string()).await;
    assert!(rehydrated["from_snapshot"].as_u64().is_some_and(|n| n >= ORDERS as u64), "{rehydrated}");
    assert!(rehydrated["warm"].as_u64().is_some_and(|n| n <= 4), "more aggregates in memory than AGGREGATES_IN_MEMORY: {rehydrated}");
    assert!(rehydrated["events"].as_i64().is_some_and(|tail| tail < covers), "read the whole log, not the tail after the snapshot: {rehydrated}");
    // Only now was the partition rebuilt, so the restarted process counted the duplicate.
    let (_, metrics) = stack.get_text("order-svc", "/metrics").await;
    assert!(
        metrics.lines().any(|line| line.starts_with("orderflow_commands_total{")
            && line.contains(r#"outcome="duplicate""#)
            && line.contains(r#"type="PlaceOrder""#)
            && line.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()).is_some_and(|n| n >= 1.0)),
        "the command id placed before the snapshot was not known as handled"
    );
    let accepted = outcome(&stack, &format!("{first}-place")).await;
    assert_eq!(accepted["status"], "ACCEPTED", "the first placement's outcome changed: {accepted}");
    let (_, view) = stack.get("order-svc", &format!("/orders/{first}")).await;
    assert_eq!(view["status"], "CONFIRMED", "{view}");

    let after = unique("snap-after");
    place(&stack, &order_body(&after, &format!("{after}-place"), &customer, &sku)).await;
    stack.order_reaches(&after, "CONFIRMED").await;
    let history = stack.logs(WAIT, "payment-svc", "accepted history rebuilt", |f| f["topic"] == "order.events").await;
    assert_eq!(history["from_snapshot"], true, "payment-svc's policy read order.events from its start: {history}");

    // A snapshot of the log's current end that does not match it (wrong digest), and whose
    // contents would have every order forgotten, is not used.
    let end = log_end(&stack.brokers, "order.events");
    forge_snapshot(&stack, "forged", end, &"0".repeat(64), r#"{"aggregates":[],"handled":[]}"#).await;
    let second = &orders[1];
    let mismatch = "snapshot does not match the log (replaced or cut?); reading the log from its start";
    restart_and_place_again(&stack, second, &format!("{second}-once-more"), &customer, &sku, "forged", mismatch).await;

    // One that matches the log but whose states do not read back (as after a change of the
    // state's type), most of them beyond the 4 kept in memory: the writer reads the log from
    // its start instead of failing over and over.
    let end = log_end(&stack.brokers, "order.events");
    let entries: Vec<Value> =
        (0..6).map(|k| json!({"id": format!("unreadable-{k}"), "version": 1, "event_id": null, "state": "not an order"})).collect();
    let body = json!({"aggregates": entries, "handled": []}).to_string();
    forge_snapshot(&stack, "unreadable", end, &digest_of_last(&stack.brokers, "order.events", end), &body).await;
    let third = &orders[2];
    let unreadable = "snapshot does not read back (a state's type changed?); reading the log from its start";
    restart_and_place_again(&stack, third, &format!("{third}-again"), &customer, &sku, "unreadable", unreadable).await;

    // Orders waiting for their stock (inventory-svc is down) when a snapshot is taken still
    // time out after a restart: the deadlines fold the waiting orders from their first event.
    stack.kill("inventory-svc");
    let mut waiting: Vec<String> = Vec::new();
    for _ in 0..WAITING {
        waiting.push(unique("snap-waiting"));
        place(&stack, &order_body(&waiting[waiting.len() - 1], &format!("{}-place", waiting[waiting.len() - 1]), &customer, &sku)).await;
    }
    // More waiting orders until a snapshot covers the first ones (a snapshot waits for as many
    // events as the partition has aggregates).
    let placed = log_end(&stack.brokers, "order.events");
    let covered = |fields: &Value| fields["topic"] == "order.events" && fields["covers"].as_i64().is_some_and(|c| c >= placed);
    while !stack.logged("order-svc", "snapshot written").iter().any(covered) {
        assert!(waiting.len() < 10 * WAITING, "no snapshot covers the waiting orders; see {}", stack.dir.join("logs").display());
        let order_id = unique("snap-waiting");
        place(&stack, &order_body(&order_id, &format!("{order_id}-place"), &customer, &sku)).await;
        waiting.push(order_id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("order-svc");
    stack.start_service("order-svc");
    let restored = stack.logs(WAIT, "order-svc", "deadlines restored from a snapshot", |f| f["covers"].as_i64().is_some_and(|c| c >= placed)).await;
    // Not an exact count: in CI the snapshot covering them held 21 of the first 22 as waiting
    // (all 22 still PENDING) on one pass in two. What must hold is below: with inventory-svc
    // down only a deadline ends these orders, so every one of them, in the snapshot or in the
    // tail after it, times out after the restart.
    assert!(restored["waiting"].as_u64().is_some_and(|n| n > 0), "the snapshot holds waiting orders: {restored}");
    for order_id in &waiting {
        let cancelled = stack.order_reaches(order_id, "CANCELLED").await;
        assert_eq!(cancelled["cancellation_reason"], "TIMEOUT", "{cancelled}");
    }
    stack.start_service("inventory-svc");
    drop(stack);
    drop(registry);
    drop(broker);
}

//! What a restarted command processor makes of the log it finds: a redelivered command gets the
//! outcome it first got, refusals included, and a decision the log holds only the first event of
//! (the writer crashed between its two appends) is completed, so the order still settles.
//! Five real services; order-svc is killed with SIGKILL and started again.
use contracts::{
    EventEnvelope, EventType,
    order::{Address, Order, OrderEvent, OrderLine},
};
use rdkafka::producer::FutureRecord;
use serde_json::{Value, json};
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Record, Stack, commands::*, id_on_partition, one_at_a_time, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("command-recovery", &[]))
}

/// Produces a JSON command to an explicit partition, so that commands sent one after the other
/// are handled in that order.
async fn send_to(stack: &Stack, partition: i32, key: &str, command: &Value) {
    let record = Record { partition, offset: 0, headers: Default::default(), payload: command.to_string().into_bytes() };
    stack.redeliver("order.commands", key, &record).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_command_redelivered_after_a_restart_stays_refused() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let partitions = stack.partitions_of("order.commands").await;
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = unique("order");
    let partition = runtime::kafka::partition_for(&order_id, partitions);

    // A cancel that arrives before its order: refused, "order not found".
    let cancel_id = unique("cancel");
    let mut early_cancel = cancel(&order_id);
    early_cancel["command_id"] = json!(cancel_id);
    send_to(stack, partition, &order_id, &early_cancel).await;
    let refused = stack.eventually("order-svc", &format!("/commands/{cancel_id}"), WAIT, |o| o["status"] == "REJECTED").await;
    assert!(refused["reason"].as_str().is_some_and(|r| r.contains("not found")), "{refused}");

    // Now the order exists and could be cancelled: deciding the cancel again would accept it.
    send_to(stack, partition, &order_id, &place_order(&order_id, &customer, &[(&sku, 1, 700)], "EUR", "DE")).await;
    let confirmed = stack.order_reaches(&order_id, "CONFIRMED").await;

    // The writer's state is rebuilt from the log: events and rejections.
    stack.kill("order-svc");
    stack.start_service("order-svc");
    send_to(stack, partition, &order_id, &early_cancel).await;
    // Behind it on the same partition: once the marker is in the view, the cancel was handled
    // (and the view has applied whatever it appended).
    let marker = id_on_partition("marker", partition, partitions);
    send_to(stack, partition, &marker, &place_order(&marker, &customer, &[(&sku, 1, 100)], "EUR", "DE")).await;
    stack.eventually("order-svc", &format!("/orders/{marker}"), WAIT, |o| o["status"].is_string()).await;

    let order = stack.order_reaches(&order_id, "CONFIRMED").await;
    assert_eq!(order["version"], confirmed["version"], "the redelivered cancel appended nothing: {order}");
    assert_eq!(order["cancellation_reason"], Value::Null);
    let outcome = stack.eventually("order-svc", &format!("/commands/{cancel_id}"), WAIT, |o| o["status"].is_string()).await;
    assert_eq!(outcome["status"], "REJECTED", "the outcome it first got: {outcome}");
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == 10_000 - 700 - 100).await;
}

/// An order event as order-svc's command processor writes it: Confluent-framed Avro through the
/// registry, key = order id, the headers it sets (`decision_part` says which of how many events
/// of one decision this is).
async fn append_by_hand(stack: &Stack, partition: i32, event: &EventEnvelope<OrderEvent>, decision_part: &str) {
    let codec = runtime::kafka::EventCodec::<Order>::new(&stack.registry).expect("codec");
    let bytes = codec.encode(event).await.expect("an order event encodes");
    let producer = runtime::kafka::producer(&stack.brokers).expect("producer");
    let headers = runtime::kafka::headers(&[
        ("event_type", event.payload.event_type()),
        ("correlation_id", &event.correlation_id),
        ("causation_id", &event.causation_id),
        ("command_id", &event.command_id),
        ("decision_part", decision_part),
    ]);
    producer
        .send(
            FutureRecord::to("order.events").key(&event.aggregate_id).partition(partition).payload(&bytes).headers(headers),
            Duration::from_secs(10),
        )
        .await
        .expect("event appended");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_whose_stock_reservation_was_half_persisted_still_settles() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let partitions = stack.partitions_of("order.events").await;
    assert_eq!(partitions, stack.partitions_of("order.commands").await, "co-partitioned");
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = unique("order");
    let partition = runtime::kafka::partition_for(&order_id, partitions);

    // order-svc crashes; what it left in the log is written here by hand.
    stack.kill("order-svc");
    let line = OrderLine { sku: sku.clone(), quantity: 2, unit_price_cents: 900 };
    let address = Address { name: "Ada".into(), street: "Main 1".into(), city: "Berlin".into(), postal_code: "10115".into(), country: "DE".into() };
    let placed = EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        aggregate_id: order_id.clone(),
        version: 1,
        previous_event_id: None,
        occurred_at: now_millis(),
        correlation_id: format!("place-{order_id}"),
        causation_id: format!("place-{order_id}"),
        command_id: format!("place-{order_id}"),
        command_offset: 0,
        payload: OrderEvent::OrderPlaced {
            customer_id: customer.clone(),
            lines: vec![line.clone()],
            currency: "EUR".into(),
            shipping_address: address,
            total_cents: 1800,
        },
    };
    append_by_hand(stack, partition, &placed, "1/1").await;
    // inventory-svc reserves the stock for it (order-svc's policies are down with it).
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 2).await;

    // The command that records the reservation, as order-svc's policy produces it, then the
    // first of the two events its decision appends (OrderLineReserved, then OrderStockReserved):
    // the crash came before the second.
    let record_id = unique("record-stock-reserved");
    let record = json!({"type": "RecordStockReserved", "order_id": order_id, "sku": sku, "quantity": 2, "command_id": record_id});
    send_to(stack, partition, &order_id, &record).await;
    let command_offset = stack
        .records("order.commands", &order_id)
        .await
        .into_iter()
        .find(|r| r.json()["command_id"] == record_id.as_str())
        .map(|r| r.offset)
        .expect("the command is on order.commands");
    let line_reserved = EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        version: 2,
        previous_event_id: Some(placed.event_id.clone()),
        command_id: record_id.clone(),
        command_offset,
        payload: OrderEvent::OrderLineReserved { sku: sku.clone(), quantity: 2 },
        ..placed.clone()
    };
    append_by_hand(stack, partition, &line_reserved, "1/2").await;

    // order-svc comes back, rebuilds the order from the log and gets the command again.
    let restarted = Instant::now();
    stack.start_service("order-svc");
    let order = stack.order_reaches(&order_id, "CONFIRMED").await;
    println!("order settled {:?} after the restart", restarted.elapsed());
    assert_eq!(order["version"], 5, "placed, line reserved, stock reserved (completed), paid, confirmed: {order}");
    let outcome =
        stack.eventually("order-svc", &format!("/commands/{record_id}"), WAIT, |o| o["events"].as_array().is_some_and(|e| e.len() == 2)).await;
    let types: Vec<&str> = outcome["events"].as_array().into_iter().flatten().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types, ["OrderLineReserved", "OrderStockReserved"], "{outcome}");
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == 10_000 - 1800).await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 2 && s["on_hand"] == 5).await;
}

fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

//! A customer's cancel racing the warehouse's dispatch (issue 11, hole 1). Dispatch is the point
//! of no return and the Shipment aggregate decides it: from payment on, a cancel is a request
//! that shipping answers. Cancelled before dispatch: the order is cancelled, refunded and its
//! stock released, and the warehouse can no longer dispatch it. Dispatched first: the order
//! ships, nothing is refunded, the stock leaves once, and the customer hears it is too late.
//!
//! The races are made exact by stopping a service: with order-svc stopped, the dispatch is in
//! shipping's log but not yet on the order when the cancel is decided; with shipping-svc
//! stopped, the request waits for shipping's answer. Five real services, real broker, registry
//! and database.
use serde_json::{Value, json};
use std::{sync::OnceLock, time::Duration};
use system_tests::{Record, Stack, commands::*, one_at_a_time, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("cancel-dispatch", &[]))
}

async fn account(stack: &Stack, customer: &str, balance: i64, refunded: i64) -> Value {
    stack
        .eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == balance && a["refunded_cents"] == refunded)
        .await
}

/// A confirmed order of one unit at 7.00 EUR: its stock reserved, its payment captured and its
/// shipment scheduled. Returns (order, sku, customer); the SKU has 5 on hand, the customer had 100.00.
async fn confirmed_order(stack: &Stack) -> (String, String, String) {
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customer, &[(&sku, 1, 700)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "SCHEDULED").await;
    account(stack, &customer, 9_300, 0).await;
    stack.stock_is(&sku, 1, 5).await;
    (order_id, sku, customer)
}

/// Produces a JSON command straight to the partition that owns `key`, so that it is in the log
/// before anything a service produces after it (nothing has to forward it).
async fn send_to_owner(stack: &Stack, topic: &'static str, key: &str, command: &Value) {
    let partition = runtime::kafka::partition_for(key, stack.partitions_of(topic).await);
    let record = Record { partition, offset: 0, headers: Default::default(), payload: command.to_string().into_bytes() };
    stack.redeliver(topic, key, &record).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_decided_after_the_dispatch_is_refused_and_the_order_ships() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (order_id, sku, customer) = confirmed_order(stack).await;

    // The warehouse dispatches while order-svc is down: shipping has decided, the order not yet.
    stack.stop("order-svc");
    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "DISPATCHED").await;
    stack.stock_is(&sku, 0, 4).await;
    // The customer's cancel is ahead of the order's RecordShipmentDispatched, which order-svc's
    // policy can only produce once it runs again.
    let cancel_id = unique("cancel");
    let mut cancel_command = cancel(&order_id);
    cancel_command["command_id"] = json!(cancel_id);
    send_to_owner(stack, "order.commands", &order_id, &cancel_command).await;
    stack.start_service("order-svc");

    let outcome = stack.eventually("order-svc", &format!("/commands/{cancel_id}"), WAIT, |o| o["status"] != "PENDING").await;
    assert_eq!(outcome["status"], "ACCEPTED", "{outcome}");
    assert_eq!(outcome["events"][0]["type"], "OrderCancellationRequested", "a request, not a cancellation: {outcome}");
    let order = stack
        .eventually("order-svc", &format!("/orders/{order_id}"), WAIT, |o| {
            o["status"] == "SHIPPED" && o["cancellation_request"]["status"] == "REFUSED"
        })
        .await;
    assert_eq!(order["cancellation_reason"], Value::Null, "{order}");
    assert_eq!(order["cancellation_request"]["reason"], "CUSTOMER_REQUEST", "{order}");
    assert_eq!(order["cancellation_request"]["refusal"], "shipment already dispatched", "{order}");
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED", "ORDER_SHIPPED", "ORDER_CANCELLATION_REFUSED"]).await;

    // A shipped order is never cancelled, so nothing is refunded and the stock left exactly once.
    account(stack, &customer, 9_300, 0).await;
    let stock = stack.stock_is(&sku, 0, 4).await;
    assert_eq!(stock["available"], 4, "{stock}");
    let reservation = stack.eventually("inventory-svc", &format!("/reservations/{order_id}"), WAIT, |r| r["status"].is_string()).await;
    assert_eq!(reservation["status"], "SHIPPED", "{reservation}");
    let shipment = stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"].is_string()).await;
    assert_eq!(shipment["status"], "DISPATCHED", "{shipment}");

    // Asked again, the order answers at once.
    stack.send("order.commands", &order_id, &cancel(&order_id)).await;
    let rejection = stack.record_appears("order.rejections", &order_id, WAIT, |_| true).await;
    assert!(rejection.json()["reason"].as_str().is_some_and(|r| r.contains("shipped")), "{}", rejection.json());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancel_that_reaches_shipping_before_the_dispatch_cancels_refunds_and_releases() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (order_id, sku, customer) = confirmed_order(stack).await;

    // With shipping-svc down, the request waits for its answer: nothing is undone yet.
    stack.stop("shipping-svc");
    stack.send("order.commands", &order_id, &cancel(&order_id)).await;
    let pending = stack.eventually("order-svc", &format!("/orders/{order_id}"), WAIT, |o| o["cancellation_request"]["status"] == "REQUESTED").await;
    assert_eq!(pending["status"], "CONFIRMED", "{pending}");
    assert_eq!(pending["cancellation_request"]["detail"], "changed my mind", "{pending}");
    // The request is in the order's log, so every other service has it behind its last event.
    account(stack, &customer, 9_300, 0).await;
    stack.stock_is(&sku, 1, 5).await;

    stack.start_service("shipping-svc");
    let order = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellation_reason"], "CUSTOMER_REQUEST", "{order}");
    assert_eq!(order["cancellation_detail"], "changed my mind", "{order}");
    let order = stack.eventually("order-svc", &format!("/orders/{order_id}"), WAIT, |o| o["cancellation_request"]["status"] == "ACCEPTED").await;
    assert_eq!(order["status"], "CANCELLED");
    account(stack, &customer, 10_000, 700).await;
    stack.stock_is(&sku, 0, 5).await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "CANCELLED").await;
    stack.notifications_are(&order_id, &["ORDER_CANCELLED", "ORDER_CONFIRMED", "REFUND_ISSUED"]).await;

    // The warehouse comes too late: refused, and the released unit stays on hand.
    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    let rejection = stack.record_appears("shipment.rejections", &order_id, WAIT, |_| true).await;
    assert_eq!(rejection.json()["reason"], "shipment was cancelled");
    let reservation = stack.eventually("inventory-svc", &format!("/reservations/{order_id}"), WAIT, |r| r["status"].is_string()).await;
    assert_eq!(reservation["status"], "RELEASED", "{reservation}");
    stack.stock_is(&sku, 0, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_cancellation_and_stock_commands_are_dead_lettered_and_processing_continues() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let key = unique("bad");
    let cases = [
        ("shipment.commands", json!({"type": "CancelShipment", "order_id": key, "customer_id": "", "command_id": unique("cmd")}), "invalid"),
        ("order.commands", json!({"type": "RecordShipmentCancellationRefused", "order_id": key, "command_id": unique("cmd")}), "unparseable"),
        ("stock.commands", json!({"type": "ReleaseStock", "sku": key, "order_id": "", "command_id": unique("cmd")}), "invalid"),
    ];
    for (topic, command, _) in &cases {
        stack.send(topic, &key, command).await;
    }
    for (topic, command, kind) in &cases {
        let dead = stack.record_appears(&format!("{topic}.dlq"), &key, WAIT, |r| r.json()["command_id"] == command["command_id"]).await;
        assert_eq!(dead.headers.get("dlq.error.kind").map(String::as_str), Some(*kind), "{topic}: {:?}", dead.headers);
        assert!(dead.headers.get("dlq.error.reason").is_some_and(|r| !r.is_empty()), "{topic}: {:?}", dead.headers);
    }
    confirmed_order(stack).await;
}

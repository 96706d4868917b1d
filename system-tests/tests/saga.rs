//! The choreographed saga end to end: five real services, real broker, registry and SQLite,
//! driven only by JSON commands on command topics (as with kcat) and read over HTTP.
use serde_json::{Value, json};
use std::{sync::OnceLock, time::Duration};
use system_tests::{Stack, commands::*, id_on_partition, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("saga", &[]))
}

async fn balance(stack: &Stack, customer: &str, balance: i64) -> Value {
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == balance).await
}

async fn place(stack: &Stack, customer: &str, lines: &[(&str, i64, i64)], country: &str) -> String {
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, customer, lines, "EUR", country)).await;
    order_id
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_confirmed_then_shipped_then_delivered() {
    let stack = stack();
    let (sku, customer) = stack.stocked(10, 10_000).await;
    let order_id = place(stack, &customer, &[(&sku, 2, 1250)], "DE").await;

    let order = stack.order_reaches(&order_id, "CONFIRMED").await;
    assert_eq!(order["total_cents"], 2500);
    assert!(order["shipment"]["tracking_number"].as_str().is_some_and(|t| !t.is_empty()), "{order}");
    stack.stock_is(&sku, 2, 10).await;
    balance(stack, &customer, 7500).await;
    let shipment = stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "SCHEDULED").await;
    assert_eq!(shipment["carrier"], order["shipment"]["carrier"]);
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED"]).await;

    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    stack.order_reaches(&order_id, "SHIPPED").await;
    stack.stock_is(&sku, 0, 8).await;
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED", "ORDER_SHIPPED"]).await;

    stack.send("shipment.commands", &order_id, &deliver(&order_id)).await;
    stack.order_reaches(&order_id, "DELIVERED").await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "DELIVERED").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_stock_cancels_and_releases_the_line_that_fit() {
    let stack = stack();
    let (plenty, customer) = stack.stocked(5, 10_000).await;
    let scarce = unique("sku");
    stack.send("stock.commands", &scarce, &restock(&scarce, 1)).await;
    stack.eventually("inventory-svc", &format!("/stock/{scarce}"), WAIT, |s| s["on_hand"] == 1).await;

    let order_id = place(stack, &customer, &[(&plenty, 2, 100), (&scarce, 3, 100)], "DE").await;
    let order = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellation_reason"], "OUT_OF_STOCK");
    stack.stock_is(&plenty, 0, 5).await;
    stack.stock_is(&scarce, 0, 1).await;
    balance(stack, &customer, 10_000).await;
    stack.notifications_are(&order_id, &["ORDER_CANCELLED"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn payment_declined_cancels_and_releases_stock() {
    let stack = stack();
    let (sku, customer) = stack.stocked(5, 100).await;
    let order_id = place(stack, &customer, &[(&sku, 1, 500)], "DE").await;
    let order = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellation_reason"], "PAYMENT_DECLINED");
    stack.stock_is(&sku, 0, 5).await;
    balance(stack, &customer, 100).await;
    let payment = stack.eventually("payment-svc", &format!("/payments/{order_id}"), WAIT, |p| p["status"] == "DECLINED").await;
    assert_eq!(payment["decline_reason"], "INSUFFICIENT_FUNDS");
}

#[tokio::test(flavor = "multi_thread")]
async fn unserved_country_cancels_refunds_and_releases() {
    let stack = stack();
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = place(stack, &customer, &[(&sku, 2, 1000)], "AQ").await;
    let order = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellation_reason"], "SHIPPING_UNAVAILABLE");
    stack.stock_is(&sku, 0, 5).await;
    let account = balance(stack, &customer, 10_000).await;
    let account = if account["refunded_cents"] == 2000 {
        account
    } else {
        stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["refunded_cents"] == 2000).await
    };
    assert_eq!(account["captured_cents"], 2000);
    stack.notifications_are(&order_id, &["ORDER_CANCELLED", "REFUND_ISSUED"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_cancel_before_dispatch_compensates_everything() {
    let stack = stack();
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = place(stack, &customer, &[(&sku, 1, 700)], "FR").await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    balance(stack, &customer, 9_300).await;

    stack.send("order.commands", &order_id, &cancel(&order_id)).await;
    let order = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(order["cancellation_reason"], "CUSTOMER_REQUEST");
    balance(stack, &customer, 10_000).await;
    stack.stock_is(&sku, 0, 5).await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "CANCELLED").await;
    stack.notifications_are(&order_id, &["ORDER_CANCELLED", "ORDER_CONFIRMED", "REFUND_ISSUED"]).await;

    // The warehouse can no longer dispatch it.
    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    let rejection = stack.record_appears("shipment.rejections", &order_id, WAIT, |_| true).await;
    assert_eq!(rejection.json()["reason"], "shipment was cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn customer_cancel_after_dispatch_is_rejected() {
    let stack = stack();
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = place(stack, &customer, &[(&sku, 1, 700)], "DE").await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    stack.order_reaches(&order_id, "SHIPPED").await;

    stack.send("order.commands", &order_id, &cancel(&order_id)).await;
    let rejection = stack.record_appears("order.rejections", &order_id, WAIT, |_| true).await;
    let rejection = rejection.json();
    assert_eq!(rejection["command_type"], "CancelOrder");
    assert!(rejection["reason"].as_str().is_some_and(|r| r.contains("shipped")), "{rejection}");
    let order = stack.order_reaches(&order_id, "SHIPPED").await;
    assert_eq!(order["cancellation_reason"], Value::Null);
    balance(stack, &customer, 9_300).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_orders_race_for_the_last_unit_and_exactly_one_wins() {
    let stack = stack();
    let (sku, first_customer) = stack.stocked(1, 10_000).await;
    let second_customer = unique("cust");
    stack.send("account.commands", &second_customer, &deposit(&second_customer, 10_000, "EUR")).await;
    balance(stack, &second_customer, 10_000).await;

    let line = [(sku.as_str(), 1, 300)];
    let (first, second) = tokio::join!(place(stack, &first_customer, &line, "DE"), place(stack, &second_customer, &line, "DE"));
    let is_final = |o: &Value| o["status"] == "CONFIRMED" || o["status"] == "CANCELLED";
    let a = stack.eventually("order-svc", &format!("/orders/{first}"), WAIT, is_final).await;
    let b = stack.eventually("order-svc", &format!("/orders/{second}"), WAIT, is_final).await;
    let mut outcomes = [a["status"].as_str().unwrap_or_default().to_string(), b["status"].as_str().unwrap_or_default().to_string()];
    outcomes.sort();
    assert_eq!(outcomes, ["CANCELLED", "CONFIRMED"], "{a} {b}");
    let loser = if a["status"] == "CANCELLED" { &a } else { &b };
    assert_eq!(loser["cancellation_reason"], "OUT_OF_STOCK");
    let stock = stack.stock_is(&sku, 1, 1).await;
    assert_eq!(stock["available"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_commands_and_redelivered_events_have_no_second_effect() {
    let stack = stack();
    let partitions = runtime::kafka::DEFAULT_PARTITIONS;
    let (sku, customer) = stack.stocked(10, 10_000).await;

    // The same deposit command twice: counted once.
    let command_id = uuid::Uuid::new_v4().to_string();
    let mut repeated_deposit = deposit(&customer, 500, "EUR");
    repeated_deposit["command_id"] = json!(command_id);
    stack.send("account.commands", &customer, &repeated_deposit).await;
    stack.send("account.commands", &customer, &repeated_deposit).await;

    // The same PlaceOrder twice: one order.
    let order_id = unique("order");
    let mut command = place_order(&order_id, &customer, &[(&sku, 3, 1000)], "EUR", "DE");
    command["command_id"] = json!(uuid::Uuid::new_v4().to_string());
    stack.send("order.commands", &order_id, &command).await;
    stack.send("order.commands", &order_id, &command).await;
    let order = stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED"]).await;
    assert_eq!(order["version"], 5, "placed, line reserved, stock reserved, paid, confirmed: {order}");

    // Every event of the order and of the account delivered a second time.
    for (topic, key) in [("order.events", order_id.as_str()), ("account.events", customer.as_str()), ("stock.events", sku.as_str())] {
        for record in stack.records(topic, key).await {
            stack.redeliver(topic, key, &record).await;
        }
    }
    // A marker order behind the duplicates on the same order, account and stock partitions:
    // once it is confirmed and notified, every policy has read past the duplicates.
    let order_partition = runtime::kafka::partition_for(&order_id, partitions);
    let marker = id_on_partition("marker", order_partition, partitions);
    stack.send("order.commands", &marker, &place_order(&marker, &customer, &[(&sku, 1, 1000)], "EUR", "DE")).await;
    stack.order_reaches(&marker, "CONFIRMED").await;
    stack.notifications_are(&marker, &["ORDER_CONFIRMED"]).await;

    let account = balance(stack, &customer, 10_000 + 500 - 3000 - 1000).await;
    assert_eq!(account["deposited_cents"], 10_500);
    assert_eq!(account["captured_cents"], 4000);
    stack.stock_is(&sku, 4, 10).await;
    let sent = stack.notifications_are(&order_id, &["ORDER_CONFIRMED"]).await;
    assert_eq!(sent.as_array().map(Vec::len), Some(1));
    assert_eq!(stack.order_reaches(&order_id, "CONFIRMED").await["version"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_commands_are_dead_lettered_with_the_reason_and_processing_continues() {
    let stack = stack();
    let key = unique("bad");
    stack.send_raw("order.commands", Some(&key), b"{not json").await;
    let mut invalid = place_order(&key, "cust", &[("sku", 0, 100)], "EUR", "DE");
    invalid["command_id"] = json!("invalid-quantity");
    stack.send("order.commands", &key, &invalid).await;

    let garbage = stack.record_appears("order.commands.dlq", &key, WAIT, |r| r.payload == b"{not json").await;
    assert_eq!(garbage.headers.get("dlq.error.kind").map(String::as_str), Some("unparseable"));
    assert!(garbage.headers.contains_key("dlq.source.offset"));
    let invalid = stack.record_appears("order.commands.dlq", &key, WAIT, |r| r.json()["command_id"] == "invalid-quantity").await;
    assert_eq!(invalid.headers.get("dlq.error.kind").map(String::as_str), Some("invalid"));
    assert!(invalid.headers.get("dlq.error.reason").is_some_and(|r| r.contains("quantity")), "{:?}", invalid.headers);

    let (sku, customer) = stack.stocked(1, 1_000).await;
    let order_id = place(stack, &customer, &[(&sku, 1, 100)], "DE").await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
}

//! Ids are text a person can read: a blank id, a NUL, a line break, an escape or a Unicode
//! format character (U+202E turns text around) is refused on every stream, through kcat and
//! HTTP alike: dead-lettered with a reason naming the field, visible as REJECTED at
//! `GET /commands/{id}`, and the service goes on (on PostgreSQL too, whose text cannot hold NUL).
use serde_json::{Value, json};
use std::time::Duration;
use system_tests::{Stack, commands::*, unique};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread")]
async fn ids_with_invisible_or_control_characters_are_dead_lettered_on_every_stream() {
    let stack = Stack::start("hostile-ids", &[]);
    let cases: Vec<(&str, &str, &str, Value, &str)> = vec![
        ("inventory-svc", "stock.commands", " ", json!({"type": "RestockItem", "sku": " ", "quantity": 1}), "sku must not be blank"),
        (
            "payment-svc",
            "account.commands",
            "c-\u{0}1",
            json!({"type": "DepositFunds", "customer_id": "c-\u{0}1", "amount_cents": 100, "currency": "EUR"}),
            "U+0000",
        ),
        ("order-svc", "order.commands", "o\u{202e}1", json!({"type": "CancelOrder", "order_id": "o\u{202e}1"}), "U+202E"),
        ("shipping-svc", "shipment.commands", "\u{200b}", json!({"type": "DispatchShipment", "order_id": "\u{200b}"}), "U+200B"),
        (
            "notify-svc",
            "notification.commands",
            "c\n1",
            json!({"type": "SetPreferences", "customer_id": "c\n1", "channel": "SMS", "recipient": "+49 30 1"}),
            "U+000A",
        ),
    ];
    for (service, topic, key, command, reason) in &cases {
        let command_id = unique("hostile");
        let mut command = command.clone();
        command["command_id"] = json!(command_id);
        stack.send(topic, key, &command).await;
        let outcome = stack.eventually(service, &format!("/commands/{command_id}"), WAIT, |o| o["status"] == "REJECTED").await;
        assert!(outcome["reason"].as_str().is_some_and(|r| r.contains(reason)), "{service}: {outcome}");
        let dead = stack.record_appears(&format!("{topic}.dlq"), key, WAIT, |r| r.json()["command_id"] == command_id.as_str()).await;
        assert!(dead.headers.get("dlq.error.reason").is_some_and(|r| r.contains(reason)), "{service}: {:?}", dead.headers);
    }

    // Through HTTP the same rule holds, answered at once: 400, nothing produced.
    let (status, error) = stack.post("order-svc", "/orders", &place_order("o-\u{feff}x", "c-1", &[("sku-1", 1, 100)], "EUR", "DE")).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("order_id") && e.contains("U+FEFF")), "{error}");
    let (status, error) = stack.post("inventory-svc", "/stock/%E2%80%AEsku/restock", &json!({"quantity": 1})).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("sku") && e.contains("U+202E")), "{error}");
    // A body far larger than any command: 413 with the JSON error shape.
    let huge = json!({"customer_id": "c-1", "currency": "EUR", "lines": [], "padding": "x".repeat(100 * 1024)});
    let (status, error) = stack.post("order-svc", "/orders", &huge).await;
    assert_eq!(status, 413, "{error}");
    assert_eq!(error["status"], 413, "{error}");

    // And every service still does its work.
    let (skus, customers) = stack.stock_and_accounts("after-hostile", 1, 5, &[10_000]).await;
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customers[0], &[(&skus[0], 1, 500)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
}

//! Low-stock alerts through the real stack: a SKU's threshold set over HTTP, reservations
//! that cross it raise one `StockLow` each time (not one per reservation below it), a restock
//! that lifts the stock back re-arms it, and each crossing reaches operations once as a
//! `STOCK_LOW` notification. Five real services, real broker, registry and database.
use serde_json::{Value, json};
use std::{sync::OnceLock, time::Duration};
use system_tests::{Stack, commands::*, unique};

const WAIT: Duration = Duration::from_secs(60);

/// Operations' Notification aggregate, unique to this run so earlier runs' alerts do not count.
fn ops_id() -> &'static str {
    static OPS: OnceLock<String> = OnceLock::new();
    OPS.get_or_init(|| unique("ops"))
}

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("low-stock", &[("NOTIFY_OPS_ID", ops_id())]))
}

async fn confirmed_order_of(stack: &Stack, customer: &str, sku: &str, quantity: i64) {
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, customer, &[(sku, quantity, 100)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
}

/// Waits until operations have exactly `count` STOCK_LOW alerts about `sku` and returns them.
async fn alerts_about(stack: &Stack, sku: &str, count: usize) -> Vec<Value> {
    let about_sku = |notifications: &Value| -> Vec<Value> {
        let mentions = format!("Stock of {sku} is low");
        notifications
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["kind"] == "STOCK_LOW" && n["message"].as_str().is_some_and(|m| m.starts_with(&mentions)))
            .cloned()
            .collect()
    };
    let path = format!("/notifications?customer_id={}", ops_id());
    let notifications = stack.eventually("notify-svc", &path, WAIT, |n| about_sku(n).len() == count).await;
    about_sku(&notifications)
}

#[tokio::test(flavor = "multi_thread")]
async fn each_crossing_of_the_threshold_alerts_operations_once() {
    let stack = stack();
    let (sku, customer) = stack.stocked(10, 100_000).await;

    let (status, accepted) = stack.put("inventory-svc", &format!("/stock/{sku}/threshold"), &json!({"threshold": 5})).await;
    assert_eq!(status, 202, "{accepted}");
    let view = stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["low_stock_threshold"] == 5).await;
    assert_eq!(view["low"], false, "{view}");

    // 10 → 7 available: above the threshold, no alert.
    confirmed_order_of(stack, &customer, &sku, 3).await;
    // 7 → 4: below it.
    confirmed_order_of(stack, &customer, &sku, 3).await;
    let view = stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["low"] == true).await;
    assert_eq!((view["available"].as_i64(), view["low_since"].is_i64()), (Some(4), true), "{view}");
    let (status, low) = stack.get("inventory-svc", "/stock?low=true&limit=1000").await;
    assert_eq!(status, 200);
    assert!(low.as_array().into_iter().flatten().any(|s| s["sku"] == sku.as_str()), "{low}");
    let first = alerts_about(stack, &sku, 1).await;
    assert_eq!(first[0]["message"], format!("Stock of {sku} is low: 4 available, below the threshold of 5."), "{first:?}");

    // 4 → 3: still low, no second alert; then a restock lifts it to 13 and re-arms the alert.
    confirmed_order_of(stack, &customer, &sku, 1).await;
    stack.send("stock.commands", &sku, &restock(&sku, 10)).await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["available"] == 13 && s["low"] == false).await;
    // 13 → 2: the second crossing. The StockLow events of one SKU are in one partition, so once
    // its alert shows, the order of one unit before it was handled and raised none.
    confirmed_order_of(stack, &customer, &sku, 11).await;
    let both = alerts_about(stack, &sku, 2).await;
    assert_eq!(both[1]["message"], format!("Stock of {sku} is low: 2 available, below the threshold of 5."), "{both:?}");
    assert_ne!(both[0]["order_id"], both[1]["order_id"], "each alert names its own crossing: {both:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_threshold_out_of_range_or_of_the_wrong_shape_is_refused_and_changes_nothing() {
    let stack = stack();
    let (sku, _) = stack.stocked(10, 100).await;
    let bodies =
        [(json!({"threshold": -1}), 400), (json!({"threshold": 1_000_000_001_i64}), 400), (json!({"threshold": "five"}), 422), (json!({}), 422)];
    for (body, expected) in bodies {
        let (status, error) = stack.put("inventory-svc", &format!("/stock/{sku}/threshold"), &body).await;
        assert_eq!(status, expected, "{body}: {error}");
        assert!(error["error"].is_string(), "a JSON error: {error}");
    }
    let (_, view) = stack.get("inventory-svc", &format!("/stock/{sku}")).await;
    assert_eq!(view["low_stock_threshold"], Value::Null, "{view}");
}

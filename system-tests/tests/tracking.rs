//! The carrier's tracking reports through the real stack: recorded on a dispatched shipment
//! only, shown in the shipment view (latest and every one), in the order view and the order's
//! timeline, and told to the customer when it is out for delivery; and the shipment's label. Five real services, real
//! broker, registry and database.
use serde_json::{Value, json};
use std::{sync::OnceLock, time::Duration};
use system_tests::{Stack, commands::*, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("tracking", &[]))
}

async fn confirmed_order(stack: &Stack) -> String {
    let (sku, customer) = stack.stocked(5, 10_000).await;
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customer, &[(&sku, 1, 700)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "SCHEDULED").await;
    order_id
}

/// Posts a report and waits for its command's outcome.
async fn report(stack: &Stack, order_id: &str, body: Value) -> Value {
    let (status, accepted) = stack.post("shipping-svc", &format!("/shipments/{order_id}/tracking"), &body).await;
    assert_eq!(status, 202, "{body}: {accepted}");
    let command_id = accepted["command_id"].as_str().expect("a command id").to_string();
    stack.eventually("shipping-svc", &format!("/commands/{command_id}"), WAIT, |o| o["status"] != "PENDING").await
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_on_a_dispatched_shipment_reach_every_view_and_the_customer() {
    let stack = stack();
    let order_id = confirmed_order(stack).await;

    let early = report(stack, &order_id, json!({"status": "IN_TRANSIT", "location": "Hamburg hub", "at": 1_000})).await;
    assert_eq!(early["status"], "REJECTED", "not dispatched yet: {early}");
    assert!(early["reason"].as_str().is_some_and(|r| r.contains("not been dispatched")), "{early}");

    // The warehouse prints the label, with the address from the order.
    let shipment = stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["status"] == "SCHEDULED").await;
    let response = reqwest::get(stack.url("shipping-svc", &format!("/shipments/{order_id}/label"))).await.expect("GET label");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.expect("label body");
    let tracking_number = shipment["tracking_number"].as_str().expect("a tracking number");
    for text in [format!("({tracking_number})"), "(Ada Lovelace)".into(), "(10115 Berlin)".into(), format!("(Order {order_id})")] {
        assert!(pdf.windows(text.len()).any(|window| window == text.as_bytes()), "{text} is on the label");
    }

    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    stack.order_reaches(&order_id, "SHIPPED").await;
    let in_transit = report(stack, &order_id, json!({"status": "IN_TRANSIT", "location": "Hamburg hub", "at": 1_764_700_000_000_i64})).await;
    assert_eq!(in_transit["status"], "ACCEPTED", "{in_transit}");
    // kcat's way in: the same command as JSON on the topic.
    let out = json!({"type": "RecordTrackingUpdate", "order_id": order_id, "status": "OUT_FOR_DELIVERY", "location": "Berlin", "at": 1_764_703_600_000_i64});
    stack.send("shipment.commands", &order_id, &out).await;

    let shipment =
        stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |s| s["last_tracking"]["status"] == "OUT_FOR_DELIVERY").await;
    let reports: Vec<(&str, &str)> =
        shipment["tracking"].as_array().into_iter().flatten().filter_map(|r| Some((r["status"].as_str()?, r["location"].as_str()?))).collect();
    assert_eq!(reports, [("IN_TRANSIT", "Hamburg hub"), ("OUT_FOR_DELIVERY", "Berlin")], "{shipment}");

    let order =
        stack.eventually("order-svc", &format!("/orders/{order_id}"), WAIT, |o| o["shipment"]["tracking"]["status"] == "OUT_FOR_DELIVERY").await;
    assert_eq!(order["shipment"]["tracking"]["location"], "Berlin", "{order}");
    let timeline = stack
        .eventually("order-svc", &format!("/orders/{order_id}/timeline"), WAIT, |t| {
            t.as_array().into_iter().flatten().filter(|e| e["type"] == "ShipmentTrackingUpdated").count() == 2
        })
        .await;
    assert!(timeline.as_array().into_iter().flatten().any(|e| e["type"] == "ShipmentDispatched"), "{timeline}");
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED", "ORDER_SHIPPED", "SHIPMENT_OUT_FOR_DELIVERY"]).await;

    stack.send("shipment.commands", &order_id, &deliver(&order_id)).await;
    stack.order_reaches(&order_id, "DELIVERED").await;
    let late = report(stack, &order_id, json!({"status": "DELIVERY_FAILED", "location": "Berlin"})).await;
    assert_eq!(late["status"], "REJECTED", "delivered already: {late}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_report_is_refused_with_a_json_error() {
    let stack = stack();
    for (body, expected) in [
        (json!({"status": "IN_TRANSIT", "location": ""}), 400),
        (json!({"status": "IN_TRANSIT", "location": "Berlin", "at": -1}), 400),
        // Well-formed JSON of the wrong shape.
        (json!({"status": "LOST", "location": "Berlin"}), 422),
        (json!({"status": "IN_TRANSIT"}), 422),
    ] {
        let (status, error) = stack.post("shipping-svc", &format!("/shipments/{}/tracking", unique("order")), &body).await;
        assert_eq!(status, expected, "{body}: {error}");
        assert!(error["error"].is_string(), "a JSON error: {error}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_who_opted_out_of_a_kind_does_not_hear_of_it() {
    let stack = stack();
    let order_id = confirmed_order(stack).await;
    let (_, order) = stack.get("order-svc", &format!("/orders/{order_id}")).await;
    let customer = order["customer_id"].as_str().expect("a customer").to_string();
    let preferences = json!({"channel": "EMAIL", "recipient": "ada@example.org", "opt_out": ["SHIPMENT_OUT_FOR_DELIVERY"]});
    let (status, accepted) = stack.put("notify-svc", &format!("/preferences/{customer}"), &preferences).await;
    assert_eq!(status, 202, "{accepted}");
    let command_id = accepted["command_id"].as_str().expect("a command id").to_string();
    let outcome = stack.eventually("notify-svc", &format!("/commands/{command_id}"), WAIT, |o| o["status"] != "PENDING").await;
    assert_eq!(outcome["status"], "ACCEPTED", "{outcome}");

    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    stack.order_reaches(&order_id, "SHIPPED").await;
    for (status, location) in [("OUT_FOR_DELIVERY", "Berlin"), ("DELIVERY_FAILED", "Berlin")] {
        let reported = report(stack, &order_id, json!({"status": status, "location": location})).await;
        assert_eq!(reported["status"], "ACCEPTED", "{reported}");
    }
    // Both reports go through one policy and one customer's partition in order: once the
    // failed delivery is told, the out-for-delivery one was decided before it, and not sent.
    let notifications = stack.notifications_are(&order_id, &["ORDER_CONFIRMED", "ORDER_SHIPPED", "SHIPMENT_DELIVERY_FAILED"]).await;
    let failed = notifications.as_array().into_iter().flatten().find(|n| n["kind"] == "SHIPMENT_DELIVERY_FAILED").expect("the failed delivery");
    assert_eq!(failed["recipient"], "ada@example.org", "{failed}");
}

//! The HTTP API end to end: the write routes of every service (only producing commands), the
//! command-outcome lookup on every service, the joined order view, its timeline and
//! read-your-writes, and the remaining query endpoints — five real services, real broker.
use serde_json::{Value, json};
use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Stack, commands::*, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("http-api", &[]))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client")
}

/// Sends `method path` with an optional JSON body → (status, JSON body or Null).
async fn call(stack: &Stack, method: reqwest::Method, service: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = http().request(method, stack.url(service, path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{service}{path}: {e}"));
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn post(stack: &Stack, service: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    call(stack, reqwest::Method::POST, service, path, body).await
}

/// Posts a command, expects 202 and returns its command id.
async fn accepted_202(stack: &Stack, service: &str, path: &str, body: Option<Value>) -> String {
    let (status, answer) = post(stack, service, path, body).await;
    assert_eq!(status, 202, "{service}{path}: {answer}");
    answer["command_id"].as_str().unwrap_or_else(|| panic!("no command_id in {answer}")).to_string()
}

async fn outcome(stack: &Stack, service: &str, command_id: &str, status: &str) -> Value {
    stack.eventually(service, &format!("/commands/{command_id}"), WAIT, |o| o["status"] == status).await
}

fn address(country: &str) -> Value {
    json!({"name": "Ada", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": country})
}

/// A SKU with stock and a customer with money, set up through the HTTP write routes.
async fn stocked_over_http(stack: &Stack, units: i64, cents: i64) -> (String, String) {
    let (sku, customer) = (unique("sku"), unique("cust"));
    let restocked = accepted_202(stack, "inventory-svc", &format!("/stock/{sku}/restock"), Some(json!({"quantity": units}))).await;
    let deposited =
        accepted_202(stack, "payment-svc", &format!("/accounts/{customer}/deposits"), Some(json!({"amount_cents": cents, "currency": "EUR"}))).await;
    outcome(stack, "inventory-svc", &restocked, "ACCEPTED").await;
    outcome(stack, "payment-svc", &deposited, "ACCEPTED").await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["on_hand"] == units).await;
    stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == cents).await;
    (sku, customer)
}

async fn place_over_http(stack: &Stack, customer: &str, sku: &str, quantity: i64, country: &str) -> (String, String) {
    let body = json!({"customer_id": customer, "currency": "EUR", "lines": [{"sku": sku, "quantity": quantity, "unit_price_cents": 1000}], "shipping_address": address(country)});
    let (status, answer) = post(stack, "order-svc", "/orders", Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    (answer["order_id"].as_str().expect("order_id").to_string(), answer["command_id"].as_str().expect("command_id").to_string())
}

/// What needs no state is checked before producing: a 400 at once naming the field (not a 202
/// followed by a dead letter), and no record of the command on its topic. A route produces
/// before it answers, so the topic is read right after the answer.
#[tokio::test(flavor = "multi_thread")]
async fn commands_breaking_a_stateless_rule_are_answered_400_naming_the_field_and_never_produced() {
    let stack = stack();
    let (sku, customer, order_id) = (unique("sku-bad"), unique("cust-bad"), unique("order-bad"));
    let line = |quantity: i64| json!({"sku": unique("sku"), "quantity": quantity, "unit_price_cents": 100});
    let order = |lines: Vec<Value>| json!({"order_id": order_id, "customer_id": customer, "currency": "EUR", "lines": lines, "shipping_address": address("DE")});
    let cases: Vec<(&str, &str, reqwest::Method, String, Value, &str, &str)> = vec![
        (
            "inventory-svc",
            "stock.commands",
            reqwest::Method::POST,
            format!("/stock/{sku}/restock"),
            json!({"quantity": 0}),
            &sku,
            "quantity must be between 1 and 1000000, got 0",
        ),
        (
            "payment-svc",
            "account.commands",
            reqwest::Method::POST,
            format!("/accounts/{customer}/deposits"),
            json!({"amount_cents": -500, "currency": "EUR"}),
            &customer,
            "amount_cents must be between 1",
        ),
        (
            "payment-svc",
            "account.commands",
            reqwest::Method::POST,
            format!("/accounts/{customer}/deposits"),
            json!({"amount_cents": 500, "currency": "eur"}),
            &customer,
            "currency \"eur\" must be 3 upper-case letters",
        ),
        (
            "order-svc",
            "order.commands",
            reqwest::Method::POST,
            "/orders".into(),
            order(vec![line(0)]),
            &order_id,
            "lines[0].quantity must be between 1 and 10000, got 0",
        ),
        (
            "order-svc",
            "order.commands",
            reqwest::Method::POST,
            "/orders".into(),
            order((0..101).map(|_| line(1)).collect()),
            &order_id,
            "lines must hold 1 to 100 items, got 101",
        ),
        (
            "notify-svc",
            "notification.commands",
            reqwest::Method::PUT,
            format!("/preferences/{customer}"),
            json!({"channel": "EMAIL", "recipient": "ada.example.com"}),
            &customer,
            "an EMAIL recipient must contain '@'",
        ),
    ];
    for (service, topic, method, path, body, key, reason) in cases {
        let (status, error) = call(stack, method, service, &path, Some(body)).await;
        assert_eq!(status, 400, "{service}{path}: {error}");
        assert!(error["error"].as_str().is_some_and(|e| e.contains(reason)), "{service}{path}: {error} lacks {reason:?}");
        assert_eq!(stack.records(topic, key).await.len(), 0, "{service}{path}: a command of {key} was produced to {topic}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_write_route_answers_202_and_its_outcome_becomes_accepted() {
    let stack = stack();
    let (sku, customer) = stocked_over_http(stack, 10, 10_000).await;

    let (status, answer) = call(
        stack,
        reqwest::Method::PUT,
        "notify-svc",
        &format!("/preferences/{customer}"),
        Some(json!({"channel": "SMS", "recipient": "+49 30 1"})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["customer_id"], customer.as_str());
    let preferences = outcome(stack, "notify-svc", answer["command_id"].as_str().expect("command_id"), "ACCEPTED").await;
    assert_eq!(preferences["events"][0]["type"], "PreferencesSet", "{preferences}");

    let (order_id, placed) = place_over_http(stack, &customer, &sku, 2, "DE").await;
    let placed = outcome(stack, "order-svc", &placed, "ACCEPTED").await;
    assert_eq!(placed["aggregate_id"], order_id.as_str());
    assert_eq!(placed["events"][0]["type"], "OrderPlaced", "{placed}");
    assert!(!placed["event_ids"][0].as_str().unwrap_or_default().is_empty(), "{placed}");
    stack.order_reaches(&order_id, "CONFIRMED").await;

    let dispatched = accepted_202(stack, "shipping-svc", &format!("/shipments/{order_id}/dispatch"), None).await;
    outcome(stack, "shipping-svc", &dispatched, "ACCEPTED").await;
    stack.order_reaches(&order_id, "SHIPPED").await;
    let delivered = accepted_202(stack, "shipping-svc", &format!("/shipments/{order_id}/deliver"), Some(json!({"command_id": unique("cmd")}))).await;
    outcome(stack, "shipping-svc", &delivered, "ACCEPTED").await;
    stack.order_reaches(&order_id, "DELIVERED").await;

    // The SMS preference picks the SMS templates (notify-svc/templates/*.sms.txt), filled in
    // with the order's fields.
    let view = stack.get("order-svc", &format!("/orders/{order_id}")).await.1;
    let (carrier, tracking) =
        (view["shipment"]["carrier"].as_str().unwrap_or_default(), view["shipment"]["tracking_number"].as_str().unwrap_or_default());
    let notifications = stack
        .eventually("notify-svc", &format!("/notifications?order_id={order_id}&customer_id={customer}"), Duration::from_secs(60), |list| {
            list.as_array().is_some_and(|list| list.len() >= 2)
        })
        .await;
    // Sorted: two notifications made in one batch share their `sent_at`, and the list orders
    // those by event id.
    let mut texts: Vec<(&str, &str, &str)> = notifications
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| (n["kind"].as_str().unwrap_or_default(), n["channel"].as_str().unwrap_or_default(), n["message"].as_str().unwrap_or_default()))
        .collect();
    texts.sort_unstable();
    let confirmed = format!("Order {order_id} confirmed: ships with {carrier}, tracking {tracking}.");
    let shipped = format!("Order {order_id} shipped.");
    assert_eq!(texts, [("ORDER_CONFIRMED", "SMS", confirmed.as_str()), ("ORDER_SHIPPED", "SMS", shipped.as_str())], "{notifications}");

    // Refused by the aggregate: recorded on order.rejections with the reason.
    let cancel = accepted_202(stack, "order-svc", &format!("/orders/{order_id}/cancel"), Some(json!({"reason": "too late"}))).await;
    let rejected = outcome(stack, "order-svc", &cancel, "REJECTED").await;
    assert!(rejected["reason"].as_str().is_some_and(|r| !r.is_empty()), "{rejected}");
    assert_eq!(rejected["command_type"], "CancelOrder");
}

/// `POST /orders` with an `Idempotency-Key` header → (status, JSON body or Null).
async fn post_order_with_key(stack: &Stack, key: &str, body: &Value) -> (u16, Value) {
    let response = http().post(stack.url("order-svc", "/orders")).header("Idempotency-Key", key).json(body).send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_post_orders_with_the_same_idempotency_key_is_one_order() {
    let stack = stack();
    let (sku, customer) = stocked_over_http(stack, 10, 10_000).await;
    let body = json!({"customer_id": customer, "currency": "EUR", "lines": [{"sku": sku, "quantity": 2, "unit_price_cents": 1000}], "shipping_address": address("DE")});
    let key = unique("retry");
    let (status, first) = post_order_with_key(stack, &key, &body).await;
    assert_eq!(status, 202, "{first}");
    // The client did not see the answer and sends the same request again.
    let (status, retry) = post_order_with_key(stack, &key, &body).await;
    assert_eq!(status, 202, "{retry}");
    assert_eq!((&retry["order_id"], &retry["command_id"]), (&first["order_id"], &first["command_id"]), "the same order and command");
    let order_id = first["order_id"].as_str().expect("order_id");
    stack.order_reaches(order_id, "CONFIRMED").await;
    outcome(stack, "order-svc", first["command_id"].as_str().expect("command_id"), "ACCEPTED").await;

    // The same key from another customer is another order.
    let other_customer = unique("cust");
    accepted_202(stack, "payment-svc", &format!("/accounts/{other_customer}/deposits"), Some(json!({"amount_cents": 5_000, "currency": "EUR"})))
        .await;
    stack.eventually("payment-svc", &format!("/accounts/{other_customer}"), WAIT, |a| a["balance_cents"] == 5_000).await;
    let mut other = body.clone();
    other["customer_id"] = json!(other_customer);
    let (status, theirs) = post_order_with_key(stack, &key, &other).await;
    assert_eq!(status, 202, "{theirs}");
    assert_ne!(theirs["order_id"], first["order_id"]);
    stack.order_reaches(theirs["order_id"].as_str().expect("order_id"), "CONFIRMED").await;

    // One order of the first customer, charged once, its stock reserved once.
    let (status, page) = stack.get("order-svc", &format!("/orders?customer_id={customer}")).await;
    assert_eq!(status, 200, "{page}");
    let orders: Vec<&Value> = page["orders"].as_array().into_iter().flatten().collect();
    assert_eq!(orders.iter().map(|o| o["order_id"].as_str()).collect::<Vec<_>>(), [Some(order_id)], "{page}");
    stack
        .eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == 8_000 && a["captured_cents"] == 2_000)
        .await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 4 && s["on_hand"] == 10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_idempotency_key_is_a_400_with_the_reason() {
    let stack = stack();
    let customer = unique("cust");
    let body = json!({"customer_id": customer, "currency": "EUR", "lines": [{"sku": "s", "quantity": 1, "unit_price_cents": 1}], "shipping_address": address("DE")});
    let too_long = "k".repeat(129);
    for (key, reason) in [("", "1 to 128 characters, got 0"), (too_long.as_str(), "1 to 128 characters, got 129")] {
        let (status, answer) = post_order_with_key(stack, key, &body).await;
        assert_eq!(status, 400, "{key:?}: {answer}");
        assert_eq!(answer["status"], 400, "{answer}");
        assert!(answer["error"].as_str().is_some_and(|e| e.starts_with("Idempotency-Key") && e.contains(reason)), "{key:?}: {answer}");
    }
    let response = http()
        .post(stack.url("order-svc", "/orders"))
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").expect("obs-text is a header value"))
        .json(&body)
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.expect("a JSON error");
    assert_eq!(answer["error"], "Idempotency-Key must be printable ASCII", "{answer}");
    let (status, page) = stack.get("order-svc", &format!("/orders?customer_id={customer}")).await;
    assert_eq!((status, page["orders"].as_array().map(Vec::len)), (200, Some(0)), "nothing was placed: {page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_get_json_errors_and_nothing_is_produced() {
    let stack = stack();
    let sku = unique("sku");
    let response = http()
        .post(stack.url("inventory-svc", &format!("/stock/{sku}/restock")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("JSON error body");
    assert!(body["error"].as_str().is_some(), "{body}");

    let (status, body) = post(stack, "inventory-svc", &format!("/stock/{sku}/restock"), Some(json!({"quantity": "ten"}))).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().is_some(), "{body}");
    let (status, body) = post(stack, "payment-svc", "/accounts/c/deposits", Some(json!({"currency": "EUR"}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) =
        call(stack, reqwest::Method::PUT, "notify-svc", "/preferences/c", Some(json!({"channel": "PIGEON", "recipient": "x"}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post(stack, "order-svc", "/orders", Some(json!({"customer_id": "c"}))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = stack.get("inventory-svc", &format!("/stock/{sku}")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn command_outcomes_cover_kcat_commands_and_dead_letters() {
    let stack = stack();
    // Unknown (or still in flight): PENDING, not 404.
    let unknown = unique("cmd");
    let (status, body) = stack.get("payment-svc", &format!("/commands/{unknown}")).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")), "{body}");

    // Sent with kcat, with an explicit id.
    let sku = unique("sku");
    let command_id = unique("cmd");
    let mut command = restock(&sku, 3);
    command["command_id"] = json!(command_id);
    stack.send("stock.commands", &sku, &command).await;
    let accepted = outcome(stack, "inventory-svc", &command_id, "ACCEPTED").await;
    assert_eq!(accepted["events"][0]["type"], "StockRestocked");

    // Unparseable (no quantity): dead-lettered; the id comes from inside the JSON.
    let broken_id = unique("cmd");
    stack.send("stock.commands", &sku, &json!({"type": "RestockItem", "sku": sku, "command_id": broken_id})).await;
    let rejected = outcome(stack, "inventory-svc", &broken_id, "REJECTED").await;
    assert_eq!(rejected["rejection_kind"], "UNPARSEABLE", "{rejected}");
    assert!(rejected["reason"].as_str().is_some_and(|r| r.contains("quantity")), "{rejected}");

    // Invalid (decider says so) and sent without any id: the id is derived from the record's
    // position, which the dead letter names.
    let customer = unique("cust");
    stack.send("account.commands", &customer, &deposit(&customer, -5, "EUR")).await;
    let dead = stack.record_appears("account.commands.dlq", &customer, WAIT, |_| true).await;
    // A record the kcat partitioner put on the wrong partition was forwarded with its derived
    // id pinned into the JSON; otherwise the id derives from the dead letter's source position.
    let pinned = dead.json()["command_id"].as_str().map(String::from);
    let derived = pinned.unwrap_or_else(|| {
        let source = |name: &str| dead.headers[name].clone();
        let number = |name: &str| source(name).parse().unwrap_or_else(|_| panic!("{name} is a number"));
        runtime::command_id_for_record(&source("dlq.source.topic"), number("dlq.source.partition") as i32, number("dlq.source.offset"))
    });
    let invalid = outcome(stack, "payment-svc", &derived, "REJECTED").await;
    assert_eq!(invalid["rejection_kind"], "INVALID", "{invalid}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_order_view_joins_every_service_and_the_timeline_is_causal() {
    let stack = stack();
    let (sku, customer) = stocked_over_http(stack, 5, 10_000).await;
    let (order_id, _) = place_over_http(stack, &customer, &sku, 2, "DE").await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    accepted_202(stack, "shipping-svc", &format!("/shipments/{order_id}/dispatch"), None).await;
    let order = stack
        .eventually("order-svc", &format!("/orders/{order_id}"), WAIT, |o| {
            o["status"] == "SHIPPED" && o["shipment"]["status"] == "DISPATCHED" && o["notifications"].as_array().is_some_and(|n| n.len() == 2)
        })
        .await;
    assert_eq!(order["payment"], json!({"status": "CAPTURED", "amount_cents": 2000}), "{order}");
    assert!(order["shipment"]["tracking_number"].as_str().is_some_and(|t| !t.is_empty()), "{order}");
    assert_eq!(order["lines"][0]["sku"], sku.as_str());
    for field in ["total_cents", "currency", "created_at", "updated_at", "version"] {
        assert!(!order[field].is_null(), "{field} missing in {order}");
    }

    let (status, timeline) = stack.get("order-svc", &format!("/orders/{order_id}/timeline")).await;
    assert_eq!(status, 200);
    let entries = timeline.as_array().expect("a list");
    let services: std::collections::BTreeSet<&str> = entries.iter().filter_map(|e| e["service"].as_str()).collect();
    assert_eq!(services.into_iter().collect::<Vec<_>>(), ["inventory-svc", "notify-svc", "order-svc", "payment-svc", "shipping-svc"], "{timeline}");
    assert_eq!(entries[0]["type"], "OrderPlaced", "{timeline}");
    let position = |id: &Value| entries.iter().position(|e| &e["event_id"] == id);
    for (index, entry) in entries.iter().enumerate() {
        assert!(entry["correlation_id"].is_string() && entry["occurred_at"].is_i64(), "{entry}");
        if let Some(cause) = position(&entry["causation_id"]) {
            assert!(cause < index, "{} comes before its cause in {timeline}", entry["type"]);
        }
    }

    let (status, body) = stack.get("order-svc", "/orders/nope-unknown/timeline").await;
    assert_eq!((status, body["error"].is_string()), (404, true));
    let (status, page) = stack.get("order-svc", &format!("/orders?customer_id={customer}&status=SHIPPED&limit=1")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["orders"][0]["order_id"], order_id.as_str());
    for bad in ["limit=0", "status=LOST", "cursor=xyz", "limit=ten"] {
        let (status, body) = stack.get("order-svc", &format!("/orders?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_returns_within_100ms_of_the_status_change_and_says_when_it_timed_out() {
    let stack = stack();
    let (sku, customer) = stocked_over_http(stack, 5, 10_000).await;
    let (order_id, _) = place_over_http(stack, &customer, &sku, 1, "DE").await;
    let waiting = {
        let url = stack.url("order-svc", &format!("/orders/{order_id}?wait_for=CONFIRMED,CANCELLED&timeout_ms=30000"));
        tokio::spawn(async move {
            let answer = http().get(url).send().await.expect("answer");
            let returned = Instant::now();
            let timed_out = answer.headers().get("x-wait-timed-out").is_some();
            (returned, timed_out, answer.json::<Value>().await.expect("view"))
        })
    };
    // Observe the change independently, polling every 5 ms.
    let first_seen = loop {
        let (_, order) = stack.get("order-svc", &format!("/orders/{order_id}")).await;
        if order["status"] == "CONFIRMED" {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (returned, timed_out, view) = waiting.await.expect("waiter");
    assert!(!timed_out);
    assert_eq!(view["status"], "CONFIRMED");
    assert!(returned <= first_seen + Duration::from_millis(100), "wait_for answered {:?} after the change was visible", returned - first_seen);

    let started = Instant::now();
    let response = http().get(stack.url("order-svc", &format!("/orders/{order_id}?wait_for=DELIVERED&timeout_ms=300"))).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("x-wait-timed-out").and_then(|v| v.to_str().ok()), Some("true"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (status, _) = stack.get("order-svc", &format!("/orders/{order_id}?wait_for=LOST")).await;
    assert_eq!(status, 400);
}

//! Notification delivery against a real webhook: a local HTTP server that this test starts and
//! that answers 500 to every delivery for one customer and 204 to everyone else. notify-svc runs
//! alone (its notifications are commanded directly on `notification.commands`, as kcat would),
//! with small back-off settings.
//!
//! * The good customer's notification is delivered exactly once, while the bad customer's is
//!   still being retried, although both live on the same partition and the bad one came first.
//! * The bad one ends FAILED in `GET /notifications` after `NOTIFY_MAX_ATTEMPTS` attempts, with
//!   the last error, and its `NotificationSent` record is on `notification.events.dlq`.
//! * Once nothing of their partition waits, the delivery's mark says its next rebuild starts
//!   after them (not at offset 0), and the restarted notify-svc starts there.
//! * After notify-svc is killed and started again, nothing delivered or parked is sent again.
//! * Delivery outcome commands that are malformed or name no sent notification are rejected.
//!
//! One test function: the loop's consumer group is the same for every notify-svc, so two
//! stacks of this binary at once would split the partitions between them.
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use rdkafka::{Offset, TopicPartitionList, consumer::Consumer};
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use system_tests::{Stack, env, id_on_partition, unique};

const SVC: &str = "notify-svc";
const WAIT: Duration = Duration::from_secs(90);
const MAX_ATTEMPTS: usize = 4;

/// What the webhook received: every delivery (its JSON body) in arrival order.
#[derive(Clone, Default)]
struct Webhook {
    received: Arc<Mutex<Vec<Value>>>,
    failing_customer: Arc<Mutex<String>>,
}

impl Webhook {
    /// Requests for the notification of `order_id`, in arrival order (positions in `all`).
    fn requests_for(&self, order_id: &str) -> Vec<usize> {
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received.iter().enumerate().filter(|(_, delivery)| delivery["order_id"] == order_id).map(|(at, _)| at).collect()
    }

    fn event_ids_for(&self, order_id: &str) -> Vec<String> {
        let received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        received
            .iter()
            .filter(|delivery| delivery["order_id"] == order_id)
            .filter_map(|delivery| delivery["event_id"].as_str().map(String::from))
            .collect()
    }

    /// Polls until the webhook got at least `count` requests for `order_id`.
    async fn requests_reach(&self, order_id: &str, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self.requests_for(order_id).len() < count {
            assert!(
                Instant::now() < deadline,
                "the webhook got {} of {count} requests for {order_id} within {WAIT:?}",
                self.requests_for(order_id).len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(State(webhook): State<Webhook>, Json(delivery): Json<Value>) -> StatusCode {
    let failing = delivery["customer_id"] == *webhook.failing_customer.lock().unwrap_or_else(|p| p.into_inner());
    webhook.received.lock().unwrap_or_else(|p| p.into_inner()).push(delivery);
    if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
}

/// Starts the webhook on 127.0.0.1 on a free port, on a runtime of its own (it must outlive the
/// test's tokio runtime being busy); returns its URL.
fn start_webhook(webhook: Webhook) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("webhook runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let app = Router::new().route("/hook", post(receive)).with_state(webhook);
            axum::serve(listener, app).await.expect("webhook serves");
        });
    });
    url
}

fn send_notification(customer_id: &str, order_id: &str) -> Value {
    json!({
        "type": "SendNotification",
        "customer_id": customer_id,
        "order_id": order_id,
        "kind": "ORDER_CONFIRMED",
        "fields": {"carrier": "DHL", "tracking_number": format!("T-{order_id}")},
    })
}

/// The customer's notification about `order_id` in `GET /notifications`, once `done` holds.
async fn notification_when(stack: &Stack, customer_id: &str, order_id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let list = stack
        .eventually(SVC, &format!("/notifications?customer_id={customer_id}&order_id={order_id}"), WAIT, |list| {
            list.as_array().and_then(|list| list.first()).is_some_and(&done)
        })
        .await;
    list[0].clone()
}

async fn notifications_partitions(stack: &Stack) -> i32 {
    let brokers = stack.brokers.clone();
    tokio::task::spawn_blocking(move || {
        let reader = runtime::kafka::reader(&brokers).expect("reader");
        runtime::kafka::partition_count(&reader, "notification.events").expect("topic exists")
    })
    .await
    .expect("metadata task")
}

/// Polls the delivery's mark of `partition` of `notification.events` (the committed offset of
/// its group `notify-svc.notify-delivery.rebuild-from`) until it is at least `at_least`;
/// returns it.
async fn delivery_rebuild_from(stack: &Stack, partition: i32, at_least: i64) -> i64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let brokers = stack.brokers.clone();
        let mark = tokio::task::spawn_blocking(move || {
            let keeper = runtime::kafka::offsets_keeper(&brokers, &format!("{SVC}.notify-delivery.rebuild-from")).expect("consumer");
            let mut wanted = TopicPartitionList::new();
            wanted.add_partition("notification.events", partition);
            let committed = keeper.committed_offsets(wanted, Duration::from_secs(10)).expect("committed offsets");
            match committed.find_partition("notification.events", partition).map(|element| element.offset()) {
                Some(Offset::Offset(offset)) => Some(offset),
                _ => None,
            }
        })
        .await
        .expect("offsets task");
        if let Some(from) = mark.filter(|from| *from >= at_least) {
            return from;
        }
        assert!(Instant::now() < deadline, "the delivery's rebuild start of partition {partition} is still {mark:?}, wanted >= {at_least}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_recipient_is_parked_without_holding_up_others_and_nothing_delivered_is_sent_again() {
    let webhook = Webhook::default();
    let url = start_webhook(webhook.clone());
    let stack = Stack::start_on(
        "notify-delivery",
        &env("KAFKA_BROKERS"),
        &env("SCHEMA_REGISTRY_URL"),
        &[SVC],
        &[
            ("NOTIFY_WEBHOOK_URL", &url),
            ("NOTIFY_MAX_ATTEMPTS", &MAX_ATTEMPTS.to_string()),
            // Attempts 2, 3 and 4 follow after at least 0.5 + 1 + 2 s: the good customer's
            // notification must be through long before the bad one is parked.
            ("NOTIFY_RETRY_FIRST_DELAY_MS", "500"),
            ("NOTIFY_RETRY_MAX_DELAY_MS", "2000"),
            ("NOTIFY_TIMEOUT_MS", "5000"),
            ("KAFKA_BACKGROUND_FETCH_WAIT_MS", "100"),
            ("KAFKA_BACKGROUND_IDLE_PROBE_MS", "100"),
            ("KAFKA_QUIET_PROBE_MS", "100"),
        ],
    );
    // Both customers on one partition, the bad one's notification first in it: a delivery that
    // waited for the one before it would wait for the bad one.
    let partitions = notifications_partitions(&stack).await;
    let partition = runtime::kafka::partition_for(&unique("any"), partitions);
    let (bad, good) = (id_on_partition("bad", partition, partitions), id_on_partition("good", partition, partitions));
    *webhook.failing_customer.lock().unwrap_or_else(|p| p.into_inner()) = bad.clone();
    let (bad_order, good_order) = (unique("order-bad"), unique("order-good"));

    stack.send("notification.commands", &bad, &send_notification(&bad, &bad_order)).await;
    notification_when(&stack, &bad, &bad_order, |_| true).await;
    stack.send("notification.commands", &good, &send_notification(&good, &good_order)).await;

    let delivered = notification_when(&stack, &good, &good_order, |n| n["status"] == "DELIVERED").await;
    assert_eq!((delivered["attempts"].clone(), delivered["last_error"].clone()), (json!(1), Value::Null), "{delivered}");
    let good_requests = webhook.requests_for(&good_order);
    assert_eq!(good_requests.len(), 1, "delivered exactly once");
    assert_eq!(
        webhook.event_ids_for(&good_order),
        [delivered["event_id"].as_str().expect("event_id").to_string()],
        "event_id is the idempotency key"
    );

    // The bad one: every attempt made, then parked, with its record on the dead letters.
    let parked = notification_when(&stack, &bad, &bad_order, |n| n["status"] == "FAILED").await;
    assert_eq!(parked["attempts"], json!(MAX_ATTEMPTS), "{parked}");
    assert!(parked["last_error"].as_str().is_some_and(|e| e.contains("500")), "{parked}");
    let bad_requests = webhook.requests_for(&bad_order);
    assert_eq!(bad_requests.len(), MAX_ATTEMPTS);
    assert!(good_requests[0] < bad_requests[MAX_ATTEMPTS - 1], "the good notification went out while the bad one was still retried");
    let dead_letter = stack
        .record_appears("notification.events.dlq", &bad, WAIT, |record| record.headers.get("dlq.error.kind").is_some_and(|k| k == "undeliverable"))
        .await;
    assert_eq!(dead_letter.headers.get("dlq.attempts").map(String::as_str), Some(MAX_ATTEMPTS.to_string().as_str()), "{:?}", dead_letter.headers);
    assert_eq!(dead_letter.headers.get("dlq.source.topic").map(String::as_str), Some("notification.events"));
    assert!(dead_letter.headers.get("dlq.error.reason").is_some_and(|r| r.contains("500")), "{:?}", dead_letter.headers);
    let source_offset: i64 = dead_letter.headers.get("dlq.source.offset").and_then(|o| o.parse().ok()).expect("dlq.source.offset");
    let sent =
        stack.records("notification.events", &bad).await.into_iter().find(|r| r.offset == source_offset).expect("the dead letter's source record");
    assert_eq!(dead_letter.payload, sent.payload, "the NotificationSent record, byte for byte");

    // A crash and a restart: the log says what was delivered and parked, so none of it goes
    // out again. The new notifications are for the same customers, so each waits behind
    // whatever else its customer still had to deliver: when they arrive, a re-sent one would
    // have arrived before them.
    // Both are settled: the next rebuild of their partition starts after every record of them.
    let mut theirs = stack.records("notification.events", &bad).await;
    theirs.extend(stack.records("notification.events", &good).await);
    let after_them = theirs.iter().map(|record| record.offset).max().expect("their records") + 1;
    let rebuild_from = delivery_rebuild_from(&stack, partition, after_them).await;

    stack.kill(SVC);
    stack.start_service(SVC);
    // The restarted loop starts its rebuild there, not at offset 0.
    stack
        .logs(WAIT, SVC, "notification deliveries rebuilt from the log", |f| {
            f["partition"] == partition && f["from"].as_i64().is_some_and(|from| from >= rebuild_from)
        })
        .await;
    let (bad_order_2, good_order_2) = (unique("order-bad"), unique("order-good"));
    stack.send("notification.commands", &bad, &send_notification(&bad, &bad_order_2)).await;
    stack.send("notification.commands", &good, &send_notification(&good, &good_order_2)).await;
    notification_when(&stack, &good, &good_order_2, |n| n["status"] == "DELIVERED").await;
    webhook.requests_reach(&bad_order_2, 1).await;
    assert_eq!(webhook.requests_for(&good_order).len(), 1, "the delivered notification was not sent again");
    assert_eq!(webhook.requests_for(&bad_order).len(), MAX_ATTEMPTS, "the parked notification was not sent again");
    assert_eq!(webhook.requests_for(&good_order_2).len(), 1);

    // Bad input on the outcome commands: refused or dead-lettered, with the reason.
    let malformed_id = unique("cmd");
    let malformed = json!({"type": "RecordDelivered", "customer_id": good, "order_id": good_order_2, "kind": "ORDER_CONFIRMED", "attempts": 0, "command_id": malformed_id});
    stack.send("notification.commands", &good, &malformed).await;
    let unknown_id = unique("cmd");
    let unknown = json!({"type": "ParkDelivery", "customer_id": good, "order_id": unique("order-never"), "kind": "ORDER_SHIPPED", "attempts": 1, "reason": "by hand", "command_id": unknown_id});
    stack.send("notification.commands", &good, &unknown).await;
    let invalid = stack.eventually(SVC, &format!("/commands/{malformed_id}"), WAIT, |outcome| outcome["status"] == "REJECTED").await;
    assert!(invalid["reason"].as_str().is_some_and(|r| r.contains("attempts must be at least 1")), "{invalid}");
    let refused = stack.eventually(SVC, &format!("/commands/{unknown_id}"), WAIT, |outcome| outcome["status"] == "REJECTED").await;
    assert!(refused["reason"].as_str().is_some_and(|r| r.contains("no ORDER_SHIPPED notification")), "{refused}");
    let still = notification_when(&stack, &good, &good_order_2, |n| n["status"] == "DELIVERED").await;
    assert_eq!(still["attempts"], json!(1), "the rejected commands changed nothing: {still}");
}

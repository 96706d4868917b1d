//! `GET /sagas/stuck` names, for each order that has not moved for a while, the service and step
//! it waits on, since when, its deadline and the lag of the loops on its path; and it lists the
//! event records readers parked because they could not decode them. payment-svc's command
//! processor is paused, so an order waits for its payment for as long as the test wants.
use serde_json::Value;
use std::time::{Duration, Instant};
use system_tests::{Stack, commands::*, target_dir, unique};

const WAIT: Duration = Duration::from_secs(60);
const PAYMENT_DEADLINE_MS: i64 = 600_000;

#[tokio::test(flavor = "multi_thread")]
async fn an_order_waiting_for_its_payment_is_reported_with_its_step_deadline_and_lag() {
    let payment_deadline = PAYMENT_DEADLINE_MS.to_string();
    let stack = Stack::start("stuck-sagas", &[("ORDER_DEADLINE_PAYMENT_MS", &payment_deadline)]);
    let (skus, customers) = stack.stock_and_accounts("stuck", 1, 10, &[10_000]).await;
    let (status, _) = stack.post("payment-svc", "/admin/pause?kind=command", &Value::Null).await;
    assert_eq!(status, 200);

    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customers[0], &[(&skus[0], 1, 500)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "STOCK_RESERVED").await;
    // Unreadable bytes in the order's own event log: parked by the readers, listed with it.
    stack.send_raw("order.events", Some(&order_id), b"garbage").await;

    let report = poll_stuck(&stack, "1ms", |report| {
        find(report, &order_id).is_some_and(|o| o["parked_events"].as_i64() > Some(0) && lag_of(o, "payment-svc.commands") > Some(0))
    })
    .await;
    let order = find(&report, &order_id).expect("listed");
    assert_eq!(order["status"], "STOCK_RESERVED");
    assert_eq!(order["waiting_on"], "payment-svc");
    assert!(order["step"].as_str().is_some_and(|s| s.contains("payment")), "{order}");
    let since = order["since"].as_i64().expect("since");
    assert_eq!(order["deadline"].as_i64(), Some(since + PAYMENT_DEADLINE_MS), "{order}");
    assert!(order["age_ms"].as_i64().is_some_and(|age| age >= 0), "{order}");
    let groups: Vec<&str> = order["loops"].as_array().into_iter().flatten().filter_map(|l| l["group"].as_str()).collect();
    assert_eq!(groups, ["payment-svc.payment-from-orders", "payment-svc.commands", "order-svc.order-from-accounts"]);
    // The policy that asked for the capture is done; the paused command processor is behind.
    assert_eq!(lag_of(order, "payment-svc.payment-from-orders"), Some(0), "{order}");
    let parked: Vec<&Value> = report["parked_events"].as_array().into_iter().flatten().filter(|p| p["aggregate_id"] == order_id.as_str()).collect();
    assert!(!parked.is_empty(), "{report}");
    assert!(parked.iter().all(|p| p["topic"] == "order.events" && p["kind"] == "not_wire_format" && p["offset"].is_i64()), "{parked:?}");

    // The operator's view of the same report (`scripts/stuck` runs `orderctl stuck`).
    let table = std::process::Command::new(target_dir().join("orderctl"))
        .args(["stuck", "--older-than", "1ms", "--order-svc", &stack.url("order-svc", "")])
        .output()
        .expect("orderctl runs");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success(), "orderctl stuck: {}", String::from_utf8_lossy(&table.stderr));
    let line = text.lines().find(|l| l.starts_with(&order_id)).unwrap_or_else(|| panic!("{order_id} not in\n{text}"));
    assert!(line.contains("STOCK_RESERVED") && line.contains("payment-svc") && line.contains("payment-svc.commands="), "{line}");
    assert!(text.contains("parked event(s)") && text.contains("not_wire_format"), "{text}");

    // Too young for a longer threshold; a malformed one is a 400 with the JSON error shape.
    let (_, young) = stack.get("order-svc", "/sagas/stuck?older_than=1h").await;
    assert!(find(&young, &order_id).is_none(), "{young}");
    let (status, error) = stack.get("order-svc", "/sagas/stuck?older_than=soon").await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"].as_str().is_some_and(|e| e.contains("older_than")), "{error}");

    let (status, _) = stack.post("payment-svc", "/admin/resume?kind=command", &Value::Null).await;
    assert_eq!(status, 200);
    stack.order_reaches(&order_id, "CONFIRMED").await;
    let report = poll_stuck(&stack, "1ms", |report| find(report, &order_id).is_some_and(|o| o["waiting_on"] == "warehouse")).await;
    assert_eq!(find(&report, &order_id).expect("listed")["deadline"], Value::Null, "dispatch has no deadline");
}

fn find<'a>(report: &'a Value, order_id: &str) -> Option<&'a Value> {
    report["orders"].as_array()?.iter().find(|o| o["order_id"] == order_id)
}

fn lag_of(order: &Value, group: &str) -> Option<i64> {
    order["loops"].as_array()?.iter().find(|l| l["group"] == group)?["lag"].as_i64()
}

async fn poll_stuck(stack: &Stack, older_than: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, report) = stack.get("order-svc", &format!("/sagas/stuck?older_than={older_than}")).await;
        if status == 200 && done(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "the stuck-saga report never showed what was expected; last ({status}): {report}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

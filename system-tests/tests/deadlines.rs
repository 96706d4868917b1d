//! No saga waits forever: five real services, order-svc with a short payment deadline, and
//! payment-svc's command processor paused (`/admin/pause?kind=command`) so the payment never
//! answers in time. The order is cancelled with `TIMEOUT` and its stock released; once payment
//! runs again, the capture that comes too late is given back (or never taken), so money and
//! stock add up. The deadline lives in the log, not in memory: one that runs out while order-svc
//! is down fires, once, after its restart.
use contracts::{
    EventEnvelope, EventType,
    order::{CancellationReason, Order, OrderEvent},
};
use serde_json::{Value, json};
use std::{
    collections::BTreeSet,
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Record, Stack, commands::*, id_on_partition, one_at_a_time, stop_child, unique};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for a test to see the order waiting before its deadline, short enough to wait for.
const PAYMENT_DEADLINE_MS: i64 = 6_000;
const UNITS: i64 = 5;
const DEPOSIT: i64 = 10_000;
const QUANTITY: i64 = 2;
const PRICE: i64 = 1250;

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("deadlines", &[("ORDER_DEADLINE_PAYMENT_MS", &PAYMENT_DEADLINE_MS.to_string())]))
}

/// A SKU with stock and a customer with money, unique to the calling test.
async fn stocked(stack: &Stack) -> (String, String) {
    stocked_with(stack, UNITS).await
}

async fn stocked_with(stack: &Stack, units: i64) -> (String, String) {
    stack.stocked(units, DEPOSIT).await
}

async fn place(stack: &Stack, customer: &str, sku: &str) -> String {
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, customer, &[(sku, QUANTITY, PRICE)], "EUR", "DE")).await;
    order_id
}

/// The number of records of order-svc's log at `log` that say a deadline of `order_id` fired.
fn firings_logged(log: &std::path::Path, order_id: &str) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_else(|error| panic!("{}: {error}", log.display()));
    text.lines().filter(|line| line.contains("deadline passed") && line.contains(order_id)).count()
}

async fn admin(stack: &Stack, service: &str, action: &str) {
    let (status, body) = stack.post(service, &format!("/admin/{action}?kind=command"), &Value::Null).await;
    assert_eq!(status, 200, "{service} /admin/{action}: {body}");
}

/// The sum of `orderflow_consumer_lag` over the command processor's partitions.
fn command_lag(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("orderflow_consumer_lag{") && line.contains("kind=\"command\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Pauses payment-svc's command processor and returns once it holds no batch any more. A
/// processor that was waiting for records when the pause came still handles the one batch it
/// gets next: a throwaway deposit (on its owner's partition, so it is decided, not forwarded) is
/// that batch. A processor that was already parked leaves the deposits unconsumed, which shows
/// as lag once its consumer's watermarks catch up, so one more deposit a second until either
/// shows. From then on no later command (the order's capture) runs.
async fn pause_payments(stack: &Stack) {
    admin(stack, "payment-svc", "pause").await;
    let throwaway = unique("throwaway");
    let partition = runtime::kafka::partition_for(&throwaway, stack.partitions_of("account.commands").await);
    let deadline = Instant::now() + WAIT;
    loop {
        let payload = deposit(&throwaway, 1, "EUR").to_string().into_bytes();
        stack.redeliver("account.commands", &throwaway, &Record { partition, offset: 0, headers: Default::default(), payload }).await;
        let next_deposit = Instant::now() + Duration::from_secs(1);
        while Instant::now() < next_deposit {
            let (status, _) = stack.get("payment-svc", &format!("/accounts/{throwaway}")).await;
            let (_, metrics) = stack.get_text("payment-svc", "/metrics").await;
            if status == 200 || command_lag(&metrics) > 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(Instant::now() < deadline, "payment-svc's command processor neither took a throwaway deposit nor shows lag");
    }
}

/// Every event the log holds for the order, duplicates included, in log order.
async fn order_events(stack: &Stack, order_id: &str) -> Vec<EventEnvelope<OrderEvent>> {
    let codec = runtime::kafka::EventCodec::<Order>::new(&stack.registry).expect("codec");
    let mut events = Vec::new();
    for record in stack.records("order.events", order_id).await {
        events.push(codec.decode(&record.payload).await.expect("an order event decodes"));
    }
    events
}

fn of_type<'e>(events: &'e [EventEnvelope<OrderEvent>], event_type: &str) -> Vec<&'e EventEnvelope<OrderEvent>> {
    events.iter().filter(|event| event.payload.event_type() == event_type).collect()
}

/// When the order's stock was reserved: the payment's deadline runs from there.
fn stock_reserved_at(events: &[EventEnvelope<OrderEvent>]) -> i64 {
    match of_type(events, "OrderStockReserved").as_slice() {
        [reserved] => reserved.occurred_at,
        other => panic!("expected one OrderStockReserved, found {}: {events:?}", other.len()),
    }
}

/// The order's one cancellation: for `TIMEOUT`, waiting for its payment, at its deadline or after.
fn assert_cancelled_once_by_the_payment_deadline(events: &[EventEnvelope<OrderEvent>]) {
    let due_ms = stock_reserved_at(events) + PAYMENT_DEADLINE_MS;
    match of_type(events, "OrderCancelled").as_slice() {
        [cancelled] => {
            let OrderEvent::OrderCancelled { reason, detail, .. } = &cancelled.payload else { unreachable!("filtered by type") };
            assert_eq!(*reason, CancellationReason::Timeout, "{cancelled:?}");
            assert_eq!(detail, &format!("waited longer than {PAYMENT_DEADLINE_MS} ms for its payment"));
            assert!(cancelled.occurred_at >= due_ms, "cancelled at {} before the deadline {due_ms}", cancelled.occurred_at);
        }
        other => panic!("expected one OrderCancelled, found {}: {events:?}", other.len()),
    }
}

/// Every `TimeOutOrder` on order.commands for the order: however often the deadline fired, they
/// are one command.
async fn time_out_command_ids(stack: &Stack, order_id: &str) -> BTreeSet<String> {
    let records = stack.records("order.commands", order_id).await;
    let time_outs: Vec<Value> = records.iter().map(Record::json).filter(|command| command["type"] == "TimeOutOrder").collect();
    assert!(!time_outs.is_empty(), "no TimeOutOrder for {order_id} on order.commands");
    time_outs.iter().map(|command| command["command_id"].as_str().unwrap_or_default().to_string()).collect()
}

/// After payment-svc resumed: a one-cent deposit behind the orders' captures and refunds on the
/// customer's partition of account.commands; once it shows, all were handled. Then the money
/// adds up: each capture that came after its order's cancellation was refunded, or never taken.
async fn assert_money_adds_up_after_the_late_captures(stack: &Stack, customer: &str, order_ids: &[&str]) {
    let partition = runtime::kafka::partition_for(customer, stack.partitions_of("account.commands").await);
    let marker = Record { partition, offset: 0, headers: Default::default(), payload: deposit(customer, 1, "EUR").to_string().into_bytes() };
    stack.redeliver("account.commands", customer, &marker).await;
    let account = stack.eventually("payment-svc", &format!("/accounts/{customer}"), WAIT, |a| a["balance_cents"] == DEPOSIT + 1).await;
    assert_eq!(account["captured_cents"], account["refunded_cents"], "whatever was captured was refunded: {account}");
    for order_id in order_ids {
        let (status, payment) = stack.get("payment-svc", &format!("/payments/{order_id}")).await;
        assert!(status == 404 || payment["status"] == "REFUNDED" || payment["status"] == "DECLINED", "{order_id}: {status} {payment}");
    }
}

/// The order stays cancelled by its deadline, its stock is back, and the customer heard why.
async fn assert_order_stays_timed_out_with_its_stock_released(stack: &Stack, order_id: &str, sku: &str, cancelled: &Value) {
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 0 && s["on_hand"] == UNITS).await;
    let reservation = stack.eventually("inventory-svc", &format!("/reservations/{order_id}"), WAIT, |r| r["status"].is_string()).await;
    assert_eq!(reservation["status"], "RELEASED", "{reservation}");
    let notifications = stack
        .eventually("notify-svc", &format!("/notifications?order_id={order_id}"), WAIT, |n| {
            n.as_array().is_some_and(|all| all.iter().any(|x| x["kind"] == "ORDER_CANCELLED"))
        })
        .await;
    let cancellation = notifications.as_array().into_iter().flatten().find(|n| n["kind"] == "ORDER_CANCELLED").cloned().unwrap_or_default();
    assert!(cancellation["message"].as_str().is_some_and(|m| m.contains("TIMEOUT")), "{cancellation}");
    let (_, order) = stack.get("order-svc", &format!("/orders/{order_id}")).await;
    assert_eq!(
        (&order["status"], &order["cancellation_reason"], &order["version"]),
        (&cancelled["status"], &cancelled["cancellation_reason"], &cancelled["version"]),
        "the late capture changed the order: {order}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payment_that_never_answers_times_the_order_out_and_its_late_capture_is_given_back() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (sku, customer) = stocked(stack).await;
    pause_payments(stack).await;

    let order_id = place(stack, &customer, &sku).await;
    let cancelled = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(cancelled["cancellation_reason"], "TIMEOUT", "{cancelled}");
    assert_cancelled_once_by_the_payment_deadline(&order_events(stack, &order_id).await);
    // Released while payment is still paused: the compensation does not wait for the reply.
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 0 && s["on_hand"] == UNITS).await;
    let (_, account) = stack.get("payment-svc", &format!("/accounts/{customer}")).await;
    assert_eq!(
        (&account["balance_cents"], &account["captured_cents"]),
        (&Value::from(DEPOSIT), &Value::from(0)),
        "nothing captured while paused: {account}"
    );

    admin(stack, "payment-svc", "resume").await;
    assert_money_adds_up_after_the_late_captures(stack, &customer, &[&order_id]).await;
    assert_order_stays_timed_out_with_its_stock_released(stack, &order_id, &sku, &cancelled).await;
    assert_eq!(time_out_command_ids(stack, &order_id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_that_runs_out_while_order_svc_is_down_fires_once_after_its_restart() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (sku, customer) = stocked(stack).await;
    pause_payments(stack).await;

    let order_id = place(stack, &customer, &sku).await;
    stack.order_reaches(&order_id, "STOCK_RESERVED").await;
    stack.kill("order-svc");
    let events = order_events(stack, &order_id).await;
    assert!(of_type(&events, "OrderCancelled").is_empty(), "the deadline ran out before order-svc was killed: {events:?}");

    // The deadline runs out while no order-svc runs: no timer survives, only the log.
    let due_ms = stock_reserved_at(&events) + PAYMENT_DEADLINE_MS;
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    tokio::time::sleep(Duration::from_millis(u64::try_from(due_ms + 500 - now_ms()).unwrap_or(0))).await;
    assert!(of_type(&order_events(stack, &order_id).await, "OrderCancelled").is_empty(), "cancelled while order-svc was down");

    stack.start_service("order-svc");
    let cancelled = stack.order_reaches(&order_id, "CANCELLED").await;
    assert_eq!(cancelled["cancellation_reason"], "TIMEOUT", "{cancelled}");
    assert_cancelled_once_by_the_payment_deadline(&order_events(stack, &order_id).await);
    assert_eq!(time_out_command_ids(stack, &order_id).await.len(), 1, "every firing of the deadline is the same command");

    admin(stack, "payment-svc", "resume").await;
    assert_money_adds_up_after_the_late_captures(stack, &customer, &[&order_id]).await;
    assert_order_stays_timed_out_with_its_stock_released(stack, &order_id, &sku, &cancelled).await;
}

/// Waits until `GET /commands/{command_id}` on order-svc says `status`.
async fn outcome(stack: &Stack, command_id: &str, status: &str) -> Value {
    stack.eventually("order-svc", &format!("/commands/{command_id}"), WAIT, |o| o["status"] == status).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_or_moot_time_out_is_refused_dead_lettered_or_ignored_and_orders_go_on() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let unknown = unique("order");
    let refused = unique("cmd");
    stack
        .send("order.commands", &unknown, &json!({"type": "TimeOutOrder", "order_id": unknown, "step": "PAYMENT", "command_id": refused}))
        .await;
    let rejected = outcome(stack, &refused, "REJECTED").await;
    assert!(rejected["reason"].as_str().is_some_and(|r| r.contains("order not found")), "{rejected}");

    let broken = unique("cmd");
    stack.send("order.commands", &unknown, &json!({"type": "TimeOutOrder", "order_id": unknown, "step": "SOON", "command_id": broken})).await;
    let dead = outcome(stack, &broken, "REJECTED").await;
    assert_eq!(dead["rejection_kind"], "UNPARSEABLE", "{dead}");
    assert!(dead["reason"].as_str().is_some_and(|r| r.contains("SOON")), "{dead}");

    // An order that got its payment in time ignores a timeout of its payment: it settles as
    // usual, and so does the order behind the timeout on the same partition.
    let (sku, customer) = stocked(stack).await;
    let order_id = place(stack, &customer, &sku).await;
    let confirmed = stack.order_reaches(&order_id, "CONFIRMED").await;
    let partitions = stack.partitions_of("order.commands").await;
    let partition = runtime::kafka::partition_for(&order_id, partitions);
    let moot = json!({"type": "TimeOutOrder", "order_id": order_id, "step": "PAYMENT", "deadline_ms": 1});
    stack
        .redeliver("order.commands", &order_id, &Record { partition, offset: 0, headers: Default::default(), payload: moot.to_string().into_bytes() })
        .await;
    let behind = id_on_partition("behind", partition, partitions);
    let place_behind = place_order(&behind, &customer, &[(&sku, 1, PRICE)], "EUR", "DE");
    stack
        .redeliver(
            "order.commands",
            &behind,
            &Record { partition, offset: 0, headers: Default::default(), payload: place_behind.to_string().into_bytes() },
        )
        .await;
    stack.order_reaches(&behind, "CONFIRMED").await;
    let (_, order) = stack.get("order-svc", &format!("/orders/{order_id}")).await;
    assert_eq!((&order["status"], &order["version"]), (&confirmed["status"], &confirmed["version"]), "{order}");
}

#[test]
fn order_svc_refuses_to_start_with_a_deadline_that_is_not_milliseconds() {
    let output = stack().service_command("order-svc").env("ORDER_DEADLINE_STOCK_MS", "30s").output().expect("order-svc runs");
    assert!(!output.status.success(), "started with a deadline of 30s: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ORDER_DEADLINE_STOCK_MS must be a whole number of milliseconds from 1 to 604800000, not \"30s\""), "{stderr}");
}

/// A second order-svc next to the stack's: its own HTTP port and read-model database, the same
/// consumer groups. Stopped with SIGTERM (it leaves its groups at once) when dropped.
struct SecondOrderSvc {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl SecondOrderSvc {
    async fn start(stack: &Stack) -> SecondOrderSvc {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let dir = system_tests::test_dir("second-order-svc");
        std::fs::create_dir_all(&dir).expect("the second instance's folder");
        let log = dir.join("order-svc.log");
        let mut command = stack.service_command("order-svc");
        command.env("HTTP_ADDR", format!("127.0.0.1:{port}")).env("RUN_DIR", &dir).env_remove("DATABASE_URL");
        if runtime::testing::read_model_db_is_postgres() {
            let name = runtime::testing::unique_database_name("deadlines_second_order_svc");
            command.env("DATABASE_URL", runtime::testing::create_postgres_database(&name).await);
        }
        let output = std::fs::File::create(&log).expect("log file");
        command.stdout(output.try_clone().expect("log handle")).stderr(output);
        let instance = SecondOrderSvc { child: command.spawn().expect("a second order-svc starts"), port, log };
        let deadline = Instant::now() + WAIT;
        while reqwest::get(instance.url("/health")).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
            assert!(Instant::now() < deadline, "the second order-svc did not become healthy; see {}", instance.log.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        instance
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until the instance's deadline loop owns partitions (it reports their lag), i.e. the
    /// group has rebalanced over both instances.
    async fn owns_deadline_partitions(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let metrics = match reqwest::get(self.url("/metrics")).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if metrics.lines().any(|line| line.starts_with("orderflow_consumer_lag{") && line.contains("loop=\"order-svc.order-deadlines\"")) {
                return;
            }
            assert!(Instant::now() < deadline, "the second order-svc's deadlines never got a partition; see {}", self.log.display());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for SecondOrderSvc {
    fn drop(&mut self) {
        stop_child(&mut self.child, "second order-svc");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_order_svc_instances_each_deadline_fires_once_from_the_partitions_owner() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let partitions = stack.partitions_of("order.events").await;
    let (sku, customer) = stocked_with(stack, i64::from(partitions) * QUANTITY).await;
    let second = SecondOrderSvc::start(stack).await;
    second.owns_deadline_partitions().await;
    pause_payments(stack).await;

    // One order on every partition, so both instances own some of them.
    let order_ids: Vec<String> = (0..partitions).map(|partition| id_on_partition("order", partition, partitions)).collect();
    for order_id in &order_ids {
        stack.send("order.commands", order_id, &place_order(order_id, &customer, &[(&sku, QUANTITY, PRICE)], "EUR", "DE")).await;
    }
    for order_id in &order_ids {
        let cancelled = stack.order_reaches(order_id, "CANCELLED").await;
        assert_eq!(cancelled["cancellation_reason"], "TIMEOUT", "{cancelled}");
        assert_cancelled_once_by_the_payment_deadline(&order_events(stack, order_id).await);
        let time_outs = stack.records("order.commands", order_id).await.iter().filter(|r| r.json()["type"] == "TimeOutOrder").count();
        assert_eq!(time_outs, 1, "{order_id}: fired by one instance only");
    }
    let (first_log, second_log) = (stack.dir.join("logs").join("order-svc.log"), second.log.clone());
    let fired_by = |log: &std::path::Path| order_ids.iter().filter(|order_id| firings_logged(log, order_id) > 0).count();
    let (by_first, by_second) = (fired_by(&first_log), fired_by(&second_log));
    assert_eq!(by_first + by_second, order_ids.len(), "each deadline fired by exactly one instance");
    assert!(by_first > 0 && by_second > 0, "both instances own partitions: first fired {by_first}, second {by_second}");

    drop(second);
    admin(stack, "payment-svc", "resume").await;
    let order_ids: Vec<&str> = order_ids.iter().map(String::as_str).collect();
    assert_money_adds_up_after_the_late_captures(stack, &customer, &order_ids).await;
    stack.eventually("inventory-svc", &format!("/stock/{sku}"), WAIT, |s| s["reserved"] == 0).await;
}

//! Idle loops park (runtime/src/kafka/parking.rs): with no records for a while, a loop stops
//! fetching and probes its partitions' end offsets instead. Against the real services, broker
//! and registry: once the system is quiet the saga's loops in every service say they are parked
//! (`orderflow_consumer_parked`), an order placed then still crosses all of them to CONFIRMED
//! and its customer is told, and the loops park again afterwards.
use std::time::{Duration, Instant};
use system_tests::{Stack, commands::place_order, unique};

const WAIT: Duration = Duration::from_secs(60);

/// The saga's loops of each service: its command processor and its policies on the path of an
/// order, and the order view that `wait_for` watches.
const SAGA_LOOPS: &[(&str, &[&str])] = &[
    (
        "order-svc",
        &["order-svc.commands", "order-svc.order-from-stock", "order-svc.order-from-accounts", "order-svc.order-from-shipments", "orders"],
    ),
    ("inventory-svc", &["inventory-svc.commands", "inventory-svc.inventory-from-orders"]),
    ("payment-svc", &["payment-svc.commands", "payment-svc.payment-from-orders"]),
    ("shipping-svc", &["shipping-svc.commands", "shipping-svc.shipping-from-orders"]),
];

/// The value of `orderflow_consumer_parked` for `loop_name` in a `/metrics` text.
fn parked(metrics: &str, loop_name: &str) -> Option<f64> {
    let label = format!("loop=\"{loop_name}\"");
    metrics
        .lines()
        .find(|line| line.starts_with("orderflow_consumer_parked{") && line.contains(&label))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// Polls every service's `/metrics` until each of its saga loops is parked.
async fn every_saga_loop_parked(stack: &Stack) {
    for (service, loops) in SAGA_LOOPS {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, text) = stack.get_text(service, "/metrics").await;
            let not_parked: Vec<&str> = loops.iter().copied().filter(|name| parked(&text, name) != Some(1.0)).collect();
            if status == 200 && not_parked.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "{service}: {not_parked:?} not parked within {WAIT:?} of quiet");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_loops_park_and_an_order_placed_later_still_crosses_every_service() {
    let stack = Stack::start("parking", &[]);
    let (sku, customer) = stack.stocked(5, 10_000).await;
    every_saga_loop_parked(&stack).await;

    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customer, &[(&sku, 2, 1500)], "EUR", "DE")).await;
    let order = stack.order_reaches(&order_id, "CONFIRMED").await;
    assert_eq!(order["total_cents"], 3000, "{order}");
    stack.stock_is(&sku, 2, 5).await;
    stack.notifications_are(&order_id, &["ORDER_CONFIRMED"]).await;

    every_saga_loop_parked(&stack).await;
}

#[test]
fn the_gauge_is_read_for_the_named_loop_only() {
    let text = "orderflow_consumer_parked{service=\"order-svc\",loop=\"orders\"} 1\norderflow_consumer_parked{service=\"order-svc\",loop=\"order-svc.commands\"} 0\n";
    assert_eq!(parked(text, "orders"), Some(1.0));
    assert_eq!(parked(text, "order-svc.commands"), Some(0.0));
    assert_eq!(parked(text, "order-svc.order-from-stock"), None);
}

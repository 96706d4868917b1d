//! Crash test: kill -9 each service in turn while a burst of 200 orders is in flight, restart
//! it, and check that every order ends CONFIRMED or CANCELLED and that stock, money and
//! notifications add up exactly.
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};
use system_tests::{Stack, commands::*, services, unique};

const ORDERS: usize = 200;
const SKUS: usize = 10;
const UNITS_PER_SKU: i64 = 15;
const CUSTOMERS: usize = 20;
const PRICE: i64 = 1000;
const SETTLE: Duration = Duration::from_secs(240);

struct Planned {
    order_id: String,
    customer: usize,
    lines: Vec<usize>,
}

#[tokio::test(flavor = "multi_thread")]
async fn every_order_settles_and_everything_adds_up_after_kill_9_of_each_service() {
    let stack = Stack::start("crash", &[]);
    let started = Instant::now();
    // Four customers cannot pay; demand (250 units) exceeds stock (150): every branch happens.
    let deposits: Vec<i64> = (0..CUSTOMERS).map(|c| if c % 5 == 4 { 300 } else { 50_000 }).collect();
    let (skus, customers) = stack.stock_and_accounts("crash", SKUS, UNITS_PER_SKU, &deposits).await;

    let plan: Vec<Planned> = (0..ORDERS)
        .map(|i| Planned {
            order_id: unique("crash-order"),
            customer: i % CUSTOMERS,
            lines: if i % 4 == 0 { vec![i % SKUS, (i + 3) % SKUS] } else { vec![i % SKUS] },
        })
        .collect();
    let chunk = ORDERS / services().len();
    for (victim, orders) in services().iter().zip(plan.chunks(chunk)) {
        for order in orders {
            let lines: Vec<(&str, i64, i64)> = order.lines.iter().map(|s| (skus[*s].as_str(), 1, PRICE)).collect();
            let country = if order.order_id.ends_with('7') { "AQ" } else { "DE" };
            stack.send("order.commands", &order.order_id, &place_order(&order.order_id, &customers[order.customer], &lines, "EUR", country)).await;
        }
        // Kill only once this chunk is visibly moving through the saga, so the victim dies
        // with work in flight rather than idle.
        let first = &orders[0].order_id;
        stack.eventually("order-svc", &format!("/orders/{first}"), SETTLE, |o| o["status"] != "PENDING").await;
        let killed_at = Instant::now();
        stack.restart(victim);
        println!("killed -9 and restarted {victim} in {:?}", killed_at.elapsed());
    }

    let mut outcome: HashMap<String, Value> = HashMap::new();
    for order in &plan {
        let view = stack
            .eventually("order-svc", &format!("/orders/{}", order.order_id), SETTLE, |o| o["status"] == "CONFIRMED" || o["status"] == "CANCELLED")
            .await;
        outcome.insert(order.order_id.clone(), view);
    }
    let settled_after = started.elapsed();

    let confirmed: Vec<&Planned> = plan.iter().filter(|o| outcome[&o.order_id]["status"] == "CONFIRMED").collect();
    let mut by_reason: BTreeMap<String, usize> = BTreeMap::new();
    for view in outcome.values() {
        let key = view["cancellation_reason"].as_str().map_or("CONFIRMED".to_string(), |r| format!("CANCELLED/{r}"));
        *by_reason.entry(key).or_default() += 1;
    }
    println!("{ORDERS} orders settled in {settled_after:?}: {by_reason:?}");
    assert!(!confirmed.is_empty() && confirmed.len() < ORDERS, "both outcomes must occur: {by_reason:?}");

    // Stock: nothing shipped, so on_hand equals what was restocked; reserved is exactly the
    // confirmed orders' units.
    let mut reserved_per_sku = vec![0i64; SKUS];
    for order in &confirmed {
        for sku in &order.lines {
            reserved_per_sku[*sku] += 1;
        }
    }
    for (sku, reserved) in skus.iter().zip(&reserved_per_sku) {
        stack.eventually("inventory-svc", &format!("/stock/{sku}"), SETTLE, |s| s["on_hand"] == UNITS_PER_SKU && s["reserved"] == *reserved).await;
    }

    // Money: per account balance + captured - refunded = deposited, and across accounts the
    // net capture is exactly the confirmed orders' totals.
    let mut net_captured = 0i64;
    for (customer, deposited) in customers.iter().zip(&deposits) {
        let expected_net: i64 = confirmed.iter().filter(|o| customers[o.customer] == *customer).map(|o| o.lines.len() as i64 * PRICE).sum();
        let account = stack
            .eventually("payment-svc", &format!("/accounts/{customer}"), SETTLE, |a| {
                let (balance, captured, refunded) = (a["balance_cents"].as_i64(), a["captured_cents"].as_i64(), a["refunded_cents"].as_i64());
                matches!((balance, captured, refunded), (Some(b), Some(c), Some(r)) if b + c - r == *deposited && c - r == expected_net)
            })
            .await;
        net_captured += account["captured_cents"].as_i64().unwrap_or_default() - account["refunded_cents"].as_i64().unwrap_or_default();
    }
    let confirmed_total: i64 = confirmed.iter().map(|o| o.lines.len() as i64 * PRICE).sum();
    assert_eq!(net_captured, confirmed_total);

    // Exactly one notification per (order, kind), and the right kind for each outcome.
    for order in &plan {
        let expected = if outcome[&order.order_id]["status"] == "CONFIRMED" { "ORDER_CONFIRMED" } else { "ORDER_CANCELLED" };
        let sent = stack
            .eventually("notify-svc", &format!("/notifications?order_id={}", order.order_id), SETTLE, |n| {
                n.as_array().is_some_and(|all| all.iter().any(|x| x["kind"] == expected))
            })
            .await;
        let mut kinds: Vec<&str> = sent.as_array().into_iter().flatten().filter_map(|n| n["kind"].as_str()).collect();
        let total = kinds.len();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), total, "a notification kind was sent twice for {}: {sent}", order.order_id);
    }
    println!("crash test verified in {:?}", started.elapsed());
}

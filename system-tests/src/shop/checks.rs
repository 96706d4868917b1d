//! What must hold once the faults stop: every order terminal (none lost, none twice), stock
//! and money conserved, one notification decided and delivered per (order, kind). Read models
//! lag, so the checks are taken again until they all hold or the deadline passes.
use super::{Journey, Shop};
use crate::Stack;
use serde_json::Value;
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    time::{Duration, Instant},
};

/// One check's outcome: its figures (printed either way) and what failed.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub name: &'static str,
    pub figures: String,
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// What the read models show, read over HTTP.
struct Observation {
    orders: HashMap<String, Value>,
    listed_per_customer: Vec<usize>,
    stock: Vec<Value>,
    accounts: Vec<Value>,
    notifications: Vec<Value>,
    /// event id → lines in the notification sink (delivery is at least once).
    delivered_lines: HashMap<String, usize>,
}

/// Takes the checks until all pass or `deadline`; returns the last verdicts and, when they all
/// passed, the moment they did.
pub async fn settle(stack: &Stack, shop: &Shop, journeys: &[Journey], deadline: Instant) -> (Vec<Verdict>, Option<Instant>) {
    loop {
        // A service that takes each request to the client's timeout would make one round take
        // many minutes: a round gets what is left of the deadline (and a last one 30 s).
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(30));
        let Ok(observation) = tokio::time::timeout(left, observe(stack, shop, journeys)).await else {
            let failures = vec![format!("the read models did not all answer within {left:.0?} (a service hangs: see its log)")];
            return (vec![Verdict { name: "answers", figures: "reading every order, SKU, account and notification".into(), failures }], None);
        };
        let verdicts = judge(shop, journeys, &observation);
        if verdicts.iter().all(Verdict::passed) {
            return (verdicts, Some(Instant::now()));
        }
        if Instant::now() > deadline {
            return (verdicts, None);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn observe(stack: &Stack, shop: &Shop, journeys: &[Journey]) -> Observation {
    let mut orders = HashMap::new();
    for journey in journeys.iter().filter(|j| j.placed) {
        if let (200, view) = stack.get("order-svc", &format!("/orders/{}", journey.order_id)).await {
            orders.insert(journey.order_id.clone(), view);
        }
    }
    let mut listed_per_customer = Vec::new();
    let mut notifications = Vec::new();
    for customer in &shop.customers {
        listed_per_customer.push(listed_orders(stack, customer).await);
        if let (200, Value::Array(sent)) = stack.get("notify-svc", &format!("/notifications?customer_id={customer}")).await {
            notifications.extend(sent);
        }
    }
    let mut stock = Vec::new();
    for sku in &shop.skus {
        stock.push(stack.get("inventory-svc", &format!("/stock/{sku}")).await.1);
    }
    let mut accounts = Vec::new();
    for customer in &shop.customers {
        accounts.push(stack.get("payment-svc", &format!("/accounts/{customer}")).await.1);
    }
    Observation { orders, listed_per_customer, stock, accounts, notifications, delivered_lines: sink_lines(&stack.dir.join("notifications.jsonl")) }
}

/// How many orders `GET /orders?customer_id=` lists for the customer, over every page.
async fn listed_orders(stack: &Stack, customer: &str) -> usize {
    let (mut listed, mut cursor) = (0, None::<String>);
    loop {
        let page = match &cursor {
            Some(cursor) => format!("/orders?customer_id={customer}&limit=1000&cursor={cursor}"),
            None => format!("/orders?customer_id={customer}&limit=1000"),
        };
        let (status, body) = stack.get("order-svc", &page).await;
        if status != 200 {
            return usize::MAX;
        }
        listed += body["orders"].as_array().map_or(0, Vec::len);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return listed,
        }
    }
}

fn sink_lines(path: &Path) -> HashMap<String, usize> {
    let mut lines = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(event_id) = serde_json::from_str::<Value>(line).ok().and_then(|v| v["event_id"].as_str().map(str::to_string)) {
            *lines.entry(event_id).or_default() += 1;
        }
    }
    lines
}

fn judge(shop: &Shop, journeys: &[Journey], seen: &Observation) -> Vec<Verdict> {
    vec![orders(shop, journeys, seen), stock(shop, journeys, seen), money(shop, journeys, seen), notifications(journeys, seen)]
}

fn status<'a>(seen: &'a Observation, journey: &Journey) -> &'a str {
    seen.orders.get(&journey.order_id).and_then(|view| view["status"].as_str()).unwrap_or("MISSING")
}

fn orders(shop: &Shop, journeys: &[Journey], seen: &Observation) -> Verdict {
    let mut failures = Vec::new();
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for journey in journeys {
        if !journey.placed {
            failures.push(format!("{} was never accepted: {:?}", journey.order_id, journey.errors));
            continue;
        }
        let status = status(seen, journey);
        let view = seen.orders.get(&journey.order_id).unwrap_or(&Value::Null);
        let reason = view["cancellation_reason"].as_str();
        let outcome = match (status, reason) {
            ("CANCELLED", Some(reason)) => format!("CANCELLED/{reason}"),
            (status, _) => status.to_string(),
        };
        *by_outcome.entry(outcome).or_default() += 1;
        let expected: &[&str] = if journey.delivery_sent {
            &["DELIVERED"]
        } else if journey.dispatch_sent && journey.cancel_sent {
            &["SHIPPED", "DELIVERED", "CANCELLED"]
        } else if journey.dispatch_sent {
            &["SHIPPED", "DELIVERED"]
        } else {
            &["CONFIRMED", "CANCELLED"]
        };
        if !expected.contains(&status) {
            failures.push(format!("{} is {status}, expected one of {expected:?} ({:?})", journey.order_id, journey.scenario));
        } else if status == "CANCELLED" && reason.is_none() {
            failures.push(format!("{} is CANCELLED without a reason", journey.order_id));
        } else if view["total_cents"].as_i64() != Some(journey.total_cents()) {
            failures.push(format!("{} totals {}, placed {}", journey.order_id, view["total_cents"], journey.total_cents()));
        }
    }
    for (customer, listed) in seen.listed_per_customer.iter().enumerate() {
        let placed = journeys.iter().filter(|j| j.placed && j.customer == customer).count();
        if *listed != placed {
            failures.push(format!("customer {} has {listed} orders listed, {placed} placed", shop.customers[customer]));
        }
    }
    let placed = journeys.iter().filter(|j| j.placed).count();
    let terminal = journeys.iter().filter(|j| j.placed && ["CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"].contains(&status(seen, j))).count();
    Verdict {
        name: "orders",
        figures: format!("{} offered, {placed} placed, {terminal} terminal, listed per customer = placed: {by_outcome:?}", journeys.len()),
        failures: failures.into_iter().take(20).collect(),
    }
}

fn stock(shop: &Shop, journeys: &[Journey], seen: &Observation) -> Verdict {
    let (mut shipped, mut reserved) = (vec![0i64; shop.skus.len()], vec![0i64; shop.skus.len()]);
    for journey in journeys.iter().filter(|j| j.placed) {
        let units = match status(seen, journey) {
            "SHIPPED" | "DELIVERED" => &mut shipped,
            "CONFIRMED" => &mut reserved,
            _ => continue,
        };
        for line in &journey.lines {
            units[line.sku] += line.quantity;
        }
    }
    let mut failures = Vec::new();
    for (i, view) in seen.stock.iter().enumerate() {
        let (on_hand, held) = (view["on_hand"].as_i64(), view["reserved"].as_i64());
        let expected_on_hand = shop.restocked[i] - shipped[i];
        if on_hand != Some(expected_on_hand) || held != Some(reserved[i]) {
            failures.push(format!(
                "{}: on_hand {on_hand:?} reserved {held:?}, expected on_hand {expected_on_hand} (restocked {} - shipped {}) reserved {}",
                shop.skus[i], shop.restocked[i], shipped[i], reserved[i]
            ));
        }
        if let (Some(on_hand), Some(held)) = (on_hand, held)
            && (held > on_hand || on_hand < 0)
        {
            failures.push(format!("{} oversold: on_hand {on_hand}, reserved {held}", shop.skus[i]));
        }
    }
    Verdict {
        name: "stock",
        figures: format!(
            "{} SKUs: restocked {}, shipped {}, reserved {} units; on_hand = restocked - shipped, reserved = live reservations",
            shop.skus.len(),
            shop.restocked.iter().sum::<i64>(),
            shipped.iter().sum::<i64>(),
            reserved.iter().sum::<i64>()
        ),
        failures,
    }
}

fn money(shop: &Shop, journeys: &[Journey], seen: &Observation) -> Verdict {
    let mut failures = Vec::new();
    let (mut captured_total, mut refunded_total, mut kept_total) = (0, 0, 0);
    for (i, account) in seen.accounts.iter().enumerate() {
        let kept: i64 = journeys.iter().filter(|j| j.placed && j.customer == i && status(seen, j) != "CANCELLED").map(Journey::total_cents).sum();
        kept_total += kept;
        let figures = ["deposited_cents", "captured_cents", "refunded_cents", "balance_cents"].map(|field| account[field].as_i64());
        let [Some(deposited), Some(captured), Some(refunded), Some(balance)] = figures else {
            failures.push(format!("account {} unreadable: {account}", shop.customers[i]));
            continue;
        };
        captured_total += captured;
        refunded_total += refunded;
        if deposited != shop.deposits[i] || balance != deposited - captured + refunded || captured - refunded != kept {
            failures.push(format!(
                "{}: deposited {deposited} (made {}), captured {captured}, refunded {refunded}, balance {balance}; kept orders total {kept}",
                shop.customers[i], shop.deposits[i]
            ));
        }
    }
    Verdict {
        name: "money",
        figures: format!(
            "{} accounts: captured {captured_total} - refunded {refunded_total} = {} cents; orders not cancelled total {kept_total}; balance = deposited - captured + refunded",
            shop.customers.len(),
            captured_total - refunded_total
        ),
        failures,
    }
}

fn notifications(journeys: &[Journey], seen: &Observation) -> Verdict {
    let mut failures = Vec::new();
    let mut kinds: HashMap<&str, Vec<&str>> = HashMap::new();
    let (mut delivered, mut repeats) = (0, 0);
    for notification in &seen.notifications {
        let (order_id, kind) = (notification["order_id"].as_str().unwrap_or(""), notification["kind"].as_str().unwrap_or(""));
        kinds.entry(order_id).or_default().push(kind);
        let lines = notification["event_id"].as_str().and_then(|id| seen.delivered_lines.get(id)).copied().unwrap_or(0);
        if notification["status"] == "DELIVERED" && lines > 0 {
            delivered += 1;
            repeats += lines - 1;
        } else if failures.len() < 20 {
            failures.push(format!("{order_id} {kind}: status {}, {lines} lines in the sink", notification["status"]));
        }
    }
    for journey in journeys.iter().filter(|j| j.placed) {
        let mut sent = kinds.get(journey.order_id.as_str()).cloned().unwrap_or_default();
        let expected: &[&str] = match status(seen, journey) {
            "CONFIRMED" => &["ORDER_CONFIRMED"],
            "SHIPPED" | "DELIVERED" => &["ORDER_CONFIRMED", "ORDER_SHIPPED"],
            _ => &["ORDER_CANCELLED"],
        };
        let missing: Vec<&&str> = expected.iter().filter(|kind| !sent.contains(kind)).collect();
        let count = sent.len();
        sent.sort_unstable();
        sent.dedup();
        if (!missing.is_empty() || sent.len() != count) && failures.len() < 20 {
            failures.push(format!("{}: sent {sent:?} ({count} in all), missing {missing:?}", journey.order_id));
        }
    }
    Verdict {
        name: "notifications",
        figures: format!(
            "{} decided, {delivered} delivered, one per (order, kind); {repeats} repeated deliveries in the sink (delivery to the outside is at least once)",
            seen.notifications.len()
        ),
        failures,
    }
}

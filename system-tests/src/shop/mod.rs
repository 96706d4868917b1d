//! A shop's traffic for runs under faults (the chaos run, the scale-out test): its catalogue
//! and customers ([`Shop`]), orders drawn from a seed with a real shop's mix, each followed
//! through its journey ([`Journey`]: placed, maybe cancelled by the customer, maybe dispatched
//! and delivered by the warehouse) over HTTP, retrying each request with its own ids until it
//! is answered, as a well-behaved client does while services die; and what must hold once the
//! faults stop ([`checks`]).
pub mod checks;

use crate::{Stack, commands, unique};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

/// SKUs with room for every order of the run, and a few with only a handful of units that
/// many orders compete for (the out-of-stock share, and the never-oversold check).
pub const PLENTIFUL_SKUS: usize = 12;
pub const SCARCE_SKUS: usize = 3;
pub const SCARCE_UNITS: i64 = 6;
/// Customers who can pay everything, and customers with almost nothing (declined payments).
pub const RICH_CUSTOMERS: usize = 30;
pub const POOR_CUSTOMERS: usize = 5;
pub const RICH_DEPOSIT: i64 = 1_000_000_000;
pub const POOR_DEPOSIT: i64 = 100;

/// The shop's catalogue and customers, created through the command topics before the load.
pub struct Shop {
    pub skus: Vec<String>,
    pub restocked: Vec<i64>,
    pub customers: Vec<String>,
    pub deposits: Vec<i64>,
}

impl Shop {
    /// Restocks and funds everything, and returns once every balance and stock level shows.
    pub async fn open(stack: &Stack, orders: usize) -> Shop {
        // At most 3 lines of 2 units each per order.
        let plentiful_units = (orders as i64 * 6).max(100);
        let restocked: Vec<i64> =
            (0..PLENTIFUL_SKUS + SCARCE_SKUS).map(|i| if i < PLENTIFUL_SKUS { plentiful_units } else { SCARCE_UNITS }).collect();
        let skus: Vec<String> = (0..restocked.len()).map(|_| unique("chaos-sku")).collect();
        let deposits: Vec<i64> = (0..RICH_CUSTOMERS + POOR_CUSTOMERS).map(|i| if i < RICH_CUSTOMERS { RICH_DEPOSIT } else { POOR_DEPOSIT }).collect();
        let customers: Vec<String> = (0..deposits.len()).map(|_| unique("chaos-cust")).collect();
        for (sku, units) in skus.iter().zip(&restocked) {
            stack.send("stock.commands", sku, &commands::restock(sku, *units)).await;
        }
        for (customer, cents) in customers.iter().zip(&deposits) {
            stack.send("account.commands", customer, &commands::deposit(customer, *cents, "EUR")).await;
        }
        let ready = Duration::from_secs(120);
        for (sku, units) in skus.iter().zip(&restocked) {
            stack.eventually("inventory-svc", &format!("/stock/{sku}"), ready, |s| s["on_hand"] == *units).await;
        }
        for (customer, cents) in customers.iter().zip(&deposits) {
            stack.eventually("payment-svc", &format!("/accounts/{customer}"), ready, |a| a["balance_cents"] == *cents).await;
        }
        Shop { skus, restocked, customers, deposits }
    }
}

/// What kind of order this is meant to be; the saga decides what it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    Happy,
    /// Asks for a scarce SKU: reserved while units last, then out of stock.
    Scarce,
    /// From a customer who cannot pay.
    Declined,
    /// Ships to a country no carrier serves.
    Unserviceable,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub sku: usize,
    pub quantity: i64,
    pub unit_price_cents: i64,
}

/// One order and what the run did with it.
#[derive(Debug, Clone)]
pub struct Journey {
    pub order_id: String,
    pub scenario: Scenario,
    pub customer: usize,
    pub lines: Vec<Line>,
    /// The customer asks to cancel shortly after placing (racing the saga).
    pub wants_cancel: bool,
    /// The warehouse dispatches it once confirmed, and the carrier maybe delivers it.
    pub wants_dispatch: bool,
    pub wants_delivery: bool,
    /// Accepted (202) by `POST /orders`.
    pub placed: bool,
    pub cancel_sent: bool,
    pub dispatch_sent: bool,
    pub delivery_sent: bool,
    /// Place → first CONFIRMED or CANCELLED seen.
    pub settled_after: Option<Duration>,
    /// Answers that were neither 202 nor a retryable failure.
    pub errors: Vec<String>,
    /// Requests that were tried again (no answer, 5xx).
    pub retries: u32,
}

impl Journey {
    pub fn total_cents(&self) -> i64 {
        self.lines.iter().map(|line| line.quantity * line.unit_price_cents).sum()
    }

    /// Draws the `index`th order of a run from the run's seed (the same seed, the same orders).
    pub fn draw(seed: u64, index: usize) -> Journey {
        let mut rng = StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let scenario = match rng.random_range(0..100) {
            0..85 => Scenario::Happy,
            85..90 => Scenario::Scarce,
            90..95 => Scenario::Declined,
            _ => Scenario::Unserviceable,
        };
        let customer =
            if scenario == Scenario::Declined { RICH_CUSTOMERS + rng.random_range(0..POOR_CUSTOMERS) } else { rng.random_range(0..RICH_CUSTOMERS) };
        let mut skus: Vec<usize> = (0..rng.random_range(1..=3)).map(|_| rng.random_range(0..PLENTIFUL_SKUS)).collect();
        if scenario == Scenario::Scarce {
            skus[0] = PLENTIFUL_SKUS + rng.random_range(0..SCARCE_SKUS);
        }
        skus.sort_unstable();
        skus.dedup();
        let lines =
            skus.into_iter().map(|sku| Line { sku, quantity: rng.random_range(1..=2), unit_price_cents: rng.random_range(100..=5_000) }).collect();
        let wants_dispatch = rng.random_bool(0.3);
        Journey {
            order_id: unique("chaos-order"),
            scenario,
            customer,
            lines,
            wants_cancel: rng.random_bool(0.05),
            wants_dispatch,
            wants_delivery: wants_dispatch && rng.random_bool(0.5),
            placed: false,
            cancel_sent: false,
            dispatch_sent: false,
            delivery_sent: false,
            settled_after: None,
            errors: Vec::new(),
            retries: 0,
        }
    }

    fn place_order_body(&self, shop: &Shop) -> Value {
        let lines: Vec<Value> = self
            .lines
            .iter()
            .map(|line| json!({"sku": shop.skus[line.sku], "quantity": line.quantity, "unit_price_cents": line.unit_price_cents}))
            .collect();
        let country = if self.scenario == Scenario::Unserviceable { "AQ" } else { "DE" };
        json!({
            "order_id": self.order_id,
            "command_id": format!("{}-place", self.order_id),
            "customer_id": shop.customers[self.customer],
            "lines": lines,
            "currency": "EUR",
            "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": country},
        })
    }

    /// Walks the order through its journey until it is done or `deadline` passes.
    pub async fn run(mut self, stack: Arc<Stack>, shop: Arc<Shop>, deadline: Instant) -> Journey {
        let mut rng = StdRng::seed_from_u64(self.order_id.bytes().fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b)));
        let started = Instant::now();
        self.placed = self.submit(&stack, "order-svc", "/orders", &self.place_order_body(&shop), deadline).await;
        if !self.placed {
            return self;
        }
        if self.wants_cancel {
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..2_000))).await;
            let body = json!({"command_id": format!("{}-cancel", self.order_id), "reason": "changed my mind"});
            self.cancel_sent = self.submit(&stack, "order-svc", &format!("/orders/{}/cancel", self.order_id), &body, deadline).await;
        }
        let Some(status) = self.wait_for(&stack, "CONFIRMED,CANCELLED", deadline).await else { return self };
        self.settled_after = Some(started.elapsed());
        if status != "CONFIRMED" || !self.wants_dispatch {
            return self;
        }
        let body = json!({"command_id": format!("{}-dispatch", self.order_id)});
        self.dispatch_sent = self.submit(&stack, "shipping-svc", &format!("/shipments/{}/dispatch", self.order_id), &body, deadline).await;
        if !self.dispatch_sent || !self.wants_delivery {
            return self;
        }
        if self.wait_for(&stack, "SHIPPED,DELIVERED,CANCELLED", deadline).await.as_deref() != Some("SHIPPED") {
            return self;
        }
        let body = json!({"command_id": format!("{}-deliver", self.order_id)});
        self.delivery_sent = self.submit(&stack, "shipping-svc", &format!("/shipments/{}/deliver", self.order_id), &body, deadline).await;
        self
    }

    /// POSTs until answered 202 (true) or refused (false, an error); a missing answer or a
    /// 5xx is tried again with the same body, whose ids make the retry the same command.
    async fn submit(&mut self, stack: &Stack, service: &str, path: &str, body: &Value, deadline: Instant) -> bool {
        let mut pause = Duration::from_millis(100);
        loop {
            match stack.post(service, path, body).await {
                (202, _) => return true,
                (status, answer) if status != 0 && status < 500 => {
                    self.errors.push(format!("POST {path}: {status} {answer}"));
                    return false;
                }
                _ if Instant::now() > deadline => {
                    self.errors.push(format!("POST {path}: no 202 before the deadline"));
                    return false;
                }
                _ => {
                    self.retries += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// Long-polls the order view until it shows one of `statuses`; None after the deadline.
    async fn wait_for(&mut self, stack: &Stack, statuses: &str, deadline: Instant) -> Option<String> {
        let wanted: Vec<&str> = statuses.split(',').collect();
        let path = format!("/orders/{}?wait_for={statuses}&timeout_ms=5000", self.order_id);
        while Instant::now() < deadline {
            match stack.get("order-svc", &path).await {
                (200, view) if view["status"].as_str().is_some_and(|status| wanted.contains(&status)) => {
                    return view["status"].as_str().map(str::to_string);
                }
                // Waited the whole timeout_ms.
                (200, _) => {}
                // Not projected yet (an unknown order is answered at once), or no answer.
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        self.errors.push(format!("order never reached {statuses} before the deadline"));
        None
    }
}

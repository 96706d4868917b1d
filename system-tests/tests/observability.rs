//! Observability end to end: one order placed over HTTP is one trace across all five services
//! (spans received by an OTLP/HTTP collector inside the test), every service's `/metrics`
//! shows the pipeline working, and consumer lag rises while a service is paused and drains
//! after it resumes.
use serde_json::{Value, json};
use std::{
    collections::{HashMap, HashSet},
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Stack, commands::*, otlp::Collector, services, unique};

const WAIT: Duration = Duration::from_secs(60);

struct Observed {
    stack: Stack,
    collector: Collector,
}

fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| {
        let collector = Collector::start();
        let endpoint = collector.endpoint.clone();
        // Export batches every 200 ms instead of every 5 s: the test waits less. A fresh stack's
        // projections replay every event already on the shared broker, one span each: the
        // export queue must hold them all, or spans of the order under test are dropped.
        let stack = Stack::start(
            "observability",
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2048"),
            ],
        );
        Observed { stack, collector }
    })
}

/// A SKU with stock and a customer with money.
async fn stocked(stack: &Stack) -> (String, String) {
    stack.stocked(100, 1_000_000).await
}

/// `POST /orders` on order-svc; returns the order id.
async fn place_over_http(stack: &Stack, customer: &str, sku: &str) -> String {
    let order_id = unique("order");
    let request = json!({
        "order_id": order_id,
        "customer_id": customer,
        "currency": "EUR",
        "lines": [{"sku": sku, "quantity": 1, "unit_price_cents": 1000}],
        "shipping_address": {"name": "Ada Lovelace", "street": "Main 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
    });
    // A client whose POST timed out retries it with the same command_id, which the service
    // deduplicates: under a loaded CI machine an acknowledgement once took longer than the
    // test client's 10 s timeout.
    let mut request = request;
    request["command_id"] = json!(unique("cmd"));
    let (status, body) = stack.post_answered("order-svc", "/orders", &request, 3).await;
    assert_eq!(status, 202, "POST /orders answered {body}");
    order_id
}

#[tokio::test(flavor = "multi_thread")]
async fn one_order_over_http_is_one_trace_across_all_five_services() {
    let Observed { stack, collector } = observed();
    let (sku, customer) = stocked(stack).await;
    let order_id = place_over_http(stack, &customer, &sku).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.eventually("notify-svc", &format!("/notifications?order_id={order_id}"), WAIT, |n| n.as_array().is_some_and(|a| !a.is_empty())).await;

    // The trace is the one of the HTTP command; wait until every service's spans of it are in
    // and every parent link resolves (exports arrive in batches, in any order).
    let deadline = Instant::now() + WAIT;
    let (trace, root) = loop {
        let spans = collector.spans();
        let send = spans.iter().find(|s| s.name == "send PlaceOrder" && s.attributes.get("aggregate_id") == Some(&order_id));
        if let Some(send) = send {
            let trace: Vec<_> = spans.iter().filter(|s| s.trace_id == send.trace_id).cloned().collect();
            let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
            let traced: HashSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
            let roots: Vec<_> = trace.iter().filter(|s| s.parent_span_id.is_empty()).collect();
            let dangling: Vec<String> = trace
                .iter()
                .filter(|s| !s.parent_span_id.is_empty() && !ids.contains(s.parent_span_id.as_str()))
                .map(|s| format!("{} {} (parent {})", s.service, s.name, s.parent_span_id))
                .collect();
            if services().iter().all(|s| traced.contains(s)) && dangling.is_empty()
                && roots.len() == 1
                // Projections write in the same trace (they may still be catching up).
                && trace.iter().any(|s| s.service == "order-svc" && s.name.starts_with("project "))
            {
                let root = roots[0].clone();
                break (trace, root);
            }
            let elsewhere: Vec<String> = spans
                .iter()
                .filter(|s| dangling.iter().any(|d| d.contains(&s.span_id)))
                .map(|s| format!("{} {} {} {} {:?}", s.service, s.name, s.trace_id, s.span_id, s.attributes))
                .collect();
            assert!(
                Instant::now() < deadline,
                "parents elsewhere: {elsewhere:?}; trace {} incomplete: services {traced:?}, {} roots, dangling parents: {dangling:?}",
                send.trace_id,
                roots.len()
            );
        } else {
            assert!(Instant::now() < deadline, "no span for sending PlaceOrder {order_id} among {} spans", spans.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // The root is order-svc's HTTP request; the command is sent inside it.
    assert_eq!(root.service, "order-svc");
    assert_eq!(root.name, "POST /orders");
    let by_id: HashMap<&str, _> = trace.iter().map(|s| (s.span_id.as_str(), s)).collect();
    // Every Kafka hop is a parent link between services: each of the four other services has a
    // span whose parent lives in another process.
    for service in services().iter().filter(|s| **s != "order-svc") {
        assert!(
            trace.iter().any(|s| s.service == *service && by_id.get(s.parent_span_id.as_str()).is_some_and(|p| p.service != *service)),
            "{service} has no span continuing another service's span"
        );
    }
    // The chain of the first hop: HTTP → send → order-svc decides PlaceOrder → inventory-svc's
    // policy reacts to OrderPlaced.
    let names: Vec<String> = trace.iter().map(|s| format!("{} {}", s.service, s.name)).collect();
    let place = trace
        .iter()
        .find(|s| s.service == "order-svc" && s.name == "order PlaceOrder")
        .unwrap_or_else(|| panic!("no order-svc span \"order PlaceOrder\" in {names:?}"));
    let send = by_id[place.parent_span_id.as_str()];
    assert_eq!(send.name, "send PlaceOrder");
    assert_eq!(send.parent_span_id, root.span_id);
    assert_eq!(place.attributes.get("aggregate_id"), Some(&order_id));
    assert!(
        trace.iter().any(|s| s.service == "inventory-svc" && s.parent_span_id == place.span_id),
        "no inventory-svc span continues order-svc's PlaceOrder span"
    );

    // The restock went in like kcat's, without `traceparent`: its command span is a new root.
    let deadline = Instant::now() + WAIT;
    loop {
        let spans = collector.spans();
        if let Some(restock) = spans.iter().find(|s| s.name == "stock RestockItem" && s.attributes.get("aggregate_id") == Some(&sku)) {
            assert!(restock.parent_span_id.is_empty(), "a command without traceparent continued a trace: {restock:?}");
            assert_ne!(restock.trace_id, root.trace_id);
            break;
        }
        assert!(Instant::now() < deadline, "no span for the kcat-style RestockItem of {sku}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Samples of one metric: (label text, value).
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let (labels, value) = rest.split_once('}')?;
                    (labels.to_string(), value)
                }
                None if rest.starts_with(' ') => (String::new(), rest),
                None => return None,
            };
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

fn total(text: &str, name: &str, label_filter: &str) -> f64 {
    samples(text, name).iter().filter(|(labels, _)| labels.contains(label_filter)).map(|(_, v)| v).sum()
}

/// Polls `/metrics` of `service` until `done` holds. A failed scrape counts as "not yet": a
/// fresh stack's projections replay the shared broker's history and can keep a service busy.
async fn metrics_until(stack: &Stack, service: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, text) = stack.get_text(service, "/metrics").await;
        if status == 200 && done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{service}: {what} not seen within {WAIT:?}; last scrape:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn admin(stack: &Stack, service: &str, action: &str, kind: &str) {
    let (status, body) = stack.post(service, &format!("/admin/{action}?kind={kind}"), &Value::Null).await;
    assert_eq!(status, 200, "{service} /admin/{action}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_the_pipeline_and_lag_rises_while_paused_and_drains_after() {
    let Observed { stack, .. } = observed();
    let (sku, customer) = stocked(stack).await;
    let order_id = place_over_http(stack, &customer, &sku).await;
    stack.order_reaches(&order_id, "CONFIRMED").await;
    stack.eventually("notify-svc", &format!("/notifications?order_id={order_id}"), WAIT, |n| n.as_array().is_some_and(|a| !a.is_empty())).await;
    stack.eventually("shipping-svc", &format!("/shipments/{order_id}"), WAIT, |_| true).await;

    for service in services() {
        metrics_until(stack, service, "every metric with a non-zero value", |text| {
            total(text, "orderflow_commands_total", "outcome=\"accepted\"") > 0.0
                && total(text, "orderflow_events_appended_total", "") > 0.0
                && total(text, "orderflow_decision_duration_seconds_count", "") > 0.0
                && total(text, "orderflow_batch_duration_seconds_count", "kind=\"command\"") > 0.0
                && total(text, "orderflow_batch_duration_seconds_count", "kind=\"policy\"") > 0.0
                && total(text, "orderflow_batch_duration_seconds_count", "kind=\"projection\"") > 0.0
                && !samples(text, "orderflow_consumer_lag").is_empty()
                && !samples(text, "orderflow_projection_checkpoint_age_seconds").is_empty()
                && total(text, "orderflow_http_requests_total", "status=\"200\"") > 0.0
                && total(text, "orderflow_http_request_duration_seconds_count", "") > 0.0
                && total(text, "orderflow_writer_aggregates", "where=\"memory\"") > 0.0
                && samples(text, "orderflow_writer_aggregates").iter().any(|(labels, _)| labels.contains("where=\"disk\""))
        })
        .await;
    }
    metrics_until(stack, "order-svc", "saga metrics", |text| {
        total(text, "orderflow_saga_duration_seconds_count", "outcome=\"confirmed\"") > 0.0
            && total(text, "orderflow_saga_duration_seconds_sum", "outcome=\"confirmed\"") > 0.0
            && total(text, "orderflow_orders_total", "status=\"CONFIRMED\"") > 0.0
            && total(text, "orderflow_orders_total", "status=\"PENDING\"") > 0.0
            && total(text, "orderflow_orders", "status=\"CONFIRMED\"") > 0.0
            && total(text, "orderflow_http_requests_total", "route=\"/orders\",status=\"202\"") > 0.0
    })
    .await;
    // Once the writer and the order view have caught up with the shared log (the first order
    // is in the view), an order's own commands and events skip their fetch: the writer and the
    // view take them from the delivery reports.
    let second = place_over_http(stack, &customer, &sku).await;
    stack.order_reaches(&second, "CONFIRMED").await;
    metrics_until(stack, "order-svc", "records handled ahead of their fetch", |text| {
        total(text, "orderflow_records_ahead_of_fetch_total", "kind=\"command\"") > 0.0
            && total(text, "orderflow_records_ahead_of_fetch_total", "kind=\"projection\",loop=\"orders\"") > 0.0
    })
    .await;

    // Pause inventory-svc's command processor and order-svc's projections, then give both work.
    admin(stack, "inventory-svc", "pause", "command").await;
    admin(stack, "order-svc", "pause", "projection").await;
    let paused_sku = unique("sku");
    let mut restocks = 0;
    for _ in 0..3 {
        stack.send("stock.commands", &paused_sku, &restock(&paused_sku, 1)).await;
        restocks += 1;
    }
    let paused_order = place_over_http(stack, &customer, &sku).await;
    // Likewise a command processor waiting for records when the pause came still takes that
    // one batch, and with long fetch waits it can hold every restock sent so far: one more
    // restock a second until the paused processor's lag shows (a few at most).
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, text) = stack.get_text("inventory-svc", "/metrics").await;
        if status == 200 && total(&text, "orderflow_consumer_lag", "kind=\"command\"") > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline && restocks < 13, "inventory-svc: command lag while paused not seen; last scrape:\n{text}");
        stack.send("stock.commands", &paused_sku, &restock(&paused_sku, 1)).await;
        restocks += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // A projection that was waiting for records when the pause came still takes that one batch
    // (here: the paused order's only event) before it pauses. Every further order stays
    // unconsumed, so one more order a second until the lag shows (a few at most).
    let paused_lag = |text: &str| {
        total(text, "orderflow_consumer_lag", "kind=\"projection\"") > 0.0 && total(text, "orderflow_projection_checkpoint_age_seconds", "") > 0.0
    };
    let deadline = Instant::now() + WAIT;
    let mut extra_orders = Vec::new();
    loop {
        let (status, text) = stack.get_text("order-svc", "/metrics").await;
        if status == 200 && paused_lag(&text) {
            break;
        }
        assert!(
            Instant::now() < deadline && extra_orders.len() < 10,
            "order-svc: projection lag and checkpoint age while paused not seen; last scrape:\n{text}"
        );
        extra_orders.push(place_over_http(stack, &customer, &sku).await);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    admin(stack, "inventory-svc", "resume", "command").await;
    admin(stack, "order-svc", "resume", "projection").await;
    stack.eventually("inventory-svc", &format!("/stock/{paused_sku}"), WAIT, |s| s["on_hand"] == restocks).await;
    for order_id in std::iter::once(&paused_order).chain(&extra_orders) {
        stack.order_reaches(order_id, "CONFIRMED").await;
    }
    for service in ["inventory-svc", "order-svc"] {
        metrics_until(stack, service, "every lag back to zero", |text| {
            let lag = samples(text, "orderflow_consumer_lag");
            !lag.is_empty()
                && lag.iter().all(|(_, v)| *v == 0.0)
                && samples(text, "orderflow_projection_checkpoint_age_seconds").iter().all(|(_, v)| *v == 0.0)
        })
        .await;
    }
}

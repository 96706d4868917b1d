//! Live order status over Server-Sent Events, through the five real services: one order's
//! stream follows it from its view to DELIVERED and `end`, a reconnect with `Last-Event-ID`
//! gets exactly the timeline entries after that id, and a customer's stream sees each of its
//! orders move (and ends when order-svc stops, so a stop is not held up by open streams).
use serde_json::Value;
use std::{
    collections::HashSet,
    sync::OnceLock,
    time::{Duration, Instant},
};
use system_tests::{Stack, commands::*, one_at_a_time, unique};

const WAIT: Duration = Duration::from_secs(60);

fn stack() -> &'static Stack {
    static STACK: OnceLock<Stack> = OnceLock::new();
    STACK.get_or_init(|| Stack::start("order-events-stream", &[]))
}

/// One event of a `text/event-stream`.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Value,
}

/// Reads a streamed response event by event, parsing the SSE lines by hand.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    /// Opens `path` on order-svc; panics unless it answers 200 with `text/event-stream`.
    async fn open(stack: &Stack, path: &str, last_event_id: Option<&str>) -> SseReader {
        let response = request(stack, path, last_event_id).await;
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert!(content_type.starts_with("text/event-stream"), "{path}: {content_type}");
        SseReader { response, buffer: String::new() }
    }

    /// The next event, or `None` once the server closed the stream; panics at the deadline.
    async fn next(&mut self, deadline: Instant) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_block(&block) {
                    return Some(event);
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event before the deadline; unparsed: {:?}", self.buffer))
                .expect("stream readable");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).expect("utf-8 stream")),
                None => {
                    assert!(self.buffer.trim().is_empty(), "stream closed mid-event: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// Every event until the stream closes.
    async fn until_closed(&mut self, deadline: Instant) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next(deadline).await {
            events.push(event);
        }
        events
    }
}

/// A block of `field: value` lines; comments (keep-alives) and empty blocks give `None`.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "" => {}
            "event" => event = Some(value.to_string()),
            "id" => id = Some(value.to_string()),
            "data" => data.push(value),
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    let event = event?;
    let data = serde_json::from_str(&data.join("\n")).unwrap_or_else(|e| panic!("data of {event} is not JSON ({e}): {block:?}"));
    Some(SseEvent { event, id, data })
}

/// A client with no overall timeout (the stack's ends every request after 10 s): reads are
/// bounded by each test's deadlines instead.
fn streaming_client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).pool_max_idle_per_host(0).build().expect("client"))
}

async fn request(stack: &Stack, path: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = streaming_client().get(stack.url("order-svc", path));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.expect("order-svc answers")
}

fn event_ids(events: &[SseEvent]) -> Vec<String> {
    events.iter().filter(|e| e.event == "timeline").map(|e| e.data["event_id"].as_str().expect("event_id").to_string()).collect()
}

async fn timeline_ids(stack: &Stack, order_id: &str) -> Vec<String> {
    let timeline = stack.eventually("order-svc", &format!("/orders/{order_id}/timeline"), WAIT, |t| t.is_array()).await;
    timeline.as_array().into_iter().flatten().map(|e| e["event_id"].as_str().expect("event_id").to_string()).collect()
}

fn assert_no_repeats(ids: &[String], what: &str) {
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "{what} repeats an entry: {ids:?}");
}

/// Reads until a `view` shows `status`; returns what was read on the way, that view included.
async fn until_status(stream: &mut SseReader, status: &str, deadline: Instant) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let event = stream.next(deadline).await.unwrap_or_else(|| panic!("stream closed before {status}: {events:?}"));
        assert_ne!(event.event, "end", "ended before {status}: {events:?}");
        let reached = event.event == "view" && event.data["status"] == status;
        events.push(event);
        if reached {
            return events;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_stream_follows_the_order_to_its_end_and_resumes_exactly_after_any_entry() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (sku, customer) = stack.stocked(5, 10_000).await;
    // With payment-svc's commands held, the order waits in STOCK_RESERVED: what comes after
    // reaches the stream live, pushed by the projection.
    let (status, _) = stack.post("payment-svc", "/admin/pause?kind=command", &Value::Null).await;
    assert_eq!(status, 200);
    let order_id = unique("order");
    stack.send("order.commands", &order_id, &place_order(&order_id, &customer, &[(&sku, 1, 700)], "EUR", "DE")).await;
    stack.order_reaches(&order_id, "STOCK_RESERVED").await;

    let path = format!("/orders/{order_id}/events");
    let deadline = Instant::now() + WAIT;
    let mut stream = SseReader::open(stack, &path, None).await;
    let first = stream.next(deadline).await.expect("a first event");
    assert_eq!((first.event.as_str(), first.id.as_deref()), ("view", None), "the view first, without an id: {first:?}");
    assert_eq!((first.data["order_id"].as_str(), first.data["status"].as_str()), (Some(order_id.as_str()), Some("STOCK_RESERVED")));
    let mut events = vec![first];

    let (status, _) = stack.post("payment-svc", "/admin/resume?kind=command", &Value::Null).await;
    assert_eq!(status, 200);
    events.extend(until_status(&mut stream, "CONFIRMED", deadline).await);
    stack.send("shipment.commands", &order_id, &dispatch(&order_id)).await;
    events.extend(until_status(&mut stream, "SHIPPED", deadline).await);
    stack.send("shipment.commands", &order_id, &deliver(&order_id)).await;
    events.extend(until_status(&mut stream, "DELIVERED", deadline).await);
    let rest = stream.until_closed(deadline).await;
    assert_eq!(rest.last().map(|e| e.event.as_str()), Some("end"), "DELIVERED ends the stream: {rest:?}");
    assert!(rest.iter().all(|e| e.event == "timeline" || e.event == "end"), "{rest:?}");
    events.extend(rest);

    // Views are states (one batch may move an order twice); the entries are every event.
    let types: Vec<&str> = events.iter().filter(|e| e.event == "timeline").filter_map(|e| e.data["type"].as_str()).collect();
    for event_type in ["OrderPlaced", "StockReserved", "OrderPaid", "OrderConfirmed", "OrderShipped", "OrderDelivered"] {
        assert!(types.contains(&event_type), "no {event_type} entry streamed: {types:?}");
    }
    let sent = event_ids(&events);
    assert_no_repeats(&sent, "the first stream");
    let timeline = timeline_ids(stack, &order_id).await;
    for id in &sent {
        assert!(timeline.contains(id), "{id} streamed but not in the timeline {timeline:?}");
    }
    let ids: Vec<&str> = events.iter().filter(|e| e.event == "timeline").map(|e| e.id.as_deref().expect("a timeline event has an id")).collect();
    // No count beyond the order's own six: other services' entries (stock, payment, shipment,
    // notifications) come through their own projections and may land after DELIVERED has
    // closed the stream; the resumes below then must deliver them.

    // Resumed from an entry in the middle, and from the last: the current view, then exactly
    // the timeline entries after that id (every one the timeline had before the resume and
    // none sent up to the id), then `end`.
    for k in [sent.len() / 2, sent.len() - 1] {
        let before = timeline_ids(stack, &order_id).await;
        let resumed = SseReader::open(stack, &path, Some(ids[k])).await.until_closed(Instant::now() + WAIT).await;
        let after = timeline_ids(stack, &order_id).await;
        assert_eq!(resumed.first().map(|e| (e.event.as_str(), e.data["status"].clone())), Some(("view", "DELIVERED".into())), "{resumed:?}");
        assert_eq!(resumed.last().map(|e| e.event.as_str()), Some("end"), "{resumed:?}");
        let again = event_ids(&resumed);
        assert_no_repeats(&again, "the resumed stream");
        let had: HashSet<&String> = sent[..=k].iter().collect();
        for id in &again {
            assert!(!had.contains(id), "{id} was sent before {} and again after it", ids[k]);
            assert!(after.contains(id), "{id} is not in the timeline");
        }
        for id in before.iter().filter(|id| !had.contains(id)) {
            assert!(again.contains(id), "resumed after {} without {id}: got {again:?}, timeline {before:?}", ids[k]);
        }
    }

    let (status, body) = stack.get("order-svc", &format!("/orders/{}/events", unique("no-such-order"))).await;
    assert_eq!((status, body["status"].as_i64()), (404, Some(404)), "{body}");
    let response = request(stack, &path, Some("order.events:~:not-a-version")).await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("JSON error");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("Last-Event-ID")), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_customer_stream_sees_every_order_of_the_customer_and_ends_when_order_svc_stops() {
    let stack = stack();
    let _alone = one_at_a_time().lock().await;
    let (status, body) = stack.get("order-svc", "/orders/events?limit=0").await;
    assert_eq!((status, body["status"].as_i64()), (400, Some(400)), "{body}");

    let (sku, customer) = stack.stocked(5, 10_000).await;
    let deadline = Instant::now() + WAIT;
    // Opened before the customer has any order: new orders appear on it.
    let mut stream = SseReader::open(stack, &format!("/orders/events?customer_id={customer}"), None).await;
    // And the most recent orders of anyone, as an operator's console follows them.
    let mut recent = SseReader::open(stack, "/orders/events?limit=20", None).await;
    let orders = [unique("order"), unique("order")];
    for order_id in &orders {
        stack.send("order.commands", order_id, &place_order(order_id, &customer, &[(&sku, 1, 700)], "EUR", "DE")).await;
    }
    let mut confirmed = HashSet::new();
    let mut views = Vec::new();
    while confirmed.len() < orders.len() {
        let event = stream.next(deadline).await.unwrap_or_else(|| panic!("customer stream closed: {views:?}"));
        assert_eq!((event.event.as_str(), event.id.as_deref()), ("view", None), "{event:?}");
        assert_eq!(event.data["customer_id"], customer.as_str(), "{event:?}");
        let order_id = event.data["order_id"].as_str().expect("order_id").to_string();
        assert!(orders.contains(&order_id), "{order_id} is not one of the customer's");
        if event.data["status"] == "CONFIRMED" {
            confirmed.insert(order_id);
        }
        views.push(event.data);
    }
    for order_id in &orders {
        let statuses: Vec<&str> = views.iter().filter(|v| v["order_id"] == order_id.as_str()).filter_map(|v| v["status"].as_str()).collect();
        assert!(statuses.len() >= 2 && statuses[0] != "CONFIRMED", "{order_id} seen moving, not only at its end: {statuses:?}");
    }
    let mut recent_confirmed = HashSet::new();
    while recent_confirmed.len() < orders.len() {
        let event = recent.next(deadline).await.expect("the recent-orders stream shows both new orders reaching CONFIRMED");
        assert_eq!((event.event.as_str(), event.id.as_deref()), ("view", None), "{event:?}");
        let order_id = event.data["order_id"].as_str().expect("order_id").to_string();
        if orders.contains(&order_id) && event.data["status"] == "CONFIRMED" {
            recent_confirmed.insert(order_id);
        }
    }
    drop(recent);

    // The customer stream does not end by itself, but it does not hold up a graceful stop.
    let stopping = Instant::now();
    let stop = tokio::task::spawn_blocking(move || stack.stop("order-svc"));
    assert!(stream.until_closed(Instant::now() + Duration::from_secs(20)).await.iter().all(|e| e.event == "view"));
    stop.await.expect("stop");
    assert!(stopping.elapsed() < Duration::from_secs(20), "order-svc took {:?} to stop with a stream open", stopping.elapsed());
    stack.start_service("order-svc");
}

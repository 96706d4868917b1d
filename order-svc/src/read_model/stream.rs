//! Live order status over Server-Sent Events: `GET /orders/{id}/events` (one order, resumable
//! with `Last-Event-ID`) and `GET /orders/events` (every order of a customer, or the most
//! recent orders).
//!
//! Pushed from projection progress: a stream sleeps on the order view's progress watch (the
//! one `GET /orders/{id}?wait_for=` waits on) and reads the read model only after the
//! projection has committed a batch; between batches it costs nothing but a keep-alive comment
//! every [`KEEP_ALIVE`].
//!
//! Event types: `view` (an [`OrderView`], whenever it differs from the last one sent),
//! `timeline` (one [`TimelineEntry`]) and `end` (the order is final; the stream closes).
use std::{collections::BTreeMap, convert::Infallible, sync::OnceLock, time::Duration};

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::HeaderMap,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use runtime::{
    Progress,
    http::{ApiError, ProjectionProgress, ReadDb},
};
use serde::Deserialize;
use sqlx::AnyPool;
use tokio::sync::watch;
use utoipa::IntoParams;

use super::PROJECTION;
use super::queries::{load_customer_orders, load_order, load_recent_orders, load_timeline};
use super::view::{OrderView, TimelineEntry};
use crate::order::OrderStatus;

/// Often enough for proxies that close idle connections after 30 s or more.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Longer `Last-Event-ID`s are refused: a real one names a handful of aggregates.
pub const MAX_LAST_EVENT_ID_CHARS: usize = 4096;

const LAST_EVENT_ID: &str = "last-event-id";

/// Where a client is in one order's timeline: for each aggregate the order's entries come from
/// (`topic` and `aggregate_id`: the order itself, its shipment, the customer's account and
/// notifications, each SKU's stock), the highest version it has been sent.
///
/// Why this, and not a position in the timeline's sort order: the order view projects five
/// topics, each at its own pace, so an entry can be committed after entries that sort after it
/// (a payment read late sorts before the order events it caused). What does hold is the
/// version rule: the projection applies each aggregate's events one version after the other,
/// so an aggregate's entries are committed in version order. "Every entry of each aggregate up
/// to this version" therefore names exactly what was sent, and resuming sends every entry not
/// covered: no gaps, no repeats, and the same after `scripts/replay` (the versions are the
/// log's). It is also short: one item per aggregate, not per entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineCursor(BTreeMap<(String, String), i64>);

/// A `Last-Event-ID` that is not a cursor of this order's stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCursor {
    #[error("Last-Event-ID is longer than {MAX_LAST_EVENT_ID_CHARS} characters")]
    TooLong,
    #[error("Last-Event-ID item {0:?} is not topic:aggregate:version")]
    Item(String),
    #[error("Last-Event-ID names {0}:{1} twice")]
    Repeated(String, String),
}

impl TimelineCursor {
    /// Whether the entry was sent before this position.
    pub fn covers(&self, entry: &TimelineEntry) -> bool {
        self.0.get(&(entry.topic.clone(), entry.aggregate_id.clone())).is_some_and(|version| entry.version <= *version)
    }

    pub fn advance(&mut self, entry: &TimelineEntry) {
        let version = self.0.entry((entry.topic.clone(), entry.aggregate_id.clone())).or_insert(0);
        *version = (*version).max(entry.version);
    }

    /// The SSE id: `topic:aggregate:version` items joined by `,`, each part percent-encoded,
    /// with the order's own id written `~` (it is in the URL already). Opaque to clients.
    pub fn encode(&self, order_id: &str) -> String {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|((topic, aggregate), version)| {
                let aggregate = if aggregate == order_id { "~".to_string() } else { percent_encode(aggregate) };
                format!("{}:{aggregate}:{version}", percent_encode(topic))
            })
            .collect();
        items.join(",")
    }

    /// Reads an id [`Self::encode`] wrote; empty is the start of the timeline.
    pub fn parse(text: &str, order_id: &str) -> Result<Self, InvalidCursor> {
        if text.len() > MAX_LAST_EVENT_ID_CHARS {
            return Err(InvalidCursor::TooLong);
        }
        let mut cursor = TimelineCursor::default();
        for item in text.split(',').filter(|item| !item.is_empty()) {
            let invalid = || InvalidCursor::Item(item.to_string());
            let mut parts = item.split(':');
            let (Some(topic), Some(aggregate), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                return Err(invalid());
            };
            let topic = percent_decode(topic).filter(|topic| !topic.is_empty()).ok_or_else(invalid)?;
            let aggregate = if aggregate == "~" { Some(order_id.to_string()) } else { percent_decode(aggregate) };
            let aggregate = aggregate.filter(|aggregate| !aggregate.is_empty()).ok_or_else(invalid)?;
            // Digits only: `+1` or `01` would be a second spelling of the same position.
            let version = Some(version)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !v.starts_with('0'))
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(invalid)?;
            if cursor.0.insert((topic.clone(), aggregate.clone()), version).is_some() {
                return Err(InvalidCursor::Repeated(topic, aggregate));
            }
        }
        Ok(cursor)
    }
}

/// Letters, digits, `.`, `-` and `_` as they are; every other byte as `%XX`, so an id has no
/// separator, no `~` and nothing a header cannot carry.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_') => {
                decoded.push(byte);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(decoded).ok()
}

/// The entries of `timeline` the cursor does not cover, in the timeline's order.
pub fn unsent(timeline: Vec<TimelineEntry>, cursor: &TimelineCursor) -> Vec<TimelineEntry> {
    timeline.into_iter().filter(|entry| !cursor.covers(entry)).collect()
}

/// DELIVERED and CANCELLED: the statuses the Order aggregate never leaves. (CONFIRMED is not
/// one: a confirmed order still ships, or is cancelled when a cancellation reaches shipping in
/// time.)
pub fn is_final(status: &str) -> bool {
    matches!(OrderStatus::named(status), Some(OrderStatus::Delivered | OrderStatus::Cancelled))
}

/// What one look at the read model sends: the view if it changed, then each entry not sent
/// yet (with the cursor after it as its id), then `end` if the order is final.
#[derive(Debug, Clone, PartialEq)]
// A handful live at a time, each sent at once: boxing the view would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Outgoing {
    View(OrderView),
    Timeline { entry: TimelineEntry, id: String },
    End,
}

/// Pure: given what was sent (`last_view`, `cursor`) and what the read model holds now, what
/// to send; updates both.
pub fn next_events(
    order_id: &str,
    last_view: &mut Option<OrderView>,
    cursor: &mut TimelineCursor,
    view: OrderView,
    timeline: Vec<TimelineEntry>,
) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let finished = is_final(&view.status);
    if last_view.as_ref() != Some(&view) {
        *last_view = Some(view.clone());
        out.push(Outgoing::View(view));
    }
    for entry in unsent(timeline, cursor) {
        cursor.advance(&entry);
        out.push(Outgoing::Timeline { id: cursor.encode(order_id), entry });
    }
    if finished {
        out.push(Outgoing::End);
    }
    out
}

fn sse_event(outgoing: &Outgoing) -> Event {
    match outgoing {
        Outgoing::View(view) => json_event("view", view),
        Outgoing::Timeline { entry, id } => json_event("timeline", entry).id(id.as_str()),
        Outgoing::End => Event::default().event("end").data("{}"),
    }
}

fn json_event(kind: &str, value: &impl serde::Serialize) -> Event {
    Event::default().event(kind).json_data(value).unwrap_or_else(|error| {
        // Only strings, numbers and lists: serialising them does not fail.
        tracing::error!(%error, kind, "an order event did not serialise");
        Event::default().event(kind).data("null")
    })
}

/// Resolves once the process is asked to stop. axum's graceful shutdown waits for every open
/// response, so a stream that did not end would hold the process up until it is killed.
async fn stopping() {
    static STOP: OnceLock<watch::Receiver<bool>> = OnceLock::new();
    let mut stop = STOP
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                stop_signal().await;
                let _ = tx.send(true);
            });
            rx
        })
        .clone();
    if stop.wait_for(|stop| *stop).await.is_err() {
        // The listener's runtime is gone (only in tests with several runtimes): nothing will stop us.
        std::future::pending::<()>().await;
    }
}

async fn stop_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Waits until the projection commits again; false when the stream should end instead (the
/// process stops, or the projection's progress is gone).
async fn committed(changes: &mut Option<Progress>) -> bool {
    let Some(changes) = changes.as_mut() else { return false };
    tokio::select! {
        changed = changes.changed() => {
            changes.borrow_and_update();
            changed.is_ok()
        }
        () = stopping() => false,
    }
}

fn progress_of(progress: &ProjectionProgress) -> Option<Progress> {
    let mut changes = progress.0.get(PROJECTION).cloned();
    // Marked seen before the first read: a batch committed after it wakes the stream.
    if let Some(changes) = changes.as_mut() {
        changes.borrow_and_update();
    }
    changes
}

fn sse(events: impl Stream<Item = Event> + Send + 'static) -> Response {
    Sse::new(events.map(Ok::<_, Infallible>)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response()
}

/// The `Last-Event-ID` header as a cursor: absent or empty is the start.
fn last_event_id(headers: &HeaderMap, order_id: &str) -> Result<TimelineCursor, ApiError> {
    let mut values = headers.get_all(LAST_EVENT_ID).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return if headers.contains_key(LAST_EVENT_ID) {
            Err(ApiError::bad_request("Last-Event-ID given more than once"))
        } else {
            Ok(TimelineCursor::default())
        };
    };
    let text = value.to_str().map_err(|_| ApiError::bad_request("Last-Event-ID must be printable ASCII"))?;
    TimelineCursor::parse(text.trim(), order_id).map_err(|error| ApiError::bad_request(error.to_string()))
}

struct OrderStream {
    pool: AnyPool,
    order_id: String,
    changes: Option<Progress>,
    cursor: TimelineCursor,
    last_view: Option<OrderView>,
    first_view: Option<OrderView>,
    done: bool,
}

impl OrderStream {
    /// The next events to send, after the projection's next commit (at once the first time);
    /// `None` ends the stream.
    async fn next(&mut self) -> Option<Vec<Event>> {
        while !self.done {
            let view = match self.first_view.take() {
                Some(view) => view,
                None => {
                    if !committed(&mut self.changes).await {
                        return None;
                    }
                    match load_order(&self.pool, &self.order_id).await {
                        Ok(Some(view)) => view,
                        // Gone from the view: only a replay from another log does that.
                        Ok(None) => return None,
                        Err(error) => return self.failed(error),
                    }
                }
            };
            // Read after the view, so the timeline holds at least what the view shows.
            let timeline = match load_timeline(&self.pool, &self.order_id).await {
                Ok(timeline) => timeline,
                Err(error) => return self.failed(error),
            };
            let outgoing = next_events(&self.order_id, &mut self.last_view, &mut self.cursor, view, timeline);
            self.done = outgoing.last() == Some(&Outgoing::End);
            if !outgoing.is_empty() {
                return Some(outgoing.iter().map(sse_event).collect());
            }
        }
        None
    }

    fn failed(&mut self, error: sqlx::Error) -> Option<Vec<Event>> {
        // The client reconnects with its Last-Event-ID and misses nothing.
        tracing::warn!(%error, order_id = %self.order_id, "order event stream ended: read-model query failed");
        None
    }
}

/// The order's live status: its current view first, then every timeline entry not sent yet
/// and every new view as the projection commits them, until the order is DELIVERED or
/// CANCELLED (`end`, then the stream closes).
///
/// Every `timeline` event has an id; reconnecting with it as `Last-Event-ID` (as EventSource
/// does) sends the current view again and then exactly the entries after it, none twice.
/// `view` and `end` carry no id, so they never move a client's position.
#[utoipa::path(get, path = "/orders/{id}/events", tag = "queries",
    params(("id" = String, Path, description = "The order"),
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last `timeline` event received: resume after it")),
    responses(
        (status = 200, description = "`text/event-stream` of `view` (an OrderView), `timeline` (a TimelineEntry) and, once the order is DELIVERED or CANCELLED, `end`",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "`Last-Event-ID` is not an id of this stream", body = ApiError),
        (status = 404, description = "No such order (yet)", body = ApiError)))]
pub async fn order_events(
    State(ReadDb(pool)): State<ReadDb>,
    State(progress): State<ProjectionProgress>,
    Path(order_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cursor = last_event_id(&headers, &order_id)?;
    let changes = progress_of(&progress);
    let Some(view) = load_order(&pool, &order_id).await? else { return Err(ApiError::not_found("order", &order_id)) };
    let state = OrderStream { pool, order_id, changes, cursor, last_view: None, first_view: Some(view), done: false };
    let events = stream::unfold(state, |mut state| async move { state.next().await.map(|events| (events, state)) }).flat_map(stream::iter);
    Ok(sse(events))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrdersEventsParams {
    /// The customer whose orders to follow: all of them. Absent: the most recent orders.
    pub customer_id: Option<String>,
    /// Without `customer_id`: how many of the most recent orders to follow, 1 to 1000,
    /// default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Which orders a views stream follows.
enum Followed {
    Customer(String),
    /// The `n` most recent: new orders come in and the oldest drop out.
    Recent(i64),
}

/// A views stream's memory of what it sent: the last view of each order it follows.
struct ViewsStream {
    pool: AnyPool,
    followed: Followed,
    changes: Option<Progress>,
    sent: std::collections::HashMap<String, OrderView>,
    first: bool,
}

impl ViewsStream {
    async fn next(&mut self) -> Option<Vec<Event>> {
        loop {
            if !std::mem::take(&mut self.first) && !committed(&mut self.changes).await {
                return None;
            }
            let orders = match &self.followed {
                Followed::Customer(customer_id) => load_customer_orders(&self.pool, customer_id).await,
                Followed::Recent(limit) => load_recent_orders(&self.pool, *limit).await,
            };
            let orders = match orders {
                Ok(orders) => orders,
                Err(error) => {
                    tracing::warn!(%error, "order views stream ended: read-model query failed");
                    return None;
                }
            };
            let changed: Vec<Event> = changed_views(&mut self.sent, orders).iter().map(|view| json_event("view", view)).collect();
            if !changed.is_empty() {
                return Some(changed);
            }
        }
    }
}

/// The views that differ from the last one sent for their order (all of them the first time).
/// Orders no longer followed are forgotten, so a stream of recent orders stays as small as its
/// window.
pub fn changed_views(sent: &mut std::collections::HashMap<String, OrderView>, orders: Vec<OrderView>) -> Vec<OrderView> {
    let followed: std::collections::HashSet<&str> = orders.iter().map(|view| view.order_id.as_str()).collect();
    sent.retain(|order_id, _| followed.contains(order_id.as_str()));
    orders
        .into_iter()
        .filter(|view| {
            let changed = sent.get(&view.order_id) != Some(view);
            if changed {
                sent.insert(view.order_id.clone(), view.clone());
            }
            changed
        })
        .collect()
}

/// Many orders, live: every order of `customer_id`, or without it the `limit` most recent
/// orders (what an operator's console lists). The current view of each comes first (oldest
/// first for a customer, newest first for recent orders), then a `view` event whenever one of
/// them changes, new orders included. The stream does not end by itself.
///
/// Its events carry no id, and a reconnect starts again with the current view of every order:
/// that misses nothing, at the price of views the client may already have. A position across
/// orders would need an order of commits over every order that a replay reproduces, and the
/// read model has none: each order's entries are ordered only per aggregate (see
/// [`TimelineCursor`]), so such a cursor would grow with the orders. A client that needs every
/// timeline entry follows `GET /orders/{id}/events` of the order.
#[utoipa::path(get, path = "/orders/events", tag = "queries",
    params(OrdersEventsParams),
    responses(
        (status = 200, description = "`text/event-stream` of `view` events (OrderView), one per change of any followed order",
            content_type = "text/event-stream", body = String),
        (status = 400, description = "`limit` out of range", body = ApiError)))]
pub async fn orders_events(
    State(ReadDb(pool)): State<ReadDb>,
    State(progress): State<ProjectionProgress>,
    params: Result<Query<OrdersEventsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    let limit = runtime::http::limit(params.limit)?;
    let followed = match params.customer_id.filter(|id| !id.trim().is_empty()) {
        Some(customer_id) => Followed::Customer(customer_id),
        None => Followed::Recent(limit),
    };
    let changes = progress_of(&progress);
    let state = ViewsStream { pool, followed, changes, sent: Default::default(), first: true };
    let events = stream::unfold(state, |mut state| async move { state.next().await.map(|events| (events, state)) }).flat_map(stream::iter);
    Ok(sse(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(topic: &str, aggregate: &str, version: i64, id: &str) -> TimelineEntry {
        TimelineEntry {
            event_id: id.into(),
            service: String::new(),
            topic: topic.into(),
            event_type: String::new(),
            aggregate_id: aggregate.into(),
            version,
            occurred_at: version,
            correlation_id: String::new(),
            causation_id: String::new(),
            command_id: String::new(),
        }
    }

    fn view(status: &str, version: i64) -> OrderView {
        OrderView {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            status: status.into(),
            cancellation_reason: None,
            cancellation_detail: None,
            cancellation_request: None,
            currency: "EUR".into(),
            total_cents: 100,
            lines: vec![],
            payment: None,
            shipment: None,
            notifications: vec![],
            created_at: 1,
            updated_at: 1,
            version,
        }
    }

    fn ids(events: &[Outgoing]) -> Vec<String> {
        events
            .iter()
            .map(|event| match event {
                Outgoing::View(view) => format!("view {}", view.status),
                Outgoing::Timeline { entry, .. } => entry.event_id.clone(),
                Outgoing::End => "end".into(),
            })
            .collect()
    }

    #[test]
    fn a_cursor_reads_back_what_it_wrote_with_the_orders_own_id_shortened() {
        let mut cursor = TimelineCursor::default();
        for e in [entry("order.events", "o-1", 3, "a"), entry("stock.events", "sku:1,~ü", 7, "b"), entry("account.events", "c-1", 2, "c")] {
            cursor.advance(&e);
        }
        let id = cursor.encode("o-1");
        assert_eq!(id, "account.events:c-1:2,order.events:~:3,stock.events:sku%3A1%2C%7E%C3%BC:7");
        assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id}");
        assert_eq!(TimelineCursor::parse(&id, "o-1"), Ok(cursor));
        assert_eq!(TimelineCursor::parse("", "o-1"), Ok(TimelineCursor::default()));
    }

    #[test]
    fn an_id_that_is_no_cursor_is_refused() {
        for bad in [
            "order.events:~",
            "order.events:~:3:4",
            "order.events:~:x",
            "order.events:~:-1",
            "order.events:~:0",
            "order.events:~:03",
            "order.events:~:+3",
            ":~:3",
            "order.events::3",
            "order.events:%zz:3",
            "order.events:a b:3",
            "order.events:%FF:3",
            "order.events:~:99999999999999999999",
        ] {
            assert!(matches!(TimelineCursor::parse(bad, "o-1"), Err(InvalidCursor::Item(_))), "{bad}");
        }
        assert_eq!(
            TimelineCursor::parse("order.events:~:3,order.events:o-1:4", "o-1"),
            Err(InvalidCursor::Repeated("order.events".into(), "o-1".into()))
        );
        assert_eq!(TimelineCursor::parse(&"a".repeat(MAX_LAST_EVENT_ID_CHARS + 1), "o-1"), Err(InvalidCursor::TooLong));
    }

    #[test]
    fn an_entry_committed_late_is_sent_even_though_it_sorts_before_entries_already_sent() {
        let mut cursor = TimelineCursor::default();
        let mut last_view = None;
        // The order's events were projected before the stock event that caused the second one.
        let first = vec![entry("order.events", "o-1", 1, "placed"), entry("order.events", "o-1", 2, "line-reserved")];
        let sent = next_events("o-1", &mut last_view, &mut cursor, view("PENDING", 2), first.clone());
        assert_eq!(ids(&sent), ["view PENDING", "placed", "line-reserved"]);
        let later = vec![first[0].clone(), entry("stock.events", "sku-1", 5, "stock-reserved"), first[1].clone()];
        let sent = next_events("o-1", &mut last_view, &mut cursor, view("PENDING", 2), later);
        assert_eq!(ids(&sent), ["stock-reserved"], "the unchanged view is not sent again");
    }

    #[test]
    fn resuming_from_any_id_sends_exactly_the_entries_after_it_in_commit_order() {
        // Commits in this order; the timeline sorts them differently.
        let commits = [
            entry("order.events", "o-1", 1, "placed"),
            entry("order.events", "o-1", 2, "line"),
            entry("stock.events", "sku-1", 9, "stock"),
            entry("order.events", "o-1", 3, "reserved"),
            entry("account.events", "c-1", 4, "paid-acct"),
            entry("order.events", "o-1", 4, "paid"),
        ];
        let (mut cursor, mut last_view, mut ids_after) = (TimelineCursor::default(), None, Vec::new());
        for committed in 1..=commits.len() {
            let mut timeline = commits[..committed].to_vec();
            timeline.sort_by_key(|e| (e.occurred_at, e.topic.clone()));
            for event in next_events("o-1", &mut last_view, &mut cursor, view("PENDING", 1), timeline) {
                if let Outgoing::Timeline { entry, id } = event {
                    ids_after.push((entry.event_id, id));
                }
            }
        }
        let sent: Vec<&str> = ids_after.iter().map(|(e, _)| e.as_str()).collect();
        assert_eq!(sent, ["placed", "line", "stock", "reserved", "paid-acct", "paid"]);
        for (index, (_, id)) in ids_after.iter().enumerate() {
            let resumed = TimelineCursor::parse(id, "o-1").expect("own id");
            let rest: Vec<String> = unsent(commits.to_vec(), &resumed).into_iter().map(|e| e.event_id).collect();
            assert_eq!(rest, sent[index + 1..], "resumed after {id}");
        }
    }

    #[test]
    fn a_final_order_ends_the_stream_after_its_entries() {
        let (mut cursor, mut last_view) = (TimelineCursor::default(), None);
        let sent = next_events("o-1", &mut last_view, &mut cursor, view("CANCELLED", 2), vec![entry("order.events", "o-1", 2, "cancelled")]);
        assert_eq!(ids(&sent), ["view CANCELLED", "cancelled", "end"]);
        assert!(is_final("DELIVERED") && is_final("CANCELLED"));
        assert!(!is_final("CONFIRMED") && !is_final("SHIPPED") && !is_final("nonsense"));
    }

    #[test]
    fn a_customer_stream_sends_each_order_once_then_only_changes() {
        let mut sent = std::collections::HashMap::new();
        let other = OrderView { order_id: "o-2".into(), ..view("PENDING", 1) };
        assert_eq!(changed_views(&mut sent, vec![view("PENDING", 1), other.clone()]).len(), 2);
        assert_eq!(changed_views(&mut sent, vec![view("PENDING", 1), other.clone()]), []);
        assert_eq!(changed_views(&mut sent, vec![view("PAID", 3), other]), [view("PAID", 3)]);
    }

    #[test]
    fn last_event_id_header_absent_empty_repeated_or_not_ascii() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_event_id(&headers, "o-1").ok(), Some(TimelineCursor::default()));
        headers.insert(LAST_EVENT_ID, "".parse().expect("header"));
        assert_eq!(last_event_id(&headers, "o-1").ok(), Some(TimelineCursor::default()));
        headers.insert(LAST_EVENT_ID, axum::http::HeaderValue::from_bytes(b"order.events:\xff:1").expect("header"));
        assert_eq!(last_event_id(&headers, "o-1").err().map(|e| e.status.as_u16()), Some(400));
        headers.insert(LAST_EVENT_ID, "order.events:~:1".parse().expect("header"));
        headers.append(LAST_EVENT_ID, "order.events:~:2".parse().expect("header"));
        assert_eq!(last_event_id(&headers, "o-1").err().map(|e| e.status.as_u16()), Some(400));
    }
}

//! The order view: one row per order in `orders` (migration `migrations/0001_orders.sql`),
//! joined with what the other services' events say about it (`order_payments`,
//! `order_shipments`, `order_notifications`, and every event about the order in
//! `order_timeline`: `migrations/0002_order_view_joins.sql`), and the query routes that read it.
//!
//! * `projections.rs`: how each stream's events become rows, e.g. the payment part of the view
//!   from `account.events` ([`project_payment`]); pure functions, unit-tested there.
//! * `queries.rs`: the HTTP handlers and the SQL reads behind them.
//! * `stream.rs`: the same view live, as Server-Sent Events pushed on the projection's commits.
//! * `view.rs`: the JSON shapes they answer with.
//! * `tests/read_model_db.rs`: both against a real database.
//!
//! This module declares the projection ([`projection`]) and the routes ([`api`]) and re-exports
//! the rest, so every item keeps its path `read_model::<item>`.
//!
//! Timestamps (`created_at`, `updated_at`) are epoch milliseconds taken from the events'
//! `occurred_at`, both in the tables and in the JSON answers.
use contracts::account::Account;
use contracts::notification::Notification;
use contracts::order::Order;
use contracts::shipment::Shipment;
use contracts::stock::Stock;
use runtime::http::ApiRoutes;
use runtime::{CodecError, Projection};

mod projections;
mod queries;
mod stream;
mod view;

pub use projections::{project_notification, project_order, project_order_view, project_payment, project_shipment, project_stock};
pub use queries::{
    DEFAULT_WAIT_MS, GetOrderParams, ListOrdersParams, MAX_WAIT_MS, WAIT_TIMED_OUT_HEADER, get_order, get_timeline, list_orders,
    load_customer_orders, load_order, load_recent_orders, load_timeline,
};
pub use stream::{
    InvalidCursor, KEEP_ALIVE, MAX_LAST_EVENT_ID_CHARS, OrdersEventsParams, Outgoing, TimelineCursor, changed_views, is_final, next_events,
    order_events, orders_events, unsent,
};
pub use view::{CancellationRequestView, OrderPage, OrderView, PaymentView, ShipmentView, TimelineEntry, TrackingView};

/// The `orders` projection: the order view joined with every other stream.
pub fn projection(registry_url: &str) -> Result<Projection, CodecError> {
    Projection::new(PROJECTION, &["orders", "order_payments", "order_shipments", "order_notifications", "order_timeline"])
        // `GET /orders/{id}?wait_for=` waits on this view: the saga is done when it shows so.
        .on_saga_path()
        .from::<Order>(registry_url, project_order_view)?
        .from::<Account>(registry_url, project_payment)?
        .from::<Shipment>(registry_url, project_shipment)?
        .from::<Notification>(registry_url, project_notification)?
        .from::<Stock>(registry_url, project_stock)
}

pub const PROJECTION: &str = "orders";

/// `GET /orders/{id}[?wait_for=..&timeout_ms=..]`, `GET /orders?customer_id=&status=&limit=&cursor=`,
/// `GET /orders/{id}/timeline`, and the event streams `GET /orders/{id}/events` and
/// `GET /orders/events?customer_id=`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new()
        .routes(utoipa_axum::routes!(queries::get_order))
        .routes(utoipa_axum::routes!(queries::get_timeline))
        .routes(utoipa_axum::routes!(queries::list_orders))
        .routes(utoipa_axum::routes!(stream::order_events))
        .routes(utoipa_axum::routes!(stream::orders_events))
}

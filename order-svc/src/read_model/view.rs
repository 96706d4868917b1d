//! The JSON shapes the order view's queries answer with (and their OpenAPI schemas).
use contracts::order::OrderLine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub cancellation_reason: Option<String>,
    pub cancellation_detail: Option<String>,
    /// A cancellation asked for from payment on, which shipping answers; absent when none was.
    pub cancellation_request: Option<CancellationRequestView>,
    pub currency: String,
    pub total_cents: i64,
    pub lines: Vec<OrderLine>,
    /// From payment-svc's events; absent until a payment is attempted.
    pub payment: Option<PaymentView>,
    /// From shipping-svc's events (or the order's confirmation); absent before scheduling.
    pub shipment: Option<ShipmentView>,
    /// Kinds of the notifications sent about this order, e.g. `ORDER_CONFIRMED`.
    pub notifications: Vec<String>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    pub version: i64,
}

/// Dispatch is the point of no return: from payment on, a cancel waits for shipping's answer
/// while the order keeps its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancellationRequestView {
    /// `REQUESTED` (waiting for shipping), `ACCEPTED` (the order was cancelled) or `REFUSED`
    /// (the shipment had already been dispatched; the order carries on).
    pub status: String,
    /// The cancellation reason asked for, e.g. `CUSTOMER_REQUEST`.
    pub reason: Option<String>,
    pub detail: Option<String>,
    /// Shipping's reason when it refused.
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PaymentView {
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: String,
    pub amount_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShipmentView {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// `SCHEDULED`, `REJECTED`, `CANCELLED`, `DISPATCHED` or `DELIVERED`; `SCHEDULED` when only
    /// the order's confirmation is known so far.
    pub status: String,
    /// The carrier's latest report, once the shipment is on its way.
    pub tracking: Option<TrackingView>,
}

/// Where the carrier last saw the shipment (shipping-svc's `ShipmentTrackingUpdated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrackingView {
    /// `IN_TRANSIT`, `OUT_FOR_DELIVERY` or `DELIVERY_FAILED`.
    pub status: String,
    pub location: String,
    /// When the carrier saw it, epoch milliseconds.
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimelineEntry {
    pub event_id: String,
    pub service: String,
    pub topic: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub aggregate_id: String,
    pub version: i64,
    /// Epoch milliseconds.
    pub occurred_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub command_id: String,
}

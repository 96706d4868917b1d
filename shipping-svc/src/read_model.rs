//! Read model of `shipment.events`: table `shipments` (`migrations/0001_shipments.sql`, index
//! by status in `0002_shipments_by_status.sql`) and the carrier's reports in
//! `shipment_tracking` (`0003_tracking.sql`), `GET /shipments/{order_id}` and
//! `GET /shipments?status=&limit=`.
//!
//! `status` is one of `SCHEDULED`, `REJECTED`, `CANCELLED`, `DISPATCHED`, `DELIVERED`;
//! `updated_at` is epoch millis taken from the event's `occurred_at`.
use axum::{
    Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::EventEnvelope;
use contracts::order::Address;
use contracts::shipment::{ShipmentEvent, ShipmentLine};
use runtime::http::{ApiError, ApiRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::label::{Label, label_pdf};

const UPSERT_SHIPMENT: &str = "INSERT INTO shipments \
     (order_id, customer_id, status, carrier, tracking_number, destination_country, reason, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (order_id) DO UPDATE SET \
     customer_id = excluded.customer_id, status = excluded.status, carrier = excluded.carrier, \
     tracking_number = excluded.tracking_number, destination_country = excluded.destination_country, \
     reason = excluded.reason, updated_at = excluded.updated_at";

// Dispatch and delivery always follow a ShipmentScheduled of the same order, so the row exists.
const UPDATE_STATUS: &str = "UPDATE shipments SET status = $2, updated_at = $3 WHERE order_id = $1";

// A cancellation may come before anything was scheduled (a paid order's request overtaking
// its scheduling): then it is the row, with no destination yet.
const UPSERT_CANCELLED: &str = "INSERT INTO shipments (order_id, customer_id, status, destination_country, updated_at) \
     VALUES ($1, $2, $3, '', $4) \
     ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at";

// Reports may arrive out of the carrier's order: the row keeps the latest by `at`.
const RECORD_LAST_TRACKING: &str = "UPDATE shipments SET tracking_status = $2, tracking_location = $3, tracking_at = $4, updated_at = $5 \
     WHERE order_id = $1 AND (tracking_at IS NULL OR tracking_at <= $4)";

const RECORD_TRACKING: &str = "INSERT INTO shipment_tracking (event_id, order_id, status, location, at) VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (event_id) DO NOTHING";

const RECORD_LABEL: &str = "UPDATE shipments SET label_json = $2 WHERE order_id = $1";

/// The `label_json` column: what the label prints besides the row's own columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct LabelContents {
    ship_to: Option<Address>,
    lines: Vec<ShipmentLine>,
}

impl LabelContents {
    fn to_json(&self) -> String {
        // Strings and numbers only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A shipment's status in the read model (and the `status` filter of `GET /shipments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(as = ShipmentStatus)]
pub enum Status {
    Scheduled,
    Rejected,
    Cancelled,
    Dispatched,
    Delivered,
}

impl Status {
    /// The name the table stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Rejected => "REJECTED",
            Status::Cancelled => "CANCELLED",
            Status::Dispatched => "DISPATCHED",
            Status::Delivered => "DELIVERED",
        }
    }
}

/// SQL writes for one `shipment.events` event (aggregate id = order id).
pub fn project_shipment(event: &EventEnvelope<ShipmentEvent>) -> Vec<SqlWrite> {
    let order_id = &event.aggregate_id;
    let at = event.occurred_at;
    let status_change = |status: Status| vec![SqlWrite::new(UPDATE_STATUS, params![order_id, status.as_str(), at])];
    match &event.payload {
        ShipmentEvent::ShipmentScheduled { customer_id, carrier, tracking_number, destination_country, lines, shipping_address } => {
            let label = LabelContents { ship_to: shipping_address.clone(), lines: lines.clone() };
            vec![
                SqlWrite::new(
                    UPSERT_SHIPMENT,
                    params![order_id, customer_id, Status::Scheduled.as_str(), carrier, tracking_number, destination_country, None::<String>, at],
                ),
                SqlWrite::new(RECORD_LABEL, params![order_id, label.to_json()]),
            ]
        }
        ShipmentEvent::ShipmentRejected { customer_id, reason, destination_country } => vec![SqlWrite::new(
            UPSERT_SHIPMENT,
            params![order_id, customer_id, Status::Rejected.as_str(), None::<String>, None::<String>, destination_country, reason, at],
        )],
        ShipmentEvent::ShipmentCancelled { customer_id } => {
            vec![SqlWrite::new(UPSERT_CANCELLED, params![order_id, customer_id, Status::Cancelled.as_str(), at])]
        }
        ShipmentEvent::ShipmentDispatched { .. } => status_change(Status::Dispatched),
        ShipmentEvent::ShipmentDelivered { .. } => status_change(Status::Delivered),
        // The shipment is unchanged: it stays on its way.
        ShipmentEvent::ShipmentCancellationRefused { .. } => vec![],
        ShipmentEvent::ShipmentTrackingUpdated { status, location, at: seen_at, .. } => {
            let status: &'static str = status.into();
            vec![
                SqlWrite::new(RECORD_LAST_TRACKING, params![order_id, status, location, *seen_at, at]),
                SqlWrite::new(RECORD_TRACKING, params![&event.event_id, order_id, status, location, *seen_at]),
            ]
        }
    }
}

/// `GET /shipments/{order_id}` and `GET /shipments?status=&limit=`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new()
        .routes(utoipa_axum::routes!(get_shipment))
        .routes(utoipa_axum::routes!(list_shipments))
        .routes(utoipa_axum::routes!(get_label))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentView {
    pub order_id: String,
    pub customer_id: String,
    #[schema(value_type = Status)]
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    /// Empty for a shipment cancelled before it was scheduled.
    pub destination_country: String,
    /// Why the shipment was rejected; `null` otherwise.
    pub reason: Option<String>,
    /// Epoch millis.
    pub updated_at: i64,
    /// The carrier's latest report (by when it saw the shipment), once it is on its way.
    pub last_tracking: Option<TrackingReportView>,
    /// Every report, oldest first: in `GET /shipments/{order_id}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking: Option<Vec<TrackingReportView>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct TrackingReportView {
    /// `IN_TRANSIT`, `OUT_FOR_DELIVERY` or `DELIVERY_FAILED`.
    pub status: String,
    pub location: String,
    /// When the carrier saw it, epoch millis.
    pub at: i64,
}

#[derive(sqlx::FromRow)]
struct ShipmentRow {
    order_id: String,
    customer_id: String,
    status: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    destination_country: String,
    reason: Option<String>,
    updated_at: i64,
    tracking_status: Option<String>,
    tracking_location: Option<String>,
    tracking_at: Option<i64>,
}

const SELECT_SHIPMENT: &str = "SELECT order_id, customer_id, status, carrier, tracking_number, destination_country, reason, updated_at, \
     tracking_status, tracking_location, tracking_at FROM shipments";

impl From<ShipmentRow> for ShipmentView {
    fn from(row: ShipmentRow) -> Self {
        let last_tracking = row.tracking_status.map(|status| TrackingReportView {
            status,
            location: row.tracking_location.unwrap_or_default(),
            at: row.tracking_at.unwrap_or_default(),
        });
        ShipmentView {
            order_id: row.order_id,
            customer_id: row.customer_id,
            status: row.status,
            carrier: row.carrier,
            tracking_number: row.tracking_number,
            destination_country: row.destination_country,
            reason: row.reason,
            updated_at: row.updated_at,
            last_tracking,
            tracking: None,
        }
    }
}

/// The shipment of one order.
#[utoipa::path(get, path = "/shipments/{order_id}", tag = "queries",
    params(("order_id" = String, Path, description = "The order the shipment is for")),
    responses(
        (status = 200, description = "The order's shipment", body = ShipmentView),
        (status = 404, description = "No shipment event about this order yet", body = ApiError)))]
async fn get_shipment(State(ReadDb(pool)): State<ReadDb>, Path(order_id): Path<String>) -> Result<Json<ShipmentView>, ApiError> {
    let row: Option<ShipmentRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_SHIPMENT} WHERE order_id = $1"))).bind(&order_id).fetch_optional(&pool).await?;
    let mut view = ShipmentView::from(row.ok_or_else(|| ApiError::not_found("shipment for order", &order_id))?);
    let reports: Vec<TrackingReportView> =
        sqlx::query_as("SELECT status, location, at FROM shipment_tracking WHERE order_id = $1 ORDER BY at, event_id")
            .bind(&order_id)
            .fetch_all(&pool)
            .await?;
    view.tracking = Some(reports);
    Ok(Json(view))
}

#[derive(sqlx::FromRow)]
struct LabelRow {
    status: String,
    carrier: Option<String>,
    tracking_number: Option<String>,
    destination_country: String,
    label_json: Option<String>,
}

/// The shipment's label for the warehouse: one A6 page of PDF with the carrier, the tracking
/// number, the address and the contents.
#[utoipa::path(get, path = "/shipments/{order_id}/label", tag = "queries",
    params(("order_id" = String, Path, description = "The order the shipment is for")),
    responses(
        (status = 200, description = "The label (a PDF document)", content_type = "application/pdf"),
        (status = 404, description = "No shipment event about this order yet", body = ApiError),
        (status = 409, description = "The shipment has no carrier: rejected, or cancelled before it was scheduled", body = ApiError)))]
async fn get_label(State(ReadDb(pool)): State<ReadDb>, Path(order_id): Path<String>) -> Result<Response, ApiError> {
    let row: Option<LabelRow> =
        sqlx::query_as("SELECT status, carrier, tracking_number, destination_country, label_json FROM shipments WHERE order_id = $1")
            .bind(&order_id)
            .fetch_optional(&pool)
            .await?;
    let LabelRow { status, carrier, tracking_number, destination_country, label_json } =
        row.ok_or_else(|| ApiError::not_found("shipment for order", &order_id))?;
    let (Some(carrier), Some(tracking_number)) = (carrier, tracking_number) else {
        return Err(ApiError { status: StatusCode::CONFLICT, message: format!("a {status} shipment has no label") });
    };
    let contents = match label_json.as_deref().map(serde_json::from_str::<LabelContents>) {
        Some(Ok(contents)) => contents,
        // Rows projected before labels: what the row knows is on the label.
        None => LabelContents { ship_to: None, lines: vec![] },
        Some(Err(error)) => {
            tracing::error!(%error, order_id, "label_json does not read");
            return Err(ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: "read-model database error".into() });
        }
    };
    let label = Label { order_id, carrier, tracking_number, destination_country, ship_to: contents.ship_to, lines: contents.lines };
    Ok(([(header::CONTENT_TYPE, "application/pdf")], label_pdf(&label)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShipmentListParams {
    /// Only shipments in this status.
    pub status: Status,
    /// At most this many shipments: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// The shipments in one status, those longest in it first (`updated_at`, then `order_id`).
#[utoipa::path(get, path = "/shipments", tag = "queries",
    params(ShipmentListParams),
    responses(
        (status = 200, description = "The shipments in that status, oldest change first", body = Vec<ShipmentView>),
        (status = 400, description = "`status` missing or unknown, or `limit` out of range", body = ApiError)))]
async fn list_shipments(
    State(ReadDb(pool)): State<ReadDb>,
    params: Result<Query<ShipmentListParams>, QueryRejection>,
) -> Result<Json<Vec<ShipmentView>>, ApiError> {
    let Query(params) = params?;
    let limit = runtime::http::limit(params.limit)?;
    let rows: Vec<ShipmentRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_SHIPMENT} WHERE status = $1 ORDER BY updated_at, order_id LIMIT $2")))
            .bind(params.status.as_str())
            .bind(limit)
            .fetch_all(&pool)
            .await?;
    Ok(Json(rows.into_iter().map(ShipmentView::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::shipment::ShipmentLine;
    use runtime::SqlValue::{self, Int, Null, Text};
    use runtime::testing::envelope;

    fn text(value: &str) -> SqlValue {
        Text(value.into())
    }

    #[test]
    fn scheduled_upserts_the_full_row() {
        let writes = project_shipment(&envelope(
            "o-1",
            1,
            ShipmentEvent::ShipmentScheduled {
                customer_id: "c-1".into(),
                carrier: "DHL".into(),
                tracking_number: "DHL0123456789AB".into(),
                destination_country: "DE".into(),
                lines: vec![ShipmentLine { sku: "s".into(), quantity: 1 }],
                shipping_address: None,
            },
        ));
        assert_eq!(writes.len(), 2);
        assert!(writes[0].sql.contains("ON CONFLICT (order_id) DO UPDATE"));
        assert_eq!(writes[1], SqlWrite::new(RECORD_LABEL, vec![text("o-1"), text(r#"{"ship_to":null,"lines":[{"sku":"s","quantity":1}]}"#)]));
        assert_eq!(
            writes[0].params,
            vec![text("o-1"), text("c-1"), text("SCHEDULED"), text("DHL"), text("DHL0123456789AB"), text("DE"), Null, Int(1_700_000_000_001)]
        );
    }

    #[test]
    fn rejected_upserts_the_reason_without_carrier() {
        let writes = project_shipment(&envelope(
            "o-1",
            1,
            ShipmentEvent::ShipmentRejected {
                customer_id: "c-1".into(),
                reason: "destination country JP is not served".into(),
                destination_country: "JP".into(),
            },
        ));
        assert_eq!(
            writes[0].params,
            vec![
                text("o-1"),
                text("c-1"),
                text("REJECTED"),
                Null,
                Null,
                text("JP"),
                text("destination country JP is not served"),
                Int(1_700_000_000_001)
            ]
        );
    }

    #[test]
    fn cancelled_sets_the_status_or_stands_in_for_a_shipment_never_scheduled() {
        let writes = project_shipment(&envelope("o-1", 1, ShipmentEvent::ShipmentCancelled { customer_id: "c-1".into() }));
        assert_eq!(writes, vec![SqlWrite::new(UPSERT_CANCELLED, vec![text("o-1"), text("c-1"), text("CANCELLED"), Int(1_700_000_000_001)])]);
        assert!(UPSERT_CANCELLED.contains("DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at"));
    }

    #[test]
    fn a_refused_cancellation_leaves_the_shipment_as_it_is() {
        let refused = ShipmentEvent::ShipmentCancellationRefused { customer_id: "c-1".into(), reason: "shipment already dispatched".into() };
        assert_eq!(project_shipment(&envelope("o-1", 3, refused)), vec![]);
    }

    #[test]
    fn a_tracking_report_is_kept_and_becomes_the_latest_unless_an_older_one() {
        let report = ShipmentEvent::ShipmentTrackingUpdated {
            customer_id: "c-1".into(),
            status: contracts::shipment::TrackingStatus::OutForDelivery,
            location: "Berlin".into(),
            at: 5_000,
        };
        let writes = project_shipment(&envelope("o-1", 4, report));
        assert_eq!(
            writes,
            vec![
                SqlWrite::new(RECORD_LAST_TRACKING, vec![text("o-1"), text("OUT_FOR_DELIVERY"), text("Berlin"), Int(5_000), Int(1_700_000_000_004)]),
                SqlWrite::new(RECORD_TRACKING, vec![text("o-1-e4"), text("o-1"), text("OUT_FOR_DELIVERY"), text("Berlin"), Int(5_000)]),
            ]
        );
        assert!(RECORD_LAST_TRACKING.contains("tracking_at <= $4"), "an older report leaves the latest alone");
    }

    #[test]
    fn lifecycle_events_update_the_status() {
        let cases = [
            (ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: vec![] }, "DISPATCHED"),
            (ShipmentEvent::ShipmentDelivered { customer_id: "c-1".into() }, "DELIVERED"),
        ];
        for (event, status) in cases {
            let writes = project_shipment(&envelope("o-1", 1, event));
            assert_eq!(writes.len(), 1);
            assert!(writes[0].sql.starts_with("UPDATE shipments"));
            assert_eq!(writes[0].params, vec![text("o-1"), text(status), Int(1_700_000_000_001)]);
        }
    }
}

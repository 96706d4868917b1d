//! Read model of `shipment.events`: table `shipments` (`migrations/0001_shipments.sql`) and
//! `GET /shipments/{order_id}`.
//!
//! `status` is one of `SCHEDULED`, `REJECTED`, `CANCELLED`, `DISPATCHED`, `DELIVERED`;
//! `updated_at` is epoch millis taken from the event's `occurred_at`.
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use contracts::EventEnvelope;
use contracts::shipment::ShipmentEvent;
use runtime::http::{ApiError, QueryRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::Serialize;

const UPSERT_SHIPMENT: &str = "INSERT INTO shipments \
     (order_id, customer_id, status, carrier, tracking_number, destination_country, reason, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (order_id) DO UPDATE SET \
     customer_id = excluded.customer_id, status = excluded.status, carrier = excluded.carrier, \
     tracking_number = excluded.tracking_number, destination_country = excluded.destination_country, \
     reason = excluded.reason, updated_at = excluded.updated_at";

// Later lifecycle events always follow a ShipmentScheduled of the same order, so the row exists.
const UPDATE_STATUS: &str = "UPDATE shipments SET status = $2, updated_at = $3 WHERE order_id = $1";

/// SQL writes for one `shipment.events` event (aggregate id = order id).
pub fn project_shipment(event: &EventEnvelope<ShipmentEvent>) -> Vec<SqlWrite> {
    let order_id = &event.aggregate_id;
    let at = event.occurred_at;
    let status_change = |status: &str| vec![SqlWrite::new(UPDATE_STATUS, params![order_id, status, at])];
    match &event.payload {
        ShipmentEvent::ShipmentScheduled { customer_id, carrier, tracking_number, destination_country, .. } => {
            vec![SqlWrite::new(
                UPSERT_SHIPMENT,
                params![order_id, customer_id, "SCHEDULED", carrier, tracking_number, destination_country, None::<String>, at],
            )]
        }
        ShipmentEvent::ShipmentRejected { customer_id, reason, destination_country } => vec![SqlWrite::new(
            UPSERT_SHIPMENT,
            params![order_id, customer_id, "REJECTED", None::<String>, None::<String>, destination_country, reason, at],
        )],
        ShipmentEvent::ShipmentCancelled { .. } => status_change("CANCELLED"),
        ShipmentEvent::ShipmentDispatched { .. } => status_change("DISPATCHED"),
        ShipmentEvent::ShipmentDelivered { .. } => status_change("DELIVERED"),
    }
}

pub fn routes() -> QueryRoutes {
    Router::new().route("/shipments/{order_id}", get(get_shipment))
}

#[derive(Debug, Serialize)]
pub struct ShipmentView {
    pub order_id: String,
    pub customer_id: String,
    pub status: String,
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub destination_country: String,
    /// Why the shipment was rejected; `null` otherwise.
    pub reason: Option<String>,
    /// Epoch millis.
    pub updated_at: i64,
}

type ShipmentRow = (String, String, String, Option<String>, Option<String>, String, Option<String>, i64);

async fn get_shipment(
    State(ReadDb(pool)): State<ReadDb>,
    Path(order_id): Path<String>,
) -> Result<Json<ShipmentView>, ApiError> {
    let row: Option<ShipmentRow> = sqlx::query_as(
        "SELECT order_id, customer_id, status, carrier, tracking_number, destination_country, reason, updated_at \
         FROM shipments WHERE order_id = $1",
    )
    .bind(&order_id)
    .fetch_optional(&pool)
    .await?;
    let (order_id_found, customer_id, status, carrier, tracking_number, destination_country, reason, updated_at) =
        row.ok_or_else(|| ApiError::not_found("shipment for order", &order_id))?;
    Ok(Json(ShipmentView {
        order_id: order_id_found,
        customer_id,
        status,
        carrier,
        tracking_number,
        destination_country,
        reason,
        updated_at,
    }))
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
        let writes = project_shipment(&envelope("o-1", 1, ShipmentEvent::ShipmentScheduled {
            customer_id: "c-1".into(),
            carrier: "DHL".into(),
            tracking_number: "DHL0123456789AB".into(),
            destination_country: "DE".into(),
            lines: vec![ShipmentLine { sku: "s".into(), quantity: 1 }],
        }));
        assert_eq!(writes.len(), 1);
        assert!(writes[0].sql.contains("ON CONFLICT (order_id) DO UPDATE"));
        assert_eq!(
            writes[0].params,
            vec![
                text("o-1"),
                text("c-1"),
                text("SCHEDULED"),
                text("DHL"),
                text("DHL0123456789AB"),
                text("DE"),
                Null,
                Int(1_700_000_000_001)
            ]
        );
    }

    #[test]
    fn rejected_upserts_the_reason_without_carrier() {
        let writes = project_shipment(&envelope("o-1", 1, ShipmentEvent::ShipmentRejected {
            customer_id: "c-1".into(),
            reason: "destination country JP is not served".into(),
            destination_country: "JP".into(),
        }));
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
    fn lifecycle_events_update_the_status() {
        let cases = [
            (ShipmentEvent::ShipmentCancelled { customer_id: "c-1".into() }, "CANCELLED"),
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

//! Read model of `notification.events`: table `notifications` (`migrations/`), one row per sent
//! notification with how its delivery stands, and `GET /notifications?order_id=&customer_id=`.
//!
//! `sent_at` and `updated_at` are epoch millis taken from the events' `occurred_at`.
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
    http::StatusCode,
};
use contracts::EventEnvelope;
use contracts::notification::NotificationEvent;
use runtime::http::{ApiError, ApiRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

// event_id is the natural key: a replayed event finds its row and changes nothing.
const INSERT_NOTIFICATION: &str = "INSERT INTO notifications \
     (event_id, customer_id, order_id, kind, channel, recipient, message, sent_at, status, attempts, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', 0, $8) \
     ON CONFLICT (event_id) DO NOTHING";
// A delivery event names its notification by (customer, order, kind), one row by the decider's
// rule; each sets what it says, so applying it again changes nothing.
const RECORD_FAILED_ATTEMPT: &str = "UPDATE notifications SET attempts = $1, last_error = $2, updated_at = $3 \
     WHERE customer_id = $4 AND order_id = $5 AND kind = $6 AND status = 'PENDING'";
const RECORD_DELIVERED: &str = "UPDATE notifications SET status = 'DELIVERED', attempts = $1, updated_at = $2 \
     WHERE customer_id = $3 AND order_id = $4 AND kind = $5";
const RECORD_PARKED: &str = "UPDATE notifications SET status = 'FAILED', attempts = $1, last_error = $2, updated_at = $3 \
     WHERE customer_id = $4 AND order_id = $5 AND kind = $6";

/// SQL writes for one `notification.events` event (aggregate id = customer id).
pub fn project_notification(event: &EventEnvelope<NotificationEvent>) -> Vec<SqlWrite> {
    match &event.payload {
        NotificationEvent::NotificationSent { order_id, kind, channel, recipient, message } => {
            let kind: &'static str = kind.into();
            let channel: &'static str = channel.into();
            vec![SqlWrite::new(
                INSERT_NOTIFICATION,
                params![&event.event_id, &event.aggregate_id, order_id, kind, channel, recipient, message, event.occurred_at],
            )]
        }
        NotificationEvent::NotificationDeliveryFailed { order_id, kind, attempt, error } => {
            let kind: &'static str = kind.into();
            vec![SqlWrite::new(RECORD_FAILED_ATTEMPT, params![*attempt, error, event.occurred_at, &event.aggregate_id, order_id, kind])]
        }
        NotificationEvent::NotificationDelivered { order_id, kind, attempts } => {
            let kind: &'static str = kind.into();
            vec![SqlWrite::new(RECORD_DELIVERED, params![*attempts, event.occurred_at, &event.aggregate_id, order_id, kind])]
        }
        NotificationEvent::NotificationParked { order_id, kind, attempts, reason } => {
            let kind: &'static str = kind.into();
            vec![SqlWrite::new(RECORD_PARKED, params![*attempts, reason, event.occurred_at, &event.aggregate_id, order_id, kind])]
        }
        NotificationEvent::PreferencesSet { .. } | NotificationEvent::OptOutSet { .. } => vec![],
    }
}

/// `GET /notifications?order_id=&customer_id=`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(list_notifications))
}

/// At least one of the two, non-empty.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationFilter {
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    pub event_id: String,
    pub customer_id: String,
    pub order_id: String,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub message: String,
    /// Epoch millis.
    pub sent_at: i64,
    pub status: DeliveryStatus,
    /// Delivery attempts so far (the successful one included).
    pub attempts: i64,
    /// The error of the last failed attempt (of the one that parked it, for `FAILED`).
    pub last_error: Option<String>,
    /// Epoch millis of the last change of the delivery (`sent_at` until an attempt ends).
    pub updated_at: i64,
}

/// How the delivery of a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Not delivered yet: attempts go on.
    Pending,
    Delivered,
    /// Given up after too many attempts, or an error retrying cannot help; the notification's
    /// record is on `notification.events.dlq`.
    Failed,
}

impl DeliveryStatus {
    fn of_column(status: &str) -> Result<Self, ApiError> {
        match status {
            "PENDING" => Ok(DeliveryStatus::Pending),
            "DELIVERED" => Ok(DeliveryStatus::Delivered),
            "FAILED" => Ok(DeliveryStatus::Failed),
            other => {
                tracing::error!(status = other, "notification with an unknown delivery status in the read model");
                Err(ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, message: "read-model database error".into() })
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    event_id: String,
    customer_id: String,
    order_id: String,
    kind: String,
    channel: String,
    recipient: String,
    message: String,
    sent_at: i64,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    updated_at: i64,
}

/// The query of the listed notifications, with the given `WHERE … ORDER BY …`.
macro_rules! select_notifications {
    ($filter:literal) => {
        concat!(
            "SELECT event_id, customer_id, order_id, kind, channel, recipient, message, sent_at, status, attempts, last_error, updated_at \
             FROM notifications ",
            $filter
        )
    };
}

/// The notifications sent about an order and/or to a customer, in the order sent.
#[utoipa::path(get, path = "/notifications", tag = "queries",
    params(NotificationFilter),
    responses(
        (status = 200, description = "The notifications, by `sent_at`, each with how its delivery stands", body = Vec<NotificationView>),
        (status = 400, description = "Neither `order_id` nor `customer_id` given", body = ApiError)))]
async fn list_notifications(
    State(ReadDb(pool)): State<ReadDb>,
    filter: Result<Query<NotificationFilter>, QueryRejection>,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let Query(filter) = filter?;
    let present = |value: Option<String>| value.filter(|value| !value.is_empty());
    let rows: Vec<NotificationRow> = match (present(filter.order_id), present(filter.customer_id)) {
        (Some(order_id), Some(customer_id)) => {
            sqlx::query_as(select_notifications!("WHERE order_id = $1 AND customer_id = $2 ORDER BY sent_at, event_id"))
                .bind(order_id)
                .bind(customer_id)
                .fetch_all(&pool)
                .await?
        }
        (Some(order_id), None) => {
            sqlx::query_as(select_notifications!("WHERE order_id = $1 ORDER BY sent_at, event_id")).bind(order_id).fetch_all(&pool).await?
        }
        (None, Some(customer_id)) => {
            sqlx::query_as(select_notifications!("WHERE customer_id = $1 ORDER BY sent_at, event_id")).bind(customer_id).fetch_all(&pool).await?
        }
        (None, None) => return Err(ApiError::bad_request("give order_id or customer_id (or both)")),
    };
    let views = rows
        .into_iter()
        .map(|row| {
            Ok(NotificationView {
                status: DeliveryStatus::of_column(&row.status)?,
                event_id: row.event_id,
                customer_id: row.customer_id,
                order_id: row.order_id,
                kind: row.kind,
                channel: row.channel,
                recipient: row.recipient,
                message: row.message,
                sent_at: row.sent_at,
                attempts: row.attempts,
                last_error: row.last_error,
                updated_at: row.updated_at,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(views))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::notification::{Channel, NotificationKind};
    use runtime::SqlValue::{Int, Text};
    use runtime::testing::envelope;

    #[test]
    fn sent_notification_is_inserted_once_by_event_id() {
        let writes = project_notification(&envelope(
            "c-1",
            1,
            NotificationEvent::NotificationSent {
                order_id: "o-1".into(),
                kind: NotificationKind::OrderCancelled,
                channel: Channel::Sms,
                recipient: "+4917012".into(),
                message: "Your order o-1 was cancelled.".into(),
            },
        ));
        assert_eq!(writes.len(), 1);
        assert!(writes[0].sql.contains("ON CONFLICT (event_id) DO NOTHING"));
        assert_eq!(
            writes[0].params,
            vec![
                Text("c-1-e1".into()),
                Text("c-1".into()),
                Text("o-1".into()),
                Text("ORDER_CANCELLED".into()),
                Text("SMS".into()),
                Text("+4917012".into()),
                Text("Your order o-1 was cancelled.".into()),
                Int(1_700_000_000_001),
            ]
        );
    }

    #[test]
    fn delivery_events_update_the_row_of_their_customer_order_and_kind() {
        let kind = NotificationKind::OrderShipped;
        let failed = project_notification(&envelope(
            "c-1",
            2,
            NotificationEvent::NotificationDeliveryFailed { order_id: "o-1".into(), kind, attempt: 2, error: "HTTP 500".into() },
        ));
        assert_eq!(failed.len(), 1);
        assert!(failed[0].sql.contains("status = 'PENDING'"), "a late failure never reopens a finished delivery: {}", failed[0].sql);
        assert_eq!(
            failed[0].params,
            vec![Int(2), Text("HTTP 500".into()), Int(1_700_000_000_002), Text("c-1".into()), Text("o-1".into()), Text("ORDER_SHIPPED".into())]
        );

        let delivered =
            project_notification(&envelope("c-1", 3, NotificationEvent::NotificationDelivered { order_id: "o-1".into(), kind, attempts: 3 }));
        assert!(delivered[0].sql.contains("status = 'DELIVERED'"));
        assert_eq!(delivered[0].params, vec![Int(3), Int(1_700_000_000_003), Text("c-1".into()), Text("o-1".into()), Text("ORDER_SHIPPED".into())]);

        let parked = project_notification(&envelope(
            "c-1",
            4,
            NotificationEvent::NotificationParked { order_id: "o-1".into(), kind, attempts: 8, reason: "8 attempts failed".into() },
        ));
        assert!(parked[0].sql.contains("status = 'FAILED'"));
        assert_eq!(
            parked[0].params,
            vec![
                Int(8),
                Text("8 attempts failed".into()),
                Int(1_700_000_000_004),
                Text("c-1".into()),
                Text("o-1".into()),
                Text("ORDER_SHIPPED".into())
            ]
        );
    }

    #[test]
    fn preferences_are_not_part_of_this_read_model() {
        let writes =
            project_notification(&envelope("c-1", 1, NotificationEvent::PreferencesSet { channel: Channel::Email, recipient: "a@b".into() }));
        assert!(writes.is_empty());
    }
}

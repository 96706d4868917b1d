//! Read model of `notification.events`: table `notifications`
//! (`migrations/0001_notifications.sql`) and `GET /notifications?order_id=&customer_id=`.
//!
//! `sent_at` is epoch millis taken from the event's `occurred_at`.
use axum::{
    Json,
    extract::{Query, State, rejection::QueryRejection},
};
use contracts::EventEnvelope;
use contracts::notification::NotificationEvent;
use runtime::http::{ApiError, ApiRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

// event_id is the natural key: a replayed event finds its row and changes nothing.
const INSERT_NOTIFICATION: &str = "INSERT INTO notifications \
     (event_id, customer_id, order_id, kind, channel, recipient, message, sent_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (event_id) DO NOTHING";

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
        NotificationEvent::PreferencesSet { .. } => vec![],
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
}

type NotificationRow = (String, String, String, String, String, String, String, i64);

/// The notifications sent about an order and/or to a customer, in the order sent.
#[utoipa::path(get, path = "/notifications", tag = "queries",
    params(NotificationFilter),
    responses(
        (status = 200, description = "The notifications, by `sent_at`", body = Vec<NotificationView>),
        (status = 400, description = "Neither `order_id` nor `customer_id` given", body = ApiError)))]
async fn list_notifications(
    State(ReadDb(pool)): State<ReadDb>,
    filter: Result<Query<NotificationFilter>, QueryRejection>,
) -> Result<Json<Vec<NotificationView>>, ApiError> {
    let Query(filter) = filter?;
    let present = |value: Option<String>| value.filter(|value| !value.is_empty());
    let rows: Vec<NotificationRow> = match (present(filter.order_id), present(filter.customer_id)) {
        (Some(order_id), Some(customer_id)) => {
            sqlx::query_as(
                "SELECT event_id, customer_id, order_id, kind, channel, recipient, message, sent_at FROM notifications \
                 WHERE order_id = $1 AND customer_id = $2 ORDER BY sent_at, event_id",
            )
            .bind(order_id)
            .bind(customer_id)
            .fetch_all(&pool)
            .await?
        }
        (Some(order_id), None) => {
            sqlx::query_as(
                "SELECT event_id, customer_id, order_id, kind, channel, recipient, message, sent_at FROM notifications \
                 WHERE order_id = $1 ORDER BY sent_at, event_id",
            )
            .bind(order_id)
            .fetch_all(&pool)
            .await?
        }
        (None, Some(customer_id)) => {
            sqlx::query_as(
                "SELECT event_id, customer_id, order_id, kind, channel, recipient, message, sent_at FROM notifications \
                 WHERE customer_id = $1 ORDER BY sent_at, event_id",
            )
            .bind(customer_id)
            .fetch_all(&pool)
            .await?
        }
        (None, None) => return Err(ApiError::bad_request("give order_id or customer_id (or both)")),
    };
    Ok(Json(
        rows.into_iter()
            .map(|(event_id, customer_id, order_id, kind, channel, recipient, message, sent_at)| NotificationView {
                event_id,
                customer_id,
                order_id,
                kind,
                channel,
                recipient,
                message,
                sent_at,
            })
            .collect(),
    ))
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
    fn preferences_are_not_part_of_this_read_model() {
        let writes =
            project_notification(&envelope("c-1", 1, NotificationEvent::PreferencesSet { channel: Channel::Email, recipient: "a@b".into() }));
        assert!(writes.is_empty());
    }
}

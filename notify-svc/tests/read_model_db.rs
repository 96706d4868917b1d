//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::EventEnvelope;
use contracts::notification::{Channel, NotificationEvent, NotificationKind};
use notify_svc::MIGRATOR;
use notify_svc::read_model::{api, project_notification};
use runtime::testing::{apply, envelope, read_model_db, serve};
use serde_json::{Value, json};

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn sent(order_id: &str, kind: NotificationKind) -> NotificationEvent {
    NotificationEvent::NotificationSent {
        order_id: order_id.into(),
        kind,
        channel: Channel::Email,
        recipient: "ada@example.com".into(),
        message: "hello".into(),
    }
}

#[tokio::test]
async fn notifications_are_listed_by_order_or_customer_in_send_order() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (ada, bob, order_a, order_b) = (format!("ada-{run}"), format!("bob-{run}"), format!("o-a-{run}"), format!("o-b-{run}"));
    // Sent out of order: the lists follow the time sent, not the order projected.
    let events = [
        (&ada, 1, 30, sent(&order_a, NotificationKind::OrderShipped)),
        (&ada, 2, 10, sent(&order_a, NotificationKind::OrderConfirmed)),
        (&ada, 3, 20, NotificationEvent::PreferencesSet { channel: Channel::Sms, recipient: "+49".into() }),
        (&bob, 1, 15, sent(&order_b, NotificationKind::OrderCancelled)),
    ];
    for (customer, version, occurred_at, payload) in events {
        let event = EventEnvelope { occurred_at, ..envelope(customer, version, payload) };
        apply(&pool, &project_notification(&event)).await;
    }

    let base = serve(api().into(), pool).await;
    let kinds = |list: &Value| list.as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>();

    let (status, by_order) = get(format!("{base}/notifications?order_id={order_a}")).await;
    assert_eq!(status, 200);
    assert_eq!(kinds(&by_order), ["ORDER_CONFIRMED", "ORDER_SHIPPED"]);
    assert_eq!(by_order[0]["customer_id"], ada.as_str());
    assert_eq!(by_order[0]["sent_at"], 10);
    assert_eq!(by_order[0]["channel"], "EMAIL");

    let (_, by_customer) = get(format!("{base}/notifications?customer_id={bob}")).await;
    assert_eq!(kinds(&by_customer), ["ORDER_CANCELLED"]);

    let (_, both) = get(format!("{base}/notifications?customer_id={bob}&order_id={order_a}")).await;
    assert_eq!(both, json!([]));

    let (status, error) = get(format!("{base}/notifications")).await;
    assert_eq!(status, 400, "{error}");
    let (status, _) = get(format!("{base}/notifications?order_id=")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn each_notification_shows_how_its_delivery_stands() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (ada, order) = (format!("ada-{run}"), format!("o-{run}"));
    let failed = |attempt, error: &str| NotificationEvent::NotificationDeliveryFailed {
        order_id: order.clone(),
        kind: NotificationKind::OrderConfirmed,
        attempt,
        error: error.into(),
    };
    let events = [
        (1, 10, sent(&order, NotificationKind::OrderConfirmed)),
        (2, 11, sent(&order, NotificationKind::OrderShipped)),
        (3, 12, sent(&order, NotificationKind::OrderCancelled)),
        (4, 20, failed(1, "webhook answered HTTP 500")),
        (5, 30, failed(2, "no answer within 10000 ms")),
        (6, 40, NotificationEvent::NotificationDelivered { order_id: order.clone(), kind: NotificationKind::OrderShipped, attempts: 1 }),
        (
            7,
            50,
            NotificationEvent::NotificationParked {
                order_id: order.clone(),
                kind: NotificationKind::OrderConfirmed,
                attempts: 3,
                reason: "3 attempts failed, the last with: webhook answered HTTP 500".into(),
            },
        ),
        // A late failure report changes nothing once the delivery is over.
        (8, 60, failed(4, "late")),
    ];
    for (version, occurred_at, payload) in events {
        let event = EventEnvelope { occurred_at, ..envelope(&ada, version, payload) };
        apply(&pool, &project_notification(&event)).await;
    }

    let base = serve(api().into(), pool).await;
    let (status, list) = get(format!("{base}/notifications?customer_id={ada}")).await;
    assert_eq!(status, 200, "{list}");
    let delivery = |kind: &str| {
        let row = list.as_array().unwrap().iter().find(|n| n["kind"] == kind).unwrap_or_else(|| panic!("{kind} in {list}"));
        (row["status"].clone(), row["attempts"].clone(), row["last_error"].clone(), row["updated_at"].clone())
    };
    assert_eq!(
        delivery("ORDER_CONFIRMED"),
        (json!("FAILED"), json!(3), json!("3 attempts failed, the last with: webhook answered HTTP 500"), json!(50))
    );
    assert_eq!(delivery("ORDER_SHIPPED"), (json!("DELIVERED"), json!(1), Value::Null, json!(40)));
    assert_eq!(delivery("ORDER_CANCELLED"), (json!("PENDING"), json!(0), Value::Null, json!(12)));
}

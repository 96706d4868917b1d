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

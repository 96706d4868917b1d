//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::EventEnvelope;
use runtime::SqlValue;
use runtime::http::ReadDb;
use serde_json::{Value, json};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

async fn migrated_pool() -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        let dir = std::env::temp_dir().join(format!("notify-svc-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        format!("sqlite://{}/read.db?mode=rwc", dir.display())
    });
    let pool = AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    pool
}

async fn apply(pool: &AnyPool, aggregate_id: &str, occurred_at: i64, payload: contracts::notification::NotificationEvent) {
    let event = EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        aggregate_id: aggregate_id.to_string(),
        version: 1,
        previous_event_id: None,
        occurred_at,
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        command_id: "cmd".into(),
        command_offset: 0,
        payload,
    };
    let mut tx = pool.begin().await.unwrap();
    for write in notify_svc::read_model::project_notification(&event) {
        let mut query = sqlx::query(write.sql);
        for param in write.params {
            query = match param {
                SqlValue::Text(text) => query.bind(text),
                SqlValue::Int(int) => query.bind(int),
                SqlValue::Null => query.bind(None::<String>),
            };
        }
        query.execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn serve(pool: AnyPool) -> String {
    let app = notify_svc::read_model::routes().with_state(ReadDb(pool));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

use contracts::notification::{Channel, NotificationEvent, NotificationKind};

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
    let pool = migrated_pool().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (ada, bob, order_a, order_b) = (format!("ada-{run}"), format!("bob-{run}"), format!("o-a-{run}"), format!("o-b-{run}"));
    apply(&pool, &ada, 30, sent(&order_a, NotificationKind::OrderShipped)).await;
    apply(&pool, &ada, 10, sent(&order_a, NotificationKind::OrderConfirmed)).await;
    apply(&pool, &ada, 20, NotificationEvent::PreferencesSet { channel: Channel::Sms, recipient: "+49".into() }).await;
    apply(&pool, &bob, 15, sent(&order_b, NotificationKind::OrderCancelled)).await;

    let base = serve(pool).await;
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

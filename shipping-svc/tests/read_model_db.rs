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
        let dir = std::env::temp_dir().join(format!("shipping-svc-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        format!("sqlite://{}/read.db?mode=rwc", dir.display())
    });
    let pool = AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    pool
}

async fn apply(pool: &AnyPool, aggregate_id: &str, occurred_at: i64, payload: contracts::shipment::ShipmentEvent) {
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
    for write in shipping_svc::read_model::project_shipment(&event) {
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
    let app = shipping_svc::read_model::routes().with_state(ReadDb(pool));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

use contracts::shipment::{ShipmentEvent, ShipmentLine};

#[tokio::test]
async fn shipments_follow_the_events() {
    let pool = migrated_pool().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (delivered_order, rejected_order) = (format!("o-1-{run}"), format!("o-2-{run}"));
    apply(&pool, &delivered_order, 1, ShipmentEvent::ShipmentScheduled {
        customer_id: "c-1".into(),
        carrier: "DHL".into(),
        tracking_number: "DHL0123456789AB".into(),
        destination_country: "DE".into(),
        lines: vec![ShipmentLine { sku: "s".into(), quantity: 1 }],
    })
    .await;
    apply(&pool, &delivered_order, 2, ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: vec![] }).await;
    apply(&pool, &delivered_order, 3, ShipmentEvent::ShipmentDelivered { customer_id: "c-1".into() }).await;
    apply(&pool, &rejected_order, 4, ShipmentEvent::ShipmentRejected {
        customer_id: "c-2".into(),
        reason: "destination country JP is not served".into(),
        destination_country: "JP".into(),
    })
    .await;

    let base = serve(pool).await;
    let (status, shipment) = get(format!("{base}/shipments/{delivered_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        shipment,
        json!({
            "order_id": delivered_order, "customer_id": "c-1", "status": "DELIVERED", "carrier": "DHL",
            "tracking_number": "DHL0123456789AB", "destination_country": "DE", "reason": null, "updated_at": 3
        })
    );
    let (status, shipment) = get(format!("{base}/shipments/{rejected_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(shipment["status"], "REJECTED");
    assert_eq!(shipment["carrier"], Value::Null);
    assert_eq!(shipment["reason"], "destination country JP is not served");
    let (status, _) = get(format!("{base}/shipments/unknown-{run}")).await;
    assert_eq!(status, 404);
}

//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::shipment::{ShipmentEvent, ShipmentLine};
use runtime::testing::{apply, envelope, read_model_db, serve};
use serde_json::{Value, json};
use shipping_svc::read_model::{api, project_shipment};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn shipments_follow_the_events() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (delivered_order, rejected_order) = (format!("o-1-{run}"), format!("o-2-{run}"));
    let delivered_history = [
        ShipmentEvent::ShipmentScheduled {
            customer_id: "c-1".into(),
            carrier: "DHL".into(),
            tracking_number: "DHL0123456789AB".into(),
            destination_country: "DE".into(),
            lines: vec![ShipmentLine { sku: "s".into(), quantity: 1 }],
        },
        ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: vec![] },
        ShipmentEvent::ShipmentDelivered { customer_id: "c-1".into() },
    ];
    for (version, payload) in (1..).zip(delivered_history) {
        apply(&pool, &project_shipment(&envelope(&delivered_order, version, payload))).await;
    }
    let rejected = ShipmentEvent::ShipmentRejected {
        customer_id: "c-2".into(),
        reason: "destination country JP is not served".into(),
        destination_country: "JP".into(),
    };
    apply(&pool, &project_shipment(&envelope(&rejected_order, 1, rejected))).await;

    let base = serve(api().into(), pool).await;
    let (status, shipment) = get(format!("{base}/shipments/{delivered_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        shipment,
        json!({
            "order_id": delivered_order, "customer_id": "c-1", "status": "DELIVERED", "carrier": "DHL",
            "tracking_number": "DHL0123456789AB", "destination_country": "DE", "reason": null, "updated_at": 1_700_000_000_003_i64
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

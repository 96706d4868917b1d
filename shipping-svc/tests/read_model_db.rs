//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::EventEnvelope;
use contracts::order::Address;
use contracts::shipment::{ShipmentEvent, ShipmentLine, TrackingStatus};
use runtime::testing::{apply, envelope, read_model_db, serve};
use serde_json::{Value, json};
use shipping_svc::MIGRATOR;
use shipping_svc::read_model::{api, project_shipment};

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
            shipping_address: Some(Address {
                name: "Ada".into(),
                street: "Main 1".into(),
                city: "Berlin".into(),
                postal_code: "10115".into(),
                country: "DE".into(),
            }),
        },
        ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: vec![] },
        ShipmentEvent::ShipmentTrackingUpdated {
            customer_id: "c-1".into(),
            status: TrackingStatus::OutForDelivery,
            location: "Berlin".into(),
            at: 2_000,
        },
        // Sent late by the carrier: kept, but not the latest.
        ShipmentEvent::ShipmentTrackingUpdated {
            customer_id: "c-1".into(),
            status: TrackingStatus::InTransit,
            location: "Hamburg hub".into(),
            at: 1_000,
        },
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
            "tracking_number": "DHL0123456789AB", "destination_country": "DE", "reason": null, "updated_at": 1_700_000_000_005_i64,
            "last_tracking": {"status": "OUT_FOR_DELIVERY", "location": "Berlin", "at": 2_000},
            "tracking": [
                {"status": "IN_TRANSIT", "location": "Hamburg hub", "at": 1_000},
                {"status": "OUT_FOR_DELIVERY", "location": "Berlin", "at": 2_000},
            ],
        })
    );
    let (status, shipment) = get(format!("{base}/shipments/{rejected_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(shipment["status"], "REJECTED");
    assert_eq!(shipment["carrier"], Value::Null);
    assert_eq!(shipment["reason"], "destination country JP is not served");
    let (status, _) = get(format!("{base}/shipments/unknown-{run}")).await;
    assert_eq!(status, 404);

    // The label: a PDF for a shipment with a carrier, a JSON error otherwise.
    let response = reqwest::get(format!("{base}/shipments/{delivered_order}/label")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert!(pdf.windows(17).any(|window| window == b"(DHL0123456789AB)"), "the tracking number is on the label");
    assert!(pdf.windows(14).any(|window| window == b"(10115 Berlin)"), "the address is on the label");
    let (status, error) = get(format!("{base}/shipments/{rejected_order}/label")).await;
    assert_eq!((status, error["status"].as_i64()), (409, Some(409)), "{error}");
    let (status, _) = get(format!("{base}/shipments/unknown-{run}/label")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn shipments_are_listed_by_status_longest_in_it_first() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    // Unique ids, for a shared TEST_DATABASE_URL.
    let run = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let order = |name: &str| format!("{run}-{name}");
    let scheduled = |country: &str| ShipmentEvent::ShipmentScheduled {
        customer_id: "c-1".into(),
        carrier: "DHL".into(),
        tracking_number: "T1".into(),
        destination_country: country.into(),
        lines: vec![],
        shipping_address: None,
    };
    let events = [
        ("a", 1, 30, scheduled("DE")),
        ("b", 1, 10, scheduled("FR")),
        // Same time as b: the order id decides.
        ("c", 1, 10, scheduled("AT")),
        ("d", 1, 5, scheduled("DE")),
        ("d", 2, 40, ShipmentEvent::ShipmentDispatched { customer_id: "c-1".into(), lines: vec![] }),
        (
            "e",
            1,
            1,
            ShipmentEvent::ShipmentRejected {
                customer_id: "c-1".into(),
                reason: "destination country JP is not served".into(),
                destination_country: "JP".into(),
            },
        ),
    ];
    for (name, version, occurred_at, payload) in events {
        apply(&pool, &project_shipment(&EventEnvelope { occurred_at, ..envelope(&order(name), version, payload) })).await;
    }
    let base = serve(api().into(), pool).await;
    let list = |query: &str| get(format!("{base}/shipments?{query}"));
    let ours = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .expect("a JSON array")
            .iter()
            .filter_map(|shipment| Some(shipment["order_id"].as_str()?.strip_prefix(&format!("{run}-"))?.to_string()))
            .collect()
    };

    let (status, shipments) = list("status=SCHEDULED").await;
    assert_eq!(status, 200, "{shipments}");
    assert_eq!(ours(&shipments), ["b", "c", "a"]);
    let b = shipments.as_array().unwrap().iter().find(|s| s["order_id"] == order("b")).unwrap();
    assert_eq!(
        b,
        &serde_json::json!({
            "order_id": order("b"), "customer_id": "c-1", "status": "SCHEDULED", "carrier": "DHL", "tracking_number": "T1",
            "destination_country": "FR", "reason": null, "updated_at": 10, "last_tracking": null,
        })
    );
    assert_eq!(ours(&list("status=DISPATCHED").await.1), ["d"]);
    let (_, rejected) = list("status=REJECTED&limit=1000").await;
    assert_eq!(ours(&rejected), ["e"]);
    assert_eq!(list("status=DELIVERED").await, (200, serde_json::json!([])));
    let (status, first) = list("status=SCHEDULED&limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(first.as_array().unwrap().len(), 1);

    for query in
        ["", "status=", "status=NOPE", "status=scheduled", "status=SCHEDULED&limit=0", "status=SCHEDULED&limit=1001", "status=SCHEDULED&limit=x"]
    {
        let (status, error) = list(query).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["status"], 400, "{error}");
        assert!(error["error"].is_string(), "{error}");
    }
    let (status, error) = get(format!("{base}/shipments/{run}-unknown")).await;
    assert_eq!((status, &error["status"]), (404, &serde_json::json!(404)), "{error}");
}

#[tokio::test]
async fn a_cancellation_keeps_a_scheduled_row_or_stands_in_for_one_never_scheduled() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (scheduled_order, unscheduled_order) = (format!("o-1-{run}"), format!("o-2-{run}"));
    let scheduled_history = [
        ShipmentEvent::ShipmentScheduled {
            customer_id: "c-1".into(),
            carrier: "DPD".into(),
            tracking_number: "DPD0123456789AB".into(),
            destination_country: "FR".into(),
            lines: vec![ShipmentLine { sku: "s".into(), quantity: 1 }],
            shipping_address: None,
        },
        ShipmentEvent::ShipmentCancelled { customer_id: "c-1".into() },
    ];
    for (version, payload) in (1..).zip(scheduled_history) {
        apply(&pool, &project_shipment(&envelope(&scheduled_order, version, payload))).await;
    }
    apply(&pool, &project_shipment(&envelope(&unscheduled_order, 1, ShipmentEvent::ShipmentCancelled { customer_id: "c-2".into() }))).await;

    let base = serve(api().into(), pool).await;
    let (status, shipment) = get(format!("{base}/shipments/{scheduled_order}")).await;
    assert_eq!(status, 200);
    assert_eq!((&shipment["status"], &shipment["carrier"], &shipment["destination_country"]), (&json!("CANCELLED"), &json!("DPD"), &json!("FR")));
    let (status, shipment) = get(format!("{base}/shipments/{unscheduled_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        shipment,
        json!({
            "order_id": unscheduled_order, "customer_id": "c-2", "status": "CANCELLED", "carrier": null,
            "tracking_number": null, "destination_country": "", "reason": null, "updated_at": 1_700_000_000_001_i64,
            "last_tracking": null, "tracking": [],
        })
    );
}

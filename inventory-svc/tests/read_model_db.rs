//! The stock view against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use axum::{
    Json,
    extract::{Path, State},
};
use contracts::stock::StockEvent;
use inventory_svc::MIGRATOR;
use inventory_svc::read_model::{MIXED, StockView, api, get_stock, project_stock};
use runtime::http::ReadDb;
use runtime::testing::{apply, envelope, read_model_db, serve};

#[tokio::test]
async fn projected_history_reads_back_through_the_route() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let history = [
        StockEvent::StockRestocked { quantity: 10 },
        StockEvent::StockReserved { order_id: "o1".into(), quantity: 3 },
        StockEvent::StockReserved { order_id: "o2".into(), quantity: 4 },
        StockEvent::StockReservationRejected { order_id: "o3".into(), requested: 9, available: 3 },
        StockEvent::StockReleased { order_id: "o2".into(), quantity: 4 },
        StockEvent::StockShipped { order_id: "o1".into(), quantity: 3 },
    ];
    for (index, event) in history.into_iter().enumerate() {
        apply(&pool, &project_stock(&envelope("SKU-A", index as i64 + 1, event))).await;
    }
    let Json(stock) = get_stock(State(ReadDb(pool.clone())), Path("SKU-A".into())).await.unwrap();
    assert_eq!(
        stock,
        StockView { sku: "SKU-A".into(), on_hand: 7, reserved: 0, available: 7, low_stock_threshold: None, low: false, low_since: None }
    );

    let totals: (i64, i64, i64) =
        sqlx::query_as("SELECT restocked_total, shipped_total, updated_at FROM stock WHERE sku = 'SKU-A'").fetch_one(&pool).await.unwrap();
    assert_eq!(totals, (10, 3, 1_700_000_000_006));
    let reservations: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT order_id, quantity, status FROM reservations WHERE sku = 'SKU-A' ORDER BY order_id").fetch_all(&pool).await.unwrap();
    assert_eq!(reservations, [("o1".into(), 3, "SHIPPED".into()), ("o2".into(), 4, "RELEASED".into()), ("o3".into(), 9, "REJECTED".into())]);
}

#[tokio::test]
async fn a_sku_never_seen_is_not_found_but_one_only_asked_for_is_empty() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let rejected = StockEvent::StockReservationRejected { order_id: "o1".into(), requested: 1, available: 0 };
    apply(&pool, &project_stock(&envelope("SKU-ASKED", 1, rejected))).await;

    let Json(stock) = get_stock(State(ReadDb(pool.clone())), Path("SKU-ASKED".into())).await.unwrap();
    assert_eq!(
        stock,
        StockView { sku: "SKU-ASKED".into(), on_hand: 0, reserved: 0, available: 0, low_stock_threshold: None, low: false, low_since: None }
    );
    let error = get_stock(State(ReadDb(pool)), Path("SKU-NEVER".into())).await.unwrap_err();
    assert_eq!(error.status, axum::http::StatusCode::NOT_FOUND);
}

async fn get(url: String) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Ids unique to one test run, for a shared `TEST_DATABASE_URL`.
fn run_prefix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[track_caller]
fn assert_bad_request((status, body): (u16, serde_json::Value)) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["status"], 400, "{body}");
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn stock_below_a_threshold_lists_the_skus_with_less_available_by_sku() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = run_prefix();
    let sku = |name: &str| format!("{run}-{name}");
    let histories = [
        // available 10 - 7 = 3, below its threshold of 5
        (
            "a",
            vec![
                StockEvent::LowStockThresholdSet { threshold: 5 },
                StockEvent::StockRestocked { quantity: 10 },
                StockEvent::StockReserved { order_id: "o1".into(), quantity: 7 },
                StockEvent::StockLow { sku: sku("a"), available: 3, threshold: 5 },
            ],
        ),
        // available 5
        ("b", vec![StockEvent::StockRestocked { quantity: 5 }]),
        // only asked for: available 0
        ("c", vec![StockEvent::StockReservationRejected { order_id: "o1".into(), requested: 1, available: 0 }]),
        // available 20 - 2 = 18 after a shipment
        (
            "d",
            vec![
                StockEvent::StockRestocked { quantity: 20 },
                StockEvent::StockReserved { order_id: "o2".into(), quantity: 2 },
                StockEvent::StockShipped { order_id: "o2".into(), quantity: 2 },
            ],
        ),
    ];
    // Projected in reverse name order: the answer's order is the sku's, not the rows'.
    for (name, history) in histories.into_iter().rev() {
        for (version, event) in (1..).zip(history) {
            apply(&pool, &project_stock(&envelope(&sku(name), version, event))).await;
        }
    }
    let pool_for_alerts = pool.clone();
    let base = serve(api().into(), pool).await;
    let ours = |list: &serde_json::Value| -> Vec<(String, i64)> {
        list.as_array()
            .expect("a JSON array")
            .iter()
            .filter_map(|stock| {
                let name = stock["sku"].as_str()?.strip_prefix(&format!("{run}-"))?;
                Some((name.to_string(), stock["available"].as_i64()?))
            })
            .collect()
    };
    let below = |query: &str| get(format!("{base}/stock?{query}"));

    let (status, list) = below("below=5").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ours(&list), [("a".to_string(), 3), ("c".to_string(), 0)]);
    let first = list.as_array().unwrap().iter().find(|stock| stock["sku"] == sku("a")).unwrap();
    assert_eq!(
        first,
        &serde_json::json!({
            "sku": sku("a"), "on_hand": 10, "reserved": 7, "available": 3,
            "low_stock_threshold": 5, "low": true, "low_since": 1_700_000_000_004_i64,
        })
    );
    assert_eq!(ours(&below("below=6").await.1), [("a".into(), 3), ("b".into(), 5), ("c".into(), 0)]);
    assert_eq!(ours(&below("below=1000").await.1).len(), 4);
    assert_eq!(below("below=0").await, (200, serde_json::json!([])));
    let (status, limited) = below("below=6&limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(limited.as_array().unwrap().len(), 1);

    // The alerts: only a is low; the two filters combine.
    assert_eq!(ours(&below("low=true&limit=1000").await.1), [("a".to_string(), 3)]);
    assert_eq!(ours(&below("low=true&below=3").await.1), []);
    assert_eq!(ours(&below("low=false&below=6").await.1), [("b".to_string(), 5), ("c".to_string(), 0)]);
    apply(&pool_for_alerts, &project_stock(&envelope(&sku("a"), 5, StockEvent::StockReplenished { sku: sku("a"), available: 9, threshold: 5 })))
        .await;
    assert_eq!(ours(&below("low=true&limit=1000").await.1), []);

    for query in ["", "below=", "below=-1", "below=abc", "below=2.5", "below=5&limit=0", "below=5&limit=1001", "below=5&limit=x", "low=maybe", "low="]
    {
        assert_bad_request(below(query).await);
    }
}

#[tokio::test]
async fn an_orders_reservation_has_its_lines_by_sku_and_their_common_status() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = run_prefix();
    let (shipped, mixed) = (format!("{run}-o1"), format!("{run}-o2"));
    let (sku_a, sku_b) = (format!("{run}-a"), format!("{run}-b"));
    let a_history = [
        StockEvent::StockRestocked { quantity: 10 },
        StockEvent::StockReserved { order_id: shipped.clone(), quantity: 2 },
        StockEvent::StockShipped { order_id: shipped.clone(), quantity: 2 },
        StockEvent::StockReserved { order_id: mixed.clone(), quantity: 3 },
        StockEvent::StockReleased { order_id: mixed.clone(), quantity: 3 },
    ];
    let b_history = [
        StockEvent::StockRestocked { quantity: 1 },
        StockEvent::StockReserved { order_id: shipped.clone(), quantity: 1 },
        StockEvent::StockShipped { order_id: shipped.clone(), quantity: 1 },
        StockEvent::StockReservationRejected { order_id: mixed.clone(), requested: 4, available: 0 },
    ];
    for (sku, history) in [(&sku_b, b_history.to_vec()), (&sku_a, a_history.to_vec())] {
        for (version, event) in (1..).zip(history) {
            apply(&pool, &project_stock(&envelope(sku, version, event))).await;
        }
    }
    let base = serve(api().into(), pool).await;

    let (status, reservation) = get(format!("{base}/reservations/{shipped}")).await;
    assert_eq!(status, 200, "{reservation}");
    assert_eq!(
        reservation,
        serde_json::json!({
            "order_id": shipped,
            "status": "SHIPPED",
            "lines": [
                { "sku": sku_a, "quantity": 2, "status": "SHIPPED" },
                { "sku": sku_b, "quantity": 1, "status": "SHIPPED" },
            ],
        })
    );
    let (_, reservation) = get(format!("{base}/reservations/{mixed}")).await;
    assert_eq!(reservation["status"], MIXED);
    assert_eq!(
        reservation["lines"],
        serde_json::json!([
            { "sku": sku_a, "quantity": 3, "status": "RELEASED" },
            { "sku": sku_b, "quantity": 4, "status": "REJECTED" },
        ])
    );

    let (status, error) = get(format!("{base}/reservations/{run}-unknown")).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["status"], 404);
    assert!(error["error"].as_str().unwrap().contains("unknown"), "{error}");
}

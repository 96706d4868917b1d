//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::EventEnvelope;
use contracts::account::{AccountEvent, DeclineReason};
use payment_svc::read_model::{project_account, routes};
use runtime::SqlValue;
use runtime::http::ReadDb;
use serde_json::{Value, json};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

async fn migrated_pool() -> AnyPool {
    sqlx::any::install_default_drivers();
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| {
        let dir = std::env::temp_dir().join(format!("payment-svc-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        format!("sqlite://{}/read.db?mode=rwc", dir.display())
    });
    let pool = AnyPoolOptions::new().max_connections(2).connect(&url).await.unwrap();
    sqlx::migrate!("./migrations").run(&pool).await.unwrap();
    pool
}

async fn apply(pool: &AnyPool, customer_id: &str, payload: AccountEvent) {
    let event = EventEnvelope {
        event_id: uuid::Uuid::new_v4().to_string(),
        aggregate_id: customer_id.to_string(),
        version: 1,
        previous_event_id: None,
        occurred_at: 1_700_000_000_000,
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        command_id: "cmd".into(),
        command_offset: 0,
        payload,
    };
    let mut tx = pool.begin().await.unwrap();
    for write in project_account(&event) {
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
    let app = routes().with_state(ReadDb(pool));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn accounts_and_payments_follow_the_events() {
    let pool = migrated_pool().await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (customer, broke_customer, paid_order, declined_order) =
        (format!("c-{run}"), format!("c-none-{run}"), format!("o-1-{run}"), format!("o-2-{run}"));

    apply(&pool, &customer, AccountEvent::FundsDeposited { amount_cents: 500, currency: "EUR".into() }).await;
    apply(&pool, &customer, AccountEvent::FundsDeposited { amount_cents: 200, currency: "EUR".into() }).await;
    apply(&pool, &customer, AccountEvent::PaymentCaptured { order_id: paid_order.clone(), amount_cents: 300, currency: "EUR".into() }).await;
    apply(&pool, &customer, AccountEvent::PaymentRefunded { order_id: paid_order.clone(), amount_cents: 300, currency: "EUR".into() }).await;
    apply(
        &pool,
        &broke_customer,
        AccountEvent::PaymentDeclined { order_id: declined_order.clone(), amount_cents: 900, reason: DeclineReason::AccountNotFound },
    )
    .await;

    let base = serve(pool).await;
    let (status, account) = get(format!("{base}/accounts/{customer}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        account,
        json!({
            "customer_id": customer, "balance_cents": 700, "currency": "EUR", "deposited_cents": 700,
            "captured_cents": 300, "refunded_cents": 300, "updated_at": 1_700_000_000_000_i64
        })
    );

    let (status, missing) = get(format!("{base}/accounts/{broke_customer}")).await;
    assert_eq!(status, 404, "{missing}");

    let (status, payment) = get(format!("{base}/payments/{paid_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["currency"], "EUR");

    let (status, payment) = get(format!("{base}/payments/{declined_order}")).await;
    assert_eq!(status, 200);
    assert_eq!(payment["status"], "DECLINED");
    assert_eq!(payment["decline_reason"], "ACCOUNT_NOT_FOUND");
    assert_eq!(payment["currency"], Value::Null);
    assert_eq!(payment["customer_id"], broke_customer.as_str());
}

//! The read model against a real database: migrations, projected writes and query routes.
//! SQLite in a temp file by default; set `TEST_DATABASE_URL` (e.g. a fresh PostgreSQL database)
//! to run the same checks there.
use contracts::account::{AccountEvent, DeclineReason};
use payment_svc::MIGRATOR;
use payment_svc::read_model::{api, project_account};
use runtime::testing::{apply, envelope, read_model_db, serve};
use serde_json::{Value, json};

async fn get(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn accounts_and_payments_follow_the_events() {
    let (pool, _db) = read_model_db(&MIGRATOR).await;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (customer, broke_customer, paid_order, declined_order) =
        (format!("c-{run}"), format!("c-none-{run}"), format!("o-1-{run}"), format!("o-2-{run}"));

    let history = [
        AccountEvent::FundsDeposited { amount_cents: 500, currency: "EUR".into() },
        AccountEvent::FundsDeposited { amount_cents: 200, currency: "EUR".into() },
        AccountEvent::PaymentCaptured { order_id: paid_order.clone(), amount_cents: 300, currency: "EUR".into() },
        AccountEvent::PaymentRefunded { order_id: paid_order.clone(), amount_cents: 300, currency: "EUR".into() },
    ];
    for (version, payload) in (1..).zip(history) {
        apply(&pool, &project_account(&envelope(&customer, version, payload))).await;
    }
    let declined = AccountEvent::PaymentDeclined { order_id: declined_order.clone(), amount_cents: 900, reason: DeclineReason::AccountNotFound };
    apply(&pool, &project_account(&envelope(&broke_customer, 1, declined))).await;

    let base = serve(api().into(), pool).await;
    let (status, account) = get(format!("{base}/accounts/{customer}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        account,
        json!({
            "customer_id": customer, "balance_cents": 700, "currency": "EUR", "deposited_cents": 700,
            "captured_cents": 300, "refunded_cents": 300, "updated_at": 1_700_000_000_004_i64
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

//! Read model of `account.events`: tables `accounts` and `payments`
//! (`migrations/0001_accounts.sql`), and the query routes over them.
//!
//! Amounts are cents; `updated_at` is epoch millis taken from the event's `occurred_at`.
use axum::{
    Json,
    extract::{Path, State},
};
use contracts::EventEnvelope;
use contracts::account::AccountEvent;
use runtime::http::{ApiError, ApiRoutes, ReadDb};
use runtime::{SqlWrite, params};
use serde::Serialize;
use utoipa::ToSchema;

const UPSERT_DEPOSIT: &str = "INSERT INTO accounts \
     (customer_id, currency, balance_cents, deposited_cents, captured_cents, refunded_cents, updated_at) \
     VALUES ($1, $2, $3, $3, 0, 0, $4) \
     ON CONFLICT (customer_id) DO UPDATE SET \
     currency = excluded.currency, \
     balance_cents = accounts.balance_cents + excluded.balance_cents, \
     deposited_cents = accounts.deposited_cents + excluded.deposited_cents, \
     updated_at = excluded.updated_at";

// A capture or refund only happens on an account that has a deposit, so its row exists.
const APPLY_CAPTURE: &str = "UPDATE accounts SET \
     balance_cents = balance_cents - $2, captured_cents = captured_cents + $2, updated_at = $3 \
     WHERE customer_id = $1";

const APPLY_REFUND: &str = "UPDATE accounts SET \
     balance_cents = balance_cents + $2, refunded_cents = refunded_cents + $2, updated_at = $3 \
     WHERE customer_id = $1";

const UPSERT_PAYMENT: &str = "INSERT INTO payments \
     (order_id, customer_id, status, amount_cents, currency, decline_reason, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (order_id) DO UPDATE SET \
     customer_id = excluded.customer_id, status = excluded.status, amount_cents = excluded.amount_cents, \
     currency = excluded.currency, decline_reason = excluded.decline_reason, updated_at = excluded.updated_at";

/// SQL writes for one `account.events` event (aggregate id = customer id).
pub fn project_account(event: &EventEnvelope<AccountEvent>) -> Vec<SqlWrite> {
    let customer_id = &event.aggregate_id;
    let at = event.occurred_at;
    let payment = |order_id: &String, status: &str, amount_cents: i64, currency: Option<&String>, decline_reason: Option<&str>| {
        SqlWrite::new(UPSERT_PAYMENT, params![order_id, customer_id, status, amount_cents, currency, decline_reason, at])
    };
    match &event.payload {
        AccountEvent::FundsDeposited { amount_cents, currency } => {
            vec![SqlWrite::new(UPSERT_DEPOSIT, params![customer_id, currency, *amount_cents, at])]
        }
        AccountEvent::PaymentCaptured { order_id, amount_cents, currency } => vec![
            SqlWrite::new(APPLY_CAPTURE, params![customer_id, *amount_cents, at]),
            payment(order_id, "CAPTURED", *amount_cents, Some(currency), None),
        ],
        // Touches payments only: a decline for a customer without deposits must not invent an account.
        AccountEvent::PaymentDeclined { order_id, amount_cents, reason } => {
            let reason: &'static str = reason.into();
            vec![payment(order_id, "DECLINED", *amount_cents, None, Some(reason))]
        }
        AccountEvent::PaymentRefunded { order_id, amount_cents, currency } => vec![
            SqlWrite::new(APPLY_REFUND, params![customer_id, *amount_cents, at]),
            payment(order_id, "REFUNDED", *amount_cents, Some(currency), None),
        ],
    }
}

/// `GET /accounts/{customer_id}` and `GET /payments/{order_id}`.
/// The query routes, with their OpenAPI documentation.
pub fn api() -> ApiRoutes {
    ApiRoutes::new().routes(utoipa_axum::routes!(get_account)).routes(utoipa_axum::routes!(get_payment))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub customer_id: String,
    pub balance_cents: i64,
    pub currency: String,
    pub deposited_cents: i64,
    pub captured_cents: i64,
    pub refunded_cents: i64,
    /// Epoch millis.
    pub updated_at: i64,
}

type AccountRow = (String, String, i64, i64, i64, i64, i64);

/// A customer's account: balance and what was deposited, captured and refunded.
#[utoipa::path(get, path = "/accounts/{customer_id}", tag = "queries",
    params(("customer_id" = String, Path, description = "The customer")),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 404, description = "No deposit by this customer yet", body = ApiError)))]
async fn get_account(State(ReadDb(pool)): State<ReadDb>, Path(customer_id): Path<String>) -> Result<Json<AccountView>, ApiError> {
    let row: Option<AccountRow> = sqlx::query_as(
        "SELECT customer_id, currency, balance_cents, deposited_cents, captured_cents, refunded_cents, updated_at \
         FROM accounts WHERE customer_id = $1",
    )
    .bind(&customer_id)
    .fetch_optional(&pool)
    .await?;
    let (customer_id_found, currency, balance_cents, deposited_cents, captured_cents, refunded_cents, updated_at) =
        row.ok_or_else(|| ApiError::not_found("account", &customer_id))?;
    Ok(Json(AccountView { customer_id: customer_id_found, balance_cents, currency, deposited_cents, captured_cents, refunded_cents, updated_at }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    pub order_id: String,
    pub customer_id: String,
    /// `CAPTURED`, `DECLINED` or `REFUNDED`.
    pub status: String,
    pub amount_cents: i64,
    pub currency: Option<String>,
    pub decline_reason: Option<String>,
    /// Epoch millis.
    pub updated_at: i64,
}

type PaymentRow = (String, String, String, i64, Option<String>, Option<String>, i64);

/// The payment of one order.
#[utoipa::path(get, path = "/payments/{order_id}", tag = "queries",
    params(("order_id" = String, Path, description = "The order")),
    responses(
        (status = 200, description = "The order's payment", body = PaymentView),
        (status = 404, description = "No payment event about this order yet", body = ApiError)))]
async fn get_payment(State(ReadDb(pool)): State<ReadDb>, Path(order_id): Path<String>) -> Result<Json<PaymentView>, ApiError> {
    let row: Option<PaymentRow> = sqlx::query_as(
        "SELECT order_id, customer_id, status, amount_cents, currency, decline_reason, updated_at \
         FROM payments WHERE order_id = $1",
    )
    .bind(&order_id)
    .fetch_optional(&pool)
    .await?;
    let (order_id_found, customer_id, status, amount_cents, currency, decline_reason, updated_at) =
        row.ok_or_else(|| ApiError::not_found("payment for order", &order_id))?;
    Ok(Json(PaymentView { order_id: order_id_found, customer_id, status, amount_cents, currency, decline_reason, updated_at }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::account::DeclineReason;
    use runtime::SqlValue::{self, Int, Null, Text};
    use runtime::testing::envelope;

    fn text(value: &str) -> SqlValue {
        Text(value.into())
    }

    #[test]
    fn deposit_upserts_the_account() {
        let writes = project_account(&envelope("c-1", 1, AccountEvent::FundsDeposited { amount_cents: 500, currency: "EUR".into() }));
        assert_eq!(writes.len(), 1);
        assert!(writes[0].sql.starts_with("INSERT INTO accounts"));
        assert!(writes[0].sql.contains("ON CONFLICT (customer_id) DO UPDATE"));
        assert_eq!(writes[0].params, vec![text("c-1"), text("EUR"), Int(500), Int(1_700_000_000_001)]);
    }

    #[test]
    fn capture_moves_the_balance_and_records_the_payment() {
        let writes =
            project_account(&envelope("c-1", 1, AccountEvent::PaymentCaptured { order_id: "o-1".into(), amount_cents: 300, currency: "EUR".into() }));
        assert_eq!(writes.len(), 2);
        assert!(writes[0].sql.starts_with("UPDATE accounts"));
        assert_eq!(writes[0].params, vec![text("c-1"), Int(300), Int(1_700_000_000_001)]);
        assert!(writes[1].sql.starts_with("INSERT INTO payments"));
        assert_eq!(writes[1].params, vec![text("o-1"), text("c-1"), text("CAPTURED"), Int(300), text("EUR"), Null, Int(1_700_000_000_001)]);
    }

    #[test]
    fn decline_records_only_the_payment() {
        let writes = project_account(&envelope(
            "c-1",
            1,
            AccountEvent::PaymentDeclined { order_id: "o-1".into(), amount_cents: 300, reason: DeclineReason::AccountNotFound },
        ));
        assert_eq!(writes.len(), 1);
        assert!(writes[0].sql.starts_with("INSERT INTO payments"));
        assert_eq!(
            writes[0].params,
            vec![text("o-1"), text("c-1"), text("DECLINED"), Int(300), Null, text("ACCOUNT_NOT_FOUND"), Int(1_700_000_000_001)]
        );
    }

    #[test]
    fn refund_returns_the_balance_and_marks_the_payment() {
        let writes =
            project_account(&envelope("c-1", 1, AccountEvent::PaymentRefunded { order_id: "o-1".into(), amount_cents: 300, currency: "EUR".into() }));
        assert_eq!(writes.len(), 2);
        assert!(writes[0].sql.contains("refunded_cents = refunded_cents + $2"));
        assert_eq!(writes[1].params[2], text("REFUNDED"));
    }

    #[test]
    fn placeholders_match_parameter_counts() {
        let events = [
            AccountEvent::FundsDeposited { amount_cents: 1, currency: "EUR".into() },
            AccountEvent::PaymentCaptured { order_id: "o".into(), amount_cents: 1, currency: "EUR".into() },
            AccountEvent::PaymentDeclined { order_id: "o".into(), amount_cents: 1, reason: DeclineReason::InsufficientFunds },
            AccountEvent::PaymentRefunded { order_id: "o".into(), amount_cents: 1, currency: "EUR".into() },
        ];
        for event in events {
            for write in project_account(&envelope("c-1", 1, event)) {
                let highest = (1..=20).rev().find(|n| write.sql.contains(&format!("${n}"))).unwrap_or(0);
                assert_eq!(highest, write.params.len(), "{}", write.sql);
            }
        }
    }
}

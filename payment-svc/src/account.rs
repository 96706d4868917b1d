//! The Account aggregate (key `customer_id`) as a pure decider: deposits, payment captures
//! for orders, and refunds of captured payments. An account keeps every captured payment (a
//! refund may still come) and only the last declined or refunded orders.
use contracts::account::{Account, AccountCommand, AccountEvent, DeclineReason};
use contracts::validate::{InvalidField, Validate};
use runtime::{Decider, RecentIds, Rejection};
use std::collections::BTreeMap;

/// Largest single deposit (the contract's bound on every amount); bounds the balance far
/// below `i64::MAX` in practice.
pub use contracts::validate::MAX_AMOUNT_CENTS as MAX_DEPOSIT_CENTS;

#[derive(Debug, Clone, Copy, Default)]
pub struct AccountDecider;

/// How many orders whose payment was declined or refunded an account remembers (a repeated
/// capture for one of them changes nothing); older ones are forgotten, so an account's state
/// does not grow with every declined or refunded order.
pub const CLOSED_PAYMENTS_REMEMBERED: usize = 1_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "StoredAccountState")]
pub struct AccountState {
    /// Set by the first `FundsDeposited`; an account exists exactly when this is `Some`.
    pub currency: Option<String>,
    pub balance_cents: i64,
    /// Captured payments, which a refund may still return: order → payment.
    pub captured: BTreeMap<String, CapturedPayment>,
    /// The last [`CLOSED_PAYMENTS_REMEMBERED`] orders whose payment was declined or refunded.
    pub closed: RecentIds,
}

impl AccountState {
    pub fn exists(&self) -> bool {
        self.currency.is_some()
    }

    /// The order has had its one payment on this account, whatever became of it.
    fn has_payment(&self, order_id: &str) -> bool {
        self.captured.contains_key(order_id) || self.closed.contains(order_id)
    }

    fn close(&mut self, order_id: &str) {
        self.captured.remove(order_id);
        self.closed.remember(order_id, CLOSED_PAYMENTS_REMEMBERED);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CapturedPayment {
    pub amount_cents: i64,
    pub currency: String,
}

/// A state as snapshots hold it, older ones included: those kept every order's payment,
/// captured, declined or refunded, in `payments`.
#[derive(serde::Deserialize)]
struct StoredAccountState {
    currency: Option<String>,
    balance_cents: i64,
    #[serde(default)]
    captured: BTreeMap<String, CapturedPayment>,
    #[serde(default)]
    closed: RecentIds,
    #[serde(default)]
    payments: BTreeMap<String, StoredPayment>,
}

#[derive(serde::Deserialize)]
struct StoredPayment {
    amount_cents: i64,
    currency: Option<String>,
    status: StoredPaymentStatus,
}

#[derive(serde::Deserialize)]
enum StoredPaymentStatus {
    Captured,
    Declined,
    Refunded,
}

impl From<StoredAccountState> for AccountState {
    fn from(stored: StoredAccountState) -> Self {
        let mut state =
            AccountState { currency: stored.currency, balance_cents: stored.balance_cents, captured: stored.captured, closed: stored.closed };
        for (order_id, payment) in stored.payments {
            match (payment.status, payment.currency) {
                (StoredPaymentStatus::Captured, Some(currency)) => {
                    state.captured.insert(order_id, CapturedPayment { amount_cents: payment.amount_cents, currency });
                }
                _ => state.closed.remember(&order_id, CLOSED_PAYMENTS_REMEMBERED),
            }
        }
        state
    }
}

impl Decider for AccountDecider {
    type Stream = Account;
    type State = AccountState;

    fn decide(&self, state: &AccountState, command: &AccountCommand) -> Result<Vec<AccountEvent>, Rejection> {
        // The stateless rules are the contract's, shared with the HTTP write path and the
        // command processor.
        command.validate().map_err(invalid)?;
        match command {
            AccountCommand::DepositFunds { amount_cents, currency, .. } => deposit(state, *amount_cents, currency),
            AccountCommand::CapturePayment { order_id, amount_cents, currency, .. } => capture(state, order_id, *amount_cents, currency),
            AccountCommand::RefundPayment { order_id, .. } => refund(state, order_id),
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::FundsDeposited { amount_cents, currency } => {
                state.currency.get_or_insert_with(|| currency.clone());
                state.balance_cents = state.balance_cents.saturating_add(*amount_cents);
            }
            AccountEvent::PaymentCaptured { order_id, amount_cents, currency } => {
                state.balance_cents = state.balance_cents.saturating_sub(*amount_cents);
                state.captured.insert(order_id.clone(), CapturedPayment { amount_cents: *amount_cents, currency: currency.clone() });
            }
            AccountEvent::PaymentDeclined { order_id, .. } => state.close(order_id),
            AccountEvent::PaymentRefunded { order_id, amount_cents, .. } => {
                state.balance_cents = state.balance_cents.saturating_add(*amount_cents);
                state.close(order_id);
            }
        }
        state
    }
}

fn deposit(state: &AccountState, amount_cents: i64, currency: &str) -> Result<Vec<AccountEvent>, Rejection> {
    if let Some(account_currency) = &state.currency
        && account_currency != currency
    {
        return Err(Rejection::Refused(format!("account currency is {account_currency}")));
    }
    if state.balance_cents.checked_add(amount_cents).is_none() {
        return Err(Rejection::Refused("deposit would overflow the balance".into()));
    }
    Ok(vec![AccountEvent::FundsDeposited { amount_cents, currency: currency.to_string() }])
}

fn capture(state: &AccountState, order_id: &str, amount_cents: i64, currency: &str) -> Result<Vec<AccountEvent>, Rejection> {
    // At most one payment per order: a redelivered or repeated capture changes nothing.
    if state.has_payment(order_id) {
        return Ok(vec![]);
    }
    let decline = |reason| Ok(vec![AccountEvent::PaymentDeclined { order_id: order_id.to_string(), amount_cents, reason }]);
    match &state.currency {
        None => decline(DeclineReason::AccountNotFound),
        Some(account_currency) if account_currency != currency => decline(DeclineReason::CurrencyMismatch),
        Some(_) if state.balance_cents < amount_cents => decline(DeclineReason::InsufficientFunds),
        Some(_) => Ok(vec![AccountEvent::PaymentCaptured { order_id: order_id.to_string(), amount_cents, currency: currency.to_string() }]),
    }
}

fn refund(state: &AccountState, order_id: &str) -> Result<Vec<AccountEvent>, Rejection> {
    match state.captured.get(order_id) {
        Some(CapturedPayment { amount_cents, currency }) => {
            Ok(vec![AccountEvent::PaymentRefunded { order_id: order_id.to_string(), amount_cents: *amount_cents, currency: currency.clone() }])
        }
        // Nothing captured (never paid, declined) or already refunded: nothing to give back.
        None => Ok(vec![]),
    }
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::decider::fold;
    use runtime::testing::{Decision, given};

    fn deposit(amount_cents: i64, currency: &str) -> AccountCommand {
        AccountCommand::DepositFunds { customer_id: "c-1".into(), amount_cents, currency: currency.into() }
    }
    fn capture(order_id: &str, amount_cents: i64, currency: &str) -> AccountCommand {
        AccountCommand::CapturePayment { customer_id: "c-1".into(), order_id: order_id.into(), amount_cents, currency: currency.into() }
    }
    fn refund(order_id: &str) -> AccountCommand {
        AccountCommand::RefundPayment { customer_id: "c-1".into(), order_id: order_id.into() }
    }
    fn deposited(amount_cents: i64, currency: &str) -> AccountEvent {
        AccountEvent::FundsDeposited { amount_cents, currency: currency.into() }
    }
    fn captured(order_id: &str, amount_cents: i64) -> AccountEvent {
        AccountEvent::PaymentCaptured { order_id: order_id.into(), amount_cents, currency: "EUR".into() }
    }
    fn declined(order_id: &str, amount_cents: i64, reason: DeclineReason) -> AccountEvent {
        AccountEvent::PaymentDeclined { order_id: order_id.into(), amount_cents, reason }
    }
    fn refunded(order_id: &str, amount_cents: i64) -> AccountEvent {
        AccountEvent::PaymentRefunded { order_id: order_id.into(), amount_cents, currency: "EUR".into() }
    }

    // DepositFunds

    #[test]
    fn deposit_opens_an_account() {
        given(&AccountDecider, vec![]).when(deposit(500, "EUR")).then(vec![deposited(500, "EUR")]);
    }

    #[test]
    fn deposit_adds_to_an_account_in_the_same_currency() {
        given(&AccountDecider, vec![deposited(500, "EUR")]).when(deposit(MAX_DEPOSIT_CENTS, "EUR")).then(vec![deposited(MAX_DEPOSIT_CENTS, "EUR")]);
    }

    #[test]
    fn deposit_amount_must_be_positive_and_bounded() {
        given(&AccountDecider, vec![]).when(deposit(0, "EUR")).then_invalid("amount_cents");
        given(&AccountDecider, vec![]).when(deposit(-5, "EUR")).then_invalid("amount_cents");
        given(&AccountDecider, vec![]).when(deposit(MAX_DEPOSIT_CENTS + 1, "EUR")).then_invalid("amount_cents");
    }

    #[test]
    fn deposit_currency_must_be_three_upper_case_letters() {
        for bad in ["", "EU", "EURO", "eur", "E1R", "ÄUR"] {
            given(&AccountDecider, vec![]).when(deposit(100, bad)).then_invalid("currency");
        }
    }

    #[test]
    fn deposit_customer_id_must_be_1_to_128_chars() {
        let command = |customer_id: String| AccountCommand::DepositFunds { customer_id, amount_cents: 1, currency: "EUR".into() };
        given(&AccountDecider, vec![]).when(command(String::new())).then_invalid("customer_id");
        given(&AccountDecider, vec![]).when(command("c".repeat(129))).then_invalid("customer_id");
        given(&AccountDecider, vec![]).when(command("c".repeat(128))).then(vec![deposited(1, "EUR")]);
    }

    #[test]
    fn deposit_in_another_currency_is_refused() {
        given(&AccountDecider, vec![deposited(500, "EUR")]).when(deposit(100, "USD")).then_refused_exactly("account currency is EUR");
    }

    #[test]
    fn deposit_that_would_overflow_the_balance_is_refused() {
        // Reaching this through events would take millions of deposits; start from the state.
        let nearly_full = AccountState { currency: Some("EUR".into()), balance_cents: i64::MAX - 1, ..Default::default() };
        Decision::<AccountDecider>(AccountDecider.decide(&nearly_full, &deposit(2, "EUR")))
            .then_refused_exactly("deposit would overflow the balance");
    }

    // CapturePayment

    #[test]
    fn capture_with_enough_funds_is_captured() {
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(capture("o-1", 1_000, "EUR")).then(vec![captured("o-1", 1_000)]);
    }

    #[test]
    fn capture_of_zero_is_captured_even_on_an_empty_balance() {
        given(&AccountDecider, vec![deposited(1, "EUR"), captured("o-0", 1)]).when(capture("o-1", 0, "EUR")).then(vec![captured("o-1", 0)]);
    }

    #[test]
    fn capture_without_an_account_is_declined() {
        given(&AccountDecider, vec![]).when(capture("o-1", 100, "EUR")).then(vec![declined("o-1", 100, DeclineReason::AccountNotFound)]);
    }

    #[test]
    fn capture_in_another_currency_is_declined() {
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(capture("o-1", 100, "USD")).then(vec![declined(
            "o-1",
            100,
            DeclineReason::CurrencyMismatch,
        )]);
    }

    #[test]
    fn capture_above_the_balance_is_declined() {
        given(&AccountDecider, vec![deposited(1_000, "EUR"), captured("o-0", 600)]).when(capture("o-1", 401, "EUR")).then(vec![declined(
            "o-1",
            401,
            DeclineReason::InsufficientFunds,
        )]);
    }

    #[test]
    fn capture_for_an_order_already_paid_declined_or_refunded_is_a_no_op() {
        given(&AccountDecider, vec![deposited(1_000, "EUR"), captured("o-1", 100)]).when(capture("o-1", 100, "EUR")).then(vec![]);
        given(&AccountDecider, vec![declined("o-1", 100, DeclineReason::AccountNotFound), deposited(1_000, "EUR")])
            .when(capture("o-1", 100, "EUR"))
            .then(vec![]);
        given(&AccountDecider, vec![deposited(1_000, "EUR"), captured("o-1", 100), refunded("o-1", 100)])
            .when(capture("o-1", 100, "EUR"))
            .then(vec![]);
    }

    #[test]
    fn capture_must_be_well_formed() {
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(capture("o-1", -1, "EUR")).then_invalid("amount_cents");
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(capture("", 1, "EUR")).then_invalid("order_id");
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(capture("o-1", 1, "eur")).then_invalid("currency");
        let no_customer =
            AccountCommand::CapturePayment { customer_id: String::new(), order_id: "o-1".into(), amount_cents: 1, currency: "EUR".into() };
        given(&AccountDecider, vec![]).when(no_customer).then_invalid("customer_id");
    }

    // RefundPayment

    #[test]
    fn refund_of_a_captured_payment_returns_the_amount() {
        given(&AccountDecider, vec![deposited(1_000, "EUR"), captured("o-1", 300)]).when(refund("o-1")).then(vec![refunded("o-1", 300)]);
    }

    #[test]
    fn refund_happens_exactly_once() {
        given(&AccountDecider, vec![deposited(1_000, "EUR"), captured("o-1", 300), refunded("o-1", 300)]).when(refund("o-1")).then(vec![]);
    }

    #[test]
    fn refund_without_a_captured_payment_is_a_no_op() {
        given(&AccountDecider, vec![]).when(refund("o-1")).then(vec![]);
        given(&AccountDecider, vec![deposited(1_000, "EUR")]).when(refund("o-1")).then(vec![]);
        given(&AccountDecider, vec![deposited(1_000, "EUR"), declined("o-1", 5_000, DeclineReason::InsufficientFunds)])
            .when(refund("o-1"))
            .then(vec![]);
    }

    #[test]
    fn refund_must_be_well_formed() {
        given(&AccountDecider, vec![]).when(refund("")).then_invalid("order_id");
        let no_customer = AccountCommand::RefundPayment { customer_id: String::new(), order_id: "o-1".into() };
        given(&AccountDecider, vec![]).when(no_customer).then_invalid("customer_id");
    }

    // evolve

    #[test]
    fn default_state_has_no_account() {
        let state = AccountState::default();
        assert!(!state.exists());
        assert_eq!(state.balance_cents, 0);
    }

    #[test]
    fn evolve_tracks_currency_balance_and_payments() {
        let state = fold::<AccountDecider>(&[
            deposited(1_000, "EUR"),
            deposited(500, "EUR"),
            captured("o-1", 300),
            declined("o-2", 9_999, DeclineReason::InsufficientFunds),
            captured("o-3", 200),
            refunded("o-1", 300),
        ]);
        assert!(state.exists());
        assert_eq!(state.currency.as_deref(), Some("EUR"));
        assert_eq!(state.balance_cents, 1_000 + 500 - 300 - 200 + 300);
        assert_eq!(state.captured.into_iter().collect::<Vec<_>>(), [("o-3".into(), CapturedPayment { amount_cents: 200, currency: "EUR".into() })]);
        assert_eq!(state.closed.iter().collect::<Vec<_>>(), ["o-2", "o-1"]);
    }

    #[test]
    fn an_account_remembers_only_the_last_closed_payments_and_every_captured_one() {
        let orders = CLOSED_PAYMENTS_REMEMBERED + 500;
        let mut history = vec![deposited(1_000_000, "EUR"), captured("kept", 1)];
        for n in 0..orders {
            history.extend([captured(&format!("o-{n}"), 1), refunded(&format!("o-{n}"), 1)]);
        }
        let state = fold::<AccountDecider>(&history);
        assert_eq!((state.captured.len(), state.closed.len(), state.balance_cents), (1, CLOSED_PAYMENTS_REMEMBERED, 999_999));
        // The last one refunded is still known; the first, long forgotten, would be new again.
        let last = format!("o-{}", orders - 1);
        given(&AccountDecider, history.clone()).when(capture(&last, 1, "EUR")).then_nothing();
        given(&AccountDecider, history.clone()).when(capture("o-0", 1, "EUR")).then(vec![captured("o-0", 1)]);
        given(&AccountDecider, history).when(refund("kept")).then(vec![refunded("kept", 1)]);
    }

    #[test]
    fn a_snapshot_that_kept_every_payment_still_reads() {
        let old = r#"{"currency":"EUR","balance_cents":700,"payments":{
            "o-1":{"amount_cents":300,"currency":"EUR","status":"Captured"},
            "o-2":{"amount_cents":9999,"currency":null,"status":"Declined"},
            "o-3":{"amount_cents":200,"currency":"EUR","status":"Refunded"}}}"#;
        let state: AccountState = serde_json::from_str(old).expect("an old snapshot's state reads");
        assert_eq!(state.captured.keys().collect::<Vec<_>>(), ["o-1"]);
        assert_eq!(state.closed.iter().collect::<Vec<_>>(), ["o-2", "o-3"]);
        let again: AccountState = serde_json::to_string(&state).and_then(|json| serde_json::from_str(&json)).expect("round trip");
        assert_eq!(again, state);
    }

    #[test]
    fn evolve_keeps_the_first_currency() {
        let state = fold::<AccountDecider>(&[deposited(1, "EUR"), deposited(1, "USD")]);
        assert_eq!(state.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn declined_payment_alone_does_not_open_an_account() {
        let state = fold::<AccountDecider>(&[declined("o-1", 100, DeclineReason::AccountNotFound)]);
        assert!(!state.exists());
        assert_eq!(state.balance_cents, 0);
    }

    #[test]
    fn evolve_records_a_refund_even_without_the_capture_in_view() {
        let state = fold::<AccountDecider>(&[refunded("o-1", 300)]);
        assert_eq!(state.balance_cents, 300);
        assert!(state.captured.is_empty() && state.closed.contains("o-1"));
    }
}

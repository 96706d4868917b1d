//! Account aggregate (one per customer): topics `account.events` / `account.commands`, key `customer_id`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Account, "account", "customer_id", AccountEvent, AccountCommand);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, IntoStaticStr)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum DeclineReason {
    AccountNotFound,
    CurrencyMismatch,
    InsufficientFunds,
}

/// Payload union of `account.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum AccountEvent {
    FundsDeposited { amount_cents: i64, currency: String },
    PaymentCaptured { order_id: String, amount_cents: i64, currency: String },
    PaymentDeclined { order_id: String, amount_cents: i64, reason: DeclineReason },
    PaymentRefunded { order_id: String, amount_cents: i64, currency: String },
}

/// Commands on `account.commands`: `DepositFunds` from users, the rest from payment-svc's policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum AccountCommand {
    DepositFunds { customer_id: String, amount_cents: i64, currency: String },
    CapturePayment { customer_id: String, order_id: String, amount_cents: i64, currency: String },
    RefundPayment { customer_id: String, order_id: String },
}

impl crate::CommandTarget for AccountCommand {
    fn aggregate_id(&self) -> &str {
        use AccountCommand::*;
        match self {
            DepositFunds { customer_id, .. } | CapturePayment { customer_id, .. } | RefundPayment { customer_id, .. } => customer_id,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

impl crate::validate::Validate for AccountCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::validate::{MAX_AMOUNT_CENTS, currency as iso_currency, id, within};
        use AccountCommand::*;
        match self {
            DepositFunds { customer_id, amount_cents, currency } => {
                id("customer_id", customer_id)?;
                within("amount_cents", *amount_cents, 1..=MAX_AMOUNT_CENTS)?;
                iso_currency(currency)
            }
            // Zero is a capture too: an order of free items.
            CapturePayment { customer_id, order_id, amount_cents, currency } => {
                id("customer_id", customer_id)?;
                id("order_id", order_id)?;
                within("amount_cents", *amount_cents, 0..=MAX_AMOUNT_CENTS)?;
                iso_currency(currency)
            }
            RefundPayment { customer_id, order_id } => {
                id("customer_id", customer_id)?;
                id("order_id", order_id)
            }
        }
    }
}

//! Notification aggregate (one per customer): topics `notification.events` /
//! `notification.commands`, key `customer_id`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Notification, "notification", "customer_id", NotificationEvent, NotificationCommand);

/// How the customer is notified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, IntoStaticStr)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    #[default]
    Email,
    Sms,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, IntoStaticStr)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    OrderConfirmed,
    OrderCancelled,
    OrderShipped,
    RefundIssued,
    /// A cancellation asked for too late: the order had already been dispatched.
    OrderCancellationRefused,
    /// An operations alert: a SKU's available stock fell below its threshold. Its "order" is
    /// the id of the `StockLow` event, so each crossing is told once.
    StockLow,
    /// The carrier reports the order out for delivery.
    ShipmentOutForDelivery,
    /// The carrier reports a failed delivery attempt.
    ShipmentDeliveryFailed,
}

impl NotificationKind {
    /// Whether the notification tells a customer about one of their orders, rather than
    /// alerting operations (whose "order" id names what the alert is about).
    pub fn is_about_an_order(self) -> bool {
        !matches!(self, NotificationKind::StockLow)
    }
}

/// Payload union of `notification.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum NotificationEvent {
    PreferencesSet {
        channel: Channel,
        recipient: String,
    },
    NotificationSent {
        order_id: String,
        kind: NotificationKind,
        channel: Channel,
        recipient: String,
        message: String,
    },
    /// Attempt `attempt` (1-based) to deliver the notification of (`order_id`, `kind`) failed.
    NotificationDeliveryFailed {
        order_id: String,
        kind: NotificationKind,
        attempt: i64,
        error: String,
    },
    /// The notification of (`order_id`, `kind`) was delivered, at attempt `attempts`.
    NotificationDelivered {
        order_id: String,
        kind: NotificationKind,
        attempts: i64,
    },
    /// Delivery of the notification of (`order_id`, `kind`) was given up after `attempts`; the
    /// `NotificationSent` record is on `notification.events.dlq`.
    NotificationParked {
        order_id: String,
        kind: NotificationKind,
        attempts: i64,
        reason: String,
    },
    /// The kinds the customer does not want sent, all of them: it replaces the last one.
    OptOutSet {
        kinds: Vec<NotificationKind>,
    },
}

/// Commands on `notification.commands`: `SetPreferences` from users, `SendNotification` from
/// notify-svc's policies, and the outcomes of delivering a sent notification (identified by its
/// order and kind) from notify-svc's delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum NotificationCommand {
    SetPreferences {
        customer_id: String,
        channel: Channel,
        recipient: String,
        /// Kinds not to send; optional (none).
        #[serde(default)]
        opt_out: Vec<NotificationKind>,
    },
    SendNotification {
        customer_id: String,
        order_id: String,
        kind: NotificationKind,
        message: String,
    },
    RecordDeliveryFailure {
        customer_id: String,
        order_id: String,
        kind: NotificationKind,
        attempt: i64,
        error: String,
    },
    RecordDelivered {
        customer_id: String,
        order_id: String,
        kind: NotificationKind,
        attempts: i64,
    },
    ParkDelivery {
        customer_id: String,
        order_id: String,
        kind: NotificationKind,
        attempts: i64,
        reason: String,
    },
}

impl crate::CommandTarget for NotificationCommand {
    fn aggregate_id(&self) -> &str {
        use NotificationCommand::*;
        match self {
            SetPreferences { customer_id, .. }
            | SendNotification { customer_id, .. }
            | RecordDeliveryFailure { customer_id, .. }
            | RecordDelivered { customer_id, .. }
            | ParkDelivery { customer_id, .. } => customer_id,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

impl crate::validate::Validate for NotificationCommand {
    fn validate(&self) -> Result<(), crate::validate::InvalidField> {
        use crate::validate::{
            MAX_DELIVERY_ERROR_CHARS, MAX_MESSAGE_CHARS, MAX_RECIPIENT_CHARS, at_least, id, invalid, reported_text, required_text,
        };
        use NotificationCommand::*;
        let ids = |customer_id: &str, order_id: &str| id("customer_id", customer_id).and_then(|()| id("order_id", order_id));
        match self {
            SetPreferences { customer_id, channel, recipient, .. } => {
                id("customer_id", customer_id)?;
                // A line break in a recipient is a header injection waiting for a mail or SMS gateway.
                required_text("recipient", recipient, MAX_RECIPIENT_CHARS)?;
                if *channel == Channel::Email && !recipient.contains('@') {
                    return Err(invalid("recipient", "an EMAIL recipient must contain '@'"));
                }
                Ok(())
            }
            // Line breaks are allowed: a message is a text of several lines.
            SendNotification { customer_id, order_id, message, .. } => {
                ids(customer_id, order_id)?;
                reported_text("message", message, MAX_MESSAGE_CHARS)
            }
            RecordDeliveryFailure { customer_id, order_id, attempt, error, .. } => {
                ids(customer_id, order_id)?;
                at_least("attempt", *attempt, 1)?;
                reported_text("error", error, MAX_DELIVERY_ERROR_CHARS)
            }
            RecordDelivered { customer_id, order_id, attempts, .. } => {
                ids(customer_id, order_id)?;
                at_least("attempts", *attempts, 1)
            }
            // 0 attempts: parked without one (e.g. by an operator).
            ParkDelivery { customer_id, order_id, attempts, reason, .. } => {
                ids(customer_id, order_id)?;
                at_least("attempts", *attempts, 0)?;
                reported_text("reason", reason, MAX_DELIVERY_ERROR_CHARS)
            }
        }
    }
}

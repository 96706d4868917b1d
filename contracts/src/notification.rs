//! Notification aggregate (one per customer): topics `notification.events` /
//! `notification.commands`, key `customer_id`.
use serde::{Deserialize, Serialize};
use strum::{IntoStaticStr, VariantNames};

crate::stream!(Notification, "notification", NotificationEvent, NotificationCommand);

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
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    OrderConfirmed,
    OrderCancelled,
    OrderShipped,
    RefundIssued,
}

/// Payload union of `notification.events`; variant order = union branch order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr, VariantNames)]
pub enum NotificationEvent {
    PreferencesSet { channel: Channel, recipient: String },
    NotificationSent { order_id: String, kind: NotificationKind, channel: Channel, recipient: String, message: String },
}

/// Commands on `notification.commands`: `SetPreferences` from users, `SendNotification` from
/// notify-svc's policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoStaticStr)]
#[serde(tag = "type")]
pub enum NotificationCommand {
    SetPreferences { customer_id: String, channel: Channel, recipient: String },
    SendNotification { customer_id: String, order_id: String, kind: NotificationKind, message: String },
}

impl crate::CommandTarget for NotificationCommand {
    fn aggregate_id(&self) -> &str {
        use NotificationCommand::*;
        match self {
            SetPreferences { customer_id, .. } | SendNotification { customer_id, .. } => customer_id,
        }
    }
    fn command_type(&self) -> &'static str {
        self.into()
    }
}

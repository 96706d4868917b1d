//! Notification aggregate (one per customer): topics `notification.events` /
//! `notification.commands`, key `customer_id`.
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strum::{EnumCount, IntoStaticStr, VariantNames};

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

impl Channel {
    /// Every channel, e.g. for a message template per kind and channel.
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Sms];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, IntoStaticStr, EnumCount)]
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
    /// Every kind, in declaration order (its length is checked against the enum's).
    pub const ALL: [NotificationKind; NotificationKind::COUNT] = [
        NotificationKind::OrderConfirmed,
        NotificationKind::OrderCancelled,
        NotificationKind::OrderShipped,
        NotificationKind::RefundIssued,
        NotificationKind::OrderCancellationRefused,
        NotificationKind::StockLow,
        NotificationKind::ShipmentOutForDelivery,
        NotificationKind::ShipmentDeliveryFailed,
    ];

    /// The fields a `SendNotification` of this kind carries, exactly these: what its message
    /// templates may use besides the ids, the kind, the channel and the recipient. The names are
    /// a contract with every operator's template folder: a field added keeps those folders
    /// valid, one removed or renamed breaks the templates that use it.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            NotificationKind::OrderConfirmed => &["carrier", "tracking_number"],
            // `reason` is the `CancellationReason` code (`OUT_OF_STOCK`); `detail` may be empty.
            NotificationKind::OrderCancelled => &["reason", "detail"],
            NotificationKind::OrderShipped => &[],
            // `amount` is formatted with its currency: `12.34 EUR`.
            NotificationKind::RefundIssued => &["amount"],
            NotificationKind::OrderCancellationRefused => &["reason"],
            NotificationKind::StockLow => &["sku", "available", "threshold"],
            NotificationKind::ShipmentOutForDelivery | NotificationKind::ShipmentDeliveryFailed => &["location"],
        }
    }

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
    /// The message is rendered by notify-svc from the template of the kind and the customer's
    /// channel, filled in with `fields`: exactly the kind's [`NotificationKind::fields`].
    SendNotification {
        customer_id: String,
        order_id: String,
        kind: NotificationKind,
        #[serde(default)]
        fields: BTreeMap<String, String>,
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
        use crate::validate::{MAX_DELIVERY_ERROR_CHARS, MAX_RECIPIENT_CHARS, at_least, id, invalid, reported_text, required_text};
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
            SendNotification { customer_id, order_id, kind, fields } => {
                ids(customer_id, order_id)?;
                notification_fields(*kind, fields)
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

/// Longest value of one field of a `SendNotification`: what another service reports (a
/// cancellation's detail, a carrier's location) fits. The rendered message must still fit
/// [`crate::validate::MAX_MESSAGE_CHARS`], which notify-svc checks after rendering.
pub const MAX_NOTIFICATION_FIELD_CHARS: usize = crate::validate::MAX_REPORTED_REASON_CHARS;

/// Exactly the kind's fields, each at most [`MAX_NOTIFICATION_FIELD_CHARS`]: a missing one
/// would leave a hole in the message, an unknown one is a sender's mistake that no template
/// shows. Any characters are allowed and a value may be empty (a cancellation without a
/// detail): the values are what other services reported, and a message is text of lines.
fn notification_fields(kind: NotificationKind, fields: &BTreeMap<String, String>) -> Result<(), crate::validate::InvalidField> {
    use crate::validate::invalid;
    let names = kind.fields();
    let kind_name: &'static str = kind.into();
    let expected = || if names.is_empty() { "none".to_string() } else { names.join(", ") };
    if let Some(missing) = names.iter().find(|name| !fields.contains_key(**name)) {
        let field = format!("fields.{missing}");
        return Err(invalid(&field, format!("{field} is missing: {kind_name} notifications need the fields {}", expected())));
    }
    if let Some(unknown) = fields.keys().find(|key| !names.contains(&key.as_str())) {
        let field = format!("fields.{unknown}");
        return Err(invalid(&field, format!("fields.{unknown:?} is not a field of {kind_name} notifications (theirs: {})", expected())));
    }
    for (name, value) in fields {
        let chars = value.chars().count();
        if chars > MAX_NOTIFICATION_FIELD_CHARS {
            let field = format!("fields.{name}");
            return Err(invalid(&field, format!("{field} must be at most {MAX_NOTIFICATION_FIELD_CHARS} characters, got {chars}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Validate;

    fn send(kind: NotificationKind, fields: &[(&str, &str)]) -> NotificationCommand {
        NotificationCommand::SendNotification {
            customer_id: "c-1".into(),
            order_id: "o-1".into(),
            kind,
            fields: fields.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        }
    }

    fn invalid_field(command: &NotificationCommand) -> Option<String> {
        command.validate().err().map(|invalid| invalid.field)
    }

    #[test]
    fn a_send_carries_exactly_the_fields_of_its_kind() {
        let confirmed = [("carrier", "DHL"), ("tracking_number", "T1")];
        assert_eq!(send(NotificationKind::OrderConfirmed, &confirmed).validate(), Ok(()));
        assert_eq!(invalid_field(&send(NotificationKind::OrderConfirmed, &confirmed[..1])), Some("fields.tracking_number".into()));
        assert_eq!(invalid_field(&send(NotificationKind::OrderConfirmed, &[])), Some("fields.carrier".into()));
        let extra = [("carrier", "DHL"), ("tracking_number", "T1"), ("location", "Berlin")];
        assert_eq!(invalid_field(&send(NotificationKind::OrderConfirmed, &extra)), Some("fields.location".into()));
        assert_eq!(send(NotificationKind::OrderShipped, &[]).validate(), Ok(()));
        let error = send(NotificationKind::OrderShipped, &[("carrier", "DHL")]).validate().expect_err("no fields");
        assert_eq!(error.message, "fields.\"carrier\" is not a field of ORDER_SHIPPED notifications (theirs: none)");
        let error = send(NotificationKind::StockLow, &[("sku", "s"), ("available", "1")]).validate().expect_err("missing");
        assert_eq!(error.message, "fields.threshold is missing: STOCK_LOW notifications need the fields sku, available, threshold");
    }

    #[test]
    fn a_field_may_be_empty_or_hold_lines_but_not_be_longer_than_the_limit() {
        assert_eq!(send(NotificationKind::OrderCancelled, &[("reason", "TIMEOUT"), ("detail", "")]).validate(), Ok(()));
        assert_eq!(send(NotificationKind::OrderCancelled, &[("reason", "TIMEOUT"), ("detail", "line 1\nline 2")]).validate(), Ok(()));
        let longest = "x".repeat(MAX_NOTIFICATION_FIELD_CHARS);
        assert_eq!(send(NotificationKind::ShipmentOutForDelivery, &[("location", &longest)]).validate(), Ok(()));
        let longer = "x".repeat(MAX_NOTIFICATION_FIELD_CHARS + 1);
        assert_eq!(invalid_field(&send(NotificationKind::ShipmentOutForDelivery, &[("location", &longer)])), Some("fields.location".into()));
    }

    #[test]
    fn fields_default_to_none_in_json() {
        let command: NotificationCommand =
            serde_json::from_str(r#"{"type":"SendNotification","customer_id":"c-1","order_id":"o-1","kind":"ORDER_SHIPPED"}"#).expect("parses");
        assert_eq!(command, send(NotificationKind::OrderShipped, &[]));
        assert_eq!(command.validate(), Ok(()));
    }

    #[test]
    fn every_kind_is_listed_once_and_no_field_shadows_another() {
        let kinds: std::collections::BTreeSet<NotificationKind> = NotificationKind::ALL.into_iter().collect();
        assert_eq!(kinds.len(), NotificationKind::COUNT);
        for kind in NotificationKind::ALL {
            let names: std::collections::BTreeSet<&str> = kind.fields().iter().copied().collect();
            assert_eq!(names.len(), kind.fields().len(), "{kind:?}");
        }
    }
}

//! The Notification aggregate (key `customer_id`) as a pure decider: the customer's contact
//! preferences and exactly one notification per (order, kind).
use contracts::notification::{Channel, Notification, NotificationCommand, NotificationEvent, NotificationKind};
use contracts::validate::{self, InvalidField};
use runtime::{Decider, Rejection};
use std::collections::BTreeSet;

const MAX_RECIPIENT_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationDecider;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationState {
    /// The last `PreferencesSet`; `None` means the defaults (e-mail to the customer id).
    pub preferences: Option<Preferences>,
    pub sent: BTreeSet<(String, NotificationKind)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    pub channel: Channel,
    pub recipient: String,
}

impl NotificationState {
    /// Where notifications go: the chosen preferences, else e-mail addressed to the customer id.
    pub fn effective_preferences(&self, customer_id: &str) -> Preferences {
        self.preferences.clone().unwrap_or_else(|| Preferences { channel: Channel::Email, recipient: customer_id.to_string() })
    }
}

impl Decider for NotificationDecider {
    type Stream = Notification;
    type State = NotificationState;

    fn decide(&self, state: &NotificationState, command: &NotificationCommand) -> Result<Vec<NotificationEvent>, Rejection> {
        match command {
            NotificationCommand::SetPreferences { customer_id, channel, recipient } => {
                validate::id("customer_id", customer_id).map_err(invalid)?;
                validate_recipient(*channel, recipient)?;
                let wanted = Preferences { channel: *channel, recipient: recipient.clone() };
                // Repeating the preferences already chosen changes nothing.
                if state.preferences.as_ref() == Some(&wanted) {
                    return Ok(vec![]);
                }
                Ok(vec![NotificationEvent::PreferencesSet { channel: *channel, recipient: recipient.clone() }])
            }
            NotificationCommand::SendNotification { customer_id, order_id, kind, message } => {
                validate::id("customer_id", customer_id).map_err(invalid)?;
                validate::id("order_id", order_id).map_err(invalid)?;
                if message.trim().is_empty() {
                    return Err(Rejection::Invalid("message must not be empty".into()));
                }
                if state.sent.contains(&(order_id.clone(), *kind)) {
                    return Ok(vec![]);
                }
                let Preferences { channel, recipient } = state.effective_preferences(customer_id);
                Ok(vec![NotificationEvent::NotificationSent {
                    order_id: order_id.clone(),
                    kind: *kind,
                    channel,
                    recipient,
                    message: message.clone(),
                }])
            }
        }
    }

    fn evolve(mut state: NotificationState, event: &NotificationEvent) -> NotificationState {
        match event {
            NotificationEvent::PreferencesSet { channel, recipient } => {
                state.preferences = Some(Preferences { channel: *channel, recipient: recipient.clone() });
            }
            NotificationEvent::NotificationSent { order_id, kind, .. } => {
                state.sent.insert((order_id.clone(), *kind));
            }
        }
        state
    }
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

fn validate_recipient(channel: Channel, recipient: &str) -> Result<(), Rejection> {
    let chars = recipient.chars().count();
    if chars == 0 || chars > MAX_RECIPIENT_CHARS {
        return Err(Rejection::Invalid(format!("recipient must be 1 to {MAX_RECIPIENT_CHARS} characters")));
    }
    if channel == Channel::Email && !recipient.contains('@') {
        return Err(Rejection::Invalid("an EMAIL recipient must contain '@'".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::decider::fold;
    use runtime::testing::given;

    fn set_preferences(channel: Channel, recipient: &str) -> NotificationCommand {
        NotificationCommand::SetPreferences { customer_id: "c-1".into(), channel, recipient: recipient.into() }
    }
    fn send(order_id: &str, kind: NotificationKind) -> NotificationCommand {
        NotificationCommand::SendNotification {
            customer_id: "c-1".into(),
            order_id: order_id.into(),
            kind,
            message: "Your order is confirmed.".into(),
        }
    }
    fn preferences_set(channel: Channel, recipient: &str) -> NotificationEvent {
        NotificationEvent::PreferencesSet { channel, recipient: recipient.into() }
    }
    fn sent(order_id: &str, kind: NotificationKind, channel: Channel, recipient: &str) -> NotificationEvent {
        NotificationEvent::NotificationSent {
            order_id: order_id.into(),
            kind,
            channel,
            recipient: recipient.into(),
            message: "Your order is confirmed.".into(),
        }
    }

    // SetPreferences

    #[test]
    fn set_email_preferences() {
        given(&NotificationDecider, vec![])
            .when(set_preferences(Channel::Email, "ada@example.com"))
            .then(vec![preferences_set(Channel::Email, "ada@example.com")]);
    }

    #[test]
    fn set_sms_preferences_needs_no_at_sign() {
        given(&NotificationDecider, vec![])
            .when(set_preferences(Channel::Sms, "+49 170 1234567"))
            .then(vec![preferences_set(Channel::Sms, "+49 170 1234567")]);
    }

    #[test]
    fn changing_preferences_is_recorded() {
        given(&NotificationDecider, vec![preferences_set(Channel::Email, "ada@example.com")])
            .when(set_preferences(Channel::Email, "ada@work.example"))
            .then(vec![preferences_set(Channel::Email, "ada@work.example")]);
        given(&NotificationDecider, vec![preferences_set(Channel::Email, "ada@example.com")])
            .when(set_preferences(Channel::Sms, "ada@example.com"))
            .then(vec![preferences_set(Channel::Sms, "ada@example.com")]);
    }

    #[test]
    fn repeating_the_current_preferences_is_a_no_op() {
        given(&NotificationDecider, vec![preferences_set(Channel::Sms, "+4917012")]).when(set_preferences(Channel::Sms, "+4917012")).then(vec![]);
    }

    #[test]
    fn recipient_must_be_1_to_256_chars() {
        given(&NotificationDecider, vec![]).when(set_preferences(Channel::Sms, "")).then_invalid("recipient");
        given(&NotificationDecider, vec![]).when(set_preferences(Channel::Sms, &"1".repeat(257))).then_invalid("recipient");
        let longest = format!("{}@x", "a".repeat(254));
        given(&NotificationDecider, vec![]).when(set_preferences(Channel::Email, &longest)).then(vec![preferences_set(Channel::Email, &longest)]);
    }

    #[test]
    fn email_recipient_must_contain_an_at_sign() {
        given(&NotificationDecider, vec![]).when(set_preferences(Channel::Email, "ada.example.com")).then_invalid("'@'");
    }

    #[test]
    fn set_preferences_needs_a_customer_id() {
        let command = NotificationCommand::SetPreferences { customer_id: String::new(), channel: Channel::Email, recipient: "a@b".into() };
        given(&NotificationDecider, vec![]).when(command).then_invalid("customer_id");
    }

    // SendNotification

    #[test]
    fn send_with_default_preferences_emails_the_customer_id() {
        given(&NotificationDecider, vec![]).when(send("o-1", NotificationKind::OrderConfirmed)).then(vec![sent(
            "o-1",
            NotificationKind::OrderConfirmed,
            Channel::Email,
            "c-1",
        )]);
    }

    #[test]
    fn send_uses_the_current_preferences() {
        given(&NotificationDecider, vec![preferences_set(Channel::Email, "old@example.com"), preferences_set(Channel::Sms, "+4917012")])
            .when(send("o-1", NotificationKind::OrderShipped))
            .then(vec![sent("o-1", NotificationKind::OrderShipped, Channel::Sms, "+4917012")]);
    }

    #[test]
    fn send_is_once_per_order_and_kind() {
        let history = vec![sent("o-1", NotificationKind::OrderConfirmed, Channel::Email, "c-1")];
        given(&NotificationDecider, history.clone()).when(send("o-1", NotificationKind::OrderConfirmed)).then(vec![]);
        given(&NotificationDecider, history.clone()).when(send("o-1", NotificationKind::OrderShipped)).then(vec![sent(
            "o-1",
            NotificationKind::OrderShipped,
            Channel::Email,
            "c-1",
        )]);
        given(&NotificationDecider, history).when(send("o-2", NotificationKind::OrderConfirmed)).then(vec![sent(
            "o-2",
            NotificationKind::OrderConfirmed,
            Channel::Email,
            "c-1",
        )]);
    }

    #[test]
    fn send_must_be_well_formed() {
        let with = |customer_id: &str, order_id: &str, message: &str| NotificationCommand::SendNotification {
            customer_id: customer_id.into(),
            order_id: order_id.into(),
            kind: NotificationKind::OrderCancelled,
            message: message.into(),
        };
        given(&NotificationDecider, vec![]).when(with("", "o-1", "hi")).then_invalid("customer_id");
        given(&NotificationDecider, vec![]).when(with("c-1", "", "hi")).then_invalid("order_id");
        given(&NotificationDecider, vec![]).when(with("c-1", &"o".repeat(129), "hi")).then_invalid("order_id");
        given(&NotificationDecider, vec![]).when(with("c-1", "o-1", "  ")).then_invalid("message");
    }

    // evolve

    #[test]
    fn default_state_uses_default_preferences_and_has_sent_nothing() {
        let state = NotificationState::default();
        assert_eq!(state.effective_preferences("c-9"), Preferences { channel: Channel::Email, recipient: "c-9".into() });
        assert!(state.sent.is_empty());
    }

    #[test]
    fn evolve_keeps_the_last_preferences_and_every_sent_pair() {
        let state = fold::<NotificationDecider>(&[
            preferences_set(Channel::Email, "a@b"),
            sent("o-1", NotificationKind::OrderConfirmed, Channel::Email, "a@b"),
            preferences_set(Channel::Sms, "+4917012"),
            sent("o-1", NotificationKind::OrderShipped, Channel::Sms, "+4917012"),
        ]);
        assert_eq!(state.preferences, Some(Preferences { channel: Channel::Sms, recipient: "+4917012".into() }));
        assert_eq!(
            state.sent.into_iter().collect::<Vec<_>>(),
            vec![("o-1".to_string(), NotificationKind::OrderConfirmed), ("o-1".to_string(), NotificationKind::OrderShipped)]
        );
    }
}

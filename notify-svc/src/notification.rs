//! The Notification aggregate (key `customer_id`) as a pure decider: the customer's contact
//! preferences, exactly one notification per (order, kind), and how the delivery of each went
//! (failed attempts, delivered, parked). The delivery outcomes are the delivery's checkpoint:
//! what the log says was delivered or parked is never sent again. The message text is decided
//! here too, from the template of the kind and the chosen channel ([`crate::templates`]).
use crate::templates::{MessageValues, Templates};
use contracts::notification::{Channel, Notification, NotificationCommand, NotificationEvent, NotificationKind};
use contracts::validate::{InvalidField, MAX_MESSAGE_CHARS, Validate, reported_text};
use runtime::{Decider, Rejection};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Longest error text a delivery outcome keeps (the delivery shortens longer ones): the
/// contract's rule.
pub use contracts::validate::MAX_DELIVERY_ERROR_CHARS;

/// Decides with a checked set of templates, loaded once at start.
#[derive(Debug, Clone)]
pub struct NotificationDecider {
    templates: Arc<Templates>,
}

impl NotificationDecider {
    pub fn new(templates: Arc<Templates>) -> Self {
        NotificationDecider { templates }
    }
}

/// With the built-in templates.
impl Default for NotificationDecider {
    fn default() -> Self {
        // The built-in templates are part of the binary and loaded by this crate's tests, so this
        // cannot fail in a build that passed them.
        let templates = Templates::built_in().expect("the built-in templates load");
        NotificationDecider::new(Arc::new(templates))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotificationState {
    /// The last `PreferencesSet`; `None` means the defaults (e-mail to the customer id).
    pub preferences: Option<Preferences>,
    /// Every notification sent, by (order, kind), with how its delivery stands.
    #[serde(with = "runtime::map_as_pairs")]
    pub sent: BTreeMap<(String, NotificationKind), DeliveryStatus>,
    /// The kinds the customer does not want sent (the last `OptOutSet`), in kind order. The
    /// default keeps snapshots from before opting out readable.
    #[serde(default)]
    pub opt_out: Vec<NotificationKind>,
}

/// Where the delivery of one sent notification stands.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliveryStatus {
    /// Attempts made so far (failed ones, and the successful one once delivered).
    pub attempts: i64,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeliveryOutcome {
    /// Not delivered yet: attempts go on.
    #[default]
    Pending,
    Delivered,
    /// Given up (too many attempts, or a lasting error).
    Parked,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        // The stateless rules are the contract's, shared with the HTTP write path and the
        // command processor.
        command.validate().map_err(invalid)?;
        match command {
            NotificationCommand::SetPreferences { channel, recipient, opt_out, .. } => {
                let wanted = Preferences { channel: *channel, recipient: recipient.clone() };
                // One spelling per choice: in kind order, each once.
                let mut opt_out = opt_out.clone();
                opt_out.sort();
                opt_out.dedup();
                // What the preferences already say is not said again.
                let mut events = Vec::new();
                if state.preferences.as_ref() != Some(&wanted) {
                    events.push(NotificationEvent::PreferencesSet { channel: *channel, recipient: recipient.clone() });
                }
                if state.opt_out != opt_out {
                    events.push(NotificationEvent::OptOutSet { kinds: opt_out });
                }
                Ok(events)
            }
            NotificationCommand::SendNotification { customer_id, order_id, kind, fields } => {
                // Sent already, or the customer's choice not to hear of it: accepted, nothing to send.
                if state.sent.contains_key(&(order_id.clone(), *kind)) || state.opt_out.contains(kind) {
                    return Ok(vec![]);
                }
                let Preferences { channel, recipient } = state.effective_preferences(customer_id);
                let values = MessageValues { kind: *kind, channel, order_id, customer_id, recipient: &recipient, fields };
                // The templates passed their checks at start, so only values nobody foresaw get
                // here; the command is then dead-lettered with the reason, like any invalid one.
                let message = self.templates.render(&values).map_err(|error| Rejection::Invalid(error.to_string()))?;
                // The same limit as every message had before templates: a field's worth of text
                // in a long template could pass it.
                reported_text("message", &message, MAX_MESSAGE_CHARS)
                    .map_err(|error| Rejection::Invalid(format!("the message of {}: {error}", crate::templates::file_name(*kind, channel))))?;
                Ok(vec![NotificationEvent::NotificationSent { order_id: order_id.clone(), kind: *kind, channel, recipient, message }])
            }
            NotificationCommand::RecordDeliveryFailure { customer_id, order_id, kind, attempt, error } => {
                let status = delivery_of(state, customer_id, order_id, *kind)?;
                // A failure reported after the outcome, or again (a redelivered command), changes nothing.
                if status.outcome != DeliveryOutcome::Pending || *attempt <= status.attempts {
                    return Ok(vec![]);
                }
                Ok(vec![NotificationEvent::NotificationDeliveryFailed {
                    order_id: order_id.clone(),
                    kind: *kind,
                    attempt: *attempt,
                    error: error.clone(),
                }])
            }
            NotificationCommand::RecordDelivered { customer_id, order_id, kind, attempts } => {
                let status = delivery_of(state, customer_id, order_id, *kind)?;
                match status.outcome {
                    DeliveryOutcome::Delivered => Ok(vec![]),
                    DeliveryOutcome::Parked => Err(Rejection::Refused(format!(
                        "the {} notification of order {order_id} was parked after {} attempts",
                        kind_name(*kind),
                        status.attempts
                    ))),
                    DeliveryOutcome::Pending => {
                        Ok(vec![NotificationEvent::NotificationDelivered { order_id: order_id.clone(), kind: *kind, attempts: *attempts }])
                    }
                }
            }
            NotificationCommand::ParkDelivery { customer_id, order_id, kind, attempts, reason } => {
                let status = delivery_of(state, customer_id, order_id, *kind)?;
                match status.outcome {
                    DeliveryOutcome::Parked => Ok(vec![]),
                    DeliveryOutcome::Delivered => {
                        Err(Rejection::Refused(format!("the {} notification of order {order_id} was delivered already", kind_name(*kind))))
                    }
                    DeliveryOutcome::Pending => Ok(vec![NotificationEvent::NotificationParked {
                        order_id: order_id.clone(),
                        kind: *kind,
                        attempts: *attempts,
                        reason: reason.clone(),
                    }]),
                }
            }
        }
    }

    fn evolve(mut state: NotificationState, event: &NotificationEvent) -> NotificationState {
        match event {
            NotificationEvent::PreferencesSet { channel, recipient } => {
                state.preferences = Some(Preferences { channel: *channel, recipient: recipient.clone() });
            }
            NotificationEvent::OptOutSet { kinds } => state.opt_out = kinds.clone(),
            NotificationEvent::NotificationSent { order_id, kind, .. } => {
                state.sent.insert((order_id.clone(), *kind), DeliveryStatus::default());
            }
            NotificationEvent::NotificationDeliveryFailed { order_id, kind, attempt, .. } => {
                let status = state.sent.entry((order_id.clone(), *kind)).or_default();
                status.attempts = status.attempts.max(*attempt);
            }
            NotificationEvent::NotificationDelivered { order_id, kind, attempts } => {
                state.sent.insert((order_id.clone(), *kind), DeliveryStatus { attempts: *attempts, outcome: DeliveryOutcome::Delivered });
            }
            NotificationEvent::NotificationParked { order_id, kind, attempts, .. } => {
                state.sent.insert((order_id.clone(), *kind), DeliveryStatus { attempts: *attempts, outcome: DeliveryOutcome::Parked });
            }
        }
        state
    }
}

fn invalid(error: InvalidField) -> Rejection {
    Rejection::Invalid(error.to_string())
}

fn kind_name(kind: NotificationKind) -> &'static str {
    kind.into()
}

/// The delivery a delivery-outcome command is about: it must name a notification that was sent.
fn delivery_of<'s>(state: &'s NotificationState, customer_id: &str, order_id: &str, kind: NotificationKind) -> Result<&'s DeliveryStatus, Rejection> {
    state
        .sent
        .get(&(order_id.to_string(), kind))
        .ok_or_else(|| Rejection::Refused(format!("no {} notification of order {order_id} was sent to customer {customer_id}", kind_name(kind))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runtime::decider::fold;
    use runtime::testing::given;

    fn set_preferences(channel: Channel, recipient: &str) -> NotificationCommand {
        NotificationCommand::SetPreferences { customer_id: "c-1".into(), channel, recipient: recipient.into(), opt_out: vec![] }
    }
    /// The fields of `kind`, each its own name: the message shows which went where.
    fn fields_of(kind: NotificationKind) -> BTreeMap<String, String> {
        kind.fields().iter().map(|field| (field.to_string(), field.to_uppercase())).collect()
    }
    fn send(order_id: &str, kind: NotificationKind) -> NotificationCommand {
        NotificationCommand::SendNotification { customer_id: "c-1".into(), order_id: order_id.into(), kind, fields: fields_of(kind) }
    }
    fn preferences_set(channel: Channel, recipient: &str) -> NotificationEvent {
        NotificationEvent::PreferencesSet { channel, recipient: recipient.into() }
    }
    /// What the built-in template of (`kind`, `channel`) says with [`fields_of`].
    fn message(order_id: &str, kind: NotificationKind, channel: Channel) -> String {
        use NotificationKind::*;
        match (kind, channel) {
            (OrderConfirmed, Channel::Email) => {
                format!("Your order {order_id} is confirmed and will ship with CARRIER (tracking number TRACKING_NUMBER).")
            }
            (OrderConfirmed, Channel::Sms) => format!("Order {order_id} confirmed: ships with CARRIER, tracking TRACKING_NUMBER."),
            (OrderShipped, Channel::Email) => format!("Your order {order_id} has been shipped."),
            (OrderShipped, Channel::Sms) => format!("Order {order_id} shipped."),
            other => panic!("no expected message for {other:?}"),
        }
    }
    fn sent(order_id: &str, kind: NotificationKind, channel: Channel, recipient: &str) -> NotificationEvent {
        NotificationEvent::NotificationSent {
            order_id: order_id.into(),
            kind,
            channel,
            recipient: recipient.into(),
            message: message(order_id, kind, channel),
        }
    }

    // opting out of kinds

    fn opting_out(kinds: &[NotificationKind]) -> NotificationCommand {
        NotificationCommand::SetPreferences {
            customer_id: "c-1".into(),
            channel: Channel::Sms,
            recipient: "+49 30 1".into(),
            opt_out: kinds.to_vec(),
        }
    }

    #[test]
    fn opting_out_records_the_kinds_once_each_in_kind_order_and_only_when_they_change() {
        use NotificationKind::*;
        given(&NotificationDecider::default(), vec![])
            .when(opting_out(&[OrderShipped, OrderConfirmed, OrderShipped]))
            .then(vec![preferences_set(Channel::Sms, "+49 30 1"), NotificationEvent::OptOutSet { kinds: vec![OrderConfirmed, OrderShipped] }]);
        let chosen = vec![preferences_set(Channel::Sms, "+49 30 1"), NotificationEvent::OptOutSet { kinds: vec![OrderConfirmed, OrderShipped] }];
        given(&NotificationDecider::default(), chosen.clone()).when(opting_out(&[OrderShipped, OrderConfirmed])).then_nothing();
        // Opting back in to everything is a change too; the channel and recipient are not repeated.
        given(&NotificationDecider::default(), chosen).when(opting_out(&[])).then(vec![NotificationEvent::OptOutSet { kinds: vec![] }]);
        // Channel and recipient alone, as before opting out existed: no OptOutSet.
        given(&NotificationDecider::default(), vec![])
            .when(set_preferences(Channel::Sms, "+49 30 1"))
            .then(vec![preferences_set(Channel::Sms, "+49 30 1")]);
    }

    #[test]
    fn a_kind_opted_out_of_is_not_sent_and_the_others_are() {
        use NotificationKind::*;
        let chosen = vec![preferences_set(Channel::Sms, "+49 30 1"), NotificationEvent::OptOutSet { kinds: vec![ShipmentOutForDelivery] }];
        given(&NotificationDecider::default(), chosen.clone()).when(send("o-1", ShipmentOutForDelivery)).then_nothing();
        given(&NotificationDecider::default(), chosen.clone()).when(send("o-1", OrderConfirmed)).then(vec![sent(
            "o-1",
            OrderConfirmed,
            Channel::Sms,
            "+49 30 1",
        )]);
        let back_in = fold::<NotificationDecider>(&[chosen, vec![NotificationEvent::OptOutSet { kinds: vec![] }]].concat());
        assert!(back_in.opt_out.is_empty());
    }

    #[test]
    fn a_snapshot_from_before_opting_out_still_reads() {
        let old = r#"{"preferences":{"channel":"SMS","recipient":"+49"},"sent":[]}"#;
        let state: NotificationState = serde_json::from_str(old).expect("an old snapshot's state reads");
        assert!(state.opt_out.is_empty());
    }

    // SetPreferences

    #[test]
    fn set_email_preferences() {
        given(&NotificationDecider::default(), vec![])
            .when(set_preferences(Channel::Email, "ada@example.com"))
            .then(vec![preferences_set(Channel::Email, "ada@example.com")]);
    }

    #[test]
    fn set_sms_preferences_needs_no_at_sign() {
        given(&NotificationDecider::default(), vec![])
            .when(set_preferences(Channel::Sms, "+49 170 1234567"))
            .then(vec![preferences_set(Channel::Sms, "+49 170 1234567")]);
    }

    #[test]
    fn changing_preferences_is_recorded() {
        given(&NotificationDecider::default(), vec![preferences_set(Channel::Email, "ada@example.com")])
            .when(set_preferences(Channel::Email, "ada@work.example"))
            .then(vec![preferences_set(Channel::Email, "ada@work.example")]);
        given(&NotificationDecider::default(), vec![preferences_set(Channel::Email, "ada@example.com")])
            .when(set_preferences(Channel::Sms, "ada@example.com"))
            .then(vec![preferences_set(Channel::Sms, "ada@example.com")]);
    }

    #[test]
    fn repeating_the_current_preferences_is_a_no_op() {
        given(&NotificationDecider::default(), vec![preferences_set(Channel::Sms, "+4917012")])
            .when(set_preferences(Channel::Sms, "+4917012"))
            .then(vec![]);
    }

    #[test]
    fn a_recipient_with_a_line_break_or_an_escape_is_invalid() {
        for bad in ["a@b.de\r\nBcc: all@x.de", "+49\u{1b}[2J", "a@\u{202e}b.de"] {
            given(&NotificationDecider::default(), vec![])
                .when(set_preferences(Channel::Email, bad))
                .then_invalid("recipient must not contain control or invisible characters");
        }
    }

    #[test]
    fn recipient_must_be_1_to_256_chars() {
        given(&NotificationDecider::default(), vec![]).when(set_preferences(Channel::Sms, "")).then_invalid("recipient");
        given(&NotificationDecider::default(), vec![]).when(set_preferences(Channel::Sms, &"1".repeat(257))).then_invalid("recipient");
        let longest = format!("{}@x", "a".repeat(254));
        given(&NotificationDecider::default(), vec![])
            .when(set_preferences(Channel::Email, &longest))
            .then(vec![preferences_set(Channel::Email, &longest)]);
    }

    #[test]
    fn email_recipient_must_contain_an_at_sign() {
        given(&NotificationDecider::default(), vec![]).when(set_preferences(Channel::Email, "ada.example.com")).then_invalid("'@'");
    }

    #[test]
    fn set_preferences_needs_a_customer_id() {
        let command =
            NotificationCommand::SetPreferences { customer_id: String::new(), channel: Channel::Email, recipient: "a@b".into(), opt_out: vec![] };
        given(&NotificationDecider::default(), vec![]).when(command).then_invalid("customer_id");
    }

    // SendNotification

    #[test]
    fn send_with_default_preferences_emails_the_customer_id() {
        given(&NotificationDecider::default(), vec![]).when(send("o-1", NotificationKind::OrderConfirmed)).then(vec![sent(
            "o-1",
            NotificationKind::OrderConfirmed,
            Channel::Email,
            "c-1",
        )]);
    }

    #[test]
    fn send_uses_the_current_preferences() {
        given(&NotificationDecider::default(), vec![preferences_set(Channel::Email, "old@example.com"), preferences_set(Channel::Sms, "+4917012")])
            .when(send("o-1", NotificationKind::OrderShipped))
            .then(vec![sent("o-1", NotificationKind::OrderShipped, Channel::Sms, "+4917012")]);
    }

    #[test]
    fn send_is_once_per_order_and_kind() {
        let history = vec![sent("o-1", NotificationKind::OrderConfirmed, Channel::Email, "c-1")];
        given(&NotificationDecider::default(), history.clone()).when(send("o-1", NotificationKind::OrderConfirmed)).then(vec![]);
        given(&NotificationDecider::default(), history.clone()).when(send("o-1", NotificationKind::OrderShipped)).then(vec![sent(
            "o-1",
            NotificationKind::OrderShipped,
            Channel::Email,
            "c-1",
        )]);
        given(&NotificationDecider::default(), history).when(send("o-2", NotificationKind::OrderConfirmed)).then(vec![sent(
            "o-2",
            NotificationKind::OrderConfirmed,
            Channel::Email,
            "c-1",
        )]);
    }

    #[test]
    fn send_must_be_well_formed() {
        let with = |customer_id: &str, order_id: &str, fields: &[(&str, &str)]| NotificationCommand::SendNotification {
            customer_id: customer_id.into(),
            order_id: order_id.into(),
            kind: NotificationKind::OrderCancelled,
            fields: fields.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        };
        let good = [("reason", "TIMEOUT"), ("detail", "")];
        given(&NotificationDecider::default(), vec![]).when(with("", "o-1", &good)).then_invalid("customer_id");
        given(&NotificationDecider::default(), vec![]).when(with("c-1", "", &good)).then_invalid("order_id");
        given(&NotificationDecider::default(), vec![]).when(with("c-1", &"o".repeat(129), &good)).then_invalid("order_id");
        given(&NotificationDecider::default(), vec![]).when(with("c-1", "o-1", &[("reason", "TIMEOUT")])).then_invalid("fields.detail is missing");
        given(&NotificationDecider::default(), vec![])
            .when(with("c-1", "o-1", &[("reason", "TIMEOUT"), ("detail", ""), ("carrier", "DHL")]))
            .then_invalid("fields.\"carrier\" is not a field of ORDER_CANCELLED notifications (theirs: reason, detail)");
        given(&NotificationDecider::default(), vec![])
            .when(with("c-1", "o-1", &[("reason", "TIMEOUT"), ("detail", &"x".repeat(1025))]))
            .then_invalid("fields.detail must be at most 1024 characters");
    }

    #[test]
    fn the_message_is_rendered_from_the_template_of_the_kind_and_the_chosen_channel() {
        let cancelled = NotificationCommand::SendNotification {
            customer_id: "c-1".into(),
            order_id: "o-1".into(),
            kind: NotificationKind::OrderCancelled,
            fields: [("reason", "TIMEOUT"), ("detail", "")].into_iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        };
        let sent_as = |channel, recipient: &str, message: &str| NotificationEvent::NotificationSent {
            order_id: "o-1".into(),
            kind: NotificationKind::OrderCancelled,
            channel,
            recipient: recipient.into(),
            message: message.into(),
        };
        given(&NotificationDecider::default(), vec![]).when(cancelled.clone()).then(vec![sent_as(
            Channel::Email,
            "c-1",
            "Your order o-1 was cancelled because we could not complete it in time (TIMEOUT).",
        )]);
        given(&NotificationDecider::default(), vec![preferences_set(Channel::Sms, "+49 30 1")]).when(cancelled).then(vec![sent_as(
            Channel::Sms,
            "+49 30 1",
            "Order o-1 cancelled (TIMEOUT).",
        )]);
    }

    #[test]
    fn a_message_over_the_limit_is_invalid_not_sent() {
        // Two fields at their limit fill a long template past the message's limit.
        let dir = std::env::temp_dir().join(format!("notify-long-template-{}", std::process::id()));
        crate::templates::tests::copy_built_in(&dir);
        let long = "{% for _ in range(5) %}{{ location }}{% endfor %}";
        std::fs::write(dir.join("shipment_out_for_delivery.email.txt"), long).expect("write the template");
        let templates = Templates::from_folder(&dir).expect("the folder loads");
        std::fs::remove_dir_all(&dir).ok();
        let decider = NotificationDecider::new(Arc::new(templates));
        let command = NotificationCommand::SendNotification {
            customer_id: "c-1".into(),
            order_id: "o-1".into(),
            kind: NotificationKind::ShipmentOutForDelivery,
            fields: [("location".to_string(), "x".repeat(1000))].into(),
        };
        given(&decider, vec![])
            .when(command)
            .then_invalid("the message of shipment_out_for_delivery.email.txt: message must be 1 to 4096 characters and not blank, got 5000");
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
            state.sent.into_keys().collect::<Vec<_>>(),
            vec![("o-1".to_string(), NotificationKind::OrderConfirmed), ("o-1".to_string(), NotificationKind::OrderShipped)]
        );
    }

    // Delivery outcomes

    const KIND: NotificationKind = NotificationKind::OrderConfirmed;

    fn confirmed_sent() -> NotificationEvent {
        sent("o-1", KIND, Channel::Email, "c-1")
    }
    fn failure(attempt: i64, error: &str) -> NotificationCommand {
        NotificationCommand::RecordDeliveryFailure { customer_id: "c-1".into(), order_id: "o-1".into(), kind: KIND, attempt, error: error.into() }
    }
    fn failed(attempt: i64, error: &str) -> NotificationEvent {
        NotificationEvent::NotificationDeliveryFailed { order_id: "o-1".into(), kind: KIND, attempt, error: error.into() }
    }
    fn delivered_command(attempts: i64) -> NotificationCommand {
        NotificationCommand::RecordDelivered { customer_id: "c-1".into(), order_id: "o-1".into(), kind: KIND, attempts }
    }
    fn delivered(attempts: i64) -> NotificationEvent {
        NotificationEvent::NotificationDelivered { order_id: "o-1".into(), kind: KIND, attempts }
    }
    fn park(attempts: i64, reason: &str) -> NotificationCommand {
        NotificationCommand::ParkDelivery { customer_id: "c-1".into(), order_id: "o-1".into(), kind: KIND, attempts, reason: reason.into() }
    }
    fn parked(attempts: i64, reason: &str) -> NotificationEvent {
        NotificationEvent::NotificationParked { order_id: "o-1".into(), kind: KIND, attempts, reason: reason.into() }
    }

    #[test]
    fn a_failed_attempt_is_recorded_once() {
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(failure(1, "HTTP 500")).then(vec![failed(1, "HTTP 500")]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), failed(1, "HTTP 500")])
            .when(failure(2, "timeout"))
            .then(vec![failed(2, "timeout")]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), failed(1, "HTTP 500"), failed(2, "timeout")])
            .when(failure(2, "timeout"))
            .then(vec![]);
    }

    #[test]
    fn a_failure_after_the_outcome_changes_nothing() {
        given(&NotificationDecider::default(), vec![confirmed_sent(), delivered(1)]).when(failure(2, "HTTP 500")).then(vec![]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), parked(3, "HTTP 500")]).when(failure(4, "HTTP 500")).then(vec![]);
    }

    #[test]
    fn delivered_is_recorded_once_and_never_after_parking() {
        given(&NotificationDecider::default(), vec![confirmed_sent(), failed(1, "HTTP 500")]).when(delivered_command(2)).then(vec![delivered(2)]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), delivered(1)]).when(delivered_command(1)).then(vec![]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), parked(8, "HTTP 500")])
            .when(delivered_command(9))
            .then_refused("parked after 8 attempts");
    }

    #[test]
    fn parking_is_recorded_once_and_never_after_delivery() {
        given(&NotificationDecider::default(), vec![confirmed_sent(), failed(1, "HTTP 500")])
            .when(park(2, "HTTP 500"))
            .then(vec![parked(2, "HTTP 500")]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), parked(2, "HTTP 500")]).when(park(2, "HTTP 500")).then(vec![]);
        given(&NotificationDecider::default(), vec![confirmed_sent(), delivered(1)]).when(park(2, "HTTP 500")).then_refused("delivered already");
    }

    #[test]
    fn an_outcome_needs_a_sent_notification() {
        let other_kind = NotificationCommand::RecordDelivered {
            customer_id: "c-1".into(),
            order_id: "o-1".into(),
            kind: NotificationKind::OrderShipped,
            attempts: 1,
        };
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(other_kind).then_refused("no ORDER_SHIPPED notification of order o-1");
        given(&NotificationDecider::default(), vec![]).when(failure(1, "HTTP 500")).then_refused("was sent");
        given(&NotificationDecider::default(), vec![]).when(park(1, "HTTP 500")).then_refused("was sent");
    }

    #[test]
    fn an_outcome_must_be_well_formed() {
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(failure(0, "HTTP 500")).then_invalid("attempt must be at least 1");
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(failure(1, " ")).then_invalid("error must be 1 to 1024");
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(failure(1, &"x".repeat(1025))).then_invalid("error must be 1 to 1024");
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(delivered_command(0)).then_invalid("attempts must be at least 1");
        given(&NotificationDecider::default(), vec![confirmed_sent()])
            .when(park(-1, "HTTP 500"))
            .then_invalid("attempts must be at least 0, got -1");
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(park(1, "")).then_invalid("reason must be 1 to 1024");
        let no_customer = NotificationCommand::RecordDelivered { customer_id: String::new(), order_id: "o-1".into(), kind: KIND, attempts: 1 };
        given(&NotificationDecider::default(), vec![confirmed_sent()]).when(no_customer).then_invalid("customer_id");
        // Malformed is invalid even when it names no sent notification.
        given(&NotificationDecider::default(), vec![]).when(failure(0, "HTTP 500")).then_invalid("attempt must be at least 1");
    }

    #[test]
    fn evolve_follows_each_delivery() {
        let state = fold::<NotificationDecider>(&[
            confirmed_sent(),
            sent("o-2", KIND, Channel::Email, "c-1"),
            failed(1, "HTTP 500"),
            failed(2, "HTTP 500"),
            NotificationEvent::NotificationDelivered { order_id: "o-2".into(), kind: KIND, attempts: 1 },
            parked(3, "HTTP 500"),
        ]);
        assert_eq!(state.sent[&("o-1".to_string(), KIND)], DeliveryStatus { attempts: 3, outcome: DeliveryOutcome::Parked });
        assert_eq!(state.sent[&("o-2".to_string(), KIND)], DeliveryStatus { attempts: 1, outcome: DeliveryOutcome::Delivered });
    }
}

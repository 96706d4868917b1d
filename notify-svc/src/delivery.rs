//! Delivers each `NotificationSent` once it is in the log: the side effect runs after the
//! decision is durable, so a crash can repeat a delivery (at-least-once, `event_id` is the
//! idempotency key receivers can use) but never deliver something that was not decided.
use crate::sender::{Delivery, NotificationSender};
use contracts::{
    EventEnvelope,
    notification::{Notification, NotificationEvent},
};
use runtime::{CommandOut, EventHandler, HandlerError};

pub struct DeliverNotifications {
    pub sender: Box<dyn NotificationSender>,
}

impl EventHandler<Notification> for DeliverNotifications {
    fn name(&self) -> &str {
        "notify-deliver"
    }

    async fn handle(&self, event: &EventEnvelope<NotificationEvent>) -> Result<Vec<CommandOut>, HandlerError> {
        let Some(delivery) = Delivery::from_event(event) else { return Ok(vec![]) };
        match self.sender.send(&delivery).await {
            Ok(()) => Ok(vec![]),
            // Retrying cannot help (e.g. the webhook answers 400): record it loudly and go on,
            // the NotificationSent event stays in the log for a later re-delivery.
            Err(error) if !error.is_retryable() => {
                tracing::error!(event_id = %delivery.event_id, order_id = %delivery.order_id, %error, "notification could not be delivered");
                Ok(vec![])
            }
            Err(error) => Err(Box::new(error)),
        }
    }
}

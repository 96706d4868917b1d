//! Delivery of `NotificationSent` events to the outside world. The delivery loop calls a sender
//! only after the event is in the log, and may call it again for the same event (a retry, a
//! crash before the outcome was recorded), so every delivery carries the `event_id` for
//! receivers to drop duplicates.
use contracts::EventEnvelope;
use contracts::notification::{Channel, NotificationEvent, NotificationKind};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// When set (and not blank), notifications are POSTed there instead of written to a file.
pub const WEBHOOK_URL_ENV: &str = "NOTIFY_WEBHOOK_URL";
/// File name of the [`FileSender`]'s output inside the run directory.
pub const NOTIFICATIONS_FILE: &str = "notifications.jsonl";

/// One notification to deliver; serialised as the JSON line / webhook body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    pub customer_id: String,
    pub order_id: String,
    pub kind: NotificationKind,
    pub channel: Channel,
    pub recipient: String,
    pub message: String,
    /// Epoch millis of the `NotificationSent` event.
    pub occurred_at: i64,
}

impl Delivery {
    /// The delivery a notification event asks for; `None` for events that deliver nothing.
    pub fn from_event(event: &EventEnvelope<NotificationEvent>) -> Option<Delivery> {
        match &event.payload {
            NotificationEvent::NotificationSent { order_id, kind, channel, recipient, message } => Some(Delivery {
                event_id: event.event_id.clone(),
                customer_id: event.aggregate_id.clone(),
                order_id: order_id.clone(),
                kind: *kind,
                channel: *channel,
                recipient: recipient.clone(),
                message: message.clone(),
                occurred_at: event.occurred_at,
            }),
            NotificationEvent::PreferencesSet { .. }
            | NotificationEvent::OptOutSet { .. }
            | NotificationEvent::NotificationDeliveryFailed { .. }
            | NotificationEvent::NotificationDelivered { .. }
            | NotificationEvent::NotificationParked { .. } => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot write notification to {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("cannot encode notification: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("invalid webhook URL {url:?}: {reason}")]
    InvalidWebhookUrl { url: String, reason: String },
    #[error("webhook request failed: {0}")]
    Webhook(#[from] reqwest::Error),
    #[error("webhook answered HTTP {status}")]
    WebhookStatus { status: u16 },
}

impl SendError {
    /// Whether trying the same delivery again later can succeed: a client error from the
    /// webhook (other than timeout/rate limit) or a bad configuration will not go away.
    pub fn is_retryable(&self) -> bool {
        match self {
            SendError::File { .. } | SendError::Webhook(_) => true,
            SendError::WebhookStatus { status } => !(400..500).contains(status) || *status == 408 || *status == 429,
            SendError::Encode(_) | SendError::InvalidWebhookUrl { .. } => false,
        }
    }
}

pub trait NotificationSender: Send + Sync {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Appends one JSON line per delivery to a file (the default: `<RUN_DIR>/notifications.jsonl`).
#[derive(Debug)]
pub struct FileSender {
    path: PathBuf,
    // Serialises appends from concurrent sends so lines never interleave.
    write_lock: tokio::sync::Mutex<()>,
}

impl FileSender {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileSender { path: path.into(), write_lock: tokio::sync::Mutex::new(()) }
    }

    pub fn in_run_dir(run_dir: &Path) -> Self {
        FileSender::new(run_dir.join(NOTIFICATIONS_FILE))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn append(&self, delivery: &Delivery) -> Result<(), SendError> {
        let mut line = serde_json::to_vec(delivery)?;
        line.push(b'\n');
        let file_error = |source| SendError::File { path: self.path.clone(), source };
        let _guard = self.write_lock.lock().await;
        if let Some(parent) = self.path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent).await.map_err(file_error)?;
        }
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await.map_err(file_error)?;
        file.write_all(&line).await.map_err(file_error)?;
        file.flush().await.map_err(file_error)
    }
}

impl NotificationSender for FileSender {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.append(delivery))
    }
}

/// POSTs each delivery as JSON to a webhook; any 2xx answer counts as delivered.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    url: reqwest::Url,
    client: reqwest::Client,
}

impl WebhookSender {
    /// `timeout` bounds a request from connecting to the last byte of the answer.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, SendError> {
        let invalid = |reason: String| SendError::InvalidWebhookUrl { url: url.to_string(), reason };
        let url = reqwest::Url::parse(url).map_err(|error| invalid(error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https".into()));
        }
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(WebhookSender { url, client })
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    async fn post(&self, delivery: &Delivery) -> Result<(), SendError> {
        let response = self.client.post(self.url.clone()).json(delivery).send().await?;
        let status = response.status();
        if status.is_success() { Ok(()) } else { Err(SendError::WebhookStatus { status: status.as_u16() }) }
    }
}

impl NotificationSender for WebhookSender {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.post(delivery))
    }
}

/// The webhook sender when `NOTIFY_WEBHOOK_URL` is set and not blank, else a [`FileSender`]
/// writing `<run_dir>/notifications.jsonl`. Fails only on an unusable webhook URL.
pub fn sender_from_env(run_dir: &Path, timeout: Duration) -> Result<Arc<dyn NotificationSender>, SendError> {
    match std::env::var(WEBHOOK_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Ok(Arc::new(WebhookSender::new(url.trim(), timeout)?)),
        _ => Ok(Arc::new(FileSender::in_run_dir(run_dir))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
    use runtime::testing::envelope;
    use std::sync::{Arc, Mutex};

    fn delivery(event_id: &str, kind: NotificationKind) -> Delivery {
        Delivery {
            event_id: event_id.into(),
            customer_id: "c-1".into(),
            order_id: "o-1".into(),
            kind,
            channel: Channel::Email,
            recipient: "ada@example.com".into(),
            message: "Your order o-1 has been shipped.".into(),
            occurred_at: 1_700_000_000_000,
        }
    }

    #[test]
    fn delivery_is_built_from_notification_sent_only() {
        let sent = envelope(
            "c-1",
            3,
            NotificationEvent::NotificationSent {
                order_id: "o-1".into(),
                kind: NotificationKind::OrderShipped,
                channel: Channel::Email,
                recipient: "ada@example.com".into(),
                message: "Your order o-1 has been shipped.".into(),
            },
        );
        assert_eq!(
            Delivery::from_event(&sent),
            Some(Delivery { occurred_at: 1_700_000_000_003, ..delivery("c-1-e3", NotificationKind::OrderShipped) })
        );
        let preferences = envelope("c-1", 3, NotificationEvent::PreferencesSet { channel: Channel::Sms, recipient: "+49".into() });
        assert_eq!(Delivery::from_event(&preferences), None);
    }

    #[tokio::test]
    async fn file_sender_appends_one_json_line_per_delivery() {
        let run_dir = std::env::temp_dir().join(format!("notify-svc-test-{}", uuid::Uuid::new_v4())).join("nested");
        let sender = FileSender::in_run_dir(&run_dir);
        let first = delivery("e-1", NotificationKind::OrderConfirmed);
        let second = delivery("e-2", NotificationKind::OrderShipped);
        sender.send(&first).await.unwrap();
        sender.send(&second).await.unwrap();

        let written = std::fs::read_to_string(run_dir.join(NOTIFICATIONS_FILE)).unwrap();
        let lines: Vec<Delivery> = written.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines, vec![first, second]);
        assert!(written.contains(r#""kind":"ORDER_CONFIRMED""#) && written.contains(r#""channel":"EMAIL""#));
        std::fs::remove_dir_all(run_dir.parent().unwrap()).unwrap();
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn webhook_url_must_be_http() {
        assert!(matches!(WebhookSender::new("not a url", TIMEOUT), Err(SendError::InvalidWebhookUrl { .. })));
        assert!(matches!(WebhookSender::new("ftp://example.com/x", TIMEOUT), Err(SendError::InvalidWebhookUrl { .. })));
        assert!(WebhookSender::new("http://127.0.0.1:9/hook", TIMEOUT).is_ok());
    }

    #[test]
    fn only_lasting_failures_are_not_retryable() {
        assert!(SendError::WebhookStatus { status: 503 }.is_retryable());
        assert!(SendError::WebhookStatus { status: 429 }.is_retryable());
        assert!(!SendError::WebhookStatus { status: 400 }.is_retryable());
        assert!(!SendError::InvalidWebhookUrl { url: String::new(), reason: String::new() }.is_retryable());
    }

    type Received = Arc<Mutex<Vec<Delivery>>>;

    async fn webhook_answering(status: StatusCode) -> (String, Received) {
        let received: Received = Arc::default();
        let app = Router::new()
            .route(
                "/hook",
                post(move |State(received): State<Received>, Json(delivery): Json<Delivery>| async move {
                    received.lock().unwrap().push(delivery);
                    status
                }),
            )
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{address}/hook"), received)
    }

    #[tokio::test]
    async fn webhook_sender_posts_the_delivery_as_json() {
        let (url, received) = webhook_answering(StatusCode::NO_CONTENT).await;
        let sender = WebhookSender::new(&url, TIMEOUT).unwrap();
        let sent = delivery("e-1", NotificationKind::RefundIssued);
        sender.send(&sent).await.unwrap();
        assert_eq!(*received.lock().unwrap(), vec![sent]);
    }

    #[tokio::test]
    async fn webhook_sender_reports_error_answers() {
        let (url, _received) = webhook_answering(StatusCode::SERVICE_UNAVAILABLE).await;
        let sender = WebhookSender::new(&url, TIMEOUT).unwrap();
        let outcome = sender.send(&delivery("e-1", NotificationKind::RefundIssued)).await;
        assert!(matches!(outcome, Err(SendError::WebhookStatus { status: 503 })), "{outcome:?}");
    }
}

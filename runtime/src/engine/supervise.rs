//! Every loop runs under a supervisor: when it fails it is started again, fresh, which also
//! rebuilds whatever state it kept from the log.
use std::{fmt::Display, future::Future, time::Duration};

/// Runs `make()` again whenever it fails, with capped exponential back-off.
pub async fn supervise<F, Fut, E>(label: String, make: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: Display,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        let started = tokio::time::Instant::now();
        match make().await {
            Ok(()) => tracing::warn!(%label, "loop ended; restarting"),
            Err(error) => tracing::error!(%label, %error, "loop failed; restarting"),
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(200);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

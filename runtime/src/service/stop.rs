//! A stop that ends. Once HTTP is no longer served, returning from `main` drops every loop and
//! with it every Kafka client; librdkafka's consumer close waits for the group coordinator with
//! no timeout of its own, and the runtime waits for blocking calls still under way. With the
//! broker down or stalled that can last for good, and whoever stops the process (a deploy, a
//! test, an operator) would have to kill it. Nothing is lost by not waiting: what the loops
//! handled is in Kafka, their checkpoints are written as they go, and a consumer that did not
//! leave its group is dropped by the session timeout.
use std::time::Duration;

/// How long closing the clients may take after the process stopped serving.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Exits the process `grace` from now if it has not exited by then.
pub(super) fn exit_unless_closed_within(grace: Duration) {
    let spawned = std::thread::Builder::new().name("stop-grace".into()).spawn(move || {
        std::thread::sleep(grace);
        tracing::warn!(grace_secs = grace.as_secs(), "Kafka clients still closing: exiting without waiting for them");
        std::process::exit(0);
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "no stop-grace thread: the stop waits for the Kafka clients however long they take");
    }
}

//! Operator pause: `POST /admin/pause[?kind=command|policy|projection]` stops the service's
//! consuming loops from handling new batches (the batch in hand finishes; a batch that arrives
//! afterwards waits, unhandled and uncommitted), `POST /admin/resume`
//! lets them go on. Consumers stay in their groups, so nothing rebalances; consumer lag grows
//! while paused, which is how an operator (or a test) sees a stuck pipeline in the metrics. A
//! held loop that had parked (`kafka::parking`) fetches again while it waits, or its lag would
//! not move.
use crate::{kafka::Parking, shared::LoopKind};
use rdkafka::{
    consumer::{ConsumerContext, StreamConsumer},
    error::KafkaError,
};
use std::sync::OnceLock;
use tokio::sync::watch;

fn switch(kind: LoopKind) -> &'static watch::Sender<bool> {
    static SWITCHES: OnceLock<[watch::Sender<bool>; 3]> = OnceLock::new();
    let switches = SWITCHES.get_or_init(|| std::array::from_fn(|_| watch::channel(false).0));
    &switches[kind as usize]
}

/// Pauses (`true`) or resumes the loops of `kind`.
pub fn set_paused(kind: LoopKind, paused: bool) {
    switch(kind).send_replace(paused);
}

pub fn is_paused(kind: LoopKind) -> bool {
    *switch(kind).borrow()
}

/// Returns at once unless loops of `kind` are paused; then waits for the resume.
pub async fn wait_while_paused(kind: LoopKind) {
    let mut receiver = switch(kind).subscribe();
    // Err only if the sender is gone, which the static never is.
    let _ = receiver.wait_for(|paused| !*paused).await;
}

/// [`wait_while_paused`] for a loop that parks: held, it fetches, so its lag shows.
pub async fn wait_while_paused_fetching<C: ConsumerContext>(
    kind: LoopKind,
    parking: &mut Parking,
    consumer: &StreamConsumer<C>,
) -> Result<(), KafkaError> {
    if is_paused(kind) {
        parking.unpark(consumer)?;
    }
    wait_while_paused(kind).await;
    Ok(())
}

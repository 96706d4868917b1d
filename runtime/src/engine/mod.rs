//! The consuming loops that move the system: the command processor (the single writer of an
//! aggregate stream, with its pure core in `command_core`), subscriptions (policies and other
//! reactors), deadlines (an aggregate's waits that ran out), the operator pause, the
//! supervisor that restarts a failed loop, and the heap trim after rebuilds.
mod accepted_history;
mod aggregate_store;
pub(crate) mod command_core;
pub(crate) mod command_processor;
pub(crate) mod deadlines;
mod error;
mod heap;
pub(crate) mod pause;
pub(crate) mod subscription;
pub(crate) mod supervise;

pub use accepted_history::AcceptedHistory;
pub use deadlines::{Deadlines, command_id_for_deadline};
pub use error::LoopError;
pub use subscription::{CommandOut, EventHandler, HandlerError};

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use std::{sync::Arc, time::Duration};

/// Most records a loop takes in one batch, and how long it waits for more once one arrived.
pub(crate) const MAX_BATCH: usize = 500;
pub(crate) const BATCH_LINGER: Duration = Duration::from_millis(5);

/// Partition count of `topic`, asked from a blocking thread: a metadata request can wait
/// seconds for a broker (e.g. while it is down and loops restart), and the runtime's few
/// worker threads must stay free for everything else, HTTP probes included.
pub(crate) async fn partition_count<C: ConsumerContext + 'static>(consumer: &Arc<StreamConsumer<C>>, topic: &str) -> Result<i32, LoopError> {
    let (consumer, topic) = (consumer.clone(), topic.to_string());
    Ok(tokio::task::spawn_blocking(move || crate::kafka::partition_count(&*consumer, &topic)).await??)
}

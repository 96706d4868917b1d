//! The producer every loop and HTTP handler uses: rust-rdkafka's `BaseProducer` with futures
//! for delivery reports, served by a thread that sleeps until librdkafka has one.
//!
//! rust-rdkafka's `FutureProducer` serves them from a thread calling `poll(100 ms)` in a loop.
//! That call hands librdkafka the time left in whole milliseconds (`Timeout::as_millis`
//! truncates) and so spins through the last fraction of every step: about 1 % of a core per
//! producer, loaded or idle, and a system runs some twenty of them. Here librdkafka calls back
//! when the producer's main queue goes from empty to holding an event (the hook
//! `StreamConsumer` uses for its messages); the thread wakes, serves the queue until it is empty
//! and parks again.
use rdkafka::{
    ClientConfig, ClientContext, Message, bindings as ffi,
    client::Client,
    config::FromClientConfigAndContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::ToBytes,
    producer::{BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer, ProducerContext},
};
use std::{
    ffi::c_void,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle, Thread},
    time::{Duration, Instant},
};

pub use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};

/// What a record's delivery future yields: the broker's answer, or `Canceled` when the
/// producer went away before librdkafka reported.
pub type Acknowledgement = futures::channel::oneshot::Receiver<OwnedDeliveryResult>;

/// Longest the serving thread sleeps without looking at the queue: a safety net only, every
/// event wakes it.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// Events served in one go before the thread looks at its stop flag again.
const EVENTS_PER_ROUND: usize = 10_000;
/// Wait between two tries of a record refused with a full local queue.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(10);

/// Resolves each record's future from its delivery report.
pub struct DeliveryContext;

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<futures::channel::oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, acknowledge: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(message) => {
                super::loopback::acknowledged(message);
                Ok(Delivery { partition: message.partition(), offset: message.offset(), timestamp: message.timestamp() })
            }
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The sender may have stopped waiting; the record is delivered all the same.
        let _ = acknowledge.send(owned);
    }
}

/// A cheap-to-clone handle; the last clone dropped stops the serving thread and closes the
/// client (librdkafka purges what it still holds, each such future resolves with an error).
#[derive(Clone)]
pub struct KafkaProducer {
    shared: Arc<Shared>,
}

// Fields drop in this order: the queue handle is released before the client it belongs to.
struct Shared {
    queue: Arc<MainQueue>,
    producer: Arc<BaseProducer<DeliveryContext>>,
    stop: Arc<AtomicBool>,
    /// The serving thread, woken by librdkafka's callback; boxed so the pointer librdkafka
    /// holds stays where it is.
    wake: Box<Thread>,
    server: Option<JoinHandle<()>>,
}

/// librdkafka's handle on the producer's main queue, where delivery reports, errors and logs
/// land.
struct MainQueue(*mut ffi::rd_kafka_queue_t);

// SAFETY: librdkafka's queue handles are thread-safe (every operation takes the queue's lock).
unsafe impl Send for MainQueue {}
unsafe impl Sync for MainQueue {}

impl MainQueue {
    fn of(client: &Client<DeliveryContext>) -> MainQueue {
        // SAFETY: the client is alive; the handle holds a reference on the queue until dropped.
        MainQueue(unsafe { ffi::rd_kafka_queue_get_main(client.native_ptr()) })
    }

    fn is_empty(&self) -> bool {
        // SAFETY: the handle is valid until `drop`.
        unsafe { ffi::rd_kafka_queue_length(self.0) == 0 }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: the handle came from rd_kafka_queue_get_main and is released once.
        unsafe { ffi::rd_kafka_queue_destroy(self.0) }
    }
}

unsafe extern "C" fn event_landed(_: *mut ffi::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Thread` boxed in `Shared`, which turns this callback off before
    // dropping it; librdkafka calls it under the queue's lock, so it must stay this short.
    let thread = unsafe { &*(opaque as *const Thread) };
    thread.unpark();
}

impl KafkaProducer {
    pub fn from_config(config: &ClientConfig) -> Result<KafkaProducer, KafkaError> {
        let producer = Arc::new(BaseProducer::<DeliveryContext>::from_config_and_context(config, DeliveryContext)?);
        let queue = Arc::new(MainQueue::of(producer.client()));
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let (producer, queue, stop) = (producer.clone(), queue.clone(), stop.clone());
            thread::Builder::new()
                .name("kafka-deliveries".into())
                .spawn(move || serve(&producer, &queue, &stop))
                .map_err(|error| KafkaError::ClientCreation(format!("starting the delivery thread: {error}")))?
        };
        let wake = Box::new(server.thread().clone());
        // SAFETY: the queue handle is valid; the opaque outlives the callback (see `Drop`).
        unsafe { ffi::rd_kafka_queue_cb_event_enable(queue.0, Some(event_landed), &*wake as *const Thread as *mut c_void) };
        // An event that landed before the callback was on is served by this first wake.
        wake.unpark();
        Ok(KafkaProducer { shared: Arc::new(Shared { queue, producer, stop, wake, server: Some(server) }) })
    }

    /// Hands the record to librdkafka; the future resolves when the broker has acknowledged
    /// (or refused) it. A full local queue is an error here (`QueueFull`), with the record
    /// back for another try.
    // The record comes back by value for another try, as in rust-rdkafka's own `send_result`.
    #[allow(clippy::result_large_err)]
    pub fn send_result<'a, K, P>(&self, record: FutureRecord<'a, K, P>) -> Result<Acknowledgement, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (acknowledge, acknowledgement) = futures::channel::oneshot::channel();
        let base = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(acknowledge),
        };
        self.shared.producer.send(base).map(|()| acknowledgement).map_err(|(error, base)| {
            let record = FutureRecord {
                topic: base.topic,
                partition: base.partition,
                payload: base.payload,
                key: base.key,
                timestamp: base.timestamp,
                headers: base.headers,
            };
            (error, record)
        })
    }

    /// Produces the record and waits for the broker's answer; a full local queue is waited out
    /// for up to `queue_timeout`.
    pub async fn send<K, P>(&self, record: FutureRecord<'_, K, P>, queue_timeout: Duration) -> Result<Delivery, KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let give_up = Instant::now() + queue_timeout;
        let mut record = record;
        loop {
            match self.send_result(record) {
                Ok(acknowledgement) => {
                    return match acknowledgement.await {
                        Ok(answer) => answer.map_err(|(error, _)| error),
                        Err(_) => Err(KafkaError::Canceled),
                    };
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) if Instant::now() < give_up => {
                    record = returned;
                    tokio::time::sleep(QUEUE_FULL_RETRY).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Blocks the calling thread briefly while librdkafka's full local queue drains.
    pub fn wait_for_room(&self) {
        thread::sleep(QUEUE_FULL_RETRY);
    }

    /// The client underneath, for metadata.
    pub fn client(&self) -> &Client<DeliveryContext> {
        self.shared.producer.client()
    }
}

fn serve(producer: &BaseProducer<DeliveryContext>, queue: &MainQueue, stop: &AtomicBool) {
    loop {
        let mut served = 0;
        while !queue.is_empty() && served < EVENTS_PER_ROUND {
            producer.poll(Duration::ZERO);
            served += 1;
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        if queue.is_empty() {
            thread::park_timeout(IDLE_WAKE);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the handle is valid; once this returns librdkafka no longer calls back, so the
        // boxed thread handle may go.
        unsafe { ffi::rd_kafka_queue_cb_event_enable(self.queue.0, None, std::ptr::null_mut()) };
        self.stop.store(true, Ordering::Release);
        self.wake.unpark();
        if let Some(server) = self.server.take() {
            // The thread holds clones of the queue and the producer: once it has ended, these
            // fields are the last ones, and the BaseProducer's own drop purges what is left and
            // serves the last reports.
            let _ = server.join();
        }
    }
}

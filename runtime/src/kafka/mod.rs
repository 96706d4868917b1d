//! Everything that touches Kafka or the schema registry, and nothing above it: clients
//! configured one way, the partitioner every client agrees on, the topics, the loop plumbing
//! (batches, rebalances, the outbox of produces, commits), bounded reads of an event
//! partition and the Avro codec.
//!
//! Tools (`orderctl`, the system tests) get the small public part re-exported here; the rest
//! is the runtime's own.
mod clients;
pub(crate) mod codec;
pub(crate) mod consume;
pub(crate) mod event_log;
pub(crate) mod loopback;
mod parking;
mod partitioner;
mod producer;
mod topology;

pub use clients::{
    KafkaSetupError, METADATA_TIMEOUT, PARK_AFTER_ENV, Pace, admin, close_in_background, group_consumer, group_lag, headers, large_record_reader,
    offsets_keeper, offsets_probe, partition_count, partitions_of, producer, read_range, reader, watermarks,
};
pub use codec::{
    CodecError, EventCodec, MAX_AVRO_ALLOCATION_BYTES, Read, limit_avro_allocation, payload_branches, read_with_writer_schema, registry_settings,
    split_wire_format,
};
pub use partitioner::{murmur2, partition_for};
pub use producer::{Acknowledgement, Delivery, KafkaProducer};
pub use topology::{
    DEFAULT_PARTITIONS, PARTITION_RECORD_TOPIC, TopicSpec, all_topics, ensure_all, ensure_topics, internal_topics, verify_partition_counts,
};

// For a service's own loop (notify-svc's delivery): a consumer-group member that follows the
// assignment, and the outbox that dead-letters a record the way the runtime's loops do.
pub use consume::{DeliveryError, GroupConsumer, Outbox, Outgoing, RebalanceTracker, dead_letter};
pub use parking::{CONSUMER_PARKED, Parking, wake_parked_loops};

pub(crate) use clients::{assigned_consumer, backlog_consumer, cached_watermarks, committed_offset, header, headers_without, loop_position};
pub(crate) use loopback::Stands;

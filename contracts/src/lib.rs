//! The contract between services: what travels on Kafka.
//!
//! * Events are Avro records (schemas in `schemas/*.avsc`, embedded here) wrapped in an
//!   [`EventEnvelope`]; each aggregate's payload is a Rust enum whose variants are, in order,
//!   the branches of the `payload` union. Append new variants at the end only.
//! * Commands are JSON objects tagged by `"type"` (what a user types into kcat), wrapped in a
//!   [`CommandEnvelope`] that carries the optional `command_id`.
//! * [`validate`] holds the stateless rules of commands (ids, text, codes, bounds) and
//!   [`validate::Validate`], which every command type implements.
//! * With the `openapi` feature, the contract types that appear in HTTP bodies and views
//!   (`OrderLine`, `Address`, `Channel`) derive their utoipa `ToSchema`.
//!
//! Nothing in here does I/O; the runtime crate moves these types over Kafka.

pub mod account;
mod envelope;
pub mod notification;
pub mod order;
pub mod shipment;
pub mod stock;
pub mod validate;

pub use envelope::{CommandEnvelope, EventEnvelope, EventMetadata};

use serde::{Serialize, de::DeserializeOwned};
use std::fmt::Debug;

/// One aggregate type and everything needed to move its messages: the pair of co-partitioned
/// topics, the Avro value schema of its events, and the Rust types of its events and commands.
pub trait Stream: Send + Sync + 'static {
    /// Short lower-case name, e.g. `order`; topics are `<name>.events` and `<name>.commands`.
    const NAME: &'static str;
    const EVENTS_TOPIC: &'static str;
    const COMMANDS_TOPIC: &'static str;
    /// The command field that holds the aggregate id (the Kafka key), e.g. `order_id`.
    const AGGREGATE_ID_FIELD: &'static str;
    /// The `.avsc` text of the event topic's value schema (subject `<events topic>-value`).
    const EVENT_SCHEMA: &'static str;
    type Event: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + EventType;
    type Command: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + Sync + CommandTarget + validate::Validate;
}

/// The name of an event's payload variant, e.g. `OrderPlaced` (same as its Avro record name).
pub trait EventType {
    fn event_type(&self) -> &'static str;
}

/// Which aggregate a command is addressed to; its id is the Kafka key of the command.
pub trait CommandTarget {
    fn aggregate_id(&self) -> &str;
    fn command_type(&self) -> &'static str;
}

/// Dead-letter topic of a command or event topic: where its records that cannot be read go.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Business rejections of commands (well-formed but refused by the aggregate), so that a
/// command's outcome can be looked up.
pub fn rejections_topic(stream_name: &str) -> String {
    format!("{stream_name}.rejections")
}

/// Where the single writer of a stream's partitions keeps snapshots of their state (a
/// compacted changelog, co-partitioned with the stream's events): `<stream>.snapshots`.
pub fn snapshots_topic(stream_name: &str) -> String {
    format!("{stream_name}.snapshots")
}

/// TopicNameStrategy subject of an event topic's value schema.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The schema files, by event topic, for tools that register or decode every topic.
pub const EVENT_SCHEMAS: [(&str, &str); 5] = [
    (order::Order::EVENTS_TOPIC, order::Order::EVENT_SCHEMA),
    (stock::Stock::EVENTS_TOPIC, stock::Stock::EVENT_SCHEMA),
    (account::Account::EVENTS_TOPIC, account::Account::EVENT_SCHEMA),
    (shipment::Shipment::EVENTS_TOPIC, shipment::Shipment::EVENT_SCHEMA),
    (notification::Notification::EVENTS_TOPIC, notification::Notification::EVENT_SCHEMA),
];

/// Every aggregate's command topic, in the same order as [`EVENT_SCHEMAS`].
pub const COMMAND_TOPICS: [&str; 5] = [
    order::Order::COMMANDS_TOPIC,
    stock::Stock::COMMANDS_TOPIC,
    account::Account::COMMANDS_TOPIC,
    shipment::Shipment::COMMANDS_TOPIC,
    notification::Notification::COMMANDS_TOPIC,
];

/// Declares a [`Stream`] and derives `EventType`/`CommandTarget` from the enums' variant names.
macro_rules! stream {
    ($stream:ident, $name:literal, $aggregate_id_field:literal, $event:ty, $command:ty) => {
        pub struct $stream;
        impl $crate::Stream for $stream {
            const NAME: &'static str = $name;
            const AGGREGATE_ID_FIELD: &'static str = $aggregate_id_field;
            const EVENTS_TOPIC: &'static str = concat!($name, ".events");
            const COMMANDS_TOPIC: &'static str = concat!($name, ".commands");
            const EVENT_SCHEMA: &'static str = include_str!(concat!("../../schemas/", $name, ".events.avsc"));
            type Event = $event;
            type Command = $command;
        }
        impl $crate::EventType for $event {
            fn event_type(&self) -> &'static str {
                self.into()
            }
        }
    };
}
pub(crate) use stream;

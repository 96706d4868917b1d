use serde::{Deserialize, Serialize};

/// The Avro envelope every event topic uses; `P` is the aggregate's payload enum.
/// Field order and names match the `.avsc` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventEnvelope<P> {
    pub event_id: String,
    pub aggregate_id: String,
    pub version: i64,
    pub previous_event_id: Option<String>,
    pub occurred_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub command_id: String,
    pub command_offset: i64,
    pub payload: P,
}

/// The envelope without its payload: what readers need to order and trace events.
#[derive(Debug, Clone, PartialEq)]
pub struct EventMetadata {
    pub event_id: String,
    pub aggregate_id: String,
    pub version: i64,
    pub previous_event_id: Option<String>,
    pub occurred_at: i64,
    pub correlation_id: String,
    pub causation_id: String,
    pub command_id: String,
    pub command_offset: i64,
}

impl<P> EventEnvelope<P> {
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            event_id: self.event_id.clone(),
            aggregate_id: self.aggregate_id.clone(),
            version: self.version,
            previous_event_id: self.previous_event_id.clone(),
            occurred_at: self.occurred_at,
            correlation_id: self.correlation_id.clone(),
            causation_id: self.causation_id.clone(),
            command_id: self.command_id.clone(),
            command_offset: self.command_offset,
        }
    }
}

/// A command as it travels on a command topic: `{"type": "...", ...fields, "command_id": "..."}`.
/// `command_id` is optional for people typing commands into kcat; the runtime then derives
/// a stable one from the record's position so redelivery still deduplicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope<C> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    #[serde(flatten)]
    pub command: C,
}

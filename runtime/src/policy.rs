//! Choreography: a policy reacts to another service's events by commanding its own aggregates.
use contracts::{EventEnvelope, Stream};

/// Translates one event of `Source` into commands for the service's own `Target` stream.
/// Must be deterministic: the runtime derives each command's id from the event id, the
/// policy name and the command's position, so redelivered events produce duplicate command
/// ids that the command processor ignores.
pub trait Policy: Send + Sync + 'static {
    type Source: Stream;
    type Target: Stream;
    /// Stable name: part of the consumer group id and of every derived command id.
    const NAME: &'static str;

    fn react(&self, event: &EventEnvelope<<Self::Source as Stream>::Event>) -> Vec<<Self::Target as Stream>::Command>;
}

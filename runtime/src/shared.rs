//! The leaf every part of the runtime may use and that uses nothing of the runtime: the clock,
//! the ids the runtime derives, and the kinds of consuming loop (a label of metrics, of the
//! operator pause and of `/ready`).
use uuid::Uuid;

/// Namespace of command ids the runtime derives (from a record position or a source event).
pub const COMMAND_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7266_6c6f_775f_636d_645f_6964);

/// The id of a command record that carries none: stable for the record's position, so a
/// redelivered record is recognised.
pub fn command_id_for_record(topic: &str, partition: i32, offset: i64) -> String {
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, format!("{topic}/{partition}/{offset}").as_bytes()).to_string()
}

/// The id of the `position`-th command a policy issues for an event: identical on every
/// redelivery of the event.
pub fn command_id_for_reaction(event_id: &str, policy: &str, position: usize) -> String {
    Uuid::new_v5(&COMMAND_ID_NAMESPACE, format!("{event_id}/{policy}/{position}").as_bytes()).to_string()
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_millis() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The three kinds of consuming loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopKind {
    Command,
    Policy,
    Projection,
}

impl LoopKind {
    pub const ALL: [LoopKind; 3] = [LoopKind::Command, LoopKind::Policy, LoopKind::Projection];

    pub fn as_str(self) -> &'static str {
        match self {
            LoopKind::Command => "command",
            LoopKind::Policy => "policy",
            LoopKind::Projection => "projection",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A number from the environment variable `variable`, or `default` when it is not set. A value
/// that is set but is not a number is reported (once per read) and the default is used, so a
/// typo in a setting shows in the log instead of passing silently.
pub fn number_from_env<T: std::str::FromStr + std::fmt::Display + Copy>(variable: &str, default: T) -> T {
    match std::env::var(variable) {
        Err(_) => default,
        Ok(value) => match value.trim().parse() {
            Ok(number) => number,
            Err(_) => {
                tracing::warn!(variable, value, %default, "setting is not a number; the default is used");
                default
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        assert_eq!(command_id_for_record("t", 1, 2), command_id_for_record("t", 1, 2));
        assert_ne!(command_id_for_record("t", 1, 2), command_id_for_record("t", 1, 3));
        assert_eq!(command_id_for_reaction("e", "p", 0), command_id_for_reaction("e", "p", 0));
        assert_ne!(command_id_for_reaction("e", "p", 0), command_id_for_reaction("e", "p", 1));
    }

    #[test]
    fn loop_kinds_round_trip() {
        for kind in LoopKind::ALL {
            assert_eq!(LoopKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(LoopKind::parse("nope"), None);
    }
}

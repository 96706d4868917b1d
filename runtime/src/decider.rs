//! The pure core every aggregate implements. No Kafka, no SQL: the runtime feeds it commands and
//! past events and persists what it decides.
use contracts::Stream;
use serde::{Serialize, de::DeserializeOwned};
use std::{
    collections::{BTreeMap, VecDeque},
    fmt::Debug,
};

/// Why a command was not turned into events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The command itself is malformed (validation failed): it is dead-lettered with the
    /// original bytes, like unparseable JSON.
    #[error("invalid command: {0}")]
    Invalid(String),
    /// The command is well-formed but the aggregate's rules refuse it in its current state
    /// (e.g. cancelling a shipped order); recorded on `<stream>.rejections`.
    #[error("rejected: {0}")]
    Refused(String),
}

/// An aggregate as a decider. Commands that would have no effect (a retry of something
/// already done) must return `Ok(vec![])`: that is how natural-key idempotence is expressed.
pub trait Decider: Send + Sync + 'static {
    type Stream: Stream;
    /// State of ONE aggregate instance; `Default` is the state before its first event. It is
    /// serialisable because its writer keeps snapshots of it (`<stream>.snapshots`): a state
    /// that no longer reads back (its type changed) only costs a rebuild from the log.
    type State: Default + Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static;

    fn decide(&self, state: &Self::State, command: &<Self::Stream as Stream>::Command) -> Result<Vec<<Self::Stream as Stream>::Event>, Rejection>;

    fn evolve(state: Self::State, event: &<Self::Stream as Stream>::Event) -> Self::State;
}

/// Folds a history into a state (what rehydration does for one aggregate).
pub fn fold<D: Decider>(events: &[<D::Stream as Stream>::Event]) -> D::State {
    events.iter().fold(D::State::default(), D::evolve)
}

/// The ids of the last `capacity` things an aggregate finished with (an order's reservation of
/// a SKU, a declined payment), oldest first: enough for its decider to tell a repeated command
/// from a new one, without a state that grows with every order the aggregate ever saw. An exact
/// redelivery is caught before the decider anyway (the writer's handled command ids); this
/// covers a repeat under another command id, which comes within its saga's lifetime.
/// `contains` looks through them one by one: for a few thousand ids that costs microseconds,
/// and the state stays a plain list in snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct RecentIds(VecDeque<String>);

impl RecentIds {
    pub fn contains(&self, id: &str) -> bool {
        self.0.iter().any(|known| known == id)
    }

    /// Adds `id` (once), forgetting the oldest beyond `capacity`.
    pub fn remember(&mut self, id: &str, capacity: usize) {
        if !self.contains(id) {
            self.0.push_back(id.to_string());
        }
        while self.0.len() > capacity {
            self.0.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// Serde for a map whose keys are not strings (a tuple, an enum with data): as a list of
/// `[key, value]` pairs, which JSON can hold. `#[serde(with = "runtime::map_as_pairs")]`.
pub mod map_as_pairs {
    use super::BTreeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<K, V>, D::Error> {
        Ok(Vec::<(K, V)>::deserialize(deserializer)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::RecentIds;

    #[test]
    fn recent_ids_keep_the_last_ones_each_once() {
        let mut recent = RecentIds::default();
        for id in ["a", "b", "a", "c", "d"] {
            recent.remember(id, 3);
        }
        assert_eq!(recent.iter().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(!recent.contains("a") && recent.contains("b"));
        assert_eq!(serde_json::to_string(&recent).ok().as_deref(), Some(r#"["b","c","d"]"#));
    }
}

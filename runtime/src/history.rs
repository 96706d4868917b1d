//! The version rule, shared by every reader of an event topic (rehydration, policies,
//! projections): an event of aggregate A is accepted only if it extends A's accepted history —
//! `version == last accepted version + 1` and it names the last accepted event as its
//! predecessor. Anything else is a duplicate or a write by a writer that lost its partition.
use contracts::EventMetadata;
use std::collections::HashMap;

/// Tip of one aggregate's accepted history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryTip {
    pub version: i64,
    pub event_id: Option<String>,
}

impl HistoryTip {
    pub fn accepts(&self, event: &EventMetadata) -> bool {
        event.version == self.version + 1 && event.previous_event_id == self.event_id
    }

    pub fn advance(&mut self, event: &EventMetadata) {
        self.version = event.version;
        self.event_id = Some(event.event_id.clone());
    }
}

/// Accepted-history tips for many aggregates (one stream, any number of partitions).
#[derive(Debug, Default)]
pub struct HistoryGuard {
    tips: HashMap<String, HistoryTip>,
}

impl HistoryGuard {
    /// Accepts and records the event if it extends its aggregate's history.
    pub fn accept(&mut self, event: &EventMetadata) -> bool {
        let tip = self.tips.entry(event.aggregate_id.clone()).or_default();
        if tip.accepts(event) {
            tip.advance(event);
            true
        } else {
            false
        }
    }

    /// Starts an aggregate's history at `tip` (read from a snapshot of the stream's writer).
    pub(crate) fn restore(&mut self, aggregate_id: String, tip: HistoryTip) {
        self.tips.insert(aggregate_id, tip);
    }

    #[cfg(test)]
    fn tip(&self, aggregate_id: &str) -> Option<&HistoryTip> {
        self.tips.get(aggregate_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, version: i64, previous: Option<&str>) -> EventMetadata {
        EventMetadata {
            event_id: id.into(),
            aggregate_id: "a".into(),
            version,
            previous_event_id: previous.map(Into::into),
            occurred_at: 0,
            correlation_id: String::new(),
            causation_id: String::new(),
            command_id: String::new(),
            command_offset: 0,
        }
    }

    #[test]
    fn accepts_a_contiguous_chain_once() {
        let mut guard = HistoryGuard::default();
        assert!(guard.accept(&event("e1", 1, None)));
        assert!(guard.accept(&event("e2", 2, Some("e1"))));
        assert!(!guard.accept(&event("e2", 2, Some("e1"))), "redelivered duplicate");
        assert!(!guard.accept(&event("e4", 4, Some("e3"))), "gap");
        assert_eq!(guard.tip("a"), Some(&HistoryTip { version: 2, event_id: Some("e2".into()) }));
    }

    #[test]
    fn a_fenced_writers_chain_is_ignored_even_when_versions_line_up() {
        let mut guard = HistoryGuard::default();
        assert!(guard.accept(&event("e1", 1, None)));
        // The new owner's v2 lands first; the zombie's v2 and its v3 (built on the zombie's v2)
        // arrive after it. Version alone would wrongly accept the zombie's v3.
        assert!(guard.accept(&event("owner-2", 2, Some("e1"))));
        assert!(!guard.accept(&event("zombie-2", 2, Some("e1"))));
        assert!(!guard.accept(&event("zombie-3", 3, Some("zombie-2"))));
        assert!(guard.accept(&event("owner-3", 3, Some("owner-2"))));
    }
}

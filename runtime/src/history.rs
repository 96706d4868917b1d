//! The version rule, shared by every reader of an event topic (rehydration, policies,
//! projections): an event of aggregate A is accepted only if it extends A's accepted history —
//! `version == last accepted version + 1` and it names the last accepted event as its
//! predecessor. Anything else is a duplicate or a write by a writer that lost its partition.
use contracts::EventMetadata;
use hashlink::LruCache;

/// How many aggregates a [`HistoryGuard`] keeps the tips of: the most recently extended ones.
/// What fails the version rule comes soon after the history it forks (a writer that lost its
/// partition writes only until it learns so), so this bounds a reader's memory at little cost
/// to the rule; an aggregate quiet for longer starts over at its next event. Tips restored from
/// a snapshot come oldest aggregate first (by its first event's offset), the nearest to recency
/// a snapshot knows: beyond this many, the oldest aggregates' tips are let go.
pub const TIPS_REMEMBERED: usize = 100_000;

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

/// Accepted-history tips for many aggregates (one stream, any number of partitions), for the
/// [`TIPS_REMEMBERED`] most recently extended ones: a reader's memory stays bounded however
/// many aggregates the stream has ever had.
#[derive(Debug)]
pub struct HistoryGuard {
    tips: LruCache<String, HistoryTip>,
    /// Whether a tip was let go: from then on an aggregate without a tip may be one whose tip
    /// was let go, and its next event starts its history over instead of being refused.
    let_go: bool,
}

impl Default for HistoryGuard {
    fn default() -> Self {
        HistoryGuard::remembering(TIPS_REMEMBERED)
    }
}

impl HistoryGuard {
    pub fn remembering(aggregates: usize) -> Self {
        HistoryGuard { tips: LruCache::new(aggregates.max(1)), let_go: false }
    }

    /// Accepts and records the event if it extends its aggregate's history.
    pub fn accept(&mut self, event: &EventMetadata) -> bool {
        if let Some(tip) = self.tips.get_mut(event.aggregate_id.as_str()) {
            if !tip.accepts(event) {
                return false;
            }
            tip.advance(event);
            return true;
        }
        let first = HistoryTip::default();
        if !first.accepts(event) && !self.let_go {
            return false;
        }
        let mut tip = first;
        tip.advance(event);
        self.remember(event.aggregate_id.clone(), tip);
        true
    }

    /// Starts an aggregate's history at `tip` (read from a snapshot of the stream's writer).
    pub(crate) fn restore(&mut self, aggregate_id: String, tip: HistoryTip) {
        self.remember(aggregate_id, tip);
    }

    fn remember(&mut self, aggregate_id: String, tip: HistoryTip) {
        if self.tips.len() >= self.tips.capacity() && !self.tips.contains_key(aggregate_id.as_str()) {
            self.let_go = true;
        }
        self.tips.insert(aggregate_id, tip);
    }

    #[cfg(test)]
    fn tip(&self, aggregate_id: &str) -> Option<&HistoryTip> {
        self.tips.peek(aggregate_id)
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

    fn of(aggregate: &str, version: i64) -> EventMetadata {
        let mut metadata =
            event(&format!("{aggregate}-{version}"), version, (version > 1).then(|| format!("{aggregate}-{}", version - 1)).as_deref());
        metadata.aggregate_id = aggregate.into();
        metadata
    }

    #[test]
    fn an_aggregate_without_a_tip_starts_at_version_one_while_no_tip_was_let_go() {
        let mut guard = HistoryGuard::remembering(2);
        assert!(!guard.accept(&of("a", 2)), "a history cannot start in its middle");
        assert!(guard.accept(&of("a", 1)));
        assert!(guard.accept(&of("b", 1)));
        assert!(!guard.accept(&of("c", 3)));
    }

    #[test]
    fn the_least_recently_extended_tips_are_let_go_and_their_next_event_starts_over() {
        let mut guard = HistoryGuard::remembering(2);
        assert!(guard.accept(&of("a", 1)));
        assert!(guard.accept(&of("b", 1)));
        assert!(guard.accept(&of("a", 2)), "a is now the most recent");
        assert!(guard.accept(&of("c", 1)), "b is let go to make room");
        assert_eq!(guard.tip("b"), None);
        assert!(guard.tip("a").is_some() && guard.tip("c").is_some());
        assert!(!guard.accept(&of("a", 2)), "a kept tip still refuses a duplicate");
        assert!(guard.accept(&of("b", 2)), "b's history goes on from its next event");
        assert!(!guard.accept(&of("b", 2)), "and is checked again from there");
        assert!(guard.accept(&of("b", 3)));
    }
}

//! What a projection has committed, for readers that wait on its tables instead of polling
//! them: bumped after every batch, with the keys of the batch's records.
//!
//! A reader waiting on one aggregate (`GET /orders/{id}?wait_for=`) re-reads its row only
//! when a batch held one of that aggregate's records: under load thousands of such readers
//! wait at once, and waking each of them to query the database after every batch cost more
//! than the projection itself.
use std::{collections::HashSet, sync::Arc};
use tokio::sync::watch;

/// One topic's record key (the aggregate id: every stream is keyed by it).
pub type RecordKey = (String, String);

/// The latest commit of a projection's live run.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Commits so far: batches, and tables swapped in by a replay.
    pub commits: u64,
    /// The keys of the last commit's records; `None` when it may have changed anything (a
    /// replay swapped the tables).
    keys: Option<Arc<HashSet<RecordKey>>>,
}

impl Committed {
    /// The next commit: a batch with records of these keys, or (`None`) anything.
    pub fn advance(&mut self, keys: Option<HashSet<RecordKey>>) {
        self.commits += 1;
        self.keys = keys.map(Arc::new);
    }

    fn may_have_changed(&self, key: &RecordKey) -> bool {
        self.keys.as_ref().is_none_or(|keys| keys.contains(key))
    }
}

/// A projection's commits as they come.
pub type Progress = watch::Receiver<Committed>;

/// A reader's wait for the commits that may have changed one record key.
pub struct KeyProgress {
    commits: Progress,
    key: RecordKey,
    seen: u64,
}

impl KeyProgress {
    /// Counts from the projection's latest commit: what it holds already is the caller's to
    /// read.
    pub fn new(mut commits: Progress, topic: &str, key: &str) -> Self {
        let seen = commits.borrow_and_update().commits;
        KeyProgress { commits, key: (topic.to_string(), key.to_string()), seen }
    }

    /// Returns once a commit after the last call may have changed the key: it held one of the
    /// key's records, or replaced the tables, or commits were missed in between (only the
    /// latest one's keys are kept). Cancellation-safe; an error when the projection is gone.
    pub async fn changed(&mut self) -> Result<(), watch::error::RecvError> {
        loop {
            self.commits.changed().await?;
            let latest = self.commits.borrow_and_update();
            let missed = latest.commits != self.seen + 1;
            self.seen = latest.commits;
            if missed || latest.may_have_changed(&self.key) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Committed, KeyProgress};
    use std::{collections::HashSet, time::Duration};
    use tokio::sync::watch;

    fn keys(list: &[(&str, &str)]) -> Option<HashSet<(String, String)>> {
        Some(list.iter().map(|(topic, key)| (topic.to_string(), key.to_string())).collect())
    }

    async fn woken(waiting: &mut KeyProgress) -> bool {
        tokio::time::timeout(Duration::from_millis(50), waiting.changed()).await.is_ok()
    }

    #[tokio::test]
    async fn a_reader_wakes_for_its_own_key_a_replay_or_a_missed_commit_only() {
        let (commits, watched) = watch::channel(Committed::default());
        let mut waiting = KeyProgress::new(watched, "order.events", "o-1");
        commits.send_modify(|c| c.advance(keys(&[("order.events", "o-2"), ("account.events", "o-1")])));
        assert!(!woken(&mut waiting).await, "another order, and another topic's key of the same text");
        commits.send_modify(|c| c.advance(keys(&[("order.events", "o-2"), ("order.events", "o-1")])));
        assert!(woken(&mut waiting).await, "its own record");
        commits.send_modify(|c| c.advance(None));
        assert!(woken(&mut waiting).await, "tables swapped by a replay");
        commits.send_modify(|c| c.advance(keys(&[("order.events", "o-1")])));
        commits.send_modify(|c| c.advance(keys(&[("order.events", "o-3")])));
        assert!(woken(&mut waiting).await, "two commits at once: the first one's keys are gone");
        drop(commits);
        assert!(waiting.changed().await.is_err(), "the projection is gone");
    }
}

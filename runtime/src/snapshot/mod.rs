//! Snapshots of what a stream's writer knows about one partition (its aggregates' states and
//! tips, and the command ids it has handled), so that a writer taking a partition over, and a
//! reader of the stream starting, read the newest snapshot and the log after it instead of the
//! whole log. A snapshot is only ever a shortcut: it names the log offset it covers and the
//! digest of the record there, and one that does not match the log is not used.
mod format;
mod store;

#[cfg(test)]
pub(crate) use format::read_bodies;
pub(crate) use format::{Contents, Covers, Cutter, Entry};
// Public for the test kit's re-export (`runtime::testing::digest`).
pub use format::digest;
pub(crate) use store::SnapshotStore;

/// Events a writer appends to a partition between two snapshots of it, at least
/// (`SNAPSHOT_EVERY_EVENTS`, default 10,000; 0 turns snapshots off: none is written or read). Never fewer than the
/// last snapshot held aggregates, so that writing snapshots costs at most about one state per
/// event.
pub(crate) fn every_events() -> u64 {
    crate::shared::number_from_env("SNAPSHOT_EVERY_EVENTS", 10_000)
}

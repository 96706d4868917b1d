//! The aggregates of one partition as its writer keeps them: the `AGGREGATES_IN_MEMORY`
//! (10,000) used last in memory, the others in a file on disk, as Kafka Streams keeps a task's
//! state in RocksDB. An aggregate stays in its partition for good (an order placed a year ago
//! can still be asked about), so without this a writer's memory grew with every aggregate ever
//! written; now it is bounded by the ones it keeps warm, and the disk holds the rest.
//!
//! The file is a cache of this process alone, never the truth: it is unnamed (the kernel frees
//! it when the process ends, however it ends), nothing in it is synced, and a writer that
//! takes a partition rebuilds it from the partition's snapshot and log like the memory part.
//! It is opened only when a partition first holds more aggregates than stay warm.
use super::command_core::Aggregate;
use crate::{
    history::HistoryTip,
    snapshot::{Cutter, Entry},
};
use hashlink::{LinkedHashMap, linked_hash_map::RawEntryMut};
use redb::{Database, ReadOnlyTable, ReadableTable, StorageBackend, TableDefinition, backends::FileBackend};
use serde::{Serialize, de::DeserializeOwned};
use std::{io, path::PathBuf};

/// Aggregate id → the aggregate as a snapshot entry's JSON ([`Entry`]), so that a snapshot
/// takes a cold aggregate as it is stored.
const COLD: TableDefinition<&str, &[u8]> = TableDefinition::new("aggregates");

/// Memory the cold file's own page cache may use; the kernel's page cache does the rest.
const COLD_CACHE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("aggregate store file: {0}")]
    File(#[from] io::Error),
    /// Boxed: it is large, and every access to an aggregate returns this error type.
    #[error("aggregate store: {0}")]
    Redb(Box<redb::Error>),
    #[error("aggregate state does not (de)serialise: {0}")]
    Json(#[from] serde_json::Error),
}

fn redb_error(error: impl Into<redb::Error>) -> StoreError {
    StoreError::Redb(Box::new(error.into()))
}

/// How many aggregates of a partition a writer keeps in memory (`AGGREGATES_IN_MEMORY`).
pub(crate) fn warm_capacity() -> usize {
    crate::shared::number_from_env("AGGREGATES_IN_MEMORY", 10_000_usize).max(1)
}

/// Where the cold files go (`STATE_DIR`, default the system's temporary directory). They have
/// no name there; the directory only decides the disk.
fn state_dir() -> PathBuf {
    std::env::var_os("STATE_DIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

pub(crate) struct AggregateStore<St> {
    /// Least recently used first.
    warm: LinkedHashMap<String, Warm<St>>,
    cold: Option<Database>,
    /// A read view of the cold file, kept from one write to the next (opening one per read
    /// cost more than the read when a rebuild meets a new aggregate at every order).
    reader: Option<ReadOnlyTable<&'static str, &'static [u8]>>,
    /// Aggregates in the cold file that are not warm as well.
    cold_only: usize,
    capacity: usize,
}

#[derive(Default)]
struct Warm<St> {
    aggregate: Aggregate<St>,
    /// The cold file holds an older copy of it (it was read from there): the copy is
    /// overwritten when it cools again, and a snapshot takes this one.
    in_cold: bool,
}

impl<St: Default + Serialize + DeserializeOwned> AggregateStore<St> {
    pub fn with_capacity(capacity: usize) -> Self {
        AggregateStore { warm: LinkedHashMap::new(), cold: None, reader: None, cold_only: 0, capacity: capacity.max(1) }
    }

    /// Every aggregate it holds, warm or cold.
    pub fn len(&self) -> usize {
        self.warm.len() + self.cold_only
    }

    /// Those held in memory.
    pub fn warm_len(&self) -> usize {
        self.warm.len()
    }

    /// Those held on disk only.
    pub fn cold_len(&self) -> usize {
        self.cold_only
    }

    /// The aggregate `id`, if it has one: warmed (read from disk when cold) and marked as used last.
    pub fn get_mut(&mut self, id: &str) -> Result<Option<&mut Aggregate<St>>, StoreError> {
        let mut loaded = None;
        if !self.warm.contains_key(id) {
            let Some(aggregate) = self.read_cold(id)? else { return Ok(None) };
            self.cold_only -= 1;
            self.make_room()?;
            loaded = Some(Warm { aggregate, in_cold: true });
        }
        Ok(Some(self.used(id, loaded)))
    }

    /// The aggregate `id`, a new one (its state before any event) if there is none; marked as
    /// used last.
    pub fn get_or_default(&mut self, id: &str) -> Result<&mut Aggregate<St>, StoreError> {
        let mut loaded = None;
        if !self.warm.contains_key(id) {
            loaded = Some(match self.read_cold(id)? {
                Some(aggregate) => {
                    self.cold_only -= 1;
                    Warm { aggregate, in_cold: true }
                }
                None => Warm { aggregate: Aggregate::default(), in_cold: false },
            });
            self.make_room()?;
        }
        Ok(self.used(id, loaded))
    }

    /// The warm aggregate `id` moved to the back of the line, or `loaded` added there for it.
    fn used(&mut self, id: &str, loaded: Option<Warm<St>>) -> &mut Aggregate<St> {
        let warm = match self.warm.raw_entry_mut().from_key(id) {
            RawEntryMut::Occupied(mut occupied) => {
                occupied.to_back();
                occupied.into_mut()
            }
            RawEntryMut::Vacant(vacant) => vacant.insert(id.to_string(), loaded.unwrap_or_default()).1,
        };
        &mut warm.aggregate
    }

    /// Fills an empty store with a snapshot's aggregates, the one used last last: those that do
    /// not fit in memory go to disk at once, in one transaction.
    pub fn restore(&mut self, entries: Vec<Entry<St>>) -> Result<(), StoreError> {
        let cold = entries.len().saturating_sub(self.capacity);
        let mut entries = entries.into_iter();
        if cold > 0 {
            let mut leaving =
                entries.by_ref().take(cold).map(|entry| Ok((serde_json::to_string(&entry)?, entry.id))).collect::<Result<Vec<_>, StoreError>>()?;
            self.write_cold(&mut leaving)?;
        }
        for mut entry in entries {
            let id = std::mem::take(&mut entry.id);
            self.warm.insert(id, Warm { aggregate: aggregate_of(entry), in_cold: false });
        }
        Ok(())
    }

    /// Cools the aggregates used longest ago when there is no room for one more, a quarter of
    /// the warm ones at a time: a write to disk costs more per transaction than per aggregate
    /// (100,000 aggregates of random ids cooled in 2.3 s sixteenth by sixteenth, 1.3 s by
    /// quarters).
    fn make_room(&mut self) -> Result<(), StoreError> {
        if self.warm.len() >= self.capacity {
            self.cool(self.capacity.div_ceil(4))?;
        }
        Ok(())
    }

    /// Moves the `count` aggregates used longest ago to the cold file, in one transaction.
    /// One that never had an event is only dropped: there is nothing to remember of it.
    fn cool(&mut self, count: usize) -> Result<(), StoreError> {
        let mut leaving = Vec::with_capacity(count);
        while leaving.len() < count
            && let Some((id, warm)) = self.warm.pop_front()
        {
            if warm.aggregate.tip.version > 0 || warm.in_cold {
                leaving.push((entry_json(&id, &warm.aggregate)?, id));
            }
        }
        self.write_cold(&mut leaving)
    }

    /// Writes `(entry JSON, id)` pairs of aggregates that are not warm to the cold file, in
    /// the order of their ids (the file's B-tree order: each page is visited once).
    fn write_cold(&mut self, leaving: &mut [(String, String)]) -> Result<(), StoreError> {
        leaving.sort_unstable_by(|a, b| a.1.cmp(&b.1));
        if leaving.is_empty() {
            return Ok(());
        }
        if self.cold.is_none() {
            self.cold = Some(open_cold()?);
        }
        self.reader = None;
        let Some(cold) = &self.cold else { return Ok(()) };
        let transaction = cold.begin_write().map_err(redb_error)?;
        {
            let mut table = transaction.open_table(COLD).map_err(redb_error)?;
            for (json, id) in leaving.iter() {
                table.insert(id.as_str(), json.as_bytes()).map_err(redb_error)?;
            }
        }
        transaction.commit().map_err(redb_error)?;
        self.cold_only += leaving.len();
        Ok(())
    }

    fn read_cold(&mut self, id: &str) -> Result<Option<Aggregate<St>>, StoreError> {
        let Some(cold) = &self.cold else { return Ok(None) };
        if self.reader.is_none() {
            self.reader = Some(cold.begin_read().map_err(redb_error)?.open_table(COLD).map_err(redb_error)?);
        }
        let Some(table) = &self.reader else { return Ok(None) };
        let Some(stored) = table.get(id).map_err(redb_error)? else { return Ok(None) };
        Ok(Some(aggregate_of(serde_json::from_slice::<Entry<St>>(stored.value())?)))
    }

    /// Hands every aggregate that had an event to `cutter`, as snapshot entries: the cold ones
    /// first, then the warm ones from the one used longest ago, so that a writer restoring the
    /// snapshot in its order ends with the recently used ones warm.
    pub fn cut_into(&self, cutter: &mut Cutter) -> Result<(), StoreError> {
        if let Some(cold) = &self.cold {
            let transaction = cold.begin_read().map_err(redb_error)?;
            let table = transaction.open_table(COLD).map_err(redb_error)?;
            for stored in table.iter().map_err(redb_error)? {
                let (id, json) = stored.map_err(redb_error)?;
                if !self.warm.contains_key(id.value()) {
                    cutter.aggregate(String::from_utf8_lossy(json.value()).into_owned());
                }
            }
        }
        for (id, warm) in self.warm.iter().filter(|(_, warm)| warm.aggregate.tip.version > 0) {
            cutter.aggregate(entry_json(id, &warm.aggregate)?);
        }
        Ok(())
    }

    /// A warm aggregate, without touching its place (tests look at states with it).
    #[cfg(test)]
    pub fn warm(&self, id: &str) -> Option<&Aggregate<St>> {
        self.warm.get(id).map(|warm| &warm.aggregate)
    }
}

impl<St: Default + Serialize + DeserializeOwned> Default for AggregateStore<St> {
    fn default() -> Self {
        AggregateStore::with_capacity(warm_capacity())
    }
}

#[cfg(test)]
impl<St: Default + Serialize + DeserializeOwned> std::ops::Index<&str> for AggregateStore<St> {
    type Output = Aggregate<St>;

    fn index(&self, id: &str) -> &Aggregate<St> {
        self.warm(id).unwrap_or_else(|| panic!("aggregate {id} is not warm"))
    }
}

/// An aggregate as a snapshot entry holds it ([`entry_json`] the other way).
fn aggregate_of<St>(entry: Entry<St>) -> Aggregate<St> {
    Aggregate { state: entry.state, tip: HistoryTip { version: entry.version, event_id: entry.event_id }, first_offset: entry.first_offset }
}

fn entry_json<St: Serialize>(id: &str, aggregate: &Aggregate<St>) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Entry {
        id: id.to_string(),
        version: aggregate.tip.version,
        event_id: aggregate.tip.event_id.clone(),
        first_offset: aggregate.first_offset,
        state: &aggregate.state,
    })
}

fn open_cold() -> Result<Database, StoreError> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let file = tempfile::tempfile_in(dir)?;
    Database::builder()
        .set_cache_size(COLD_CACHE_BYTES)
        .create_with_backend(Unsynced(FileBackend::new(file).map_err(redb_error)?))
        .map_err(redb_error)
}

/// A file whose writes are never synced: it only has to outlive nothing but this process.
#[derive(Debug)]
struct Unsynced(FileBackend);

impl StorageBackend for Unsynced {
    fn len(&self) -> Result<u64, io::Error> {
        self.0.len()
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, io::Error> {
        self.0.read(offset, len)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.0.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.0.write(offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::read_bodies;

    fn extended(store: &mut AggregateStore<u32>, id: &str, by: u32) {
        let aggregate = store.get_or_default(id).expect("store");
        aggregate.tip.version += 1;
        aggregate.tip.event_id = Some(format!("{id}-e{}", aggregate.tip.version));
        aggregate.state += by;
    }

    #[test]
    fn aggregates_beyond_the_warm_ones_cool_to_disk_and_come_back_as_they_were() {
        let mut store = AggregateStore::<u32>::with_capacity(32);
        for i in 0..1_000 {
            extended(&mut store, &format!("a-{i}"), i);
        }
        assert_eq!(store.len(), 1_000);
        assert!(store.warm_len() <= 32, "{} warm", store.warm_len());
        let first = store.get_mut("a-0").expect("store").expect("a-0 is held");
        assert_eq!((first.state, first.tip.version, first.tip.event_id.as_deref()), (0, 1, Some("a-0-e1")));
        extended(&mut store, "a-7", 100);
        for i in 1_000..1_100 {
            extended(&mut store, &format!("a-{i}"), i);
        }
        let seventh = store.get_mut("a-7").expect("store").expect("a-7 is held");
        assert_eq!((seventh.state, seventh.tip.version), (107, 2), "a change made while warm survives cooling again");
        assert_eq!(store.len(), 1_100);
        assert!(store.get_mut("never-seen").expect("store").is_none());
    }

    #[test]
    fn the_aggregates_used_last_stay_warm() {
        let mut store = AggregateStore::<u32>::with_capacity(16);
        for i in 0..16 {
            extended(&mut store, &format!("a-{i}"), 1);
        }
        for i in 16..40 {
            extended(&mut store, "a-0", 1);
            extended(&mut store, &format!("a-{i}"), 1);
        }
        assert!(store.warm("a-0").is_some(), "used all along, yet cooled");
        assert!(store.warm("a-1").is_none(), "used once, long ago, yet warm");
    }

    #[test]
    fn a_restored_snapshot_keeps_its_last_aggregates_warm_and_the_others_on_disk() {
        let entries: Vec<Entry<u32>> = (0..50)
            .map(|i| Entry { id: format!("a-{i}"), version: 1, event_id: Some(format!("a-{i}-e1")), first_offset: Some(i.into()), state: i })
            .collect();
        let mut store = AggregateStore::<u32>::with_capacity(8);
        store.restore(entries).expect("restore");
        assert_eq!((store.len(), store.warm_len(), store.cold_len()), (50, 8, 42));
        assert!((42..50).all(|i| store.warm(&format!("a-{i}")).is_some()), "the snapshot's last entries are the ones used last");
        let cold = store.get_mut("a-0").expect("store").expect("a-0 is held");
        assert_eq!((cold.state, cold.tip.event_id.as_deref(), cold.first_offset), (0, Some("a-0-e1"), Some(0)));
    }

    #[test]
    fn an_aggregate_that_never_had_an_event_is_not_kept_when_it_cools() {
        let mut store = AggregateStore::<u32>::with_capacity(4);
        store.get_or_default("looked-at-only").expect("store");
        for i in 0..10 {
            extended(&mut store, &format!("a-{i}"), 1);
        }
        assert_eq!(store.len(), 10);
        assert!(store.get_mut("looked-at-only").expect("store").is_none());
    }

    #[test]
    fn a_snapshot_holds_warm_and_cold_aggregates_once_each_the_recently_used_last() {
        let mut store = AggregateStore::<u32>::with_capacity(8);
        for i in 0..50 {
            extended(&mut store, &format!("a-{i}"), i);
        }
        extended(&mut store, "a-3", 1000);
        let mut cutter = Cutter::default();
        store.cut_into(&mut cutter).expect("cut");
        let bodies = cutter.finish();
        let read = read_bodies::<u32>(bodies.iter().map(String::as_str)).expect("reads back");
        assert_eq!(read.aggregates.len(), 50);
        let ids: std::collections::HashSet<&str> = read.aggregates.iter().map(|entry| entry.id.as_str()).collect();
        assert_eq!(ids.len(), 50, "no aggregate twice");
        let last = read.aggregates.last().expect("entries");
        assert_eq!((last.id.as_str(), last.state, last.version), ("a-3", 1003, 2), "the copy used last, not its older cold one");
    }
}

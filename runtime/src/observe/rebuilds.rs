//! Partitions whose writer is rebuilding its state (newest snapshot, then the log after it).
//! The service accepts their commands meanwhile but decides none of them, so `/ready` says so:
//! a restarted service is ready when it can decide, not when its read models are current.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, OnceLock, PoisonError},
    time::Instant,
};

fn in_rebuild() -> &'static Mutex<HashMap<String, Instant>> {
    static REBUILDS: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    REBUILDS.get_or_init(Mutex::default)
}

/// A rebuild in progress; it ends when this is dropped, however the rebuild ends.
pub struct Rebuilding(String);

impl Drop for Rebuilding {
    fn drop(&mut self) {
        in_rebuild().lock().unwrap_or_else(PoisonError::into_inner).remove(&self.0);
    }
}

/// Marks `topic`/`partition` as being rebuilt by `loop_name`.
pub fn rebuilding(loop_name: &str, topic: &str, partition: i32) -> Rebuilding {
    let key = format!("{loop_name} {topic}/{partition}");
    in_rebuild().lock().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), Instant::now());
    Rebuilding(key)
}

/// The rebuilds in progress, with how long each has taken so far (milliseconds).
pub fn in_progress() -> BTreeMap<String, u64> {
    let rebuilds = in_rebuild().lock().unwrap_or_else(PoisonError::into_inner);
    rebuilds.iter().map(|(key, since)| (key.clone(), since.elapsed().as_millis() as u64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rebuild_shows_until_it_ends() {
        let rebuild = rebuilding("test-svc.commands", "test.events", 3);
        assert!(in_progress().contains_key("test-svc.commands test.events/3"));
        drop(rebuild);
        assert!(!in_progress().contains_key("test-svc.commands test.events/3"));
    }
}

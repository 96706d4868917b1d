//! A snapshot as records: the Avro record of one part (`schemas/snapshot.avsc`), how a
//! partition's aggregates are cut into parts and read back, and which records of the snapshot
//! topic form a complete snapshot. Pure: no Kafka, no registry.
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// The body encoding this build writes and reads (see `format` in the schema).
pub const FORMAT: &str = "json/1";

/// Most bytes of body in one part: well under the broker's usual 1 MB record limit and the
/// Avro reader's allocation bound.
pub const PART_BYTES: usize = 512 * 1024;

/// One record of a snapshot (`orderflow.snapshot.SnapshotPart`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    pub snapshot_id: String,
    pub stream: String,
    pub partition: i32,
    pub covers_offset: i64,
    pub covers_digest: String,
    pub rejections_offset: i64,
    pub last_command_offset: i64,
    pub taken_at: i64,
    pub part: i32,
    pub parts: i32,
    pub format: String,
    pub body: String,
}

/// Where the logs of a partition stood when its snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covers {
    /// Events `[0, offset)` are in the snapshot.
    pub offset: i64,
    /// [`digest`] of the event record at `offset - 1` (empty for an empty log).
    pub digest: String,
    /// Refusals on `<stream>.rejections` before this offset are in the handled command ids.
    pub rejections_offset: i64,
    pub last_command_offset: i64,
}

/// One aggregate of a snapshot: its history's tip and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry<St> {
    pub id: String,
    pub version: i64,
    pub event_id: Option<String>,
    /// Offset of the aggregate's first event, when its writer knows it.
    #[serde(default)]
    pub first_offset: Option<i64>,
    pub state: St,
}

/// What a snapshot holds besides where it stands: its aggregates and handled command ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Contents<St> {
    pub aggregates: Vec<Entry<St>>,
    pub handled: Vec<String>,
}

#[derive(Deserialize)]
struct Body<St> {
    #[serde(default = "Vec::new")]
    aggregates: Vec<Entry<St>>,
    #[serde(default)]
    handled: Vec<String>,
}

/// SHA-256 of a record value, in hex: what a snapshot checks the log against.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Cuts aggregates and handled command ids into part bodies of at most about
/// [`PART_BYTES`] each (one entry bigger than that gets a part of its own). Always at least one
/// part, so an empty partition has a snapshot too.
#[cfg(test)]
pub fn bodies<'a, St: Serialize + 'a>(
    aggregates: impl IntoIterator<Item = Entry<&'a St>>,
    handled: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, serde_json::Error> {
    let mut cutter = Cutter::default();
    for entry in aggregates {
        cutter.aggregate(serde_json::to_string(&entry)?);
    }
    for id in handled {
        cutter.handled(id)?;
    }
    Ok(cutter.finish())
}

/// Cuts a snapshot into part bodies as `bodies` does, one entry at a time, for entries that
/// are JSON already (an [`Entry`] serialised): all aggregates first, then the handled command ids.
#[derive(Default)]
pub struct Cutter {
    bodies: Vec<String>,
    current: PartWriter,
}

impl Cutter {
    pub fn aggregate(&mut self, entry_json: String) {
        self.make_room(entry_json.len());
        self.current.bytes += entry_json.len() + 1;
        self.current.aggregates.push(entry_json);
    }

    pub fn handled(&mut self, command_id: &str) -> Result<(), serde_json::Error> {
        let json = serde_json::to_string(command_id)?;
        self.make_room(json.len());
        self.current.bytes += json.len() + 1;
        self.current.handled.push(json);
        Ok(())
    }

    fn make_room(&mut self, bytes: usize) {
        if self.current.len() + bytes > PART_BYTES && !self.current.is_empty() {
            self.bodies.push(std::mem::take(&mut self.current).finish());
        }
    }

    pub fn finish(mut self) -> Vec<String> {
        self.bodies.push(self.current.finish());
        self.bodies
    }
}

#[derive(Default)]
struct PartWriter {
    aggregates: Vec<String>,
    handled: Vec<String>,
    bytes: usize,
}

impl PartWriter {
    fn len(&self) -> usize {
        self.bytes
    }

    fn is_empty(&self) -> bool {
        self.aggregates.is_empty() && self.handled.is_empty()
    }

    fn finish(self) -> String {
        format!(r#"{{"aggregates":[{}],"handled":[{}]}}"#, self.aggregates.join(","), self.handled.join(","))
    }
}

/// Reads the bodies of a snapshot's parts back. `St = serde::de::IgnoredAny` reads only the
/// tips (what a reader of the stream needs for the version rule).
pub fn contents<St: DeserializeOwned>(parts: &[SnapshotPart]) -> Result<Contents<St>, serde_json::Error> {
    read_bodies(parts.iter().map(|part| part.body.as_str()))
}

/// [`contents`] of bare bodies, as [`bodies`] cut them.
pub fn read_bodies<'a, St: DeserializeOwned>(bodies: impl IntoIterator<Item = &'a str>) -> Result<Contents<St>, serde_json::Error> {
    let mut contents = Contents { aggregates: Vec::new(), handled: Vec::new() };
    for body in bodies {
        let body: Body<St> = serde_json::from_str(body)?;
        contents.aggregates.extend(body.aggregates);
        contents.handled.extend(body.handled);
    }
    Ok(contents)
}

/// The complete snapshots among records of a snapshot partition given in offset order, newest
/// first, as index ranges into `records`. A snapshot is complete when its parts `0..parts` sit
/// one after another with the same id (its writer sends them in order, and nothing else writes
/// there but a writer that lost the partition, whose interleaved parts make neither whole).
pub fn complete_snapshots(records: &[SnapshotPart]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    for (end, last) in records.iter().enumerate().rev() {
        if last.parts < 1 || last.part != last.parts - 1 {
            continue;
        }
        let Some(start) = (end + 1).checked_sub(last.parts as usize) else { continue };
        let whole = records[start..=end]
            .iter()
            .enumerate()
            .all(|(k, part)| part.snapshot_id == last.snapshot_id && part.part == k as i32 && part.parts == last.parts);
        if whole {
            found.push(start..end + 1);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, part: i32, parts: i32, covers: i64) -> SnapshotPart {
        SnapshotPart {
            snapshot_id: id.into(),
            stream: "order".into(),
            partition: 0,
            covers_offset: covers,
            covers_digest: String::new(),
            rejections_offset: 0,
            last_command_offset: -1,
            taken_at: 0,
            part,
            parts,
            format: FORMAT.into(),
            body: r#"{"aggregates":[],"handled":[]}"#.into(),
        }
    }

    #[test]
    fn aggregates_and_command_ids_read_back_as_they_were_cut() {
        let states: Vec<(String, u64)> = (0..5_000).map(|i| (format!("order-{i}"), i)).collect();
        let handled: Vec<String> = (0..20_000).map(|i| format!("command-{i:032}")).collect();
        let entries =
            states.iter().map(|(id, state)| Entry { id: id.clone(), version: 3, event_id: Some(format!("e-{id}")), first_offset: Some(1), state });
        let bodies = bodies(entries, handled.iter().map(String::as_str)).expect("serialisable");
        assert!(bodies.len() > 1, "{} bytes fit one part?", bodies.iter().map(String::len).sum::<usize>());
        assert!(bodies.iter().all(|body| body.len() <= PART_BYTES + 1024), "a part over the limit");
        let parts: Vec<SnapshotPart> = bodies.into_iter().enumerate().map(|(k, body)| SnapshotPart { body, ..part("s", k as i32, 0, 10) }).collect();
        let read: Contents<u64> = contents(&parts).expect("readable");
        assert_eq!(read.aggregates.len(), 5_000);
        assert_eq!(
            read.aggregates[4_999],
            Entry { id: "order-4999".into(), version: 3, event_id: Some("e-order-4999".into()), first_offset: Some(1), state: 4_999 }
        );
        assert_eq!(read.handled, handled);
        let tips: Contents<serde::de::IgnoredAny> = contents(&parts).expect("tips alone read too");
        assert_eq!(tips.aggregates[7].id, "order-7");
    }

    #[test]
    fn an_empty_partition_still_has_one_part() {
        let none: Vec<Entry<&u8>> = Vec::new();
        assert_eq!(bodies(none, std::iter::empty()).expect("empty"), vec![r#"{"aggregates":[],"handled":[]}"#.to_string()]);
    }

    #[test]
    fn only_whole_snapshots_count_newest_first() {
        let records = vec![
            part("a", 0, 2, 5),
            part("a", 1, 2, 5),
            // A writer that lost the partition interleaved with the new owner: neither is whole.
            part("b", 0, 2, 9),
            part("c", 0, 2, 9),
            part("b", 1, 2, 9),
            part("c", 1, 2, 9),
            part("d", 0, 1, 12),
            // Cut short by a crash: its last part never came.
            part("e", 0, 3, 20),
            part("e", 1, 3, 20),
        ];
        assert_eq!(complete_snapshots(&records), vec![6..7, 0..2]);
        assert_eq!(complete_snapshots(&records[1..]), vec![5..6], "a snapshot whose first part is outside the window is not whole");
    }

    #[test]
    fn digests_are_sha256_in_hex() {
        assert_eq!(digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}

//! Reading a partition back: an event partition (and its rejections) when a writer rebuilds
//! its aggregates, the history before a policy's first event.
use super::clients::{header, read_range, watermarks};
use rdkafka::{Message, consumer::BaseConsumer, error::KafkaError};
use std::sync::Arc;

/// Header of every event record: its place in the decision that appended it, `<index>/<count>`
/// (`1/2`, `2/2`), so a reader can tell a decision the log holds only part of.
pub const DECISION_PART_HEADER: &str = "decision_part";

/// One raw record of a partition.
pub struct RawRecord {
    pub offset: i64,
    pub value: Option<Vec<u8>>,
    /// The [`DECISION_PART_HEADER`], when the record has one.
    pub decision_part: Option<String>,
}

/// Reads `[from, until)` of a partition, `until` defaulting to the current high watermark;
/// returns the records and the high watermark.
pub async fn read_records(
    reader: Arc<BaseConsumer>,
    topic: String,
    partition: i32,
    from: i64,
    until: Option<i64>,
) -> Result<(Vec<RawRecord>, i64), KafkaError> {
    tokio::task::spawn_blocking(move || {
        let (_, high) = watermarks(&*reader, &topic, partition)?;
        let mut records = Vec::new();
        read_range(&reader, &topic, partition, from, until.map_or(high, |until| until.min(high)), |message| {
            records.push(RawRecord {
                offset: message.offset(),
                value: message.payload().map(<[u8]>::to_vec),
                decision_part: header(message, DECISION_PART_HEADER),
            })
        })?;
        Ok((records, high))
    })
    .await
    .unwrap_or_else(|join_error| Err(KafkaError::Canceled).inspect_err(|_| tracing::error!(%join_error, "log reader task failed")))
}

/// Reads `[from, high watermark)` of a partition; returns the records and the watermark.
pub async fn read_to_end(reader: Arc<BaseConsumer>, topic: String, partition: i32, from: i64) -> Result<(Vec<RawRecord>, i64), KafkaError> {
    read_records(reader, topic, partition, from, None).await
}

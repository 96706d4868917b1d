//! Reading an event partition back: rehydration on assignment, and checking after each append
//! that what a writer appended is what the log holds.
use super::clients::{read_range, watermarks};
use rdkafka::{Message, consumer::BaseConsumer, error::KafkaError};
use std::sync::Arc;

/// One raw record of an event partition.
pub struct RawRecord {
    pub offset: i64,
    pub value: Option<Vec<u8>>,
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
            records.push(RawRecord { offset: message.offset(), value: message.payload().map(<[u8]>::to_vec) })
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

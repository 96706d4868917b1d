//! Read models: pure functions from events to SQL writes; the runtime runs the writes with the
//! checkpoint in one transaction per batch, after the version rule.
use contracts::{EventEnvelope, Stream};

/// A bind parameter of a [`SqlWrite`].
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Text(String),
    Int(i64),
    Null,
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Int(v)
    }
}
impl From<i32> for SqlValue {
    fn from(v: i32) -> Self {
        SqlValue::Int(v.into())
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One statement with `$1, $2, ...` placeholders (valid for SQLite and PostgreSQL alike).
/// Upserts use `INSERT ... ON CONFLICT (...) DO UPDATE`, which both databases understand.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlWrite {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

impl SqlWrite {
    pub fn new(sql: &'static str, params: impl IntoIterator<Item = SqlValue>) -> Self {
        SqlWrite { sql, params: params.into_iter().collect() }
    }
}

/// Builds a `Vec<SqlValue>` from heterogeneous values: `params![order_id, 3_i64, None::<String>]`.
#[macro_export]
macro_rules! params {
    ($($value:expr),* $(,)?) => { vec![$($crate::projector::SqlValue::from($value)),*] };
}

/// The part of a read model fed by one event stream. A read model that joins several streams
/// (the order view) registers one `Projector` per stream under the same projection name.
pub trait Projector<S: Stream>: Send + Sync + 'static {
    fn project(&self, event: &EventEnvelope<S::Event>) -> Vec<SqlWrite>;
}

impl<S: Stream, F> Projector<S> for F
where
    F: Fn(&EventEnvelope<S::Event>) -> Vec<SqlWrite> + Send + Sync + 'static,
{
    fn project(&self, event: &EventEnvelope<S::Event>) -> Vec<SqlWrite> {
        self(event)
    }
}

/// A record of a topic that is not an Avro event stream (the JSON `*.rejections`, the raw
/// `*.dlq`), as a [`RawProjector`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    /// Header values as (lossy) UTF-8; the last value wins for a repeated name.
    pub headers: std::collections::HashMap<String, String>,
    /// The record's timestamp (epoch milliseconds), when it has one.
    pub timestamp_ms: Option<i64>,
}

impl<'a> RawRecord<'a> {
    pub fn of<M: rdkafka::Message>(message: &'a M) -> Self {
        use rdkafka::message::Headers;
        let headers = message
            .headers()
            .map(|headers| {
                headers.iter().map(|h| (h.key.to_string(), h.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())).collect()
            })
            .unwrap_or_default();
        RawRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload().unwrap_or_default(),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        }
    }
}

/// The part of a read model fed by a non-Avro topic. Such records have no aggregate history,
/// so the version rule does not apply: the writes must be idempotent on their own (upserts).
pub trait RawProjector: Send + Sync + 'static {
    fn project(&self, record: &RawRecord<'_>) -> Vec<SqlWrite>;
}

impl<F> RawProjector for F
where
    F: Fn(&RawRecord<'_>) -> Vec<SqlWrite> + Send + Sync + 'static,
{
    fn project(&self, record: &RawRecord<'_>) -> Vec<SqlWrite> {
        self(record)
    }
}

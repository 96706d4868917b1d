//! What became of a command: a read model every service gets for its own stream, so that
//! `GET /commands/{command_id}` answers for commands sent over HTTP and with kcat alike.
//!
//! * ACCEPTED — the stream's events carry the command id of the command that produced them.
//! * REJECTED — refused by the aggregate (`<stream>.rejections`, JSON with the reason) or
//!   dead-lettered as unparseable/invalid (`<commands topic>.dlq`, raw original bytes with the
//!   reason in the `dlq.error.reason` header).
//! * PENDING — nothing recorded yet: the id is unknown, or the command is still in flight.
//!   (A command accepted without any effect, e.g. an idempotent retry, appends no event and
//!   therefore stays PENDING.)
use super::runner::Projection;
use crate::{
    kafka::CodecError,
    params,
    projector::{RawRecord, SqlWrite},
    shared::command_id_for_record,
};
use contracts::{EventEnvelope, EventType, Stream, dead_letter_topic, rejections_topic};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyPool, Row};

pub const PROJECTION: &str = "command_outcomes";

/// The row must not depend on the order in which its records are projected: events,
/// rejections and dead letters are on different topics, and a command id reused for several
/// aggregates spans partitions, so a replay meets them in another interleaving than the live
/// run did. Accepted beats rejected, and among accepted records the earliest
/// (recorded_at, aggregate_id) wins.
const RECORD_ACCEPTED: &str = "INSERT INTO command_outcomes \
    (command_id, status, command_type, aggregate_id, reason, rejection_kind, recorded_at) \
    VALUES ($1, 'ACCEPTED', NULL, $2, NULL, NULL, $3) \
    ON CONFLICT (command_id) DO UPDATE SET status = 'ACCEPTED', command_type = NULL, aggregate_id = excluded.aggregate_id, \
    reason = NULL, rejection_kind = NULL, recorded_at = excluded.recorded_at \
    WHERE command_outcomes.status <> 'ACCEPTED' \
    OR (excluded.recorded_at, COALESCE(excluded.aggregate_id, '')) < (command_outcomes.recorded_at, COALESCE(command_outcomes.aggregate_id, ''))";

const RECORD_EVENT: &str = "INSERT INTO command_outcome_events (command_id, event_id, event_type, version) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (command_id, event_id) DO NOTHING";

/// An accepted outcome is final: a later dead letter with the same id (a malformed redelivery)
/// does not turn it into a rejection. Among rejections the earliest wins (see above).
const RECORD_REJECTED: &str = "INSERT INTO command_outcomes \
    (command_id, status, command_type, aggregate_id, reason, rejection_kind, recorded_at) \
    VALUES ($1, 'REJECTED', $2, $3, $4, $5, $6) \
    ON CONFLICT (command_id) DO UPDATE SET status = 'REJECTED', command_type = excluded.command_type, \
    aggregate_id = excluded.aggregate_id, reason = excluded.reason, rejection_kind = excluded.rejection_kind, \
    recorded_at = excluded.recorded_at \
    WHERE command_outcomes.status <> 'ACCEPTED' \
    AND (excluded.recorded_at, COALESCE(excluded.aggregate_id, ''), COALESCE(excluded.reason, '')) \
    < (command_outcomes.recorded_at, COALESCE(command_outcomes.aggregate_id, ''), COALESCE(command_outcomes.reason, ''))";

/// The command-outcome projection of stream `S`: its events, rejections and dead letters.
pub fn projection<S: Stream>(registry_url: &str) -> Result<Projection, CodecError> {
    Ok(Projection::new(PROJECTION, &["command_outcomes", "command_outcome_events"])
        .from::<S>(registry_url, accepted::<S>)?
        .from_raw(rejections_topic(S::NAME), refused)
        .from_raw(dead_letter_topic(S::COMMANDS_TOPIC), dead_lettered))
}

pub fn accepted<S: Stream>(event: &EventEnvelope<S::Event>) -> Vec<SqlWrite> {
    if event.command_id.is_empty() {
        return vec![];
    }
    vec![
        SqlWrite::new(RECORD_ACCEPTED, params![&event.command_id, &event.aggregate_id, event.occurred_at]),
        SqlWrite::new(RECORD_EVENT, params![&event.command_id, &event.event_id, event.payload.event_type(), event.version]),
    ]
}

/// A record of `<stream>.rejections`: `{command_id, command_type, aggregate_id, reason, rejected_at, ...}`.
pub fn refused(record: &RawRecord<'_>) -> Vec<SqlWrite> {
    let Ok(json) = serde_json::from_slice::<Value>(record.payload) else {
        tracing::warn!(topic = record.topic, partition = record.partition, offset = record.offset, "rejection record is not JSON; skipped");
        return vec![];
    };
    let text = |field: &str| json.get(field).and_then(Value::as_str).map(str::to_string);
    let Some(command_id) = text("command_id").or_else(|| record.headers.get("command_id").cloned()) else { return vec![] };
    let rejected_at = json.get("rejected_at").and_then(Value::as_i64).unwrap_or(0);
    vec![SqlWrite::new(
        RECORD_REJECTED,
        params![
            command_id,
            text("command_type"),
            text("aggregate_id"),
            text("reason").or_else(|| record.headers.get("reason").cloned()),
            "REFUSED",
            rejected_at
        ],
    )]
}

/// A record of `<commands topic>.dlq`: the original bytes, which may not even be JSON.
pub fn dead_lettered(record: &RawRecord<'_>) -> Vec<SqlWrite> {
    let json = serde_json::from_slice::<Value>(record.payload).ok();
    let from_json = |field: &str| json.as_ref().and_then(|j| j.get(field)).and_then(Value::as_str).map(str::to_string);
    let Some(command_id) = record
        .headers
        .get("command_id")
        .filter(|id| !id.is_empty())
        .cloned()
        .or_else(|| from_json("command_id"))
        .or_else(|| derived_command_id(record))
    else {
        return vec![];
    };
    let header = |name: &str| record.headers.get(name).cloned();
    let aggregate_id = record.key.map(|key| String::from_utf8_lossy(key).into_owned());
    let kind = header("dlq.error.kind").map(|kind| kind.to_uppercase());
    vec![SqlWrite::new(RECORD_REJECTED, params![command_id, from_json("type"), aggregate_id, header("dlq.error.reason"), kind, 0_i64])]
}

/// The id the command processor derives for a command without one: from the position of the
/// original record, which the dead letter names in its `dlq.source.*` headers.
fn derived_command_id(record: &RawRecord<'_>) -> Option<String> {
    let topic = record.headers.get("dlq.source.topic")?;
    let partition = record.headers.get("dlq.source.partition")?.parse().ok()?;
    let offset = record.headers.get("dlq.source.offset")?.parse().ok()?;
    Some(command_id_for_record(topic, partition, offset))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CommandOutcome {
    pub command_id: String,
    /// `PENDING`, `ACCEPTED` or `REJECTED`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate_id: Option<String>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `REFUSED` (by the aggregate), `UNPARSEABLE` or `INVALID` (dead-lettered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection_kind: Option<String>,
    /// Ids of the events an accepted command appended, in version order.
    pub event_ids: Vec<String>,
    pub events: Vec<OutcomeEvent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutcomeEvent {
    pub event_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: i64,
}

/// What is known of a command: `PENDING` when nothing is recorded (unknown or in flight).
pub async fn find(pool: &AnyPool, command_id: String) -> Result<CommandOutcome, sqlx::Error> {
    let row = sqlx::query("SELECT status, command_type, aggregate_id, reason, rejection_kind FROM command_outcomes WHERE command_id = $1")
        .bind(&command_id)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else {
        return Ok(CommandOutcome {
            command_id,
            status: "PENDING".into(),
            command_type: None,
            aggregate_id: None,
            reason: None,
            rejection_kind: None,
            event_ids: vec![],
            events: vec![],
        });
    };
    let events = sqlx::query("SELECT event_id, event_type, version FROM command_outcome_events WHERE command_id = $1 ORDER BY version, event_id")
        .bind(&command_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| Ok(OutcomeEvent { event_id: row.try_get(0)?, event_type: row.try_get(1)?, version: row.try_get(2)? }))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(CommandOutcome {
        command_id,
        status: row.try_get(0)?,
        command_type: row.try_get(1)?,
        aggregate_id: row.try_get(2)?,
        reason: row.try_get(3)?,
        rejection_kind: row.try_get(4)?,
        event_ids: events.iter().map(|e| e.event_id.clone()).collect(),
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn outcome_after(writes: &[&SqlWrite]) -> (String, Option<String>, Option<String>, i64) {
        let path = std::env::temp_dir().join(format!("outcomes-{}.db", uuid::Uuid::new_v4()));
        let pool = crate::projection::store::connect(&format!("sqlite://{}?mode=rwc", path.display()), None).await.expect("database");
        let mut tx = pool.begin().await.expect("begin");
        for write in writes {
            crate::projection::runner::execute(&mut tx, write).await.expect("write");
        }
        tx.commit().await.expect("commit");
        let row = sqlx::query("SELECT status, aggregate_id, reason, recorded_at FROM command_outcomes WHERE command_id = 'c'")
            .fetch_one(&pool)
            .await
            .expect("outcome row");
        let outcome = (row.get(0), row.get(1), row.get(2), row.get(3));
        pool.close().await;
        let _ = std::fs::remove_file(path);
        outcome
    }

    #[tokio::test]
    async fn the_outcome_is_the_same_in_every_order_the_records_are_projected() {
        let accepted_late = SqlWrite::new(RECORD_ACCEPTED, params!["c", "agg-a", 5_i64]);
        let accepted_early = SqlWrite::new(RECORD_ACCEPTED, params!["c", "agg-b", 3_i64]);
        let rejected = SqlWrite::new(RECORD_REJECTED, params!["c", "PlaceOrder", "agg-c", "no stock", "REJECTED", 1_i64]);
        let dead_letter = SqlWrite::new(RECORD_REJECTED, params!["c", "PlaceOrder", "agg-c", "not JSON", "DEAD_LETTER", 1_i64]);
        let all = [&accepted_late, &accepted_early, &rejected, &dead_letter];
        let mut outcomes = std::collections::HashSet::new();
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let order = [a, b, c, d];
                        if (0..4).all(|i| order.contains(&i)) {
                            outcomes.insert(outcome_after(&order.map(|i| all[i])).await);
                        }
                    }
                }
            }
        }
        assert_eq!(outcomes.into_iter().collect::<Vec<_>>(), vec![("ACCEPTED".to_string(), Some("agg-b".to_string()), None, 3)]);

        let mut rejections = std::collections::HashSet::new();
        rejections.insert(outcome_after(&[&rejected, &dead_letter]).await);
        rejections.insert(outcome_after(&[&dead_letter, &rejected]).await);
        assert_eq!(
            rejections.into_iter().collect::<Vec<_>>(),
            vec![("REJECTED".to_string(), Some("agg-c".to_string()), Some("no stock".to_string()), 1)]
        );
    }
}

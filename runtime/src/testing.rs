//! Test kit for services (feature `testing`): event envelopes, given/when/then for deciders,
//! and a migrated read-model database that applies projected writes exactly as the
//! projection runner does.
use crate::{
    decider::{Decider, Rejection, fold},
    projection::SqlWrite,
};
use contracts::{EventEnvelope, Stream};
use sqlx::AnyPool;

type Event<D> = <<D as Decider>::Stream as Stream>::Event;
type Command<D> = <<D as Decider>::Stream as Stream>::Command;

/// An envelope around `payload` with fixed, readable metadata.
pub fn envelope<P>(aggregate_id: &str, version: i64, payload: P) -> EventEnvelope<P> {
    EventEnvelope {
        event_id: format!("{aggregate_id}-e{version}"),
        aggregate_id: aggregate_id.to_string(),
        version,
        previous_event_id: (version > 1).then(|| format!("{aggregate_id}-e{}", version - 1)),
        occurred_at: 1_700_000_000_000 + version,
        correlation_id: "corr".into(),
        causation_id: "cause".into(),
        command_id: format!("cmd-{version}"),
        command_offset: version - 1,
        payload,
    }
}

/// `given(&decider, past_events).when(command).then(expected_events)`.
pub fn given<D: Decider>(decider: &D, history: Vec<Event<D>>) -> Given<'_, D> {
    Given { decider, history }
}

pub struct Given<'d, D: Decider> {
    decider: &'d D,
    history: Vec<Event<D>>,
}

impl<D: Decider> Given<'_, D> {
    pub fn when(&self, command: Command<D>) -> Decision<D> {
        Decision(self.decider.decide(&fold::<D>(&self.history), &command))
    }
}

/// The outcome of one decision, with assertions.
#[derive(Debug)]
pub struct Decision<D: Decider>(pub Result<Vec<Event<D>>, Rejection>);

impl<D: Decider> Decision<D> {
    #[track_caller]
    pub fn then(self, expected: Vec<Event<D>>) {
        assert_eq!(self.0, Ok(expected));
    }
    /// Accepted with no effect (an idempotent retry, or nothing to do).
    #[track_caller]
    pub fn then_nothing(self) {
        assert_eq!(self.0, Ok(vec![]));
    }
    #[track_caller]
    pub fn then_invalid(self, reason_contains: &str) {
        match self.0 {
            Err(Rejection::Invalid(reason)) => assert!(reason.contains(reason_contains), "{reason:?} lacks {reason_contains:?}"),
            other => panic!("expected Invalid containing {reason_contains:?}, got {other:?}"),
        }
    }
    #[track_caller]
    pub fn then_refused(self, reason_contains: &str) {
        match self.0 {
            Err(Rejection::Refused(reason)) => assert!(reason.contains(reason_contains), "{reason:?} lacks {reason_contains:?}"),
            other => panic!("expected Refused containing {reason_contains:?}, got {other:?}"),
        }
    }
    /// Refused with exactly this reason.
    #[track_caller]
    pub fn then_refused_exactly(self, reason: &str) {
        assert_eq!(self.0, Err(Rejection::Refused(reason.into())));
    }
}

/// A fresh, migrated read-model database: `TEST_DATABASE_URL` when set (e.g. PostgreSQL),
/// else a new SQLite file in a temporary folder that lives as long as the returned guard.
pub async fn read_model_db(migrator: &sqlx::migrate::Migrator) -> (AnyPool, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| format!("sqlite://{}/read-model.db?mode=rwc", dir.path().display()));
    let pool = crate::db::connect(&url, Some(migrator)).await.expect("read-model database");
    (pool, dir)
}

/// Applies projected writes in one transaction, as the projection runner does.
pub async fn apply(pool: &AnyPool, writes: &[SqlWrite]) {
    let mut tx = pool.begin().await.expect("begin");
    for write in writes {
        crate::projection_runner::execute(&mut tx, write).await.unwrap_or_else(|e| panic!("{}: {e}", write.sql));
    }
    tx.commit().await.expect("commit");
}

/// Serves a service's query routes over `pool` on a free local port; returns the base URL.
pub async fn serve(routes: crate::http::QueryRoutes, pool: AnyPool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, routes.with_state(crate::http::AppState {
        db: crate::http::ReadDb(pool),
        progress: Default::default(),
        // Never used by query routes; a producer connects lazily, so no broker is needed.
        commands: crate::command_bus::CommandBus::new("127.0.0.1:9").expect("producer"),
    })).await });
    format!("http://{address}")
}

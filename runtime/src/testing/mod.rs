//! Test kit for services (feature `testing`): event envelopes, given/when/then for deciders,
//! and a migrated read-model database that applies projected writes exactly as the
//! projection runner does.
pub mod openapi;

/// Table checksums as `replay --verify` computes them, for tests that compare whole tables.
pub use crate::projection::replay::{Shape, TableDigest, shape};

/// The digest a snapshot names of the record just before the offset it covers, for tests
/// that forge snapshots which must match the log.
pub use crate::snapshot::digest;

use crate::{
    decider::{Decider, Rejection, fold},
    projector::SqlWrite,
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

/// A fresh, migrated read-model database:
/// * `TEST_DATABASE_URL` when set (one database for every test that asks: tests use unique ids),
/// * else, with `READ_MODEL_DB=postgres` (the second pass of `scripts/test.sh`), a new, uniquely
///   named database on the PostgreSQL server of `TEST_POSTGRES_URL`,
/// * else a new SQLite file in a temporary folder that lives as long as the returned guard.
pub async fn read_model_db(migrator: &sqlx::migrate::Migrator) -> (AnyPool, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ if read_model_db_is_postgres() => create_postgres_database(&unique_database_name("read_model")).await,
        _ => format!("sqlite://{}/read-model.db?mode=rwc", dir.path().display()),
    };
    let pool = crate::projection::connect(&url, Some(migrator)).await.unwrap_or_else(|error| panic!("read-model database: {error}"));
    (pool, dir)
}

/// Whether the tests run their read models on PostgreSQL: `READ_MODEL_DB=postgres` (or
/// `postgresql`); unset, empty or `sqlite` means SQLite. Any other value panics.
pub fn read_model_db_is_postgres() -> bool {
    match std::env::var("READ_MODEL_DB").unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "" | "sqlite" => false,
        "postgres" | "postgresql" => true,
        other => panic!("READ_MODEL_DB={other:?}: expected `sqlite` or `postgres`"),
    }
}

/// `TEST_POSTGRES_URL`: a superuser URL of the tests' PostgreSQL server (`scripts/test.sh`
/// starts one). Panics with a clear message when unset.
pub fn test_postgres_url() -> String {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "READ_MODEL_DB=postgres but TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a \
             PostgreSQL server for them, or set TEST_POSTGRES_URL=postgres://<superuser>:<password>@<host>:<port>/postgres"
        ),
    }
}

/// `<prefix>_<12 hex digits>`: lower case, `[a-z0-9_]` only, short enough for PostgreSQL (63 bytes).
pub fn unique_database_name(prefix: &str) -> String {
    let prefix: String = prefix.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(40).collect();
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// The URL of database `name` on the server of `server_url` (same credentials and options).
pub fn postgres_database_url(server_url: &str, name: &str) -> String {
    let (scheme, rest) = server_url.split_once("://").unwrap_or(("postgres", server_url));
    let (before_query, query) = rest.split_once('?').map_or((rest, None), |(b, q)| (b, Some(q)));
    let authority = before_query.split_once('/').map_or(before_query, |(authority, _)| authority);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Runs one statement on the tests' PostgreSQL server (its `postgres` database).
async fn on_test_server(sql: String) -> Result<(), String> {
    use sqlx::Connection;
    let server = test_postgres_url();
    let mut connection = sqlx::postgres::PgConnection::connect(&server)
        .await
        .map_err(|error| format!("connecting to the tests' PostgreSQL server (TEST_POSTGRES_URL): {error}"))?;
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone())).execute(&mut connection).await.map_err(|error| format!("{sql}: {error}"));
    let _ = connection.close().await;
    result.map(drop)
}

/// Creates the empty database `name` (see [`unique_database_name`]) on the tests' PostgreSQL
/// server and returns its URL. Panics when that fails.
pub async fn create_postgres_database(name: &str) -> String {
    on_test_server(format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""))).await.unwrap_or_else(|error| panic!("{error}"));
    postgres_database_url(&test_postgres_url(), name)
}

/// Drops database `name` on the tests' PostgreSQL server, closing its connections first; no
/// error when it does not exist.
pub async fn drop_postgres_database(name: &str) -> Result<(), String> {
    on_test_server(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name.replace('"', "\"\""))).await
}

/// Applies projected writes in one transaction, as the projection runner does.
pub async fn apply(pool: &AnyPool, writes: &[SqlWrite]) {
    let mut tx = pool.begin().await.expect("begin");
    for write in writes {
        crate::projection::runner::execute(&mut tx, write).await.unwrap_or_else(|e| panic!("{}: {e}", write.sql));
    }
    tx.commit().await.expect("commit");
}

/// Serves a service's query routes over `pool` on a free local port; returns the base URL.
pub async fn serve(routes: crate::http::QueryRoutes, pool: AnyPool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            routes.with_state(crate::http::AppState {
                db: crate::http::ReadDb(pool),
                progress: Default::default(),
                // Never used by query routes; a producer connects lazily, so no broker is needed.
                commands: crate::http::CommandBus::new("127.0.0.1:9").expect("producer"),
            }),
        )
        .await
    });
    format!("http://{address}")
}

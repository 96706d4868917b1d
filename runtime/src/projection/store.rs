//! The read-model database: SQLite file by default, PostgreSQL when DATABASE_URL says so.
use sqlx::{Any, AnyPool, Transaction, any::AnyPoolOptions, migrate::Migrator};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Tables the runtime owns in every service database: projection checkpoints, the tip of
/// each aggregate's accepted history per projection (the version rule, persisted with the rows
/// it guards), the generation of each projection's live tables (bumped when a replay swaps
/// in rebuilt tables, which fences the live run's next batch), and the `command_outcomes`
/// projection's two tables (one row per command with an outcome, and the events an accepted
/// command appended).
const RUNTIME_TABLES: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS projection_checkpoints (
        projection TEXT NOT NULL, topic TEXT NOT NULL, partition_id BIGINT NOT NULL, next_offset BIGINT NOT NULL,
        PRIMARY KEY (projection, topic, partition_id))",
    "CREATE TABLE IF NOT EXISTS projection_tips (
        projection TEXT NOT NULL, topic TEXT NOT NULL, aggregate_id TEXT NOT NULL, version BIGINT NOT NULL, event_id TEXT NOT NULL,
        PRIMARY KEY (projection, topic, aggregate_id))",
    "CREATE TABLE IF NOT EXISTS projection_generations (projection TEXT NOT NULL PRIMARY KEY, generation BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS command_outcomes (
        command_id TEXT NOT NULL PRIMARY KEY, status TEXT NOT NULL, command_type TEXT, aggregate_id TEXT,
        reason TEXT, rejection_kind TEXT, recorded_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS command_outcome_events (
        command_id TEXT NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL, version BIGINT NOT NULL,
        PRIMARY KEY (command_id, event_id))",
];

/// Which database a URL names: the SQL is portable, but schema introspection is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of(url: &str) -> Backend {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") { Backend::Postgres } else { Backend::Sqlite }
    }
}

/// Begins a transaction that writes. On SQLite it takes the write lock at once, waiting for
/// another writer as `busy_timeout` allows: a deferred transaction that reads first and writes
/// later fails at once with `SQLITE_BUSY_SNAPSHOT` (517) when another connection committed in
/// between (a replay beside the live service), and no timeout helps it.
pub async fn begin_writing(pool: &AnyPool, backend: Backend) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

pub async fn connect(url: &str, migrator: Option<&Migrator>) -> Result<AnyPool, DbError> {
    sqlx::any::install_default_drivers();
    if let Some(path) = sqlite_file(url)
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    let is_sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        // SQLite allows one writer; more connections only add lock waits for writers.
        .max_connections(if is_sqlite { 4 } else { 10 })
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if is_sqlite {
                    // Per connection: a writer waits for another (the service and a replay share
                    // the file) instead of failing. In WAL mode NORMAL syncs at WAL checkpoints,
                    // not at every commit: a power cut (not a process crash) can lose the last
                    // commits but never splits one, and rows and checkpoints commit together,
                    // so the projection resumes exactly where the surviving rows end.
                    for pragma in ["PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=10000", "PRAGMA synchronous=NORMAL"] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })?;
    for ddl in RUNTIME_TABLES {
        sqlx::query(ddl).execute(&pool).await?;
    }
    if let Some(migrator) = migrator {
        migrator.run(&pool).await?;
    }
    Ok(pool)
}

fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replay's transaction reads (the catalog, tips) before it writes while the live service
    /// commits on another connection: begun for writing, it is never refused for that.
    #[tokio::test]
    async fn a_transaction_begun_for_writing_reads_then_writes_beside_another_writer() {
        let path = std::env::temp_dir().join(format!("begin-writing-{}.db", uuid::Uuid::new_v4()));
        let pool = connect(&format!("sqlite://{}?mode=rwc", path.display()), None).await.expect("database");
        sqlx::query("CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)").execute(&pool).await.expect("table");

        let mut replay = begin_writing(&pool, Backend::Sqlite).await.expect("begin");
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM counters").fetch_one(&mut *replay).await.expect("read");
        // The live service writes meanwhile; begun deferred, the replay's transaction would let
        // it commit here and then be refused its own write (SQLITE_BUSY_SNAPSHOT).
        let mut live = tokio::spawn({
            let pool = pool.clone();
            async move { sqlx::query("INSERT INTO counters VALUES ('live', 1)").execute(&pool).await.map(|done| done.rows_affected()) }
        });
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), &mut live).await;
        assert!(waiting.is_err(), "the live writer waits for the replay's transaction: {waiting:?}");
        sqlx::query("INSERT INTO counters VALUES ('replay', $1)").bind(seen).execute(&mut *replay).await.expect("write after read");
        replay.commit().await.expect("commit");
        assert_eq!(live.await.expect("live writer").expect("live write waited, then committed"), 1);

        let names: Vec<String> = sqlx::query_scalar("SELECT name FROM counters ORDER BY name").fetch_all(&pool).await.expect("rows");
        assert_eq!(names, ["live", "replay"]);
        pool.close().await;
        let _ = std::fs::remove_file(path);
    }
}

//! The read-model database: SQLite file by default, PostgreSQL when DATABASE_URL says so.
use sqlx::{AnyPool, any::AnyPoolOptions, migrate::Migrator};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Tables the runtime owns in every service database: projection checkpoints and the tip of
/// each aggregate's accepted history per projection (the version rule, persisted with the rows
/// it guards).
const RUNTIME_TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS projection_checkpoints (
        projection TEXT NOT NULL, topic TEXT NOT NULL, partition_id BIGINT NOT NULL, next_offset BIGINT NOT NULL,
        PRIMARY KEY (projection, topic, partition_id))",
    "CREATE TABLE IF NOT EXISTS projection_tips (
        projection TEXT NOT NULL, topic TEXT NOT NULL, aggregate_id TEXT NOT NULL, version BIGINT NOT NULL, event_id TEXT NOT NULL,
        PRIMARY KEY (projection, topic, aggregate_id))",
];

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
        .connect(url)
        .await
        .map_err(|source| DbError::Connect { url: url.to_string(), source })?;
    if is_sqlite {
        sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
        sqlx::query("PRAGMA busy_timeout=10000").execute(&pool).await?;
    }
    for ddl in RUNTIME_TABLES.into_iter().chain(crate::command_outcomes::TABLES) {
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

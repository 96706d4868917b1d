//! Shadow tables: empty copies of a projection's tables in the same database, written under
//! other names, and swapped in for the live ones in one transaction.
use crate::projection::{
    renames::TableRenames,
    store::{Backend, begin_writing},
};
// Statements built here only ever name tables and columns declared in the code (or read back
// from the database's own catalog), never anything from outside.
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};

/// `table` → `table__<suffix>`.
pub fn shadow_name(table: &str, suffix: &str) -> String {
    format!("{table}__{suffix}")
}

/// Creates `shadow` as an empty table shaped like `table` (columns, keys, indexes), dropping a
/// leftover of an interrupted replay first.
pub async fn create_empty_like(pool: &AnyPool, backend: Backend, table: &str, shadow: &str) -> Result<(), sqlx::Error> {
    let mut tx = begin_writing(pool, backend).await?;
    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {shadow}"))).execute(&mut *tx).await?;
    match backend {
        Backend::Postgres => {
            sqlx::query(AssertSqlSafe(format!("CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)"))).execute(&mut *tx).await?;
        }
        Backend::Sqlite => {
            // SQLite keeps each table's and index's CREATE statement; replay them renamed. Index
            // names are global, so the shadow's indexes are `<index>__rebuilt` until the swap
            // gives them their names back.
            let rows = sqlx::query("SELECT type, name, sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL ORDER BY type DESC")
                .bind(table)
                .fetch_all(&mut *tx)
                .await?;
            let mut renames = TableRenames::default();
            renames.insert(table, shadow);
            for row in &rows {
                if row.try_get::<String, _>(0)? == "index" {
                    let index: String = row.try_get(1)?;
                    let shadow_index = format!("{index}{INDEX_SUFFIX}");
                    renames.insert(index, shadow_index);
                }
            }
            for row in &rows {
                let sql: String = row.try_get(2)?;
                sqlx::query(AssertSqlSafe(renames.rewrite(&sql))).execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await
}

const INDEX_SUFFIX: &str = "__rebuilt";

pub async fn drop_table(pool: &AnyPool, table: &str) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}"))).execute(pool).await.map(drop)
}

/// Forgets the checkpoints and history tips stored under `key`.
pub async fn forget_progress<'e, E>(executor: E, key: &str) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = Any> + Copy,
{
    sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1").bind(key).execute(executor).await?;
    sqlx::query("DELETE FROM projection_tips WHERE projection = $1").bind(key).execute(executor).await?;
    Ok(())
}

/// In one transaction: fences the live run (new generation), puts each shadow table in its
/// live table's place, drops the old tables, and makes the shadow's checkpoints and tips the
/// projection's own. Readers see either the old tables or the new ones, never a mix.
pub async fn swap_in(pool: &AnyPool, backend: Backend, projection: &str, shadow_key: &str, tables: &[(&str, String)]) -> Result<(), sqlx::Error> {
    let mut tx: Transaction<'_, Any> = begin_writing(pool, backend).await?;
    // First, so a live batch in flight finishes before the swap (PostgreSQL row lock; SQLite
    // has one writer anyway).
    sqlx::query(
        "INSERT INTO projection_generations (projection, generation) VALUES ($1, 1)
         ON CONFLICT (projection) DO UPDATE SET generation = projection_generations.generation + 1",
    )
    .bind(projection)
    .execute(&mut *tx)
    .await?;
    for (table, shadow) in tables {
        let retired = shadow_name(table, "retired");
        let live_indexes = match backend {
            Backend::Postgres => postgres_indexes(&mut tx, table).await?,
            Backend::Sqlite => Vec::new(),
        };
        sqlx::query(AssertSqlSafe(format!("ALTER TABLE {table} RENAME TO {retired}"))).execute(&mut *tx).await?;
        sqlx::query(AssertSqlSafe(format!("ALTER TABLE {shadow} RENAME TO {table}"))).execute(&mut *tx).await?;
        sqlx::query(AssertSqlSafe(format!("DROP TABLE {retired}"))).execute(&mut *tx).await?;
        match backend {
            Backend::Sqlite => restore_index_names(&mut tx, table).await?,
            Backend::Postgres => {
                // LIKE ... INCLUDING ALL named the shadow's indexes itself; give each the name
                // of the live index with the same definition (renaming a key's index renames
                // the constraint too).
                for (shadow_index, definition) in postgres_indexes(&mut tx, table).await? {
                    if let Some((index, _)) = live_indexes.iter().find(|(name, live)| *live == definition && *name != shadow_index) {
                        sqlx::query(AssertSqlSafe(format!("ALTER INDEX {shadow_index} RENAME TO {index}"))).execute(&mut *tx).await?;
                    }
                }
            }
        }
    }
    for progress in ["projection_checkpoints", "projection_tips"] {
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {progress} WHERE projection = $1"))).bind(projection).execute(&mut *tx).await?;
        sqlx::query(AssertSqlSafe(format!("UPDATE {progress} SET projection = $1 WHERE projection = $2")))
            .bind(projection)
            .bind(shadow_key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A PostgreSQL table's indexes: name, and definition without the index and table names.
async fn postgres_indexes(tx: &mut Transaction<'_, Any>, table: &str) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT CAST(indexname AS TEXT), CAST(indexdef AS TEXT) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1")
            .bind(table)
            .fetch_all(&mut **tx)
            .await?;
    rows.iter()
        .map(|row| {
            let definition: String = row.try_get(1)?;
            // "CREATE UNIQUE INDEX name ON public.table USING btree (col)": compare what follows
            // the table, and whether it is unique.
            let unique = definition.starts_with("CREATE UNIQUE");
            let shape = definition.split_once(" USING ").map_or(definition.as_str(), |(_, rest)| rest).to_string();
            Ok((row.try_get(0)?, format!("{unique} {shape}")))
        })
        .collect()
}

/// SQLite cannot rename an index: each `<index>__rebuilt` of the swapped-in table is created
/// again under its own name (free now that the old table is dropped), so migrations keep
/// finding the names they created.
async fn restore_index_names(tx: &mut Transaction<'_, Any>, table: &str) -> Result<(), sqlx::Error> {
    let rows = sqlx::query("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL")
        .bind(table)
        .fetch_all(&mut **tx)
        .await?;
    for row in rows {
        let shadow_index: String = row.try_get(0)?;
        let Some(index) = shadow_index.strip_suffix(INDEX_SUFFIX) else { continue };
        let mut renames = TableRenames::default();
        renames.insert(shadow_index.clone(), index);
        let sql: String = row.try_get(1)?;
        sqlx::query(AssertSqlSafe(format!("DROP INDEX {shadow_index}"))).execute(&mut **tx).await?;
        sqlx::query(AssertSqlSafe(renames.rewrite(&sql))).execute(&mut **tx).await?;
    }
    Ok(())
}

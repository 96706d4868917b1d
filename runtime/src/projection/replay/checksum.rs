//! Deterministic checksums of read-model tables: every row keyed by its primary key, every
//! column as text, hashed in key order (Rust's order, not the database's collation), so a
//! table compares equal to its rebuild on SQLite and PostgreSQL alike, and a difference can
//! be named by table and key.
use crate::projection::store::Backend;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use std::collections::BTreeMap;

/// The columns of a table, and which of them form its primary key.
#[derive(Debug, Clone)]
pub struct Shape {
    pub columns: Vec<String>,
    pub key: Vec<String>,
}

pub async fn shape(conn: &mut AnyConnection, backend: Backend, table: &str) -> Result<Shape, sqlx::Error> {
    let (columns_sql, key_sql) = match backend {
        Backend::Sqlite => ("SELECT name FROM pragma_table_info($1) ORDER BY cid", "SELECT name FROM pragma_table_info($1) WHERE pk > 0 ORDER BY pk"),
        Backend::Postgres => (
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            "SELECT CAST(k.column_name AS TEXT) FROM information_schema.table_constraints c
             JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema
             WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = current_schema() AND c.table_name = $1
             ORDER BY k.ordinal_position",
        ),
    };
    let names = |rows: Vec<sqlx::any::AnyRow>| rows.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<Vec<_>, _>>();
    let columns = names(sqlx::query(columns_sql).bind(table).fetch_all(&mut *conn).await?)?;
    let mut key = names(sqlx::query(key_sql).bind(table).fetch_all(&mut *conn).await?)?;
    if key.is_empty() {
        // No primary key: the whole row is its identity.
        key = columns.clone();
    }
    Ok(Shape { columns, key })
}

/// A table's rows as key → hash of the row.
#[derive(Debug, Default, PartialEq)]
pub struct TableDigest {
    pub rows: BTreeMap<String, [u8; 32]>,
}

impl TableDigest {
    pub async fn read(conn: &mut AnyConnection, shape: &Shape, table: &str) -> Result<Self, sqlx::Error> {
        let select: Vec<String> = shape.columns.iter().map(|c| format!("CAST({c} AS TEXT)")).collect();
        let sql = format!("SELECT {} FROM {table}", select.join(", "));
        let key_positions: Vec<usize> = shape.key.iter().filter_map(|k| shape.columns.iter().position(|c| c == k)).collect();
        let mut rows = BTreeMap::new();
        for row in sqlx::query(AssertSqlSafe(sql)).fetch_all(&mut *conn).await? {
            let values = (0..shape.columns.len()).map(|i| row.try_get::<Option<String>, _>(i)).collect::<Result<Vec<_>, _>>()?;
            let key = key_positions.iter().map(|&i| values[i].as_deref().unwrap_or("NULL")).collect::<Vec<_>>().join("/");
            let mut hasher = Sha256::new();
            for value in &values {
                match value {
                    // Length-prefixed so ("ab","c") and ("a","bc") differ; NULL differs from "".
                    Some(text) => {
                        hasher.update((text.len() as u64).to_be_bytes());
                        hasher.update(text.as_bytes());
                    }
                    None => hasher.update(u64::MAX.to_be_bytes()),
                }
            }
            rows.insert(key, hasher.finalize().into());
        }
        Ok(TableDigest { rows })
    }

    /// Hex SHA-256 over every (key, row hash) in key order.
    pub fn checksum(&self) -> String {
        let mut hasher = Sha256::new();
        for (key, row) in &self.rows {
            hasher.update((key.len() as u64).to_be_bytes());
            hasher.update(key.as_bytes());
            hasher.update(row);
        }
        hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Keys whose rows differ, in key order, with what is wrong with each.
    pub fn differences<'a>(&'a self, rebuilt: &'a TableDigest) -> impl Iterator<Item = (&'a str, Difference)> + 'a {
        let only_live = self.rows.keys().filter(|k| !rebuilt.rows.contains_key(*k)).map(|k| (k.as_str(), Difference::MissingFromRebuild));
        let other = rebuilt.rows.iter().filter_map(|(key, row)| match self.rows.get(key) {
            None => Some((key.as_str(), Difference::MissingFromLive)),
            Some(live) if live != row => Some((key.as_str(), Difference::RowDiffers)),
            Some(_) => None,
        });
        let mut all: Vec<_> = only_live.chain(other).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all.into_iter()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Difference {
    MissingFromRebuild,
    MissingFromLive,
    RowDiffers,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Difference::MissingFromRebuild => "row in the live table but not in the rebuild",
            Difference::MissingFromLive => "row in the rebuild but not in the live table",
            Difference::RowDiffers => "row differs",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(rows: &[(&str, u8)]) -> TableDigest {
        TableDigest { rows: rows.iter().map(|(k, v)| (k.to_string(), [*v; 32])).collect() }
    }

    #[test]
    fn equal_rows_give_equal_checksums_and_no_differences() {
        let (live, rebuilt) = (digest(&[("a", 1), ("b", 2)]), digest(&[("b", 2), ("a", 1)]));
        assert_eq!(live.checksum(), rebuilt.checksum());
        assert_eq!(live.differences(&rebuilt).count(), 0);
    }

    #[test]
    fn names_every_differing_key_in_key_order() {
        let live = digest(&[("a", 1), ("b", 2), ("c", 3)]);
        let rebuilt = digest(&[("b", 9), ("c", 3), ("d", 4)]);
        assert_ne!(live.checksum(), rebuilt.checksum());
        assert_eq!(
            live.differences(&rebuilt).collect::<Vec<_>>(),
            vec![("a", Difference::MissingFromRebuild), ("b", Difference::RowDiffers), ("d", Difference::MissingFromLive)]
        );
    }
}

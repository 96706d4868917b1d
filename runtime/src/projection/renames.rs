//! Table names as a run of a projection writes them: the live run writes the declared names, a
//! replay writes shadow copies under other names in the same database.
use std::collections::HashMap;

/// Maps table (and SQLite index) names to the names actually written, and rewrites SQL
/// accordingly. Only identifiers are rewritten: string literals are left alone, and a quoted
/// identifier stays quoted.
#[derive(Debug, Clone, Default)]
pub struct TableRenames(HashMap<String, String>);

impl TableRenames {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, from: impl Into<String>, to: impl Into<String>) {
        self.0.insert(from.into(), to.into());
    }

    /// A small scanner rather than a SQL parser or a regex: identifiers are the only thing
    /// that changes, and the only traps are string literals and quoted identifiers.
    pub fn rewrite(&self, sql: &str) -> String {
        let mut out = String::with_capacity(sql.len() + 16);
        let mut chars = sql.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            match c {
                '\'' => {
                    // A literal, with '' as an escaped quote: copied as it is.
                    out.push(c);
                    while let Some((_, c)) = chars.next() {
                        out.push(c);
                        if c == '\'' {
                            if chars.peek().is_some_and(|(_, next)| *next == '\'') {
                                if let Some((_, quote)) = chars.next() {
                                    out.push(quote);
                                }
                            } else {
                                break;
                            }
                        }
                    }
                }
                '"' => {
                    let mut name = String::new();
                    for (_, c) in chars.by_ref() {
                        if c == '"' {
                            break;
                        }
                        name.push(c);
                    }
                    out.push('"');
                    out.push_str(self.0.get(&name).map_or(name.as_str(), String::as_str));
                    out.push('"');
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let mut end = start + c.len_utf8();
                    while let Some((i, next)) = chars.peek().copied() {
                        if next.is_ascii_alphanumeric() || next == '_' {
                            end = i + next.len_utf8();
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let word = &sql[start..end];
                    out.push_str(self.0.get(word).map_or(word, String::as_str));
                }
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames() -> TableRenames {
        let mut renames = TableRenames::default();
        renames.insert("orders", "orders__rebuild");
        renames.insert("orders_by_customer", "orders_by_customer__rebuilt");
        renames
    }

    #[test]
    fn rewrites_table_names_but_not_columns_literals_or_longer_words() {
        let sql = "INSERT INTO orders (order_id, status) VALUES ($1, 'orders') \
                   ON CONFLICT (order_id) DO UPDATE SET status = COALESCE(excluded.status, orders.status) WHERE orders_x = 'it''s orders'";
        assert_eq!(
            renames().rewrite(sql),
            "INSERT INTO orders__rebuild (order_id, status) VALUES ($1, 'orders') \
             ON CONFLICT (order_id) DO UPDATE SET status = COALESCE(excluded.status, orders__rebuild.status) WHERE orders_x = 'it''s orders'"
        );
    }

    #[test]
    fn rewrites_quoted_identifiers_as_sqlite_stores_them_after_a_rename() {
        assert_eq!(
            renames().rewrite("CREATE INDEX orders_by_customer ON \"orders\" (customer_id, created_at)"),
            "CREATE INDEX orders_by_customer__rebuilt ON \"orders__rebuild\" (customer_id, created_at)"
        );
    }

    #[test]
    fn leaves_sql_without_known_names_unchanged() {
        let sql = "UPDATE stock SET on_hand = on_hand + $1 WHERE sku = $2";
        assert_eq!(renames().rewrite(sql), sql);
    }
}

//! Compatibility levels and the checks behind them. The actual schema-resolution rules come from
//! `apache_avro::schema_compatibility`; this module only decides which pairs to check, and in
//! which direction.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

use crate::error::RegistryError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Level {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(self, Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive)
    }

    /// (new schema must read old data, old schema must read new data)
    fn directions(self) -> (bool, bool) {
        match self {
            Level::None => (false, false),
            Level::Backward | Level::BackwardTransitive => (true, false),
            Level::Forward | Level::ForwardTransitive => (false, true),
            Level::Full | Level::FullTransitive => (true, true),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = RegistryError;

    // Confluent accepts the level in any case, so do we; it is always stored upper case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Level::None,
            "BACKWARD" => Level::Backward,
            "BACKWARD_TRANSITIVE" => Level::BackwardTransitive,
            "FORWARD" => Level::Forward,
            "FORWARD_TRANSITIVE" => Level::ForwardTransitive,
            "FULL" => Level::Full,
            "FULL_TRANSITIVE" => Level::FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel(s.to_string())),
        })
    }
}

/// Checks `new` against the previously registered schemas of a subject (oldest first).
/// Returns the reasons it is incompatible; an empty list means compatible.
pub fn check(level: Level, new: &Schema, previous: &[&Schema]) -> Vec<String> {
    let against: &[&Schema] = if level.transitive() {
        previous
    } else {
        match previous.last() {
            Some(_) => &previous[previous.len() - 1..],
            None => &[],
        }
    };
    let (backward, forward) = level.directions();
    let mut problems = Vec::new();
    for old in against {
        if backward && let Err(reason) = can_read(old, new) {
            problems.push(format!("new schema cannot read data written by {}: {reason}", name(old)));
        }
        if forward && let Err(reason) = can_read(new, old) {
            problems.push(format!("{} cannot read data written by the new schema: {reason}", name(old)));
        }
    }
    problems
}

/// `Partial` means resolution fails for some values (e.g. a union branch the reader lacks);
/// Confluent rejects those, so only `Full` counts as compatible.
fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err("only partially compatible".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn name(schema: &Schema) -> String {
    match schema.name() {
        Some(n) => format!("the registered schema '{}'", n.fullname(None)),
        None => "the registered schema".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schema {
        Schema::parse_str(s).expect("valid schema")
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"}]}"#;

    #[test]
    fn backward_requires_default_for_new_field() {
        let v1 = parse(V1);
        assert!(check(Level::Backward, &parse(V2_DEFAULT), &[&v1]).is_empty());
        assert!(!check(Level::Backward, &parse(V2_NO_DEFAULT), &[&v1]).is_empty());
        assert!(check(Level::None, &parse(V2_NO_DEFAULT), &[&v1]).is_empty());
        // Old readers simply ignore the new field.
        assert!(check(Level::Forward, &parse(V2_NO_DEFAULT), &[&v1]).is_empty());
        assert!(!check(Level::Full, &parse(V2_NO_DEFAULT), &[&v1]).is_empty());
    }

    #[test]
    fn transitive_checks_every_version() {
        let v1 = parse(V1);
        let v2 = parse(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string","default":""},{"name":"b","type":"int"}]}"#);
        // v3 reads v2 data fine, but not v1 data, which lacks `b`.
        let v3 = parse(r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"}]}"#);
        assert!(check(Level::Backward, &v3, &[&v1, &v2]).is_empty());
        assert!(!check(Level::BackwardTransitive, &v3, &[&v1, &v2]).is_empty());
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!("full_transitive".parse::<Level>().ok(), Some(Level::FullTransitive));
        assert!("SIDEWAYS".parse::<Level>().is_err());
    }
}

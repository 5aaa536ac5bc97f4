//! The SQL of every operation, as functions over one rusqlite connection.
//!
//! The writer thread calls [`write`] inside its group transaction; [`read`]
//! runs on a reader connection (or on the writer's, for an in-memory
//! database). Statements are prepared once per connection and cached, and
//! each row is one execution of a cached statement: with no thread between
//! us and SQLite's C library, a row costs microseconds, and a one-row
//! statement fails alone.

pub(crate) mod audit;
pub(crate) mod cancel;
pub(crate) mod deps;
pub(crate) mod diagnose;
pub(crate) mod inspect;
pub(crate) mod queues;
pub(crate) mod read;
pub(crate) mod schedules;
pub(crate) mod workers;
pub(crate) mod write;

use sitq_core::{Finished, TaskFailure, TaskId, TaskStatus};

/// A JSON array of strings, for `IN (SELECT value FROM json_each(?))`: one
/// bound value however many names or queues a worker has, so the claim's
/// text (and its cached plan) never changes.
pub(crate) fn json_strings(values: &[String]) -> String {
    let mut json = String::with_capacity(values.iter().map(|v| v.len() + 3).sum::<usize>() + 2);
    json.push('[');
    for (i, value) in values.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('"');
        for c in value.chars() {
            match c {
                '"' => json.push_str("\\\""),
                '\\' => json.push_str("\\\\"),
                c if u32::from(c) < 0x20 => json.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => json.push(c),
            }
        }
        json.push('"');
    }
    json.push(']');
    json
}

/// A JSON array of ids, for `IN (SELECT value FROM json_each(?))`.
pub(crate) fn json_ids(ids: impl IntoIterator<Item = i64>) -> String {
    let mut json = String::from("[");
    for (i, id) in ids.into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&id.to_string());
    }
    json.push(']');
    json
}

/// A stored counter; sitq writes only values that came from a `u32`.
pub(crate) fn count(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

/// A stored status, as the conversion error rusqlite expects from a column.
pub(crate) fn status(value: &str, column: usize) -> rusqlite::Result<TaskStatus> {
    value.parse().map_err(|err: sitq_core::Error| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            Box::new(err),
        )
    })
}

/// A task's outcome from a row of `id, name, status, attempts, result, error_kind, error`.
pub(crate) fn finished_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Finished> {
    let status_text: String = row.get(2)?;
    Ok(Finished {
        id: TaskId(row.get(0)?),
        name: row.get(1)?,
        status: status(&status_text, 2)?,
        attempts: count(row.get(3)?),
        result: row.get(4)?,
        failure: TaskFailure::from_columns(
            row.get::<_, Option<String>>(5)?.as_deref(),
            row.get(6)?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape() {
        assert_eq!(
            json_strings(&["a".into(), "b\"c\\".into(), "\n".into()]),
            r#"["a","b\"c\\","\u000a"]"#
        );
        assert_eq!(json_strings(&[]), "[]");
        assert_eq!(json_ids([1, 2]), "[1,2]");
    }
}

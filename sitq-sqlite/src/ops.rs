//! The SQL of every operation, as functions over one connection.
//!
//! The writer task calls [`write`] inside its group transaction; [`read`] runs
//! on a reader connection (or on the writer's, for an in-memory database).

pub(crate) mod read;
pub(crate) mod write;

use std::sync::OnceLock;

use sqlx::SqliteConnection;

/// The most rows one padded multi-row statement carries by default (leases).
/// With at most 8 bound values a row this stays far below SQLite's limit of
/// 32,766 variables.
pub(crate) const MAX_ROWS: usize = 256;

/// The most rows one `INSERT` carries: 6 bound values a row, so 4,096 rows
/// bind 24,577 variables, below SQLite's 32,766 (bundled SQLite ≥ 3.32).
pub(crate) const INSERT_MAX_ROWS: usize = 4096;

/// The most rows one fenced completion `UPDATE` carries: 8 bound values a
/// row, so 2,048 rows bind 16,384 variables.
pub(crate) const COMPLETE_MAX_ROWS: usize = 2048;

/// Slots for power-of-two sizes 1, 2, 4, … 4,096.
const SIZES: usize = 13;

/// Statements needed to carry `rows` rows, at most `max_rows` each.
pub(crate) fn statement_count(rows: usize, max_rows: usize) -> usize {
    rows.div_ceil(max_rows)
}

/// The size a padded statement uses for `rows` rows (at most `max_rows`):
/// the next power of two, so only a few distinct statements exist and the
/// statement cache always hits.
pub(crate) fn padded_size(rows: usize, max_rows: usize) -> usize {
    rows.next_power_of_two().min(max_rows)
}

/// One SQL text per power-of-two row count up to a maximum, each built on
/// first use.
pub(crate) struct SqlBySize {
    cells: [OnceLock<String>; SIZES],
    build: fn(usize) -> String,
}

impl SqlBySize {
    /// Texts built by `build(rows)` on first use.
    pub(crate) const fn new(build: fn(usize) -> String) -> Self {
        SqlBySize {
            cells: [const { OnceLock::new() }; SIZES],
            build,
        }
    }

    /// The text for `rows` rows, a power of two no larger than 4,096.
    pub(crate) fn get(&'static self, rows: usize) -> &'static str {
        debug_assert!(rows.is_power_of_two() && rows < 1 << SIZES);
        let exp = rows.trailing_zeros() as usize;
        self.cells[exp].get_or_init(|| (self.build)(rows))
    }
}

/// `(?a, ?b, …), (…)`: `rows` tuples of `width` numbered placeholders,
/// numbered from `first`.
pub(crate) fn placeholders(rows: usize, width: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 6);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..width {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('?');
            sql.push_str(&(first + row * width + col).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `(?, ?, …), (…)`: `rows` tuples of `width` anonymous placeholders.
///
/// For large statements: binding a numbered parameter makes sqlx look its
/// name up, a linear scan in SQLite, so binding n of them costs O(n²).
pub(crate) fn anonymous_placeholders(rows: usize, width: usize) -> String {
    let mut tuple = String::with_capacity(width * 3 + 1);
    tuple.push('(');
    for col in 0..width {
        if col > 0 {
            tuple.push_str(", ");
        }
        tuple.push('?');
    }
    tuple.push(')');
    let mut sql = String::with_capacity(rows * (tuple.len() + 2));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&tuple);
    }
    sql
}

/// Runs one fixed statement (prepared once, then cached).
pub(crate) async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> sqlx::Result<()> {
    // Empty arguments (rather than none) make sqlx keep the prepared
    // statement in its cache instead of parsing it again each time.
    sqlx::query_with(sql, sqlx::sqlite::SqliteArguments::default())
        .execute(&mut *conn)
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_sizes_are_powers_of_two_that_fit() {
        for rows in [1, 2, 3, 100, 255, 256, 257, 1000, 5000] {
            for max in [MAX_ROWS, COMPLETE_MAX_ROWS, INSERT_MAX_ROWS] {
                let size = padded_size(rows.min(max), max);
                assert!(size.is_power_of_two() && size <= max && size >= rows.min(max));
            }
        }
        assert_eq!(padded_size(100, INSERT_MAX_ROWS), 128);
        assert_eq!(statement_count(4097, INSERT_MAX_ROWS), 2);
        assert_eq!(statement_count(4096, INSERT_MAX_ROWS), 1);
    }

    #[test]
    fn anonymous_placeholders_make_tuples() {
        assert_eq!(anonymous_placeholders(2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 2, 3), "(?3, ?4), (?5, ?6)");
    }
}

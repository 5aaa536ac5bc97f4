//! The SQL of every operation, as functions over one connection.
//!
//! The writer task calls [`write`] inside its group transaction; [`read`] runs
//! on a reader connection (or on the writer's, for an in-memory database).

pub(crate) mod read;
pub(crate) mod write;

use std::sync::OnceLock;

/// The most rows one multi-row statement carries. With at most 8 bound
/// values a row this stays far below SQLite's limit of 32,766 variables.
pub(crate) const MAX_ROWS: usize = 256;

/// Row counts of the statements that carry `rows` rows: full chunks of
/// [`MAX_ROWS`], then the binary decomposition of the rest (100 → 64, 32, 4).
///
/// Only powers of two ever reach SQLite, so each operation prepares at most
/// nine distinct statements and the statement cache always hits.
pub(crate) fn chunk_sizes(rows: usize) -> impl Iterator<Item = usize> {
    let full = rows / MAX_ROWS;
    let rest = rows % MAX_ROWS;
    std::iter::repeat_n(MAX_ROWS, full).chain(
        (0..usize::BITS)
            .rev()
            .map(|bit| 1usize << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// The size a padded statement uses for `rows` rows (at most [`MAX_ROWS`]):
/// the next power of two, so again only nine distinct statements exist.
pub(crate) fn padded_size(rows: usize) -> usize {
    rows.next_power_of_two().min(MAX_ROWS)
}

/// One SQL text per power-of-two row count up to [`MAX_ROWS`], built once.
pub(crate) struct SqlBySize {
    cell: OnceLock<Vec<String>>,
    build: fn(usize) -> String,
}

impl SqlBySize {
    /// Texts built by `build(rows)` on first use.
    pub(crate) const fn new(build: fn(usize) -> String) -> Self {
        SqlBySize {
            cell: OnceLock::new(),
            build,
        }
    }

    /// The text for `rows` rows, a power of two no larger than [`MAX_ROWS`].
    pub(crate) fn get(&'static self, rows: usize) -> &'static str {
        let texts = self.cell.get_or_init(|| {
            (0..=MAX_ROWS.trailing_zeros())
                .map(|exp| (self.build)(1 << exp))
                .collect()
        });
        &texts[rows.trailing_zeros() as usize]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_the_rows() {
        for rows in [0, 1, 2, 3, 100, 255, 256, 257, 1000] {
            let sizes: Vec<usize> = chunk_sizes(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows, "{rows}");
            assert!(
                sizes
                    .iter()
                    .all(|size| size.is_power_of_two() && *size <= MAX_ROWS),
                "{sizes:?}"
            );
        }
        assert_eq!(chunk_sizes(100).collect::<Vec<_>>(), [64, 32, 4]);
    }

    #[test]
    fn placeholders_number_rows_in_order() {
        assert_eq!(placeholders(2, 2, 3), "(?3, ?4), (?5, ?6)");
    }
}

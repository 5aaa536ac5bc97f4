//! How results are shown: tables that fit 80 columns, durations and ages,
//! JSON documents.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{CliError, Result};

/// The width every table and text block fits in.
pub const WIDTH: usize = 80;

/// Writes `text` to stdout. A closed stdout (`sitq ls | head`) is not an
/// error worth a message.
pub fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Writes `value` to stdout as pretty JSON with a final newline.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|err| CliError::new(format!("could not write JSON: {err}")))?;
    print(&format!("{text}\n"));
    Ok(())
}

/// Writes a warning line to stderr.
pub fn warn(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {text}");
}

/// `text` cut to `width` characters, ending in `…` when it was longer.
pub fn truncate(text: &str, width: usize) -> String {
    // A table cell is one line.
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() <= width {
        return text;
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// Wraps `text` to lines of at most `width` characters, each prefixed with
/// `indent`, breaking at spaces where it can; keeps the text's own line breaks.
pub fn wrap(text: &str, indent: &str, width: usize) -> String {
    hanging(text, indent, indent, width)
}

/// [`wrap`] with `first` before the first line and `rest` before the
/// lines it continues on.
pub fn hanging(text: &str, first: &str, rest: &str, width: usize) -> String {
    let mut out = String::new();
    let mut indent = first;
    for line in text.lines() {
        let mut line: Vec<char> = line.chars().collect();
        loop {
            let room = width.saturating_sub(indent.chars().count()).max(10);
            if line.len() <= room {
                out.push_str(indent);
                out.extend(line.iter());
                out.push('\n');
                indent = rest;
                break;
            }
            let split = line[..=room]
                .iter()
                .rposition(|c| *c == ' ')
                .filter(|at| *at > 0)
                .unwrap_or(room);
            out.push_str(indent);
            out.extend(line[..split].iter());
            out.push('\n');
            indent = rest;
            let next = if line.get(split) == Some(&' ') {
                split + 1
            } else {
                split
            };
            line = line.split_off(next);
        }
    }
    if out.is_empty() {
        out.push_str(first);
        out.push('\n');
    }
    out
}

/// How a column lines up.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A column of a [`Table`].
#[derive(Clone, Debug)]
pub struct Column {
    header: &'static str,
    align: Align,
    /// Whether the column gives up width (its cells cut with `…`) so the
    /// table fits; the others keep theirs.
    flex: bool,
    /// The narrowest a flexible column gets.
    min: usize,
}

impl Column {
    /// A text column that keeps its width.
    pub fn text(header: &'static str) -> Column {
        Column {
            header,
            align: Align::Left,
            flex: false,
            min: 0,
        }
    }

    /// A number column.
    pub fn number(header: &'static str) -> Column {
        Column {
            header,
            align: Align::Right,
            flex: false,
            min: 0,
        }
    }

    /// A text column cut to make room, no narrower than `min`.
    pub fn flex(header: &'static str, min: usize) -> Column {
        Column {
            header,
            align: Align::Left,
            flex: true,
            min,
        }
    }
}

/// A table that fits [`WIDTH`] columns: flexible columns are cut to fit.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines, none wider than [`WIDTH`].
    pub fn render(&self) -> String {
        let count = self.columns.len();
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(at, column)| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(at))
                    .map(|cell| cell.chars().count())
                    .chain([column.header.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total = |widths: &[usize]| widths.iter().sum::<usize>() + 2 * count.saturating_sub(1);
        // Shrink the widest flexible column, one character at a time, until it fits.
        while total(&widths) > WIDTH {
            let widest = (0..count)
                .filter(|at| self.columns[*at].flex && widths[*at] > self.columns[*at].min)
                .max_by_key(|at| widths[*at]);
            match widest {
                Some(at) => widths[at] -= 1,
                None => break,
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| c.header.to_owned()).collect();
        for row in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (at, column) in self.columns.iter().enumerate() {
                let cell = truncate(row.get(at).map_or("", String::as_str), widths[at]);
                let pad = widths[at].saturating_sub(cell.chars().count());
                let last = at + 1 == count;
                match column.align {
                    Align::Left if last => line.push_str(&cell),
                    Align::Left => {
                        line.push_str(&cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(&cell);
                    }
                }
                if !last {
                    line.push_str("  ");
                }
            }
            // A line still too wide (no flexible column left to cut) is cut.
            out.push_str(truncate(line.trim_end(), WIDTH).as_str());
            out.push('\n');
        }
        out
    }
}

/// A duration, short: `850ms`, `12s`, `5m 3s`, `2h 10m`, `3d 4h`.
pub fn duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    let secs = duration.as_secs();
    if secs < 1 {
        format!("{ms}ms")
    } else if secs < 10 {
        format!("{:.1}s", duration.as_secs_f64())
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3_600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else if secs < 86_400 {
        format!("{}h {}m", secs / 3_600, secs % 3_600 / 60)
    } else {
        format!("{}d {}h", secs / 86_400, secs % 86_400 / 3_600)
    }
}

/// How long before `now` `at` was: `5m 3s ago`; `in 2m` for the future.
pub fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    match (now - at).to_std() {
        Ok(past) => format!("{} ago", duration(past)),
        Err(_) => match (at - now).to_std() {
            Ok(future) => format!("in {}", duration(future)),
            Err(_) => "now".to_owned(),
        },
    }
}

/// An instant for people: `2026-01-31 12:00:00Z`.
pub fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// An optional value, or `-`.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_80_columns() {
        let mut table = Table::new(vec![
            Column::number("ID"),
            Column::flex("NAME", 8),
            Column::flex("ERROR", 10),
        ]);
        table.row(vec!["1".into(), "x".repeat(200), "y".repeat(300)]);
        table.row(vec!["22".into(), "short".into(), "ok".into()]);
        let text = table.render();
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "{line:?} is too wide");
        }
        assert!(text.contains('…'), "long cells are cut with an ellipsis");
    }

    #[test]
    fn wrapping() {
        let text = wrap(&"word ".repeat(40), "  ", WIDTH);
        assert!(text.lines().all(|line| line.chars().count() <= WIDTH));
        let text = hanging(&"x".repeat(200), "", "      ", WIDTH);
        assert!(text.lines().all(|line| line.chars().count() <= WIDTH));
        assert_eq!(text.chars().filter(|c| *c == 'x').count(), 200);
    }

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_secs(303)), "5m 3s");
        assert_eq!(duration(Duration::from_secs(90_000)), "1d 1h");
    }
}

//! Scale: the burn-down rate of the same number of pending tasks in a table
//! holding only them, and in a table that also holds ~1M finished rows
//! (copies of one real finished task, made with plain SQL in sitq's own
//! schema). The large table should cost at most 20%.

use super::Bench;
use super::burn_down::measure;
use crate::Result;
use crate::report::{Row, Target, Unit};

/// Pending tasks drained in each of the two tables.
const PENDING: usize = 10_000;

/// Measures both tables.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let filler = bench.args.filler;
    let pending = PENDING;
    let small = measure(bench, "scale_small", "scale (small table)", pending, 0).await?;
    let large = measure(bench, "scale_large", "scale (large table)", pending, filler).await?;
    let rows = filler + pending as u64;
    if bench.args.quick || rows < 1_000_000 {
        let note = format!(
            "{} scale: the large table holds {rows} rows, not the issue's 1M (--quick or --filler)",
            bench.backend()
        );
        bench.report.notes.push(note);
    }
    let backend = bench.backend();
    bench.push(Row::new(
        backend,
        format!("burn-down of {pending}, table of {pending}"),
        Unit::Rate,
        small.rate,
    ));
    bench.push(
        Row::new(
            backend,
            format!("burn-down of {pending}, table of {rows}"),
            Unit::Rate,
            large.rate,
        )
        .baseline(small.rate, "small table")
        .target(Target::RatioAtLeast(0.8)),
    );
    Ok(())
}

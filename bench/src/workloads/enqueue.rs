//! Enqueue: N tasks one call each (each its own commit), and the same N
//! through `enqueue_many` in batches; beside single-row commits and
//! multi-row inserts of the same batch size in plain SQL. One call each
//! should reach 50% of the ceiling on SQLite and 85% on PostgreSQL;
//! batches, 100k tasks/s.

use std::time::Instant;

use super::{Bench, rate};
use crate::Result;
use crate::ceiling::Jobs;
use crate::db::Kind;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};
use crate::tasks::noop;

/// Measures both enqueue paths of sitq and of the ceiling.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let n = bench.args.n;
    let batch = bench.args.batch;

    // sitq, one call each.
    let (fresh, queue) = bench.fresh_queue("enqueue_single").await?;
    let progress = Progress::new(bench.label("enqueue: sitq, one at a time"), n);
    let start = Instant::now();
    for i in 0..n {
        noop::enqueue(&queue, i as u64).await?;
        progress.set(i + 1);
    }
    let single = rate(n, start.elapsed());
    progress.finish(&format!("{single:.0} tasks/s"));
    queue.close().await;
    verify_stored(bench, "enqueue (single)", &fresh, n).await?;
    bench.provider.drop_database(&fresh).await;

    // sitq, in batches.
    let (fresh, queue) = bench.fresh_queue("enqueue_batch").await?;
    let progress = Progress::new(
        bench.label(&format!("enqueue: sitq, batches of {batch}")),
        n,
    );
    let start = Instant::now();
    let mut next = 0;
    while next < n {
        let end = (next + batch).min(n);
        queue
            .enqueue_many((next..end).map(|i| noop { i: i as u64 }))
            .await?;
        next = end;
        progress.set(next);
    }
    let batched = rate(n, start.elapsed());
    progress.finish(&format!("{batched:.0} tasks/s"));
    queue.close().await;
    verify_stored(bench, "enqueue (batch)", &fresh, n).await?;
    bench.provider.drop_database(&fresh).await;

    // The ceiling, both ways.
    let sync = &bench.args.synchronous;
    let fresh = bench.provider.fresh("ceiling_enqueue_single").await?;
    let jobs = Jobs::create(&fresh, sync).await?;
    let progress = Progress::new(bench.label("enqueue: ceiling, single-row commits"), n);
    let ceiling_single = rate(n, jobs.enqueue_single(n, &progress).await?);
    progress.finish(&format!("{ceiling_single:.0} rows/s"));
    verify_ceiling(bench, "ceiling enqueue (single)", &jobs, n, false).await?;
    jobs.close().await;
    bench.provider.drop_database(&fresh).await;

    let fresh = bench.provider.fresh("ceiling_enqueue_batch").await?;
    let jobs = Jobs::create(&fresh, sync).await?;
    let progress = Progress::new(
        bench.label(&format!("enqueue: ceiling, {batch} rows per transaction")),
        n,
    );
    let ceiling_batched = rate(n, jobs.enqueue_batch(n, batch, &progress).await?);
    progress.finish(&format!("{ceiling_batched:.0} rows/s"));
    verify_ceiling(bench, "ceiling enqueue (batch)", &jobs, n, false).await?;
    jobs.close().await;
    bench.provider.drop_database(&fresh).await;

    let backend = bench.backend();
    let single_target = match bench.provider.kind() {
        Kind::Sqlite => 0.5,
        Kind::Postgres => 0.85,
    };
    bench.push(
        Row::new(backend, "enqueue, one call each", Unit::Rate, single)
            .ceiling(ceiling_single)
            .target(Target::RatioAtLeast(single_target)),
    );
    bench.push(
        Row::new(
            backend,
            format!("enqueue, batches of {batch}"),
            Unit::Rate,
            batched,
        )
        .ceiling(ceiling_batched)
        .target(Target::AtLeast(100_000.0)),
    );
    Ok(())
}

/// Checks that `n` no-op tasks are stored (none has run).
async fn verify_stored(
    bench: &mut Bench<'_>,
    workload: &str,
    fresh: &crate::db::Fresh,
    n: usize,
) -> Result<()> {
    let raw = bench.raw(fresh, 1).await?;
    let (_, total) = raw.noop_tally().await?;
    raw.close().await;
    let ok = total == i64::try_from(n)?;
    bench.check(workload, ok, format!("{total} tasks stored (expected {n})"));
    Ok(())
}

/// Checks the ceiling's table: `n` jobs, and all done at attempt 1 when `done`.
pub async fn verify_ceiling(
    bench: &mut Bench<'_>,
    workload: &str,
    jobs: &Jobs,
    n: usize,
    done: bool,
) -> Result<()> {
    let (done_once, total) = jobs.tally().await?;
    let n_i64 = i64::try_from(n)?;
    let ok = total == n_i64 && (!done || done_once == n_i64);
    let detail = if done {
        format!("{done_once} of {total} jobs done at attempt 1 (expected {n})")
    } else {
        format!("{total} jobs stored (expected {n})")
    };
    bench.check(workload, ok, detail);
    Ok(())
}

//! End-to-end: a producer enqueues N no-ops one call at a time while a
//! worker (in the same process, concurrency C) drains them; the clock runs
//! from the first enqueue until every task ran and the worker's graceful
//! stop stored every completion. The ceiling does the same with a
//! single-row-commit producer and a claim/complete consumer: interleaved on
//! one thread on SQLite (one writer), on two connections on PostgreSQL.
//! No target: the user workload (`user`) carries the end-to-end
//! targets.

use std::time::Instant;

use sitq::Worker;

use super::{Bench, CEILING_CLAIM, rate};
use crate::Result;
use crate::ceiling;
use crate::progress::Progress;
use crate::report::{Row, Unit};
use crate::tasks::{self, Runs, noop};

/// Measures sitq's end-to-end rate and the ceiling's.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let n = bench.args.n;
    let c = bench.args.concurrency;

    let (fresh, queue) = bench.fresh_queue("end_to_end").await?;
    let runs = Runs::new(n);
    tasks::install(Some(runs.clone()));
    let worker = Worker::new(queue.clone())
        .concurrency(c)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let progress = Progress::new(
        bench.label(&format!("e2e: sitq producer + worker C={c}")),
        n,
    );
    let start = Instant::now();
    for i in 0..n {
        noop::enqueue(&queue, i as u64).await?;
        progress.set(runs.distinct());
    }
    runs.all_ran().await;
    stop.shutdown().await;
    running.await??;
    let sitq_rate = rate(n, start.elapsed());
    progress.finish(&format!("{sitq_rate:.0} tasks/s"));
    tasks::install(None);
    queue.close().await;
    bench
        .verify_noops("end-to-end", &fresh, n, Some(runs.summary()))
        .await?;
    bench.provider.drop_database(&fresh).await;

    let fresh = bench.provider.fresh("ceiling_end_to_end").await?;
    let progress = Progress::new(bench.label("e2e: ceiling producer + consumer"), n);
    let (elapsed, jobs) =
        ceiling::end_to_end(&fresh, &bench.args.synchronous, n, CEILING_CLAIM, &progress).await?;
    let ceiling_rate = rate(n, elapsed);
    progress.finish(&format!("{ceiling_rate:.0} jobs/s"));
    super::enqueue::verify_ceiling(bench, "ceiling end-to-end", &jobs, n, true).await?;
    jobs.close().await;
    bench.provider.drop_database(&fresh).await;

    let backend = bench.backend();
    bench.push(
        Row::new(
            backend,
            format!("end-to-end, in-process, C={c}"),
            Unit::Rate,
            sitq_rate,
        )
        .ceiling(ceiling_rate),
    );
    Ok(())
}

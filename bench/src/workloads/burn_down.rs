//! Burn-down: N no-op tasks already queued, one worker process with
//! concurrency C drains them. The clock runs from the worker's `READY`
//! (it starts claiming) to its `DONE`, which it prints only after every
//! task ran and the worker's graceful stop stored every completion. The
//! worker's peak resident set comes from the same run. The rate should
//! reach 50% of the plain-SQL claim+complete ceiling on SQLite and 60% on
//! PostgreSQL; the worker should stay within 64 MiB.

use std::time::Instant;

use sitq::Worker;

use super::{Bench, CEILING_CLAIM, prefill, rate};
use crate::Result;
use crate::ceiling::Jobs;
use crate::child::{ChildReport, ChildWorker};
use crate::db::Kind;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};
use crate::tasks::filler;

/// One sitq burn-down.
#[derive(Copy, Clone, Debug)]
pub struct Drained {
    /// Tasks per second.
    pub rate: f64,
    /// What the worker process reported.
    pub worker: ChildReport,
}

/// Measures sitq's burn-down and the ceiling's, and the worker's memory.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let n = bench.args.n;
    let c = bench.args.concurrency;
    let sitq = measure(bench, "burn_down", "burn-down", n, 0).await?;

    let fresh = bench.provider.fresh("ceiling_burn_down").await?;
    let jobs = Jobs::create(&fresh, &bench.args.synchronous).await?;
    jobs.enqueue_batch(n, CEILING_CLAIM, &Progress::hidden())
        .await?;
    let progress = Progress::new(
        bench.label(&format!("burn-down: ceiling, claims of {CEILING_CLAIM}")),
        n,
    );
    let ceiling_rate = rate(n, jobs.drain(n, CEILING_CLAIM, &progress).await?);
    progress.finish(&format!("{ceiling_rate:.0} jobs/s"));
    super::enqueue::verify_ceiling(bench, "ceiling burn-down", &jobs, n, true).await?;
    jobs.close().await;
    bench.provider.drop_database(&fresh).await;

    let backend = bench.backend();
    let target = match bench.provider.kind() {
        Kind::Sqlite => Target::RatioAtLeast(0.5),
        Kind::Postgres => Target::RatioAtLeast(0.6),
    };
    bench.push(
        Row::new(backend, format!("burn-down, C={c}"), Unit::Rate, sitq.rate)
            .ceiling(ceiling_rate)
            .target(target),
    );
    bench.push(
        Row::new(
            backend,
            format!("worker peak RSS, {n} burn-down"),
            Unit::MiB,
            sitq.worker.peak_rss_kib as f64 / 1024.0,
        )
        .target(Target::AtMost(64.0)),
    );
    Ok(())
}

/// sitq's burn-down of `pending` no-op tasks on a fresh database, after
/// `filler_rows` finished tasks were put in the table; verified.
pub async fn measure(
    bench: &mut Bench<'_>,
    label: &str,
    workload: &str,
    pending: usize,
    filler_rows: u64,
) -> Result<Drained> {
    let c = bench.args.concurrency;
    let (fresh, queue) = bench.fresh_queue(label).await?;
    if filler_rows > 0 {
        let progress = Progress::new(
            bench.label(&format!("{workload}: {filler_rows} finished rows")),
            usize::try_from(filler_rows)?,
        );
        let template = finished_template(&queue).await?;
        let raw = bench.raw(&fresh, 1).await?;
        raw.clone_rows(template, filler_rows, 100_000, |done| {
            progress.set(usize::try_from(done).unwrap_or(usize::MAX));
        })
        .await?;
        raw.close().await;
        progress.finish("filled");
    }
    let progress = Progress::new(bench.label(&format!("{workload}: queueing")), pending);
    prefill(&queue, pending, &progress).await?;
    progress.finish("queued");
    queue.close().await;

    let progress = Progress::new(
        bench.label(&format!("{workload}: sitq worker process, C={c}")),
        pending,
    );
    let mut worker = ChildWorker::start(&fresh.url, c, pending).await?;
    let started = Instant::now();
    let (done, report) = worker.until_done(&progress).await?;
    let drained = Drained {
        rate: rate(pending, done - started),
        worker: report,
    };
    progress.finish(&format!(
        "{:.0} tasks/s, peak RSS {:.1} MiB",
        drained.rate,
        report.peak_rss_kib as f64 / 1024.0
    ));
    bench
        .verify_noops(workload, &fresh, pending, Some(report.runs))
        .await?;
    bench.provider.drop_database(&fresh).await;
    Ok(drained)
}

/// Runs one `filler` task to completion in this process; its id, a
/// finished row to copy.
pub(super) async fn finished_template(queue: &sitq::Queue) -> Result<i64> {
    let handle = filler::enqueue(queue).await?;
    let worker = Worker::new(queue.clone())
        .concurrency(1)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let waited = handle
        .wait_timeout(std::time::Duration::from_secs(60))
        .await;
    stop.shutdown().await;
    running.await??;
    waited?;
    Ok(handle.id().0)
}

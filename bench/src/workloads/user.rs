//! The user's workload: N no-op tasks enqueued one awaited call at a time
//! (every handle kept), then one worker in this process (concurrency C)
//! drains them while the producer awaits every handle in enqueue order.
//! Reported: the enqueue rate, the drain rate (worker start to the last
//! handle resolved) and the total rate (N over the whole time). Run with
//! one producer, and with four enqueuing at once (N/4 each).
//!
//! The ceiling does the same work in plain SQL on one connection: N
//! single-row commits, then claim and complete batches, reading each job's
//! status and result in order as `wait()` must. Four producers share that
//! ceiling: on SQLite the writes go through one writer whatever the number
//! of producers. The total should reach 40% of the ceiling on SQLite and
//! 80% on PostgreSQL.

use std::time::{Duration, Instant};

use sitq::{TaskHandle, Worker};

use super::{Bench, CEILING_CLAIM, rate};
use crate::Result;
use crate::ceiling::Jobs;
use crate::db::Kind;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};
use crate::tasks::{self, Runs, noop};

/// How long sitq took, phase by phase.
#[derive(Copy, Clone, Debug)]
struct Phases {
    /// Enqueueing all N.
    enqueue: Duration,
    /// From the worker's start to the last handle resolved.
    drain: Duration,
    /// From the first enqueue to the last handle resolved.
    total: Duration,
}

/// Measures the user's workload with one and with four producers, and the
/// ceiling.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let n = bench.args.n;
    let c = bench.args.concurrency;
    let one = measure(bench, n, c, 1).await?;
    let four = measure(bench, n, c, 4).await?;

    let fresh = bench.provider.fresh("ceiling_user").await?;
    let jobs = Jobs::create(&fresh, &bench.args.synchronous).await?;
    let progress = Progress::new(
        bench.label(&format!(
            "user: ceiling, {n} commits + claims of {CEILING_CLAIM} + reads"
        )),
        2 * n,
    );
    let ceiling = jobs.user(n, CEILING_CLAIM, &progress).await?;
    progress.finish(&format!(
        "enqueue {:.0}/s, drain {:.0}/s, total {:.0}/s",
        rate(n, ceiling.enqueue),
        rate(n, ceiling.drain),
        rate(n, ceiling.total())
    ));
    super::enqueue::verify_ceiling(bench, "ceiling user", &jobs, n, true).await?;
    jobs.close().await;
    bench.provider.drop_database(&fresh).await;

    let backend = bench.backend();
    let total_target = match bench.provider.kind() {
        Kind::Sqlite => 0.4,
        Kind::Postgres => 0.8,
    };
    for (producers, phases) in [(1, one), (4, four)] {
        let what = if producers == 1 {
            "1 producer".to_owned()
        } else {
            format!("{producers} producers")
        };
        bench.push(
            Row::new(
                backend,
                format!("user ({what}): enqueue"),
                Unit::Rate,
                rate(n, phases.enqueue),
            )
            .ceiling(rate(n, ceiling.enqueue)),
        );
        bench.push(
            Row::new(
                backend,
                format!("user ({what}): drain + wait, C={c}"),
                Unit::Rate,
                rate(n, phases.drain),
            )
            .ceiling(rate(n, ceiling.drain)),
        );
        bench.push(
            Row::new(
                backend,
                format!("user ({what}): total"),
                Unit::Rate,
                rate(n, phases.total),
            )
            .ceiling(rate(n, ceiling.total()))
            .target(Target::RatioAtLeast(total_target)),
        );
    }
    Ok(())
}

/// sitq doing the user's workload with `producers` producers; verified.
async fn measure(bench: &mut Bench<'_>, n: usize, c: usize, producers: usize) -> Result<Phases> {
    let what = if producers == 1 {
        "1 producer".to_owned()
    } else {
        format!("{producers} producers")
    };
    let label = format!("user_{producers}");
    let (fresh, queue) = bench.fresh_queue(&label).await?;
    let runs = Runs::new(n);
    tasks::install(Some(runs.clone()));
    let progress = Progress::new(
        bench.label(&format!("user: sitq, {what}, then worker C={c} + wait()")),
        2 * n,
    );

    let start = Instant::now();
    let handles = if producers == 1 {
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            handles.push(noop::enqueue(&queue, i as u64).await?);
            progress.set(i + 1);
        }
        handles
    } else {
        enqueue_concurrently(&queue, n, producers).await?
    };
    let enqueued = start.elapsed();
    progress.set(n);

    let worker = Worker::new(queue.clone())
        .concurrency(c)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let worker_start = Instant::now();
    let running = tokio::spawn(worker.run());
    let mut waited = Ok(());
    for (i, handle) in handles.iter().enumerate() {
        if let Err(err) = handle.wait().await {
            waited = Err(format!("waiting for task {i}: {err}"));
            break;
        }
        progress.set(n + i + 1);
    }
    let phases = Phases {
        enqueue: enqueued,
        drain: worker_start.elapsed(),
        total: start.elapsed(),
    };
    stop.shutdown().await;
    running.await??;
    waited?;
    progress.finish(&format!(
        "enqueue {:.0}/s, drain {:.0}/s, total {:.0}/s",
        rate(n, phases.enqueue),
        rate(n, phases.drain),
        rate(n, phases.total)
    ));
    tasks::install(None);
    drop(handles);
    queue.close().await;
    let workload = format!("user ({what})");
    bench
        .verify_noops(&workload, &fresh, n, Some(runs.summary()))
        .await?;
    bench.provider.drop_database(&fresh).await;
    Ok(phases)
}

/// `n` no-op tasks enqueued one call at a time by `producers` tokio tasks
/// at once (an equal share each, by index range); the handles, by index.
async fn enqueue_concurrently(
    queue: &sitq::Queue,
    n: usize,
    producers: usize,
) -> Result<Vec<TaskHandle<()>>> {
    let share = n.div_ceil(producers);
    let mut spawned = Vec::with_capacity(producers);
    for p in 0..producers {
        let queue = queue.clone();
        let range = (p * share).min(n)..((p + 1) * share).min(n);
        spawned.push(tokio::spawn(async move {
            let mut handles = Vec::with_capacity(range.len());
            for i in range {
                handles.push(noop::enqueue(&queue, i as u64).await?);
            }
            Ok::<_, sitq::Error>(handles)
        }));
    }
    let mut handles = Vec::with_capacity(n);
    for producer in spawned {
        handles.extend(producer.await??);
    }
    Ok(handles)
}

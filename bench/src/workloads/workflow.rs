//! Workflows: a 10,000-task fan-out followed by one fan-in, and a
//! 1,000-step chain, each enqueued as one workflow and run by a worker in
//! this process, from enqueue to the final result. Each is compared with
//! the same number of independent tasks (one `enqueue_many`, every handle
//! awaited) on the same backend: the goal is within 2×, i.e. a
//! rate ratio of at least 50%. A chain cannot run its steps in parallel, so
//! it is also shown beside the same chain driven by hand (enqueue, wait,
//! enqueue the next), what a user without dependencies would write.

use std::time::{Duration, Instant};

use sitq::{Queue, Worker, Workflow};

use super::Bench;
use crate::Result;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};
use crate::tasks::{gather, step, value};

/// Branches of the fan-out.
const FAN_OUT: usize = 10_000;
/// Steps of the chain.
const CHAIN: usize = 1_000;

/// Measures the fan-out/fan-in and the chain, each beside its baselines.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let backend = bench.backend();
    let tasks = FAN_OUT + 2;
    let many = bench
        .in_worker(
            "workflow_independent",
            "independent tasks",
            tasks,
            independent_tasks,
        )
        .await?;
    let fan = bench
        .in_worker("workflow_fan", "fan-out + fan-in", tasks, fan_out_fan_in)
        .await?;
    bench.push(
        Row::new(
            backend,
            format!("workflow: fan-out {FAN_OUT} + fan-in"),
            Unit::Rate,
            rate(tasks, fan),
        )
        .baseline(rate(tasks, many), "independent")
        .target(Target::RatioAtLeast(0.5)),
    );

    let many = bench
        .in_worker(
            "chain_independent",
            "independent tasks",
            CHAIN,
            independent_tasks,
        )
        .await?;
    let by_hand = bench
        .in_worker("chain_by_hand", "chain by hand", CHAIN, chain_by_hand)
        .await?;
    let chain = bench
        .in_worker("chain", "chain workflow", CHAIN, chain)
        .await?;
    bench.push(
        Row::new(
            backend,
            format!("workflow: chain of {CHAIN}"),
            Unit::Rate,
            rate(CHAIN, chain),
        )
        .baseline(rate(CHAIN, many), "independent")
        .target(Target::RatioAtLeast(0.5)),
    );
    bench.push(
        Row::new(
            backend,
            format!("workflow: chain of {CHAIN}, vs by hand"),
            Unit::Rate,
            rate(CHAIN, chain),
        )
        .baseline(rate(CHAIN, by_hand), "by hand"),
    );
    Ok(())
}

impl Bench<'_> {
    /// Runs `work` for `n` tasks on a fresh database with a worker in this
    /// process; how long it took.
    async fn in_worker<F, Fut>(
        &mut self,
        label: &str,
        what: &str,
        n: usize,
        work: F,
    ) -> Result<Duration>
    where
        F: FnOnce(Queue, usize) -> Fut,
        Fut: std::future::Future<Output = Result<Duration>>,
    {
        let (fresh, queue) = self.fresh_queue(label).await?;
        let worker = Worker::new(queue.clone())
            .concurrency(self.args.concurrency)
            .handle_signals(false);
        let stop = worker.shutdown_handle();
        let running = tokio::spawn(worker.run());
        let progress = Progress::new(self.label(&format!("workflow: {what}")), n);
        let elapsed = work(queue.clone(), n).await;
        stop.shutdown().await;
        running.await??;
        let elapsed = elapsed?;
        progress.finish(&format!(
            "{n} tasks in {:.0} ms",
            elapsed.as_secs_f64() * 1e3
        ));
        queue.close().await;
        self.provider.drop_database(&fresh).await;
        Ok(elapsed)
    }
}

/// `n` independent tasks in one `enqueue_many`, every handle awaited.
async fn independent_tasks(queue: Queue, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let handles = queue
        .enqueue_many((0..n as u64).map(|i| value { i }))
        .await?;
    for handle in &handles {
        handle.wait().await?;
    }
    Ok(start.elapsed())
}

/// One root, `n - 2` branches receiving its result, one fan-in of theirs.
async fn fan_out_fan_in(queue: Queue, n: usize) -> Result<Duration> {
    let branches = n - 2;
    let start = Instant::now();
    let mut flow = Workflow::new("bench-fan");
    let root = value::add(&mut flow, 1);
    let nodes: Vec<_> = (0..branches)
        .map(|_| step::after_result(&root).add(&mut flow))
        .collect();
    let total = gather::after_result(&nodes).add(&mut flow);
    let run = flow.enqueue(&queue).await?;
    let sum = run.handle(&total)?.wait().await?;
    let elapsed = start.elapsed();
    let want = 2 * branches as u64;
    if sum != want {
        return Err(format!("the fan-in summed {sum}, expected {want}").into());
    }
    Ok(elapsed)
}

/// A chain of `n` tasks, each receiving the previous one's result.
async fn chain(queue: Queue, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let mut flow = Workflow::new("bench-chain");
    let mut last = value::add(&mut flow, 0);
    for _ in 1..n {
        last = step::after_result(&last).add(&mut flow);
    }
    let run = flow.enqueue(&queue).await?;
    let end = run.handle(&last)?.wait().await?;
    let elapsed = start.elapsed();
    if end != n as u64 - 1 {
        return Err(format!("the chain ended at {end}, expected {}", n - 1).into());
    }
    Ok(elapsed)
}

/// The same chain without dependencies: enqueue, wait, enqueue the next.
async fn chain_by_hand(queue: Queue, n: usize) -> Result<Duration> {
    let start = Instant::now();
    let mut previous = value::enqueue(&queue, 0).await?.wait().await?;
    for _ in 1..n {
        previous = step::enqueue(&queue, previous).await?.wait().await?;
    }
    if previous != n as u64 - 1 {
        return Err(format!("the chain ended at {previous}, expected {}", n - 1).into());
    }
    Ok(start.elapsed())
}

/// Tasks per second.
fn rate(n: usize, elapsed: Duration) -> f64 {
    super::rate(n, elapsed)
}

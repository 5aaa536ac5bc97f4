//! Latency at low load: one task at a time, a short pause between them.
//! enqueue → start is the task's own start instant (wall clock, which it
//! returns) minus the wall-clock instant taken just before `enqueue`;
//! enqueue → wait is how long `enqueue` plus `wait()` took. Measured with
//! the worker in this process (in-process wake-ups) and in a worker process
//! (across processes). enqueue → start should take at most 1 ms at p50 and
//! 10 ms at p99 in-process; across processes on SQLite (no notifications
//! but the file's), 5 ms and 20 ms.

use std::time::{Duration, Instant};

use sitq::{Queue, Worker};

use super::Bench;
use crate::Result;
use crate::child::ChildWorker;
use crate::db::Kind;
use crate::progress::Progress;
use crate::report::{Row, Target, Unit};
use crate::tasks::{now_micros, stamp};

/// Samples discarded first (connections warming up).
const WARMUP: usize = 20;
/// The pause between samples.
const GAP: Duration = Duration::from_millis(2);

/// Both series' samples, in milliseconds.
#[derive(Debug, Default)]
struct Series {
    to_start: Vec<f64>,
    to_wait: Vec<f64>,
}

/// Measures in-process and cross-process latency.
pub async fn run(bench: &mut Bench<'_>) -> Result<()> {
    let c = bench.args.concurrency;
    let samples = bench.args.samples;

    let (fresh, queue) = bench.fresh_queue("latency_in_process").await?;
    let worker = Worker::new(queue.clone())
        .concurrency(c)
        .handle_signals(false);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let progress = Progress::new(bench.label("latency: in-process worker"), samples);
    let in_process = sample(&queue, samples, &progress).await;
    stop.shutdown().await;
    running.await??;
    let in_process = in_process?;
    progress.finish(&summary(&in_process));
    queue.close().await;
    bench.provider.drop_database(&fresh).await;

    let (fresh, queue) = bench.fresh_queue("latency_cross_process").await?;
    let worker = ChildWorker::start(&fresh.url, c, 0).await?;
    let progress = Progress::new(bench.label("latency: worker process"), samples);
    let cross = sample(&queue, samples, &progress).await;
    worker.finish(&Progress::hidden()).await?;
    let cross = cross?;
    progress.finish(&summary(&cross));
    queue.close().await;
    bench.provider.drop_database(&fresh).await;

    let backend = bench.backend();
    for (place, series) in [("in-process", &in_process), ("cross-process", &cross)] {
        for (what, values) in [
            ("enqueue→start", &series.to_start),
            ("enqueue→wait", &series.to_wait),
        ] {
            let [p50, p99, max] = percentiles(values);
            let targets = match (place, what, bench.provider.kind()) {
                ("in-process", "enqueue→start", _) => {
                    [Some(Target::AtMost(1.0)), Some(Target::AtMost(10.0)), None]
                }
                ("cross-process", "enqueue→start", Kind::Sqlite) => {
                    [Some(Target::AtMost(5.0)), Some(Target::AtMost(20.0)), None]
                }
                _ => [None, None, None],
            };
            for ((stat, value), target) in [("p50", p50), ("p99", p99), ("max", max)]
                .into_iter()
                .zip(targets)
            {
                let mut row = Row::new(
                    backend,
                    format!("latency {place} {what} {stat}"),
                    Unit::Millis,
                    value,
                );
                if let Some(target) = target {
                    row = row.target(target);
                }
                bench.push(row);
            }
        }
    }
    Ok(())
}

/// `samples` enqueue-and-wait round trips after a warm-up, one at a time.
async fn sample(queue: &Queue, samples: usize, progress: &Progress) -> Result<Series> {
    let mut series = Series::default();
    for i in 0..WARMUP + samples {
        let before = now_micros();
        let clock = Instant::now();
        let handle = stamp::enqueue(queue).await?;
        let started = handle.wait_timeout(Duration::from_secs(30)).await?;
        let waited = clock.elapsed();
        if i >= WARMUP {
            series.to_start.push((started - before) as f64 / 1000.0);
            series.to_wait.push(waited.as_secs_f64() * 1000.0);
            progress.set(i + 1 - WARMUP);
        }
        tokio::time::sleep(GAP).await;
    }
    Ok(series)
}

/// p50, p99 and max of `values` (nearest rank); zeros when empty.
fn percentiles(values: &[f64]) -> [f64; 3] {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let Some(&max) = sorted.last() else {
        return [0.0; 3];
    };
    let rank = |p: f64| {
        let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    [rank(0.50), rank(0.99), max]
}

fn summary(series: &Series) -> String {
    let [start50, start99, _] = percentiles(&series.to_start);
    let [wait50, wait99, _] = percentiles(&series.to_wait);
    format!(
        "start p50 {start50:.2} ms p99 {start99:.2} ms; wait p50 {wait50:.2} ms p99 {wait99:.2} ms"
    )
}

#[cfg(test)]
mod tests {
    use super::percentiles;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&values), [50.0, 99.0, 100.0]);
        assert_eq!(percentiles(&[]), [0.0; 3]);
        assert_eq!(percentiles(&[3.0]), [3.0; 3]);
    }
}

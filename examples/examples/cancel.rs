//! Cancel, retry and the failure history: `cargo run --example cancel`.
//!
//! - a long task that watches its context is cancelled while it runs: it
//!   stops cleanly, ends `cancelled`, and waiting on it says who and why;
//! - a delayed task is cancelled before it runs, then retried: it runs now;
//! - a task that failed for good is retried and succeeds; its earlier
//!   errors stay readable.

#![allow(clippy::print_stdout)] // an example prints its results

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sitq::{CancelRequest, Context, Error, Queue, TaskStatus, Worker};

/// Builds a report row by row; stops early when cancelled.
#[sitq::task]
async fn build_report(ctx: Context, rows: u32) -> Result<u32, String> {
    for row in 0..rows {
        tokio::select! {
            () = ctx.cancelled() => return Err(format!("stopped at row {row} of {rows}")),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(rows)
}

/// Charges an account; returns a receipt.
#[sitq::task]
async fn charge(account: u64, cents: u64) -> String {
    format!("receipt: {cents} cents from account {account}")
}

static SYNC_RUNS: AtomicU32 = AtomicU32::new(0);

/// Fails its first two runs (the upstream is "down"), then succeeds.
#[sitq::task(max_attempts = 2, backoff = "20ms")]
async fn sync_upstream() -> Result<u32, String> {
    let run = SYNC_RUNS.fetch_add(1, Ordering::SeqCst) + 1;
    if run <= 2 {
        return Err(format!("upstream unavailable (run {run})"));
    }
    Ok(run)
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let path = std::env::temp_dir().join(format!("sitq-cancel-{}.db", std::process::id()));
    let queue = Queue::connect(&format!("sqlite://{}", path.display())).await?;
    let worker = Worker::new(queue.clone())
        .concurrency(4)
        .cancel_grace(Duration::from_secs(2));
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    // 1. Cancel a running task.
    let report = build_report::enqueue(&queue, 600).await?; // a minute of work
    while report.status().await? != TaskStatus::Running {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = CancelRequest::new()
        .by("ops")
        .reason("customer closed the account");
    println!(
        "cancel running report: {:?}",
        report.cancel_with(request).await?
    );
    match report.wait().await {
        Err(err @ Error::Cancelled { .. }) => println!("waiting on it: {err}"),
        other => println!("unexpected: {other:?}"),
    }
    let record = queue.get(report.id()).await?;
    println!(
        "its status: {}, after {} attempt(s)",
        record.status, record.attempts
    );
    for failure in report.failures().await? {
        println!(
            "  attempt {}: {}: {}",
            failure.attempt, failure.kind, failure.message
        );
    }

    // 2. Cancel a delayed task before it runs, then retry it.
    let payment = charge::with()
        .delay(Duration::from_secs(3600))
        .enqueue(&queue, 42, 1999)
        .await?;
    println!("cancel delayed charge: {:?}", payment.cancel().await?);
    println!("its status: {}", payment.status().await?);
    payment.retry().await?;
    println!("retried, it runs now: {}", payment.wait().await?);

    // 3. A task that failed for good, retried; its history stays readable.
    let sync = sync_upstream::enqueue(&queue).await?;
    match sync.wait().await {
        Err(err) => println!("sync failed: {err}"),
        Ok(run) => println!("sync unexpectedly succeeded on run {run}"),
    }
    sync.retry().await?;
    println!("retried sync succeeded on run {}", sync.wait().await?);
    println!("its failure history:");
    for failure in sync.failures().await? {
        println!(
            "  attempt {}: {}: {} (worker {}, at {})",
            failure.attempt,
            failure.kind,
            failure.message,
            failure.worker_id.as_deref().unwrap_or("?"),
            failure.failed_at.format("%H:%M:%S%.3f")
        );
    }

    stop.shutdown().await;
    running
        .await
        .map_err(|err| sitq::Error::Config(format!("worker task: {err}")))??;
    queue.close().await;
    for suffix in ["", "-wal", "-shm", "-sitq"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}

//! The README's first command: `cargo run --example quickstart`.
//!
//! One process, an embedded SQLite file, no server: enqueue a few typed
//! tasks, run a worker, print their typed results.

#![allow(clippy::print_stdout)] // an example prints its results

use std::time::Duration;

use sitq::{Queue, Worker};

/// Adds two numbers.
#[sitq::task]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// Greets someone; an empty name is an error, retried with backoff, then kept as failed.
#[sitq::task(max_attempts = 2, backoff = "50ms")]
async fn greet(name: String) -> Result<String, String> {
    if name.is_empty() {
        return Err("no name given".into());
    }
    Ok(format!("Hello, {name}!"))
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let path = std::env::temp_dir().join("sitq-quickstart.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display())).await?;

    let sum = add::enqueue(&queue, 2, 3).await?;
    let later = add::with()
        .delay(Duration::from_millis(200))
        .priority(10)
        .enqueue(&queue, 4, 5)
        .await?;
    let hello = greet::enqueue(&queue, "sitq".into()).await?;
    let broken = greet::enqueue(&queue, String::new()).await?;

    let worker = Worker::new(queue.clone()).concurrency(8);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    println!("add(2, 3)             = {}", sum.wait().await?);
    println!("add(4, 5) after 200ms = {}", later.wait().await?);
    println!("greet(\"sitq\")         = {}", hello.wait().await?);
    match broken.wait().await {
        Ok(greeting) => println!("greet(\"\") unexpectedly = {greeting}"),
        Err(err) => println!("greet(\"\") failed as expected: {err}"),
    }
    let record = queue.get(later.id()).await?;
    println!(
        "task {} ran {} time(s) on {}, took {:?}",
        record.id,
        record.attempts,
        record.worker_id.as_deref().unwrap_or("?"),
        record.duration().unwrap_or_default()
    );

    stop.shutdown().await;
    running
        .await
        .map_err(|err| sitq::Error::Config(format!("worker task: {err}")))??;
    println!("database: {}", path.display());
    Ok(())
}

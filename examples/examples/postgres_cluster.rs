//! Producers and workers on several machines sharing one PostgreSQL database.
//!
//! Each role is a separate program run (a stand-in for a machine); `demo`
//! runs producers and workers as tasks of one process, each with its own
//! connection pool and listener, exactly as separate machines would have.
//!
//! ```text
//! export DATABASE_URL=postgres://user:password@db-host/sitq
//! cargo run -p sitq-examples --features postgres --example postgres_cluster -- worker    # machine A
//! cargo run -p sitq-examples --features postgres --example postgres_cluster -- worker    # machine B
//! cargo run -p sitq-examples --features postgres --example postgres_cluster -- producer  # machine C
//! cargo run -p sitq-examples --features postgres --example postgres_cluster -- demo      # all in one
//! ```
//!
//! The URL is the second argument or `DATABASE_URL`.

#![allow(clippy::print_stdout)] // an example prints its results

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sitq::{Queue, Worker};

/// Tasks each producer enqueues.
const TASKS: u64 = 2_000;

/// A little CPU work standing in for a real job: FNV-1a over `n`'s bytes.
#[sitq::task]
async fn digest(n: u64) -> u64 {
    n.to_le_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[tokio::main]
async fn main() -> sitq::Result<()> {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_else(|| "demo".to_owned());
    let Some(url) = args.next().or_else(|| std::env::var("DATABASE_URL").ok()) else {
        eprintln!(
            "usage: postgres_cluster [demo|producer|worker] [postgres://…] (or set DATABASE_URL)"
        );
        std::process::exit(2);
    };
    match role.as_str() {
        "worker" => {
            // Runs until Ctrl-C; in-flight tasks finish first.
            let worker = Worker::new(Queue::connect(&url).await?).concurrency(16);
            eprintln!("worker {} running; Ctrl-C to stop", worker.id());
            worker.run().await
        }
        "producer" => produce(&Queue::connect(&url).await?, "producer").await,
        "demo" => demo(&url, 2, 3).await,
        other => {
            eprintln!("unknown role {other:?}: expected demo, producer or worker");
            std::process::exit(2);
        }
    }
}

/// Enqueues [`TASKS`] tasks, waits for them all, and prints the throughput
/// and which worker ran how many.
async fn produce(queue: &Queue, name: &str) -> sitq::Result<()> {
    let started = Instant::now();
    let handles = queue.enqueue_many((0..TASKS).map(|n| digest { n })).await?;
    for handle in &handles {
        handle.wait_timeout(Duration::from_secs(120)).await?;
    }
    let elapsed = started.elapsed();
    let mut by_worker = BTreeMap::<String, u32>::new();
    for handle in &handles {
        let worker = queue.get(handle.id()).await?.worker_id.unwrap_or_default();
        *by_worker.entry(worker).or_default() += 1;
    }
    println!(
        "{name}: {TASKS} tasks enqueued and finished in {elapsed:.2?} ({:.0} tasks/s)",
        TASKS as f64 / elapsed.as_secs_f64()
    );
    for (worker, count) in by_worker {
        println!("  {worker:>12} ran {count}");
    }
    Ok(())
}

/// `producers` and `workers` in this process, each with its own `Queue`.
async fn demo(url: &str, producers: usize, workers: usize) -> sitq::Result<()> {
    let mut stops = Vec::new();
    let mut running = Vec::new();
    for i in 1..=workers {
        let worker = Worker::new(Queue::connect(url).await?)
            .concurrency(16)
            .worker_id(format!("worker-{i}"))
            .handle_signals(false);
        stops.push(worker.shutdown_handle());
        running.push(tokio::spawn(worker.run()));
    }
    let mut producing = Vec::new();
    for i in 1..=producers {
        let queue = Queue::connect(url).await?;
        producing.push(tokio::spawn(async move {
            produce(&queue, &format!("producer-{i}")).await
        }));
    }
    for producer in producing {
        producer.await.expect("producer task")?;
    }
    for stop in stops {
        stop.shutdown().await;
    }
    for worker in running {
        worker.await.expect("worker task")?;
    }
    Ok(())
}

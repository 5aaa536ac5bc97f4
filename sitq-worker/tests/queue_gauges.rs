//! The queue gauges `Worker::metrics_listener` serves, read from
//! `Backend::stats` (here the in-memory test backend's): tasks by queue
//! and status, and the age of the oldest due pending task. Its own test
//! binary: the `metrics` recorder is global to the process.

#![cfg(all(feature = "prometheus", feature = "testing"))]

#[path = "support/memory.rs"]
mod memory;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use memory::{HANG, Memory};
use sitq_core::{ConnectOptions, Queue, Registry};
use sitq_worker::Worker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WITHIN: Duration = Duration::from_secs(30);

/// The response to `GET /metrics`, or why there is none (yet: `run`
/// starts the listener).
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

/// The value of the sample line that starts with `series`.
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_depth_and_oldest_pending_age_come_from_the_database() {
    let memory = Arc::new(Memory::default());
    // Tasks this worker does not run: they stay pending.
    memory.add("run elsewhere", b"");
    memory.add("run elsewhere", b"");
    let queue = Queue::from_backend(memory.clone(), ConnectOptions::new());
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let worker = Worker::new(queue)
        .registry(Registry::from_registrations([&HANG]).expect("registry"))
        .handle_signals(false)
        .metrics_listener(addr);
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());

    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let body = scrape(addr)
            .await
            .unwrap_or_else(|err| format!("(no answer: {err})"));
        let depth = value(
            &body,
            r#"sitq_queue_depth{queue="default",status="pending"}"#,
        );
        let age = value(
            &body,
            r#"sitq_queue_oldest_pending_seconds{queue="default"}"#,
        );
        if depth == Some(2.0) && age.is_some_and(|age| age >= 0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no queue gauges in the scrape:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
}

//! `Worker::metrics_listener`: known work on SQLite, then the figures a
//! Prometheus scrape of the endpoint reads. Its own test binary: the
//! `metrics` recorder is global to the process.

#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use sitq_core::{
    Backoff, Context, EnqueueOptions, Error, Queue, Registry, Result, TaskDefaults, TaskFuture,
    TaskId, TaskInputs, TaskRegistration, TaskStatus,
};
use sitq_worker::Worker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// Links the SQLite backend's `sqlite://` connector.
use sitq_sqlite as _;

const WITHIN: Duration = Duration::from_secs(60);

static SUCCEEDS: TaskRegistration = TaskRegistration {
    name: "succeeds",
    file: file!(),
    line: line!(),
    defaults: TaskDefaults::DEFAULT,
    run: succeeds,
};

fn succeeds(_: &[u8], _: Option<&TaskInputs>, _: Context) -> Result<TaskFuture> {
    Ok(Box::pin(async { Ok(Vec::new()) }))
}

/// Fails every attempt, retried at once: three attempts, two retried.
static FAILS: TaskRegistration = TaskRegistration {
    name: "fails",
    file: file!(),
    line: line!(),
    defaults: TaskDefaults {
        backoff: Backoff::Fixed(Duration::ZERO),
        ..TaskDefaults::DEFAULT
    },
    run: fails,
};

fn fails(_: &[u8], _: Option<&TaskInputs>, _: Context) -> Result<TaskFuture> {
    Ok(Box::pin(async { Err("boom".to_owned()) }))
}

/// A free loopback address (the port is released again for the worker).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A scratch directory for the database and the files beside it, removed
/// on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn exporting_worker(queue: &Queue, addr: SocketAddr) -> Worker {
    Worker::new(queue.clone())
        .registry(Registry::from_registrations([&SUCCEEDS, &FAILS]).expect("registry"))
        .concurrency(2)
        .handle_signals(false)
        .metrics_listener(addr)
}

/// The body of `GET /metrics`, over a plain TCP connection.
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the scrape answered {head}"
    );
    Ok(body.to_owned())
}

/// Each sample of an exposition body: `name{labels}` (labels sorted) to value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let key = match series.split_once('{') {
                Some((name, labels)) => {
                    let mut labels: Vec<&str> = labels.trim_end_matches('}').split(',').collect();
                    labels.sort_unstable();
                    format!("{name}{{{}}}", labels.join(","))
                }
                None => series.to_owned(),
            };
            Some((key, value.parse().ok()?))
        })
        .collect()
}

async fn finished(queue: &Queue, ids: &[TaskId]) -> bool {
    for id in ids {
        match queue.backend().status(*id).await {
            Ok(Some(status)) if status.is_finished() => {}
            _ => return false,
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_reads_the_figures_of_known_work() {
    let dir = std::env::temp_dir().join(format!("sitq-worker-prometheus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let _scratch = Scratch(dir.clone());
    let path = dir.join("tasks.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");

    // A taken address: a clear error, and nothing installed.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("address");
    match exporting_worker(&queue, taken_addr).run().await {
        Err(Error::Config(message)) => assert!(
            message.contains(&taken_addr.to_string()),
            "the error names the address: {message}"
        ),
        other => panic!("expected Error::Config for a taken address, got {other:?}"),
    }
    drop(taken);

    let addr = free_addr();
    let worker = exporting_worker(&queue, addr);
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let deadline = tokio::time::Instant::now() + WITHIN;
    // The exporter is the recorder once it answers: what happens from now
    // on is counted.
    while scrape(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never answered"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Through the queue, which counts what it enqueues (3 attempts each).
    let mut ids = Vec::new();
    for name in [SUCCEEDS.name, SUCCEEDS.name, SUCCEEDS.name, FAILS.name] {
        let id = queue
            .enqueue_raw(name, Vec::new(), EnqueueOptions::new())
            .await
            .expect("enqueue");
        ids.push(id);
    }

    while !finished(&queue, &ids).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the work never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        queue.backend().status(ids[3]).await.expect("status"),
        Some(TaskStatus::Failed)
    );

    let want: &[(&str, f64)] = &[
        (
            r#"sitq_tasks_enqueued_total{queue="default",task="succeeds"}"#,
            3.0,
        ),
        (
            r#"sitq_tasks_enqueued_total{queue="default",task="fails"}"#,
            1.0,
        ),
        (
            r#"sitq_tasks_started_total{queue="default",task="succeeds"}"#,
            3.0,
        ),
        (
            r#"sitq_tasks_started_total{queue="default",task="fails"}"#,
            3.0,
        ),
        (
            r#"sitq_tasks_completed_total{outcome="succeeded",queue="default",task="succeeds"}"#,
            3.0,
        ),
        (
            r#"sitq_tasks_completed_total{outcome="retried",queue="default",task="fails"}"#,
            2.0,
        ),
        (
            r#"sitq_tasks_completed_total{outcome="failed",queue="default",task="fails"}"#,
            1.0,
        ),
        (
            r#"sitq_task_duration_seconds_count{queue="default",task="succeeds"}"#,
            3.0,
        ),
        (
            r#"sitq_task_duration_seconds_count{queue="default",task="fails"}"#,
            3.0,
        ),
        (
            r#"sitq_task_queue_wait_seconds_count{queue="default",task="succeeds"}"#,
            3.0,
        ),
        (
            r#"sitq_task_queue_wait_seconds_count{queue="default",task="fails"}"#,
            3.0,
        ),
        (r#"sitq_worker_slots{state="busy"}"#, 0.0),
        (r#"sitq_worker_slots{state="idle"}"#, 2.0),
    ];
    // Gauges settle a moment after the last outcome is stored: scrape
    // until they match (bounded), then every figure must be exact.
    let mut last = BTreeMap::new();
    let matches = |samples: &BTreeMap<String, f64>| {
        want.iter()
            .all(|(key, value)| samples.get(*key) == Some(value))
    };
    while !matches(&last) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the scrape never showed the figures; want {want:#?}, last scrape {last:#?}"
        );
        last = samples(&scrape(addr).await.expect("scrape"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // No other outcome was counted.
    let outcomes: Vec<_> = last
        .keys()
        .filter(|key| key.starts_with("sitq_tasks_completed_total{"))
        .collect();
    assert_eq!(outcomes.len(), 3, "{outcomes:#?}");
    // The histograms have buckets (not summaries).
    assert!(
        last.contains_key(
            r#"sitq_task_duration_seconds_bucket{le="0.005",queue="default",task="succeeds"}"#
        ),
        "{last:#?}"
    );

    // The queue gauges, read from the database every 5 s, once the
    // backend has statistics (sitq-sqlite gains them in this issue).
    if queue.backend().stats().await.is_ok() {
        let depth: &[(&str, f64)] = &[
            (
                r#"sitq_queue_depth{queue="default",status="succeeded"}"#,
                3.0,
            ),
            (r#"sitq_queue_depth{queue="default",status="failed"}"#, 1.0),
            (r#"sitq_queue_depth{queue="default",status="pending"}"#, 0.0),
            (r#"sitq_queue_oldest_pending_seconds{queue="default"}"#, 0.0),
        ];
        while !depth
            .iter()
            .all(|(key, value)| last.get(*key) == Some(value))
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue gauges never showed {depth:#?}; last scrape {last:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            last = samples(&scrape(addr).await.expect("scrape"));
        }
    } else {
        eprintln!("skipped the queue gauges: this backend has no statistics yet");
    }

    // One exporter per process: a second is a clear error.
    match exporting_worker(&queue, free_addr()).run().await {
        Err(Error::Config(message)) => {
            assert!(message.contains("recorder"), "{message}");
        }
        other => panic!("expected Error::Config for a second exporter, got {other:?}"),
    }

    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
}

//! Size limits, on SQLite and PostgreSQL: a result over
//! `ConnectOptions::max_result_bytes` fails its attempt with a clear error
//! and is not retried (the next run would make the same result); a task's
//! 20 MiB error is stored cut to `MAX_ERROR_BYTES`, and its log line cut to
//! `MAX_LOGGED_ERROR_BYTES`. Its own test binary: it installs a global
//! tracing subscriber to read the log lines.

mod support;

use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};
use std::time::Duration;

use sitq::{
    ConnectOptions, Error, MAX_ERROR_BYTES, MAX_LOGGED_ERROR_BYTES, Queue, TaskStatus, Worker,
};
use tracing_subscriber::fmt::MakeWriter;

const WAIT: Duration = Duration::from_secs(60);
const RESULT_LIMIT: usize = 16 * 1024;

/// Returns `bytes` bytes of text.
#[sitq::task(name = "limits::sized_result", max_attempts = 3)]
async fn sized_result(bytes: usize) -> String {
    "x".repeat(bytes)
}

/// Fails with `marker` and 20 MiB more.
#[sitq::task(name = "limits::huge_error", max_attempts = 1)]
async fn huge_error(marker: String) -> Result<(), String> {
    Err(format!("{marker} {}", "e".repeat(20 << 20)))
}

/// Log output, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

/// The log of this test binary.
fn log() -> &'static Lines {
    static LINES: OnceLock<Lines> = OnceLock::new();
    static INIT: Once = Once::new();
    let lines = LINES.get_or_init(Lines::default);
    INIT.call_once(|| {
        tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .with_ansi(false)
            .init();
    });
    lines
}

async fn limits(url: &str, marker: &str) {
    let log = log();
    let queue = Queue::connect_with(url, ConnectOptions::new().max_result_bytes(RESULT_LIMIT))
        .await
        .expect("connect");
    let worker = Worker::new(queue.clone())
        .handle_signals(false)
        .concurrency(2);
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let fits = sized_result::enqueue(&queue, 1000).await.expect("enqueue");
    assert_eq!(
        fits.wait_timeout(WAIT).await.expect("a small result").len(),
        1000
    );

    let over = sized_result::enqueue(&queue, 4 * RESULT_LIMIT)
        .await
        .expect("enqueue");
    match over.wait_timeout(WAIT).await {
        Err(Error::TaskFailed {
            attempts, message, ..
        }) => {
            assert_eq!(attempts, 1, "not retried");
            assert!(
                message.contains(&format!("over the limit of {RESULT_LIMIT} bytes"))
                    && message.contains("max_result_bytes"),
                "{message}"
            );
        }
        other => panic!("expected the oversized result to fail the task, got {other:?}"),
    }
    let record = queue.get(over.id()).await.expect("kept");
    assert_eq!((record.status, record.result), (TaskStatus::Failed, None));

    let huge = huge_error::enqueue(&queue, marker.to_owned())
        .await
        .expect("enqueue");
    assert!(huge.wait_timeout(WAIT).await.is_err());
    let record = queue.get(huge.id()).await.expect("kept");
    let stored = record.failure.expect("its failure").message;
    assert!(stored.starts_with(marker), "{}", &stored[..80]);
    assert!(
        stored.len() <= MAX_ERROR_BYTES + 64,
        "stored {} bytes",
        stored.len()
    );
    assert!(
        stored.ends_with("bytes in all]"),
        "{}",
        &stored[stored.len() - 80..]
    );
    for failure in queue.failures(huge.id()).await.expect("history") {
        assert!(failure.message.len() <= MAX_ERROR_BYTES + 64);
    }

    stop.shutdown().await;
    tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker stops")
        .expect("join")
        .expect("the worker ran");
    queue.close().await;
    let text =
        String::from_utf8_lossy(&log.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned();
    let lines: Vec<&str> = text.lines().filter(|line| line.contains(marker)).collect();
    assert!(!lines.is_empty(), "the failure is logged");
    for line in lines {
        assert!(
            line.len() <= MAX_LOGGED_ERROR_BYTES + 1024,
            "a log line of {} bytes",
            line.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_sqlite() {
    let url = support::sqlite_url("limits.db");
    limits(&url, "sqlite-marker-7c1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_on_postgres() {
    let Some(db) = support::TestDb::create("limits").await else {
        return;
    };
    limits(&db.url, "postgres-marker-9d2").await;
    db.drop().await;
}

//! A task running in a worker PROCESS is cancelled from this (the parent)
//! process: its context is told, the attempt ends `cancelled`, and a wait
//! here sees it, within a bound. On SQLite the worker learns of the request
//! through the signal file (else its once-a-second check); on PostgreSQL
//! through `NOTIFY`. The latency from `cancel` to the wait returning is
//! printed.
//!
//! The worker processes are this test binary re-run with `child_worker` as
//! the only test and the database URL in the environment.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sitq::{
    CancelOutcome, CancelRequest, ConnectOptions, Context, Error, Queue, TaskStatus, Worker,
};

/// Writes `marker` when it starts, then waits for its cancellation and
/// writes `marker.cancelled`; stops with an error (never returns otherwise).
#[sitq::task]
async fn linger(ctx: Context, marker: String) -> Result<u32, std::io::Error> {
    std::fs::write(&marker, b"started")?;
    tokio::select! {
        () = ctx.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(3600)) => return Ok(1),
    }
    std::fs::write(format!("{marker}.cancelled"), b"cancelled")?;
    Err(std::io::Error::other("stopped: cancelled"))
}

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const WAIT: Duration = Duration::from_secs(60);
/// The most a cross-process cancel may take, end to end, on SQLite (the
/// worker checks its tasks at least once a second) and on PostgreSQL.
const SQLITE_BOUND: Duration = Duration::from_millis(2000);
#[cfg(feature = "postgres")]
const POSTGRES_BOUND: Duration = Duration::from_millis(1000);
/// No polling: only wake-ups (and the worker's own cancel check) move things.
const NEVER: Duration = Duration::from_secs(3600);

/// Not a test on its own: the body of a worker process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let options = ConnectOptions::new().poll_interval(NEVER);
            let queue = Queue::connect_with(&url, options).await?;
            Worker::new(queue)
                .concurrency(2)
                .cancel_grace(Duration::from_secs(30))
                .run()
                .await
        })
        .expect("child worker failed");
}

/// A worker process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(url: &str) -> WorkerProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn worker process");
        WorkerProcess(child)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn until_exists(path: &Path, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !path.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Cancels a task running in another process, three times; returns the
/// slowest latency from `cancel` to the wait's `Error::Cancelled`.
async fn cancel_in_another_process(url: &str, backend: &str, bound: Duration) {
    let options = ConnectOptions::new().poll_interval(NEVER);
    let queue = Queue::connect_with(url, options).await.expect("connect");
    let _worker = WorkerProcess::spawn(url);
    let mut latencies = Vec::new();
    for round in 0..3 {
        let marker = support::temp_path(&format!("linger-{round}"));
        let handle = linger::enqueue(&queue, marker.display().to_string())
            .await
            .expect("enqueue");
        until_exists(&marker, "the worker process starts the task").await;
        let asked = tokio::time::Instant::now();
        let outcome = handle
            .cancel_with(CancelRequest::new().by("parent").reason("test"))
            .await
            .expect("cancel");
        assert_eq!(outcome, CancelOutcome::Requested);
        match handle.wait_timeout(WAIT).await {
            Err(Error::Cancelled { by, reason, .. }) => {
                assert_eq!((by.as_str(), reason.as_deref()), ("parent", Some("test")));
            }
            other => panic!("expected Error::Cancelled, got {other:?}"),
        }
        latencies.push(asked.elapsed());
        let cancelled = PathBuf::from(format!("{}.cancelled", marker.display()));
        assert!(cancelled.exists(), "the task's context was cancelled");
        let record = queue.get(handle.id()).await.expect("record");
        assert_eq!((record.status, record.attempts), (TaskStatus::Cancelled, 1));
        let _ = std::fs::remove_file(&marker);
        let _ = std::fs::remove_file(&cancelled);
    }
    eprintln!("{backend}: cross-process cancel latencies (cancel -> wait returns): {latencies:?}");
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest <= bound,
        "{backend}: a cancel took {slowest:?}, over the bound of {bound:?} ({latencies:?})"
    );
}

#[tokio::test]
async fn sqlite_cancel_reaches_a_task_in_another_process() {
    let url = format!("sqlite://{}", support::temp_path("cancel.db").display());
    cancel_in_another_process(&url, "sqlite", SQLITE_BOUND).await;
}

/// The same on PostgreSQL, in a fresh database on the server named by
/// `SITQ_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_cancel_reaches_a_task_in_another_process() {
    let Some(db) = support::TestDb::create("cancel").await else {
        return;
    };
    cancel_in_another_process(&db.url, "postgres", POSTGRES_BOUND).await;
    db.drop().await;
}

//! Queue control across worker processes: a pause stops every process from
//! claiming the queue, and global concurrency and rate limits hold across
//! processes. On SQLite, and on PostgreSQL with the `postgres` feature and a
//! server named by `SITQ_TEST_POSTGRES_URL`.
//!
//! The worker processes are this test binary re-run with `child_worker` as
//! the only test and the database URL in the environment. Task bodies
//! append their start and end instants (system clock, microseconds) to a
//! file; the checks read it, and the claim instants the database recorded,
//! afterwards.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sitq::{EnqueueOptions, Queue, QueueLimits, TaskHandle, TaskStatus, Worker};

/// Sleeps `ms`, then appends "start end" (unix microseconds) as one line to
/// `log` (O_APPEND: a small write is atomic).
#[sitq::task]
async fn span(log: String, ms: u64) -> Result<(), std::io::Error> {
    let started = Utc::now().timestamp_micros();
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let ended = Utc::now().timestamp_micros();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?;
    file.write_all(format!("{started} {ended}\n").as_bytes())
}

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const CHILD_PREFETCH: &str = "SITQ_TEST_CHILD_PREFETCH";
const WAIT: Duration = Duration::from_secs(120);

/// Not a test on its own: the body of a worker process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let prefetch = std::env::var(CHILD_PREFETCH)
        .ok()
        .and_then(|n| n.parse().ok());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let queue = Queue::connect(&url).await?;
            let mut worker = Worker::new(queue).concurrency(8);
            if let Some(prefetch) = prefetch {
                worker = worker.prefetch(prefetch);
            }
            worker.run().await
        })
        .expect("child worker failed");
}

/// A worker process (every queue, 8 at once), killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(url: &str, prefetch: Option<usize>) -> WorkerProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let mut command = Command::new(exe);
        command
            .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .stdout(Stdio::null());
        if let Some(prefetch) = prefetch {
            command.env(CHILD_PREFETCH, prefetch.to_string());
        }
        WorkerProcess(command.spawn().expect("spawn worker process"))
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Enqueues `count` spans of `ms` on queue `name`, logging to `log`.
async fn spans_on(
    queue: &Queue,
    name: &str,
    log: &Path,
    count: usize,
    ms: u64,
) -> Vec<TaskHandle<()>> {
    let log = log.display().to_string();
    queue
        .enqueue_many_with(
            (0..count).map(|_| span {
                log: log.clone(),
                ms,
            }),
            EnqueueOptions::new().queue(name),
        )
        .await
        .expect("enqueue")
}

async fn wait_all(handles: &[TaskHandle<()>]) {
    for handle in handles {
        handle.wait_timeout(WAIT).await.expect("task result");
    }
}

/// The (start, end) lines of a span log.
fn read_spans(log: &Path) -> Vec<(i64, i64)> {
    let text = std::fs::read_to_string(log).expect("read the span log");
    text.lines()
        .map(|line| {
            let (start, end) = line.split_once(' ').expect("two numbers");
            (start.parse().expect("start"), end.parse().expect("end"))
        })
        .collect()
}

fn max_overlap(spans: &[(i64, i64)]) -> usize {
    let mut edges: Vec<(i64, i32)> = spans
        .iter()
        .flat_map(|(start, end)| [(*start, 1), (*end, -1)])
        .collect();
    // At equal instants an end comes first: touching spans do not overlap.
    edges.sort();
    let mut running = 0;
    let mut most = 0;
    for (_, step) in edges {
        running += step;
        most = most.max(running);
    }
    usize::try_from(most).unwrap_or(0)
}

/// Polls `check` until it holds, failing with `what` after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn statuses(queue: &Queue, handles: &[TaskHandle<()>]) -> Vec<TaskStatus> {
    let mut statuses = Vec::with_capacity(handles.len());
    for handle in handles {
        statuses.push(queue.status(handle.id()).await.expect("status"));
    }
    statuses
}

/// Two worker processes busy with a queue; once `pause` returns neither
/// claims another of its tasks (a task of another queue still runs), the
/// claimed ones finish, and `resume` lets the rest finish.
async fn pause_stops_every_process(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let log = support::temp_path("pause.log");
    let mail = spans_on(&queue, "mail", &log, 300, 100).await;
    // No prefetch: every claim starts its tasks, so `started_at` is the claim instant.
    let _workers = [
        WorkerProcess::spawn(url, Some(0)),
        WorkerProcess::spawn(url, Some(0)),
    ];
    eventually("both processes to get going", || async {
        let info = queue.queues().await.expect("queues");
        info.iter().any(|q| q.name == "mail" && q.pending <= 280)
    })
    .await;
    queue.pause("mail").await.expect("pause");
    let paused_at = Utc::now();
    let held: Vec<usize> = statuses(&queue, &mail)
        .await
        .iter()
        .enumerate()
        .filter(|(_, status)| **status == TaskStatus::Pending)
        .map(|(i, _)| i)
        .collect();
    assert!(!held.is_empty(), "the pause came too late to test anything");
    eventually("the claimed tasks to finish", || async {
        let info = queue.queues().await.expect("queues");
        info.iter()
            .any(|q| q.name == "mail" && q.paused && q.running == 0)
    })
    .await;
    // The workers still claim: a task of another queue runs.
    let probe_log = support::temp_path("probe.log");
    let probe = spans_on(&queue, "default", &probe_log, 1, 0).await;
    wait_all(&probe).await;
    let _ = std::fs::remove_file(probe_log);
    let after = statuses(&queue, &mail).await;
    for &i in &held {
        assert_eq!(
            after[i],
            TaskStatus::Pending,
            "task {i} was claimed after the pause"
        );
    }
    for handle in &mail {
        let record = queue.get(handle.id()).await.expect("record");
        if let Some(started) = record.started_at {
            assert!(
                started <= paused_at,
                "task {} started at {started}, after the pause returned at {paused_at}",
                handle.id()
            );
        }
    }
    queue.resume("mail").await.expect("resume");
    wait_all(&mail).await;
    let _ = std::fs::remove_file(log);
}

/// Two worker processes of 8 slots each never run more than the queue's
/// global concurrency limit of its tasks at once.
async fn concurrency_limit_holds_across_processes(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    queue
        .set_queue_limits("mail", QueueLimits::new().concurrency(3))
        .await
        .expect("limits");
    let log = support::temp_path("concurrency.log");
    let mail = spans_on(&queue, "mail", &log, 40, 40).await;
    let _workers = [
        WorkerProcess::spawn(url, None),
        WorkerProcess::spawn(url, None),
    ];
    wait_all(&mail).await;
    let spans = read_spans(&log);
    assert_eq!(spans.len(), 40);
    let overlap = max_overlap(&spans);
    assert!(overlap <= 3, "{overlap} tasks ran at once; the limit is 3");
    let _ = std::fs::remove_file(log);
}

/// Two worker processes never start more of a rate-limited queue's tasks
/// than the limit within any window of its period (by the claim instants
/// the database recorded).
async fn rate_limit_holds_across_processes(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let period = Duration::from_millis(400);
    queue
        .set_queue_limits("mail", QueueLimits::new().rate(3, period))
        .await
        .expect("limits");
    let log = support::temp_path("rate.log");
    let mail = spans_on(&queue, "mail", &log, 15, 1).await;
    let _workers = [
        WorkerProcess::spawn(url, None),
        WorkerProcess::spawn(url, None),
    ];
    wait_all(&mail).await;
    let mut started: Vec<DateTime<Utc>> = Vec::new();
    for handle in &mail {
        let record = queue.get(handle.id()).await.expect("record");
        started.push(record.started_at.expect("started"));
    }
    started.sort();
    let window = chrono::Duration::from_std(period).expect("period");
    for (i, from) in started.iter().enumerate() {
        let within = started[i..]
            .iter()
            .take_while(|at| **at < *from + window)
            .count();
        assert!(
            within <= 3,
            "{within} starts within {period:?} from {from}: {started:?}"
        );
    }
    let _ = std::fs::remove_file(log);
}

/// A fresh SQLite file, deleted with its companions when dropped.
struct SqliteFile(PathBuf);

impl SqliteFile {
    fn new(name: &str) -> SqliteFile {
        SqliteFile(support::temp_path(name))
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-sitq"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test]
async fn sqlite_pause_stops_every_process() {
    let file = SqliteFile::new("pause.db");
    pause_stops_every_process(&file.url()).await;
}

#[tokio::test]
async fn sqlite_concurrency_limit_holds_across_processes() {
    let file = SqliteFile::new("concurrency.db");
    concurrency_limit_holds_across_processes(&file.url()).await;
}

#[tokio::test]
async fn sqlite_rate_limit_holds_across_processes() {
    let file = SqliteFile::new("rate.db");
    rate_limit_holds_across_processes(&file.url()).await;
}

/// The same on PostgreSQL, one fresh database per test on the server named
/// by `SITQ_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {

    use crate::support::TestDb;

    #[tokio::test]
    async fn pause_stops_every_process() {
        let Some(db) = TestDb::create("pause").await else {
            return;
        };
        super::pause_stops_every_process(&db.url).await;
        db.drop().await;
    }

    #[tokio::test]
    async fn concurrency_limit_holds_across_processes() {
        let Some(db) = TestDb::create("concurrency").await else {
            return;
        };
        super::concurrency_limit_holds_across_processes(&db.url).await;
        db.drop().await;
    }

    #[tokio::test]
    async fn rate_limit_holds_across_processes() {
        let Some(db) = TestDb::create("rate").await else {
            return;
        };
        super::rate_limit_holds_across_processes(&db.url).await;
        db.drop().await;
    }
}

//! Worker processes sharing one database: each task runs exactly once, and a
//! task whose worker is killed with SIGKILL is completed by another worker.
//! On SQLite, and on PostgreSQL with the `postgres` feature and a server
//! named by `SITQ_TEST_POSTGRES_URL`.
//!
//! The worker processes are this test binary re-run with `child_worker` as
//! the only test and the database URL in the environment.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sitq::{Queue, TaskStatus, Worker};

/// Appends `index` as one line to the file `log` (O_APPEND: atomic small writes).
#[sitq::task]
async fn tally(log: String, index: u32) -> Result<(), std::io::Error> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)?;
    file.write_all(format!("{index}\n").as_bytes())
}

/// The first run creates `marker` and hangs; later runs return 7.
#[sitq::task]
async fn hang_once(marker: String) -> u32 {
    if Path::new(&marker).exists() {
        return 7;
    }
    std::fs::write(&marker, b"started").ok();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    0
}

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const CHILD_LEASE_MS: &str = "SITQ_TEST_CHILD_LEASE_MS";
const WAIT: Duration = Duration::from_secs(120);

/// Not a test on its own: the body of a worker process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let lease = std::env::var(CHILD_LEASE_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_millis);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let queue = Queue::connect(&url).await?;
            Worker::new(queue).concurrency(8).lease(lease).run().await
        })
        .expect("child worker failed");
}

/// A worker process, killed when dropped.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn spawn(url: &str, lease: Duration) -> WorkerProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .env(CHILD_LEASE_MS, lease.as_millis().to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn worker process");
        WorkerProcess(child)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn each_task_runs_once(url: &str, workers: usize, tasks: u32) {
    let queue = Queue::connect(url).await.expect("connect");
    let log = support::temp_path("tally.log");
    let log_str = log.display().to_string();
    let handles = queue
        .enqueue_many((0..tasks).map(|index| tally {
            log: log_str.clone(),
            index,
        }))
        .await
        .expect("enqueue");
    let mut processes: Vec<_> = (0..workers)
        .map(|_| WorkerProcess::spawn(url, Duration::from_secs(30)))
        .collect();
    for handle in &handles {
        handle.wait_timeout(WAIT).await.expect("task result");
    }
    processes.iter_mut().for_each(WorkerProcess::kill);

    let text = std::fs::read_to_string(&log).expect("read log");
    let mut seen = vec![0u32; tasks as usize];
    for line in text.lines() {
        let index: usize = line.parse().expect("log line");
        seen[index] += 1;
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, n)| **n != 1).collect();
    assert!(
        wrong.is_empty(),
        "tasks not run exactly once (index, runs): {wrong:?}"
    );
    for handle in handles.iter().step_by(97) {
        let record = queue.get(handle.id()).await.expect("record");
        assert_eq!((record.status, record.attempts), (TaskStatus::Succeeded, 1));
    }
    let _ = std::fs::remove_file(log);
}

async fn killed_worker_task_completes_elsewhere(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let marker = support::temp_path("marker");
    let handle = hang_once::enqueue(&queue, marker.display().to_string())
        .await
        .expect("enqueue");
    let lease = Duration::from_millis(1000);
    let mut first = WorkerProcess::spawn(url, lease);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !marker.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first worker never started the task"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    assert_eq!(
        queue.status(handle.id()).await.expect("status"),
        TaskStatus::Running
    );
    let _second = WorkerProcess::spawn(url, lease);
    assert_eq!(handle.wait_timeout(WAIT).await.expect("result"), 7);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.attempts, 2, "{record:?}");
    let _ = std::fs::remove_file(marker);
}

/// Sleeps `ms`, then returns it.
#[sitq::task]
async fn nap(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

/// SIGTERM: the worker stops claiming, finishes the running task, stores its
/// result and exits successfully.
async fn sigterm_drains_then_exits(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let handle = nap::enqueue(&queue, 500).await.expect("enqueue");
    let mut worker = WorkerProcess::spawn(url, Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + WAIT;
    while queue.status(handle.id()).await.expect("status") != TaskStatus::Running {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never started the task"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = worker.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -TERM {pid} failed");
    let exit = tokio::task::spawn_blocking(move || {
        let status = worker.0.wait();
        (worker, status)
    })
    .await
    .expect("join");
    let status = exit.1.expect("wait for the worker");
    assert!(
        status.success(),
        "the worker exited with {status} after SIGTERM"
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        (record.status, record.attempts),
        (TaskStatus::Succeeded, 1),
        "{record:?}"
    );
}

fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}", support::temp_path(name).display())
}

#[tokio::test]
async fn sqlite_two_worker_processes_run_each_task_once() {
    each_task_runs_once(&sqlite_url("once.db"), 2, 2000).await;
}

#[tokio::test]
async fn sqlite_sigterm_finishes_the_running_task_then_exits() {
    sigterm_drains_then_exits(&sqlite_url("sigterm.db")).await;
}

#[tokio::test]
async fn sqlite_killed_worker_task_is_completed_by_another() {
    killed_worker_task_completes_elsewhere(&sqlite_url("killed.db")).await;
}

/// The same on PostgreSQL, one fresh database per test on the server named
/// by `SITQ_TEST_POSTGRES_URL`.
#[cfg(feature = "postgres")]
mod postgres {

    use super::{each_task_runs_once, killed_worker_task_completes_elsewhere};

    use crate::support::TestDb;

    #[tokio::test]
    async fn three_worker_processes_run_each_task_once() {
        let Some(db) = TestDb::create("once").await else {
            return;
        };
        each_task_runs_once(&db.url, 3, 3000).await;
        db.drop().await;
    }

    #[tokio::test]
    async fn killed_worker_task_is_completed_by_another() {
        let Some(db) = TestDb::create("killed").await else {
            return;
        };
        killed_worker_task_completes_elsewhere(&db.url).await;
        db.drop().await;
    }
}

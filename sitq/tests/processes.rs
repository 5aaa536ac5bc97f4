//! Worker processes sharing one database: each task runs exactly once, and a
//! task whose worker is killed with SIGKILL is completed by another worker.
//!
//! The worker processes are this test binary re-run with `child_worker` as
//! the only test and the database URL in the environment.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sitq::{Queue, TaskStatus, Worker};

/// Appends `index` as one line to the file `log` (O_APPEND: atomic small writes).
#[sitq::task]
async fn tally(log: String, index: u32) -> Result<(), std::io::Error> {
    let mut file = std::fs::OpenOptions::new().append(true).create(true).open(log)?;
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

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("sitq-{name}-{}-{nanos}", std::process::id()))
}

async fn each_task_runs_once(url: &str, workers: usize, tasks: u32) {
    let queue = Queue::connect(url).await.expect("connect");
    let log = temp_path("tally.log");
    let log_str = log.display().to_string();
    let handles = queue
        .enqueue_many((0..tasks).map(|index| tally { log: log_str.clone(), index }))
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
    assert!(wrong.is_empty(), "tasks not run exactly once (index, runs): {wrong:?}");
    for handle in handles.iter().step_by(97) {
        let record = queue.get(handle.id()).await.expect("record");
        assert_eq!((record.status, record.attempts), (TaskStatus::Succeeded, 1));
    }
    let _ = std::fs::remove_file(log);
}

async fn killed_worker_task_completes_elsewhere(url: &str) {
    let queue = Queue::connect(url).await.expect("connect");
    let marker = temp_path("marker");
    let handle = hang_once::enqueue(&queue, marker.display().to_string())
        .await
        .expect("enqueue");
    let lease = Duration::from_millis(1000);
    let mut first = WorkerProcess::spawn(url, lease);
    let deadline = tokio::time::Instant::now() + WAIT;
    while !marker.exists() {
        assert!(tokio::time::Instant::now() < deadline, "the first worker never started the task");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill();
    assert_eq!(queue.status(handle.id()).await.expect("status"), TaskStatus::Running);
    let _second = WorkerProcess::spawn(url, lease);
    assert_eq!(handle.wait_timeout(WAIT).await.expect("result"), 7);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.attempts, 2, "{record:?}");
    let _ = std::fs::remove_file(marker);
}

fn sqlite_url(name: &str) -> String {
    format!("sqlite://{}", temp_path(name).display())
}

#[tokio::test]
async fn sqlite_two_worker_processes_run_each_task_once() {
    each_task_runs_once(&sqlite_url("once.db"), 2, 2000).await;
}

#[tokio::test]
async fn sqlite_killed_worker_task_is_completed_by_another() {
    killed_worker_task_completes_elsewhere(&sqlite_url("killed.db")).await;
}

//! SQLite shared by several processes: many connecting to a new file at
//! once all succeed, and a worker or waiter in another process is woken by
//! a commit without polling (both run with an hour-long poll interval here,
//! so only the wake-up can get the task done within the bound).
//!
//! The other processes are this test binary re-run with `child` as the only
//! test, told what to do through the environment.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sitq::{ConnectOptions, Queue, TaskStatus, Worker};

/// Doubles `x`.
#[sitq::task]
async fn double(x: u64) -> u64 {
    x * 2
}

const CHILD_URL: &str = "SITQ_TEST_CHILD_URL";
const CHILD_MODE: &str = "SITQ_TEST_CHILD_MODE";
const WAIT: Duration = Duration::from_secs(30);
const NEVER: Duration = Duration::from_secs(3600);

/// Not a test on its own: the body of a child process, run only when the
/// parent test sets `SITQ_TEST_CHILD_URL`.
#[test]
fn child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let mode = std::env::var(CHILD_MODE).unwrap_or_default();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime
        .block_on(async {
            let options = ConnectOptions::new().poll_interval(NEVER);
            let queue = Queue::connect_with(&url, options).await?;
            match mode.as_str() {
                "enqueue" => double::enqueue(&queue, 1).await.map(drop),
                _ => Worker::new(queue).concurrency(2).run().await,
            }
        })
        .expect("child failed");
}

/// A child process, killed when dropped.
struct ChildProcess(Child);

impl ChildProcess {
    fn spawn(url: &str, mode: &str) -> ChildProcess {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new(exe)
            .args(["child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_URL, url)
            .env(CHILD_MODE, mode)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn child process");
        ChildProcess(child)
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn processes_connecting_to_a_new_file_at_once_all_succeed() {
    let url = format!("sqlite://{}", support::temp_path("connects.db").display());
    let children: Vec<_> = (0..6)
        .map(|_| ChildProcess::spawn(&url, "enqueue"))
        .collect();
    for mut child in children {
        let status = tokio::task::spawn_blocking(move || child.0.wait())
            .await
            .expect("join")
            .expect("wait for the child");
        assert!(status.success(), "a connecting process failed: {status}");
    }
    let queue = Queue::connect(&url).await.expect("connect");
    for id in 1..=6 {
        assert_eq!(
            queue.status(sitq::TaskId(id)).await.expect("status"),
            TaskStatus::Pending,
            "task {id}"
        );
    }
}

#[tokio::test]
async fn a_worker_in_another_process_is_woken_without_polling() {
    let url = format!("sqlite://{}", support::temp_path("wake.db").display());
    let queue = Queue::connect_with(&url, ConnectOptions::new().poll_interval(NEVER))
        .await
        .expect("connect");
    let _worker = ChildProcess::spawn(&url, "worker");
    // The first task may be found by the worker's first claim; the later
    // ones arrive while it is idle, with nothing but a wake-up to find them.
    for x in 1..=5 {
        let handle = double::enqueue(&queue, x).await.expect("enqueue");
        let doubled = handle
            .wait_timeout(WAIT)
            .await
            .unwrap_or_else(|err| panic!("task {x} was not run within {WAIT:?}: {err}"));
        assert_eq!(doubled, x * 2);
    }
}

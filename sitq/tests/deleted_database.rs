//! The SQLite file deleted under running processes: the process that had it
//! open notices (before its next write or read, and within a worker beat
//! when idle), every call fails with `Error::DatabaseGone` naming the file,
//! a worker stops with that error (a worker process exits non-zero), and no
//! file is created again at the path.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sitq::{Error, Queue, Worker};

use support::ChildTest;

const WAIT: Duration = Duration::from_secs(60);
const CHILD_URL: &str = "SITQ_TEST_DELETED_URL";

/// Adds.
#[sitq::task(name = "deleted::add")]
async fn add(a: i64, b: i64) -> i64 {
    a + b
}

/// The database file and its companions.
fn files(path: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm", "-sitq"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
        .collect()
}

fn delete(path: &Path) {
    for file in files(path) {
        let _ = std::fs::remove_file(file);
    }
}

fn assert_gone(err: &Error, path: &Path) {
    assert!(matches!(err, Error::DatabaseGone { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("was deleted"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_fails_and_the_worker_stops() {
    let path = support::temp_path("deleted.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let before = add::enqueue(&queue, 1, 2).await.expect("enqueue");
    let worker = Worker::new(queue.clone()).handle_signals(false);
    let running = tokio::spawn(worker.run());
    assert_eq!(before.wait_timeout(WAIT).await.expect("ran"), 3);

    delete(&path);
    let enqueued = add::enqueue(&queue, 2, 2)
        .await
        .map(|handle| handle.id())
        .expect_err("refused");
    assert_gone(&enqueued, &path);
    let read = queue.status(before.id()).await.expect_err("refused");
    assert_gone(&read, &path);
    // The worker notices on its own (its registry beat, every second) and
    // stops with the error.
    let stopped = tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker stops")
        .expect("join");
    assert_gone(&stopped.expect_err("the worker's error"), &path);
    queue.close().await;
    for file in files(&path) {
        assert!(!file.exists(), "{} was created again", file.display());
    }
}

/// Only the `-wal` and `-shm` files deleted: this process's commits since
/// the last checkpoint would be seen by no other process, so it refuses to
/// go on the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_only_the_wal_and_shm_files_is_noticed() {
    let path = support::temp_path("deleted-wal.db");
    let queue = Queue::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let before = add::enqueue(&queue, 1, 2).await.expect("enqueue");
    let worker = Worker::new(queue.clone()).handle_signals(false);
    let running = tokio::spawn(worker.run());
    assert_eq!(before.wait_timeout(WAIT).await.expect("ran"), 3);

    for suffix in ["-wal", "-shm"] {
        std::fs::remove_file(format!("{}{suffix}", path.display())).expect("delete");
    }
    let enqueued = add::enqueue(&queue, 2, 2)
        .await
        .map(|handle| handle.id())
        .expect_err("refused");
    assert!(
        matches!(enqueued, Error::DatabaseGone { .. }),
        "{enqueued:?}"
    );
    let text = enqueued.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("had its -wal file deleted"),
        "{text}"
    );
    let stopped = tokio::time::timeout(WAIT, running)
        .await
        .expect("the worker stops")
        .expect("join")
        .expect_err("the worker's error");
    assert!(stopped.is_fatal(), "{stopped:?}");
    queue.close().await;
    delete(&path);
}

/// Not a test on its own: a worker process, run only when the parent test
/// sets `SITQ_TEST_DELETED_URL`; it prints its outcome and exits with 3 on
/// an error.
#[test]
#[allow(clippy::print_stdout)] // the parent reads what the child says
fn child_worker() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outcome = runtime.block_on(async {
        let queue = Queue::connect(&url).await?;
        let worker = Worker::new(queue).handle_signals(false);
        println!("child: running");
        worker.run().await
    });
    match outcome {
        Ok(()) => println!("child: stopped"),
        Err(err) => {
            println!("child: error: {err}");
            std::process::exit(3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_exits_non_zero() {
    let path = support::temp_path("deleted-child.db");
    let url = format!("sqlite://{}", path.display());
    // The file exists before the child opens it.
    Queue::connect(&url).await.expect("create").close().await;
    let mut child = ChildTest::spawn("child_worker", &[(CHILD_URL, url.as_str())]);
    child.line("child: running").await;
    delete(&path);
    let said = child.line("child: error:").await;
    assert!(said.contains("was deleted"), "{said}");
    let status = tokio::time::timeout(WAIT, child.child.wait())
        .await
        .expect("the child exits")
        .expect("wait");
    assert_eq!(status.code(), Some(3), "{status}");
    for file in files(&path) {
        assert!(!file.exists(), "{} was created again", file.display());
    }
}

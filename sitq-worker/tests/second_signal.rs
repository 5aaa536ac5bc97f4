//! A second SIGINT while a worker process drains stops it at once: the
//! first asks for a graceful stop, which would wait for the running task
//! forever; the second makes `run()` return `Error::ForcedShutdown`.
//!
//! The worker process is this test binary re-run with `child_worker` as the
//! only test and a scratch directory in the environment; it reports its
//! progress through marker files there.

#![cfg(all(unix, feature = "testing"))]

#[path = "support/memory.rs"]
mod memory;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memory::{HANG, Memory};
use sitq_core::{ConnectOptions, Error, Queue, Registry};
use sitq_worker::Worker;

const CHILD_DIR: &str = "SITQ_WORKER_TEST_DIR";
const WITHIN: Duration = Duration::from_secs(60);

/// Not a test on its own: the body of the worker process, run only when the
/// parent test sets `SITQ_WORKER_TEST_DIR`.
#[test]
fn child_worker() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(async {
        let memory = Arc::new(Memory::default());
        memory.add(HANG.name, dir.join("started").to_string_lossy().as_bytes());
        let queue = Queue::from_backend(memory, ConnectOptions::new());
        let worker = Worker::new(queue)
            .registry(Registry::from_registrations([&HANG]).expect("registry"))
            .concurrency(1)
            // Only a forced stop can end this drain within the test.
            .shutdown_timeout(Some(Duration::from_secs(3600)));
        let stop = worker.shutdown_handle();
        let draining = dir.join("draining");
        tokio::spawn(async move {
            while !stop.is_requested() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            std::fs::write(draining, b"").expect("write the draining marker");
        });
        worker.run().await
    });
    assert!(
        matches!(result, Err(Error::ForcedShutdown)),
        "expected ForcedShutdown, got {result:?}"
    );
    std::fs::write(dir.join("forced"), b"").expect("write the forced marker");
    // Dropping the runtime would wait for nothing: the attempt was aborted.
}

/// The worker process; killed when dropped.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &Path, what: &str, worker: &mut WorkerProcess) {
    let deadline = Instant::now() + WITHIN;
    while !path.exists() {
        if let Ok(Some(status)) = worker.0.try_wait() {
            panic!("the worker exited with {status} before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn send(signal: &str, worker: &WorkerProcess) {
    let pid = worker.0.id().to_string();
    let sent = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill {signal} {pid} failed");
}

#[test]
fn a_second_sigint_stops_a_draining_worker_at_once() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("sitq-second-signal-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut worker = WorkerProcess(
        Command::new(exe)
            .args(["child_worker", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, &dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the worker process"),
    );
    wait_for_file(&dir.join("started"), "the task to start", &mut worker);

    send("-INT", &worker);
    wait_for_file(&dir.join("draining"), "the graceful stop", &mut worker);
    assert!(
        worker.0.try_wait().expect("try_wait").is_none(),
        "the first SIGINT must drain, not exit: the task is still running"
    );

    let forced_at = Instant::now();
    send("-INT", &worker);
    let deadline = forced_at + WITHIN;
    let status = loop {
        if let Some(status) = worker.0.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker still runs {WITHIN:?} after the second SIGINT"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success(), "the worker process failed: {status}");
    assert!(
        dir.join("forced").exists(),
        "run() did not return ForcedShutdown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

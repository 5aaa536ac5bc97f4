//! The worker against an in-memory backend (feature `testing`, which brings
//! the `async-trait` the backend needs).

use std::sync::Arc;
use std::time::Duration;

use sitq_core::{ConnectOptions, Error, Queue, Registry, TaskStatus};

use super::memory::{HANG, Memory};
use crate::Worker;

const WITHIN: Duration = Duration::from_secs(10);

/// A worker on a fresh in-memory backend running only [`HANG`], with no
/// signal handling and a drain that would wait forever.
fn hanging_worker() -> (Arc<Memory>, Worker) {
    let memory = Arc::new(Memory::default());
    let queue = Queue::from_backend(memory.clone(), ConnectOptions::new());
    let registry = Registry::from_registrations([&HANG]).expect("registry");
    let worker = Worker::new(queue)
        .registry(registry)
        .concurrency(1)
        .handle_signals(false)
        .shutdown_timeout(None);
    (memory, worker)
}

async fn status_becomes(memory: &Memory, id: sitq_core::TaskId, want: TaskStatus) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while memory.status_of(id) != Some(want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {id} never became {want}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::test]
async fn force_stops_a_drain_at_once() {
    let (memory, worker) = hanging_worker();
    let id = memory.add(HANG.name, b"");
    let stop = worker.shutdown_handle();
    let mut run = tokio::spawn(worker.run());
    status_becomes(&memory, id, TaskStatus::Running).await;

    stop.request();
    // The drain waits for the task, which never ends.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut run)
            .await
            .is_err(),
        "a graceful stop must wait for the running task"
    );

    stop.force();
    let result = tokio::time::timeout(WITHIN, run)
        .await
        .expect("run() must return promptly once forced")
        .expect("the worker task");
    assert!(
        matches!(result, Err(Error::ForcedShutdown)),
        "expected ForcedShutdown, got {result:?}"
    );
    tokio::time::timeout(WITHIN, stop.stopped())
        .await
        .expect("stopped() once run() returned");
    // Abandoned, not completed: its lease decides what happens next.
    assert_eq!(memory.status_of(id), Some(TaskStatus::Running));
}

#[tokio::test]
async fn force_without_a_request_first_stops_too() {
    let (memory, worker) = hanging_worker();
    let id = memory.add(HANG.name, b"");
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    status_becomes(&memory, id, TaskStatus::Running).await;
    stop.force();
    let result = tokio::time::timeout(WITHIN, run)
        .await
        .expect("run() must return promptly once forced")
        .expect("the worker task");
    assert!(matches!(result, Err(Error::ForcedShutdown)), "{result:?}");
    assert!(stop.is_requested() && stop.is_forced());
}

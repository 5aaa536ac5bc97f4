//! The worker against an in-memory backend (feature `testing`, which brings
//! the `async-trait` the backend needs).

mod operations;

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

/// A task that is due but that no claim of this worker takes (here: a name
/// it does not run; likewise a rate-limited task while no slot is free)
/// makes the worker wait for a signal or its poll interval between claims,
/// never claim again at once.
#[tokio::test]
async fn an_unclaimable_due_task_does_not_make_the_worker_spin() {
    let (memory, worker) = hanging_worker();
    memory.add("a task this worker does not run", b"");
    memory
        .due_now
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    // An observation window, not a synchronisation: the memory backend's
    // poll interval is 20 ms, so about 15 claims fit in it; a worker that
    // claimed again at once would make thousands.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claims = memory.claims.load(std::sync::atomic::Ordering::Relaxed);
    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
    assert!(claims <= 60, "{claims} claims in 300 ms: the worker spins");
}

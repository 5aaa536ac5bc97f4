//! The worker registry, drain requests and scaling, against the in-memory
//! backend.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sitq_core::{Backend, ConnectOptions, Queue, Registry, TaskStatus, WORKER_TTL, WorkerBeat};

use super::super::memory::{GATED, Gate, Memory};
use super::super::scaling::ScaleTiming;
use super::WITHIN;
use crate::Worker;

/// A worker on a fresh in-memory backend running only [`GATED`], with no
/// signal handling.
fn gated_worker() -> (Arc<Memory>, Worker) {
    let memory = Arc::new(Memory::default());
    let queue = Queue::from_backend(memory.clone(), ConnectOptions::new());
    let registry = Registry::from_registrations([&GATED]).expect("registry");
    let worker = Worker::new(queue)
        .registry(registry)
        .handle_signals(false)
        .shutdown_timeout(None);
    (memory, worker)
}

/// Waits (bounded) until `done` holds, failing with `what`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn last_beat(memory: &Memory) -> Option<WorkerBeat> {
    memory.beats().last().cloned()
}

#[tokio::test]
async fn registers_before_the_first_claim_beats_and_removes_itself_at_stop() {
    let (memory, mut worker) = gated_worker();
    worker.beat_every = Duration::from_millis(5);
    let worker = worker.concurrency(3).queues(["default", "mail"]);
    let gate = Gate::new("registry");
    let id = memory.add(GATED.name, b"registry");
    let worker_id = worker.id().to_owned();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());

    until("the task runs", || gate.running() == 1).await;
    assert_eq!(
        memory.claims_at_first_beat(),
        Some(0),
        "the first beat comes before the first claim"
    );
    let first = memory.beats().first().cloned().expect("a beat");
    assert_eq!(first.id, worker_id);
    assert_eq!(first.pid, std::process::id());
    assert_eq!(first.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(first.queues, ["default", "mail"]);
    assert_eq!(first.tasks, ["gated"]);
    assert_eq!(first.concurrency, 3);
    assert_eq!(first.ttl, WORKER_TTL);
    assert!(!first.host.is_empty());
    // Later beats tell what runs now.
    until("a beat shows the running task", || {
        last_beat(&memory).is_some_and(|beat| beat.running == 1)
    })
    .await;
    let listed = memory.workers().await.expect("workers");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, worker_id);

    gate.open();
    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
    assert_eq!(memory.status_of(id), Some(TaskStatus::Succeeded));
    assert_eq!(memory.removed(), [worker_id]);
    assert!(memory.workers().await.expect("workers").is_empty());
}

/// A drain request reaches the worker at once through the control signal
/// (its periodic beat is an hour away here): it stops claiming, finishes
/// its running task, gives its reserved claims back, and `run` returns Ok.
#[tokio::test]
async fn a_drain_request_stops_the_worker_gracefully() {
    let (memory, mut worker) = gated_worker();
    worker.beat_every = Duration::from_secs(3600);
    let worker = worker.concurrency(1).prefetch(4);
    let gate = Gate::new("drain");
    let running = memory.add(GATED.name, b"drain");
    let waiting: Vec<_> = (0..3).map(|_| memory.add(GATED.name, b"drain")).collect();
    let worker_id = worker.id().to_owned();
    let stop = worker.shutdown_handle();
    let mut run = tokio::spawn(worker.run());
    until("the first task runs and the rest are reserved", || {
        gate.running() == 1
            && waiting
                .iter()
                .all(|id| memory.status_of(*id) == Some(TaskStatus::Running))
    })
    .await;

    assert!(memory.drain_worker(&worker_id).await.expect("drain"));
    until("the drain turns into a stop request", || {
        stop.is_requested()
    })
    .await;
    // The graceful stop waits for the running task (an observation window,
    // not a synchronisation: it would wait forever).
    assert!(
        tokio::time::timeout(Duration::from_millis(50), &mut run)
            .await
            .is_err(),
        "a drain must wait for the running task"
    );
    gate.open();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops once its task is done")
        .expect("the worker task")
        .expect("a drain is a clean stop");
    assert_eq!(memory.status_of(running), Some(TaskStatus::Succeeded));
    for id in waiting {
        assert_eq!(
            memory.status_of(id),
            Some(TaskStatus::Pending),
            "reserved task {id} goes back to the queue"
        );
    }
    assert_eq!(gate.finished(), 1, "no task started after the drain");
    assert_eq!(memory.removed(), std::slice::from_ref(&worker_id));
    assert!(
        !memory.drain_worker(&worker_id).await.expect("drain"),
        "gone"
    );
}

#[tokio::test]
async fn a_failing_beat_is_logged_and_retried_never_fatal() {
    let (memory, mut worker) = gated_worker();
    worker.beat_every = Duration::from_millis(5);
    memory.fail_beats.store(true, Ordering::Relaxed);
    let gate = Gate::new("failing beats");
    gate.open();
    let id = memory.add(GATED.name, b"failing beats");
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    until("the task ran", || {
        memory.status_of(id) == Some(TaskStatus::Succeeded)
    })
    .await;
    assert!(memory.beats().is_empty());
    memory.fail_beats.store(false, Ordering::Relaxed);
    until("a later beat gets through", || !memory.beats().is_empty()).await;
    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
}

/// With a backlog of tasks that hold their slots, a ranged worker grows
/// to its upper bound and never past it; once idle it shrinks back to the
/// lower one (timings shortened for the test).
#[tokio::test]
async fn a_ranged_worker_grows_under_a_backlog_and_shrinks_when_idle() {
    let (memory, mut worker) = gated_worker();
    worker.beat_every = Duration::from_millis(5);
    worker.scale_timing = ScaleTiming {
        grow_every: Duration::from_millis(1),
        shrink_after: Duration::from_millis(50),
    };
    let worker = worker.concurrency_range(2..=6);
    let gate = Gate::new("scaling");
    let ids: Vec<_> = (0..12)
        .map(|_| memory.add(GATED.name, b"scaling"))
        .collect();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());

    until("the first beat", || !memory.beats().is_empty()).await;
    assert_eq!(
        memory.beats().first().map(|beat| beat.concurrency),
        Some(2),
        "starts at the lower bound"
    );
    until("six tasks run at once", || gate.peak() == 6).await;
    until("a beat reports six slots", || {
        last_beat(&memory).is_some_and(|beat| beat.concurrency == 6 && beat.running == 6)
    })
    .await;
    gate.open();
    until("every task ran", || {
        ids.iter()
            .all(|id| memory.status_of(*id) == Some(TaskStatus::Succeeded))
    })
    .await;
    until("an idle worker shrinks back to two slots", || {
        last_beat(&memory).is_some_and(|beat| beat.concurrency == 2 && beat.running == 0)
    })
    .await;
    assert_eq!(gate.peak(), 6, "never past the upper bound");
    assert!(
        memory
            .beats()
            .iter()
            .all(|beat| (2..=6).contains(&beat.concurrency)),
        "every beat within the bounds"
    );
    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");
}

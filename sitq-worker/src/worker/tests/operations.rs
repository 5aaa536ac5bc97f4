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

/// A drain stored before the worker starts is read by its first beat,
/// before any claim: it stops at once and leaves the queue untouched.
#[tokio::test]
async fn a_drain_stored_before_the_start_stops_it_before_any_claim() {
    let (memory, worker) = gated_worker();
    let id = memory.add(GATED.name, b"never runs");
    let beat = WorkerBeat {
        id: worker.id().to_owned(),
        host: "elsewhere".into(),
        pid: 1,
        version: "0".into(),
        queues: Vec::new(),
        tasks: Vec::new(),
        concurrency: 1,
        running: 0,
        ttl: WORKER_TTL,
    };
    memory.worker_beat(&beat).await.expect("beat");
    assert!(memory.drain_worker(worker.id()).await.expect("drain"));
    let stop = worker.shutdown_handle();
    tokio::time::timeout(WITHIN, worker.run())
        .await
        .expect("the worker stops at once")
        .expect("a drain is a clean stop");
    assert!(stop.is_requested());
    assert_eq!(memory.claims.load(Ordering::Relaxed), 0, "no claim");
    assert_eq!(memory.status_of(id), Some(TaskStatus::Pending));
    assert_eq!(memory.removed(), [beat.id]);
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

#[test]
fn prefetch_follows_the_current_slots() {
    let (_, worker) = gated_worker();
    let ranged = worker.concurrency_range(2..=32);
    assert_eq!((ranged.min_slots, ranged.max_slots), (2, 32));
    assert_eq!(ranged.prefetch_for(2), 4, "twice the slots by default");
    assert_eq!(ranged.prefetch_for(32), 64);
    let ranged = ranged.prefetch(16);
    assert_eq!(ranged.prefetch_for(32), 16, "as set at the upper bound");
    assert_eq!(ranged.prefetch_for(8), 4, "scaled down with the slots");
    assert_eq!(ranged.prefetch_for(1), 1, "rounded up");
    let fixed = ranged.concurrency(8).prefetch(3);
    assert_eq!(fixed.prefetch_for(8), 3, "a fixed size keeps its prefetch");
    assert_eq!(fixed.prefetch(0).prefetch_for(8), 0);
}

#[test]
fn range_bounds_are_sanitised() {
    let (_, worker) = gated_worker();
    let worker = worker.concurrency_range(0..=0);
    assert_eq!((worker.min_slots, worker.max_slots), (1, 1));
    #[allow(clippy::reversed_empty_ranges)]
    let worker = worker.concurrency_range(5..=2);
    assert_eq!((worker.min_slots, worker.max_slots), (5, 5));
    let worker = worker.concurrency(3);
    assert_eq!((worker.min_slots, worker.max_slots), (3, 3));
}

/// Captured log output: a `tracing_subscriber` writer into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The start line names the database, tasks, queues, concurrency and id,
/// and each attempt runs in a `sitq.attempt` span with its fields. The
/// test's runtime has one thread, so the subscriber set for it sees the
/// worker's tasks too.
#[tokio::test]
async fn logs_one_start_line_and_spans_each_attempt() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let (memory, worker) = gated_worker();
    let worker = worker.concurrency_range(2..=4).queues(["default"]);
    let worker_id = worker.id().to_owned();
    let gate = Gate::new("logs");
    gate.open();
    let id = memory.add(GATED.name, b"logs");
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    until("the task ran", || {
        memory.status_of(id) == Some(TaskStatus::Succeeded)
    })
    .await;
    stop.request();
    tokio::time::timeout(WITHIN, run)
        .await
        .expect("the worker stops")
        .expect("the worker task")
        .expect("run");

    let text = captured.text();
    let start: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("worker starting"))
        .collect();
    assert_eq!(start.len(), 1, "one start line in:\n{text}");
    for field in [
        format!("worker.id={worker_id}"),
        "database=memory".to_owned(),
        "tasks=gated".to_owned(),
        "queues=default".to_owned(),
        "concurrency=2..=4".to_owned(),
    ] {
        assert!(start[0].contains(&field), "{field} in {}", start[0]);
    }
    let attempt = format!(
        "sitq.attempt{{task.name=gated task.id={id} attempt=1 queue=default worker.id={worker_id}}}"
    );
    assert!(
        text.lines()
            .any(|line| line.contains(&attempt) && line.contains("succeeded")),
        "the outcome is logged in {attempt} in:\n{text}"
    );
}

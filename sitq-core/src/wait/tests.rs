//! The batched wait service, against an in-memory backend that counts its
//! queries.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::backend::{ClaimRef, ClaimRequest, ClaimedTask, Completion, Finished, NewTask};
use crate::handle::TaskHandle;
use crate::record::{AttemptFailure, Cancellation, TaskFailure, TaskId, TaskRecord, TaskStatus};
use crate::{Backend, ConnectOptions, Error, FailureKind, Queue, Result, Signals, codec};
use crate::{CancelOutcome, CancelRequest};

/// How long any test waits for something before failing.
const WITHIN: Duration = Duration::from_secs(10);
/// A poll interval no test lives to see: only notifications and the
/// first back-off steps cause lookups.
const NEVER: Duration = Duration::from_secs(3600);

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Calls {
    status: usize,
    get: usize,
    finished: usize,
}

/// Tasks in a map; every read is counted.
#[derive(Debug)]
struct Fake {
    signals: Signals,
    poll: Duration,
    tasks: Mutex<HashMap<TaskId, TaskRecord>>,
    calls: Mutex<Calls>,
    fail_lookups: AtomicBool,
}

impl Fake {
    fn new(poll: Duration) -> (Arc<Fake>, Queue) {
        let fake = Arc::new(Fake {
            signals: Signals::new(),
            poll,
            tasks: Mutex::new(HashMap::new()),
            calls: Mutex::new(Calls::default()),
            fail_lookups: AtomicBool::new(false),
        });
        let queue = Queue::from_backend(fake.clone(), ConnectOptions::new());
        (fake, queue)
    }

    fn calls(&self) -> Calls {
        *self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, call: impl FnOnce(&mut Calls)) {
        call(&mut self.calls.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, TaskRecord>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pending task; its handle as `enqueue` would return it.
    fn add(&self, queue: &Queue) -> TaskHandle<i64> {
        let mut tasks = self.tasks();
        let id = TaskId(tasks.len() as i64 + 1);
        let now = Utc::now();
        tasks.insert(
            id,
            TaskRecord {
                id,
                name: "double".into(),
                queue: "default".into(),
                status: TaskStatus::Pending,
                priority: 0,
                attempts: 0,
                max_attempts: 1,
                created_at: now,
                run_at: now,
                started_at: None,
                finished_at: None,
                worker_id: None,
                failure: None,
                payload: Vec::new(),
                result: None,
                snoozes: 0,
                cancellation: None,
            },
        );
        TaskHandle::new(queue.clone(), id)
    }

    /// Stores `id` as succeeded with `value`, telling no one.
    fn succeed_quietly(&self, id: TaskId, value: i64) -> Finished {
        let mut tasks = self.tasks();
        let record = tasks.get_mut(&id).expect("a task of this test");
        record.status = TaskStatus::Succeeded;
        record.attempts = 1;
        record.result = Some(codec::encode(&value, "result").expect("encode"));
        record.finished_at = Some(Utc::now());
        Finished::from(record.clone())
    }
}

/// The outcome a backend would hand over for `id` succeeding with `value`.
fn succeeded(id: TaskId, value: i64) -> Finished {
    Finished {
        id,
        name: "double".into(),
        status: TaskStatus::Succeeded,
        attempts: 1,
        result: Some(codec::encode(&value, "result").expect("encode")),
        failure: None,
    }
}

#[async_trait]
impl Backend for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn signals(&self) -> &Signals {
        &self.signals
    }

    fn poll_interval(&self) -> Duration {
        self.poll
    }

    async fn enqueue(&self, _: Vec<NewTask>) -> Result<Vec<TaskId>> {
        Err(Error::Config("the fake enqueues through Fake::add".into()))
    }

    async fn claim(&self, _: ClaimRequest<'_>) -> Result<Vec<ClaimedTask>> {
        Ok(Vec::new())
    }

    async fn start(&self, _: Vec<ClaimRef>) -> Result<()> {
        Ok(())
    }

    async fn release(&self, _: Vec<ClaimRef>) -> Result<u64> {
        Ok(0)
    }

    async fn next_run_at(&self, _: &[String]) -> Result<Option<DateTime<Utc>>> {
        Ok(None)
    }

    async fn heartbeat(&self, _: &str, _: &[ClaimRef], _: Duration) -> Result<Vec<ClaimRef>> {
        Ok(Vec::new())
    }

    async fn complete(&self, completions: Vec<Completion>) -> Result<Vec<bool>> {
        Ok(vec![false; completions.len()])
    }

    async fn recover_expired(&self) -> Result<u64> {
        Ok(0)
    }

    async fn get(&self, id: TaskId) -> Result<Option<TaskRecord>> {
        self.count(|calls| calls.get += 1);
        Ok(self.tasks().get(&id).cloned())
    }

    async fn status(&self, id: TaskId) -> Result<Option<TaskStatus>> {
        self.count(|calls| calls.status += 1);
        Ok(self.tasks().get(&id).map(|record| record.status))
    }

    async fn finished(&self, ids: &[TaskId]) -> Result<Vec<Finished>> {
        self.count(|calls| calls.finished += 1);
        if self.fail_lookups.load(Ordering::SeqCst) {
            return Err(Error::database(
                "looking up finished tasks",
                "the fake is down",
            ));
        }
        let tasks = self.tasks();
        Ok(ids
            .iter()
            .filter_map(|id| tasks.get(id))
            .filter(|record| record.status.is_finished())
            .cloned()
            .map(Finished::from)
            .collect())
    }

    async fn cancel(&self, id: TaskId, request: &CancelRequest) -> Result<CancelOutcome> {
        let outcome = match self.tasks().get_mut(&id) {
            None => return Err(Error::NotFound(id)),
            Some(record) if record.status == TaskStatus::Pending => {
                record.status = TaskStatus::Cancelled;
                record.cancellation = Some(Cancellation {
                    requested_at: Utc::now(),
                    by: request.get_by().to_owned(),
                    reason: request.get_reason().map(str::to_owned),
                });
                CancelOutcome::Cancelled
            }
            Some(record) => CancelOutcome::AlreadyFinished(record.status),
        };
        if outcome == CancelOutcome::Cancelled {
            self.signals.notify_finished([id]);
        }
        Ok(outcome)
    }

    async fn prune(&self, _: DateTime<Utc>) -> Result<u64> {
        Ok(0)
    }

    async fn close(&self) {}

    async fn cancel_requested(&self, _: &[ClaimRef]) -> Result<Vec<ClaimRef>> {
        Ok(Vec::new())
    }

    async fn retry(&self, id: TaskId) -> Result<()> {
        let mut tasks = self.tasks();
        let record = tasks.get_mut(&id).ok_or(Error::NotFound(id))?;
        if !matches!(record.status, TaskStatus::Failed | TaskStatus::Cancelled) {
            return Err(Error::NotRetryable {
                id,
                status: record.status,
            });
        }
        record.status = TaskStatus::Pending;
        record.attempts = 0;
        record.result = None;
        record.finished_at = None;
        record.cancellation = None;
        drop(tasks);
        self.signals.forget_outcome(id);
        Ok(())
    }

    async fn failures(&self, _: TaskId) -> Result<Vec<AttemptFailure>> {
        Ok(Vec::new())
    }

    async fn register_schedules(
        &self,
        _: Vec<crate::schedule::ScheduleDefinition>,
    ) -> crate::Result<Vec<crate::ScheduleInfo>> {
        Err(crate::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn fire_tick(&self, _: crate::schedule::TickFire) -> crate::Result<Option<TaskId>> {
        Err(crate::Error::Config(
            "this test double has no schedules".into(),
        ))
    }

    async fn schedules(&self) -> crate::Result<Vec<crate::ScheduleInfo>> {
        Ok(Vec::new())
    }

    async fn set_queue_paused(&self, _: &str, _: bool) -> Result<()> {
        Err(Error::Config(
            "the fake backend has no queue settings".into(),
        ))
    }

    async fn set_queue_limits(&self, _: &str, _: crate::QueueLimits) -> Result<()> {
        Err(Error::Config(
            "the fake backend has no queue settings".into(),
        ))
    }

    async fn queues(&self) -> Result<Vec<crate::QueueInfo>> {
        Err(Error::Config(
            "the fake backend has no queue settings".into(),
        ))
    }
}

/// Polls `done` until true, failing after [`WITHIN`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WITHIN, future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Starts `wait()` on each handle; returns once all are registered.
async fn spawn_waits(
    fake: &Fake,
    handles: &[TaskHandle<i64>],
) -> Vec<tokio::task::JoinHandle<Result<i64>>> {
    let waits = handles
        .iter()
        .cloned()
        .map(|handle| tokio::spawn(async move { handle.wait().await }))
        .collect();
    eventually("the waiters to register", || {
        fake.signals.registered_waiters() == handles.len()
    })
    .await;
    waits
}

async fn results(waits: Vec<tokio::task::JoinHandle<Result<i64>>>) -> Vec<i64> {
    let mut values = Vec::new();
    for wait in waits {
        let value = within("a wait", wait)
            .await
            .expect("the wait task")
            .expect("the result");
        values.push(value);
    }
    values
}

#[tokio::test]
async fn in_process_outcomes_need_no_query() {
    let (fake, queue) = Fake::new(NEVER);
    let handles: Vec<_> = (0..100).map(|_| fake.add(&queue)).collect();
    let waits = spawn_waits(&fake, &handles).await;
    // The stored tasks stay pending: only the handed-over outcomes can answer.
    fake.signals
        .notify_outcomes(handles.iter().map(|h| succeeded(h.id(), h.id().0 * 2)));
    let values = results(waits).await;
    let expected: Vec<i64> = handles.iter().map(|h| h.id().0 * 2).collect();
    assert_eq!(values, expected);
    let calls = fake.calls();
    assert_eq!((calls.status, calls.get), (0, 0), "{calls:?}");
    // First checks and the first back-off steps, shared by all 100 waiters.
    assert!(calls.finished < 30, "{calls:?}");
    assert_eq!(fake.signals.registered_waiters(), 0);
}

#[tokio::test]
async fn outcomes_handed_over_before_the_wait_need_no_query() {
    let (fake, queue) = Fake::new(NEVER);
    let handles: Vec<_> = (0..100).map(|_| fake.add(&queue)).collect();
    // The worker ran ahead: every task finished before anyone waited.
    fake.signals
        .notify_outcomes(handles.iter().map(|h| succeeded(h.id(), h.id().0 * 3)));
    for handle in &handles {
        let value: i64 = tokio::time::timeout(WITHIN, handle.wait())
            .await
            .expect("bounded")
            .expect("outcome");
        assert_eq!(value, handle.id().0 * 3);
    }
    let calls = fake.calls();
    assert_eq!(calls, Calls::default(), "no query at all: {calls:?}");
    assert_eq!(fake.signals.registered_waiters(), 0);
}

#[tokio::test]
async fn notified_ids_are_looked_up_in_one_batch() {
    let (fake, queue) = Fake::new(NEVER);
    let handles: Vec<_> = (0..100).map(|_| fake.add(&queue)).collect();
    let waits = spawn_waits(&fake, &handles).await;
    let before = fake.calls();
    for handle in &handles {
        fake.succeed_quietly(handle.id(), 7);
    }
    fake.signals
        .notify_finished(handles.iter().map(TaskHandle::id));
    assert_eq!(results(waits).await, vec![7; 100]);
    let calls = fake.calls();
    // One lookup for the notification (and maybe a back-off poll that was
    // already under way), not one per handle.
    assert!(
        calls.finished - before.finished <= 2,
        "{before:?} -> {calls:?}"
    );
    assert_eq!((calls.status, calls.get), (0, 0), "{calls:?}");
}

#[tokio::test]
async fn a_task_already_finished_costs_one_lookup() {
    let (fake, queue) = Fake::new(NEVER);
    let handle = fake.add(&queue);
    fake.succeed_quietly(handle.id(), 3);
    assert_eq!(within("the wait", handle.wait()).await.expect("result"), 3);
    assert_eq!(
        fake.calls(),
        Calls {
            status: 0,
            get: 0,
            finished: 1
        }
    );
}

#[tokio::test]
async fn a_wait_satisfied_by_polling_leaves_no_waiter() {
    let (fake, queue) = Fake::new(Duration::from_millis(20));
    let handle = fake.add(&queue);
    let waits = spawn_waits(&fake, std::slice::from_ref(&handle)).await;
    // Finished "in another process": nothing notifies this one.
    fake.succeed_quietly(handle.id(), 11);
    assert_eq!(results(waits).await, vec![11]);
    assert_eq!(fake.signals.registered_waiters(), 0);
    let calls = fake.calls();
    assert_eq!((calls.status, calls.get), (0, 0), "{calls:?}");
}

#[tokio::test]
async fn a_timed_out_wait_leaves_no_waiter() {
    let (fake, queue) = Fake::new(Duration::from_millis(5));
    let handle = fake.add(&queue);
    let waited = Duration::from_millis(30);
    match handle.wait_timeout(waited).await {
        Err(Error::WaitTimeout {
            id,
            waited: reported,
            status,
        }) => assert_eq!(
            (id, reported, status),
            (handle.id(), waited, TaskStatus::Pending)
        ),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(fake.signals.registered_waiters(), 0);
    assert_eq!(fake.calls().get, 0);
}

#[tokio::test]
async fn a_dropped_wait_leaves_no_waiter() {
    let (fake, queue) = Fake::new(NEVER);
    let handle = fake.add(&queue);
    let abandoned = tokio::time::timeout(Duration::from_millis(10), handle.wait()).await;
    assert!(abandoned.is_err(), "the task never finishes");
    assert_eq!(fake.signals.registered_waiters(), 0);
}

#[tokio::test]
async fn the_lookup_loop_stops_when_no_one_waits() {
    let (fake, queue) = Fake::new(NEVER);
    let idle = Arc::strong_count(&fake);
    let handle = fake.add(&queue);
    let waits = spawn_waits(&fake, std::slice::from_ref(&handle)).await;
    fake.signals.notify_outcomes([succeeded(handle.id(), 1)]);
    assert_eq!(results(waits).await, vec![1]);
    drop(handle);
    // The loop lets go of the backend once it finds no one waiting.
    eventually("the lookup loop to stop", || {
        Arc::strong_count(&fake) == idle
    })
    .await;
    // And the next waiter starts it again.
    let again = fake.add(&queue);
    fake.succeed_quietly(again.id(), 2);
    assert_eq!(within("the wait", again.wait()).await.expect("result"), 2);
}

#[tokio::test]
async fn a_stored_id_of_no_task_is_not_found_at_once() {
    let (fake, queue) = Fake::new(NEVER);
    let handle = queue.handle::<i64>(TaskId(404));
    match within("the wait", handle.wait()).await {
        Err(Error::NotFound(id)) => assert_eq!(id, TaskId(404)),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(fake.signals.registered_waiters(), 0);
}

#[tokio::test]
async fn an_enqueued_task_pruned_before_the_wait_is_not_found() {
    let (fake, queue) = Fake::new(Duration::from_millis(2));
    let handle = fake.add(&queue);
    fake.tasks().clear();
    match within("the wait", handle.wait()).await {
        Err(Error::NotFound(id)) => assert_eq!(id, handle.id()),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn failed_and_cancelled_tasks_are_errors() {
    let (fake, queue) = Fake::new(NEVER);
    let failing = fake.add(&queue);
    let cancelled = fake.add(&queue);
    let waits: Vec<_> = [failing.clone(), cancelled.clone()]
        .into_iter()
        .map(|handle| tokio::spawn(async move { handle.wait().await }))
        .collect();
    eventually("the waiters to register", || {
        fake.signals.registered_waiters() == 2
    })
    .await;
    fake.signals.notify_outcomes([Finished {
        id: failing.id(),
        name: "double".into(),
        status: TaskStatus::Failed,
        attempts: 3,
        result: None,
        failure: Some(TaskFailure::new(FailureKind::Panic, "boom")),
    }]);
    assert_eq!(
        queue.cancel(cancelled.id()).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let mut outcomes = Vec::new();
    for wait in waits {
        outcomes.push(within("a wait", wait).await.expect("the wait task"));
    }
    match &outcomes[0] {
        Err(Error::TaskFailed {
            id,
            name,
            attempts,
            kind,
            message,
        }) => assert_eq!(
            (*id, name.as_str(), *attempts, *kind, message.as_str()),
            (failing.id(), "double", 3, FailureKind::Panic, "boom")
        ),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    assert!(
        matches!(&outcomes[1], Err(Error::Cancelled { id, by, .. }) if *id == cancelled.id() && by == "api"),
        "{:?}",
        outcomes[1]
    );
}

#[tokio::test]
async fn a_failed_lookup_fails_the_waits() {
    let (fake, queue) = Fake::new(NEVER);
    fake.fail_lookups.store(true, Ordering::SeqCst);
    let handle = fake.add(&queue);
    match within("the wait", handle.wait()).await {
        Err(err @ Error::Database { .. }) => {
            let source = std::error::Error::source(&err).map(ToString::to_string);
            assert!(
                source.is_some_and(|source| source.contains("looking up finished tasks")),
                "{err:?}"
            );
        }
        other => panic!("expected a database error, got {other:?}"),
    }
    assert_eq!(fake.signals.registered_waiters(), 0);
}

#[tokio::test]
async fn a_waiter_outlives_the_runtime_of_the_lookup_loop() {
    let (fake, queue) = Fake::new(NEVER);
    let first = fake.add(&queue);
    let second = fake.add(&queue);
    // The loop starts on another runtime, for the first waiter.
    let other = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .expect("runtime");
    let first_wait = other.spawn(async move { first.wait().await });
    eventually("the first waiter", || {
        fake.signals.registered_waiters() == 1
    })
    .await;
    let waits = spawn_waits_from(&fake, &second, 2).await;
    // That runtime goes away with its loop and its waiter.
    other.shutdown_background();
    drop(first_wait);
    eventually("the first waiter to go", || {
        fake.signals.registered_waiters() == 1
    })
    .await;
    // The second waiter, on this runtime, is still served.
    fake.signals.notify_outcomes([succeeded(second.id(), 5)]);
    assert_eq!(results(waits).await, vec![5]);
}

async fn spawn_waits_from(
    fake: &Fake,
    handle: &TaskHandle<i64>,
    registered: usize,
) -> Vec<tokio::task::JoinHandle<Result<i64>>> {
    let handle = handle.clone();
    let wait = tokio::spawn(async move { handle.wait().await });
    eventually("the waiter to register", || {
        fake.signals.registered_waiters() == registered
    })
    .await;
    vec![wait]
}

#[test]
fn a_wait_outside_a_tokio_runtime_is_an_error() {
    let (fake, queue) = Fake::new(NEVER);
    let handle = fake.add(&queue);
    let mut wait = std::pin::pin!(handle.wait());
    let polled = wait
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()));
    assert!(
        matches!(polled, std::task::Poll::Ready(Err(Error::Config(_)))),
        "{polled:?}"
    );
    assert_eq!(fake.signals.registered_waiters(), 0);
}

/// A kept outcome (handed over before anyone waited) is forgotten when the
/// task is retried: a new wait waits for the new run instead of returning
/// the old outcome.
#[tokio::test]
async fn a_retried_task_is_waited_for_anew() {
    let (fake, queue) = Fake::new(NEVER);
    let handle = fake.add(&queue);
    let failed = {
        let mut tasks = fake.tasks();
        let record = tasks.get_mut(&handle.id()).expect("a task of this test");
        record.status = TaskStatus::Failed;
        record.attempts = 1;
        record.failure = Some(TaskFailure::new(FailureKind::Error, "first run"));
        record.finished_at = Some(Utc::now());
        Finished::from(record.clone())
    };
    fake.signals.notify_outcomes([failed.clone()]);
    let before = fake.calls();
    let first = within("the kept outcome", handle.wait()).await;
    assert!(matches!(first, Err(Error::TaskFailed { .. })), "{first:?}");
    assert_eq!(
        fake.calls().finished,
        before.finished,
        "served from the cache"
    );
    queue.retry(handle.id()).await.expect("retry");
    match handle.wait_timeout(Duration::from_millis(50)).await {
        Err(Error::WaitTimeout {
            status: TaskStatus::Pending,
            ..
        }) => {}
        other => panic!("expected the new run to be waited for, got {other:?}"),
    }
    // The first run's outcome handed over late (its completion committed
    // before the retry, its report comes after): the database decides.
    let waiting = tokio::spawn({
        let handle = handle.clone();
        async move { handle.wait_timeout(Duration::from_millis(300)).await }
    });
    tokio::task::yield_now().await;
    fake.signals.notify_outcomes([failed]);
    match within("the wait after the late report", waiting).await {
        Ok(Err(Error::WaitTimeout {
            status: TaskStatus::Pending,
            ..
        })) => {}
        other => panic!("a stale outcome must not end the new wait, got {other:?}"),
    }
}

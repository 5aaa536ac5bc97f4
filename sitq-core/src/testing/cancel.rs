//! Conformance cases for cancelling and retrying tasks, and the failure
//! history.

use std::time::Duration;

use chrono::Utc;

use super::cancel_tasks::{Linger, OnCancel};
use super::cases::wait;
use super::tasks::{Add, Fail, Flaky, Gate, Record, count, open_gate, unique};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{
    CancelOutcome, CancelRequest, ClaimRequest, ClaimedTask, Completion, EnqueueOptions, Error,
    FailureKind, Outcome, Queue, Task, TaskFailure, TaskId, TaskStatus,
};

/// Claims the next task named `name` as worker `worker_id`: started, or
/// only reserved when `start` is false.
async fn claim_one(
    queue: &Queue,
    worker_id: &str,
    name: &str,
    start: bool,
    lease: Duration,
) -> ClaimedTask {
    let names = [name.to_owned()];
    let mut claimed = queue
        .backend()
        .claim(ClaimRequest {
            worker_id,
            queues: &[],
            names: &names,
            limit: 1,
            start: usize::from(start),
            lease,
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "one {name} task to claim");
    claimed.remove(0)
}

/// Waits until the linger task `key` has started running.
async fn started(key: &str) {
    eventually(&format!("linger task {key} to start"), || async {
        (count(&format!("linger-started/{key}")) > 0).then_some(())
    })
    .await;
}

/// A pending task and a delayed one are cancelled at once, with who and
/// why stored; waiters (already waiting, and later ones) get
/// `Error::Cancelled`; no worker runs them; a second cancel changes nothing.
pub async fn cancel_pending_and_delayed_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("cancel-pending");
    let ready = queue
        .enqueue(Linger {
            key: key.clone(),
            on_cancel: OnCancel::Stop,
        })
        .await
        .expect("enqueue");
    let delayed = queue
        .enqueue_with(
            Add { a: 1, b: 2 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    let waiting = tokio::spawn({
        let ready = ready.clone();
        async move { wait(&ready).await }
    });
    let request = CancelRequest::new().by("ops").reason("duplicate charge");
    assert_eq!(
        ready.cancel_with(request).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        queue.cancel(delayed.id()).await.expect("cancel"),
        CancelOutcome::Cancelled
    );

    let woken = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("the waiter is woken by the cancel")
        .expect("wait task");
    match woken {
        Err(Error::Cancelled { id, by, reason }) => {
            assert_eq!(id, ready.id());
            assert_eq!(by, "ops");
            assert_eq!(reason.as_deref(), Some("duplicate charge"));
        }
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
    match wait(&delayed).await {
        Err(Error::Cancelled { id, by, reason }) => {
            assert_eq!((id, by.as_str(), reason), (delayed.id(), "api", None));
        }
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }

    let record = queue.get(ready.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.attempts, 0);
    assert!(record.finished_at.is_some(), "finished_at is set");
    let cancellation = record.cancellation.expect("the request is stored");
    assert_eq!(cancellation.by, "ops");
    assert_eq!(cancellation.reason.as_deref(), Some("duplicate charge"));
    let failure = record.failure.expect("the cancel is the task's error");
    assert_eq!(failure.kind, FailureKind::Cancelled);
    assert_eq!(failure.message, "cancelled by ops: duplicate charge");
    assert!(
        queue
            .failures(ready.id())
            .await
            .expect("failures")
            .is_empty(),
        "no attempt ran, so none failed"
    );

    // Another cancel keeps the first request.
    assert_eq!(
        queue
            .cancel_with(ready.id(), CancelRequest::new().by("someone else"))
            .await
            .expect("cancel again"),
        CancelOutcome::AlreadyFinished(TaskStatus::Cancelled)
    );
    let record = queue.get(ready.id()).await.expect("record");
    assert_eq!(record.cancellation.map(|c| c.by).as_deref(), Some("ops"));

    // A worker finds nothing to run.
    let worker = h.start_worker(&queue, worker_config());
    let marker = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");
    assert_eq!(wait(&marker).await.expect("marker"), 4);
    worker.shutdown().await;
    assert_eq!(count(&format!("linger-started/{key}")), 0, "never ran");
    assert_eq!(
        queue.status(ready.id()).await.expect("status"),
        TaskStatus::Cancelled
    );
}

/// Unknown ids are `NotFound` for cancel, retry and failures; a bad cancel
/// request is refused with `InvalidOptions` and changes nothing.
pub async fn cancel_refuses_bad_input_and_unknown_ids(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let missing = TaskId(i64::MAX - 7);
    assert!(matches!(queue.cancel(missing).await, Err(Error::NotFound(id)) if id == missing));
    assert!(matches!(queue.retry(missing).await, Err(Error::NotFound(id)) if id == missing));
    assert!(matches!(queue.failures(missing).await, Err(Error::NotFound(id)) if id == missing));

    let handle = queue
        .enqueue_with(
            Add { a: 1, b: 1 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    let long = "x".repeat(crate::MAX_CANCEL_TEXT + 1);
    for (request, mentions) in [
        (CancelRequest::new().by(""), "`by` is empty"),
        (CancelRequest::new().reason("a\0b"), "NUL"),
        (
            CancelRequest::new().by("ops").reason(long),
            "over the limit",
        ),
    ] {
        match queue.cancel_with(handle.id(), request).await {
            Err(err @ Error::InvalidOptions(_)) => {
                assert!(err.to_string().contains(mentions), "{err}");
            }
            other => panic!("expected InvalidOptions, got {other:?}"),
        }
    }
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Pending, "nothing changed");
    assert_eq!(record.cancellation, None);
}

/// Cancelling a finished task changes nothing and says how it finished.
pub async fn cancel_finished_task_is_a_no_op(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue.enqueue(Add { a: 20, b: 22 }).await.expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 42);
    worker.shutdown().await;
    assert_eq!(
        handle.cancel().await.expect("cancel"),
        CancelOutcome::AlreadyFinished(TaskStatus::Succeeded)
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(record.cancellation, None);
    assert_eq!(wait(&handle).await.expect("still the result"), 42);
}

/// A reserved claim (claimed, never started) is cancelled at once, its
/// attempt not spent; the worker's later start mark and completion are
/// fenced off.
pub async fn cancel_reserved_claim_at_once(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let claimed = claim_one(&queue, "holder", Add::NAME, false, WAIT).await;
    assert_eq!(
        queue.cancel(handle.id()).await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.attempts, 0, "the reserved attempt is not spent");
    // The holder tells the backend it starts the claim: fenced.
    let backend = queue.backend();
    backend
        .start(vec![claimed.claim_ref()])
        .await
        .expect("start");
    assert_eq!(
        backend
            .cancel_requested(&[claimed.claim_ref()])
            .await
            .expect("cancel_requested"),
        vec![claimed.claim_ref()],
        "the holder learns that its claim was cancelled"
    );
    let applied = backend
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome: Outcome::Succeeded(crate::codec::encode(&2i64, "result").expect("encode")),
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [false], "the completion is fenced");
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.started_at, None);
    assert!(matches!(wait(&handle).await, Err(Error::Cancelled { .. })));
}

/// A task a worker has claimed ahead (reserved in its buffer, behind a busy
/// slot) and that is cancelled there never runs: the worker drops it.
pub async fn cancel_reserved_task_in_a_worker_buffer(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("reserved-buffer");
    let gate = queue
        .enqueue(Gate { key: key.clone() })
        .await
        .expect("enqueue");
    let records = queue
        .enqueue_many(["cancelled", "kept"].map(|tag| Record {
            log: key.clone(),
            tag: tag.to_owned(),
        }))
        .await
        .expect("enqueue");
    let mut config = worker_config();
    config.concurrency = 1; // and a prefetch of 2: both records reserved
    let worker = h.start_worker(&queue, config);
    eventually(
        "the gate to run and both records to be reserved",
        || async {
            let mut reserved = count(&format!("gate-started/{key}")) == 1;
            for handle in &records {
                let record = queue.get(handle.id()).await.expect("record");
                reserved &= record.status == TaskStatus::Running && record.started_at.is_none();
            }
            reserved.then_some(())
        },
    )
    .await;
    assert_eq!(
        records[0].cancel().await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    open_gate(&key);
    wait(&gate).await.expect("the gate task");
    wait(&records[1]).await.expect("the kept record");
    assert!(matches!(
        wait(&records[0]).await,
        Err(Error::Cancelled { .. })
    ));
    worker.shutdown().await;
    assert_eq!(count(&format!("{key}/cancelled")), 0, "never ran");
    assert_eq!(count(&format!("{key}/kept")), 1);
    let record = queue.get(records[0].id()).await.expect("record");
    assert_eq!(
        (record.status, record.attempts, record.started_at),
        (TaskStatus::Cancelled, 0, None)
    );
}

/// A running task's context is cancelled; a task that then stops with an
/// error ends `cancelled`, not retried, with the attempt in its history.
pub async fn cancel_running_task_reaches_its_context(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("cancel-running");
    let handle = queue
        .enqueue(Linger {
            key: key.clone(),
            on_cancel: OnCancel::Stop,
        })
        .await
        .expect("enqueue");
    started(&key).await;
    let request = CancelRequest::new().by("ops").reason("customer asked");
    assert_eq!(
        handle.cancel_with(request).await.expect("cancel"),
        CancelOutcome::Requested
    );
    // While it runs (or already after), the request is stored.
    let record = queue.get(handle.id()).await.expect("record");
    let cancellation = record.cancellation.expect("the request is stored");
    assert_eq!(
        (cancellation.by.as_str(), cancellation.reason.as_deref()),
        ("ops", Some("customer asked"))
    );
    match wait(&handle).await {
        Err(Error::Cancelled { id, by, reason }) => {
            assert_eq!(id, handle.id());
            assert_eq!(by, "ops");
            assert_eq!(reason.as_deref(), Some("customer asked"));
        }
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
    assert_eq!(
        count(&format!("linger-cancelled/{key}")),
        1,
        "the context said so"
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert_eq!(record.attempts, 1, "not retried");
    assert!(record.finished_at.is_some());
    let failures = queue.failures(handle.id()).await.expect("failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].attempt, 1);
    assert_eq!(failures[0].kind, FailureKind::Cancelled);
    assert!(
        failures[0].message.contains("stopped: cancelled"),
        "the task's own error is kept: {}",
        failures[0].message
    );
    assert!(failures[0].worker_id.is_some());
    worker.shutdown().await;
    assert_eq!(count(&format!("linger-started/{key}")), 1, "ran once");
}

/// A task that ignores its context is dropped once the grace period has
/// passed, and ends `cancelled`.
pub async fn cancel_drops_an_uncooperative_task_after_grace(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let grace = Duration::from_millis(300);
    let mut config = worker_config();
    config.cancel_grace = grace;
    let worker = h.start_worker(&queue, config);
    let key = unique("cancel-ignored");
    let handle = queue
        .enqueue(Linger {
            key: key.clone(),
            on_cancel: OnCancel::Ignore,
        })
        .await
        .expect("enqueue");
    started(&key).await;
    let asked = tokio::time::Instant::now();
    assert_eq!(
        handle.cancel().await.expect("cancel"),
        CancelOutcome::Requested
    );
    assert!(matches!(wait(&handle).await, Err(Error::Cancelled { .. })));
    assert!(
        asked.elapsed() >= grace,
        "dropped only after the grace period ({:?})",
        asked.elapsed()
    );
    assert_eq!(count(&format!("linger-cancelled/{key}")), 1, "it was told");
    let failures = queue.failures(handle.id()).await.expect("failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].kind, FailureKind::Cancelled);
    assert!(
        failures[0].message.contains("grace period"),
        "{}",
        failures[0].message
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!((record.status, record.attempts), (TaskStatus::Cancelled, 1));
    worker.shutdown().await;
}

/// A running task that returns `Ok` after the cancel request (within the
/// grace period) succeeds: its work is done. The request stays on record.
pub async fn cancel_running_task_that_returns_ok_succeeds(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("cancel-finish");
    let handle = queue
        .enqueue(Linger {
            key: key.clone(),
            on_cancel: OnCancel::Finish,
        })
        .await
        .expect("enqueue");
    started(&key).await;
    assert_eq!(
        handle.cancel().await.expect("cancel"),
        CancelOutcome::Requested
    );
    assert_eq!(wait(&handle).await.expect("Ok wins"), 7);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert!(record.cancellation.is_some(), "the request stays on record");
    assert!(
        queue
            .failures(handle.id())
            .await
            .expect("failures")
            .is_empty()
    );
    worker.shutdown().await;
}

/// A failed task runs again with fresh attempts after `retry`; every
/// failed attempt of both runs stays in its history, in order.
pub async fn retry_failed_task_keeps_its_history(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("retry-failed");
    // Five attempts allowed, five failures: failed. The sixth run succeeds.
    let handle = queue
        .enqueue(Flaky {
            key: key.clone(),
            failures: 5,
        })
        .await
        .expect("enqueue");
    match wait(&handle).await {
        Err(Error::TaskFailed { attempts: 5, .. }) => {}
        other => panic!("expected a failure after 5 attempts, got {other:?}"),
    }
    let failures = queue.failures(handle.id()).await.expect("failures");
    let attempts: Vec<u32> = failures.iter().map(|f| f.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4, 5]);
    assert!(failures.iter().all(|f| f.kind == FailureKind::Error));
    assert_eq!(failures[0].message, "flaky failure 1 of 5");
    assert!(
        failures
            .windows(2)
            .all(|w| w[0].failed_at <= w[1].failed_at)
    );

    let before = Utc::now() - chrono::Duration::seconds(5);
    handle.retry().await.expect("retry");
    assert_eq!(wait(&handle).await.expect("the new run succeeds"), 6);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(record.attempts, 1, "fresh attempts");
    assert!(record.run_at >= before, "due when retried");
    assert_eq!(
        queue.failures(handle.id()).await.expect("failures").len(),
        5,
        "the first run's errors stay readable"
    );
    worker.shutdown().await;
}

/// A cancelled task (cancelled while running, and cancelled while pending)
/// runs again after `retry`, with its cancel request cleared; a new wait
/// waits for the new run.
pub async fn retry_cancelled_task_runs_again(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let pending = queue
        .enqueue_with(
            Add { a: 2, b: 3 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    assert_eq!(
        pending.cancel().await.expect("cancel"),
        CancelOutcome::Cancelled
    );
    assert!(matches!(wait(&pending).await, Err(Error::Cancelled { .. })));

    let worker = h.start_worker(&queue, worker_config());
    let key = unique("retry-cancelled");
    let running = queue
        .enqueue(Linger {
            key: key.clone(),
            on_cancel: OnCancel::Stop,
        })
        .await
        .expect("enqueue");
    started(&key).await;
    assert_eq!(
        running.cancel().await.expect("cancel"),
        CancelOutcome::Requested
    );
    assert!(matches!(wait(&running).await, Err(Error::Cancelled { .. })));

    pending
        .retry()
        .await
        .expect("retry the pending-cancelled task");
    // The worker may run it at once: only what stays true after is checked.
    let record = queue.get(pending.id()).await.expect("record");
    assert_eq!(record.cancellation, None, "the request is cleared");
    assert_ne!(record.status, TaskStatus::Cancelled);
    assert_eq!(wait(&pending).await.expect("runs now, not delayed"), 5);

    running
        .retry()
        .await
        .expect("retry the running-cancelled task");
    eventually("the retried task to run again", || async {
        (count(&format!("linger-started/{key}")) == 2).then_some(())
    })
    .await;
    let record = queue.get(running.id()).await.expect("record");
    assert_eq!(
        (record.status, record.attempts, record.cancellation),
        (TaskStatus::Running, 1, None)
    );
    // Cancel the new run too; the history holds both cancelled attempts.
    assert_eq!(
        running.cancel().await.expect("cancel"),
        CancelOutcome::Requested
    );
    assert!(matches!(wait(&running).await, Err(Error::Cancelled { .. })));
    let kinds: Vec<(u32, FailureKind)> = queue
        .failures(running.id())
        .await
        .expect("failures")
        .iter()
        .map(|f| (f.attempt, f.kind))
        .collect();
    assert_eq!(
        kinds,
        [(1, FailureKind::Cancelled), (1, FailureKind::Cancelled)]
    );
    worker.shutdown().await;
}

/// Only failed and cancelled tasks can be retried; others are refused
/// with their status and left alone.
pub async fn retry_refuses_unfinished_and_succeeded_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let pending = queue
        .enqueue_with(
            Add { a: 1, b: 1 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    match queue.retry(pending.id()).await {
        Err(
            err @ Error::NotRetryable {
                status: TaskStatus::Pending,
                ..
            },
        ) => assert!(
            err.to_string().contains("only failed or cancelled"),
            "{err}"
        ),
        other => panic!("expected NotRetryable, got {other:?}"),
    }

    let worker = h.start_worker(&queue, worker_config());
    let gate_key = unique("retry-running");
    let running = queue
        .enqueue(Gate {
            key: gate_key.clone(),
        })
        .await
        .expect("enqueue");
    eventually("the gate task to start", || async {
        (count(&format!("gate-started/{gate_key}")) == 1).then_some(())
    })
    .await;
    assert!(matches!(
        running.retry().await,
        Err(Error::NotRetryable {
            status: TaskStatus::Running,
            ..
        })
    ));
    open_gate(&gate_key);
    wait(&running).await.expect("the gate task");
    assert!(matches!(
        running.retry().await,
        Err(Error::NotRetryable {
            status: TaskStatus::Succeeded,
            ..
        })
    ));
    let record = queue.get(running.id()).await.expect("record");
    assert_eq!((record.status, record.attempts), (TaskStatus::Succeeded, 1));
    worker.shutdown().await;
}

/// A task with a cancel request whose worker died (its lease ran out) is
/// recovered as `cancelled`, not pending, with the lost attempt in its
/// history.
pub async fn recovery_cancels_a_cancel_requested_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let claimed = claim_one(
        &queue,
        "dead-worker",
        Add::NAME,
        true,
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(
        queue
            .cancel_with(handle.id(), CancelRequest::new().reason("stuck"))
            .await
            .expect("cancel"),
        CancelOutcome::Requested
    );
    let backend = queue.backend();
    assert_eq!(
        backend
            .cancel_requested(&[claimed.claim_ref()])
            .await
            .expect("cancel_requested"),
        vec![claimed.claim_ref()]
    );
    eventually("the lease to be recovered", || async {
        backend.recover_expired().await.expect("recover_expired");
        (queue.status(handle.id()).await.ok() != Some(TaskStatus::Running)).then_some(())
    })
    .await;
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Cancelled);
    assert!(record.finished_at.is_some());
    match wait(&handle).await {
        Err(Error::Cancelled { by, reason, .. }) => {
            assert_eq!((by.as_str(), reason.as_deref()), ("api", Some("stuck")));
        }
        other => panic!("expected Error::Cancelled, got {other:?}"),
    }
    let failures = queue.failures(handle.id()).await.expect("failures");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].kind, FailureKind::LeaseExpired);
    assert_eq!(failures[0].worker_id.as_deref(), Some("dead-worker"));
    // A worker does not run it.
    let worker = h.start_worker(&queue, worker_config());
    let marker = queue.enqueue(Add { a: 0, b: 0 }).await.expect("enqueue");
    assert_eq!(wait(&marker).await.expect("marker"), 0);
    worker.shutdown().await;
    assert_eq!(
        queue.status(handle.id()).await.expect("status"),
        TaskStatus::Cancelled
    );
}

/// Pruning a task deletes its failure history; an unfinished task's
/// history stays.
pub async fn prune_deletes_the_failure_history(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let failed = queue
        .enqueue(Fail {
            message: "boom".into(),
        })
        .await
        .expect("enqueue");
    let kept = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    // Fail's two attempts, by hand; then one failed attempt of the kept task.
    for attempt in 1..=2u32 {
        let claimed = claim_one(&queue, "w", Fail::NAME, true, WAIT).await;
        assert_eq!(claimed.attempt, attempt);
        let failure = TaskFailure::new(FailureKind::Error, format!("boom {attempt}"));
        let outcome = if attempt == 1 {
            Outcome::Retry {
                failure,
                delay: Duration::ZERO,
            }
        } else {
            Outcome::Failed(failure)
        };
        let applied = backend
            .complete(vec![Completion {
                claim: claimed.claim_ref(),
                outcome,
            }])
            .await
            .expect("complete");
        assert_eq!(applied, [true]);
    }
    let claimed = claim_one(&queue, "w", Add::NAME, true, WAIT).await;
    backend
        .complete(vec![Completion {
            claim: claimed.claim_ref(),
            outcome: Outcome::Retry {
                failure: TaskFailure::new(FailureKind::Panic, "kept"),
                delay: Duration::from_secs(3600),
            },
        }])
        .await
        .expect("complete");
    assert_eq!(
        queue.status(failed.id()).await.expect("status"),
        TaskStatus::Failed
    );
    let messages: Vec<String> = queue
        .failures(failed.id())
        .await
        .expect("failures")
        .into_iter()
        .map(|f| f.message)
        .collect();
    assert_eq!(messages, ["boom 1", "boom 2"]);

    let pruned = backend
        .prune(Utc::now() + chrono::Duration::seconds(60))
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "only the failed task is finished");
    assert!(
        backend
            .failures(failed.id())
            .await
            .expect("failures")
            .is_empty(),
        "the history went with the task"
    );
    assert!(matches!(
        queue.failures(failed.id()).await,
        Err(Error::NotFound(_))
    ));
    let kept_history = queue.failures(kept.id()).await.expect("failures");
    assert_eq!(kept_history.len(), 1);
    assert_eq!(kept_history[0].kind, FailureKind::Panic);
}

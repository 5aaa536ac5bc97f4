//! The conformance cases. Each takes a [`Harness`] and panics with a
//! message when the backend breaks the contract.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{FixedOffset, TimeZone, Utc};

use super::tasks::{
    Add, BlockingAdd, Fail, Flaky, Gate, Panic, Record, Slow, count, log, open_gate, unique,
};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{
    ClaimRequest, Completion, EnqueueOptions, Error, FailureKind, Outcome, Queue, Task, TaskId,
    TaskStatus,
};

pub(super) async fn wait<T: serde::de::DeserializeOwned>(
    handle: &crate::TaskHandle<T>,
) -> crate::Result<T> {
    match handle.wait_timeout(WAIT).await {
        Err(Error::WaitTimeout { .. }) => {
            panic!("task {} did not finish within {WAIT:?}", handle.id())
        }
        other => other,
    }
}

async fn status_becomes(queue: &Queue, id: TaskId, want: TaskStatus) {
    eventually(&format!("task {id} to become {want}"), || async {
        (queue.status(id).await.ok() == Some(want)).then_some(())
    })
    .await;
}

/// A typed task returns its typed result.
pub async fn typed_round_trip(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue.enqueue(Add { a: 2, b: 3 }).await.expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 5);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(record.attempts, 1);
    assert!(
        record.worker_id.is_some() && record.duration().is_some(),
        "{record:?}"
    );
    worker.shutdown().await;
}

/// A task that runs on the blocking pool returns its result.
pub async fn blocking_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue
        .enqueue(BlockingAdd { a: 40, b: 2 })
        .await
        .expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 42);
    worker.shutdown().await;
}

/// `run_at` given with a non-UTC offset is stored as the same instant.
pub async fn run_at_with_offset_is_exact(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let tz = FixedOffset::east_opt(9 * 3600 + 30 * 60).expect("offset");
    let at = tz
        .with_ymd_and_hms(2031, 6, 1, 8, 15, 0)
        .single()
        .expect("time");
    let handle = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().run_at(at))
        .await
        .expect("enqueue");
    let record = queue.get(handle.id()).await.expect("record");
    let expected = Utc
        .with_ymd_and_hms(2031, 5, 31, 22, 45, 0)
        .single()
        .expect("time");
    assert_eq!(record.run_at, expected);
    assert_eq!(record.status, TaskStatus::Pending);
}

/// An `Err` result fails the task with its message; the record keeps it.
pub async fn error_result_is_kept(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue
        .enqueue(Fail {
            message: "disk on fire".into(),
        })
        .await
        .expect("enqueue");
    match wait(&handle).await {
        Err(Error::TaskFailed {
            kind: FailureKind::Error,
            message,
            attempts,
            ..
        }) => {
            assert_eq!(message, "disk on fire");
            assert_eq!(attempts, 2);
        }
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(
        record.failure.map(|f| f.message).as_deref(),
        Some("disk on fire")
    );
    assert!(record.finished_at.is_some());
    worker.shutdown().await;
}

/// A task failing twice succeeds on its third attempt.
pub async fn retries_then_success(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("flaky");
    let handle = queue
        .enqueue(Flaky {
            key: key.clone(),
            failures: 2,
        })
        .await
        .expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 3);
    assert_eq!(queue.get(handle.id()).await.expect("record").attempts, 3);
    worker.shutdown().await;
}

/// Out of attempts, the task is failed and kept with its last error.
pub async fn retries_exhausted_is_failed_and_kept(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("flaky");
    let handle = queue
        .enqueue_with(
            Flaky {
                key: key.clone(),
                failures: 10,
            },
            EnqueueOptions::new().max_attempts(3),
        )
        .await
        .expect("enqueue");
    assert!(matches!(
        wait(&handle).await,
        Err(Error::TaskFailed { attempts: 3, .. })
    ));
    assert_eq!(count(&key), 3);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(
        record.failure.map(|f| f.message).as_deref(),
        Some("flaky failure 3 of 10")
    );
    worker.shutdown().await;
}

/// A delayed task does not start before its delay.
pub async fn delay_is_honoured(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let delay = Duration::from_millis(300);
    let handle = queue
        .enqueue_with(Add { a: 1, b: 2 }, EnqueueOptions::new().delay(delay))
        .await
        .expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), 3);
    let record = queue.get(handle.id()).await.expect("record");
    let started = record.started_at.expect("started_at");
    assert!(
        started >= record.run_at,
        "started {started} before its run_at {}",
        record.run_at
    );
    // run_at comes from the producer's clock, created_at from the backend's
    // (the server's, on PostgreSQL): allow for the enqueue's round trip.
    let scheduled = record.run_at - record.created_at;
    assert!(
        scheduled >= chrono::Duration::milliseconds(250),
        "run_at is only {scheduled:?} after enqueue, not the 300 ms delay"
    );
    worker.shutdown().await;
}

/// Highest priority first, then earliest run_at, then enqueue order.
pub async fn priority_order(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let name = unique("order");
    let record = |tag: &str| Record {
        log: name.clone(),
        tag: tag.into(),
    };
    let past = Utc::now() - chrono::Duration::seconds(10);
    queue.enqueue(record("low-1")).await.expect("enqueue");
    queue.enqueue(record("low-2")).await.expect("enqueue");
    queue
        .enqueue_with(record("low-earlier"), EnqueueOptions::new().run_at(past))
        .await
        .expect("enqueue");
    queue
        .enqueue_with(record("high"), EnqueueOptions::new().priority(10))
        .await
        .expect("enqueue");
    let mut config = worker_config();
    config.concurrency = 1;
    let worker = h.start_worker(&queue, config);
    eventually("all four tasks to run", || async {
        (log(&name).len() == 4).then_some(())
    })
    .await;
    assert_eq!(log(&name), ["high", "low-earlier", "low-1", "low-2"]);
    worker.shutdown().await;
}

/// An attempt past its timeout fails with kind `timeout`.
pub async fn timeout_fails_the_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue.enqueue(Slow { ms: 60_000 }).await.expect("enqueue");
    assert!(
        matches!(
            wait(&handle).await,
            Err(Error::TaskFailed {
                kind: FailureKind::Timeout,
                ..
            })
        ),
        "a 60 s task with a 100 ms timeout must fail with kind timeout"
    );
    worker.shutdown().await;
}

/// A panic fails that attempt with the panic message; the worker goes on.
pub async fn panic_fails_the_attempt_not_the_worker(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let handle = queue
        .enqueue(Panic {
            message: "kaboom".into(),
        })
        .await
        .expect("enqueue");
    match wait(&handle).await {
        Err(Error::TaskFailed {
            kind: FailureKind::Panic,
            message,
            ..
        }) => {
            assert!(message.contains("kaboom"), "{message}");
        }
        other => panic!("expected a panic failure, got {other:?}"),
    }
    let after = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    assert_eq!(wait(&after).await.expect("the worker survived"), 2);
    worker.shutdown().await;
}

/// Shutdown waits for in-flight tasks and stores their results.
pub async fn graceful_shutdown_finishes_in_flight_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("gate");
    let handle = queue
        .enqueue(Gate { key: key.clone() })
        .await
        .expect("enqueue");
    eventually("the gate task to start", || async {
        (count(&format!("gate-started/{key}")) == 1).then_some(())
    })
    .await;
    let stopping = tokio::spawn(worker.shutdown());
    // Shutdown must not complete while the task is still running.
    assert!(!stopping.is_finished());
    open_gate(&key);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown finished within the bound")
        .expect("shutdown task");
    assert_eq!(
        queue.status(handle.id()).await.expect("status"),
        TaskStatus::Succeeded
    );
}

/// A worker claims only the tasks it has registered: a task it does not
/// know stays pending, its attempts unspent, for a worker that knows it
/// (two worker binaries with different tasks share a queue; a rolling
/// deploy adds a task type).
pub async fn unknown_task_waits_for_a_worker_that_knows_it(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let mut config = worker_config();
    config.registry = super::registry_without(Add::NAME);
    let partial = h.start_worker(&queue, config);
    let add = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let unknown = queue
        .enqueue_raw("no::such::task", vec![0x90], EnqueueOptions::new())
        .await
        .expect("enqueue");
    // Enqueued last: once it ran, the worker has looked past the other two.
    let known = queue
        .enqueue(BlockingAdd { a: 2, b: 2 })
        .await
        .expect("enqueue");
    assert_eq!(wait(&known).await.expect("a known task runs"), 4);
    for id in [add.id(), unknown] {
        let record = queue.get(id).await.expect("record");
        assert_eq!(record.status, TaskStatus::Pending, "task {id}");
        assert_eq!(record.attempts, 0, "task {id}: no attempt spent");
        assert!(record.failure.is_none(), "task {id}: no failure");
    }
    partial.shutdown().await;

    let full = h.start_worker(&queue, worker_config());
    assert_eq!(
        wait(&add).await.expect("the worker that knows it runs it"),
        3
    );
    assert_eq!(
        queue.status(unknown).await.expect("status"),
        TaskStatus::Pending,
        "no worker knows it: it waits, visible"
    );
    full.shutdown().await;
}

/// An undecodable payload is failed with the decode error and kept.
pub async fn corrupt_payload_is_failed_and_kept(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let id = queue
        .enqueue_raw(Add::NAME, vec![0xc1, 0xff, 0x00], EnqueueOptions::new())
        .await
        .expect("enqueue");
    status_becomes(&queue, id, TaskStatus::Failed).await;
    let record = queue.get(id).await.expect("record");
    let failure = record.failure.expect("failure");
    assert_eq!(failure.kind, FailureKind::Decode);
    assert!(failure.message.contains(Add::NAME), "{}", failure.message);
    assert_eq!(
        record.payload,
        [0xc1, 0xff, 0x00],
        "the payload is kept for inspection"
    );
    assert_eq!(record.attempts, 1, "a bad payload is not retried");
    worker.shutdown().await;
}

/// A payload over the limit is refused at enqueue; nothing is stored.
pub async fn payload_too_large_is_refused(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let big = vec![7u8; queue.options().max_payload_bytes + 1];
    match queue
        .enqueue_raw("sitq::testing::add", big, EnqueueOptions::new())
        .await
    {
        Err(Error::PayloadTooLarge { size, limit, .. }) => assert!(size > limit),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    let next = queue.enqueue(Add { a: 0, b: 0 }).await.expect("enqueue");
    assert!(
        queue.get(TaskId(next.id().0 - 1)).await.is_err(),
        "the refused payload must not have been stored"
    );
}

/// Invalid options are refused with a clear error.
pub async fn invalid_options_are_refused(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let zero = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().max_attempts(0))
        .await;
    assert!(
        matches!(zero, Err(Error::InvalidOptions(message)) if message.contains("max_attempts"))
    );
    let empty = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().queue(""))
        .await;
    assert!(matches!(empty, Err(Error::InvalidOptions(_))));
}

/// `enqueue_many` stores every task, and each runs.
pub async fn enqueue_many_is_one_batch(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handles = queue
        .enqueue_many((0..100).map(|i| Add { a: i, b: 1 }))
        .await
        .expect("enqueue_many");
    assert_eq!(handles.len(), 100);
    let ids: HashSet<_> = handles.iter().map(|handle| handle.id()).collect();
    assert_eq!(ids.len(), 100, "ids are distinct");
    let worker = h.start_worker(&queue, worker_config());
    for (i, handle) in (0..).zip(&handles) {
        assert_eq!(wait(handle).await.expect("result"), i + 1);
    }
    worker.shutdown().await;
}

/// A pending task can be cancelled; waiting on it says so.
pub async fn cancel_pending_task(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue
        .enqueue_with(
            Add { a: 1, b: 1 },
            EnqueueOptions::new().delay(Duration::from_secs(3600)),
        )
        .await
        .expect("enqueue");
    assert_eq!(
        queue.cancel(handle.id()).await.expect("cancel"),
        crate::CancelOutcome::Cancelled
    );
    assert_eq!(
        queue.cancel(handle.id()).await.expect("cancel again"),
        crate::CancelOutcome::AlreadyFinished(TaskStatus::Cancelled),
        "already cancelled"
    );
    assert_eq!(
        handle.status().await.expect("status"),
        TaskStatus::Cancelled
    );
    assert!(matches!(wait(&handle).await, Err(Error::Cancelled { id, .. }) if id == handle.id()));
}

/// `wait_timeout` gives up with the task's status; the task stays queued.
pub async fn wait_timeout_gives_up(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    match handle.wait_timeout(Duration::from_millis(50)).await {
        Err(Error::WaitTimeout {
            status: TaskStatus::Pending,
            ..
        }) => {}
        other => panic!("expected WaitTimeout while pending, got {other:?}"),
    }
}

/// An unknown id is `NotFound`.
pub async fn missing_task_is_not_found(h: &impl Harness) {
    let (queue, _) = open(h).await;
    assert!(matches!(
        queue.status(TaskId(987_654_321)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        queue.get(TaskId(987_654_321)).await,
        Err(Error::NotFound(_))
    ));
}

/// A task claimed by a worker that died is rerun once the lease expires.
pub async fn expired_lease_is_recovered(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 20, b: 22 }).await.expect("enqueue");
    let backend = queue.backend();
    let claimed = backend
        .claim(ClaimRequest {
            worker_id: "dead-worker",
            queues: &[],
            names: &[Add::NAME.to_owned()],
            limit: 1,
            start: 1,
            lease: Duration::from_millis(200),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    // The "dead" worker never heartbeats nor completes; a live one must take over.
    let mut config = worker_config();
    config.lease = Duration::from_millis(600);
    let worker = h.start_worker(&queue, config);
    assert_eq!(wait(&handle).await.expect("result"), 42);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.attempts, 2);
    assert_ne!(record.worker_id.as_deref(), Some("dead-worker"));
    worker.shutdown().await;
}

/// A completion from a stale claim does not apply.
pub async fn stale_completion_is_fenced(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let backend = queue.backend();
    let request = ClaimRequest {
        worker_id: "w1",
        queues: &[],
        names: &[Add::NAME.to_owned()],
        limit: 1,
        start: 1,
        lease: Duration::from_secs(30),
    };
    let first = backend.claim(request).await.expect("claim").remove(0);
    let stale = Completion {
        claim: crate::ClaimRef {
            fence: first.fence + 1,
            ..first.claim_ref()
        },
        outcome: Outcome::Succeeded(vec![0x01]),
    };
    assert_eq!(
        backend.complete(vec![stale]).await.expect("complete"),
        [false]
    );
    let fresh = Completion {
        claim: first.claim_ref(),
        outcome: Outcome::Succeeded(vec![0x02]),
    };
    let again = fresh.clone();
    assert_eq!(
        backend.complete(vec![fresh]).await.expect("complete"),
        [true]
    );
    assert_eq!(
        backend.complete(vec![again]).await.expect("complete"),
        [false],
        "completing twice"
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.result.as_deref(), Some(&[0x02][..]));

    // A stale and a fresh completion in one batch: only the fresh one applies.
    let (a, b) = (
        queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue"),
        queue.enqueue(Add { a: 3, b: 4 }).await.expect("enqueue"),
    );
    let request = ClaimRequest {
        worker_id: "w1",
        queues: &[],
        names: &[Add::NAME.to_owned()],
        limit: 2,
        start: 2,
        lease: Duration::from_secs(30),
    };
    let claimed = backend.claim(request).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let mixed: Vec<_> = claimed
        .iter()
        .map(|task| {
            let fence = if task.id == a.id() {
                task.fence + 7
            } else {
                task.fence
            };
            Completion {
                claim: crate::ClaimRef {
                    fence,
                    ..task.claim_ref()
                },
                outcome: Outcome::Succeeded(vec![0x03]),
            }
        })
        .collect();
    let applied = backend.complete(mixed.clone()).await.expect("complete");
    for (completion, applied) in mixed.iter().zip(applied) {
        assert_eq!(applied, completion.claim.id == b.id(), "{completion:?}");
    }
    assert_eq!(
        queue.status(a.id()).await.expect("status"),
        TaskStatus::Running
    );
    assert_eq!(
        queue.status(b.id()).await.expect("status"),
        TaskStatus::Succeeded
    );
}

/// A heartbeat for a claim that was lost reports it.
pub async fn lost_heartbeat_is_reported(h: &impl Harness) {
    let (queue, _) = open(h).await;
    queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let backend = queue.backend();
    let request = ClaimRequest {
        worker_id: "w1",
        queues: &[],
        names: &[Add::NAME.to_owned()],
        limit: 1,
        start: 1,
        lease: Duration::from_secs(30),
    };
    let claim = backend
        .claim(request)
        .await
        .expect("claim")
        .remove(0)
        .claim_ref();
    let kept = backend
        .heartbeat("w1", &[claim], Duration::from_secs(30))
        .await
        .expect("heartbeat");
    assert!(kept.is_empty(), "a live claim is not lost");
    let other = backend
        .heartbeat("w2", &[claim], Duration::from_secs(30))
        .await
        .expect("heartbeat");
    assert_eq!(
        other,
        [claim],
        "another worker's heartbeat does not hold the claim"
    );
    let done = Completion {
        claim,
        outcome: Outcome::Succeeded(vec![]),
    };
    backend.complete(vec![done]).await.expect("complete");
    let after = backend
        .heartbeat("w1", &[claim], Duration::from_secs(30))
        .await
        .expect("heartbeat");
    assert_eq!(after, [claim], "a finished claim is lost");
}

/// Two clients of one database (stand-ins for two processes), each with a
/// worker: every task runs exactly once.
pub async fn two_clients_execute_each_task_once(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let other = Queue::connect(&url).await.expect("second client");
    let name = unique("once");
    let tasks: Vec<_> = (0..400)
        .map(|i| Record {
            log: name.clone(),
            tag: i.to_string(),
        })
        .collect();
    let handles = queue.enqueue_many(tasks).await.expect("enqueue");
    let a = h.start_worker(&queue, worker_config());
    let b = h.start_worker(&other, worker_config());
    for handle in &handles {
        wait(handle).await.expect("result");
    }
    a.shutdown().await;
    b.shutdown().await;
    for i in 0..400 {
        assert_eq!(
            count(&format!("{name}/{i}")),
            1,
            "task {i} ran a wrong number of times"
        );
    }
}

/// Pruning deletes old finished tasks and keeps unfinished ones.
pub async fn prune_keeps_unfinished_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let done = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    wait(&done).await.expect("result");
    worker.shutdown().await;
    let pending = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");
    let pruned = queue
        .backend()
        .prune(Utc::now() + chrono::Duration::seconds(60))
        .await
        .expect("prune");
    assert_eq!(pruned, 1);
    assert!(matches!(
        queue.status(done.id()).await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        queue.status(pending.id()).await.expect("status"),
        TaskStatus::Pending
    );
}

/// A handle on one client sees a task finished through another.
pub async fn handle_wait_is_woken_across_clients(h: &impl Harness) {
    let (queue, url) = open(h).await;
    let other = Queue::connect(&url).await.expect("second client");
    let handle = queue.enqueue(Add { a: 5, b: 5 }).await.expect("enqueue");
    let worker = h.start_worker(&other, worker_config());
    assert_eq!(wait(&handle).await.expect("result"), 10);
    worker.shutdown().await;
}

//! Conformance cases for the claim path: routing by name and reserved
//! (prefetched) claims, which never spend an attempt unless they started.

use std::time::Duration;

use super::cases::wait;
use super::tasks::{Add, Gate, count, open_gate, unique};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{
    ClaimRequest, Completion, EnqueueOptions, FailureKind, Outcome, Queue, Task, TaskId, TaskStatus,
};

/// A worker that stops gracefully runs what it started and gives back what
/// it had only reserved, without spending their attempts.
pub async fn graceful_shutdown_gives_back_reserved_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let key = unique("reserve");
    let gate = queue
        .enqueue(Gate { key: key.clone() })
        .await
        .expect("enqueue");
    let adds = queue
        .enqueue_many((0..3).map(|i| Add { a: i, b: i }))
        .await
        .expect("enqueue");
    let mut config = worker_config();
    config.concurrency = 1;
    let worker = h.start_worker(&queue, config);
    eventually("the gate task to start", || async {
        (count(&format!("gate-started/{key}")) == 1).then_some(())
    })
    .await;
    // One slot, busy: the adds are reserved (claimed with the gate) or
    // unclaimed. Stopping gives the reserved ones back at once, while the
    // gate still runs (opened later, so no slot frees up before the stop).
    let stopping = tokio::spawn(worker.shutdown());
    eventually("the reserved tasks to be given back", || async {
        let mut back = true;
        for handle in &adds {
            let record = queue.get(handle.id()).await.expect("record");
            back &= record.status == TaskStatus::Pending && record.attempts == 0;
        }
        back.then_some(())
    })
    .await;
    open_gate(&key);
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("shutdown finished within the bound")
        .expect("shutdown task");
    assert_eq!(
        queue.status(gate.id()).await.expect("status"),
        TaskStatus::Succeeded
    );
    for handle in &adds {
        let record = queue.get(handle.id()).await.expect("record");
        assert_eq!(record.status, TaskStatus::Pending, "task {}", handle.id());
        assert_eq!(record.attempts, 0, "task {}: no attempt spent", handle.id());
    }
}

/// A name no worker of the suite runs.
const UNROUTED: &str = "sitq::testing::nobody_runs_this";

/// A claim of up to `limit` `Add` tasks by `worker_id`, the first `start` of
/// them started, with `lease`.
fn add_claim(worker_id: &str, limit: usize, start: usize, lease: Duration) -> ClaimRequest<'_> {
    static NAMES: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| vec![Add::NAME.to_owned()]);
    ClaimRequest {
        worker_id,
        queues: &[],
        names: &NAMES,
        limit,
        start,
        lease,
    }
}

/// Calls `recover_expired` until `id` has left `running`, as a worker's
/// maintenance would once the lease ran out.
async fn recover_until_not_running(queue: &Queue, id: TaskId) {
    eventually(
        &format!("the lease of task {id} to be recovered"),
        || async {
            queue
                .backend()
                .recover_expired()
                .await
                .expect("recover_expired");
            (queue.status(id).await.ok() != Some(TaskStatus::Running)).then_some(())
        },
    )
    .await;
}

/// Claims take only tasks whose name is in `names`; others stay pending,
/// for a worker that knows them. An empty list claims nothing.
pub async fn claims_route_by_name(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    // The unrouted task comes first in claim order, and must be skipped.
    let other = queue
        .enqueue_raw(UNROUTED, vec![0x90], EnqueueOptions::new().priority(5))
        .await
        .expect("enqueue");
    let add = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let nothing = backend
        .claim(ClaimRequest {
            names: &[],
            ..add_claim("w", 10, 10, WAIT)
        })
        .await
        .expect("claim with no names");
    assert!(nothing.is_empty(), "no names, no claims: {nothing:?}");
    let claimed = backend
        .claim(add_claim("w", 10, 10, WAIT))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|task| task.id).collect::<Vec<_>>(),
        [add.id()],
        "only the named task"
    );
    assert_eq!(
        queue.status(other).await.expect("status"),
        TaskStatus::Pending
    );
    let unrouted = [UNROUTED.to_owned(), "sitq::testing::another".to_owned()];
    let claimed = backend
        .claim(ClaimRequest {
            names: &unrouted,
            ..add_claim("w", 10, 10, WAIT)
        })
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|task| task.id).collect::<Vec<_>>(),
        [other],
        "a worker that knows the name takes it"
    );

    // A worker runs what it knows and leaves the rest pending.
    let waiting = queue
        .enqueue_raw(UNROUTED, vec![0x90], EnqueueOptions::new().priority(5))
        .await
        .expect("enqueue");
    let worker = h.start_worker(&queue, worker_config());
    let known = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");
    assert_eq!(wait(&known).await.expect("result"), 4);
    worker.shutdown().await;
    let record = queue.get(waiting).await.expect("record");
    assert_eq!(record.status, TaskStatus::Pending, "{record:?}");
    assert_eq!(record.attempts, 0);
}

/// The first `start` claimed tasks start; the rest are reserved. Released,
/// a reserved claim is pending again with its attempt not spent; a started
/// one is left alone.
pub async fn released_reservation_is_pending_again(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let first = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().priority(1))
        .await
        .expect("enqueue");
    let second = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");
    let claimed = backend
        .claim(add_claim("prefetcher", 2, 1, WAIT))
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|task| task.id).collect::<Vec<_>>(),
        [first.id(), second.id()],
        "claim order"
    );
    let started = queue.get(first.id()).await.expect("record");
    let reserved = queue.get(second.id()).await.expect("record");
    assert!(started.started_at.is_some(), "{started:?}");
    assert_eq!(reserved.status, TaskStatus::Running);
    assert_eq!(reserved.attempts, 1, "a reservation holds the next attempt");
    assert_eq!(reserved.worker_id.as_deref(), Some("prefetcher"));
    assert!(reserved.started_at.is_none(), "{reserved:?}");

    let claims: Vec<_> = claimed.iter().map(|task| task.claim_ref()).collect();
    assert_eq!(backend.release(claims.clone()).await.expect("release"), 1);
    let released = queue.get(second.id()).await.expect("record");
    assert_eq!(released.status, TaskStatus::Pending);
    assert_eq!(released.attempts, 0, "the attempt was not spent");
    assert_eq!(released.worker_id, None);
    assert_eq!(released.failure, None);
    let kept = queue.get(first.id()).await.expect("record");
    assert_eq!(kept.status, TaskStatus::Running, "a started claim stays");
    assert_eq!(kept.attempts, 1);
    assert_eq!(
        backend.release(claims.clone()).await.expect("release"),
        0,
        "releasing twice"
    );
    // The stale reservation cannot be started any more.
    backend.start(vec![claims[1]]).await.expect("start");
    assert_eq!(
        queue.get(second.id()).await.expect("record").started_at,
        None
    );

    // Claimed again, it is attempt 1 again, and runs.
    let again = backend
        .claim(add_claim("w", 1, 1, WAIT))
        .await
        .expect("claim");
    assert_eq!(
        again
            .iter()
            .map(|task| (task.id, task.attempt))
            .collect::<Vec<_>>(),
        [(second.id(), 1)]
    );
}

/// A reservation whose lease runs out goes back to pending with its attempt
/// not spent and no failure recorded, even on its only attempt, and later
/// runs and succeeds.
pub async fn expired_reservation_spends_no_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let handle = queue
        .enqueue_with(Add { a: 20, b: 22 }, EnqueueOptions::new().max_attempts(1))
        .await
        .expect("enqueue");
    let claimed = backend
        .claim(add_claim("vanished", 1, 0, Duration::from_millis(100)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    recover_until_not_running(&queue, handle.id()).await;
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Pending, "{record:?}");
    assert_eq!(record.attempts, 0, "the attempt was not spent");
    assert_eq!(record.failure, None, "no failure is recorded");
    assert_eq!(record.started_at, None);

    let worker = h.start_worker(&queue, worker_config());
    assert_eq!(wait(&handle).await.expect("result"), 42);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.attempts, 1);
    worker.shutdown().await;
}

/// A reservation recovered after a failed attempt keeps that attempt's
/// error and count.
pub async fn expired_reservation_keeps_the_previous_error(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let handle = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let first = backend
        .claim(add_claim("w", 1, 1, WAIT))
        .await
        .expect("claim")
        .remove(0);
    let failure = crate::TaskFailure::new(FailureKind::Error, "first try failed");
    let retry = Completion {
        claim: first.claim_ref(),
        outcome: Outcome::Retry {
            failure: failure.clone(),
            delay: Duration::ZERO,
        },
    };
    assert_eq!(
        backend.complete(vec![retry]).await.expect("complete"),
        [true]
    );
    let reserved = backend
        .claim(add_claim("vanished", 1, 0, Duration::from_millis(100)))
        .await
        .expect("claim");
    assert_eq!(
        reserved.iter().map(|task| task.attempt).collect::<Vec<_>>(),
        [2]
    );
    recover_until_not_running(&queue, handle.id()).await;
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Pending, "{record:?}");
    assert_eq!(record.attempts, 1, "only the attempt that ran counts");
    assert_eq!(record.failure, Some(failure), "the previous error is kept");
}

/// A reservation marked started spends its attempt: when its lease runs
/// out, the attempt counts, with a `LeaseExpired` failure.
pub async fn started_reservation_spends_its_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let handle = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().max_attempts(1))
        .await
        .expect("enqueue");
    let claimed = backend
        .claim(add_claim("vanished", 1, 0, Duration::from_millis(100)))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    backend
        .start(vec![claimed[0].claim_ref()])
        .await
        .expect("start");
    let record = queue.get(handle.id()).await.expect("record");
    assert!(record.started_at.is_some(), "{record:?}");
    recover_until_not_running(&queue, handle.id()).await;
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Failed, "{record:?}");
    assert_eq!(record.attempts, 1);
    assert_eq!(
        record.failure.map(|failure| failure.kind),
        Some(FailureKind::LeaseExpired)
    );
    assert_eq!(
        backend
            .release(vec![claimed[0].claim_ref()])
            .await
            .expect("release"),
        0,
        "a recovered claim is not released"
    );
}

/// A reservation completed before its start mark landed still records when
/// it started; the late mark changes nothing.
pub async fn reserved_claim_can_complete_before_its_start_mark(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let handle = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let claim = backend
        .claim(add_claim("w", 1, 0, WAIT))
        .await
        .expect("claim")
        .remove(0)
        .claim_ref();
    let done = Completion {
        claim,
        outcome: Outcome::Succeeded(vec![0x02]),
    };
    assert_eq!(
        backend.complete(vec![done]).await.expect("complete"),
        [true]
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    let started = record.started_at.expect("started_at is set on completion");
    backend.start(vec![claim]).await.expect("start");
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        record.started_at,
        Some(started),
        "the late mark is fenced out"
    );
    assert_eq!(backend.release(vec![claim]).await.expect("release"), 0);
}

/// `finished` reports the outcomes of finished tasks only.
pub async fn finished_reports_only_finished_tasks(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let done = queue.enqueue(Add { a: 1, b: 1 }).await.expect("enqueue");
    let claim = backend
        .claim(add_claim("w", 1, 1, WAIT))
        .await
        .expect("claim")
        .remove(0)
        .claim_ref();
    let success = Completion {
        claim,
        outcome: Outcome::Succeeded(vec![0x07]),
    };
    backend.complete(vec![success]).await.expect("complete");
    let cancelled = queue.enqueue(Add { a: 2, b: 2 }).await.expect("enqueue");
    assert_eq!(
        queue.cancel(cancelled.id()).await.expect("cancel"),
        crate::CancelOutcome::Cancelled
    );
    let pending = queue.enqueue(Add { a: 3, b: 3 }).await.expect("enqueue");
    let ids = [done.id(), cancelled.id(), pending.id(), TaskId(987_654_321)];
    let mut finished = backend.finished(&ids).await.expect("finished");
    finished.sort_by_key(|finished| finished.id);
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert_eq!(finished[0].id, done.id());
    assert_eq!(finished[0].name, Add::NAME);
    assert_eq!(finished[0].status, TaskStatus::Succeeded);
    assert_eq!(finished[0].attempts, 1);
    assert_eq!(finished[0].result.as_deref(), Some(&[0x07][..]));
    assert_eq!(finished[1].id, cancelled.id());
    assert_eq!(finished[1].status, TaskStatus::Cancelled);
    assert!(backend.finished(&[]).await.expect("finished").is_empty());
}

/// A released reservation, a recovered one and an admin retry each let a
/// later claim carry the same attempt number as an earlier one. The earlier
/// claim must still touch nothing: not start, extend, release or complete
/// the later one.
pub async fn claims_from_before_a_give_back_are_fenced(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let backend = queue.backend();
    let live = Duration::from_secs(600);
    let options = EnqueueOptions::new().max_attempts(1);
    let handle = queue
        .enqueue_with(Add { a: 2, b: 3 }, options)
        .await
        .expect("enqueue");
    let claim = |start: usize, lease: Duration| async move {
        let mut claimed = backend
            .claim(add_claim("fence", 1, start, lease))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 1, "one task to claim");
        claimed.remove(0)
    };

    // Is `old` fenced off, while `current` (the task's live claim, if any)
    // still holds? Checked without changing anything that `current` holds.
    let fenced = |old: crate::ClaimRef, what: &'static str| async move {
        let lost = backend
            .heartbeat("fence", &[old], live)
            .await
            .expect("heartbeat");
        assert_eq!(lost, [old], "{what}: the old claim's heartbeat is lost");
        let done = Completion {
            claim: old,
            outcome: Outcome::Succeeded(vec![0xee]),
        };
        assert_eq!(
            backend.complete(vec![done]).await.expect("complete"),
            [false],
            "{what}: the old claim's completion does not apply"
        );
        assert_eq!(
            backend.release(vec![old]).await.expect("release"),
            0,
            "{what}: the old claim's release does not apply"
        );
    };

    // A reservation given back: the next claim is attempt 1 again.
    let reserved = claim(0, live).await;
    assert_eq!((reserved.attempt, reserved.fence), (1, 1));
    assert_eq!(
        backend
            .release(vec![reserved.claim_ref()])
            .await
            .expect("release"),
        1
    );
    let second = claim(0, live).await;
    assert_eq!(second.attempt, 1, "a released reservation spent no attempt");
    assert!(
        second.fence > reserved.fence,
        "every claim raises the fence"
    );
    fenced(reserved.claim_ref(), "after a release").await;
    // The old claim's start mark must not start the new reservation.
    backend
        .start(vec![reserved.claim_ref()])
        .await
        .expect("start");
    assert_eq!(
        backend
            .release(vec![second.claim_ref()])
            .await
            .expect("release"),
        1,
        "the live reservation was not started by the old claim"
    );

    // A reservation whose lease ran out, recovered: attempt 1 again.
    let expired = claim(0, Duration::from_micros(1)).await;
    recover_until_not_running(&queue, handle.id()).await;
    let third = claim(1, Duration::from_micros(1)).await;
    assert_eq!(third.attempt, 1, "a recovered reservation spent no attempt");
    fenced(expired.claim_ref(), "after recovering a reservation").await;

    // That started attempt runs out too: failed for good (one attempt), then
    // retried by an admin, and claimed once more as attempt 1.
    recover_until_not_running(&queue, handle.id()).await;
    assert_eq!(
        queue.status(handle.id()).await.expect("status"),
        TaskStatus::Failed
    );
    queue.retry(handle.id()).await.expect("retry");
    let fourth = claim(1, live).await;
    assert_eq!(fourth.attempt, 1, "a retry starts the attempts again");
    let fences = [
        reserved.fence,
        second.fence,
        expired.fence,
        third.fence,
        fourth.fence,
    ];
    assert!(
        fences.windows(2).all(|pair| pair[0] < pair[1]),
        "fences only grow: {fences:?}"
    );
    fenced(third.claim_ref(), "after a retry").await;
    let current = backend
        .heartbeat("fence", &[fourth.claim_ref()], live)
        .await
        .expect("heartbeat");
    assert!(current.is_empty(), "the live claim still holds");
    let done = Completion {
        claim: fourth.claim_ref(),
        outcome: Outcome::Succeeded(crate::codec::encode(&5_i64, "a result").expect("encode")),
    };
    assert_eq!(
        backend.complete(vec![done]).await.expect("complete"),
        [true]
    );
    assert_eq!(wait(&handle).await.expect("the retried run's result"), 5);
}

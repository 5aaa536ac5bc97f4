//! Conformance cases for the task's own [`Context`](crate::Context): what a
//! task sees, and snoozing (run again later without spending an attempt).

use std::time::Duration;

use super::cases::wait;
use super::tasks::{Add, Seen, Snoozy, Whoami, runs, unique};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{
    ClaimRequest, Completion, Context, EnqueueOptions, FailureKind, Outcome, Task, TaskStatus,
};

/// A task sees its own id, name, queue, attempt and max_attempts; a retried
/// attempt sees its own attempt number.
pub async fn context_describes_the_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let options = EnqueueOptions::new().queue("context").max_attempts(4);
    let first = Whoami {
        key: unique("whoami"),
        failures: 0,
    };
    let handle = queue
        .enqueue_with(first, options.clone())
        .await
        .expect("enqueue");
    let seen = wait(&handle).await.expect("result");
    let expected = Seen {
        id: handle.id().0,
        name: Whoami::NAME.to_owned(),
        queue: "context".to_owned(),
        attempt: 1,
        max_attempts: 4,
    };
    assert_eq!(seen, expected);

    let retried = Whoami {
        key: unique("whoami"),
        failures: 2,
    };
    let handle = queue.enqueue_with(retried, options).await.expect("enqueue");
    let seen = wait(&handle).await.expect("result");
    assert_eq!(
        seen,
        Seen {
            id: handle.id().0,
            attempt: 3,
            ..expected
        },
        "the third attempt (after two failures) sees attempt 3"
    );
    worker.shutdown().await;
}

/// A snooze runs the task again without spending an attempt, and is counted:
/// a one-attempt task snoozes twice, then succeeds on its first attempt.
/// A zero delay runs again promptly (the snooze wakes the workers).
pub async fn snooze_spends_no_attempt_and_counts(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("snoozy");
    let task = Snoozy {
        key: key.clone(),
        failures: 0,
        snoozes: 2,
        delay_ms: 0,
    };
    let handle = queue.enqueue(task).await.expect("enqueue");
    assert_eq!(
        wait(&handle).await.expect("result"),
        (3, 1),
        "three runs, the last one still attempt 1"
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!((record.attempts, record.max_attempts), (1, 1));
    assert_eq!(record.snoozes, 2);
    assert_eq!(record.failure, None);
    worker.shutdown().await;
}

/// A snoozed task is pending with run_at = now + delay, no worker, lease or
/// start time, its attempt given back and the previous failure kept.
pub async fn snoozed_task_is_pending_and_keeps_its_failure(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("snoozy");
    let task = Snoozy {
        key: key.clone(),
        failures: 1,
        snoozes: 1,
        delay_ms: 3_600_000,
    };
    let handle = queue
        .enqueue_with(task, EnqueueOptions::new().max_attempts(2))
        .await
        .expect("enqueue");
    let record = eventually("the task to snooze", || async {
        let record = queue.get(handle.id()).await.expect("record");
        (record.snoozes == 1 && record.status == TaskStatus::Pending).then_some(record)
    })
    .await;
    // Attempt 1 failed, attempt 2 snoozed and was given back.
    assert_eq!(record.attempts, 1);
    assert_eq!(runs(&key).len(), 2);
    let failure = record
        .failure
        .as_ref()
        .expect("the first attempt's failure is kept");
    assert_eq!(
        (failure.kind, failure.message.as_str()),
        (FailureKind::Error, "snoozy failure 1")
    );
    assert_eq!(record.worker_id, None);
    assert_eq!(record.started_at, None);
    assert_eq!(record.finished_at, None);
    // Both instants from the backend's clock: created_at before the snooze,
    // run_at = the snooze's now + 1 h.
    let ahead = record.run_at - record.created_at;
    let hour = chrono::Duration::minutes(60);
    assert!(
        ahead >= hour && ahead < hour + chrono::Duration::from_std(WAIT).expect("WAIT"),
        "run_at is {ahead:?} after enqueue, not the snooze's hour after the snooze"
    );
    worker.shutdown().await;
}

/// The task does not run again before its snooze delay is over.
pub async fn snooze_delay_is_honoured(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let worker = h.start_worker(&queue, worker_config());
    let key = unique("snoozy");
    let delay = Duration::from_millis(1000);
    let task = Snoozy {
        key: key.clone(),
        failures: 0,
        snoozes: 1,
        delay_ms: 1000,
    };
    let handle = queue.enqueue(task).await.expect("enqueue");
    assert_eq!(wait(&handle).await.expect("result"), (2, 1));
    let runs = runs(&key);
    assert_eq!(runs.len(), 2);
    // The delay counts from the snooze's completion, after the first run
    // started; allow for the clocks' resolution only.
    let gap = runs[1] - runs[0];
    assert!(
        gap >= chrono::Duration::from_std(delay).expect("delay")
            - chrono::Duration::milliseconds(5),
        "ran again {gap:?} after the snooze, before its {delay:?} delay"
    );
    // The backend's clock: the last run started at or after the snooze's
    // run_at, itself at least the delay after enqueue.
    let record = queue.get(handle.id()).await.expect("record");
    let started = record.started_at.expect("started_at");
    assert!(
        started >= record.run_at,
        "started {started} before its run_at {}",
        record.run_at
    );
    assert!(
        record.run_at - record.created_at >= chrono::Duration::from_std(delay).expect("delay"),
        "run_at {} is not the delay after enqueue at {}",
        record.run_at,
        record.created_at
    );
    worker.shutdown().await;
}

fn request<'a>(names: &'a [String], lease: Duration) -> ClaimRequest<'a> {
    ClaimRequest {
        worker_id: "w1",
        queues: &[],
        names,
        limit: 1,
        start: 1,
        lease,
    }
}

/// A snooze from a claim whose lease was lost (recovered, claimed again)
/// does not apply; the live claim's snooze does, once.
pub async fn snooze_of_a_lost_claim_is_fenced(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let backend = queue.backend();
    let names = [Add::NAME.to_owned()];
    let lost = backend
        .claim(request(&names, Duration::from_millis(100)))
        .await
        .expect("claim")
        .remove(0);
    eventually("the lease to expire and be recovered", || async {
        (backend.recover_expired().await.expect("recover") > 0).then_some(())
    })
    .await;
    let snooze = |claim| Completion {
        claim,
        outcome: Outcome::Snooze {
            delay: Duration::ZERO,
        },
    };
    assert_eq!(
        backend
            .complete(vec![snooze(lost.claim_ref())])
            .await
            .expect("complete"),
        [false],
        "the lost claim's snooze"
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        (record.status, record.attempts, record.snoozes),
        (TaskStatus::Pending, 1, 0)
    );

    let live = backend
        .claim(request(&names, Duration::from_secs(30)))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(live.attempt, 2);
    // The lost claim's snooze again, now that the task runs elsewhere.
    assert_eq!(
        backend
            .complete(vec![snooze(lost.claim_ref()), snooze(live.claim_ref())])
            .await
            .expect("complete"),
        [false, true]
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(
        (record.status, record.attempts, record.snoozes),
        (TaskStatus::Pending, 1, 1)
    );
    assert_eq!(
        record.failure.map(|failure| failure.kind),
        Some(FailureKind::LeaseExpired),
        "the lease failure is kept"
    );
    assert_eq!(
        backend
            .complete(vec![snooze(live.claim_ref())])
            .await
            .expect("complete"),
        [false],
        "snoozing twice"
    );
    // The next claim has the same attempt number: the snooze spent none.
    let next = backend
        .claim(request(&names, Duration::from_secs(30)))
        .await
        .expect("claim")
        .remove(0);
    assert_eq!(next.attempt, 2);
    let done = Completion {
        claim: next.claim_ref(),
        outcome: Outcome::Succeeded(crate::codec::encode(&3_i64, "result").expect("encode")),
    };
    assert_eq!(
        backend.complete(vec![done]).await.expect("complete"),
        [true]
    );
    assert_eq!(wait(&handle).await.expect("result"), 3);
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!((record.attempts, record.snoozes), (2, 1));
}

/// A snooze longer than [`Context::MAX_SNOOZE`] (up to `Duration::MAX`) is
/// stored as that: the task waits 100 years, with a valid `run_at`.
pub async fn absurd_snooze_is_capped(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue.enqueue(Add { a: 1, b: 2 }).await.expect("enqueue");
    let backend = queue.backend();
    let names = [Add::NAME.to_owned()];
    let claimed = backend
        .claim(request(&names, Duration::from_secs(30)))
        .await
        .expect("claim")
        .remove(0);
    let snooze = Completion {
        claim: claimed.claim_ref(),
        outcome: Outcome::Snooze {
            delay: Duration::MAX,
        },
    };
    assert_eq!(
        backend.complete(vec![snooze]).await.expect("complete"),
        [true]
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!((record.status, record.snoozes), (TaskStatus::Pending, 1));
    // Both from the backend's clock: enqueue, then the snooze's now + cap.
    let ahead = record.run_at - record.created_at;
    let cap = chrono::Duration::from_std(Context::MAX_SNOOZE).expect("cap");
    assert!(
        ahead >= cap && ahead < cap + chrono::Duration::from_std(WAIT).expect("WAIT"),
        "run_at is {ahead:?} after enqueue, not the {cap:?} cap"
    );
    assert_eq!(
        backend.next_run_at(&[]).await.expect("next run_at"),
        Some(record.run_at)
    );
}

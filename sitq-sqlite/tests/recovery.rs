//! Expired leases: back to pending, or failed when out of attempts.

mod common;

use std::time::Duration;

use common::{claim, claim_with_lease, eventually, memory, task};
use sitq_core::{Backend, FailureKind, NewTask, TaskStatus};

#[tokio::test]
async fn an_expired_lease_returns_the_task_to_pending() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![task("held"), task("t")])
        .await
        .expect("enqueue");
    let mut work = backend.signals().subscribe_work();
    work.mark_unchanged();
    // A lease that holds (not timing-dependent), then one that expires at once.
    claim_with_lease(&backend, "w0", 1, Duration::from_secs(3600)).await;
    claim_with_lease(&backend, "w1", 1, Duration::from_millis(1)).await;
    eventually("the 1 ms lease to expire", || async {
        backend.recover_expired().await.expect("recover") == 1
    })
    .await;
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Running),
        "a lease that still holds is left alone"
    );
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
    assert!(
        work.has_changed().expect("signals alive"),
        "recovery wakes workers"
    );
    let again = claim(&backend, "w2", 1).await;
    assert_eq!(again[0].attempt, 2);
}

#[tokio::test]
async fn an_expired_last_attempt_fails_the_task() {
    let backend = memory().await;
    let once = NewTask {
        max_attempts: 1,
        ..task("t")
    };
    let ids = backend.enqueue(vec![once]).await.expect("enqueue");
    let finished = backend.signals().watch_finished(ids[0]);
    claim_with_lease(&backend, "w", 1, Duration::ZERO).await;
    eventually("the zero lease to be recovered", || async {
        backend.recover_expired().await.expect("recover") == 1
    })
    .await;
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Failed)
    );
    tokio::time::timeout(Duration::from_secs(30), finished.notified())
        .await
        .expect("waiters of a task failed by recovery are woken");
    assert!(claim(&backend, "w", 1).await.is_empty());
}

#[tokio::test]
async fn recovery_records_which_worker_stopped() {
    let backend = memory().await;
    let ids = backend.enqueue(vec![task("t")]).await.expect("enqueue");
    claim_with_lease(&backend, "w7", 1, Duration::ZERO).await;
    eventually("the zero lease to be recovered", || async {
        backend.recover_expired().await.expect("recover") == 1
    })
    .await;
    let record = backend.get(ids[0]).await.expect("get").expect("exists");
    let failure = record.failure.expect("a failure is recorded");
    assert_eq!(failure.kind, FailureKind::LeaseExpired);
    assert_eq!(
        failure.message,
        "worker w7 stopped renewing its lease during attempt 1 (killed or cut off)"
    );
}

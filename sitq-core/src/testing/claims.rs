//! Conformance cases for the claim path: routing by name and reserved
//! (prefetched) claims, which never spend an attempt unless they started.

use std::time::Duration;

use super::tasks::{Add, Gate, count, open_gate, unique};
use super::{Harness, WAIT, eventually, open, worker_config};
use crate::{ClaimRequest, EnqueueOptions, FailureKind, Task, TaskStatus};

fn names() -> Vec<String> {
    vec![Add::NAME.to_owned()]
}

/// Reserved claims given back keep their attempts; a started one is not
/// given back.
pub async fn released_reservations_keep_their_attempts(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let tasks = queue
        .enqueue_many([Add { a: 1, b: 1 }, Add { a: 2, b: 2 }, Add { a: 3, b: 3 }])
        .await
        .expect("enqueue");
    let backend = queue.backend();
    let claimed = backend
        .claim(ClaimRequest {
            worker_id: "w1",
            queues: &[],
            names: &names(),
            limit: 3,
            start: 1,
            lease: Duration::from_secs(30),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let started = queue.get(claimed[0].id).await.expect("record");
    assert!(started.started_at.is_some(), "the first claim started");
    for task in &claimed[1..] {
        let record = queue.get(task.id).await.expect("record");
        assert_eq!(record.status, TaskStatus::Running);
        assert!(
            record.started_at.is_none(),
            "a reserved claim has not started"
        );
    }
    let refs: Vec<_> = claimed.iter().map(|task| task.claim_ref()).collect();
    let released = backend.release(refs).await.expect("release");
    assert_eq!(released, 2, "only the two reserved claims go back");
    assert_eq!(
        queue.status(claimed[0].id).await.expect("status"),
        TaskStatus::Running
    );
    for handle in &tasks[1..] {
        let record = queue.get(handle.id()).await.expect("record");
        assert_eq!(record.status, TaskStatus::Pending);
        assert_eq!(record.attempts, 0, "a released reservation spent nothing");
        assert!(record.worker_id.is_none());
    }
}

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
    // One slot, busy: the adds are reserved (claimed with the gate) or unclaimed.
    let stopping = tokio::spawn(worker.shutdown());
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

/// A reservation whose worker died goes back without spending an attempt:
/// even with `max_attempts = 1` the task then runs and succeeds.
pub async fn a_dead_workers_reservation_does_not_spend_an_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue
        .enqueue_with(Add { a: 20, b: 22 }, EnqueueOptions::new().max_attempts(1))
        .await
        .expect("enqueue");
    let claimed = queue
        .backend()
        .claim(ClaimRequest {
            worker_id: "dead-worker",
            queues: &[],
            names: &names(),
            limit: 1,
            start: 0,
            lease: Duration::from_millis(200),
        })
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    let mut config = worker_config();
    config.lease = Duration::from_millis(600);
    let worker = h.start_worker(&queue, config);
    assert_eq!(
        tokio::time::timeout(WAIT, handle.wait())
            .await
            .expect("bounded")
            .expect("the task runs once its reservation lapses"),
        42
    );
    let record = queue.get(handle.id()).await.expect("record");
    assert_eq!(record.attempts, 1, "only the real run counts");
    worker.shutdown().await;
}

/// A reservation marked started spends its attempt when its worker dies.
pub async fn a_started_reservation_spends_its_attempt(h: &impl Harness) {
    let (queue, _) = open(h).await;
    let handle = queue
        .enqueue_with(Add { a: 1, b: 1 }, EnqueueOptions::new().max_attempts(1))
        .await
        .expect("enqueue");
    let backend = queue.backend();
    let claimed = backend
        .claim(ClaimRequest {
            worker_id: "dead-worker",
            queues: &[],
            names: &names(),
            limit: 1,
            start: 0,
            lease: Duration::from_millis(100),
        })
        .await
        .expect("claim");
    backend
        .start(vec![claimed[0].claim_ref()])
        .await
        .expect("start");
    let record = queue.get(handle.id()).await.expect("record");
    assert!(record.started_at.is_some(), "start marks the claim started");
    let record = eventually("the lease to lapse and be recovered", || async {
        backend.recover_expired().await.expect("recover");
        let record = queue.get(handle.id()).await.expect("record");
        (record.status == TaskStatus::Failed).then_some(record)
    })
    .await;
    assert_eq!(
        record.failure.map(|failure| failure.kind),
        Some(FailureKind::LeaseExpired)
    );
}

//! A task's life through the backend: enqueue, claim, complete, and the
//! calls around it (status, cancel, prune, next_run_at, queues).

mod support;

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sitq_core::{
    Backend, ClaimRequest, Completion, ConnectOptions, Outcome, Queue, Task, TaskId, TaskStatus,
};
use support::{TestDb, request, task};

#[tokio::test]
async fn enqueue_claim_complete() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    assert_eq!(backend.name(), "postgres");

    let ids = backend
        .enqueue(vec![task("first"), task("second")])
        .await
        .expect("enqueue");
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids follow the batch's order: {ids:?}");
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending)
    );

    let claimed = backend.claim(request("w1", 10)).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let first = &claimed[0];
    assert_eq!(first.id, ids[0]);
    assert_eq!(first.name, support::TASK_NAME);
    assert_eq!(first.queue, "default");
    assert_eq!(first.payload, b"first");
    assert_eq!(first.attempt, 1);
    assert_eq!(first.max_attempts, 3);
    assert_eq!(
        backend.status(first.id).await.expect("status"),
        Some(TaskStatus::Running)
    );
    assert!(
        backend
            .claim(request("w2", 10))
            .await
            .expect("claim")
            .is_empty(),
        "running tasks are not claimed again"
    );

    let applied = backend
        .complete(
            claimed
                .iter()
                .map(|claimed| Completion {
                    claim: claimed.claim_ref(),
                    outcome: Outcome::Succeeded(b"done".to_vec()),
                })
                .collect(),
        )
        .await
        .expect("complete");
    assert_eq!(applied, [true, true]);
    for id in &ids {
        assert_eq!(
            backend.status(*id).await.expect("status"),
            Some(TaskStatus::Succeeded)
        );
    }
    assert_eq!(
        backend.status(TaskId(i64::MAX)).await.expect("status"),
        None
    );

    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn empty_batches_are_no_ops() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    assert!(
        backend
            .enqueue(Vec::new())
            .await
            .expect("enqueue")
            .is_empty()
    );
    assert!(
        backend
            .claim(request("w", 0))
            .await
            .expect("claim")
            .is_empty()
    );
    assert!(
        backend
            .complete(Vec::new())
            .await
            .expect("complete")
            .is_empty()
    );
    assert!(
        backend
            .heartbeat("w", &[], Duration::from_secs(1))
            .await
            .expect("heartbeat")
            .is_empty()
    );
    assert_eq!(backend.recover_expired().await.expect("recover"), 0);
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn queues_scheduling_cancel_and_prune() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let later = Utc::now() + chrono::Duration::hours(1);
    let mut mail = task("mail");
    mail.queue = "mail".into();
    let mut scheduled = task("scheduled");
    scheduled.run_at = later;
    let ids = backend
        .enqueue(vec![mail, scheduled, task("doomed")])
        .await
        .expect("enqueue");

    let mail_only = ["mail".to_owned()];
    let claimed = backend
        .claim(ClaimRequest {
            queues: &mail_only,
            ..request("w", 10)
        })
        .await
        .expect("claim");
    assert_eq!(
        claimed.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[0]],
        "only the mail queue"
    );

    // Microseconds survive the round trip; chrono keeps nanoseconds.
    let expected = later.timestamp_micros();
    let next = backend
        .next_run_at(&["default".to_owned()])
        .await
        .expect("next_run_at")
        .expect("a pending task");
    assert!(
        next.timestamp_micros() < expected,
        "the ready task is earlier"
    );
    assert_eq!(
        backend
            .next_run_at(&["nowhere".to_owned()])
            .await
            .expect("next_run_at"),
        None
    );

    let cancel = sitq_core::CancelRequest::new();
    assert_eq!(
        backend.cancel(ids[2], &cancel).await.expect("cancel"),
        sitq_core::CancelOutcome::Cancelled
    );
    assert_eq!(
        backend.cancel(ids[2], &cancel).await.expect("cancel twice"),
        sitq_core::CancelOutcome::AlreadyFinished(sitq_core::TaskStatus::Cancelled)
    );
    assert_eq!(
        backend
            .cancel(ids[0], &cancel)
            .await
            .expect("cancel a running task"),
        sitq_core::CancelOutcome::Requested
    );
    assert_eq!(
        backend.status(ids[2]).await.expect("status"),
        Some(TaskStatus::Cancelled)
    );
    let next = backend
        .next_run_at(&[])
        .await
        .expect("next_run_at")
        .expect("the scheduled task");
    assert_eq!(next.timestamp_micros(), expected);

    let claimed_now = backend.claim(request("w", 10)).await.expect("claim");
    assert!(claimed_now.is_empty(), "the scheduled task is not due");

    assert_eq!(
        backend
            .prune(Utc::now() - chrono::Duration::hours(1))
            .await
            .expect("prune"),
        0,
        "nothing finished that long ago"
    );
    let pruned = backend
        .prune(support::server_now(&db).await + chrono::Duration::seconds(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "only the cancelled task is finished");
    assert_eq!(backend.status(ids[2]).await.expect("status"), None);
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Pending)
    );

    backend.close().await;
    db.drop().await;
}

#[derive(Serialize, Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

impl Task for Add {
    const NAME: &'static str = "tests::add";
    type Output = i64;
}

#[tokio::test]
async fn queue_connect_finds_the_backend_by_either_scheme() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let other_scheme = db.url.replacen("postgres://", "postgresql://", 1);
    for url in [db.url.as_str(), other_scheme.as_str()] {
        let queue = Queue::connect_with(url, ConnectOptions::new())
            .await
            .expect("connect through the registered connector");
        assert_eq!(queue.backend().name(), "postgres");
        assert_eq!(
            queue.backend().poll_interval(),
            ConnectOptions::new().poll_interval,
            "the default is ConnectOptions' own"
        );
        let handle = queue.enqueue(Add { a: 2, b: 3 }).await.expect("enqueue");
        assert_eq!(handle.status().await.expect("status"), TaskStatus::Pending);
        queue.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn an_explicit_poll_interval_is_honoured() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    // The default's own value too: set explicitly, it is what the user asked for.
    let default = ConnectOptions::new().poll_interval;
    for interval in [
        default,
        Duration::from_millis(200),
        Duration::from_secs(1),
        Duration::from_millis(5),
    ] {
        let queue = Queue::connect_with(&db.url, ConnectOptions::new().poll_interval(interval))
            .await
            .expect("connect");
        assert_eq!(queue.backend().poll_interval(), interval);
        queue.close().await;
    }
    db.drop().await;
}

#[tokio::test]
async fn calls_after_close_fail() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    backend.close().await;
    let err = backend
        .enqueue(vec![task("late")])
        .await
        .expect_err("the backend is closed");
    assert!(matches!(err, sitq_core::Error::Database { .. }), "{err:?}");
    db.drop().await;
}

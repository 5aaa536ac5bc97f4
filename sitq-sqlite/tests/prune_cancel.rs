//! Cancelling pending tasks and pruning finished ones.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{claim, memory, task};
use sitq_core::{Backend, Completion, Outcome, TaskStatus};

#[tokio::test]
async fn cancel_only_touches_pending_tasks() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![task("a"), task("b")])
        .await
        .expect("enqueue");
    let finished = backend.signals().watch_finished(ids[0]);
    // Claims the lower id first (same priority and run_at): ids[0] is running.
    let claimed = claim(&backend, "w", 1).await;
    assert_eq!(claimed[0].id, ids[0]);
    let request = sitq_core::CancelRequest::new();
    assert_eq!(
        backend
            .cancel(ids[0], &request)
            .await
            .expect("cancel running"),
        sitq_core::CancelOutcome::Requested
    );
    assert_eq!(
        backend
            .cancel(ids[1], &request)
            .await
            .expect("cancel pending"),
        sitq_core::CancelOutcome::Cancelled
    );
    assert_eq!(
        backend
            .cancel(ids[1], &request)
            .await
            .expect("cancel twice"),
        sitq_core::CancelOutcome::AlreadyFinished(TaskStatus::Cancelled)
    );
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Cancelled)
    );
    assert!(
        claim(&backend, "w", 5).await.is_empty(),
        "cancelled tasks never run"
    );
    drop(finished);
}

#[tokio::test]
async fn prune_deletes_old_finished_tasks_only() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![
            task("done"),
            task("running"),
            task("pending"),
            task("cancelled"),
        ])
        .await
        .expect("enqueue");
    let claimed = claim(&backend, "w", 2).await;
    backend
        .complete(vec![Completion {
            claim: claimed[0].claim_ref(),
            outcome: Outcome::Succeeded(Vec::new()),
        }])
        .await
        .expect("complete");
    assert_eq!(
        backend
            .cancel(ids[3], &sitq_core::CancelRequest::new())
            .await
            .expect("cancel"),
        sitq_core::CancelOutcome::Cancelled
    );

    // Nothing finished before an hour ago.
    let old = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(backend.prune(old).await.expect("prune"), 0);

    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(backend.prune(later).await.expect("prune"), 2);
    assert_eq!(backend.status(ids[0]).await.expect("status"), None);
    assert_eq!(backend.status(ids[3]).await.expect("status"), None);
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Running)
    );
    assert_eq!(
        backend.status(ids[2]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
}

#[tokio::test]
async fn pruned_ids_are_never_reused() {
    let backend = memory().await;
    let first = backend.enqueue(vec![task("t")]).await.expect("enqueue");
    let claimed = claim(&backend, "w", 1).await;
    backend
        .complete(vec![Completion {
            claim: claimed[0].claim_ref(),
            outcome: Outcome::Succeeded(Vec::new()),
        }])
        .await
        .expect("complete");
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(backend.prune(later).await.expect("prune"), 1);
    let second = backend.enqueue(vec![task("t")]).await.expect("enqueue");
    assert!(second[0] > first[0], "{second:?} reuses {first:?}");
}

#[tokio::test]
async fn pruning_a_large_backlog_takes_several_steps() {
    let backend = memory().await;
    backend
        .enqueue((0..12_000).map(|_| task("t")).collect())
        .await
        .expect("enqueue");
    let claimed = claim(&backend, "w", 12_000).await;
    let completions = claimed
        .iter()
        .map(|t| Completion {
            claim: t.claim_ref(),
            outcome: Outcome::Succeeded(Vec::new()),
        })
        .collect();
    let applied = backend.complete(completions).await.expect("complete");
    assert!(applied.iter().all(|a| *a));
    let later = Utc::now() + chrono::Duration::seconds(1);
    let pruned = tokio::time::timeout(Duration::from_secs(30), backend.prune(later))
        .await
        .expect("prune finishes")
        .expect("prune");
    assert_eq!(pruned, 12_000);
}

//! Completions and heartbeats are fenced by the claim (id + attempt + worker).

mod common;

use std::time::Duration;

use common::{claim, claim_with_lease, memory, task};
use sitq_core::{Backend, ClaimRef, Completion, FailureKind, Outcome, TaskFailure, TaskStatus};

fn succeeded(claim: ClaimRef) -> Completion {
    Completion {
        claim,
        outcome: Outcome::Succeeded(vec![0x05]),
    }
}

fn failure() -> TaskFailure {
    TaskFailure::new(FailureKind::Error, "boom")
}

#[tokio::test]
async fn outcomes_set_the_status() {
    let backend = memory().await;
    let ids = backend
        .enqueue(vec![task("a"), task("b"), task("c")])
        .await
        .expect("enqueue");
    let claimed = claim(&backend, "w", 3).await;
    let applied = backend
        .complete(vec![
            succeeded(claimed[0].claim_ref()),
            Completion {
                claim: claimed[1].claim_ref(),
                outcome: Outcome::Retry {
                    failure: failure(),
                    delay: Duration::ZERO,
                },
            },
            Completion {
                claim: claimed[2].claim_ref(),
                outcome: Outcome::Failed(failure()),
            },
        ])
        .await
        .expect("complete");
    assert_eq!(applied, [true, true, true]);
    let status = |i: usize| {
        let backend = &backend;
        let id = ids[i];
        async move { backend.status(id).await.expect("status") }
    };
    assert_eq!(status(0).await, Some(TaskStatus::Succeeded));
    assert_eq!(status(1).await, Some(TaskStatus::Pending));
    assert_eq!(status(2).await, Some(TaskStatus::Failed));
    // The retried task is claimable again, as attempt 2.
    let again = claim(&backend, "w", 3).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (ids[1], 2));
}

#[tokio::test]
async fn a_stale_attempt_does_not_complete() {
    let backend = memory().await;
    let ids = backend.enqueue(vec![task("t")]).await.expect("enqueue");
    // Attempt 1 loses its lease at once and is recovered; attempt 2 runs.
    let first = claim_with_lease(&backend, "old", 1, Duration::ZERO).await;
    common::eventually("the zero lease to be recovered", || async {
        backend.recover_expired().await.expect("recover") > 0
    })
    .await;
    let second = claim(&backend, "new", 1).await;
    assert_eq!(second[0].attempt, 2);

    let stale = backend
        .complete(vec![succeeded(first[0].claim_ref())])
        .await
        .expect("complete");
    assert_eq!(stale, [false], "attempt 1's result must be ignored");
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Running)
    );

    let fresh = backend
        .complete(vec![succeeded(second[0].claim_ref())])
        .await
        .expect("complete");
    assert_eq!(fresh, [true]);
    // Completing the same attempt again does not apply twice.
    let twice = backend
        .complete(vec![succeeded(second[0].claim_ref())])
        .await
        .expect("complete");
    assert_eq!(twice, [false]);
}

#[tokio::test]
async fn a_duplicate_completion_in_one_call_applies_once() {
    let backend = memory().await;
    backend.enqueue(vec![task("t")]).await.expect("enqueue");
    let claimed = claim(&backend, "w", 1).await;
    let claim = claimed[0].claim_ref();
    let applied = backend
        .complete(vec![succeeded(claim), succeeded(claim)])
        .await
        .expect("complete");
    assert_eq!(applied, [true, false]);
}

#[tokio::test]
async fn heartbeat_extends_held_claims_and_reports_lost_ones() {
    let backend = memory().await;
    backend
        .enqueue(vec![task("a"), task("b")])
        .await
        .expect("enqueue");
    let claimed = claim(&backend, "w", 2).await;
    let held = claimed[0].claim_ref();
    let finished = claimed[1].claim_ref();
    backend
        .complete(vec![succeeded(finished)])
        .await
        .expect("complete");
    let bogus = ClaimRef {
        fence: held.fence + 1,
        ..held
    };
    let lost = backend
        .heartbeat("w", &[held, finished, bogus], Duration::from_secs(60))
        .await
        .expect("heartbeat");
    assert_eq!(lost, [finished, bogus]);
    // Another worker id does not hold the claim either.
    let lost = backend
        .heartbeat("intruder", &[held], Duration::from_secs(60))
        .await
        .expect("heartbeat");
    assert_eq!(lost, [held]);
}

#[tokio::test]
async fn a_heartbeat_keeps_a_short_lease_from_expiring() {
    let backend = memory().await;
    backend.enqueue(vec![task("t")]).await.expect("enqueue");
    let claimed = claim_with_lease(&backend, "w", 1, Duration::ZERO).await;
    let lost = backend
        .heartbeat("w", &[claimed[0].claim_ref()], Duration::from_secs(3600))
        .await
        .expect("heartbeat");
    assert!(lost.is_empty());
    assert_eq!(backend.recover_expired().await.expect("recover"), 0);
}

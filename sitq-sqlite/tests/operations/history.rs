//! The failure history: each failed attempt with its start.

use super::*;

#[tokio::test]
async fn failure_rows_carry_the_attempt_start() {
    let queue = queue().await;
    let backend = backend(&queue);
    let id = backend
        .enqueue(vec![NewTask {
            max_attempts: 4,
            ..task("a")
        }])
        .await
        .expect("enqueue")[0];

    // Attempt 1: retried.
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    let started_1 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    finish(
        &queue,
        &claimed,
        Outcome::Retry {
            failure: TaskFailure::new(FailureKind::Error, "first"),
            delay: Duration::ZERO,
        },
    )
    .await;

    // Attempt 2: its lease runs out.
    claim_named(&queue, "a", Duration::ZERO).await;
    let started_2 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    eventually("the lease to be recovered", || async {
        backend.recover_expired().await.expect("recover") == 1
    })
    .await;

    // Attempt 3: failed for good.
    let claimed = claim_named(&queue, "a", common::LEASE).await;
    let started_3 = backend
        .get(id)
        .await
        .expect("get")
        .and_then(|r| r.started_at)
        .expect("started");
    finish(&queue, &claimed, failed("third")).await;

    let failures = backend.failures(id).await.expect("failures");
    let seen: Vec<(u32, FailureKind, Option<i64>)> = failures
        .iter()
        .map(|f| (f.attempt, f.kind, micros(f.started_at)))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, FailureKind::Error, Some(started_1.timestamp_micros())),
            (
                2,
                FailureKind::LeaseExpired,
                Some(started_2.timestamp_micros())
            ),
            (3, FailureKind::Error, Some(started_3.timestamp_micros())),
        ]
    );
    assert!(failures.iter().all(|f| f.started_at <= Some(f.failed_at)));

    // The attempt history shows the start and the duration of each.
    let attempts = queue.attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a.duration().is_some()));
}

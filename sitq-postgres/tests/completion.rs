//! Completions are fenced by their claim, and each outcome moves the task on.

mod support;

use std::time::Duration;

use sitq_core::{Backend, ClaimedTask, Completion, FailureKind, Outcome, TaskFailure, TaskStatus};
use sitq_postgres::PostgresBackend;
use support::{TestDb, expire_leases, request, task};

fn succeeded(claimed: &ClaimedTask) -> Completion {
    Completion {
        claim: claimed.claim_ref(),
        outcome: Outcome::Succeeded(b"ok".to_vec()),
    }
}

async fn claim_one(backend: &PostgresBackend, worker: &str) -> ClaimedTask {
    let mut claimed = backend.claim(request(worker, 1)).await.expect("claim");
    assert_eq!(claimed.len(), 1, "one task is ready");
    claimed.remove(0)
}

#[tokio::test]
async fn a_stale_claim_cannot_complete() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let id = backend.enqueue(vec![task("t")]).await.expect("enqueue")[0];

    let stale = claim_one(&backend, "slow").await;
    expire_leases(&db).await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 1);
    let current = claim_one(&backend, "fast").await;
    assert_eq!((current.id, current.attempt), (id, 2));

    assert_eq!(
        backend
            .complete(vec![succeeded(&stale)])
            .await
            .expect("complete"),
        [false],
        "the first attempt lost its claim"
    );
    assert_eq!(
        backend.status(id).await.expect("status"),
        Some(TaskStatus::Running)
    );
    // In one batch: the stale one is refused, the current one applies once.
    assert_eq!(
        backend
            .complete(vec![
                succeeded(&stale),
                succeeded(&current),
                succeeded(&current)
            ])
            .await
            .expect("complete"),
        [false, true, false]
    );
    assert_eq!(
        backend.status(id).await.expect("status"),
        Some(TaskStatus::Succeeded)
    );
    assert_eq!(
        backend
            .complete(vec![succeeded(&current)])
            .await
            .expect("complete"),
        [false],
        "a finished task takes no second outcome"
    );
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn retry_goes_back_to_pending_after_the_delay_and_failed_is_final() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("retried"), task("failed")])
        .await
        .expect("enqueue");
    let claimed = backend.claim(request("w", 2)).await.expect("claim");
    let failure = TaskFailure::new(FailureKind::Error, "boom");
    let applied = backend
        .complete(vec![
            Completion {
                claim: claimed[0].claim_ref(),
                outcome: Outcome::Retry {
                    failure: failure.clone(),
                    // Nanoseconds, as jittered backoffs have: must not be refused.
                    delay: Duration::from_nanos(3_600_000_000_123),
                },
            },
            Completion {
                claim: claimed[1].claim_ref(),
                outcome: Outcome::Failed(failure),
            },
        ])
        .await
        .expect("complete");
    assert_eq!(applied, [true, true]);
    assert_eq!(
        backend.status(ids[0]).await.expect("status"),
        Some(TaskStatus::Pending)
    );
    assert_eq!(
        backend.status(ids[1]).await.expect("status"),
        Some(TaskStatus::Failed)
    );
    let next = backend
        .next_run_at(&[])
        .await
        .expect("next_run_at")
        .expect("the retry is scheduled");
    let now = support::server_now(&db).await;
    assert!(
        next > now + chrono::Duration::minutes(59),
        "the retry waits its delay: {next} vs {now}"
    );
    assert!(
        backend
            .claim(request("w", 10))
            .await
            .expect("claim")
            .is_empty(),
        "the retry is not due yet"
    );
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_retry_is_claimed_again_as_the_next_attempt() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let id = backend.enqueue(vec![task("t")]).await.expect("enqueue")[0];
    let first = claim_one(&backend, "w").await;
    let applied = backend
        .complete(vec![Completion {
            claim: first.claim_ref(),
            outcome: Outcome::Retry {
                failure: TaskFailure::new(FailureKind::Panic, "panicked"),
                delay: Duration::ZERO,
            },
        }])
        .await
        .expect("complete");
    assert_eq!(applied, [true]);
    let second = claim_one(&backend, "w").await;
    assert_eq!((second.id, second.attempt), (id, 2));
    backend.close().await;
    db.drop().await;
}

/// A batch of three outcomes for `claimed`: a success, a failure with
/// message `bad`, and a retry.
fn batch_around(claimed: &[ClaimedTask], bad: &str) -> Vec<Completion> {
    assert_eq!(claimed.len(), 3);
    vec![
        succeeded(&claimed[0]),
        Completion {
            claim: claimed[1].claim_ref(),
            outcome: Outcome::Failed(TaskFailure::new(FailureKind::Error, bad)),
        },
        Completion {
            claim: claimed[2].claim_ref(),
            outcome: Outcome::Retry {
                failure: TaskFailure::new(FailureKind::Panic, "fine"),
                delay: Duration::ZERO,
            },
        },
    ]
}

/// What the rows of `ids` hold: status and error.
async fn stored(db: &TestDb, ids: &[sitq_core::TaskId]) -> Vec<(String, Option<String>)> {
    let mut connection = db.connection().await;
    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
    let rows =
        sqlx::query_as("SELECT status, error FROM sitq_tasks WHERE id = ANY($1) ORDER BY id")
            .bind(ids)
            .fetch_all(&mut connection)
            .await
            .expect("read the rows");
    sqlx::Connection::close(connection).await.ok();
    rows
}

#[tokio::test]
async fn a_nul_in_an_error_message_does_not_fail_the_batch() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("a"), task("b"), task("c")])
        .await
        .expect("enqueue");
    let claimed = backend.claim(request("w", 3)).await.expect("claim");
    let batch = batch_around(&claimed, "bad\0byte");
    assert_eq!(
        backend.complete(batch).await.expect("complete"),
        [true, true, true]
    );
    assert_eq!(
        stored(&db, &ids).await,
        [
            ("succeeded".to_owned(), None),
            ("failed".to_owned(), Some("bad\\0byte".to_owned())),
            ("pending".to_owned(), Some("fine".to_owned())),
        ]
    );
    backend.close().await;
    db.drop().await;
}

#[tokio::test]
async fn a_row_the_server_refuses_is_stored_escaped_and_the_others_apply() {
    // LATIN1 has no emoji: the server refuses the text, in a batch or alone.
    let Some(db) =
        TestDb::create_with("ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
            .await
    else {
        return;
    };
    let backend = db.backend().await;
    let ids = backend
        .enqueue(vec![task("a"), task("b"), task("c")])
        .await
        .expect("enqueue");
    let claimed = backend.claim(request("w", 3)).await.expect("claim");
    let batch = batch_around(&claimed, "on fire \u{1f525}, caf\u{e9}");
    assert_eq!(
        backend.complete(batch).await.expect("complete"),
        [true, true, true]
    );
    let rows = stored(&db, &ids).await;
    assert_eq!(rows[0], ("succeeded".to_owned(), None));
    assert_eq!(rows[2], ("pending".to_owned(), Some("fine".to_owned())));
    let (status, error) = &rows[1];
    assert_eq!(status, "failed");
    let error = error.as_deref().expect("an error");
    assert!(
        error.starts_with("on fire \\u{1f525}, caf\\u{e9} (stored with non-ASCII"),
        "{error}"
    );
    let record = backend.get(ids[1]).await.expect("get").expect("a record");
    assert_eq!(
        record.failure.map(|failure| failure.kind),
        Some(FailureKind::Error)
    );
    backend.close().await;
    db.drop().await;
}

//! A task that finished through this process's backend (a completion, a
//! cancel, a lease recovered for good) hands its outcome to the handles
//! awaited here, even those awaited later: they cost no database query.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sitq_core::{
    Backend, Completion, ConnectOptions, Error, FailureKind, Outcome, Queue, Task, TaskDefaults,
    TaskFailure, codec,
};
use sitq_postgres::PostgresBackend;
use support::wire::{CountingProxy, Counts};
use support::{PATIENCE, TASK_NAME, TestDb, expire_leases, request};

/// A task with a `String` result, under the name [`request`] claims.
#[derive(Serialize, Deserialize)]
struct Echo {
    text: String,
}

impl Task for Echo {
    const NAME: &'static str = TASK_NAME;
    type Output = String;
}

/// [`Echo`] with one attempt, so a lost lease fails it for good.
#[derive(Serialize, Deserialize)]
struct Once {
    text: String,
}

impl Task for Once {
    const NAME: &'static str = TASK_NAME;
    const DEFAULTS: TaskDefaults = TaskDefaults {
        max_attempts: 1,
        ..TaskDefaults::DEFAULT
    };
    type Output = String;
}

fn echo(text: &str) -> Echo {
    Echo {
        text: text.to_owned(),
    }
}

#[tokio::test]
async fn a_handle_awaited_after_its_task_finished_here_needs_no_query() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let proxy = CountingProxy::to(&db.url).await;
    let backend = Arc::new(
        PostgresBackend::connect(&proxy.url(), ConnectOptions::new().max_connections(1))
            .await
            .expect("connect through the proxy"),
    );
    let queue = Queue::from_backend(backend.clone(), ConnectOptions::new());

    let succeeds = queue.enqueue(echo("ok")).await.expect("enqueue");
    let fails = queue.enqueue(echo("bad")).await.expect("enqueue");
    let cancelled = queue.enqueue(echo("never")).await.expect("enqueue");
    let claimed = backend.claim(request("w", 2)).await.expect("claim");
    let claim_of = |id| {
        claimed
            .iter()
            .find(|claimed| claimed.id == id)
            .expect("claimed")
            .claim_ref()
    };
    let result = codec::encode(&"done".to_owned(), "result").expect("encode");
    let applied = backend
        .complete(vec![
            Completion {
                claim: claim_of(succeeds.id()),
                outcome: Outcome::Succeeded(result),
            },
            Completion {
                claim: claim_of(fails.id()),
                outcome: Outcome::Failed(TaskFailure::new(FailureKind::Panic, "boom\0!")),
            },
        ])
        .await
        .expect("complete");
    assert_eq!(applied, [true, true]);
    assert_eq!(
        backend
            .cancel(cancelled.id(), &sitq_core::CancelRequest::new())
            .await
            .expect("cancel"),
        sitq_core::CancelOutcome::Cancelled
    );

    let abandoned = queue
        .enqueue(Once {
            text: "lost".to_owned(),
        })
        .await
        .expect("enqueue");
    assert_eq!(
        backend
            .claim(request("gone", 1))
            .await
            .expect("claim")
            .len(),
        1
    );
    expire_leases(&db).await;
    assert_eq!(backend.recover_expired().await.expect("recover"), 1);

    // Let this process's own notifications arrive and the pooled connection
    // settle (sqlx pings it on its way back to the pool).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = proxy.counts();

    assert_eq!(
        succeeds.wait_timeout(PATIENCE).await.expect("succeeded"),
        "done"
    );
    match fails.wait_timeout(PATIENCE).await {
        Err(Error::TaskFailed {
            kind,
            message,
            attempts,
            ..
        }) => {
            assert_eq!((kind, attempts), (FailureKind::Panic, 1));
            // As stored: PostgreSQL's text cannot hold the NUL.
            assert_eq!(message, "boom\\0!");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    match abandoned.wait_timeout(PATIENCE).await {
        Err(Error::TaskFailed { kind, .. }) => assert_eq!(kind, FailureKind::LeaseExpired),
        other => panic!("expected a lost lease, got {other:?}"),
    }

    let cost: Counts = proxy.counts() - before;
    assert_eq!(
        (cost.statements, cost.statement_round_trips, cost.prepares),
        (0, 0, 0),
        "the outcomes came from this process: {cost:?}"
    );

    // A cancellation's who and why are not part of the outcome handed
    // over: reading them costs the one lookup of the record.
    let before = proxy.counts();
    match cancelled.wait_timeout(PATIENCE).await {
        Err(Error::Cancelled { id, by, .. }) => {
            assert_eq!(id, cancelled.id());
            assert_eq!(by, "api");
        }
        other => panic!("expected a cancellation, got {other:?}"),
    }
    let cost: Counts = proxy.counts() - before;
    assert_eq!(cost.statements, 1, "one get for who and why: {cost:?}");

    // What the wait was handed is what a lookup reads.
    let stored = backend.finished(&[fails.id()]).await.expect("finished");
    let failure = stored.first().and_then(|finished| finished.failure.clone());
    assert_eq!(
        failure.map(|failure| failure.message).as_deref(),
        Some("boom\\0!")
    );

    queue.close().await;
    db.drop().await;
}
